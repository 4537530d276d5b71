"""A provincial bureau's handlers: reports in, notices out, outcomes back to the police.

Each is load → plan → persist → send: named queries (``tables``) load values, a pure
``plan_…`` (``decisions``) decides, and the handler writes the plan and sends its
messages. Every handler runs in the node's ledger transaction, so a report is logged,
triaged, turned into notices and acknowledged to its reporter in one commit; an action
report is logged, applied, re-routed where the number was ported, and fed back in one
commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from exchange import messages
from exchange.errors import InvalidBodyError
from exchange.ledger.entries import to_micros
from exchange.messages import (
    Category,
    Circular,
    NumberOutcome,
    NumberReport,
    ShutdownNotice,
    Withdrawal,
)
from exchange.node import Context, Handler
from exchange.receive import Accepted
from nodes.bureau import tables
from nodes.bureau.decisions import (
    LEGAL_BASIS,
    Decided,
    Forward,
    NoticeOrder,
    SentNotice,
    channel_record,
    final_outcome,
    id_holder_records,
    plan_action_report,
    plan_final_feedback,
    plan_number_report,
    plan_withdrawal,
    report_outcome,
    report_summary,
)
from nodes.shared.batching import chunks
from nodes.shared.routing import forward_thread, judge_number, router_for


def province_of(ctx: Context) -> str:
    """The province this bureau serves."""
    return ctx.directory.member(ctx.node.node_id).province


# --- Reports ---------------------------------------------------------------------------


def on_number_report(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, NumberReport)
    origin, report_id, origin_envelope = _report_origin(acc, body)
    reported = _new_in_report(ctx, report_id, origin, body.numbers, message_id=h.message_id)
    if not reported:
        return
    candidates = {n for n, _ in map(judge_number, reported) if n}
    plan = plan_number_report(reported, cases=tables.cases_of(ctx.conn, candidates),
                              province=province_of(ctx), router=router_for(ctx),
                              directory=ctx.directory)
    _count_report_numbers(ctx, report_id, origin=origin, sender=h.sender, body=body,
                          count=len(plan.lines))
    # A number whose earlier case ended (withdrawn, restored) starts a new one in its row.
    tables.delete_cases(ctx.conn, plan.reopened)
    # Notices first, so each new case is written once, naming its notice.
    sent = send_notices(ctx, plan.notices, category=body.category, source=report_id,
                        cases_exist=False)
    tables.insert_cases(ctx.conn, sent, category=body.category, now=ctx.now)
    for fwd in plan.forwards:
        ctx.send(fwd.bureau, NumberReport(
            numbers=fwd.numbers, category=body.category, discovered_at=body.discovered_at,
            case_number=body.case_number, evidence_summary=body.evidence_summary,
            confidence=body.confidence, origin_envelope=origin_envelope),
            in_reply_to=report_id, thread=forward_thread(origin, report_id))
    # The acknowledgement: every number with what this bureau did with it; each line of
    # the report is then written once, naming the Circular that told the reporter.
    told = send_feedback(
        ctx, origin,
        [report_outcome(ln, report_id=report_id, decided_at=ctx.now) for ln in plan.lines],
        summary=report_summary(report_id, ctx.node.node_id, len(plan.lines)),
        in_reply_to=report_id)
    tables.insert_report_lines(ctx.conn, report_id, plan.lines, told, ctx.now)


def _report_origin(acc: Accepted, body: NumberReport) -> tuple[str, bytes, bytes]:
    """Who reported, which report, and the reporter's envelope to pass on with it."""
    # A forwarded report's reporter and id come from the reporter's own envelope, which
    # the receive checks verified (rule forwarded-origin); it travels on with the numbers.
    if acc.origin is not None:
        # A part's report id is the first part's, as the reporter's envelope says.
        return acc.origin.sender, acc.origin.report_id, body.origin_envelope
    if len(body.report_id) not in (0, 16):
        raise InvalidBodyError(f"number_report.report_id must be a 16-byte message id, "
                               f"got {len(body.report_id)} bytes")
    # A later part of a report names its first part: one report, however many parts.
    h = acc.message.header
    return h.sender, body.report_id or h.message_id, acc.envelope.raw


