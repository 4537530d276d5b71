"""Revision scripts (alembic loads them by path; this file makes them part of the package)."""
