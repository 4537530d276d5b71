"""The national office's node: it hears every escalation and every bureau's progress."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from exchange import messages
from exchange.ledger.entries import from_micros, to_micros
from exchange.node import Context
from exchange.receive import Accepted
from nodes.models import escalations, progress


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


# --- Listings (read the node's database; the node may be running) --------------------


def escalation_rows(conn: Connection, *, since: datetime | None = None, about: str = "",
                    kind: str = "") -> list[dict[str, Any]]:
    """Escalations this office received, oldest first, optionally since a time, about
    one node (the subject: a carrier, a bureau…) or of one kind."""
    q = select(escalations).order_by(escalations.c.received_at, escalations.c.escalation_id)
    if since is not None:
        q = q.where(escalations.c.received_at >= to_micros(since))
    if about:
        q = q.where(escalations.c.subject_node == about)
    if kind:
        q = q.where(escalations.c.kind == kind)
    return [{
        "escalation": bytes(e.escalation_id).hex(), "received": _when(e.received_at),
        "raised_by": e.raised_by, "kind": e.kind, "about": e.subject_node,
        "subject": bytes(e.subject_message_id).hex() if e.subject_message_id else "",
        "detail": e.detail} for e in conn.execute(q)]


def progress_rows(conn: Connection, *, since: datetime | None = None, bureau: str = "",
                  carrier: str = "") -> list[dict[str, Any]]:
    """Bureaus' progress reports, one row per carrier and category of each report."""
    q = select(progress).order_by(progress.c.as_of, progress.c.report_id)
    if since is not None:
        q = q.where(progress.c.as_of >= to_micros(since))
    if bureau:
        q = q.where(progress.c.bureau == bureau)
    out = []
    for p in conn.execute(q):
        for line in json.loads(p.counts_json):
            if carrier and line.get("carrier") != carrier:
                continue
            out.append({
                "progress_report": bytes(p.report_id).hex(), "as_of": _when(p.as_of),
                "bureau": p.bureau, "province": p.province, "carrier": line.get("carrier", ""),
                "category": line.get("category", ""), "reported": line.get("reported", 0),
                "shut_down": line.get("shut_down", 0), "pending": line.get("pending", 0),
                "refused": line.get("refused", 0), "overdue": line.get("overdue", 0)})
    return out


def _when(micros: int) -> datetime:
    """A stored time for a listing: the renderer shows it in the display zone."""
    return from_micros(int(micros))
