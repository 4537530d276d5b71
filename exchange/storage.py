"""Database engines for a node's store: SQLite (WAL) by default, PostgreSQL by URL.

Everything that knows which database is underneath lives here: the engine set-up that
makes SQLite durable and lets its writers queue rather than fail late, and the
classification of driver errors into "the database cannot be used now" (answer
UNAVAILABLE, retry) versus everything else.
"""

from __future__ import annotations

import errno
import functools
import logging
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import ConnectionPoolEntry

from exchange import files
from exchange.errors import (
    ConfigError,
    ExchangeError,
    StorageFullError,
    StorageUnavailableError,
)

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_MS: Final = 5000

# A libpq connect that never completes (a black-holed address) would otherwise hang the
# caller for as long as TCP retries; give up and answer UNAVAILABLE instead.
DEFAULT_PG_CONNECT_TIMEOUT_S: Final = 10

# Execution option choosing how an SQLite transaction begins. The default, IMMEDIATE,
# takes the write lock at BEGIN, so concurrent writers queue on busy_timeout instead of
# failing at their first write (or at COMMIT) after doing their work. Read-only paths may
# use ``engine.execution_options(bcx_sqlite_begin="DEFERRED")`` so they do not queue
# behind writers: in WAL mode readers see a consistent snapshot without any lock.
SQLITE_BEGIN_OPTION: Final = "bcx_sqlite_begin"
_SQLITE_BEGIN_MODES: Final = frozenset({"IMMEDIATE", "DEFERRED", "EXCLUSIVE"})

_SQLITE_DRIVERS: Final = frozenset({"sqlite", "sqlite+pysqlite"})
_POSTGRES_DRIVERS: Final = frozenset({"postgresql+psycopg"})

# SQLite result codes (primary or extended, see sqlite3_errstr) meaning another
# connection holds a lock that outlasted busy_timeout.
_SQLITE_BUSY_NAMES: Final = ("SQLITE_BUSY", "SQLITE_LOCKED")
_SQLITE_BUSY_MESSAGES: Final = ("database is locked", "database table is locked", "busy")

# SQLSTATEs (or their two-character classes) after which the same work may succeed later:
# 08 connection exception; 53 insufficient resources (disk full, too many connections);
# 57P01-57P05 admin/crash shutdown, cannot connect now, idle timeouts; 40001/40P01
# serialization failure and deadlock (the transaction was rolled back); 55P03 lock not
# available (lock_timeout). Deliberately not 57014 (query_canceled): a statement that hit
# statement_timeout would likely time out again.
_PG_RETRYABLE_CLASSES: Final = ("08", "53")
_PG_RETRYABLE_STATES: Final = frozenset(
    {"57P01", "57P02", "57P03", "57P04", "57P05", "40001", "40P01", "55P03"}
)
# libpq reports connection-time failures without a SQLSTATE; these say the server was
# reached and refused for a reason retrying will not fix.
_PG_PERMANENT_CONNECT_MESSAGES: Final = (
    "authentication failed",
    "password",
    "does not exist",
    "no pg_hba.conf entry",
    "invalid connection option",
)

_QUERY_SECRETS: Final = frozenset({"password", "sslpassword", "passfile"})


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path``, quoted so any file name works."""
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def redact_url(url: str | URL) -> str:
    """``url`` with its password (and password-like query parameters) replaced by ``***``.

    Safe to log or put into error messages. A string that is not a URL at all is cut
    down to its scheme rather than echoed, since it may hold a secret in any form.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        scheme, sep, _ = str(url).partition("://")
        return f"{scheme}://***" if sep else "***"
    secret_keys = [key for key in parsed.query if key.lower() in _QUERY_SECRETS]
    if secret_keys:
        parsed = parsed.update_query_dict({key: "***" for key in secret_keys})
    # The query's "***" comes out percent-encoded; show it as the password's is.
    return parsed.render_as_string(hide_password=True).replace("=%2A%2A%2A", "=***")


