"""A provincial communications bureau: reports in, notices out, outcomes back to the police.

Every handler runs in the node's ledger transaction, so a report is logged, triaged,
turned into notices and acknowledged to its reporter in one commit; an action report
is logged, applied, re-routed where the number was ported, and fed back in one commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from exchange import messages
from exchange.errors import InvalidBodyError, OperationError
from exchange.identity import Role
from exchange.messages import (
    AppealDecision,
    AppealOutcome,
    Category,
    Circular,
    NumberOutcome,
    NumberReport,
    Penalty,
    ProgressCount,
    ProgressReport,
    ShutdownNotice,
    Withdrawal,
)
from exchange.node import Context
from exchange.receive import Accepted
from exchange.storage.statements import DriverStatement
from nodes.models import (
    INSERT_CASE,
    INSERT_NOTICE_LINE,
    INSERT_REPORT_LINE,
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
from nodes.obligations import raise_overdue
from nodes.workflow import (
    FINAL,
    STATUS_OF_OUTCOME,
    Router,
    Status,
    Verdict,
    chunks,
    feedback,
    forward_thread,
    from_micros,
    judge_number,
    message_id_arg,
    to_micros,
    triage,
)

LEGAL_BASIS = ("Anti-Telecom and Online Fraud Law art. 21; MIIT real-name registration "
               "rules: shut down unregistered cards used for fraud")

_routers: dict[tuple[int, int], Router] = {}


def router_for(ctx: Context) -> Router:
    d = ctx.directory
    key = (id(d), d.version)
    r = _routers.get(key)
    if r is None:
        _routers.clear()
        r = _routers[key] = Router.for_directory(d)
    return r


def _province(ctx: Context) -> str:
    return ctx.directory.member(ctx.node.node_id).province


# --- Reports ---------------------------------------------------------------------------


def on_number_report(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, NumberReport)
    # A forwarded report's reporter and id come from the reporter's own envelope, which
    # the receive checks verified (rule forwarded-origin); it travels on with the numbers.
    if acc.origin is not None:
        # A part's report id is the first part's, as the reporter's envelope says.
        origin, report_id = acc.origin.sender, acc.origin.report_id
        origin_envelope = body.origin_envelope
    else:
        if len(body.report_id) not in (0, 16):
            raise InvalidBodyError(f"number_report.report_id must be a 16-byte message id, "
                                   f"got {len(body.report_id)} bytes")
        # A later part of a report names its first part: one report, however many parts.
        origin, report_id = h.sender, body.report_id or h.message_id
        origin_envelope = acc.envelope.raw
    reported = _new_in_report(ctx, report_id, origin, body.numbers, message_id=h.message_id)
    if not reported:
        return
    candidates = {n for n, _ in map(judge_number, reported) if n}
    known = {r.number: r for r in _numbers_rows(ctx, candidates)}
    live_known = [n for n, r in known.items() if r.status not in (Status.WITHDRAWN,
                                                                   Status.RESTORED)]
    decisions = triage(reported, province=_province(ctx), known=live_known,
                       router=router_for(ctx), directory=ctx.directory)
    now = to_micros(ctx.now)
    rows: dict[str, tuple[Status, str, str]] = {}
    to_notice: dict[str, list[str]] = defaultdict(list)
    to_forward: dict[str, list[str]] = defaultdict(list)
    for t in decisions:
        key = t.number or t.reported
        if key in rows:
            continue  # the same number twice in one report
        if t.verdict is Verdict.REJECT:
            rows[key] = (Status.REJECTED, t.reason, "")
        elif t.verdict is Verdict.UNROUTABLE:
            rows[key] = (Status.UNROUTABLE, t.reason, "")
        elif t.verdict is Verdict.FORWARD:
            rows[key] = (Status.FORWARDED, f"to {t.target}", "")
            to_forward[t.target].append(t.number)
        elif t.verdict is Verdict.KNOWN:
            case = known.get(t.number)
            if case is None:  # twice in this report, first time noticed just now
                continue
            rows[key] = (Status(case.status), "already known to this bureau", case.carrier_node)
        else:
            rows[key] = (Status.NOTICED, f"notice to {t.target}", t.target)
            to_notice[t.target].append(t.number)
    _count_report_numbers(ctx, report_id, origin=origin, sender=h.sender, body=body,
                          count=len(rows))
    category = body.category
    # A number whose earlier case ended (withdrawn, restored) starts a new one in its row.
    reopened = [n for ns in to_notice.values() for n in ns if n in known]
    if reopened:
        ctx.conn.execute(delete(numbers).where(numbers.c.number.in_(reopened)))
    # Notices first, so each new case is written once, naming its notice.
    new_cases = []
    for carrier, ns in sorted(to_notice.items()):
        for notice_id, part in send_notices(ctx, carrier, ns, category=category,
                                            source=report_id, cases_exist=False):
            new_cases.extend((n, Status.NOTICED.value, category.value, carrier, notice_id,
                              carrier, "", "", now) for n in part)
    INSERT_CASE.run(ctx.conn, new_cases)
    for bureau, ns in sorted(to_forward.items()):
        for part in chunks(ns):
            ctx.send(bureau, NumberReport(
                numbers=tuple(part), category=category, discovered_at=body.discovered_at,
                case_number=body.case_number, evidence_summary=body.evidence_summary,
                confidence=body.confidence, origin_envelope=origin_envelope),
                in_reply_to=report_id, thread=forward_thread(origin, report_id))
    # The acknowledgement: every number with what this bureau did with it; each line of
    # the report is then written once, naming the Circular that told the reporter.
    told = send_feedback(ctx, origin, [
        feedback(number, status, detail=detail, carrier_node=carrier, report_id=report_id,
                 decided_at=ctx.now)
        for number, (status, detail, carrier) in rows.items()],
        summary=f"report {report_id.hex()} received by {ctx.node.node_id}: "
                f"{len(rows)} number(s)", in_reply_to=report_id)
    INSERT_REPORT_LINE.run(ctx.conn, [
        # A forwarded number is the other bureau's to feed back: this bureau's
        # obligation ends with the hand-over.
        (report_id, number, status.value, detail, carrier,
         status in FINAL or status is Status.FORWARDED, feedback_id, now)
        for (number, (status, detail, carrier)), feedback_id in zip(rows.items(), told,
                                                                    strict=True)])


def _new_in_report(ctx: Context, report_id: bytes, origin: str, reported: Sequence[str], *,
                   message_id: bytes) -> list[str]:
    """The numbers of this message that its report does not hold yet.

    A report's parts (and a bureau's forwards of them) arrive as several messages; a
    part sent again under a new message adds nothing, and a part arriving after its
    report was withdrawn is not acted on.
    """
    row = ctx.conn.execute(select(reports.c.origin, reports.c.withdrawn_at).where(
        reports.c.report_id == report_id)).first()
    if row is None:
        return list(reported)
    if row.origin != origin:
        raise InvalidBodyError(f"number_report is a part of report {report_id.hex()}, "
                               f"which is no report of {origin}")
    if row.withdrawn_at is not None:
        ctx.log_action("report.part-after-withdrawal", report_id, message_id=message_id)
        return []
    keys = {n: judge_number(n)[0] or n for n in reported}
    have: set[str] = set()
    for part in chunks(sorted(set(keys.values()))):
        have.update(ctx.conn.scalars(select(report_numbers.c.number).where(
            report_numbers.c.report_id == report_id, report_numbers.c.number.in_(part))))
    fresh = [n for n in reported if keys[n] not in have]
    if not fresh:
        ctx.log_action("report.already-known", report_id, message_id=message_id)
    return fresh


def _count_report_numbers(ctx: Context, report_id: bytes, *, origin: str, sender: str,
                          body: NumberReport, count: int) -> None:
    """Create the report on its first part to arrive; add each later part's numbers."""
    updated = ctx.conn.execute(update(reports).where(reports.c.report_id == report_id)
                               .values(numbers_total=reports.c.numbers_total + count))
    if updated.rowcount:
        return
    deadlines = ctx.node.config.deadlines
    ctx.conn.execute(insert(reports), {
        "report_id": report_id, "origin": origin, "counterpart": sender,
        "category": body.category.value, "case_number": body.case_number,
        "numbers_total": count, "created_at": to_micros(ctx.now),
        "feedback_due_at": to_micros(ctx.now + timedelta(hours=deadlines.feedback_hours)),
        "withdrawn_at": None, "escalated_at": None})


