"""`bcx demo`: a federation on this machine, exchanging and auditing real traffic.

What runs today: office.cn, police.fj, bureau.fj, cmcc.fj and commerce.fj, each with its
own keys, SQLite database and mTLS port. Police report numbers to the bureau in
messages of up to 500 numbers; every message is signed, logged by both sides and
receipted with an inclusion proof; every node witnesses its peers and the office
witnesses all. The demo ends with an audit of every ledger and a summary per node.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from exchange import numbers
from exchange.config import NodeConfig
from exchange.errors import ExchangeError
from exchange.identity import Role
from exchange.ledger.audit import verify_ledger
from exchange.messages import Category, NumberReport
from exchange.node import Node
from exchange.runtime import RunningNode
from nodes.federation import MemberSpec, create_federation, free_port

MEMBERS = (
    ("office.cn", Role.OFFICE, "cn", "National special-action office"),
    ("police.fj", Role.POLICE, "fj", "Fujian public security, anti-fraud centre"),
    ("bureau.fj", Role.BUREAU, "fj", "Fujian communications administration"),
    ("cmcc.fj", Role.CARRIER, "fj", "China Mobile Fujian"),
    ("commerce.fj", Role.COMMERCE, "fj", "Fujian market regulation"),
)
BATCH = 500


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", type=Path, default=None,
                   help="directory for keys, configs and databases (default: a new temp dir)")
    p.add_argument("--numbers", type=int, default=3000, help="numbers the police report")
    p.add_argument("--keep", action="store_true",
                   help="leave the federation running until Ctrl-C")


def cmd_demo(args: argparse.Namespace) -> int:
    if args.numbers < 1:
        print("bcx demo: --numbers must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(run_demo(args.workspace, args.numbers, keep=args.keep))


def _say(text: str) -> None:
    print(text, flush=True)


def sample_numbers(count: int, seed: int = 7) -> list[str]:
    """Valid mainland mobile numbers in China Mobile's Fujian blocks, deterministic."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not a secret
    out: set[str] = set()
    while len(out) < count:
        candidate = f"+86159{rng.randint(59000000, 59999999):08d}"
        try:
            out.add(numbers.normalise(candidate))
        except ExchangeError:
            continue
    return sorted(out)


async def run_demo(workspace: Path | None, count: int, *, keep: bool) -> int:
    ws = workspace or Path(tempfile.mkdtemp(prefix="bcx-demo-"))
    ws.mkdir(parents=True, exist_ok=True)
    _say(f"workspace: {ws}")
    specs = [MemberSpec(node_id=i, role=r, province=p, organisation=o,
                        endpoint=f"127.0.0.1:{free_port()}") for i, r, p, o in MEMBERS]
    fed = create_federation(ws, specs)
    _say(f"exchange CA {fed.ca_cert}; directory {fed.directory_file}")
    nodes = {i: Node(NodeConfig.from_file(fed.config(i))) for i, *_ in MEMBERS}
    running = {i: RunningNode(n) for i, n in nodes.items()}
    for i, r in running.items():
        port = await r.start()
        _say(f"  {i:12} listening on 127.0.0.1:{port}")
    ok = True
    try:
        police = nodes["police.fj"]
        reported = sample_numbers(count)
        started = time.monotonic()
        for k in range(0, len(reported), BATCH):
            chunk = tuple(reported[k:k + BATCH])
            await police.send("bureau.fj", NumberReport(
                numbers=chunk, category=Category.FRAUD, discovered_at=datetime.now(UTC),
                case_number=f"FZ-2026-{k // BATCH + 1:04d}",
                evidence_summary="numbers seen in a telecom-fraud call centre", confidence=90))
            done = min(k + BATCH, len(reported))
            _say(f"\r  police.fj reported {done}/{len(reported)} numbers")
        outbox = running["police.fj"].outbox
        while outbox.depth() > 0:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        _say(f"  every report receipted in {elapsed:.2f}s")
        for i in ("police.fj", "bureau.fj", "office.cn"):
            status = await running[i].witness.round()
            for peer, s in sorted(status.items()):
                _say(f"  {i} witnessed {peer}: {s}")
        ok = audit(nodes) and ok
        if keep:
            _say("federation running; configs under "
                 f"{ws}/<node>/node.toml (e.g. bcx ledger entries --config "
                 f"{fed.config('bureau.fj')}); Ctrl-C stops it")
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
    finally:
        for r in running.values():
            await r.stop(grace=2)
    _say("demo " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


def audit(nodes: dict[str, Node]) -> bool:
    ok = True
    _say(f"{'node':12} {'sent':>6} {'received':>9} {'ledger':>7} {'cosigs':>7}  audit")
    for i, node in nodes.items():
        store = node.store
        from exchange.ledger.entries import EntryKind
        sent = len(store.find(kind=EntryKind.SENT))
        received = len(store.find(kind=EntryKind.RECEIVED))
        try:
            report = verify_ledger(node.engine, log_verifier=store.verifier)
            verdict = f"intact ({report.checkpoints} checkpoints)"
        except ExchangeError as e:
            verdict = f"NOT INTACT: {e}"
            ok = False
        cosigs = store.cosignature_count()
        _say(f"{i:12} {sent:>6} {received:>9} {store.size:>7} {cosigs:>7}  {verdict}")
        if store.latest is not None and not store.witnesses_of(store.latest.size):
            _say(f"  {i}: latest checkpoint has no cosignature yet")
    return ok