def parse_url(url: str) -> URL:
    """``url`` parsed, if it names a supported database; else ConfigError naming the scheme."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as e:
        raise ConfigError(f"database URL {redact_url(url)!r} is not a valid URL") from e
    if parsed.drivername not in _SQLITE_DRIVERS | _POSTGRES_DRIVERS:
        hint = " (use postgresql+psycopg://)" if parsed.get_backend_name() == "postgresql" else ""
        raise ConfigError(
            f"database URL scheme {parsed.drivername!r} is not supported{hint}; "
            "use sqlite:///path or postgresql+psycopg://user@host/dbname"
        )
    return parsed


def create_engine_for(
    url: str,
    *,
    pool_size: int = 5,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> sqlalchemy.Engine:
    """An engine for a node's database.

    ``sqlite:///path`` gets WAL, ``synchronous=FULL``, foreign keys, ``busy_timeout_ms``
    and transactions that begin with ``BEGIN IMMEDIATE``; the file's directory is created
    if missing. ``postgresql+psycopg://…`` gets a pinged pool. Anything else raises
    ConfigError naming the scheme.
    """
    parsed = parse_url(url)
    if pool_size < 1:
        raise ConfigError(f"database pool_size must be at least 1, got {pool_size}")
    if busy_timeout_ms < 0:
        raise ConfigError(f"database busy_timeout_ms must be >= 0, got {busy_timeout_ms}")

    if parsed.drivername in _SQLITE_DRIVERS:
        engine = _create_sqlite_engine(parsed, pool_size=pool_size, busy_timeout_ms=busy_timeout_ms)
    else:
        engine = _create_postgres_engine(parsed, pool_size=pool_size)
    logger.debug("database engine for %s", redact_url(parsed))
    return engine


def _create_sqlite_engine(url: URL, *, pool_size: int, busy_timeout_ms: int) -> sqlalchemy.Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if not in_memory and not url.query.get("uri"):
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"cannot create the directory of SQLite database {database!r}: {e}"
            ) from e

    # hide_parameters: a statement's values may be personal data, and SQLAlchemy would
    # put them into every error's text.
    engine = sqlalchemy.create_engine(url, pool_size=pool_size, hide_parameters=True)

    if not in_memory and not url.query.get("uri"):
        path = Path(database)

        @event.listens_for(engine, "do_connect")
        def _on_do_connect(*_: Any) -> None:
            # Before SQLite opens (and perhaps creates) the file: see private_database.
            private_database(path)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 module (which would issue it late, only before
        # DML, and never for DDL or SELECT); _on_begin issues it instead. This also puts
        # the connection in autocommit while the PRAGMAs run, as journal_mode requires.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            (mode,) = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal" and not in_memory:
                logger.warning(
                    "SQLite database %s runs in journal mode %s, not WAL", database, mode
                )
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # the caller asked for no transaction at all
        dbapi_connection = conn.connection.dbapi_connection
        if dbapi_connection is not None and dbapi_connection.isolation_level is not None:
            # SQLAlchemy resets a connection that was lent out with another isolation
            # level by setting the driver's isolation_level back to "": undo that so the
            # sqlite3 module stays out of transaction control.
            dbapi_connection.isolation_level = None
        mode = str(options.get(SQLITE_BEGIN_OPTION, "IMMEDIATE")).upper()
        if mode not in _SQLITE_BEGIN_MODES:
            raise ConfigError(
                f"execution option {SQLITE_BEGIN_OPTION}={mode!r} is not one of "
                f"{sorted(_SQLITE_BEGIN_MODES)}"
            )
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


# The files of an SQLite database: SQLite makes the -wal and -shm files itself, each with
# the mode of the database file (so a 0600 database gets 0600 companions).
SQLITE_COMPANIONS: Final = ("-wal", "-shm")


def private_database(path: Path) -> None:
    """Make a new SQLite database file 0600, or refuse one that others may read.

    A carrier's database holds subscriber names and ID numbers, every node's the messages
    it exchanged: it is treated as a private key is. SQLite would create a missing file
    with the process umask (0644 as a rule); creating it empty, 0600, first is the same
    empty database. A database, -wal or -shm file group or others may open is refused
    with ConfigError, naming the file and the chmod that fixes it, before it is read.
    """
    if files.precreate_private(path):
        logger.debug("created SQLite database %s with mode 0600", path)
    for name in (path, *(path.with_name(path.name + s) for s in SQLITE_COMPANIONS)):
        problem = files.check_private(name)
        if problem is not None:
            raise ConfigError(f"database file {problem}")


def _create_postgres_engine(url: URL, *, pool_size: int) -> sqlalchemy.Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = DEFAULT_PG_CONNECT_TIMEOUT_S
    return sqlalchemy.create_engine(
        url, pool_size=pool_size, pool_pre_ping=True, connect_args=connect_args,
        hide_parameters=True,
    )


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be used *now* and the same work may
    succeed on retry: SQLite busy/locked past busy_timeout, PostgreSQL unreachable, shut
    down, out of connections or resources, or a transaction rolled back by a
    serialization failure. Looks through SQLAlchemy wrappers and ``raise … from`` chains.
    """
    for error in _causes(exc):
        if isinstance(error, PoolTimeoutError | DisconnectionError):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, sqlite3.OperationalError) and _is_sqlite_busy(error):
            return True
        # psycopg is loaded by the first PostgreSQL engine; until then no error is one
        # of its own (every bcx command starts ~0.1 s sooner for not importing it).
        pg = sys.modules.get("psycopg")
        if pg is not None and isinstance(error, pg.OperationalError) and \
                _is_pg_retryable(error):
            return True
    return False