def _new_in_report(ctx: Context, report_id: bytes, origin: str, reported: Sequence[str], *,
                   message_id: bytes) -> list[str]:
    """The numbers of this message that its report does not hold yet.

    A report's parts (and a bureau's forwards of them) arrive as several messages; a
    part sent again under a new message adds nothing, and a part arriving after its
    report was withdrawn is not acted on.
    """
    report = tables.report_state(ctx.conn, report_id)
    if report is None:
        return list(reported)
    if report.origin != origin:
        raise InvalidBodyError(f"number_report is a part of report {report_id.hex()}, "
                               f"which is no report of {origin}")
    if report.withdrawn:
        ctx.log_action("report.part-after-withdrawal", report_id, message_id=message_id)
        return []
    keys = {n: judge_number(n)[0] or n for n in reported}
    have = tables.numbers_held(ctx.conn, report_id, keys.values())
    fresh = [n for n in reported if keys[n] not in have]
    if not fresh:
        ctx.log_action("report.already-known", report_id, message_id=message_id)
    return fresh


def _count_report_numbers(ctx: Context, report_id: bytes, *, origin: str, sender: str,
                          body: NumberReport, count: int) -> None:
    """Create the report on its first part to arrive; add each later part's numbers."""
    if tables.add_report_numbers(ctx.conn, report_id, count):
        return
    hours = ctx.node.config.deadlines.feedback_hours
    tables.insert_report(ctx.conn, report_id=report_id, origin=origin, counterpart=sender,
                         category=body.category, case_number=body.case_number, count=count,
                         now=ctx.now, feedback_due=ctx.now + timedelta(hours=hours))


def send_notices(ctx: Context, orders: Sequence[NoticeOrder], *, category: Category,
                 source: bytes, cases_exist: bool = True) -> list[SentNotice]:
    """Send each order to its carrier as a ShutdownNotice and record the notice and its
    lines.

    Cases that exist already (a re-routed number) are pointed at their new notice here;
    a new report's caller writes its new cases with the notices returned instead
    (``cases_exist=False``).
    """
    deadline = ctx.now + ctx.node.config.deadlines.shutdown()
    sent = []
    for order in orders:
        notice_id = ctx.send(order.carrier, ShutdownNotice(
            numbers=order.numbers, legal_basis=LEGAL_BASIS, deadline=deadline,
            investigate_channel=True, source_reports=(source,), category=category),
            thread=f"report:{source.hex()}")
        tables.insert_notice(ctx.conn, notice_id=notice_id, bureau=ctx.node.node_id,
                             carrier=order.carrier, category=category, now=ctx.now,
                             deadline=deadline, nums=order.numbers)
        if cases_exist:
            tables.point_cases_at(ctx.conn, order.numbers, notice_id)
        sent.append(SentNotice(notice_id, order.carrier, order.numbers))
    return sent


def send_feedback(ctx: Context, origin: str, lines: Sequence[NumberOutcome], *, summary: str,
                  in_reply_to: bytes = b"") -> list[bytes | None]:
    """Send ``lines`` to ``origin`` in Circulars; per line, the Circular that carried it.

    None for every line where ``origin`` is not a member (nobody to tell). The caller
    writes these ids on the report lines, as it writes their status.
    """
    if not lines or not ctx.directory.has_member(origin):
        return [None] * len(lines)
    told: list[bytes | None] = []
    for part in chunks(list(lines)):
        cid = ctx.send(origin, Circular(outcomes=tuple(part), summary=summary),
                       in_reply_to=in_reply_to)
        told.extend([cid] * len(part))
    return told


def feed_back_final(ctx: Context, decided: Mapping[str, Decided]) -> None:
    """Tell every reporter of these numbers their final outcome; close those lines."""
    if not decided:
        return
    open_lines = tables.open_report_lines(ctx.conn, decided)
    for batch in plan_final_feedback(decided, open_lines):
        told = send_feedback(ctx, batch.origin, [
            final_outcome(decided[ln.number], report_id=ln.report_id, decided_at=ctx.now)
            for ln in batch.lines], summary=f"outcomes of {len(batch.lines)} reported number(s)")
        tables.update_report_lines(ctx.conn, batch.lines, decided, told, ctx.now)


# --- Carriers' answers -------------------------------------------------------------------


