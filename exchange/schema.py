"""The exchange's tables (SQLAlchemy Core) on the one MetaData that alembic owns.

`nodes.models` adds the agencies' workflow tables to the same MetaData, so one
migration history covers the whole node database.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Times are integer microseconds since the Unix epoch (UTC): exact, portable, sortable.

# --- The ledger: append-only (the database refuses UPDATE and DELETE) ------------

ledger_leaves = Table(
    "ledger_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf", LargeBinary, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("peer", String(253), nullable=False),
    Column("message_id", LargeBinary(16), nullable=True),
    Column("message_digest", LargeBinary(32), nullable=True),
    Column("logged_at", BigInteger, nullable=False),
    Index("ix_ledger_leaves_message_digest", "message_digest"),
    Index("ix_ledger_leaves_message_id", "message_id"),
    Index("ix_ledger_leaves_peer_idx", "peer", "idx"),
)

# Hash of every full subtree: leaves [idx * 2**level, (idx + 1) * 2**level).
ledger_subtrees = Table(
    "ledger_subtrees",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Cosignatures witnesses returned for this node's checkpoints.
ledger_cosignatures = Table(
    "ledger_cosignatures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("size", BigInteger, nullable=False),
    Column("witness", String(253), nullable=False),
    Column("line", Text, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    UniqueConstraint("size", "witness", name="uq_ledger_cosignatures_size_witness"),
)

APPEND_ONLY_TABLES = ("ledger_leaves", "ledger_subtrees", "ledger_checkpoints",
                      "ledger_cosignatures")

# --- What this node knows of its peers' ledgers ---------------------------------------

# Every checkpoint of a peer this node has verified (from receipts or by asking).
peer_checkpoints = Table(
    "peer_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(300), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("seen_at", BigInteger, nullable=False),
    # True once a consistency proof from the previous witnessed checkpoint verified.
    Column("witnessed", Boolean, nullable=False, default=False),
    UniqueConstraint("origin", "size", "root", name="uq_peer_checkpoints_origin_size_root"),
    Index("ix_peer_checkpoints_origin_size", "origin", "size"),
)

# Two checkpoints of one origin that are not consistent: kept for ever as evidence.
fork_evidence = Table(
    "fork_evidence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(300), nullable=False),
    Column("first_note", Text, nullable=False),
    Column("second_note", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("found_at", BigInteger, nullable=False),
    Column("escalated", Boolean, nullable=False, default=False),
)

# --- Messages ------------------------------------------------------------------------

# Every accepted message, keyed by (sender, message id), so a retry gets the first receipt.
inbox = Table(
    "inbox",
    metadata,
    Column("sender", String(253), primary_key=True),
    Column("message_id", LargeBinary(16), primary_key=True),
    Column("leaf_idx", BigInteger, nullable=False),
    Column("message_digest", LargeBinary(32), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("received_at", BigInteger, nullable=False),
)

# Messages this node signed and must deliver; a row leaves the queue only with a receipt.
outbox = Table(
    "outbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("recipient", String(253), nullable=False),
    Column("message_id", LargeBinary(16), nullable=False, unique=True),
    Column("message_digest", LargeBinary(32), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("sent_leaf_idx", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    Column("receipt_leaf_idx", BigInteger, nullable=True),
    Column("escalated", Boolean, nullable=False, default=False),
    # Set when the peer refused the message for good (bad signature, role, body, …): it
    # leaves the queue, so the messages after it go on, and waits for an operator's
    # `bcx outbox retry` once the cause is fixed. The row, like the SENT entry, stays.
    Column("refused_at", BigInteger, nullable=True),
    Index("ix_outbox_pending", "recipient", "delivered_at", "seq"),
)

# Directory versions this node has accepted (the bytes as signed by the office).
directories = Table(
    "directories",
    metadata,
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("signed", LargeBinary, nullable=False),
    Column("loaded_at", BigInteger, nullable=False),
)
