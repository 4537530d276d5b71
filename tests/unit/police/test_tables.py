"""What `bcx reports show` reads of a report: verdicts from the typed columns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert

from exchange import migrate
from exchange.errors import OperationError
from exchange.ledger.entries import to_micros
from exchange.storage import engines
from nodes.models import report_numbers, reports
from nodes.police.tables import find_report, report_view

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
RID = bytes.fromhex("0123456789abcdef0123456789abcdef")


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Connection]:
    engine = engines.create_engine_for(engines.sqlite_url(tmp_path / "n.db"))
    migrate.upgrade(engine)
    with engine.begin() as c:
        c.execute(insert(reports), {
            "report_id": RID, "origin": "police.fj", "counterpart": "bureau.fj",
            "category": "fraud", "case_number": "FZ-1", "numbers_total": 4,
            "created_at": to_micros(NOW), "feedback_due_at": to_micros(NOW),
            "withdrawn_at": None, "escalated_at": None})
        line = {"report_id": RID, "carrier_node": "", "final": True, "feedback_id": None,
                "updated_at": to_micros(NOW), "forwarded_to": None, "already_known": False}
        c.execute(insert(report_numbers), [
            {**line, "number": "+8613802500001", "status": "forwarded", "detail": "",
             "final": False, "forwarded_to": "bureau.gd"},
            {**line, "number": "+8615959000001", "status": "shut_down", "detail": "",
             "carrier_node": "cmcc.fj", "already_known": True},
            {**line, "number": "+8615959000002", "status": "shut_down", "detail": "",
             "carrier_node": "cmcc.fj"},
            {**line, "number": "12345", "status": "rejected", "detail": "too short"}])
        yield c
    engine.dispose()


def test_a_report_shows_each_lines_verdict_and_reason_from_its_columns(
        conn: Connection) -> None:
    view = report_view(conn, RID.hex())
    assert [(ln["number"], ln["verdict"], ln["reason"]) for ln in view["lines"]] == [
        ("+8613802500001", "forwarded", "to bureau.gd"),
        ("+8615959000001", "already known (shut_down)", ""),
        ("+8615959000002", "shut_down", ""),
        ("12345", "rejected", "too short")]
    assert view["verdicts"] == {"already known (shut_down)": 1, "forwarded": 1,
                                "rejected": 1, "shut_down": 1}
    assert (view["bureau"], view["case"], view["withdrawn"]) == ("bureau.fj", "FZ-1", None)


def test_rejected_only_lists_the_numbers_nobody_acted_on(conn: Connection) -> None:
    view = report_view(conn, RID.hex()[:8], rejected_only=True)
    assert [ln["number"] for ln in view["lines"]] == ["12345"]
    assert sum(view["verdicts"].values()) == 4


@pytest.mark.parametrize(("text", "error"), [
    ("0123", r"bad report id '0123': give its 32 hex digits, or the first 8 or more"),
    ("0123456z", r"bad report id '0123456z'"),
    ("ffffffff", r"this node holds no report ffffffff"),
])
def test_a_report_id_that_names_no_report_is_refused_by_name(conn: Connection, text: str,
                                                             error: str) -> None:
    with pytest.raises(OperationError, match=error):
        find_report(conn, text)
