"""`make bench`: bcx measured against baselines run in the same invocation.

Absolute figures drift on shared machines; ratios to a baseline measured minutes apart
on the same machine hold. Every measurement is repeated (5 runs, 3 with --quick) and
reported as a median with its spread. The last lines are one verdict per target.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nodes.federation import Federation, free_port

from .fixture import (
    CARRIER,
    RECEIVER,
    SENDER,
    Child,
    bulk_numbers,
    make_federation,
    port_of,
    start,
)
from .ledger import run_ledger
from .raw import ed25519_verify_rate, sqlite_commit_rate
from .report import Results, render_markdown, say

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
SECTIONS = ("baselines", "deliver", "bulk", "ledger")
LEVELS = (1, 16, 64)
ENVELOPE_BYTES_FOR_RAW = 700


def bulk_full_count(quick: bool) -> int:
    """Numbers a run of the full path: the issue's 100,000; 10,000 for a quick look."""
    return 10_000 if quick else 100_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="3 runs, shorter measurements, ledgers up to 10^5 (< 2 minutes)")
    p.add_argument("--reps", type=int, default=None, help="runs per measurement")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)} (no RESULTS.md then)")
    p.add_argument("--write-results", action="store_true",
                   help="write bench/RESULTS.md (the default for a full run)")
    p.add_argument("--no-write-results", action="store_true")
    p.add_argument("--workspace", type=Path, default=None,
                   help="a new directory for keys, databases and logs is made in it "
                   "(default: the system temp dir)")
    return p.parse_args(argv)


def command_line(quick: bool) -> str:
    direct = shlex.join(["python", "-m", "bench", *sys.argv[1:]])
    if os.environ.get("MAKELEVEL"):
        return f"make bench{' QUICK=1' if quick else ''}  ({direct})"
    return direct


