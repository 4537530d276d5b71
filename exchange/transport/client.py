"""Channels to peers: mutual TLS, bound by name to the member the caller meant to reach."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from exchange.identity import Directory, Member
from exchange.transport.server import TLSMaterial
from exchange.wire.bcx.v1 import service_pb2_grpc


def channel_to(member: Member, tls: TLSMaterial, *, max_message_bytes: int) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem
    )
    return grpc.aio.secure_channel(
        member.endpoint,
        credentials,
        options=[
            # gRPC's own name check then binds the connection to this member's certificate.
            ("grpc.ssl_target_name_override", member.node_id),
            ("grpc.max_send_message_length", max_message_bytes + 64 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 5_000),
        ],
    )


class Peers:
    """One channel per peer, reopened when the peer's endpoint changes in the directory."""

    def __init__(self, tls: TLSMaterial, directory: Callable[[], Directory], *,
                 max_message_bytes: int) -> None:
        self._tls = tls
        self._directory = directory
        self._max = max_message_bytes
        self._channels: dict[str, tuple[str, grpc.aio.Channel]] = {}
        self._closing: set[asyncio.Future[None]] = set()

    def channel(self, node_id: str) -> grpc.aio.Channel:
        member = self._directory().member(node_id)
        held = self._channels.get(node_id)
        if held is not None and held[0] == member.endpoint:
            return held[1]
        if held is not None:
            self._closing.add(asyncio.ensure_future(held[1].close()))
        ch = channel_to(member, self._tls, max_message_bytes=self._max)
        self._channels[node_id] = (member.endpoint, ch)
        return ch

    def exchange(self, node_id: str) -> service_pb2_grpc.ExchangeStub:
        return service_pb2_grpc.ExchangeStub(self.channel(node_id))  # type: ignore[no-untyped-call]

    def ledger(self, node_id: str) -> service_pb2_grpc.LedgerStub:
        return service_pb2_grpc.LedgerStub(self.channel(node_id))  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        for _, ch in self._channels.values():
            await ch.close()
        self._channels.clear()
