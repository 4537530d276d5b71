"""``bcx ledger verify``: recompute a node's Merkle tree from its stored leaves and check
every stored subtree hash and every signed checkpoint against it (docs/formats.md#the-ledger).

The database refuses UPDATE and DELETE on the ledger tables, but whoever owns the
database file can drop the triggers. This audit is what finds such a change afterwards:
the leaves are the ground truth, the stored full-subtree hashes were computed from them
when they were appended, and each checkpoint's root is signed by the log's key.

Memory stays bounded whatever the ledger's size: leaves are read in chunks and the tree
is folded into its right edge (a compact range: at most one full subtree per level), so
only one chunk of leaves and the stored subtree rows that chunk completes are ever held.
Everything is read in one snapshot, so a node may keep appending while it runs.

Each chunk is checked twice over only if it needs to be: first as whole lists (rows
against the leaves' expected columns, each level of stored hashes against the recomputed
one), which is what keeps a million leaves to seconds; if anything differs, the chunk is
gone through again leaf by leaf, in the documented order, to name the first inconsistency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select

from exchange.errors import LedgerError, NoteError, TamperError
from exchange.ledger import merkle, note
from exchange.ledger.entries import index_columns
from exchange.schema import ledger_checkpoints, ledger_leaves, ledger_subtrees
from exchange.storage import engines
from exchange.storage.statements import DriverCursor, DriverStatement

__all__ = ["AuditReport", "verify_ledger"]

log = logging.getLogger(__name__)

# Tree sizes are below 2**64, so no full subtree is above this level.
_MAX_LEVEL = 63

ProgressCallback = Callable[[int, int], None]
"""``(leaves checked so far, leaves in the ledger)``, called once per chunk."""


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What :func:`verify_ledger` checked; every count is of items found intact."""

    entries: int
    """Leaves recomputed and decoded: the tree size."""
    checkpoints: int
    """Signed checkpoints whose signature, size and root were verified."""
    subtrees: int
    """Stored full-subtree hashes compared with the recomputed ones."""
    size: int
    """Size of the latest signed checkpoint (0 if the ledger signed none)."""
    root: bytes
    """Root of the latest signed checkpoint, recomputed (the empty root if none)."""


def verify_ledger(
    engine: Engine,
    *,
    log_verifier: note.Verifier,
    progress: ProgressCallback | None = None,
    chunk: int = 4096,
) -> AuditReport:
    """Recompute the tree from the leaves and check it against everything stored.

    Checks that leaf indexes run contiguously from 0, that every leaf decodes as an
    :class:`Entry` and agrees with its row's indexed columns, that every stored subtree
    hash equals the one recomputed (and none exists beyond the leaves), and that every
    stored checkpoint is signed by ``log_verifier`` (origin: its name), says the size and
    root of its row, and has the root recomputed at its size. Leaves after the latest
    checkpoint are refused too: the ledger signs every batch it appends, in the same
    transaction, so an unsigned leaf was inserted behind its back.

    Raises :class:`TamperError` at the first inconsistency, in leaf order; its ``index``
    is the first leaf that is (or may be) bad, and its message says what differs.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    with _snapshot(engine) as conn:
        return _Audit(conn, log_verifier, progress, chunk).run()


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction seeing one state of the ledger: leaves, subtrees and
    checkpoints are inserted together, so a consistent ledger is never seen half-written."""
    with engines.reader(engine).connect() as conn:
        if conn.dialect.name == "postgresql":
            # READ COMMITTED would give every statement a newer snapshot. (Sets the
            # option on this connection in place; it is reset when returned to the pool.)
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _covering(level: int, idx: int) -> str:
    first = idx << level
    last = first + (1 << level) - 1
    return f"leaf {first}" if level == 0 else f"subtree covering leaves {first}..{last}"


_INDEXED_COLUMNS = ("kind", "peer", "message_id", "message_digest", "logged_at")

# The bulk reads, in plain SQL with `?` placeholders (see _Audit._fetch). The leaves'
# columns come in the order of a tuple (idx, leaf, *entries.index_columns(leaf)).
_FIRST_LEAVES = DriverStatement(
    "SELECT idx, leaf, kind, peer, message_id, message_digest, logged_at "
    "FROM ledger_leaves ORDER BY idx LIMIT ?")
