"""No silent rollback (docs/architecture.md#witnessing): at start, a node compares its
ledger with what it signed before, as kept outside its database.

Two sources hold this node's signed checkpoints where a restored or truncated database
cannot take them back: its checkpoint file (``exchange.ledger.store.CheckpointFile``)
and its witnesses (the office, and the peers it exchanged messages with, which keep
every checkpoint of it they saw in a receipt or a witness round; ``GetHeldCheckpoint``).
A ledger that holds fewer entries than one of them says it signed, or whose root at that
size differs, serves no traffic: the node does not start, with one line naming the
sizes and the source, and ``bcx ledger recover`` can rebuild the lost tail from peers.

A witness that cannot be reached is skipped with a warning: nodes of a federation start
in any order, and a node that waited for all of its witnesses could deadlock a cold start.
A witness reached later catches what the start did not (``Witness.check_peer`` judges a
smaller checkpoint a fork).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from sqlalchemy import select

from exchange.errors import ExchangeError, LedgerError, NoteError
from exchange.identity import Role
from exchange.ledger import note
from exchange.ledger.store import CheckpointFile, LedgerStore
from exchange.schema import inbox, outbox
from exchange.transport.reads import held_checkpoint_of_me

if TYPE_CHECKING:
    from exchange.node import Node
    from exchange.transport.client import Peers

log = logging.getLogger(__name__)

# Seconds to wait for one witness at start; they are asked together.
WITNESS_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Claim:
    """A checkpoint of this node's ledger, signed by its own key, held by ``source``."""

    source: str  # "checkpoint file <path>" or "witness <node id>"
    checkpoint: note.Checkpoint
    text: str


@dataclass(frozen=True, slots=True)
class Behind:
    """The ledger does not hold what ``source`` says it signed."""

    source: str
    signed_size: int
    ledger_size: int
    diverged: bool  # it holds that many entries, but their root is another

    def __str__(self) -> str:
        if self.diverged:
            return (f"its root at size {self.signed_size} is not the one {self.source} "
                    f"holds signed (the ledger holds {self.ledger_size} entries)")
        return (f"it holds {self.ledger_size} entries but {self.source} holds its signed "
                f"checkpoint of size {self.signed_size}")


def judge_ledger(ledger_size: int, root_at: Callable[[int], bytes], claims: Sequence[Claim]
                 ) -> list[Behind]:
    """What each claim says of a ledger of ``ledger_size`` leaves (``root_at(n)``: its
    root at size n ≤ ledger_size). Empty: the ledger holds everything it signed."""
    found = []
    for c in claims:
        cp = c.checkpoint
        if cp.size > ledger_size:
            found.append(Behind(c.source, cp.size, ledger_size, diverged=False))
        elif cp.size > 0 and root_at(cp.size) != cp.root:
            found.append(Behind(c.source, cp.size, ledger_size, diverged=True))
    return found


class RolledBackError(LedgerError):
    """The ledger is behind a checkpoint it signed: the node must not serve."""

    def __init__(self, node_id: str, behind: Sequence[Behind]) -> None:
        worst, *others = sorted(behind, key=lambda b: -b.signed_size)
        also = "".join(f"; {b.source} holds size {b.signed_size} too" for b in others)
        super().__init__(
            f"ledger of {node_id} is behind what it signed: {worst}{also}; it serves no "
            f"traffic. Rebuild the lost entries with `bcx ledger recover --config …`")
        self.behind = tuple(behind)


def file_claim(store: LedgerStore, f: CheckpointFile | None = None,
               text: str | None = None) -> Claim | None:
    """The checkpoint of the checkpoint file ``f`` (else the store's own), or of ``text``
    already read from it; LedgerError if the file holds anything else."""
    f = f or store.checkpoint_file
    if f is None:
        return None
    if text is None:
        try:
            text = f.read()
        except OSError as e:
            raise LedgerError(f"cannot read the checkpoint file {f.path}: {e.strerror}") \
                from e
    if text is None:
        return None
    try:
        cp, _, _ = note.open_checkpoint(text, store.verifier, origin=store.origin)
    except (NoteError, UnicodeDecodeError) as e:
        raise LedgerError(f"checkpoint file {f.path} does not hold a checkpoint signed by "
                          f"this ledger's key: {e}") from e
    return Claim(f"checkpoint file {f.path}", cp, text)


