"""Ledger benchmarks: appends/s, proof times by tree size, `bcx ledger verify`, bytes/entry.

The big ledgers are built through LedgerStore and GroupCommitter, as a node builds
its own, in transactions of 256 RECEIVED entries (a stream window's worth; each with
a real signed envelope of the typical size) and one signed checkpoint each.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange import migrate, pki
from exchange.config import NodeConfig
from exchange.ledger.audit import verify_ledger
from exchange.ledger.entries import Entry, EntryKind
from exchange.ledger.receipts import log_origin
from exchange.ledger.store import LedgerStore
from exchange.storage import engines
from exchange.storage.unitofwork import GroupCommitter, Transaction
from nodes.federation import Federation, write_node_toml

from .fixture import RECEIVER, SENDER, report_body, sign_envelope, typical_numbers
from .report import say

ENTRIES_PER_TXN = 256


@dataclass
class LedgerBench:
    config_path: Path
    config: NodeConfig
    envelopes: list[tuple[bytes, bytes]]  # (envelope, digest)

    @classmethod
    def create(cls, fed: Federation, name: str) -> LedgerBench:
        """A node.toml for the bureau's identity over a database of its own."""
        base = NodeConfig.from_file(fed.config(RECEIVER))
        d = fed.workspace / name
        path = write_node_toml(d / "node.toml", node_id=RECEIVER, office_id=fed.office_id,
                               keys_dir=base.credentials_dir, ca=base.ca_cert,
                               listen="127.0.0.1:1", database_url=f"sqlite:///{d / 'node.db'}",
                               directory=base.directory_file)
        police = NodeConfig.from_file(fed.config(SENDER))
        ca = pki.load_certificate(police.ca_cert)
        signer = pki.load_node_credentials(police.credentials_dir, ca=ca,
                                           now=datetime.now(UTC)).signer
        from exchange import envelope
        envs = []
        for i in range(64):
            raw = sign_envelope(signer, SENDER, RECEIVER, report_body(typical_numbers(), i))
            envs.append((raw, envelope.parse(raw).digest))
        return cls(path, NodeConfig.from_file(path), envs)

    def open(self) -> tuple[Any, LedgerStore]:
        cfg = self.config
        engine = engines.create_engine_for(cfg.database_url)
        migrate.upgrade(engine)
        ca = pki.load_certificate(cfg.ca_cert)
        creds = pki.load_node_credentials(cfg.credentials_dir, ca=ca, now=datetime.now(UTC))
        store = LedgerStore(engine, origin=log_origin(creds.trust_domain, cfg.node_id),
                            signer=creds.signer)
        return engine, store

    def unit(self, k: int) -> Any:
        envs = self.envelopes

        def work(txn: Transaction) -> None:
            for _ in range(k):
                raw, digest = envs[random.randrange(len(envs))]
                txn.append(Entry(EntryKind.RECEIVED, SENDER, txn.now, message_id=os.urandom(16),
                                 message_digest=digest, envelope=raw, subject="number_report"))
        return work

    def db_bytes(self, engine: Any) -> int:
        db = Path(self.config.database_url.removeprefix("sqlite:///"))
        engine.dispose()  # idle pooled connections would keep the WAL from being emptied
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def append_rate(bench: LedgerBench, units: int) -> float:
    """Appends/s through the group committer as a node runs it (default window and batch),
    one entry per unit of work, all submitted at once. A fresh database each call."""
    db = Path(bench.config.database_url.removeprefix("sqlite:///"))
    for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        p.unlink(missing_ok=True)
    engine, store = bench.open()
    limits = bench.config.limits
    committer = GroupCommitter(store, max_batch=limits.max_batch,
                               window_s=limits.group_commit_window_ms / 1000)
    committer.start()
    try:
        one = bench.unit(1)
        start = time.perf_counter()
        futures = [committer.submit(one) for _ in range(units)]
        for f in futures:
            f.result()
        return units / (time.perf_counter() - start)
    finally:
        committer.stop()
        engine.dispose()


def grow(store: LedgerStore, bench: LedgerBench, to_size: int) -> float:
    """Append until the ledger holds ``to_size`` entries; returns entries/s."""
    committer = GroupCommitter(store, max_batch=1, window_s=0)
    committer.start()
    try:
        start = time.perf_counter()
        n0 = store.size
        futures: list[Future[Any]] = []
        remaining = to_size - store.size
        while remaining > 0:
            k = min(ENTRIES_PER_TXN, remaining)
            futures.append(committer.submit(bench.unit(k)))
            remaining -= k
        for f in futures:
            f.result()
        return (store.size - n0) / (time.perf_counter() - start)
    finally:
        committer.stop()


