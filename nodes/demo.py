"""`bcx demo`: the special action between separate node processes on this machine.

Ten agencies, each its own process with its own keys, SQLite database and mTLS port:
office.cn; bureau.fj and bureau.gd; police.fj; commerce.fj; carriers cmcc.fj, cucc.fj,
ctcc.fj, cmcc.gd and the reseller mvno-x.fj. The demo drives them the way operators
would, through each node's Admin service (`bcx report`, `bcx decide`, …): police report
numbers, carriers shut them down and trace the channel, a ported number is re-routed, a
Guangdong number goes to Guangdong, a vendor is reported and penalised, an ID holder
with six cards is reported by HMAC, a case answer is sealed to the police, an appeal
restores a line, a report is withdrawn, and ctcc.fj is offline past its deadline so the
bureau escalates to the office. It ends with a summary per node and an audit: every
ledger verified, every latest checkpoint cosigned, every report fed back.

The demo owns its node processes: SIGTERM, SIGHUP or Ctrl-C stops every one of them (they
run in sessions of their own, so no terminal signal reaches them otherwise), and a node
that exits on its own fails the demo, naming it and the end of its log. With ``--keep``
the federation stays up until then; ``--resume DIR`` starts a kept workspace again.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from exchange import migrate, numbers
from exchange.config import NodeConfig
from exchange.errors import ExchangeError, PeerError
from exchange.identity import Role
from exchange.ledger.audit import verify_ledger
from exchange.ledger.entries import EntryKind, to_micros
from exchange.ledger.store import LedgerStore
from exchange.numbers import NumberBlock
from exchange.schema import ledger_leaves, outbox
from exchange.storage import engines
from nodes.carrier.subscribers import import_rows
from nodes.cli import queries
from nodes.cli.admin_client import AdminClient
from nodes.federation import Federation, MemberSpec, create_federation, free_port
from nodes.models import (
    appeals,
    case_requests,
    escalations,
    id_holders,
    notices,
    penalties,
    progress,
    report_numbers,
    subscribers,
)

MEMBERS = (
    ("office.cn", Role.OFFICE, "cn", "National special-action office"),
    ("police.fj", Role.POLICE, "fj", "Fujian public security, anti-fraud centre"),
    ("bureau.fj", Role.BUREAU, "fj", "Fujian communications administration"),
    ("bureau.gd", Role.BUREAU, "gd", "Guangdong communications administration"),
    ("commerce.fj", Role.COMMERCE, "fj", "Fujian market regulation"),
    ("cmcc.fj", Role.CARRIER, "fj", "China Mobile Fujian"),
    ("cucc.fj", Role.CARRIER, "fj", "China Unicom Fujian"),
    ("ctcc.fj", Role.CARRIER, "fj", "China Telecom Fujian"),
    ("cmcc.gd", Role.CARRIER, "gd", "China Mobile Guangdong"),
    ("mvno-x.fj", Role.CARRIER, "fj", "Reseller X, Fujian (170 block)"),
)
PLAN = (NumberBlock(prefix="+8617059", carrier_node="mvno-x.fj", province="fj",
                    reseller=True),)
OUTLETS = ("FZ-0457", "FZ-1102", "XM-0031", "QZ-0715")
PORTED = "+8615959000004"
GD = "+8613802500001"
PROTECTED = "+8615959000003"
INACTIVE = "+8615959000002"
HOLDER_CARDS = [f"+86159590001{i:02d}" for i in range(6)]
CTCC = [f"+86189591{i:05d}" for i in range(1, 6)]
RESOLD = ["+8617059000001", "+8617059000002"]
BAD = ["110", "12321", "1596-ABC"]
DEADLINE_HOURS = 0.002  # 7.2 s: long enough for carriers that are up, short enough to miss
TIMEOUT = 300.0
# 30 of the numbers are the scenario's own (ported, protected, other provinces, …); the
# appeal and the hints need at least three more of the sampled ones.
MIN_NUMBERS = 40
# SIGTERM to a node is a clean stop (calls and deliveries under way finish); past this,
# what is left is killed.
STOP_TIMEOUT = 30.0
LOG_TAIL_LINES = 12
# The signals that stop the demo and, with it, every node it started.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def cmd_demo(args: argparse.Namespace) -> int:
    resume: Path | None = getattr(args, "resume", None)
    if resume is not None and args.workspace is not None:
        print("bcx demo: give --resume DIR or --workspace DIR, not both", file=sys.stderr)
        return 2
    if args.numbers < MIN_NUMBERS:
        print(f"bcx demo: --numbers must be at least {MIN_NUMBERS}, got {args.numbers}",
              file=sys.stderr)
        return 2
    workspace = resume or args.workspace
    problem = workspace_problem(workspace, resume=resume is not None)
    if problem is not None:
        print(f"bcx demo: {problem}", file=sys.stderr)
        return 2
    # The demo's own progress lines tell the story; library chatter goes to the node logs.
    for name in ("exchange", "alembic", "nodes"):
        logging.getLogger(name).setLevel(logging.WARNING)
    demo = Demo(workspace, args.numbers)
    with stopped_by_signals():
        return demo.resume() if resume is not None else demo.run(keep=args.keep)


def workspace_problem(workspace: Path | None, *, resume: bool) -> str | None:
    """Why ``workspace`` cannot be used (to resume, or for a new federation), or None."""
    if workspace is None:
        return None
    held = (workspace / MEMBERS[0][0] / "node.toml").is_file()
    if resume:
        if not workspace.is_dir():
            return f"{workspace} is not a directory; a kept demo workspace is made by " \
                   f"bcx demo --keep --workspace {workspace}"
        missing = [i for i, *_ in MEMBERS if not (workspace / i / "node.toml").is_file()]
        if missing:
            return f"{workspace} is not a demo workspace (no node.toml for " \
                   f"{', '.join(missing)}); make one with bcx demo --keep --workspace DIR"
        return None
    if held:
        return f"{workspace} already holds a demo federation; start it again with: " \
               f"bcx demo --resume {workspace}"
    return None


class Interrupted(BaseException):
    """The demo was told to stop by a signal. A BaseException, as KeyboardInterrupt is, so
    no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Interrupted in the main thread, as Ctrl-C raises
    KeyboardInterrupt, so the demo's clean-up (stopping every node) runs; by default they
    would end the process at once and leave the nodes running."""
    def interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signum)
    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """While nodes are being stopped, a second signal must not cut that short."""
    held = (*STOP_SIGNALS, signal.SIGINT)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class NodeExitedError(ExchangeError):
    """A node process of the demo ended while the demo needed it."""


def say(text: str) -> None:
    print(text, flush=True)


def sample_numbers(count: int, seed: int = 7) -> list[str]:
    """Valid mainland mobile numbers in China Mobile's Fujian blocks, deterministic."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not a secret
    out: set[str] = set()
    taken = {INACTIVE, PROTECTED, PORTED, *HOLDER_CARDS}
    while len(out) < count:
        candidate = f"+86159{rng.randint(59000200, 59999999):08d}"
        try:
            n = numbers.normalise(candidate)
        except ExchangeError:
            continue
        if n not in taken:
            out.add(n)
    return sorted(out)


