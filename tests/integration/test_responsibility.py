"""A member may act only on what it is responsible for, against real nodes
(docs/who-may-send-what.md#responsibility-rules).

Each test runs a real federation (gRPC, mTLS, SQLite) through the black-card path and
then attacks it as a member holding its own real keys would: a signed envelope, sent
over that member's own mTLS connection, that the role table allows but the member has
no business sending. Every refusal must carry the status and the rule's name, leave no
RECEIVED entry and change nothing the test can see. Each test is named after the
finding it pins.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from fedharness import client_channel, make_federation, signed_envelope, wait_for
from sqlalchemy import select

from exchange import envelope, messages
from exchange.config import NodeConfig
from exchange.errors import OperationError
from exchange.identity import Role
from exchange.ledger.entries import Entry, EntryKind
from exchange.messages import AppealDecision, AppealOutcome, Category, NumberOutcome
from exchange.node import Node
from exchange.runtime import RunningNode
from exchange.schema import inbox
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc
from nodes import bureau, carrier, commerce, police
from nodes.agency import make_running
from nodes.carrier.subscribers import import_rows
from nodes.federation import Federation
from nodes.models import (
    appeals,
    channel_reports,
    id_holders,
    notices,
    penalties,
    progress,
    report_numbers,
    reports,
    subscribers,
)
from nodes.shared.routing import forward_thread

pytestmark = [pytest.mark.network]

Code = grpc.StatusCode

SPECS = (
    ("office.cn", Role.OFFICE, "cn"),
    ("police.fj", Role.POLICE, "fj"),
    ("bureau.fj", Role.BUREAU, "fj"),
    ("bureau.gd", Role.BUREAU, "gd"),
    ("cmcc.fj", Role.CARRIER, "fj"),
    ("cucc.fj", Role.CARRIER, "fj"),
    ("cmcc.gd", Role.CARRIER, "gd"),
    ("commerce.fj", Role.COMMERCE, "fj"),
)
SHUT = "+8615959000001"  # cmcc.fj, reported and shut down
SECOND = "+8615959000005"  # cmcc.fj, reported and shut down too
FRESH = "+8615959000006"  # cmcc.fj, active, never reported
GD = "+8613802500001"  # Guangdong: forwarded to bureau.gd, shut down by cmcc.gd


def _active(number: str, province: str = "fj") -> dict[str, str]:
    return {"number": number, "status": "active", "real_name_state": "unregistered",
            "province": province}


def seed(fed: Federation, node_id: str, rows: Sequence[dict[str, Any]]) -> None:
    from exchange import migrate
    from exchange.storage import engines

    engine = engines.create_engine_for(NodeConfig.from_file(fed.config(node_id)).database_url)
    migrate.upgrade(engine)
    import_rows(engine, rows, ())
    engine.dispose()


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    f = make_federation(tmp_path / "fed", SPECS)
    seed(f, "cmcc.fj", [_active(SHUT), _active(SECOND), _active(FRESH)])
    seed(f, "cmcc.gd", [_active(GD, "gd")])
    return f


@dataclass
class World:
    running: dict[str, RunningNode]

    def node(self, node_id: str) -> Node:
        return self.running[node_id].node

    async def op(self, node_id: str, fn: Any, **kw: Any) -> Any:
        return await self.node(node_id).run_work(lambda ctx: fn(ctx, **kw))

    def rows(self, node_id: str, query: Any) -> list[Any]:
        with self.node(node_id).reader.connect() as conn:
            return list(conn.execute(query).all())

    def subscriber(self, node_id: str, number: str) -> str:
        [row] = self.rows(node_id, select(subscribers.c.status).where(
            subscribers.c.number == number))
        return str(row.status)

    def police_lines(self) -> dict[str, Any]:
        return {r.number: r for r in self.rows("police.fj", select(report_numbers))}

    async def settled(self) -> None:
        def idle() -> bool:
            return all(r.outbox.depth() == 0 for r in self.running.values())
        await wait_for(idle, timeout=30)
        await asyncio.sleep(0.2)
        await wait_for(idle, timeout=30)

    async def refused(self, sender: str, recipient: str, body: messages.Body, *,
                      code: Code, details: str, **header: Any) -> None:
        """Send ``body`` from ``sender``'s keys and connection; it must be refused with
        ``code`` and ``details``, and leave no trace at ``recipient``."""
        s, r = self.node(sender), self.node(recipient)
        message_id = messages.new_message_id(datetime.now(UTC))
        raw = signed_envelope(s, recipient, body, message_id=message_id, **header)
        async with client_channel(s, r) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await service_pb2_grpc.ExchangeStub(channel).Deliver(
                    service_pb2.DeliverRequest(envelope=raw), timeout=10)
        error = refused.value
        assert error.code() == code, error.details()
        assert re.search(details, error.details() or ""), error.details()
        for number in (SHUT, SECOND, FRESH, GD):  # refusal texts go back to the peer
            assert number not in (error.details() or "")
        assert not r.store.find(message_id=message_id, kind=EntryKind.RECEIVED)
        assert not self.rows(recipient, select(inbox).where(inbox.c.message_id == message_id))


@contextlib.asynccontextmanager
async def world(fed: Federation) -> AsyncIterator[World]:
    running = {i: make_running(NodeConfig.from_file(fed.config(i))) for i, _, _ in SPECS}
    try:
        for r in running.values():
            await r.start()
        yield World(running)
    finally:
        for r in running.values():
            await r.stop(grace=1)


async def black_card_path(w: World) -> bytes:
    """police.fj reports SHUT, SECOND and GD; all three end shut down. The report id."""
    result = await w.op("police.fj", police.report, numbers_found=[SHUT, SECOND, GD],
                        category="fraud", case_number="FZ-2026-0042", evidence="raid")
    [rid] = [bytes.fromhex(r) for r in result["reports"]]
    await wait_for(lambda: all(r.final for r in w.police_lines().values()), timeout=30)
    await w.settled()
    assert {n: r.status for n, r in w.police_lines().items()} == {
        SHUT: "shut_down", SECOND: "shut_down", GD: "shut_down"}
    return rid


def _notice(numbers: tuple[str, ...], deadline: datetime | None = None
            ) -> messages.ShutdownNotice:
    return messages.ShutdownNotice(
        numbers=numbers, legal_basis="art. 21", category=Category.FRAUD,
        deadline=deadline or datetime.now(UTC) + timedelta(hours=24))


# --- Critical ---------------------------------------------------------------------------------


def test_another_provinces_bureau_cannot_cut_a_line_or_fine_a_carrier(fed: Federation) -> None:
    # Finding: bureau.gd sent cmcc.fj a ShutdownNotice for a Fujian subscriber and the
    # line was suspended; a Penalty from bureau.gd to cmcc.fj was accepted too.
    async def scenario() -> None:
        async with world(fed) as w:
            await w.refused("bureau.gd", "cmcc.fj", _notice((FRESH,)),
                            code=Code.PERMISSION_DENIED,
                            details=r"^rule province-bureau: bureau\.gd is the bureau of "
                                    r"province 'gd', cmcc\.fj a carrier of province 'fj'$")
            await w.refused("bureau.gd", "cmcc.fj", messages.Penalty(
                violation="cards sold unregistered", legal_basis="MIIT rules", measure="fine",
                channel=messages.SalesChannel(outlet_code="FZ-0457", carrier_node="cmcc.fj")),
                code=Code.PERMISSION_DENIED, details=r"^rule province-bureau: ")
            # The carrier's own bureau may not notice a number the carrier does not serve.
            await w.refused("bureau.fj", "cmcc.fj", _notice((FRESH, GD)),
                            code=Code.PERMISSION_DENIED,
                            details=r"^rule served-numbers: number #1 of the notice is not "
                                    r"served by cmcc\.fj$")
            # A market regulator in Fujian finds a Guangdong carrier's cards on sale: the
            # Fujian bureau keeps the finding, but the penalty is not its to issue.
            found = await w.op("commerce.fj", commerce.channel_report, outlet_code="FZ-0990",
                               outlet_name="night market stall", carrier="cmcc.gd",
                               findings="Guangdong cards sold without registration")
            await w.settled()
            with pytest.raises(OperationError, match=r"names cmcc\.gd, a carrier of another "
                                                     r"province: its own bureau decides"):
                await w.op("bureau.fj", bureau.issue_penalty,
                           channel_report_id=found["reports"][0], violation="unregistered",
                           measure="fine", legal_basis="MIIT rules")
            await asyncio.sleep(0.3)
            assert w.subscriber("cmcc.fj", FRESH) == "active"
            assert not w.rows("cmcc.fj", select(notices))
            assert not w.rows("cmcc.fj", select(penalties))
            assert not w.rows("cmcc.gd", select(penalties))
            [kept] = w.rows("bureau.fj", select(channel_reports))
            assert kept.carrier_node == "cmcc.gd" and kept.penalty_id is None

    asyncio.run(scenario())


def test_a_bureau_cannot_withdraw_or_report_in_the_polices_name(fed: Federation) -> None:
    # Finding: a bureau's Withdrawal or NumberReport whose thread said
    # "forwarded:police.fj:<report id>" was believed: police.fj's report was marked
    # withdrawn and the line restored; a forged report was stored as police.fj's and cut.
    async def scenario() -> None:
        async with world(fed) as w:
            rid = await black_card_path(w)
            thread = forward_thread("police.fj", rid)
            await w.refused("bureau.gd", "bureau.fj", messages.Withdrawal(
                withdrawn_message_id=rid, numbers=(SHUT,), reason="forged"),
                thread=thread, code=Code.PERMISSION_DENIED,
                details=r"^rule forwarded-origin: a withdrawal from bureau bureau\.gd carries "
                        r"no envelope of the reporter$")
            forged_id = messages.new_message_id(datetime.now(UTC))
            await w.refused("bureau.gd", "bureau.fj", messages.NumberReport(
                numbers=(FRESH,), category=Category.FRAUD, case_number="FZ-2026-0042"),
                thread=forward_thread("police.fj", forged_id), code=Code.PERMISSION_DENIED,
                details=r"^rule forwarded-origin: a number_report from bureau bureau\.gd "
                        r"carries no envelope of the reporter$")
            # An envelope "from police.fj" made and signed by bureau.gd itself.
            bgd = w.node("bureau.gd")
            fake = messages.Message(messages.Header(
                message_id=forged_id, sender="police.fj", recipient="bureau.gd",
                created_at=datetime.now(UTC)), messages.NumberReport(
                numbers=(FRESH,), category=Category.FRAUD, case_number="FZ-2026-0042"))
            fake_raw = envelope.sign(messages.encode_message(fake),
                                     envelope.PAYLOAD_TYPE_MESSAGE, bgd.signer).raw
            await w.refused("bureau.gd", "bureau.fj", messages.NumberReport(
                numbers=(FRESH,), category=Category.FRAUD, case_number="FZ-2026-0042",
                origin_envelope=fake_raw), code=Code.PERMISSION_DENIED,
                details=r"^rule forwarded-origin: the reporter's envelope does not verify")
            # police.fj's real report, which bureau.gd holds because bureau.fj forwarded it:
            # it was addressed to bureau.fj, so bureau.gd cannot pass it on as its own.
            [forwarded] = [Entry.decode(bgd.store.leaf(i)) for i in bgd.store.find(
                kind=EntryKind.RECEIVED) if Entry.decode(bgd.store.leaf(i)).subject ==
                "number_report"]
            held = messages.decode_message(envelope.parse(forwarded.envelope).payload).body
            assert isinstance(held, messages.NumberReport) and held.origin_envelope
            await w.refused("bureau.gd", "bureau.fj", messages.NumberReport(
                numbers=(SHUT,), category=Category.FRAUD, case_number="FZ-2026-0042",
                origin_envelope=held.origin_envelope), code=Code.PERMISSION_DENIED,
                details=r"^rule forwarded-origin: the envelope carried was addressed to "
                        r"bureau\.fj, not to bureau\.gd$")
            await asyncio.sleep(0.3)
            [report] = w.rows("bureau.fj", select(reports))
            assert report.withdrawn_at is None and report.origin == "police.fj"
            assert w.subscriber("cmcc.fj", SHUT) == "suspended"
            assert w.subscriber("cmcc.fj", FRESH) == "active"
            # The real forward: bureau.gd knows the report as police.fj's, from the
            # envelope; the real withdrawal reaches it the same way and restores GD.
            [gd_report] = w.rows("bureau.gd", select(reports))
            assert (gd_report.origin, bytes(gd_report.report_id)) == ("police.fj", rid)
            await w.op("police.fj", police.withdraw, report_id=rid.hex(), reason="mistyped")
            await w.settled()
            [gd_report] = w.rows("bureau.gd", select(reports))
            assert gd_report.withdrawn_at is not None
            assert w.subscriber("cmcc.gd", GD) == "active"
            assert w.subscriber("cmcc.fj", SHUT) == "active"

    asyncio.run(scenario())


# --- High ------------------------------------------------------------------------------------


def test_only_the_reports_bureau_feeds_back_or_decides_and_a_final_line_stays(
        fed: Federation) -> None:
    # Finding: any bureau could send the police a Circular or an AppealDecision: a final
    # shut_down line was overwritten, and a decision for an appeal id that does not exist
    # turned it "restored".
    async def scenario() -> None:
        async with world(fed) as w:
            rid = await black_card_path(w)
            line = NumberOutcome(number=SHUT, outcome=messages.ActionOutcome.RESTORED,
                                 carrier_node="cmcc.fj", detail="", report_id=rid,
                                 decided_at=datetime.now(UTC))
            await w.refused("bureau.gd", "police.fj", messages.Circular(outcomes=(line,)),
                            code=Code.PERMISSION_DENIED,
                            details=rf"^rule report-bureau: line #0: report {rid.hex()} went "
                                    r"to bureau\.fj, not to bureau\.gd$")
            nowhere = messages.new_message_id(datetime.now(UTC))
            await w.refused("bureau.gd", "police.fj", AppealDecision(
                number=SHUT, outcome=AppealOutcome.LIFTED, reasoning="forged",
                appeal_id=nowhere), code=Code.PERMISSION_DENIED,
                details=r"^rule report-bureau: no report of this node listing the number went "
                        r"to bureau\.gd$")
            # The report's own bureau cannot replace a final outcome either.
            await w.refused("bureau.fj", "police.fj", messages.Circular(outcomes=(line,)),
                            code=Code.FAILED_PRECONDITION,
                            details=r"^rule outcome-transition: line #0 of report \w+ is final "
                                    r"\(shut_down\) and cannot become restored$")
            await w.refused("bureau.fj", "police.fj", messages.Circular(outcomes=(
                NumberOutcome(number=SHUT, outcome=messages.ActionOutcome.SHUT_DOWN,
                              report_id=nowhere),)), code=Code.FAILED_PRECONDITION,
                details=r"^rule own-report: line #0 names report \w+, which this node never "
                        r"sent$")
            await asyncio.sleep(0.3)
            assert {n: r.status for n, r in w.police_lines().items()} == {
                SHUT: "shut_down", SECOND: "shut_down", GD: "shut_down"}

    asyncio.run(scenario())


def test_a_decision_restores_only_its_appeals_number_once_and_only_the_cutter_appeals(
        fed: Federation) -> None:
    # Finding: a carrier restored whatever number an AppealDecision named, and accepted a
    # decision on an appeal already decided; a carrier could appeal another carrier's
    # number, after which bureau and police said "restored" while the line stayed cut.
    async def scenario() -> None:
        async with world(fed) as w:
            await black_card_path(w)
            filed = await w.op("cmcc.fj", carrier.appeal, number=SHUT,
                               grounds="re-registered in person")
            await w.settled()
            aid = bytes.fromhex(filed["appeal_id"])
            await w.refused("bureau.fj", "cmcc.fj", AppealDecision(
                number=SECOND, outcome=AppealOutcome.LIFTED, reasoning="lifted",
                appeal_id=aid), code=Code.PERMISSION_DENIED,
                details=rf"^rule appeal-number: the decision names another number than "
                        rf"appeal {aid.hex()}$")
            [open_appeal] = w.rows("cmcc.fj", select(appeals))
            assert open_appeal.decided_at is None
            await w.op("bureau.fj", bureau.decide_appeal, appeal_id=aid.hex(), lift=True,
                       reasoning="identity verified")
            await w.settled()
            assert w.subscriber("cmcc.fj", SHUT) == "active"
            await w.refused("bureau.fj", "cmcc.fj", AppealDecision(
                number=SHUT, outcome=AppealOutcome.UPHELD, reasoning="again",
                appeal_id=aid), code=Code.FAILED_PRECONDITION,
                details=rf"^rule open-appeal: appeal {aid.hex()} was decided already$")
            # cucc.fj appeals a line cmcc.fj cut.
            await w.refused("cucc.fj", "bureau.fj", messages.Appeal(
                number=SECOND, grounds="not ours, but lift it",
                decide_by=datetime.now(UTC) + timedelta(hours=72)),
                code=Code.PERMISSION_DENIED,
                details=r"^rule cutting-carrier: the line is with cmcc\.fj, not with "
                        r"cucc\.fj$")
            await asyncio.sleep(0.3)
            assert w.subscriber("cmcc.fj", SECOND) == "suspended"
            assert [r.number for r in w.rows("bureau.fj", select(appeals))] == [SHUT]
            lines = w.police_lines()
            assert (lines[SHUT].status, lines[SECOND].status) == ("restored", "shut_down")

    asyncio.run(scenario())


# --- Low ---------------------------------------------------------------------------------------


def test_bodies_claiming_another_party_or_an_impossible_deadline_are_refused(
        fed: Federation) -> None:
    # Findings: an IdConcentrationReport or ProgressReport for another province, a
    # ChannelReport naming another carrier and fork escalations without evidence were
    # stored; deadlines in 1970 or 9999 accepted; carrier -> police withdrawals accepted
    # (the role table allowed them, nothing handled them).
    long_ago = datetime(1970, 1, 2, tzinfo=UTC)
    far_off = datetime(9999, 1, 1, tzinfo=UTC)
    cases: list[tuple[str, str, messages.Body, Code, str]] = [
        ("cmcc.fj", "bureau.fj", messages.IdConcentrationReport(province="gd"),
         Code.PERMISSION_DENIED, r"^rule own-party: cmcc\.fj of province 'fj' reports ID "
                                 r"holders of province 'gd'"),
        ("bureau.fj", "office.cn", messages.ProgressReport(province="gd"),
         Code.PERMISSION_DENIED, r"^rule own-party: bureau\.fj of province 'fj' reports "
                                 r"progress of province 'gd'$"),
        ("cmcc.fj", "bureau.fj", messages.ChannelReport(
            channel=messages.SalesChannel(outlet_code="XM-0099", carrier_node="cucc.fj"),
            findings="sold unregistered"),
         Code.PERMISSION_DENIED, r"^rule own-party: carrier cmcc\.fj reports a channel of "
                                 r"cucc\.fj, not its own$"),
        ("cmcc.fj", "office.cn", messages.Escalation(
            escalation_kind=messages.EscalationKind.LEDGER_FORK, subject_node="bureau.fj",
            detail="trust me"),
         Code.PERMISSION_DENIED, r"^rule fork-evidence: a fork of bureau\.fj needs two "
                                 r"different signed checkpoints, the escalation carries 0$"),
        ("bureau.fj", "cmcc.fj", _notice((FRESH,), deadline=long_ago),
         Code.INVALID_ARGUMENT, r"^rule deadline-window: shutdown_notice deadline 1970-"),
        ("bureau.fj", "cmcc.fj", _notice((FRESH,), deadline=far_off),
         Code.INVALID_ARGUMENT, r"^rule deadline-window: shutdown_notice deadline 9999-"),
        ("police.fj", "cmcc.fj", messages.CaseRequest(
            case_number="FZ-1", legal_authorization="warrant 7", numbers=(FRESH,),
            deadline=far_off),
         Code.INVALID_ARGUMENT, r"^rule deadline-window: case_request deadline 9999-"),
        ("cmcc.fj", "police.fj", messages.Withdrawal(
            withdrawn_message_id=messages.new_message_id(datetime.now(UTC))),
         Code.PERMISSION_DENIED, r"^a carrier \(cmcc\.fj\) may not send withdrawal to a "
                                 r"police \(police\.fj\)$"),
    ]

    async def scenario() -> None:
        async with world(fed) as w:
            for sender, recipient, body, code, details in cases:
                await w.refused(sender, recipient, body, code=code, details=details)
            await asyncio.sleep(0.3)
            assert not w.rows("bureau.fj", select(id_holders))
            assert not w.rows("bureau.fj", select(channel_reports))
            assert not w.rows("office.cn", select(progress))
            assert not w.rows("cmcc.fj", select(notices))
            assert w.subscriber("cmcc.fj", FRESH) == "active"

    asyncio.run(scenario())
