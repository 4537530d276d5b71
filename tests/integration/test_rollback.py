"""No silent rollback, with real node processes (docs/architecture.md#witnessing).

Two ways a node's ledger goes back without anything failing to verify, each found on a
running federation:

- its database restored from an older copy (38 → 18 entries): it verified clean, its
  witnesses kept saying "ok", and nothing was noticed until it grew past its old size;
- ``kill -9`` and 16 flipped bytes in one WAL frame: SQLite dropped that frame and every
  later one, and the node restarted with 20 of 30 receipted messages gone (43 → 23
  entries), then applied a re-delivery again as new.

Here such a node refuses to start and says why (its checkpoint file and its witnesses
hold checkpoints it no longer covers); a witness that meets it serving judges it a fork,
keeps both checkpoints and tells the office; and `bcx ledger recover` rebuilds the tail
from the RECEIVED leaves the senders' receipts carry, after which a re-delivery gets its
first receipt back instead of being applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from procnodes import NodeProcess, start_all, wait_until
from sqlalchemy import func, select
from test_delivery_crash import (
    BUREAU,
    OFFICE,
    POLICE,
    Cluster,
    check_delivered_once,
    drained,
    new_cluster,
)

from exchange import identity, messages, pki
from exchange.config import NodeConfig
from exchange.identity import SignedDirectory
from exchange.ledger.entries import Entry, EntryKind, Receipt
from exchange.ledger.recover import ranges
from exchange.schema import fork_evidence, outbox, peer_checkpoints
from exchange.transport.client import channel_to
from exchange.transport.server import TLSMaterial
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc
from nodes.cli.admin_client import AdminClient

pytestmark = [pytest.mark.network, pytest.mark.slow]

BCX = Path(sys.executable).with_name("bcx")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = new_cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


def database(c: Cluster, node_id: str) -> Path:
    url = NodeConfig.from_file(c.fed.config(node_id)).database_url
    return Path(url.removeprefix("sqlite:///"))


def ledger_size(c: Cluster, node_id: str) -> int:
    """Entries in the node's ledger, read with a fresh connection closed at once."""
    with contextlib.closing(sqlite3.connect(database(c, node_id))) as conn:
        return int(conn.execute("SELECT count(*) FROM ledger_leaves").fetchone()[0])


def refuses_to_start(p: NodeProcess) -> str:
    """Start ``p``; it must exit non-zero without listening. Its last log line."""
    p.start(wait=False)

    def exited_or_listening() -> bool:
        if p.returncode is not None:
            return True
        with socket.socket() as s:
            s.settimeout(1.0)
            return s.connect_ex(("127.0.0.1", p.port)) == 0
    wait_until(exited_or_listening, timeout=120, interval=0.1,
               what=f"{p.node_id} to exit or listen")
    assert p.returncode not in (None, 0), \
        f"{p.node_id} started on a rolled-back ledger:\n{p.log_tail()}"
    return p.log_tail(1)


def bcx_recover(c: Cluster, node_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BCX), "ledger", "recover", "--config",
                           str(c.fed.config(node_id))],
                          capture_output=True, text=True, timeout=300, check=False)


def redeliver(c: Cluster, sender: str, recipient: str, raw: bytes) -> Receipt:
    """Deliver ``raw`` again, as ``sender`` (its own keys, real mTLS)."""
    cfg = NodeConfig.from_file(c.fed.config(sender))
    creds = pki.load_node_credentials(cfg.credentials_dir,
                                      ca=pki.load_certificate(cfg.ca_cert),
                                      now=datetime.now(UTC))
    tls = TLSMaterial(creds.tls_cert_pem, creds.tls_key_pem, cfg.ca_cert.read_bytes())
    signed = SignedDirectory.from_bytes(c.fed.directory_file.read_bytes())
    member = identity.verify_directory(signed, ca=pki.load_certificate(cfg.ca_cert),
                                       office_id=OFFICE, now=datetime.now(UTC)
                                       ).member(recipient)

    async def call() -> Receipt:
        channel = channel_to(member, tls, max_message_bytes=8 * 1024 * 1024)
        try:
            stub = service_pb2_grpc.ExchangeStub(channel)  # type: ignore[no-untyped-call]
            r = await stub.Deliver(service_pb2.DeliverRequest(envelope=raw), timeout=30)
        finally:
            await channel.close()
        return Receipt.from_pb(r.receipt)
    return asyncio.run(call())


def progress_reports(c: Cluster, count: int) -> list[bytes]:
    """Have the bureau send the office ``count`` ProgressReports, one transaction each
    (`progress`, an operator command), each delivered and receipted before the next."""
    sent = []
    with AdminClient(NodeConfig.from_file(c.fed.config(BUREAU))) as admin:
        for _ in range(count):
            sent.append(bytes.fromhex(admin.call("progress")["progress_id"]))
            drained(c, BUREAU, OFFICE)
    return sent


def office_progress_rows(c: Cluster) -> list[bytes]:
    with contextlib.closing(sqlite3.connect(database(c, OFFICE))) as conn:
        return [bytes(r[0]) for r in conn.execute("SELECT report_id FROM wf_progress")]


