"""A police unit's node: report numbers, ask carriers about cases, hear what became of each.

The police node keeps, per report and number, the last outcome its bureau fed back;
a report is open until every number has a final outcome, and the scheduler escalates
a report whose feedback is overdue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from exchange import messages, numbers, seal
from exchange.errors import InvalidBodyError, NumberError, OperationError
from exchange.identity import Role
from exchange.ledger.entries import Entry, from_micros, to_micros
from exchange.messages import CaseQuestion, CaseRequest, Category, NumberReport, Withdrawal
from exchange.node import Context, Node
from exchange.receive import Accepted
from nodes import rules
from nodes.carrier import CASE_CONTEXT
from nodes.models import (
    INSERT_REPORT_LINE,
    UPDATE_OPEN_REPORT_LINE,
    case_requests,
    report_numbers,
    reports,
)
from nodes.shared.arguments import message_id_arg
from nodes.shared.batching import CHUNK, chunks
from nodes.shared.feedback import status_of_feedback
from nodes.shared.obligations import raise_overdue
from nodes.shared.statuses import FINAL, Status

# --- Handlers -------------------------------------------------------------------------


def on_circular(ctx: Context, acc: Accepted) -> None:
    """Feedback from a bureau: the status of numbers this node reported."""
    body = acc.message.body
    assert isinstance(body, messages.Circular)
    feedback_id = acc.message.header.message_id
    now = to_micros(ctx.now)
    # Every line names a report of this node, from the bureau it is with, and moves no
    # final outcome to another (rules own-report, report-bureau, outcome-transition): so
    # only open lines change, and a late acknowledgement never reopens a final one.
    open_lines = []
    for line in body.outcomes:
        if not line.report_id:
            continue
        told = status_of_feedback(line)
        status, detail = told.status, _ALREADY_KNOWN if told.already_known else told.reason
        open_lines.append((status.value, detail, line.carrier_node, status in FINAL,
                           feedback_id, now, line.report_id, line.number, False))
    UPDATE_OPEN_REPORT_LINE.run(ctx.conn, open_lines)


def on_case_response(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.CaseResponse)
    # It answers a request of this node to the sender (rule own-case-request).
    if body.sealed_answer is None or body.sealed_answer.recipient != ctx.node.node_id:
        raise InvalidBodyError("case_response must carry an answer sealed to "
                               f"{ctx.node.node_id}")
    ctx.conn.execute(update(case_requests).where(case_requests.c.request_id == h.in_reply_to)
                     .values(answered_at=to_micros(ctx.now), response_id=h.message_id))


def on_appeal_decision(ctx: Context, acc: Accepted) -> None:
    body = acc.message.body
    assert isinstance(body, messages.AppealDecision)
    # Only lines of reports that went to the deciding bureau, and a lifted appeal only
    # those cut or open (rules report-bureau, outcome-transition).
    moved = rules.reporter_appeal_lines(ctx, acc)
    if body.outcome is messages.AppealOutcome.LIFTED:
        values = {"status": Status.RESTORED.value, "final": True,
                  "detail": f"appeal lifted: {body.reasoning}"}
    else:
        values = {"detail": f"appeal upheld: {body.reasoning}"}
    ctx.conn.execute(update(report_numbers).where(report_numbers.c.number == body.number,
                                                  report_numbers.c.report_id.in_(moved))
                     .values(updated_at=to_micros(ctx.now), **values))


HANDLERS = {
    "circular": on_circular,
    "case_response": on_case_response,
    "appeal_decision": on_appeal_decision,
}


# --- Operator commands ----------------------------------------------------------------


def prepare(reported: Sequence[str]) -> list[str]:
    """Numbers as the report will carry them: E.164 where they normalise, else as found.

    The bureau judges every number and answers per number, so an investigator's odd
    entry is sent as written and comes back rejected with the reason.
    """
    out = []
    seen = set()
    for raw in reported:
        text = str(raw).strip()
        if not text:
            continue
        with contextlib.suppress(NumberError):
            text = numbers.normalise(text)
        if text not in seen:
            seen.add(text)
            out.append(text[:64])
    return out


def report(ctx: Context, *, numbers_found: Sequence[str], category: str, case_number: str,
           evidence: str = "", confidence: int = 80, bureau: str = "",
           discovered_at: str = "", report_id: str = "") -> dict[str, Any]:
    """Report numbers to the bureau as one report, sent in parts of at most CHUNK numbers.

    Every part after the first names the first part's message id, the report's id, so
    the bureau keeps them as one report and one withdrawal retracts all of them. With
    ``report_id`` (a report of this node, not withdrawn) the numbers are further parts
    of that report: a list larger than one operator call stays one report.
    """
    try:
        cat = Category(category)
    except ValueError as e:
        raise OperationError(f"category {category!r} is not one of "
                             f"{', '.join(c.value for c in Category)}") from e
    if not case_number.strip():
        raise OperationError("a report needs its case number (--case-number)")
    if not 0 <= confidence <= 100:
        raise OperationError(f"confidence must be 0-100, got {confidence}")
    nums = prepare(numbers_found)
    if not nums:
        raise OperationError("no numbers to report")
    existing = _report_to_extend(ctx, report_id, category=cat, case_number=case_number) \
        if report_id else None
    if existing is not None:
        to, rid = existing.counterpart, bytes(existing.report_id)
        nums = _not_yet_in(ctx, rid, nums)
    else:
        me = ctx.directory.member(ctx.node.node_id)
        to, rid = bureau or ctx.directory.bureau_of(me.province).node_id, b""
    found_at = datetime.fromisoformat(discovered_at) if discovered_at else ctx.now
    due = ctx.now + timedelta(hours=ctx.node.config.deadlines.feedback_hours)
    now = to_micros(ctx.now)
    parts = []
    for part in chunks(nums):
        mid = ctx.send(to, NumberReport(numbers=tuple(part), category=cat,
                                        discovered_at=found_at, case_number=case_number,
                                        evidence_summary=evidence, confidence=confidence,
                                        report_id=rid),
                       thread=case_number)
        if not rid:
            rid = mid
            ctx.conn.execute(insert(reports), {
                "report_id": rid, "origin": ctx.node.node_id, "counterpart": to,
                "category": cat.value, "case_number": case_number, "numbers_total": 0,
                "created_at": now, "feedback_due_at": to_micros(due),
                "withdrawn_at": None, "escalated_at": None})
        INSERT_REPORT_LINE.run(ctx.conn, [
            (rid, n, Status.REPORTED.value, "", "", False, None, now) for n in part])
        parts.append(mid.hex())
    if nums:
        ctx.conn.execute(update(reports).where(reports.c.report_id == rid).values(
            numbers_total=reports.c.numbers_total + len(nums)))
    return {"bureau": to, "numbers": len(nums), "report": rid.hex(), "reports": [rid.hex()],
            "parts": parts}


def _report_to_extend(ctx: Context, report_id: str, *, category: Category,
                      case_number: str) -> Any:
    rid = message_id_arg(report_id, "report")
    row = ctx.conn.execute(select(reports).where(
        reports.c.report_id == rid, reports.c.origin == ctx.node.node_id)).first()
    if row is None:
        raise OperationError(f"{ctx.node.node_id} sent no report {report_id}")
    if row.withdrawn_at is not None:
        raise OperationError(f"report {report_id} was withdrawn: it takes no more numbers")
    if (row.category, row.case_number) != (category.value, case_number):
        raise OperationError(f"report {report_id} is for case {row.case_number} "
                             f"({row.category}); its further parts must be too")
    return row


def _not_yet_in(ctx: Context, rid: bytes, nums: Sequence[str]) -> list[str]:
    """``nums`` less those the report carries already (a repeated call adds nothing)."""
    have: set[str] = set()
    for part in chunks(list(nums)):
        have.update(ctx.conn.scalars(select(report_numbers.c.number).where(
            report_numbers.c.report_id == rid, report_numbers.c.number.in_(part))))
    return [n for n in nums if n not in have]


def withdraw(ctx: Context, *, report_id: str, reason: str) -> dict[str, Any]:
    rid = message_id_arg(report_id, "report")
    if not reason.strip():
        raise OperationError("a withdrawal needs its reason (--reason)")
    row = ctx.conn.execute(select(reports).where(
        reports.c.report_id == rid, reports.c.origin == ctx.node.node_id)).first()
    if row is None:
        raise OperationError(f"{ctx.node.node_id} sent no report {report_id}")
    if row.withdrawn_at is not None:
        raise OperationError(f"report {report_id} was withdrawn already")
    # Numbers the report carried as found and that never normalised stay out: a
    # Withdrawal lists E.164 numbers only. A report of several parts is withdrawn whole
    # without a list (an empty list means every number), which would not fit a message.
    valid = [n for n in ctx.conn.scalars(select(report_numbers.c.number).where(
        report_numbers.c.report_id == rid)) if _is_e164(n)]
    count = len(valid)
    if count > CHUNK:
        valid = []
    wid = ctx.send(row.counterpart, Withdrawal(withdrawn_message_id=rid, numbers=tuple(valid),
                                               reason=reason), in_reply_to=rid)
    ctx.conn.execute(update(reports).where(reports.c.report_id == rid)
                     .values(withdrawn_at=to_micros(ctx.now)))
    ctx.conn.execute(update(report_numbers).where(report_numbers.c.report_id == rid).values(
        status=Status.WITHDRAWN.value, detail=reason, final=True,
        updated_at=to_micros(ctx.now)))
    return {"withdrawal_id": wid.hex(), "bureau": row.counterpart, "numbers": count}


def _is_e164(n: str) -> bool:
    try:
        return numbers.normalise(n) == n
    except NumberError:
        return False


def ask(ctx: Context, *, carrier: str, case_number: str, authorization: str,
        numbers_asked: Sequence[str], questions: Sequence[str]) -> dict[str, Any]:
    """Send a case-cooperation request to a carrier, with its legal authorization."""
    if not ctx.directory.has_member(carrier) or \
            ctx.directory.member(carrier).role is not Role.CARRIER:
        raise OperationError(f"{carrier!r} is not a carrier in the directory")
    if not authorization.strip():
        raise OperationError("a case request needs its legal authorization reference "
                             "(--authorization)")
    try:
        qs = tuple(CaseQuestion(q) for q in questions) or tuple(CaseQuestion)
    except ValueError as e:
        raise OperationError(f"questions are {', '.join(q.value for q in CaseQuestion)}: "
                             f"{e}") from e
    try:
        nums = tuple(numbers.normalise(n) for n in numbers_asked)
    except NumberError as e:
        raise OperationError(str(e)) from e
    if not nums:
        raise OperationError("a case request names at least one number")
    deadline = ctx.now + timedelta(hours=ctx.node.config.deadlines.case_hours)
    rid = ctx.send(carrier, CaseRequest(case_number=case_number,
                                        legal_authorization=authorization, numbers=nums,
                                        questions=qs, deadline=deadline), thread=case_number)
    ctx.conn.execute(insert(case_requests), {
        "request_id": rid, "police": ctx.node.node_id, "carrier": carrier,
        "case_number": case_number, "legal_authorization": authorization,
        "numbers": ",".join(nums), "questions": ",".join(q.value for q in qs),
        "created_at": to_micros(ctx.now), "deadline": to_micros(deadline),
        "answered_at": None, "response_id": None, "escalated_at": None})
    return {"request_id": rid.hex(), "carrier": carrier, "deadline": deadline.isoformat()}


def open_case_answer(node: Node, request_id: bytes) -> messages.CaseAnswer:
    """Open the sealed answer to one of this node's case requests, from its ledger entry."""
    from exchange import envelope

    with node.reader.connect() as conn:
        row = conn.execute(select(case_requests).where(
            case_requests.c.request_id == request_id)).first()
    if row is None:
        raise OperationError(f"no case request {request_id.hex()} at {node.node_id}")
    if row.response_id is None:
        raise OperationError(f"case request {request_id.hex()} has no answer yet")
    from exchange.ledger.entries import EntryKind
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


