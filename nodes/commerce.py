"""A market regulator's node: report vendors selling unregistered cards, and their numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exchange import numbers
from exchange.errors import NumberError, OperationError
from exchange.messages import ChannelReport, SalesChannel
from exchange.node import Context
from nodes import police
from nodes.shared.batching import chunks

# A market regulator reports numbers the way police do, and hears back the same way.
HANDLERS = {"circular": police.on_circular}


def channel_report(ctx: Context, *, outlet_code: str, outlet_name: str, address: str = "",
                   agent: str = "", carrier: str = "", numbers_seen: Sequence[str] = (),
                   findings: str) -> dict[str, Any]:
    """Report a vendor seen selling unregistered cards to this province's bureau."""
    if not (outlet_code.strip() or outlet_name.strip()):
        raise OperationError("a channel report names the outlet (--outlet-code or --outlet-name)")
    if not findings.strip():
        raise OperationError("a channel report needs its findings (--findings)")
    if carrier and not ctx.directory.has_member(carrier):
        raise OperationError(f"carrier {carrier!r} is not in the directory")
    try:
        nums = tuple(numbers.normalise(n) for n in numbers_seen)
    except NumberError as e:
        raise OperationError(str(e)) from e
    me = ctx.directory.member(ctx.node.node_id)
    bureau = ctx.directory.bureau_of(me.province).node_id
    channel = SalesChannel(outlet_code=outlet_code, outlet_name=outlet_name, agent=agent,
                           address=address, carrier_node=carrier)
    ids = [ctx.send(bureau, ChannelReport(channel=channel, numbers=tuple(part),
                                          findings=findings, observed_at=ctx.now)).hex()
           for part in (chunks(nums) if nums else [()])]
    return {"bureau": bureau, "reports": ids}
