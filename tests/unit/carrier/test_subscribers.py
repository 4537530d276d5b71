"""The SQL subscriber system's import: a bad row is refused by name, nothing loaded."""

from __future__ import annotations

import pytest


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
    from nodes.carrier.subscribers import import_rows
    from nodes.models import subscribers

    engine = engines.create_engine_for(engines.sqlite_url(Path(str(tmp_path)) / "n.db"))
    migrate.upgrade(engine)
    good = {"number": "+8615959000002", "province": "fj"}
    with pytest.raises(OperationError, match=error.replace("row 1", "row 2")):
        import_rows(engine, [good, row])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar_one() == 0
    engine.dispose()
