"""The ledger's storage: append-only leaves, full-subtree hashes, signed checkpoints,
cosignatures, and group commit.

Appends arriving together share one database transaction and one signed
checkpoint (docs/architecture.md#the-ledger-writer). Work submitted to the
``GroupCommitter`` runs inside that transaction, so a message is logged and its workflow
effect applied together or not at all; its caller learns the outcome only once the
transaction is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from exchange import storage
from exchange.errors import (
    ExchangeError,
    LedgerError,
    OverloadedError,
)
from exchange.keys import Signer
from exchange.ledger import merkle, note
from exchange.ledger.entries import (
    Entry,
    EntryKind,
    IndexColumns,
    Receipt,
    index_columns,
    to_micros,
)
from exchange.schema import (
    ledger_checkpoints,
    ledger_cosignatures,
    ledger_leaves,
    ledger_subtrees,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_CACHE_ENTRIES = 200_000
# Leaves of the latest batches, kept so a receipt built right after its commit needs no
# database read on the event loop. Bounded by count (a batch is at most max_batch items)
# and by bytes: bulk messages make leaves of 100 kB, and 1,024 of them held a bureau
# 60 MB over its size at rest.
_RECENT_LEAVES = 1024
_RECENT_LEAF_BYTES = 8 * 1024 * 1024


# Hot-path statements. Reads are built once as Core statements (building a statement and
# its cache key on every call costs more than running it: ~90 us built per call, ~30 us
# prebuilt). The writer's own statements go to the driver directly (DriverStatement):
# leaves and subtree hashes are written with one executemany per batch, just before its
# checkpoint is signed, and each unit of work's savepoint costs ~1 us instead of ~15 us.
_INSERT_LEAVES = storage.insert_sql(ledger_leaves, (
    "idx", "leaf", "kind", "peer", "message_id", "message_digest", "logged_at"))
_INSERT_SUBTREES = storage.insert_sql(ledger_subtrees, ("level", "idx", "hash"))
_INSERT_CHECKPOINT = storage.insert_sql(ledger_checkpoints, ("size", "root", "note",
                                                             "created_at"))
_SUBTREE_HASH = select(ledger_subtrees.c.hash).where(
    ledger_subtrees.c.level == bindparam("level"), ledger_subtrees.c.idx == bindparam("idx"))
_LEAF = select(ledger_leaves.c.leaf).where(ledger_leaves.c.idx == bindparam("idx"))
# Each unit of work in a group commit runs in its own savepoint (SQLite and PostgreSQL).
_SAVEPOINT = storage.DriverStatement("SAVEPOINT bcx_work")
_RELEASE = storage.DriverStatement("RELEASE SAVEPOINT bcx_work")
_ROLLBACK_TO = storage.DriverStatement("ROLLBACK TO SAVEPOINT bcx_work")


class CheckpointFile:
    """The ledger's latest signed checkpoint, kept in a file beside the database.

    A database restored from an older copy, or one that lost its last transactions (a
    torn WAL frame after a crash), still verifies: every checkpoint it holds matches
    its leaves. The file does not go back with it, so at start the node compares its
    ledger with the file (docs/architecture.md#witnessing, no silent rollback). Written
    after each commit and before the commit's receipts leave: temp file, fsync, rename, fsync of the
    directory, so a crash leaves the old file or the new one, never half of one. Mode
    0600, never through a symlink.

    What it costs is two fsyncs and a rename per batch, on the path of every receipt.
    Measured with GroupCommitter on the shared 2-core machine while it was loaded (one
    fsync took ~5 ms there, ~0.13 ms when idle), medians of 5 runs: one unit of work in
    flight, 175 -> 50 commits/s; 64 in flight, 2,528 -> 1,632 appends/s.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, text: str) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self.path)
        dirfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    def read(self) -> str | None:
        """The note text, or None if there is no file (a node that never signed)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read().decode()


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    size: int
    root: bytes
    note: str  # signed note text (the log's own signature only)


class LedgerStore:
    """Reads and appends for one node's ledger. Appends happen only inside
    ``GroupCommitter`` transactions (one writer); reads may come from any thread."""

    def __init__(self, engine: Engine, *, origin: str, signer: Signer,
                 checkpoint_file: CheckpointFile | None = None) -> None:
        self.engine = engine
        # The latest signed checkpoint, also kept outside the database (see CheckpointFile).
        self.checkpoint_file = checkpoint_file
        self.reader = storage.reader(engine)
        self.origin = origin
        self.signer = signer
        self.verifier = note.Verifier.for_key(origin, signer.public_key)
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cache_lock = threading.Lock()
        # What the open batch appended, written to the database only when it commits.
        self._pending: dict[tuple[int, int], bytes] = {}
        # Leaf rows (idx, leaf, …): written by _flush, then kept for receipts.
        self._pending_rows: list[tuple[Any, ...]] = []
        self._recent_leaves: OrderedDict[int, bytes] = OrderedDict()
        self._recent_bytes = 0
        with self.reader.connect() as conn:
            self._size = int(conn.scalar(select(func.count()).select_from(ledger_leaves)) or 0)
            latest = conn.execute(
                select(ledger_checkpoints.c.size, ledger_checkpoints.c.root,
                       ledger_checkpoints.c.note)
                .order_by(ledger_checkpoints.c.size.desc()).limit(1)
            ).first()
        self._latest = SignedCheckpoint(latest.size, latest.root, latest.note) if latest else None
        # The latest checkpoint shown to peers (GetCheckpoint): with a checkpoint file, one
        # the file already holds, so no witness learns of a size the file could lose.
        self._published = self._latest

    # --- sizes and hashes ---------------------------------------------------

    @property
    def size(self) -> int:
        """Number of leaves committed (or, inside a transaction, appended so far)."""
        return self._size

    @property
    def latest(self) -> SignedCheckpoint | None:
        return self._latest

    def full(self, level: int, idx: int) -> bytes:
        """Hash of a full subtree, from the pending batch, the cache or the database."""
        key = (level, idx)
        h = self._pending.get(key)
        if h is not None:
            return h
        with self._cache_lock:
            h = self._cache.get(key)
        if h is not None:
            return h
        with self.reader.connect() as conn:
            h = conn.scalar(_SUBTREE_HASH, {"level": level, "idx": idx})
        if h is None:
            raise LedgerError(f"subtree level {level} index {idx} is missing from the ledger")
        self._remember([(level, idx, h)])
        return bytes(h)

    def _remember(self, items: Sequence[tuple[int, int, bytes]]) -> None:
        with self._cache_lock:
            for level, idx, h in items:
                self._cache[(level, idx)] = h
                self._cache.move_to_end((level, idx))
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)

    def root(self, size: int) -> bytes:
        return merkle.tree_root(size, self.full)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_range(index, size)
        return merkle.inclusion_proof(index, size, self.full)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        if not 0 < old_size <= new_size <= self._committed_size():
            raise LedgerError(
                f"no consistency proof from size {old_size} to {new_size}: "
                f"the ledger holds {self._committed_size()} entries"
            )
        return merkle.consistency_proof(old_size, new_size, self.full)

    def _committed_size(self) -> int:
        return self._latest.size if self._latest else 0

    def _check_range(self, index: int, size: int) -> None:
        if not 0 <= index < size <= self._committed_size():
            raise LedgerError(
                f"no inclusion proof for index {index} in size {size}: "
                f"the ledger's latest checkpoint has size {self._committed_size()}"
            )

    # --- appends (writer thread only) --------------------------------------------

    def _append(self, entry: Entry) -> int:
        """Add ``entry`` to the open batch; its rows are written by ``_flush``."""
        return self._append_row(entry.encode(), (
            int(entry.kind), entry.peer, entry.message_id or None,
            entry.message_digest or None, to_micros(entry.logged_at)))

    def _append_row(self, leaf: bytes, columns: IndexColumns) -> int:
        index = self._size
        lh = merkle.leaf_hash(leaf)
        for lv, ix, h in merkle.new_full_subtrees(index, lh, self.full):
            self._pending[(lv, ix)] = h
        self._pending_rows.append((index, leaf, *columns))
        self._size = index + 1
        return index

    def _flush(self, cursor: storage.DriverCursor) -> None:
        """Write the open batch's leaves and new subtree hashes (one executemany each)."""
        cursor.executemany(_INSERT_LEAVES, self._pending_rows)
        cursor.executemany(_INSERT_SUBTREES, [(lv, ix, h) for (lv, ix), h
                                              in self._pending.items()])

    def _sign_checkpoint(self, cursor: storage.DriverCursor, now: datetime) -> SignedCheckpoint:
        size = self._size
        root = merkle.tree_root(size, self.full)
        text = note.sign_checkpoint(note.Checkpoint(self.origin, size, root), self.signer)
        cursor.execute(_INSERT_CHECKPOINT, (size, root, text, to_micros(now)))
        return SignedCheckpoint(size, root, text)

    def _mark(self) -> tuple[int, int, int]:
        return self._size, len(self._pending), len(self._pending_rows)

    def _rewind(self, mark: tuple[int, int, int]) -> None:
        size, npending, nrows = mark
        self._size = size
        del self._pending_rows[nrows:]
        if len(self._pending) > npending:
            # dicts keep insertion order: drop what this item added.
            for key in list(self._pending)[npending:]:
                del self._pending[key]

    def _commit_pending(self, checkpoint: SignedCheckpoint | None) -> None:
        self._remember([(lv, ix, h) for (lv, ix), h in self._pending.items()])
        self._pending.clear()
        with self._cache_lock:
            for index, leaf, *_ in self._pending_rows:
                held = self._recent_leaves.pop(index, None)
                self._recent_bytes += len(leaf) - (len(held) if held is not None else 0)
                self._recent_leaves[index] = leaf
            while len(self._recent_leaves) > _RECENT_LEAVES or \
                    self._recent_bytes > _RECENT_LEAF_BYTES:
                self._recent_bytes -= len(self._recent_leaves.popitem(last=False)[1])
        self._pending_rows.clear()
        if checkpoint is not None:
            self._latest = checkpoint
            if self.checkpoint_file is None:
                self._published = checkpoint

    def _keep_outside(self, checkpoint: SignedCheckpoint) -> None:
        """Write the checkpoint to the checkpoint file, before any receipt under it leaves.

        A failure is logged, not raised: the transaction is durable, and a file left
        behind the ledger only means a weaker check at the next start (a file ahead of
        the ledger is what the check looks for).
        """
        if self.checkpoint_file is None:
            return
        try:
            self.checkpoint_file.write(checkpoint.note)
        except OSError as e:
            # One line: the traceback would add nothing to the OS error.
            log.error("cannot write the checkpoint file %s: %s",  # noqa: TRY400
                      self.checkpoint_file.path, e.strerror)
        self._published = checkpoint

    def _abort_pending(self, size_before: int) -> None:
        self._pending.clear()
        self._pending_rows.clear()
        self._size = size_before

    # --- reads --------------------------------------------------------------------

    def leaf(self, index: int) -> bytes:
        with self._cache_lock:
            recent = self._recent_leaves.get(index)
        if recent is not None:
            return recent
        with self.reader.connect() as conn:
            leaf = conn.scalar(_LEAF, {"idx": index})
        if leaf is None:
            raise LedgerError(f"no ledger entry at index {index}")
        return bytes(leaf)

    def leaves(self, start: int, limit: int) -> list[tuple[int, bytes]]:
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(ledger_leaves.c.idx, ledger_leaves.c.leaf)
                .where(ledger_leaves.c.idx >= start, ledger_leaves.c.idx < start + limit)
                .order_by(ledger_leaves.c.idx)
            ).all()
        return [(r.idx, bytes(r.leaf)) for r in rows]

    def entries_page(self, start: int, *, limit: int, max_bytes: int,
                     party: str | None, message_ids: Collection[bytes] = ()
                     ) -> tuple[list[tuple[int, bytes]], int]:
        """Committed leaves from ``start`` on that ``party`` may read, and where to go on.

        ``party`` None: every leaf (an audit read). Otherwise the leaves whose peer is
        ``party``, and those naming one of ``message_ids``, chosen by the database
        through the (peer, idx) index: leaves of others are never read. At most
        ``limit`` leaves, and no more than ``max_bytes`` of them (the first always,
        however large). The index returned is where the next page starts: the ledger's
        committed size once nothing is left.
        """
        size = self._committed_size()
        c = ledger_leaves.c
        q = select(c.idx, c.leaf).where(c.idx >= start, c.idx < size)
        if party is not None:
            mine = c.peer == party
            q = q.where(or_(mine, c.message_id.in_(list(message_ids))) if message_ids
                        else mine)
        q = q.order_by(c.idx).limit(limit)
        page: list[tuple[int, bytes]] = []
        used = 0
        with self.reader.connect() as conn:
            for row in conn.execution_options(yield_per=32).execute(q):
                leaf = bytes(row.leaf)
                if page and used + len(leaf) > max_bytes:
                    return page, int(row.idx)
                page.append((int(row.idx), leaf))
                used += len(leaf)
        if len(page) == limit:
            return page, page[-1][0] + 1
        return page, max(size, start)

    def rows(self, start: int = 0, limit: int | None = None) -> list[Any]:
        q = select(ledger_leaves).where(ledger_leaves.c.idx >= start).order_by(ledger_leaves.c.idx)
        if limit is not None:
            q = q.limit(limit)
        with self.reader.connect() as conn:
            return list(conn.execute(q).all())

    def find(self, *, message_digest: bytes | None = None, message_id: bytes | None = None,
             kind: EntryKind | None = None) -> list[int]:
        q = select(ledger_leaves.c.idx).order_by(ledger_leaves.c.idx)
        if message_digest is not None:
            q = q.where(ledger_leaves.c.message_digest == message_digest)
        if message_id is not None:
            q = q.where(ledger_leaves.c.message_id == message_id)
        if kind is not None:
            q = q.where(ledger_leaves.c.kind == int(kind))
        with self.reader.connect() as conn:
            return [int(i) for i in conn.scalars(q)]

    def checkpoint_at(self, size: int) -> SignedCheckpoint:
        with self.reader.connect() as conn:
            row = conn.execute(
                select(ledger_checkpoints).where(ledger_checkpoints.c.size == size)
            ).first()
        if row is None:
            raise LedgerError(f"this ledger signed no checkpoint of size {size}")
        return SignedCheckpoint(row.size, row.root, row.note)

    def checkpoint_covering(self, index: int) -> SignedCheckpoint:
        with self.reader.connect() as conn:
            row = conn.execute(
                select(ledger_checkpoints)
                .where(ledger_checkpoints.c.size > index)
                .order_by(ledger_checkpoints.c.size)
                .limit(1)
            ).first()
        if row is None:
            raise LedgerError(f"no checkpoint covers index {index} yet")
        return SignedCheckpoint(row.size, row.root, row.note)

    def receipt(self, index: int, checkpoint: SignedCheckpoint) -> Receipt:
        return Receipt(
            leaf=self.leaf(index),
            leaf_index=index,
            checkpoint=checkpoint.note,
            inclusion_proof=tuple(self.inclusion_proof(index, checkpoint.size)),
        )

    def cosigned(self, checkpoint: SignedCheckpoint) -> str:
        """The checkpoint note with every cosignature witnesses returned for it."""
        with self.reader.connect() as conn:
            lines = conn.scalars(
                select(ledger_cosignatures.c.line)
                .where(ledger_cosignatures.c.size == checkpoint.size)
                .order_by(ledger_cosignatures.c.witness)
            ).all()
        # Each stored line is one verified "— name sig" line; they follow the log's own.
        return checkpoint.note + "".join(lines)

    def latest_cosigned_checkpoint(self) -> str:
        if self._published is None:
            raise LedgerError("the ledger is empty: no checkpoint yet")
        return self.cosigned(self._published)

    def cosignature_count(self) -> int:
        with self.reader.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(ledger_cosignatures)) or 0)

    def witnesses_of(self, size: int) -> list[str]:
        with self.reader.connect() as conn:
            return list(conn.scalars(
                select(ledger_cosignatures.c.witness).where(ledger_cosignatures.c.size == size)
            ))

    def add_cosignature(self, conn: Connection, *, size: int, witness: str, line: str,
                        timestamp: int) -> bool:
        """Store a verified cosignature; False if this witness already cosigned this size."""
        exists = conn.scalar(
            select(ledger_cosignatures.c.id).where(
                ledger_cosignatures.c.size == size, ledger_cosignatures.c.witness == witness
            )
        )
        if exists is not None:
            return False
        conn.execute(
            insert(ledger_cosignatures),
            {"size": size, "witness": witness, "line": line, "timestamp": timestamp},
        )
        return True


