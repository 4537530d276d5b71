"""Fixtures shared by all tests: databases (SQLite file or a real PostgreSQL server).

PostgreSQL fixtures:
- ``postgres_server`` (session): one server for the whole run; ``.admin_url``,
  ``.create_database(name) -> url``, ``.stop()``/``.start()`` (but use
  ``pg_private_server`` to stop one: others share this one).
- ``pg_url``: a fresh, empty database on ``postgres_server`` for this test only.
- ``db_url``: parametrized ``[sqlite]`` (a file in tmp_path) and ``[postgresql]``
  (``pg_url``), so one test covers both back ends.
- ``pg_private_server``: a server of the test's own, to stop and restart.

Where the server binaries are missing these tests are skipped, unless
BCX_REQUIRE_POSTGRES=1 (CI sets it) makes that a failure. Tests that use a server are
marked ``postgres`` automatically (``-m "not postgres"`` deselects them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ is not a package (no __init__.py), so its helper modules are imported by plain
# name. pytest's default import mode ("prepend") already puts this directory first on
# sys.path before importing this conftest; inserting it here keeps that true under
# --import-mode=importlib, which does not.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from pgserver import (  # noqa: E402
    PostgresServer,
    PostgresServerError,
    find_bindir,
    unique_database_name,
)

from exchange.storage.engines import sqlite_url  # noqa: E402

_SERVER_FIXTURES = frozenset({"postgres_bindir"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_bindir() -> Path:
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("BCX_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                "PostgreSQL binaries (initdb, pg_ctl) not found via `pg_config --bindir` "
                "or /usr/lib/postgresql/*/bin, and BCX_REQUIRE_POSTGRES=1; "
                "`make postgres` installs them"
            )
        pytest.skip("PostgreSQL binaries not found; `make test` installs them")
    return bindir


def _launch(bindir: Path) -> PostgresServer:
    try:
        return PostgresServer.launch(bindir)
    except PostgresServerError as e:
        pytest.fail(f"could not start the PostgreSQL test server: {e}")


@pytest.fixture(scope="session")
def postgres_server(postgres_bindir: Path) -> Iterator[PostgresServer]:
    server = _launch(postgres_bindir)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    name = unique_database_name(request.node.name)
    url = postgres_server.create_database(name)
    yield url
    if postgres_server.running:
        # FORCE: engines the test left open would otherwise keep the database in use.
        postgres_server.drop_database(name)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "node.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def pg_private_server(postgres_bindir: Path) -> Iterator[PostgresServer]:
    server = _launch(postgres_bindir)
    try:
        yield server
    finally:
        server.close()