class Demo:
    def __init__(self, workspace: Path | None, count: int) -> None:
        self.ws = workspace or Path(tempfile.mkdtemp(prefix="bcx-demo-"))
        self.count = count
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.fed: Federation | None = None
        self.configs: dict[str, NodeConfig] = {}
        self.engines: dict[str, Engine] = {}

    # --- set-up -------------------------------------------------------------------------

    def setup(self) -> None:
        self.ws.mkdir(parents=True, exist_ok=True)
        say(f"workspace: {self.ws}")
        specs = [MemberSpec(node_id=i, role=r, province=p, organisation=o,
                            endpoint=f"127.0.0.1:{free_port()}", reseller=i.startswith("mvno"))
                 for i, r, p, o in MEMBERS]
        self.fed = create_federation(self.ws, specs, numbering_plan=PLAN)
        for node_id, path in self.fed.configs.items():
            text = path.read_text()
            for key, value in (("witness_interval_seconds", 1),
                               ("scheduler_interval_seconds", 1),
                               ("shutdown_hours", DEADLINE_HOURS)):
                text = re.sub(rf"^# {key} = .*$", f"{key} = {value}", text, flags=re.M)
                if f"\n{key} = " not in text:
                    text = text.replace("[deadlines]\n", f"[deadlines]\n{key} = {value}\n")
            path.write_text(text)
            self.configs[node_id] = NodeConfig.from_file(path)
        say(f"exchange CA {self.fed.ca_cert}; directory {self.fed.directory_file}")
        self.seed()

    def seed(self) -> None:
        rng = random.Random(11)  # noqa: S311 - sample data
        self.reported = sample_numbers(self.count - 30)
        cmcc = [{"number": n, "status": "active", "province": "fj",
                 "real_name_state": rng.choice(["unregistered", "unregistered",
                                                "false_identity", "registered"]),
                 "outlet_code": rng.choice(OUTLETS), "activated_at": "2026-05-01T08:00:00+00:00"}
                for n in self.reported]
        cmcc += [
            {"number": INACTIVE, "status": "inactive", "province": "fj",
             "real_name_state": "registered"},
            {"number": PROTECTED, "status": "active", "province": "fj",
             "real_name_state": "registered",
             "protected_reason": "SIM of a hospital's emergency dispatch"},
            {"number": PORTED, "status": "ported_out", "ported_to": "cucc.fj", "province": "fj",
             "real_name_state": "registered"},
            *({"number": n, "status": "active", "province": "fj", "real_name_state":
               "registered", "id_number": "350102198805052222", "subscriber_name": "Li Si",
               "outlet_code": "FZ-0457"} for n in HOLDER_CARDS),
        ]
        outlets = [{"outlet_code": c, "outlet_name": f"phone shop {c}", "agent": f"agent of {c}",
                    "address": f"{c[:2]} city"} for c in OUTLETS]
        self._import("cmcc.fj", cmcc, outlets)
        self._import("cucc.fj", [{"number": PORTED, "status": "active", "province": "fj",
                                  "real_name_state": "false_identity"}])
        self._import("ctcc.fj", [{"number": n, "status": "active", "province": "fj",
                                  "real_name_state": "unregistered"} for n in CTCC])
        self._import("cmcc.gd", [{"number": GD, "status": "active", "province": "gd",
                                  "real_name_state": "unregistered"}])
        self._import("mvno-x.fj", [{"number": n, "status": "active", "province": "fj",
                                    "real_name_state": "unregistered"} for n in RESOLD])
        say(f"  carriers' subscriber systems loaded ({len(cmcc)} lines at cmcc.fj)")

    def _import(self, node_id: str, rows: list[dict[str, Any]],
                outlet_rows: list[dict[str, str]] | None = None) -> None:
        engine = engines.create_engine_for(self.configs[node_id].database_url)
        migrate.upgrade(engine)
        import_rows(engine, rows, outlet_rows or [])
        engine.dispose()

    # --- processes ---------------------------------------------------------------------

    def start(self, node_id: str) -> None:
        with self.log_path(node_id).open("ab") as log:
            self.procs[node_id] = subprocess.Popen(
                [sys.executable, "-m", "nodes.cli", "node", "run", "--config",
                 str(self.ws / node_id / "node.toml")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_path(self, node_id: str) -> Path:
        return self.ws / node_id / "node.log"

    def exited(self) -> list[str]:
        """The nodes started and not stopped by the demo whose process has ended."""
        return [i for i, p in self.procs.items() if p.poll() is not None]

    def check_alive(self) -> None:
        """Raise NodeExitedError for the first node whose process ended unasked."""
        for node_id in self.exited():
            raise NodeExitedError(self.describe_exit(node_id))

    def describe_exit(self, node_id: str) -> str:
        code = self.procs[node_id].returncode
        how = (f"was killed by {signal.Signals(-code).name}" if code < 0
               else f"exited with status {code}")
        path = self.log_path(node_id)
        try:
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError as e:
            lines = [f"(no log: {e.strerror})"]
        tail = "".join(f"\n    {line}" for line in lines)
        return f"node {node_id} {how}; last lines of {path}:{tail}"

    def wait_ready(self, node_id: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            self.check_alive()
            try:
                with AdminClient(self.configs[node_id], timeout=5) as c:
                    c.call("tick")
                return
            except ExchangeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self, node_id: str) -> None:
        proc = self.procs.pop(node_id, None)
        if proc is not None:
            _stop_processes([proc])

    def stop_all(self) -> None:
        """SIGTERM every node at once, wait for them together, kill what outlasts that."""
        with signals_held():
            procs = list(self.procs.values())
            self.procs.clear()
            _stop_processes(procs)
            for engine in self.engines.values():
                engine.dispose()
            self.engines.clear()

    # --- driving it ---------------------------------------------------------------------

    def call(self, node_id: str, operation: str, **arguments: Any) -> Any:
        with AdminClient(self.configs[node_id]) as c:
            return c.call(operation, **arguments)

    def query(self, node_id: str, fn: Callable[[Any], Any]) -> Any:
        # One read-only engine per node for the whole run: the waits poll every 250 ms.
        engine = self.engines.get(node_id)
        if engine is None:
            engine = self.engines[node_id] = engines.create_engine_for(
                self.configs[node_id].database_url)
        with engines.reader(engine).connect() as conn:
            return fn(conn)

    def count_rows(self, node_id: str, q: Any) -> int:
        return int(self.query(node_id, lambda conn: conn.execute(q).scalar_one()))

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self.check_alive()
            if time.monotonic() > deadline:
                raise PeerError(f"timed out waiting for: {what}")
            time.sleep(0.25)

    def open_lines(self, node_id: str = "police.fj") -> int:
        return self.count_rows(node_id, select(func.count()).select_from(report_numbers)
                               .where(report_numbers.c.final.is_(False)))

    def start_all(self, node_ids: list[str]) -> None:
        started = time.monotonic()
        for node_id in node_ids:
            self.start(node_id)
        for node_id in node_ids:
            self.wait_ready(node_id)
        say(f"  {len(self.procs)} node processes up in {time.monotonic() - started:.1f}s")

    def run(self, *, keep: bool) -> int:
        ok = False
        interrupted: Interrupted | None = None
        try:
            self.setup()
            self.start_all([i for i, *_ in MEMBERS if i != "ctcc.fj"])
            say("  (ctcc.fj is offline for maintenance)")
            self.scenario()
            self.check_alive()
            ok = self.audit()
            self.check_alive()
            if keep:
                self.keep(self.reported[1], self.reported[-1])
        except Interrupted as e:
            interrupted = e
        except KeyboardInterrupt:
            interrupted = Interrupted(signal.SIGINT)
        except (ExchangeError, OSError) as e:
            ok = False
            self.stopped_by(e)
        finally:
            self.stop_all()
        if keep:
            say(f"workspace kept: {self.ws}; start it again with: bcx demo --resume {self.ws}")
        if interrupted is not None and not (ok and keep):
            # Stopped before the scenario was through: it neither passed nor failed.
            say(f"demo {interrupted}: every node stopped")
            return 128 + interrupted.signum
        say("demo " + ("PASSED" if ok else "FAILED"))
        return 0 if ok else 1

    def stopped_by(self, error: BaseException) -> None:
        """Say why the demo stopped. A node that died is the cause of whatever failed after
        it (a call it did not answer), so every such node is named too, with its log."""
        if isinstance(error, NodeExitedError):
            say(f"demo stopped: {error}")
        else:
            say(f"demo stopped: {type(error).__name__}: {error}")
        for node_id in self.exited():
            if not (isinstance(error, NodeExitedError) and f"node {node_id} " in str(error)):
                say(self.describe_exit(node_id))

    def resume(self) -> int:
        """Start every node of a kept workspace again and keep them up until stopped."""
        ok = True
        try:
            say(f"workspace: {self.ws}")
            for node_id, *_ in MEMBERS:
                self.configs[node_id] = NodeConfig.from_file(self.ws / node_id / "node.toml")
            self.start_all([i for i, *_ in MEMBERS])
            number = self.query("bureau.fj", lambda conn: conn.scalar(
                select(report_numbers.c.number).order_by(report_numbers.c.number).limit(1)))
            self.keep(number or "+8615959000100", "+8615959000200")
        except (Interrupted, KeyboardInterrupt):
            pass  # asked to stop: every node is stopped below
        except (ExchangeError, OSError) as e:
            ok = False
            self.stopped_by(e)
        finally:
            self.stop_all()
        say(f"every node stopped; start them again with: bcx demo --resume {self.ws}")
        if not ok:
            say("demo FAILED")
        return 0 if ok else 1

    def scenario(self) -> None:
        """The walkthrough, step by step (each step waits for what it asserts)."""
        self.report_and_act()
        self.missed_deadline()
        self.channel_penalty()
        self.id_holder_report()
        self.case_cooperation()
        self.appeal()
        self.withdrawal()
        self.progress_and_drain()

    def report_and_act(self) -> None:
        """Every number reported and acted on; all but the down carrier's fed back."""
        n = len(self.reported)
        found = [*self.reported, INACTIVE, PROTECTED, PORTED, GD, *RESOLD, *CTCC[:3], *BAD]
        t0 = time.monotonic()
        batch = 2000
        for k in range(0, len(found), batch):
            self.call("police.fj", "report", numbers_found=found[k:k + batch],
                      category="fraud", case_number=f"FZ-2026-{k // batch + 1:04d}",
                      evidence="numbers seen in a telecom-fraud call centre", confidence=90)
            say(f"  police.fj reported {min(k + batch, len(found))}/{len(found)} numbers")
        self.call("commerce.fj", "channel", outlet_code="FZ-1102", outlet_name="phone shop FZ-1102",
                  address="Taijiang district, Fuzhou", carrier="cmcc.fj",
                  numbers_seen=self.reported[:3],
                  findings="sold pre-activated cards without checking ID")
        say("  commerce.fj reported a vendor selling pre-activated cards")
        # Everything but ctcc.fj's numbers (its node is down) gets a final outcome.
        self.wait("every number but ctcc.fj's has an outcome",
                  lambda: self.open_lines() <= 3, timeout=TIMEOUT)
        elapsed = time.monotonic() - t0
        say(f"  {n + 10} numbers reported, noticed, acted on and fed back in {elapsed:.1f}s "
            f"({(n + 10) / elapsed:.0f} numbers/s)")

    def missed_deadline(self) -> None:
        """A missed deadline: ctcc.fj is down, bureau.fj escalates to the office."""
        self.wait("bureau.fj escalates the notice ctcc.fj missed", lambda: self.count_rows(
            "office.cn", select(func.count()).select_from(escalations).where(
                escalations.c.kind == "overdue_notice", escalations.c.subject_node ==
                "ctcc.fj")) >= 1, timeout=60)
        say("  ctcc.fj missed its shutdown deadline: bureau.fj escalated to office.cn")
        self.start("ctcc.fj")
        self.wait_ready("ctcc.fj")
        self.wait("ctcc.fj answers late", lambda: self.open_lines() == 0)
        say("  ctcc.fj back online: the late notice answered, police fed back on every number")

    def channel_penalty(self) -> None:
        """Channel tracing and accountability."""
        ch = self.query("bureau.fj", queries.channel_rows)
        target = next(c for c in ch if c["carrier"] == "cmcc.fj")
        pen = self.call("bureau.fj", "penalty", channel_report_id=target["channel_report"],
                        violation="sold cards without real-name registration",
                        measure="fine; outlet's sales code suspended for 6 months",
                        legal_basis="Anti-Telecom and Online Fraud Law art. 38")
        self.wait("cmcc.fj receives the penalty", lambda: self.count_rows(
            "cmcc.fj", select(func.count()).select_from(penalties)) >= 1, timeout=60)
        say(f"  {len(ch)} channel report(s) at bureau.fj; penalty {pen['penalty_id'][:12]}… "
            f"to cmcc.fj for outlet {pen['outlet']}")

    def id_holder_report(self) -> None:
        """ID holders with five or more cards, by keyed HMAC only."""
        idr = self.call("cmcc.fj", "id-report")
        self.wait("bureau.fj records the ID holders", lambda: self.count_rows(
            "bureau.fj", select(func.count()).select_from(id_holders)) >= idr["holders"],
            timeout=60)
        say(f"  cmcc.fj reported {idr['holders']} ID holder(s) with 5+ cards (HMAC only)")

    def case_cooperation(self) -> None:
        """Case cooperation, sealed to the police."""
        asked = self.call("police.fj", "ask", carrier="cmcc.fj", case_number="FZ-2026-0001",
                          authorization="Fuzhou PSB cooperation letter 2026-118",
                          numbers_asked=[HOLDER_CARDS[0]], questions=[])
        rid = bytes.fromhex(asked["request_id"])
        self.wait("the sealed case answer arrives", lambda: bool(self.query(
            "police.fj", lambda conn: conn.execute(select(func.count()).select_from(
                case_requests).where(case_requests.c.answered_at.is_not(
                    None))).scalar_one())), timeout=60)
        from nodes.agency import make_node
        from nodes.police.tables import open_case_answer
        node = make_node(self.configs["police.fj"])
        try:
            answer = open_case_answer(node, rid)
        finally:
            node.engine.dispose()
        others = len(answer.records[0].other_numbers_under_id)
        say(f"  case answer sealed to police.fj opened: registration found, {others} other "
            "card(s) under the same ID")

    def appeal(self) -> None:
        """An appeal that restores a line."""
        appealed = self.reported[0]
        ap = self.call("cmcc.fj", "appeal", number=appealed,
                       grounds="subscriber re-registered in person with valid ID")
        self.wait("bureau.fj receives the appeal", lambda: self.count_rows(
            "bureau.fj", select(func.count()).select_from(appeals)) >= 1, timeout=60)
        self.call("bureau.fj", "decide", appeal_id=ap["appeal_id"], lift=True,
                  reasoning="identity verified at the carrier's counter")
        self.wait("cmcc.fj restores the line", lambda: self.count_rows(
            "cmcc.fj", select(func.count()).select_from(subscribers).where(
                subscribers.c.number == appealed, subscribers.c.status == "active")) == 1,
            timeout=60)
        say(f"  appeal for {appealed[:7]}…: lifted, line restored, police.fj informed")

    def withdrawal(self) -> None:
        """A withdrawal: a mistyped report is retracted and its numbers released."""
        wrong = self.call("police.fj", "report", numbers_found=CTCC[3:], category="other",
                          case_number="FZ-2026-WRONG", evidence="mistyped")
        self.wait("the mistyped report is acted on", lambda: self.open_lines() == 0)
        self.call("police.fj", "withdraw", report_id=wrong["reports"][0],
                  reason="numbers mistyped from the seized phone")
        self.wait("ctcc.fj restores the withdrawn numbers", lambda: self.count_rows(
            "ctcc.fj", select(func.count()).select_from(subscribers).where(
                subscribers.c.number.in_(CTCC[3:]), subscribers.c.status == "active")) == 2,
            timeout=60)
        say("  a mistyped report withdrawn: ctcc.fj restored its two numbers")

    def progress_and_drain(self) -> None:
        """Progress to the office; every outbox drained and every latest checkpoint cosigned."""
        self.call("bureau.fj", "progress")
        self.call("bureau.gd", "progress")
        self.wait("office.cn has both provinces' progress", lambda: self.count_rows(
            "office.cn", select(func.count()).select_from(progress)) >= 2, timeout=60)
        self.wait("every outbox drained", lambda: all(self.count_rows(
            i, select(func.count()).select_from(outbox).where(outbox.c.delivered_at.is_(None)))
            == 0 for i in self.procs), timeout=120)
        # Let the witnesses cosign the final checkpoints (they look every second).
        self.wait("every latest checkpoint cosigned", self.all_cosigned, timeout=60)

    def _store(self, node_id: str) -> LedgerStore:
        return queries.offline_store(self.configs[node_id])[0]

    def all_cosigned(self) -> bool:
        for node_id, *_ in MEMBERS:
            store = self._store(node_id)
            try:
                if store.latest is None or not store.witnesses_of(store.latest.size):
                    return False
            finally:
                store.engine.dispose()
        return True

    def audit(self) -> bool:
        ok = True
        now = datetime.now(UTC)
        say(f"\n{'node':12} {'sent':>6} {'received':>9} {'overdue':>8} {'ledger':>7} "
            f"{'cosigs':>7}  audit")
        for node_id, *_ in MEMBERS:
            store = self._store(node_id)
            try:
                def kind(k: EntryKind) -> Any:
                    return select(func.count()).select_from(ledger_leaves).where(
                        ledger_leaves.c.kind == int(k))
                sent = self.count_rows(node_id, kind(EntryKind.SENT))
                received = self.count_rows(node_id, kind(EntryKind.RECEIVED))
                overdue = self.count_rows(node_id, select(func.count()).select_from(notices)
                                          .where(notices.c.closed_at.is_(None),
                                                 notices.c.deadline < to_micros(now)))
                try:
                    report = verify_ledger(store.engine, log_verifier=store.verifier)
                    verdict = f"intact ({report.checkpoints} checkpoints)"
                except ExchangeError as e:
                    verdict, ok = f"NOT INTACT: {e}", False
                cosigned = store.latest is not None and bool(
                    store.witnesses_of(store.latest.size))
                if not cosigned:
                    verdict += "; latest checkpoint NOT cosigned"
                    ok = False
                say(f"{node_id:12} {sent:>6} {received:>9} {overdue:>8} {store.size:>7} "
                    f"{store.cosignature_count():>7}  {verdict}")
            finally:
                store.engine.dispose()
        open_lines = self.open_lines() + self.open_lines("commerce.fj")
        esc = self.count_rows("office.cn", select(func.count()).select_from(escalations))
        say(f"reports fed back: {'every number' if open_lines == 0 else f'{open_lines} OPEN'}; "
            f"escalations at office.cn: {esc}")
        return ok and open_lines == 0

    def keep(self, known: str, new: str) -> None:
        """Leave the federation running until Ctrl-C, SIGTERM or SIGHUP; a node that ends
        on its own meanwhile fails the demo (NodeExitedError)."""
        police = self.ws / "police.fj" / "node.toml"
        bureau = self.ws / "bureau.fj" / "node.toml"
        say(f"\nfederation running. Try:\n"
            f"  bcx status --config {police}\n"
            f"  bcx numbers show {known} --config {bureau}\n"
            f"  bcx report --config {police} --category fraud --case-number X {new}\n"
            f"  bcx notices --config {bureau}\n"
            f"Ctrl-C (or SIGTERM, SIGHUP to PID {os.getpid()}) stops every node cleanly.")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                self.check_alive()
                time.sleep(0.5)


def _stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each node's process group, wait up to STOP_TIMEOUT for all of them, then
    SIGKILL whatever is left; returns once every process has been reaped."""
    running = [p for p in procs if p.poll() is None]
    for p in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for p in running:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
