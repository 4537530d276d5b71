"""The agencies' workflow tables, on the exchange's MetaData (one alembic history)."""

from __future__ import annotations

from exchange.schema import metadata

__all__ = ["metadata"]
