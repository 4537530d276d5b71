"""Units of work and group commit: one writer thread, shared transactions, one checkpoint.

Appends arriving together share one database transaction and one signed checkpoint
(docs/architecture.md#the-ledger-writer). Work submitted to the ``GroupCommitter`` runs
inside that transaction, so a message is logged and its workflow effect applied together
or not at all; its caller learns the outcome only once the transaction is durable.

The committer knows the ledger only as a ``BatchSink``: appends gathered in memory,
undone per unit of work, written and signed at the end of the batch, then kept or
abandoned with the transaction. ``exchange.ledger.store.LedgerStore`` is the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from exchange.errors import ExchangeError, LedgerError, OverloadedError
from exchange.ledger.entries import Entry
from exchange.ledger.store import SignedCheckpoint
from exchange.storage import faults
from exchange.storage.statements import DriverCursor, DriverStatement

log = logging.getLogger(__name__)

T = TypeVar("T")
Q = TypeVar("Q")

# Each unit of work in a group commit runs in its own savepoint (SQLite and PostgreSQL).
# Plain SAVEPOINT statements on the driver: SQLAlchemy's begin_nested() bookkeeping costs
# ~55 us a unit, the same statements through Core ~15 us, these ~1 us, on every message.
# Work that opens its own begin_nested() closes it before returning or raising (its
# context manager does), so the nesting stays balanced.
_SAVEPOINT = DriverStatement("SAVEPOINT bcx_work")
_RELEASE = DriverStatement("RELEASE SAVEPOINT bcx_work")
_ROLLBACK_TO = DriverStatement("ROLLBACK TO SAVEPOINT bcx_work")


class LedgerAppender(Protocol):
    """What a unit of work appends to: the ledger's open batch."""

    def append(self, entry: Entry) -> int:
        """Add ``entry`` to the open batch; its index."""
        ...

    def append_leaf(self, leaf: bytes) -> int:
        """Add a leaf exactly as it was signed before; its index."""
        ...


class BatchSink(LedgerAppender, Protocol):
    """What the group committer drives, on its writer thread, for each batch.

    A batch opens with its first append. Each unit of work is begun, and undone if it
    fails (its savepoint is rolled back). ``finish_batch`` writes the batch inside the
    transaction and signs its checkpoint; once the transaction is durable the committer
    calls ``batch_committed``, or ``abandon_batch`` if it was not. ``publish`` keeps a
    committed checkpoint outside the database (on its own thread, when
    ``has_checkpoint_file``) before the receipts under it are handed out.
    """

    @property
    def engine(self) -> Engine: ...

    @property
    def has_checkpoint_file(self) -> bool: ...

    def begin_unit(self) -> None: ...

    def abandon_unit(self) -> None: ...

    def finish_batch(self, cursor: DriverCursor, now: datetime) -> SignedCheckpoint | None:
        """Write what the batch appended and sign its checkpoint; None if it appended
        nothing."""
        ...

    def batch_committed(self, checkpoint: SignedCheckpoint | None) -> None: ...

    def abandon_batch(self) -> None: ...

    def publish(self, checkpoint: SignedCheckpoint) -> None: ...


@dataclass(slots=True)
class Transaction:
    """What a unit of work sees: the open connection (and its driver cursor, for the
    hot path's DriverStatements) and the ledger to append to."""

    conn: Connection
    cursor: DriverCursor
    now: datetime
    _ledger: LedgerAppender
    appended: list[int] = field(default_factory=list)

    def append(self, entry: Entry) -> int:
        index = self._ledger.append(entry)
        self.appended.append(index)
        return index

    def append_leaf(self, leaf: bytes) -> int:
        """Append a leaf exactly as it was signed before (``bcx ledger recover`` puts a
        lost tail back byte for byte, so the tree's roots come out as signed)."""
        index = self._ledger.append_leaf(leaf)
        self.appended.append(index)
        return index


@dataclass(frozen=True, slots=True)
class Committed(Generic[T]):
    """A unit of work's result once its transaction is durable."""

    result: T
    checkpoint: SignedCheckpoint | None
    appended: tuple[int, ...]


