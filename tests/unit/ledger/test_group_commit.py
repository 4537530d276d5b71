"""The ledger writer (GroupCommitter) outlives callers that give up."""

from __future__ import annotations

import threading
from pathlib import Path

from exchange import migrate, storage
from exchange.keys import Ed25519Signer
from exchange.ledger.entries import Entry, EntryKind
from exchange.ledger.store import GroupCommitter, LedgerStore


def test_writer_survives_work_cancelled_while_queued(tmp_path: Path) -> None:
    """Regression: a cancelled future (an RPC whose client went away) made set_result raise
    InvalidStateError in the writer thread, which died and left the node unable to log."""
    engine = storage.create_engine_for(storage.sqlite_url(tmp_path / "ledger.db"))
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
