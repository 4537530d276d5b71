"""Pure workflow logic: a carrier's decision, operator arguments, subscriber rows."""

from __future__ import annotations

import pytest

from exchange.messages import ActionOutcome, RealNameState
from nodes.carrier import decide, verification_outcome
from nodes.subscribers import Subscriber


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

    from exchange import migrate, storage
    from exchange.errors import OperationError
    from nodes.models import subscribers
    from nodes.subscribers import import_rows

    engine = storage.create_engine_for(storage.sqlite_url(Path(str(tmp_path)) / "n.db"))
    migrate.upgrade(engine)
    good = {"number": "+8615959000002", "province": "fj"}
    with pytest.raises(OperationError, match=error.replace("row 1", "row 2")):
        import_rows(engine, [good, row])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar_one() == 0
    engine.dispose()
