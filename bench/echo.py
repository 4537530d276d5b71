"""The transport baseline: a bare grpc.aio echo over the nodes' own mutual TLS.

No interceptor, no protobuf, no database: bytes in, the same bytes out. A unary method
and a bidi stream method. The server runs in its own process, like a receiving node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from exchange import pki
from exchange.config import NodeConfig
from exchange.transport.client import channel_to
from exchange.transport.server import TLSMaterial

UNARY = "/bench.Echo/Unary"
STREAM = "/bench.Echo/Stream"


def tls_for(config: NodeConfig) -> TLSMaterial:
    ca = pki.load_certificate(config.ca_cert)
    creds = pki.load_node_credentials(config.credentials_dir, ca=ca, now=datetime.now(UTC))
    return TLSMaterial(creds.tls_cert_pem, creds.tls_key_pem, config.ca_cert.read_bytes())


async def serve(config: NodeConfig, listen: str) -> None:
    """Serve the echo with ``config``'s node certificate until cancelled or signalled."""
    async def unary(request: bytes, context: Any) -> bytes:
        return request

    async def stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for r in requests:
            yield r

    tls = tls_for(config)
    limit = config.limits.max_envelope_bytes
    # The same server options a node uses (exchange/transport/server.py).
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", limit + 64 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
    ])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.stream_stream_rpc_method_handler(stream),
    }),))
    creds = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)],
                                        root_certificates=tls.ca_pem, require_client_auth=True)
    server.add_secure_port(listen, creds)
    await server.start()
    import signal
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


class EchoClient:
    def __init__(self, member: Any, tls: TLSMaterial, max_message_bytes: int) -> None:
        # The channel a node would open to that member: same options, same name binding.
        self.channel = channel_to(member, tls, max_message_bytes=max_message_bytes)
        self.unary = self.channel.unary_unary(UNARY)
        self.stream = self.channel.stream_stream(STREAM)

    async def close(self) -> None:
        await self.channel.close()

    async def call(self, payload: bytes) -> None:
        reply = await self.unary(payload, timeout=30)
        if len(reply) != len(payload):
            raise RuntimeError("echo returned a different payload")

    async def stream_for(self, payload: bytes, seconds: float, window: int) -> tuple[int, float]:
        """Echo ``payload`` on one bidi stream for ``seconds``, at most ``window`` unanswered.

        Returns (messages answered, elapsed seconds).
        """
        call = self.stream(timeout=seconds + 60)
        room = asyncio.Semaphore(window)
        stop_at = time.perf_counter() + seconds
        sent = 0

        async def writer() -> None:
            nonlocal sent
            while time.perf_counter() < stop_at:
                await room.acquire()
                await call.write(payload)
                sent += 1
            await call.done_writing()

        start = time.perf_counter()
        w = asyncio.ensure_future(writer())
        got = 0
        while True:
            reply = await call.read()
            if reply is grpc.aio.EOF:
                break
            got += 1
            room.release()
        await w
        elapsed = time.perf_counter() - start
        if got != sent:
            raise RuntimeError(f"stream echo answered {got} of {sent}")
        return got, elapsed


async def closed_loop(one: Callable[[], Awaitable[None]], inflight: int, seconds: float
                      ) -> tuple[float, list[float]]:
    """Keep ``inflight`` calls of ``one`` going for ``seconds``; (calls/s, latencies in s)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies
