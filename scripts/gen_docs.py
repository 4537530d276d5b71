"""Write the parts of docs/ that are facts of the code (run by `make docs`).

Hand-written prose in docs/*.md holds blocks between marker comments:

    <!-- BEGIN GENERATED fields bcx.v1.NumberReport -->
    ...
    <!-- END GENERATED -->

and this script rewrites what lies between them from the code itself:

    fields NAME    the fields of protobuf message NAME, from the descriptors in exchange/wire,
                   with each field's comment from its .proto source
    enum NAME      the values of protobuf enum NAME
    bodies         every body of bcx.v1.Message's oneof, with who may send it to whom
    route KIND     who may send body KIND to whom, and whether each receiver handles it
    roles          the role table, exchange.identity.ALLOWED, row by row
    matrix         the same table as sender role x recipient role
    rules LAYER    the responsibility rules of LAYER: `directory`
                   (exchange.responsibility.RULES) or `state` (nodes.rules.RULES)

The role table is read for what it is (pairs of roles and body kinds), never from a list
kept here, so a change to it shows up in the docs on the next `make docs`. Completeness is
checked too: every body and every type of message.proto must have its block in
docs/messages.md, and the role table may name only bodies the Message oneof has.

`make docs-check` (`--check`) writes nothing and fails, naming the files, when a block is
stale or missing.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import exchange.wire.bcx.v1 as wire  # noqa: E402 - after the path is set
from exchange import identity  # noqa: E402
from exchange.responsibility import Rule  # noqa: E402
from exchange.transport.status import status_for  # noqa: E402
from exchange.wire.bcx.v1 import message_pb2  # noqa: E402

DOCS = ROOT / "docs"
PROTO = ROOT / "proto"
CATALOGUE = DOCS / "messages.md"
MESSAGE = "bcx.v1.Message"
BODY_ONEOF = "body"

BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED (?P<spec>[^>]*?) -->\n)(?P<body>.*?)"
    r"(?P<end><!-- END GENERATED -->)",
    re.S,
)

_TYPE_NAMES = {
    FieldDescriptor.TYPE_DOUBLE: "double", FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64", FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32", FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32", FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string", FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32", FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64", FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
}


class DocsError(Exception):
    """The docs cannot be generated as they stand (a directive or block is wrong)."""


# --- what the code says ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Facts:
    messages: dict[str, Descriptor]
    enums: dict[str, EnumDescriptor]
    comments: dict[str, str]
    # (sender role, body kind, recipient role), as the role table allows.
    allowed: frozenset[tuple[str, str, str]]
    # role -> body kinds its nodes handle (empty when the agencies' table is not found).
    handled: dict[str, frozenset[str]]
    roles: tuple[str, ...]
    bodies: tuple[FieldDescriptor, ...]
    # layer (directory, state) -> its responsibility rules.
    rules: dict[str, tuple[RuleRow, ...]]


def _walk(messages: Iterable[Descriptor], out_m: dict[str, Descriptor],
          out_e: dict[str, EnumDescriptor]) -> None:
    for m in messages:
        if m.GetOptions().map_entry:
            continue
        out_m[m.full_name] = m
        for e in m.enum_types:
            out_e[e.full_name] = e
        _walk(m.nested_types, out_m, out_e)


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """proto/ compiled by protoc, with the comments (source info) kept."""
    sources = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        if protoc.main(["grpc_tools.protoc", f"-I{PROTO}", f"-I{include}",
                        "--include_source_info", f"--descriptor_set_out={out}",
                        *sources]) != 0:
            raise DocsError("protoc failed on proto/")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def proto_comments() -> dict[str, str]:
    """Full name (message, field, enum, value) -> its comment in proto/, via protoc."""
    fds = descriptor_set()
    comments: dict[str, str] = {}
    for f in fds.file:
        names: dict[tuple[int, ...], str] = {}
        prefix = f".{f.package}" if f.package else ""

        def message(m: descriptor_pb2.DescriptorProto, path: tuple[int, ...], scope: str,
                    names: dict[tuple[int, ...], str] = names) -> None:
            name = f"{scope}.{m.name}"
            names[path] = name
            for i, fld in enumerate(m.field):
                names[(*path, 2, i)] = f"{name}.{fld.name}"
            for i, nested in enumerate(m.nested_type):
                message(nested, (*path, 3, i), name)
            for i, e in enumerate(m.enum_type):
                enum(e, (*path, 4, i), name)

        def enum(e: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], scope: str,
                 names: dict[tuple[int, ...], str] = names) -> None:
            name = f"{scope}.{e.name}"
            names[path] = name
            for i, v in enumerate(e.value):
                # Enum values are scoped like siblings of their enum (protobuf's rule).
                names[(*path, 2, i)] = f"{scope}.{v.name}"

        for i, m in enumerate(f.message_type):
            message(m, (4, i), prefix)
        for i, e in enumerate(f.enum_type):
            enum(e, (5, i), prefix)
        for loc in f.source_code_info.location:
            name = names.get(tuple(loc.path))
            text = " ".join(c for c in (loc.leading_comments, loc.trailing_comments) if c)
            if name is not None and text.strip():
                comments[name.lstrip(".")] = " ".join(text.split())
    return comments


def allowed_triples(table: Any) -> frozenset[tuple[str, str, str]]:
    """The role table as (sender, body, recipient) triples, whatever its shape: a mapping
    of (sender, body) to recipient roles, of (sender, body, recipient) to a truth value,
    or a collection of such triples."""
    items: Iterable[tuple[Any, Any]] = (
        table.items() if isinstance(table, Mapping) else ((key, True) for key in table))
    out = set()
    for key, value in items:
        parts = tuple(key)
        if len(parts) == 3:
            if value:
                out.add((_role(parts[0]), str(parts[1]), _role(parts[2])))
        elif len(parts) == 2:
            recipients = (value,) if isinstance(value, str) or not isinstance(
                value, Iterable) else value
            for recipient in recipients:
                out.add((_role(parts[0]), str(parts[1]), _role(recipient)))
        else:
            raise DocsError(f"role table entry {key!r} is neither (sender, body) nor "
                            "(sender, body, recipient)")
    return frozenset(out)


def _role(role: Any) -> str:
    return str(getattr(role, "value", role))


def handled_kinds() -> dict[str, frozenset[str]]:
    """Which bodies each role's nodes handle (nodes.agency.BEHAVIOUR)."""
    try:
        behaviour = importlib.import_module("nodes.agency").BEHAVIOUR
    except (ImportError, AttributeError):
        return {}
    return {_role(role): frozenset(str(k) for k in b.handlers) for role, b in behaviour.items()}


