"""Regressions found by the process-level delivery tests (test_delivery_crash.py), pinned
here in-process where the moment of failure can be chosen exactly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from fedharness import client_channel, make_federation, running, signed_envelope, wait_for
from sqlalchemy import select

from exchange.config import NodeConfig
from exchange.ledger.entries import Entry, EntryKind
from exchange.messages import Category, NumberReport
from exchange.node import Node
from exchange.schema import inbox
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc

POLICE, BUREAU = "police.fj", "bureau.fj"
BODY = NumberReport(numbers=("+8615959000001",), category=Category.FRAUD)

pytestmark = pytest.mark.network


def node(tmp_path: Path, node_id: str, **limits: int) -> Node:
    if not (tmp_path / "fed").exists():
        make_federation(tmp_path / "fed")
    cfg = NodeConfig.from_file(tmp_path / "fed" / node_id / "node.toml")
    return Node(replace(cfg, limits=replace(cfg.limits, **limits)))


def received_ids(n: Node) -> list[bytes]:
    with n.reader.connect() as conn:
        rows = conn.execute(select(inbox.c.leaf_idx).order_by(inbox.c.leaf_idx)).all()
    return [Entry.decode(n.store.leaf(r.leaf_idx)).message_id for r in rows]


def test_stream_refused_for_overload_mid_way_applies_nothing_after_it(tmp_path: Path) -> None:
    # Regression: with a per-peer limit below the stream's window, envelope k was refused
    # RESOURCE_EXHAUSTED but k+1, k+2… of the same stream were applied; the sender then
    # retried k, and the receiver logged k after k+1: delivery out of order.
    bureau = node(tmp_path, BUREAU, max_pending_per_peer=2)
    police = node(tmp_path, POLICE)
    raws = [signed_envelope(police, BUREAU, BODY) for _ in range(5)]
    admissions: list[int] = []
    third_admission = asyncio.Event()
    real_admit = bureau._admit

    def counting_admit(peer: str) -> None:
        admissions.append(1)
        if len(admissions) == 3:
            third_admission.set()
        real_admit(peer)

    bureau._admit = counting_admit  # type: ignore[method-assign]

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
                await wait_for(lambda: bureau._per_peer_pending.get(POLICE, 0) == 0)
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
