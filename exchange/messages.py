"""The codec layer for ``bcx.v1.Message``: domain dataclasses in, protobuf bytes out.

Domain code works with the frozen dataclasses here; the generated classes in
``exchange.wire`` are touched only in this module (and transport). Decoding checks
structure only — that a message has the fields every receiver relies on and that enums
and timestamps are representable. Whether numbers normalise or deadlines lie in the
future is the node's business (``exchange.numbers``).

Encoding is deterministic, but protobuf encoding is not canonical: never re-encode a
decoded message to check a signature, verify the bytes received.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar, get_args

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from exchange.errors import InvalidBodyError, MalformedEnvelopeError
from exchange.wire.bcx.v1 import message_pb2 as wire

__all__ = [
    "ActionOutcome",
    "ActionReport",
    "Appeal",
    "AppealDecision",
    "AppealOutcome",
    "Body",
    "CaseAnswer",
    "CaseQuestion",
    "CaseRequest",
    "CaseResponse",
    "Category",
    "ChannelReport",
    "Circular",
    "Escalation",
    "EscalationKind",
    "Header",
    "IdConcentrationReport",
    "IdHolder",
    "Message",
    "NumberAction",
    "NumberOutcome",
    "NumberReport",
    "Penalty",
    "ProgressCount",
    "ProgressReport",
    "RealNameState",
    "SalesChannel",
    "SealedBox",
    "ShutdownNotice",
    "SubscriberRecord",
    "Verdict",
    "VerificationOutcome",
    "Withdrawal",
    "decode_case_answer",
    "decode_message",
    "encode_case_answer",
    "encode_message",
    "format_message_id",
    "message_id_time",
    "new_message_id",
    "parse_message_id",
]

MESSAGE_ID_SIZE = 16

# ---------------------------------------------------------------------------------------
# Enums. The proto UNSPECIFIED value has no member: an optional enum field holds None
# instead, a required one makes the message invalid.
# ---------------------------------------------------------------------------------------


class Category(enum.Enum):
    FRAUD = "fraud"
    OBSCENE = "obscene"
    TERROR = "terror"
    OTHER = "other"


class ActionOutcome(enum.Enum):
    SHUT_DOWN = "shut_down"
    ALREADY_INACTIVE = "already_inactive"
    NOT_OUR_SUBSCRIBER = "not_our_subscriber"
    REFUSED = "refused"
    RESTORED = "restored"


class Verdict(enum.Enum):
    """A bureau's own verdict on a reported number (a carrier's is an ActionOutcome)."""

    NOTICED = "noticed"
    FORWARDED = "forwarded"
    REJECTED = "rejected"
    UNROUTABLE = "unroutable"
    WITHDRAWN = "withdrawn"


class RealNameState(enum.Enum):
    REGISTERED = "registered"
    UNREGISTERED = "unregistered"
    FALSE_IDENTITY = "false_identity"


class VerificationOutcome(enum.Enum):
    CONFIRMED = "confirmed"
    CARDS_CANCELLED = "cards_cancelled"
    PENDING = "pending"
    UNREACHABLE = "unreachable"


class CaseQuestion(enum.Enum):
    SUBSCRIBER_REGISTRATION = "subscriber_registration"
    ACTIVATION_CHANNEL = "activation_channel"
    OTHER_CARDS_UNDER_ID = "other_cards_under_id"


class AppealOutcome(enum.Enum):
    UPHELD = "upheld"
    LIFTED = "lifted"


class EscalationKind(enum.Enum):
    OVERDUE_NOTICE = "overdue_notice"
    OVERDUE_CASE = "overdue_case"
    OVERDUE_APPEAL = "overdue_appeal"
    OVERDUE_FEEDBACK = "overdue_feedback"
    LEDGER_FORK = "ledger_fork"
    DELIVERY_FAILURE = "delivery_failure"


# ---------------------------------------------------------------------------------------
# Sub-messages. Unset timestamps and sub-messages are None; every field defaults to the
# proto default except required enums, so bodies are built with keywords.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SalesChannel:
    outlet_code: str = ""
    outlet_name: str = ""
    agent: str = ""
    address: str = ""
    carrier_node: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberAction:
    number: str = ""
    outcome: ActionOutcome
    ported_to_hint: str = ""
    refusal_reason: str = ""
    acted_at: datetime | None = None
    acted_by: str = ""
    channel: SalesChannel | None = None
    activated_at: datetime | None = None
    real_name_state: RealNameState | None = None
    cards_under_same_id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class IdHolder:
    id_hmac: bytes = b""
    card_count: int = 0
    outcome: VerificationOutcome | None = None
    numbers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedBox:
    suite: str = ""
    recipient: str = ""
    recipient_key_id: str = ""
    ciphertext: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberRecord:
    number: str = ""
    # Personal data: kept out of repr so it cannot reach a log by accident.
    subscriber_name: str = field(default="", repr=False)
    id_number: str = field(default="", repr=False)
    registered_at: datetime | None = None
    channel: SalesChannel | None = None
    real_name_state: RealNameState | None = None
    other_numbers_under_id: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseAnswer:
    """The plaintext sealed inside ``CaseResponse.sealed_answer``; never sent in clear."""

    records: tuple[SubscriberRecord, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberOutcome:
    number: str = ""
    outcome: ActionOutcome | None = None
    carrier_node: str = ""
    detail: str = ""
    report_id: bytes = b""
    decided_at: datetime | None = None
    verdict: Verdict | None = None
    forwarded_to: str = ""
    already_known: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressCount:
    carrier_node: str = ""
    category: Category | None = None
    reported: int = 0
    shut_down: int = 0
    pending: int = 0
    refused: int = 0
    overdue: int = 0


# ---------------------------------------------------------------------------------------
# Bodies: ``kind`` is the name of the body's field in the Message oneof.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberReport:
    kind: ClassVar[str] = "number_report"
    numbers: tuple[str, ...] = ()
    category: Category
    discovered_at: datetime | None = None
    case_number: str = ""
    evidence_summary: str = ""
    confidence: int = 0
    # A forwarded report: the reporter's signed envelope as the forwarding bureau got it.
    origin_envelope: bytes = b""
    # Set on a later part of a report sent in several messages: the first part's id.
    report_id: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownNotice:
    kind: ClassVar[str] = "shutdown_notice"
    numbers: tuple[str, ...] = ()
    legal_basis: str = ""
    deadline: datetime | None = None
    investigate_channel: bool = False
    source_reports: tuple[bytes, ...] = ()
    category: Category | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionReport:
    kind: ClassVar[str] = "action_report"
    actions: tuple[NumberAction, ...] = ()
    # The Withdrawal these actions answer, if they answer one (in_reply_to is the notice).
    withdrawal_id: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelReport:
    kind: ClassVar[str] = "channel_report"
    channel: SalesChannel | None = None
    numbers: tuple[str, ...] = ()
    findings: str = ""
    observed_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IdConcentrationReport:
    kind: ClassVar[str] = "id_concentration_report"
    province: str = ""
    holders: tuple[IdHolder, ...] = ()
    hmac_key_id: str = ""
    as_of: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRequest:
    kind: ClassVar[str] = "case_request"
    case_number: str = ""
    legal_authorization: str = ""
    numbers: tuple[str, ...] = ()
    questions: tuple[CaseQuestion, ...] = ()
    deadline: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseResponse:
    kind: ClassVar[str] = "case_response"
    sealed_answer: SealedBox | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Circular:
    kind: ClassVar[str] = "circular"
    outcomes: tuple[NumberOutcome, ...] = ()
    summary: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Penalty:
    kind: ClassVar[str] = "penalty"
    violation: str = ""
    legal_basis: str = ""
    measure: str = ""
    channel: SalesChannel | None = None
    numbers: tuple[str, ...] = ()
    evidence: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Appeal:
    kind: ClassVar[str] = "appeal"
    number: str = ""
    grounds: str = ""
    notice_id: bytes = b""
    decide_by: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppealDecision:
    kind: ClassVar[str] = "appeal_decision"
    number: str = ""
    outcome: AppealOutcome
    reasoning: str = ""
    appeal_id: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdrawal:
    kind: ClassVar[str] = "withdrawal"
    withdrawn_message_id: bytes = b""
    reason: str = ""
    numbers: tuple[str, ...] = ()
    # A withdrawal passed on between bureaus: the reporter's own signed Withdrawal envelope.
    origin_envelope: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalation:
    """The proto field ``kind`` is ``escalation_kind`` here: ``kind`` names the body."""

    kind: ClassVar[str] = "escalation"
    escalation_kind: EscalationKind
    subject_node: str = ""
    subject_message_id: bytes = b""
    detail: str = ""
    deadline: datetime | None = None
    evidence: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressReport:
    kind: ClassVar[str] = "progress_report"
    province: str = ""
    counts: tuple[ProgressCount, ...] = ()
    as_of: datetime | None = None


Body: TypeAlias = (
    NumberReport
    | ShutdownNotice
    | ActionReport
    | ChannelReport
    | IdConcentrationReport
    | CaseRequest
    | CaseResponse
    | Circular
    | Penalty
    | Appeal
    | AppealDecision
    | Withdrawal
    | Escalation
    | ProgressReport
)


@dataclass(frozen=True, slots=True)
class Header:
    message_id: bytes
    sender: str
    recipient: str
    created_at: datetime
    expires_at: datetime | None = None
    in_reply_to: bytes = b""
    thread: str = ""

    def __post_init__(self) -> None:
        if len(self.message_id) != MESSAGE_ID_SIZE:
            raise InvalidBodyError(
                f"message_id must be {MESSAGE_ID_SIZE} bytes, got {len(self.message_id)}"
            )
        if not self.sender:
            raise InvalidBodyError("sender is empty")
        if not self.recipient:
            raise InvalidBodyError("recipient is empty")
        _check_aware(self.created_at, "created_at")
        if self.expires_at is not None:
            _check_aware(self.expires_at, "expires_at")


@dataclass(frozen=True, slots=True)
class Message:
    header: Header
    body: Body

    @property
    def kind(self) -> str:
        """The body's field name in the Message oneof, e.g. ``"number_report"``."""
        return self.body.kind


