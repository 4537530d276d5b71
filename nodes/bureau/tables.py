"""A bureau's named queries over its tables (nodes/models.py): loads into values, writes
of what a plan decided, and the listings operators read while the node runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from exchange.ledger.entries import from_micros, to_micros
from exchange.messages import Category, ProgressCount
from exchange.storage.statements import DriverStatement
from nodes.bureau.decisions import (
    AppealState,
    Case,
    CaseOnNotice,
    CaseUpdate,
    ChannelRecord,
    ChannelState,
    Decided,
    IdHolderRecord,
    LineAnswer,
    NoticeLine,
    NoticeState,
    OpenLine,
    OverdueNotice,
    ReportLine,
    SentNotice,
    StatusCount,
    WithdrawnLine,
    count_progress,
)
from nodes.models import (
    INSERT_CASE,
    INSERT_JUDGED_REPORT_LINE,
    INSERT_NOTICE_LINE,
    UPDATE_CASE,
    UPDATE_NOTICE_LINE,
    UPDATE_REPORT_LINE,
    appeals,
    channel_reports,
    id_holders,
    notices,
    numbers,
    penalties,
    report_numbers,
    reports,
)
from nodes.shared.batching import chunks
from nodes.shared.statuses import FINAL, Status

# --- Reports --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportState:
    """A report this bureau holds (its row of wf_reports)."""

    report_id: bytes
    origin: str
    withdrawn: bool


def report_state(conn: Any, report_id: bytes) -> ReportState | None:
    row = conn.execute(select(reports.c.origin, reports.c.withdrawn_at).where(
        reports.c.report_id == report_id)).first()
    if row is None:
        return None
    return ReportState(report_id, row.origin, row.withdrawn_at is not None)


def numbers_held(conn: Any, report_id: bytes, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` (numbers as a report line names them) the report holds."""
    have: set[str] = set()
    for part in chunks(sorted(set(keys))):
        have.update(conn.scalars(select(report_numbers.c.number).where(
            report_numbers.c.report_id == report_id, report_numbers.c.number.in_(part))))
    return have


def add_report_numbers(conn: Any, report_id: bytes, count: int) -> bool:
    """Add a later part's numbers to a report; False when there is no report yet."""
    updated = conn.execute(update(reports).where(reports.c.report_id == report_id)
                           .values(numbers_total=reports.c.numbers_total + count))
    return bool(updated.rowcount)


def insert_report(conn: Any, *, report_id: bytes, origin: str, counterpart: str,
                  category: Category, case_number: str, count: int, now: datetime,
                  feedback_due: datetime) -> None:
    conn.execute(insert(reports), {
        "report_id": report_id, "origin": origin, "counterpart": counterpart,
        "category": category.value, "case_number": case_number,
        "numbers_total": count, "created_at": to_micros(now),
        "feedback_due_at": to_micros(feedback_due),
        "withdrawn_at": None, "escalated_at": None})


def insert_report_lines(conn: Any, report_id: bytes, lines: Sequence[ReportLine],
                        feedback_ids: Sequence[bytes | None], now: datetime) -> None:
    at = to_micros(now)
    INSERT_JUDGED_REPORT_LINE.run(conn, [
        (report_id, ln.number, ln.status.value, ln.reason, ln.carrier_node, ln.closed,
         feedback_id, at, ln.forwarded_to or None, ln.already_known)
        for ln, feedback_id in zip(lines, feedback_ids, strict=True)])


# Open lines (report, number, reporter) of the numbers listed, in reports not withdrawn.
# "final <> true", not "final = false": SQLite (no statistics) would then walk
# ix_wf_report_numbers_open, every open line of every report, for each action report
# (100,000 entries a message in a bulk run) instead of looking up the numbers listed.
_OPEN_REPORT_LINES = DriverStatement.listing(
    "SELECT rn.report_id, rn.number, r.origin FROM wf_report_numbers rn "
    "JOIN wf_reports r ON r.report_id = rn.report_id "
    "WHERE rn.number IN ({list}) AND rn.final <> ? AND r.withdrawn_at IS NULL")


def open_report_lines(conn: Any, nums: Iterable[str]) -> list[OpenLine]:
    out: list[OpenLine] = []
    for part in chunks(sorted(nums)):
        out.extend(OpenLine(bytes(report_id), number, origin)
                   for report_id, number, origin in _OPEN_REPORT_LINES(len(part)).tuples(
                       conn, (*part, True)))
    return out