# --- Deadlines ------------------------------------------------------------------------


def overdue(ctx: Context) -> list[bytes]:
    """Escalate, once each, case requests unanswered and reports without full feedback."""
    now = to_micros(ctx.now)
    raised = []
    for r in ctx.conn.execute(select(case_requests).where(
            case_requests.c.police == ctx.node.node_id, case_requests.c.answered_at.is_(None),
            case_requests.c.escalated_at.is_(None), case_requests.c.deadline < now)).all():
        raised.append(raise_overdue(
            ctx, messages.EscalationKind.OVERDUE_CASE, subject_node=r.carrier,
            subject_id=bytes(r.request_id),
            detail=f"case request {bytes(r.request_id).hex()} ({r.case_number}) unanswered "
                   f"past its deadline {from_micros(r.deadline).isoformat()}"))
        ctx.conn.execute(update(case_requests).where(
            case_requests.c.request_id == r.request_id).values(escalated_at=now))
    open_counts = (select(report_numbers.c.report_id, func.count().label("open"))
                   .where(report_numbers.c.final.is_(False))
                   .group_by(report_numbers.c.report_id).subquery())
    for r in ctx.conn.execute(
            select(reports, open_counts.c.open)
            .join(open_counts, open_counts.c.report_id == reports.c.report_id)
            .where(reports.c.origin == ctx.node.node_id, reports.c.escalated_at.is_(None),
                   reports.c.withdrawn_at.is_(None), reports.c.feedback_due_at < now)).all():
        raised.append(raise_overdue(
            ctx, messages.EscalationKind.OVERDUE_FEEDBACK, subject_node=r.counterpart,
            subject_id=bytes(r.report_id),
            detail=f"report {bytes(r.report_id).hex()} ({r.case_number}): {r.open} of "
                   f"{r.numbers_total} number(s) without a final outcome past "
                   f"{from_micros(r.feedback_due_at).isoformat()}"))
        ctx.conn.execute(update(reports).where(reports.c.report_id == r.report_id)
                         .values(escalated_at=now))
    return raised


