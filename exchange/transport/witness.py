"""Witnessing peers' ledgers, the network side (docs/architecture.md#witnessing).

Each node checks the checkpoints of the peers it talks to (the office checks every
member): it asks the peer for its checkpoint and a consistency proof from each one it
holds, lets ``exchange.ledger.witness.judge_checkpoint`` decide, and returns a
tlog-cosignature/v1 to the peer. Two checkpoints of one origin that are not consistent
are a fork, and so is a checkpoint smaller than one held: both are kept as evidence and
escalated to the office. ``Witness.check_peer`` does that I/O around the pure decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from sqlalchemy import insert, select, update

from exchange import messages
from exchange.identity import Role
from exchange.ledger import note
from exchange.ledger.entries import to_micros
from exchange.ledger.receipts import log_origin
from exchange.ledger.witness import Held, Verdict, judge_checkpoint, needs_proof, to_compare
from exchange.schema import fork_evidence, inbox, outbox, peer_checkpoints
from exchange.transport.outbox import record_peer_checkpoint
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc

if TYPE_CHECKING:
    from exchange.node import Context, Node
    from exchange.transport.client import Peers

log = logging.getLogger(__name__)


class Witness:
    def __init__(self, node: Node, peers: Peers) -> None:
        self.node = node
        self.peers = peers
        self.status: dict[str, str] = {}
        self.forks = 0
        self.cosigned = 0
        # Size of the last checkpoint cosigned per peer: an unchanged peer costs no new
        # cosignature and no WITNESS entry (else witnesses would grow each other's ledgers).
        self._last_cosigned: dict[str, int] = {}

    def watched(self) -> list[str]:
        """Peers this node has exchanged messages with; every member for the office."""
        node = self.node
        if node.me.role is Role.OFFICE:
            return [m.node_id for m in node.directory.members if m.node_id != node.node_id]
        with node.reader.connect() as conn:
            ids = set(conn.scalars(select(outbox.c.recipient).distinct()))
            ids |= set(conn.scalars(select(inbox.c.sender).distinct()))
        return sorted(i for i in ids if node.directory.has_member(i) and i != node.node_id)

    async def run(self, interval: float) -> None:
        while True:
            await self.round()
            await asyncio.sleep(interval)

    async def round(self) -> dict[str, str]:
        peers = await asyncio.to_thread(self.watched)
        for peer in peers:
            try:
                self.status[peer] = await self.check_peer(peer)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as e:
                self.status[peer] = f"unreachable: {e.code().name}: {e.details()}"
            except Exception as e:  # noqa: BLE001 - one peer's trouble must not stop the round
                log.warning("witnessing %s failed: %s", peer, e)
                self.status[peer] = f"error: {e}"
            self.node.metrics.witness_checked(peer, self.status[peer])
        return dict(self.status)

    def _held(self, origin: str) -> list[Held]:
        with self.node.reader.connect() as conn:
            rows = conn.execute(
                select(peer_checkpoints).where(peer_checkpoints.c.origin == origin)
                .order_by(peer_checkpoints.c.size, peer_checkpoints.c.id)
            ).all()
        return [Held(r.id, note.Checkpoint(r.origin, r.size, bytes(r.root)), r.note,
                     bool(r.witnessed)) for r in rows]

    def _forked(self, origin: str) -> bool:
        """A fork already found stays on record; it is escalated once, not every round."""
        with self.node.reader.connect() as conn:
            return conn.scalar(select(fork_evidence.c.id)
                               .where(fork_evidence.c.origin == origin).limit(1)) is not None

    async def check_peer(self, peer: str) -> str:
        node = self.node
        member = node.directory.member(peer)
        origin = log_origin(node.trust_domain, peer)
        verifier = note.Verifier.for_key(origin, member.signing_key)
        stub = self.peers.ledger(peer)
        # What is held is read before the peer is asked: everything recorded until then
        # (witnessed, or from its receipts) the peer had signed, so its answer must cover it.
        held = await asyncio.to_thread(self._held, origin)
        response = await stub.GetCheckpoint(service_pb2.GetCheckpointRequest(), timeout=10)
        cp, _, _ = note.open_checkpoint(response.checkpoint, verifier, origin=origin)
        await node.run_work(lambda ctx: record_peer_checkpoint(ctx.txn.cursor, cp,
                                                               response.checkpoint, ctx.now))
        if await asyncio.to_thread(self._forked, origin):
            return "FORKED: evidence held and escalated to the office"
        for h in to_compare(held):
            proof: list[bytes] = []
            if needs_proof(h.cp, cp):
                r = await stub.GetConsistencyProof(service_pb2.GetConsistencyProofRequest(
                    old_size=h.cp.size, new_size=cp.size), timeout=10)
                proof = list(r.hashes)
            judged = judge_checkpoint(h.cp, cp, proof)
            if judged.verdict is Verdict.FORK:
                await self._fork(peer, h.text, response.checkpoint, judged.detail)
                return f"FORK: {judged.detail}"
        now_held = await asyncio.to_thread(self._held, origin)
        (current,) = [h for h in now_held if h.cp == cp]
        await node.run_work(_mark_witnessed([h.id for h in now_held
                                             if not h.witnessed and h.cp.size <= cp.size]))
        if self._last_cosigned.get(peer) != cp.size:
            await self._cosign(peer, stub, current)
            self._last_cosigned[peer] = cp.size
        return f"witnessed size {cp.size}"

    async def _cosign(self, peer: str, stub: service_pb2_grpc.LedgerStub, held: Held) -> None:
        node = self.node
        sig = note.cosign(held.cp, node.signer, node.origin, int(time.time()))
        await stub.AddCosignature(service_pb2.AddCosignatureRequest(
            checkpoint=held.cp.body, cosignature=sig.line.rstrip("\n")), timeout=10)
        cosigned = note.add_signatures(held.text, [sig])
        # The witness keeps its cosigned copy with the peer checkpoint it held, not as a
        # ledger entry: two nodes witnessing each other would otherwise grow each other's
        # logs for ever (each cosignature a new entry, each entry a new checkpoint to
        # cosign). The cosignature is signed evidence on its own, held by the peer too.
        def keep(ctx: Context) -> None:
            ctx.conn.execute(update(peer_checkpoints).where(peer_checkpoints.c.id == held.id)
                             .values(note=cosigned))
        await node.run_work(keep)
        log.info("witness %s cosigned %s at size %d", node.node_id, peer, held.cp.size)
        self.cosigned += 1

    async def _fork(self, peer: str, first: str, second: str, detail: str) -> None:
        self.forks += 1
        log.error("ledger fork of %s: %s", peer, detail)

        def work(ctx: Context) -> None:
            ctx.conn.execute(insert(fork_evidence), {
                "origin": log_origin(ctx.node.trust_domain, peer), "first_note": first,
                "second_note": second, "detail": detail, "found_at": to_micros(ctx.now),
                "escalated": True})
            ctx.log_action("ledger-fork", (first + "\n" + second).encode(), peer=peer)
            ctx.escalate(messages.EscalationKind.LEDGER_FORK, subject_node=peer, detail=detail,
                         evidence=(first.encode(), second.encode()))
        await self.node.run_work(work)


def _mark_witnessed(row_ids: list[int]) -> Callable[[Context], None]:
    def work(ctx: Context) -> None:
        if row_ids:
            ctx.conn.execute(update(peer_checkpoints).where(peer_checkpoints.c.id.in_(row_ids))
                             .values(witnessed=True))
    return work


def held_checkpoint(node: Node, origin: str) -> str | None:
    """The note of the largest checkpoint of ``origin`` this node holds, if any."""
    with node.reader.connect() as conn:
        return conn.scalar(select(peer_checkpoints.c.note)
                           .where(peer_checkpoints.c.origin == origin)
                           .order_by(peer_checkpoints.c.size.desc(), peer_checkpoints.c.id)
                           .limit(1))
