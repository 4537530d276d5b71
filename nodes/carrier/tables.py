"""A carrier's tables (notices, case requests, appeals, penalties): named queries and writes.

``penalty_rows`` is a listing: it reads the node's database while the node may be
running. The rest run inside a handler's or command's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from exchange import messages
from exchange.ledger.entries import from_micros, to_micros
from exchange.messages import NumberAction
from exchange.node import Context
from nodes.carrier.decisions import UndecidedAppeal
from nodes.carrier.subscribers import Audited, SqlSubscriberSystem, SubscriberSystem
from nodes.models import INSERT_NOTICE_LINE, appeals, case_requests, notices, penalties


def subscriber_system(ctx: Context) -> SubscriberSystem:
    """This carrier's subscriber system, every call logged as an ACTION entry."""
    return Audited(SqlSubscriberSystem(ctx.conn, carrier_node=ctx.node.node_id),
                   ctx.log_action)


# --- Notices ---------------------------------------------------------------------------


def insert_answered_notice(conn: Connection, notice: messages.ShutdownNotice, *,
                           notice_id: bytes, bureau: str, carrier: str, sent_at: datetime,
                           answered_at: datetime) -> None:
    """The notice, answered and closed at once (the carrier acts as it receives)."""
    assert notice.deadline is not None
    conn.execute(insert(notices), {
        "notice_id": notice_id, "bureau": bureau, "carrier": carrier,
        "category": (notice.category or messages.Category.OTHER).value,
        "created_at": to_micros(sent_at), "deadline": to_micros(notice.deadline),
        "numbers_total": len(notice.numbers), "answered": len(notice.numbers),
        "closed_at": to_micros(answered_at), "escalated_at": None})


def insert_notice_lines(conn: Connection, notice_id: bytes,
                        answered: Sequence[tuple[NumberAction, bytes]], *,
                        answered_at: datetime) -> None:
    """One line per action, with the ActionReport that carried it."""
    at = to_micros(answered_at)
    INSERT_NOTICE_LINE.run(conn, [
        (notice_id, a.number, a.outcome.value, a.refusal_reason or a.ported_to_hint, at, aid)
        for a, aid in answered])


@dataclass(frozen=True, slots=True)
class HeldNotice:
    notice_id: bytes
    bureau: str


def notice(conn: Connection, notice_id: bytes) -> HeldNotice | None:
    row = conn.execute(select(notices.c.notice_id, notices.c.bureau).where(
        notices.c.notice_id == notice_id)).first()
    return HeldNotice(bytes(row.notice_id), row.bureau) if row else None


# --- Case requests ---------------------------------------------------------------------


def insert_case_request(conn: Connection, request: messages.CaseRequest, *, request_id: bytes,
                        police: str, carrier: str, sent_at: datetime,
                        answered_at: datetime) -> None:
    assert request.deadline is not None
    conn.execute(insert(case_requests), {
        "request_id": request_id, "police": police, "carrier": carrier,
        "case_number": request.case_number,
        "legal_authorization": request.legal_authorization,
        "numbers": ",".join(request.numbers),
        "questions": ",".join(q.value for q in request.questions),
        "created_at": to_micros(sent_at), "deadline": to_micros(request.deadline),
        "answered_at": to_micros(answered_at), "response_id": None, "escalated_at": None})


def set_response(conn: Connection, request_id: bytes, response_id: bytes) -> None:
    conn.execute(update(case_requests).where(case_requests.c.request_id == request_id)
                 .values(response_id=response_id))


# --- Penalties -------------------------------------------------------------------------


def insert_penalty(conn: Connection, penalty: messages.Penalty, *, penalty_id: bytes,
                   bureau: str, carrier: str, issued_at: datetime) -> None:
    conn.execute(insert(penalties), {
        "penalty_id": penalty_id, "bureau": bureau, "carrier": carrier,
        "outlet_code": penalty.channel.outlet_code if penalty.channel else "",
        "violation": penalty.violation, "legal_basis": penalty.legal_basis,
        "measure": penalty.measure, "numbers_total": len(penalty.numbers),
        "issued_at": to_micros(issued_at)})


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


# --- Appeals ---------------------------------------------------------------------------


def insert_appeal(conn: Connection, *, appeal_id: bytes, carrier: str, held: HeldNotice,
                  number: str, grounds: str, now: datetime, decide_by: datetime) -> None:
    conn.execute(insert(appeals), {
        "appeal_id": appeal_id, "carrier": carrier, "bureau": held.bureau,
        "number": number, "grounds": grounds, "notice_id": held.notice_id,
        "created_at": to_micros(now), "decide_by": to_micros(decide_by),
        "decided_at": None, "outcome": None, "reasoning": "", "decision_id": None,
        "escalated_at": None})


def appeal_number(conn: Connection, appeal_id: bytes) -> str:
    """The number an appeal of this carrier contests (the state rules found the appeal)."""
    number: str = conn.execute(select(appeals.c.number).where(
        appeals.c.appeal_id == appeal_id)).scalar_one()
    return number


def record_decision(conn: Connection, decision: messages.AppealDecision, *,
                    decision_id: bytes, now: datetime) -> None:
    conn.execute(update(appeals).where(appeals.c.appeal_id == decision.appeal_id).values(
        decided_at=to_micros(now), outcome=decision.outcome.value,
        reasoning=decision.reasoning, decision_id=decision_id))


def undecided_appeals(conn: Connection, *, carrier: str, now: datetime
                      ) -> list[UndecidedAppeal]:
    """Appeals of ``carrier`` undecided past their deadline, not escalated yet."""
    rows = conn.execute(select(appeals).where(
        appeals.c.carrier == carrier, appeals.c.decided_at.is_(None),
        appeals.c.escalated_at.is_(None), appeals.c.decide_by < to_micros(now))).all()
    return [UndecidedAppeal(bytes(a.appeal_id), a.bureau, a.number, from_micros(a.decide_by))
            for a in rows]


def mark_appeal_escalated(conn: Connection, appeal_id: bytes, *, now: datetime) -> None:
    conn.execute(update(appeals).where(appeals.c.appeal_id == appeal_id)
                 .values(escalated_at=to_micros(now)))
