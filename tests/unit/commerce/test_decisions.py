"""A market regulator's channel report, checked and split into messages (pure)."""

from __future__ import annotations

import pytest

from exchange.errors import OperationError
from nodes.commerce.decisions import ChannelReportPlan, plan_channel_report
from nodes.shared.batching import CHUNK


def plan(**arguments: object) -> ChannelReportPlan:
    args: dict[str, object] = {
        "outlet_code": "FZ-0457", "outlet_name": "", "address": "", "agent": "",
        "carrier": "", "carrier_known": True, "numbers_seen": (),
        "findings": "sold cards without ID checks", **arguments}
    return plan_channel_report(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("arguments", "error"), [
    ({"outlet_code": " ", "outlet_name": ""},
     r"a channel report names the outlet \(--outlet-code or --outlet-name\)"),
    ({"findings": " "}, r"a channel report needs its findings \(--findings\)"),
    ({"carrier": "cmcc.xx", "carrier_known": False},
     r"carrier 'cmcc\.xx' is not in the directory"),
    ({"numbers_seen": ["12"]}, r"'12'"),
])
def test_a_bad_channel_report_is_refused_by_name(arguments: dict[str, object],
                                                 error: str) -> None:
    with pytest.raises(OperationError, match=error):
        plan(**arguments)


@pytest.mark.parametrize(("seen", "parts"), [
    ((), [0]),  # one report without numbers
    (("15959000001", "+8615959000002"), [2]),
    (tuple(f"+861595900{i:04d}" for i in range(CHUNK + 1)), [CHUNK, 1]),
])
def test_a_channel_report_is_sent_in_parts_of_normalised_numbers(
        seen: tuple[str, ...], parts: list[int]) -> None:
    got = plan(numbers_seen=seen, outlet_name="night market stall", carrier="cmcc.fj")
    assert [len(p) for p in got.parts] == parts
    assert all(n.startswith("+86") for p in got.parts for n in p)
    assert (got.channel.outlet_code, got.channel.outlet_name, got.channel.carrier_node) == (
        "FZ-0457", "night market stall", "cmcc.fj")
