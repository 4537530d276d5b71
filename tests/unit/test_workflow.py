"""Pure workflow logic: a bureau's triage, feedback wording, routing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.identity import Directory, Member, Role
from exchange.keys import Ed25519Signer
from exchange.numbers import NumberBlock, NumberingPlan
from nodes.workflow import (
    FINAL,
    Router,
    Status,
    Triage,
    Verdict,
    feedback,
    forward_thread,
    status_of_feedback,
    triage,
)

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def member(node_id: str, role: Role, province: str) -> Member:
    return Member(node_id=node_id, role=role, province=province, organisation=node_id,
                  endpoint="127.0.0.1:1", auth_cert_sha256=bytes(32),
                  signing_key=Ed25519Signer.generate().public_key, hpke_public_key=bytes(32))


DIRECTORY = Directory(
    trust_domain="bcx.example", version=1, issued_at=NOW, expires_at=NOW + timedelta(days=1),
    members=(member("office.cn", Role.OFFICE, "cn"), member("bureau.fj", Role.BUREAU, "fj"),
             member("bureau.gd", Role.BUREAU, "gd"), member("cmcc.fj", Role.CARRIER, "fj"),
             member("mvno-x.fj", Role.CARRIER, "fj")),
    numbering_plan=(NumberBlock("+8617059", "mvno-x.fj", "fj", reseller=True),),
)
ROUTER = Router.for_directory(DIRECTORY)


def judge(*reported: str, known: tuple[str, ...] = ()) -> list[Triage]:
    return triage(reported, province="fj", known=known, router=ROUTER, directory=DIRECTORY)


@pytest.mark.parametrize(("reported", "verdict", "target", "reason"), [
    ("+8615959000001", Verdict.NOTICE, "cmcc.fj", ""),
    ("0086 159-5900-0001", Verdict.NOTICE, "cmcc.fj", ""),
    ("+8617059000001", Verdict.NOTICE, "mvno-x.fj", ""),  # the directory's plan wins
    ("+8613802500001", Verdict.FORWARD, "bureau.gd", ""),
    ("+8613800138000", Verdict.UNROUTABLE, "", "province 'bj', which has no bureau"),
    ("+8618659000000", Verdict.UNROUTABLE, "", "cucc.fj, which is not a carrier"),
    ("110", Verdict.REJECT, "", "never actionable"),
    ("10086", Verdict.REJECT, "", "never actionable"),
    ("12345", Verdict.REJECT, "", "'12345'"),
    ("+86 abc", Verdict.REJECT, "", "letters"),
])
def test_triage_decides_each_number(reported: str, verdict: Verdict, target: str,
                                    reason: str) -> None:
    [t] = judge(reported)
    assert (t.verdict, t.target) == (verdict, target)
    assert reason in t.reason


def test_triage_links_known_and_repeated_numbers_instead_of_noticing_again() -> None:
    got = judge("+8615959000001", "15959000001", "+8615959000002",
                known=("+8615959000002",))
    assert [t.verdict for t in got] == [Verdict.NOTICE, Verdict.KNOWN, Verdict.KNOWN]
    assert {t.number for t in got} == {"+8615959000001", "+8615959000002"}


@given(st.sampled_from(list(Status)), st.text(max_size=40))
def test_feedback_wording_round_trips(status: Status, detail: str) -> None:
    line = feedback("+8615959000001", status, detail=detail, report_id=bytes(16),
                    decided_at=NOW)
    got, reason = status_of_feedback(line)
    assert got is status
    assert reason == detail
    assert (got in FINAL) == (status in FINAL)


def test_forward_thread_names_reporter_and_report() -> None:
    rid = bytes(range(16))
    assert forward_thread("police.fj", rid) == f"forwarded:police.fj:{rid.hex()}"


def test_router_prefers_the_directory_plan_over_phonenumbers_data() -> None:
    assert ROUTER.route("+8617059000001").carrier_node == "mvno-x.fj"
    assert ROUTER.route("+8615959000001").carrier_node == "cmcc.fj"
    assert len(NumberingPlan(DIRECTORY.numbering_plan)) == 1


@pytest.mark.parametrize(("arguments", "error"), [
    ({"numbers_found": "+8615959000001", "category": "fraud", "case_number": "X"},
     r"report: argument numbers_found must be Sequence\[str\], got str"),
    ({"numbers_found": [15959000001], "category": "fraud", "case_number": "X"},
     r"report: argument numbers_found must be Sequence\[str\], got list"),
    ({"numbers_found": ["1"], "category": "fraud", "case_number": "X", "confidence": "90"},
     r"report: argument confidence must be int, got str"),
    ({"numbers_found": ["1"], "category": "fraud", "case_number": "X", "confidence": True},
     r"report: argument confidence must be int, got bool"),
    ({"numbers_found": ["1"], "category": "fraud"}, r"report: missing a required argument: "
     r"'case_number' \(arguments: numbers_found, category, case_number"),
    ({"numbers_found": ["1"], "category": "fraud", "case_number": "X", "bureau_id": "b"},
     r"report: got an unexpected keyword argument 'bureau_id'"),
])
def test_operator_arguments_are_checked_before_any_work(arguments: dict[str, object],
                                                        error: str) -> None:
    import inspect

    from exchange.errors import OperationError
    from nodes import police
    from nodes.agency import check_arguments

    with pytest.raises(OperationError, match=error):
        check_arguments("report", inspect.signature(police.report), dict(arguments))


def test_well_typed_operator_arguments_pass() -> None:
    import inspect

    from nodes import police
    from nodes.agency import check_arguments

    check_arguments("report", inspect.signature(police.report), {
        "numbers_found": ["110"], "category": "fraud", "case_number": "X", "confidence": 90})