def proof_times(bench: LedgerBench, size: int, samples: int, rng: random.Random
                ) -> tuple[list[float], list[float]]:
    """Inclusion and consistency proof times (ms) at tree size ``size``, cold cache:
    a fresh LedgerStore, so every subtree hash the proof needs is read from the database."""
    engine, store = bench.open()
    try:
        if store.latest is None or store.latest.size != size:
            raise RuntimeError(f"ledger is at {store.latest}, not {size}")
        incl, cons = [], []
        for _ in range(samples):
            i = rng.randrange(size)
            t = time.perf_counter()
            store.inclusion_proof(i, size)
            incl.append((time.perf_counter() - t) * 1e3)
            m = rng.randrange(1, size)
            t = time.perf_counter()
            store.consistency_proof(m, size)
            cons.append((time.perf_counter() - t) * 1e3)
        return incl, cons
    finally:
        engine.dispose()


def verify_command(bench: LedgerBench, size: int) -> float:
    """Wall time (s) of `bcx ledger verify --config …`, process start included."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "nodes.cli", "ledger", "verify", "--config",
                          str(bench.config_path)], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0 or f"intact: {size} entries" not in out.stdout:
        raise RuntimeError(f"bcx ledger verify failed: {out.stdout} {out.stderr[-2000:]}")
    return elapsed


def verify_in_process(bench: LedgerBench, engine: Any, store: LedgerStore) -> float:
    start = time.perf_counter()
    verify_ledger(engine, log_verifier=store.verifier)
    return time.perf_counter() - start


def say_size(size: int) -> str:
    return f"10^{len(str(size)) - 1}" if str(size).strip("0") == "1" else f"{size:,}"


def run_ledger(fed: Federation, sizes: list[int], reps: int, quick: bool, results: Any) -> None:
    from .report import percentile
    section = "Ledger"
    appends_bench = LedgerBench.create(fed, "ledger-appends")
    units = 5_000 if quick else 10_000
    rates = []
    for r in range(reps):
        rates.append(append_rate(appends_bench, units))
        say(f"  appends run {r + 1}/{reps}: {rates[-1]:,.0f}/s")
    results.add(section, "appends/s (1 entry per unit of work, group commit as configured)",
                rates, "appends/s", f"{units:,} units submitted at once")

    bench = LedgerBench.create(fed, "ledger-big")
    engine, store = bench.open()
    rng = random.Random(9162)
    try:
        for size in sizes:
            say(f"ledger: growing to {size:,} entries")
            rate = grow(store, bench, size)
            results.add(section, f"build to {say_size(size)} ({ENTRIES_PER_TXN} entries/txn)",
                        [rate], "entries/s", "one run: the ledger is built once")
            incl_runs, cons_runs, incl_p99, cons_p99 = [], [], [], []
            for _ in range(reps):
                incl, cons = proof_times(bench, size, 50 if quick else 100, rng)
                incl_runs.append(percentile(incl, 50))
                cons_runs.append(percentile(cons, 50))
                incl_p99.append(percentile(incl, 99))
                cons_p99.append(percentile(cons, 99))
            results.add(section, f"inclusion proof at {say_size(size)}, median", incl_runs, "ms",
                        "cold cache, random leaf")
            results.add(section, f"inclusion proof at {say_size(size)}, p99", incl_p99, "ms")
            results.add(section, f"consistency proof at {say_size(size)}, median", cons_runs,
                        "ms", "cold cache, random old size")
            results.add(section, f"consistency proof at {say_size(size)}, p99", cons_p99, "ms")
            nbytes = bench.db_bytes(engine)
            results.add(section, f"database bytes per entry at {say_size(size)}",
                        [nbytes / size], "bytes",
                        f"leaf, subtree hashes, checkpoints, indexes; envelope "
                        f"{len(bench.envelopes[0][0])} bytes")
            if quick and size != sizes[-1]:
                continue  # quick: verify only the largest ledger, to stay under 2 minutes
            vreps = reps if size < 1_000_000 else min(reps, 3)
            cmd, inproc = [], []
            for _ in range(vreps):
                cmd.append(size / verify_command(bench, size))
                inproc.append(size / verify_in_process(bench, engine, store))
            results.add(section, f"`bcx ledger verify` at {say_size(size)}", cmd, "entries/s",
                        "the command's wall time, process start included")
            results.add(section, f"verify_ledger() at {say_size(size)}", inproc, "entries/s",
                        "in process")
    finally:
        engine.dispose()
