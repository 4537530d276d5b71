"""The accountability ledger end to end (docs/formats.md#the-ledger,
docs/architecture.md#witnessing): receipts, witnessing, forks, proofs at scale, the Ledger
service's access control and the database's append-only rule.

Servers are real (grpc.aio with mTLS on loopback, real PKI); databases are SQLite files
in tmp_path or a real PostgreSQL server. Witness rounds are called directly: the
background loop is set to an hour so it runs only its first round, at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from fedharness import (
    ServingWith,
    client_channel,
    federation_on,
    make_federation,
    signed_envelope,
    wait_for,
)
from pgserver import unique_database_name
from sqlalchemy import Engine, event, insert, select, text
from sqlalchemy.exc import DBAPIError

from exchange import envelope, messages, migrate
from exchange.config import NodeConfig
from exchange.errors import BadSignatureError, ExchangeError, InvalidBodyError, OperationError
from exchange.keys import Ed25519Signer
from exchange.ledger import merkle, note
from exchange.ledger.entries import Entry, EntryKind, Receipt
from exchange.ledger.receipts import verify_receipt
from exchange.ledger.store import LedgerStore, iter_leaves
from exchange.messages import Category, NumberReport
from exchange.node import Node
from exchange.runtime import RunningNode
from exchange.schema import (
    APPEND_ONLY_TABLES,
    fork_evidence,
    ledger_checkpoints,
    ledger_cosignatures,
    ledger_leaves,
    ledger_subtrees,
    outbox,
    peer_checkpoints,
)
from exchange.storage import engines
from exchange.storage.unitofwork import GroupCommitter
from exchange.transport.outbox import requeue
from exchange.transport.services import ExchangeService
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc
from nodes.federation import Federation

BODY = NumberReport(numbers=("+8615959000001",), category=Category.FRAUD)
OFFICE, POLICE, BUREAU, CARRIER = "office.cn", "police.fj", "bureau.fj", "cmcc.fj"


# --- helpers -----------------------------------------------------------------------------


def node_of(fed: Federation, node_id: str, *, backoff_initial_seconds: float | None = None
            ) -> Node:
    """The member's node with its ledger writer started, its witness loop slowed to one
    round at start (tests call ``witness.round()`` themselves) and, if given, a slower
    delivery backoff."""
    cfg = NodeConfig.from_file(fed.config(node_id))
    cfg = replace(cfg, deadlines=replace(cfg.deadlines, witness_interval_seconds=3600.0))
    if backoff_initial_seconds is not None:
        cfg = replace(cfg, delivery=replace(cfg.delivery,
                                            backoff_initial_seconds=backoff_initial_seconds))
    node = Node.open(cfg)
    # Some tests drive the node without a server: its ledger writer must run all the same.
    node.start_writer()
    return node


@contextlib.asynccontextmanager
async def serving(*nodes: Node | RunningNode) -> AsyncIterator[list[RunningNode]]:
    rs = [n if isinstance(n, RunningNode) else RunningNode(n) for n in nodes]
    started: list[RunningNode] = []
    try:
        for r in rs:
            await r.start()
            started.append(r)
        # Let each node's first background witness round finish before the test acts.
        await asyncio.sleep(0.05)
        for r in rs:
            if r.node.node_id == OFFICE:
                await wait_for(lambda r=r: len(r.witness.status) == len(r.witness.watched()))
        yield rs
    finally:
        for r in reversed(started):
            await r.stop(grace=1)


def entries(node: Node) -> list[tuple[int, Entry]]:
    return [(i, Entry.decode(leaf)) for i, leaf in node.store.leaves(0, node.store.size + 1)]


def of_kind(node: Node, kind: EntryKind) -> list[tuple[int, Entry]]:
    return [(i, e) for i, e in entries(node) if e.kind is kind]


def outbox_rows(node: Node) -> list[Any]:
    with node.reader.connect() as conn:
        return list(conn.execute(select(outbox).order_by(outbox.c.seq)).all())


def received_bodies(node: Node, kind: type[messages.Body]) -> list[Any]:
    """Bodies of the given type among the node's RECEIVED entries, decoded from the
    envelope bytes the ledger holds."""
    out = []
    for _, e in of_kind(node, EntryKind.RECEIVED):
        body = messages.decode_message(envelope.parse(e.envelope).payload).body
        if isinstance(body, kind):
            out.append(body)
    return out


def flip_bit(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


def log_verifier(node: Node) -> note.Verifier:
    return note.Verifier.for_key(node.origin, node.signer.public_key)


def cosignature_verifier(node: Node) -> note.Verifier:
    return note.Verifier.for_key(node.origin, node.signer.public_key, note.KIND_COSIGNATURE_V1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Federation]:
    """The federation, police's and bureau's databases on SQLite files or on PostgreSQL
    (the others stay on SQLite: each PostgreSQL database costs a create and a drop)."""
    yield from federation_on(request.param, request, tmp_path / "fed", (POLICE, BUREAU))


@pytest.fixture
def fed_sqlite(tmp_path: Path) -> Federation:
    """For tests that forge a history by deleting a node's database files."""
    return make_federation(tmp_path / "fed")


# --- 1. delivery with receipts -----------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fed_any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Federation]:
    """The federation, with police and bureau on SQLite files or on two PostgreSQL DBs."""
    if request.param == "sqlite":
        yield make_federation(tmp_path / "fed")
        return
    server = request.getfixturevalue("postgres_server")
    police_url: str = request.getfixturevalue("pg_url")
    name = unique_database_name(request.node.name + "_bureau")
    bureau_url = server.create_database(name)
    try:
        yield make_federation(tmp_path / "fed",
                              database_urls={POLICE: police_url, BUREAU: bureau_url})
    finally:
        if server.running:
            server.drop_database(name)


