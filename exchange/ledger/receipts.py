"""Verifying what a receiver hands back: receipts, and its checkpoints over time. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exchange import envelope as dsse
from exchange.errors import ExchangeError, ForkError, NoteError, ProofError, ReceiptError
from exchange.ledger import merkle, note
from exchange.ledger.entries import Entry, EntryKind, Receipt


def log_origin(trust_domain: str, node_id: str) -> str:
    """A node's ledger origin (docs/formats.md#checkpoints-signed-notes)."""
    return f"{trust_domain}/{node_id}"


def verify_receipt(
    receipt: Receipt,
    *,
    envelope: bytes,
    sender: str,
    log_verifier: note.Verifier,
    origin: str,
    known_checkpoints: dict[str, note.Checkpoint] | None = None,
    message_digest: bytes | None = None,
) -> note.Checkpoint:
    """Check that ``receipt`` proves the receiver logged exactly ``envelope`` from ``sender``,
    under that envelope's message digest (``message_digest`` if the caller holds it, else
    computed from ``envelope``).

    Returns the receiver's checkpoint. ``known_checkpoints`` caches checkpoint texts already
    verified, so each distinct checkpoint's signature is checked once.
    """
    cp = known_checkpoints.get(receipt.checkpoint) if known_checkpoints is not None else None
    if cp is None:
        try:
            cp, _, _ = note.open_checkpoint(receipt.checkpoint, log_verifier, origin=origin)
        except NoteError as e:
            raise ReceiptError(f"receipt checkpoint does not verify: {e}") from e
        if known_checkpoints is not None:
            known_checkpoints[receipt.checkpoint] = cp
    entry = Entry.decode(receipt.leaf)
    if entry.kind is not EntryKind.RECEIVED:
        raise ReceiptError(f"receipt leaf is a {entry.kind.name} entry, not RECEIVED")
    if entry.peer != sender:
        raise ReceiptError(f"receipt leaf records sender {entry.peer!r}, not {sender!r}")
    if entry.envelope != envelope:
        raise ReceiptError("receipt leaf holds a different envelope than the one sent")
    if message_digest is None:
        message_digest = envelope_digest(envelope)
    if entry.message_digest != message_digest:
        # Lookups by digest (inclusion proofs for third parties) would not find it.
        raise ReceiptError("receipt leaf records a different message digest than the "
                           "envelope's")
    if receipt.leaf_index >= cp.size:
        raise ReceiptError(
            f"receipt leaf index {receipt.leaf_index} is outside checkpoint size {cp.size}"
        )
    try:
        merkle.verify_inclusion(
            merkle.leaf_hash(receipt.leaf), receipt.leaf_index, cp.size,
            receipt.inclusion_proof, cp.root,
        )
    except ProofError as e:
        raise ReceiptError(f"receipt inclusion proof does not verify: {e}") from e
    return cp


def envelope_digest(raw: bytes) -> bytes:
    """The message digest of an envelope as sent (SHA-256 of its payload)."""
    try:
        return dsse.parse(raw, max_bytes=len(raw)).digest
    except ExchangeError as e:
        raise ReceiptError(f"the envelope sent does not parse: {e}") from e


@dataclass(frozen=True, slots=True)
class ConsistencyCheck:
    """Two checkpoints of one origin and the proof that the smaller is a prefix of the larger."""

    older: note.Checkpoint
    newer: note.Checkpoint
    proof: Sequence[bytes]


def check_consistent(check: ConsistencyCheck) -> None:
    """Raise ForkError if the two checkpoints cannot both be honest states of one log."""
    a, b = check.older, check.newer
    if a.origin != b.origin:
        raise ForkError(f"checkpoints of different logs: {a.origin!r} and {b.origin!r}")
    if a.size > b.size:
        a, b = b, a
    if a.size == b.size:
        if a.root != b.root:
            raise ForkError(f"{a.origin}: two different roots signed for size {a.size}")
        return
    if a.size == 0:
        return
    try:
        merkle.verify_consistency(a.size, b.size, check.proof, a.root, b.root)
    except ProofError as e:
        raise ForkError(
            f"{a.origin}: checkpoint of size {b.size} is not consistent with size {a.size}: {e}"
        ) from e