# ---------------------------------------------------------------------------------------
# Message ids: UUIDv7 (RFC 9562 §5.7), so ids sort by creation time to the millisecond.
# ---------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_MESSAGE_ID_TEXT = re.compile(
    r"[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def new_message_id(now: datetime | None = None) -> bytes:
    """A fresh 16-byte UUIDv7 for the time ``now`` (default: the current time)."""
    if now is None:
        now = datetime.now(UTC)
    elif now.utcoffset() is None:
        raise ValueError("new_message_id needs a timezone-aware time")
    unix_ms = (now - _EPOCH) // _MILLISECOND
    if not 0 <= unix_ms < 1 << 48:
        raise ValueError(f"{now.isoformat()} is outside the UUIDv7 time range")
    value = (unix_ms << 80) | int.from_bytes(os.urandom(10))
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant 0b10
    return value.to_bytes(MESSAGE_ID_SIZE)


def message_id_time(mid: bytes) -> datetime:
    """The creation time (to the millisecond, UTC) recorded in a UUIDv7 message id."""
    if len(mid) != MESSAGE_ID_SIZE:
        raise ValueError(f"message id must be {MESSAGE_ID_SIZE} bytes, got {len(mid)}")
    if mid[6] >> 4 != 7 or mid[8] >> 6 != 0b10:
        raise ValueError(f"message id {mid.hex()} is not a UUIDv7")
    return _EPOCH + int.from_bytes(mid[:6]) * _MILLISECOND


