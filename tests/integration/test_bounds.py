"""Bounds on what one member can make another node store, load or send.

Each test is named after the finding it pins: no storage quota per peer (40 channel
reports of 4 MiB accepted in under 5 s); a non-party's GetEntries loading up to 1,000
leaves before filtering (4 calls took a bureau from 396 to 990 MiB); the office's
GetEntries of 1,000 failing at the 64 MiB response limit and the office reading every
entry of every ledger; disk-full answers quoting the database's path; a subscriber
import holding the database's writer for the whole import.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import threading
import time
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from fedharness import client_channel, make_federation, running, signed_envelope, wait_for
from sqlalchemy import event, select

from exchange import messages, migrate
from exchange.config import NodeConfig
from exchange.errors import OperationError
from exchange.ledger.entries import Entry, EntryKind
from exchange.node import Node
from exchange.quota import QUOTA_KEY, next_day
from exchange.schema import outbox
from exchange.storage import engines
from exchange.transport.reads import AUDIT_READ, read_all, read_entries
from exchange.transport.services import AUDIT_REASON_METADATA
from exchange.transport.status import RETRY_AFTER_METADATA, STORAGE_FULL
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc
from nodes.carrier.subscribers import import_csv, import_rows

OFFICE, POLICE, BUREAU, CARRIER = "office.cn", "police.fj", "bureau.fj", "cmcc.fj"
MiB = 1024 * 1024
REPORT = messages.NumberReport(numbers=("+8615959000001",), category=messages.Category.FRAUD)

pytestmark = pytest.mark.network


def node(tmp_path: Path, node_id: str, *, limits: dict[str, int] | None = None,
         audit_readers: tuple[str, ...] = ()) -> Node:
    """The member's node (one federation per test), with some knobs changed."""
    if not (tmp_path / "fed").exists():
        make_federation(tmp_path / "fed")
    cfg = NodeConfig.from_file(tmp_path / "fed" / node_id / "node.toml")
    return Node.open(replace(cfg, limits=replace(cfg.limits, **(limits or {})),
                        audit_readers=audit_readers))


def channel_report(findings_bytes: int) -> messages.ChannelReport:
    return messages.ChannelReport(
        channel=messages.SalesChannel(outlet_code="FZ-0457", carrier_node=CARRIER),
        numbers=("+8615959000002",), findings="x" * findings_bytes)


async def append_entries(n: Node, peer: str, count: int, size: int) -> None:
    """``count`` ACTION entries naming ``peer``, ``size`` bytes of detail each."""
    for k in range(count):
        await n.committer.run(lambda txn, k=k: txn.append(Entry(
            EntryKind.ACTION, peer, txn.now, detail=bytes([k % 256]) * size,
            subject="bulk")))


def seconds_to_next_day() -> float:
    now = datetime.now(UTC)
    return (next_day(now) - now).total_seconds()


def retry_after(error: grpc.aio.AioRpcError) -> float:
    hints = [v for k, v in error.trailing_metadata() or () if k == RETRY_AFTER_METADATA]
    assert hints, "the refusal carries no retry-after-ms"
    return int(hints[0]) / 1000


# --- a storage quota per peer and per day --------------------------------------------------


def test_no_storage_quota_per_peer_a_flood_of_large_reports_is_refused(tmp_path: Path) -> None:
    # Regression: 40 channel reports of 4 MiB from one carrier were all stored, in 4.7 s.
    bureau = node(tmp_path, BUREAU, limits={"quota_bytes_per_peer_per_day": 3 * MiB})
    carrier, police = node(tmp_path, CARRIER), node(tmp_path, POLICE)
    raws = [signed_envelope(carrier, BUREAU, channel_report(MiB)) for _ in range(4)]

    async def scenario() -> None:
        async with running(bureau):
            async with client_channel(carrier, bureau) as ch:
                stub = service_pb2_grpc.ExchangeStub(ch)
                for raw in raws[:2]:
                    await stub.Deliver(service_pb2.DeliverRequest(envelope=raw), timeout=30)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Deliver(service_pb2.DeliverRequest(envelope=raws[2]),
                                       timeout=30)
            error = refused.value
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"storage quota of {CARRIER} on this node is used up" in error.details()
            assert QUOTA_KEY in error.details()
            # The sender is asked to wait until the next day (its outbox caps a hint at 1 h).
            assert retry_after(error) >= min(seconds_to_next_day() - 60, 3600)
            # Another peer's quota is its own.
            async with client_channel(police, bureau) as ch:
                await service_pb2_grpc.ExchangeStub(ch).Deliver(
                    service_pb2.DeliverRequest(envelope=signed_envelope(police, BUREAU, REPORT)),
                    timeout=30)
    asyncio.run(scenario())
    bureau.engine.dispose()

    # Restarting the node gives no fresh quota: today's usage is read back from the ledger.
    again = node(tmp_path, BUREAU, limits={"quota_bytes_per_peer_per_day": 3 * MiB})

    async def after_restart() -> None:
        async with running(again), client_channel(carrier, again) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await service_pb2_grpc.ExchangeStub(ch).Deliver(
                    service_pb2.DeliverRequest(envelope=raws[3]), timeout=30)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    asyncio.run(after_restart())


