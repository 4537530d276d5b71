"""`bcx ledger recover`: rebuild a lost tail of the ledger from what the peers hold.

A receiver answers each message with a receipt holding its RECEIVED leaf, and the sender
logs that receipt (a RECEIPT entry, which the receiver may read as its party:
``GetEntries``). So every message this node received and acknowledged can be put back
byte for byte, at its index, from its senders' ledgers. Each leaf taken is proven by
its inclusion proof under a checkpoint signed by this node's own key, and the rebuilt
ledger must have the root of the latest checkpoint it signed (its checkpoint file or
what its witnesses hold, ``exchange.ledger.rollback``) before anything is committed.

What no peer holds (messages this node sent, its own decisions) cannot be rebuilt: the
missing indexes are named, nothing is written, and the node still refuses to start.
Run it while the node is stopped (it refuses to start anyway while behind).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from exchange import receive
from exchange.errors import ExchangeError, LedgerError, NoteError, ProofError, ReceiptError
from exchange.ledger import merkle, note
from exchange.ledger.entries import Entry, EntryKind, Receipt
from exchange.ledger.rollback import Claim, all_claims, judge_ledger
from exchange.storage.unitofwork import Transaction
from exchange.transport.client import Peers
from exchange.transport.reads import read_entries

if TYPE_CHECKING:
    from exchange.node import Node

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

# Entries asked of a peer per GetEntries call; leaves of bulk messages are large.
PAGE = 200
PEER_TIMEOUT = 30.0
# A progress line every this many entries re-appended.
PROGRESS_EVERY = 1000


class UnrecoverableError(LedgerError):
    """Part of the lost tail is held by no peer: the ledger cannot be rebuilt."""

    def __init__(self, message: str, missing: Sequence[int]) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


# --- the decisions (pure) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    """This node's leaves carried by a peer's receipts, each proven under its own key."""

    leaves: dict[int, bytes]
    refused: int  # receipts that named a wanted index but did not prove their leaf


def leaves_in_receipts(entries: Iterable[Entry], *, me: str, verifier: note.Verifier,
                       wanted: range) -> Found:
    """The leaves of ``me``'s ledger at indexes in ``wanted`` that the RECEIPT entries
    among ``entries`` (a peer's ledger) carry, each checked by its inclusion proof under
    a checkpoint that ``verifier`` (``me``'s own log key) verifies."""
    known: dict[str, note.Checkpoint] = {}
    leaves: dict[int, bytes] = {}
    refused = 0
    for e in entries:
        if e.kind is not EntryKind.RECEIPT or e.peer != me:
            continue
        try:
            r = Receipt.decode(e.detail)
        except ReceiptError:
            refused += 1
            continue
        if r.leaf_index not in wanted:
            continue
        cp = known.get(r.checkpoint)
        if cp is None:
            try:
                cp, _, _ = note.open_checkpoint(r.checkpoint, verifier, origin=verifier.name)
            except NoteError:
                refused += 1
                continue
            known[r.checkpoint] = cp
        if r.leaf_index >= cp.size or not _proves(r, cp):
            refused += 1
            continue
        leaves[r.leaf_index] = r.leaf
    return Found(leaves, refused)


def _proves(r: Receipt, cp: note.Checkpoint) -> bool:
    try:
        merkle.verify_inclusion(merkle.leaf_hash(r.leaf), r.leaf_index, cp.size,
                                r.inclusion_proof, cp.root)
    except ProofError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    start: int  # the ledger's size now: the first index to put back
    target: note.Checkpoint  # the latest checkpoint signed, to be reached
    leaves: tuple[bytes, ...]  # for start .. target.size - 1, when none is missing
    missing: tuple[int, ...]


def plan_recovery(ledger_size: int, target: note.Checkpoint, found: Mapping[int, bytes]
                  ) -> RecoveryPlan:
    wanted = range(ledger_size, target.size)
    missing = tuple(i for i in wanted if i not in found)
    leaves = () if missing else tuple(found[i] for i in wanted)
    return RecoveryPlan(ledger_size, target, leaves, missing)


def ranges(indexes: Sequence[int]) -> str:
    """``[18, 19, 20, 25]`` as ``"18-20, 25"``."""
    parts: list[str] = []
    i = 0
    while i < len(indexes):
        j = i
        while j + 1 < len(indexes) and indexes[j + 1] == indexes[j] + 1:
            j += 1
        parts.append(str(indexes[i]) if i == j else f"{indexes[i]}-{indexes[j]}")
        i = j + 1
    return ", ".join(parts)


# --- I/O -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    node_id: str
    before: int
    after: int
    source: str  # who held the checkpoint reached
    replayed: int  # RECEIVED entries whose workflow change was applied again
    not_replayed: tuple[str, ...]  # message ids whose check failed now (inbox row kept)

    def __str__(self) -> str:
        if self.after == self.before:
            return (f"ledger of {self.node_id} holds {self.before} entries, as its latest "
                    f"signed checkpoint ({self.source}) says: nothing to recover")
        text = (f"ledger of {self.node_id} recovered: {self.before} -> {self.after} entries, "
                f"root equal to the checkpoint of size {self.after} held by {self.source}; "
                f"{self.replayed} received messages applied again")
        if self.not_replayed:
            text += (f"; {len(self.not_replayed)} kept without their workflow change (they "
                     f"no longer pass the checks): {', '.join(self.not_replayed)}")
        return text


async def peer_pages(node: Node, peers: Peers, peer: str, *, progress: Progress
                     ) -> AsyncIterator[list[Entry]]:
    """The entries of ``peer``'s ledger this node may read (those it is a party to), a
    page at a time, so that a long ledger is never held whole."""
    start = 0
    while True:
        page = await read_entries(node, peers, peer, start=start, limit=PAGE,
                                  timeout=PEER_TIMEOUT)
        yield [Entry.decode(leaf) for _, leaf in page.entries]
        if page.next_start <= start:
            return
        start = page.next_start
        if start % (PAGE * 10) == 0:
            progress(f"  {peer}: {start} of its entries scanned")


async def from_peer(node: Node, peers: Peers, peer: str, wanted: range, *,
                    progress: Progress) -> Found:
    """The lost leaves ``peer``'s receipts carry."""
    leaves: dict[int, bytes] = {}
    refused = 0
    async for page in peer_pages(node, peers, peer, progress=progress):
        got = leaves_in_receipts(page, me=node.node_id, verifier=node.store.verifier,
                                 wanted=wanted)
        leaves.update(got.leaves)
        refused += got.refused
    return Found(leaves, refused)


async def recover(node: Node, peers: Peers, *, progress: Progress) -> RecoveryReport:
    """Rebuild the tail of ``node``'s ledger lost since its latest signed checkpoint."""
    store = node.store
    progress(f"ledger of {node.node_id} holds {store.size} entries; asking its witnesses "
             "for the latest checkpoint it signed")
    target = await _target(node, peers, progress=progress)
    before = store.size
    if target.checkpoint.size <= before:
        return RecoveryReport(node.node_id, before, before, target.source, 0, ())
    wanted = range(before, target.checkpoint.size)
    progress(f"{target.source} holds size {target.checkpoint.size}: entries "
             f"{ranges(list(wanted))} are lost; asking the peers for them")
    found = await _gather(node, peers, wanted, progress=progress)
    plan = plan_recovery(before, target.checkpoint, found)
    if plan.missing:
        raise unrecoverable(node.node_id, plan)
    replayed: list[int] = []
    not_replayed: list[str] = []
    node.committer.start()
    try:
        await node.committer.run(
            lambda txn: reappend(node, txn, plan, replayed=replayed,
                                 not_replayed=not_replayed, progress=progress))
    finally:
        await asyncio.to_thread(node.committer.stop)
    return RecoveryReport(node.node_id, before, store.size, target.source, len(replayed),
                          tuple(not_replayed))


async def _target(node: Node, peers: Peers, *, progress: Progress) -> Claim:
    """The largest checkpoint of this ledger held outside its database, once the ledger
    is known to be a prefix of every one held."""
    asked = await all_claims(node, peers)
    for w in asked.unreachable:
        progress(f"  witness {w}: not asked")
    claims = asked.claims
    if not claims:
        raise LedgerError(f"no checkpoint of {node.node_id}'s ledger is held outside its "
                          "database (no checkpoint file, no witness answered): there is "
                          "nothing to recover against")
    store = node.store
    diverged = [b for b in await asyncio.to_thread(judge_ledger, store.size, store.root, claims)
                if b.diverged]
    if diverged:
        raise LedgerError(f"ledger of {node.node_id} is not a prefix of what it signed: "
                          f"{diverged[0]}; appending cannot repair it")
    return max(claims, key=lambda c: c.checkpoint.size)


async def _gather(node: Node, peers: Peers, wanted: range, *,
                  progress: Progress) -> dict[int, bytes]:
    """The lost leaves, asked of each member in turn until all are found."""
    found: dict[int, bytes] = {}
    for peer in sorted(m.node_id for m in node.directory.members if m.node_id != node.node_id):
        try:
            got = await from_peer(node, peers, peer, wanted, progress=progress)
        except grpc.aio.AioRpcError as e:
            progress(f"  {peer}: not asked ({e.code().name})")
            continue
        new = {i: leaf for i, leaf in got.leaves.items() if i not in found}
        found.update(new)
        progress(found_line(peer, new=len(new), refused=got.refused, found=len(found),
                            wanted=len(wanted)))
        if len(found) == len(wanted):
            break
    return found


def found_line(peer: str, *, new: int, refused: int, found: int, wanted: int) -> str:
    """The progress line after asking ``peer``."""
    refusals = f", {refused} receipts refused (do not prove)" if refused else ""
    return (f"  {peer}: {new} lost entries found in its receipts{refusals} "
            f"({found}/{wanted})")


def unrecoverable(node_id: str, plan: RecoveryPlan) -> UnrecoverableError:
    """The error for a plan some of whose leaves no peer holds."""
    lost = plan.target.size - plan.start
    return UnrecoverableError(
        f"ledger of {node_id} cannot be rebuilt: {len(plan.missing)} of the "
        f"{lost} lost entries are held by no peer reached, indexes "
        f"{ranges(plan.missing)}; nothing was written and the node still refuses to "
        "serve", plan.missing)


def reappend(node: Node, txn: Transaction, plan: RecoveryPlan, *, replayed: list[int],
             not_replayed: list[str], progress: Progress) -> None:
    """One transaction: the leaves at their indexes, each RECEIVED entry's inbox row and
    workflow change, then the root checked against the signed checkpoint (a mismatch
    rolls everything back)."""
    for k, leaf in enumerate(plan.leaves):
        idx = txn.append_leaf(leaf)
        if idx != plan.start + k:
            raise LedgerError(f"entry re-appended at {idx}, not {plan.start + k}: the ledger "
                              "changed while recovering")
        entry = Entry.decode(leaf)
        if entry.kind is EntryKind.RECEIVED:
            accepted = replay_check(node, entry)
            if accepted is None:
                not_replayed.append(entry.message_id.hex())
            else:
                replayed.append(idx)
            node.inbox.reapply_received(txn, entry, idx, accepted)
        done = k + 1
        if done % PROGRESS_EVERY == 0 or done == len(plan.leaves):
            progress(f"  re-appended {done}/{len(plan.leaves)} entries")
    root = node.store.root(plan.target.size)
    if root != plan.target.root:
        raise LedgerError(f"the rebuilt ledger's root at size {plan.target.size} is not the "
                          "one signed; nothing was written")


def replay_check(node: Node, entry: Entry) -> receive.Accepted | None:
    """The checks the message passed when it was received, as of then (its clock)."""
    try:
        return receive.check_incoming(
            entry.envelope, directory=node.directory, me=node.node_id, peer=entry.peer,
            now=entry.logged_at, limits=node.inbox.limits, body_checks=node.inbox.body_checks)
    except ExchangeError as e:
        log.warning("message %s from %s (re-appended) no longer passes the checks: %s",
                    entry.message_id.hex(), entry.peer, type(e).__name__)
        return None


def run(node: Node, *, progress: Progress) -> RecoveryReport:
    """`bcx ledger recover` for an already built (stopped) node."""
    async def main() -> RecoveryReport:
        peers = Peers(node.tls, node.current_directory,
                      max_message_bytes=64 * 1024 * 1024)
        try:
            return await recover(node, peers, progress=progress)
        finally:
            await peers.close()
    try:
        return asyncio.run(main())
    finally:
        node.engine.dispose()
