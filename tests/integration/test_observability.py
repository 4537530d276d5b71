"""What a node tells its operators: Prometheus metrics scraped over HTTP and one
structured log line per message.

Nodes run in-process with real gRPC over mTLS; each has its own metrics registry and
serves it on a port of its own (port 0: the kernel picks a free one).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from fedharness import client_channel, federation_on, make_federation, signed_envelope, wait_for
from fedharness import running as serving
from prometheus_client.parser import text_string_to_metric_families

from exchange.config import NodeConfig
from exchange.ledger.entries import Entry, EntryKind
from exchange.messages import CaseRequest, Category, NumberReport, Withdrawal
from exchange.node import Node
from exchange.runtime import RunningNode
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc
from nodes.federation import Federation

pytestmark = pytest.mark.network

POLICE, BUREAU, CARRIER = "police.fj", "bureau.fj", "cmcc.fj"
NUMBER = "+8615959000001"
EVIDENCE = "seen at the night market"
BODY = NumberReport(numbers=(NUMBER,), category=Category.FRAUD, evidence_summary=EVIDENCE)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Federation]:
    yield from federation_on(request.param, request, tmp_path / "fed", [POLICE, BUREAU])


def node_of(fed: Federation, node_id: str, **config: Any) -> Node:
    """The member's node, metrics on a free port, witness rounds left to the test."""
    cfg = NodeConfig.from_file(fed.config(node_id))
    config = {"metrics_listen": "127.0.0.1:0", **config}
    return Node.open(replace(cfg, deadlines=replace(cfg.deadlines, witness_interval_seconds=3600.0),
                        **config))


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_scrape_reflects_what_happened(fed: Federation) -> None:
    async def scenario() -> None:
        police, bureau = node_of(fed, POLICE), node_of(fed, BUREAU)
        async with serving(police, bureau) as (rp, rb):
            assert rp.metrics_port and rb.metrics_port and rp.metrics_port != rb.metrics_port
            for _ in range(3):
                await police.send(BUREAU, BODY)
            # To a carrier that is not running: queued, attempts fail and are retried.
            await police.send(CARRIER, CaseRequest(case_number="FJ-1", numbers=(NUMBER,)))
            await wait_for(lambda: rp.outbox.delivered == 3 and rp.outbox.failures >= 1)

            # Sent directly: one accepted, the same again (a duplicate), one refused.
            raw = signed_envelope(police, BUREAU, BODY)
            async with client_channel(police, bureau, rb.port) as channel:
                stub = service_pb2_grpc.ExchangeStub(channel)
                for _ in range(2):
                    await stub.Deliver(service_pb2.DeliverRequest(envelope=raw), timeout=10)
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.Deliver(service_pb2.DeliverRequest(
                        envelope=signed_envelope(police, CARRIER, BODY)), timeout=10)

            await rp.witness.round()  # police witnesses bureau's ledger and cosigns it
            police.metrics.set_overdue("shutdown_notice", 2)

            p = await asyncio.to_thread(scrape, rp.metrics_port)
            b = await asyncio.to_thread(scrape, rb.metrics_port)

            received = "bcx_messages_received_total"
            assert value(b, received, kind="number_report", outcome="accepted", error="") == 4
            assert value(b, received, kind="number_report", outcome="duplicate", error="") == 1
            assert value(b, received, kind="unknown", outcome="refused",
                         error="WrongRecipientError") == 1
            sent = "bcx_messages_sent_total"
            assert value(p, sent, kind="number_report", peer=BUREAU, outcome="delivered",
                         error="") == 3
            assert (value(p, sent, kind="case_request", peer=CARRIER, outcome="retry",
                          error="UNAVAILABLE") or 0) >= 1
            assert value(p, "bcx_delivery_latency_seconds_count", peer=BUREAU) == 3
            assert value(p, "bcx_delivery_latency_seconds_bucket", peer=BUREAU, le="+Inf") == 3
            assert (value(p, "bcx_delivery_latency_seconds_sum", peer=BUREAU) or 0) > 0

            assert value(p, "bcx_outbox_depth", peer=BUREAU) == 0
            assert value(p, "bcx_outbox_depth", peer=CARRIER) == 1
            assert value(p, "bcx_overdue_obligations", kind="shutdown_notice") == 2
            assert value(p, "bcx_witness_status", peer=BUREAU, bcx_witness_status="ok") == 1
            assert value(p, "bcx_witness_status", peer=BUREAU, bcx_witness_status="fork") == 0
            assert value(p, "bcx_node_info", node_id=POLICE, role="police") == 1
            assert value(p, "bcx_directory_version") == 1
            expiry = police.directory.expires_at.timestamp()
            assert value(p, "bcx_directory_expiry_timestamp_seconds") == pytest.approx(expiry)

            for node, samples in ((police, p), (bureau, b)):
                assert value(samples, "bcx_ledger_entries") == node.store.size > 0
                latest = node.store.latest
                assert latest is not None
                assert value(samples, "bcx_ledger_checkpoint_size") == latest.size
                assert (value(samples, "bcx_ledger_checkpoints") or 0) >= 1
            assert value(p, "bcx_witness_status", peer=CARRIER,
                         bcx_witness_status="unreachable") == 1
            # The cosignature police returned is held by bureau for its latest checkpoint.
            assert value(b, "bcx_ledger_cosignatures") == 1
            assert value(b, "bcx_ledger_cosigned_size", witness=POLICE) == \
                value(b, "bcx_ledger_checkpoint_size")
            assert (value(p, "bcx_peer_checkpoints") or 0) >= 1

    asyncio.run(scenario())


