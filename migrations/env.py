"""Alembic environment: one history for every table of a node's database."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import engine_from_config, pool

import nodes.models  # noqa: F401 - registers the workflow tables on the shared MetaData
from exchange.schema import metadata

config = context.config
if os.environ.get("BCX_DATABASE_URL"):
    config.set_main_option("sqlalchemy.url", os.environ["BCX_DATABASE_URL"])
target_metadata = metadata


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


def _run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
