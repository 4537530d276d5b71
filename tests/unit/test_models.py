"""Tests for nodes.models' driver statements (the bulk path's per-number rows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange import migrate
from exchange.storage import engines
from exchange.storage.statements import DriverStatement
from nodes.models import INSERT_REPORT_LINE, UPDATE_OPEN_REPORT_LINE

RID = bytes(range(16))


@pytest.mark.parametrize(("paramstyle", "text"), [
    ("qmark", "UPDATE t SET a = ? WHERE b IN (?, ?)"),
    ("format", "UPDATE t SET a = %s WHERE b IN (%s, %s)"),
    ("pyformat", "UPDATE t SET a = %s WHERE b IN (%s, %s)"),
])
def test_markers_become_the_drivers(paramstyle: str, text: str) -> None:
    listing = DriverStatement.listing("UPDATE t\n SET a = ? WHERE b IN ({list})")
    assert listing(2).text(paramstyle) == text
    assert listing(2) is listing(2)


def test_a_percent_sign_or_an_unknown_paramstyle_is_refused() -> None:
    with pytest.raises(ValueError, match="may not contain '%'"):
        DriverStatement("SELECT 1 WHERE a LIKE 'x%'")
    with pytest.raises(ValueError, match="paramstyle 'named' is not supported"):
        DriverStatement("SELECT ?").text("named")


def test_rows_are_written_and_read_in_the_callers_transaction(tmp_path: Path) -> None:
    engine = engines.create_engine_for(f"sqlite:///{tmp_path / 'n.db'}")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        assert INSERT_REPORT_LINE.run(conn, []) == 0
        INSERT_REPORT_LINE.run(conn, [(RID, n, "reported", "", "", False, None, 1)
                                      for n in ("+8615959000001", "+8615959000002")])
        # Only an open line takes a non-final status; a line of no report matches nothing.
        INSERT_REPORT_LINE.run(conn, [(RID, "+8615959000003", "shut_down", "", "c", True,
                                       None, 1)])
        changed = UPDATE_OPEN_REPORT_LINE.run(conn, [
            ("noticed", "d", "c", False, None, False, b"f" * 16, 2, RID, n, False)
            for n in ("+8615959000001", "+8615959000003", "+8615959000009")])
        assert changed == 1
        lines = DriverStatement(
            "SELECT number, status, final, feedback_id FROM wf_report_numbers "
            "WHERE report_id = ? ORDER BY number").tuples(conn, (RID,))
    assert lines == [("+8615959000001", "noticed", 0, b"f" * 16),
                     ("+8615959000002", "reported", 0, None),
                     ("+8615959000003", "shut_down", 1, None)]
    engine.dispose()


def test_migration_0005_moves_forwarding_and_already_known_out_of_the_text(
        tmp_path: Path) -> None:
    """Rows written before 0005 keep what their text said, as columns; the text keeps
    only a reason."""
    from alembic import command
    from sqlalchemy import text

    engine = engines.create_engine_for(f"sqlite:///{tmp_path / 'n.db'}")
    with migrate.script_location() as location, engine.begin() as conn:
        cfg = migrate.alembic_config(engine.url.render_as_string(), location)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(text(
            "INSERT INTO wf_report_numbers (report_id, number, status, detail, carrier_node,"
            " final, updated_at) VALUES (:r, :n, :s, :d, '', 0, 1)"), [
            {"r": RID, "n": "+8613802500001", "s": "forwarded", "d": "to bureau.gd"},
            {"r": RID, "n": "+8615959000001", "s": "shut_down",
             "d": "already known to this bureau"},
            {"r": RID, "n": "+8615959000002", "s": "rejected", "d": "to be checked"}])
        command.upgrade(cfg, "head")
        rows = conn.execute(text(
            "SELECT number, status, detail, forwarded_to, already_known "
            "FROM wf_report_numbers ORDER BY number")).all()
    assert [tuple(r) for r in rows] == [
        ("+8613802500001", "forwarded", "", "bureau.gd", 0),
        ("+8615959000001", "shut_down", "", None, 1),
        ("+8615959000002", "rejected", "to be checked", None, 0)]
