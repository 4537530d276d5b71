"""The sending side of the end-to-end benchmarks, run inside a police node's process.

Deliver (item 2): ``inflight`` concurrent senders each repeat the whole path of one
message: sign and log SENT with its outbox row (one group-committed transaction), the
unary Deliver call over mTLS, and the outbox's own receipt handling (verify checkpoint
and inclusion proof, log RECEIPT, mark the row delivered). The latency of a message is
from before signing until its receipt is durably logged. The outbox worker itself
delivers in order, one call at a time or one stream; N in flight stands for N rows
being delivered at once, by the same code (``Outbox._deliver``) the worker calls.

Bulk report delivery (item 3, as far as the code goes today): the police node signs a
NumberReport stream (500 numbers a message, all queued in one transaction, as an
agency's bulk upload would be) and its real outbox delivers it, switching to
DeliverStream; timed until every message is receipted. The full path — shutdown
notices to carriers, action reports back, feedback to the police — needs the agency
workflows in ``nodes/``; it is to be one more function here (see ``bulk_full_path``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

from exchange.node import Context, Node
from exchange.runtime import RunningNode
from exchange.schema import outbox
from exchange.transport.client import Peers
from exchange.transport.outbox import Outbox, Pending

from .echo import closed_loop
from .fixture import BULK_NUMBERS_PER_REPORT, RECEIVER, bulk_numbers, report_body, typical_numbers
from .report import percentile

# The driver's own read of the row it queued (the outbox worker would read it from the
# queue instead); built once, as the node's hot-path statements are.
_QUEUED = select(outbox.c.seq, outbox.c.envelope, outbox.c.created_at).where(
    outbox.c.message_id == bindparam("message_id"))


class DeliverDriver:
    """A started police node's writer, channels and outbox, driven N messages at a time."""

    def __init__(self, node: Node) -> None:
        self.node = node
        node.start_writer()
        self.peers = Peers(node.tls, node.current_directory,
                           max_message_bytes=node.config.limits.max_envelope_bytes)
        # Woken only by one_queued: the unary measurement (``one``) queues rows with
        # send_in, which wakes no worker, and delivers them itself; every level waits for
        # all of its messages, so the worker finds no row of the other's in flight.
        self.outbox = Outbox(node, self.peers)
        self.numbers = typical_numbers()
        self.case = 0

    async def close(self) -> None:
        await self.outbox.stop(grace=2)
        await self.peers.close()
        await asyncio.to_thread(self.node.stop_writer)
        self.node.engine.dispose()

    def _queue(self, txn: Any) -> Pending:
        node = self.node
        self.case += 1
        mid = node.sender.send_in(txn, RECEIVER, report_body(self.numbers, self.case))
        row = txn.conn.execute(_QUEUED, {"message_id": mid}).one()
        return Pending(row.seq, mid, bytes(row.envelope), 0, row.created_at, False,
                       "number_report")

    async def one(self) -> None:
        committed = await self.node.committer.run(self._queue)
        before = self.outbox.failures
        await self.outbox._deliver(RECEIVER, [committed.result])
        if self.outbox.failures != before:
            raise RuntimeError("a delivery failed; see the sender's log")

    async def one_queued(self) -> None:
        """One message the way a node sends it: committed to the outbox, then delivered by
        the per-peer worker (one Deliver call when it is alone in the queue, one
        DeliverStream for all that wait once there are ``bulk_threshold`` or more)."""
        node = self.node
        self.case += 1
        case = self.case
        committed = await node.committer.run(
            lambda txn: node.sender.send_in(txn, RECEIVER, report_body(self.numbers, case)))
        delivered = self.outbox.watch(committed.result)
        self.outbox.wake(RECEIVER)
        try:
            await asyncio.wait_for(delivered, timeout=60)
        except TimeoutError:
            raise RuntimeError("a message was not delivered within 60 s; see the sender's "
                               f"log ({self.outbox.failures} delivery failures)") from None

    async def level(self, inflight: int, seconds: float, *, queued: bool = False
                    ) -> dict[str, float]:
        rate, lat = await closed_loop(self.one_queued if queued else self.one, inflight,
                                      seconds)
        return {"rate": rate, "p50_ms": percentile(lat, 50) * 1e3,
                "p99_ms": percentile(lat, 99) * 1e3, "n": len(lat)}


@dataclass(frozen=True, slots=True)
class BulkRun:
    numbers: int
    messages: int
    seconds: float


async def bulk_report_delivery(running: RunningNode, count: int) -> BulkRun:
    """Police report ``count`` numbers to the bureau; time until every report is receipted."""
    node = running.node
    numbers = bulk_numbers(count)
    chunks = [tuple(numbers[k:k + BULK_NUMBERS_PER_REPORT])
              for k in range(0, count, BULK_NUMBERS_PER_REPORT)]
    target = running.outbox.delivered + len(chunks)
    failures = running.outbox.failures
    start = time.perf_counter()

    def queue_all(ctx: Context) -> None:
        for i, chunk in enumerate(chunks):
            ctx.send(RECEIVER, report_body(chunk, i + 1))

    await node.run_work(queue_all)
    while running.outbox.delivered < target:
        if running.outbox.failures != failures:
            raise RuntimeError("a bulk delivery failed; see the sender's log")
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - start
    return BulkRun(count, len(chunks), elapsed)


async def bulk_full_path(running: RunningNode, numbers: list[str]) -> BulkRun:
    """Report → shutdown notices → carrier action reports → feedback to the police.

    ``running`` is the police node (with its workflow handlers); the bureau and the
    carrier run in their own processes. The clock stops when the police node holds a
    final outcome for every number it reported.
    """
    from sqlalchemy import select

    from nodes import police
    from nodes.models import report_numbers

    node = running.node
    per_call = 10_000  # numbers per operator call, as `bcx report` sends them
    start = time.perf_counter()
    messages = 0
    for k in range(0, len(numbers), per_call):
        def report(ctx: Context, part: list[str] = numbers[k:k + per_call]) -> Any:
            return police.report(ctx, numbers_found=part, category="fraud",
                                 case_number="FZ-BENCH", evidence="bench")
        result = await node.run_work(report)
        messages += len(result["parts"])

    # Is any number still without a final outcome? The first open line answers it (a
    # count walked up to 100,000 index entries every poll: 16 % of the police process).
    any_open = select(report_numbers.c.number).where(report_numbers.c.final.is_(False)).limit(1)

    def still_open() -> bool:
        with node.reader.connect() as conn:
            return conn.execute(any_open).first() is not None
    while await asyncio.to_thread(still_open):
        await asyncio.sleep(0.05)
    return BulkRun(len(numbers), messages, time.perf_counter() - start)
