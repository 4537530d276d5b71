"""Durable delivery with real node processes and real signals
(docs/architecture.md#sending-and-delivery).

Every node here is an operating-system process started with `bcx node run` (or
tests/sendnode.py, the same node taking `send` commands on stdin), on loopback with real
mTLS and its own database. Nodes are killed with SIGKILL or stopped with SIGTERM and
started again on the same configuration and port. The test reads each node's database
from outside, as an operator would, and judges by the ledgers:

- the sender's outbox is empty, and it logged SENT and RECEIPT once per message;
- the receiver logged RECEIVED once per message (its inbox is unique per sender and id),
  in the sender's order;
- every receipt the sender holds names a leaf the receiver's ledger really holds;
- both ledgers verify (tree recomputed, every signed checkpoint checked).

Nothing waits by sleeping: each step polls for the state it needs, with generous deadlines.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fedharness import make_federation
from pgserver import PostgresServer
from procnodes import (
    NodeDB,
    NodeProcess,
    all_numbers,
    received_reports,
    report_number,
    start_all,
    tune,
    wait_until,
)

from exchange.identity import Role
from exchange.ledger.entries import EntryKind, Receipt
from nodes.federation import Federation

OFFICE, POLICE, BUREAU, COMMERCE = "office.cn", "police.fj", "bureau.fj", "commerce.fj"
SPECS = (
    (OFFICE, Role.OFFICE, "cn"),
    (POLICE, Role.POLICE, "fj"),
    (BUREAU, Role.BUREAU, "fj"),
    (COMMERCE, Role.COMMERCE, "fj"),
)

pytestmark = [pytest.mark.network, pytest.mark.slow]

# Short backoff so a peer that comes back is retried within a second; witnessing off
# (one round at start), so the ledgers hold only the traffic under test.
TEST_KNOBS = {
    "delivery": {"backoff_initial_seconds": 0.1, "backoff_max_seconds": 1.0},
    "deadlines": {"witness_interval_seconds": 3600.0},
}


class Cluster:
    """The federation's node processes and read access to their databases."""

    def __init__(self, fed: Federation, logs: Path) -> None:
        self.fed = fed
        self.logs = logs
        self.procs: dict[str, NodeProcess] = {}
        self.dbs: dict[str, NodeDB] = {}

    def node(self, node_id: str, *, sender: bool = False) -> NodeProcess:
        if node_id not in self.procs:
            self.procs[node_id] = NodeProcess(self.fed.config(node_id),
                                              self.logs / f"{node_id}.log", sender=sender)
        return self.procs[node_id]

    def db(self, node_id: str) -> NodeDB:
        if node_id not in self.dbs:
            self.dbs[node_id] = NodeDB(self.fed.config(node_id))
        return self.dbs[node_id]

    def close(self) -> None:
        for p in self.procs.values():
            p.stop_quietly()
        for d in self.dbs.values():
            d.close()
        for node_id, p in self.procs.items():
            print(f"--- {node_id} log tail ---\n{p.log_tail(25)}")


def new_cluster(tmp_path: Path, database_urls: dict[str, str] | None = None,
                knobs: dict[str, dict[str, dict[str, float | int]]] | None = None) -> Cluster:
    """The federation of SPECS with TEST_KNOBS, plus ``knobs[node_id][table]`` per node."""
    fed = make_federation(tmp_path / "fed", SPECS, database_urls=database_urls)
    for node_id, _, _ in SPECS:
        extra = (knobs or {}).get(node_id, {})
        tables = {t: {**TEST_KNOBS.get(t, {}), **extra.get(t, {})}
                  for t in {*TEST_KNOBS, *extra}}
        tune(fed.config(node_id), **tables)
    return Cluster(fed, tmp_path)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = new_cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


# --- what every test checks -----------------------------------------------------------


def drained(c: Cluster, sender: str, recipient: str, timeout: float = 90.0) -> None:
    db = c.db(sender)
    wait_until(lambda: db.undelivered(recipient) == 0, timeout=timeout,
               what=f"{sender}'s outbox to {recipient} to drain "
                    f"({db.undelivered(recipient)} left)")


