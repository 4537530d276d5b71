"""Measure how long a subscriber import holds the database's writer.

    .venv/bin/python scripts/measure_subscriber_import.py --rows 1000000 --dir /tmp/imp

Writes a CSV of ``--rows`` subscribers (number, province, name, ID number), imports it
into a fresh SQLite node database with ``nodes.carrier.subscribers.import_csv`` while another
connection takes the write lock (``BEGIN IMMEDIATE``, as the node's ledger writer does)
every 20 ms, and prints the import's time, its longest transaction and the longest
wait of that other writer. A carrier node importing its base while it runs waits as
long as that other writer did.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
import threading
import time
from pathlib import Path

from exchange import migrate
from exchange.storage import engines
from nodes.carrier.subscribers import import_csv


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, required=True, help="a scratch directory")
    args = parser.parse_args(argv)
    if args.rows < 1:
        print("measure_subscriber_import: --rows must be at least 1", file=sys.stderr)
        return 2
    args.dir.mkdir(parents=True, exist_ok=True)
    db, data = args.dir / "node.db", args.dir / "subscribers.csv"
    for stale in (db, db.with_name("node.db-wal"), db.with_name("node.db-shm")):
        stale.unlink(missing_ok=True)
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "province", "subscriber_name", "id_number"])
        for i in range(args.rows):
            w.writerow([f"+86159{50_000_000 + i:08d}", "fj", f"Name {i}",
                        f"3501021988{i:08d}"])
    engine = engines.create_engine_for(engines.sqlite_url(db))
    migrate.upgrade(engine)
    waits: list[float] = []
    stop = threading.Event()

    def other_writer() -> None:
        conn = sqlite3.connect(db, timeout=120, isolation_level=None)
        try:
            while not stop.is_set():
                started = time.monotonic()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("COMMIT")
                waits.append(time.monotonic() - started)
                time.sleep(0.02)
        finally:
            conn.close()

    writer = threading.Thread(target=other_writer)
    writer.start()
    started = time.monotonic()
    try:
        result = import_csv(engine, data)
    finally:
        stop.set()
        writer.join()
        engine.dispose()
    print(f"rows {result.rows}, added {result.added}, import {time.monotonic() - started:.1f}s, "
          f"longest transaction {result.longest_write:.3f}s, longest wait of another writer "
          f"{max(waits):.3f}s ({len(waits)} waits)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
