"""Raw baselines: Ed25519 verifications and durable SQLite commits per second."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def ed25519_verify_rate(seconds: float, message_bytes: int) -> float:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = bytes(message_bytes)
    sig = key.sign(message)
    n = 0
    start = time.perf_counter()
    stop_at = start + seconds
    while True:
        for _ in range(200):
            public.verify(sig, message)
        n += 200
        now = time.perf_counter()
        if now >= stop_at:
            return n / (now - start)


def sqlite_commit_rate(path: Path, seconds: float, row_bytes: int) -> float:
    """One INSERT per durable transaction, with the PRAGMAs exchange/storage/engines.py sets
    (WAL, synchronous=FULL, foreign keys, BEGIN IMMEDIATE)."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        body = bytes(row_bytes)
        n = 0
        start = time.perf_counter()
        stop_at = start + seconds
        while True:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
            conn.execute("COMMIT")
            n += 1
            now = time.perf_counter()
            if now >= stop_at:
                return n / (now - start)
    finally:
        conn.close()
