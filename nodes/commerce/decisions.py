"""What a market regulator decides, pure: a channel report's checked contents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exchange import numbers
from exchange.errors import NumberError, OperationError
from exchange.messages import SalesChannel
from nodes.shared.batching import chunks


@dataclass(frozen=True, slots=True)
class ChannelReportPlan:
    channel: SalesChannel
    findings: str
    parts: tuple[tuple[str, ...], ...]  # one message each; one empty part without numbers


def plan_channel_report(*, outlet_code: str, outlet_name: str, address: str, agent: str,
                        carrier: str, carrier_known: bool, numbers_seen: Sequence[str],
                        findings: str) -> ChannelReportPlan:
    """``carrier_known``: the directory lists ``carrier`` (when one is named)."""
    if not (outlet_code.strip() or outlet_name.strip()):
        raise OperationError("a channel report names the outlet (--outlet-code or --outlet-name)")
    if not findings.strip():
        raise OperationError("a channel report needs its findings (--findings)")
    if carrier and not carrier_known:
        raise OperationError(f"carrier {carrier!r} is not in the directory")
    try:
        nums = tuple(numbers.normalise(n) for n in numbers_seen)
    except NumberError as e:
        raise OperationError(str(e)) from e
    channel = SalesChannel(outlet_code=outlet_code, outlet_name=outlet_name, agent=agent,
                           address=address, carrier_node=carrier)
    parts = tuple(tuple(p) for p in chunks(nums)) if nums else ((),)
    return ChannelReportPlan(channel, findings, parts)