# --- kill -9 and a torn WAL frame ----------------------------------------------------------


def wal_position(db: Path) -> tuple[int, int, bytes]:
    """(frames in the WAL, frame size, salts) of ``db``'s write-ahead log."""
    wal = Path(f"{db}-wal").read_bytes()
    page_size = struct.unpack(">I", wal[8:12])[0]
    frame = 24 + page_size
    return (len(wal) - 32) // frame, frame, wal[16:24]


def test_a_torn_wal_frame_after_kill_9_refuses_to_serve_and_recover_rebuilds_it(
        cluster: Cluster) -> None:
    c = cluster
    office, _ = start_all(c.node(OFFICE), c.node(BUREAU))
    sent = progress_reports(c, 10)
    db = database(c, OFFICE)
    frames_before, frame, salts = wal_position(db)
    sent += progress_reports(c, 20)
    receipts = c.db(BUREAU).entries(EntryKind.RECEIPT, OFFICE)
    assert len(receipts) == 30
    signed_size = max(Receipt.decode(e.detail).leaf_index for _, e in receipts) + 1
    office.kill()

    frames_after, _, salts_after = wal_position(db)
    assert salts_after == salts and frames_after > frames_before, \
        "the WAL was checkpointed meanwhile: the torn frame would not lose the tail"
    # 16 bytes flipped in the page of the first frame written after the first ten.
    offset = 32 + frames_before * frame + 24 + 512
    with open(f"{db}-wal", "r+b") as f:
        f.seek(offset)
        data = f.read(16)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))
    Path(f"{db}-shm").unlink(missing_ok=True)  # lost with the power, as after a crash

    line = refuses_to_start(office)
    kept = ledger_size(c, OFFICE)
    assert kept < signed_size, "no entry was lost: nothing tested"
    assert len(office_progress_rows(c)) < 30
    assert (f"bcx: ledger of office.cn is behind what it signed: it holds {kept} "
            f"entries but checkpoint file {db}.checkpoint holds its signed checkpoint of "
            f"size {signed_size}") in line, line
    assert "serves no traffic" in line and "bcx ledger recover" in line, line
    # It used to verify clean: every checkpoint it holds matches its leaves.
    verified = subprocess.run([str(BCX), "ledger", "verify", "--config",
                               str(c.fed.config(OFFICE))],
                              capture_output=True, text=True, timeout=120, check=False)
    assert verified.returncode == 3, verified.stdout
    assert (f"ledger of office.cn is intact but behind what it signed: it holds {kept} "
            f"entries but checkpoint file {db}.checkpoint holds its signed checkpoint of "
            f"size {signed_size}; rebuild the lost entries") in verified.stderr

    done = bcx_recover(c, OFFICE)
    assert done.returncode == 0, done.stderr
    assert f"recovered: {kept} -> {signed_size} entries" in done.stdout, done.stdout
    assert f"{signed_size - kept} received messages applied again" in done.stdout
    assert "bureau.fj:" in done.stderr and "re-appended" in done.stderr  # progress shown
    again_done = bcx_recover(c, OFFICE)
    assert again_done.returncode == 0, again_done.stderr
    assert f"holds {signed_size} entries" in again_done.stdout
    assert "nothing to recover" in again_done.stdout
    office.start()
    check_delivered_once(c, BUREAU, OFFICE, sent)
    assert sorted(office_progress_rows(c)) == sorted(sent)

    # A lost and rebuilt message delivered again is a duplicate: its first receipt back,
    # nothing applied twice.
    with c.db(BUREAU).reader.connect() as conn:
        raw = bytes(conn.scalar(select(outbox.c.envelope)
                                .where(outbox.c.message_id == sent[-1])))
    (first,) = [Receipt.decode(e.detail) for _, e in receipts if e.message_id == sent[-1]]
    again = redeliver(c, BUREAU, OFFICE, raw)
    assert (again.leaf_index, again.leaf) == (first.leaf_index, first.leaf)
    assert sorted(office_progress_rows(c)) == sorted(sent)
    assert c.db(OFFICE).inbox_count(BUREAU) == 30
    assert ledger_size(c, OFFICE) == signed_size


# --- a database restored from an older copy ------------------------------------------------


def backup(db: Path, to: Path) -> None:
    """An operator's consistent copy of the whole data directory, taken while it runs."""
    to.mkdir()
    with contextlib.closing(sqlite3.connect(db)) as src, \
            contextlib.closing(sqlite3.connect(to / db.name)) as dst:
        src.backup(dst)
    (to / db.name).chmod(0o600)  # as private as the node keeps it (a node refuses less)
    shutil.copy2(f"{db}.checkpoint", to / f"{db.name}.checkpoint")


def restore(db: Path, copy: Path, *, checkpoint_file: bool = True) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy2(copy / db.name, db)
    if checkpoint_file:
        shutil.copy2(copy / f"{db.name}.checkpoint", f"{db}.checkpoint")


