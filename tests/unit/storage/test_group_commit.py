"""The ledger writer (GroupCommitter): callers that give up, units refused inside a batch,
batches that cannot be written, and the group-commit window."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from exchange import migrate
from exchange.errors import ExchangeError
from exchange.keys import Ed25519Signer
from exchange.ledger.audit import verify_ledger
from exchange.ledger.entries import Entry, EntryKind
from exchange.ledger.store import LedgerStore
from exchange.schema import ledger_leaves
from exchange.storage import engines
from exchange.storage.unitofwork import GroupCommitter


def test_writer_survives_work_cancelled_while_queued(tmp_path: Path) -> None:
    """Regression: a cancelled future (an RPC whose client went away) made set_result raise
    InvalidStateError in the writer thread, which died and left the node unable to log."""
    engine = engines.create_engine_for(engines.sqlite_url(tmp_path / "ledger.db"))
    migrate.upgrade(engine)
    store = LedgerStore(engine, origin="bcx.example/small.cn", signer=Ed25519Signer.generate())
    committer = GroupCommitter(store)
    committer.start()
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def blocking(txn: object) -> None:
        started.set()
        assert release.wait(timeout=30)

    def append(name: str):  # type: ignore[no-untyped-def]
        def work(txn: object) -> int:
            ran.append(name)
            return txn.append(Entry(EntryKind.ACTION, "", txn.now, subject=name))  # type: ignore[attr-defined]
        return work

    try:
        first = committer.submit(blocking)
        assert started.wait(timeout=30)
        abandoned = committer.submit(append("abandoned"))
        assert abandoned.cancel()
        release.set()
        first.result(timeout=30)
        after = committer.submit(append("after")).result(timeout=30)
        assert ran == ["after"]
        assert after.result == 0
        assert store.size == 1
    finally:
        release.set()
        committer.stop()
        engine.dispose()


def _store(tmp_path: Path) -> tuple[Any, LedgerStore]:
    engine = engines.create_engine_for(engines.sqlite_url(tmp_path / "ledger.db"))
    migrate.upgrade(engine)
    return engine, LedgerStore(engine, origin="bcx.example/small.cn",
                               signer=Ed25519Signer.generate())


def _action(name: str, *, fail: bool = False) -> Any:
    def work(txn: Any) -> int:
        idx: int = txn.append(Entry(EntryKind.ACTION, "", txn.now, subject=name))
        if fail:
            raise ExchangeError(f"{name} refused after appending")
        return idx
    return work


def _held_in_one_batch(committer: GroupCommitter, works: list[Any]) -> list[Any]:
    """Submit ``works`` while the writer is busy, so they are committed as one batch."""
    started, release = threading.Event(), threading.Event()

    def blocking(txn: object) -> None:
        started.set()
        assert release.wait(timeout=30)

    first = committer.submit(blocking)
    assert started.wait(timeout=30)
    futures = [committer.submit(w) for w in works]
    release.set()
    first.result(timeout=30)
    return futures


def test_a_refused_unit_writes_no_rows_and_the_rest_of_its_batch_commits(
        tmp_path: Path) -> None:
    """Leaves and subtree hashes are written once per batch: a unit refused after it
    appended must leave nothing of its own, and the units after it take its index."""
    engine, store = _store(tmp_path)
    committer = GroupCommitter(store)
    committer.start()
    try:
        a, bad, b = _held_in_one_batch(
            committer, [_action("a"), _action("bad", fail=True), _action("b")])
        assert a.result(timeout=30).result == 0
        with pytest.raises(ExchangeError, match="bad refused after appending"):
            bad.result(timeout=30)
        done = b.result(timeout=30)
        assert done.result == 1
        assert done.checkpoint is not None and done.checkpoint.size == 2
        with engine.connect() as conn:
            rows = conn.execute(select(ledger_leaves.c.idx, ledger_leaves.c.leaf)
                                .order_by(ledger_leaves.c.idx)).all()
        assert [(r.idx, Entry.decode(r.leaf).subject) for r in rows] == [(0, "a"), (1, "b")]
        report = verify_ledger(engine, log_verifier=store.verifier)
        assert (report.entries, report.size) == (2, 2)
    finally:
        committer.stop()
        engine.dispose()


def test_a_batch_whose_ledger_rows_cannot_be_written_fails_whole_and_the_next_commits(
        tmp_path: Path) -> None:
    """A unit that puts a row where the batch's next leaf goes makes the batch's one
    executemany fail: every unit of the batch is refused, nothing of it stays in memory,
    and the writer goes on with the next batch from the same index."""
    engine, store = _store(tmp_path)
    committer = GroupCommitter(store)
    committer.start()

    def squatter(txn: Any) -> None:
        txn.conn.execute(insert(ledger_leaves), {
            "idx": 1, "leaf": b"x", "kind": int(EntryKind.ACTION), "peer": "",
            "message_id": None, "message_digest": None, "logged_at": 0})
        txn.append(Entry(EntryKind.ACTION, "", txn.now, subject="squatter"))

    try:
        futures = _held_in_one_batch(committer, [squatter, _action("c")])
        for f in futures:
            with pytest.raises(ExchangeError, match=r"database .* failed"):
                f.result(timeout=30)
        assert store.size == 0
        after = committer.submit(_action("after")).result(timeout=30)
        assert after.result == 0 and after.checkpoint is not None
        report = verify_ledger(engine, log_verifier=store.verifier)
        assert (report.entries, report.size) == (1, 1)
    finally:
        committer.stop()
        engine.dispose()


def test_a_lone_unit_of_work_is_not_held_for_the_window(tmp_path: Path) -> None:
    """The window gathers work only while the writer is busy; a message on its own is
    committed at once (a 60 s window would otherwise hold it for a minute)."""
    engine, store = _store(tmp_path)
    committer = GroupCommitter(store, window_s=60.0)
    committer.start()
    try:
        assert committer.submit(_action("alone")).result(timeout=20).result == 0
        assert committer.submit(_action("again")).result(timeout=20).result == 1
    finally:
        committer.stop()
        engine.dispose()
