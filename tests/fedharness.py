"""Helpers for integration tests: a federation on loopback with real mTLS and databases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from pgserver import unique_database_name

from exchange import envelope, messages
from exchange.config import NodeConfig
from exchange.identity import Role
from exchange.node import Node
from exchange.runtime import RunningNode
from exchange.transport.client import channel_to
from exchange.transport.server import TLSMaterial, build_server
from exchange.transport.services import LedgerService
from exchange.wire.bcx.v1 import service_pb2_grpc
from nodes.federation import Federation, MemberSpec, create_federation, free_port

DEFAULT_SPECS = (
    ("office.cn", Role.OFFICE, "cn"),
    ("police.fj", Role.POLICE, "fj"),
    ("bureau.fj", Role.BUREAU, "fj"),
    ("cmcc.fj", Role.CARRIER, "fj"),
)


def make_federation(tmp: Path, specs: Sequence[tuple[str, Role, str]] = DEFAULT_SPECS,
                    database_urls: dict[str, str] | None = None, **kw: object) -> Federation:
    members = [MemberSpec(node_id=i, role=r, province=p, organisation=i,
                          endpoint=f"127.0.0.1:{free_port()}") for i, r, p in specs]
    return create_federation(tmp, members, database_urls=database_urls, **kw)  # type: ignore[arg-type]


def load_node(fed: Federation, node_id: str, **kw: object) -> Node:
    return Node.open(NodeConfig.from_file(fed.config(node_id)), **kw)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(*nodes: Node | RunningNode) -> AsyncIterator[list[RunningNode]]:
    """Start each node (a Node gets a plain RunningNode); stop those started, last first."""
    rs = [n if isinstance(n, RunningNode) else RunningNode(n) for n in nodes]
    started: list[RunningNode] = []
    try:
        for r in rs:
            await r.start()
            started.append(r)
        yield rs
    finally:
        for r in reversed(started):
            await r.stop(grace=1)


class ServingWith(RunningNode):
    """A running node whose Exchange service is the one given (to misbehave on purpose)."""

    def __init__(self, node: Node, exchange: service_pb2_grpc.ExchangeServicer) -> None:
        super().__init__(node)
        self._exchange = exchange

    async def start(self) -> int:
        node = self.node
        node.start_writer()
        self.server, self.port, _ = build_server(
            tls=node.tls, listen=self.listen, resolver=node.directories, exchange=self._exchange,
            ledger=LedgerService(node), max_message_bytes=node.config.limits.max_envelope_bytes)
        await self.server.start()
        await self.outbox.start()
        return self.port


def tls_of(node: Node) -> TLSMaterial:
    return node.tls


def client_channel(sender: Node, target: Node, port: int | None = None) -> grpc.aio.Channel:
    member = target.directory.member(target.node_id)
    if port is not None:
        from dataclasses import replace
        member = replace(member, endpoint=f"127.0.0.1:{port}")
    return channel_to(member, sender.tls, max_message_bytes=8 * 1024 * 1024)


def signed_envelope(sender: Node, recipient: str, body: messages.Body, **header: object) -> bytes:
    from datetime import UTC, datetime
    now = header.pop("created_at", None) or datetime.now(UTC)
    h = messages.Header(message_id=header.pop("message_id", None) or messages.new_message_id(now),  # type: ignore[arg-type]
                        sender=header.pop("sender", sender.node_id), recipient=recipient,  # type: ignore[arg-type]
                        created_at=now, **header)  # type: ignore[arg-type]
    payload = messages.encode_message(messages.Message(h, body))
    return envelope.sign(payload, envelope.PAYLOAD_TYPE_MESSAGE, sender.signer).raw


async def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


def federation_on(backend: str, request: pytest.FixtureRequest, tmp: Path,
                  node_ids: Sequence[str]) -> Iterator[Federation]:
    """A federation whose ``node_ids`` keep their databases on ``backend``: "sqlite"
    (files under ``tmp``) or "postgresql" (a database each on the session's test server,
    dropped afterwards). For fixtures parametrized over both back ends."""
    if backend == "sqlite":
        yield make_federation(tmp)
        return
    server = request.getfixturevalue("postgres_server")
    names = [unique_database_name(f"{request.node.name}_{i}") for i in node_ids]
    urls = {i: server.create_database(name) for i, name in zip(node_ids, names, strict=True)}
    try:
        yield make_federation(tmp, database_urls=urls)
    finally:
        if server.running:
            for name in names:
                server.drop_database(name)
