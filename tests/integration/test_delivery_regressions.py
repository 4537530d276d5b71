"""Regressions found by the process-level delivery tests (test_delivery_crash.py), pinned
here in-process where the moment of failure can be chosen exactly."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from fedharness import client_channel, make_federation, running, signed_envelope, wait_for
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from exchange.config import NodeConfig
from exchange.errors import ExchangeError
from exchange.ledger.entries import Entry, EntryKind
from exchange.messages import Category, NumberReport
from exchange.node import Node
from exchange.runtime import RunningNode
from exchange.schema import inbox, outbox
from exchange.transport.server import build_server
from exchange.transport.services import ExchangeService, LedgerService
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc

OFFICE, POLICE, BUREAU = "office.cn", "police.fj", "bureau.fj"
BODY = NumberReport(numbers=("+8615959000001",), category=Category.FRAUD)

pytestmark = pytest.mark.network


def node(tmp_path: Path, node_id: str, *, limits: dict[str, int] | None = None,
         delivery: dict[str, float] | None = None) -> Node:
    """The member's node (one federation per test), with some knobs changed."""
    if not (tmp_path / "fed").exists():
        make_federation(tmp_path / "fed")
    cfg = NodeConfig.from_file(tmp_path / "fed" / node_id / "node.toml")
    return Node.open(replace(cfg, limits=replace(cfg.limits, **(limits or {})),
                        delivery=replace(cfg.delivery, **(delivery or {}))))


def received_ids(n: Node) -> list[bytes]:
    with n.reader.connect() as conn:
        rows = conn.execute(select(inbox.c.leaf_idx).order_by(inbox.c.leaf_idx)).all()
    return [Entry.decode(n.store.leaf(r.leaf_idx)).message_id for r in rows]


def test_stream_refused_for_overload_mid_way_applies_nothing_after_it(tmp_path: Path) -> None:
    # Regression: with a per-peer limit below the stream's window, envelope k was refused
    # RESOURCE_EXHAUSTED but k+1, k+2… of the same stream were applied; the sender then
    # retried k, and the receiver logged k after k+1: delivery out of order.
    bureau = node(tmp_path, BUREAU, limits={"max_pending_per_peer": 2})
    police = node(tmp_path, POLICE)
    raws = [signed_envelope(police, BUREAU, BODY) for _ in range(5)]
    admissions: list[int] = []
    third_admission = asyncio.Event()
    real_admit = bureau.inbox.admission.admit

    def counting_admit(peer: str) -> None:
        admissions.append(1)
        if len(admissions) == 3:
            third_admission.set()
        real_admit(peer)

    bureau.inbox.admission.admit = counting_admit  # type: ignore[method-assign]

    async def scenario() -> None:
        async with running(bureau) as (rb,):
            release = threading.Event()
            bureau.committer.submit(lambda txn: release.wait(30))  # the writer is busy

            async def requests() -> AsyncIterator[service_pb2.DeliverRequest]:
                for raw in raws[:3]:
                    yield service_pb2.DeliverRequest(envelope=raw)
                # The third was refused: the two before it wait for the busy writer.
                await asyncio.wait_for(third_admission.wait(), 30)
                release.set()
                await wait_for(lambda: bureau.inbox.admission.pending(POLICE) == 0)
                # Room again: an envelope now would be admitted, unless the stream holds.
                for raw in raws[3:]:
                    yield service_pb2.DeliverRequest(envelope=raw)

            async with client_channel(police, bureau, rb.port) as ch:
                call = service_pb2_grpc.ExchangeStub(ch).DeliverStream(requests(), timeout=60)
                responses = [r async for r in call]
            assert [r.HasField("receipt") for r in responses] == [True, True, False, False, False]
            assert {r.error_code for r in responses[2:]} == \
                {grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}
            assert len(received_ids(bureau)) == 2

    asyncio.run(scenario())
    police.engine.dispose()


class BreakingService(ExchangeService):
    """Answers the first ``good`` envelopes of a stream, then breaks it (peer gone)."""

    def __init__(self, node: Node, good: int) -> None:
        super().__init__(node.inbox, node.directories, stream_window=node.config.limits.stream_window)
        self.good = good
        self.broken = 0

    async def DeliverStream(self, request_iterator, context):  # type: ignore[no-untyped-def,override]
        answered = 0
        async for response in super().DeliverStream(request_iterator, context):
            if answered == self.good and not self.broken:
                self.broken += 1
                await context.abort(grpc.StatusCode.UNAVAILABLE, "peer went away")
            answered += 1
            yield response


