"""What a carrier decides, pure: per number of a notice, a withdrawal, a case request.

Each function takes the subscribers its handler looked up (and the channels and cards
it read) and returns what to change and what to answer; nothing here calls the
subscriber system, reads a table or sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from exchange import messages
from exchange.errors import InvalidBodyError, OperationError
from exchange.messages import (
    ActionOutcome,
    CaseAnswer,
    CaseQuestion,
    IdHolder,
    NumberAction,
    RealNameState,
    SalesChannel,
    SubscriberRecord,
    VerificationOutcome,
)
from nodes.carrier.subscribers import (
    ACTIVE,
    INACTIVE,
    PORTED_OUT,
    SUSPENDED,
    Holder,
    Subscriber,
    id_hmac,
)

# The HPKE context of a sealed case answer, followed by the request's message id: an
# answer opens only as the answer to the request it names.
CASE_CONTEXT = b"bcx case-response v1\x00"
UNTRACED_STATES = frozenset({RealNameState.UNREGISTERED, RealNameState.FALSE_IDENTITY})

# --- A shutdown notice ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: ActionOutcome
    suspend: bool = False
    ported_to: str = ""
    reason: str = ""


def decide(sub: Subscriber | None) -> Decision:
    """What a carrier does with one number of a shutdown notice (pure)."""
    if sub is None:
        return Decision(ActionOutcome.NOT_OUR_SUBSCRIBER)
    if sub.status == PORTED_OUT:
        return Decision(ActionOutcome.NOT_OUR_SUBSCRIBER, ported_to=sub.ported_to)
    if sub.status in (INACTIVE, SUSPENDED):
        return Decision(ActionOutcome.ALREADY_INACTIVE)
    if sub.protected_reason:
        return Decision(ActionOutcome.REFUSED, reason=sub.protected_reason)
    assert sub.status == ACTIVE
    return Decision(ActionOutcome.SHUT_DOWN, suspend=True)


def check_notice(notice: messages.ShutdownNotice) -> None:
    if notice.deadline is None:
        raise InvalidBodyError("shutdown_notice without a deadline")


def decide_all(listed: Sequence[str], found: Mapping[str, Subscriber]
               ) -> dict[str, Decision]:
    """Per number of the notice, once each, in the notice's order."""
    return {n: decide(found.get(n)) for n in listed}


def to_suspend(decided: Mapping[str, Decision]) -> list[str]:
    return [n for n, d in decided.items() if d.suspend]


def _shows_channel(sub: Subscriber) -> bool:
    """A line's sales channel is this carrier's to tell unless the line ported out."""
    return bool(sub.outlet_code) and sub.status != PORTED_OUT


def outlets_to_show(decided: Mapping[str, Decision], found: Mapping[str, Subscriber]
                    ) -> list[str]:
    """The outlets whose sales channel the action report names, once each, first seen
    first: those of this carrier's subscribers (a ported-out line is another's)."""
    out: dict[str, None] = {}
    for n in decided:
        sub = found.get(n)
        if sub is not None and _shows_channel(sub):
            out.setdefault(sub.outlet_code)
    return list(out)


@dataclass(frozen=True, slots=True)
class ChannelFinding:
    """Cards an outlet sold without (true) real-name registration, cut on this notice."""

    outlet_code: str
    numbers: tuple[str, ...]

    @property
    def findings(self) -> str:
        return (f"{len(self.numbers)} card(s) shut down on notice were activated through "
                "this outlet without a verified real-name registration")


@dataclass(frozen=True, slots=True)
class NoticePlan:
    actions: tuple[NumberAction, ...]  # one per number, in the notice's order
    channel_reports: tuple[ChannelFinding, ...]  # by outlet code; empty unless asked


def plan_notice(decided: Mapping[str, Decision], found: Mapping[str, Subscriber], *,
                channels: Mapping[str, SalesChannel | None],
                cards: Mapping[str, Sequence[str]], investigate: bool, now: datetime,
                me: str) -> NoticePlan:
    """The answer to a notice: ``channels`` by outlet code (``outlets_to_show``),
    ``cards`` the numbers under each subscriber's ID."""
    actions = []
    for n, d in decided.items():
        sub = found.get(n)
        shown = sub is not None and _shows_channel(sub)
        actions.append(NumberAction(
            number=n, outcome=d.outcome, ported_to_hint=d.ported_to, refusal_reason=d.reason,
            acted_at=now, acted_by=me,
            channel=channels.get(sub.outlet_code) if sub is not None and shown else None,
            activated_at=sub.activated_at if sub else None,
            real_name_state=sub.real_name_state if sub else None,
            cards_under_same_id=len(cards.get(sub.id_number, ())) if sub else 0))
    findings = untraced_sales(decided, found) if investigate else ()
    return NoticePlan(tuple(actions), findings)


def untraced_sales(decided: Mapping[str, Decision], found: Mapping[str, Subscriber]
                   ) -> tuple[ChannelFinding, ...]:
    """Per outlet (sorted), the numbers cut that it sold without real-name registration."""
    by_outlet: dict[str, list[str]] = {}
    for n, d in decided.items():
        sub = found.get(n)
        if d.outcome is ActionOutcome.SHUT_DOWN and sub is not None and sub.outlet_code \
                and sub.real_name_state in UNTRACED_STATES:
            by_outlet.setdefault(sub.outlet_code, []).append(n)
    return tuple(ChannelFinding(o, tuple(nums)) for o, nums in sorted(by_outlet.items()))