def settled(c: Cluster) -> None:
    """Police's reports delivered, and the bureau's acknowledgements (Circulars) answered:
    this police node queues bare NumberReports with no report of its own behind them, so
    it refuses their feedback (rule own-report) — answered for good all the same."""
    drained(c, POLICE, BUREAU)
    db = c.db(BUREAU)
    wait_until(lambda: db.unsettled(POLICE) == 0, timeout=90.0,
               what=f"bureau.fj's outbox to police.fj to settle ({db.unsettled(POLICE)} left)")


def test_a_database_restored_from_an_older_copy_is_a_fork_to_its_witness_and_refuses_to_start(
        cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    bureau, police = start_all(c.node(BUREAU), c.node(POLICE, sender=True))
    police.send(BUREAU, 6)
    settled(c)
    db = database(c, BUREAU)
    backup(db, tmp_path / "backup")
    old_size = ledger_size(c, BUREAU)
    police.send(BUREAU, 7, first_number=6)
    settled(c)
    bureau.terminate()
    police.terminate()
    # What police holds of the bureau's ledger: the checkpoint of the last receipt it got.
    with c.db(POLICE).reader.connect() as conn:
        signed_size = int(conn.scalar(select(func.max(peer_checkpoints.c.size)).where(
            peer_checkpoints.c.origin.endswith("/" + BUREAU))))
    tail = [(i, e.kind) for i, e in _all_entries(c, BUREAU) if old_size <= i < signed_size]
    assert len(tail) == signed_size - old_size
    c.dbs.pop(BUREAU).close()  # no reader of ours may hold the files being replaced
    restore(db, tmp_path / "backup")
    assert ledger_size(c, BUREAU) == old_size

    # Started while its witnesses are down, with its data directory restored whole
    # (checkpoint file included), the node cannot tell: it serves the old ledger.
    bureau.start()
    # Its witness can: a checkpoint smaller than one it holds is a fork, judged at once.
    police.start(sender=False)
    (fork,) = wait_until(lambda: _forks(c), what="police to judge bureau's ledger a fork")
    assert fork.origin.endswith("/" + BUREAU)
    assert fork.detail.endswith(f"rolled back: it presents size {old_size} after signing "
                                f"size {signed_size}")
    assert {_size(fork.first_note), _size(fork.second_note)} == {signed_size, old_size}
    assert police.log_count("ledger fork of bureau.fj") == 1
    # The office is told, with both signed checkpoints as evidence.
    office = c.node(OFFICE).start()
    (escalation,) = wait_until(lambda: _escalations(c.db(OFFICE).entries(EntryKind.RECEIVED)),
                               what="the office to receive the fork escalation")
    assert escalation.escalation_kind is messages.EscalationKind.LEDGER_FORK
    assert escalation.subject_node == BUREAU
    assert {_size(e.decode()) for e in escalation.evidence} == {signed_size, old_size}

    # Restarted with its witnesses up, the node itself refuses to serve, and says why.
    bureau.terminate()
    line = refuses_to_start(bureau)
    assert (f"ledger of bureau.fj is behind what it signed: it holds {old_size} entries but "
            f"witness police.fj holds its signed checkpoint of size {signed_size}") in line, \
        line

    # Police's receipts carry the bureau's RECEIVED leaves, but not what the bureau sent
    # (its acknowledgements) or logged of police's receipts: recovery names those
    # indexes, writes nothing, and the node still refuses.
    missing = [i for i, kind in tail if kind is not EntryKind.RECEIVED]
    assert missing and len(tail) - len(missing) == 7
    failed = bcx_recover(c, BUREAU)
    assert failed.returncode == 1, failed.stderr
    (error,) = [ln for ln in failed.stderr.splitlines() if ln.startswith("bcx: ")]
    assert error == (
        f"bcx: ledger of bureau.fj cannot be rebuilt: {len(missing)} of "
        f"the {len(tail)} lost entries are held by no peer reached, indexes "
        f"{ranges(missing)}; nothing was written and the node still refuses to serve")
    assert "police.fj: 7 lost entries found in its receipts" in failed.stderr
    assert ledger_size(c, BUREAU) == old_size
    refuses_to_start(bureau)
    assert office.alive


def _forks(c: Cluster) -> list[object]:
    with c.db(POLICE).reader.connect() as conn:
        return list(conn.execute(select(fork_evidence)).all())


def _size(note_text: str) -> int:
    return int(note_text.splitlines()[1])


def _escalations(received: list[tuple[int, Entry]]) -> list[messages.Escalation]:
    from exchange import envelope
    out = []
    for _, e in received:
        body = messages.decode_message(envelope.parse(e.envelope).payload).body
        # Only fork escalations: the bureau also escalates the feedback this bare sender
        # refused for good (rule own-report), which this test is not about.
        if isinstance(body, messages.Escalation) and \
                body.escalation_kind is messages.EscalationKind.LEDGER_FORK:
            out.append(body)
    return out


def _all_entries(c: Cluster, node_id: str) -> list[tuple[int, Entry]]:
    with contextlib.closing(sqlite3.connect(database(c, node_id))) as conn:
        return [(int(i), Entry.decode(bytes(leaf))) for i, leaf in
                conn.execute("SELECT idx, leaf FROM ledger_leaves ORDER BY idx")]
