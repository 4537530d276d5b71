"""``verify_ledger``: a real ledger built through LedgerStore and GroupCommitter on a
migrated database, then changed behind its back with raw SQL once the append-only
triggers are dropped. Each change must be found and named by the first bad leaf."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from exchange import migrate
from exchange.errors import TamperError
from exchange.keys import Ed25519Signer
from exchange.ledger import audit, merkle, note
from exchange.ledger.audit import AuditReport, first_to_end, subtree_beyond_error, verify_ledger
from exchange.ledger.entries import Entry, EntryKind, to_micros
from exchange.ledger.store import LedgerStore
from exchange.schema import APPEND_ONLY_TABLES
from exchange.storage import engines
from exchange.storage.unitofwork import GroupCommitter

ORIGIN = "bcx.test/telco.fj"
SIGNER = Ed25519Signer.from_seed(bytes(range(32)))
OTHER_SIGNER = Ed25519Signer.from_seed(bytes(range(1, 33)))
VERIFIER = note.Verifier.for_key(ORIGIN, SIGNER.public_key)
T0 = datetime(2025, 3, 1, tzinfo=UTC)

# One transaction, so one signed checkpoint, per batch: checkpoints at 1, 2, 4, 64, ...
BATCHES = (1, 1, 2, 60, 700, 1333, 903)
SIZE = sum(BATCHES)  # 3000
CHECKPOINTS = tuple(sum(BATCHES[: i + 1]) for i in range(len(BATCHES)))


def entry(i: int) -> Entry:
    return Entry(
        EntryKind.ACTION if i % 3 else EntryKind.RECEIVED,
        "police.fj",
        T0 + timedelta(seconds=i),
        message_id=i.to_bytes(16, "big"),
        message_digest=bytes([i % 256]) * 32,
        subject=f"entry {i}",
    )


@dataclass
class Ledger:
    engine: Engine
    leaves: list[bytes]

    def sql(self, statement: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(statement), params)

    def scalar(self, statement: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(statement), params).scalar_one()

    def drop_trigger(self, table: str, action: str) -> None:
        """Do what a database owner can: take away the append-only guard."""
        if self.engine.dialect.name == "postgresql":
            self.sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            self.sql(f"DROP TRIGGER IF EXISTS {table}_no_{action}")

    def update(self, table: str, assignment: str, where: str, **params: Any) -> None:
        self.drop_trigger(table, "update")
        self.sql(f"UPDATE {table} SET {assignment} WHERE {where}", **params)

    def delete(self, table: str, where: str, **params: Any) -> None:
        self.drop_trigger(table, "delete")
        self.sql(f"DELETE FROM {table} WHERE {where}", **params)

    def subtree(self, level: int, idx: int) -> bytes:
        return bytes(self.scalar(
            "SELECT hash FROM ledger_subtrees WHERE level = :l AND idx = :i", l=level, i=idx
        ))

    def insert_leaf(self, i: int) -> None:
        """Append leaf ``i`` and its subtree hashes as the store would, but unsigned."""
        e = entry(i)
        self.sql(
            "INSERT INTO ledger_leaves (idx, leaf, kind, peer, message_id, message_digest, "
            "logged_at) VALUES (:i, :leaf, :kind, :peer, :mid, :digest, :t)",
            i=i, leaf=e.encode(), kind=int(e.kind), peer=e.peer, mid=e.message_id,
            digest=e.message_digest, t=to_micros(e.logged_at),
        )
        for level, idx, h in merkle.new_full_subtrees(i, merkle.leaf_hash(e.encode()),
                                                      self.subtree):
            self.sql("INSERT INTO ledger_subtrees (level, idx, hash) VALUES (:l, :i, :h)",
                     l=level, i=idx, h=h)

    def rewrite_leaf(self, index: int, leaf: bytes) -> None:
        """Replace a leaf and every stored hash above it, consistently: only the signed
        checkpoints still tell."""
        self.update("ledger_leaves", "leaf = :leaf", "idx = :i", leaf=leaf, i=index)
        tree = merkle.MemoryTree([*self.leaves[:index], leaf, *self.leaves[index + 1 :]])
        self.drop_trigger("ledger_subtrees", "update")
        for level, row in enumerate(tree.levels):
            if index >> level < len(row):
                self.sql("UPDATE ledger_subtrees SET hash = :h WHERE level = :l AND idx = :i",
                         h=row[index >> level], l=level, i=index >> level)


def forged(i: int) -> Entry:
    """Entry ``i`` with a different subject: the same indexed columns, other bytes."""
    return dataclasses.replace(entry(i), subject="forged")


def build(url: str, batches: Sequence[int] = BATCHES) -> Ledger:
    engine = engines.create_engine_for(url)
    migrate.upgrade(engine)
    store = LedgerStore(engine, origin=ORIGIN, signer=SIGNER)
    committer = GroupCommitter(store)
    committer.start()
    leaves: list[bytes] = []
    try:
        for count in batches:
            batch = [entry(len(leaves) + i) for i in range(count)]
            committer.run_sync(lambda txn, batch=batch: [txn.append(e) for e in batch])
            leaves.extend(e.encode() for e in batch)
    finally:
        committer.stop()
    return Ledger(engine, leaves)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite ledger of SIZE entries, built once and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "n.db"
    ledger = build(engines.sqlite_url(path))
    ledger.engine.dispose()  # the last connection to close checkpoints the WAL
    return path


@pytest.fixture
def ledger(template: Path, tmp_path: Path) -> Iterator[Ledger]:
    path = tmp_path / "n.db"
    # copy, not copyfile: the copies keep the template's 0600 (a database others may
    # read is refused).
    shutil.copy(template, path)
    if template.with_name("n.db-wal").exists():
        shutil.copy(template.with_name("n.db-wal"), path.with_name("n.db-wal"))
    engine = engines.create_engine_for(f"sqlite:///{path}")
    yield Ledger(engine, [entry(i).encode() for i in range(SIZE)])
    engine.dispose()


@pytest.fixture
def any_ledger(db_url: str) -> Iterator[Ledger]:
    """The same ledger on SQLite and on PostgreSQL."""
    ledger = build(db_url)
    yield ledger
    ledger.engine.dispose()


def expected_report(leaves: Sequence[bytes], checkpoints: int) -> AuditReport:
    tree = merkle.MemoryTree(leaves)
    return AuditReport(
        entries=len(leaves),
        checkpoints=checkpoints,
        subtrees=sum(len(row) for row in tree.levels),
        size=len(leaves),
        root=tree.root(),
    )


# --- intact ledgers ---------------------------------------------------------------------


def test_intact_ledger_passes_with_progress(any_ledger: Ledger) -> None:
    calls: list[tuple[int, int]] = []
    report = verify_ledger(any_ledger.engine, log_verifier=VERIFIER,
                           progress=lambda done, total: calls.append((done, total)), chunk=256)
    assert report == expected_report(any_ledger.leaves, len(BATCHES))
    assert report.subtrees == 2 * SIZE - SIZE.bit_count()
    assert calls == [(min(done, SIZE), SIZE) for done in range(256, SIZE + 256, 256)]


def test_an_intact_ledger_needs_no_leaf_by_leaf_pass(any_ledger: Ledger,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression guard: the leaf-by-leaf pass only names what differs. If the bulk checks
    refused an intact ledger (say a driver giving BLOBs as memoryview), verify would still
    pass, several times slower."""

    def refuse(self: Any, rows: Sequence[Any]) -> None:
        raise AssertionError(f"chunk from leaf {self.size} was checked leaf by leaf")

    monkeypatch.setattr(audit._Audit, "_check_leaf_by_leaf", refuse)
    report = verify_ledger(any_ledger.engine, log_verifier=VERIFIER, chunk=700)
    assert report == expected_report(any_ledger.leaves, len(BATCHES))