def test_two_nodes_in_one_process_count_separately(tmp_path: Path) -> None:
    fed = make_federation(tmp_path)
    police, bureau = node_of(fed, POLICE), node_of(fed, BUREAU)
    police.metrics.set_overdue("case_request", 5)
    names = {m.name for m in bureau.metrics.registry.collect()}
    assert "bcx_overdue_obligations" in names
    assert bureau.metrics.registry.get_sample_value(
        "bcx_overdue_obligations", {"kind": "case_request"}) is None
    assert police.metrics.registry.get_sample_value(
        "bcx_overdue_obligations", {"kind": "case_request"}) == 5


def test_metrics_port_already_taken_fails_the_start(tmp_path: Path) -> None:
    fed = make_federation(tmp_path)

    async def scenario() -> None:
        police = node_of(fed, POLICE)
        async with serving(police) as (rp,):
            bureau = node_of(fed, BUREAU, metrics_listen=f"127.0.0.1:{rp.metrics_port}")
            with pytest.raises(OSError, match="Address already in use"):
                await RunningNode(bureau).start()
            # Nothing of the failed start is left running: its gRPC port is free again.
            port = int(bureau.config.listen.rsplit(":", 1)[1])
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))

    asyncio.run(scenario())


# --- log lines -----------------------------------------------------------------------------------


def test_one_structured_line_per_message_with_ids_and_digests_never_numbers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fed = make_federation(tmp_path)
    unnormalised = "159-5900-0002"

    async def scenario() -> tuple[bytes, int]:
        police, bureau = node_of(fed, POLICE), node_of(fed, BUREAU)
        async with serving(police, bureau) as (rp, rb):
            mid = await police.send(BUREAU, BODY)
            await wait_for(lambda: rp.outbox.delivered == 1)
            async with client_channel(police, bureau, rb.port) as channel:
                with pytest.raises(grpc.aio.AioRpcError):  # the number is not E.164
                    await service_pb2_grpc.ExchangeStub(channel).Deliver(
                        service_pb2.DeliverRequest(envelope=signed_envelope(
                            police, BUREAU, Withdrawal(withdrawn_message_id=bytes(16),
                                                       numbers=(unnormalised,)))), timeout=10)
            received = [(i, e) for i, leaf in bureau.store.leaves(0, 100)
                        if (e := Entry.decode(leaf)).kind is EntryKind.RECEIVED]
            assert len(received) == 1
            return mid, received[0][0]

    with caplog.at_level(logging.INFO):
        mid, leaf = asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("message ")]
    received = [line for line in lines if line.startswith("message received")]
    delivered = [line for line in lines if line.startswith("message delivered")]
    refused = [line for line in lines if line.startswith("message refused")]
    assert len(received) == len(delivered) == len(refused) == 1, lines
    m = re.fullmatch(rf"message received kind=number_report id={mid.hex()} sender=police\.fj "
                     rf"recipient=bureau\.fj digest=([0-9a-f]{{16}}) leaf={leaf} "
                     r"outcome=accepted", received[0])
    assert m, received[0]
    # The sender's line names the same message, digest and receiver's leaf.
    assert re.fullmatch(
        rf"message delivered kind=number_report id={mid.hex()} sender=police\.fj "
        rf"recipient=bureau\.fj digest={m.group(1)} leaf={leaf} outcome=delivered attempts=1 "
        r"latency=\d+\.\d{3}s", delivered[0]), delivered[0]
    assert refused == ["message refused kind=unknown peer=police.fj recipient=bureau.fj "
                       "outcome=refused error=InvalidBodyError"]
    # Never a number or the evidence text, in any record at any level.
    assert "1595900" not in caplog.text and unnormalised not in caplog.text
    assert EVIDENCE not in caplog.text
