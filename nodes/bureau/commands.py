"""A bureau's operator commands: decide an appeal, issue a penalty, report progress.

Each runs in one transaction of the node (``nodes.agency``): it loads through
``tables``, decides with ``decisions`` (which raise OperationError naming what is
wrong), writes and sends.
"""

from __future__ import annotations

from typing import Any

from exchange.errors import OperationError
from exchange.ledger.entries import to_micros
from exchange.messages import AppealDecision, AppealOutcome, ProgressReport
from exchange.node import Context
from nodes.bureau import tables
from nodes.bureau.decisions import (
    appeal_outcome,
    check_appeal_decision,
    plan_penalty,
    police_to_inform,
)
from nodes.bureau.handlers import province_of
from nodes.shared.arguments import message_id_arg


def decide_appeal(ctx: Context, *, appeal_id: str, lift: bool, reasoning: str
                  ) -> dict[str, Any]:
    if not reasoning.strip():
        raise OperationError("an appeal decision needs its reasoning (--reasoning)")
    aid = message_id_arg(appeal_id, "appeal")
    appeal = check_appeal_decision(tables.appeal_state(ctx.conn, aid, ctx.node.node_id),
                                   appeal_text=appeal_id, bureau=ctx.node.node_id)
    outcome = appeal_outcome(lift)
    decision = AppealDecision(number=appeal.number, outcome=outcome, reasoning=reasoning,
                              appeal_id=aid)
    decision_id = ctx.send(appeal.carrier, decision, in_reply_to=aid)
    informed = police_to_inform(tables.reporters_of(ctx.conn, appeal.number), ctx.directory)
    for origin in informed:
        ctx.send(origin, decision, in_reply_to=aid)
    tables.record_appeal_decision(ctx.conn, aid, outcome=outcome.value, reasoning=reasoning,
                                  decision_id=decision_id, now=ctx.now)
    if outcome is AppealOutcome.LIFTED:
        tables.restore(ctx.conn, appeal.number, detail=f"appeal lifted: {reasoning}",
                       now=ctx.now)
    return {"appeal_id": appeal_id, "outcome": outcome.value, "number": appeal.number,
            "decision_id": decision_id.hex(), "informed": [appeal.carrier, *informed]}


def issue_penalty(ctx: Context, *, channel_report_id: str, violation: str, measure: str,
                  legal_basis: str) -> dict[str, Any]:
    rid = message_id_arg(channel_report_id, "channel report")
    report = tables.channel_state(ctx.conn, rid)
    if report is None:
        raise OperationError(f"no channel report {channel_report_id} at {ctx.node.node_id}")
    penalty = plan_penalty(report, report_text=channel_report_id, violation=violation,
                           measure=measure, legal_basis=legal_basis,
                           directory=ctx.directory, province=province_of(ctx),
                           max_numbers=ctx.node.config.limits.max_numbers_per_message)
    penalty_id = ctx.send(report.carrier_node, penalty, in_reply_to=rid)
    tables.record_penalty(ctx.conn, penalty_id=penalty_id, report=report,
                          bureau=ctx.node.node_id, violation=violation,
                          legal_basis=legal_basis, measure=measure, now=ctx.now)
    return {"penalty_id": penalty_id.hex(), "carrier": report.carrier_node,
            "outlet": report.outlet_code}


def send_progress(ctx: Context) -> dict[str, Any]:
    counts = tables.progress_counts(ctx.conn, to_micros(ctx.now))
    office = ctx.directory.office.node_id
    pid = ctx.send(office, ProgressReport(province=province_of(ctx), counts=tuple(counts),
                                          as_of=ctx.now))
    return {"progress_id": pid.hex(), "office": office, "lines": len(counts)}