def wrap_db_error(exc: BaseException, *, url: str | URL) -> ExchangeError:
    """The bcx error to raise (``from exc``) for a failure of the database at ``url``.

    StorageUnavailableError when is_unavailable(exc), else a plain ExchangeError. The
    message names the database with its password hidden and the driver's own first line
    of the cause, never the SQL statement or its parameters (they may hold personal data).
    """
    database = redact_url(url)
    cause = _describe(exc)
    if is_disk_full(exc):
        return StorageFullError(f"database {database} is full: {cause}")
    if is_unavailable(exc):
        return StorageUnavailableError(f"database {database} is unavailable: {cause}")
    return ExchangeError(f"database {database} failed: {cause}")


# SQLITE_FULL; PostgreSQL's disk_full; the operating system's ENOSPC and EDQUOT.
_SQLITE_FULL_MESSAGE: Final = "database or disk is full"
_PG_DISK_FULL: Final = "53100"


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) says the database's disk is full."""
    for error in _causes(exc):
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(error, sqlite3.Error) and (
                getattr(error, "sqlite_errorname", "") == "SQLITE_FULL"
                or _SQLITE_FULL_MESSAGE in str(error)):
            return True
        if getattr(error, "sqlstate", None) == _PG_DISK_FULL:
            return True
    return False


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, the driver error a SQLAlchemy error wraps, and their causes, each once."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or any(error is s for s in seen):
            continue
        seen.append(error)
        if isinstance(error, DBAPIError):
            pending.append(error.orig)
        pending.append(error.__context__)
        pending.append(error.__cause__)
    return seen


def _is_sqlite_busy(error: sqlite3.OperationalError) -> bool:
    name = getattr(error, "sqlite_errorname", "")
    if isinstance(name, str) and name.startswith(_SQLITE_BUSY_NAMES):
        return True
    message = str(error).lower()
    return any(m in message for m in _SQLITE_BUSY_MESSAGES)


def _is_pg_retryable(error: psycopg.OperationalError) -> bool:
    state = error.sqlstate
    if state is None:
        # No SQLSTATE: libpq failed to connect or lost the connection.
        message = str(error).lower()
        return not any(m in message for m in _PG_PERMANENT_CONNECT_MESSAGES)
    return state.startswith(_PG_RETRYABLE_CLASSES) or state in _PG_RETRYABLE_STATES


def _describe(exc: BaseException) -> str:
    driver_error = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first_line = str(driver_error).strip().split("\n", 1)[0].strip()
    name = type(driver_error).__name__
    return f"{name}: {first_line}" if first_line else name


def reader(engine: sqlalchemy.Engine) -> sqlalchemy.Engine:
    """The same engine for read-only work: on SQLite its transactions begin DEFERRED, so
    reads never queue behind (or deadlock with) the ledger writer's write lock."""
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})