@dataclass(slots=True)
class _Work:
    fn: Callable[[Transaction], Any]
    future: Future[Committed[Any]]
    # Told, on the writer thread and before any later work runs, why this work did not
    # commit (its own error, its batch's, or CancelledError if it was skipped).
    on_failure: Callable[[BaseException], None] | None = None

    def failed(self, error: BaseException) -> None:
        """Resolve the future with ``error`` (if it is not already) and tell on_failure."""
        with contextlib.suppress(InvalidStateError):
            self.future.set_exception(error)
        if self.on_failure is not None:
            try:
                self.on_failure(error)
            except Exception:  # a callback must not stop the writer
                log.exception("on_failure callback of a ledger work item failed")


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one unit of work gave inside its batch: a result or the error it failed with."""

    work: _Work
    result: Any
    error: BaseException | None
    appended: tuple[int, ...]


@dataclass(slots=True)
class _Done:
    """A committed batch: its checkpoint and what each unit of work gave."""

    checkpoint: SignedCheckpoint | None
    outcomes: list[_Outcome]

    def resolve(self) -> None:
        for o in self.outcomes:
            if o.error is not None:
                continue  # resolved when it failed
            # Futures were marked running and cannot be cancelled now; the guard only
            # keeps the thread alive should that ever change.
            with contextlib.suppress(InvalidStateError):
                o.work.future.set_result(Committed(o.result, self.checkpoint, o.appended))


def unit_failure(error: Exception) -> Exception:
    """What the caller of a unit of work that raised ``error`` is told.

    bcx's own errors, the database's and bad values are told as they are. Anything else
    is a defect in a handler: the message is refused (the sender retries and escalates),
    the rest of the batch kept, and the log says where: the frames, not the error's
    text, which may quote personal data.
    """
    if isinstance(error, ExchangeError | SQLAlchemyError | ValueError | KeyError):
        return error
    log.error(
        "ledger work item failed: %s at\n%s", type(error).__name__,
        "".join(traceback.format_tb(error.__traceback__)))
    return LedgerError(f"handler failed: {type(error).__name__}")


def batch_failure(error: Exception, *, engine: Engine) -> BaseException:
    """What every unit of a batch whose transaction failed with ``error`` is told: the
    database's errors as ``faults.wrap_db_error`` words them, bcx's as they are, anything
    else as a LedgerError naming only its type."""
    if isinstance(error, DBAPIError | SQLAlchemyError):
        return faults.wrap_db_error(error, url=engine.url)
    if isinstance(error, ExchangeError):
        return error
    return LedgerError(f"ledger transaction failed: {type(error).__name__}")


def _drain(source: queue.SimpleQueue[Q | None], first: Q, limit: int | None = None
           ) -> tuple[list[Q], bool]:
    """``first`` and what else waits in ``source`` (up to ``limit`` items in all), and
    whether the stop signal (None) was among them."""
    taken = [first]
    while limit is None or len(taken) < limit:
        try:
            item = source.get_nowait()
        except queue.Empty:
            break
        if item is None:
            return taken, True
        taken.append(item)
    return taken, False


class GroupCommitter:
    """One writer thread that runs submitted work in shared transactions.

    Work waiting together is run in one transaction (each item in its own
    savepoint, so one failing item does not undo the others), followed by one
    checkpoint signature; then every item's future is resolved.
    """

    def __init__(self, sink: BatchSink, *, max_batch: int = 512, window_s: float = 0.002,
                 max_pending: int = 20_000, retry_after: float = 0.5,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.sink = sink
        self.max_batch = max_batch
        self.window_s = window_s
        self.max_pending = max_pending
        self.retry_after = retry_after
        self._clock = clock or (lambda: datetime.now(UTC))
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Committed batches waiting for the checkpoint file (see _publish).
        self._published: queue.SimpleQueue[_Done | None] = queue.SimpleQueue()
        self._publisher: threading.Thread | None = None
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        if self._thread is None:
            if self.sink.has_checkpoint_file:
                # No receipt under a checkpoint leaves before the file holds it.
                self._publisher = threading.Thread(target=self._publish,
                                                   name="bcx-checkpoint-file", daemon=True)
                self._publisher.start()
            self._thread = threading.Thread(target=self._run, name="bcx-ledger-writer",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the work already queued, then stop the writer thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._publisher is not None:
            self._published.put(None)
            self._publisher.join()
            self._publisher = None

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, fn: Callable[[Transaction], T], *,
               on_failure: Callable[[BaseException], None] | None = None
               ) -> Future[Committed[T]]:
        """Queue ``fn`` to run in the next transaction; OverloadedError if too much waits.

        ``on_failure`` is called on the writer thread, before any later work runs, if
        ``fn`` does not commit: so work submitted after it can tell (see Node's InOrder).
        """
        if self._thread is None:
            raise LedgerError("the ledger writer is not running")
        with self._lock:
            if self._pending >= self.max_pending:
                raise OverloadedError(
                    f"ledger writer has {self._pending} units of work waiting; retry later",
                    retry_after=self.retry_after,
                )
            self._pending += 1
        fut: Future[Committed[T]] = Future()
        self._queue.put(_Work(fn, fut, on_failure))
        return fut

    async def run(self, fn: Callable[[Transaction], T]) -> Committed[T]:
        return await asyncio.wrap_future(self.submit(fn))

    def run_sync(self, fn: Callable[[Transaction], T]) -> Committed[T]:
        return self.submit(fn).result()

    def _run(self) -> None:
        stopping = False
        busy = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            # Under load (the last batch had company), collect for the window by
            # sleeping, then take what came: one wake-up per batch; waking for each item
            # as it arrives cost a thread switch and a GIL hand-over per message. Without
            # the window, work arriving while a batch commits makes batches of a few
            # (200 concurrent receives: 47 batches, against at most 20 with it). A lone
            # unit of work is committed at once: at one message in flight the window only
            # added to every commit's latency (3 commits a delivered message: 19 ms with
            # the window, 5 ms without, on the CI-size machine).
            if self.window_s > 0 and busy:
                time.sleep(self.window_s)
            batch, stopping = _drain(self._queue, first, self.max_batch)
            busy = len(batch) > 1
            self._commit(batch)
            with self._lock:
                self._pending -= len(batch)

    def _commit(self, batch: list[_Work]) -> None:
        # Work whose caller gave up before it ran (a cancelled RPC) is not run. The rest
        # can no longer be cancelled, so resolving it below cannot raise InvalidStateError
        # and take the writer thread down with it.
        running = []
        for work in batch:
            if work.future.set_running_or_notify_cancel():
                running.append(work)
            else:
                work.failed(CancelledError())
        if not running:
            return
        try:
            done = self._write(running)
        except Exception as e:  # noqa: BLE001 - the whole transaction failed: nothing accepted
            self.sink.abandon_batch()
            err = batch_failure(e, engine=self.sink.engine)
            log.warning("ledger batch of %d rolled back: %s", len(running), err)
            for work in running:
                work.failed(err)
            return
        self.sink.batch_committed(done.checkpoint)
        self.batches += 1
        self.items += len(running)
        if self._publisher is None:
            done.resolve()
        else:
            self._published.put(done)

    def _write(self, batch: list[_Work]) -> _Done:
        """Run ``batch`` in one transaction and sign its checkpoint; raises if the
        transaction as a whole fails (then nothing of it is kept)."""
        with self.sink.engine.begin() as conn:
            now = self._clock()
            cursor = DriverCursor(conn)
            outcomes = [self._run_unit(work, Transaction(conn, cursor, now, self.sink))
                        for work in batch]
            checkpoint = self.sink.finish_batch(cursor, now)
        return _Done(checkpoint, outcomes)

    def _run_unit(self, work: _Work, txn: Transaction) -> _Outcome:
        """Run one unit of work in its own savepoint: one unit fails, not its batch."""
        self.sink.begin_unit()
        txn.cursor.execute(_SAVEPOINT)
        try:
            result = work.fn(txn)
            txn.cursor.execute(_RELEASE)
        except Exception as e:
            if isinstance(e, DBAPIError) and faults.is_unavailable(e):
                raise  # the whole transaction is lost: nothing to undo here
            txn.cursor.execute(_ROLLBACK_TO)
            txn.cursor.execute(_RELEASE)
            self.sink.abandon_unit()
            error = unit_failure(e)
            # Its failure is final whatever becomes of the batch: say so now, before the
            # work after it runs.
            work.failed(error)
            return _Outcome(work, None, error, ())
        return _Outcome(work, result, None, tuple(txn.appended))

    def _publish(self) -> None:
        """The checkpoint file's thread: write the newest committed checkpoint, then
        resolve the batches it covers, in order.

        Off the writer thread, so the next batch's transaction overlaps the file's fsyncs,
        and coalesced: batches committed while a write is under way share the next one.
        """
        stopping = False
        while not stopping:
            first = self._published.get()
            if first is None:
                return
            done, stopping = _drain(self._published, first)
            newest = next((d.checkpoint for d in reversed(done) if d.checkpoint), None)
            if newest is not None:
                self.sink.publish(newest)
            for d in done:
                d.resolve()
