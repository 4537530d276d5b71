"""What a witness decides about a peer's checkpoint (docs/architecture.md#witnessing).

Each node checks the checkpoints of the peers it talks to (the office checks every
member): a consistency proof from the last checkpoint it witnessed, then a
tlog-cosignature/v1 that it returns to the peer. Two checkpoints of one origin that
are not consistent are a fork: both are kept as evidence and escalated to the office.
So is a checkpoint smaller than one the witness holds (docs/architecture.md#witnessing, no silent
rollback): a log only grows, and a peer serving a database restored from an older copy
would otherwise look healthy until it grew past its old size. ``judge_checkpoint`` is
that decision, pure; ``exchange.transport.witness.Witness.check_peer`` does the I/O
around it (the peer's answers, the checkpoints held, the evidence).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from exchange.errors import ForkError
from exchange.ledger import note
from exchange.ledger.receipts import ConsistencyCheck, check_consistent


@dataclass(frozen=True, slots=True)
class Held:
    """A checkpoint of a peer this node holds (its ``peer_checkpoints`` row)."""

    id: int
    cp: note.Checkpoint
    text: str
    witnessed: bool


class Verdict(enum.Enum):
    SAME = "same"  # the checkpoint held, again
    EXTENDS = "extends"  # larger, and proven to extend the one held
    FORK = "fork"  # the two cannot both be honest states of one append-only log


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    detail: str = ""


def needs_proof(held: note.Checkpoint, seen: note.Checkpoint) -> bool:
    """Whether judging ``seen`` against ``held`` needs a consistency proof from the peer."""
    return 0 < held.size < seen.size


def judge_checkpoint(held: note.Checkpoint, seen: note.Checkpoint, proof: Sequence[bytes]
                     ) -> Judgement:
    """What the checkpoint a peer presents now (``seen``) says against one of the same log
    this witness already holds (``held``, verified when it was recorded).

    A log only grows: a smaller checkpoint than one the peer signed before is a rollback
    (a database restored from an older copy, a lost tail) and is judged a fork like any
    inconsistency, so that it is kept as evidence and told to the office instead of
    going unnoticed until the log grows past its old size. ``proof`` is the consistency
    proof from ``held.size`` to ``seen.size`` (see ``needs_proof``).
    """
    if held.origin != seen.origin:
        raise ValueError(f"checkpoints of different logs: {held.origin!r} and {seen.origin!r}")
    if seen.size < held.size:
        return Judgement(Verdict.FORK, f"{seen.origin}: rolled back: it presents size "
                                       f"{seen.size} after signing size {held.size}")
    try:
        check_consistent(ConsistencyCheck(held, seen, proof))
    except ForkError as e:
        return Judgement(Verdict.FORK, str(e))
    return Judgement(Verdict.SAME if seen.size == held.size else Verdict.EXTENDS)


def to_compare(held: Sequence[Held]) -> list[Held]:
    """The held checkpoints a new one must be judged against: the largest witnessed one,
    and each recorded since (from receipts) and not yet witnessed, once per size and root,
    largest first (a rollback is then told against the largest size the peer signed)."""
    base = max((h for h in held if h.witnessed), key=lambda h: h.cp.size, default=None)
    chosen: dict[tuple[int, bytes], Held] = {}
    for h in [*([base] if base is not None else []), *(h for h in held if not h.witnessed)]:
        chosen.setdefault((h.cp.size, h.cp.root), h)
    return sorted(chosen.values(), key=lambda h: -h.cp.size)


__all__ = ["Held", "Judgement", "Verdict", "judge_checkpoint", "needs_proof", "to_compare"]