@pytest.mark.network
def test_delivered_messages_are_logged_on_both_sides_with_verified_receipts(
        fed_any_db: Federation) -> None:
    fed, n = fed_any_db, 12

    async def scenario() -> None:
        police, bureau = node_of(fed, POLICE), node_of(fed, BUREAU)
        async with serving(police, bureau) as (rp, _):
            sent = [await police.send(BUREAU, BODY) for _ in range(n)]
            await wait_for(lambda: rp.outbox.depth() == 0)

            rows = outbox_rows(police)
            assert [r.message_id for r in rows] == sent
            assert all(r.delivered_at is not None and r.last_error is None for r in rows)

            ledger = dict(entries(police))
            sent_entries = {e.message_id: e for e in ledger.values() if e.kind is EntryKind.SENT}
            receipt_entries = {e.message_id: (i, e) for i, e in ledger.items()
                               if e.kind is EntryKind.RECEIPT}
            assert set(sent_entries) == set(receipt_entries) == set(sent)
            assert {r.message_id: r.receipt_leaf_idx for r in rows} == \
                {mid: i for mid, (i, _) in receipt_entries.items()}

            received = {e.message_id: e for _, e in of_kind(bureau, EntryKind.RECEIVED)}
            assert set(received) == set(sent)
            assert all(e.peer == POLICE for e in received.values())

            verifier = police.log_verifier(BUREAU)
            checkpoints: dict[tuple[int, bytes], str] = {}
            for mid in sent:
                s = sent_entries[mid]
                _, r = receipt_entries[mid]
                assert r.peer == BUREAU
                assert r.message_digest == s.message_digest == received[mid].message_digest
                receipt = Receipt.decode(r.detail)
                cp = verify_receipt(receipt, envelope=s.envelope, sender=POLICE,
                                    log_verifier=verifier, origin=bureau.origin)
                assert Entry.decode(receipt.leaf) == received[mid]
                assert cp.size <= bureau.store.size
                assert bureau.store.checkpoint_at(cp.size).root == cp.root
                checkpoints[(cp.size, cp.root)] = receipt.checkpoint

            with police.reader.connect() as conn:
                held = conn.execute(select(peer_checkpoints)
                                    .where(peer_checkpoints.c.origin == bureau.origin)).all()
            assert {(r.size, bytes(r.root)) for r in held} == set(checkpoints)
            for r in held:
                cp, _, _ = note.open_checkpoint(r.note, verifier, origin=bureau.origin)
                assert (cp.size, cp.root) == (r.size, bytes(r.root))

    asyncio.run(scenario())


# --- 2. receipts that do not verify are refused ------------------------------------------


def corrupt_proof(receipt: Any, _: Ed25519Signer) -> None:
    receipt.inclusion_proof[0] = flip_bit(receipt.inclusion_proof[0])


def resign_checkpoint(receipt: Any, impostor: Ed25519Signer) -> None:
    """The same checkpoint, signed under the receiver's log name by another key."""
    cp = note.parse_checkpoint(note.parse_note(receipt.checkpoint).text)
    receipt.checkpoint = note.sign_checkpoint(cp, impostor)


class CorruptingService(ExchangeService):
    """Answers like a receiver should, then damages the receipts of chosen messages."""

    def __init__(self, node: Node, *, stream_window: int,
                 corrupt: Callable[[Any, Ed25519Signer], None],
                 only: Callable[[bytes], bool] = lambda _: True) -> None:
        super().__init__(node.inbox, node.directories, stream_window=stream_window)
        self.corrupt = corrupt
        self.only = only
        self.impostor = Ed25519Signer.generate()

    def _damage(self, response: service_pb2.DeliverResponse) -> service_pb2.DeliverResponse:
        if response.HasField("receipt") and \
                self.only(Entry.decode(response.receipt.leaf).message_id):
            self.corrupt(response.receipt, self.impostor)
        return response

    async def Deliver(self, request: Any, context: Any) -> Any:
        return self._damage(await super().Deliver(request, context))

    async def DeliverStream(self, request_iterator: Any, context: Any) -> Any:
        async for response in super().DeliverStream(request_iterator, context):
            yield self._damage(response)


@pytest.mark.network
@pytest.mark.parametrize(("corrupt", "error"), [
    (corrupt_proof, "receipt inclusion proof does not verify: root mismatch"),
    (resign_checkpoint, "receipt checkpoint does not verify: .* is not signed by log key"),
], ids=["flipped-proof-bit", "checkpoint-signed-by-another-key"])
def test_sender_refuses_a_receipt_that_does_not_verify(
        fed: Federation, corrupt: Callable[[Any, Ed25519Signer], None], error: str) -> None:
    async def scenario() -> None:
        # A slow backoff: the refused message is not retried while the test looks.
        police = node_of(fed, POLICE, backoff_initial_seconds=30)
        bureau, office = node_of(fed, BUREAU), node_of(fed, OFFICE)
        liar = ServingWith(bureau, CorruptingService(bureau, stream_window=16, corrupt=corrupt))
        async with serving(office, police, liar) as (_, rp, _):
            mid = await police.send(BUREAU, BODY)

            def refused() -> Any:
                rows = [r for r in outbox_rows(police) if r.message_id == mid]
                return rows[0] if rows[0].last_error else None
            await wait_for(lambda: refused() is not None)
            row = refused()
            assert row.delivered_at is None
            assert row.receipt_leaf_idx is None
            assert row.attempts == 1
            assert re.search(error, row.last_error), row.last_error
            assert [e for _, e in of_kind(police, EntryKind.RECEIPT) if e.peer == BUREAU] == []
            # The receiver did log it; the sender just cannot prove that.
            assert [e.message_id for _, e in of_kind(bureau, EntryKind.RECEIVED)] == [mid]
            with police.reader.connect() as conn:
                assert conn.execute(select(peer_checkpoints).where(
                    peer_checkpoints.c.origin == bureau.origin)).all() == []
            # A refused receipt is a permanent failure: the office hears of it at once.
            await wait_for(lambda: received_bodies(office, messages.Escalation))
            (esc,) = received_bodies(office, messages.Escalation)
            assert esc.escalation_kind is messages.EscalationKind.DELIVERY_FAILURE
            assert (esc.subject_node, esc.subject_message_id) == (BUREAU, mid)
            assert rp.outbox.failures == 1

    asyncio.run(scenario())


