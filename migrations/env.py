"""Alembic environment: one history for every table of a node's database.

Upgrading needs no model metadata, so the library (``exchange.migrate``) passes none and
this file imports no models: the history itself never reaches into the agencies' code.
Comparing models with the database (``alembic check``, autogenerate) needs all of them;
the caller gives them either as ``config.attributes["target_metadata"]`` or, for the
``alembic`` command, as the ``target_metadata = module:attribute`` option of its ini file,
imported here by name.

Logging is not configured here (no ``fileConfig``): the process running the migrations
decides what is printed, so ``bcx`` shows no alembic INFO lines.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from alembic import context
from sqlalchemy import MetaData, engine_from_config, pool

config = context.config
if os.environ.get("BCX_DATABASE_URL"):
    config.set_main_option("sqlalchemy.url", os.environ["BCX_DATABASE_URL"])


def _target_metadata() -> MetaData | None:
    given = config.attributes.get("target_metadata")
    if isinstance(given, MetaData):
        return given
    named = config.get_main_option("target_metadata")
    if not named:
        return None
    module, _, attribute = named.partition(":")
    found = getattr(importlib.import_module(module), attribute or "metadata")
    if not isinstance(found, MetaData):
        raise TypeError(f"target_metadata = {named} is not a SQLAlchemy MetaData")
    return found


target_metadata = _target_metadata()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}),
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


def _run(connection: Any) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
