"""Running a node: server, outbox, witness and directory refresh, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from exchange.ledger.witness import Witness
from exchange.node import Node
from exchange.transport.client import Peers
from exchange.transport.outbox import Outbox
from exchange.transport.server import build_server
from exchange.transport.services import ExchangeService, LedgerService

log = logging.getLogger(__name__)


class RunningNode:
    def __init__(self, node: Node, *, listen: str | None = None,
                 background: list[Callable[[RunningNode], Coroutine[Any, Any, None]]] | None
                 = None) -> None:
        self.node = node
        self.listen = listen or node.config.listen
        self.peers = Peers(node.tls, node.current_directory,
                           max_message_bytes=node.config.limits.max_envelope_bytes)
        self.outbox = Outbox(node, self.peers)
        self.witness = Witness(node, self.peers)
        self._background = list(background or [])
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.server: Any = None

    async def start(self) -> int:
        node = self.node
        node.start_writer()
        self.server, self.port, self.health = build_server(
            tls=node.tls, listen=self.listen, resolver=node,
            exchange=ExchangeService(node, stream_window=node.config.limits.stream_window),
            ledger=LedgerService(node),
            max_message_bytes=node.config.limits.max_envelope_bytes,
        )
        await self.server.start()
        await self.outbox.start()
        self._tasks.append(asyncio.ensure_future(
            self.witness.run(node.config.deadlines.witness_interval_seconds)))
        for factory in self._background:
            self._tasks.append(asyncio.ensure_future(factory(self)))
        log.info("node %s listening on port %d", node.node_id, self.port)
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight calls finish and commit, then stop the writer."""
        if self.server is not None:
            await self.server.stop(grace)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.outbox.stop(grace)
        await self.peers.close()
        await asyncio.to_thread(self.node.stop_writer)
        self.node.engine.dispose()

    async def serve_until_signalled(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("node %s stopping", self.node.node_id)
        await self.stop()