@pytest.mark.parametrize("chunk", [3, 4096, 5000])
def test_any_chunk_size_gives_the_same_report(ledger: Ledger, chunk: int) -> None:
    report = verify_ledger(ledger.engine, log_verifier=VERIFIER, chunk=chunk)
    assert report == expected_report(ledger.leaves, len(BATCHES))


def test_chunks_of_one_leaf(tmp_path: Path) -> None:
    batches = (1, 2, 3, 10, 17, 100)
    small = build(engines.sqlite_url(tmp_path / "n.db"), batches)
    calls: list[tuple[int, int]] = []
    report = verify_ledger(small.engine, log_verifier=VERIFIER, chunk=1,
                           progress=lambda done, total: calls.append((done, total)))
    assert report == expected_report(small.leaves, len(batches))
    assert calls == [(done, 133) for done in range(1, 134)]


def test_empty_ledger_passes(tmp_path: Path) -> None:
    ledger = build(engines.sqlite_url(tmp_path / "n.db"), batches=())
    report = verify_ledger(ledger.engine, log_verifier=VERIFIER)
    assert report == AuditReport(entries=0, checkpoints=0, subtrees=0, size=0,
                                 root=merkle.EMPTY_ROOT)


def test_report_names_the_latest_checkpoint(ledger: Ledger) -> None:
    report = verify_ledger(ledger.engine, log_verifier=VERIFIER)
    assert (report.size, report.root) == (SIZE, merkle.MemoryTree(ledger.leaves).root())