# --- A withdrawal -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestorePlan:
    restore: tuple[str, ...]  # the lines this notice suspended, still suspended
    actions: tuple[NumberAction, ...]  # one per number the withdrawal lists


def plan_restore(withdrawal: messages.Withdrawal, found: Mapping[str, Subscriber], *,
                 now: datetime, me: str) -> RestorePlan:
    """Restore only what the withdrawn notice cut; say of every other number why not."""
    mine = tuple(n for n, s in found.items()
                 if s.status == SUSPENDED and s.suspended_by == withdrawal.withdrawn_message_id)
    restored = set(mine)
    actions = tuple(NumberAction(
        number=n, outcome=ActionOutcome.RESTORED if n in restored
        else ActionOutcome.ALREADY_INACTIVE if n in found else ActionOutcome.NOT_OUR_SUBSCRIBER,
        acted_at=now, acted_by=me,
        refusal_reason="" if n in restored else "not suspended by this notice")
        for n in withdrawal.numbers)
    return RestorePlan(mine, actions)


# --- A case request ---------------------------------------------------------------------


def check_case_request(request: messages.CaseRequest) -> None:
    if not request.legal_authorization.strip():
        raise InvalidBodyError("case_request without a legal authorization reference")
    if request.deadline is None:
        raise InvalidBodyError("case_request without a deadline")


def _served(sub: Subscriber | None) -> Subscriber | None:
    return None if sub is None or sub.status == PORTED_OUT else sub


def channel_lookups(request: messages.CaseRequest, found: Mapping[str, Subscriber]
                    ) -> list[str]:
    """The outlet codes whose channel the answer names: one per subscriber record, when
    the request asks for activation channels."""
    if CaseQuestion.ACTIVATION_CHANNEL not in request.questions:
        return []
    return [sub.outlet_code for n in request.numbers if (sub := _served(found.get(n)))]


def plan_case_answer(request: messages.CaseRequest, found: Mapping[str, Subscriber], *,
                     others: Mapping[str, Sequence[str]],
                     channels: Mapping[str, SalesChannel | None], me: str) -> CaseAnswer:
    """What the police asked and nothing more: registration only when asked, a record
    with the number alone for a line this carrier does not serve."""
    want = set(request.questions)
    registration = CaseQuestion.SUBSCRIBER_REGISTRATION in want
    records = []
    for n in request.numbers:
        sub = _served(found.get(n))
        if sub is None:
            records.append(SubscriberRecord(number=n))
            continue
        records.append(SubscriberRecord(
            number=n,
            subscriber_name=sub.subscriber_name if registration else "",
            id_number=sub.id_number if registration else "",
            registered_at=sub.registered_at,
            real_name_state=sub.real_name_state,
            channel=channels.get(sub.outlet_code)
            if CaseQuestion.ACTIVATION_CHANNEL in want else None,
            other_numbers_under_id=tuple(x for x in others.get(sub.id_number, ()) if x != n)))
    missing = sum(1 for r in records if not r.real_name_state)
    return CaseAnswer(records=tuple(records), note=(
        f"{len(records) - missing} of {len(records)} number(s) are subscribers of {me}"))


# --- Appeals, ID concentration, deadlines -----------------------------------------------


def check_grounds(grounds: str) -> None:
    if not grounds.strip():
        raise OperationError("an appeal needs its grounds (--grounds)")


def check_appeal(e164: str, sub: Subscriber | None) -> bytes:
    """The notice that cut ``e164``, if a subscriber may appeal it."""
    if sub is None or sub.status != SUSPENDED or sub.suspended_by is None:
        raise OperationError(f"{e164} is not a line this carrier suspended on a notice")
    return sub.suspended_by


def to_restore_on_decision(decision: messages.AppealDecision, number: str) -> list[str]:
    """A lifted appeal restores the appeal's own line; an upheld one nothing."""
    return [number] if decision.outcome is messages.AppealOutcome.LIFTED else []


def verification_outcome(states: Sequence[RealNameState]) -> VerificationOutcome:
    """Every card truly registered: confirmed; otherwise the holder is pending verification."""
    if all(s is RealNameState.REGISTERED for s in states):
        return VerificationOutcome.CONFIRMED
    return VerificationOutcome.PENDING


def holder_lines(holders: Iterable[Holder], *, key: bytes) -> tuple[IdHolder, ...]:
    """The holders as reported: each ID number keyed-hashed with ``key`` (the number
    itself stays with the carrier)."""
    return tuple(IdHolder(
        id_hmac=id_hmac(key, h.id_number), card_count=len(h.numbers),
        outcome=verification_outcome(h.states), numbers=h.numbers) for h in holders)


@dataclass(frozen=True, slots=True)
class UndecidedAppeal:
    appeal_id: bytes
    bureau: str
    number: str
    decide_by: datetime


def overdue_appeal_detail(appeal: UndecidedAppeal) -> str:
    return (f"appeal {appeal.appeal_id.hex()} for {appeal.number} undecided past its "
            f"deadline {appeal.decide_by.isoformat()}")