def format_message_id(mid: bytes) -> str:
    """32 lowercase hex digits, the form used in logs, the CLI and the ledger."""
    if len(mid) != MESSAGE_ID_SIZE:
        raise ValueError(f"message id must be {MESSAGE_ID_SIZE} bytes, got {len(mid)}")
    return mid.hex()


def parse_message_id(text: str) -> bytes:
    """Parse 32 hex digits, plain or dashed as a UUID (8-4-4-4-12), either case."""
    if _MESSAGE_ID_TEXT.fullmatch(text) is None:
        raise ValueError(
            f"message id {text[:80]!r} is not 32 hex digits (optionally dashed 8-4-4-4-12)"
        )
    return bytes.fromhex(text.replace("-", ""))


# ---------------------------------------------------------------------------------------
# Generic field helpers.
# ---------------------------------------------------------------------------------------

# google.protobuf.Timestamp covers 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z,
# the same years as datetime; nanoseconds below a microsecond are dropped on decoding.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799
_UINT32_MAX = 0xFFFF_FFFF


def _check_aware(dt: datetime, path: str) -> None:
    if dt.utcoffset() is None:
        raise InvalidBodyError(f"{path} must be timezone-aware")


def _time_to_wire(dt: datetime, path: str) -> Timestamp:
    _check_aware(dt, path)
    delta = dt - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        raise InvalidBodyError(f"{path} is out of range: {dt.isoformat()}")
    return Timestamp(seconds=seconds, nanos=delta.microseconds * 1000)


def _opt_time_to_wire(dt: datetime | None, path: str) -> Timestamp | None:
    return None if dt is None else _time_to_wire(dt, path)


def _time_from_wire(ts: Timestamp, path: str) -> datetime:
    if not (_MIN_SECONDS <= ts.seconds <= _MAX_SECONDS and 0 <= ts.nanos < 1_000_000_000):
        raise InvalidBodyError(f"{path} is out of range: {ts.seconds}s {ts.nanos}ns")
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def _time_to_wire_once(times: dict[datetime, Timestamp], dt: datetime | None, path: str,
                       *, at: tuple[str, int, str]) -> Timestamp | None:
    """_time_to_wire for one line of a bulk body: each distinct time converted (and
    checked) once, and shared; ``at`` (items, index, field) names it only if it fails."""
    if dt is None:
        return None
    ts = times.get(dt)
    if ts is None:
        items, i, field = at
        ts = times[dt] = _time_to_wire(dt, f"{path}.{items}[{i}].{field}")
    return ts


def _time_from_wire_once(times: dict[tuple[int, int], datetime], ts: Timestamp, path: str,
                         *, at: tuple[str, int, str]) -> datetime:
    """_time_from_wire for one line of a bulk body: each distinct time converted (and
    checked) once, and shared (datetimes are immutable)."""
    key = (ts.seconds, ts.nanos)
    dt = times.get(key)
    if dt is None:
        items, i, field = at
        dt = times[key] = _time_from_wire(ts, f"{path}.{items}[{i}].{field}")
    return dt


def _opt_time_from_wire(parent: ProtoMessage, name: str, path: str) -> datetime | None:
    """The Timestamp field ``name`` of ``parent``, or None when it is unset."""
    if not parent.HasField(name):
        return None
    ts: Timestamp = getattr(parent, name)
    return _time_from_wire(ts, f"{path}.{name}" if path else name)


def _uint32(value: int, path: str) -> int:
    if not 0 <= value <= _UINT32_MAX:
        raise InvalidBodyError(f"{path} must fit in a uint32, got {value}")
    return value


_E = TypeVar("_E", bound=enum.Enum)
_W = TypeVar("_W", bound=int)


class _EnumCodec(Generic[_E, _W]):
    """Maps a domain enum to a proto enum; UNSPECIFIED is None on the domain side."""

    __slots__ = ("_from_wire", "_to_wire", "_unspecified")

    def __init__(self, domain: type[_E], unspecified: _W, pairs: Mapping[_E, _W]) -> None:
        if set(pairs) != set(domain):
            raise AssertionError(f"{domain.__name__} is not mapped completely to the wire")
        self._unspecified = unspecified
        self._to_wire = dict(pairs)
        self._from_wire = {w: d for d, w in pairs.items()}

    def to_wire(self, value: _E | None) -> _W:
        return self._unspecified if value is None else self._to_wire[value]

    def from_wire(self, raw: _W, path: str) -> _E | None:
        if raw == self._unspecified:
            return None
        try:
            return self._from_wire[raw]
        except KeyError:
            raise InvalidBodyError(f"{path} has unknown value {int(raw)}") from None

    def required_from_wire(self, raw: _W, path: str) -> _E:
        value = self.from_wire(raw, path)
        if value is None:
            raise InvalidBodyError(f"{path} is unspecified")
        return value


