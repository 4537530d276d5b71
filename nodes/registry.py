"""The operator commands a running node accepts, as one table of typed commands.

Each command is a frozen dataclass of its arguments: every field carries its type, its
help text and how it appears on `bcx`'s command line (:class:`Cli`), so a name, a type and
a help text exist once. The class names the roles that may run it and the typed result it
returns; :func:`run` executes it on the node (a role's command as one unit of work in the
node's ledger transaction). Three callers share it: `bcx` builds its options from the
fields (``nodes/cli/node_commands.py``), the Admin service decodes the JSON it receives
with :func:`decode` and runs the command (:func:`operations`), and a web console calls
:func:`run` the same way.

One module rather than a package: the table is read top to bottom, and the decoding
it needs (four JSON types) is too small to live apart from it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from typing import Any, ClassVar, Protocol, TypedDict, TypeVar, cast

from exchange.errors import DirectoryError, OperationError
from exchange.identity import Role, SignedDirectory
from exchange.messages import CaseQuestion, Category
from exchange.node import Context
from exchange.runtime import RunningNode
from exchange.transport import outbox as outbox_queue
from exchange.transport.services import Operation
from nodes.bureau import commands as bureau_commands
from nodes.carrier import commands as carrier_commands
from nodes.carrier.subscribers import CONCENTRATION_THRESHOLD
from nodes.commerce import commands as commerce_commands
from nodes.police import commands as police_commands
from nodes.shared.arguments import message_id_arg

ALL_ROLES = frozenset(Role)


# --- Arguments --------------------------------------------------------------------------


class _FieldDefault:
    """The command line's default is the field's (a sentinel: a default may be None)."""

    def __repr__(self) -> str:
        return "FIELD_DEFAULT"


FIELD_DEFAULT = _FieldDefault()


@dataclass(frozen=True, slots=True)
class Cli:
    """How an argument appears on `bcx`'s command line; its name, type and help are the
    field's. ``flag``: the option (default ``--`` and the name with dashes);
    ``positional``: an argument, optional when the field has a default; ``low`` and
    ``high``: the bounds a number given there must keep; ``required``: whether the
    command line must give it (default: when the field has no default); ``default``:
    the command line's default
    when it differs from the field's; ``negation``: the flag and help of a bool's opposite,
    the two being one required choice; ``hidden``: not on the command line at all."""

    flag: str = ""
    positional: bool = False
    metavar: str | None = None
    choices: Sequence[str] = ()
    low: int | None = None
    high: int | None = None
    required: bool | None = None
    default: object = FIELD_DEFAULT
    negation: tuple[str, str] | None = None
    hidden: bool = False


def argument(help_text: str, *, default: Any = MISSING, cli: Cli | None = None) -> Any:
    """A command's argument: a dataclass field with its help and command-line form."""
    metadata = {"help": help_text, "cli": cli or Cli()}
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


# JSON types an argument may have, as error messages name them.
TYPE_NAMES: dict[object, str] = {
    str: "str", int: "int", bool: "bool", tuple[str, ...]: "Sequence[str]",
}


@dataclass(frozen=True, slots=True)
class Argument:
    """One field of a command, as the decoder and the command line see it."""

    name: str
    type: object
    help: str
    cli: Cli
    default: Any

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.type]


def arguments_of(command: type[Command]) -> tuple[Argument, ...]:
    """The arguments of ``command`` in field order, types resolved (once per command)."""
    known = _ARGUMENTS.get(command)
    if known is None:
        known = _ARGUMENTS[command] = _read_arguments(command)
    return known


_ARGUMENTS: dict[type[Command], tuple[Argument, ...]] = {}


def _read_arguments(command: type[Command]) -> tuple[Argument, ...]:
    hints = typing.get_type_hints(command)
    out = []
    for f in dataclasses.fields(command):  # type: ignore[arg-type]
        kind = hints[f.name]
        if kind not in TYPE_NAMES:
            raise TypeError(f"{command.__name__}.{f.name}: {kind} is no JSON argument type")
        out.append(Argument(name=f.name, type=kind, help=f.metadata["help"],
                            cli=f.metadata["cli"], default=f.default))
    return tuple(out)


