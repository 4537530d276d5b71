"""Overdue obligations: one escalation to the office and one ACTION entry, once each."""

from __future__ import annotations

import json

from exchange.messages import EscalationKind
from exchange.node import Context


def raise_overdue(ctx: Context, kind: EscalationKind, *, subject_node: str,
                  subject_id: bytes, detail: str) -> bytes:
    """Escalate an obligation past its deadline and log that this node did.

    The caller marks its row escalated in the same transaction, so a later deadline
    check does not raise it again. Returns the escalation's message id (empty where there
    is no office to tell: the office itself, or the office as the subject).
    """
    eid = ctx.escalate(kind, subject_node=subject_node, subject_message_id=subject_id,
                       detail=detail) or b""
    ctx.log_action(f"deadline.{kind.value}", json.dumps(
        {"message": subject_id.hex(), "escalation": eid.hex(), "detail": detail}).encode(),
        peer=subject_node, message_id=subject_id)
    return eid