# --- What became of a report (reads the node's database; the node may be running) ----

# Numbers nobody acted on, with the reason: what `bcx reports show --rejected` lists.
NOT_ACTED_ON = frozenset({Status.REJECTED, Status.UNROUTABLE, Status.REFUSED,
                          Status.NOT_OUR_SUBSCRIBER})

# How a bureau words a number it holds already (nodes.bureau: the KNOWN verdict).
_ALREADY_KNOWN = "already known to this bureau"


def find_report(conn: Any, text: str) -> Any:
    """The report whose id is ``text`` or starts with it (8 hex digits at least)."""
    digits = text.strip().lower().replace("-", "")
    if len(digits) == 32:
        rid = message_id_arg(digits, "report")
        row = conn.execute(select(reports).where(reports.c.report_id == rid)).first()
    else:
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
        row = found[0] if found else None
    if row is None:
        raise OperationError(f"this node holds no report {text}")
    return row


def report_view(conn: Any, text: str, *, rejected_only: bool = False) -> dict[str, Any]:
    """One report and, per number, the bureau's verdict (or the carrier's outcome) and when."""
    row = find_report(conn, text)
    lines = conn.execute(select(report_numbers).where(
        report_numbers.c.report_id == row.report_id).order_by(report_numbers.c.number)).all()
    counts: dict[str, int] = {}
    out = []
    for ln in lines:
        status = Status(ln.status)
        verdict = f"already known ({status.value})" if ln.detail == _ALREADY_KNOWN \
            else status.value
        counts[verdict] = counts.get(verdict, 0) + 1
        if rejected_only and status not in NOT_ACTED_ON:
            continue
        out.append({
            "number": ln.number, "verdict": verdict,
            "reason": "" if ln.detail == _ALREADY_KNOWN else ln.detail,
            "carrier": ln.carrier_node, "final": bool(ln.final),
            "when": from_micros(ln.updated_at),
            "feedback": bytes(ln.feedback_id).hex() if ln.feedback_id else ""})
    return {
        "report": bytes(row.report_id).hex(), "origin": row.origin, "bureau": row.counterpart,
        "case": row.case_number, "category": row.category, "numbers": row.numbers_total,
        "sent": from_micros(row.created_at),
        "withdrawn": from_micros(row.withdrawn_at) if row.withdrawn_at else None,
        "verdicts": dict(sorted(counts.items())), "lines": out}
