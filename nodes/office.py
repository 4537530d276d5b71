"""The national office's node: it hears every escalation and every bureau's progress."""

from __future__ import annotations

import json

from sqlalchemy import insert

from exchange import messages
from exchange.node import Context
from exchange.receive import Accepted
from nodes.models import escalations, progress
from nodes.workflow import to_micros


def on_escalation(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.Escalation)
    ctx.conn.execute(insert(escalations), {
        "escalation_id": h.message_id, "raised_by": h.sender,
        "kind": body.escalation_kind.value, "subject_node": body.subject_node,
        "subject_message_id": body.subject_message_id or None, "detail": body.detail,
        "received_at": to_micros(ctx.now)})


def on_progress_report(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.ProgressReport)
    counts = [{"carrier": c.carrier_node, "category": c.category.value if c.category else "",
               "reported": c.reported, "shut_down": c.shut_down, "pending": c.pending,
               "refused": c.refused, "overdue": c.overdue} for c in body.counts]
    ctx.conn.execute(insert(progress), {
        "report_id": h.message_id, "bureau": h.sender, "province": body.province,
        "as_of": to_micros(body.as_of or ctx.now), "counts_json": json.dumps(counts)})


HANDLERS = {"escalation": on_escalation, "progress_report": on_progress_report}