def check_delivered_once(c: Cluster, sender: str, recipient: str, sent: list[bytes]) -> None:
    """Every message in ``sent`` was delivered exactly once, in order, with a receipt that
    names a leaf the receiver holds; both ledgers verify."""
    s, r = c.db(sender), c.db(recipient)
    rows = s.outbox(recipient)
    assert [bytes(row.message_id) for row in rows] == sent
    assert all(row.delivered_at is not None for row in rows)

    sent_log = [e.message_id for _, e in s.entries(EntryKind.SENT, peer=recipient)]
    assert sent_log == sent
    receipts = {e.message_id: e for _, e in s.entries(EntryKind.RECEIPT, peer=recipient)}
    assert s.count(EntryKind.RECEIPT, peer=recipient) == len(sent) == len(receipts)
    assert set(receipts) == set(sent)

    received = r.entries(EntryKind.RECEIVED, peer=sender)
    # Once each, and in the order the sender queued them.
    assert [e.message_id for _, e in received] == sent
    assert r.inbox_count(sender) == len(sent)

    # The receiver cannot deny any receipt: each names one of its leaves, byte for byte.
    held = r.leaves(EntryKind.RECEIVED)
    for mid, entry in receipts.items():
        receipt = Receipt.decode(entry.detail)
        assert held.get(receipt.leaf_index) == receipt.leaf, mid.hex()

    for db in (s, r):
        report = db.verify()
        assert report.entries > 0


def check_numbers_processed_once(c: Cluster, sender: str, recipient: str,
                                 numbers: list[str]) -> None:
    """Each number reported reached the receiver in exactly one logged message."""
    got = all_numbers(received_reports(c.db(recipient), sender))
    assert len(got) == len(set(got)), "a number was logged in two messages"
    assert sorted(got) == sorted(numbers)
    # The bureau's workflow judged each number exactly once (one line per report and
    # number, none lost, none twice), in the same transactions that logged the reports.
    from sqlalchemy import select

    from nodes.models import report_numbers
    with c.db(recipient).reader.connect() as conn:
        judged = list(conn.scalars(select(report_numbers.c.number)))
    assert sorted(judged) == sorted(numbers)


def received_count(c: Cluster, node_id: str, sender: str) -> int:
    return c.db(node_id).inbox_count(sender)


# --- 1. a peer that is down for a while -----------------------------------------------


def test_queued_messages_reach_a_peer_that_was_down_once_in_order_with_receipts(
        cluster: Cluster) -> None:
    c = cluster
    bureau, police = start_all(c.node(BUREAU), c.node(POLICE, sender=True))
    sent = police.send(BUREAU, 5)
    drained(c, POLICE, BUREAU)

    bureau.kill()
    # Unary deliveries (below the bulk threshold) and a bulk backlog, queued while down.
    sent += police.send(BUREAU, 3, first_number=5)
    sent += police.send(BUREAU, 40, first_number=8)
    db = c.db(POLICE)
    # Down "for a while": the head of the queue has failed and been retried a few times.
    wait_until(lambda: (rows := [r for r in db.outbox(BUREAU) if r.delivered_at is None])
               and rows[0].attempts >= 3, what="police to retry the unreachable bureau")
    assert c.db(BUREAU).inbox_count(POLICE) == 5

    bureau.start()
    drained(c, POLICE, BUREAU)
    check_delivered_once(c, POLICE, BUREAU, sent)
    check_numbers_processed_once(c, POLICE, BUREAU, [report_number(i) for i in range(48)])


# --- 2. the receiver killed in the middle of a bulk report ------------------------------

BULK_NUMBERS = 10_000
BULK_PER_MESSAGE = 10  # 1,000 messages: several DeliverStream calls of stream_window each


def test_receiver_killed_mid_bulk_report_processes_every_number_once(cluster: Cluster) -> None:
    c = cluster
    bureau, police = start_all(c.node(BUREAU), c.node(POLICE, sender=True))
    sent = police.send(BUREAU, BULK_NUMBERS // BULK_PER_MESSAGE,
                       numbers_per_message=BULK_PER_MESSAGE)

    wait_until(lambda: received_count(c, BUREAU, POLICE) >= 100, interval=0.01,
               what="the bureau to log the first hundred messages")
    bureau.kill()
    at_kill = received_count(c, BUREAU, POLICE)
    assert at_kill < len(sent), "the bulk report finished before the kill: nothing tested"

    bureau.start()
    drained(c, POLICE, BUREAU)
    check_delivered_once(c, POLICE, BUREAU, sent)
    check_numbers_processed_once(c, POLICE, BUREAU,
                                 [report_number(i) for i in range(BULK_NUMBERS)])
    # The counts on both sides agree.
    p, b = c.db(POLICE), c.db(BUREAU)
    assert p.count(EntryKind.SENT, peer=BUREAU) == b.count(EntryKind.RECEIVED, peer=POLICE) \
        == p.count(EntryKind.RECEIPT, peer=BUREAU) == len(sent)


