"""A bureau's deadline checks: shutdown notices past their deadline."""

from __future__ import annotations

from exchange.messages import EscalationKind
from exchange.node import Context
from nodes.bureau import tables
from nodes.bureau.decisions import overdue_detail
from nodes.shared.obligations import raise_overdue


def overdue_notices(ctx: Context) -> list[bytes]:
    """Escalate, once each, the notices past their deadline without a full answer."""
    raised = []
    for n in tables.overdue_notices(ctx.conn, ctx.node.node_id, ctx.now):
        raised.append(raise_overdue(ctx, EscalationKind.OVERDUE_NOTICE, subject_node=n.carrier,
                                    subject_id=n.notice_id, detail=overdue_detail(n)))
        tables.mark_notice_escalated(ctx.conn, n.notice_id, ctx.now)
    return raised