def update_report_lines(conn: Any, lines: Sequence[OpenLine], decided: Mapping[str, Decided],
                        feedback_ids: Sequence[bytes | None], now: datetime) -> None:
    """Each open line's final outcome and the Circular that told it."""
    at = to_micros(now)
    rows = []
    for line, feedback_id in zip(lines, feedback_ids, strict=True):
        d = decided[line.number]
        rows.append((d.status.value, d.detail, d.carrier_node, d.status in FINAL, feedback_id,
                     at, line.report_id, line.number))
    UPDATE_REPORT_LINE.run(conn, rows)


# --- Cases ------------------------------------------------------------------------------

_CASES = DriverStatement.listing(
    "SELECT number, status, carrier_node, notice_id FROM wf_numbers WHERE number IN ({list})")


def cases_of(conn: Any, candidates: Iterable[str]) -> dict[str, Case]:
    """This bureau's cases of ``candidates``, by number."""
    out = {}
    for part in chunks(sorted(candidates)):
        for r in _CASES(len(part)).rows(conn, tuple(part)):
            out[r.number] = Case(r.number, Status(r.status), r.carrier_node,
                                 bytes(r.notice_id) if r.notice_id is not None else None)
    return out


def delete_cases(conn: Any, nums: Sequence[str]) -> None:
    if nums:
        conn.execute(delete(numbers).where(numbers.c.number.in_(nums)))


def insert_cases(conn: Any, sent: Sequence[SentNotice], *, category: Category,
                 now: datetime) -> None:
    """The new cases of the notices sent, each noticed to its carrier."""
    at = to_micros(now)
    INSERT_CASE.run(conn, [
        (n, Status.NOTICED.value, category.value, s.carrier, s.notice_id, s.carrier, "", "", at)
        for s in sent for n in s.numbers])


def update_cases(conn: Any, updates: Sequence[CaseUpdate], now: datetime) -> None:
    at = to_micros(now)
    UPDATE_CASE.run(conn, [
        (u.status.value, u.detail, u.carrier_node, u.outlet_code, ",".join(u.tried), at,
         u.number) for u in updates])


def point_cases_at(conn: Any, nums: Sequence[str], notice_id: bytes) -> None:
    """Re-routed cases: now with this notice."""
    conn.execute(update(numbers).where(numbers.c.number.in_(nums))
                 .values(notice_id=notice_id))


# --- Notices ----------------------------------------------------------------------------


def insert_notice(conn: Any, *, notice_id: bytes, bureau: str, carrier: str,
                  category: Category, now: datetime, deadline: datetime,
                  nums: Sequence[str]) -> None:
    conn.execute(insert(notices), {
        "notice_id": notice_id, "bureau": bureau, "carrier": carrier,
        "category": category.value, "created_at": to_micros(now),
        "deadline": to_micros(deadline), "numbers_total": len(nums), "answered": 0,
        "closed_at": None, "escalated_at": None})
    INSERT_NOTICE_LINE.run(conn, [(notice_id, n, None, "", None, None) for n in nums])


def notice_state(conn: Any, notice_id: bytes, carrier: str) -> NoticeState:
    """The notice an action report answers (the receive checks made sure it exists)."""
    n = conn.execute(select(notices).where(
        notices.c.notice_id == notice_id, notices.c.carrier == carrier)).one()
    return NoticeState(bytes(n.notice_id), n.carrier, Category(n.category), n.numbers_total,
                       n.answered)


_NOTICE_LINES_AND_CASES = DriverStatement(
    "SELECT nn.number, nn.outcome, c.status, c.carrier_node, c.outlet_code, c.tried "
    "FROM wf_notice_numbers nn LEFT JOIN wf_numbers c ON c.number = nn.number "
    "WHERE nn.notice_id = ?")


def notice_lines(conn: Any, notice_id: bytes) -> dict[str, NoticeLine]:
    """Each line of the notice with the number's case (if any), in one read."""
    out = {}
    for number, outcome, status, carrier, outlet, tried in _NOTICE_LINES_AND_CASES.tuples(
            conn, (notice_id,)):
        case = None if status is None else CaseOnNotice(
            Status(status), carrier, outlet, tuple(filter(None, tried.split(","))))
        out[number] = NoticeLine(number, outcome is not None, case)
    return out


