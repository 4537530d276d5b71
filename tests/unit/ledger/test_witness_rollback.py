"""A node's own side of "no silent rollback": its checkpoint file, the start-up judgement
against what its witnesses hold, and the pure steps of `bcx ledger recover`."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange import migrate
from exchange.config import NodeConfig
from exchange.errors import LedgerError
from exchange.keys import Ed25519Signer
from exchange.ledger import merkle, note
from exchange.ledger.entries import Entry, EntryKind, Receipt
from exchange.ledger.recover import (
    UnrecoverableError,
    found_line,
    leaves_in_receipts,
    plan_recovery,
    ranges,
    unrecoverable,
)
from exchange.ledger.rollback import Behind, Claim, RolledBackError, judge_ledger
from exchange.ledger.store import CheckpointFile, LedgerStore
from exchange.node import checkpoint_file_path
from exchange.storage import engines
from exchange.storage.unitofwork import GroupCommitter

ORIGIN = "bcx.example/office.cn"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
KEY = Ed25519Signer.from_seed(b"\x07" * 32)
VERIFIER = note.Verifier.for_key(ORIGIN, KEY.public_key)

LEAVES = [Entry(EntryKind.RECEIVED, "bureau.fj", NOW, message_id=bytes([i]) * 16,
                message_digest=bytes([i]) * 32, envelope=b"env %d" % i,
                subject="progress_report").encode() for i in range(43)]
TREE = merkle.MemoryTree(LEAVES)
OTHER = merkle.MemoryTree([*LEAVES[:20], *(b"other %d" % i for i in range(20, 43))])


def claim(source: str, tree: merkle.MemoryTree, size: int) -> Claim:
    cp = note.Checkpoint(ORIGIN, size, tree.root(size))
    return Claim(source, cp, note.sign_checkpoint(cp, KEY))


# --- the judgement at start ------------------------------------------------------------------

FILE = "checkpoint file /data/node.db.checkpoint"
# (case, ledger size, claims, expected)
START = [
    ("nothing held outside", 23, [], []),
    ("file and witness at the ledger's size", 43,
     [claim(FILE, TREE, 43), claim("witness bureau.fj", TREE, 43)], []),
    ("witness behind the ledger", 43, [claim("witness bureau.fj", TREE, 30)], []),
    ("torn WAL: behind its file", 23, [claim(FILE, TREE, 43)],
     [Behind(FILE, 43, 23, diverged=False)]),
    ("restored copy: file restored too, a witness holds more", 18,
     [claim(FILE, TREE, 18), claim("witness police.fj", TREE, 38)],
     [Behind("witness police.fj", 38, 18, diverged=False)]),
    ("rewritten: as long, another root", 43, [claim("witness bureau.fj", OTHER, 30)],
     [Behind("witness bureau.fj", 30, 43, diverged=True)]),
]


@pytest.mark.parametrize(("size", "claims", "expected"), [c[1:] for c in START],
                         ids=[c[0] for c in START])
def test_judge_ledger(size: int, claims: list[Claim], expected: list[Behind]) -> None:
    assert judge_ledger(size, TREE.root, claims) == expected


def test_the_refusal_names_the_sizes_and_every_source() -> None:
    error = RolledBackError("office.cn", [Behind(FILE, 43, 23, diverged=False),
                                          Behind("witness bureau.fj", 40, 23, diverged=False)])
    assert str(error) == (
        "ledger of office.cn is behind what it signed: it holds 23 entries but checkpoint "
        "file /data/node.db.checkpoint holds its signed checkpoint of size 43; witness "
        "bureau.fj holds size 40 too; it serves no traffic. Rebuild the lost entries with "
        "`bcx ledger recover --config …`")
    assert isinstance(error, LedgerError)


# --- the checkpoint file -----------------------------------------------------------------------


def test_the_checkpoint_file_is_replaced_whole_and_private(tmp_path: Path) -> None:
    f = CheckpointFile(tmp_path / "node.db.checkpoint")
    assert f.read() is None
    f.write("first\n")
    f.write(claim(FILE, TREE, 43).text)
    assert f.read() == claim(FILE, TREE, 43).text
    assert stat.S_IMODE(os.stat(f.path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.db.checkpoint"]


def test_the_checkpoint_file_is_not_written_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    f = CheckpointFile(tmp_path / "node.db.checkpoint")
    f.path.with_name(f".{f.path.name}.tmp").symlink_to(target)
    with pytest.raises(OSError):
        f.write("checkpoint\n")
    assert target.read_text() == "keep"
    f.path.symlink_to(target)
    with pytest.raises(OSError):
        f.read()


# --- recovery ------------------------------------------------------------------------------------


def receipt_entry(index: int, size: int, *, peer: str = "office.cn",
                  tree: merkle.MemoryTree = TREE, leaf: bytes | None = None) -> Entry:
    """A RECEIPT entry as bureau.fj logs it for a message office.cn received."""
    cp = note.Checkpoint(ORIGIN, size, tree.root(size))
    receipt = Receipt(leaf=LEAVES[index] if leaf is None else leaf, leaf_index=index,
                      checkpoint=note.sign_checkpoint(cp, KEY),
                      inclusion_proof=tuple(tree.inclusion_proof(index, size)))
    return Entry(EntryKind.RECEIPT, peer, NOW, message_id=bytes([index]) * 16,
                 detail=receipt.encode(), subject="progress_report")


def test_receipts_give_back_the_leaves_they_prove_and_nothing_else() -> None:
    other_key = Ed25519Signer.from_seed(b"\x08" * 32)
    forged_cp = note.Checkpoint(ORIGIN, 43, TREE.root(43))
    forged = Receipt(leaf=b"forged", leaf_index=25, checkpoint=note.sign_checkpoint(
        forged_cp, other_key), inclusion_proof=tuple(TREE.inclusion_proof(25, 43)))
    entries = [
        receipt_entry(20, 21), receipt_entry(21, 30), receipt_entry(22, 43),
        receipt_entry(5, 43),  # not lost: not wanted
        receipt_entry(23, 43, peer="police.fj"),  # another node's receipt
        receipt_entry(24, 43, leaf=b"not the leaf"),  # its proof does not hold
        Entry(EntryKind.RECEIPT, "office.cn", NOW, detail=forged.encode()),  # not our key
        Entry(EntryKind.SENT, "office.cn", NOW, envelope=b"x"),
    ]
    found = leaves_in_receipts(entries, me="office.cn", verifier=VERIFIER,
                               wanted=range(20, 43))
    assert found.leaves == {20: LEAVES[20], 21: LEAVES[21], 22: LEAVES[22]}
    assert found.refused == 2


def test_a_plan_lists_every_index_no_peer_holds() -> None:
    target = note.Checkpoint(ORIGIN, 43, TREE.root(43))
    found = {i: LEAVES[i] for i in range(23, 43) if i not in (30, 31, 32, 40)}
    plan = plan_recovery(23, target, found)
    assert plan.missing == (30, 31, 32, 40)
    assert plan.leaves == ()
    assert ranges(plan.missing) == "30-32, 40"
    complete = plan_recovery(23, target, {i: LEAVES[i] for i in range(23, 43)})
    assert complete.missing == ()
    assert complete.leaves == tuple(LEAVES[23:43])
    rebuilt = merkle.MemoryTree([*LEAVES[:23], *complete.leaves])
    assert rebuilt.root() == target.root


def test_an_unrecoverable_plan_names_what_is_missing() -> None:
    target = note.Checkpoint(ORIGIN, 43, TREE.root(43))
    plan = plan_recovery(23, target, {i: LEAVES[i] for i in range(23, 43) if i < 30})
    error = unrecoverable("office.cn", plan)
    assert isinstance(error, UnrecoverableError)
    assert error.missing == tuple(range(30, 43))
    assert str(error) == (
        "ledger of office.cn cannot be rebuilt: 13 of the 20 lost entries are held by no "
        "peer reached, indexes 30-42; nothing was written and the node still refuses to serve")


@pytest.mark.parametrize(("new", "refused", "found", "wanted", "line"), [
    (7, 0, 7, 20, "  police.fj: 7 lost entries found in its receipts (7/20)"),
    (0, 2, 7, 20, "  police.fj: 0 lost entries found in its receipts, 2 receipts refused "
                  "(do not prove) (7/20)"),
    (13, 0, 20, 20, "  police.fj: 13 lost entries found in its receipts (20/20)"),
])
def test_found_line(new: int, refused: int, found: int, wanted: int, line: str) -> None:
    assert found_line("police.fj", new=new, refused=refused, found=found,
                      wanted=wanted) == line


@given(st.lists(st.integers(0, 200), unique=True).map(sorted))
def test_ranges_lists_every_index_once_in_order(indexes: list[int]) -> None:
    listed: list[int] = []
    for part in filter(None, ranges(indexes).split(", ")):
        first, _, last = part.partition("-")
        listed += range(int(first), int(last or first) + 1)
    assert listed == indexes


# --- where the file lives ------------------------------------------------------------------------


def config_for(url: str, path: Path | None) -> NodeConfig:
    return NodeConfig(node_id="office.cn", credentials_dir=Path("keys"), ca_cert=Path("ca.pem"),
                      database_url=url, listen="127.0.0.1:0", directory_file=Path("d.bin"),
                      path=path)


@pytest.mark.parametrize(("url", "path", "expected"), [
    ("sqlite:////srv/bcx/office/node.db", Path("/etc/bcx/node.toml"),
     Path("/srv/bcx/office/node.db.checkpoint")),
    ("sqlite://", None, None),
    ("sqlite:///:memory:", Path("/etc/bcx/node.toml"), None),
    ("postgresql+psycopg://bcx@db.internal/office", Path("/etc/bcx/node.toml"),
     Path("/etc/bcx/office.cn-32775a2b0003188b.checkpoint")),
    ("postgresql+psycopg://bcx:secret@db.internal/office", Path("/etc/bcx/node.toml"),
     Path("/etc/bcx/office.cn-32775a2b0003188b.checkpoint")),
    ("postgresql+psycopg://bcx@db.internal/office_test", Path("/etc/bcx/node.toml"),
     Path("/etc/bcx/office.cn-b2038eeb000c5384.checkpoint")),
    ("postgresql+psycopg://bcx@db.internal/office", None, None),
], ids=["sqlite: beside the database", "sqlite in memory", "sqlite in memory, named",
        "postgresql: beside node.toml", "postgresql: the password is not part of it",
        "postgresql: another database, another file", "postgresql without a file"])
def test_where_the_checkpoint_file_is(url: str, path: Path | None,
                                      expected: Path | None) -> None:
    assert checkpoint_file_path(config_for(url, path)) == expected


def test_a_commit_is_reported_only_once_the_checkpoint_file_holds_it(tmp_path: Path) -> None:
    engine = engines.create_engine_for(engines.sqlite_url(tmp_path / "ledger.db"))
    migrate.upgrade(engine)
    f = CheckpointFile(tmp_path / "ledger.db.checkpoint")
    store = LedgerStore(engine, origin=ORIGIN, signer=KEY, checkpoint_file=f)
    writer = GroupCommitter(store)
    writer.start()
    entry = Entry(EntryKind.ACTION, "", NOW, subject="tick")
    try:
        futures = [writer.submit(lambda txn: txn.append(entry)) for _ in range(200)]
        for fut in futures:
            committed = fut.result(timeout=60)
            assert committed.checkpoint is not None
            text = f.read()
            assert text is not None
            held, _, _ = note.open_checkpoint(text, VERIFIER, origin=ORIGIN)
            assert held.size >= committed.checkpoint.size
        # What peers are shown is what the file holds.
        assert store.latest_cosigned_checkpoint() == f.read()
        assert held.size == store.size == 200
    finally:
        writer.stop()
        engine.dispose()