# The responsibility rules, layer by layer: directive argument -> the module whose
# RULES table holds them.
# ``directory``: rules over the signed directory and the message alone, run by
# ``exchange.receive.check_incoming``; ``state``: rules over the receiver's own tables,
# run by ``Node.responsibility`` before any handler.
RULE_LAYERS: dict[str, str] = {
    "directory": "exchange.responsibility",
    "state": "nodes.rules",
}


@dataclass(frozen=True, slots=True)
class RuleRow:
    name: str
    bodies: tuple[str, ...]
    status: str  # the gRPC status a refusal under the rule is answered with
    requires: str


def rule_rows(rules: Any, *, where: str) -> tuple[RuleRow, ...]:
    """The rows of one table of ``exchange.responsibility.Rule`` values, each refusal's
    status taken from the status table (``exchange.transport.status``)."""
    if not isinstance(rules, tuple | list):
        raise DocsError(f"{where}.RULES is a {type(rules).__name__}, not a tuple of Rule")
    rows = []
    for rule in rules:
        if not isinstance(rule, Rule):
            raise DocsError(f"{where}.RULES holds {rule!r}, which is not a Rule")
        if not rule.name or not rule.bodies or not rule.requires.strip():
            raise DocsError(f"{where}: rule {rule.name!r} lacks a name, bodies or what it "
                            "requires")
        code = status_for(rule.refuse("x"))
        rows.append(RuleRow(rule.name, tuple(rule.bodies), code.name,
                            " ".join(rule.requires.split())))
    return tuple(rows)


