"""A reporter's handlers: feedback, case responses, appeal decisions (load → plan → persist).

Every line of a Circular names a report of this node, from the bureau it is with, and
moves no final outcome to another (rules own-report, report-bureau, outcome-transition,
checked before any handler): so only open lines change, and a late acknowledgement
never reopens a final one.
"""

from __future__ import annotations

from collections.abc import Mapping

from exchange import messages
from exchange.node import Context, Handler
from exchange.receive import Accepted
from nodes import rules
from nodes.police import decisions, tables


def on_circular(ctx: Context, acc: Accepted) -> None:
    """Feedback from a bureau: the status of numbers this node reported."""
    body = acc.message.body
    assert isinstance(body, messages.Circular)
    tables.update_open_lines(ctx.conn, decisions.plan_feedback(body.outcomes),
                             feedback_id=acc.message.header.message_id, now=ctx.now)


def on_case_response(ctx: Context, acc: Accepted) -> None:
    """A carrier's sealed answer to a case request of this node (rule own-case-request)."""
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.CaseResponse)
    decisions.check_case_response(body, me=ctx.node.node_id)
    tables.mark_answered(ctx.conn, h.in_reply_to, response_id=h.message_id, now=ctx.now)


def on_appeal_decision(ctx: Context, acc: Accepted) -> None:
    """Only lines of reports that went to the deciding bureau move, and a lifted appeal
    only those cut or open (rules report-bureau, outcome-transition)."""
    body = acc.message.body
    assert isinstance(body, messages.AppealDecision)
    moved = rules.reporter_appeal_lines(ctx, acc)
    tables.apply_appeal(ctx.conn, decisions.plan_appeal_decision(body, moved), now=ctx.now)


HANDLERS: Mapping[str, Handler] = {
    "circular": on_circular,
    "case_response": on_case_response,
    "appeal_decision": on_appeal_decision,
}