# --- 3. the sender killed between signing and delivery ----------------------------------


def test_sender_killed_after_signing_delivers_after_restart(cluster: Cluster) -> None:
    c = cluster
    police = c.node(POLICE, sender=True).start()
    # The bureau is not up: what police signed and logged cannot have been delivered.
    sent = police.send(BUREAU, 1) + police.send(BUREAU, 20, first_number=1)
    police.kill()
    p = c.db(POLICE)
    assert [e.message_id for _, e in p.entries(EntryKind.SENT, peer=BUREAU)] == sent
    assert p.undelivered(BUREAU) == len(sent)
    assert p.count(EntryKind.RECEIPT) == 0

    # Police restarts as a plain `bcx node run`: its outbox resumes on its own.
    police.sender = False
    start_all(c.node(BUREAU), police)
    drained(c, POLICE, BUREAU)

    # Killed again, this time while its deliveries are under way; restarted, it must
    # neither lose nor repeat anything (a receipt it never logged is fetched again, and
    # the bureau answers a retried message with its first receipt).
    police.kill()
    police.start(sender=True)
    sent += police.send(BUREAU, 400, first_number=21)
    wait_until(lambda: p.count(EntryKind.RECEIPT, peer=BUREAU) > len(sent) - 400,
               interval=0.01, what="the first receipts of the second batch")
    police.kill()
    assert p.undelivered(BUREAU) > 0, "the batch was delivered before the kill: nothing tested"
    police.start(sender=False)
    drained(c, POLICE, BUREAU)
    check_delivered_once(c, POLICE, BUREAU, sent)
    check_numbers_processed_once(c, POLICE, BUREAU, [report_number(i) for i in range(421)])


# --- 4. the receiver's database unavailable ---------------------------------------------


def deliver_through_an_outage(c: Cluster, take_down: Callable[[], None],
                              bring_back: Callable[[], None]) -> None:
    """Police delivers to the bureau before, during and after an outage of the bureau's
    database: the bureau refuses cleanly (UNAVAILABLE) and stays up, police retries, and
    once the database is back everything is delivered once, in order."""
    bureau, police = start_all(c.node(BUREAU), c.node(POLICE, sender=True))
    sent = police.send(BUREAU, 2)
    drained(c, POLICE, BUREAU)

    take_down()
    sent += police.send(BUREAU, 3, first_number=2) + police.send(BUREAU, 30, first_number=5)
    p = c.db(POLICE)
    wait_until(lambda: any("UNAVAILABLE" in (r.last_error or "") and "database" in
                           (r.last_error or "") for r in p.outbox(BUREAU)),
               what="police to see the bureau refuse with its database unavailable")
    assert bureau.alive
    assert p.undelivered(BUREAU) == 33
    bring_back()

    drained(c, POLICE, BUREAU)
    assert bureau.alive
    check_delivered_once(c, POLICE, BUREAU, sent)
    check_numbers_processed_once(c, POLICE, BUREAU, [report_number(i) for i in range(35)])


def test_receiver_with_a_locked_sqlite_database_refuses_and_loses_nothing(
        cluster: Cluster) -> None:
    # Another process holds the write lock (a backup tool, an operator's sqlite3 shell);
    # the bureau's writer waits out its busy timeout and then refuses.
    engine = cluster.db(BUREAU).engine
    engine.connect().close()  # the file made as the node makes it, 0600, not by sqlite3
    lock = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        deliver_through_an_outage(cluster, lambda: lock.execute("BEGIN EXCLUSIVE"),
                                  lambda: lock.execute("ROLLBACK"))
    finally:
        lock.close()


def test_receiver_with_a_stopped_postgresql_refuses_and_loses_nothing(
        tmp_path: Path, pg_private_server: PostgresServer) -> None:
    url = pg_private_server.create_database("bureau")
    c = new_cluster(tmp_path, database_urls={BUREAU: url})
    try:
        deliver_through_an_outage(c, pg_private_server.stop, pg_private_server.start)
    finally:
        c.close()


