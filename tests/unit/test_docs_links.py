"""The README and docs/ hold together: every relative link points to a file of the repository
and, for a Markdown target with a #fragment, to a heading it has; every document is in the
index; the generated parts are current (scripts/gen_docs.py, `make docs`)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


# --- reading Markdown -------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
# [text](target "title") and ![alt](target); text may hold one level of brackets.
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)
_HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose(text: str) -> str:
    """The text with code blocks and HTML comments blanked (links in them are not links)."""
    return _COMMENT.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    prose = _CODE_SPAN.sub(lambda m: "`" if "](" in m.group(0) else m.group(0), _prose(text))
    return _INLINE.findall(prose) + _REFERENCE.findall(prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: inline markup dropped, lower case, punctuation
    removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown text offers: headings (repeats get -1, -2, …) and <a id>."""
    seen: dict[str, int] = {}
    out = set(_HTML_ANCHOR.findall(text))
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(document: Path, root: Path) -> list[str]:
    """What is wrong with each relative link of ``document``, one line each."""
    problems = []
    text = document.read_text(encoding="utf-8")
    for target in links(text):
        if not target or _SCHEME.match(target) or target.startswith("//"):
            continue
        path_part, _, fragment = target.partition("#")
        where = f"{document.relative_to(root)}: link {target!r}"
        resolved = (document.parent / path_part).resolve() if path_part else document
        if resolved != root and root not in resolved.parents:
            problems.append(f"{where} leaves the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}: {resolved.relative_to(root)} does not exist")
            continue
        if fragment and resolved.suffix == ".md":
            if fragment not in anchors(resolved.read_text(encoding="utf-8")):
                problems.append(f"{where}: {resolved.relative_to(root)} has no heading "
                                f"#{fragment}")
    return problems


# --- the repository's documents --------------------------------------------------------


