"""A market regulator's operator command: report a vendor selling unregistered cards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exchange.messages import ChannelReport
from exchange.node import Context
from nodes.commerce.decisions import plan_channel_report


def channel_report(ctx: Context, *, outlet_code: str, outlet_name: str, address: str = "",
                   agent: str = "", carrier: str = "", numbers_seen: Sequence[str] = (),
                   findings: str) -> dict[str, Any]:
    """Report a vendor seen selling unregistered cards to this province's bureau."""
    plan = plan_channel_report(
        outlet_code=outlet_code, outlet_name=outlet_name, address=address, agent=agent,
        carrier=carrier, carrier_known=not carrier or ctx.directory.has_member(carrier),
        numbers_seen=numbers_seen, findings=findings)
    me = ctx.directory.member(ctx.node.node_id)
    bureau = ctx.directory.bureau_of(me.province).node_id
    ids = [ctx.send(bureau, ChannelReport(channel=plan.channel, numbers=part,
                                          findings=plan.findings, observed_at=ctx.now)).hex()
           for part in plan.parts]
    return {"bureau": bureau, "reports": ids}
