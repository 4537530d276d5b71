"""A node process a test can make send: `bcx node run` plus a command line on stdin.

    python tests/sendnode.py --config node.toml

runs the node of ``node.toml`` exactly as ``bcx node run`` does (``nodes.agency.make_node``,
``RunningNode``, stopping on SIGTERM/SIGINT). Each line on stdin

    send <recipient> <count> <numbers_per_message> <first_number>

signs, logs SENT and queues ``count`` NumberReports in one transaction (``Context.send``
inside ``Node.run_work``, as a scheduler or an operator command would) and, once that
transaction is committed, prints one JSON line ``{"queued": [message ids in hex]}``.
Delivery is then the outbox's business, as for any message the node sends. Used by
tests/procnodes.py; not part of the product.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from procnodes import report_number

from exchange.config import NodeConfig
from exchange.errors import ExchangeError
from exchange.identity import Role
from exchange.messages import Category, NumberReport
from exchange.node import Context
from exchange.runtime import RunningNode, stop_on_signals
from nodes import police
from nodes.agency import make_node

log = logging.getLogger("sendnode")


def reports(count: int, per_message: int, first: int) -> list[NumberReport]:
    now = datetime.now(UTC)
    return [NumberReport(
        numbers=tuple(report_number(first + k * per_message + j) for j in range(per_message)),
        category=Category.FRAUD, discovered_at=now, case_number=f"T-{first + k * per_message}",
        evidence_summary="test traffic", confidence=50) for k in range(count)]


async def commands(running: RunningNode, lines: asyncio.Queue[str | None]) -> None:
    node = running.node
    while (line := await lines.get()) is not None:
        try:
            verb, recipient, count, per_message, first = line.split()
            if verb != "send":
                raise ValueError(f"unknown command {verb!r}")
            bodies = reports(int(count), int(per_message), int(first))

            def queue(ctx: Context, recipient: str = recipient,
                      bodies: list[NumberReport] = bodies) -> list[bytes]:
                if ctx.directory.member(node.node_id).role is not Role.POLICE:
                    return [ctx.send(recipient, body) for body in bodies]
                # A police node reports as its desk does, so it knows the reports the
                # bureau's feedback answers (rule own-report); one report per message.
                return [bytes.fromhex(police.report(
                    ctx, numbers_found=list(body.numbers), category=body.category.value,
                    case_number=body.case_number, evidence=body.evidence_summary,
                    confidence=body.confidence, bureau=recipient)["parts"][0])
                    for body in bodies]

            ids = await node.run_work(queue)
            reply: dict[str, object] = {"queued": [mid.hex() for mid in ids]}
        except (ValueError, ExchangeError) as e:
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


def read_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    # A daemon thread, not asyncio.to_thread: a blocked read must not hold up the exit.
    for line in sys.stdin:
        loop.call_soon_threadsafe(lines.put_nowait, line)
    loop.call_soon_threadsafe(lines.put_nowait, None)


async def run(config: NodeConfig) -> None:
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    stop = stop_on_signals()  # before the port opens, as `bcx node run` does
    running = RunningNode(make_node(config),
                          background=[lambda r: commands(r, lines)])
    port = await running.start()
    log.info("%s serving on port %d, taking send commands on stdin", config.node_id, port)
    threading.Thread(target=read_stdin, args=(asyncio.get_running_loop(), lines),
                     daemon=True).start()
    await running.serve_until(stop)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True, type=Path)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(NodeConfig.from_file(args.config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