def answer_notice_lines(conn: Any, notice_id: bytes, answers: Sequence[LineAnswer], *,
                        answer_id: bytes, now: datetime) -> None:
    at = to_micros(now)
    UPDATE_NOTICE_LINE.run(conn, [(a.outcome.value, a.detail, at, answer_id, notice_id,
                                   a.number) for a in answers])


def count_answered(conn: Any, notice_id: bytes, answered: int, *, closed: bool,
                   now: datetime) -> None:
    conn.execute(update(notices).where(notices.c.notice_id == notice_id).values(
        answered=answered, closed_at=to_micros(now) if closed else None))


def overdue_notices(conn: Any, bureau: str, now: datetime) -> list[OverdueNotice]:
    """This bureau's notices past their deadline, not fully answered, not escalated."""
    rows = conn.execute(select(notices).where(
        notices.c.bureau == bureau, notices.c.closed_at.is_(None),
        notices.c.escalated_at.is_(None), notices.c.deadline < to_micros(now))).all()
    return [OverdueNotice(bytes(n.notice_id), n.carrier, n.numbers_total, n.answered,
                          from_micros(n.deadline)) for n in rows]


def mark_notice_escalated(conn: Any, notice_id: bytes, now: datetime) -> None:
    conn.execute(update(notices).where(notices.c.notice_id == notice_id)
                 .values(escalated_at=to_micros(now)))


# --- Withdrawals --------------------------------------------------------------------------


def withdrawn_lines(conn: Any, report_id: bytes) -> list[WithdrawnLine]:
    return [WithdrawnLine(ln.number, Status(ln.status), ln.forwarded_to or "")
            for ln in conn.execute(select(report_numbers.c.number, report_numbers.c.status,
                                          report_numbers.c.forwarded_to).where(
                report_numbers.c.report_id == report_id))]


def still_reported(conn: Any, report_id: bytes, nums: Iterable[str]) -> set[str]:
    """Which of ``nums`` a live report other than ``report_id`` names."""
    out: set[str] = set()
    for part in chunks(sorted(set(nums))):
        out.update(conn.scalars(
            select(report_numbers.c.number).distinct()
            .join(reports, reports.c.report_id == report_numbers.c.report_id)
            .where(report_numbers.c.number.in_(part), report_numbers.c.report_id != report_id,
                   reports.c.withdrawn_at.is_(None))))
    return out


def withdraw(conn: Any, report_id: bytes, *, reason: str, ended: Sequence[str],
             now: datetime) -> None:
    """Mark the report and all its lines withdrawn, and end the cases released."""
    at = to_micros(now)
    conn.execute(update(reports).where(reports.c.report_id == report_id)
                 .values(withdrawn_at=at))
    conn.execute(update(report_numbers).where(report_numbers.c.report_id == report_id).values(
        status=Status.WITHDRAWN.value, detail=reason, final=True, updated_at=at))
    for part in chunks(list(ended)):
        conn.execute(update(numbers).where(numbers.c.number.in_(part)).values(
            status=Status.WITHDRAWN.value, detail=f"report withdrawn: {reason}",
            updated_at=at))


# --- Channels, ID holders, appeals, penalties ---------------------------------------------


def insert_channel_report(conn: Any, record: ChannelRecord) -> None:
    conn.execute(insert(channel_reports), dataclasses.asdict(record))


def insert_id_holders(conn: Any, records: Sequence[IdHolderRecord]) -> None:
    if records:
        conn.execute(insert(id_holders), [dataclasses.asdict(r) for r in records])


def insert_appeal(conn: Any, *, appeal_id: bytes, carrier: str, bureau: str, number: str,
                  grounds: str, notice_id: bytes | None, now: datetime,
                  decide_by: datetime) -> None:
    conn.execute(insert(appeals), {
        "appeal_id": appeal_id, "carrier": carrier, "bureau": bureau,
        "number": number, "grounds": grounds, "notice_id": notice_id,
        "created_at": to_micros(now), "decide_by": to_micros(decide_by),
        "decided_at": None, "outcome": None, "reasoning": "", "decision_id": None,
        "escalated_at": None})


def appeal_state(conn: Any, appeal_id: bytes, bureau: str) -> AppealState | None:
    row = conn.execute(select(appeals).where(appeals.c.appeal_id == appeal_id,
                                             appeals.c.bureau == bureau)).first()
    if row is None:
        return None
    return AppealState(bytes(row.appeal_id), row.carrier, row.number,
                       row.decided_at is not None, row.outcome)