class ServingWith(RunningNode):
    def __init__(self, node: Node, exchange: ExchangeService) -> None:
        super().__init__(node)
        self._exchange = exchange

    async def start(self) -> int:
        self.node.start_writer()
        self.server, self.port, _ = build_server(
            tls=self.node.tls, listen=self.listen, resolver=self.node.directories, exchange=self._exchange,
            ledger=LedgerService(self.node),
            max_message_bytes=self.node.config.limits.max_envelope_bytes)
        await self.server.start()
        return self.port


def test_stream_broken_midway_keeps_the_receipts_before_the_break(tmp_path: Path) -> None:
    # Regression: when a DeliverStream broke after k receipts had come back, the sender
    # threw those k receipts away (no RECEIPT logged) and charged the failure to the first
    # message of the batch, which the receiver had long logged; the retry started over
    # from there instead of from the first message without a receipt.
    bureau = node(tmp_path, BUREAU)
    # A long backoff: the state after the break stays put while the test looks at it.
    police = node(tmp_path, POLICE, delivery={"backoff_initial_seconds": 30.0,
                                              "backoff_max_seconds": 60.0})
    service = BreakingService(bureau, good=5)

    async def scenario() -> None:
        rb = ServingWith(bureau, service)
        async with running(police):
            await rb.start()
            try:
                sent = await police.run_work(lambda ctx: [ctx.send(BUREAU, BODY)
                                                          for _ in range(20)])
                await wait_for(lambda: any(r.attempts for r in outbox_rows(police)))
                rows = outbox_rows(police)
                assert [r.delivered_at is not None for r in rows] == [True] * 5 + [False] * 15
                assert [r.attempts for r in rows] == [0] * 5 + [1] + [0] * 14
                receipted = [e.message_id for e in police_entries(police, EntryKind.RECEIPT)]
                assert receipted == sent[:5]
                assert service.broken == 1
            finally:
                await rb.stop(grace=1)

    asyncio.run(scenario())


def outbox_rows(n: Node) -> list[Any]:
    with n.reader.connect() as conn:
        return list(conn.execute(select(outbox).order_by(outbox.c.seq)))


def police_entries(n: Node, kind: EntryKind) -> list[Entry]:
    return [e for _, leaf in n.store.leaves(0, n.store.size + 1)
            if (e := Entry.decode(leaf)).kind is kind]


def test_sender_waits_at_least_the_retry_hint_of_an_overloaded_receiver(tmp_path: Path) -> None:
    # Regression: the receiver answered RESOURCE_EXHAUSTED with a retry-after-ms trailer,
    # but the sender never read it and came back after its own (here much shorter) backoff.
    # The hint is the receiver's [limits] retry_after_ms (500 by default; 800 here).
    bureau = node(tmp_path, BUREAU, limits={"max_pending": 1, "retry_after_ms": 800})
    police = node(tmp_path, POLICE, delivery={"backoff_initial_seconds": 0.001,
                                              "backoff_max_seconds": 0.002})

    async def scenario() -> None:
        async with running(bureau, police):
            release = threading.Event()
            bureau.committer.submit(lambda txn: release.wait(30))  # the writer is full
            try:
                before = time.time()
                await police.send(BUREAU, BODY)
                await wait_for(lambda: any(r.attempts for r in outbox_rows(police)))
                row = outbox_rows(police)[0]
                assert "RESOURCE_EXHAUSTED" in row.last_error
                # The hint is 0.8 s; the sender's own backoff would be at most 2 ms.
                assert row.next_attempt_at >= (before + 0.8) * 1e6
            finally:
                release.set()
            await wait_for(lambda: all(r.delivered_at for r in outbox_rows(police)))

    asyncio.run(scenario())


def stream_readers() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks()
            if t.get_coro().__qualname__ == "_Stream.admit_all"]  # type: ignore[union-attr]


def test_cancelled_streams_leave_no_reader_task_behind(tmp_path: Path) -> None:
    # Regression: when a sender cancelled a DeliverStream whose window was full, the task
    # reading its requests stayed blocked for good on putting its end marker into the
    # full queue, holding the queue and the envelopes in it: memory grew with every
    # cancelled stream.
    bureau = node(tmp_path, BUREAU, limits={"stream_window": 4})
    police = node(tmp_path, POLICE)
    raws = [signed_envelope(police, BUREAU, BODY) for _ in range(40)]

    async def scenario() -> None:
        async with running(bureau) as (rb,):
            release = threading.Event()
            bureau.committer.submit(lambda txn: release.wait(30))  # windows fill up
            async with client_channel(police, bureau, rb.port) as ch:
                for k in range(5):
                    call = service_pb2_grpc.ExchangeStub(ch).DeliverStream(
                        iter([service_pb2.DeliverRequest(envelope=r)
                              for r in raws[k * 8:(k + 1) * 8]]), timeout=60)
                    await wait_for(lambda: len(stream_readers()) == 1)
                    call.cancel()
                    await wait_for(lambda: not stream_readers())
            release.set()

    asyncio.run(scenario())
    police.engine.dispose()


