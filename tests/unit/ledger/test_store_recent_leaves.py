"""LedgerStore serves the leaves of its latest batches from memory (receipts are built
right after each commit without a database read). What it serves must be exactly what
was committed: never a leaf of an item whose savepoint was rolled back, nor of a
transaction that failed. On SQLite and PostgreSQL: each unit of work's savepoint is
plain SQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from exchange import migrate
from exchange.errors import LedgerError
from exchange.keys import Ed25519Signer
from exchange.ledger.entries import Entry, EntryKind
from exchange.ledger.store import LedgerStore
from exchange.storage import engines
from exchange.storage.unitofwork import GroupCommitter, Transaction

SIGNER = Ed25519Signer.from_seed(bytes(range(32)))
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def entry(subject: str) -> Entry:
    return Entry(EntryKind.ACTION, "peer.fj", T0, subject=subject)


@pytest.fixture
def store(db_url: str) -> Iterator[LedgerStore]:
    engine = engines.create_engine_for(db_url)
    migrate.upgrade(engine)
    yield LedgerStore(engine, origin="bcx.test/n.fj", signer=SIGNER)
    engine.dispose()


def stored_leaf(store: LedgerStore, index: int) -> bytes:
    with store.reader.connect() as conn:
        return bytes(conn.scalar(text("SELECT leaf FROM ledger_leaves WHERE idx = :i"),
                                 {"i": index}))


def test_leaf_of_a_rolled_back_item_is_not_served(store: LedgerStore) -> None:
    committer = GroupCommitter(store, window_s=0.05)
    committer.start()

    def fails(txn: Transaction) -> None:
        txn.append(entry("rolled back"))
        raise LedgerError("this item fails after appending")

    try:
        # One batch: the failing item last, so nothing appended after it reuses its index.
        kept = committer.submit(lambda txn: txn.append(entry("kept")))
        doomed = committer.submit(fails)
        with pytest.raises(LedgerError, match="fails after appending"):
            doomed.result()
        assert kept.result().result == 0
        assert store.size == 1
        assert store.leaf(0) == stored_leaf(store, 0) == entry("kept").encode()
        with pytest.raises(LedgerError, match="no ledger entry at index 1"):
            store.leaf(1)
        # The next batch is given the failed item's index back.
        assert committer.run_sync(lambda txn: txn.append(entry("next"))).result == 1
    finally:
        committer.stop()
    assert store.leaf(1) == stored_leaf(store, 1) == entry("next").encode()


def test_leaves_served_from_memory_equal_the_database(store: LedgerStore) -> None:
    committer = GroupCommitter(store)
    committer.start()
    try:
        for n in (1, 3, 700, 2000):
            committer.run_sync(lambda txn, n=n: [txn.append(entry(f"{n}-{i}"))
                                                 for i in range(n)])
    finally:
        committer.stop()
    for index in (0, 1, 703, 2703, store.size - 1):
        assert store.leaf(index) == stored_leaf(store, index)
    with pytest.raises(LedgerError, match="no ledger entry at index"):
        store.leaf(store.size)


def test_leaves_held_in_memory_are_bounded_by_bytes(store: LedgerStore) -> None:
    # Regression: bounded by count alone, 1,024 bulk-message leaves of ~100 kB each held a
    # bureau 60 MB over its size at rest (make bench, full bulk path).
    from exchange.ledger import store as store_module

    big = "x" * 300_000
    committer = GroupCommitter(store)
    committer.start()
    try:
        for i in range(40):
            committer.run_sync(lambda txn, i=i: txn.append(entry(f"{i} {big}")))
    finally:
        committer.stop()
    held = sum(len(leaf) for leaf in store._recent_leaves.values())
    assert held == store._recent_bytes <= store_module._RECENT_LEAF_BYTES
    assert 0 < len(store._recent_leaves) < 40
    # What fell out of memory is still served, from the database.
    assert store.leaf(0) == stored_leaf(store, 0) == entry(f"0 {big}").encode()
