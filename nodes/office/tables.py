"""The office's tables (escalations, progress): writes, and the listings that read them.

The listings read the node's database while the node may be running.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from exchange import messages
from exchange.ledger.entries import from_micros, to_micros
from nodes.models import escalations, progress


def insert_escalation(conn: Connection, escalation: messages.Escalation, *,
                      escalation_id: bytes, raised_by: str, received_at: datetime) -> None:
    conn.execute(insert(escalations), {
        "escalation_id": escalation_id, "raised_by": raised_by,
        "kind": escalation.escalation_kind.value, "subject_node": escalation.subject_node,
        "subject_message_id": escalation.subject_message_id or None,
        "detail": escalation.detail, "received_at": to_micros(received_at)})


def insert_progress(conn: Connection, report: messages.ProgressReport, *, report_id: bytes,
                    bureau: str, as_of: datetime, counts_json: str) -> None:
    conn.execute(insert(progress), {
        "report_id": report_id, "bureau": bureau, "province": report.province,
        "as_of": to_micros(as_of), "counts_json": counts_json})


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