_CATEGORY = _EnumCodec(
    Category,
    wire.CATEGORY_UNSPECIFIED,
    {
        Category.FRAUD: wire.CATEGORY_FRAUD,
        Category.OBSCENE: wire.CATEGORY_OBSCENE,
        Category.TERROR: wire.CATEGORY_TERROR,
        Category.OTHER: wire.CATEGORY_OTHER,
    },
)
_ACTION_OUTCOME = _EnumCodec(
    ActionOutcome,
    wire.ACTION_OUTCOME_UNSPECIFIED,
    {
        ActionOutcome.SHUT_DOWN: wire.ACTION_OUTCOME_SHUT_DOWN,
        ActionOutcome.ALREADY_INACTIVE: wire.ACTION_OUTCOME_ALREADY_INACTIVE,
        ActionOutcome.NOT_OUR_SUBSCRIBER: wire.ACTION_OUTCOME_NOT_OUR_SUBSCRIBER,
        ActionOutcome.REFUSED: wire.ACTION_OUTCOME_REFUSED,
        ActionOutcome.RESTORED: wire.ACTION_OUTCOME_RESTORED,
    },
)
_VERDICT = _EnumCodec(
    Verdict,
    wire.VERDICT_UNSPECIFIED,
    {
        Verdict.NOTICED: wire.VERDICT_NOTICED,
        Verdict.FORWARDED: wire.VERDICT_FORWARDED,
        Verdict.REJECTED: wire.VERDICT_REJECTED,
        Verdict.UNROUTABLE: wire.VERDICT_UNROUTABLE,
        Verdict.WITHDRAWN: wire.VERDICT_WITHDRAWN,
    },
)
_REAL_NAME_STATE = _EnumCodec(
    RealNameState,
    wire.REAL_NAME_STATE_UNSPECIFIED,
    {
        RealNameState.REGISTERED: wire.REAL_NAME_STATE_REGISTERED,
        RealNameState.UNREGISTERED: wire.REAL_NAME_STATE_UNREGISTERED,
        RealNameState.FALSE_IDENTITY: wire.REAL_NAME_STATE_FALSE_IDENTITY,
    },
)
_VERIFICATION_OUTCOME = _EnumCodec(
    VerificationOutcome,
    wire.VERIFICATION_OUTCOME_UNSPECIFIED,
    {
        VerificationOutcome.CONFIRMED: wire.VERIFICATION_OUTCOME_CONFIRMED,
        VerificationOutcome.CARDS_CANCELLED: wire.VERIFICATION_OUTCOME_CARDS_CANCELLED,
        VerificationOutcome.PENDING: wire.VERIFICATION_OUTCOME_PENDING,
        VerificationOutcome.UNREACHABLE: wire.VERIFICATION_OUTCOME_UNREACHABLE,
    },
)
_CASE_QUESTION = _EnumCodec(
    CaseQuestion,
    wire.CASE_QUESTION_UNSPECIFIED,
    {
        CaseQuestion.SUBSCRIBER_REGISTRATION: wire.CASE_QUESTION_SUBSCRIBER_REGISTRATION,
        CaseQuestion.ACTIVATION_CHANNEL: wire.CASE_QUESTION_ACTIVATION_CHANNEL,
        CaseQuestion.OTHER_CARDS_UNDER_ID: wire.CASE_QUESTION_OTHER_CARDS_UNDER_ID,
    },
)
_APPEAL_OUTCOME = _EnumCodec(
    AppealOutcome,
    wire.APPEAL_OUTCOME_UNSPECIFIED,
    {
        AppealOutcome.UPHELD: wire.APPEAL_OUTCOME_UPHELD,
        AppealOutcome.LIFTED: wire.APPEAL_OUTCOME_LIFTED,
    },
)
_ESCALATION_KIND = _EnumCodec(
    EscalationKind,
    wire.ESCALATION_KIND_UNSPECIFIED,
    {
        EscalationKind.OVERDUE_NOTICE: wire.ESCALATION_KIND_OVERDUE_NOTICE,
        EscalationKind.OVERDUE_CASE: wire.ESCALATION_KIND_OVERDUE_CASE,
        EscalationKind.OVERDUE_APPEAL: wire.ESCALATION_KIND_OVERDUE_APPEAL,
        EscalationKind.OVERDUE_FEEDBACK: wire.ESCALATION_KIND_OVERDUE_FEEDBACK,
        EscalationKind.LEDGER_FORK: wire.ESCALATION_KIND_LEDGER_FORK,
        EscalationKind.DELIVERY_FAILURE: wire.ESCALATION_KIND_DELIVERY_FAILURE,
    },
)


# ---------------------------------------------------------------------------------------
# Per-class conversion. ``path`` is the field path used in error messages,
# e.g. "action_report.actions[2]".
# ---------------------------------------------------------------------------------------


def _sales_channel_to_wire(c: SalesChannel | None) -> wire.SalesChannel | None:
    if c is None:
        return None
    return wire.SalesChannel(
        outlet_code=c.outlet_code,
        outlet_name=c.outlet_name,
        agent=c.agent,
        address=c.address,
        carrier_node=c.carrier_node,
    )


def _sales_channel_from_wire(w: wire.SalesChannel) -> SalesChannel:
    return SalesChannel(
        outlet_code=w.outlet_code,
        outlet_name=w.outlet_name,
        agent=w.agent,
        address=w.address,
        carrier_node=w.carrier_node,
    )


def _opt_channel_from_wire(
    w: wire.NumberAction | wire.ChannelReport | wire.SubscriberRecord | wire.Penalty,
) -> SalesChannel | None:
    return _sales_channel_from_wire(w.channel) if w.HasField("channel") else None


def _number_report_to_wire(b: NumberReport, path: str) -> wire.NumberReport:
    return wire.NumberReport(
        numbers=b.numbers,
        category=_CATEGORY.to_wire(b.category),
        discovered_at=_opt_time_to_wire(b.discovered_at, f"{path}.discovered_at"),
        case_number=b.case_number,
        evidence_summary=b.evidence_summary,
        confidence=_uint32(b.confidence, f"{path}.confidence"),
        origin_envelope=b.origin_envelope,
        report_id=b.report_id,
    )


def _number_report_from_wire(w: wire.NumberReport, path: str) -> NumberReport:
    return NumberReport(
        numbers=tuple(w.numbers),
        category=_CATEGORY.required_from_wire(w.category, f"{path}.category"),
        discovered_at=_opt_time_from_wire(w, "discovered_at", path),
        case_number=w.case_number,
        evidence_summary=w.evidence_summary,
        confidence=w.confidence,
        origin_envelope=w.origin_envelope,
        report_id=w.report_id,
    )


