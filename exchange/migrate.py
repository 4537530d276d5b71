"""Running the alembic migrations against a node's database.

The history ships inside the installed distribution (the ``migrations`` package), found
through ``importlib.resources`` and configured in code, so a wheel or ``pip install .``
migrates exactly as a checkout does: nothing is read relative to the source tree and no
``alembic.ini`` is needed. Alembic's own logging is left alone: it is configured (or
silenced) by whoever runs the process, never by the migration environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

PACKAGE = "migrations"


@contextmanager
def script_location() -> Iterator[Path]:
    """The directory of the installed history (``env.py`` and ``versions/``)."""
    with resources.as_file(resources.files(PACKAGE)) as path:
        yield Path(path)


def alembic_config(url: str, location: Path) -> Config:
    """An alembic configuration for the database at ``url``, without any ini file."""
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema (idempotent)."""
    with script_location() as location:
        cfg = alembic_config(engine.url.render_as_string(hide_password=False), location)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


def head_revisions() -> frozenset[str]:
    """The revisions the installed history ends in (what ``upgrade`` brings a database to)."""
    with script_location() as location:
        script = ScriptDirectory(str(location))
        return frozenset(script.get_heads())


def current_revisions(conn: Connection) -> frozenset[str]:
    """The revisions the database says it is at; empty for a database never migrated."""
    return frozenset(MigrationContext.configure(conn).get_current_heads())
