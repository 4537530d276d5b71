"""RFC 9162 Merkle tree hashing, proof generation and proof verification.

Pure functions over hashes: no I/O. A store keeps the hash of every *full subtree*,
named ``(level, index)`` and covering leaves ``[index * 2**level, (index + 1) * 2**level)``;
level 0 is the leaf hash. Everything that reads a tree does so through a
:data:`FullSubtree` callback, and makes O(log n) calls to it, so proofs stay cheap at
any tree size.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), in the
form of transparency-dev/merkle ``proof/verify.go``; the ``verify_*`` functions return
``None`` or raise :class:`~exchange.errors.ProofError`. Proof generation raises
``ValueError`` for arguments no valid request can carry (a caller's bug, not a peer's lie).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from exchange.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "FullSubtree",
    "MemoryTree",
    "completed_subtrees",
    "consistency_proof",
    "consistency_proof_size",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "new_full_subtrees",
    "node_hash",
    "range_hash",
    "range_subtrees",
    "root",
    "root_from_inclusion_proof",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

FullSubtree = Callable[[int, int], bytes]
"""``(level, index) -> hash`` of a full subtree; level 0 is the leaf hash."""

# Domain separation (RFC 9162 §2.1.1): a leaf hash can never be passed off as a node hash.
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, by the recursive definition of RFC 9162 §2.1.1.

    Reads every leaf: meant for checking and small trees; stores use :func:`tree_root`.
    """

    def mth(start: int, end: int) -> bytes:
        n = end - start
        if n == 1:
            return leaf_hashes[start]
        k = 1 << ((n - 1).bit_length() - 1)  # largest power of two below n
        return node_hash(mth(start, start + k), mth(start + k, end))

    if not leaf_hashes:
        return EMPTY_ROOT
    return mth(0, len(leaf_hashes))


def _trailing_zeros(n: int) -> int:
    return (n & -n).bit_length() - 1


def range_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Split leaves ``[start, end)`` into maximal aligned full subtrees, left to right."""
    if not 0 <= start <= end:
        raise ValueError(f"invalid leaf range [{start}, {end})")
    parts: list[tuple[int, int]] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, _trailing_zeros(start))
        parts.append((level, start >> level))
        start += 1 << level
    return parts


def range_hash(start: int, end: int, full: FullSubtree) -> bytes:
    """MTH of leaves ``[start, end)``, from full subtrees; ``EMPTY_ROOT`` for an empty range.

    The range must be a subtree RFC 9162 can produce: ``start`` aligned to the largest
    power of two not above ``end - start``. Then the pieces shrink strictly from left to
    right and the RFC's recursion is a right-to-left fold over them.
    """
    if not 0 <= start <= end:
        raise ValueError(f"invalid leaf range [{start}, {end})")
    if start == end:
        return EMPTY_ROOT
    if start % (1 << ((end - start).bit_length() - 1)):
        raise ValueError(f"leaf range [{start}, {end}) is not a subtree of any tree")
    parts = range_subtrees(start, end)
    result = full(*parts[-1])
    for level, index in reversed(parts[:-1]):
        result = node_hash(full(level, index), result)
    return result


def new_full_subtrees(index: int, leaf: bytes, full: FullSubtree) -> list[tuple[int, int, bytes]]:
    """The ``(level, index, hash)`` of every full subtree completed by appending ``leaf``.

    ``leaf`` is a leaf hash appended at position ``index``; the list starts with the leaf
    itself at level 0. Only subtrees that existed before are read through ``full``.
    """
    if index < 0:
        raise ValueError(f"negative leaf index {index}")
    if len(leaf) != HASH_SIZE:
        raise ValueError(f"leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}")
    completed = [(0, index, leaf)]
    level, position, current = 0, index, leaf
    # Each trailing 1 bit of the index closes one more subtree: its left half already exists.
    while position & 1:
        current = node_hash(full(level, position - 1), current)
        level, position = level + 1, position >> 1
        completed.append((level, position, current))
    return completed


def leaf_hashes(leaves: Iterable[bytes]) -> list[bytes]:
    """:func:`leaf_hash` of each leaf, at the cost of one loop rather than one call each."""
    sha256 = hashlib.sha256
    return [sha256(_LEAF_PREFIX + data).digest() for data in leaves]


def completed_subtrees(
    start: int, leaves: Sequence[bytes], full: FullSubtree
) -> list[list[bytes]]:
    """Every full subtree completed by appending the leaf hashes ``leaves`` at ``start``.

    Row ``level`` of the result holds the hashes of subtrees ``(level, start >> level)``
    up to, not including, ``(level, end >> level)`` (``end = start + len(leaves)``); row 0
    is ``leaves`` itself, and the rows stop at the first level no leaf completes. What
    :func:`new_full_subtrees` gives leaf by leaf, computed a level at a time. ``full`` is
    read only for the left siblings completed before ``start``: one per level at most.
    """
    if start < 0:
        raise ValueError(f"negative leaf index {start}")
    for data in leaves:
        if len(data) != HASH_SIZE:
            raise ValueError(f"leaf hash is {len(data)} bytes, expected {HASH_SIZE}")
    end = start + len(leaves)
    sha256 = hashlib.sha256
    rows = [list(leaves)]
    level = 0
    while start >> (level + 1) < end >> (level + 1):
        row = rows[level]
        first = start >> level
        # Pair the row up: a right child first needs its left sibling from before
        # `start`; a left child last has no right sibling yet.
        children = [full(level, first - 1), *row] if first & 1 else row
        paired = len(children) & ~1
        rows.append([sha256(_NODE_PREFIX + left + right).digest() for left, right
                     in zip(children[0:paired:2], children[1:paired:2], strict=True)])
        level += 1
    return rows


def tree_root(size: int, full: FullSubtree) -> bytes:
    """Root hash of the first ``size`` leaves."""
    return range_hash(0, size, full)


def _audit_path(level: int, index: int, size: int, full: FullSubtree) -> list[bytes]:
    """Sibling hashes, bottom up, from full subtree ``(level, index)`` to the root of ``size``.

    Below the level where this node's path meets the path of the last leaf, siblings are
    full subtrees except the topmost one, which may be the partial right edge. Above it,
    the node sits on the right border and only left siblings exist.
    """
    last = (size - 1) >> level
    inner = (index ^ last).bit_length()
    path: list[bytes] = []
    for step in range(inner):
        sibling_level = level + step
        start = ((index >> step) ^ 1) << sibling_level
        path.append(range_hash(start, min(start + (1 << sibling_level), size), full))
    for step in range(inner, index.bit_length()):
        if (index >> step) & 1:
            path.append(full(level + step, (index >> step) ^ 1))
    return path


def inclusion_proof(index: int, size: int, full: FullSubtree) -> list[bytes]:
    """RFC 9162 inclusion proof (audit path) for leaf ``index`` in the tree of ``size``."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    return _audit_path(0, index, size, full)