def check_value(command: str, argument: Argument, value: object) -> object:
    """``value`` as ``argument`` holds it (a JSON list as a tuple), or a clear error."""
    kind = argument.type
    if kind == tuple[str, ...]:
        wrong = not isinstance(value, list) or not all(isinstance(v, str) for v in value)
    elif kind is int:
        wrong = not isinstance(value, int) or isinstance(value, bool)
    else:
        wrong = not isinstance(value, cast("type", kind))
    if wrong:
        raise OperationError(f"{command}: argument {argument.name} must be "
                             f"{argument.type_name}, got {type(value).__name__}")
    return tuple(cast("list[str]", value)) if kind == tuple[str, ...] else value


C = TypeVar("C", bound="Command")


def decode(command: type[C], arguments: Mapping[str, object]) -> C:
    """The command ``arguments`` (decoded JSON) describe; refused, naming the argument,
    when one is unknown, missing or of the wrong type."""
    known = arguments_of(command)
    names = [a.name for a in known]
    if not known and arguments:
        raise OperationError(f"{command.name} takes no arguments, got "
                             f"{', '.join(sorted(arguments))}")
    missing = [a.name for a in known if a.required and a.name not in arguments]
    unknown = [k for k in arguments if k not in names]
    if missing or unknown:
        problem = (f"missing a required argument: {missing[0]!r}" if missing else
                   f"got an unexpected keyword argument {unknown[0]!r}")
        raise OperationError(f"{command.name}: {problem} (arguments: {', '.join(names)})")
    values = {a.name: check_value(command.name, a, arguments[a.name])
              for a in known if a.name in arguments}
    return command(**values)


def encode(command: Command) -> dict[str, object]:
    """``command``'s arguments as JSON values (what :func:`decode` reads back)."""
    return {a.name: list(v) if isinstance(v := getattr(command, a.name), tuple) else v
            for a in arguments_of(type(command))}


# --- Commands ---------------------------------------------------------------------------


class Ticker(Protocol):
    """The deadline scheduler (nodes.agency.Scheduler), as `bcx tick` runs it."""

    def tick(self, ctx: Context) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class OperatedNode:
    """The running node commands run on, with its deadline scheduler."""

    running: RunningNode
    ticker: Ticker


class Command:
    """An operator command; its arguments are the dataclass fields of a subclass."""

    __slots__ = ()
    name: ClassVar[str]
    summary: ClassVar[str]
    roles: ClassVar[frozenset[Role]]

    async def execute(self, node: OperatedNode) -> Mapping[str, object]:
        raise NotImplementedError


class InTransaction(Command):
    """A command that is one unit of work in the node's ledger transaction."""

    __slots__ = ()

    def apply(self, ctx: Context) -> Mapping[str, object]:
        raise NotImplementedError

    async def execute(self, node: OperatedNode) -> Mapping[str, object]:
        return cast("Mapping[str, object]", await node.running.node.run_work(self.apply))


MESSAGE_ID = "32 hex digits or a unique prefix of 8+"


class ReportResult(TypedDict):
    bureau: str
    numbers: int
    report: str
    reports: list[str]
    parts: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Report(InTransaction):
    name: ClassVar[str] = "report"
    summary: ClassVar[str] = "police/commerce: report numbers to the bureau, as one report"
    roles: ClassVar[frozenset[Role]] = frozenset({Role.POLICE, Role.COMMERCE})

    numbers_found: tuple[str, ...] = argument(
        "the numbers as found (+86 159 5900 0001, 0086…), at most 50,000 a call",
        cli=Cli(hidden=True))
    category: str = argument(
        "what the numbers were used for (needed to send)",
        cli=Cli(choices=tuple(c.value for c in Category), required=False))
    case_number: str = argument("the case the numbers belong to (needed to send)",
                                cli=Cli(required=False))
    evidence: str = argument("evidence summary, free text without personal data",
                             default="")
    confidence: int = argument("how sure the finding is, 0-100 (default 80)", default=80,
                               cli=Cli(low=0, high=100))
    bureau: str = argument("the bureau to report to (default: the province's, by the "
                           "numbers' routing)", default="", cli=Cli(hidden=True))
    discovered_at: str = argument("when the numbers were found, ISO 8601 (default now)",
                                  default="", cli=Cli(hidden=True))
    report_id: str = argument(
        "add the numbers to an earlier report of this node (same case and category; "
        "numbers it holds already are skipped)", default="",
        cli=Cli(flag="--add-to", metavar="REPORT_ID"))

    def apply(self, ctx: Context) -> ReportResult:
        return cast("ReportResult", police_commands.report(
            ctx, numbers_found=self.numbers_found, category=self.category,
            case_number=self.case_number, evidence=self.evidence,
            confidence=self.confidence, bureau=self.bureau,
            discovered_at=self.discovered_at, report_id=self.report_id))


