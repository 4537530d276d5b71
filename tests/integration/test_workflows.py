"""The special action end to end: real nodes, real gRPC and mTLS, real SQLite databases.

Each scenario checks the workflow tables of every node involved and the ledger entries
that prove what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from fedharness import make_federation, wait_for
from sqlalchemy import func, select

from exchange import envelope, messages, seal
from exchange.config import NodeConfig
from exchange.errors import SealError
from exchange.identity import Role
from exchange.ledger.audit import verify_ledger
from exchange.ledger.entries import Entry, EntryKind
from exchange.node import Node
from exchange.numbers import NumberBlock
from exchange.runtime import RunningNode
from nodes import bureau, carrier, police
from nodes.agency import make_running
from nodes.carrier.decisions import CASE_CONTEXT
from nodes.carrier.subscribers import import_rows
from nodes.federation import Federation
from nodes.models import (
    appeals,
    case_requests,
    channel_reports,
    escalations,
    id_holders,
    notice_numbers,
    notices,
    numbers,
    penalties,
    progress,
    report_numbers,
    reports,
    subscribers,
)
from nodes.police.tables import open_case_answer

pytestmark = [pytest.mark.network]

SPECS = (
    ("office.cn", Role.OFFICE, "cn"),
    ("police.fj", Role.POLICE, "fj"),
    ("bureau.fj", Role.BUREAU, "fj"),
    ("bureau.gd", Role.BUREAU, "gd"),
    ("cmcc.fj", Role.CARRIER, "fj"),
    ("cucc.fj", Role.CARRIER, "fj"),
    ("cmcc.gd", Role.CARRIER, "gd"),
    ("mvno-x.fj", Role.CARRIER, "fj"),
    ("commerce.fj", Role.COMMERCE, "fj"),
)
# The reseller's block: phonenumbers cannot say who serves it; the directory can.
PLAN = (NumberBlock(prefix="+8617059", carrier_node="mvno-x.fj", province="fj", reseller=True),)

SHUT = "+8615959000001"  # cmcc.fj, active, sold without real-name registration at FZ-0457
GONE = "+8615959000002"  # cmcc.fj, cancelled long ago
KEY_ACCOUNT = "+8615959000003"  # cmcc.fj, a protected line: the carrier refuses
PORTED = "+8615959000004"  # cmcc.fj block, ported out to cucc.fj
GD = "+8613802500001"  # Guangdong: bureau.gd and cmcc.gd
RESOLD = "+8617059000001"  # the reseller mvno-x.fj
NEVER = "110"
INVALID = "1234-5"

CMCC_FJ = [
    {"number": SHUT, "status": "active", "real_name_state": "unregistered", "province": "fj",
     "outlet_code": "FZ-0457", "subscriber_name": "Wang Wu", "id_number": "350102199001011234",
     "activated_at": "2026-03-01T10:00:00+00:00"},
    {"number": GONE, "status": "inactive", "real_name_state": "registered", "province": "fj"},
    {"number": KEY_ACCOUNT, "status": "active", "real_name_state": "registered",
     "province": "fj", "protected_reason": "line of a hospital's emergency service"},
    {"number": PORTED, "status": "ported_out", "ported_to": "cucc.fj",
     "real_name_state": "registered", "province": "fj"},
    # One ID holder with six cards in the province.
    *({"number": f"+86159590001{i:02d}", "status": "active", "real_name_state": "registered",
       "province": "fj", "id_number": "350102198805052222", "subscriber_name": "Li Si"}
      for i in range(6)),
]
OUTLETS = [{"outlet_code": "FZ-0457", "outlet_name": "Xinda phone shop",
            "agent": "Xinda Trading Co.", "address": "Gulou district, Fuzhou"}]


def seed(fed: Federation, node_id: str, rows: Sequence[dict[str, Any]],
         outlet_rows: Sequence[dict[str, str]] = ()) -> None:
    from exchange import migrate
    from exchange.storage import engines

    engine = engines.create_engine_for(NodeConfig.from_file(fed.config(node_id)).database_url)
    migrate.upgrade(engine)
    import_rows(engine, rows, outlet_rows)
    engine.dispose()


def set_deadline(fed: Federation, node_id: str, key: str, value: float) -> None:
    path = fed.config(node_id)
    text = path.read_text()
    path.write_text(re.sub(rf"^# {key} = .*$", f"{key} = {value}", text, flags=re.M))


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    f = make_federation(tmp_path / "fed", SPECS, numbering_plan=PLAN)
    seed(f, "cmcc.fj", CMCC_FJ, OUTLETS)
    seed(f, "cucc.fj", [{"number": PORTED, "status": "active", "province": "fj",
                         "real_name_state": "false_identity", "outlet_code": "XM-0099"}])
    seed(f, "cmcc.gd", [{"number": GD, "status": "active", "province": "gd",
                         "real_name_state": "registered"}])
    seed(f, "mvno-x.fj", [{"number": RESOLD, "status": "active", "province": "fj",
                           "real_name_state": "unregistered"}])
    return f


class World:
    def __init__(self, running: dict[str, RunningNode]) -> None:
        self.running = running

    def node(self, node_id: str) -> Node:
        return self.running[node_id].node

    async def op(self, node_id: str, fn: Callable[..., Any], **kw: Any) -> Any:
        return await self.node(node_id).run_work(lambda ctx: fn(ctx, **kw))

    def rows(self, node_id: str, query: Any) -> list[Any]:
        with self.node(node_id).reader.connect() as conn:
            return list(conn.execute(query).all())

    def scalar(self, node_id: str, query: Any) -> Any:
        with self.node(node_id).reader.connect() as conn:
            return conn.execute(query).scalar_one()

    def lines(self, node_id: str = "police.fj") -> dict[str, Any]:
        return {r.number: r for r in self.rows(node_id, select(report_numbers))}

    def entries(self, node_id: str, kind: EntryKind, subject: str | None = None
                ) -> list[Entry]:
        store = self.node(node_id).store
        out = [Entry.decode(store.leaf(i)) for i in store.find(kind=kind)]
        return [e for e in out if subject is None or e.subject == subject]

    async def settled(self, timeout: float = 30) -> None:
        """Every outbox drained (all messages receipted), twice in a row."""
        def idle() -> bool:
            return all(r.outbox.depth() == 0 for r in self.running.values())
        await wait_for(idle, timeout=timeout)
        await asyncio.sleep(0.2)
        await wait_for(idle, timeout=timeout)

    def audit(self) -> None:
        for node_id, r in self.running.items():
            report = verify_ledger(r.node.engine, log_verifier=r.node.store.verifier)
            assert report.size == r.node.store.size, node_id


@contextlib.asynccontextmanager
async def world(fed: Federation, only: Sequence[str] | None = None) -> AsyncIterator[World]:
    ids = only or [s[0] for s in SPECS]
    running = {i: make_running(NodeConfig.from_file(fed.config(i))) for i in ids}
    try:
        for r in running.values():
            await r.start()
        yield World(running)
    finally:
        for r in running.values():
            await r.stop(grace=1)


async def report(w: World, found: Sequence[str], case: str = "FZ-2026-0001") -> list[bytes]:
    result = await w.op("police.fj", police.report, numbers_found=list(found),
                        category="fraud", case_number=case, evidence="call-centre raid")
    return [bytes.fromhex(r) for r in result["reports"]]


def all_final(w: World, node_id: str = "police.fj") -> Callable[[], bool]:
    return lambda: all(r.final for r in w.lines(node_id).values())


# --- The black-card path ------------------------------------------------------------------


def test_a_reported_black_card_is_shut_down_traced_and_fed_back(fed: Federation) -> None:
    async def scenario() -> None:
        async with world(fed) as w:
            [rid] = await report(w, [SHUT, "0086 159 5900 0002", KEY_ACCOUNT, PORTED, GD,
                                     RESOLD, NEVER, INVALID, SHUT])
            await wait_for(all_final(w), timeout=30)
            lines = w.lines()
            got = {n: (r.status, r.carrier_node) for n, r in lines.items()}
            assert got == {
                SHUT: ("shut_down", "cmcc.fj"),
                GONE: ("already_inactive", "cmcc.fj"),
                KEY_ACCOUNT: ("refused", "cmcc.fj"),
                PORTED: ("shut_down", "cucc.fj"),  # re-routed on the porting hint
                GD: ("shut_down", "cmcc.gd"),  # through Guangdong's bureau
                RESOLD: ("shut_down", "mvno-x.fj"),  # the directory's plan
                NEVER: ("rejected", ""),
                INVALID: ("rejected", ""),
            }
            assert "never actionable" in lines[NEVER].detail
            assert "1234-5" in lines[INVALID].detail
            assert "hospital" in lines[KEY_ACCOUNT].detail
            assert all(r.feedback_id is not None for r in lines.values())

            # The carriers' subscriber systems did it, and logged each call.
            def sub(node_id: str, number: str) -> Any:
                return w.rows(node_id, select(subscribers).where(
                    subscribers.c.number == number))[0]
            assert sub("cmcc.fj", SHUT).status == "suspended"
            assert sub("cmcc.fj", KEY_ACCOUNT).status == "active"
            assert sub("cucc.fj", PORTED).status == "suspended"
            assert sub("cmcc.gd", GD).status == "suspended"
            suspends = w.entries("cmcc.fj", EntryKind.ACTION, "subscribers.suspend")
            assert any(SHUT.encode() in e.detail for e in suspends)

            # The bureau's view: one notice per carrier, the porting re-route, the channel.
            cases = {r.number: r for r in w.rows("bureau.fj", select(numbers))}
            assert cases[PORTED].tried == "cmcc.fj,cucc.fj"
            assert cases[SHUT].outlet_code == "FZ-0457"
            assert GD not in cases  # Guangdong's number is Guangdong's business
            handed_over = w.rows("bureau.fj", select(report_numbers).where(
                report_numbers.c.number == GD))[0]
            assert (handed_over.status, handed_over.final) == ("forwarded", True)
            assert w.rows("bureau.gd", select(numbers))[0].number == GD
            channel = w.rows("bureau.fj", select(channel_reports))
            assert {(c.outlet_code, c.reporter) for c in channel} >= {("FZ-0457", "cmcc.fj")}

            # Ledgers: the report received, notices sent, answers received, feedback sent.
            received = {e.subject for e in w.entries("bureau.fj", EntryKind.RECEIVED)}
            sent = {e.subject for e in w.entries("bureau.fj", EntryKind.SENT)}
            assert {"number_report", "action_report", "channel_report"} <= received
            assert {"shutdown_notice", "circular", "number_report"} <= sent
            report_entry = w.entries("bureau.fj", EntryKind.RECEIVED, "number_report")[0]
            assert report_entry.message_id == rid

            # Accountability: the bureau penalises the carrier responsible for the outlet.
            outlet = next(c for c in channel if c.outlet_code == "FZ-0457")
            await w.op("bureau.fj", bureau.issue_penalty,
                       channel_report_id=bytes(outlet.report_id).hex(),
                       violation="sold cards without real-name registration",
                       measure="fine and suspension of the outlet's sales code",
                       legal_basis="Anti-Telecom and Online Fraud Law art. 38")
            await w.settled()
            [penalty] = w.rows("cmcc.fj", select(penalties))
            assert penalty.outlet_code == "FZ-0457" and penalty.bureau == "bureau.fj"

            # The office hears the province's progress, by carrier and category.
            await w.op("bureau.fj", bureau.send_progress)
            await wait_for(lambda: bool(w.rows("office.cn", select(progress))))
            [sent_progress] = w.rows("office.cn", select(progress))
            counts = {c["carrier"]: c for c in __import__("json").loads(
                sent_progress.counts_json)}
            assert counts["cmcc.fj"]["shut_down"] == 1
            assert counts["cmcc.fj"]["refused"] == 1
            assert counts["cucc.fj"]["shut_down"] == 1
            w.audit()

    asyncio.run(scenario())


def test_a_number_reported_twice_gets_one_notice_and_both_reports_feedback(
        fed: Federation) -> None:
    async def scenario() -> None:
        async with world(fed, ["office.cn", "police.fj", "bureau.fj", "cmcc.fj"]) as w:
            [first] = await report(w, [SHUT])
            await wait_for(all_final(w))
            [second] = await report(w, [SHUT, GONE], case="FZ-2026-0002")
            await wait_for(all_final(w))
            await w.settled()
            got = {(bytes(r.report_id), r.number): r.status
                   for r in w.rows("police.fj", select(report_numbers))}
            assert got == {(first, SHUT): "shut_down", (second, SHUT): "shut_down",
                           (second, GONE): "already_inactive"}
            noticed = w.scalar("bureau.fj", select(func.count()).select_from(notice_numbers)
                               .where(notice_numbers.c.number == SHUT))
            assert noticed == 1
            assert len(w.entries("cmcc.fj", EntryKind.RECEIVED, "shutdown_notice")) == 2
            w.audit()

    asyncio.run(scenario())


def test_bad_numbers_in_a_large_report_are_rejected_and_the_rest_processed(
        fed: Federation) -> None:
    many = [f"+86159591{i:05d}" for i in range(2500)]
    seed(fed, "cmcc.fj", [{"number": n, "status": "active", "province": "fj",
                           "real_name_state": "unregistered", "outlet_code": "FZ-0457"}
                          for n in many])

    async def scenario() -> None:
        async with world(fed, ["office.cn", "police.fj", "bureau.fj", "cmcc.fj"]) as w:
            # 2503 numbers: one report, sent in three messages of at most 1000
            [rid] = await report(w, [*many[:1200], NEVER, "12321", "+86 abc", *many[1200:]])
            await wait_for(all_final(w), timeout=60)
            parts = w.entries("bureau.fj", EntryKind.RECEIVED, "number_report")
            assert len(parts) == 3 and parts[0].message_id == rid
            [held] = w.rows("bureau.fj", select(reports))
            assert bytes(held.report_id) == rid and held.numbers_total == 2503
            assert {bytes(r.report_id) for r in w.rows("police.fj", select(report_numbers))} \
                == {rid}
            lines = w.lines()
            assert sum(r.status == "shut_down" for r in lines.values()) == 2500
            rejected = {n: r.detail for n, r in lines.items() if r.status == "rejected"}
            assert set(rejected) == {NEVER, "12321", "+86 abc"}
            assert "never actionable" in rejected["12321"]
            assert "letters" in rejected["+86 abc"]
            suspended = w.scalar("cmcc.fj", select(func.count()).select_from(subscribers)
                                 .where(subscribers.c.status == "suspended"))
            assert suspended == 2500
            w.audit()

    asyncio.run(scenario())


# --- Deadlines --------------------------------------------------------------------------


def test_a_missed_shutdown_deadline_is_escalated_to_the_office(fed: Federation) -> None:
    set_deadline(fed, "bureau.fj", "shutdown_hours", 0.0003)  # about one second

    async def scenario() -> None:
        # The carrier is down: the notice waits in the bureau's outbox past its deadline.
        async with world(fed, ["office.cn", "police.fj", "bureau.fj"]) as w:
            await report(w, [SHUT])
            await wait_for(lambda: len(w.rows("bureau.fj", select(notices))) == 1)
            await asyncio.sleep(1.2)
            result = await w.op("bureau.fj", bureau.overdue_notices)
            assert len(result) == 1
            await wait_for(lambda: len(w.rows("office.cn", select(escalations))) == 1)
            [esc] = w.rows("office.cn", select(escalations))
            assert (esc.kind, esc.raised_by, esc.subject_node) == \
                ("overdue_notice", "bureau.fj", "cmcc.fj")
            assert "unanswered past the deadline" in esc.detail
            # Escalated once, not on every tick.
            assert await w.op("bureau.fj", bureau.overdue_notices) == []
            assert w.entries("bureau.fj", EntryKind.ACTION, "deadline.overdue_notice")
        # The carrier comes back: the notice is delivered and answered, late but answered.
        async with world(fed, ["office.cn", "police.fj", "bureau.fj", "cmcc.fj"]) as w:
            # The restarted bureau's deadline check resumes where it was: no second alarm.
            assert await w.op("bureau.fj", bureau.overdue_notices) == []
            await wait_for(all_final(w), timeout=30)
            [notice] = w.rows("bureau.fj", select(notices))
            assert notice.closed_at is not None and notice.escalated_at is not None
            assert notice.closed_at > notice.deadline

    asyncio.run(scenario())


# --- Case cooperation -------------------------------------------------------------------------


def test_a_case_answer_is_sealed_to_the_police_and_unreadable_by_anyone_else(
        fed: Federation) -> None:
    async def scenario() -> None:
        async with world(fed, ["office.cn", "police.fj", "bureau.fj", "cmcc.fj"]) as w:
            asked = await w.op("police.fj", police.ask, carrier="cmcc.fj",
                               case_number="FZ-2026-0001",
                               authorization="Fuzhou PSB cooperation letter 2026-118",
                               numbers_asked=[SHUT], questions=[])
            rid = bytes.fromhex(asked["request_id"])
            await w.settled()
            answer = open_case_answer(w.node("police.fj"), rid)
            [record] = answer.records
            assert record.subscriber_name == "Wang Wu"
            assert record.id_number == "350102199001011234"
            assert record.channel is not None and record.channel.outlet_code == "FZ-0457"
            assert len(record.other_numbers_under_id) == 0

            # Neither ledger holds the answer in clear.
            for node_id in ("police.fj", "cmcc.fj"):
                for i in range(w.node(node_id).store.size):
                    leaf = w.node(node_id).store.leaf(i)
                    assert b"Wang Wu" not in leaf and b"350102199001011234" not in leaf
            # Another node (the office, the bureau) cannot open it with its own key.
            [sent] = w.entries("cmcc.fj", EntryKind.SENT, "case_response")
            body = messages.decode_message(envelope.parse(sent.envelope).payload).body
            assert isinstance(body, messages.CaseResponse) and body.sealed_answer
            box = body.sealed_answer
            sealed = seal.Sealed(box.suite, box.recipient, box.recipient_key_id,
                                 box.ciphertext)
            for other in ("office.cn", "bureau.fj"):
                with pytest.raises(SealError, match=r"sealed to 'police\.fj', not to this node"):
                    seal.open_sealed(sealed, recipient=other,
                                     private_key=w.node(other).credentials.hpke_private,
                                     context=CASE_CONTEXT + rid)
                with pytest.raises(SealError, match="sealed to HPKE key"):
                    seal.open_sealed(sealed, recipient="police.fj",
                                     private_key=w.node(other).credentials.hpke_private,
                                     context=CASE_CONTEXT + rid)
            cases = w.rows("police.fj", select(case_requests))
            assert cases[0].answered_at is not None

    asyncio.run(scenario())


# --- Appeals and withdrawals --------------------------------------------------------------


def test_an_appeal_lifted_restores_service_and_tells_the_police(fed: Federation) -> None:
    async def scenario() -> None:
        async with world(fed, ["office.cn", "police.fj", "bureau.fj", "cmcc.fj"]) as w:
            await report(w, [SHUT])
            await wait_for(all_final(w))
            filed = await w.op("cmcc.fj", carrier.appeal, number=SHUT,
                               grounds="subscriber re-registered in person with valid ID")
            await w.settled()
            [pending] = w.rows("bureau.fj", select(appeals))
            assert pending.decided_at is None and pending.number == SHUT
            decided = await w.op("bureau.fj", bureau.decide_appeal,
                                 appeal_id=filed["appeal_id"], lift=True,
                                 reasoning="identity verified at the carrier's counter")
            assert decided["informed"] == ["cmcc.fj", "police.fj"]
            await w.settled()
            [sub] = w.rows("cmcc.fj", select(subscribers).where(subscribers.c.number == SHUT))
            assert sub.status == "active"
            [line] = w.lines().values()
            assert line.status == "restored" and "identity verified" in line.detail
            [mine] = w.rows("cmcc.fj", select(appeals))
            assert mine.outcome == "lifted"
            restores = w.entries("cmcc.fj", EntryKind.ACTION, "subscribers.restore")
            assert restores and SHUT.encode() in restores[0].detail
            assert w.entries("police.fj", EntryKind.RECEIVED, "appeal_decision")
            w.audit()

    asyncio.run(scenario())


def test_a_withdrawn_report_restores_numbers_no_other_report_names(fed: Federation) -> None:
    other = "+8615959000100"  # one of the six cards; reported twice below

    async def scenario() -> None:
        async with world(fed, ["office.cn", "police.fj", "bureau.fj", "cmcc.fj"]) as w:
            [wrong] = await report(w, [SHUT, other], case="FZ-2026-0009")
            await report(w, [other], case="FZ-2026-0010")
            await wait_for(all_final(w))
            result = await w.op("police.fj", police.withdraw, report_id=wrong.hex(),
                                reason="numbers mistyped from the seized phone")
            assert result["numbers"] == 2
            await w.settled()
            subs = {r.number: r.status for r in w.rows("cmcc.fj", select(subscribers))}
            assert subs[SHUT] == "active"  # restored: only the withdrawn report named it
            assert subs[other] == "suspended"  # still named by the other report
            cases = {r.number: r for r in w.rows("bureau.fj", select(numbers))}
            assert cases[SHUT].status == "withdrawn" and cases[other].status == "shut_down"
            assert "service restored by cmcc.fj" in cases[SHUT].detail
            assert w.entries("cmcc.fj", EntryKind.RECEIVED, "withdrawal")
            withdrawn = [r for r in w.rows("police.fj", select(report_numbers))
                         if bytes(r.report_id) == wrong]
            assert {r.status for r in withdrawn} == {"withdrawn"}
            # Reported again later, the released number starts a new case and a new notice.
            [again] = await report(w, [SHUT], case="FZ-2026-0011")
            await wait_for(all_final(w))
            lines = [r for r in w.rows("police.fj", select(report_numbers))
                     if bytes(r.report_id) == again]
            assert [r.status for r in lines] == ["shut_down"]
            assert w.rows("cmcc.fj", select(subscribers).where(
                subscribers.c.number == SHUT))[0].status == "suspended"
            w.audit()

    asyncio.run(scenario())


# --- ID concentration -------------------------------------------------------------------


def test_id_holders_with_five_cards_are_reported_by_hmac_only(fed: Federation) -> None:
    async def scenario() -> None:
        async with world(fed, ["office.cn", "bureau.fj", "cmcc.fj"]) as w:
            result = await w.op("cmcc.fj", carrier.id_concentration)
            assert result["holders"] == 1
            await w.settled()
            [holder] = w.rows("bureau.fj", select(id_holders))
            assert holder.card_count == 6 and holder.carrier == "cmcc.fj"
            assert holder.outcome == "confirmed" and len(holder.id_hmac) == 32
            for i in range(w.node("bureau.fj").store.size):
                assert b"350102198805052222" not in w.node("bureau.fj").store.leaf(i)

    asyncio.run(scenario())


# --- The operator's command line against a running node -----------------------------------


async def bcx(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nodes.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.slow
def test_operator_walks_one_number_from_report_to_feedback(fed: Federation,
                                                           tmp_path: Path) -> None:
    police_cfg, bureau_cfg = str(fed.config("police.fj")), str(fed.config("bureau.fj"))
    found = tmp_path / "found.csv"
    found.write_text(f"number,seen\n{SHUT},raid\n{GONE},raid\n")

    async def scenario() -> None:
        async with world(fed, ["office.cn", "police.fj", "bureau.fj", "cmcc.fj"]) as w:
            code, out, err = await bcx("report", "--config", police_cfg, "--file", str(found),
                                       "--category", "fraud", "--case-number", "FZ-2026-0042")
            assert code == 0, err
            assert re.search(r"reported 2 number\(s\) to bureau\.fj as report [0-9a-f]{32} "
                             r"\(1 message\(s\)\)", out), out
            await wait_for(all_final(w))
            code, out, err = await bcx("numbers", "show", SHUT, "--config", police_cfg)
            assert code == 0, err
            assert "shut_down" in out and "RECEIVED" in out and "SENT" in out
            code, out, err = await bcx("numbers", "show", SHUT, "--config", bureau_cfg,
                                       "--json")
            history = __import__("json").loads(out)
            assert history["case"]["status"] == "shut_down"
            # What the bureau knows of a report line is typed: where it forwarded the
            # number ("to") and whether it already knew it, not words in its detail.
            report_lines = [ln for ln in history["history"] if ln["what"] == "report"]
            assert report_lines and all(ln["to"] == "" and ln["already_known"] is False
                                        for ln in report_lines), report_lines
            kinds = {(e["kind"], e["about"]) for e in history["ledger"]}
            assert {("RECEIVED", "report"), ("SENT", "notice"), ("RECEIVED", "action report"),
                    ("SENT", "feedback")} <= kinds
            code, out, err = await bcx("notices", "--config", bureau_cfg)
            assert code == 0 and "answered" in out
            code, out, err = await bcx("status", "--config", police_cfg)
            assert "reported numbers: already_inactive 1, shut_down 1" in out
            code, out, err = await bcx("withdraw", "--config", police_cfg, "--report",
                                       "00" * 16, "--reason", "x")
            assert code == 1 and "police.fj sent no report" in err
            # A police node has no bureau's commands.
            code, out, err = await bcx("decide", "--config", police_cfg, "00" * 16, "--lift",
                                       "--reasoning", "x")
            assert code == 1 and "has no operation 'decide'" in err
            # The outbox: everything delivered, nothing refused; retry names the problem.
            code, out, err = await bcx("outbox", "list", "--config", police_cfg, "--json")
            assert code == 0 and __import__("json").loads(out) == [], (out, err)
            code, out, err = await bcx("outbox", "retry", "not-hex", "--config", police_cfg)
            assert code == 1 and "bad message id" in err
            code, out, err = await bcx("outbox", "retry", "00" * 16, "--config", police_cfg)
            assert code == 1 and f"no message {'00' * 16} in this node's outbox" in err
            code, out, err = await bcx("outbox", "retry", "--config", police_cfg)
            assert code == 1 and "give a message id or a peer, not both" in err

    asyncio.run(scenario())


def test_operator_commands_from_another_nodes_certificate_are_refused(fed: Federation) -> None:
    import grpc
    from fedharness import client_channel

    from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc

    async def scenario() -> None:
        async with world(fed, ["office.cn", "police.fj", "bureau.fj"]) as w:
            async with client_channel(w.node("police.fj"), w.node("bureau.fj")) as ch:
                stub = service_pb2_grpc.AdminStub(ch)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.Operate(service_pb2.OperateRequest(
                        operation="decide", arguments_json=b"{}"))
            assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert "need its own certificate; police.fj may not send them" in \
                (caught.value.details() or "")
            assert not w.rows("bureau.fj", select(appeals))

    asyncio.run(scenario())


def test_overdue_case_answer_feedback_and_appeal_are_each_escalated_once(
        fed: Federation) -> None:
    set_deadline(fed, "police.fj", "case_hours", 0.0003)
    set_deadline(fed, "police.fj", "feedback_hours", 0.0003)
    set_deadline(fed, "cmcc.fj", "appeal_hours", 0.0003)

    async def scenario() -> None:
        async with world(fed, ["office.cn", "police.fj", "bureau.fj", "cmcc.fj"]) as w:
            await report(w, [SHUT])
            await wait_for(all_final(w))
            await w.op("cmcc.fj", carrier.appeal, number=SHUT, grounds="re-registered")
            await w.settled()
        # The carrier is down for the case request, the bureau for the report and for
        # deciding the appeal: every deadline passes unmet.
        async with world(fed, ["office.cn", "police.fj"]) as w:
            await w.op("police.fj", police.ask, carrier="cmcc.fj", case_number="FZ-1",
                       authorization="letter 7", numbers_asked=[SHUT], questions=[])
            await report(w, [GONE], case="FZ-2")
            await asyncio.sleep(1.2)
            raised = await w.op("police.fj", police.overdue)
            assert len(raised) == 2 and all(raised)
            assert await w.op("police.fj", police.overdue) == []
            await wait_for(lambda: len(w.rows("office.cn", select(escalations))) == 2)
        async with world(fed, ["office.cn", "cmcc.fj"]) as w:
            raised = await w.op("cmcc.fj", carrier.overdue)
            assert len(raised) == 1
            assert await w.op("cmcc.fj", carrier.overdue) == []
            await wait_for(lambda: len(w.rows("office.cn", select(escalations))) == 3)
            got = {(e.kind, e.raised_by, e.subject_node)
                   for e in w.rows("office.cn", select(escalations))}
            assert got == {("overdue_case", "police.fj", "cmcc.fj"),
                           ("overdue_feedback", "police.fj", "bureau.fj"),
                           ("overdue_appeal", "cmcc.fj", "bureau.fj")}
            subjects = {e.subject for e in w.entries("cmcc.fj", EntryKind.ACTION)}
            assert "deadline.overdue_appeal" in subjects

    asyncio.run(scenario())


@pytest.mark.postgres
def test_the_black_card_path_on_postgresql(tmp_path: Path, postgres_server: Any) -> None:
    """The same path with the bureau and the carrier on PostgreSQL."""
    from pgserver import unique_database_name

    names = {i: unique_database_name(f"wf_{i.replace('.', '_')}") for i in
             ("bureau.fj", "cmcc.fj")}
    urls = {i: postgres_server.create_database(n) for i, n in names.items()}
    try:
        f = make_federation(tmp_path / "fed", SPECS, numbering_plan=PLAN, database_urls=urls)
        seed(f, "cmcc.fj", CMCC_FJ, OUTLETS)
        seed(f, "cucc.fj", [{"number": PORTED, "status": "active", "province": "fj",
                             "real_name_state": "registered"}])

        async def scenario() -> None:
            async with world(f, ["office.cn", "police.fj", "bureau.fj", "cmcc.fj",
                                 "cucc.fj"]) as w:
                await report(w, [SHUT, GONE, KEY_ACCOUNT, PORTED, NEVER, SHUT])
                await wait_for(all_final(w), timeout=30)
                got = {n: r.status for n, r in w.lines().items()}
                assert got == {SHUT: "shut_down", GONE: "already_inactive",
                               KEY_ACCOUNT: "refused", PORTED: "shut_down",
                               NEVER: "rejected"}
                await w.op("police.fj", police.withdraw, report_id=bytes(w.rows(
                    "police.fj", select(report_numbers))[0].report_id).hex(), reason="test")
                await w.settled()
                w.audit()
        asyncio.run(scenario())
    finally:
        for n in names.values():
            if postgres_server.running:
                postgres_server.drop_database(n)
