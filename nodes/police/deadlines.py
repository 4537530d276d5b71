"""A reporter's deadlines: case requests unanswered, reports without full feedback."""

from __future__ import annotations

from exchange.node import Context
from nodes.police import decisions, tables
from nodes.police.decisions import Overdue
from nodes.shared.obligations import raise_overdue


def overdue(ctx: Context) -> list[bytes]:
    """Escalate, once each, case requests unanswered and reports without full feedback."""
    me = ctx.node.node_id
    raised = []
    for case in tables.unanswered_cases(ctx.conn, police=me, now=ctx.now):
        raised.append(_escalate(ctx, decisions.overdue_case(case)))
        tables.mark_case_escalated(ctx.conn, case.request_id, now=ctx.now)
    for report in tables.late_reports(ctx.conn, origin=me, now=ctx.now):
        raised.append(_escalate(ctx, decisions.overdue_report(report)))
        tables.mark_report_escalated(ctx.conn, report.report_id, now=ctx.now)
    return raised


def _escalate(ctx: Context, due: Overdue) -> bytes:
    return raise_overdue(ctx, due.kind, subject_node=due.subject_node,
                         subject_id=due.subject_id, detail=due.detail)