def test_a_stream_of_large_envelopes_holds_at_most_its_byte_window_on_the_receiver(
        tmp_path: Path) -> None:
    # Regression: the receiver bounded a stream by envelope count only; 256 bulk messages
    # of a thousand numbers each, decoded and waiting for the ledger, took a bureau past
    # 250 MB. With a byte window, what waits is bounded by bytes, and a window smaller
    # than one envelope still lets one through at a time.
    big = NumberReport(numbers=tuple(f"+86159590{i:05d}" for i in range(1000)),
                       category=Category.FRAUD)
    police = node(tmp_path, POLICE)
    raws = [signed_envelope(police, BUREAU, big) for _ in range(12)]
    window = 3 * len(raws[0])
    bureau = node(tmp_path, BUREAU, limits={"stream_window_bytes": window})
    # Envelopes of this stream handed to the ledger writer and not yet logged, counted
    # as each one is handed over. Counted on the writer's own futures, resolved the moment
    # a batch commits: the event loop learns of it a little later, so a count kept there
    # could still hold an envelope whose bytes the stream had already released.
    handed: list[Any] = []
    waiting: list[int] = []
    real_submit = bureau.committer.submit

    def watching_submit(fn: Any, **kw: Any) -> Any:
        future = real_submit(fn, **kw)
        if kw.get("on_failure") is not None:  # a stream's message (InOrder), not other work
            handed.append(future)
            waiting.append(sum(not f.done() for f in handed))
        return future

    bureau.committer.submit = watching_submit  # type: ignore[method-assign]

    async def scenario() -> list[Any]:
        async with running(bureau) as (rb,):
            async def requests() -> AsyncIterator[service_pb2.DeliverRequest]:
                for raw in raws:
                    yield service_pb2.DeliverRequest(envelope=raw)
            async with client_channel(police, bureau, rb.port) as channel:
                stub = service_pb2_grpc.ExchangeStub(channel)
                return [r async for r in stub.DeliverStream(requests(), timeout=60)]

    answers = asyncio.run(scenario())
    assert [a.error_code for a in answers] == [0] * len(raws)
    assert len(received_ids(bureau)) == len(raws)
    # Never more than the window's three envelopes waiting for the ledger at once (and
    # without the bound, all twelve would be let in together).
    assert len(waiting) == len(raws)
    assert max(waiting) <= 3


def test_stream_whose_message_fails_on_the_database_applies_nothing_after_it(
        tmp_path: Path) -> None:
    # Regression: the ledger writer committed a stream's messages in batches; when the
    # batch holding message k failed on the database (UNAVAILABLE, retry later) and the
    # next batch succeeded, k+1… were logged and receipted; the sender then resent k,
    # and the receiver logged k after k+1: delivery out of order.
    bureau = node(tmp_path, BUREAU, limits={"max_batch": 1})
    police = node(tmp_path, POLICE)
    raws = [signed_envelope(police, BUREAU, BODY) for _ in range(5)]
    real_flush = bureau.store._flush
    armed: list[bool] = []

    def flush_failing_once(cursor: Any) -> None:
        if armed and armed[0]:
            armed[0] = False
            raise OperationalError("INSERT INTO ledger_leaves", None,
                                   sqlite3.OperationalError("database is locked"))
        real_flush(cursor)

    bureau.store._flush = flush_failing_once  # type: ignore[method-assign]

    async def scenario() -> None:
        async with running(bureau) as (rb,):
            release = threading.Event()
            bureau.committer.submit(lambda txn: release.wait(30))  # the writer is busy
            armed.append(True)  # the first batch after it fails on the database

            async def requests() -> AsyncIterator[service_pb2.DeliverRequest]:
                for raw in raws:
                    yield service_pb2.DeliverRequest(envelope=raw)
                # All five wait for the writer, one batch each; then let it go.
                await wait_for(lambda: bureau.inbox.admission.pending(POLICE) == 5)
                release.set()

            async with client_channel(police, bureau, rb.port) as ch:
                call = service_pb2_grpc.ExchangeStub(ch).DeliverStream(requests(), timeout=60)
                responses = [r async for r in call]
            assert [r.HasField("receipt") for r in responses] == [False] * 5
            assert responses[0].error_code == grpc.StatusCode.UNAVAILABLE.value[0]
            assert {r.error_code for r in responses[1:]} == \
                {grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}
            assert "send again from that one" in responses[1].error_message
            assert received_ids(bureau) == []

            # The sender resends all five, in order: now they are logged in order.
            async with client_channel(police, bureau, rb.port) as ch:
                call = service_pb2_grpc.ExchangeStub(ch).DeliverStream(
                    _each(raws), timeout=60)
                again = [r async for r in call]
            assert all(r.HasField("receipt") for r in again)
            assert received_ids(bureau) == [Entry.decode(r.receipt.leaf).message_id
                                            for r in again]

    asyncio.run(scenario())
    police.engine.dispose()


