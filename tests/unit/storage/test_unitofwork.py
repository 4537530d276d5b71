"""The group committer against a fake batch sink: what it asks of the sink, in which
order, and what each unit of work's caller is told. No ledger, no signatures: the sink
keeps subjects in lists; the database, an empty SQLite file, only holds the transaction and
the savepoints the committer opens."""

from __future__ import annotations

import logging
import queue
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from exchange.errors import (
    ExchangeError,
    LedgerError,
    OverloadedError,
    StorageUnavailableError,
)
from exchange.ledger.entries import Entry, EntryKind
from exchange.ledger.store import SignedCheckpoint
from exchange.storage.engines import create_engine_for, sqlite_url
from exchange.storage.statements import DriverCursor
from exchange.storage.unitofwork import (
    BatchSink,
    Committed,
    GroupCommitter,
    Transaction,
    _drain,
    batch_failure,
    unit_failure,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LOCKED = OperationalError("INSERT INTO ledger_leaves", None,
                          sqlite3.OperationalError("database is locked"))


@dataclass
class FakeSink:
    """A BatchSink over lists of subjects, recording each call the committer makes."""

    engine: Engine
    has_checkpoint_file: bool = False
    committed: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    published: list[SignedCheckpoint] = field(default_factory=list)
    # finish_batch raises these, one per batch that appended, while any are left.
    finish_errors: list[Exception] = field(default_factory=list)
    on_publish: Callable[[SignedCheckpoint], None] | None = None
    _unit_start: int = 0

    def append(self, entry: Entry) -> int:
        return self._add(entry.subject)

    def append_leaf(self, leaf: bytes) -> int:
        return self._add(leaf.decode())

    def _add(self, subject: str) -> int:
        self.pending.append(subject)
        return len(self.committed) + len(self.pending) - 1

    def begin_unit(self) -> None:
        self.calls.append("begin_unit")
        self._unit_start = len(self.pending)

    def abandon_unit(self) -> None:
        self.calls.append("abandon_unit")
        del self.pending[self._unit_start:]

    def finish_batch(self, cursor: DriverCursor, now: datetime) -> SignedCheckpoint | None:
        self.calls.append("finish_batch")
        if not self.pending:
            return None
        if self.finish_errors:
            raise self.finish_errors.pop(0)
        size = len(self.committed) + len(self.pending)
        return SignedCheckpoint(size, b"", f"checkpoint {size}")

    def batch_committed(self, checkpoint: SignedCheckpoint | None) -> None:
        self.calls.append("batch_committed")
        self.committed += self.pending
        self.pending.clear()

    def abandon_batch(self) -> None:
        self.calls.append("abandon_batch")
        self.pending.clear()

    def publish(self, checkpoint: SignedCheckpoint) -> None:
        if self.on_publish is not None:
            self.on_publish(checkpoint)
        self.published.append(checkpoint)


def entry(subject: str) -> Entry:
    return Entry(EntryKind.ACTION, "", T0, subject=subject)


def appending(*subjects: str, fail: Exception | None = None) -> Callable[[Transaction], Any]:
    def work(txn: Transaction) -> list[int]:
        indexes = [txn.append(entry(s)) for s in subjects]
        if fail is not None:
            raise fail
        return indexes
    return work


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[FakeSink]:
    engine = create_engine_for(sqlite_url(tmp_path / "uow.db"))
    yield FakeSink(engine)
    engine.dispose()


@pytest.fixture
def committer(sink: FakeSink) -> Iterator[GroupCommitter]:
    c = GroupCommitter(sink, clock=lambda: T0)
    c.start()
    yield c
    c.stop()


def held_in_one_batch(committer: GroupCommitter, works: list[Callable[[Transaction], Any]],
                      **submit: Any) -> list[Future[Committed[Any]]]:
    """Submit ``works`` while the writer is busy, so they are committed as one batch."""
    started, release = threading.Event(), threading.Event()

    def blocking(txn: Transaction) -> None:
        started.set()
        assert release.wait(timeout=30)

    first = committer.submit(blocking)
    assert started.wait(timeout=30)
    futures = [committer.submit(w, **submit) for w in works]
    release.set()
    first.result(timeout=30)
    return futures


def test_the_fake_is_a_batch_sink(sink: FakeSink) -> None:
    as_sink: BatchSink = sink  # checked by mypy: the protocol is all the committer needs
    assert as_sink.engine is sink.engine


def test_units_waiting_together_share_one_transaction_and_one_checkpoint(
        sink: FakeSink, committer: GroupCommitter) -> None:
    futures = held_in_one_batch(committer, [appending("a"), appending("b", "c"),
                                            appending("d")])
    done = [f.result(timeout=30) for f in futures]
    assert [d.result for d in done] == [[0], [1, 2], [3]]
    assert [d.appended for d in done] == [(0,), (1, 2), (3,)]
    assert {d.checkpoint for d in done} == {SignedCheckpoint(4, b"", "checkpoint 4")}
    # The blocking unit's batch, then the three in one.
    assert sink.calls == ["begin_unit", "finish_batch", "batch_committed",
                          "begin_unit", "begin_unit", "begin_unit", "finish_batch",
                          "batch_committed"]
    assert sink.committed == ["a", "b", "c", "d"]
    assert (committer.batches, committer.items) == (2, 4)


def test_a_batch_that_appended_nothing_has_no_checkpoint(committer: GroupCommitter) -> None:
    done = committer.run_sync(lambda txn: "read only")
    assert done == Committed("read only", None, ())


def test_a_failing_unit_is_undone_alone_and_the_others_of_its_batch_commit(
        sink: FakeSink, committer: GroupCommitter) -> None:
    told: list[tuple[str, BaseException]] = []
    refused = ExchangeError("b refused after appending")
    works = [appending("a"), appending("b1", "b2", fail=refused), appending("c")]
    futures = []
    started, release = threading.Event(), threading.Event()
    first = committer.submit(lambda txn: (started.set(), release.wait(30)))
    assert started.wait(timeout=30)
    for name, work in zip("abc", works, strict=True):
        futures.append(committer.submit(
            work, on_failure=lambda e, name=name: told.append((name, e))))
    release.set()
    first.result(timeout=30)
    a, b, c = futures
    assert a.result(timeout=30).result == [0]
    with pytest.raises(ExchangeError, match="b refused after appending") as caught:
        b.result(timeout=30)
    assert caught.value is refused
    # c takes the index b gave back; the batch's checkpoint covers a and c only.
    assert c.result(timeout=30).result == [1]
    assert c.result().checkpoint == SignedCheckpoint(2, b"", "checkpoint 2")
    assert told == [("b", refused)]
    assert sink.committed == ["a", "c"]
    assert sink.calls[-6:] == ["begin_unit", "begin_unit", "abandon_unit", "begin_unit",
                               "finish_batch", "batch_committed"]


def test_a_unit_is_told_of_its_failure_before_the_next_unit_runs(
        committer: GroupCommitter) -> None:
    events: list[str] = []

    def later(txn: Transaction) -> None:
        events.append("later ran")

    futures = held_in_one_batch(committer, [appending("x", fail=ValueError("bad value")),
                                            later],
                                on_failure=lambda e: events.append(f"told {e}"))
    for f in futures:
        f.exception(timeout=30)
    assert events == ["told bad value", "later ran"]


def test_a_defect_in_a_unit_is_told_by_its_type_and_logged_without_its_text(
        committer: GroupCommitter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="exchange.storage.unitofwork")
    future = committer.submit(appending("x", fail=RuntimeError("subscriber 13800138000")))
    with pytest.raises(LedgerError, match=r"^handler failed: RuntimeError$"):
        future.result(timeout=30)
    assert "ledger work item failed: RuntimeError at" in caplog.text
    assert "13800138000" not in caplog.text


def test_a_batch_whose_transaction_fails_is_refused_whole_and_the_next_batch_commits(
        sink: FakeSink, committer: GroupCommitter) -> None:
    """Every unit of a batch whose transaction cannot be written is refused with the same
    error (retry later, for a database that is unavailable now), each caller is told,
    nothing of it is kept, and the writer goes on with the next batch from the same
    index. The committer does not rerun the units: their senders retry."""
    sink.finish_errors.append(LOCKED)
    told: list[BaseException] = []
    futures = held_in_one_batch(committer, [appending("a"), appending("b")],
                                on_failure=told.append)
    errors = [f.exception(timeout=30) for f in futures]
    assert all(isinstance(e, StorageUnavailableError) for e in errors)
    assert errors[0] is errors[1]
    assert str(errors[0]) == (f"database {sink.engine.url} is unavailable: "
                              "OperationalError: database is locked")
    assert told == errors
    assert "abandon_batch" in sink.calls and sink.pending == []
    assert committer.run_sync(appending("after")).result == [0]
    assert sink.committed == ["after"]


def test_a_unit_that_finds_the_database_unavailable_fails_its_whole_batch(
        sink: FakeSink, committer: GroupCommitter) -> None:
    """Its savepoint cannot be rolled back on a lost transaction: the units before it in
    the batch are refused too, none is committed."""
    futures = held_in_one_batch(committer, [appending("a"), appending("b", fail=LOCKED),
                                            appending("c")])
    errors = [f.exception(timeout=30) for f in futures]
    assert all(isinstance(e, StorageUnavailableError) for e in errors)
    assert "abandon_unit" not in sink.calls
    assert sink.committed == []


def test_work_cancelled_while_queued_is_not_run_and_its_caller_is_told(
        sink: FakeSink, committer: GroupCommitter) -> None:
    started, release = threading.Event(), threading.Event()
    told: list[BaseException] = []
    first = committer.submit(lambda txn: (started.set(), release.wait(30)))
    assert started.wait(timeout=30)
    abandoned = committer.submit(appending("abandoned"), on_failure=told.append)
    assert abandoned.cancel()
    release.set()
    first.result(timeout=30)
    assert committer.run_sync(appending("after")).result == [0]
    assert [type(e) for e in told] == [CancelledError]
    assert sink.committed == ["after"]


def test_max_batch_bounds_the_units_of_one_transaction(sink: FakeSink) -> None:
    committer = GroupCommitter(sink, max_batch=2, window_s=0)
    committer.start()
    try:
        futures = held_in_one_batch(committer, [appending(s) for s in "abcde"])
        checkpoints = [f.result(timeout=30).checkpoint for f in futures]
    finally:
        committer.stop()
    assert [c.size for c in checkpoints if c is not None] == [2, 2, 4, 4, 5]
    assert sink.calls.count("finish_batch") == 1 + 3


def test_with_a_checkpoint_file_the_newest_checkpoint_is_published_before_any_result(
        sink: FakeSink) -> None:
    sink.has_checkpoint_file = True
    futures: list[Future[Committed[Any]]] = []
    seen_done: list[bool] = []
    sink.on_publish = lambda checkpoint: seen_done.extend(f.done() for f in futures)
    committer = GroupCommitter(sink)
    committer.start()
    started, release = threading.Event(), threading.Event()
    try:
        first = committer.submit(lambda txn: (started.set(), release.wait(30)))
        assert started.wait(timeout=30)
        # Held while the writer is busy: one batch, and in the list before it commits.
        futures += [committer.submit(appending("a")), committer.submit(appending("b"))]
        release.set()
        first.result(timeout=30)
        done = [f.result(timeout=30) for f in futures]
    finally:
        release.set()
        committer.stop()
    assert sink.published == [done[0].checkpoint] == [SignedCheckpoint(2, b"", "checkpoint 2")]
    assert seen_done == [False, False]


def test_a_full_queue_is_overloaded_and_a_stopped_writer_refuses_work(sink: FakeSink) -> None:
    committer = GroupCommitter(sink, max_pending=1, retry_after=0.25)
    with pytest.raises(LedgerError, match="the ledger writer is not running"):
        committer.submit(appending("x"))
    committer.start()
    try:
        started, release = threading.Event(), threading.Event()
        first = committer.submit(lambda txn: (started.set(), release.wait(30)))
        assert started.wait(timeout=30)
        with pytest.raises(OverloadedError, match="1 units of work waiting; retry later") as e:
            committer.submit(appending("x"))
        assert e.value.retry_after == 0.25
        release.set()
        first.result(timeout=30)
    finally:
        committer.stop()


# --- what a caller is told: pure -------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "told"),
    [
        (ExchangeError("refused"), "same"),
        (LedgerError("no ledger entry at index 3"), "same"),
        (IntegrityError("INSERT", None, sqlite3.IntegrityError("UNIQUE")), "same"),
        (ValueError("bad number"), "same"),
        (KeyError("missing"), "same"),
        (RuntimeError("subscriber 13800138000"), "handler failed: RuntimeError"),
        (AttributeError("'NoneType' object has no attribute 'x'"),
         "handler failed: AttributeError"),
        (TypeError("unhashable"), "handler failed: TypeError"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_unit_failure(error: Exception, told: str) -> None:
    got = unit_failure(error)
    if told == "same":
        assert got is error
    else:
        assert type(got) is LedgerError
        assert str(got) == told


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (LOCKED, StorageUnavailableError,
         "database sqlite:///n.db is unavailable: OperationalError: database is locked"),
        (IntegrityError("INSERT INTO ledger_leaves", ("13800138000",),
                        sqlite3.IntegrityError("UNIQUE constraint failed: ledger_leaves.idx")),
         ExchangeError,
         "database sqlite:///n.db failed: IntegrityError: UNIQUE constraint failed: "
         "ledger_leaves.idx"),
        (SQLAlchemyError("connection is closed"), ExchangeError,
         "database sqlite:///n.db failed: SQLAlchemyError: connection is closed"),
        (LedgerError("subtree level 0 index 4 is missing from the ledger"), LedgerError,
         "subtree level 0 index 4 is missing from the ledger"),
        (RuntimeError("subscriber 13800138000"), LedgerError,
         "ledger transaction failed: RuntimeError"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException | type) else "",
)
def test_batch_failure(error: Exception, kind: type[BaseException], message: str) -> None:
    engine = create_engine_for("sqlite:///n.db")  # never connected: only its URL is read
    got = batch_failure(error, engine=engine)
    assert type(got) is kind
    assert str(got) == message
    assert "13800138000" not in str(got)


@pytest.mark.parametrize(
    ("waiting", "limit", "taken", "stopping", "left"),
    [
        ([], None, [0], False, []),
        ([1, 2, 3], None, [0, 1, 2, 3], False, []),
        ([1, 2, 3], 2, [0, 1], False, [2, 3]),
        ([1, 2, 3], 1, [0], False, [1, 2, 3]),
        ([1, None, 2], None, [0, 1], True, [2]),
        ([None], 5, [0], True, []),
        ([1, 2, None], 3, [0, 1, 2], False, [None]),
    ],
)
def test_drain(waiting: list[int | None], limit: int | None, taken: list[int],
               stopping: bool, left: list[int | None]) -> None:
    """The writer takes what waits behind the first unit up to max_batch; the checkpoint
    file's thread takes all; either stops at the stop signal and leaves what follows."""
    source: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    for item in waiting:
        source.put(item)
    assert _drain(source, 0, limit) == (taken, stopping)
    assert [source.get_nowait() for _ in range(source.qsize())] == left


# --- any mix of units: what commits is what succeeded, in order ---------------------------

_UNITS = st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=12)


@settings(max_examples=40, deadline=None)
@given(units=_UNITS, together=st.booleans())
def test_what_commits_is_the_succeeding_units_appends_in_order(
        units: list[tuple[int, bool]], together: bool) -> None:
    workspace = tempfile.TemporaryDirectory()
    engine = create_engine_for(sqlite_url(Path(workspace.name) / "uow.db"))
    sink = FakeSink(engine)
    committer = GroupCommitter(sink, max_batch=5, window_s=0)
    committer.start()
    try:
        works = [appending(*(f"{u}.{k}" for k in range(n)),
                           fail=ExchangeError(f"unit {u} refused") if fails else None)
                 for u, (n, fails) in enumerate(units)]
        futures = (held_in_one_batch(committer, works) if together
                   else [committer.submit(w) for w in works])
        outcomes = [(f.exception(timeout=30), f) for f in futures]
    finally:
        committer.stop()
        engine.dispose()
        workspace.cleanup()
    expected = [f"{u}.{k}" for u, (n, fails) in enumerate(units) if not fails
                for k in range(n)]
    assert sink.committed == expected
    assert sink.pending == []
    position = 0
    for (n, fails), (error, future) in zip(units, outcomes, strict=True):
        if fails:
            assert isinstance(error, ExchangeError)
            continue
        done = future.result()
        assert done.appended == tuple(range(position, position + n))
        position += n
        if n:  # its batch's checkpoint covers what it appended
            assert done.checkpoint is not None and done.checkpoint.size >= position