def _shutdown_notice_to_wire(b: ShutdownNotice, path: str) -> wire.ShutdownNotice:
    return wire.ShutdownNotice(
        numbers=b.numbers,
        legal_basis=b.legal_basis,
        deadline=_opt_time_to_wire(b.deadline, f"{path}.deadline"),
        investigate_channel=b.investigate_channel,
        source_reports=b.source_reports,
        category=_CATEGORY.to_wire(b.category),
    )


def _shutdown_notice_from_wire(w: wire.ShutdownNotice, path: str) -> ShutdownNotice:
    return ShutdownNotice(
        numbers=tuple(w.numbers),
        legal_basis=w.legal_basis,
        deadline=_opt_time_from_wire(w, "deadline", path),
        investigate_channel=w.investigate_channel,
        source_reports=tuple(w.source_reports),
        category=_CATEGORY.from_wire(w.category, f"{path}.category"),
    )


def _action_report_to_wire(b: ActionReport, path: str) -> wire.ActionReport:
    # A bulk report's thousand actions mostly share their times and sales channel:
    # each distinct value is converted once (the checks too), and each action is
    # added in place.
    w = wire.ActionReport(withdrawal_id=b.withdrawal_id)
    add = w.actions.add
    times: dict[datetime, Timestamp] = {}
    channels: dict[int, wire.SalesChannel | None] = {}
    outcomes = _ACTION_OUTCOME.to_wire
    states = _REAL_NAME_STATE.to_wire
    for i, a in enumerate(b.actions):
        acted_ts = _time_to_wire_once(times, a.acted_at, path, at=("actions", i, "acted_at"))
        channel = a.channel
        channel_w = None
        if channel is not None:
            # By identity: the objects live through this call, so ids are not reused.
            channel_w = channels.get(id(channel))
            if channel_w is None:
                channel_w = channels[id(channel)] = _sales_channel_to_wire(channel)
        activated_ts = _time_to_wire_once(times, a.activated_at, path,
                                          at=("actions", i, "activated_at"))
        cards = a.cards_under_same_id
        if not 0 <= cards <= _UINT32_MAX:
            _uint32(cards, f"{path}.actions[{i}].cards_under_same_id")
        add(number=a.number, outcome=outcomes(a.outcome), ported_to_hint=a.ported_to_hint,
            refusal_reason=a.refusal_reason, acted_at=acted_ts, acted_by=a.acted_by,
            channel=channel_w, activated_at=activated_ts,
            real_name_state=states(a.real_name_state), cards_under_same_id=cards)
    return w


def _action_report_from_wire(w: wire.ActionReport, path: str) -> ActionReport:
    # Each action's checks in field order (the first failing names its path), but each
    # distinct time and sales channel is converted once and shared (they are frozen).
    times: dict[tuple[int, int], datetime] = {}
    channels: dict[tuple[str, str, str, str, str], SalesChannel] = {}
    outcomes = _ACTION_OUTCOME._from_wire
    states = _REAL_NAME_STATE._from_wire
    actions = []
    for i, a in enumerate(w.actions):
        outcome = outcomes.get(a.outcome)
        if outcome is None:
            outcome = _ACTION_OUTCOME.required_from_wire(a.outcome, f"{path}.actions[{i}].outcome")
        acted_at = _time_from_wire_once(times, a.acted_at, path, at=("actions", i, "acted_at")) \
            if a.HasField("acted_at") else None
        channel = None
        if a.HasField("channel"):
            c = a.channel
            ckey = (c.outlet_code, c.outlet_name, c.agent, c.address, c.carrier_node)
            channel = channels.get(ckey)
            if channel is None:
                channel = channels[ckey] = _sales_channel_from_wire(c)
        activated_at = _time_from_wire_once(times, a.activated_at, path,
                                            at=("actions", i, "activated_at")) \
            if a.HasField("activated_at") else None
        state = a.real_name_state
        real_name_state = None if state == wire.REAL_NAME_STATE_UNSPECIFIED else \
            states.get(state) or _REAL_NAME_STATE.from_wire(
                state, f"{path}.actions[{i}].real_name_state")
        actions.append(NumberAction(
            number=a.number, outcome=outcome, ported_to_hint=a.ported_to_hint,
            refusal_reason=a.refusal_reason, acted_at=acted_at, acted_by=a.acted_by,
            channel=channel, activated_at=activated_at, real_name_state=real_name_state,
            cards_under_same_id=a.cards_under_same_id))
    return ActionReport(actions=tuple(actions), withdrawal_id=w.withdrawal_id)


def _channel_report_to_wire(b: ChannelReport, path: str) -> wire.ChannelReport:
    return wire.ChannelReport(
        channel=_sales_channel_to_wire(b.channel),
        numbers=b.numbers,
        findings=b.findings,
        observed_at=_opt_time_to_wire(b.observed_at, f"{path}.observed_at"),
    )


def _channel_report_from_wire(w: wire.ChannelReport, path: str) -> ChannelReport:
    return ChannelReport(
        channel=_opt_channel_from_wire(w),
        numbers=tuple(w.numbers),
        findings=w.findings,
        observed_at=_opt_time_from_wire(w, "observed_at", path),
    )


def _id_holder_to_wire(h: IdHolder, path: str) -> wire.IdHolder:
    return wire.IdHolder(
        id_hmac=h.id_hmac,
        card_count=_uint32(h.card_count, f"{path}.card_count"),
        outcome=_VERIFICATION_OUTCOME.to_wire(h.outcome),
        numbers=h.numbers,
    )


def _id_holder_from_wire(w: wire.IdHolder, path: str) -> IdHolder:
    return IdHolder(
        id_hmac=w.id_hmac,
        card_count=w.card_count,
        outcome=_VERIFICATION_OUTCOME.from_wire(w.outcome, f"{path}.outcome"),
        numbers=tuple(w.numbers),
    )


