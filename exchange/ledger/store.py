"""The ledger's append-only repository: leaves, full-subtree hashes, signed checkpoints
and cosignatures.

Appends happen in batches the group committer drives (``exchange.storage.unitofwork``,
of which ``LedgerStore`` is the ``BatchSink``): a batch's leaves and subtree hashes are
held in memory, written with one statement each and signed as one checkpoint at the end
of its transaction (docs/architecture.md#the-ledger-writer). Everything else is a read.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select

from exchange.errors import LedgerError
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
from exchange.storage import engines
from exchange.storage.statements import DriverCursor, insert_sql

log = logging.getLogger(__name__)

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
# checkpoint is signed (the unit of work's savepoints are plain SQL too, see
# exchange.storage.unitofwork).
_INSERT_LEAVES = insert_sql(ledger_leaves, (
    "idx", "leaf", "kind", "peer", "message_id", "message_digest", "logged_at"))
_INSERT_SUBTREES = insert_sql(ledger_subtrees, ("level", "idx", "hash"))
_INSERT_CHECKPOINT = insert_sql(ledger_checkpoints, ("size", "root", "note", "created_at"))
_SUBTREE_HASH = select(ledger_subtrees.c.hash).where(
    ledger_subtrees.c.level == bindparam("level"), ledger_subtrees.c.idx == bindparam("idx"))
_LEAF = select(ledger_leaves.c.leaf).where(ledger_leaves.c.idx == bindparam("idx"))


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
    ``GroupCommitter`` transactions (one writer, which drives this store as its
    ``BatchSink``); reads may come from any thread."""

    def __init__(self, engine: Engine, *, origin: str, signer: Signer,
                 checkpoint_file: CheckpointFile | None = None) -> None:
        self.engine = engine
        # The latest signed checkpoint, also kept outside the database (see CheckpointFile).
        self.checkpoint_file = checkpoint_file
        self.reader = engines.reader(engine)
        self.origin = origin
        self.signer = signer
        self.verifier = note.Verifier.for_key(origin, signer.public_key)
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cache_lock = threading.Lock()
        # What the open batch appended, written to the database only when it commits.
        self._pending: dict[tuple[int, int], bytes] = {}
        # Leaf rows (idx, leaf, …): written by finish_batch, then kept for receipts.
        self._pending_rows: list[tuple[Any, ...]] = []
        self._recent_leaves: OrderedDict[int, bytes] = OrderedDict()
        self._recent_bytes = 0
        # Where the unit of work begun last started: (size, pending hashes, pending rows).
        self._unit_start = (0, 0, 0)
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

    # --- appends: the batch sink the group committer drives (its thread only) ---------

    @property
    def has_checkpoint_file(self) -> bool:
        return self.checkpoint_file is not None

    def append(self, entry: Entry) -> int:
        """Add ``entry`` to the open batch; its rows are written by ``finish_batch``."""
        return self._append_row(entry.encode(), (
            int(entry.kind), entry.peer, entry.message_id or None,
            entry.message_digest or None, to_micros(entry.logged_at)))

    def append_leaf(self, leaf: bytes) -> int:
        """Add a leaf exactly as it was signed before, its index columns read from it."""
        return self._append_row(leaf, index_columns(leaf))

    def _append_row(self, leaf: bytes, columns: IndexColumns) -> int:
        index = self._size
        lh = merkle.leaf_hash(leaf)
        for lv, ix, h in merkle.new_full_subtrees(index, lh, self.full):
            self._pending[(lv, ix)] = h
        self._pending_rows.append((index, leaf, *columns))
        self._size = index + 1
        return index

    def begin_unit(self) -> None:
        """Remember where the next unit of work's appends start (see abandon_unit)."""
        self._unit_start = (self._size, len(self._pending), len(self._pending_rows))

    def abandon_unit(self) -> None:
        """Forget what the unit of work begun last appended: its savepoint rolled back."""
        size, npending, nrows = self._unit_start
        self._size = size
        del self._pending_rows[nrows:]
        if len(self._pending) > npending:
            # dicts keep insertion order: drop what this unit added.
            for key in list(self._pending)[npending:]:
                del self._pending[key]

    def finish_batch(self, cursor: DriverCursor, now: datetime) -> SignedCheckpoint | None:
        """Write the open batch and sign the checkpoint of the new size, in the batch's
        transaction; None (and nothing written) if the batch appended nothing."""
        if not self._pending_rows:
            return None
        self._flush(cursor)
        return self._sign_checkpoint(cursor, now)

    def _flush(self, cursor: DriverCursor) -> None:
        """Write the open batch's leaves and new subtree hashes (one executemany each)."""
        cursor.executemany(_INSERT_LEAVES, self._pending_rows)
        cursor.executemany(_INSERT_SUBTREES, [(lv, ix, h) for (lv, ix), h
                                              in self._pending.items()])

    def _sign_checkpoint(self, cursor: DriverCursor, now: datetime) -> SignedCheckpoint:
        size = self._size
        root = merkle.tree_root(size, self.full)
        text = note.sign_checkpoint(note.Checkpoint(self.origin, size, root), self.signer)
        cursor.execute(_INSERT_CHECKPOINT, (size, root, text, to_micros(now)))
        return SignedCheckpoint(size, root, text)

    def batch_committed(self, checkpoint: SignedCheckpoint | None) -> None:
        """The batch's transaction is durable: its hashes go to the cache, its leaves to
        the recent leaves served for receipts, its checkpoint becomes the latest."""
        self._remember([(lv, ix, h) for (lv, ix), h in self._pending.items()])
        self._pending.clear()
        self._hold_recent_leaves()
        self._pending_rows.clear()
        if checkpoint is not None:
            self._latest = checkpoint
            if self.checkpoint_file is None:
                self._published = checkpoint

    def _hold_recent_leaves(self) -> None:
        with self._cache_lock:
            for index, leaf, *_ in self._pending_rows:
                held = self._recent_leaves.pop(index, None)
                self._recent_bytes += len(leaf) - (len(held) if held is not None else 0)
                self._recent_leaves[index] = leaf
            while len(self._recent_leaves) > _RECENT_LEAVES or \
                    self._recent_bytes > _RECENT_LEAF_BYTES:
                self._recent_bytes -= len(self._recent_leaves.popitem(last=False)[1])

    def abandon_batch(self) -> None:
        """The batch's transaction failed: forget all it appended."""
        # Every append of the open batch added one pending row.
        self._size -= len(self._pending_rows)
        self._pending.clear()
        self._pending_rows.clear()

    def publish(self, checkpoint: SignedCheckpoint) -> None:
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


def iter_leaves(engine: Engine, *, chunk: int = 4096) -> Iterator[tuple[int, bytes]]:
    """Every leaf in index order, read in chunks (for verification and export)."""
    start = 0
    with engines.reader(engine).connect() as conn:
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
