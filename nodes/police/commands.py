"""A reporter's operator commands: report numbers, withdraw a report, ask a carrier.

Each runs in one transaction of the node: load what it needs, plan, write, send.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from exchange.identity import Role
from exchange.messages import CaseRequest, NumberReport, Withdrawal
from exchange.node import Context
from nodes.police import decisions, tables
from nodes.police.decisions import ReportPlan, ReportRequest
from nodes.shared.arguments import message_id_arg


def report(ctx: Context, *, numbers_found: Sequence[str], category: str, case_number: str,
           evidence: str = "", confidence: int = 80, bureau: str = "",
           discovered_at: str = "", report_id: str = "") -> dict[str, Any]:
    """Report numbers to the bureau as one report, sent in parts of at most CHUNK numbers.

    Every part after the first names the first part's message id, the report's id, so
    the bureau keeps them as one report and one withdrawal retracts all of them. With
    ``report_id`` (a report of this node, not withdrawn) the numbers are further parts
    of that report: a list larger than one operator call stays one report.
    """
    request = decisions.check_report(numbers_found=numbers_found, category=category,
                                     case_number=case_number, confidence=confidence)
    plan = _plan(ctx, request, bureau=bureau, report_id=report_id)
    found_at = datetime.fromisoformat(discovered_at) if discovered_at else ctx.now
    rid, parts = plan.report_id, []
    for part in plan.parts:
        mid = ctx.send(plan.bureau, NumberReport(
            numbers=part, category=request.category, discovered_at=found_at,
            case_number=case_number, evidence_summary=evidence, confidence=confidence,
            report_id=rid), thread=case_number)
        if not rid:
            rid = mid
            due = ctx.now + timedelta(hours=ctx.node.config.deadlines.feedback_hours)
            tables.insert_report(ctx.conn, report_id=rid, origin=ctx.node.node_id,
                                 bureau=plan.bureau, category=request.category.value,
                                 case_number=case_number, now=ctx.now, feedback_due=due)
        tables.insert_reported_lines(ctx.conn, rid, part, now=ctx.now)
        parts.append(mid.hex())
    if plan.numbers:
        tables.add_to_total(ctx.conn, rid, len(plan.numbers))
    return {"bureau": plan.bureau, "numbers": len(plan.numbers), "report": rid.hex(),
            "reports": [rid.hex()], "parts": parts}


def _plan(ctx: Context, request: ReportRequest, *, bureau: str, report_id: str
          ) -> ReportPlan:
    """Load what the report plan needs: the report it extends, or the bureau to send to."""
    extends = None
    if report_id:
        found = tables.sent_report(ctx.conn, message_id_arg(report_id, "report"),
                                   origin=ctx.node.node_id)
        extends = decisions.check_extension(found, report_id, node_id=ctx.node.node_id,
                                            request=request)
    elif not bureau:
        me = ctx.directory.member(ctx.node.node_id)
        bureau = ctx.directory.bureau_of(me.province).node_id
    already_in = tables.numbers_in_report(ctx.conn, extends.report_id, request.numbers) \
        if extends is not None else set()
    return decisions.plan_report(request, bureau=bureau, extends=extends,
                                 already_in=already_in)


def withdraw(ctx: Context, *, report_id: str, reason: str) -> dict[str, Any]:
    """Retract a report of this node: its bureau withdraws every notice it caused."""
    rid = message_id_arg(report_id, "report")
    found = tables.sent_report(ctx.conn, rid, origin=ctx.node.node_id)
    plan = decisions.plan_withdrawal(
        found, report_id, node_id=ctx.node.node_id, reason=reason,
        carried=tables.report_lines_numbers(ctx.conn, rid) if found else ())
    wid = ctx.send(plan.bureau, Withdrawal(withdrawn_message_id=rid, numbers=plan.numbers,
                                           reason=reason), in_reply_to=rid)
    tables.mark_withdrawn(ctx.conn, rid, reason=reason, now=ctx.now)
    return {"withdrawal_id": wid.hex(), "bureau": plan.bureau, "numbers": plan.count}


def ask(ctx: Context, *, carrier: str, case_number: str, authorization: str,
        numbers_asked: Sequence[str], questions: Sequence[str]) -> dict[str, Any]:
    """Send a case-cooperation request to a carrier, with its legal authorization."""
    is_carrier = ctx.directory.has_member(carrier) and \
        ctx.directory.member(carrier).role is Role.CARRIER
    case = decisions.check_case_request(
        carrier=carrier, is_carrier=is_carrier, authorization=authorization,
        numbers_asked=numbers_asked, questions=questions)
    deadline = ctx.now + timedelta(hours=ctx.node.config.deadlines.case_hours)
    rid = ctx.send(carrier, CaseRequest(case_number=case_number,
                                        legal_authorization=authorization,
                                        numbers=case.numbers, questions=case.questions,
                                        deadline=deadline), thread=case_number)
    tables.insert_case_request(ctx.conn, rid, case, police=ctx.node.node_id, carrier=carrier,
                               case_number=case_number, authorization=authorization,
                               now=ctx.now, deadline=deadline)
    return {"request_id": rid.hex(), "carrier": carrier, "deadline": deadline.isoformat()}