_LEAVES_FROM = DriverStatement(
    "SELECT idx, leaf, kind, peer, message_id, message_digest, logged_at "
    "FROM ledger_leaves WHERE idx >= ? ORDER BY idx LIMIT ?")
_SUBTREE_HASHES = DriverStatement(
    "SELECT hash FROM ledger_subtrees WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx")


def _end(level: int, idx: int) -> tuple[int, int]:
    """Sort key of a subtree: the last leaf it covers, then its level."""
    return ((idx + 1) << level) - 1, level


class _Audit:
    """One run over one snapshot; raises TamperError at the first inconsistency."""

    def __init__(
        self,
        conn: Connection,
        verifier: note.Verifier,
        progress: ProgressCallback | None,
        chunk: int,
    ) -> None:
        self.conn = conn
        self.verifier = verifier
        self.progress = progress
        self.chunk = chunk
        # The right edge of the tree built so far: the full subtrees that
        # merkle.range_subtrees(0, size) names, keyed (level, index).
        self.edge: dict[tuple[int, int], bytes] = {}
        self.size = 0
        self.subtrees = 0
        self.checkpoints = 0
        self.signed_size = 0
        self.signed_root = merkle.EMPTY_ROOT

    def full(self, level: int, idx: int) -> bytes:
        return self.edge[(level, idx)]

    def run(self) -> AuditReport:
        total = int(self.conn.scalar(select(func.count()).select_from(ledger_leaves)) or 0)
        log.info("verifying ledger of %d entries against %s", total, self.verifier.label)
        self._check_checkpoints_up_to_zero()
        while True:
            rows = self._next_leaves()
            if not rows:
                break
            self._check_chunk(rows)
            if self.progress is not None:
                self.progress(self.size, total)
        self._check_nothing_beyond()
        log.info(
            "ledger intact: %d entries, %d subtree hashes, %d checkpoints",
            self.size, self.subtrees, self.checkpoints,
        )
        return AuditReport(
            entries=self.size,
            checkpoints=self.checkpoints,
            subtrees=self.subtrees,
            size=self.signed_size,
            root=self.signed_root,
        )

    # --- reading -------------------------------------------------------------------

    def _fetch(self, statement: DriverStatement, params: tuple[int, ...]
               ) -> list[tuple[Any, ...]]:
        """Rows of ``statement`` as the driver's own tuples, on this snapshot.

        The bulk reads skip SQLAlchemy's statement building and Row objects, which were
        a large part of the audit's cost per leaf. SQLite gives BLOBs and psycopg
        ``bytea`` as ``bytes``, so no conversion is needed either.
        """
        return list(DriverCursor(self.conn).execute(statement, params).fetchall())

    def _next_leaves(self) -> list[tuple[Any, ...]]:
        # Read from the last index seen (not from self.size), so that a row with a
        # negative or repeated index is seen and reported rather than skipped.
        if self.size:
            return self._fetch(_LEAVES_FROM, (self.size, self.chunk))
        return self._fetch(_FIRST_LEAVES, (self.chunk,))

    def _stored_hashes(self, level: int, start: int, end: int) -> list[bytes]:
        """Stored hashes of subtrees ``(level, start)`` up to ``(level, end)``, in order."""
        return [h for (h,) in self._fetch(_SUBTREE_HASHES, (level, start, end))]

    def _stored_subtrees(self, start: int, end: int) -> dict[tuple[int, int], bytes]:
        """Stored hashes of the full subtrees that leaves ``[start, end)`` complete.

        Appending leaf ``j`` completes subtree ``(level, k)`` when ``j + 1 == (k + 1) <<
        level``, so for each level these are the indexes ``start >> level`` up to
        ``end >> level``: one primary-key range per level.
        """
        ranges = [
            and_(
                ledger_subtrees.c.level == level,
                ledger_subtrees.c.idx >= start >> level,
                ledger_subtrees.c.idx < end >> level,
            )
            for level in range(end.bit_length())
            if start >> level < end >> level
        ]
        rows = self.conn.execute(
            select(ledger_subtrees.c.level, ledger_subtrees.c.idx, ledger_subtrees.c.hash)
            .where(or_(*ranges))
        ).all()
        # Kept as stored (not bytes(h)): a value of another type is named by _compare_subtree.
        return {(int(level), int(idx)): h for level, idx, h in rows}

    def _stored_checkpoints(self, start: int, end: int) -> list[Any]:
        """Checkpoint rows of sizes ``start + 1 .. end``, smallest first."""
        return list(self.conn.execute(
            select(ledger_checkpoints)
            .where(ledger_checkpoints.c.size > start, ledger_checkpoints.c.size <= end)
            .order_by(ledger_checkpoints.c.size)
        ).all())

    # --- leaves and subtrees ----------------------------------------------------------

    def _check_chunk(self, rows: Sequence[tuple[Any, ...]]) -> None:
        start = self.size
        end = start + len(rows)
        levels = self._intact_subtrees(rows)
        if levels is None:
            # Something in the chunk differs: go through it again leaf by leaf, in the
            # order the checks are documented in, to name the first inconsistency. That
            # pass is the reference: the bulk one only decides whether it is needed.
            self._check_leaf_by_leaf(rows)
            return

        def full(level: int, idx: int) -> bytes:
            row = idx - (start >> level)
            return levels[level][row] if row >= 0 else self.edge[(level, idx)]

        for checkpoint in self._stored_checkpoints(start, end):
            self._check_checkpoint(checkpoint, merkle.tree_root(checkpoint.size, full))
        self.edge = {(level, idx): full(level, idx)
                     for level, idx in merkle.range_subtrees(0, end)}
        self.subtrees += sum(len(row) for row in levels)
        self.size = end

    def _intact_subtrees(self, rows: Sequence[tuple[Any, ...]]) -> list[list[bytes]] | None:
        """The subtree hashes the chunk completes, by level (see merkle.completed_subtrees),
        if every check of its leaves and subtrees passes; ``None`` if any fails.

        The same checks as :meth:`_check_leaf`, on whole lists: the rows must be exactly
        the leaves' indexes, bytes and index columns, and each level's stored hashes
        exactly the recomputed ones (the primary key makes equal lists equal sets).
        """
        start = self.size
        end = start + len(rows)
        leaves = [row[1] for row in rows]
        try:
            expected = [(index, leaf, *index_columns(leaf))
                        for index, leaf in enumerate(leaves, start)]
        except LedgerError:
            return None
        if rows != expected:
            return None
        levels = merkle.completed_subtrees(start, merkle.leaf_hashes(leaves), self.full)
        for level, recomputed in enumerate(levels):
            if self._stored_hashes(level, start >> level, end >> level) != recomputed:
                return None
        return levels

    def _check_leaf_by_leaf(self, rows: Sequence[tuple[Any, ...]]) -> None:
        start = self.size
        end = start + len(rows)
        stored = self._stored_subtrees(start, end)
        checkpoints = iter(self._stored_checkpoints(start, end))
        pending = next(checkpoints, None)
        for row in rows:
            self._check_leaf(row, stored)
            while pending is not None and pending.size == self.size:
                self._check_checkpoint(pending, merkle.tree_root(self.size, self.full))
                pending = next(checkpoints, None)
        if stored:  # cannot happen: every row in the ranges read was completed above
            level, idx = min(stored, key=lambda key: key[1] << key[0])
            raise TamperError(
                f"{_covering(level, idx)} has a stored hash at level {level} index {idx} "
                "that no leaf completes",
                index=idx << level,
            )

    def _check_leaf(self, row: tuple[Any, ...], stored: dict[tuple[int, int], bytes]) -> None:
        index = self.size
        row_index, leaf = row[0], row[1]
        if row_index != index:
            if row_index > index:
                raise TamperError(
                    f"leaf {index} is missing: the next stored leaf has index {row_index}",
                    index=index,
                )
            raise TamperError(
                f"ledger holds a leaf row with index {row_index} where leaf {index} should "
                "be: leaf indexes must run from 0 without gaps",
                index=index,
            )
        if not isinstance(leaf, bytes):
            # SQLite keeps any type in any column: whoever owns the file can store text.
            raise TamperError(f"leaf {index}: its row holds {type(leaf).__name__}, not bytes",
                              index=index)
        completed = merkle.new_full_subtrees(index, merkle.leaf_hash(leaf), self.full)
        for level, idx, recomputed in completed:
            self._compare_subtree(level, idx, recomputed, stored.pop((level, idx), None))
        # The appended leaf's left siblings are now inside the largest subtree it closed.
        for level in range(len(completed) - 1):
            del self.edge[(level, (index >> level) - 1)]
        top_level, top_idx, top_hash = completed[-1]
        self.edge[(top_level, top_idx)] = top_hash
        self.size = index + 1
        self._check_entry(index, leaf, row[2:])

    def _compare_subtree(
        self, level: int, idx: int, recomputed: bytes, stored: bytes | None
    ) -> None:
        # Children are completed (and compared) before their parent, so a mismatch at
        # level > 0 means that row itself was changed, not a leaf below it.
        first = idx << level
        if stored is None:
            raise TamperError(
                f"{_covering(level, idx)} does not match the ledger's subtree hashes: "
                f"its hash (level {level}, index {idx}) is missing",
                index=first,
            )
        if stored == recomputed:
            self.subtrees += 1
            return
        if not isinstance(stored, bytes):
            held = f"is {type(stored).__name__}, not bytes"
            if level == 0:
                raise TamperError(f"leaf {idx} does not match the ledger's subtree hashes: "
                                  f"the stored hash {held}", index=first)
            raise TamperError(
                f"{_covering(level, idx)} does not match the ledger's subtree hashes: the "
                f"stored hash at level {level} index {idx} {held}", index=first)
        if level == 0:
            raise TamperError(
                f"leaf {idx} does not match the ledger's subtree hashes: its hash differs "
                f"from the one stored when it was appended (stored {stored.hex()}, "
                f"recomputed {recomputed.hex()})",
                index=first,
            )
        raise TamperError(
            f"{_covering(level, idx)} does not match the ledger's subtree hashes: the "
            f"stored hash at level {level} index {idx} is {stored.hex()}, the leaves "
            f"give {recomputed.hex()}",
            index=first,
        )

    def _check_entry(self, index: int, leaf: bytes, held: tuple[Any, ...]) -> None:
        try:
            expected = index_columns(leaf)
        except LedgerError as e:
            raise TamperError(f"leaf {index} does not decode as a ledger entry: {e}",
                              index=index) from e
        # The indexed columns are how entries are found (LedgerStore.find): they must say
        # what the leaf says. Values are not repeated here: they may be personal data.
        if held != expected:
            column = next(c for c, h, e in zip(_INDEXED_COLUMNS, held, expected, strict=True)
                          if h != e)
            raise TamperError(
                f"leaf {index}: its row's {column} column does not match the leaf",
                index=index,
            )

    # --- checkpoints --------------------------------------------------------------

    def _check_checkpoints_up_to_zero(self) -> None:
        rows = self.conn.execute(
            select(ledger_checkpoints).where(ledger_checkpoints.c.size <= 0)
            .order_by(ledger_checkpoints.c.size)
        ).all()
        for row in rows:
            if row.size < 0:
                raise TamperError(f"ledger holds a checkpoint of negative size {row.size}",
                                  index=0)
            self._check_checkpoint(row, merkle.EMPTY_ROOT)

    def _check_checkpoint(self, row: Any, recomputed: bytes) -> None:
        size = int(row.size)
        last = max(size - 1, 0)
        try:
            cp, _, _ = note.open_checkpoint(row.note, self.verifier, origin=self.verifier.name)
        except NoteError as e:
            raise TamperError(
                f"checkpoint of size {size} is not signed by this ledger's key "
                f"{self.verifier.label}: {e}",
                index=last,
            ) from e
        if cp.size != size:
            raise TamperError(
                f"checkpoint of size {size} holds a note signed for size {cp.size}",
                index=last,
            )
        row_root = row.root
        if not isinstance(row_root, bytes):
            raise TamperError(f"checkpoint of size {size}: its stored root is "
                              f"{type(row_root).__name__}, not bytes", index=last)
        if row_root != cp.root:
            raise TamperError(
                f"checkpoint of size {size}: its stored root {row_root.hex()} differs from "
                f"the root it signed {cp.root.hex()}",
                index=last,
            )
        if recomputed != cp.root:
            # Every stored subtree matched, so leaves and their hashes were changed
            # together; the last checkpoint that matched vouches for the leaves before it.
            raise TamperError(
                f"checkpoint of size {size} does not match the leaves: root recomputed "
                f"{recomputed.hex()}, signed {cp.root.hex()}; a leaf among "
                f"{self.signed_size}..{last} was changed together with its subtree hashes",
                index=last,
            )
        self.checkpoints += 1
        self.signed_size, self.signed_root = size, cp.root

    # --- after the last leaf --------------------------------------------------------------

    def _check_nothing_beyond(self) -> None:
        """No subtree or checkpoint may cover a leaf that is not there, nor a leaf unsigned."""
        self._check_subtree_levels()
        first_beyond = first_to_end(self._subtrees_beyond())
        if first_beyond is not None:
            raise subtree_beyond_error(self.size, *first_beyond)
        beyond = self.conn.scalar(
            select(func.min(ledger_checkpoints.c.size))
            .where(ledger_checkpoints.c.size > self.size)
        )
        if beyond is not None:
            raise TamperError(
                f"leaf {self.size} is missing: the ledger holds {self.size} leaves but signed "
                f"a checkpoint of size {beyond}",
                index=self.size,
            )
        if self.signed_size < self.size:
            raise TamperError(
                f"leaves {self.signed_size}..{self.size - 1} are covered by no signed "
                "checkpoint (the ledger signs every batch it appends): they were inserted "
                "behind its back",
                index=self.signed_size,
            )

    def _check_subtree_levels(self) -> None:
        odd_level = self.conn.execute(
            select(ledger_subtrees.c.level, ledger_subtrees.c.idx)
            .where(or_(ledger_subtrees.c.level < 0, ledger_subtrees.c.level > _MAX_LEVEL))
            .limit(1)
        ).first()
        if odd_level is not None:
            raise TamperError(
                f"ledger holds a subtree hash at impossible level {odd_level.level}",
                index=self.size,
            )

    def _subtrees_beyond(self) -> Iterator[tuple[int, int]]:
        """At each level, the (level, index) of the first stored subtree that covers no
        leaf of the ledger: the one with the least negative index, else the least beyond."""
        for level in range(_MAX_LEVEL + 1):
            # Two lookups in the primary key, where one OR would scan the whole level.
            at_level = select(func.min(ledger_subtrees.c.idx)).where(
                ledger_subtrees.c.level == level
            )
            idx = self.conn.scalar(at_level)
            if idx is None:
                continue  # no row at this level at all
            if idx >= 0:
                idx = self.conn.scalar(
                    at_level.where(ledger_subtrees.c.idx >= self.size >> level))
                if idx is None:
                    continue
            yield level, int(idx)


def first_to_end(subtrees: Iterable[tuple[int, int]]) -> tuple[int, int] | None:
    """Of ``(level, index)`` subtrees, the one whose last leaf comes first (then the lower
    level): for a deleted last leaf, that leaf's own hash; negative indexes before all."""
    return min(subtrees, key=lambda subtree: _end(*subtree), default=None)


def subtree_beyond_error(size: int, level: int, idx: int) -> TamperError:
    """The error for a stored subtree ``(level, idx)`` that covers no leaf of ``size``."""
    if idx < 0:
        return TamperError(
            f"ledger holds a subtree hash at level {level} with negative index {idx}",
            index=0,
        )
    return TamperError(
        f"leaf {size} is missing: the ledger holds {size} leaves but the stored hash "
        f"of the {_covering(level, idx)} exists",
        index=size,
    )
