"""A reporter's tables (reports, their lines, case requests): named queries and writes.

The reads for ``bcx reports show`` (``find_report``, ``report_view``) run on the node's
database while the node may be running; the rest run inside a handler's or command's
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from exchange import envelope, messages, seal
from exchange.errors import OperationError
from exchange.ledger.entries import Entry, EntryKind, from_micros, to_micros
from exchange.node import Node
from nodes.carrier.decisions import CASE_CONTEXT
from nodes.models import (
    INSERT_REPORT_LINE,
    UPDATE_OPEN_REPORT_LINE,
    case_requests,
    report_numbers,
    reports,
)
from nodes.police.decisions import (
    AppealLines,
    CaseAsk,
    LateReport,
    LineUpdate,
    SentReport,
    UnansweredCase,
)
from nodes.shared.arguments import message_id_arg
from nodes.shared.batching import chunks
from nodes.shared.statuses import Status

# --- Reports and their lines -------------------------------------------------------------


def sent_report(conn: Connection, report_id: bytes, *, origin: str) -> SentReport | None:
    """The report ``report_id`` if ``origin`` (this node) sent it."""
    row = conn.execute(select(reports).where(
        reports.c.report_id == report_id, reports.c.origin == origin)).first()
    if row is None:
        return None
    return SentReport(bytes(row.report_id), row.counterpart, row.category, row.case_number,
                      row.numbers_total, row.withdrawn_at is not None)


def numbers_in_report(conn: Connection, report_id: bytes, nums: Sequence[str]) -> set[str]:
    """Those of ``nums`` the report carries already."""
    have: set[str] = set()
    for part in chunks(list(nums)):
        have.update(conn.scalars(select(report_numbers.c.number).where(
            report_numbers.c.report_id == report_id, report_numbers.c.number.in_(part))))
    return have


def report_lines_numbers(conn: Connection, report_id: bytes) -> list[str]:
    return list(conn.scalars(select(report_numbers.c.number).where(
        report_numbers.c.report_id == report_id)))


def insert_report(conn: Connection, *, report_id: bytes, origin: str, bureau: str,
                  category: str, case_number: str, now: datetime,
                  feedback_due: datetime) -> None:
    conn.execute(insert(reports), {
        "report_id": report_id, "origin": origin, "counterpart": bureau,
        "category": category, "case_number": case_number, "numbers_total": 0,
        "created_at": to_micros(now), "feedback_due_at": to_micros(feedback_due),
        "withdrawn_at": None, "escalated_at": None})


def insert_reported_lines(conn: Connection, report_id: bytes, nums: Iterable[str], *,
                          now: datetime) -> None:
    at = to_micros(now)
    INSERT_REPORT_LINE.run(conn, [
        (report_id, n, Status.REPORTED.value, "", "", False, None, at) for n in nums])


def add_to_total(conn: Connection, report_id: bytes, count: int) -> None:
    conn.execute(update(reports).where(reports.c.report_id == report_id).values(
        numbers_total=reports.c.numbers_total + count))


def update_open_lines(conn: Connection, updates: Sequence[LineUpdate], *, feedback_id: bytes,
                      now: datetime) -> None:
    """Apply feedback to lines still open: a late word never reopens a final one."""
    at = to_micros(now)
    UPDATE_OPEN_REPORT_LINE.run(conn, [
        (u.status.value, u.detail, u.carrier_node, u.final, u.forwarded_to or None,
         u.already_known, feedback_id, at, u.report_id, u.number, False) for u in updates])


def apply_appeal(conn: Connection, lines: AppealLines, *, now: datetime) -> None:
    values: dict[str, Any] = {"detail": lines.detail}
    if lines.restored:
        values |= {"status": Status.RESTORED.value, "final": True}
    conn.execute(update(report_numbers).where(
        report_numbers.c.number == lines.number,
        report_numbers.c.report_id.in_(lines.report_ids))
        .values(updated_at=to_micros(now), **values))


def mark_withdrawn(conn: Connection, report_id: bytes, *, reason: str, now: datetime
                   ) -> None:
    at = to_micros(now)
    conn.execute(update(reports).where(reports.c.report_id == report_id)
                 .values(withdrawn_at=at))
    conn.execute(update(report_numbers).where(report_numbers.c.report_id == report_id).values(
        status=Status.WITHDRAWN.value, detail=reason, final=True, updated_at=at))


def late_reports(conn: Connection, *, origin: str, now: datetime) -> list[LateReport]:
    """Reports of ``origin`` past their feedback deadline with open lines, not escalated
    or withdrawn."""
    open_counts = (select(report_numbers.c.report_id, func.count().label("open"))
                   .where(report_numbers.c.final.is_(False))
                   .group_by(report_numbers.c.report_id).subquery())
    rows = conn.execute(
        select(reports, open_counts.c.open)
        .join(open_counts, open_counts.c.report_id == reports.c.report_id)
        .where(reports.c.origin == origin, reports.c.escalated_at.is_(None),
               reports.c.withdrawn_at.is_(None),
               reports.c.feedback_due_at < to_micros(now))).all()
    return [LateReport(bytes(r.report_id), r.counterpart, r.case_number, r.numbers_total,
                       r.open, from_micros(r.feedback_due_at)) for r in rows]


def mark_report_escalated(conn: Connection, report_id: bytes, *, now: datetime) -> None:
    conn.execute(update(reports).where(reports.c.report_id == report_id)
                 .values(escalated_at=to_micros(now)))


# --- Case requests -----------------------------------------------------------------------


def insert_case_request(conn: Connection, request_id: bytes, ask: CaseAsk, *, police: str,
                        carrier: str, case_number: str, authorization: str, now: datetime,
                        deadline: datetime) -> None:
    conn.execute(insert(case_requests), {
        "request_id": request_id, "police": police, "carrier": carrier,
        "case_number": case_number, "legal_authorization": authorization,
        "numbers": ",".join(ask.numbers), "questions": ",".join(q.value for q in ask.questions),
        "created_at": to_micros(now), "deadline": to_micros(deadline),
        "answered_at": None, "response_id": None, "escalated_at": None})


def mark_answered(conn: Connection, request_id: bytes, *, response_id: bytes, now: datetime
                  ) -> None:
    conn.execute(update(case_requests).where(case_requests.c.request_id == request_id)
                 .values(answered_at=to_micros(now), response_id=response_id))


def unanswered_cases(conn: Connection, *, police: str, now: datetime) -> list[UnansweredCase]:
    """Case requests of ``police`` unanswered past their deadline, not escalated yet."""
    rows = conn.execute(select(case_requests).where(
        case_requests.c.police == police, case_requests.c.answered_at.is_(None),
        case_requests.c.escalated_at.is_(None),
        case_requests.c.deadline < to_micros(now))).all()
    return [UnansweredCase(bytes(r.request_id), r.carrier, r.case_number,
                           from_micros(r.deadline)) for r in rows]


def mark_case_escalated(conn: Connection, request_id: bytes, *, now: datetime) -> None:
    conn.execute(update(case_requests).where(case_requests.c.request_id == request_id)
                 .values(escalated_at=to_micros(now)))


def open_case_answer(node: Node, request_id: bytes) -> messages.CaseAnswer:
    """Open the sealed answer to one of this node's case requests, from its ledger entry."""
    with node.reader.connect() as conn:
        row = conn.execute(select(case_requests).where(
            case_requests.c.request_id == request_id)).first()
    if row is None:
        raise OperationError(f"no case request {request_id.hex()} at {node.node_id}")
    if row.response_id is None:
        raise OperationError(f"case request {request_id.hex()} has no answer yet")
    idx = node.store.find(message_id=bytes(row.response_id), kind=EntryKind.RECEIVED)
    if not idx:
        raise OperationError(f"answer {bytes(row.response_id).hex()} is not in the ledger")
    entry = Entry.decode(node.store.leaf(idx[0]))
    msg = messages.decode_message(envelope.parse(entry.envelope).payload)
    assert isinstance(msg.body, messages.CaseResponse) and msg.body.sealed_answer is not None
    box = msg.body.sealed_answer
    plaintext = seal.open_sealed(
        seal.Sealed(suite=box.suite, recipient=box.recipient,
                    recipient_key_id=box.recipient_key_id, ciphertext=box.ciphertext),
        recipient=node.node_id, private_key=node.credentials.hpke_private,
        context=CASE_CONTEXT + request_id)
    return messages.decode_case_answer(plaintext)