class WithdrawResult(TypedDict):
    withdrawal_id: str
    bureau: str
    numbers: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdraw(InTransaction):
    name: ClassVar[str] = "withdraw"
    summary: ClassVar[str] = ("police/commerce: retract a report, every number and part "
                              "of it")
    roles: ClassVar[frozenset[Role]] = frozenset({Role.POLICE, Role.COMMERCE})

    report_id: str = argument(f"the report's id: {MESSAGE_ID} (bcx reports)",
                              cli=Cli(flag="--report", metavar="REPORT_ID"))
    reason: str = argument("why, in a sentence: the bureau and carriers log it")

    def apply(self, ctx: Context) -> WithdrawResult:
        return cast("WithdrawResult", police_commands.withdraw(
            ctx, report_id=self.report_id, reason=self.reason))


class AskResult(TypedDict):
    request_id: str
    carrier: str
    deadline: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ask(InTransaction):
    name: ClassVar[str] = "ask"
    summary: ClassVar[str] = "police: ask a carrier for case cooperation"
    roles: ClassVar[frozenset[Role]] = frozenset({Role.POLICE})

    carrier: str = argument("node id of the carrier asked, e.g. cmcc.fj",
                            cli=Cli(metavar="ID"))
    case_number: str = argument("the police case number, e.g. FZ-2026-0412",
                                cli=Cli(metavar="TEXT"))
    authorization: str = argument("legal authorization reference for the request",
                                  cli=Cli(metavar="TEXT"))
    numbers_asked: tuple[str, ...] = argument(
        "a number asked about (+86…); repeat for more", cli=Cli(flag="--number",
                                                                  metavar="NUMBER"))
    questions: tuple[str, ...] = argument(
        "what is asked, repeatable: "
        + ", ".join(q.value for q in CaseQuestion) + " (default: all)",
        default=(), cli=Cli(flag="--question",
                            choices=tuple(q.value for q in CaseQuestion)))

    def apply(self, ctx: Context) -> AskResult:
        return cast("AskResult", police_commands.ask(
            ctx, carrier=self.carrier, case_number=self.case_number,
            authorization=self.authorization, numbers_asked=self.numbers_asked,
            questions=self.questions))


class ChannelResult(TypedDict):
    bureau: str
    reports: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel(InTransaction):
    name: ClassVar[str] = "channel"
    summary: ClassVar[str] = "commerce: report a vendor selling unregistered cards"
    roles: ClassVar[frozenset[Role]] = frozenset({Role.COMMERCE})

    outlet_code: str = argument(
        "the carrier's code of the outlet, if known (default empty)",
        cli=Cli(metavar="CODE", required=False, default=""))
    outlet_name: str = argument("the vendor's trading name (default empty)",
                                cli=Cli(metavar="TEXT", required=False, default=""))
    address: str = argument("where the vendor sells (default empty)", default="",
                            cli=Cli(metavar="TEXT"))
    agent: str = argument("the carrier's agent the vendor works for (default empty)",
                          default="", cli=Cli(metavar="TEXT"))
    carrier: str = argument(
        "node id of the carrier whose cards the vendor sold, e.g. cmcc.fj", default="",
        cli=Cli(metavar="ID"))
    numbers_seen: tuple[str, ...] = argument(
        "a number seen sold there (+86…); repeatable", default=(),
        cli=Cli(flag="--number", metavar="NUMBER"))
    findings: str = argument("what was found (no personal data)", cli=Cli(metavar="TEXT"))

    def apply(self, ctx: Context) -> ChannelResult:
        return cast("ChannelResult", commerce_commands.channel_report(
            ctx, outlet_code=self.outlet_code, outlet_name=self.outlet_name,
            address=self.address, agent=self.agent, carrier=self.carrier,
            numbers_seen=self.numbers_seen, findings=self.findings))