def test_repeats_and_refused_messages_do_not_use_up_the_quota(tmp_path: Path) -> None:
    # A sender retries what it got no receipt for; only what is stored counts.
    bureau = node(tmp_path, BUREAU, limits={"quota_bytes_per_peer_per_day": 3 * MiB})
    carrier = node(tmp_path, CARRIER)
    first, second = (signed_envelope(carrier, BUREAU, channel_report(MiB)) for _ in range(2))

    async def scenario() -> None:
        async with running(bureau), client_channel(carrier, bureau) as ch:
            stub = service_pb2_grpc.ExchangeStub(ch)
            for _ in range(4):  # stored once, then answered with its first receipt
                await stub.Deliver(service_pb2.DeliverRequest(envelope=first), timeout=30)
            await stub.Deliver(service_pb2.DeliverRequest(envelope=second), timeout=30)
        assert bureau.quotas.used(CARRIER) == len(first) + len(second)
    asyncio.run(scenario())


@pytest.mark.parametrize("count", [1, 12], ids=["unary", "stream"])
def test_quota_refusal_is_not_retried_in_a_loop_by_the_senders_outbox(
        tmp_path: Path, count: int) -> None:
    # One message goes by Deliver (the hint in the retry-after-ms trailer); from
    # bulk_threshold (8) on they go by DeliverStream (the hint in the response).
    bureau = node(tmp_path, BUREAU, limits={"quota_bytes_per_peer_per_day": MiB})
    carrier = node(tmp_path, CARRIER)
    size = 2 * MiB if count == 1 else 200 * 1024

    async def scenario() -> None:
        async with running(bureau):
            carrier.start_writer()  # queued before the carrier's outbox runs
            for _ in range(count):
                await carrier.send(BUREAU, channel_report(size))
            carrier.stop_writer()
            async with running(carrier):
                def held() -> list[Any]:
                    with carrier.reader.connect() as conn:
                        return list(conn.execute(select(outbox).where(
                            outbox.c.recipient == BUREAU, outbox.c.delivered_at.is_(None))
                            .order_by(outbox.c.seq)))
                await wait_for(lambda: held() and held()[0].attempts >= 1, timeout=60)
                await asyncio.sleep(2)
                head = held()[0]
                assert head.attempts == 1, "the outbox retried a quota refusal at once"
                assert head.refused_at is None  # kept, not set aside: it goes out tomorrow
                assert QUOTA_KEY in head.last_error
                wait = head.next_attempt_at / 1e6 - time.time()
                assert wait >= min(seconds_to_next_day(), 3600) - 120
                if count > 1:
                    assert 0 < len(held()) < count  # the stream delivered what fitted
    asyncio.run(scenario())


# --- GetEntries: chosen in SQL, bounded by bytes, parties only --------------------------------


def test_non_party_get_entries_loads_no_leaves_of_others(tmp_path: Path) -> None:
    # Regression: GetEntries read up to 1,000 leaves and filtered them in Python: four
    # calls of a non-party took a bureau from 396 to 990 MiB.
    bureau = node(tmp_path, BUREAU)
    carrier = node(tmp_path, CARRIER)

    async def scenario() -> None:
        async with running(bureau):
            await append_entries(bureau, POLICE, 120, 256 * 1024)  # 30 MiB of police's
            async with client_channel(carrier, bureau) as ch:
                stub = service_pb2_grpc.LedgerStub(ch)
                tracemalloc.start()
                try:
                    r = await stub.GetEntries(service_pb2.GetEntriesRequest(start=0,
                                                                            limit=1000))
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
            assert list(r.entries) == []
            assert r.next_start == bureau.store.size
            assert peak < 4 * MiB, f"a non-party's GetEntries held {peak / MiB:.0f} MiB"
    asyncio.run(scenario())


