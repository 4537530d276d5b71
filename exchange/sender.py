"""Sending (docs/architecture.md#sending-and-delivery): sign, log SENT and queue in one
transaction, then wake the recipient's outbox worker once that transaction has committed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from exchange import envelope, identity, messages
from exchange.identity import Directory
from exchange.keys import Signer
from exchange.ledger.entries import Entry, EntryKind, to_micros
from exchange.schema import outbox
from exchange.storage.statements import insert_sql
from exchange.storage.unitofwork import Transaction

# Runs for every message sent, on the driver (see exchange/ledger/store.py).
_INSERT_OUTBOX = insert_sql(outbox, (
    "recipient", "message_id", "message_digest", "kind", "envelope", "sent_leaf_idx",
    "created_at", "attempts", "next_attempt_at", "escalated"))


class Wakeups:
    """Who to tell that a recipient has newly committed outbox rows (the outbox workers)."""

    __slots__ = ("_callbacks",)

    def __init__(self) -> None:
        self._callbacks: list[Callable[[str], None]] = []

    def register(self, wake: Callable[[str], None]) -> None:
        """Have ``wake`` told the recipient of each newly committed outbox row."""
        self._callbacks.append(wake)

    def wake(self, recipients: Iterable[str]) -> None:
        for r in recipients:
            for wake in self._callbacks:
                wake(r)


class Sender:
    """Signs this node's messages and queues them inside the caller's transaction."""

    def __init__(self, *, node_id: str, signer: Signer,
                 directory: Callable[[], Directory]) -> None:
        self.node_id = node_id
        self._signer = signer
        self._directory = directory

    def send_in(self, txn: Transaction, recipient: str, body: messages.Body, *,
                in_reply_to: bytes = b"", thread: str = "",
                expires_at: datetime | None = None) -> bytes:
        """Sign, log SENT and queue for delivery inside ``txn``; return the message id."""
        directory = self._directory()
        to = directory.member(recipient)
        identity.check_allowed(directory.member(self.node_id), to, body.kind)
        header = messages.Header(
            message_id=messages.new_message_id(txn.now), sender=self.node_id,
            recipient=recipient, created_at=txn.now, expires_at=expires_at,
            in_reply_to=in_reply_to, thread=thread,
        )
        payload = messages.encode_message(messages.Message(header, body))
        env = envelope.sign(payload, envelope.PAYLOAD_TYPE_MESSAGE, self._signer)
        idx = txn.append(Entry(EntryKind.SENT, recipient, txn.now, message_id=header.message_id,
                               message_digest=env.digest, envelope=env.raw, subject=body.kind))
        txn.cursor.execute(_INSERT_OUTBOX, (recipient, header.message_id, env.digest, body.kind,
                                            env.raw, idx, to_micros(txn.now), 0, 0, False))
        return header.message_id