@dataclass(slots=True)
class Transaction:
    """What a unit of work sees: the open connection (and its driver cursor, for the
    hot path's DriverStatements) and the ledger to append to."""

    conn: Connection
    cursor: storage.DriverCursor
    now: datetime
    _store: LedgerStore
    appended: list[int] = field(default_factory=list)

    def append(self, entry: Entry) -> int:
        index = self._store._append(entry)
        self.appended.append(index)
        return index

    def append_leaf(self, leaf: bytes) -> int:
        """Append a leaf exactly as it was signed before (``bcx ledger recover`` puts a
        lost tail back byte for byte, so the tree's roots come out as signed)."""
        index = self._store._append_row(leaf, index_columns(leaf))
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
        if self.on_failure is not None:
            try:
                self.on_failure(error)
            except Exception:  # a callback must not stop the writer
                log.exception("on_failure callback of a ledger work item failed")


@dataclass(slots=True)
class _Done:
    """A committed batch: its checkpoint and what each unit of work gave."""

    checkpoint: SignedCheckpoint | None
    outcomes: list[tuple[_Work, Any, BaseException | None, tuple[int, ...]]]

    def resolve(self) -> None:
        for work, result, error, appended in self.outcomes:
            if error is not None:
                continue  # resolved when it failed
            # Futures were marked running and cannot be cancelled now; the guard only
            # keeps the thread alive should that ever change.
            with contextlib.suppress(InvalidStateError):
                work.future.set_result(Committed(result, self.checkpoint, appended))


