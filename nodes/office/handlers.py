"""The national office's handlers: store every escalation and every progress report."""

from __future__ import annotations

from collections.abc import Mapping

from exchange import messages
from exchange.node import Context, Handler
from exchange.receive import Accepted
from nodes.office import decisions, tables


def on_escalation(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.Escalation)
    tables.insert_escalation(ctx.conn, body, escalation_id=h.message_id, raised_by=h.sender,
                             received_at=ctx.now)


def on_progress_report(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.ProgressReport)
    tables.insert_progress(ctx.conn, body, report_id=h.message_id, bureau=h.sender,
                           as_of=body.as_of or ctx.now,
                           counts_json=decisions.progress_counts_json(body))


HANDLERS: Mapping[str, Handler] = {"escalation": on_escalation,
                                   "progress_report": on_progress_report}
