"""Routing and a bureau's triage: where each reported number goes."""

from __future__ import annotations

import pytest

from exchange.numbers import NumberingPlan
from nodes.shared.routing import Disposition, Triage, forward_thread, triage
from shared.directory import DIRECTORY, ROUTER


def judge(*reported: str, known: tuple[str, ...] = ()) -> list[Triage]:
    return triage(reported, province="fj", known=known, router=ROUTER, directory=DIRECTORY)


@pytest.mark.parametrize(("reported", "disposition", "target", "reason"), [
    ("+8615959000001", Disposition.NOTICE, "cmcc.fj", ""),
    ("0086 159-5900-0001", Disposition.NOTICE, "cmcc.fj", ""),
    ("+8617059000001", Disposition.NOTICE, "mvno-x.fj", ""),  # the directory's plan wins
    ("+8613802500001", Disposition.FORWARD, "bureau.gd", ""),
    ("+8613800138000", Disposition.UNROUTABLE, "", "province 'bj', which has no bureau"),
    ("+8618659000000", Disposition.UNROUTABLE, "", "cucc.fj, which is not a carrier"),
    ("110", Disposition.REJECT, "", "never actionable"),
    ("10086", Disposition.REJECT, "", "never actionable"),
    ("12345", Disposition.REJECT, "", "'12345'"),
    ("+86 abc", Disposition.REJECT, "", "letters"),
])
def test_triage_decides_each_number(reported: str, disposition: Disposition, target: str,
                                    reason: str) -> None:
    [t] = judge(reported)
    assert (t.disposition, t.target) == (disposition, target)
    assert reason in t.reason


def test_triage_links_known_and_repeated_numbers_instead_of_noticing_again() -> None:
    got = judge("+8615959000001", "15959000001", "+8615959000002",
                known=("+8615959000002",))
    assert [t.disposition for t in got] == [Disposition.NOTICE, Disposition.KNOWN, Disposition.KNOWN]
    assert {t.number for t in got} == {"+8615959000001", "+8615959000002"}


def test_forward_thread_names_reporter_and_report() -> None:
    rid = bytes(range(16))
    assert forward_thread("police.fj", rid) == f"forwarded:police.fj:{rid.hex()}"


def test_router_prefers_the_directory_plan_over_phonenumbers_data() -> None:
    assert ROUTER.route("+8617059000001").carrier_node == "mvno-x.fj"
    assert ROUTER.route("+8615959000001").carrier_node == "cmcc.fj"
    assert len(NumberingPlan(DIRECTORY.numbering_plan)) == 1