class DecideResult(TypedDict):
    appeal_id: str
    outcome: str
    number: str
    decision_id: str
    informed: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decide(InTransaction):
    name: ClassVar[str] = "decide"
    summary: ClassVar[str] = "bureau: decide an appeal"
    roles: ClassVar[frozenset[Role]] = frozenset({Role.BUREAU})

    appeal_id: str = argument(f"the appeal's id: {MESSAGE_ID} (bcx appeals)",
                              cli=Cli(positional=True, metavar="APPEAL_ID"))
    lift: bool = argument("lift the shutdown, restore service",
                          cli=Cli(negation=("--uphold", "keep the line shut down")))
    reasoning: str = argument("the reasoning sent to the carrier and the police",
                              cli=Cli(metavar="TEXT"))

    def apply(self, ctx: Context) -> DecideResult:
        return cast("DecideResult", bureau_commands.decide_appeal(
            ctx, appeal_id=self.appeal_id, lift=self.lift, reasoning=self.reasoning))


class PenaltyResult(TypedDict):
    penalty_id: str
    carrier: str
    outlet: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Penalty(InTransaction):
    name: ClassVar[str] = "penalty"
    summary: ClassVar[str] = "bureau: hold a carrier accountable for an outlet"
    roles: ClassVar[frozenset[Role]] = frozenset({Role.BUREAU})

    channel_report_id: str = argument(
        f"the channel report's id: {MESSAGE_ID} (bcx channels)",
        cli=Cli(positional=True, metavar="CHANNEL_REPORT_ID"))
    violation: str = argument("what the carrier's outlet did wrong", cli=Cli(metavar="TEXT"))
    measure: str = argument("the measure decided, e.g. a fine or a rectification order",
                            cli=Cli(metavar="TEXT"))
    legal_basis: str = argument("the provision the decision rests on",
                                cli=Cli(metavar="TEXT"))

    def apply(self, ctx: Context) -> PenaltyResult:
        return cast("PenaltyResult", bureau_commands.issue_penalty(
            ctx, channel_report_id=self.channel_report_id, violation=self.violation,
            measure=self.measure, legal_basis=self.legal_basis))


class ProgressResult(TypedDict):
    progress_id: str
    office: str
    lines: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress(InTransaction):
    name: ClassVar[str] = "progress"
    summary: ClassVar[str] = "bureau: send a progress report to the office now"
    roles: ClassVar[frozenset[Role]] = frozenset({Role.BUREAU})

    def apply(self, ctx: Context) -> ProgressResult:
        return cast("ProgressResult", bureau_commands.send_progress(ctx))


class AppealResult(TypedDict):
    appeal_id: str
    bureau: str
    number: str
    decide_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Appeal(InTransaction):
    name: ClassVar[str] = "appeal"
    summary: ClassVar[str] = "carrier: a subscriber contests a shutdown"
    roles: ClassVar[frozenset[Role]] = frozenset({Role.CARRIER})

    number: str = argument("the number whose shutdown is contested (+86…)",
                           cli=Cli(metavar="NUMBER"))
    grounds: str = argument("the subscriber's grounds (no ID numbers)",
                            cli=Cli(metavar="TEXT"))

    def apply(self, ctx: Context) -> AppealResult:
        return cast("AppealResult", carrier_commands.appeal(
            ctx, number=self.number, grounds=self.grounds))


class IdReportResult(TypedDict):
    bureau: str
    holders: int
    reports: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class IdReport(InTransaction):
    name: ClassVar[str] = "id-report"
    summary: ClassVar[str] = "carrier: report ID holders with 5+ cards in the province"
    roles: ClassVar[frozenset[Role]] = frozenset({Role.CARRIER})

    threshold: int = argument("cards an ID holder has at least to be reported",
                              default=CONCENTRATION_THRESHOLD, cli=Cli(hidden=True))

    def apply(self, ctx: Context) -> IdReportResult:
        return cast("IdReportResult", carrier_commands.id_concentration(
            ctx, threshold=self.threshold))


