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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from exchange import migrate, numbers, storage
from exchange.config import NodeConfig
from exchange.errors import ExchangeError, PeerError
from exchange.identity import Role
from exchange.ledger.audit import verify_ledger
from exchange.ledger.entries import EntryKind
from exchange.ledger.store import LedgerStore
from exchange.numbers import NumberBlock
from exchange.schema import ledger_leaves, outbox
from nodes import operator
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
from nodes.subscribers import import_rows
from nodes.workflow import to_micros

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


def cmd_demo(args: argparse.Namespace) -> int:
    if args.numbers < 20:
        print("bcx demo: --numbers must be at least 20", file=sys.stderr)
        return 2
    # The demo's own progress lines tell the story; library chatter goes to the node logs.
    for name in ("exchange", "alembic", "nodes"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return Demo(args.workspace, args.numbers).run(keep=args.keep)


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
        engine = storage.create_engine_for(self.configs[node_id].database_url)
        migrate.upgrade(engine)
        import_rows(engine, rows, outlet_rows or [])
        engine.dispose()

    # --- processes ---------------------------------------------------------------------

    def start(self, node_id: str) -> None:
        assert self.fed is not None
        log = (self.ws / node_id / "node.log").open("ab")
        self.procs[node_id] = subprocess.Popen(
            [sys.executable, "-m", "nodes.cli", "node", "run", "--config",
             str(self.fed.config(node_id))],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, node_id: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            proc = self.procs[node_id]
            if proc.poll() is not None:
                raise PeerError(f"{node_id} exited with status {proc.returncode}; see "
                                f"{self.ws / node_id / 'node.log'}")
            try:
                with operator.AdminClient(self.configs[node_id], timeout=5) as c:
                    c.call("tick")
                return
            except ExchangeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self, node_id: str) -> None:
        proc = self.procs.pop(node_id, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for node_id in list(self.procs):
            self.stop(node_id)
        for engine in self.engines.values():
            engine.dispose()
        self.engines.clear()

    # --- driving it ---------------------------------------------------------------------

    def call(self, node_id: str, operation: str, **arguments: Any) -> Any:
        with operator.AdminClient(self.configs[node_id]) as c:
            return c.call(operation, **arguments)

    def query(self, node_id: str, fn: Callable[[Any], Any]) -> Any:
        # One read-only engine per node for the whole run: the waits poll every 250 ms.
        engine = self.engines.get(node_id)
        if engine is None:
            engine = self.engines[node_id] = storage.create_engine_for(
                self.configs[node_id].database_url)
        with storage.reader(engine).connect() as conn:
            return fn(conn)

    def count_rows(self, node_id: str, q: Any) -> int:
        return int(self.query(node_id, lambda conn: conn.execute(q).scalar_one()))

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise PeerError(f"timed out waiting for: {what}")
            time.sleep(0.25)

    def open_lines(self, node_id: str = "police.fj") -> int:
        return self.count_rows(node_id, select(func.count()).select_from(report_numbers)
                               .where(report_numbers.c.final.is_(False)))

    def run(self, *, keep: bool) -> int:
        ok = False
        try:
            self.setup()
            started = time.monotonic()
            for node_id, *_ in MEMBERS:
                if node_id != "ctcc.fj":
                    self.start(node_id)
            for node_id, *_ in MEMBERS:
                if node_id != "ctcc.fj":
                    self.wait_ready(node_id)
            say(f"  {len(self.procs)} node processes up in {time.monotonic() - started:.1f}s "
                "(ctcc.fj is offline for maintenance)")
            self.scenario()
            ok = self.audit()
            if keep:
                self.keep()
        except (ExchangeError, OSError) as e:
            say(f"demo stopped: {type(e).__name__}: {e}")
        finally:
            self.stop_all()
        say("demo " + ("PASSED" if ok else "FAILED"))
        return 0 if ok else 1

    def scenario(self) -> None:
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

        # A missed deadline: ctcc.fj is down, bureau.fj escalates to the office.
        self.wait("bureau.fj escalates the notice ctcc.fj missed", lambda: self.count_rows(
            "office.cn", select(func.count()).select_from(escalations).where(
                escalations.c.kind == "overdue_notice", escalations.c.subject_node ==
                "ctcc.fj")) >= 1, timeout=60)
        say("  ctcc.fj missed its shutdown deadline: bureau.fj escalated to office.cn")
        self.start("ctcc.fj")
        self.wait_ready("ctcc.fj")
        self.wait("ctcc.fj answers late", lambda: self.open_lines() == 0)
        say("  ctcc.fj back online: the late notice answered, police fed back on every number")

        # Channel tracing and accountability.
        ch = self.query("bureau.fj", operator.channel_rows)
        target = next(c for c in ch if c["carrier"] == "cmcc.fj")
        pen = self.call("bureau.fj", "penalty", channel_report_id=target["channel_report"],
                        violation="sold cards without real-name registration",
                        measure="fine; outlet's sales code suspended for 6 months",
                        legal_basis="Anti-Telecom and Online Fraud Law art. 38")
        self.wait("cmcc.fj receives the penalty", lambda: self.count_rows(
            "cmcc.fj", select(func.count()).select_from(penalties)) >= 1, timeout=60)
        say(f"  {len(ch)} channel report(s) at bureau.fj; penalty {pen['penalty_id'][:12]}… "
            f"to cmcc.fj for outlet {pen['outlet']}")

        # ID holders with five or more cards, by keyed HMAC only.
        idr = self.call("cmcc.fj", "id-report")
        self.wait("bureau.fj records the ID holders", lambda: self.count_rows(
            "bureau.fj", select(func.count()).select_from(id_holders)) >= idr["holders"],
            timeout=60)
        say(f"  cmcc.fj reported {idr['holders']} ID holder(s) with 5+ cards (HMAC only)")

        # Case cooperation, sealed to the police.
        asked = self.call("police.fj", "ask", carrier="cmcc.fj", case_number="FZ-2026-0001",
                          authorization="Fuzhou PSB cooperation letter 2026-118",
                          numbers_asked=[HOLDER_CARDS[0]], questions=[])
        rid = bytes.fromhex(asked["request_id"])
        self.wait("the sealed case answer arrives", lambda: bool(self.query(
            "police.fj", lambda conn: conn.execute(select(func.count()).select_from(
                case_requests).where(case_requests.c.answered_at.is_not(
                    None))).scalar_one())), timeout=60)
        from nodes.agency import make_node
        from nodes.police import open_case_answer
        node = make_node(self.configs["police.fj"])
        try:
            answer = open_case_answer(node, rid)
        finally:
            node.engine.dispose()
        others = len(answer.records[0].other_numbers_under_id)
        say(f"  case answer sealed to police.fj opened: registration found, {others} other "
            "card(s) under the same ID")

        # An appeal that restores a line.
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

        # A withdrawal: a mistyped report is retracted and its numbers released.
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
        return operator.offline_store(self.configs[node_id])[0]

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

    def keep(self) -> None:
        assert self.fed is not None
        police = self.fed.config("police.fj")
        bureau = self.fed.config("bureau.fj")
        say(f"\nfederation running. Try:\n"
            f"  bcx status --config {police}\n"
            f"  bcx numbers show {self.reported[1]} --config {bureau}\n"
            f"  bcx report --config {police} --category fraud --case-number X "
            f"{self.reported[-1]}\n"
            f"  bcx notices --config {bureau}\n"
            "Ctrl-C stops every node cleanly.")
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.poll() is None for p in self.procs.values()):
                time.sleep(0.5)