def test_office_reads_its_entries_and_escalated_messages_not_whole_ledgers(
        tmp_path: Path) -> None:
    # Regression: the office could read every entry of every ledger (269 of bureau.fj's 420
    # with phone numbers in clear; cmcc.fj's plaintext CaseRequest).
    bureau, police, office = (node(tmp_path, i) for i in (BUREAU, POLICE, OFFICE))
    raws = [signed_envelope(police, BUREAU, REPORT) for _ in range(3)]
    ids = [messages.decode_message(messages_payload(raw)).header.message_id for raw in raws]

    async def scenario() -> None:
        async with running(bureau):
            async with client_channel(police, bureau) as ch:
                for raw in raws:
                    await service_pb2_grpc.ExchangeStub(ch).Deliver(
                        service_pb2.DeliverRequest(envelope=raw), timeout=30)
            # bureau.fj escalates the second report to the office (its outbox holds it).
            await bureau.run_work(lambda ctx: ctx.escalate(
                messages.EscalationKind.OVERDUE_FEEDBACK, subject_node=POLICE,
                subject_message_id=ids[1], detail="no feedback"))
            ledger = [(i, Entry.decode(leaf)) for i, leaf in bureau.store.leaves(0, 100)]
            expected = [i for i, e in ledger if e.peer == OFFICE or e.message_id == ids[1]]
            # The directory entry and the escalation SENT name the office; the escalated
            # report's RECEIVED entry is the evidence; the other two reports are police's.
            assert [e.kind for i, e in ledger if i in expected] == [
                EntryKind.DIRECTORY, EntryKind.RECEIVED, EntryKind.SENT]
            async with client_channel(office, bureau) as ch:
                stub = service_pb2_grpc.LedgerStub(ch)
                r = await stub.GetEntries(service_pb2.GetEntriesRequest(start=0, limit=1000))
                assert [e.index for e in r.entries] == expected
                # Witnessing still works: checkpoints and proofs stay open to the office,
                # and a proof's leaf only when the office may read the entry.
                cp = await stub.GetCheckpoint(service_pb2.GetCheckpointRequest())
                assert cp.checkpoint.startswith(bureau.origin)
                await stub.GetConsistencyProof(service_pb2.GetConsistencyProofRequest(
                    old_size=1, new_size=bureau.store.latest.size))
                by_id = {e.message_id: i for i, e in ledger if e.kind is EntryKind.RECEIVED}
                hidden = await stub.GetInclusionProof(
                    service_pb2.GetInclusionProofRequest(index=by_id[ids[0]]))
                shown = await stub.GetInclusionProof(
                    service_pb2.GetInclusionProofRequest(index=by_id[ids[1]]))
            assert hidden.leaf == b"" and list(hidden.hashes)
            assert shown.leaf == bureau.store.leaf(by_id[ids[1]])
    asyncio.run(scenario())


def messages_payload(raw: bytes) -> bytes:
    from exchange import envelope
    return envelope.parse(raw).payload


def test_office_get_entries_of_1000_fails_at_the_response_limit_audit_pages_instead(
        tmp_path: Path) -> None:
    # Regression: the office's GetEntries(…, 1000) of a large ledger failed at gRPC's 64 MiB
    # response limit. Now the office reads its own entries; an audit read, named and
    # permitted, comes in pages of at most [limits] max_entries_bytes.
    bureau = node(tmp_path, BUREAU, audit_readers=(OFFICE,))
    office, carrier = node(tmp_path, OFFICE), node(tmp_path, CARRIER)

    async def scenario() -> None:
        async with running(bureau, office) as (_, ro):
            await append_entries(bureau, POLICE, 70, MiB)  # 70 MiB
            size = bureau.store.size
            mine = await read_entries(office, ro.peers, BUREAU, start=0, limit=1000)
            # Without a reason: the entries naming the office only (the directory's).
            assert [Entry.decode(leaf).kind for _, leaf in mine.entries] == \
                [EntryKind.DIRECTORY]
            assert mine.next_start == size

            got: list[int] = []
            async for page in read_all(office, ro.peers, BUREAU, end=size,
                                       audit_reason="yearly audit of the special action"):
                assert sum(len(leaf) for _, leaf in page.entries) <= \
                    bureau.config.limits.max_entries_bytes
                got += [i for i, _ in page.entries if i < size]
            assert got == list(range(size))

            def audit_reads(n: Node, peer: str) -> list[dict[str, Any]]:
                leaves = [Entry.decode(leaf) for _, leaf in n.store.leaves(0, n.store.size)]
                return [json.loads(e.detail) for e in leaves
                        if e.kind is EntryKind.ACTION and e.subject == AUDIT_READ
                        and e.peer == peer]
            served, asked = audit_reads(bureau, OFFICE), audit_reads(office, BUREAU)
            assert served and len(served) == len(asked)
            assert {r["reason"] for r in served} == {"yearly audit of the special action"}
            assert {r["reader"] for r in served} == {OFFICE}

            # A member the bureau does not list may not audit, whatever its reason.
            async with client_channel(carrier, bureau) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await service_pb2_grpc.LedgerStub(ch).GetEntries(
                        service_pb2.GetEntriesRequest(start=0, limit=10),
                        metadata=((AUDIT_REASON_METADATA, b"curious"),))
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert "[ledger] audit_readers" in refused.value.details()
    asyncio.run(scenario())