def reporters_of(conn: Any, number: str) -> list[str]:
    """Every node that reported ``number`` here."""
    return list(conn.scalars(
        select(reports.c.origin).distinct()
        .join(report_numbers, reports.c.report_id == report_numbers.c.report_id)
        .where(report_numbers.c.number == number)).all())


def record_appeal_decision(conn: Any, appeal_id: bytes, *, outcome: str, reasoning: str,
                           decision_id: bytes, now: datetime) -> None:
    conn.execute(update(appeals).where(appeals.c.appeal_id == appeal_id).values(
        decided_at=to_micros(now), outcome=outcome, reasoning=reasoning,
        decision_id=decision_id))


def restore(conn: Any, number: str, *, detail: str, now: datetime) -> None:
    """A lifted appeal: the case and every report line of the number restored."""
    at = to_micros(now)
    conn.execute(update(numbers).where(numbers.c.number == number).values(
        status=Status.RESTORED.value, detail=detail, updated_at=at))
    conn.execute(update(report_numbers).where(report_numbers.c.number == number).values(
        status=Status.RESTORED.value, detail=detail, final=True, updated_at=at))


def channel_state(conn: Any, report_id: bytes) -> ChannelState | None:
    row = conn.execute(select(channel_reports).where(
        channel_reports.c.report_id == report_id)).first()
    if row is None:
        return None
    return ChannelState(
        bytes(row.report_id), row.outlet_code, row.outlet_name, row.agent, row.address,
        row.carrier_node, tuple(n for n in row.numbers.split(",") if n),
        bytes(row.penalty_id) if row.penalty_id is not None else None)


def record_penalty(conn: Any, *, penalty_id: bytes, report: ChannelState, bureau: str,
                   violation: str, legal_basis: str, measure: str, now: datetime) -> None:
    conn.execute(update(channel_reports).where(channel_reports.c.report_id == report.report_id)
                 .values(penalty_id=penalty_id))
    conn.execute(insert(penalties), {
        "penalty_id": penalty_id, "bureau": bureau, "carrier": report.carrier_node,
        "outlet_code": report.outlet_code, "violation": violation, "legal_basis": legal_basis,
        "measure": measure, "numbers_total": len(report.numbers),
        "issued_at": to_micros(now)})


# --- Listings (read the node's database; the node may be running) --------------------


def progress_counts(conn: Any, now_micros: int) -> list[ProgressCount]:
    """Counts for the special action by carrier and category (pure SQL over wf_numbers)."""
    rows = conn.execute(select(numbers.c.carrier_node, numbers.c.category, numbers.c.status,
                               func.count()).group_by(numbers.c.carrier_node,
                                                      numbers.c.category, numbers.c.status))
    counts = [StatusCount(carrier, category, status, n) for carrier, category, status, n in rows]
    overdue = dict(conn.execute(
        select(notices.c.carrier, func.count()).where(
            notices.c.closed_at.is_(None), notices.c.deadline < now_micros,
            notices.c.bureau != notices.c.carrier).group_by(notices.c.carrier)).all())
    return count_progress(counts, overdue)


def id_holder_rows(conn: Any, *, since: datetime | None = None, carrier: str = "",
                   min_cards: int = 0, outcome: str = "") -> list[dict[str, Any]]:
    """ID holders carriers reported (IdConcentrationReport), one row per holder: the
    keyed HMAC of the ID (never the ID number), its card count and verification outcome."""
    q = select(id_holders).order_by(id_holders.c.received_at, id_holders.c.report_id,
                                    id_holders.c.id_hmac)
    if since is not None:
        q = q.where(id_holders.c.received_at >= to_micros(since))
    if carrier:
        q = q.where(id_holders.c.carrier == carrier)
    if min_cards:
        q = q.where(id_holders.c.card_count >= min_cards)
    if outcome:
        q = q.where(id_holders.c.outcome == outcome)
    return [{
        "report": bytes(h.report_id).hex(), "received": from_micros(h.received_at),
        "carrier": h.carrier, "province": h.province,
        "id_hmac": bytes(h.id_hmac).hex(), "hmac_key": h.hmac_key_id, "cards": h.card_count,
        "outcome": h.outcome} for h in conn.execute(q)]
