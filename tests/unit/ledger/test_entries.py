"""Entry.decode: every stored leaf either decodes to the Entry that was encoded, or is
refused with LedgerError (never another exception: the audit names such a leaf)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.errors import LedgerError
from exchange.ledger.entries import Entry, EntryKind
from exchange.wire.bcx.v1 import ledger_pb2


@given(kind=st.sampled_from(EntryKind),
       logged_at=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                              timezones=st.just(UTC)),
       peer=st.text(max_size=20), blob=st.binary(max_size=64))
def test_decode_gives_back_what_was_encoded(kind: EntryKind, logged_at: datetime, peer: str,
                                            blob: bytes) -> None:
    entry = Entry(kind, peer, logged_at, message_id=blob[:16], message_digest=blob,
                  envelope=blob, detail=blob, subject=peer)
    assert Entry.decode(entry.encode()) == entry


def _leaf(kind: int = 2, seconds: int = 0, nanos: int = 0) -> bytes:
    pb = ledger_pb2.LedgerEntry(kind=kind, peer="police.fj")  # type: ignore[arg-type]
    pb.logged_at.seconds = seconds
    pb.logged_at.nanos = nanos
    return pb.SerializeToString()


@pytest.mark.parametrize(("leaf", "message"), [
    (b"\xff\xff", "ledger leaf does not decode"),
    (_leaf(kind=77), "77 is not a valid EntryKind"),
    (_leaf(nanos=-1), "logged_at has -1 nanoseconds"),
    (_leaf(nanos=1_000_000_000), "logged_at has 1000000000 nanoseconds"),
    (_leaf(seconds=10**12), "logged_at 1000000000000 s is out of range"),
])
def test_undecodable_leaf_is_a_ledger_error(leaf: bytes, message: str) -> None:
    with pytest.raises(LedgerError, match=message):
        Entry.decode(leaf)