def run_worker(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.worker", *args], stdout=subprocess.PIPE,
                         text=True, check=False, cwd=Path(__file__).resolve().parent.parent)
    if out.returncode != 0:
        raise RuntimeError(f"bench worker {args[0]} failed with {out.returncode}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def start_receiver(fed: Federation, logs: Path, name: str) -> Child:
    """The receiving node of Deliver and report delivery: the exchange alone, in its own
    process (the workflows' cost is the full path's measurement)."""
    from exchange.config import NodeConfig
    cfg = NodeConfig.from_file(fed.config(RECEIVER))
    return start(name, ["-m", "bench.worker", "exchange-node", "--config",
                        str(fed.config(RECEIVER))],
                 logs / f"{name}.log", wait_port=port_of(cfg.listen))


def start_node(fed: Federation, logs: Path, node_id: str, name: str) -> Child:
    from exchange.config import NodeConfig
    cfg = NodeConfig.from_file(fed.config(node_id))
    return start(name, ["-m", "nodes.cli", "node", "run", "--config", str(fed.config(node_id))],
                 logs / f"{name}.log", wait_port=port_of(cfg.listen))


def baselines_raw(results: Results, reps: int, seconds: float, ws: Path) -> None:
    say("baselines: Ed25519 verify/s, SQLite durable commits/s")
    results.add("Baselines", "Ed25519 verify (cryptography, one thread)",
                [ed25519_verify_rate(seconds, ENVELOPE_BYTES_FOR_RAW) for _ in range(reps)],
                "verify/s", f"{ENVELOPE_BYTES_FOR_RAW}-byte message")
    results.add("Baselines", "SQLite durable commits (WAL, synchronous=FULL)",
                [sqlite_commit_rate(ws / "raw-sqlite.db", seconds, ENVELOPE_BYTES_FOR_RAW)
                 for _ in range(reps)], "commits/s",
                f"one {ENVELOPE_BYTES_FOR_RAW}-byte INSERT per transaction")


def deliver(results: Results, fed: Federation, logs: Path, echo_port: int, echo_pid: int,
            reps: int, seconds: float) -> float:
    """Items 1 (echo) and 2 (deliver), interleaved level by level; returns the receiver's
    peak RSS."""
    say("deliver: starting the receiving node (the exchange alone) in its own process")
    receiver = start_receiver(fed, logs, "receiver-deliver")
    try:
        say(f"deliver: echo vs Deliver at {', '.join(map(str, LEVELS))} in flight, "
            f"{reps} runs of {seconds:g} s each")
        r = run_worker(["compare", "--config", str(fed.config(SENDER)), "--echo-port",
                        str(echo_port), "--reps", str(reps), "--seconds", str(seconds),
                        "--levels", ",".join(map(str, LEVELS)),
                        "--echo-pid", str(echo_pid), "--receiver-pid",
                        str(receiver.proc.pid)])
        peak = receiver.peak_rss_mb()
    finally:
        if receiver.stop() != 0:
            results.notes.append(f"the deliver receiver exited with {receiver.proc.returncode}")
    size = r["envelope_bytes"]
    for c in LEVELS:
        lv = [rep["levels"][str(c)] for rep in r["reps"]]
        results.add("Baselines", f"bare unary echo, {c} in flight",
                    [x["echo"]["rate"] for x in lv], "calls/s", f"{size}-byte payload, mTLS")
    for c in LEVELS:
        lv = [rep["levels"][str(c)] for rep in r["reps"]]
        results.add("Baselines", f"bare unary echo, {c} in flight, p99",
                    [x["echo"]["p99_ms"] for x in lv], "ms")
    results.add("Baselines", "bare bidi stream echo, one stream",
                [rep["stream_echo_rate"] for rep in r["reps"]], "msgs/s",
                f"{size}-byte payload, 256 unanswered at most")
    add_deliver(results, r, "deliver", "Deliver end to end (unary)",
                "sign, log SENT, mTLS, verify, log RECEIVED, receipt, verify, log RECEIPT")
    add_deliver(results, r, "outbox", "Deliver end to end, through the outbox",
                "committed to the outbox, delivered by its per-peer worker (DeliverStream "
                "once 8 or more wait), receipt logged", against_stream=True)
    for c in (16, 64):
        lv = [rep["levels"][str(c)] for rep in r["reps"]]
        for key, label in (("echo", "bare unary echo"), ("deliver", "Deliver (unary)"),
                           ("outbox", "through the outbox")):
            for side, who in (("client", "sender"), ("server", "receiver")):
                results.add("CPU per message", f"{label}, {c} in flight, {who}",
                            [x[key][f"{side}_cpu_us"] for x in lv], "µs",
                            "user + system CPU of the whole process / messages")
    results.add("Memory", "sender (police node + echo client) peak RSS during deliver",
                [r["sender_peak_rss_mb"]], "MB", "VmHWM; one process")
    results.add("Memory", "receiving node peak RSS during deliver", [peak], "MB",
                "VmHWM of the exchange-only receiving node; one process")
    return peak


def add_deliver(results: Results, r: dict[str, Any], key: str, section: str, note: str,
                *, against_stream: bool = False) -> None:
    """One Deliver measurement's rows: rate, latencies and ratios, at every level."""
    for c in LEVELS:
        lv = [rep["levels"][str(c)] for rep in r["reps"]]
        results.add(section, f"{c} in flight", [x[key]["rate"] for x in lv], "msgs/s", note)
        results.add(section, f"{c} in flight, p50 latency", [x[key]["p50_ms"] for x in lv],
                    "ms")
        results.add(section, f"{c} in flight, p99 latency", [x[key]["p99_ms"] for x in lv],
                    "ms")
        results.add(section, f"{c} in flight, ratio to bare unary echo",
                    [x[key]["rate"] / x["echo"]["rate"] for x in lv], "x",
                    "per run, echo measured just before")
        if against_stream:
            results.add(section, f"{c} in flight, ratio to bare bidi stream echo",
                        [x[key]["rate"] / rep["stream_echo_rate"]
                         for x, rep in zip(lv, r["reps"], strict=True)], "x",
                        "per run, stream echo measured in the same run")


def bulk(results: Results, fed: Federation, logs: Path, echo_port: int, reps: int,
         seconds: float, count: int) -> float:
    say(f"bulk report delivery: {count:,} numbers police → bureau, {reps} runs "
        "(fresh receiving node process)")
    receiver = start_receiver(fed, logs, "receiver-bulk")
    try:
        r = run_worker(["bulk", "--config", str(fed.config(SENDER)), "--echo-port",
                        str(echo_port), "--reps", str(reps), "--seconds", str(seconds),
                        "--numbers", str(count)])
        peak = receiver.peak_rss_mb()
    finally:
        if receiver.stop() != 0:
            results.notes.append(f"the bulk receiver exited with {receiver.proc.returncode}")
    section = "Bulk report delivery (police → bureau, until every report is receipted)"
    runs = r["reps"]
    messages = runs[0]["messages"]
    results.add(section, "numbers/s", [x["numbers"] / x["seconds"] for x in runs], "numbers/s",
                f"{count:,} numbers in {messages} NumberReports of 500, outbox → DeliverStream")
    results.add(section, "reports/s", [x["messages"] / x["seconds"] for x in runs], "msgs/s",
                f"{r['envelope_bytes']:,}-byte envelopes")
    results.add(section, "bare bidi stream echo of the same envelope size",
                [x["stream_echo_rate"] for x in runs], "msgs/s", "measured just before each run")
    results.add(section, "ratio to the stream echo",
                [x["messages"] / x["seconds"] / x["stream_echo_rate"] for x in runs], "x")
    results.add("Memory", "sender (running police node) peak RSS during bulk",
                [r["sender_peak_rss_mb"]], "MB", "VmHWM; one process")
    results.add("Memory", "receiving node peak RSS during bulk", [peak], "MB",
                "VmHWM of the exchange-only receiving node; one process")
    return peak


def bulk_full(results: Results, ws: Path, logs: Path, reps: int, count: int) -> float:
    """Item 3: police report → bureau notices → carrier action reports → police feedback.

    Its own federation with a carrier whose subscriber system holds every number; each
    run reports numbers the bureau has not seen (a number already known is linked, not
    noticed again). Returns the higher peak RSS of the bureau and carrier processes.
    """
    from exchange import migrate
    from exchange.config import NodeConfig
    from exchange.storage import engines
    from nodes.carrier.subscribers import import_rows

    fed = make_federation(ws / "full-path", with_carrier=True)
    say(f"bulk full path: loading {reps * count:,} subscribers into {CARRIER}'s subscriber "
        "system")
    engine = engines.create_engine_for(NodeConfig.from_file(fed.config(CARRIER)).database_url)
    migrate.upgrade(engine)
    import_rows(engine, ({"number": n, "status": "active", "province": "fj",
                          "real_name_state": "unregistered", "outlet_code": "FZ-0457"}
                         for n in bulk_numbers(reps * count)))
    engine.dispose()
    say(f"bulk full path: {count:,} numbers a run, {reps} runs; {RECEIVER} and {CARRIER} "
        "in their own processes")
    nodes = [start_node(fed, logs, node_id, f"full-{node_id}") for node_id in
             (RECEIVER, CARRIER)]
    try:
        r = run_worker(["bulk-full", "--config", str(fed.config(SENDER)), "--reps", str(reps),
                        "--numbers", str(count)])
        peak = max(n.peak_rss_mb() for n in nodes)
    finally:
        for n in nodes:
            if n.stop() != 0:
                results.notes.append(f"{n.name} exited with {n.proc.returncode}")
    section = "Bulk end to end (report → notices → action reports → feedback)"
    runs = r["reps"]
    results.add(section, "numbers/s", [x["numbers"] / x["seconds"] for x in runs],
                "numbers/s", f"{count:,} numbers a run; police reports in calls of 10,000 "
                "(messages of 1,000); clock stops at the last number's feedback")
    results.add(section, "seconds", [x["seconds"] for x in runs], "s")
    results.add("Memory", "police node peak RSS during the full path",
                [r["sender_peak_rss_mb"]], "MB", "VmHWM; one process")
    results.add("Memory", "bureau and carrier peak RSS during the full path", [peak], "MB",
                "VmHWM of `bcx node run`, the higher of the two")
    return peak


def median_of(results: Results, section_prefix: str, name: str) -> float:
    for row in results.rows:
        if row.section.startswith(section_prefix) and row.name == name:
            return row.stat.median
    return float("nan")


def targets(results: Results, sizes: list[int], quick: bool, peaks: list[float],
            ran: set[str]) -> None:
    if "deliver" in ran:
        ratio = median_of(results, "Deliver", "64 in flight, ratio to bare unary echo")
        results.target("deliver-64-vs-echo", ratio, ">= 60 % of the bare mTLS unary echo",
                       ratio >= 0.60, "%")
        p99 = median_of(results, "Deliver", "64 in flight, p99 latency")
        results.target("deliver-64-p99", p99, "< 50 ms", p99 < 50, "ms")
    if "bulk" in ran:
        rate = median_of(results, "Bulk end to end", "numbers/s")
        results.target("bulk-end-to-end", rate, ">= 10,000 numbers/s end to end",
                       rate >= 10_000, "numbers/s",
                       "report → notices → action reports → feedback, three node processes"
                       + (f" ({bulk_full_count(quick):,} numbers a run in quick mode)"
                          if quick else ""))
    if "ledger" in ran:
        from .ledger import say_size
        big = say_size(sizes[-1])
        label = "" if not quick else "quick run: 10^6 only in the full run"
        worst = max(median_of(results, "Ledger", f"inclusion proof at {big}, median"),
                    median_of(results, "Ledger", f"consistency proof at {big}, median"))
        results.target(f"proofs-at-{big}", worst, "< 5 ms at 10^6", worst < 5, "ms", label)
        rate = median_of(results, "Ledger", f"`bcx ledger verify` at {big}")
        results.target("ledger-verify", rate, ">= 100,000 entries/s", rate >= 100_000,
                       "entries/s", label)
    if peaks:
        peak = max(peaks)
        results.target("node-rss", peak, "< 250 MB under load", peak < 250, "MB",
                       "every node measured: receivers of deliver and bulk, bureau and "
                       "carrier of the full path")


def writes_results(args: argparse.Namespace, only: set[str]) -> bool:
    """Whether this run rewrites bench/RESULTS.md: a full run of every section, or asked."""
    write = bool((args.write_results or not args.quick) and not args.no_write_results)
    if write and only != set(SECTIONS):
        print("bench: --only runs a subset; bench/RESULTS.md is not written", file=sys.stderr)
        return False
    return write


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quick = args.quick
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        print(f"bench: unknown section(s) {sorted(unknown)}", file=sys.stderr)
        return 2
    reps = args.reps or (3 if quick else 5)
    seconds = 1.0 if quick else 3.0
    raw_seconds = 0.5 if quick else 1.0
    bulk_count = 100_000
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    write = writes_results(args, only)

    if args.workspace is not None:
        args.workspace.mkdir(parents=True, exist_ok=True)
    ws = Path(tempfile.mkdtemp(prefix="bcx-bench-", dir=args.workspace))
    logs = ws / "logs"
    logs.mkdir(exist_ok=True)
    started = time.monotonic()
    results = Results(quick=quick, command=command_line(quick))
    say(f"bcx bench ({'quick' if quick else 'full'}): {reps} runs per measurement; "
        f"workspace {ws}")
    if quick:
        results.notes.append(
            f"quick mode: {reps} runs of {seconds:g} s per level; ledgers of 10^4 and 10^5 "
            "only (10^6 is in the full run)")
    results.notes += [
        "Each node and the echo server run in their own process. For Deliver and the "
        "report delivery the receiving node runs the exchange alone (`python -m "
        "bench.worker exchange-node`: verify, log, receipt, no agency workflow), so they "
        "time the protocol; the full bulk path runs bureau and carrier as `bcx node run` "
        "with their workflows. The sender is a police Node in a bench worker process, "
        "which also runs the echo client. Echo and Deliver are measured alternately, level by "
        "level, and each ratio is taken within one run.",
        "Deliver with N in flight: N concurrent copies of the sender's path for one "
        "message (sign + log SENT and the outbox row; Deliver; the outbox's receipt check "
        "and RECEIPT entry). Latency is from signing to the receipt being durable. "
        "The targets use this unary measurement. \"Through the outbox\" sends the same "
        "messages the way a node does: N producers each commit a message and wait for its "
        "receipt, and the outbox's one worker for the peer delivers what is due, in order "
        "(one Deliver call, or one DeliverStream when 8 or more wait).",
        "The office is in the directory but not running, and witnessing is set to once an "
        "hour in the bench's node.toml files, so witness rounds do not add failed "
        "connections to the figures.",
        "Proof times use a fresh LedgerStore (cold cache): every subtree hash a proof needs "
        "is read from SQLite.",
    ]
    peaks: list[float] = []
    ran: set[str] = set()
    fed = make_federation(ws / "federation")
    say(f"federation of office.cn, {SENDER}, {RECEIVER} under {ws / 'federation'}")
    echo: Child | None = None
    try:
        if "baselines" in only:
            baselines_raw(results, reps, raw_seconds, ws)
            ran.add("baselines")
        if only & {"deliver", "bulk", "baselines"}:
            echo_port = free_port()
            echo = start("echo-server", ["-m", "bench.worker", "echo-server", "--config",
                                         str(fed.config(RECEIVER)), "--listen",
                                         f"127.0.0.1:{echo_port}"],
                         logs / "echo-server.log", wait_port=echo_port)
            if "deliver" in only or "baselines" in only:
                peaks.append(deliver(results, fed, logs, echo_port, echo.proc.pid, reps,
                                     seconds))
                ran.add("deliver")
            if "bulk" in only:
                peaks.append(bulk(results, fed, logs, echo_port, reps, seconds, bulk_count))
                peaks.append(bulk_full(results, ws, logs, min(reps, 3),
                                       bulk_full_count(quick)))
                ran.add("bulk")
            echo.stop()
            echo = None
        if "ledger" in only:
            say(f"ledger: appends, proofs and verify at {', '.join(f'{s:,}' for s in sizes)}")
            run_ledger(fed, sizes, reps, quick, results)
            ran.add("ledger")
    finally:
        if echo is not None:
            echo.stop()
    targets(results, sizes, quick, peaks, ran)
    results.seconds = time.monotonic() - started
    if write:
        RESULTS_MD.write_text(render_markdown(results))
        say(f"wrote {RESULTS_MD}")
    say(f"done in {results.seconds:.0f} s; logs under {logs}")
    for t in results.targets:
        print(t.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
