"""Engines for a node's database: SQLite's PRAGMAs, BEGIN modes and writers that queue;
URLs parsed, quoted and redacted; both back ends, and PostgreSQL going away."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from exchange.errors import ConfigError, StorageUnavailableError
from exchange.storage.engines import (
    create_engine_for,
    is_sqlite_in_memory,
    redact_url,
    sqlite_begin_statement,
    sqlite_file,
    sqlite_url,
)
from exchange.storage.faults import is_unavailable, wrap_db_error

# --- SQLite -----------------------------------------------------------------------


def test_sqlite_connections_get_wal_full_sync_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine_for(sqlite_url(tmp_path / "node.db"), busy_timeout_ms=1234)
    with engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    engine.dispose()
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 1234,
    }


def test_sqlite_default_busy_timeout_is_5000_ms(tmp_path: Path) -> None:
    engine = create_engine_for(sqlite_url(tmp_path / "node.db"))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    engine.dispose()


def test_sqlite_missing_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "node.db"
    engine = create_engine_for(sqlite_url(path))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    assert path.is_file()


def test_sqlite_url_round_trips_awkward_file_names(tmp_path: Path) -> None:
    path = tmp_path / "dir with space" / "odd?#%name.db"
    url = sqlite_url(path)
    assert url.startswith("sqlite:///")
    assert sqlalchemy.make_url(url).database == str(path)
    engine = create_engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    assert path.is_file()


def test_sqlite_second_writer_fails_locked_at_begin_after_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    url = sqlite_url(path)
    first = create_engine_for(url)
    second = create_engine_for(url, busy_timeout_ms=200)
    with first.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))

    holder = first.connect()
    holder.begin()  # BEGIN IMMEDIATE takes the write lock before any statement runs
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked") as excinfo, second.begin():
            pytest.fail("BEGIN should not succeed while another writer holds the lock")
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()

    assert waited >= 0.15  # it waited for busy_timeout instead of failing at once
    assert is_unavailable(excinfo.value)
    wrapped = wrap_db_error(excinfo.value, url=url)
    assert isinstance(wrapped, StorageUnavailableError)
    assert str(path) in str(wrapped)
    assert "database is locked" in str(wrapped)

    with second.begin() as conn:  # once the lock is gone the same engine writes
        conn.execute(text("INSERT INTO t VALUES (1)"))
    first.dispose()
    second.dispose()


def test_sqlite_second_writer_waits_for_the_first_to_commit(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "node.db")
    first = create_engine_for(url)
    second = create_engine_for(url, busy_timeout_ms=5000)
    with first.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))

    holder = first.connect()
    holder.begin()
    holder.execute(text("INSERT INTO t VALUES (1)"))
    releaser = threading.Timer(0.2, holder.commit)
    releaser.start()
    try:
        with second.begin() as conn:
            # BEGIN IMMEDIATE returned only after the commit, so the row is visible
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
            conn.execute(text("INSERT INTO t VALUES (2)"))
    finally:
        releaser.join()
        holder.close()
    with first.connect() as conn:
        assert conn.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 2]
    first.dispose()
    second.dispose()


def test_sqlite_ddl_is_transactional(tmp_path: Path) -> None:
    # With the sqlite3 module's own transaction control, CREATE TABLE would autocommit.
    engine = create_engine_for(sqlite_url(tmp_path / "node.db"))
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.rollback()
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        assert tables.scalars().all() == []
    engine.dispose()


def test_sqlite_deferred_begin_option_reads_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "node.db")
    writer = create_engine_for(url)
    reader = create_engine_for(url, busy_timeout_ms=100).execution_options(
        bcx_sqlite_begin="DEFERRED"
    )
    with writer.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    holder = writer.connect()
    holder.begin()
    holder.execute(text("INSERT INTO t VALUES (2)"))
    try:
        with reader.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        holder.rollback()
        holder.close()
    writer.dispose()
    reader.dispose()


def test_sqlite_unknown_begin_mode_is_config_error(tmp_path: Path) -> None:
    engine = create_engine_for(sqlite_url(tmp_path / "node.db")).execution_options(
        bcx_sqlite_begin="SOMETIMES"
    )
    with pytest.raises(ConfigError, match=r"bcx_sqlite_begin='SOMETIMES'"), engine.begin():
        pass
    engine.dispose()


def test_sqlite_autocommit_connection_does_not_leave_the_driver_beginning(tmp_path: Path) -> None:
    # SQLAlchemy resets a connection lent out as AUTOCOMMIT by handing transaction control
    # back to the sqlite3 module; the next transaction must still be ours (IMMEDIATE).
    engine = create_engine_for(sqlite_url(tmp_path / "node.db"), pool_size=1)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert not conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection.in_transaction  # type: ignore[union-attr]
        assert dbapi_connection.isolation_level is None  # type: ignore[union-attr]
    engine.dispose()


@pytest.mark.parametrize(
    ("options", "statement"),
    [
        ({}, "BEGIN IMMEDIATE"),
        ({"bcx_sqlite_begin": "DEFERRED"}, "BEGIN DEFERRED"),
        ({"bcx_sqlite_begin": "deferred"}, "BEGIN DEFERRED"),
        ({"bcx_sqlite_begin": "EXCLUSIVE"}, "BEGIN EXCLUSIVE"),
        ({"bcx_sqlite_begin": "IMMEDIATE", "isolation_level": "SERIALIZABLE"},
         "BEGIN IMMEDIATE"),
    ],
)
def test_sqlite_begin_statement(options: dict[str, str], statement: str) -> None:
    assert sqlite_begin_statement(options) == statement


@pytest.mark.parametrize("mode", ["SOMETIMES", "", "BEGIN"])
def test_sqlite_begin_statement_for_a_mode_sqlite_lacks_is_config_error(mode: str) -> None:
    with pytest.raises(ConfigError, match=(
            rf"execution option bcx_sqlite_begin='{mode}' is not one of "
            r"\['DEFERRED', 'EXCLUSIVE', 'IMMEDIATE'\]")):
        sqlite_begin_statement({"bcx_sqlite_begin": mode})


@pytest.mark.parametrize(
    ("url", "in_memory", "file"),
    [
        ("sqlite://", True, None),
        ("sqlite:///:memory:", True, None),
        ("sqlite:///file:shared?mode=memory&cache=shared&uri=true", True, None),
        ("sqlite:///file:/var/lib/bcx/node.db?uri=true", False, None),
        ("sqlite:////var/lib/bcx/node.db", False, Path("/var/lib/bcx/node.db")),
        ("sqlite:///relative/node.db", False, Path("relative/node.db")),
        ("sqlite+pysqlite:////srv/bcx/police.fj.db", False, Path("/srv/bcx/police.fj.db")),
    ],
)
def test_sqlite_file_and_in_memory(url: str, in_memory: bool, file: Path | None) -> None:
    parsed = sqlalchemy.make_url(url)
    assert is_sqlite_in_memory(parsed) is in_memory
    assert sqlite_file(parsed) == file


def test_an_in_memory_database_touches_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    monkeypatch.chdir(tmp_path)
    engine = create_engine_for("sqlite://")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
    assert list(tmp_path.iterdir()) == []


# --- URLs and configuration ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://app:s3cret@db.example/bcx", r"scheme 'mysql' is not supported"),
        (
            "postgresql://app:s3cret@db/bcx",
            r"'postgresql' is not supported \(use postgresql\+psycopg",
        ),
        ("postgresql+psycopg2://app:s3cret@db/bcx", r"'postgresql\+psycopg2' is not supported"),
        ("sqlite+aiosqlite:///x.db", r"'sqlite\+aiosqlite' is not supported"),
        ("no scheme s3cret", r"is not a valid URL"),
        ("postgresql+psycopg://app:s3cret@db:port/bcx", r"is not a valid URL"),
    ],
)
def test_unsupported_database_url_is_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as excinfo:
        create_engine_for(url)
    assert "s3cret" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pool_size": 0}, r"pool_size must be at least 1, got 0"),
        ({"busy_timeout_ms": -1}, r"busy_timeout_ms must be >= 0, got -1"),
    ],
)
def test_bad_engine_limits_are_config_errors(
    tmp_path: Path, kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        create_engine_for(sqlite_url(tmp_path / "node.db"), **kwargs)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql+psycopg://app:s3cret@db:5432/bcx", "postgresql+psycopg://app:***@db:5432/bcx"),
        ("postgresql+psycopg://app:p%40ss@db/bcx", "postgresql+psycopg://app:***@db/bcx"),
        (
            "postgresql+psycopg://app@db/bcx?password=s3cret",
            "postgresql+psycopg://app@db/bcx?password=***",
        ),
        ("postgresql+psycopg://app@db/bcx", "postgresql+psycopg://app@db/bcx"),
        ("sqlite:////var/lib/bcx/node.db", "sqlite:////var/lib/bcx/node.db"),
        ("weird://::s3cret", "weird://***"),
        ("s3cret", "***"),
    ],
)
def test_redact_url_hides_passwords(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


# --- Both back ends, and PostgreSQL going away ------------------------------------------


def test_round_trip_and_foreign_keys_enforced(db_url: str) -> None:
    engine = create_engine_for(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE member (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"))
        conn.execute(
            text(
                "CREATE TABLE report (id INTEGER PRIMARY KEY, member_id INTEGER NOT NULL REFERENCES member (id))"
            )
        )
        conn.execute(text("INSERT INTO member (id, name) VALUES (1, 'police-gd-sz')"))
        conn.execute(text("INSERT INTO report (id, member_id) VALUES (10, 1)"))
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT r.id, m.name FROM report r JOIN member m ON m.id = r.member_id")
        )
        assert rows.all() == [(10, "police-gd-sz")]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO report (id, member_id) VALUES (11, 99)"))
    engine.dispose()


def test_stopped_postgres_is_unavailable_and_engine_recovers_after_restart(
    pg_private_server,
) -> None:
    url = pg_private_server.create_database("node")
    engine = create_engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))

    pg_private_server.stop()
    with pytest.raises(OperationalError) as excinfo, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert is_unavailable(excinfo.value)
    wrapped = wrap_db_error(excinfo.value, url=url)
    assert isinstance(wrapped, StorageUnavailableError)
    assert str(wrapped).startswith(f"database {url} is unavailable: OperationalError: ")

    pg_private_server.start()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM t")).scalar() == 1


def test_postgres_pool_replaces_connections_a_restart_killed(pg_private_server) -> None:
    url = pg_private_server.create_database("node")
    engine = create_engine_for(url, pool_size=1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    pg_private_server.stop()
    pg_private_server.start()
    # Without pool_pre_ping the pooled connection, dead since the restart, would fail
    # this first statement.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()