# --- disk full ---------------------------------------------------------------------------


def test_disk_full_answer_quotes_no_database_path(tmp_path: Path) -> None:
    # Regression: a full disk was answered INTERNAL with "database sqlite:////…/node.db
    # failed: …": the receiver's path, told to a peer.
    bureau, police = node(tmp_path, BUREAU), node(tmp_path, POLICE)
    with bureau.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()

    @event.listens_for(bureau.engine, "connect")
    def _small_disk(dbapi_connection: Any, _record: Any) -> None:
        # SQLite's own limit on the file's size: writes past it fail with SQLITE_FULL,
        # as they do when the disk itself is full.
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 4}")
    bureau.engine.dispose()  # connections from now on have the limit

    async def scenario() -> None:
        async with running(bureau), client_channel(police, bureau) as ch:
            raw = signed_envelope(police, BUREAU, messages.NumberReport(
                numbers=tuple(f"+861595900{i:04d}" for i in range(5000)),
                category=messages.Category.FRAUD))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await service_pb2_grpc.ExchangeStub(ch).Deliver(
                    service_pb2.DeliverRequest(envelope=raw), timeout=30)
        error = refused.value
        assert (error.code(), error.details()) == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                   STORAGE_FULL)
        assert str(tmp_path) not in error.details()
    asyncio.run(scenario())


# --- subscriber imports ------------------------------------------------------------------


def subscriber_rows(count: int, *, first: int = 0, bad_row: int | None = None
                    ) -> list[dict[str, str]]:
    return [{"number": "not a number" if i + 1 == bad_row else f"+86159{50000000 + first + i:08d}",
             "province": "fj", "subscriber_name": f"Name {i}",
             "id_number": f"35010219880101{i:04d}"} for i in range(count)]


def write_subscribers(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def count_subscribers(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM sub_subscribers").scalar_one())


def test_subscriber_import_holds_the_writer_under_a_second_and_resumes(tmp_path: Path) -> None:
    # Regression: one transaction for the whole import held the write lock (10^6 rows: 14 s),
    # so the running node's ledger writer could not commit anything meanwhile.
    db = tmp_path / "carrier.db"
    engine = engines.create_engine_for(engines.sqlite_url(db))
    migrate.upgrade(engine)
    rows = 150_000
    path = tmp_path / "subscribers.csv"
    write_subscribers(path, subscriber_rows(rows))
    waits: list[float] = []
    stop = threading.Event()

    def other_writer() -> None:  # as the node's ledger writer would: BEGIN IMMEDIATE
        conn = sqlite3.connect(db, timeout=120, isolation_level=None)
        try:
            while not stop.is_set():
                started = time.monotonic()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("COMMIT")
                waits.append(time.monotonic() - started)
                time.sleep(0.01)
        finally:
            conn.close()

    progress: list[int] = []
    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        result = import_csv(engine, path, progress=progress.append)
    finally:
        stop.set()
        writer.join()
    assert (result.rows, result.added) == (rows, rows)
    assert max(waits) < 1.0, f"another writer waited {max(waits):.2f}s for the import"
    assert progress[-1] == rows and len(progress) == -(-rows // 5000)

    # Idempotent: the same file again adds nothing and changes nothing.
    assert import_csv(engine, path).added == 0

    # A bad row in a file stops the import before anything is written.
    other = tmp_path / "more.csv"
    write_subscribers(other, subscriber_rows(12_000, first=rows, bad_row=11_000))
    with pytest.raises(OperationError, match=r"^subscriber row 11000: bad or missing number"):
        import_csv(engine, other)
    assert count_subscribers(engine) == rows

    # Rows that are not a file are checked as they come: the chunks before the bad row
    # stay imported, the error says so, and the fixed rows are imported again as they are.
    more = subscriber_rows(12_000, first=rows, bad_row=11_000)
    with pytest.raises(OperationError, match=r"subscriber row 11000: .* \(rows 1 to 10000 "
                       r"were imported; fix the row and import again"):
        import_rows(engine, more)
    assert count_subscribers(engine) == rows + 10_000
    more[10_999]["number"] = f"+86159{50000000 + rows + 10_999:08d}"
    assert import_rows(engine, more).added == 2_000
    assert count_subscribers(engine) == rows + 12_000
    engine.dispose()
