"""The ledger writer (GroupCommitter) against waiters that go away."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange import migrate, storage
from exchange.keys import Ed25519Signer
from exchange.ledger.entries import Entry, EntryKind
from exchange.ledger.store import GroupCommitter, LedgerStore, Transaction


@pytest.fixture
def committer(tmp_path: Path) -> Iterator[GroupCommitter]:
    engine = storage.create_engine_for(storage.sqlite_url(tmp_path / "ledger.db"))
    migrate.upgrade(engine)
    store = LedgerStore(engine, origin="bcx.example/small.cn", signer=Ed25519Signer.generate())
    c = GroupCommitter(store, window_s=0)
    c.start()
    try:
        yield c
    finally:
        c.stop()
        engine.dispose()


def action(subject: str):  # type: ignore[no-untyped-def]
    def work(txn: Transaction) -> int:
        return txn.append(Entry(EntryKind.ACTION, "", txn.now, subject=subject))
    return work


def test_writer_survives_a_waiter_that_cancelled_before_its_work_ran(
        committer: GroupCommitter) -> None:
    # Regression: a cancelled future (a gRPC call cancelled while its message waited for
    # the ledger) made set_result raise InvalidStateError in the writer thread, which died;
    # the node then never committed anything again and every caller hung.
    holding, release = threading.Event(), threading.Event()

    def hold(txn: Transaction) -> None:
        holding.set()
        assert release.wait(30)

    first = committer.submit(hold)
    assert holding.wait(30)
    cancelled = committer.submit(action("cancelled"))
    assert cancelled.cancel()
    release.set()
    first.result(timeout=30)

    after = committer.submit(action("after")).result(timeout=30)
    # Work whose waiter left before it ran is not done: nobody could learn its outcome.
    subjects = [Entry.decode(leaf).subject for _, leaf in committer.store.leaves(0, 10)]
    assert subjects == ["after"]
    assert after.result == 0


def test_writer_survives_an_asyncio_waiter_cancelled_while_waiting(
        committer: GroupCommitter) -> None:
    holding, release = threading.Event(), threading.Event()

    async def scenario() -> None:
        committer.submit(lambda txn: (holding.set(), release.wait(30)))
        assert await asyncio.to_thread(holding.wait, 30)
        waiter = asyncio.ensure_future(committer.run(action("gone")))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        committed = await asyncio.wait_for(committer.run(action("next")), timeout=30)
        assert committed.checkpoint is not None

    asyncio.run(scenario())