_CASES = DriverStatement.listing(
    "SELECT number, status, carrier_node, notice_id FROM wf_numbers WHERE number IN ({list})")


def _numbers_rows(ctx: Context, candidates: Iterable[str]) -> list[Any]:
    """This bureau's cases of ``candidates`` (number, status, carrier_node, notice_id)."""
    out = []
    for part in chunks(sorted(candidates)):
        out.extend(_CASES(len(part)).rows(ctx.conn, tuple(part)))
    return out


def send_notices(ctx: Context, carrier: str, nums: Sequence[str], *, category: Category,
                 source: bytes, cases_exist: bool = True) -> list[tuple[bytes, Sequence[str]]]:
    """Send ``nums`` to ``carrier`` in ShutdownNotices and record each notice and its lines.

    Returns each notice's id with its numbers. Cases that exist already (a re-routed
    number) are pointed at their new notice here; a new report's caller writes its new
    cases with these ids instead (``cases_exist=False``).
    """
    deadline = ctx.now + ctx.node.config.deadlines.shutdown()
    sent = []
    for part in chunks(list(nums)):
        notice_id = ctx.send(carrier, ShutdownNotice(
            numbers=tuple(part), legal_basis=LEGAL_BASIS, deadline=deadline,
            investigate_channel=True, source_reports=(source,), category=category),
            thread=f"report:{source.hex()}")
        ctx.conn.execute(insert(notices), {
            "notice_id": notice_id, "bureau": ctx.node.node_id, "carrier": carrier,
            "category": category.value, "created_at": to_micros(ctx.now),
            "deadline": to_micros(deadline), "numbers_total": len(part), "answered": 0,
            "closed_at": None, "escalated_at": None})
        INSERT_NOTICE_LINE.run(ctx.conn, [(notice_id, n, None, "", None, None) for n in part])
        if cases_exist:
            ctx.conn.execute(update(numbers).where(numbers.c.number.in_(part))
                             .values(notice_id=notice_id))
        sent.append((notice_id, part))
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