def witnesses_to_ask(node: Node) -> list[str]:
    """Who may hold checkpoints of this node: the office, which witnesses every member,
    and the peers in its inbox and outbox (they hold the checkpoints of their receipts).
    The office asks every member."""
    d = node.directory
    if node.me.role is Role.OFFICE:
        return sorted(m.node_id for m in d.members if m.node_id != node.node_id)
    with node.reader.connect() as conn:
        ids = set(conn.scalars(select(outbox.c.recipient).distinct()))
        ids |= set(conn.scalars(select(inbox.c.sender).distinct()))
    ids.add(d.office.node_id)
    return sorted(i for i in ids if i != node.node_id and d.has_member(i))


async def ask_witness(node: Node, peers: Peers, witness: str, *,
                      timeout: float = WITNESS_TIMEOUT) -> Claim | None:
    """The largest checkpoint of this node that ``witness`` holds (None if it holds none);
    it must be signed by this node's own key. grpc.aio.AioRpcError if it cannot be asked."""
    held = await held_checkpoint_of_me(peers, witness, timeout=timeout)
    if not held:
        return None
    store = node.store
    try:
        cp, _, _ = note.open_checkpoint(held, store.verifier, origin=store.origin)
    except NoteError as e:
        # Nothing this node signed: it proves nothing about this ledger.
        log.warning("witness %s answered with a checkpoint this node did not sign: %s",
                    witness, e)
        return None
    return Claim(f"witness {witness}", cp, held)


@dataclass(frozen=True, slots=True)
class Asked:
    claims: list[Claim]
    unreachable: list[str]  # "<witness> (<why>)"


async def witness_claims(node: Node, peers: Peers, *, timeout: float = WITNESS_TIMEOUT
                         ) -> Asked:
    """What the reachable witnesses hold of this node, and who could not be asked."""
    witnesses = await asyncio.to_thread(witnesses_to_ask, node)
    answers = await asyncio.gather(*(ask_witness(node, peers, w, timeout=timeout)
                                     for w in witnesses), return_exceptions=True)
    asked = Asked([], [])
    for w, a in zip(witnesses, answers, strict=True):
        if isinstance(a, grpc.aio.AioRpcError):
            asked.unreachable.append(f"{w} ({a.code().name})")
        elif isinstance(a, ExchangeError):
            asked.unreachable.append(f"{w} ({type(a).__name__})")
        elif isinstance(a, BaseException):
            raise a
        elif a is not None:
            asked.claims.append(a)
    return asked


async def all_claims(node: Node, peers: Peers) -> Asked:
    """The checkpoint file's claim and the witnesses'."""
    local = await asyncio.to_thread(file_claim, node.store)
    asked = await witness_claims(node, peers)
    if local is not None:
        asked.claims.insert(0, local)
    return asked


def behind_file(store: LedgerStore, f: CheckpointFile, text: str | None, ledger_size: int
                ) -> Behind | None:
    """For `bcx ledger verify`: is a ledger of ``ledger_size`` leaves behind the checkpoint
    file's ``text``? (Read before the leaves were counted, so that a running node's newer
    commits cannot make the ledger look behind.)"""
    claim = file_claim(store, f, text)
    found = judge_ledger(ledger_size, store.root, [claim] if claim else [])
    return found[0] if found else None


async def check_at_start(node: Node, peers: Peers) -> None:
    """Raise RolledBackError if the ledger is behind its checkpoint file or a witness."""
    asked = await all_claims(node, peers)
    store = node.store
    behind = await asyncio.to_thread(judge_ledger, store.size, store.root, asked.claims)
    if behind:
        raise RolledBackError(node.node_id, behind)
    # Not a warning: at a federation's cold start most witnesses are not up yet, and
    # those reached later judge a rolled-back checkpoint a fork (Witness.check_peer).
    log.info("ledger of %s holds %d entries, not behind: %s; not reachable: %s",
             node.node_id, store.size, ", ".join(c.source for c in asked.claims) or "nothing "
             "held outside the database", ", ".join(asked.unreachable) or "none")
