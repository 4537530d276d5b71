"""RFC 9162 Merkle tree: conformance vectors, an RFC oracle, properties and proof cost."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import random
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.errors import ProofError, VerificationError
from exchange.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    FullSubtree,
    MemoryTree,
    completed_subtrees,
    consistency_proof,
    consistency_proof_size,
    inclusion_proof,
    leaf_hash,
    leaf_hashes,
    new_full_subtrees,
    node_hash,
    range_hash,
    range_subtrees,
    root,
    root_from_inclusion_proof,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

# --- Conformance vectors ---------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[3]
VECTORS = Path(os.environ.get("BCX_VECTORS") or REPO_ROOT / "tests" / "vectors")
MERKLE_VECTORS = VECTORS / "merkle"
MISSING = "vectors-missing"

# Vectors that want success where our rules are deliberately stricter than the reference
# (transparency-dev/merkle skips the root length check when the sizes are equal).
STRICTER_THAN_REFERENCE = {
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json": (
        r"^old root is 12 bytes, expected 32$"
    ),
}


def _vector_files() -> list[str]:
    if not (MERKLE_VECTORS / "inclusion").is_dir() or not (MERKLE_VECTORS / "consistency").is_dir():
        return [MISSING]
    return sorted(
        path.relative_to(MERKLE_VECTORS).as_posix()
        for kind in ("inclusion", "consistency")
        for path in (MERKLE_VECTORS / kind).rglob("*.json")
    )


def _require_vectors() -> None:
    if not MERKLE_VECTORS.is_dir():
        pytest.fail(
            f"conformance vectors not found at {MERKLE_VECTORS}; "
            "restore tests/vectors from the repository or set BCX_VECTORS to the vectors directory"
        )


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in vector["proof"] or []]


def _verify_vector(relative: str, vector: dict[str, Any]) -> None:
    if relative.startswith("inclusion/"):
        verify_inclusion(
            _b64(vector["leafHash"]),
            vector["leafIdx"],
            vector["treeSize"],
            _proof(vector),
            _b64(vector["root"]),
        )
    else:
        verify_consistency(
            vector["size1"],
            vector["size2"],
            _proof(vector),
            _b64(vector["root1"]),
            _b64(vector["root2"]),
        )


@pytest.mark.parametrize("relative", _vector_files())
def test_proof_vector(relative: str) -> None:
    if relative == MISSING:
        _require_vectors()
        pytest.fail(f"no inclusion/ and consistency/ vectors under {MERKLE_VECTORS}")
    vector = json.loads((MERKLE_VECTORS / relative).read_text())
    if relative in STRICTER_THAN_REFERENCE:
        assert vector["wantErr"] is False
        with pytest.raises(ProofError, match=STRICTER_THAN_REFERENCE[relative]):
            _verify_vector(relative, vector)
    elif vector["wantErr"]:
        with pytest.raises(ProofError):
            _verify_vector(relative, vector)
    else:
        _verify_vector(relative, vector)


def test_vector_set_is_complete() -> None:
    files = _vector_files()
    if files == [MISSING]:
        _require_vectors()
    happy = [f for f in files if f.endswith("/happy-path.json")]
    assert len(happy) >= 10, happy
    assert len(files) > 150, len(files)
    assert set(STRICTER_THAN_REFERENCE) <= set(files)


@pytest.fixture(scope="module")
def reference_tree() -> dict[str, Any]:
    _require_vectors()
    path = MERKLE_VECTORS / "tree.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing")
    tree: dict[str, Any] = json.loads(path.read_text())
    return tree


def test_reference_leaf_and_node_hashes(reference_tree: dict[str, Any]) -> None:
    leaf_vector, node_vector = reference_tree["hash_vectors"]
    assert leaf_hash(leaf_vector["leaf_input_ascii"].encode()).hex() == leaf_vector["leaf_hash_hex"]
    left, right = (child.encode() for child in node_vector["children_ascii"])
    assert node_hash(left, right).hex() == node_vector["node_hash_hex"]


def test_reference_roots_for_every_size(reference_tree: dict[str, Any]) -> None:
    leaves = [bytes.fromhex(x) for x in reference_tree["leaf_inputs_hex"]]
    tree = MemoryTree(leaves)
    for size, want in enumerate(reference_tree["root_hash_by_tree_size_hex"]):
        assert root([leaf_hash(x) for x in leaves[:size]]).hex() == want, size
        assert tree.root(size).hex() == want, size
        assert tree_root(size, tree.full).hex() == want, size
    assert EMPTY_ROOT.hex() == reference_tree["root_hash_by_tree_size_hex"][0]


def test_reference_full_subtrees(reference_tree: dict[str, Any]) -> None:
    tree = MemoryTree(bytes.fromhex(x) for x in reference_tree["leaf_inputs_hex"])
    got = [[h.hex() for h in row] for row in tree.levels]
    assert got == reference_tree["node_hashes_by_level_hex"]


def test_reference_proofs_verify(reference_tree: dict[str, Any]) -> None:
    tree = MemoryTree(bytes.fromhex(x) for x in reference_tree["leaf_inputs_hex"])
    roots = [bytes.fromhex(x) for x in reference_tree["root_hash_by_tree_size_hex"]]
    for size in range(1, 9):
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            verify_inclusion(tree.leaf_hashes[index], index, size, proof, roots[size])
        for old_size in range(1, size + 1):
            proof = tree.consistency_proof(old_size, size)
            verify_consistency(old_size, size, proof, roots[old_size], roots[size])


# --- RFC 9162 oracle ---------------------------------------------------------------
# The proofs exactly as RFC 9162 §2.1.3.1 and §2.1.4.1 define them, over a list of leaves.


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def rfc_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*rfc_path(m, leaves[:k]), root(leaves[k:])]
    return [*rfc_path(m - k, leaves[k:]), root(leaves[:k])]


def rfc_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*rfc_subproof(m, leaves[:k], complete), root(leaves[k:])]
    return [*rfc_subproof(m - k, leaves[k:], False), root(leaves[:k])]


def inclusion_shape(m: int, n: int) -> str:
    """Where each path hash sits, bottom up: R(ight) or L(eft) of the running hash."""
    if n == 1:
        return ""
    k = _split(n)
    return inclusion_shape(m, k) + "R" if m < k else inclusion_shape(m - k, n - k) + "L"


def consistency_shape(m: int, n: int, complete: bool = True) -> str:
    """Like inclusion_shape, with S for a proof that carries its own starting hash."""
    if m == n:
        return "" if complete else "S"
    k = _split(n)
    if m <= k:
        return consistency_shape(m, k, complete) + "R"
    return consistency_shape(m - k, n - k, False) + "L"


# --- Properties over a tree of distinct leaves ---------------------------------------

MAX_N = 300
TREE = MemoryTree(f"leaf {i}".encode() for i in range(MAX_N))
LEAVES = TREE.leaf_hashes
PROPERTY = settings(max_examples=150, deadline=None)


@cache
def plain_root(n: int) -> bytes:
    return root(LEAVES[:n])


def prefix_full(n: int) -> FullSubtree:
    """TREE.full, restricted to the subtrees already full in the tree of size ``n``."""

    def full(level: int, index: int) -> bytes:
        assert (index + 1) << level <= n, f"read ({level}, {index}) beyond size {n}"
        return TREE.full(level, index)

    return full


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, MAX_N))
    return n, draw(st.integers(0, n - 1))


@st.composite
def old_and_new_size(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, MAX_N))
    return draw(st.integers(1, n)), n


def flip_bit(value: bytes, bit: int) -> bytes:
    flipped = bytearray(value)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


@PROPERTY
@given(size_and_index())
def test_inclusion_proof_is_rfc_path_and_verifies(case: tuple[int, int]) -> None:
    n, i = case
    proof = inclusion_proof(i, n, prefix_full(n))
    assert proof == rfc_path(i, LEAVES[:n])
    assert root_from_inclusion_proof(LEAVES[i], i, n, proof) == plain_root(n)
    verify_inclusion(LEAVES[i], i, n, proof, plain_root(n))


@PROPERTY
@given(old_and_new_size())
def test_consistency_proof_is_rfc_proof_and_verifies(case: tuple[int, int]) -> None:
    m, n = case
    proof = consistency_proof(m, n, prefix_full(n))
    assert proof == rfc_subproof(m, LEAVES[:n], True)
    verify_consistency(m, n, proof, plain_root(m), plain_root(n))


@PROPERTY
@given(old_and_new_size())
def test_consistency_proof_size_is_the_length_of_the_proof(case: tuple[int, int]) -> None:
    m, n = case
    assert consistency_proof_size(m, n) == len(consistency_proof(m, n, prefix_full(n)))


# RFC 9162 §2.1.5: the tree of seven leaves and its consistency proofs.
@pytest.mark.parametrize(("old_size", "new_size", "hashes"), [
    (3, 7, 4),  # [c, d, g, l]
    (4, 7, 1),  # [l]
    (6, 7, 3),  # [i, j, k]
    (7, 7, 0),
    (1, 2, 1),
    (1, 8, 3),
    (5, 8, 4),
])
def test_consistency_proof_size(old_size: int, new_size: int, hashes: int) -> None:
    assert consistency_proof_size(old_size, new_size) == hashes


@pytest.mark.parametrize(("old_size", "new_size"), [(0, 3), (4, 3), (-1, 2)])
def test_consistency_proof_size_refuses_impossible_sizes(old_size: int, new_size: int) -> None:
    with pytest.raises(ValueError, match=rf"^no consistency proof from size {old_size} "
                                         rf"to size {new_size}$"):
        consistency_proof_size(old_size, new_size)


@PROPERTY
@given(size_and_index(), st.data())
def test_inclusion_fails_after_any_bit_flip(case: tuple[int, int], data: st.DataObject) -> None:
    n, i = case
    proof = inclusion_proof(i, n, prefix_full(n))
    good_root = plain_root(n)
    bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1), label="bit")
    with pytest.raises(ProofError, match=r"^root mismatch"):
        verify_inclusion(LEAVES[i], i, n, proof, flip_bit(good_root, bit))
    with pytest.raises(ProofError, match=r"^root mismatch"):
        verify_inclusion(flip_bit(LEAVES[i], bit), i, n, proof, good_root)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        proof[position] = flip_bit(proof[position], bit)
        with pytest.raises(ProofError, match=r"^root mismatch"):
            verify_inclusion(LEAVES[i], i, n, proof, good_root)


@PROPERTY
@given(old_and_new_size(), st.data())
def test_consistency_fails_after_any_bit_flip(case: tuple[int, int], data: st.DataObject) -> None:
    m, n = case
    proof = consistency_proof(m, n, prefix_full(n))
    old_root, new_root = plain_root(m), plain_root(n)
    bit = data.draw(st.integers(0, HASH_SIZE * 8 - 1), label="bit")
    with pytest.raises(ProofError, match="root mismatch"):
        verify_consistency(m, n, proof, flip_bit(old_root, bit), new_root)
    with pytest.raises(ProofError, match="root mismatch"):
        verify_consistency(m, n, proof, old_root, flip_bit(new_root, bit))
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        proof[position] = flip_bit(proof[position], bit)
        with pytest.raises(ProofError, match="root mismatch"):
            verify_consistency(m, n, proof, old_root, new_root)


@PROPERTY
@given(size_and_index(), st.data())
def test_inclusion_fails_for_another_index(case: tuple[int, int], data: st.DataObject) -> None:
    n, i = case
    proof = inclusion_proof(i, n, prefix_full(n))
    other = data.draw(st.integers(0, 2 * n).filter(lambda j: j != i), label="other index")
    with pytest.raises(ProofError, match=r"^(root mismatch|inclusion proof has|leaf index)"):
        verify_inclusion(LEAVES[i], other, n, proof, plain_root(n))


@PROPERTY
@given(size_and_index(), st.data())
def test_inclusion_fails_for_another_size_unless_path_is_identical(
    case: tuple[int, int], data: st.DataObject
) -> None:
    n, i = case
    proof = inclusion_proof(i, n, prefix_full(n))
    other = data.draw(st.integers(0, 2 * n + 2).filter(lambda s: s != n), label="other size")
    if i < other and inclusion_shape(i, other) == inclusion_shape(i, n):
        # The hashes would combine exactly the same way: see
        # test_inclusion_proof_alone_does_not_bind_tree_size.
        verify_inclusion(LEAVES[i], i, other, proof, plain_root(n))
        return
    with pytest.raises(ProofError, match=r"^(root mismatch|inclusion proof has|leaf index)"):
        verify_inclusion(LEAVES[i], i, other, proof, plain_root(n))


@PROPERTY
@given(old_and_new_size(), st.data())
def test_consistency_fails_for_other_sizes_unless_proof_is_identical(
    case: tuple[int, int], data: st.DataObject
) -> None:
    m, n = case
    proof = consistency_proof(m, n, prefix_full(n))
    sizes = st.tuples(st.integers(0, 2 * n + 2), st.integers(0, 2 * n + 2))
    other_m, other_n = data.draw(sizes.filter(lambda s: s != (m, n)), label="other sizes")
    if 0 < other_m <= other_n and consistency_shape(other_m, other_n) == consistency_shape(m, n):
        verify_consistency(other_m, other_n, proof, plain_root(m), plain_root(n))
        return
    with pytest.raises(ProofError):
        verify_consistency(other_m, other_n, proof, plain_root(m), plain_root(n))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=4), max_size=70))
def test_appending_keeps_every_full_subtree_and_root(leaves: list[bytes]) -> None:
    subtrees: dict[tuple[int, int], bytes] = {}
    hashes: list[bytes] = []

    def full(level: int, index: int) -> bytes:
        return subtrees[(level, index)]

    assert tree_root(0, full) == EMPTY_ROOT == root([])

    for index, data in enumerate(leaves):
        hashes.append(leaf_hash(data))
        completed = new_full_subtrees(index, hashes[-1], full)
        assert completed[0] == (0, index, hashes[-1])
        assert [level for level, _, _ in completed] == list(range(len(completed)))
        for level, position, subtree_hash in completed:
            assert (level, position) not in subtrees
            assert subtree_hash == root(hashes[position << level : (position + 1) << level])
            subtrees[(level, position)] = subtree_hash
        size = index + 1
        assert set(subtrees) == {
            (level, position)
            for level in range(size.bit_length())
            for position in range(size >> level)
        }
        assert tree_root(size, full) == root(hashes)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=300).flatmap(
    lambda end: st.tuples(st.integers(min_value=0, max_value=end), st.just(end))))
def test_completed_subtrees_are_those_appended_leaf_by_leaf(span: tuple[int, int]) -> None:
    start, end = span
    leaves = [i.to_bytes(2, "big") for i in range(end)]
    tree = MemoryTree(leaves[:start])
    hashes = leaf_hashes(leaves[start:])
    assert hashes == [leaf_hash(data) for data in leaves[start:]]
    expected: list[list[bytes]] = [[]]
    for index, hashed in enumerate(hashes, start):
        for level, position, subtree_hash in new_full_subtrees(index, hashed, tree.full):
            while len(expected) <= level:
                expected.append([])
            assert position == (start >> level) + len(expected[level])
            expected[level].append(subtree_hash)
        tree.append_leaf_hash(hashed)
    read: list[tuple[int, int]] = []

    def full(level: int, index: int) -> bytes:
        read.append((level, index))
        return tree.full(level, index)

    assert completed_subtrees(start, hashes, full) == expected
    # Only left siblings from before `start`, and each at most once.
    assert all(index << level < start for level, index in read)
    assert len(set(read)) == len(read)


# --- Exhaustive small trees ------------------------------------------------------------

SMALL = 8


def test_every_bit_flip_fails_in_small_trees() -> None:
    for n in range(1, SMALL + 1):
        good_root = plain_root(n)
        for i in range(n):
            proof = TREE.inclusion_proof(i, n)
            for position, bit in ((p, b) for p in range(len(proof)) for b in range(HASH_SIZE * 8)):
                tampered = list(proof)
                tampered[position] = flip_bit(proof[position], bit)
                with pytest.raises(ProofError, match=r"^root mismatch"):
                    verify_inclusion(LEAVES[i], i, n, tampered, good_root)
        for m in range(1, n + 1):
            proof = TREE.consistency_proof(m, n)
            for position, bit in ((p, b) for p in range(len(proof)) for b in range(HASH_SIZE * 8)):
                tampered = list(proof)
                tampered[position] = flip_bit(proof[position], bit)
                with pytest.raises(ProofError, match="root mismatch"):
                    verify_consistency(m, n, tampered, plain_root(m), good_root)


def test_proofs_equal_rfc_oracle_for_every_small_case() -> None:
    for n in range(1, 40):
        for i in range(n):
            assert TREE.inclusion_proof(i, n) == rfc_path(i, LEAVES[:n]), (i, n)
        for m in range(1, n + 1):
            assert TREE.consistency_proof(m, n) == rfc_subproof(m, LEAVES[:n], True), (m, n)


def test_inclusion_proof_alone_does_not_bind_tree_size() -> None:
    # RFC 9162 property, not a bug: leaf 0's path in size 3 is (leaf 1, leaf 2); read as a
    # path in size 4 the same hashes give the same root. The size must come from the
    # signed checkpoint, never from the proof's sender.
    proof = TREE.inclusion_proof(0, 3)
    verify_inclusion(LEAVES[0], 0, 4, proof, plain_root(3))
    verify_consistency(2, 4, TREE.consistency_proof(2, 3), plain_root(2), plain_root(3))


# --- Error cases -------------------------------------------------------------------------

H = hashlib.sha256(b"any").digest()
PROOF_5_IN_7 = TREE.inclusion_proof(5, 7)  # 3 hashes
PROOF_3_TO_7 = TREE.consistency_proof(3, 7)  # 4 hashes


@pytest.mark.parametrize(
    ("leaf", "index", "size", "proof", "claimed_root", "message"),
    [
        (LEAVES[5], 5, 5, [], plain_root(5), r"^leaf index 5 is not in a tree of size 5$"),
        (LEAVES[0], 0, 0, [], EMPTY_ROOT, r"^leaf index 0 is not in a tree of size 0$"),
        (LEAVES[0], -1, 3, [], H, r"^leaf index -1 and tree size 3 must not be negative$"),
        (
            LEAVES[5][:31],
            5,
            7,
            PROOF_5_IN_7,
            plain_root(7),
            r"^leaf hash is 31 bytes, expected 32$",
        ),
        (
            LEAVES[5],
            5,
            7,
            [*PROOF_5_IN_7[:1], PROOF_5_IN_7[1] + b"\0", *PROOF_5_IN_7[2:]],
            plain_root(7),
            r"^inclusion proof hash 1 is 33 bytes, expected 32$",
        ),
        (
            LEAVES[5],
            5,
            7,
            PROOF_5_IN_7[:2],
            plain_root(7),
            r"^inclusion proof has 2 hashes, expected 3 for index 5 in size 7$",
        ),
        (
            LEAVES[5],
            5,
            7,
            [*PROOF_5_IN_7, H],
            plain_root(7),
            r"^inclusion proof has 4 hashes, expected 3 for index 5 in size 7$",
        ),
        (LEAVES[5], 5, 7, PROOF_5_IN_7, plain_root(7)[:31], r"^root is 31 bytes, expected 32$"),
        (LEAVES[5], 5, 7, PROOF_5_IN_7, b"", r"^root is 0 bytes, expected 32$"),
        (
            LEAVES[5],
            5,
            7,
            PROOF_5_IN_7,
            plain_root(6),
            r"^root mismatch: inclusion proof for index 5",
        ),
        (LEAVES[4], 5, 7, PROOF_5_IN_7, plain_root(7), r"^root mismatch"),
        (LEAVES[0], 0, 1, [], plain_root(2), r"^root mismatch"),
    ],
    ids=[
        "index-equals-size",
        "empty-tree",
        "negative-index",
        "short-leaf-hash",
        "long-proof-hash",
        "proof-too-short",
        "proof-too-long",
        "short-root",
        "empty-root",
        "root-of-other-size",
        "other-leaf",
        "single-leaf-wrong-root",
    ],
)
def test_verify_inclusion_rejects(
    leaf: bytes, index: int, size: int, proof: list[bytes], claimed_root: bytes, message: str
) -> None:
    with pytest.raises(ProofError, match=message):
        verify_inclusion(leaf, index, size, proof, claimed_root)


@pytest.mark.parametrize(
    ("old_size", "new_size", "proof", "old_root", "new_root", "message"),
    [
        (5, 3, [], plain_root(5), plain_root(3), r"^old size 5 is larger than new size 3$"),
        (0, 5, [], EMPTY_ROOT, plain_root(5), r"^consistency proof from size 0 is not allowed$"),
        (0, 0, [], EMPTY_ROOT, EMPTY_ROOT, r"^consistency proof from size 0 is not allowed$"),
        (-1, 5, [], H, H, r"^tree sizes -1 and 5 must not be negative$"),
        (
            3,
            3,
            [H],
            plain_root(3),
            plain_root(3),
            r"^consistency proof between equal sizes 3 has 1 hashes, expected 0$",
        ),
        (3, 3, [], plain_root(3), plain_root(4), r"^root mismatch: old root [0-9a-f]{64} and new"),
        (3, 7, PROOF_3_TO_7, plain_root(3)[:31], plain_root(7), r"^old root is 31 bytes"),
        (3, 7, PROOF_3_TO_7, plain_root(3), plain_root(7) + b"\0", r"^new root is 33 bytes"),
        (
            3,
            7,
            [b"", *PROOF_3_TO_7[1:]],
            plain_root(3),
            plain_root(7),
            r"^consistency proof hash 0 is 0 bytes, expected 32$",
        ),
        (
            3,
            7,
            [],
            plain_root(3),
            plain_root(7),
            r"^consistency proof has 0 hashes, expected 4 from size 3 to size 7$",
        ),
        (
            3,
            7,
            [*PROOF_3_TO_7, H],
            plain_root(3),
            plain_root(7),
            r"^consistency proof has 5 hashes, expected 4 from size 3 to size 7$",
        ),
        (
            3,
            7,
            PROOF_3_TO_7,
            plain_root(2),
            plain_root(7),
            r"^old root mismatch: consistency proof from size 3",
        ),
        (
            3,
            7,
            PROOF_3_TO_7,
            plain_root(3),
            plain_root(6),
            r"^new root mismatch: consistency proof to size 7",
        ),
        (4, 7, TREE.consistency_proof(4, 7), plain_root(3), plain_root(7), r"^new root mismatch"),
    ],
    ids=[
        "old-larger-than-new",
        "from-size-0",
        "both-size-0",
        "negative-size",
        "equal-sizes-non-empty-proof",
        "equal-sizes-different-roots",
        "short-old-root",
        "long-new-root",
        "empty-proof-hash",
        "empty-proof",
        "proof-too-long",
        "wrong-old-root",
        "wrong-new-root",
        "power-of-two-wrong-old-root",
    ],
)
def test_verify_consistency_rejects(
    old_size: int,
    new_size: int,
    proof: list[bytes],
    old_root: bytes,
    new_root: bytes,
    message: str,
) -> None:
    with pytest.raises(ProofError, match=message):
        verify_consistency(old_size, new_size, proof, old_root, new_root)


def test_proof_error_is_a_verification_error() -> None:
    assert issubclass(ProofError, VerificationError)


def test_verify_accepts_any_sequence() -> None:
    verify_inclusion(LEAVES[5], 5, 7, tuple(PROOF_5_IN_7), plain_root(7))
    verify_consistency(3, 7, tuple(PROOF_3_TO_7), plain_root(3), plain_root(7))
    verify_consistency(7, 7, (), plain_root(7), plain_root(7))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: inclusion_proof(7, 7, TREE.full), r"^leaf index 7 is not in a tree of size 7$"),
        (lambda: inclusion_proof(-1, 7, TREE.full), r"^leaf index -1 is not in a tree of size 7$"),
        (
            lambda: consistency_proof(0, 7, TREE.full),
            r"^no consistency proof from size 0 to size 7$",
        ),
        (
            lambda: consistency_proof(8, 7, TREE.full),
            r"^no consistency proof from size 8 to size 7$",
        ),
        (lambda: range_subtrees(3, 2), r"^invalid leaf range \[3, 2\)$"),
        (
            lambda: range_hash(1, 3, TREE.full),
            r"^leaf range \[1, 3\) is not a subtree of any tree$",
        ),
        (lambda: range_hash(4, 12, TREE.full), r"^leaf range \[4, 12\) is not a subtree"),
        (lambda: new_full_subtrees(0, b"short", TREE.full), r"^leaf hash is 5 bytes, expected 32$"),
        (lambda: new_full_subtrees(-1, H, TREE.full), r"^negative leaf index -1$"),
        (lambda: completed_subtrees(0, [H, b"short"], TREE.full),
         r"^leaf hash is 5 bytes, expected 32$"),
        (lambda: completed_subtrees(-1, [H], TREE.full), r"^negative leaf index -1$"),
        (lambda: TREE.root(MAX_N + 1), rf"^tree size {MAX_N + 1} is not in 0..{MAX_N}$"),
    ],
    ids=[
        "inclusion-index-equals-size",
        "inclusion-negative-index",
        "consistency-from-0",
        "consistency-old-larger",
        "range-reversed",
        "range-unaligned",
        "range-too-long-for-alignment",
        "short-leaf-hash",
        "negative-leaf-index",
        "completed-short-leaf-hash",
        "completed-negative-start",
        "memory-tree-beyond-size",
    ],
)
def test_generation_rejects_impossible_requests(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(("level", "index"), [(-1, 0), (0, -1), (0, MAX_N), (20, 0), (1, 150)])
def test_memory_tree_full_refuses_missing_subtrees(level: int, index: int) -> None:
    with pytest.raises(KeyError):
        TREE.full(level, index)


@pytest.mark.parametrize(
    ("start", "end", "parts"),
    [
        (0, 0, []),
        (0, 1, [(0, 0)]),
        (0, 7, [(2, 0), (1, 2), (0, 6)]),
        (8, 16, [(3, 1)]),
        (3, 13, [(0, 3), (2, 1), (2, 2), (0, 12)]),
        (6, 7, [(0, 6)]),
    ],
)
def test_range_subtrees(start: int, end: int, parts: list[tuple[int, int]]) -> None:
    assert range_subtrees(start, end) == parts


def test_range_hash_of_every_rfc_subtree() -> None:
    for start in range(64):
        for end in range(start + 1, 65):
            largest_piece = 1 << ((end - start).bit_length() - 1)
            if start % largest_piece == 0:
                assert range_hash(start, end, TREE.full) == root(LEAVES[start:end]), (start, end)
            else:
                with pytest.raises(ValueError, match="is not a subtree of any tree"):
                    range_hash(start, end, TREE.full)


def test_memory_tree_appends() -> None:
    tree = MemoryTree()
    assert (tree.size, tree.root()) == (0, EMPTY_ROOT)
    assert tree.append(b"first") == 0
    assert tree.append_leaf_hash(leaf_hash(b"second")) == 1
    assert tree.size == 2
    assert list(tree.leaf_hashes) == [leaf_hash(b"first"), leaf_hash(b"second")]
    assert tree.root() == node_hash(leaf_hash(b"first"), leaf_hash(b"second"))
    assert tree.full(1, 0) == tree.root()
    assert tree.inclusion_proof(1) == [leaf_hash(b"first")]
    assert tree.consistency_proof(1) == [leaf_hash(b"second")]


# --- Cost at a million leaves ---------------------------------------------------------------

BIG = 10**6
CALL_BUDGET = 4 * math.log2(BIG) + 8


class CountingFull:
    """A synthetic store of ``size`` leaves that counts reads and refuses incomplete subtrees."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.calls = 0

    def __call__(self, level: int, index: int) -> bytes:
        assert level >= 0 and index >= 0 and (index + 1) << level <= self.size, (level, index)
        self.calls += 1
        return hashlib.sha256(b"%d/%d" % (level, index)).digest()


def _big_sizes() -> list[int]:
    rng = random.Random(9162)
    edges = [1, 2, 3, 2**19 - 1, 2**19, 2**19 + 1, BIG // 2, BIG - 2, BIG - 1]
    return edges + [rng.randrange(1, BIG) for _ in range(40)]


def test_proofs_at_a_million_leaves_read_o_log_n_subtrees() -> None:
    worst = 0
    for position in _big_sizes():
        full = CountingFull(BIG)
        proof = inclusion_proof(position, BIG, full)
        assert len(proof) <= math.ceil(math.log2(BIG))
        worst = max(worst, full.calls)

        full = CountingFull(BIG)
        proof = consistency_proof(position, BIG, full)
        assert len(proof) <= 2 * math.ceil(math.log2(BIG))
        worst = max(worst, full.calls)
    assert worst <= CALL_BUDGET, worst

    full = CountingFull(BIG)
    tree_root(BIG, full)
    assert full.calls == BIG.bit_count()
