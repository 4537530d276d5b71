"""Processes the bench starts: ``python -m bench.worker COMMAND …``.

echo-server  the bare grpc.aio echo, with a node's certificate (the baseline's server)
exchange-node  a node running the exchange alone (no agency workflow): the receiver of
             the Deliver and report-delivery measurements, so they time the protocol
             (verify, log, receipt) and not what a bureau then does with a report
compare      in one police-node process, for each repetition and each in-flight level:
             the bare unary echo, bcx Deliver end to end (unary), then the same messages
             through the node's outbox; then the bidi stream echo
bulk         a running police node: stream echo of bulk-sized envelopes, then the bulk
             report delivery, each repetition
bulk-full    a running police node with its workflow: the full path from report to
             feedback through a bureau and a carrier process, each repetition on new numbers

Results go to stdout as one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from exchange.config import NodeConfig
from exchange.node import Node
from exchange.runtime import RunningNode

from .deliver import DeliverDriver, bulk_full_path, bulk_report_delivery
from .echo import EchoClient, closed_loop, serve, tls_for
from .fixture import (
    BULK_NUMBERS_PER_REPORT,
    RECEIVER,
    SENDER,
    bulk_numbers,
    cpu_seconds,
    endpoint_member,
    peak_rss_mb,
    report_body,
    sign_envelope,
    typical_numbers,
)
from .report import percentile, say


def _echo_client(node: Node, port: int) -> EchoClient:
    member = endpoint_member(node.directory.member(RECEIVER), port)
    return EchoClient(member, tls_for(node.config), node.config.limits.max_envelope_bytes)


async def compare(args: argparse.Namespace) -> dict[str, Any]:
    node = Node.open(NodeConfig.from_file(args.config))
    payload = sign_envelope(node.signer, SENDER, RECEIVER, report_body(typical_numbers()))
    echo = _echo_client(node, args.echo_port)
    driver = DeliverDriver(node)
    levels = [int(x) for x in args.levels.split(",")]
    reps: list[dict[str, Any]] = []

    async def echo_one() -> None:
        await echo.call(payload)

    # Warm up: connections, TLS sessions, caches, both servers' first calls.
    await closed_loop(echo_one, 4, 0.3)
    await driver.level(4, 0.5)
    await driver.level(4, 0.5, queued=True)
    async def costed(server_pid: int, measure: Any) -> dict[str, float]:
        """``measure()``'s figures plus each side's CPU time per message (µs)."""
        mine, theirs = cpu_seconds(), cpu_seconds(server_pid)
        figures: dict[str, float] = await measure()
        done = figures["rate"] * args.seconds
        figures["client_cpu_us"] = (cpu_seconds() - mine) / done * 1e6
        figures["server_cpu_us"] = (cpu_seconds(server_pid) - theirs) / done * 1e6
        return figures

    async def echo_level(c: int) -> dict[str, float]:
        rate, lat = await closed_loop(echo_one, c, args.seconds)
        return {"rate": rate, "p50_ms": percentile(lat, 50) * 1e3,
                "p99_ms": percentile(lat, 99) * 1e3}

    for rep in range(args.reps):
        result: dict[str, Any] = {"levels": {}}
        for c in levels:
            e = await costed(args.echo_pid, lambda c=c: echo_level(c))
            d = await costed(args.receiver_pid, lambda c=c: driver.level(c, args.seconds))
            q = await costed(args.receiver_pid,
                             lambda c=c: driver.level(c, args.seconds, queued=True))
            result["levels"][str(c)] = {"echo": e, "deliver": d, "outbox": q}
            say(f"  run {rep + 1}/{args.reps}, {c:>2} in flight: echo {e['rate']:,.0f}/s, "
                f"deliver {d['rate']:,.0f}/s (p50 {d['p50_ms']:.1f} ms, "
                f"p99 {d['p99_ms']:.1f} ms), ratio {d['rate'] / e['rate']:.2f}; "
                f"through the outbox {q['rate']:,.0f}/s (p99 {q['p99_ms']:.1f} ms), "
                f"ratio {q['rate'] / e['rate']:.2f}")
        n, elapsed = await echo.stream_for(payload, args.seconds, window=256)
        result["stream_echo_rate"] = n / elapsed
        say(f"  run {rep + 1}/{args.reps}: bidi stream echo {n / elapsed:,.0f}/s")
        reps.append(result)
    await echo.close()
    await driver.close()
    return {"envelope_bytes": len(payload), "reps": reps, "sender_peak_rss_mb": peak_rss_mb()}


async def bulk(args: argparse.Namespace) -> dict[str, Any]:
    node = Node.open(NodeConfig.from_file(args.config))
    chunk = tuple(bulk_numbers(BULK_NUMBERS_PER_REPORT))
    payload = sign_envelope(node.signer, SENDER, RECEIVER, report_body(chunk))
    running = RunningNode(node)
    await running.start()
    echo = _echo_client(node, args.echo_port)
    reps: list[dict[str, Any]] = []
    try:
        await echo.stream_for(payload, 0.3, window=256)  # warm up
        for rep in range(args.reps):
            n, elapsed = await echo.stream_for(payload, args.seconds, window=256)
            run = await bulk_report_delivery(running, args.numbers)
            reps.append({"stream_echo_rate": n / elapsed, "numbers": run.numbers,
                         "messages": run.messages, "seconds": run.seconds})
            say(f"  run {rep + 1}/{args.reps}: {run.numbers:,} numbers in {run.messages} "
                f"reports receipted in {run.seconds:.2f} s = {run.numbers / run.seconds:,.0f} "
                f"numbers/s ({run.messages / run.seconds:,.0f} msgs/s; stream echo of the "
                f"same size {n / elapsed:,.0f}/s)")
    finally:
        await echo.close()
        await running.stop(grace=2)
    return {"envelope_bytes": len(payload), "reps": reps, "sender_peak_rss_mb": peak_rss_mb()}


async def bulk_full(args: argparse.Namespace) -> dict[str, Any]:
    from nodes.agency import make_running

    running = make_running(NodeConfig.from_file(args.config))
    await running.start()
    reps: list[dict[str, Any]] = []
    try:
        for rep in range(args.reps):
            run = await bulk_full_path(running, bulk_numbers(args.numbers,
                                                             first=rep * args.numbers))
            reps.append({"numbers": run.numbers, "messages": run.messages,
                         "seconds": run.seconds})
            say(f"  run {rep + 1}/{args.reps}: {run.numbers:,} numbers reported, noticed, "
                f"shut down and fed back in {run.seconds:.2f} s = "
                f"{run.numbers / run.seconds:,.0f} numbers/s")
    finally:
        await running.stop(grace=2)
    return {"reps": reps, "sender_peak_rss_mb": peak_rss_mb()}


async def exchange_node(config: Path) -> None:
    running = RunningNode(Node.open(NodeConfig.from_file(config)))
    await running.start()
    await running.serve_until_signalled()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("exchange-node")
    a.add_argument("--config", type=Path, required=True)
    a = sub.add_parser("echo-server")
    a.add_argument("--config", type=Path, required=True)
    a.add_argument("--listen", required=True)
    for name in ("compare", "bulk", "bulk-full"):
        a = sub.add_parser(name)
        a.add_argument("--config", type=Path, required=True)
        a.add_argument("--echo-port", type=int, required=name != "bulk-full")
        a.add_argument("--reps", type=int, default=3)
        a.add_argument("--seconds", type=float, default=2.0)
        a.add_argument("--levels", default="1,16,64")
        a.add_argument("--numbers", type=int, default=100_000)
        a.add_argument("--echo-pid", type=int, default=0, help="for CPU per message")
        a.add_argument("--receiver-pid", type=int, default=0, help="for CPU per message")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "exchange-node":
        asyncio.run(exchange_node(args.config))
        return 0
    if args.command == "echo-server":
        asyncio.run(serve(NodeConfig.from_file(args.config), args.listen))
        return 0
    fn = {"compare": compare, "bulk": bulk, "bulk-full": bulk_full}[args.command]
    result = asyncio.run(fn(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