# Open lines (report, number, reporter) of the numbers listed, in reports not withdrawn.
# "final <> true", not "final = false": SQLite (no statistics) would then walk
# ix_wf_report_numbers_open, every open line of every report, for each action report
# (100,000 entries a message in a bulk run) instead of looking up the numbers listed.
_OPEN_REPORT_LINES = DriverStatement.listing(
    "SELECT rn.report_id, rn.number, r.origin FROM wf_report_numbers rn "
    "JOIN wf_reports r ON r.report_id = rn.report_id "
    "WHERE rn.number IN ({list}) AND rn.final <> ? AND r.withdrawn_at IS NULL")


def feed_back_final(ctx: Context, decided: dict[str, tuple[Status, str, str]]) -> None:
    """Tell every reporter of these numbers their final outcome; close those lines."""
    if not decided:
        return
    by_origin: dict[str, list[tuple[bytes, str]]] = defaultdict(list)
    for part in chunks(sorted(decided)):
        for report_id, number, origin in _OPEN_REPORT_LINES(len(part)).tuples(
                ctx.conn, (*part, True)):
            by_origin[origin].append((bytes(report_id), number))
    now = to_micros(ctx.now)
    updates = []
    for origin, open_lines in sorted(by_origin.items()):
        open_lines.sort()  # by report, then number: the same Circulars on every database
        lines = []
        for report_id, number in open_lines:
            status, detail, carrier = decided[number]
            lines.append(feedback(number, status, detail=detail, carrier_node=carrier,
                                  report_id=report_id, decided_at=ctx.now))
        told = send_feedback(ctx, origin, lines,
                             summary=f"outcomes of {len(open_lines)} reported number(s)")
        for (report_id, number), feedback_id in zip(open_lines, told, strict=True):
            status, detail, carrier = decided[number]
            updates.append((status.value, detail, carrier, status in FINAL, feedback_id, now,
                            report_id, number))
    UPDATE_REPORT_LINE.run(ctx.conn, updates)


