"""A carrier's deadlines: appeals its bureau has not decided in time."""

from __future__ import annotations

from exchange.messages import EscalationKind
from exchange.node import Context
from nodes.carrier import decisions, tables
from nodes.shared.obligations import raise_overdue


def overdue(ctx: Context) -> list[bytes]:
    """Escalate, once each, this carrier's appeals the bureau has not decided in time."""
    raised = []
    for a in tables.undecided_appeals(ctx.conn, carrier=ctx.node.node_id, now=ctx.now):
        raised.append(raise_overdue(
            ctx, EscalationKind.OVERDUE_APPEAL, subject_node=a.bureau,
            subject_id=a.appeal_id, detail=decisions.overdue_appeal_detail(a)))
        tables.mark_appeal_escalated(ctx.conn, a.appeal_id, now=ctx.now)
    return raised