def consistency_proof(old_size: int, new_size: int, full: FullSubtree) -> list[bytes]:
    """RFC 9162 consistency proof from the tree of ``old_size`` to the tree of ``new_size``."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == new_size:
        return []
    # The proof starts from the largest full subtree that ends the old tree; when the old
    # tree is that subtree, the verifier already holds its hash as the old root.
    level = _trailing_zeros(old_size)
    index = (old_size - 1) >> level
    path = _audit_path(level, index, new_size, full)
    if index:
        path.insert(0, full(level, index))
    return path


# --- Verification -------------------------------------------------------------


def _check_hash_size(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, expected {HASH_SIZE}")


def _check_proof_hashes(kind: str, proof: Sequence[bytes]) -> None:
    for position, value in enumerate(proof):
        _check_hash_size(f"{kind} proof hash {position}", value)


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Lengths of the inner and border parts of the audit path for ``index`` in ``size``."""
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for step, sibling in enumerate(proof):
        # A set bit means this node is a right child: its sibling goes first.
        seed = node_hash(sibling, seed) if (index >> step) & 1 else node_hash(seed, sibling)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    # Right siblings are leaves appended after the old tree: leaving them out rebuilds
    # the old tree's view of this subtree.
    for step, sibling in enumerate(proof):
        if (index >> step) & 1:
            seed = node_hash(sibling, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for sibling in proof:
        seed = node_hash(sibling, seed)
    return seed


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for leaf ``index`` in a tree of ``size``.

    Raises :class:`ProofError` if the proof cannot be one for that position.
    """
    if index < 0 or size < 0:
        raise ProofError(f"leaf index {index} and tree size {size} must not be negative")
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash_size("leaf hash", leaf_hash)
    hashes = list(proof)
    _check_proof_hashes("inclusion", hashes)
    inner, border = _decompose(index, size)
    if len(hashes) != inner + border:
        raise ProofError(
            f"inclusion proof has {len(hashes)} hashes, expected {inner + border} "
            f"for index {index} in size {size}"
        )
    result = _chain_inner(leaf_hash, hashes[:inner], index)
    return _chain_border_right(result, hashes[inner:])


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf ``index`` of the tree of ``size`` with ``root`` has ``leaf_hash``."""
    calculated = root_from_inclusion_proof(leaf_hash, index, size, proof)
    _check_hash_size("root", root)
    if calculated != root:
        raise ProofError(
            f"root mismatch: inclusion proof for index {index} in size {size} gives "
            f"{calculated.hex()}, expected {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree of ``new_size`` and ``new_root`` extends the one of ``old_size``."""
    hashes = _checked_consistency_request(old_size, new_size, proof, old_root, new_root)
    if old_size == new_size:
        _verify_same_tree(old_size, hashes, old_root, new_root)
        return
    calculated_old, calculated_new = _roots_from_consistency_proof(
        old_size, new_size, hashes, old_root)
    if calculated_old != old_root:
        raise ProofError(
            f"old root mismatch: consistency proof from size {old_size} gives "
            f"{calculated_old.hex()}, expected {old_root.hex()}"
        )
    if calculated_new != new_root:
        raise ProofError(
            f"new root mismatch: consistency proof to size {new_size} gives "
            f"{calculated_new.hex()}, expected {new_root.hex()}"
        )


def _checked_consistency_request(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> list[bytes]:
    """The proof's hashes, once the sizes and every hash could belong to a real request."""
    if old_size < 0 or new_size < 0:
        raise ProofError(f"tree sizes {old_size} and {new_size} must not be negative")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0:
        # Every tree extends the empty tree: such a proof would prove nothing.
        raise ProofError("consistency proof from size 0 is not allowed")
    _check_hash_size("old root", old_root)
    _check_hash_size("new root", new_root)
    hashes = list(proof)
    _check_proof_hashes("consistency", hashes)
    return hashes


def _verify_same_tree(size: int, proof: Sequence[bytes], old_root: bytes,
                      new_root: bytes) -> None:
    if proof:
        raise ProofError(
            f"consistency proof between equal sizes {size} has {len(proof)} "
            f"hashes, expected 0"
        )
    if old_root != new_root:
        raise ProofError(
            f"root mismatch: old root {old_root.hex()} and new root {new_root.hex()} "
            f"differ for the same size {size}"
        )


@dataclass(frozen=True, slots=True)
class _ConsistencyLayout:
    """Where the hashes of a proof from ``old_size`` to a larger size sit.

    The proof climbs from the largest full subtree that ends the old tree, at level
    ``shift``: ``inner`` hashes up to where its path meets the new tree's last leaf, then
    ``border`` left siblings on the new tree's right border. When the old tree is that
    subtree, the verifier holds its hash already (the old root) and the proof leaves it out.
    """

    inner: int
    border: int
    mask: int
    seeded_by_old_root: bool

    @property
    def size(self) -> int:
        return self.inner + self.border + (0 if self.seeded_by_old_root else 1)


def _consistency_layout(old_size: int, new_size: int) -> _ConsistencyLayout:
    inner, border = _decompose(old_size - 1, new_size)
    shift = _trailing_zeros(old_size)
    # The proof starts at level `shift`, so the levels below need no hashes.
    return _ConsistencyLayout(inner=inner - shift, border=border,
                              mask=(old_size - 1) >> shift,
                              seeded_by_old_root=old_size == 1 << shift)


def consistency_proof_size(old_size: int, new_size: int) -> int:
    """Hashes in the consistency proof from ``old_size`` to ``new_size`` (``0 < old <= new``)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    return 0 if old_size == new_size else _consistency_layout(old_size, new_size).size


def _roots_from_consistency_proof(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes
) -> tuple[bytes, bytes]:
    """The old and new roots that ``proof`` implies (``0 < old_size < new_size``)."""
    layout = _consistency_layout(old_size, new_size)
    if len(proof) != layout.size:
        raise ProofError(
            f"consistency proof has {len(proof)} hashes, expected {layout.size} "
            f"from size {old_size} to size {new_size}"
        )
    if layout.seeded_by_old_root:
        seed, path = old_root, proof
    else:
        seed, path = proof[0], proof[1:]
    inner, border_path = path[:layout.inner], path[layout.inner:]
    calculated_old = _chain_border_right(
        _chain_inner_right(seed, inner, layout.mask), border_path)
    calculated_new = _chain_border_right(_chain_inner(seed, inner, layout.mask), border_path)
    return calculated_old, calculated_new


# --- In-memory store -----------------------------------------------------------


class MemoryTree:
    """Every full subtree hash of a tree, in memory: for tests, benchmarks and ``ledger verify``.

    Subtrees are kept as one list per level (``levels[level][index]``): they complete in
    index order, and lists hold a million leaves in a fraction of a dict's memory.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        """Start a tree holding ``leaves`` (leaf data, hashed here)."""
        self._levels: list[list[bytes]] = [[]]
        for data in leaves:
            self.append(data)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def leaf_hashes(self) -> Sequence[bytes]:
        return self._levels[0]

    @property
    def levels(self) -> Sequence[Sequence[bytes]]:
        """Full subtree hashes by level; level 0 holds the leaf hashes."""
        return self._levels

    def append(self, data: bytes) -> int:
        """Append leaf data; returns its index."""
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, leaf: bytes) -> int:
        """Append an already-hashed leaf; returns its index."""
        index = self.size
        for level, _, subtree_hash in new_full_subtrees(index, leaf, self.full):
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(subtree_hash)
        return index

    def full(self, level: int, index: int) -> bytes:
        """The :data:`FullSubtree` callback; ``KeyError`` for a subtree not (yet) full."""
        # Guard negative values: a list would quietly count them from the end.
        if level < 0 or index < 0 or level >= len(self._levels):
            raise KeyError((level, index))
        row = self._levels[level]
        if index >= len(row):
            raise KeyError((level, index))
        return row[index]

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is not in 0..{self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (default: all)."""
        return tree_root(self._size(size), self.full)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self._size(size), self.full)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return consistency_proof(old_size, self._size(new_size), self.full)