def responsibility_rules() -> dict[str, tuple[RuleRow, ...]]:
    """Layer -> its rules, read from the tables in ``RULE_LAYERS``; a missing table, a
    name used twice or a body the Message oneof does not have is an error."""
    layers: dict[str, tuple[RuleRow, ...]] = {}
    for layer, module_name in RULE_LAYERS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise DocsError(f"cannot read the {layer} rules: {e}") from None
        table = getattr(module, "RULES", None)
        if table is None:
            raise DocsError(f"{module_name} has no RULES table")
        layers[layer] = rule_rows(table, where=module_name)
    seen: dict[str, str] = {}
    for layer, rows in layers.items():
        for row in rows:
            if row.name in seen:
                raise DocsError(f"rule {row.name!r} is in the {seen[row.name]} and the "
                                f"{layer} tables")
            seen[row.name] = layer
    return layers


def wire_files() -> list[FileDescriptor]:
    """The descriptors of every generated module in exchange/wire/bcx/v1."""
    names = sorted(m.name for m in pkgutil.iter_modules(wire.__path__)
                   if m.name.endswith("_pb2"))
    return [importlib.import_module(f"{wire.__name__}.{name}").DESCRIPTOR for name in names]


def gather() -> Facts:
    messages: dict[str, Descriptor] = {}
    enums: dict[str, EnumDescriptor] = {}
    for f in wire_files():
        _walk(f.message_types_by_name.values(), messages, enums)
        for e in f.enum_types_by_name.values():
            enums[e.full_name] = e
    table = getattr(identity, "ALLOWED", None)
    if table is None:
        raise DocsError("exchange.identity has no ALLOWED role table")
    message = messages[MESSAGE]
    oneof = message.oneofs_by_name.get(BODY_ONEOF)
    if oneof is None:
        raise DocsError(f"{MESSAGE} has no oneof {BODY_ONEOF!r}")
    roles = tuple(_role(r) for r in identity.Role)
    return Facts(messages=messages, enums=enums, comments=proto_comments(),
                 allowed=allowed_triples(table), handled=handled_kinds(), roles=roles,
                 bodies=tuple(oneof.fields), rules=responsibility_rules())


