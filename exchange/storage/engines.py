"""Database engines for a node's store: SQLite (WAL) by default, PostgreSQL by URL.

The engine set-up that makes SQLite durable and lets its writers queue rather than fail
late lives here, with the URLs that name a database (parsed, quoted, redacted). How a
driver's errors are classified is in ``exchange.storage.faults``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from exchange import files
from exchange.errors import ConfigError

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

_QUERY_SECRETS: Final = frozenset({"password", "sslpassword", "passfile"})

# The files of an SQLite database: SQLite makes the -wal and -shm files itself, each with
# the mode of the database file (so a 0600 database gets 0600 companions).
SQLITE_COMPANIONS: Final = ("-wal", "-shm")


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


def reader(engine: sqlalchemy.Engine) -> sqlalchemy.Engine:
    """The same engine for read-only work: on SQLite its transactions begin DEFERRED, so
    reads never queue behind (or deadlock with) the ledger writer's write lock."""
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})


def sqlite_file(url: URL) -> Path | None:
    """The file an SQLite URL names, or None for an in-memory database or a ``uri=true``
    URL (whose file name SQLite itself parses)."""
    if is_sqlite_in_memory(url) or url.query.get("uri"):
        return None
    return Path(url.database or "")


def is_sqlite_in_memory(url: URL) -> bool:
    """True when an SQLite URL names a database that lives in memory only."""
    return (url.database or "") in ("", ":memory:") or url.query.get("mode") == "memory"


def sqlite_begin_statement(options: Mapping[str, Any]) -> str:
    """The statement that begins an SQLite transaction under these execution options:
    ``BEGIN IMMEDIATE`` unless SQLITE_BEGIN_OPTION says otherwise; ConfigError for a mode
    SQLite does not have."""
    mode = str(options.get(SQLITE_BEGIN_OPTION, "IMMEDIATE")).upper()
    if mode not in _SQLITE_BEGIN_MODES:
        raise ConfigError(
            f"execution option {SQLITE_BEGIN_OPTION}={mode!r} is not one of "
            f"{sorted(_SQLITE_BEGIN_MODES)}"
        )
    return f"BEGIN {mode}"


def _create_sqlite_engine(url: URL, *, pool_size: int, busy_timeout_ms: int) -> sqlalchemy.Engine:
    database = url.database or ""
    path = sqlite_file(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"cannot create the directory of SQLite database {database!r}: {e}"
            ) from e

    # hide_parameters: a statement's values may be personal data, and SQLAlchemy would
    # put them into every error's text.
    engine = sqlalchemy.create_engine(url, pool_size=pool_size, hide_parameters=True)
    if path is not None:
        event.listen(engine, "do_connect", _private_before_open(path))
    wal_expected = None if is_sqlite_in_memory(url) else database
    event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms, wal_expected))
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _private_before_open(path: Path) -> Callable[..., None]:
    def on_do_connect(*_: Any) -> None:
        # Before SQLite opens (and perhaps creates) the file: see private_database.
        private_database(path)
    return on_do_connect


def _sqlite_pragmas(busy_timeout_ms: int, wal_expected: str | None
                    ) -> Callable[[Any, ConnectionPoolEntry], None]:
    """The connect listener; ``wal_expected`` names a file database that should be in WAL
    mode (a warning if it is not), None for one in memory."""
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 module (which would issue it late, only before
        # DML, and never for DDL or SELECT); _begin_sqlite issues it instead. This also
        # puts the connection in autocommit while the PRAGMAs run, as journal_mode requires.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            (mode,) = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal" and wal_expected is not None:
                logger.warning(
                    "SQLite database %s runs in journal mode %s, not WAL", wal_expected, mode
                )
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()
    return on_connect


def _begin_sqlite(conn: Connection) -> None:
    options = conn.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return  # the caller asked for no transaction at all
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is not None and dbapi_connection.isolation_level is not None:
        # SQLAlchemy resets a connection that was lent out with another isolation
        # level by setting the driver's isolation_level back to "": undo that so the
        # sqlite3 module stays out of transaction control.
        dbapi_connection.isolation_level = None
    conn.exec_driver_sql(sqlite_begin_statement(options))


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
