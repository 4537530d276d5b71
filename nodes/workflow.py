"""What every agency's workflow shares: number statuses, feedback wording, routing, times.

Pure: values in, values out. The role modules (police, bureau, carrier, commerce,
office) apply these inside the node's ledger transactions.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from exchange import numbers
from exchange.errors import NumberError, OperationError, UnknownMemberError
from exchange.identity import Directory, Member, Role
from exchange.ledger.entries import from_micros, to_micros
from exchange.messages import ActionOutcome, NumberOutcome, parse_message_id

__all__ = ["from_micros", "to_micros"]

# phonenumbers' carrier names for mainland blocks -> the carrier ids in node ids.
CARRIER_IDS = {"China Mobile": "cmcc", "China Unicom": "cucc", "China Telecom": "ctcc"}

# Numbers per message a node sends (reports, notices, circulars): far below the
# receivers' limit, and small enough that one message is one quick transaction.
CHUNK = 1000

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for k in range(0, len(items), size):
        yield items[k:k + size]


class Status(enum.StrEnum):
    """What became of one reported number, as a node sees it."""

    REPORTED = "reported"  # police: sent, nothing heard yet
    NOTICED = "noticed"  # a shutdown notice is with the carrier
    FORWARDED = "forwarded"  # another province's bureau has it
    REJECTED = "rejected"  # invalid or never-actionable; with the reason
    UNROUTABLE = "unroutable"  # no member carrier serves it
    SHUT_DOWN = "shut_down"
    ALREADY_INACTIVE = "already_inactive"
    NOT_OUR_SUBSCRIBER = "not_our_subscriber"  # and no other carrier to ask
    REFUSED = "refused"
    RESTORED = "restored"  # an appeal lifted the shutdown
    WITHDRAWN = "withdrawn"  # the reporter retracted it


FINAL = frozenset({
    Status.REJECTED, Status.UNROUTABLE, Status.SHUT_DOWN, Status.ALREADY_INACTIVE,
    Status.NOT_OUR_SUBSCRIBER, Status.REFUSED, Status.RESTORED, Status.WITHDRAWN,
})

STATUS_OF_OUTCOME = {
    ActionOutcome.SHUT_DOWN: Status.SHUT_DOWN,
    ActionOutcome.ALREADY_INACTIVE: Status.ALREADY_INACTIVE,
    ActionOutcome.NOT_OUR_SUBSCRIBER: Status.NOT_OUR_SUBSCRIBER,
    ActionOutcome.REFUSED: Status.REFUSED,
    ActionOutcome.RESTORED: Status.RESTORED,
}
OUTCOME_OF_STATUS = {v: k for k, v in STATUS_OF_OUTCOME.items()}


def feedback(number: str, status: Status, *, detail: str = "", carrier_node: str = "",
             report_id: bytes, decided_at: datetime) -> NumberOutcome:
    """One number's line in a Circular to its reporter.

    A carrier's outcome travels as the ``outcome`` enum; the bureau's own verdicts
    (accepted and noticed, forwarded, rejected, unroutable, withdrawn) have no enum
    value, so they travel as ``detail`` = "<status>: <reason>".
    """
    outcome, text = _wording(status, detail)
    return NumberOutcome(number=number, outcome=outcome, carrier_node=carrier_node,
                         detail=text, report_id=report_id, decided_at=decided_at)


@functools.lru_cache(maxsize=1024)
def _wording(status: Status, detail: str) -> tuple[ActionOutcome | None, str]:
    # Once per distinct (status, detail): a bulk Circular repeats a handful of them.
    outcome = OUTCOME_OF_STATUS.get(status)
    text = detail if outcome is not None else f"{status.value}: {detail}" if detail \
        else status.value
    return outcome, text


def status_of_feedback(line: NumberOutcome) -> tuple[Status, str]:
    """The status and reason a Circular line reports (the inverse of ``feedback``)."""
    if line.outcome is not None:
        return STATUS_OF_OUTCOME[line.outcome], line.detail
    head, _, reason = line.detail.partition(": ")
    status = _STATUS_OF_VALUE.get(head)
    if status is None:
        return Status.NOTICED, line.detail
    return status, reason


_STATUS_OF_VALUE = {s.value: s for s in Status}


# --- Routing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Router:
    """Which carrier node and province serve a number: the directory's plan over the default.

    The default plan is phonenumbers' offline data (host carrier and home province of
    every 7-digit block); the office's directory overrides it for reseller blocks,
    ported ranges and local corrections (docs/formats.md#numbers).
    """

    plan: numbers.NumberingPlan

    @classmethod
    def for_directory(cls, directory: Directory) -> Router:
        return cls(numbers.NumberingPlan(directory.numbering_plan))

    def route(self, number: str) -> numbers.Route:
        block = self.block_of(number)
        return numbers.Route(number=number, carrier_node=block.carrier_node,
                             province=block.province, reseller=block.reseller,
                             block=block.prefix)

    def block_of(self, number: str) -> numbers.NumberBlock:
        """The block serving ``number`` (what ``route`` says, without a Route per number)."""
        # The directory's plan holds a few override blocks: most numbers fall through to
        # the default plan, without an error built for each (block_of returns None).
        block = self.plan.block_of(number)
        if block is None:
            prefix = number[:_BLOCK_KEY]
            block = _BLOCKS.get(prefix)
            if block is None:
                block = numbers.default_block(number, carriers=CARRIER_IDS)
                if len(_BLOCKS) < _MAX_BLOCKS:
                    _BLOCKS[prefix] = block
        return block


# phonenumbers' data resolves mainland mobiles by their first 7 digits ("+86" and 7 = 10
# characters); its lookups cost more than the rest of a report's handling, so each block
# found is remembered (there are about 50,000 allocated blocks).
_BLOCK_KEY = 10
_MAX_BLOCKS = 1 << 16
_BLOCKS: dict[str, numbers.NumberBlock] = {}


@functools.lru_cache(maxsize=1 << 16)
def judge_number(raw: str) -> tuple[str, str]:
    """``(E.164, "")`` for an actionable number, ``("", reason)`` otherwise (pure, cached)."""
    try:
        return numbers.check_actionable(raw), ""
    except NumberError as e:
        return "", str(e)


class Verdict(enum.Enum):
    REJECT = "reject"
    KNOWN = "known"  # already handled in this province: link, no second notice
    NOTICE = "notice"
    FORWARD = "forward"
    UNROUTABLE = "unroutable"


@dataclass(frozen=True, slots=True)
class Triage:
    """A bureau's decision on one reported number."""

    reported: str  # as the report gave it
    verdict: Verdict
    number: str = ""  # E.164, when it normalised
    target: str = ""  # carrier node (NOTICE) or bureau node (FORWARD)
    reason: str = ""


def triage(
    reported: Iterable[str],
    *,
    province: str,
    known: Iterable[str],
    router: Router,
    directory: Directory,
) -> list[Triage]:
    """Decide, per number of a report, what this province's bureau does with it.

    Invalid and never-actionable numbers are rejected with the reason; a number this
    bureau already handles (``known``) or that appears twice in the report is linked,
    not noticed again; another province's number goes to that province's bureau; the
    rest go to the carrier the numbering plan names, if it is a member.
    """
    known_set = set(known)
    seen: set[str] = set()
    out: list[Triage] = []
    is_carrier: dict[str, bool] = {}  # per carrier node: a bulk report names a few
    for raw in reported:
        number, reason = judge_number(raw)
        if not number:
            out.append(Triage(raw, Verdict.REJECT, reason=reason))
            continue
        if number in known_set or number in seen:
            out.append(Triage(raw, Verdict.KNOWN, number))
            continue
        seen.add(number)
        try:
            block = router.block_of(number)
        except NumberError as e:
            out.append(Triage(raw, Verdict.UNROUTABLE, number, reason=str(e)))
            continue
        if block.province != province:
            try:
                bureau: Member | None = directory.bureau_of(block.province)
            except UnknownMemberError:
                bureau = None
            if bureau is None:
                out.append(Triage(raw, Verdict.UNROUTABLE, number, reason=(
                    f"served in province {block.province!r}, which has no bureau in the "
                    "directory")))
            else:
                out.append(Triage(raw, Verdict.FORWARD, number, target=bureau.node_id))
            continue
        carrier = block.carrier_node
        member_carrier = is_carrier.get(carrier)
        if member_carrier is None:
            member_carrier = is_carrier[carrier] = directory.has_member(carrier) and \
                directory.member(carrier).role is Role.CARRIER
        if not member_carrier:
            out.append(Triage(raw, Verdict.UNROUTABLE, number, reason=(
                f"block {block.prefix} is served by {carrier}, which is not a "
                "carrier in the directory")))
            continue
        out.append(Triage(raw, Verdict.NOTICE, number, target=carrier))
    return out


def message_id_arg(text: str, what: str) -> bytes:
    """A message id an operator typed (32 hex digits, or dashed as a UUID)."""
    try:
        return parse_message_id(text.strip())
    except ValueError as e:
        raise OperationError(f"bad {what} id: {e}") from e


def forward_thread(origin: str, report_id: bytes) -> str:
    """The thread of a report one bureau forwards to another: who reported, which report.

    For people reading a ledger only: no check reads it back; the origin is proven by the
    reporter's envelope the forward carries (rule forwarded-origin)."""
    return f"forwarded:{origin}:{report_id.hex()}"