@pytest.mark.network
def test_bad_receipt_mid_batch_does_not_undo_the_good_receipts_before_it(
        fed: Federation) -> None:
    async def scenario() -> None:
        police = node_of(fed, POLICE, backoff_initial_seconds=30)
        bureau, office = node_of(fed, BUREAU), node_of(fed, OFFICE)
        bad: set[bytes] = set()
        liar = ServingWith(bureau, CorruptingService(
            bureau, stream_window=16, corrupt=corrupt_proof, only=bad.__contains__))
        async with serving(office, police, liar):
            # Both rows are committed together, so one delivery pass carries both.
            first, second = await police.run_work(
                lambda ctx: [ctx.send(BUREAU, BODY), ctx.send(BUREAU, BODY)])
            bad.add(second)
            await wait_for(lambda: any(r.last_error for r in outbox_rows(police)))
            rows = {r.message_id: r for r in outbox_rows(police)}
            assert rows[first].delivered_at is not None
            assert rows[first].last_error is None
            assert rows[second].delivered_at is None
            assert "receipt inclusion proof does not verify" in rows[second].last_error
            assert [e.message_id for _, e in of_kind(police, EntryKind.RECEIPT)
                    if e.peer == BUREAU] == [first]

    asyncio.run(scenario())


def test_retried_message_gets_its_first_receipt(fed: Federation) -> None:
    async def scenario() -> None:
        police, bureau = node_of(fed, POLICE), node_of(fed, BUREAU)
        try:
            raw = signed_envelope(police, BUREAU, BODY)
            first = await bureau.inbox.receive(raw, POLICE)
            again = await bureau.inbox.receive(raw, POLICE)
            assert (first.duplicate, again.duplicate) == (False, True)
            assert again.receipt.leaf_index == first.receipt.leaf_index
            verify_receipt(again.receipt, envelope=raw, sender=POLICE,
                           log_verifier=log_verifier(bureau), origin=bureau.origin)
        finally:
            police.stop_writer()
            bureau.stop_writer()

    asyncio.run(scenario())


# --- 3. witnessing and cosignatures ------------------------------------------------------


async def get_checkpoint(caller: Node, target: Node) -> str:
    async with client_channel(caller, target) as ch:
        stub = service_pb2_grpc.LedgerStub(ch)
        r = await stub.GetCheckpoint(service_pb2.GetCheckpointRequest(), timeout=10)
    return str(r.checkpoint)


@pytest.mark.network
def test_witness_round_cosigns_the_peer_checkpoint_and_the_office_covers_everyone(
        fed: Federation) -> None:
    async def scenario() -> None:
        nodes = {i: node_of(fed, i) for i in (OFFICE, POLICE, BUREAU, CARRIER)}
        office, police, bureau = nodes[OFFICE], nodes[POLICE], nodes[BUREAU]
        async with serving(*nodes.values()) as (ro, rp, _, _):
            for _ in range(3):
                await police.send(BUREAU, BODY)
            await wait_for(lambda: rp.outbox.depth() == 0)
            size = bureau.store.size

            status = await rp.witness.round()
            assert status == {BUREAU: f"witnessed size {size}"}

            text_ = await get_checkpoint(office, bureau)
            cp, _, witnesses = note.open_checkpoint(
                text_, log_verifier(bureau), [cosignature_verifier(police)],
                origin=bureau.origin)
            assert cp.size == size
            assert witnesses == [cosignature_verifier(police)]
            assert bureau.store.witnesses_of(size) == [POLICE]

            # The witness keeps its cosigned copy with the checkpoint it held; cosigning
            # adds nothing to its own ledger (mutual witnesses would never settle).
            [held] = [r for r in peer_checkpoint_rows(police, bureau.origin) if r.size == size]
            wcp, _, ws = note.open_checkpoint(held.note, log_verifier(bureau),
                                              [cosignature_verifier(police)])
            assert (wcp, ws) == (cp, [cosignature_verifier(police)])
            assert not of_kind(police, EntryKind.WITNESS)

            # A second round with nothing new adds no second cosignature at the peer, and
            # nothing here.
            police_size = police.store.size
            await rp.witness.round()
            assert bureau.store.witnesses_of(size) == [POLICE]
            assert police.store.size == police_size

            status = await ro.witness.round()
            # The office started first: its start-up check and first round found the
            # others down, and its channels may still be backing off from that; a round
            # after they are up reaches them.
            for _ in range(40):
                if not any(v.startswith("unreachable") for v in status.values()):
                    break
                await asyncio.sleep(0.25)
                status = await ro.witness.round()
            assert set(status) == {POLICE, BUREAU, CARRIER}
            for member_id, s in status.items():
                member = nodes[member_id]
                assert s == f"witnessed size {member.store.size}", (member_id, s)
                _, _, ws = note.open_checkpoint(
                    await get_checkpoint(police, member), log_verifier(member),
                    [cosignature_verifier(office), cosignature_verifier(police)],
                    origin=member.origin)
                assert cosignature_verifier(office) in ws
            _, _, ws = note.open_checkpoint(
                bureau.store.latest_cosigned_checkpoint(), log_verifier(bureau),
                [cosignature_verifier(office), cosignature_verifier(police)])
            assert set(ws) == {cosignature_verifier(office), cosignature_verifier(police)}
            assert not of_kind(office, EntryKind.WITNESS)

    asyncio.run(scenario())


def peer_checkpoint_rows(node: Node, origin: str) -> list[Any]:
    with node.reader.connect() as conn:
        return list(conn.execute(select(peer_checkpoints).where(
            peer_checkpoints.c.origin == origin, peer_checkpoints.c.witnessed.is_(True))))


# --- 4. forks ------------------------------------------------------------------------------


