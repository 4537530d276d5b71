"""Entry.decode: every stored leaf either decodes to the Entry that was encoded, or is
refused with LedgerError (never another exception: the audit names such a leaf)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.errors import LedgerError
from exchange.ledger.entries import Entry, EntryKind, index_columns, to_micros
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


@given(kind=st.sampled_from(EntryKind),
       logged_at=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                              timezones=st.just(UTC)),
       peer=st.text(max_size=20), blob=st.binary(max_size=64))
def test_index_columns_are_what_the_store_writes(kind: EntryKind, logged_at: datetime,
                                                  peer: str, blob: bytes) -> None:
    entry = Entry(kind, peer, logged_at, message_id=blob[:16], message_digest=blob,
                  envelope=blob, subject=peer)
    # As LedgerStore fills the columns of a leaf's row.
    assert index_columns(entry.encode()) == (
        int(entry.kind), entry.peer, entry.message_id or None, entry.message_digest or None,
        to_micros(entry.logged_at))


@given(seconds=st.integers(min_value=-(2**63), max_value=2**63 - 1),
       nanos=st.integers(min_value=-(2**31), max_value=2**31 - 1),
       kind=st.integers(min_value=-3, max_value=9))
def test_index_columns_refuse_what_decode_refuses(seconds: int, nanos: int, kind: int) -> None:
    leaf = _leaf(kind=kind, seconds=seconds, nanos=nanos)
    try:
        entry = Entry.decode(leaf)
    except LedgerError as e:
        with pytest.raises(LedgerError, match=f"^{re.escape(str(e))}$"):
            index_columns(leaf)
    else:
        assert index_columns(leaf)[::4] == (int(entry.kind), to_micros(entry.logged_at))


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
    with pytest.raises(LedgerError, match=message):
        index_columns(leaf)


@pytest.mark.parametrize(("seconds", "nanos", "accepted"), [
    (-62135596800, 0, True),  # 0001-01-01T00:00:00Z
    (-62135596801, 999_999_999, False),
    (253402300799, 999_999_999, True),  # 9999-12-31T23:59:59.999999999Z
    (253402300800, 0, False),
])
def test_logged_at_is_accepted_up_to_the_limits_of_datetime(seconds: int, nanos: int,
                                                           accepted: bool) -> None:
    leaf = _leaf(seconds=seconds, nanos=nanos)
    if accepted:
        assert to_micros(Entry.decode(leaf).logged_at) == index_columns(leaf)[4]
    else:
        with pytest.raises(LedgerError, match="out of range"):
            index_columns(leaf)
        with pytest.raises(LedgerError, match="out of range"):
            Entry.decode(leaf)
