"""Prometheus metrics of one node, on a registry of its own.

Each node has its own ``CollectorRegistry`` (not prometheus_client's global one), so
several nodes in one process — tests, the demo — keep separate counts. Events are
counted where they happen (``received``, ``refused``, ``delivered``, ``delivery_failed``,
``witness_checked``, ``directory_refresh``); state that lives in the database (outbox
depth, ledger size, checkpoints and cosignatures held, the directory in force) is read
when Prometheus scrapes, so it can never drift from the truth.

Label values are node ids, message kinds, error type names and fixed outcome words:
never a number, a name or any other personal data.

Agency code sets the overdue gauge from its scheduler::

    node.metrics.set_overdue("shutdown_notice", 3)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from exchange.config import parse_listen
from exchange.schema import ledger_checkpoints, ledger_cosignatures, outbox, peer_checkpoints

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from exchange.node import Node

log = logging.getLogger(__name__)

# Outcomes of a received message, and of one delivery attempt of a sent one.
ACCEPTED, DUPLICATE, REFUSED = "accepted", "duplicate", "refused"
DELIVERED, RETRY = "delivered", "retry"
# The kind label of a message refused by the checks: until they pass, its claimed kind
# is not trustworthy (the checks do not return it).
UNKNOWN = "unknown"

WITNESS_STATES = ("ok", "no_checkpoint", "fork", "unreachable", "error")

# Queued → receipt verified: milliseconds on loopback, hours while a peer is down.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, float("inf"))


def witness_state(status: str) -> str:
    """The state word of a ``Witness.status`` text (see exchange/transport/witness.py)."""
    if status.startswith("witnessed"):
        return "ok"
    if status.startswith(("FORK", "fork")):
        return "fork"
    if status.startswith("unreachable"):
        return "unreachable"
    if status == "no checkpoint":
        return "no_checkpoint"
    return "error"


class NodeMetrics:
    """The counters, histograms and gauges of one node, and its metrics HTTP server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_received = Counter(
            "bcx_messages_received", "Messages received, by kind and outcome "
            "(accepted, duplicate, refused; error is the refusal's error type)",
            ["kind", "outcome", "error"], registry=r)
        self.messages_sent = Counter(
            "bcx_messages_sent", "Delivery attempts of messages this node signed, by kind, "
            "recipient and outcome (delivered, retry, refused; error is the gRPC status or "
            "error type of a failed attempt)",
            ["kind", "peer", "outcome", "error"], registry=r)
        self.delivery_latency = Histogram(
            "bcx_delivery_latency_seconds",
            "Time from queueing a message to logging its verified receipt, by recipient",
            ["peer"], buckets=LATENCY_BUCKETS, registry=r)
        self.overdue = Gauge(
            "bcx_overdue_obligations",
            "Obligations past their deadline, by kind (set by the agency's scheduler)",
            ["kind"], registry=r)
        self.witness_status = Enum(
            "bcx_witness_status", "Outcome of the last witness check of each peer's ledger",
            ["peer"], states=list(WITNESS_STATES), registry=r)
        self.directory_refreshes = Counter(
            "bcx_directory_refreshes", "Directory refresh attempts, by outcome "
            "(adopted, current, refused, unreachable)", ["outcome"], registry=r)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- events ------------------------------------------------------------------------

    def received(self, kind: str, outcome: str) -> None:
        self.messages_received.labels(kind, outcome, "").inc()

    def refused(self, kind: str, error: BaseException) -> None:
        self.messages_received.labels(kind, REFUSED, type(error).__name__).inc()

    def delivered(self, kind: str, peer: str, latency_seconds: float) -> None:
        self.messages_sent.labels(kind, peer, DELIVERED, "").inc()
        self.delivery_latency.labels(peer).observe(max(latency_seconds, 0.0))

    def delivery_failed(self, kind: str, peer: str, outcome: str, error: str) -> None:
        self.messages_sent.labels(kind, peer, outcome, error).inc()

    def witness_checked(self, peer: str, status: str) -> None:
        self.witness_status.labels(peer).state(witness_state(status))

    def directory_refresh(self, outcome: str) -> None:
        self.directory_refreshes.labels(outcome).inc()

    def set_overdue(self, kind: str, count: int) -> None:
        """Set how many obligations of ``kind`` (a message kind) are past their deadline."""
        self.overdue.labels(kind).set(count)

    # --- state read at scrape time -------------------------------------------------------

    def watch(self, node: Node) -> None:
        """Report ``node``'s ledger, outbox and directory on every scrape."""
        self.registry.register(_NodeState(node))

    # --- serving ---------------------------------------------------------------------------

    def serve(self, listen: str) -> int:
        """Serve /metrics over plain HTTP on ``listen`` (host:port); return the port."""
        from prometheus_client import start_http_server

        host, port = parse_listen(listen, "server.metrics_listen")
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(self._server.server_port)
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def stop_serving(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


@dataclass(frozen=True, slots=True)
class _NodeState:
    """A custom collector: gauges read from the node when Prometheus scrapes."""

    node: Node

    def describe(self) -> Iterable[Metric]:
        return ()  # the families vary with the node's peers; collect() names them

    def collect(self) -> Iterator[Metric]:
        node = self.node
        try:
            yield from self._collect(node)
        except Exception as e:  # noqa: BLE001 - a scrape must not fail because the DB did
            log.warning("metrics: cannot read the state of %s: %s", node.node_id, e)

    def _collect(self, node: Node) -> Iterator[Metric]:
        d = node.directory
        latest = node.store.latest
        yield from node_families(
            node_id=node.node_id, role=node.me.role.value, directory_version=d.version,
            directory_expires_at=d.expires_at, entries=node.store.size,
            checkpoint_size=latest.size if latest else 0,
        )
        peers = sorted(m.node_id for m in d.members if m.node_id != node.node_id)
        yield from stored_families(_read_stored_state(node, peers))


@dataclass(frozen=True, slots=True)
class StoredState:
    """The state a scrape reads from a node's database."""

    outbox_waiting: Mapping[str, int]
    """Messages waiting for a receipt, by recipient."""
    outbox_refused: Mapping[str, int]
    """Messages the recipient refused for good, by recipient."""
    checkpoints: int
    cosignatures: int
    cosigned_size: Mapping[str, int]
    """Largest checkpoint of this ledger each witness has cosigned, by witness."""
    peer_checkpoints: int


def _read_stored_state(node: Node, peers: Iterable[str]) -> StoredState:
    waiting: dict[str, int] = {}
    refused: dict[str, int] = {}
    with node.reader.connect() as conn:
        for peer in peers:
            # One index range per member (ix_outbox_pending): never a scan of delivered rows.
            counts = dict(conn.execute(
                select(outbox.c.refused_at.is_not(None), func.count()).where(
                    outbox.c.recipient == peer, outbox.c.delivered_at.is_(None))
                .group_by(outbox.c.refused_at.is_not(None))).all())
            waiting[peer] = int(counts.get(False, 0))
            refused[peer] = int(counts.get(True, 0))
        checkpoints = conn.scalar(select(func.count()).select_from(ledger_checkpoints))
        cosignatures = conn.scalar(select(func.count()).select_from(ledger_cosignatures))
        cosigned = {witness: int(size) for witness, size in conn.execute(
            select(ledger_cosignatures.c.witness, func.max(ledger_cosignatures.c.size))
            .group_by(ledger_cosignatures.c.witness))}
        held = conn.scalar(select(func.count()).select_from(peer_checkpoints))
    return StoredState(outbox_waiting=waiting, outbox_refused=refused,
                  checkpoints=int(checkpoints or 0), cosignatures=int(cosignatures or 0),
                  cosigned_size=cosigned, peer_checkpoints=int(held or 0))


def node_families(*, node_id: str, role: str, directory_version: int,
                  directory_expires_at: datetime, entries: int,
                  checkpoint_size: int) -> list[Metric]:
    """The gauges of the node itself: who it is, its directory and its ledger's size."""
    info = GaugeMetricFamily("bcx_node_info", "This node's id and role",
                             labels=["node_id", "role"])
    info.add_metric([node_id, role], 1)
    return [
        info,
        GaugeMetricFamily("bcx_directory_version", "Version of the directory in force",
                          value=directory_version),
        GaugeMetricFamily("bcx_directory_expiry_timestamp_seconds",
                          "When the directory in force expires (Unix time)",
                          value=directory_expires_at.timestamp()),
        GaugeMetricFamily("bcx_ledger_entries", "Entries in this node's ledger", value=entries),
        GaugeMetricFamily("bcx_ledger_checkpoint_size",
                          "Tree size of the latest signed checkpoint", value=checkpoint_size),
    ]


def stored_families(stored: StoredState) -> list[Metric]:
    """The gauges of what the database holds: outbox, checkpoints, cosignatures."""
    depth = GaugeMetricFamily("bcx_outbox_depth",
                              "Messages waiting for a receipt, by recipient", labels=["peer"])
    for peer, count in stored.outbox_waiting.items():
        depth.add_metric([peer], count)
    refused = GaugeMetricFamily(
        "bcx_outbox_refused",
        "Messages the recipient refused for good, set aside for an operator",
        labels=["peer"])
    for peer, count in stored.outbox_refused.items():
        refused.add_metric([peer], count)
    cosigned = GaugeMetricFamily(
        "bcx_ledger_cosigned_size",
        "Largest checkpoint of this ledger each witness has cosigned", labels=["witness"])
    for witness, size in stored.cosigned_size.items():
        cosigned.add_metric([witness], size)
    return [
        depth,
        refused,
        GaugeMetricFamily("bcx_ledger_checkpoints", "Checkpoints this node has signed",
                          value=stored.checkpoints),
        GaugeMetricFamily("bcx_ledger_cosignatures",
                          "Witness cosignatures held for this node's checkpoints",
                          value=stored.cosignatures),
        cosigned,
        GaugeMetricFamily("bcx_peer_checkpoints",
                          "Verified checkpoints of peers' ledgers this node holds",
                          value=stored.peer_checkpoints),
    ]