# --- Carriers' answers -------------------------------------------------------------------


def on_action_report(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.ActionReport)
    notice = ctx.conn.execute(select(notices).where(
        notices.c.notice_id == h.in_reply_to, notices.c.carrier == h.sender)).one()
    notice_id = bytes(notice.notice_id)
    # Each line of the notice with the number's case (if any), in one read.
    listed = {r[0]: r for r in _NOTICE_LINES_AND_CASES.tuples(ctx.conn, (notice_id,))}
    newly_answered = 0
    decided: dict[str, tuple[Status, str, str]] = {}
    reroute: dict[str, list[str]] = defaultdict(list)
    now = to_micros(ctx.now)
    withdrawal = h.thread == "withdrawal"
    line_updates, case_updates = [], []
    for a in body.actions:
        # Every number is one the notice listed (rule own-notice).
        _, outcome, case_status, case_carrier, case_outlet, case_tried = listed[a.number]
        if not withdrawal:
            if outcome is None:
                newly_answered += 1
            line_updates.append((a.outcome.value, a.refusal_reason or a.ported_to_hint, now,
                                 h.message_id, notice_id, a.number))
        if case_status is None:
            continue  # no case for it (the LEFT JOIN found none)
        outlet = a.channel.outlet_code if a.channel is not None and a.channel.outlet_code \
            else case_outlet
        status, detail = STATUS_OF_OUTCOME[a.outcome], a.refusal_reason
        if a.outcome is messages.ActionOutcome.NOT_OUR_SUBSCRIBER:
            hint = a.ported_to_hint
            tried = set(filter(None, case_tried.split(",")))
            if hint and hint not in tried and ctx.directory.has_member(hint) and \
                    ctx.directory.member(hint).role is Role.CARRIER:
                reroute[hint].append(a.number)
                case_updates.append((Status.NOTICED.value, f"ported from {h.sender} to {hint}",
                                     hint, outlet, ",".join(sorted(tried | {hint})), now,
                                     a.number))
                continue
            detail = (f"{h.sender}: not our subscriber" +
                      (f"; ported to {hint}, not a member carrier" if hint and hint not in
                       tried else "; no other carrier to ask"))
        if withdrawal and case_status == Status.WITHDRAWN:
            case_updates.append((case_status, f"service restored by {h.sender} after the "
                                 "withdrawal", case_carrier, outlet, case_tried, now, a.number))
            continue
        case_updates.append((status.value, detail, h.sender, outlet, case_tried, now, a.number))
        decided[a.number] = (status, detail, h.sender)
    UPDATE_NOTICE_LINE.run(ctx.conn, line_updates)
    UPDATE_CASE.run(ctx.conn, case_updates)
    if newly_answered:
        answered = notice.answered + newly_answered
        ctx.conn.execute(update(notices).where(notices.c.notice_id == notice_id).values(
            answered=answered,
            closed_at=to_micros(ctx.now) if answered >= notice.numbers_total else None))
    for carrier, ns in sorted(reroute.items()):
        send_notices(ctx, carrier, ns, category=Category(notice.category), source=notice_id)
    feed_back_final(ctx, decided)


_NOTICE_LINES_AND_CASES = DriverStatement(
    "SELECT nn.number, nn.outcome, c.status, c.carrier_node, c.outlet_code, c.tried "
    "FROM wf_notice_numbers nn LEFT JOIN wf_numbers c ON c.number = nn.number "
    "WHERE nn.notice_id = ?")


def on_channel_report(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.ChannelReport)
    ch = body.channel or messages.SalesChannel()
    if not ch.outlet_code and not ch.outlet_name:
        raise InvalidBodyError("channel_report names no outlet (outlet_code or outlet_name)")
    carrier = ch.carrier_node or (h.sender if acc.sender.role is Role.CARRIER else "")
    ctx.conn.execute(insert(channel_reports), {
        "report_id": h.message_id, "reporter": h.sender, "outlet_code": ch.outlet_code,
        "outlet_name": ch.outlet_name, "agent": ch.agent, "address": ch.address,
        "carrier_node": carrier, "numbers": ",".join(body.numbers), "findings": body.findings,
        "received_at": to_micros(ctx.now), "penalty_id": None})