def _id_concentration_report_to_wire(
    b: IdConcentrationReport, path: str
) -> wire.IdConcentrationReport:
    return wire.IdConcentrationReport(
        province=b.province,
        holders=[_id_holder_to_wire(h, f"{path}.holders[{i}]") for i, h in enumerate(b.holders)],
        hmac_key_id=b.hmac_key_id,
        as_of=_opt_time_to_wire(b.as_of, f"{path}.as_of"),
    )


def _id_concentration_report_from_wire(
    w: wire.IdConcentrationReport, path: str
) -> IdConcentrationReport:
    return IdConcentrationReport(
        province=w.province,
        holders=tuple(
            _id_holder_from_wire(h, f"{path}.holders[{i}]") for i, h in enumerate(w.holders)
        ),
        hmac_key_id=w.hmac_key_id,
        as_of=_opt_time_from_wire(w, "as_of", path),
    )


def _case_request_to_wire(b: CaseRequest, path: str) -> wire.CaseRequest:
    return wire.CaseRequest(
        case_number=b.case_number,
        legal_authorization=b.legal_authorization,
        numbers=b.numbers,
        questions=[_CASE_QUESTION.to_wire(q) for q in b.questions],
        deadline=_opt_time_to_wire(b.deadline, f"{path}.deadline"),
    )


def _case_request_from_wire(w: wire.CaseRequest, path: str) -> CaseRequest:
    return CaseRequest(
        case_number=w.case_number,
        legal_authorization=w.legal_authorization,
        numbers=tuple(w.numbers),
        # An unspecified question asks nothing; a list cannot hold a None for it.
        questions=tuple(
            _CASE_QUESTION.required_from_wire(q, f"{path}.questions[{i}]")
            for i, q in enumerate(w.questions)
        ),
        deadline=_opt_time_from_wire(w, "deadline", path),
    )


def _sealed_box_to_wire(s: SealedBox | None) -> wire.SealedBox | None:
    if s is None:
        return None
    return wire.SealedBox(
        suite=s.suite,
        recipient=s.recipient,
        recipient_key_id=s.recipient_key_id,
        ciphertext=s.ciphertext,
    )


def _sealed_box_from_wire(w: wire.SealedBox) -> SealedBox:
    return SealedBox(
        suite=w.suite,
        recipient=w.recipient,
        recipient_key_id=w.recipient_key_id,
        ciphertext=w.ciphertext,
    )


def _case_response_to_wire(b: CaseResponse) -> wire.CaseResponse:
    return wire.CaseResponse(sealed_answer=_sealed_box_to_wire(b.sealed_answer))


def _case_response_from_wire(w: wire.CaseResponse) -> CaseResponse:
    sealed = _sealed_box_from_wire(w.sealed_answer) if w.HasField("sealed_answer") else None
    return CaseResponse(sealed_answer=sealed)


def _subscriber_record_to_wire(r: SubscriberRecord, path: str) -> wire.SubscriberRecord:
    return wire.SubscriberRecord(
        number=r.number,
        subscriber_name=r.subscriber_name,
        id_number=r.id_number,
        registered_at=_opt_time_to_wire(r.registered_at, f"{path}.registered_at"),
        channel=_sales_channel_to_wire(r.channel),
        real_name_state=_REAL_NAME_STATE.to_wire(r.real_name_state),
        other_numbers_under_id=r.other_numbers_under_id,
    )


def _subscriber_record_from_wire(w: wire.SubscriberRecord, path: str) -> SubscriberRecord:
    return SubscriberRecord(
        number=w.number,
        subscriber_name=w.subscriber_name,
        id_number=w.id_number,
        registered_at=_opt_time_from_wire(w, "registered_at", path),
        channel=_opt_channel_from_wire(w),
        real_name_state=_REAL_NAME_STATE.from_wire(w.real_name_state, f"{path}.real_name_state"),
        other_numbers_under_id=tuple(w.other_numbers_under_id),
    )


def _optional_enum(codec: _EnumCodec[_E, _W], raw: _W, path: str, i: int, name: str
                   ) -> _E | None:
    """An optional enum of the ``i``-th line (its path is built only for an error)."""
    if raw == codec._unspecified:
        return None
    value = codec._from_wire.get(raw)
    return value if value is not None else codec.from_wire(raw, f"{path}.outcomes[{i}].{name}")


def _check_outcome_line(outcome: ActionOutcome | None, verdict: Verdict | None,
                        forwarded_to: str, path: str) -> None:
    """A Circular line says what became of its number once: a carrier's outcome or the
    bureau's verdict, and names a bureau only when it forwarded the number there."""
    if outcome is not None and verdict is not None:
        raise InvalidBodyError(f"{path} has both an outcome and a verdict: give one")
    if forwarded_to and verdict is not Verdict.FORWARDED:
        raise InvalidBodyError(f"{path}.forwarded_to is set but the verdict is not FORWARDED")


def _circular_to_wire(b: Circular, path: str) -> wire.Circular:
    # A bulk circular's lines share their decision time: converted (and checked) once.
    w = wire.Circular(summary=b.summary)
    add = w.outcomes.add
    times: dict[datetime, Timestamp] = {}
    outcomes = _ACTION_OUTCOME.to_wire
    verdicts = _VERDICT.to_wire
    for i, o in enumerate(b.outcomes):
        decided_ts = _time_to_wire_once(times, o.decided_at, path,
                                        at=("outcomes", i, "decided_at"))
        add(number=o.number, outcome=outcomes(o.outcome), carrier_node=o.carrier_node,
            detail=o.detail, report_id=o.report_id, decided_at=decided_ts,
            verdict=verdicts(o.verdict), forwarded_to=o.forwarded_to,
            already_known=o.already_known)
    return w