# --- the database refuses changes -------------------------------------------------------


def test_triggers_refuse_update_and_delete(any_ledger: Ledger) -> None:
    any_ledger.sql("INSERT INTO ledger_cosignatures (size, witness, line, timestamp) "
                   "VALUES (1, 'w', 'line', 0)")
    for table in APPEND_ONLY_TABLES:
        column = "size" if table in ("ledger_checkpoints", "ledger_cosignatures") else "idx"
        with pytest.raises(DBAPIError, match=f"{table} is append-only"):
            any_ledger.sql(f"UPDATE {table} SET {column} = {column} + 100000")
        with pytest.raises(DBAPIError, match=f"{table} is append-only"):
            any_ledger.sql(f"DELETE FROM {table}")
    assert any_ledger.scalar("SELECT count(*) FROM ledger_leaves") == SIZE
    verify_ledger(any_ledger.engine, log_verifier=VERIFIER)


# --- tampering ----------------------------------------------------------------------------


def flip_byte(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def test_one_changed_byte_in_a_leaf_is_named(any_ledger: Ledger) -> None:
    i = 1234
    any_ledger.update("ledger_leaves", "leaf = :leaf", "idx = :i",
                      leaf=flip_byte(any_ledger.leaves[i], 7), i=i)
    with pytest.raises(TamperError, match=rf"^leaf {i} does not match the ledger's subtree "
                       "hashes: its hash differs from the one stored") as caught:
        verify_ledger(any_ledger.engine, log_verifier=VERIFIER, chunk=500)
    assert caught.value.index == i


def _sign(size: int, root: bytes, signer: Ed25519Signer = SIGNER, origin: str = ORIGIN) -> str:
    return note.sign_checkpoint(note.Checkpoint(origin, size, root), signer)


def _root(ledger: Ledger, size: int) -> bytes:
    return merkle.MemoryTree(ledger.leaves[:size]).root()


Tamper = Callable[[Ledger], None]

# One row per way of changing the ledger: (what is done, expected index, message).
CASES: list[tuple[str, Tamper, int, str]] = [
    ("first leaf changed",
     lambda lg: lg.update("ledger_leaves", "leaf = :v", "idx = 0", v=flip_byte(lg.leaves[0], 0)),
     0, r"^leaf 0 does not match the ledger's subtree hashes: its hash differs"),
    ("last leaf changed",
     lambda lg: lg.update("ledger_leaves", "leaf = :v", "idx = 2999",
                          v=flip_byte(lg.leaves[2999], 20)),
     2999, r"^leaf 2999 does not match the ledger's subtree hashes"),
    ("leaf hash row changed",
     lambda lg: lg.update("ledger_subtrees", "hash = :v", "level = 0 AND idx = 77",
                          v=bytes(32)),
     77, r"^leaf 77 does not match the ledger's subtree hashes"),
    ("inner subtree row changed",
     lambda lg: lg.update("ledger_subtrees", "hash = :v", "level = 5 AND idx = 3",
                          v=flip_byte(lg.subtree(5, 3), 31)),
     96, r"^subtree covering leaves 96\.\.127 does not match the ledger's subtree hashes: "
         r"the stored hash at level 5 index 3 is"),
    ("largest subtree row changed",
     lambda lg: lg.update("ledger_subtrees", "hash = :v", "level = 11 AND idx = 0",
                          v=bytes(32)),
     0, r"^subtree covering leaves 0\.\.2047 does not match"),
    ("subtree row deleted",
     lambda lg: lg.delete("ledger_subtrees", "level = 3 AND idx = 10"),
     80, r"^subtree covering leaves 80\.\.87 does not match the ledger's subtree hashes: "
         r"its hash \(level 3, index 10\) is missing"),
    ("last leaf deleted",
     lambda lg: lg.delete("ledger_leaves", "idx = 2999"),
     2999, r"^leaf 2999 is missing: the ledger holds 2999 leaves but the stored hash of the "
           r"leaf 2999 exists$"),
    ("last leaf deleted with its hashes",
     lambda lg: (lg.delete("ledger_leaves", "idx = 2999"),
                 lg.delete("ledger_subtrees", "idx = (2999 >> level)")),
     2999, r"^leaf 2999 is missing: the ledger holds 2999 leaves but signed a checkpoint "
           r"of size 3000"),
    ("leaf in the middle deleted",
     lambda lg: lg.delete("ledger_leaves", "idx = 1500"),
     1500, r"^leaf 1500 is missing: the next stored leaf has index 1501"),
    ("leaf row moved to a negative index",
     lambda lg: lg.update("ledger_leaves", "idx = -1", "idx = 0"),
     0, r"^ledger holds a leaf row with index -1 where leaf 0 should be"),
    ("leaf and its hashes rewritten together",
     lambda lg: lg.rewrite_leaf(100, forged(100).encode()),
     763, r"^checkpoint of size 764 does not match the leaves: root recomputed [0-9a-f]{64}, "
          r"signed [0-9a-f]{64}; a leaf among 64\.\.763 was changed together"),
    ("garbage leaf with its hashes rewritten",
     lambda lg: lg.rewrite_leaf(42, b"\xff\xff\xff"),
     42, r"^leaf 42 does not decode as a ledger entry"),
    ("indexed column changed",
     lambda lg: lg.update("ledger_leaves", "message_id = :v", "idx = 9", v=b"\x07" * 16),
     9, r"^leaf 9: its row's message_id column does not match the leaf$"),
    ("kind column changed",
     lambda lg: lg.update("ledger_leaves", "kind = 2", "idx = 10"),
     10, r"^leaf 10: its row's kind column does not match the leaf$"),
    ("peer column changed",
     lambda lg: lg.update("ledger_leaves", "peer = 'police.gd'", "idx = 2047"),
     2047, r"^leaf 2047: its row's peer column does not match the leaf$"),
    ("message_digest column emptied",
     lambda lg: lg.update("ledger_leaves", "message_digest = NULL", "idx = 2048"),
     2048, r"^leaf 2048: its row's message_digest column does not match the leaf$"),
    ("logged_at column changed by a microsecond",
     lambda lg: lg.update("ledger_leaves", "logged_at = logged_at + 1", "idx = 2999"),
     2999, r"^leaf 2999: its row's logged_at column does not match the leaf$"),
    ("checkpoint row root forged",
     lambda lg: lg.update("ledger_checkpoints", "root = :v", "size = 64", v=bytes(32)),
     63, r"^checkpoint of size 64: its stored root 0{64} differs from the root it signed"),
    ("checkpoint note signed by another key",
     lambda lg: lg.update("ledger_checkpoints", "note = :v", "size = 764",
                          v=_sign(764, _root(lg, 764), OTHER_SIGNER)),
     763, r"^checkpoint of size 764 is not signed by this ledger's key bcx\.test/telco\.fj\+"
          r"[0-9a-f]{8}: checkpoint 'bcx\.test/telco\.fj' size 764 is not signed by log key"),
    ("checkpoint note of another origin",
     lambda lg: lg.update("ledger_checkpoints", "note = :v", "size = 4",
                          v=_sign(4, _root(lg, 4), origin="bcx.test/other.fj")),
     3, r"^checkpoint of size 4 is not signed by this ledger's key .*origin "
        r"'bcx\.test/other\.fj' is not the expected 'bcx\.test/telco\.fj'"),
    ("checkpoint note moved to another row",
     lambda lg: lg.update("ledger_checkpoints", "note = :v", "size = 2",
                          v=_sign(1, _root(lg, 1))),
     1, r"^checkpoint of size 2 holds a note signed for size 1$"),
    ("checkpoint note and root forged for other leaves",
     lambda lg: lg.update("ledger_checkpoints", "note = :n, root = :r", "size = 2",
                          n=_sign(2, bytes(32)), r=bytes(32)),
     1, r"^checkpoint of size 2 does not match the leaves: root recomputed [0-9a-f]{64}, "
        r"signed 0{64}; a leaf among 1\.\.1 was changed"),
    ("leaf appended without a checkpoint",
     lambda lg: lg.insert_leaf(3000),
     3000, r"^leaves 3000\.\.3000 are covered by no signed checkpoint"),
    ("subtree hash inserted beyond the leaves",
     lambda lg: lg.sql("INSERT INTO ledger_subtrees (level, idx, hash) VALUES (2, 750, :h)",
                       h=bytes(32)),
     3000, r"^leaf 3000 is missing: the ledger holds 3000 leaves but the stored hash of the "
           r"subtree covering leaves 3000\.\.3003 exists$"),
    ("subtree hash inserted at a negative index",
     lambda lg: lg.sql("INSERT INTO ledger_subtrees (level, idx, hash) VALUES (1, -1, :h)",
                       h=bytes(32)),
     0, r"^ledger holds a subtree hash at level 1 with negative index -1$"),
    ("checkpoint inserted beyond the leaves",
     lambda lg: lg.sql("INSERT INTO ledger_checkpoints (size, root, note, created_at) "
                       "VALUES (3001, :r, :n, 0)", r=bytes(32), n=_sign(3001, bytes(32))),
     3000, r"^leaf 3000 is missing: the ledger holds 3000 leaves but signed a checkpoint "
           r"of size 3001"),
]


# SQLite keeps whatever type it is given in any column: whoever owns the file can put
# text where a hash was. The audit must name that, not fail on it.
TYPE_CASES = [
    ("leaf stored as text",
     lambda lg: lg.update("ledger_leaves", "leaf = 'forged'", "idx = 5"),
     5, r"^leaf 5: its row holds str, not bytes"),
    ("leaf index stored as text",
     lambda lg: lg.update("ledger_leaves", "idx = 'five'", "idx = 5"),
     5, r"^leaf 5 is missing"),
    ("subtree hash stored as text",
     lambda lg: lg.update("ledger_subtrees", "hash = 'x'", "level = 2 AND idx = 3"),
     12, r"^subtree covering leaves 12\.\.15 does not match the ledger's subtree hashes: "
         r"the stored hash at level 2 index 3 is str, not bytes"),
    ("leaf hash stored as text",
     lambda lg: lg.update("ledger_subtrees", "hash = 'x'", "level = 0 AND idx = 7"),
     7, r"^leaf 7 does not match the ledger's subtree hashes: the stored hash is str, "
        r"not bytes"),
    ("checkpoint root stored as text",
     lambda lg: lg.update("ledger_checkpoints", "root = 'x'", "size = 64"),
     63, r"^checkpoint of size 64: its stored root is str, not bytes"),
    ("checkpoint note stored as a blob",
     lambda lg: lg.update("ledger_checkpoints", "note = X'00ff'", "size = 64"),
     63, r"^checkpoint of size 64 is not signed by this ledger's key .*not valid UTF-8"),
    ("checkpoint size stored as text",
     lambda lg: lg.update("ledger_checkpoints", "size = 'big'", "size = 64"),
     3000, r"signed a checkpoint of size big$"),
]


@pytest.mark.parametrize(("change", "expected_index", "message"),
                         [pytest.param(c[1], c[2], c[3], id=c[0]) for c in TYPE_CASES])
def test_a_value_of_the_wrong_type_is_named(ledger: Ledger, change: Tamper,
                                            expected_index: int, message: str) -> None:
    change(ledger)
    with pytest.raises(TamperError, match=message) as caught:
        verify_ledger(ledger.engine, log_verifier=VERIFIER, chunk=512)
    assert caught.value.index == expected_index


@pytest.mark.parametrize(("change", "expected_index", "message"),
                         [pytest.param(c[1], c[2], c[3], id=c[0]) for c in CASES])
def test_tampering_is_found_and_named(ledger: Ledger, change: Tamper, expected_index: int,
                                      message: str) -> None:
    change(ledger)
    with pytest.raises(TamperError, match=message) as caught:
        verify_ledger(ledger.engine, log_verifier=VERIFIER, chunk=512)
    assert caught.value.index == expected_index


def test_every_subtree_row_changed_names_its_first_leaf(tmp_path: Path) -> None:
    ledger = build(engines.sqlite_url(tmp_path / "n.db"), batches=(1, 2, 3, 10, 17))
    ledger.drop_trigger("ledger_subtrees", "update")
    tree = merkle.MemoryTree(ledger.leaves)
    for level, row in enumerate(tree.levels):
        for idx, good in enumerate(row):
            where = "level = :l AND idx = :i"
            ledger.sql(f"UPDATE ledger_subtrees SET hash = :h WHERE {where}",
                       h=flip_byte(good, 0), l=level, i=idx)
            for chunk in (1, 5):
                with pytest.raises(TamperError) as caught:
                    verify_ledger(ledger.engine, log_verifier=VERIFIER, chunk=chunk)
                assert caught.value.index == idx << level, (level, idx, chunk)
            ledger.sql(f"UPDATE ledger_subtrees SET hash = :h WHERE {where}",
                       h=good, l=level, i=idx)
    verify_ledger(ledger.engine, log_verifier=VERIFIER)


def test_wrong_log_key_is_refused_at_the_first_checkpoint(ledger: Ledger) -> None:
    other = note.Verifier.for_key(ORIGIN, OTHER_SIGNER.public_key)
    with pytest.raises(TamperError, match=r"^checkpoint of size 1 is not signed") as caught:
        verify_ledger(ledger.engine, log_verifier=other)
    assert caught.value.index == 0


def test_chunk_must_be_positive(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        verify_ledger(ledger.engine, log_verifier=VERIFIER, chunk=0)


def test_a_caller_that_cancels_its_wait_does_not_stop_the_ledger_writer(
        tmp_path: Path) -> None:
    """Regression: setting the result of a cancelled future raised in the writer thread,
    which then died and every later append waited forever."""
    import threading

    engine = engines.create_engine_for(engines.sqlite_url(tmp_path / "n.db"))
    migrate.upgrade(engine)
    committer = GroupCommitter(LedgerStore(engine, origin=ORIGIN, signer=SIGNER))
    committer.start()
    release = threading.Event()
    try:
        # The first unit holds the writer until its caller has cancelled the second.
        committer.submit(lambda txn: release.wait(5) and txn.append(entry(0)))
        cancelled = committer.submit(lambda txn: txn.append(entry(1)))
        assert cancelled.cancel()
        release.set()
        later = committer.run_sync(lambda txn: txn.append(entry(2)))
        assert later.result == 1  # the cancelled unit was not run; its caller retries
    finally:
        committer.stop()
    report = verify_ledger(engine, log_verifier=VERIFIER)
    assert report.size == 2


# --- the pure pieces of the check after the last leaf ---------------------------------------


@pytest.mark.parametrize(("subtrees", "first"), [
    ([], None),
    ([(0, 3000)], (0, 3000)),
    ([(0, 3000), (2, 750)], (0, 3000)),  # leaf 3000 ends before leaves 3000..3003
    ([(2, 750), (0, 3001)], (0, 3001)),
    ([(1, 1500), (0, 3001)], (0, 3001)),  # both end at leaf 3001: the lower level first
    ([(3, 375), (1, -1)], (1, -1)),  # a negative index comes before any leaf
    ([(4, -1), (0, -5)], (0, -5)),
])
def test_first_to_end(subtrees: list[tuple[int, int]], first: tuple[int, int] | None) -> None:
    assert first_to_end(subtrees) == first


@given(st.lists(st.tuples(st.integers(0, 63), st.integers(-10, 10_000)), max_size=20))
def test_first_to_end_covers_the_earliest_last_leaf(subtrees: list[tuple[int, int]]) -> None:
    first = first_to_end(subtrees)
    if not subtrees:
        assert first is None
        return
    assert first in subtrees

    def last_leaf(subtree: tuple[int, int]) -> int:
        return ((subtree[1] + 1) << subtree[0]) - 1

    assert first is not None
    assert all(last_leaf(first) <= last_leaf(other) for other in subtrees)
    assert all(first[0] <= other[0] for other in subtrees if last_leaf(other) == last_leaf(first))


@pytest.mark.parametrize(("size", "level", "idx", "index", "message"), [
    (3000, 2, 750, 3000, r"^leaf 3000 is missing: the ledger holds 3000 leaves but the stored "
                         r"hash of the subtree covering leaves 3000\.\.3003 exists$"),
    (7, 0, 7, 7, r"^leaf 7 is missing: the ledger holds 7 leaves but the stored hash of the "
                 r"leaf 7 exists$"),
    (3000, 1, -1, 0, r"^ledger holds a subtree hash at level 1 with negative index -1$"),
])
def test_subtree_beyond_error(size: int, level: int, idx: int, index: int, message: str) -> None:
    error = subtree_beyond_error(size, level, idx)
    assert isinstance(error, TamperError)
    assert error.index == index
    with pytest.raises(TamperError, match=message):
        raise error