def on_id_concentration_report(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.IdConcentrationReport)
    rows = []
    for holder in body.holders:
        if len(holder.id_hmac) != 32:
            raise InvalidBodyError("id_concentration_report: an ID HMAC must be 32 bytes "
                                   f"(HMAC-SHA256), got {len(holder.id_hmac)}")
        rows.append({"report_id": h.message_id, "id_hmac": holder.id_hmac,
                     "carrier": h.sender, "province": body.province,
                     "hmac_key_id": body.hmac_key_id, "card_count": holder.card_count,
                     "outcome": (holder.outcome or messages.VerificationOutcome.PENDING).value,
                     "received_at": to_micros(ctx.now)})
    if rows:
        ctx.conn.execute(insert(id_holders), rows)


def on_appeal(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.Appeal)
    # The appeal is the cutting carrier's, about a line shut down (rules cutting-carrier,
    # shut-line).
    decide_by = body.decide_by or ctx.now + timedelta(
        hours=ctx.node.config.deadlines.appeal_hours)
    ctx.conn.execute(insert(appeals), {
        "appeal_id": h.message_id, "carrier": h.sender, "bureau": ctx.node.node_id,
        "number": body.number, "grounds": body.grounds, "notice_id": body.notice_id or None,
        "created_at": to_micros(ctx.now), "decide_by": to_micros(decide_by),
        "decided_at": None, "outcome": None, "reasoning": "", "decision_id": None,
        "escalated_at": None})


def on_withdrawal(ctx: Context, acc: Accepted) -> None:
    """The reporter retracts a report: numbers no other live report names are released."""
    body = acc.message.body
    assert isinstance(body, Withdrawal)
    # The report is the reporter's, from whoever withdraws it (rules withdrawn-report,
    # forwarding-bureau); the reporter's own Withdrawal goes on to the next bureau.
    report = ctx.conn.execute(select(reports).where(
        reports.c.report_id == body.withdrawn_message_id)).one()
    if report.withdrawn_at is not None:
        return
    withdraw_report(ctx, report, reason=body.reason,
                    origin_envelope=body.origin_envelope if acc.origin else acc.envelope.raw)


def withdraw_report(ctx: Context, report: Any, *, reason: str, origin_envelope: bytes
                    ) -> None:
    rid = bytes(report.report_id)
    ctx.conn.execute(update(reports).where(reports.c.report_id == rid)
                     .values(withdrawn_at=to_micros(ctx.now)))
    lines = ctx.conn.execute(select(report_numbers).where(
        report_numbers.c.report_id == rid)).all()
    ctx.conn.execute(update(report_numbers).where(report_numbers.c.report_id == rid).values(
        status=Status.WITHDRAWN.value, detail=reason, final=True,
        updated_at=to_micros(ctx.now)))
    forwarded: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        if line.status == Status.FORWARDED:
            forwarded[line.detail.removeprefix("to ")].append(line.number)
    release: dict[tuple[str, bytes], list[str]] = defaultdict(list)
    for case in _numbers_rows(ctx, (ln.number for ln in lines)):
        still = ctx.conn.execute(
            select(func.count()).select_from(report_numbers)
            .join(reports, reports.c.report_id == report_numbers.c.report_id)
            .where(report_numbers.c.number == case.number, report_numbers.c.report_id != rid,
                   reports.c.withdrawn_at.is_(None))).scalar_one()
        if still or case.status not in (Status.NOTICED, Status.SHUT_DOWN):
            continue
        if case.notice_id is not None:
            release[(case.carrier_node, bytes(case.notice_id))].append(case.number)
        ctx.conn.execute(update(numbers).where(numbers.c.number == case.number).values(
            status=Status.WITHDRAWN.value, detail=f"report withdrawn: {reason}",
            updated_at=to_micros(ctx.now)))
    for (carrier, notice_id), ns in sorted(release.items()):
        for part in chunks(ns):
            ctx.send(carrier, Withdrawal(withdrawn_message_id=notice_id, numbers=tuple(part),
                                         reason=reason))
    for bureau, ns in sorted(forwarded.items()):
        if ctx.directory.has_member(bureau):
            for part in chunks(ns):
                ctx.send(bureau, Withdrawal(withdrawn_message_id=rid, numbers=tuple(part),
                                            reason=reason, origin_envelope=origin_envelope),
                         thread=forward_thread(report.origin, rid))


