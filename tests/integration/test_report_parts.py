"""A report in parts at the bureau: parts of another unit's report, parts after a withdrawal.

Real nodes (gRPC, mTLS, SQLite) in this process; the police nodes send real signed parts
with ``NumberReport.report_id`` set, as ``police.report`` does for a large file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fedharness import make_federation, wait_for
from sqlalchemy import select

from exchange import messages
from exchange.config import NodeConfig
from exchange.identity import Role
from exchange.ledger.entries import Entry, EntryKind
from exchange.node import Context
from exchange.runtime import RunningNode
from exchange.schema import outbox
from nodes import police
from nodes.agency import make_running
from nodes.models import notice_numbers, report_numbers, reports

pytestmark = [pytest.mark.network]

SPECS = (
    ("office.cn", Role.OFFICE, "cn"),
    ("police.fj", Role.POLICE, "fj"),
    ("police-xm.fj", Role.POLICE, "fj"),
    ("bureau.fj", Role.BUREAU, "fj"),
)
FIRST, LATER = "+8615959000001", "+8615959000002"


def part(report_id: bytes, number: str) -> messages.NumberReport:
    return messages.NumberReport(numbers=(number,), category=messages.Category.FRAUD,
                                 case_number="FZ-2026-0300", confidence=80,
                                 report_id=report_id)


def rows(r: RunningNode, query: object) -> list[object]:
    with r.node.reader.connect() as conn:
        return list(conn.execute(query).all())  # type: ignore[call-overload]


def test_a_part_of_another_units_report_is_refused_and_one_after_withdrawal_is_not_acted_on(
        tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed", SPECS)

    async def scenario() -> None:
        nodes = {i: make_running(NodeConfig.from_file(fed.config(i))) for i, _, _ in SPECS}
        for r in nodes.values():
            await r.start()
        try:
            pol, other, bureau = nodes["police.fj"], nodes["police-xm.fj"], nodes["bureau.fj"]
            result = await pol.node.run_work(lambda ctx: police.report(
                ctx, numbers_found=[FIRST], category="fraud", case_number="FZ-2026-0300"))
            rid = bytes.fromhex(result["report"])
            await wait_for(lambda: rows(bureau, select(reports)))

            # Another unit names police.fj's report: refused, nothing added to it.
            def foreign(ctx: Context) -> bytes:
                return ctx.send("bureau.fj", part(rid, LATER))
            mid = await other.node.run_work(foreign)
            set_aside = select(outbox).where(outbox.c.message_id == mid,
                                             outbox.c.refused_at.is_not(None))
            await wait_for(lambda: rows(other, set_aside))
            refused = rows(other, set_aside)
            assert f"is a part of report {rid.hex()}, which is no report of police-xm.fj" \
                in refused[0].last_error  # type: ignore[attr-defined]

            # police.fj withdraws it; a part of it arriving after that is logged, not acted on.
            await pol.node.run_work(lambda ctx: police.withdraw(
                ctx, report_id=rid.hex(), reason="wrong list"))
            await wait_for(lambda: rows(bureau, select(reports).where(
                reports.c.withdrawn_at.is_not(None))))

            def late(ctx: Context) -> bytes:
                return ctx.send("bureau.fj", part(rid, LATER))
            late_id = await pol.node.run_work(late)
            store = bureau.node.store

            def logged() -> list[Entry]:
                found = [Entry.decode(store.leaf(i)) for i in store.find(kind=EntryKind.ACTION)]
                return [e for e in found if e.subject == "report.part-after-withdrawal"
                        and e.message_id == late_id]
            await wait_for(logged)
            lines = rows(bureau, select(report_numbers.c.number, report_numbers.c.status)
                         .where(report_numbers.c.report_id == rid))
            assert [tuple(r) for r in lines] == [(FIRST, "withdrawn")]  # type: ignore[arg-type]
            assert rows(bureau, select(notice_numbers).where(
                notice_numbers.c.number == LATER)) == []
            [held] = rows(bureau, select(reports))
            assert held.numbers_total == 1  # type: ignore[attr-defined]
        finally:
            for r in nodes.values():
                await r.stop(grace=1)

    asyncio.run(scenario())
