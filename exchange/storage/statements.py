"""Hot-path statements run on the DBAPI driver itself, and the cursor that runs them.

Errors come out as SQLAlchemy's DBAPIError, so ``exchange.storage.faults`` classifies
them as it does any other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from exchange.errors import ExchangeError


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