# --- What became of a report (reads the node's database; the node may be running) ----

# Numbers nobody acted on, with the reason: what `bcx reports show --rejected` lists.
NOT_ACTED_ON = frozenset({Status.REJECTED, Status.UNROUTABLE, Status.REFUSED,
                          Status.NOT_OUR_SUBSCRIBER})

def _report_by_prefix(conn: Any, text: str, digits: str) -> Row[Any] | None:
    if len(digits) < 8 or len(digits) > 32 or any(c not in "0123456789abcdef"
                                                  for c in digits):
        raise OperationError(f"bad report id {text!r}: give its 32 hex digits, or the "
                             "first 8 or more")
    low = bytes.fromhex(digits.ljust(32, "0"))
    high = bytes.fromhex(digits.ljust(32, "f"))
    found = conn.execute(select(reports).where(
        reports.c.report_id >= low, reports.c.report_id <= high).limit(2)).all()
    if len(found) > 1:
        raise OperationError(f"report id {text} is ambiguous: more than one report "
                             "starts with it; give more digits")
    return found[0] if found else None


def find_report(conn: Any, text: str) -> Any:
    """The report whose id is ``text`` or starts with it (8 hex digits at least)."""
    digits = text.strip().lower().replace("-", "")
    if len(digits) == 32:
        rid = message_id_arg(digits, "report")
        row = conn.execute(select(reports).where(reports.c.report_id == rid)).first()
    else:
        row = _report_by_prefix(conn, text, digits)
    if row is None:
        raise OperationError(f"this node holds no report {text}")
    return row