def test_every_relative_link_in_readme_and_docs_resolves() -> None:
    problems = [p for doc in documents() for p in broken_links(doc, ROOT)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_docs_exist_and_the_readme_links_their_index() -> None:
    for name in ("README.md", "architecture.md", "formats.md", "messages.md",
                 "who-may-send-what.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"
    assert "docs/README.md" in links((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_docs_index_links_every_document() -> None:
    listed = {Path(t.partition("#")[0]).name
              for t in links((DOCS / "README.md").read_text(encoding="utf-8"))}
    missing = [p.name for p in DOCS.glob("*.md") if p.name != "README.md" and p.name
               not in listed]
    assert not missing, f"docs/README.md does not link {', '.join(missing)}"


_CITED = re.compile(r"\bdocs/([\w-]+\.md)(?:#([\w-]+))?")


def test_every_docs_section_cited_in_the_code_exists() -> None:
    """Comments cite docs/<file>.md#<heading> for what a module implements: each exists."""
    problems = []
    for path in [*sorted((ROOT / "exchange").rglob("*.py")), *sorted((ROOT / "nodes").rglob(
            "*.py")), *sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "proto").rglob(
            "*.proto")), *sorted((ROOT / "scripts").glob("*.py"))]:
        if path == Path(__file__).resolve():
            continue  # this file's checker tests name made-up documents
        for name, fragment in _CITED.findall(path.read_text(encoding="utf-8")):
            target = DOCS / name
            where = f"{path.relative_to(ROOT)}: docs/{name}"
            if not target.is_file():
                problems.append(f"{where} does not exist")
            elif fragment and fragment not in anchors(target.read_text(encoding="utf-8")):
                problems.append(f"{where} has no heading #{fragment}")
    assert not problems, "\n".join(problems)


# --- the checker itself ------------------------------------------------------------------


def test_checker_names_a_missing_file_a_missing_heading_and_a_link_outside(
        tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# B title\n\n## Same\n\n## Same\n")
    doc = tmp_path / "docs" / "a.md"
    doc.write_text(
        "# A\n\n"
        "[ok](b.md#b-title) [ok twice](b.md#same-1) [self](#a) [web](https://example.org/x)\n"
        "[gone](c.md) [no heading](b.md#nowhere) [outside](../../elsewhere/x.md)\n"
        "`[code](not-a-link.md)`\n\n```\n[fenced](not-a-link.md)\n```\n"
        "<!-- [comment](not-a-link.md) -->\n"
        "[ref]: b.md#missing-ref\n")
    problems = broken_links(doc, tmp_path)
    assert problems == [
        "docs/a.md: link 'c.md': docs/c.md does not exist",
        "docs/a.md: link 'b.md#nowhere': docs/b.md has no heading #nowhere",
        "docs/a.md: link '../../elsewhere/x.md' leaves the repository",
        "docs/a.md: link 'b.md#missing-ref': docs/b.md has no heading #missing-ref",
    ]


@pytest.mark.parametrize(("heading", "anchor"), [
    ("Envelopes (DSSE v1)", "envelopes-dsse-v1"),
    ("`NumberReport` fields", "numberreport-fields"),
    ("Differences from the original design", "differences-from-the-original-design"),
    ("An agency's behaviour", "an-agencys-behaviour"),
    ("What the handlers check", "what-the-handlers-check"),
    ("One black-card number, from report to feedback", "one-black-card-number-from-report-to-feedback"),
])
def test_slug_is_githubs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


# --- the code the docs name --------------------------------------------------------------

# `exchange/inbox.py` `Inbox.receive` → `Inbox.accept`, `check`: a Python file of the
# repository, then the names defined in it, joined by spaces, commas or arrows.
_FILE = r"`((?:exchange|nodes|tests|scripts|bench|migrations)/[\w/]+\.py)`"
_NAMED = re.compile(_FILE + r"((?:(?:\s|,|→)*`[A-Za-z_][\w.]*`)+)")
_SOURCE_FILE = re.compile(_FILE)


def defined_names(source: str) -> set[str]:
    """What a module defines at its top level (functions, classes, assigned names), and
    each class's methods and attributes, as ``Class.name`` and as ``name`` alone."""
    import ast

    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    names |= {member.name, f"{node.name}.{member.name}"}
                elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                    names |= {member.target.id, f"{node.name}.{member.target.id}"}
    return names


def missing_code(document: Path, root: Path) -> list[str]:
    """Each Python file of the repository that ``document`` names in backticks and that
    does not exist, and each name it puts after such a file that the file does not
    define."""
    text = _COMMENT.sub("", document.read_text(encoding="utf-8"))
    where = document.relative_to(root)
    problems = [f"{where}: {path} does not exist"
                for path in dict.fromkeys(_SOURCE_FILE.findall(text))
                if not (root / path).is_file()]
    defined: dict[str, set[str]] = {}
    for path, names in _NAMED.findall(text):
        if not (root / path).is_file():
            continue
        if path not in defined:
            defined[path] = defined_names((root / path).read_text(encoding="utf-8"))
        problems += [f"{where}: {path} defines no {name}"
                     for name in re.findall(r"`([\w.]+)`", names) if name not in defined[path]]
    return list(dict.fromkeys(problems))


def layout_entries(text: str) -> list[str]:
    """The paths the tree of architecture.md#layout names: two spaces of indentation per
    level, a folder ending in /, a description after the name (or a continued one far
    to the right)."""
    block = re.search(r"^## Layout\n\n```\n(.*?)^```", text, re.M | re.S)
    assert block is not None, "docs/architecture.md has no tree under ## Layout"
    folders: list[str] = []
    out = []
    for line in block.group(1).splitlines():
        m = re.match(r"( *)(\S+)", line)
        if m is None or len(m.group(1)) >= 20:
            continue
        depth = len(m.group(1)) // 2
        del folders[depth:]
        out.append("".join(folders) + m.group(2))
        if m.group(2).endswith("/"):
            folders.append(m.group(2))
    return out


def test_every_file_and_function_the_docs_name_exists() -> None:
    problems = [p for doc in documents() for p in missing_code(doc, ROOT)]
    assert not problems, "\n".join(problems)


def test_the_path_of_a_number_names_code_at_every_hop() -> None:
    text = (DOCS / "path-of-a-number.md").read_text(encoding="utf-8")
    named = {path for path, _ in _NAMED.findall(text)}
    for path in ("nodes/cli/report.py", "exchange/transport/admin.py", "nodes/registry.py",
                 "exchange/sender.py", "exchange/transport/outbox.py", "exchange/inbox.py",
                 "exchange/receive.py", "nodes/rules.py", "nodes/bureau/handlers.py",
                 "nodes/bureau/decisions.py", "nodes/carrier/handlers.py",
                 "nodes/police/handlers.py"):
        assert path in named, f"docs/path-of-a-number.md names no function of {path}"


def test_the_layout_tree_is_the_repository() -> None:
    """Every path the tree names exists, and every module of exchange/ and nodes/ is in it
    (generated code and __init__.py aside)."""
    listed = layout_entries((DOCS / "architecture.md").read_text(encoding="utf-8"))
    gone = [p for p in listed if not (ROOT / p).exists()]
    assert not gone, f"docs/architecture.md#layout names what does not exist: {gone}"
    modules = {str(p.relative_to(ROOT)) for top in ("exchange", "nodes")
               for p in (ROOT / top).rglob("*.py")
               if "wire" not in p.parts and p.name != "__init__.py"}
    left_out = sorted(modules - set(listed))
    assert not left_out, f"docs/architecture.md#layout leaves out {left_out}"


def test_code_checker_names_a_missing_file_and_a_missing_name(tmp_path: Path) -> None:
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "m.py").write_text(
        "X = 1\ndef f():\n    pass\nclass C:\n    y: int\n    def g(self):\n        pass\n")
    doc = tmp_path / "a.md"
    doc.write_text("`nodes/m.py` `f` → `C.g`, `g` `X` `C.y`; `nodes/m.py` `h`\n"
                   "`nodes/gone.py` `f`, and `nodes/m.py` (`C.z` is not after it)\n"
                   "<!-- `nodes/hidden.py` -->\n")
    assert missing_code(doc, tmp_path) == ["a.md: nodes/gone.py does not exist",
                                           "a.md: nodes/m.py defines no h"]


def test_layout_entries_follow_the_indentation() -> None:
    text = ("## Layout\n\n```\nexchange/               the library\n"
            "  ledger/               the ledger\n    store.py            the store,\n"
            "                        and more\n  inbox.py              receiving\n"
            "nodes/                  agencies\n```\n")
    assert layout_entries(text) == ["exchange/", "exchange/ledger/",
                                    "exchange/ledger/store.py", "exchange/inbox.py", "nodes/"]


# --- the generated parts -------------------------------------------------------------------


def _gen_docs() -> ModuleType:
    """scripts/gen_docs.py as a module (scripts/ is not a package)."""
    if "gen_docs" in sys.modules:
        return sys.modules["gen_docs"]
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


def test_generated_blocks_are_current() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
                            capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generator_reads_the_role_table_in_any_of_its_shapes() -> None:
    gen = _gen_docs()
    from exchange.identity import Role
    want = {("police", "number_report", "bureau"), ("bureau", "circular", "police"),
            ("bureau", "circular", "carrier")}
    by_pair = {(Role.POLICE, "number_report"): frozenset({Role.BUREAU}),
               (Role.BUREAU, "circular"): (Role.POLICE, Role.CARRIER)}
    by_triple = {(Role.POLICE, "number_report", Role.BUREAU): True,
                 (Role.BUREAU, "circular", Role.POLICE): True,
                 (Role.BUREAU, "circular", Role.CARRIER): True,
                 (Role.BUREAU, "penalty", Role.POLICE): False}
    triples = {(Role.POLICE, "number_report", Role.BUREAU), ("bureau", "circular", "police"),
               ("bureau", "circular", "carrier")}
    for table in (by_pair, by_triple, triples):
        assert gen.allowed_triples(table) == want
    with pytest.raises(gen.DocsError, match="neither"):
        gen.allowed_triples({("police",): frozenset()})


def test_generator_refuses_a_role_table_naming_an_unknown_body_and_a_bad_directive() -> None:
    gen = _gen_docs()
    facts = gen.gather()
    bad = gen.Facts(**{**{f: getattr(facts, f) for f in facts.__dataclass_fields__},
                       "allowed": facts.allowed | {("police", "telegram", "bureau")}})
    renderer = gen.Renderer(bad, set())
    with pytest.raises(gen.DocsError, match="telegram"):
        renderer.render("roles")
    with pytest.raises(gen.DocsError, match="unknown directive 'tabel'"):
        renderer.render("tabel")
    with pytest.raises(gen.DocsError, match=r"no protobuf message 'bcx\.v1\.Nothing'"):
        renderer.render("fields bcx.v1.Nothing")


def test_generator_finds_a_stale_block_and_a_body_without_one(tmp_path: Path) -> None:
    gen = _gen_docs()
    facts = gen.gather()
    text = ("# T\n\n<!-- BEGIN GENERATED route penalty -->\nbureau → police\n"
            "<!-- END GENERATED -->\n")
    new, specs = gen.regenerate(text, facts, gen.ROOT / "docs" / "t.md")
    assert specs == ["route penalty"]
    assert "- bureau → carrier\n<!-- END GENERATED -->" in new
    assert "route number_report" in gen.missing_from_catalogue(facts, specs)


# --- the responsibility rules ------------------------------------------------------------

# The status each kind of refusal is answered with (docs/who-may-send-what.md).
_STATUS = {"NOT_RESPONSIBLE": "PERMISSION_DENIED", "STATE": "FAILED_PRECONDITION",
           "INVALID": "INVALID_ARGUMENT"}
# A rule's name as quoted in code and docs: "rule own-notice", "rules `a`, `b` and `c`".
_NAME = r"`?[a-z]+(?:-[a-z]+)+`?"
_QUOTED = re.compile(rf"\brules?:?\s+((?:{_NAME}(?:,\s*|\s+and\s+|\s+)?)+)")


def _tables() -> dict[str, tuple]:
    import exchange.responsibility
    import nodes.rules
    return {"directory": exchange.responsibility.RULES, "state": nodes.rules.RULES}


def _documented(layer: str) -> dict[str, tuple[str, str, str]]:
    """name -> (bodies, status, requires) as the generated block of ``layer`` shows it."""
    text = (DOCS / "who-may-send-what.md").read_text(encoding="utf-8")
    block = re.search(rf"<!-- BEGIN GENERATED rules {layer} -->\n(.*?)<!-- END GENERATED -->",
                      text, re.S)
    assert block is not None, f"docs/who-may-send-what.md has no block 'rules {layer}'"
    rows = {}
    for line in block.group(1).splitlines()[2:]:
        name, bodies, status, requires = (c.strip() for c in line.strip("|").split(" | "))
        rows[name.strip("`")] = (bodies, status.strip("`"), requires)
    return rows


def test_generator_reads_both_real_rule_tables() -> None:
    gen = _gen_docs()
    facts = gen.gather()
    assert set(facts.rules) == {"directory", "state"}
    for layer, table in _tables().items():
        assert [(r.name, r.bodies, r.status) for r in facts.rules[layer]] == [
            (r.name, r.bodies, _STATUS[r.refusal.name]) for r in table]


def test_every_rule_of_both_tables_is_in_the_generated_docs() -> None:
    for layer, table in _tables().items():
        shown = _documented(layer)
        assert list(shown) == [r.name for r in table], layer
        for r in table:
            bodies, status, requires = shown[r.name]
            assert bodies == ", ".join(f"`{b}`" for b in r.bodies), r.name
            assert status == _STATUS[r.refusal.name], r.name
            assert requires == " ".join(r.requires.split()).replace("|", "\\|"), r.name


def test_the_state_checks_table_is_the_codes() -> None:
    """The hand-written table of which state rules each (receiver, body) runs lists every
    pair of nodes.rules.CHECKS, and only rules that govern that body."""
    from nodes.rules import CHECKS
    governs = {r.name: r.bodies for r in _tables()["state"]}
    text = (DOCS / "who-may-send-what.md").read_text(encoding="utf-8")
    head = "| receiver | body | state rules checked |"
    assert head in text
    pairs, problems = set(), []
    for line in text[text.index(head):].splitlines()[2:]:
        if not line.startswith("|"):
            break
        receivers, body, checked = (c.strip() for c in line.strip("|").split(" | "))
        kind = body.strip("`")
        for role in receivers.split(", "):
            pairs.add((role, kind))
        problems += [f"{kind}: rule {n} does not govern it"
                     for n in re.findall(r"`([a-z]+(?:-[a-z]+)+)`", checked)
                     if kind not in governs.get(n, ())]
    assert pairs == {(role.value, kind) for role, kind in CHECKS}
    assert not problems, "\n".join(problems)


def _sources() -> list[Path]:
    here = Path(__file__).resolve()
    files = [*sorted((ROOT / "exchange").rglob("*.py")), *sorted((ROOT / "nodes").rglob("*.py")),
             *sorted((ROOT / "tests").rglob("*.py")), *documents()]
    return [f for f in files if f != here and "wire" not in f.parts]


def quoted_rule_names(text: str) -> set[str]:
    """Every rule name ``text`` quotes: refusal texts, comments, docs."""
    return {name.strip("`") for m in _QUOTED.finditer(text)
            for name in re.findall(_NAME, m.group(1))}


def test_quoted_rule_names_are_found() -> None:
    text = ("raise X('rule own-notice: …')  # rules withdrawn-report, forwarding-bureau\n"
            "refused (rules `own-report`, `report-bureau` and `outcome-transition`); "
            "a rule of thumb; (rule `served-numbers`: …)")
    assert quoted_rule_names(text) == {"own-notice", "withdrawn-report", "forwarding-bureau",
                                       "own-report", "report-bureau", "outcome-transition",
                                       "served-numbers"}


def test_every_rule_named_in_the_code_and_docs_is_in_a_table() -> None:
    import ast

    from exchange.responsibility import Rule
    tables = _tables()
    names = {r.name for table in tables.values() for r in table}
    in_tables = {id(r) for table in tables.values() for r in table}
    import exchange.responsibility
    import nodes.rules
    bound = {var for module in (exchange.responsibility, nodes.rules)
             for var, value in vars(module).items()
             if isinstance(value, Rule) and id(value) in in_tables}
    problems = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        problems += [f"{where}: quotes rule {n!r}, in no table"
                     for n in sorted(quoted_rule_names(text) - names)]
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id == "Rule" and node.args and isinstance(
                    node.args[0], ast.Constant) and node.args[0].value not in names:
                problems.append(f"{where}:{node.lineno}: Rule {node.args[0].value!r} is in "
                                "no table")
            if isinstance(fn, ast.Attribute) and fn.attr == "refuse" and isinstance(
                    fn.value, ast.Name) and fn.value.id.isupper() and fn.value.id not in bound:
                problems.append(f"{where}:{node.lineno}: {fn.value.id}.refuse is no rule of "
                                "a table")
    assert not problems, "\n".join(problems)


def test_generator_refuses_a_bad_rule_table(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _gen_docs()
    from exchange.responsibility import Refusal, Rule
    ok = Rule("made-up", ("penalty",), Refusal.STATE, "a made-up rule")
    assert gen.rule_rows((ok,), where="t") == (
        gen.RuleRow("made-up", ("penalty",), "FAILED_PRECONDITION", "a made-up rule"),)
    with pytest.raises(gen.DocsError, match="not a Rule"):
        gen.rule_rows((ok, "own-party"), where="t")
    with pytest.raises(gen.DocsError, match="not a tuple"):
        gen.rule_rows({"made-up": ok}, where="t")
    with pytest.raises(gen.DocsError, match="lacks"):
        gen.rule_rows((Rule("made-up", ("penalty",), Refusal.STATE, " "),), where="t")

    facts = gen.gather()
    renderer = gen.Renderer(gen.Facts(**{
        **{f: getattr(facts, f) for f in facts.__dataclass_fields__},
        "rules": {**facts.rules, "state": (gen.RuleRow("made-up", ("telegram",),
                                                       "PERMISSION_DENIED", "x"),)}}), set())
    with pytest.raises(gen.DocsError, match=r"rule made-up governs bodies .* telegram"):
        renderer.render("rules state")
    with pytest.raises(gen.DocsError, match="no rules layer 'handlers'"):
        renderer.render("rules handlers")
    with pytest.raises(gen.DocsError, match="directive 'rules'"):
        renderer.render("rules")

    for layers, message in (
            ({"directory": "exchange.responsibility", "again": "exchange.responsibility"},
             "'province-bureau' is in the directory and the again tables"),
            ({"directory": "exchange.no_such_rules"}, "cannot read the directory rules"),
            ({"directory": "exchange.errors"}, "exchange.errors has no RULES table")):
        monkeypatch.setattr(gen, "RULE_LAYERS", layers)
        with pytest.raises(gen.DocsError, match=message):
            gen.responsibility_rules()


def test_a_rule_added_to_the_code_makes_the_docs_stale() -> None:
    gen = _gen_docs()
    facts = gen.gather()
    path = DOCS / "who-may-send-what.md"
    text = path.read_text(encoding="utf-8")
    assert gen.regenerate(text, facts, path)[0] == text
    more = gen.Facts(**{**{f: getattr(facts, f) for f in facts.__dataclass_fields__},
                        "rules": {**facts.rules, "state": (*facts.rules["state"], gen.RuleRow(
                            "made-up", ("penalty",), "FAILED_PRECONDITION", "a made-up rule"))}})
    new, specs = gen.regenerate(text, more, path)
    assert {"rules directory", "rules state"} <= set(specs)
    assert "| `made-up` | `penalty` | `FAILED_PRECONDITION` | a made-up rule |\n" in new
    assert new != text