async def rewrite_history(fed: Federation, old: RunningNode, size: int) -> RunningNode:
    """Stop ``old``, drop its database and start a node with the same key and a different
    history of ``size`` entries."""
    node_id = old.node.node_id
    await old.stop(grace=1)
    db = fed.workspace / node_id / "node.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    forger = node_of(fed, node_id)  # the directory comes back from the file
    assert forger.store.size < size
    while forger.store.size < size:
        await forger.committer.run(lambda txn: txn.append(Entry(
            EntryKind.ACTION, "", txn.now, subject="rewritten")))
    # A forger runs a node that skips the honest start-up check (its own checkpoint file
    # and its witnesses would show it behind what it signed).
    r = RunningNode(forger, check_ledger=False)
    await r.start()
    return r


@contextlib.asynccontextmanager
async def forked_bureau(fed: Federation, grow: int
                        ) -> AsyncIterator[tuple[RunningNode, RunningNode, str, str]]:
    """Police and the office witness bureau at size S; bureau then rewrites its ledger to
    size S + grow, signed by the same key. Yields police, office and both checkpoints."""
    office, police, bureau = node_of(fed, OFFICE), node_of(fed, POLICE), node_of(fed, BUREAU)
    # Bureau first, so the office's first witness round already reaches it.
    rb = RunningNode(bureau)
    await rb.start()
    try:
        async with serving(office, police) as (ro, rp):
            for _ in range(3):
                await police.send(BUREAU, BODY)
            await wait_for(lambda: rp.outbox.depth() == 0)
            size = bureau.store.size
            assert (await rp.witness.round())[BUREAU] == f"witnessed size {size}"
            assert (await ro.witness.round())[BUREAU] == f"witnessed size {size}"
            honest = bureau.store.latest_cosigned_checkpoint()
            rb = await rewrite_history(fed, rb, size + grow)
            forged = rb.node.store.latest_cosigned_checkpoint()
            yield rp, ro, honest, forged
    finally:
        await rb.stop(grace=1)


def opened(text_: str, verifier: note.Verifier) -> tuple[int, bytes]:
    cp, _, _ = note.open_checkpoint(text_, verifier)
    return cp.size, cp.root


def forks(node: Node) -> list[Any]:
    with node.reader.connect() as conn:
        return list(conn.execute(select(fork_evidence)).all())


@pytest.mark.network
@pytest.mark.parametrize("grow", [2, 0], ids=["rewritten-and-longer", "same-size-other-root"])
def test_witness_detects_a_rewritten_ledger_and_escalates_to_the_office(
        fed_sqlite: Federation, grow: int) -> None:
    async def scenario() -> None:
        async with forked_bureau(fed_sqlite, grow) as (rp, ro, honest, forged):
            police, office = rp.node, ro.node
            verifier = police.log_verifier(BUREAU)
            both = {opened(honest, verifier), opened(forged, verifier)}
            assert len(both) == 2

            status = await rp.witness.round()
            assert status[BUREAU].startswith(f"FORK: {police.log_verifier(BUREAU).name}")
            assert rp.witness.forks == 1

            (row,) = forks(police)
            assert row.origin == police.log_verifier(BUREAU).name
            assert row.escalated
            assert {opened(row.first_note, verifier), opened(row.second_note, verifier)} == both

            (_, action), = [(i, e) for i, e in of_kind(police, EntryKind.ACTION)
                            if e.subject == "ledger-fork"]
            assert action.peer == BUREAU
            assert action.detail == (row.first_note + "\n" + row.second_note).encode()

            await wait_for(lambda: received_bodies(office, messages.Escalation))
            (esc,) = received_bodies(office, messages.Escalation)
            assert esc.escalation_kind is messages.EscalationKind.LEDGER_FORK
            assert esc.subject_node == BUREAU
            assert len(esc.evidence) == 2
            assert {opened(e.decode(), verifier) for e in esc.evidence} == both
            (_, logged), = [(i, e) for i, e in of_kind(office, EntryKind.RECEIVED)
                            if e.subject == "escalation"]
            assert logged.peer == POLICE

            # The office, witnessing every member, finds the fork on its own too; it
            # keeps the evidence and sends nothing to itself.
            status = await ro.witness.round()
            assert status[BUREAU].startswith("FORK: ")
            (office_row,) = forks(office)
            assert {opened(office_row.first_note, verifier),
                    opened(office_row.second_note, verifier)} == both
            assert [e.subject for _, e in of_kind(office, EntryKind.ACTION)] == ["ledger-fork"]
            assert all(r.recipient != OFFICE for r in outbox_rows(office))

    asyncio.run(scenario())


@pytest.mark.network
def test_a_fork_is_escalated_once(fed_sqlite: Federation) -> None:
    async def scenario() -> None:
        async with forked_bureau(fed_sqlite, 2) as (rp, ro, _, _):
            for _ in range(3):
                await rp.witness.round()
            await wait_for(lambda: rp.outbox.depth() == 0)
            assert len(forks(rp.node)) == 1
            assert len(received_bodies(ro.node, messages.Escalation)) == 1

    asyncio.run(scenario())


# --- 5. proofs on a 100,000-entry log ------------------------------------------------------


