"""A node's database: engines, driver statements, and the unit of work.

``engines``: URLs and engines for SQLite (WAL) and PostgreSQL, and the read-only view.
``faults``: driver errors classified as "unavailable now", "disk full" or other.
``statements``: hot-path statements run on the DBAPI driver itself.
``unitofwork``: the group committer, which runs units of work in shared transactions
and drives a batch sink (the ledger) through a small protocol.
"""
