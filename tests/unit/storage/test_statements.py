"""Driver statements and the DBAPI cursor that runs them, on both back ends."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from exchange.errors import StorageUnavailableError
from exchange.storage.engines import create_engine_for, reader, sqlite_url
from exchange.storage.faults import is_unavailable, wrap_db_error
from exchange.storage.statements import DriverCursor, DriverStatement, insert_sql

# --- DriverCursor: the ledger writer's statements on the driver ---------------------------

_NUMBERS = sqlalchemy.Table(
    "numbers", sqlalchemy.MetaData(),
    sqlalchemy.Column("number", sqlalchemy.String(20), primary_key=True),
    sqlalchemy.Column("flag", sqlalchemy.Boolean, nullable=False),
    sqlalchemy.Column("blob", sqlalchemy.LargeBinary, nullable=True),
)
_INSERT_NUMBER = insert_sql(_NUMBERS, ("number", "flag", "blob"))
_FLAG_OF = DriverStatement("SELECT flag, blob FROM numbers WHERE number = ?")


def test_driver_cursor_runs_in_the_open_transaction_on_both_back_ends(db_url: str) -> None:
    engine = create_engine_for(db_url)
    _NUMBERS.create(engine)
    with engine.begin() as conn:
        cursor = DriverCursor(conn)
        cursor.execute(_INSERT_NUMBER, ("+8613800138000", True, b"\x00\xff"))
        cursor.executemany(_INSERT_NUMBER, [("+8613800138001", False, None),
                                            ("+8613800138002", False, b"")])
        cursor.executemany(_INSERT_NUMBER, [])  # nothing to write is not an error
        flag, blob = cursor.first(_FLAG_OF, ("+8613800138000",))
        assert bool(flag) is True and bytes(blob) == b"\x00\xff"
        assert cursor.first(_FLAG_OF, ("+8613900000000",)) is None
    with pytest.raises(RuntimeError), engine.begin() as conn:
        DriverCursor(conn).execute(_INSERT_NUMBER, ("+8613800138003", True, None))
        raise RuntimeError("roll back")
    with engine.connect() as conn:
        held = conn.execute(text("SELECT number FROM numbers ORDER BY number")).scalars().all()
    assert held == ["+8613800138000", "+8613800138001", "+8613800138002"]
    engine.dispose()


def test_driver_cursor_errors_are_dbapi_errors_that_hide_the_parameters(db_url: str) -> None:
    engine = create_engine_for(db_url)
    _NUMBERS.create(engine)
    with engine.begin() as conn:
        DriverCursor(conn).execute(_INSERT_NUMBER, ("+8613800138000", True, None))
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        DriverCursor(conn).execute(_INSERT_NUMBER, ("+8613800138000", False, None))
    # The driver's own text may quote the key (PostgreSQL's DETAIL line does); the
    # parameters are not added to it, and what bcx reports is the first line only.
    assert "[parameters" not in str(caught.value)
    assert not is_unavailable(caught.value)
    assert "13800138000" not in str(wrap_db_error(caught.value, url=db_url))
    engine.dispose()


def test_driver_cursor_on_a_locked_sqlite_database_is_unavailable(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "node.db")
    engine = create_engine_for(url, busy_timeout_ms=50)
    _NUMBERS.create(engine)
    holder = sqlite3.connect(tmp_path / "node.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        # A DEFERRED transaction takes the write lock only at its first write.
        with pytest.raises(OperationalError) as caught, \
                reader(engine).begin() as conn:
            DriverCursor(conn).execute(_INSERT_NUMBER, ("+8613800138000", True, None))
        assert is_unavailable(caught.value)
        assert isinstance(wrap_db_error(caught.value, url=url), StorageUnavailableError)
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()


def test_insert_sql_names_a_column_the_table_lacks() -> None:
    with pytest.raises(ValueError, match="table numbers has no column msisdn"):
        insert_sql(_NUMBERS, ("number", "msisdn"))
    assert _INSERT_NUMBER.text("qmark") == "INSERT INTO numbers (number, flag, blob) VALUES (?, ?, ?)"
    assert _INSERT_NUMBER.text("format") == \
        "INSERT INTO numbers (number, flag, blob) VALUES (%s, %s, %s)"
    with pytest.raises(ValueError, match="paramstyle 'named' is not supported"):
        _INSERT_NUMBER.text("named")