# --- 5. a flood from one peer does not starve another -----------------------------------

FLOOD = 300


def test_a_flood_from_one_peer_does_not_starve_another_peer(tmp_path: Path) -> None:
    # The bureau lets one peer have only a few messages waiting for its ledger at once;
    # police's streams carry far more than that, so it is refused, backs off and retries.
    c = new_cluster(tmp_path, knobs={BUREAU: {"limits": {"max_pending_per_peer": 16}}})
    try:
        _, police, commerce = start_all(c.node(BUREAU), c.node(POLICE, sender=True),
                                        c.node(COMMERCE, sender=True))
        flood = police.send(BUREAU, FLOOD)
        wait_until(lambda: received_count(c, BUREAU, POLICE) >= 50, interval=0.01,
                   what="the flood to reach the bureau")
        others = commerce.send(BUREAU, 20, first_number=FLOOD)
        drained(c, COMMERCE, BUREAU)
        at_drain = received_count(c, BUREAU, POLICE)
        drained(c, POLICE, BUREAU, timeout=120)

        # Judged by the bureau's ledger, not by a clock: it logged police messages after
        # the last of commerce's, so commerce's got through while the flood was going on.
        b = c.db(BUREAU)
        last_other = max(i for i, _ in b.entries(EntryKind.RECEIVED, peer=COMMERCE))
        flood_after = [i for i, _ in b.entries(EntryKind.RECEIVED, peer=POLICE) if i > last_other]
        assert flood_after, f"commerce was served only after the flood ({at_drain} logged)"
        # The flood really was above the bureau's per-peer limit.
        assert police.log_count("RESOURCE_EXHAUSTED") > 0
        check_delivered_once(c, POLICE, BUREAU, flood)
        check_delivered_once(c, COMMERCE, BUREAU, others)
        print(f"flood: {at_drain}/{FLOOD} logged when commerce's 20 were all receipted; "
              f"{len(flood_after)} flood messages logged after them")
    finally:
        c.close()


# --- 6. graceful stop -------------------------------------------------------------------


def test_sigterm_mid_stream_exits_zero_and_keeps_everything_it_acknowledged(
        cluster: Cluster) -> None:
    c = cluster
    bureau, police = start_all(c.node(BUREAU), c.node(POLICE, sender=True))
    sent = police.send(BUREAU, 800)
    wait_until(lambda: received_count(c, BUREAU, POLICE) >= 100, interval=0.01,
               what="the bureau to log the first hundred messages")
    assert bureau.terminate() == 0, bureau.log_tail()

    # Police has noticed the bureau is gone (so it holds every receipt it will get).
    p, b = c.db(POLICE), c.db(BUREAU)
    wait_until(lambda: any(r.attempts for r in p.outbox(BUREAU) if r.delivered_at is None),
               what="police to fail a delivery to the stopped bureau")
    acknowledged = p.entries(EntryKind.RECEIPT, peer=BUREAU)
    assert 0 < len(acknowledged) < len(sent)
    held = b.leaves(EntryKind.RECEIVED)
    for _, entry in acknowledged:
        receipt = Receipt.decode(entry.detail)
        assert held.get(receipt.leaf_index) == receipt.leaf
    b.verify()

    bureau.start()
    drained(c, POLICE, BUREAU)
    check_delivered_once(c, POLICE, BUREAU, sent)


def test_sigterm_to_a_sender_mid_stream_logs_the_receipts_under_way(cluster: Cluster) -> None:
    c = cluster
    _, police = start_all(c.node(BUREAU), c.node(POLICE, sender=True))
    sent = police.send(BUREAU, 800)
    wait_until(lambda: received_count(c, BUREAU, POLICE) >= 100, interval=0.01,
               what="the bureau to log the first hundred messages")
    assert police.terminate() == 0, police.log_tail()

    # Police finished the delivery it had under way before it exited: it holds a receipt
    # for every message the bureau logged, and nothing more.
    p, b = c.db(POLICE), c.db(BUREAU)
    assert p.count(EntryKind.RECEIPT, peer=BUREAU) == b.count(EntryKind.RECEIVED, peer=POLICE)
    assert 0 < p.count(EntryKind.RECEIPT, peer=BUREAU) < len(sent)
    p.verify()

    police.start(sender=False)
    drained(c, POLICE, BUREAU)
    check_delivered_once(c, POLICE, BUREAU, sent)