def _line_view(ln: Any) -> dict[str, Any]:
    status = Status(ln.status)
    # A forwarded number's reason is where it went, as the bureau once worded it.
    reason = ln.detail or (f"to {ln.forwarded_to}" if ln.forwarded_to else "")
    return {
        "number": ln.number,
        "verdict": f"already known ({status.value})" if ln.already_known else status.value,
        "reason": reason,
        "carrier": ln.carrier_node, "final": bool(ln.final),
        "when": from_micros(ln.updated_at),
        "feedback": bytes(ln.feedback_id).hex() if ln.feedback_id else ""}


def report_view(conn: Any, text: str, *, rejected_only: bool = False) -> dict[str, Any]:
    """One report and, per number, the bureau's verdict (or the carrier's outcome) and when."""
    row = find_report(conn, text)
    lines = conn.execute(select(report_numbers).where(
        report_numbers.c.report_id == row.report_id).order_by(report_numbers.c.number)).all()
    counts: dict[str, int] = {}
    out = []
    for ln in lines:
        view = _line_view(ln)
        counts[view["verdict"]] = counts.get(view["verdict"], 0) + 1
        if not rejected_only or Status(ln.status) in NOT_ACTED_ON:
            out.append(view)
    return {
        "report": bytes(row.report_id).hex(), "origin": row.origin, "bureau": row.counterpart,
        "case": row.case_number, "category": row.category, "numbers": row.numbers_total,
        "sent": from_micros(row.created_at),
        "withdrawn": from_micros(row.withdrawn_at) if row.withdrawn_at else None,
        "verdicts": dict(sorted(counts.items())), "lines": out}