HANDLERS = {
    "number_report": on_number_report,
    "action_report": on_action_report,
    "channel_report": on_channel_report,
    "id_concentration_report": on_id_concentration_report,
    "appeal": on_appeal,
    "withdrawal": on_withdrawal,
}


# --- Operator commands ----------------------------------------------------------------


def decide_appeal(ctx: Context, *, appeal_id: str, lift: bool, reasoning: str
                  ) -> dict[str, Any]:
    if not reasoning.strip():
        raise OperationError("an appeal decision needs its reasoning (--reasoning)")
    aid = message_id_arg(appeal_id, "appeal")
    row = ctx.conn.execute(select(appeals).where(appeals.c.appeal_id == aid,
                                                 appeals.c.bureau == ctx.node.node_id)).first()
    if row is None:
        raise OperationError(f"no appeal {appeal_id} at {ctx.node.node_id}")
    if row.decided_at is not None:
        raise OperationError(f"appeal {appeal_id} was decided already ({row.outcome})")
    outcome = AppealOutcome.LIFTED if lift else AppealOutcome.UPHELD
    decision = AppealDecision(number=row.number, outcome=outcome, reasoning=reasoning,
                              appeal_id=aid)
    decision_id = ctx.send(row.carrier, decision, in_reply_to=aid)
    informed = []
    origins = ctx.conn.scalars(
        select(reports.c.origin).distinct()
        .join(report_numbers, reports.c.report_id == report_numbers.c.report_id)
        .where(report_numbers.c.number == row.number)).all()
    for origin in sorted(origins):
        if ctx.directory.has_member(origin) and \
                ctx.directory.member(origin).role is Role.POLICE:
            ctx.send(origin, decision, in_reply_to=aid)
            informed.append(origin)
    ctx.conn.execute(update(appeals).where(appeals.c.appeal_id == aid).values(
        decided_at=to_micros(ctx.now), outcome=outcome.value, reasoning=reasoning,
        decision_id=decision_id))
    if lift:
        ctx.conn.execute(update(numbers).where(numbers.c.number == row.number).values(
            status=Status.RESTORED.value, detail=f"appeal lifted: {reasoning}",
            updated_at=to_micros(ctx.now)))
        ctx.conn.execute(update(report_numbers).where(
            report_numbers.c.number == row.number).values(
            status=Status.RESTORED.value, detail=f"appeal lifted: {reasoning}", final=True,
            updated_at=to_micros(ctx.now)))
    return {"appeal_id": appeal_id, "outcome": outcome.value, "number": row.number,
            "decision_id": decision_id.hex(), "informed": [row.carrier, *informed]}


