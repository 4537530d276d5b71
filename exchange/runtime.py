"""Running a node: server, outbox, witness and directory refresh, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any

import grpc

from exchange.errors import DirectoryError
from exchange.identity import Role
from exchange.ledger import rollback
from exchange.node import Node
from exchange.transport.client import Peers
from exchange.transport.outbox import Outbox
from exchange.transport.reads import newer_directory
from exchange.transport.server import build_server
from exchange.transport.services import AdminService, ExchangeService, LedgerService, Operation
from exchange.transport.witness import Witness

log = logging.getLogger(__name__)

# Never ask the office more often than this, however close expiry is or however often
# asking fails.
MIN_REFRESH_SECONDS = 1.0


def refresh_delay(expires_at: datetime, now: datetime, interval: float, failures: int = 0
                  ) -> float:
    """Seconds until the next ask for a newer directory.

    The configured interval; sooner as expiry nears (half the time left), so a node
    whose office publishes late still has several tries before it must refuse traffic;
    after failures, a backoff from MIN_REFRESH_SECONDS that doubles up to that delay.
    """
    left = (expires_at - now).total_seconds()
    delay = max(MIN_REFRESH_SECONDS, min(interval, left / 2))
    if failures:
        delay = min(delay, MIN_REFRESH_SECONDS * 2 ** min(failures - 1, 16))
    return delay


class RunningNode:
    def __init__(self, node: Node, *, listen: str | None = None,
                 background: list[Callable[[RunningNode], Coroutine[Any, Any, None]]] | None
                 = None, operations: Mapping[str, Operation] | None = None,
                 check_ledger: bool = True) -> None:
        self.node = node
        # Refuse to serve a ledger behind what it signed (exchange.ledger.rollback).
        self.check_ledger = check_ledger
        self.listen = listen or node.config.listen
        self.peers = Peers(node.tls, node.directories.current_directory,
                           max_message_bytes=node.config.limits.max_envelope_bytes)
        self.outbox = Outbox(node, self.peers)
        self.witness = Witness(node, self.peers)
        self._background = list(background or [])
        self.operations = dict(operations or {})
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.metrics_port: int | None = None
        self.server: Any = None

    async def start(self) -> int:
        try:
            return await self._start()
        except BaseException:
            # Whatever did start (writer, metrics, server) must not outlive a failed start.
            await self.stop(grace=0)
            raise

    async def _start(self) -> int:
        node = self.node
        if self.check_ledger:
            # Before the writer starts: it may log a directory, and nothing may be
            # appended to a ledger that lost its tail.
            await rollback.check_at_start(node, self.peers)
        node.start_writer()
        if node.config.metrics_listen is not None:
            self.metrics_port = await asyncio.to_thread(node.metrics.serve,
                                                        node.config.metrics_listen)
        self.server, self.port, self.health = build_server(
            tls=node.tls, listen=self.listen, resolver=node.directories,
            exchange=ExchangeService(node.inbox, node.directories,
                                     stream_window=node.config.limits.stream_window,
                                     stream_window_bytes=node.config.limits.stream_window_bytes),
            ledger=LedgerService(node),
            admin=AdminService(node.node_id, self.operations) if self.operations else None,
            max_message_bytes=node.config.limits.max_envelope_bytes,
        )
        # The outbox reads the database before the port opens. `bcx node run` installs its
        # signal handlers (stop_on_signals) before all of this, so a SIGTERM from a
        # supervisor that saw the port open, or sent while starting, stops the node cleanly.
        await self.outbox.start()
        await self.server.start()
        self._tasks.append(asyncio.ensure_future(
            self.witness.run(node.config.deadlines.witness_interval_seconds)))
        if node.me.role is not Role.OFFICE:
            self._tasks.append(asyncio.ensure_future(self.refresh_directory_loop()))
        for factory in self._background:
            self._tasks.append(asyncio.ensure_future(factory(self)))
        log.info("node %s listening on port %d", node.node_id, self.port)
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight calls finish and commit, then stop the writer.
        ``grace`` defaults to ``[delivery] stop_grace_seconds``."""
        if grace is None:
            grace = self.node.config.delivery.stop_grace_seconds
        if self.server is not None:
            await self.server.stop(grace)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.outbox.stop(grace)
        await self.peers.close()
        await asyncio.to_thread(self.node.metrics.stop_serving)
        await asyncio.to_thread(self.node.stop_writer)
        self.node.engine.dispose()

    # --- the directory ---------------------------------------------------------------------

    async def refresh_directory(self) -> str:
        """Ask the office for a directory newer than the one held and adopt it.

        Returns what happened: "adopted vN" or "current". Raises DirectoryError if the
        office answered with a directory that does not verify or is not newer (it is not
        adopted), grpc.aio.AioRpcError if the office could not be asked.
        """
        node = self.node
        held = node.directories.current_directory().version
        try:
            offered = await newer_directory(self.peers, node.config.office_id,
                                            newer_than=held)
        except grpc.aio.AioRpcError:
            node.metrics.directory_refresh("unreachable")
            raise
        if offered is None:
            node.metrics.directory_refresh("current")
            return "current"
        try:
            d = await node.directories.replace(offered)
        except DirectoryError:
            node.metrics.directory_refresh("refused")
            raise
        node.metrics.directory_refresh("adopted")
        return f"adopted v{d.version}"

    async def refresh_directory_loop(self) -> None:
        """Keep the directory current (docs/architecture.md#the-directory); failures are
        logged and retried."""
        node = self.node
        directories = node.directories
        interval = node.config.directory_refresh_seconds
        failures = 0
        while True:
            await asyncio.sleep(refresh_delay(directories.current_directory().expires_at,
                                              directories.now(), interval, failures))
            try:
                outcome = await self.refresh_directory()
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as e:
                failures += 1
                log.warning("directory refresh from %s failed (attempt %d): %s: %s",
                            node.config.office_id, failures, e.code().name, e.details())
            except Exception as e:  # noqa: BLE001 - a bad answer must never stop the loop
                failures += 1
                log.warning("directory refresh from %s refused (attempt %d): %s: %s",
                            node.config.office_id, failures, type(e).__name__, e)
            else:
                failures = 0
                log.debug("directory refresh: %s", outcome)

    async def serve_until_signalled(self) -> None:
        await self.serve_until(stop_on_signals())

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set (see ``stop_on_signals``), then stop cleanly."""
        await stop.wait()
        log.info("node %s stopping", self.node.node_id)
        await self.stop()


def stop_on_signals() -> asyncio.Event:
    """An event SIGTERM and SIGINT set, from now on. Installed before a node starts, a
    signal that arrives while it starts stops it cleanly once it has started, instead of
    killing the process before its handlers exist."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
