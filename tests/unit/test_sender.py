"""Tests for exchange.sender without a database or gRPC: what send_in logs and queues,
and what it refuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from fedharness import make_federation

from exchange import envelope, messages, pki
from exchange.errors import RoleNotAllowedError, UnknownMemberError
from exchange.identity import Directory, SignedDirectory, verify_directory
from exchange.ledger.entries import Entry, EntryKind
from exchange.messages import Category, NumberReport
from exchange.sender import Sender, Wakeups
from exchange.storage.unitofwork import Transaction

OFFICE, POLICE, BUREAU, CARRIER = "office.cn", "police.fj", "bureau.fj", "cmcc.fj"
BODY = NumberReport(numbers=("+8615959000001",), category=Category.FRAUD)


@dataclass
class RecordingCursor:
    executed: list[tuple[Any, tuple[Any, ...]]] = field(default_factory=list)

    def execute(self, statement: Any, params: tuple[Any, ...]) -> None:
        self.executed.append((statement, params))


@dataclass
class RecordingTransaction:
    """Stands in for the ledger writer's transaction: keeps what was appended and run."""

    now: datetime
    cursor: RecordingCursor = field(default_factory=RecordingCursor)
    entries: list[Entry] = field(default_factory=list)

    def append(self, entry: Entry) -> int:
        self.entries.append(entry)
        return 41 + len(self.entries)


@dataclass(frozen=True)
class World:
    directory: Directory
    police: pki.NodeCredentials
    now: datetime  # after the federation's certificates were issued


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("federation")
    fed = make_federation(root)
    ca = pki.load_certificate(fed.ca_cert)
    signed = SignedDirectory.from_bytes(fed.directory_file.read_bytes())
    now = datetime.now(UTC)
    return World(verify_directory(signed, ca=ca, office_id=OFFICE, now=now),
                 pki.load_node_credentials(root / POLICE / "keys", ca=ca, now=now), now)


def sender_of(world: World) -> Sender:
    return Sender(node_id=POLICE, signer=world.police.signer,
                  directory=lambda: world.directory)


def test_send_in_logs_sent_and_queues_the_same_signed_envelope(world: World) -> None:
    txn = RecordingTransaction(now=world.now)
    mid = sender_of(world).send_in(cast(Transaction, txn), BUREAU, BODY, thread="case-7")
    (sent,) = txn.entries
    assert (sent.kind, sent.peer, sent.message_id, sent.subject) == \
        (EntryKind.SENT, BUREAU, mid, "number_report")
    env = envelope.parse(sent.envelope)
    env.verify(world.directory.member(POLICE).signing_key)
    assert sent.message_digest == env.digest
    message = messages.decode_message(env.payload)
    assert (message.header.sender, message.header.recipient, message.header.thread) == \
        (POLICE, BUREAU, "case-7")
    assert message.body == BODY
    ((_, row),) = txn.cursor.executed
    # recipient, message id, digest, kind, envelope, SENT index, created, attempts, next
    # attempt, escalated: the outbox row points at the SENT entry and carries its bytes.
    assert row[:6] == (BUREAU, mid, env.digest, "number_report", sent.envelope, 42)
    assert row[7:] == (0, 0, False)


@pytest.mark.parametrize(("recipient", "error", "message"), [
    (CARRIER, RoleNotAllowedError,
     r"a police \(police\.fj\) may not send number_report to a carrier \(cmcc\.fj\)"),
    ("stranger.fj", UnknownMemberError, r"stranger\.fj"),
], ids=["role-table-refuses", "not-a-member"])
def test_send_in_refuses_before_signing_or_logging(
        world: World, recipient: str, error: type[Exception], message: str) -> None:
    txn = RecordingTransaction(now=world.now)
    with pytest.raises(error, match=message):
        sender_of(world).send_in(cast(Transaction, txn), recipient, BODY)
    assert txn.entries == [] and txn.cursor.executed == []


def test_wakeups_tell_every_registered_worker_each_recipient() -> None:
    wakeups = Wakeups()
    told: list[tuple[str, str]] = []
    wakeups.register(lambda r: told.append(("first", r)))
    wakeups.register(lambda r: told.append(("second", r)))
    wakeups.wake([BUREAU, CARRIER])
    assert told == [("first", BUREAU), ("second", BUREAU), ("first", CARRIER),
                    ("second", CARRIER)]