class TickResult(TypedDict, total=False):
    progress: ProgressResult
    escalations: list[str]
    overdue: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick(Command):
    name: ClassVar[str] = "tick"
    summary: ClassVar[str] = "check deadlines now (the node also does it on its own)"
    roles: ClassVar[frozenset[Role]] = ALL_ROLES

    async def execute(self, node: OperatedNode) -> TickResult:
        return cast("TickResult", await node.running.node.run_work(node.ticker.tick))


class RequeueResult(TypedDict, total=False):
    message_id: str
    recipient: str
    kind: str
    requeued: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRetry(InTransaction):
    """Requeue a message its peer refused for good, or every one ``peer`` refused, once
    the cause is fixed."""

    name: ClassVar[str] = "outbox-retry"
    summary: ClassVar[str] = "requeue a refused message once its cause is fixed"
    roles: ClassVar[frozenset[Role]] = ALL_ROLES

    message_id: str = argument(
        f"the refused message: {MESSAGE_ID} (bcx outbox list --refused)", default="",
        cli=Cli(positional=True, metavar="MESSAGE_ID"))
    peer: str = argument("instead: every message this peer refused, e.g. cmcc.fj",
                         default="", cli=Cli(metavar="ID"))

    def apply(self, ctx: Context) -> RequeueResult:
        if bool(self.message_id) == bool(self.peer):
            raise OperationError("outbox-retry: give a message id or a peer, not both")
        if self.peer:
            ctx.directory.member(self.peer)  # a peer the directory does not list is named
            return cast("RequeueResult", outbox_queue.requeue_peer(ctx, self.peer))
        return cast("RequeueResult", outbox_queue.requeue(
            ctx, message_id_arg(self.message_id, "message")))


class PublishResult(TypedDict):
    version: int
    members: int
    expires_at: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryPublish(Command):
    """Office: adopt a newer signed directory (``bcx directory build``'s file, base64) and
    serve it; every other node fetches it on its next refresh. It must verify against the
    CA and the office's certificate and be newer than the one in force."""

    name: ClassVar[str] = "directory-publish"
    summary: ClassVar[str] = ("office: put a newer directory in force on the running office "
                              "node (members fetch it from there)")
    roles: ClassVar[frozenset[Role]] = frozenset({Role.OFFICE})

    directory: str = argument("the signed directory (bcx directory build --out), base64",
                              cli=Cli(hidden=True))

    async def execute(self, node: OperatedNode) -> PublishResult:
        try:
            raw = base64.b64decode(self.directory, validate=True)
        except binascii.Error as e:
            raise OperationError(f"directory-publish: directory is not base64: {e}") from None
        try:
            d = await node.running.node.replace_directory(SignedDirectory.from_bytes(raw))
        except DirectoryError as e:
            raise OperationError(f"directory not published: {e}") from e
        return {"version": d.version, "members": len(d.members),
                "expires_at": d.expires_at.isoformat(timespec="seconds")}


class RefreshResult(TypedDict):
    outcome: str
    version: int
    office: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryRefresh(Command):
    """Ask the office for a newer directory now rather than at the next scheduled
    refresh."""

    name: ClassVar[str] = "directory-refresh"
    summary: ClassVar[str] = "have the running node ask the office for a newer directory now"
    roles: ClassVar[frozenset[Role]] = ALL_ROLES

    async def execute(self, node: OperatedNode) -> RefreshResult:
        import grpc

        running = node.running
        office = running.node.config.office_id
        if running.node.me.role is Role.OFFICE:
            raise OperationError(f"{running.node.node_id} is the office: it puts a directory "
                                 "in force with `bcx directory publish`, it fetches none")
        try:
            outcome = await running.refresh_directory()
        except grpc.aio.AioRpcError as e:
            raise OperationError(f"the office {office} could not be asked: "
                                 f"{e.code().name}: {e.details()}") from None
        except DirectoryError as e:
            raise OperationError(f"the directory {office} answered with was refused: "
                                 f"{e}") from e
        return {"outcome": "adopted" if outcome.startswith("adopted") else "current",
                "version": running.node.directory.version, "office": office}