# --- rendering ------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    text = text.strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def headings(text: str) -> list[str]:
    """The ATX headings of a Markdown text, outside fenced code."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            out.append(m.group(1))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


class Renderer:
    def __init__(self, facts: Facts, anchors: set[str]) -> None:
        self.facts = facts
        self.anchors = anchors  # the headings' slugs of the document being written

    def _type_ref(self, full_name: str) -> str:
        short = full_name.rsplit(".", 1)[-1]
        if full_name.startswith("bcx.") and slug(short) in self.anchors:
            return f"[`{short}`](#{slug(short)})"
        return f"`{full_name}`"

    def _field_type(self, f: FieldDescriptor) -> str:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name[
                "value"]
            return f"map<{self._field_type(key)}, {self._field_type(value)}>"
        if f.message_type is not None:
            return self._type_ref(f.message_type.full_name)
        if f.enum_type is not None:
            return self._type_ref(f.enum_type.full_name)
        return f"`{_TYPE_NAMES[f.type]}`"

    def _message(self, name: str) -> Descriptor:
        m = self.facts.messages.get(name)
        if m is None:
            raise DocsError(f"no protobuf message {name!r} in exchange/wire")
        return m

    def fields(self, name: str) -> str:
        m = self._message(name)
        rows = ["| # | field | type | notes |", "|---|---|---|---|"]
        for f in sorted(m.fields, key=lambda f: f.number):
            notes = []
            if f.containing_oneof is not None:
                notes.append(f"one of `{f.containing_oneof.name}`")
            comment = self.facts.comments.get(f.full_name, "")
            if comment:
                notes.append(comment)
            repeated = "repeated " if _is_repeated(f) else ""
            rows.append(f"| {f.number} | `{f.name}` | {repeated}{self._field_type(f)} | "
                        f"{_cell('; '.join(notes))} |")
        comment = self.facts.comments.get(name, "")
        head = f"`{name}`" + (f": {comment}" if comment else "")
        return head + "\n\n" + "\n".join(rows) + "\n"

    def enum(self, name: str) -> str:
        e = self.facts.enums.get(name)
        if e is None:
            raise DocsError(f"no protobuf enum {name!r} in exchange/wire")
        scope = name.rsplit(".", 1)[0]
        rows = ["| value | name | notes |", "|---|---|---|"]
        for v in e.values:
            comment = self.facts.comments.get(f"{scope}.{v.name}", "")
            rows.append(f"| {v.number} | `{v.name}` | {_cell(comment)} |")
        comment = self.facts.comments.get(name, "")
        head = f"`{name}`" + (f": {comment}" if comment else "")
        return head + "\n\n" + "\n".join(rows) + "\n"

    def _routes(self, kind: str) -> list[tuple[str, list[str]]]:
        by_sender: dict[str, list[str]] = {}
        for sender, body, recipient in self.facts.allowed:
            if body == kind:
                by_sender.setdefault(sender, []).append(recipient)
        order = {r: i for i, r in enumerate(self.facts.roles)}
        return [(s, sorted(rs, key=lambda r: order.get(r, len(order))))
                for s, rs in sorted(by_sender.items(),
                                    key=lambda item: order.get(item[0], len(order)))]

    def _recipient(self, recipient: str, kind: str) -> str:
        if not self.facts.handled:
            return recipient
        handled = kind in self.facts.handled.get(recipient, frozenset())
        return recipient if handled else f"{recipient} (no handler)"

    def route(self, kind: str) -> str:
        self._body(kind)
        routes = self._routes(kind)
        if not routes:
            return "No role may send it (the role table has no entry for it).\n"
        lines = [f"- {sender} → " + ", ".join(self._recipient(r, kind) for r in recipients)
                 for sender, recipients in routes]
        return "\n".join(lines) + "\n"

    def _body(self, kind: str) -> FieldDescriptor:
        for f in self.facts.bodies:
            if f.name == kind:
                return f
        raise DocsError(f"{MESSAGE} has no body {kind!r}")

    def bodies(self) -> str:
        rows = ["| # | body (kind) | type | sent by → to |", "|---|---|---|---|"]
        for f in self.facts.bodies:
            routes = "; ".join(f"{s} → {', '.join(rs)}" for s, rs in self._routes(f.name))
            rows.append(f"| {f.number} | `{f.name}` | {self._type_ref(f.message_type.full_name)}"
                        f" | {routes or 'nobody'} |")
        return "\n".join(rows) + "\n"

    def roles(self) -> str:
        rows = ["| body | sender | may send it to | handled by the recipient |",
                "|---|---|---|---|"]
        for f in self.facts.bodies:
            for sender, recipients in self._routes(f.name):
                marks = [(r, f.name in self.facts.handled.get(r, frozenset()))
                         for r in recipients]
                if not self.facts.handled:
                    handled = "?"
                elif all(ok for _, ok in marks):
                    handled = "yes"
                else:
                    handled = ", ".join(f"{r}: yes" if ok else f"{r}: **no** (logged only)"
                                        for r, ok in marks)
                rows.append(f"| `{f.name}` | {sender} | {', '.join(recipients)} | {handled} |")
        known = {f.name for f in self.facts.bodies}
        unknown = sorted({body for _, body, _ in self.facts.allowed} - known)
        if unknown:
            raise DocsError(f"the role table names bodies {MESSAGE} does not have: "
                            f"{', '.join(unknown)}")
        return "\n".join(rows) + "\n"

    def matrix(self) -> str:
        roles = self.facts.roles
        rows = ["| sender ↓ recipient → | " + " | ".join(roles) + " |",
                "|---|" + "---|" * len(roles)]
        for sender in roles:
            cells = []
            for recipient in roles:
                kinds = [f.name for f in self.facts.bodies
                         if (sender, f.name, recipient) in self.facts.allowed]
                cells.append(", ".join(f"`{k}`" for k in kinds) or "—")
            rows.append(f"| **{sender}** | " + " | ".join(cells) + " |")
        return "\n".join(rows) + "\n"

    def rules(self, layer: str) -> str:
        rows_of = self.facts.rules.get(layer)
        if rows_of is None:
            raise DocsError(f"no rules layer {layer!r} (known: {', '.join(self.facts.rules)})")
        known = {f.name for f in self.facts.bodies}
        rows = ["| rule | bodies | refused with | requires |", "|---|---|---|---|"]
        for r in rows_of:
            unknown = [b for b in r.bodies if b not in known]
            if unknown:
                raise DocsError(f"rule {r.name} governs bodies {MESSAGE} does not have: "
                                f"{', '.join(unknown)}")
            bodies = ", ".join(f"`{b}`" for b in r.bodies)
            rows.append(f"| `{r.name}` | {bodies} | `{r.status}` | {_cell(r.requires)} |")
        return "\n".join(rows) + "\n"

    def render(self, spec: str) -> str:
        directive, *args = spec.split()
        table: dict[str, Callable[..., str]] = {
            "fields": self.fields, "enum": self.enum, "route": self.route,
            "bodies": self.bodies, "roles": self.roles, "matrix": self.matrix,
            "rules": self.rules,
        }
        fn = table.get(directive)
        if fn is None:
            raise DocsError(f"unknown directive {directive!r} (known: {', '.join(table)})")
        try:
            return fn(*args)
        except TypeError as e:
            raise DocsError(f"directive {spec!r}: {e}") from None


def _is_repeated(f: FieldDescriptor) -> bool:
    repeated = getattr(f, "is_repeated", None)
    if repeated is not None:
        return bool(repeated)
    return bool(f.label == FieldDescriptor.LABEL_REPEATED)


# --- the documents ----------------------------------------------------------------------


def regenerate(text: str, facts: Facts, path: Path) -> tuple[str, list[str]]:
    """``text`` with every generated block rewritten, and the block specs it holds."""
    renderer = Renderer(facts, {slug(h) for h in headings(text)})
    specs: list[str] = []

    def fill(m: re.Match[str]) -> str:
        spec = " ".join(m.group("spec").split())
        specs.append(spec)
        try:
            body = renderer.render(spec)
        except DocsError as e:
            raise DocsError(f"{path.relative_to(ROOT)}: {e}") from None
        return f"{m.group('begin')}{body}{m.group('end')}"

    out = BLOCK.sub(fill, text)
    if out.count("<!-- BEGIN GENERATED") != out.count("<!-- END GENERATED -->"):
        raise DocsError(f"{path.relative_to(ROOT)}: a BEGIN GENERATED marker has no END")
    return out, specs


def missing_from_catalogue(facts: Facts, specs: Iterable[str]) -> list[str]:
    """Blocks docs/messages.md must hold: every body's route and every message.proto type."""
    have = set(specs)
    need = [f"route {f.name}" for f in facts.bodies]
    for m in message_pb2.DESCRIPTOR.message_types_by_name.values():
        need.append(f"fields {m.full_name}")
    for e in message_pb2.DESCRIPTOR.enum_types_by_name.values():
        need.append(f"enum {e.full_name}")
    return [spec for spec in need if spec not in have]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    try:
        facts = gather()
        stale, written = [], []
        catalogue_specs: list[str] = []
        for path in sorted(DOCS.glob("*.md")):
            text = path.read_text(encoding="utf-8")
            new, specs = regenerate(text, facts, path)
            if path == CATALOGUE:
                catalogue_specs = specs
            if new != text:
                stale.append(str(path.relative_to(ROOT)))
                if not check:
                    path.write_text(new, encoding="utf-8")
                    written.append(str(path.relative_to(ROOT)))
        missing = missing_from_catalogue(facts, catalogue_specs)
    except DocsError as e:
        print(f"gen_docs: {e}", file=sys.stderr)
        return 1
    if missing:
        print(f"gen_docs: {CATALOGUE.relative_to(ROOT)} lacks generated blocks for:",
              *missing, sep="\n  ", file=sys.stderr)
        return 1
    if check:
        if stale:
            print("generated docs are stale; run `make docs`:", *stale, sep="\n  ")
            return 1
        print("generated docs are up to date")
        return 0
    print(f"regenerated {', '.join(written)}" if written else "docs were up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
