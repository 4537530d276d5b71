"""Ledger leaves and receipts as values, and their one codec to and from protobuf."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exchange.errors import LedgerError, ReceiptError
from exchange.wire.bcx.v1 import ledger_pb2


class EntryKind(enum.IntEnum):
    SENT = ledger_pb2.ENTRY_KIND_SENT
    RECEIVED = ledger_pb2.ENTRY_KIND_RECEIVED
    RECEIPT = ledger_pb2.ENTRY_KIND_RECEIPT
    ACTION = ledger_pb2.ENTRY_KIND_ACTION
    WITNESS = ledger_pb2.ENTRY_KIND_WITNESS
    DIRECTORY = ledger_pb2.ENTRY_KIND_DIRECTORY


_KINDS = {int(k): k for k in EntryKind}


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing a node sent, received, acknowledged or did."""

    kind: EntryKind
    peer: str
    logged_at: datetime
    message_id: bytes = b""
    message_digest: bytes = b""
    envelope: bytes = b""
    detail: bytes = b""
    subject: str = ""

    def encode(self) -> bytes:
        pb = ledger_pb2.LedgerEntry(
            kind=int(self.kind),  # type: ignore[arg-type]
            peer=self.peer,
            message_id=self.message_id,
            message_digest=self.message_digest,
            envelope=self.envelope,
            detail=self.detail,
            subject=self.subject,
        )
        pb.logged_at.FromMicroseconds(to_micros(self.logged_at))
        return pb.SerializeToString(deterministic=True)

    @classmethod
    def decode(cls, leaf: bytes) -> Entry:
        pb = _parse(leaf)
        kind = _KINDS[_kind(pb)]
        micros = _logged_at_micros(pb)
        # EPOCH + timedelta is what Timestamp.ToDatetime gives, at a third of its cost.
        return cls(
            kind=kind,
            peer=pb.peer,
            logged_at=EPOCH + timedelta(microseconds=micros),
            message_id=pb.message_id,
            message_digest=pb.message_digest,
            envelope=pb.envelope,
            detail=pb.detail,
            subject=pb.subject,
        )


IndexColumns = tuple[int, str, bytes | None, bytes | None, int]
"""``ledger_leaves``' columns that repeat a leaf's content: kind, peer, message_id,
message_digest (``None`` when empty) and logged_at in microseconds since the epoch."""


def index_columns(leaf: bytes) -> IndexColumns:
    """What the indexed columns of ``leaf``'s row must hold.

    Raises :class:`LedgerError` exactly where :meth:`Entry.decode` does, for a fraction
    of its cost: `bcx ledger verify` runs it on every leaf.
    """
    pb = _parse(leaf)
    return (_kind(pb), pb.peer, pb.message_id or None, pb.message_digest or None,
            _logged_at_micros(pb))


def _parse(leaf: bytes) -> ledger_pb2.LedgerEntry:
    try:
        return ledger_pb2.LedgerEntry.FromString(leaf)
    except Exception as e:
        raise LedgerError(f"ledger leaf does not decode: {e}") from e


def _kind(pb: ledger_pb2.LedgerEntry) -> int:
    kind = pb.kind
    if kind not in _KINDS:
        raise LedgerError(f"ledger leaf does not decode: {kind} is not a valid EntryKind")
    return kind


def _logged_at_micros(pb: ledger_pb2.LedgerEntry) -> int:
    """``logged_at`` in microseconds (rounded toward zero, as Timestamp.ToDatetime does),
    refused where no aware datetime can hold it."""
    logged_at = pb.logged_at
    seconds, nanos = logged_at.seconds, logged_at.nanos
    if not 0 <= nanos < 1_000_000_000:
        raise LedgerError(f"ledger leaf does not decode: logged_at has {nanos} nanoseconds")
    micros = seconds * 1_000_000 + nanos // 1000
    if not _MIN_MICROS <= micros <= _MAX_MICROS:
        raise LedgerError(f"ledger leaf does not decode: logged_at {seconds} s is out of "
                          "range")
    return micros


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof that a receiver logged a message: its RECEIVED leaf, index, checkpoint, path."""

    leaf: bytes
    leaf_index: int
    checkpoint: str
    inclusion_proof: tuple[bytes, ...]

    def encode(self) -> bytes:
        return self.to_pb().SerializeToString(deterministic=True)

    def to_pb(self) -> ledger_pb2.Receipt:
        return ledger_pb2.Receipt(
            leaf=self.leaf,
            leaf_index=self.leaf_index,
            checkpoint=self.checkpoint,
            inclusion_proof=list(self.inclusion_proof),
        )

    @classmethod
    def from_pb(cls, pb: ledger_pb2.Receipt) -> Receipt:
        return cls(pb.leaf, pb.leaf_index, pb.checkpoint, tuple(pb.inclusion_proof))

    @classmethod
    def decode(cls, data: bytes) -> Receipt:
        pb = ledger_pb2.Receipt()
        try:
            pb.ParseFromString(data)
        except Exception as e:
            raise ReceiptError(f"receipt does not decode: {e}") from e
        return cls.from_pb(pb)


def to_micros(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("naive datetime; bcx uses aware UTC times")
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MICROS = to_micros(datetime.min.replace(tzinfo=UTC))
_MAX_MICROS = to_micros(datetime.max.replace(tzinfo=UTC))