async def _each(raws: list[bytes]) -> AsyncIterator[service_pb2.DeliverRequest]:
    for raw in raws:
        yield service_pb2.DeliverRequest(envelope=raw)


class SilentService(ExchangeService):
    """Takes Deliver calls and never answers them (a receiver hung on its database)."""

    async def Deliver(self, request, context):  # type: ignore[no-untyped-def,override]
        await asyncio.sleep(3600)


def test_a_receiver_that_never_answers_fails_the_call_after_the_configured_timeout(
        tmp_path: Path) -> None:
    # [delivery] call_timeout_seconds bounds the wait for a receipt; the message stays
    # queued with the timeout as its last error, and is retried.
    bureau = node(tmp_path, BUREAU)
    police = node(tmp_path, POLICE, delivery={"call_timeout_seconds": 0.3,
                                              "backoff_initial_seconds": 30.0,
                                              "backoff_max_seconds": 60.0})
    service = SilentService(bureau.inbox, bureau.directories, stream_window=bureau.config.limits.stream_window)

    async def scenario() -> None:
        async with running(ServingWith(bureau, service), police):
            started = time.monotonic()
            await police.send(BUREAU, BODY)
            await wait_for(lambda: any(r.attempts for r in outbox_rows(police)), timeout=10)
            waited = time.monotonic() - started
            [row] = outbox_rows(police)
            assert row.delivered_at is None and "DEADLINE_EXCEEDED" in row.last_error
            assert 0.3 <= waited < 10, waited  # the configured 0.3 s, not the default 30 s

    asyncio.run(scenario())


@pytest.mark.parametrize("count", [3, 12], ids=["unary", "stream"])
def test_an_envelope_over_the_receivers_size_limit_is_set_aside_not_retried_forever(
        tmp_path: Path, count: int) -> None:
    # Regression: the receiver refused an envelope over its [limits] max_envelope_bytes
    # RESOURCE_EXHAUSTED, as it refuses overload; the sender read that as "retry later",
    # so the message stayed at the head of its peer's queue for ever and every message
    # queued behind it waited too. It is refused for good: set aside, escalated to the
    # office once, and the messages after it are delivered.
    limit = 16_384
    bureau = node(tmp_path, BUREAU, limits={"max_envelope_bytes": limit})
    police = node(tmp_path, POLICE)
    big = NumberReport(numbers=tuple(f"+86159590{i:05d}" for i in range(2000)),
                       category=Category.FRAUD)
    bodies = [BODY] * count
    bodies[1] = big

    async def scenario() -> None:
        async with running(bureau, police) as (_, rp):
            # Queued in one transaction, so that 12 go as one DeliverStream.
            mids = await police.run_work(lambda ctx: [ctx.send(BUREAU, b) for b in bodies])
            oversize = mids[1]
            rest = [m for m in mids if m != oversize]
            delivered = [rp.outbox.watch(m) for m in rest]
            set_aside = rp.outbox.watch(oversize)
            await asyncio.wait_for(asyncio.gather(*delivered), timeout=20)
            with pytest.raises(ExchangeError, match=(
                    rf"refused message {oversize.hex()} for good: RESOURCE_EXHAUSTED: "
                    rf"envelope is \d+ bytes, over the limit of {limit}$")):
                await asyncio.wait_for(set_aside, timeout=20)
            # Longer than the first backoff (0.5 s to 1 s): nothing is sent again.
            await asyncio.sleep(1.5)
            rows = outbox_rows(police)
            row = next(r for r in rows if r.message_id == oversize)
            assert row.refused_at is not None and row.delivered_at is None
            assert row.escalated and row.attempts == 1
            assert "over the limit" in row.last_error
            assert all(r.delivered_at is not None for r in rows if r.message_id in rest)
            assert [r.kind for r in rows if r.recipient == OFFICE] == ["escalation"]
            refused = [e.message_id for e in police_entries(police, EntryKind.ACTION)
                       if e.subject == "delivery-refused"]
            assert refused == [oversize]
            # The receiver logged the ones after it, in the order they were sent.
            assert received_ids(bureau) == rest

    asyncio.run(scenario())
    police.engine.dispose()