def on_action_report(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.ActionReport)
    notice = tables.notice_state(ctx.conn, h.in_reply_to, h.sender)
    plan = plan_action_report(
        notice, tables.notice_lines(ctx.conn, notice.notice_id), body.actions,
        sender=h.sender, withdrawal=bool(body.withdrawal_id), directory=ctx.directory)
    tables.answer_notice_lines(ctx.conn, notice.notice_id, plan.answers,
                               answer_id=h.message_id, now=ctx.now)
    tables.update_cases(ctx.conn, plan.cases, ctx.now)
    if plan.answered is not None:
        tables.count_answered(ctx.conn, notice.notice_id, plan.answered, closed=plan.closed,
                              now=ctx.now)
    send_notices(ctx, plan.reroutes, category=notice.category, source=notice.notice_id)
    feed_back_final(ctx, {d.number: d for d in plan.decided})


# --- Channels, ID holders, appeals ------------------------------------------------------


def on_channel_report(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.ChannelReport)
    tables.insert_channel_report(ctx.conn, channel_record(
        body, report_id=h.message_id, sender=h.sender, sender_role=acc.sender.role,
        received_at=to_micros(ctx.now)))


def on_id_concentration_report(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.IdConcentrationReport)
    tables.insert_id_holders(ctx.conn, id_holder_records(
        body, report_id=h.message_id, sender=h.sender, received_at=to_micros(ctx.now)))


def on_appeal(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.Appeal)
    # The appeal is the cutting carrier's, about a line shut down (rules cutting-carrier,
    # shut-line).
    decide_by = body.decide_by or ctx.now + timedelta(
        hours=ctx.node.config.deadlines.appeal_hours)
    tables.insert_appeal(ctx.conn, appeal_id=h.message_id, carrier=h.sender,
                         bureau=ctx.node.node_id, number=body.number, grounds=body.grounds,
                         notice_id=body.notice_id or None, now=ctx.now, decide_by=decide_by)


# --- Withdrawals --------------------------------------------------------------------------


def on_withdrawal(ctx: Context, acc: Accepted) -> None:
    """The reporter retracts a report: numbers no other live report names are released."""
    body = acc.message.body
    assert isinstance(body, Withdrawal)
    # The report is the reporter's, from whoever withdraws it (rules withdrawn-report,
    # forwarding-bureau); the reporter's own Withdrawal goes on to the next bureau.
    report = tables.report_state(ctx.conn, body.withdrawn_message_id)
    if report is None:
        raise InvalidBodyError(f"withdrawal names report {body.withdrawn_message_id.hex()}, "
                               "which this bureau does not hold")
    if report.withdrawn:
        return
    withdraw_report(ctx, report, reason=body.reason,
                    origin_envelope=body.origin_envelope if acc.origin else acc.envelope.raw)


def withdraw_report(ctx: Context, report: tables.ReportState, *, reason: str,
                    origin_envelope: bytes) -> None:
    rid = report.report_id
    lines = tables.withdrawn_lines(ctx.conn, rid)
    nums = [ln.number for ln in lines]
    plan = plan_withdrawal(lines, tables.cases_of(ctx.conn, nums).values(),
                           still_reported=tables.still_reported(ctx.conn, rid, nums),
                           directory=ctx.directory)
    tables.withdraw(ctx.conn, rid, reason=reason, ended=plan.ended, now=ctx.now)
    for r in plan.releases:
        ctx.send(r.carrier, Withdrawal(withdrawn_message_id=r.notice_id, numbers=r.numbers,
                                       reason=reason))
    _pass_on(ctx, plan.passed_on, report, reason=reason, origin_envelope=origin_envelope)


def _pass_on(ctx: Context, forwards: Sequence[Forward], report: tables.ReportState, *,
             reason: str, origin_envelope: bytes) -> None:
    """The reporter's Withdrawal, on to each bureau the report's numbers went to."""
    for fwd in forwards:
        ctx.send(fwd.bureau, Withdrawal(withdrawn_message_id=report.report_id,
                                        numbers=fwd.numbers, reason=reason,
                                        origin_envelope=origin_envelope),
                 thread=forward_thread(report.origin, report.report_id))


HANDLERS: Mapping[str, Handler] = {
    "number_report": on_number_report,
    "action_report": on_action_report,
    "channel_report": on_channel_report,
    "id_concentration_report": on_id_concentration_report,
    "appeal": on_appeal,
    "withdrawal": on_withdrawal,
}