class AuditEntry(TypedDict):
    index: int
    kind: str
    peer: str
    message_id: str
    subject: str
    logged_at: str
    leaf: str


class AuditReadResult(TypedDict):
    peer: str
    read: int
    next_start: int
    entries: list[AuditEntry]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRead(Command):
    """An auditor's read of ``peer``'s ledger beyond this node's own entries: logged here
    (ACTION audit-read) before asking, and by the peer, which serves it only if its
    [ledger] audit_readers lists this node."""

    name: ClassVar[str] = "audit-read"
    summary: ClassVar[str] = (
        "auditor: read a peer's ledger beyond this node's own entries; the reason is "
        "logged on both ledgers, and the peer serves only members its [ledger] "
        "audit_readers lists")
    roles: ClassVar[frozenset[Role]] = ALL_ROLES

    peer: str = argument("node id of the peer whose ledger to read, e.g. bureau.fj",
                         cli=Cli(metavar="ID"))
    reason: str = argument("why the read is needed (kept in both ledgers)",
                           cli=Cli(metavar="TEXT"))
    start: int = argument("first leaf index, a whole number ≥ 0 (default 0)", default=0,
                          cli=Cli(flag="--from", metavar="INDEX", low=0))
    limit: int = argument("entries at most, a whole number ≥ 0 (default 100; a page also "
                          "stops at the peer's byte limit)", default=100,
                          cli=Cli(metavar="N", low=0))

    async def execute(self, node: OperatedNode) -> AuditReadResult:
        import grpc

        from exchange.transport.reads import read_entries

        running = node.running
        running.node.directory.member(self.peer)  # a peer the directory does not list
        if not self.reason.strip():
            raise OperationError("audit-read: name the reason for reading (--reason)")
        try:
            page = await read_entries(running.node, running.peers, self.peer,
                                      start=self.start, limit=self.limit,
                                      audit_reason=self.reason)
        except grpc.aio.AioRpcError as e:
            raise OperationError(f"audit-read of {self.peer}: {e.code().name}: "
                                 f"{e.details()}") from None
        entries = [audit_entry(index, leaf) for index, leaf in page.entries]
        return {"peer": self.peer, "read": len(entries), "next_start": page.next_start,
                "entries": entries}


def audit_entry(index: int, leaf: bytes) -> AuditEntry:
    """One leaf a peer served, as the auditor reads it (and the leaf itself, base64)."""
    from exchange.ledger.entries import Entry

    entry = Entry.decode(leaf)
    return {"index": index, "kind": entry.kind.name, "peer": entry.peer,
            "message_id": entry.message_id.hex(), "subject": entry.subject,
            "logged_at": entry.logged_at.isoformat(timespec="seconds"),
            "leaf": base64.b64encode(leaf).decode()}


# --- The table --------------------------------------------------------------------------

COMMANDS: tuple[type[Command], ...] = (
    Report, Withdraw, Ask, Channel, Decide, Penalty, Progress, Appeal, IdReport, Tick,
    OutboxRetry, DirectoryPublish, DirectoryRefresh, AuditRead,
)
BY_NAME: dict[str, type[Command]] = {c.name: c for c in COMMANDS}


def commands_for(role: Role) -> tuple[type[Command], ...]:
    """The commands a node of ``role`` accepts."""
    return tuple(c for c in COMMANDS if role in c.roles)


async def run(command: Command, node: OperatedNode) -> Mapping[str, object]:
    """Execute ``command`` on ``node``: a role's command as one unit of work in the
    node's ledger transaction (its messages signed, logged and queued together)."""
    return await command.execute(node)


def operations(node: OperatedNode) -> dict[str, Operation]:
    """The Admin service's table for ``node``: each command its role accepts, its JSON
    arguments decoded (and refused, naming the argument) before any work."""
    def operation(command: type[Command]) -> Operation:
        async def operate(arguments: dict[str, Any]) -> Any:
            return await run(decode(command, arguments), node)
        return operate

    return {c.name: operation(c) for c in commands_for(node.running.node.me.role)}