def issue_penalty(ctx: Context, *, channel_report_id: str, violation: str, measure: str,
                  legal_basis: str) -> dict[str, Any]:
    rid = message_id_arg(channel_report_id, "channel report")
    row = ctx.conn.execute(select(channel_reports).where(
        channel_reports.c.report_id == rid)).first()
    if row is None:
        raise OperationError(f"no channel report {channel_report_id} at {ctx.node.node_id}")
    if row.penalty_id is not None:
        raise OperationError(f"channel report {channel_report_id} already led to penalty "
                             f"{bytes(row.penalty_id).hex()}")
    if not row.carrier_node or not ctx.directory.has_member(row.carrier_node):
        raise OperationError(f"channel report {channel_report_id} names no member carrier "
                             f"responsible for outlet {row.outlet_code or row.outlet_name!r}")
    if ctx.directory.member(row.carrier_node).province != _province(ctx):
        # The carrier would refuse it (rule province-bureau): its own bureau decides.
        raise OperationError(f"channel report {channel_report_id} names {row.carrier_node}, "
                             "a carrier of another province: its own bureau decides penalties")
    for name, value in (("violation", violation), ("measure", measure),
                        ("legal basis", legal_basis)):
        if not value.strip():
            raise OperationError(f"a penalty needs its {name}")
    nums = tuple(n for n in row.numbers.split(",") if n)
    penalty_id = ctx.send(row.carrier_node, Penalty(
        violation=violation, legal_basis=legal_basis, measure=measure,
        channel=messages.SalesChannel(outlet_code=row.outlet_code, outlet_name=row.outlet_name,
                                      agent=row.agent, address=row.address,
                                      carrier_node=row.carrier_node),
        numbers=nums[:ctx.node.config.limits.max_numbers_per_message], evidence=(rid,)),
        in_reply_to=rid)
    ctx.conn.execute(update(channel_reports).where(channel_reports.c.report_id == rid)
                     .values(penalty_id=penalty_id))
    ctx.conn.execute(insert(penalties), {
        "penalty_id": penalty_id, "bureau": ctx.node.node_id, "carrier": row.carrier_node,
        "outlet_code": row.outlet_code, "violation": violation, "legal_basis": legal_basis,
        "measure": measure, "numbers_total": len(nums), "issued_at": to_micros(ctx.now)})
    return {"penalty_id": penalty_id.hex(), "carrier": row.carrier_node,
            "outlet": row.outlet_code}


def progress_counts(conn: Any, now_micros: int) -> list[ProgressCount]:
    """Counts for the special action by carrier and category (pure SQL over wf_numbers)."""
    rows = conn.execute(select(numbers.c.carrier_node, numbers.c.category, numbers.c.status,
                               func.count()).group_by(numbers.c.carrier_node,
                                                      numbers.c.category, numbers.c.status))
    acc: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for carrier, category, status, n in rows:
        acc[(carrier, category)][status] += n
    overdue = dict(conn.execute(
        select(notices.c.carrier, func.count()).where(
            notices.c.closed_at.is_(None), notices.c.deadline < now_micros,
            notices.c.bureau != notices.c.carrier).group_by(notices.c.carrier)).all())
    out = []
    for (carrier, category), by_status in sorted(acc.items()):
        out.append(ProgressCount(
            carrier_node=carrier, category=Category(category),
            reported=sum(by_status.values()), shut_down=by_status[Status.SHUT_DOWN],
            pending=by_status[Status.NOTICED], refused=by_status[Status.REFUSED],
            overdue=overdue.get(carrier, 0)))
    return out


def send_progress(ctx: Context) -> dict[str, Any]:
    counts = progress_counts(ctx.conn, to_micros(ctx.now))
    office = ctx.directory.office.node_id
    pid = ctx.send(office, ProgressReport(province=_province(ctx), counts=tuple(counts),
                                          as_of=ctx.now))
    return {"progress_id": pid.hex(), "office": office, "lines": len(counts)}


def overdue_notices(ctx: Context) -> list[bytes]:
    """Escalate, once each, the notices past their deadline without a full answer."""
    rows = ctx.conn.execute(select(notices).where(
        notices.c.bureau == ctx.node.node_id, notices.c.closed_at.is_(None),
        notices.c.escalated_at.is_(None), notices.c.deadline < to_micros(ctx.now))).all()
    raised = []
    for n in rows:
        detail = (f"shutdown notice {bytes(n.notice_id).hex()} to {n.carrier}: "
                  f"{n.numbers_total - n.answered} of {n.numbers_total} number(s) unanswered "
                  f"past the deadline {from_micros(n.deadline).isoformat()}")
        raised.append(raise_overdue(
            ctx, messages.EscalationKind.OVERDUE_NOTICE, subject_node=n.carrier,
            subject_id=bytes(n.notice_id), detail=detail))
        ctx.conn.execute(update(notices).where(notices.c.notice_id == n.notice_id)
                         .values(escalated_at=to_micros(ctx.now)))
    return raised



# --- Listings (read the node's database; the node may be running) --------------------


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