@contextlib.contextmanager
def counting_selects(engine: Engine) -> Iterator[list[str]]:
    """Every SELECT run on ``engine`` (and on engines derived from it, like the reader)."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


@pytest.fixture(scope="module")
def big_ledger(tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[LedgerStore, GroupCommitter]]:
    engine = engines.create_engine_for(
        engines.sqlite_url(tmp_path_factory.mktemp("big") / "ledger.db"))
    migrate.upgrade(engine)
    store = LedgerStore(engine, origin="bcx.example/big.cn", signer=Ed25519Signer.generate())
    committer = GroupCommitter(store)
    committer.start()

    def thousand(start: int) -> Callable[[Any], None]:
        def work(txn: Any) -> None:
            for i in range(start, start + 1000):
                txn.append(Entry(EntryKind.ACTION, "police.fj", txn.now,
                                 detail=i.to_bytes(4, "big"), subject="bulk"))
        return work

    for k in range(100):
        committer.run_sync(thousand(k * 1000))
    try:
        yield store, committer
    finally:
        committer.stop()
        engine.dispose()


@pytest.mark.slow
def test_proofs_on_a_100k_log_verify_against_signed_checkpoints_in_log_reads(
        big_ledger: tuple[LedgerStore, GroupCommitter]) -> None:
    store, committer = big_ledger
    n = 100_000
    assert store.size == n
    assert committer.batches == 100
    verifier = note.Verifier.for_key(store.origin, store.signer.public_key)
    sizes = list(range(1000, n + 1, 1000))
    roots = {}
    for size in sizes:
        cp, _, _ = note.open_checkpoint(store.checkpoint_at(size).note, verifier,
                                        origin=store.origin)
        assert cp.size == size
        roots[size] = cp.root
    bound = 2 * math.log2(n) + 4
    rng = random.Random(9162)

    for _ in range(40):
        size = rng.choice(sizes)
        index = rng.randrange(size)
        leaf = store.leaf(index)
        store._cache.clear()  # measure a cold proof's reads
        with counting_selects(store.engine) as reads:
            proof = store.inclusion_proof(index, size)
        assert len(reads) <= bound, (index, size, len(reads))
        merkle.verify_inclusion(merkle.leaf_hash(leaf), index, size, proof, roots[size])
        assert Entry.decode(leaf).detail == index.to_bytes(4, "big")

    for _ in range(40):
        old, new = sorted(rng.sample(sizes, 2))
        store._cache.clear()
        with counting_selects(store.engine) as reads:
            proof = store.consistency_proof(old, new)
        assert len(reads) <= bound, (old, new, len(reads))
        merkle.verify_consistency(old, new, proof, roots[old], roots[new])

    # The latest root is what the leaves themselves give (what `bcx ledger verify` checks).
    hashes = [merkle.leaf_hash(leaf) for start in range(0, n, 10_000)
              for _, leaf in store.leaves(start, 10_000)]
    assert merkle.root(hashes) == roots[n]


def test_iter_leaves_reads_every_leaf(tmp_path: Path) -> None:
    engine = engines.create_engine_for(engines.sqlite_url(tmp_path / "ledger.db"))
    migrate.upgrade(engine)
    store = LedgerStore(engine, origin="bcx.example/small.cn", signer=Ed25519Signer.generate())
    committer = GroupCommitter(store)
    committer.start()
    try:
        committer.run_sync(lambda txn: [txn.append(Entry(EntryKind.ACTION, "", txn.now,
                                                         subject=str(i))) for i in range(10)])
        assert [i for i, _ in iter_leaves(engine, chunk=3)] == list(range(10))
    finally:
        committer.stop()
        engine.dispose()


# --- 6. the Ledger service's access control over mTLS ---------------------------------------


@contextlib.asynccontextmanager
async def ledger_stub(caller: Node, target: Node) -> AsyncIterator[service_pb2_grpc.LedgerStub]:
    async with client_channel(caller, target) as ch:
        yield service_pb2_grpc.LedgerStub(ch)


@pytest.mark.network
def test_ledger_service_serves_entries_to_their_parties_and_proofs_to_all(
        fed: Federation) -> None:
    async def scenario() -> None:
        nodes = {i: node_of(fed, i) for i in (OFFICE, POLICE, BUREAU, CARRIER)}
        office, police, bureau, carrier = (nodes[i] for i in (OFFICE, POLICE, BUREAU, CARRIER))
        async with serving(*nodes.values()) as (_, rp, _, rc):
            for _ in range(2):
                await police.send(BUREAU, BODY)
            await carrier.send(BUREAU, messages.ChannelReport(numbers=("+8615959000002",),
                                                              findings="resold SIM cards"))
            await wait_for(lambda: rp.outbox.depth() == 0 and rc.outbox.depth() == 0)
            ledger = entries(bureau)
            by_peer = {p: [i for i, e in ledger if e.peer == p] for p in (POLICE, CARRIER)}
            assert len(by_peer[POLICE]) == 2 and len(by_peer[CARRIER]) == 1

            # GetEntries: a party sees its own entries, and so does the office (witnessing
            # needs checkpoints and proofs only; an audit read is tests/integration/
            # test_bounds.py's).
            for caller, expected in ((police, by_peer[POLICE]), (carrier, by_peer[CARRIER]),
                                     (office, [i for i, e in ledger if e.peer == OFFICE])):
                async with ledger_stub(caller, bureau) as stub:
                    r = await stub.GetEntries(service_pb2.GetEntriesRequest(start=0, limit=100))
                assert [e.index for e in r.entries] == expected, caller.node_id
                assert all(e.leaf == bureau.store.leaf(e.index) for e in r.entries)
                assert r.next_start == bureau.store.size

            bureau_verifier = police.log_verifier(BUREAU)
            (police_msg,) = [e for i, e in ledger if i == by_peer[POLICE][0]]
            digest_request = service_pb2.GetInclusionProofRequest(
                message_digest=police_msg.message_digest)

            def check_proof(r: Any, index: int) -> None:
                cp, _, _ = note.open_checkpoint(r.checkpoint, bureau_verifier,
                                                origin=bureau.origin)
                assert (r.index, r.tree_size) == (index, cp.size)
                merkle.verify_inclusion(merkle.leaf_hash(bureau.store.leaf(index)), index,
                                        cp.size, list(r.hashes), cp.root)

            # By digest, a party gets the leaf with the proof.
            async with ledger_stub(police, bureau) as stub:
                r = await stub.GetInclusionProof(digest_request, timeout=10)
            assert r.leaf == bureau.store.leaf(by_peer[POLICE][0])
            check_proof(r, by_peer[POLICE][0])

            # By index, a non-party gets the proof and no leaf.
            async with ledger_stub(carrier, bureau) as stub:
                r = await stub.GetInclusionProof(service_pb2.GetInclusionProofRequest(
                    index=by_peer[POLICE][0]), timeout=10)
            assert r.leaf == b""
            check_proof(r, by_peer[POLICE][0])

            # Consistency between two signed checkpoints of bureau.
            with bureau.reader.connect() as conn:
                sizes = sorted(conn.scalars(select(ledger_checkpoints.c.size)))
            old, new = sizes[0], sizes[-1]
            assert old < new
            async with ledger_stub(carrier, bureau) as stub:
                old_cp = await stub.GetInclusionProof(service_pb2.GetInclusionProofRequest(
                    index=0, tree_size=old), timeout=10)
                new_cp = await stub.GetInclusionProof(service_pb2.GetInclusionProofRequest(
                    index=0, tree_size=new), timeout=10)
                r = await stub.GetConsistencyProof(service_pb2.GetConsistencyProofRequest(
                    old_size=old, new_size=new), timeout=10)
                merkle.verify_consistency(
                    old, new, list(r.hashes),
                    note.open_checkpoint(old_cp.checkpoint, bureau_verifier)[0].root,
                    note.open_checkpoint(new_cp.checkpoint, bureau_verifier)[0].root)

                size = bureau.store.size
                for request, message in (
                    ((0, new), "no consistency proof from size 0"),
                    ((new, old), f"no consistency proof from size {new} to {old}"),
                    ((old, size + 5), f"the ledger holds {size} entries"),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.GetConsistencyProof(service_pb2.GetConsistencyProofRequest(
                            old_size=request[0], new_size=request[1]), timeout=10)
                    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
                    assert message in (err.value.details() or ""), err.value.details()
                for proof_request, message in (
                    (service_pb2.GetInclusionProofRequest(index=size + 3),
                     f"no inclusion proof for index {size + 3}"),
                    (service_pb2.GetInclusionProofRequest(index=0, tree_size=size + 7),
                     f"signed no checkpoint of size {size + 7}"),
                    (service_pb2.GetInclusionProofRequest(message_digest=b"\x00" * 32),
                     "no entry of this ledger holds a message with that digest"),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.GetInclusionProof(proof_request, timeout=10)
                    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
                    assert message in (err.value.details() or ""), err.value.details()

    asyncio.run(scenario())


@pytest.mark.network
def test_inclusion_proof_by_digest_gives_a_non_party_the_proof_without_the_leaf(
        fed: Federation) -> None:
    async def scenario() -> None:
        police, bureau, carrier = node_of(fed, POLICE), node_of(fed, BUREAU), node_of(fed,
                                                                                     CARRIER)
        async with serving(police, bureau, carrier) as (rp, _, _):
            mid = await police.send(BUREAU, BODY)
            await wait_for(lambda: rp.outbox.depth() == 0)
            ((index, received),) = of_kind(bureau, EntryKind.RECEIVED)
            assert received.message_id == mid
            async with ledger_stub(carrier, bureau) as stub:
                r = await stub.GetInclusionProof(service_pb2.GetInclusionProofRequest(
                    message_digest=received.message_digest), timeout=10)
            assert (r.index, r.leaf) == (index, b"")
            cp, _, _ = note.open_checkpoint(r.checkpoint, log_verifier(bureau))
            merkle.verify_inclusion(merkle.leaf_hash(bureau.store.leaf(index)), index, cp.size,
                                    list(r.hashes), cp.root)

    asyncio.run(scenario())


# --- 7. append-only at the database ---------------------------------------------------------

_ROWS = {
    ledger_leaves: {"idx": 0, "leaf": b"leaf", "kind": 1, "peer": "police.fj", "logged_at": 1},
    ledger_subtrees: {"level": 0, "idx": 0, "hash": b"\x01" * 32},
    ledger_checkpoints: {"size": 1, "root": b"\x02" * 32, "note": "cp\n", "created_at": 1},
    ledger_cosignatures: {"id": 1, "size": 1, "witness": "office.cn", "line": "— x\n",
                          "timestamp": 1},
}
_SET = {"ledger_leaves": "peer = 'forged'", "ledger_subtrees": "hash = hash",
        "ledger_checkpoints": "note = 'forged'", "ledger_cosignatures": "witness = 'forged'"}


def ledger_engine(url: str) -> Engine:
    engine = engines.create_engine_for(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        for table, row in _ROWS.items():
            conn.execute(insert(table), row)
    return engine


def snapshot(engine: Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}"))]
                for t in APPEND_ONLY_TABLES}


@pytest.mark.parametrize("statement", ["UPDATE {table} SET {set}", "DELETE FROM {table}"])
@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_database_refuses_update_and_delete_on_ledger_tables(
        db_url: str, table: str, statement: str) -> None:
    engine = ledger_engine(db_url)
    try:
        before = snapshot(engine)
        sql = statement.format(table=table, set=_SET[table])
        with pytest.raises(DBAPIError, match=f"bcx ledger table {table} is append-only"), \
                engine.begin() as conn:
            conn.execute(text(sql))
        if engine.dialect.name == "postgresql":
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {table}"))
        assert snapshot(engine) == before
    finally:
        engine.dispose()


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_database_refuses_upsert_over_a_ledger_row(db_url: str, table: str) -> None:
    engine = ledger_engine(db_url)
    try:
        before = snapshot(engine)
        t = {tb.name: tb for tb in _ROWS}[table]
        row = dict(_ROWS[t])
        columns = ", ".join(row)
        values = ", ".join(f":{c}" for c in row)
        key = ", ".join(c.name for c in t.primary_key.columns)
        other = next(c for c in row if c not in {c.name for c in t.primary_key.columns})
        sql = (f"INSERT INTO {table} ({columns}) VALUES ({values}) "
               f"ON CONFLICT ({key}) DO UPDATE SET {other} = excluded.{other}")
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql), row)
        assert snapshot(engine) == before
    finally:
        engine.dispose()


_FORGED = {"ledger_leaves": {"peer": "forged"}, "ledger_subtrees": {"hash": b"\xff" * 32},
           "ledger_checkpoints": {"note": "forged\n"}, "ledger_cosignatures": {"line": "forged\n"}}


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_sqlite_refuses_insert_or_replace_over_a_ledger_row(tmp_path: Path, table: str) -> None:
    engine = ledger_engine(engines.sqlite_url(tmp_path / "node.db"))
    try:
        before = snapshot(engine)
        row = {**next(r for t, r in _ROWS.items() if t.name == table), **_FORGED[table]}
        sql = (f"INSERT OR REPLACE INTO {table} ({', '.join(row)}) "
               f"VALUES ({', '.join(':' + c for c in row)})")
        with contextlib.suppress(DBAPIError), engine.begin() as conn:
            conn.execute(text(sql), row)
        assert snapshot(engine) == before
    finally:
        engine.dispose()


# --- 8. group commit --------------------------------------------------------------------------


def test_concurrent_receives_and_sends_share_few_checkpoints(fed: Federation) -> None:
    async def scenario() -> None:
        police, bureau = node_of(fed, POLICE), node_of(fed, BUREAU)
        try:
            raws = [signed_envelope(police, BUREAU, BODY) for _ in range(200)]
            batches = bureau.committer.batches
            outcomes = await asyncio.gather(*(bureau.inbox.receive(raw, POLICE) for raw in raws))
            batches = bureau.committer.batches - batches
            assert batches <= 20, batches

            known: dict[str, note.Checkpoint] = {}
            indexes = set()
            for raw, outcome in zip(raws, outcomes, strict=True):
                assert not outcome.duplicate
                verify_receipt(outcome.receipt, envelope=raw, sender=POLICE,
                               log_verifier=log_verifier(bureau), origin=bureau.origin,
                               known_checkpoints=known)
                indexes.add(outcome.receipt.leaf_index)
            assert len(indexes) == 200
            # One signed checkpoint per batch: the receipts name only those.
            assert len(known) <= batches
            assert len(of_kind(bureau, EntryKind.RECEIVED)) == 200

            batches = police.committer.batches
            sent = await asyncio.gather(*(police.send(BUREAU, BODY) for _ in range(200)))
            batches = police.committer.batches - batches
            assert batches <= 20, batches
            assert {e.message_id for _, e in of_kind(police, EntryKind.SENT)} == set(sent)
            assert len(outbox_rows(police)) == 200
        finally:
            police.stop_writer()
            bureau.stop_writer()
            police.engine.dispose()
            bureau.engine.dispose()

    asyncio.run(scenario())


@pytest.mark.network
def test_outbox_watch_resolves_with_each_messages_receipt_entry(fed_sqlite: Federation) -> None:
    """Outbox.watch: a caller that needs to know when a message is delivered (the bench,
    an operator command) gets the ledger index of its RECEIPT entry, for each message."""
    fed = fed_sqlite

    async def scenario() -> None:
        police, bureau = node_of(fed, POLICE), node_of(fed, BUREAU)
        async with serving(police, bureau) as (rp, _):
            watched = {}
            for _ in range(20):  # enough that the worker switches to DeliverStream
                mid = await police.send(BUREAU, BODY)
                watched[mid] = rp.outbox.watch(mid)
            indexes = await asyncio.wait_for(asyncio.gather(*watched.values()), timeout=30)
            ledger = dict(entries(police))
            for mid, idx in zip(watched, indexes, strict=True):
                assert ledger[idx].kind is EntryKind.RECEIPT
                assert ledger[idx].message_id == mid
            assert not rp.outbox._watchers  # resolved watchers are let go

    asyncio.run(scenario())


# --- a message refused for good does not block the ones after it ---------------------------

MARKED = "+8615959000099"  # the bureau's test handler refuses reports naming it, for good


@pytest.mark.network
@pytest.mark.parametrize("count", [3, 12], ids=["unary", "stream"])
def test_a_message_refused_for_good_is_set_aside_and_the_queue_goes_on(
        fed_sqlite: Federation, count: int) -> None:
    """The bureau refuses one report for good (INVALID_ARGUMENT). The police's outbox
    takes it out of the queue with the refusal, logs that and tells the office, and
    delivers the messages after it; once the cause is fixed, `outbox retry` requeues it."""
    fed = fed_sqlite
    refused_index = 1

    def refusing(ctx: Any, accepted: Any) -> None:
        if MARKED in accepted.message.body.numbers:
            raise InvalidBodyError(f"{MARKED} may not be reported in this test")

    async def scenario() -> None:
        police, bureau = node_of(fed, POLICE), node_of(fed, BUREAU)
        bureau.handlers["number_report"] = refusing
        async with serving(police, bureau) as (rp, _):
            bodies = [BODY] * count
            bodies[refused_index] = NumberReport(numbers=(MARKED,), category=Category.FRAUD)
            # Queued in one transaction, so that 12 go as one DeliverStream.
            mids = await police.run_work(lambda ctx: [ctx.send(BUREAU, b) for b in bodies])
            refused_mid = mids[refused_index]
            delivered = [rp.outbox.watch(m) for m in mids if m != refused_mid]
            set_aside = rp.outbox.watch(refused_mid)
            await asyncio.wait_for(asyncio.gather(*delivered), timeout=30)
            with pytest.raises(ExchangeError, match=r"refused message .* for good"):
                await asyncio.wait_for(set_aside, timeout=30)

            rows = {r.message_id: r for r in outbox_rows(police) if r.recipient == BUREAU}
            row = rows[refused_mid]
            assert row.delivered_at is None and row.escalated
            # A refusal names a number by its last four digits only (it is stored and may be
            # forwarded to the office); the full number stays with its sender.
            assert "INVALID_ARGUMENT" in row.last_error and f"…{MARKED[-4:]}" in row.last_error
            assert MARKED not in row.last_error
            assert all(rows[m].delivered_at is not None for m in mids if m != refused_mid)
            assert rp.outbox.depth() == 1  # the escalation to the (stopped) office
            actions = [e for _, e in of_kind(police, EntryKind.ACTION)
                       if e.subject == "delivery-refused"]
            assert [e.message_id for e in actions] == [refused_mid]
            to_office = [r for r in outbox_rows(police) if r.recipient == OFFICE]
            assert [r.kind for r in to_office] == ["escalation"]
            # The receiver applied the ones after it: the order it logged them in is the
            # order they were sent in, without the refused one.
            assert [e.message_id for _, e in of_kind(bureau, EntryKind.RECEIVED)] == \
                [m for m in mids if m != refused_mid]

            # Operator errors name the problem.
            with pytest.raises(OperationError, match=r"was delivered to bureau\.fj"):
                await police.run_work(lambda ctx: requeue(ctx, mids[0]))
            with pytest.raises(OperationError, match=r"no message 00+ in this node"):
                await police.run_work(lambda ctx: requeue(ctx, bytes(16)))

            # The cause fixed, the operator requeues it; it is delivered, still once.
            del bureau.handlers["number_report"]
            watched = rp.outbox.watch(refused_mid)
            out = await police.run_work(lambda ctx: requeue(ctx, refused_mid))
            assert out == {"message_id": refused_mid.hex(), "recipient": BUREAU,
                           "kind": "number_report"}
            await asyncio.wait_for(watched, timeout=30)
            assert [e.subject for _, e in of_kind(police, EntryKind.ACTION)] == \
                ["delivery-refused", "delivery-requeued"]
            assert [e.message_id for _, e in of_kind(bureau, EntryKind.RECEIVED)][-1] == \
                refused_mid
            with pytest.raises(OperationError, match="was delivered"):
                await police.run_work(lambda ctx: requeue(ctx, refused_mid))

    asyncio.run(scenario())




@pytest.mark.network
def test_a_message_refused_unauthenticated_stays_at_the_head_and_is_retried(
        fed_sqlite: Federation) -> None:
    """UNAUTHENTICATED mostly means the peer does not know this node yet: setting the
    message aside would set every one aside. It stays at the head, is retried, and goes
    through once the peer accepts it, in order."""
    fed = fed_sqlite
    refuse = [True]

    def not_yet(ctx: Any, accepted: Any) -> None:
        if refuse[0] and MARKED in accepted.message.body.numbers:
            raise BadSignatureError("this test's peer does not accept it yet")

    async def scenario() -> None:
        police = node_of(fed, POLICE, backoff_initial_seconds=0.05)
        bureau = node_of(fed, BUREAU)
        bureau.handlers["number_report"] = not_yet
        async with serving(police, bureau) as (rp, _):
            marked = NumberReport(numbers=(MARKED,), category=Category.FRAUD)
            mids = await police.run_work(
                lambda ctx: [ctx.send(BUREAU, b) for b in (marked, BODY, BODY)])
            watched = [rp.outbox.watch(m) for m in mids]
            await wait_for(lambda: next(r for r in outbox_rows(police)
                                        if r.message_id == mids[0]).attempts >= 2)
            head = next(r for r in outbox_rows(police) if r.message_id == mids[0])
            # Not escalated either: police adopted its directory just now, so the answer
            # waits for the peer's next directory refresh (outbox.unauthenticated_counts).
            assert head.refused_at is None and head.delivered_at is None
            assert not head.escalated
            assert not any(w.done() for w in watched)  # nothing passed it
            refuse[0] = False
            await asyncio.wait_for(asyncio.gather(*watched), timeout=30)
            assert [e.message_id for _, e in of_kind(bureau, EntryKind.RECEIVED)] == mids

    asyncio.run(scenario())


@pytest.mark.network
def test_every_message_a_peer_refused_is_requeued_at_once(fed_sqlite: Federation) -> None:
    """`bcx outbox retry --peer`: when a peer refused several messages for one cause (a
    directory entry, say), the operator requeues them all, in order, with one command."""
    from exchange.errors import UnknownMemberError
    from nodes.registry import OutboxRetry

    fed = fed_sqlite
    refuse = [True]

    def refusing(ctx: Any, accepted: Any) -> None:
        if refuse[0] and MARKED in accepted.message.body.numbers:
            raise InvalidBodyError("not now")

    async def scenario() -> None:
        police, bureau = node_of(fed, POLICE), node_of(fed, BUREAU)
        bureau.handlers["number_report"] = refusing
        async with serving(police, bureau) as (rp, _):
            marked = NumberReport(numbers=(MARKED,), category=Category.FRAUD)
            mids = await police.run_work(
                lambda ctx: [ctx.send(BUREAU, b) for b in (marked, BODY, marked)])
            await wait_for(lambda: sum(r.refused_at is not None
                                       for r in outbox_rows(police)) == 2)

            with pytest.raises(OperationError, match="a message id or a peer, not both"):
                await police.run_work(OutboxRetry().apply)
            with pytest.raises(UnknownMemberError, match=r"'nobody\.fj' is not a member"):
                await police.run_work(OutboxRetry(peer="nobody.fj").apply)
            with pytest.raises(OperationError, match=r"no message to cmcc\.fj is set aside"):
                await police.run_work(OutboxRetry(peer=CARRIER).apply)

            refuse[0] = False
            watched = [rp.outbox.watch(mids[0]), rp.outbox.watch(mids[2])]
            out = await police.run_work(OutboxRetry(peer=BUREAU).apply)
            assert out == {"recipient": BUREAU, "requeued": 2}
            await asyncio.wait_for(asyncio.gather(*watched), timeout=30)
            assert [e.message_id for _, e in of_kind(bureau, EntryKind.RECEIVED)] == \
                [mids[1], mids[0], mids[2]]
            assert [e.subject for _, e in of_kind(police, EntryKind.ACTION)].count(
                "delivery-requeued") == 2

    asyncio.run(scenario())