class GroupCommitter:
    """One writer thread that runs submitted work in shared transactions.

    Work waiting together is run in one transaction (each item in its own
    savepoint, so one failing item does not undo the others), followed by one
    checkpoint signature; then every item's future is resolved.
    """

    def __init__(self, store: LedgerStore, *, max_batch: int = 512, window_s: float = 0.002,
                 max_pending: int = 20_000, retry_after: float = 0.5,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
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
            if self.store.checkpoint_file is not None:
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
            batch = [first]
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
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
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
        batch = running
        if not batch:
            return
        store = self.store
        size_before = store.size
        outcomes: list[tuple[_Work, Any, BaseException | None, tuple[int, ...]]] = []
        checkpoint = None
        try:
            with store.engine.begin() as conn:
                now = self._clock()
                cursor = storage.DriverCursor(conn)
                for work in batch:
                    mark = store._mark()
                    txn = Transaction(conn, cursor, now, store)
                    # Plain SAVEPOINT statements: SQLAlchemy's begin_nested() bookkeeping
                    # costs ~55 us an item against ~1 us for these, on every message.
                    # Work that opens its own begin_nested() closes it before returning
                    # or raising (its context manager does), so the nesting stays balanced.
                    cursor.execute(_SAVEPOINT)
                    try:
                        result = work.fn(txn)
                        cursor.execute(_RELEASE)
                    except Exception as e:  # one unit fails, not its batch
                        if isinstance(e, DBAPIError) and storage.is_unavailable(e):
                            raise  # the whole transaction is lost: nothing to undo here
                        cursor.execute(_ROLLBACK_TO)
                        cursor.execute(_RELEASE)
                        store._rewind(mark)
                        if not isinstance(e, ExchangeError | SQLAlchemyError | ValueError
                                          | KeyError):
                            # A defect in a handler: refuse this message (the sender retries
                            # and escalates), keep the rest of the batch, and say where: the
                            # frames, not the error's text, which may quote personal data.
                            log.error(  # noqa: TRY400 - frames only, not the error's text
                                "ledger work item failed: %s at\n%s", type(e).__name__,
                                "".join(traceback.format_tb(e.__traceback__)))
                            e = LedgerError(f"handler failed: {type(e).__name__}")
                        # Its failure is final whatever becomes of the batch: say so now,
                        # before the work after it runs.
                        with contextlib.suppress(InvalidStateError):
                            work.future.set_exception(e)
                        work.failed(e)
                        outcomes.append((work, None, e, ()))
                        continue
                    outcomes.append((work, result, None, tuple(txn.appended)))
                if store.size > size_before:
                    store._flush(cursor)
                    checkpoint = store._sign_checkpoint(cursor, now)
        except Exception as e:  # noqa: BLE001 - the whole transaction failed: nothing accepted
            store._abort_pending(size_before)
            err: BaseException = e
            if isinstance(e, DBAPIError | SQLAlchemyError):
                err = storage.wrap_db_error(e, url=store.engine.url)
            elif not isinstance(e, ExchangeError):
                err = LedgerError(f"ledger transaction failed: {type(e).__name__}")
            log.warning("ledger batch of %d rolled back: %s", len(batch), err)
            for work in batch:
                with contextlib.suppress(InvalidStateError):
                    work.future.set_exception(err)
                work.failed(err)
            return
        store._commit_pending(checkpoint)
        self.batches += 1
        self.items += len(batch)
        done = _Done(checkpoint, outcomes)
        if self._publisher is None:
            done.resolve()
        else:
            self._published.put(done)

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
            done = [first]
            while True:
                try:
                    item = self._published.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                done.append(item)
            newest = next((d.checkpoint for d in reversed(done) if d.checkpoint), None)
            if newest is not None:
                self.store._keep_outside(newest)
            for d in done:
                d.resolve()


def iter_leaves(engine: Engine, *, chunk: int = 4096) -> Iterator[tuple[int, bytes]]:
    """Every leaf in index order, read in chunks (for verification and export)."""
    start = 0
    with storage.reader(engine).connect() as conn:
        while True:
            rows = conn.execute(
                select(ledger_leaves.c.idx, ledger_leaves.c.leaf)
                .where(ledger_leaves.c.idx >= start)
                .order_by(ledger_leaves.c.idx)
                .limit(chunk)
            ).all()
            if not rows:
                return
            for r in rows:
                yield int(r.idx), bytes(r.leaf)
            start = int(rows[-1].idx) + 1
