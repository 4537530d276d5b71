"""Driver errors classified: unavailable now (retry), or not; what bcx says of them."""

from __future__ import annotations

import sqlite3

import psycopg
import psycopg.errors
import pytest
import sqlalchemy
from sqlalchemy.exc import IntegrityError, OperationalError

from exchange.errors import ExchangeError
from exchange.storage.faults import is_unavailable, wrap_db_error

# --- Error classification -----------------------------------------------------------


def _chained(outer: Exception, cause: Exception) -> Exception:
    try:
        raise outer from cause
    except Exception as e:
        return e


def _sqlalchemy_wrapped(orig: Exception) -> OperationalError:
    return OperationalError("INSERT INTO numbers VALUES (?)", ("13800138000",), orig)


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("database table is locked"), True),
        (_sqlalchemy_wrapped(sqlite3.OperationalError("database is locked")), True),
        (sqlite3.OperationalError("no such table: numbers"), False),
        (sqlite3.IntegrityError("UNIQUE constraint failed: numbers.number"), False),
        (psycopg.OperationalError("connection failed: Connection refused"), True),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.TooManyConnections("too many clients"), True),
        (psycopg.errors.SerializationFailure("could not serialize access"), True),
        (_sqlalchemy_wrapped(psycopg.errors.AdminShutdown("shutdown")), True),
        (psycopg.OperationalError('connection failed: FATAL:  database "x" does not exist'), False),
        (
            psycopg.OperationalError("connection failed: FATAL:  password authentication failed"),
            False,
        ),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (psycopg.errors.UniqueViolation("duplicate key value"), False),
        (sqlalchemy.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), True),
        (
            _chained(
                ExchangeError("append failed"), sqlite3.OperationalError("database is locked")
            ),
            True,
        ),
        (ValueError("database is locked"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_unavailable(error: Exception, unavailable: bool) -> None:
    assert is_unavailable(error) is unavailable


def test_wrap_db_error_for_other_errors_is_not_unavailable_and_hides_statement() -> None:
    error = IntegrityError(
        "INSERT INTO numbers VALUES (?)",
        ("13800138000",),
        sqlite3.IntegrityError("UNIQUE constraint failed: numbers.number"),
    )
    wrapped = wrap_db_error(error, url="postgresql+psycopg://app:s3cret@db/bcx")
    assert type(wrapped) is ExchangeError
    assert str(wrapped) == (
        "database postgresql+psycopg://app:***@db/bcx failed: "
        "IntegrityError: UNIQUE constraint failed: numbers.number"
    )


