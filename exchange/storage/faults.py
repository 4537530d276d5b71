"""How a database driver's errors are classified, in one place.

"The database cannot be used now" (answer UNAVAILABLE, retry: SQLite busy past its
timeout, PostgreSQL down or out of connections), "the disk is full", and everything else;
and the bcx error each becomes, with a message that names the database (password hidden)
and never the statement or its parameters.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from typing import TYPE_CHECKING, Final

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from exchange.errors import ExchangeError, StorageFullError, StorageUnavailableError
from exchange.storage.engines import redact_url

if TYPE_CHECKING:
    import psycopg

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
