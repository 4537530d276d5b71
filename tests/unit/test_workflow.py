"""Pure workflow logic: a bureau's triage, a carrier's decision, feedback wording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.identity import Directory, Member, Role
from exchange.keys import Ed25519Signer
from exchange.messages import ActionOutcome, RealNameState
from exchange.numbers import NumberBlock, NumberingPlan
from nodes.carrier import decide, verification_outcome
from nodes.subscribers import Subscriber
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


def sub(status: str = "active", **kw: object) -> Subscriber:
    return Subscriber(number="+8615959000001", status=status,
                      real_name_state=RealNameState.UNREGISTERED, province="fj", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("subscriber", "outcome", "suspend", "hint", "reason"), [
    (None, ActionOutcome.NOT_OUR_SUBSCRIBER, False, "", ""),
    (sub("ported_out", ported_to="cucc.fj"), ActionOutcome.NOT_OUR_SUBSCRIBER, False,
     "cucc.fj", ""),
    (sub("inactive"), ActionOutcome.ALREADY_INACTIVE, False, "", ""),
    (sub("suspended"), ActionOutcome.ALREADY_INACTIVE, False, "", ""),
    (sub(protected_reason="ambulance dispatch SIM"), ActionOutcome.REFUSED, False, "",
     "ambulance dispatch SIM"),
    (sub(), ActionOutcome.SHUT_DOWN, True, "", ""),
])
def test_carrier_decision(subscriber: Subscriber | None, outcome: ActionOutcome,
                          suspend: bool, hint: str, reason: str) -> None:
    d = decide(subscriber)
    assert (d.outcome, d.suspend, d.ported_to, d.reason) == (outcome, suspend, hint, reason)


def test_verification_outcome() -> None:
    assert verification_outcome([RealNameState.REGISTERED] * 5).value == "confirmed"
    assert verification_outcome([RealNameState.REGISTERED, RealNameState.FALSE_IDENTITY]
                                ).value == "pending"


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


@pytest.mark.parametrize(("row", "error"), [
    ({"number": "12", "province": "fj"}, r"subscriber row 1: bad or missing number"),
    ({"number": "+8615959000001", "province": ""}, r"subscriber row 1: province is empty"),
    ({"number": "+8615959000001", "province": "fj", "status": "gone"},
     r"subscriber row 1: status 'gone' is not one of"),
    ({"number": "+8615959000001", "province": "fj", "activated_at": "March 2026"},
     r"subscriber row 1: activated_at 'March 2026' is not an ISO 8601 time"),
    ({"number": "+8615959000001", "province": "fj", "activated_at": "2026-03-01T10:00"},
     r"subscriber row 1: activated_at 2026-03-01 10:00:00 has no time zone"),
])
def test_a_bad_subscriber_row_is_refused_by_name_and_nothing_is_loaded(
        row: dict[str, str], error: str, tmp_path: object) -> None:
    from pathlib import Path

    from sqlalchemy import func, select

    from exchange import migrate
    from exchange.errors import OperationError
    from exchange.storage import engines
    from nodes.models import subscribers
    from nodes.subscribers import import_rows

    engine = engines.create_engine_for(engines.sqlite_url(Path(str(tmp_path)) / "n.db"))
    migrate.upgrade(engine)
    good = {"number": "+8615959000002", "province": "fj"}
    with pytest.raises(OperationError, match=error.replace("row 1", "row 2")):
        import_rows(engine, [good, row])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar_one() == 0
    engine.dispose()
