"""What a witness makes of a peer's checkpoint against one it holds (pure).

Pins the finding that a node restored from an older copy (38 → 18 entries) kept its
witnesses' status "ok": a smaller checkpoint than one held is a fork, like any
inconsistency, and is judged so at once, not once the log grows past its old size.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from exchange.ledger import merkle, note, witness
from exchange.ledger.witness import Held, Judgement, Verdict, judge_checkpoint, to_compare

ORIGIN = "bcx.example/bureau.fj"

HONEST = merkle.MemoryTree(f"entry {i}".encode() for i in range(40))
# The same log rewritten from entry 10 on: signed by the same key, another history.
REWRITTEN = merkle.MemoryTree([*(f"entry {i}".encode() for i in range(10)),
                               *(f"forged {i}".encode() for i in range(10, 40))])


def cp(tree: merkle.MemoryTree, size: int, origin: str = ORIGIN) -> note.Checkpoint:
    return note.Checkpoint(origin, size, tree.root(size))


def proof(tree: merkle.MemoryTree, old: int, new: int) -> list[bytes]:
    return tree.consistency_proof(old, new) if 0 < old < new else []


# (case, held, seen, proof from the tree the peer serves, verdict, detail pattern)
CASES = [
    ("same size same root", cp(HONEST, 38), cp(HONEST, 38), [], Verdict.SAME, "^$"),
    ("larger and consistent", cp(HONEST, 18), cp(HONEST, 38), proof(HONEST, 18, 38),
     Verdict.EXTENDS, "^$"),
    ("first entries, then more", cp(HONEST, 0), cp(HONEST, 5), [], Verdict.EXTENDS, "^$"),
    ("larger and inconsistent", cp(HONEST, 18), cp(REWRITTEN, 38),
     proof(REWRITTEN, 18, 38), Verdict.FORK,
     f"^{ORIGIN}: checkpoint of size 38 is not consistent with size 18"),
    ("larger with a proof that does not match", cp(HONEST, 18), cp(HONEST, 38),
     proof(HONEST, 17, 38), Verdict.FORK, "not consistent with size 18"),
    ("smaller: restored from an older copy", cp(HONEST, 38), cp(HONEST, 18), [],
     Verdict.FORK, f"^{ORIGIN}: rolled back: it presents size 18 after signing size 38$"),
    ("smaller and rewritten", cp(HONEST, 38), cp(REWRITTEN, 18), [], Verdict.FORK,
     "rolled back: it presents size 18 after signing size 38"),
    ("smaller: empty again", cp(HONEST, 38), cp(HONEST, 0), [], Verdict.FORK,
     "rolled back: it presents size 0 after signing size 38"),
    ("same size different root", cp(HONEST, 38), cp(REWRITTEN, 38), [], Verdict.FORK,
     f"^{ORIGIN}: two different roots signed for size 38$"),
]


@pytest.mark.parametrize(("held", "seen", "given", "verdict", "detail"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_judge_checkpoint(held: note.Checkpoint, seen: note.Checkpoint, given: list[bytes],
                          verdict: Verdict, detail: str) -> None:
    judged = judge_checkpoint(held, seen, given)
    assert judged.verdict is verdict
    assert judged == Judgement(verdict, judged.detail)
    assert re.search(detail, judged.detail), judged.detail


def test_checkpoints_of_two_logs_are_not_judged_against_each_other() -> None:
    with pytest.raises(ValueError, match="checkpoints of different logs"):
        judge_checkpoint(cp(HONEST, 3), cp(HONEST, 3, "bcx.example/police.fj"), [])


def held(row: int, tree: merkle.MemoryTree, size: int, witnessed: bool) -> Held:
    return Held(row, cp(tree, size), f"note {row}", witnessed)


def test_a_new_checkpoint_is_judged_against_the_largest_witnessed_and_every_one_since() -> None:
    rows = [held(1, HONEST, 5, True), held(2, HONEST, 18, True),
            # from receipts, since the last round: one of them larger than the witnessed
            held(3, HONEST, 38, False), held(4, HONEST, 20, False),
            held(5, HONEST, 20, False)]
    assert [h.id for h in to_compare(rows)] == [3, 4, 2]
    assert to_compare([]) == []


def test_a_restored_copy_is_a_fork_against_a_checkpoint_known_only_from_a_receipt() -> None:
    # The witness never witnessed size 38, but a receipt showed it: the peer signed it.
    rows = [held(1, HONEST, 18, True), held(2, HONEST, 38, False)]
    verdicts = [judge_checkpoint(h.cp, cp(HONEST, 18), []).verdict for h in to_compare(rows)]
    assert verdicts == [Verdict.FORK, Verdict.SAME]


def test_the_judgement_imports_no_network_and_no_database() -> None:
    # The calls to peers and the evidence kept live in exchange/transport/witness.py.
    tree = ast.parse(Path(witness.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    banned = ("grpc", "google.protobuf", "exchange.wire", "sqlalchemy", "exchange.transport",
              "exchange.schema")
    assert not {m for m in imported if m.startswith(banned)}