def _circular_from_wire(w: wire.Circular, path: str) -> Circular:
    # Each line's checks in field order; each distinct decision time converted once.
    times: dict[tuple[int, int], datetime] = {}
    lines = []
    for i, o in enumerate(w.outcomes):
        outcome = _optional_enum(_ACTION_OUTCOME, o.outcome, path, i, "outcome")
        verdict = _optional_enum(_VERDICT, o.verdict, path, i, "verdict")
        if (outcome is not None and verdict is not None) or \
                (o.forwarded_to and verdict is not Verdict.FORWARDED):
            _check_outcome_line(outcome, verdict, o.forwarded_to, f"{path}.outcomes[{i}]")
        decided_at = _time_from_wire_once(times, o.decided_at, path,
                                          at=("outcomes", i, "decided_at")) \
            if o.HasField("decided_at") else None
        lines.append(NumberOutcome(number=o.number, outcome=outcome, carrier_node=o.carrier_node,
                                   detail=o.detail, report_id=o.report_id,
                                   decided_at=decided_at, verdict=verdict,
                                   forwarded_to=o.forwarded_to,
                                   already_known=o.already_known))
    return Circular(outcomes=tuple(lines), summary=w.summary)


def _penalty_to_wire(b: Penalty) -> wire.Penalty:
    return wire.Penalty(
        violation=b.violation,
        legal_basis=b.legal_basis,
        measure=b.measure,
        channel=_sales_channel_to_wire(b.channel),
        numbers=b.numbers,
        evidence=b.evidence,
    )


def _penalty_from_wire(w: wire.Penalty) -> Penalty:
    return Penalty(
        violation=w.violation,
        legal_basis=w.legal_basis,
        measure=w.measure,
        channel=_opt_channel_from_wire(w),
        numbers=tuple(w.numbers),
        evidence=tuple(w.evidence),
    )


def _appeal_to_wire(b: Appeal, path: str) -> wire.Appeal:
    return wire.Appeal(
        number=b.number,
        grounds=b.grounds,
        notice_id=b.notice_id,
        decide_by=_opt_time_to_wire(b.decide_by, f"{path}.decide_by"),
    )


def _appeal_from_wire(w: wire.Appeal, path: str) -> Appeal:
    return Appeal(
        number=w.number,
        grounds=w.grounds,
        notice_id=w.notice_id,
        decide_by=_opt_time_from_wire(w, "decide_by", path),
    )


def _appeal_decision_to_wire(b: AppealDecision) -> wire.AppealDecision:
    return wire.AppealDecision(
        number=b.number,
        outcome=_APPEAL_OUTCOME.to_wire(b.outcome),
        reasoning=b.reasoning,
        appeal_id=b.appeal_id,
    )


def _appeal_decision_from_wire(w: wire.AppealDecision, path: str) -> AppealDecision:
    return AppealDecision(
        number=w.number,
        outcome=_APPEAL_OUTCOME.required_from_wire(w.outcome, f"{path}.outcome"),
        reasoning=w.reasoning,
        appeal_id=w.appeal_id,
    )


def _withdrawal_to_wire(b: Withdrawal) -> wire.Withdrawal:
    return wire.Withdrawal(
        withdrawn_message_id=b.withdrawn_message_id,
        reason=b.reason,
        numbers=b.numbers,
        origin_envelope=b.origin_envelope,
    )


def _withdrawal_from_wire(w: wire.Withdrawal) -> Withdrawal:
    return Withdrawal(
        withdrawn_message_id=w.withdrawn_message_id,
        reason=w.reason,
        numbers=tuple(w.numbers),
        origin_envelope=w.origin_envelope,
    )


def _escalation_to_wire(b: Escalation, path: str) -> wire.Escalation:
    return wire.Escalation(
        kind=_ESCALATION_KIND.to_wire(b.escalation_kind),
        subject_node=b.subject_node,
        subject_message_id=b.subject_message_id,
        detail=b.detail,
        deadline=_opt_time_to_wire(b.deadline, f"{path}.deadline"),
        evidence=b.evidence,
    )


def _escalation_from_wire(w: wire.Escalation, path: str) -> Escalation:
    return Escalation(
        escalation_kind=_ESCALATION_KIND.required_from_wire(w.kind, f"{path}.kind"),
        subject_node=w.subject_node,
        subject_message_id=w.subject_message_id,
        detail=w.detail,
        deadline=_opt_time_from_wire(w, "deadline", path),
        evidence=tuple(w.evidence),
    )


def _progress_count_to_wire(c: ProgressCount, path: str) -> wire.ProgressCount:
    return wire.ProgressCount(
        carrier_node=c.carrier_node,
        category=_CATEGORY.to_wire(c.category),
        reported=_uint32(c.reported, f"{path}.reported"),
        shut_down=_uint32(c.shut_down, f"{path}.shut_down"),
        pending=_uint32(c.pending, f"{path}.pending"),
        refused=_uint32(c.refused, f"{path}.refused"),
        overdue=_uint32(c.overdue, f"{path}.overdue"),
    )


def _progress_count_from_wire(w: wire.ProgressCount, path: str) -> ProgressCount:
    return ProgressCount(
        carrier_node=w.carrier_node,
        category=_CATEGORY.from_wire(w.category, f"{path}.category"),
        reported=w.reported,
        shut_down=w.shut_down,
        pending=w.pending,
        refused=w.refused,
        overdue=w.overdue,
    )


def _progress_report_to_wire(b: ProgressReport, path: str) -> wire.ProgressReport:
    return wire.ProgressReport(
        province=b.province,
        counts=[_progress_count_to_wire(c, f"{path}.counts[{i}]") for i, c in enumerate(b.counts)],
        as_of=_opt_time_to_wire(b.as_of, f"{path}.as_of"),
    )


def _progress_report_from_wire(w: wire.ProgressReport, path: str) -> ProgressReport:
    return ProgressReport(
        province=w.province,
        counts=tuple(
            _progress_count_from_wire(c, f"{path}.counts[{i}]") for i, c in enumerate(w.counts)
        ),
        as_of=_opt_time_from_wire(w, "as_of", path),
    )


