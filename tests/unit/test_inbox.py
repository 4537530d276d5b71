"""Tests for exchange.inbox without gRPC or a database: the repeat rule, per-peer
admission, InOrder, and the one receive path over a fake intake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import CancelledError
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange import messages
from exchange.errors import (
    ExchangeError,
    InvalidBodyError,
    OverloadedError,
    StorageUnavailableError,
)
from exchange.inbox import (
    Applied,
    InOrder,
    PeerAdmission,
    ReceiveOutcome,
    receive_in_order,
    repeat_of,
)
from exchange.ledger.entries import Receipt
from exchange.storage.unitofwork import Committed

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
MESSAGE_ID = bytes(range(16))
HEADER = messages.Header(message_id=MESSAGE_ID, sender="police.fj", recipient="bureau.fj",
                         created_at=NOW, expires_at=None, in_reply_to=b"", thread="")
DIGEST = b"\x01" * 32


# --- the repeat rule ---------------------------------------------------------------


@pytest.mark.parametrize(("seen", "expected"), [
    (None, None),
    ((7, DIGEST), 7),
    ((0, bytearray(DIGEST)), 0),  # as a driver may hand back a BLOB
], ids=["first-time", "repeat", "repeat-as-bytearray"])
def test_a_message_seen_before_with_the_same_digest_is_a_repeat(
        seen: tuple[int, bytes] | None, expected: int | None) -> None:
    assert repeat_of(HEADER, DIGEST, seen) == expected


def test_a_message_id_used_before_for_another_message_is_refused() -> None:
    with pytest.raises(InvalidBodyError,
                       match=f"message id {MESSAGE_ID.hex()} from police.fj was already used "
                             "for a different message"):
        repeat_of(HEADER, DIGEST, (3, b"\x02" * 32))


# --- admission per peer ------------------------------------------------------------


def test_admission_refuses_a_peer_over_its_limit_and_not_the_others() -> None:
    admission = PeerAdmission(2, retry_after=0.8)
    admission.admit("police.fj")
    admission.admit("police.fj")
    with pytest.raises(OverloadedError,
                       match=r"2 messages from police\.fj are waiting to be logged; retry later"
                       ) as refused:
        admission.admit("police.fj")
    assert refused.value.retry_after == 0.8
    admission.admit("cmcc.fj")  # another peer has its own room
    assert (admission.pending("police.fj"), admission.pending("cmcc.fj")) == (2, 1)
    admission.release("police.fj")
    admission.admit("police.fj")
    assert admission.pending("police.fj") == 2


@given(limit=st.integers(1, 5),
       steps=st.lists(st.tuples(st.sampled_from(["a", "b"]), st.booleans()), max_size=40))
def test_admission_counts_what_it_let_in_and_never_more_than_the_limit(
        limit: int, steps: list[tuple[str, bool]]) -> None:
    admission = PeerAdmission(limit, retry_after=0.5)
    held = {"a": 0, "b": 0}
    for peer, admit in steps:
        if admit:
            if held[peer] < limit:
                admission.admit(peer)
                held[peer] += 1
            else:
                with pytest.raises(OverloadedError):
                    admission.admit(peer)
        elif held[peer]:
            admission.release(peer)
            held[peer] -= 1
        assert admission.pending(peer) == held[peer] <= limit


# --- InOrder -------------------------------------------------------------------------


@pytest.mark.parametrize(("failure", "holds"), [
    (InvalidBodyError("bad body"), False),
    (OverloadedError("busy", retry_after=0.5), True),
    (StorageUnavailableError("database down"), True),
    (CancelledError(), True),
], ids=["refused-for-good", "overloaded", "database-down", "cancelled"])
def test_in_order_holds_the_stream_after_a_failure_for_now_only(
        failure: BaseException, holds: bool) -> None:
    order = InOrder(retry_after=0.25)
    order.failed(failure)
    if not holds:
        order.check(HEADER)
        return
    with pytest.raises(OverloadedError,
                       match=f"message {MESSAGE_ID.hex()} follows one of this stream that "
                             f"was not logged \\({type(failure).__name__}\\); send again "
                             "from that one") as refused:
        order.check(HEADER)
    assert refused.value.retry_after == 0.25


def test_in_order_names_the_first_failure_not_a_later_one() -> None:
    order = InOrder(retry_after=0.5)
    order.failed(StorageUnavailableError("down"))
    order.failed(OverloadedError("busy", retry_after=0.5))
    with pytest.raises(OverloadedError, match=r"\(StorageUnavailableError\)"):
        order.check(HEADER)


# --- the receive path ------------------------------------------------------------------


def outcome_of(raw: bytes) -> ReceiveOutcome:
    receipt = Receipt(leaf=raw, leaf_index=raw[0], checkpoint="", inclusion_proof=())
    return ReceiveOutcome(receipt, duplicate=False)


class FakeIntake:
    """Accepts envelopes as the test says: each gets a future the test resolves; an
    envelope in ``refuse`` is refused by ``accept`` itself."""

    def __init__(self, refuse: dict[bytes, Exception] | None = None) -> None:
        self.retry_after = 0.5
        self.refuse = refuse or {}
        self.accepted: list[bytes] = []
        self.futures: dict[bytes, asyncio.Future[Committed[Applied]]] = {}
        self.in_flight = 0
        self.peak_in_flight = 0
        self.window_bytes: int | None = None

    def accept(self, raw: bytes, peer: str, order: InOrder
               ) -> asyncio.Future[Committed[Applied]]:
        if raw in self.refuse:
            raise self.refuse[raw]
        if self.window_bytes is not None:
            # One envelope is always let in; more only while they fit the window.
            assert self.in_flight == 0 or self.in_flight + len(raw) <= self.window_bytes
        self.in_flight += len(raw)
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self.accepted.append(raw)
        fut: asyncio.Future[Committed[Applied]] = asyncio.get_running_loop().create_future()
        self.futures[raw] = fut
        return fut

    def answer(self, committed: Committed[Applied]) -> ReceiveOutcome:
        raw = self.accepted[committed.result.leaf_idx]
        self.in_flight -= len(raw)
        return outcome_of(raw)

    def commit(self, raw: bytes) -> None:
        self.futures[raw].set_result(
            Committed(Applied(self.accepted.index(raw), duplicate=False), None, ()))


async def envelopes(raws: Sequence[bytes]) -> AsyncIterator[bytes]:
    for raw in raws:
        yield raw


async def collect(intake: FakeIntake, raws: Sequence[bytes], *, accepted: int,
                  commit_in: Sequence[bytes] = ()) -> list[ReceiveOutcome | Exception]:
    """Run the path over ``raws``; once ``accepted`` of them were accepted, commit
    ``commit_in`` (in that order), then every other accepted envelope."""
    async def committer() -> None:
        while len(intake.accepted) < accepted:
            await asyncio.sleep(0)
        for raw in [*commit_in, *(r for r in intake.accepted if r not in commit_in)]:
            if not intake.futures[raw].done():
                intake.commit(raw)
            await asyncio.sleep(0)
    task = asyncio.ensure_future(committer())
    results = [r async for r in receive_in_order(intake, envelopes(raws), "police.fj",
                                                 window=16, window_bytes=1 << 20)]
    await task
    return results


def test_answers_come_in_the_order_of_the_envelopes_whatever_order_they_commit_in() -> None:
    raws = [bytes([i]) * 3 for i in range(5)]
    intake = FakeIntake()
    results = asyncio.run(collect(intake, raws, accepted=5, commit_in=list(reversed(raws))))
    assert results == [outcome_of(r) for r in raws]


def test_an_envelope_refused_for_good_is_refused_alone() -> None:
    raws = [bytes([i]) * 3 for i in range(4)]
    bad = InvalidBodyError("number_report: bad")
    intake = FakeIntake(refuse={raws[1]: bad})
    results = asyncio.run(collect(intake, raws, accepted=3))
    assert results == [outcome_of(raws[0]), bad, outcome_of(raws[2]), outcome_of(raws[3])]


def test_after_a_refusal_for_now_every_later_envelope_gets_it_and_none_is_accepted() -> None:
    raws = [bytes([i]) * 3 for i in range(4)]
    busy = OverloadedError("busy", retry_after=0.5)
    intake = FakeIntake(refuse={raws[1]: busy})
    results = asyncio.run(collect(intake, raws, accepted=1))
    assert results == [outcome_of(raws[0]), busy, busy, busy]
    assert intake.accepted == [raws[0]]


def test_after_a_commit_that_failed_for_now_the_next_envelopes_are_not_accepted() -> None:
    raws = [bytes([i]) * 3 for i in range(3)]
    down = StorageUnavailableError("database down")
    intake = FakeIntake()

    async def scenario() -> list[ReceiveOutcome | Exception]:
        async def fail_first() -> None:
            while not intake.accepted:
                await asyncio.sleep(0)
            intake.futures[raws[0]].set_exception(down)
        task = asyncio.ensure_future(fail_first())
        # A byte window of one envelope: the second is read only once the first settled.
        results = [r async for r in receive_in_order(intake, envelopes(raws), "police.fj",
                                                     window=16, window_bytes=1)]
        await task
        return results
    assert asyncio.run(scenario()) == [down, down, down]
    assert intake.accepted == [raws[0]]


def test_an_error_reading_the_stream_ends_it_after_the_answers_before() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"\x00ok"
        raise ExchangeError("stream broke")

    intake = FakeIntake()

    async def scenario() -> list[ReceiveOutcome | Exception]:
        async def commit_when_read() -> None:
            while not intake.accepted:
                await asyncio.sleep(0)
            intake.commit(b"\x00ok")
        task = asyncio.ensure_future(commit_when_read())
        results = [r async for r in receive_in_order(intake, broken(), "police.fj",
                                                     window=4, window_bytes=1 << 20)]
        await task
        return results
    assert asyncio.run(scenario()) == [outcome_of(b"\x00ok")]


def test_closing_the_answers_early_cancels_what_waits_for_the_ledger() -> None:
    raws = [bytes([i]) * 3 for i in range(4)]
    intake = FakeIntake()

    async def scenario() -> None:
        results = receive_in_order(intake, envelopes(raws), "police.fj", window=4,
                                   window_bytes=1 << 20)
        first = asyncio.ensure_future(results.__anext__())
        while len(intake.accepted) < len(raws):
            await asyncio.sleep(0)
        intake.commit(raws[0])
        assert await first == outcome_of(raws[0])
        await results.aclose()
    asyncio.run(scenario())
    assert [intake.futures[r].cancelled() for r in raws] == [False, True, True, True]


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=12),
       window_bytes=st.integers(1, 100), window=st.integers(1, 6))
def test_what_waits_for_the_ledger_stays_within_the_byte_window(
        sizes: list[int], window_bytes: int, window: int) -> None:
    raws = [bytes([i]) * size for i, size in enumerate(sizes)]
    intake = FakeIntake()
    intake.window_bytes = window_bytes

    async def scenario() -> list[ReceiveOutcome | Exception]:
        done = asyncio.Event()

        async def commit_as_accepted() -> None:
            committed = 0
            while not done.is_set():
                for raw in intake.accepted[committed:]:
                    intake.commit(raw)
                    committed += 1
                await asyncio.sleep(0)
        task = asyncio.ensure_future(commit_as_accepted())
        results = [r async for r in receive_in_order(intake, envelopes(raws), "police.fj",
                                                     window=window, window_bytes=window_bytes)]
        done.set()
        await task
        return results
    assert asyncio.run(scenario()) == [outcome_of(r) for r in raws]
    assert intake.peak_in_flight <= max(window_bytes, *sizes)