class DriverStatement:
    """One hot-path statement with ``?`` markers, run on the DBAPI driver itself.

    SQLAlchemy Core costs ~20 µs of Python around a statement that SQLite runs in ~3 µs
    (a savepoint pair ~15 µs against ~1 µs; per-row parameter processing of an
    executemany 5-8 µs a row against ~3 µs), measured on the CI-size machine. The ledger
    writer runs several statements for every message, and the workflows several rows for
    every number of a bulk report, so those go straight to the driver, with positional
    rows of values the driver takes as they are (str, int, bool, bytes, None).

    The markers become the driver's (``?`` for sqlite3, ``%s`` for psycopg), so the text
    holds no other '?' and no '%'. SQL text only: nothing here comes from a message.
    """

    __slots__ = ("_by_style", "sql")

    def __init__(self, sql: str) -> None:
        if "%" in sql:
            raise ValueError("a driver statement may not contain '%' (psycopg's marker)")
        self.sql = " ".join(sql.split())
        self._by_style = {"qmark": self.sql, "format": self.sql.replace("?", "%s"),
                          "pyformat": self.sql.replace("?", "%s")}

    def text(self, paramstyle: str) -> str:
        try:
            return self._by_style[paramstyle]
        except KeyError:
            raise ValueError(f"driver paramstyle {paramstyle!r} is not supported") from None

    @staticmethod
    def listing(sql: str) -> Callable[[int], DriverStatement]:
        """Statements whose ``{list}`` is a list of that many markers (``IN ({list})``)."""
        @functools.lru_cache(maxsize=64)
        def of_length(n: int) -> DriverStatement:
            return DriverStatement(sql.format(list=", ".join("?" * n)))
        return of_length

    def run(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """Execute once per row (executemany) in ``conn``'s transaction; rows changed."""
        if not rows:
            return 0
        result = conn.exec_driver_sql(self.text(conn.dialect.paramstyle), list(rows))
        return int(result.rowcount)

    def rows(self, conn: Connection, values: tuple[Any, ...]) -> list[Any]:
        """Execute once with ``values``; every row of the result (named, as Row)."""
        return list(conn.exec_driver_sql(self.text(conn.dialect.paramstyle), values).all())

    def tuples(self, conn: Connection, values: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Execute once with ``values`` on the DBAPI cursor itself; the rows as it gives
        them (plain tuples): for reads of a row per number, where building SQLAlchemy
        Rows cost more than the query (~1 µs a row, measured in the bureau)."""
        return list(DriverCursor(conn).execute(self, values).fetchall())


def insert_sql(table: sqlalchemy.Table, columns: tuple[str, ...]) -> DriverStatement:
    """``INSERT INTO table (columns…) VALUES (?, …)``, checked against the table."""
    missing = [name for name in columns if name not in table.c]
    if missing:
        raise ValueError(f"table {table.name} has no column {', '.join(missing)}")
    # Names come from the Table definition (checked above), never from input.
    return DriverStatement(f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608
                           f"VALUES ({', '.join('?' * len(columns))})")


class DriverCursor:
    """The DBAPI cursor of an open SQLAlchemy connection, for DriverStatements.

    Errors come out as SQLAlchemy's DBAPIError, as from ``Connection.execute``, so
    ``is_unavailable`` and ``wrap_db_error`` classify them the same way. Statements run
    inside whatever transaction (and savepoint) the connection has open.
    """

    __slots__ = ("_cursor", "_dialect", "_error", "_style")

    def __init__(self, conn: Connection) -> None:
        dbapi_connection = conn.connection.dbapi_connection
        if dbapi_connection is None:
            raise ExchangeError("database connection is closed")
        self._cursor = dbapi_connection.cursor()
        self._dialect = conn.dialect
        self._style = conn.dialect.paramstyle
        self._error = conn.dialect.loaded_dbapi.Error

    def execute(self, statement: DriverStatement, params: tuple[Any, ...] = ()) -> Any:
        sql = statement.text(self._style)
        try:
            self._cursor.execute(sql, params)
        except self._error as e:
            raise self._wrap(sql, e) from e
        return self._cursor

    def executemany(self, statement: DriverStatement, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        sql = statement.text(self._style)
        try:
            self._cursor.executemany(sql, rows)
        except self._error as e:
            raise self._wrap(sql, e) from e

    def first(self, statement: DriverStatement, params: tuple[Any, ...] = ()) -> Any:
        """The first row of a query, or None."""
        return self.execute(statement, params).fetchone()

    def _wrap(self, sql: str, error: Exception) -> Exception:
        # Parameters are left out: they may hold personal data (see wrap_db_error).
        return DBAPIError.instance(sql, None, error, self._error, hide_parameters=True,
                                   dialect=self._dialect)