# Each body kind: its field of the Message oneof, and its conversion each way (the kind
# is the path of the body's fields in error messages). One table, so a body added to
# proto/ and this module is added here once.
_BODY_CODECS: dict[str, tuple[Callable[[Any], ProtoMessage], Callable[[Any], Body]]] = {
    "number_report": (lambda b: _number_report_to_wire(b, "number_report"),
                      lambda w: _number_report_from_wire(w, "number_report")),
    "shutdown_notice": (lambda b: _shutdown_notice_to_wire(b, "shutdown_notice"),
                        lambda w: _shutdown_notice_from_wire(w, "shutdown_notice")),
    "action_report": (lambda b: _action_report_to_wire(b, "action_report"),
                      lambda w: _action_report_from_wire(w, "action_report")),
    "channel_report": (lambda b: _channel_report_to_wire(b, "channel_report"),
                       lambda w: _channel_report_from_wire(w, "channel_report")),
    "id_concentration_report": (
        lambda b: _id_concentration_report_to_wire(b, "id_concentration_report"),
        lambda w: _id_concentration_report_from_wire(w, "id_concentration_report")),
    "case_request": (lambda b: _case_request_to_wire(b, "case_request"),
                     lambda w: _case_request_from_wire(w, "case_request")),
    "case_response": (_case_response_to_wire, _case_response_from_wire),
    "circular": (lambda b: _circular_to_wire(b, "circular"),
                 lambda w: _circular_from_wire(w, "circular")),
    "penalty": (_penalty_to_wire, _penalty_from_wire),
    "appeal": (lambda b: _appeal_to_wire(b, "appeal"), lambda w: _appeal_from_wire(w, "appeal")),
    "appeal_decision": (_appeal_decision_to_wire,
                        lambda w: _appeal_decision_from_wire(w, "appeal_decision")),
    "withdrawal": (_withdrawal_to_wire, _withdrawal_from_wire),
    "escalation": (lambda b: _escalation_to_wire(b, "escalation"),
                   lambda w: _escalation_from_wire(w, "escalation")),
    "progress_report": (lambda b: _progress_report_to_wire(b, "progress_report"),
                        lambda w: _progress_report_from_wire(w, "progress_report")),
}
if set(_BODY_CODECS) != {t.kind for t in get_args(Body)}:
    raise AssertionError("exchange.messages: _BODY_CODECS does not cover every Body")


def _body_to_wire(body: Body, w: wire.Message) -> None:
    to_wire, _ = _BODY_CODECS[body.kind]
    getattr(w, body.kind).CopyFrom(to_wire(body))


def _body_from_wire(w: wire.Message) -> Body:
    kind = w.WhichOneof("body")
    if kind is None:
        raise InvalidBodyError("message has no body")
    codec = _BODY_CODECS.get(kind)
    if codec is None:
        # Only reachable if the generated code grows a body this module does not know.
        raise InvalidBodyError(f"unsupported body {kind!r}")
    return codec[1](getattr(w, kind))


# ---------------------------------------------------------------------------------------
# Public codec.
# ---------------------------------------------------------------------------------------


def encode_message(msg: Message) -> bytes:
    """Serialize ``msg`` as a ``bcx.v1.Message`` (deterministic field and map order).

    Raises InvalidBodyError for values the wire cannot carry: naive or out-of-range
    datetimes, integers beyond uint32.
    """
    h = msg.header
    w = wire.Message(
        message_id=h.message_id,
        sender=h.sender,
        recipient=h.recipient,
        created_at=_time_to_wire(h.created_at, "created_at"),
        expires_at=_opt_time_to_wire(h.expires_at, "expires_at"),
        in_reply_to=h.in_reply_to,
        thread=h.thread,
    )
    _body_to_wire(msg.body, w)
    return w.SerializeToString(deterministic=True)


def decode_message(payload: bytes) -> Message:
    """Parse a serialized ``bcx.v1.Message`` and check its structure.

    Raises MalformedEnvelopeError if ``payload`` is not a protobuf Message at all, and
    InvalidBodyError, naming the field, if it parses but lacks what every message needs.
    """
    try:
        w = wire.Message.FromString(payload)
    except DecodeError as e:
        raise MalformedEnvelopeError(f"payload is not a bcx.v1.Message: {e}") from e
    if not w.HasField("created_at"):
        raise InvalidBodyError("created_at is unset")
    header = Header(
        message_id=w.message_id,
        sender=w.sender,
        recipient=w.recipient,
        created_at=_time_from_wire(w.created_at, "created_at"),
        expires_at=_opt_time_from_wire(w, "expires_at", ""),
        in_reply_to=w.in_reply_to,
        thread=w.thread,
    )
    return Message(header=header, body=_body_from_wire(w))


def encode_case_answer(answer: CaseAnswer) -> bytes:
    """Serialize the plaintext of a CaseResponse, to be sealed to the requesting node."""
    w = wire.CaseAnswer(
        records=[
            _subscriber_record_to_wire(r, f"case_answer.records[{i}]")
            for i, r in enumerate(answer.records)
        ],
        note=answer.note,
    )
    return w.SerializeToString(deterministic=True)


def decode_case_answer(plaintext: bytes) -> CaseAnswer:
    """Parse an opened CaseResponse; raises InvalidBodyError if it is not a CaseAnswer."""
    try:
        w = wire.CaseAnswer.FromString(plaintext)
    except DecodeError as e:
        raise InvalidBodyError(f"case answer is not a bcx.v1.CaseAnswer: {e}") from e
    return CaseAnswer(
        records=tuple(
            _subscriber_record_from_wire(r, f"case_answer.records[{i}]")
            for i, r in enumerate(w.records)
        ),
        note=w.note,
    )
