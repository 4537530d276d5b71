"""A carrier's node: shut numbers down on notice, answer cases sealed, report channels and IDs.

Handlers run inside the node's ledger transaction: the notice is logged RECEIVED, the
subscriber system suspends the numbers (ACTION entries) and the ActionReport is signed
and queued (SENT) in one commit, so a crash can never leave a number cut and unreported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from exchange import messages, seal
from exchange.errors import InvalidBodyError, OperationError
from exchange.ledger.entries import from_micros, to_micros
from exchange.messages import (
    ActionOutcome,
    ActionReport,
    CaseAnswer,
    CaseQuestion,
    CaseResponse,
    ChannelReport,
    IdConcentrationReport,
    IdHolder,
    NumberAction,
    RealNameState,
    SealedBox,
    SubscriberRecord,
    VerificationOutcome,
)
from exchange.node import Context
from exchange.receive import Accepted
from nodes.models import INSERT_NOTICE_LINE, appeals, case_requests, notices, penalties
from nodes.shared.batching import chunks
from nodes.shared.obligations import raise_overdue
from nodes.subscribers import (
    ACTIVE,
    CONCENTRATION_THRESHOLD,
    INACTIVE,
    PORTED_OUT,
    SUSPENDED,
    Audited,
    SqlSubscriberSystem,
    Subscriber,
    SubscriberSystem,
    hmac_key_id,
    id_hmac,
    id_hmac_key,
)

CASE_CONTEXT = b"bcx case-response v1\x00"
UNTRACED_STATES = frozenset({RealNameState.UNREGISTERED, RealNameState.FALSE_IDENTITY})


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


def subscriber_system(ctx: Context) -> SubscriberSystem:
    return Audited(SqlSubscriberSystem(ctx.conn, carrier_node=ctx.node.node_id),
                   ctx.log_action)


# --- Handlers -------------------------------------------------------------------------


def on_shutdown_notice(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.ShutdownNotice)
    if body.deadline is None:
        raise InvalidBodyError("shutdown_notice without a deadline")
    subs = subscriber_system(ctx)
    found = subs.lookup(body.numbers)
    decisions = {n: decide(found.get(n)) for n in body.numbers}
    subs.suspend([n for n, d in decisions.items() if d.suspend], by=h.message_id, at=ctx.now)
    cards = subs.cards_under_ids(s.id_number for s in found.values())
    channels: dict[str, messages.SalesChannel | None] = {}
    actions = []
    for n, d in decisions.items():
        sub = found.get(n)
        channel = None
        if sub is not None and sub.outlet_code and sub.status != PORTED_OUT:
            if sub.outlet_code not in channels:
                channels[sub.outlet_code] = subs.channel(sub.outlet_code)
            channel = channels[sub.outlet_code]
        actions.append(NumberAction(
            number=n, outcome=d.outcome, ported_to_hint=d.ported_to, refusal_reason=d.reason,
            acted_at=ctx.now, acted_by=ctx.node.node_id, channel=channel,
            activated_at=sub.activated_at if sub else None,
            real_name_state=sub.real_name_state if sub else None,
            cards_under_same_id=len(cards.get(sub.id_number, ())) if sub else 0))
    # The action reports first, so each notice line is written once, with its answer.
    answered_at = to_micros(ctx.now)
    lines = []
    for part in chunks(actions):
        aid = ctx.send(h.sender, ActionReport(actions=tuple(part)), in_reply_to=h.message_id,
                       thread=h.thread)
        lines.extend((h.message_id, a.number, a.outcome.value,
                      a.refusal_reason or a.ported_to_hint, answered_at, aid) for a in part)
    ctx.conn.execute(insert(notices), {
        "notice_id": h.message_id, "bureau": h.sender, "carrier": ctx.node.node_id,
        "category": (body.category or messages.Category.OTHER).value,
        "created_at": to_micros(h.created_at), "deadline": to_micros(body.deadline),
        "numbers_total": len(body.numbers), "answered": len(body.numbers),
        "closed_at": answered_at, "escalated_at": None})
    INSERT_NOTICE_LINE.run(ctx.conn, lines)
    if body.investigate_channel:
        report_channels(ctx, h.sender, found, decisions)


def report_channels(ctx: Context, bureau: str, found: dict[str, Subscriber],
                    decisions: dict[str, Decision]) -> None:
    """One ChannelReport per outlet that sold cards without (true) real-name registration."""
    by_outlet: dict[str, list[str]] = {}
    for n, d in decisions.items():
        sub = found.get(n)
        if d.outcome is ActionOutcome.SHUT_DOWN and sub is not None and sub.outlet_code \
                and sub.real_name_state in UNTRACED_STATES:
            by_outlet.setdefault(sub.outlet_code, []).append(n)
    subs = subscriber_system(ctx)
    for outlet, nums in sorted(by_outlet.items()):
        for part in chunks(nums):
            ctx.send(bureau, ChannelReport(
                channel=subs.channel(outlet), numbers=tuple(part), observed_at=ctx.now,
                findings=f"{len(nums)} card(s) shut down on notice were activated through "
                         "this outlet without a verified real-name registration"))


def on_withdrawal(ctx: Context, acc: Accepted) -> None:
    """A bureau retracts a notice (its report was withdrawn): restore what it cut."""
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.Withdrawal)
    # The notice is one the sender sent this carrier (rule own-notice).
    subs = subscriber_system(ctx)
    found = subs.lookup(body.numbers)
    mine = [n for n, s in found.items()
            if s.status == SUSPENDED and s.suspended_by == body.withdrawn_message_id]
    subs.restore(mine, at=ctx.now)
    restored = set(mine)
    actions = tuple(NumberAction(
        number=n, outcome=ActionOutcome.RESTORED if n in restored
        else ActionOutcome.ALREADY_INACTIVE if n in found else ActionOutcome.NOT_OUR_SUBSCRIBER,
        acted_at=ctx.now, acted_by=ctx.node.node_id,
        refusal_reason="" if n in restored else "not suspended by this notice")
        for n in body.numbers)
    for part in chunks(actions):
        ctx.send(h.sender, ActionReport(actions=tuple(part), withdrawal_id=h.message_id),
                 in_reply_to=body.withdrawn_message_id)


def on_case_request(ctx: Context, acc: Accepted) -> None:
    """Answer a police case request, sealed to the requesting node alone."""
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.CaseRequest)
    if not body.legal_authorization.strip():
        raise InvalidBodyError("case_request without a legal authorization reference")
    if body.deadline is None:
        raise InvalidBodyError("case_request without a deadline")
    subs = subscriber_system(ctx)
    found = subs.lookup(body.numbers)
    others = subs.cards_under_ids(s.id_number for s in found.values()) \
        if CaseQuestion.OTHER_CARDS_UNDER_ID in body.questions else {}
    records = []
    for n in body.numbers:
        sub = found.get(n)
        if sub is None or sub.status == PORTED_OUT:
            records.append(SubscriberRecord(number=n))
            continue
        want = set(body.questions)
        records.append(SubscriberRecord(
            number=n,
            subscriber_name=sub.subscriber_name
            if CaseQuestion.SUBSCRIBER_REGISTRATION in want else "",
            id_number=sub.id_number if CaseQuestion.SUBSCRIBER_REGISTRATION in want else "",
            registered_at=sub.registered_at,
            real_name_state=sub.real_name_state,
            channel=subs.channel(sub.outlet_code)
            if CaseQuestion.ACTIVATION_CHANNEL in want else None,
            other_numbers_under_id=tuple(x for x in others.get(sub.id_number, ()) if x != n)))
    missing = sum(1 for r in records if not r.real_name_state)
    answer = CaseAnswer(records=tuple(records), note=(
        f"{len(records) - missing} of {len(records)} number(s) are subscribers of "
        f"{ctx.node.node_id}"))
    requester = ctx.directory.member(h.sender)
    sealed = seal.seal(messages.encode_case_answer(answer), recipient=h.sender,
                       recipient_public_key=requester.hpke_public_key,
                       context=CASE_CONTEXT + h.message_id)
    ctx.conn.execute(insert(case_requests), {
        "request_id": h.message_id, "police": h.sender, "carrier": ctx.node.node_id,
        "case_number": body.case_number, "legal_authorization": body.legal_authorization,
        "numbers": ",".join(body.numbers), "questions": ",".join(q.value for q in body.questions),
        "created_at": to_micros(h.created_at), "deadline": to_micros(body.deadline),
        "answered_at": to_micros(ctx.now), "response_id": None, "escalated_at": None})
    response_id = ctx.send(h.sender, CaseResponse(sealed_answer=SealedBox(
        suite=sealed.suite, recipient=sealed.recipient,
        recipient_key_id=sealed.recipient_key_id, ciphertext=sealed.ciphertext)),
        in_reply_to=h.message_id, thread=body.case_number)
    ctx.conn.execute(update(case_requests).where(case_requests.c.request_id == h.message_id)
                     .values(response_id=response_id))


def on_penalty(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.Penalty)
    ctx.conn.execute(insert(penalties), {
        "penalty_id": h.message_id, "bureau": h.sender, "carrier": ctx.node.node_id,
        "outlet_code": body.channel.outlet_code if body.channel else "",
        "violation": body.violation, "legal_basis": body.legal_basis, "measure": body.measure,
        "numbers_total": len(body.numbers), "issued_at": to_micros(h.created_at)})


def on_appeal_decision(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.AppealDecision)
    # An open appeal of this carrier to the sender, about the number named (rules
    # open-appeal, appeal-number): the line restored is the appeal's own, once.
    row = ctx.conn.execute(select(appeals.c.number).where(
        appeals.c.appeal_id == body.appeal_id)).one()
    ctx.conn.execute(update(appeals).where(appeals.c.appeal_id == body.appeal_id).values(
        decided_at=to_micros(ctx.now), outcome=body.outcome.value, reasoning=body.reasoning,
        decision_id=h.message_id))
    if body.outcome is messages.AppealOutcome.LIFTED:
        subscriber_system(ctx).restore([row.number], at=ctx.now)


HANDLERS = {
    "shutdown_notice": on_shutdown_notice,
    "withdrawal": on_withdrawal,
    "case_request": on_case_request,
    "penalty": on_penalty,
    "appeal_decision": on_appeal_decision,
}


# --- Operator commands ----------------------------------------------------------------


def appeal(ctx: Context, *, number: str, grounds: str) -> dict[str, Any]:
    """A subscriber contests a shutdown: appeal to the bureau whose notice cut the line."""
    from exchange import numbers as numbering

    if not grounds.strip():
        raise OperationError("an appeal needs its grounds (--grounds)")
    e164 = numbering.normalise(number)
    sub = subscriber_system(ctx).lookup([e164]).get(e164)
    if sub is None or sub.status != SUSPENDED or sub.suspended_by is None:
        raise OperationError(f"{e164} is not a line this carrier suspended on a notice")
    notice = ctx.conn.execute(select(notices).where(
        notices.c.notice_id == sub.suspended_by)).first()
    if notice is None:
        raise OperationError(f"{e164} was suspended by {sub.suspended_by.hex()}, "
                             "which is no notice this node holds")
    decide_by = ctx.now + timedelta(hours=ctx.node.config.deadlines.appeal_hours)
    appeal_id = ctx.send(notice.bureau, messages.Appeal(
        number=e164, grounds=grounds, notice_id=notice.notice_id, decide_by=decide_by),
        in_reply_to=notice.notice_id)
    ctx.conn.execute(insert(appeals), {
        "appeal_id": appeal_id, "carrier": ctx.node.node_id, "bureau": notice.bureau,
        "number": e164, "grounds": grounds, "notice_id": notice.notice_id,
        "created_at": to_micros(ctx.now), "decide_by": to_micros(decide_by),
        "decided_at": None, "outcome": None, "reasoning": "", "decision_id": None,
        "escalated_at": None})
    return {"appeal_id": appeal_id.hex(), "bureau": notice.bureau, "number": e164,
            "decide_by": decide_by.isoformat()}


def id_concentration(ctx: Context, *, threshold: int = CONCENTRATION_THRESHOLD
                     ) -> dict[str, Any]:
    """Report ID holders with ``threshold``+ cards in this province to its bureau."""
    me = ctx.directory.member(ctx.node.node_id)
    bureau = ctx.directory.bureau_of(me.province)
    key = id_hmac_key(ctx.node.config.credentials_dir)
    holders = subscriber_system(ctx).concentrated_holders(me.province, threshold)
    lines = tuple(IdHolder(
        id_hmac=id_hmac(key, h.id_number), card_count=len(h.numbers),
        outcome=verification_outcome(h.states), numbers=h.numbers) for h in holders)
    report_ids = [ctx.send(bureau.node_id, IdConcentrationReport(
        province=me.province, holders=tuple(part), hmac_key_id=hmac_key_id(key), as_of=ctx.now))
        for part in chunks(lines, 200)] if lines else []
    return {"bureau": bureau.node_id, "holders": len(lines),
            "reports": [r.hex() for r in report_ids]}


def verification_outcome(states: Sequence[RealNameState]) -> VerificationOutcome:
    """Every card truly registered: confirmed; otherwise the holder is pending verification."""
    if all(s is RealNameState.REGISTERED for s in states):
        return VerificationOutcome.CONFIRMED
    return VerificationOutcome.PENDING


def overdue(ctx: Context) -> list[bytes]:
    """Escalate, once each, this carrier's appeals the bureau has not decided in time."""
    now = to_micros(ctx.now)
    raised = []
    for a in ctx.conn.execute(select(appeals).where(
            appeals.c.carrier == ctx.node.node_id, appeals.c.decided_at.is_(None),
            appeals.c.escalated_at.is_(None), appeals.c.decide_by < now)).all():
        raised.append(raise_overdue(
            ctx, messages.EscalationKind.OVERDUE_APPEAL, subject_node=a.bureau,
            subject_id=bytes(a.appeal_id),
            detail=f"appeal {bytes(a.appeal_id).hex()} for {a.number} undecided past its "
                   f"deadline {from_micros(a.decide_by).isoformat()}"))
        ctx.conn.execute(update(appeals).where(appeals.c.appeal_id == a.appeal_id)
                         .values(escalated_at=now))
    return raised


# --- Listings (read the node's database; the node may be running) --------------------


def penalty_rows(conn: Any, *, since: datetime | None = None, carrier: str = "",
                 outlet: str = "") -> list[dict[str, Any]]:
    """Penalties received (carrier) or issued (bureau), oldest first, optionally since a
    time, for one carrier or one outlet code."""
    q = select(penalties).order_by(penalties.c.issued_at, penalties.c.penalty_id)
    if since is not None:
        q = q.where(penalties.c.issued_at >= to_micros(since))
    if carrier:
        q = q.where(penalties.c.carrier == carrier)
    if outlet:
        q = q.where(penalties.c.outlet_code == outlet)
    return [{
        "penalty": bytes(p.penalty_id).hex(),
        "issued": from_micros(p.issued_at),
        "bureau": p.bureau, "carrier": p.carrier, "outlet": p.outlet_code,
        "violation": p.violation, "measure": p.measure, "legal_basis": p.legal_basis,
        "numbers": p.numbers_total} for p in conn.execute(q)]
