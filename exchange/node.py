"""The node runtime: directory, keys, ledger, transport, and dispatch of bodies to handlers.

Receiving (docs/architecture.md#receiving): the checks of ``exchange.receive`` run on the
event loop; then logging RECEIVED, recording the message for idempotence and the handler's
workflow change run in one ledger transaction (group-committed); the receipt is built only
once that transaction is durable. Sending: signing, logging SENT and queueing in the outbox
happen in one transaction too, and the outbox delivers until a receipt comes back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from exchange import envelope, identity, messages, migrate, pki, quota
from exchange import receive as checks
from exchange.config import NodeConfig
from exchange.errors import (
    DirectoryError,
    ExchangeError,
    InvalidBodyError,
    LedgerError,
    OverloadedError,
)
from exchange.identity import Directory, Member, SignedDirectory
from exchange.ledger import note
from exchange.ledger.entries import Entry, EntryKind, Receipt, to_micros
from exchange.ledger.receipts import log_origin
from exchange.ledger.store import CheckpointFile, LedgerStore
from exchange.metrics import ACCEPTED, DUPLICATE, REFUSED, UNKNOWN, NodeMetrics
from exchange.schema import directories, inbox, outbox
from exchange.storage import engines
from exchange.storage.statements import DriverStatement, insert_sql
from exchange.storage.unitofwork import Committed, GroupCommitter, Transaction
from exchange.transport.server import TLSMaterial
from exchange.transport.status import is_permanent, status_for

log = logging.getLogger(__name__)

# These run for every message, on the driver (see exchange/ledger/store.py).
_SEEN = DriverStatement(
    "SELECT leaf_idx, message_digest FROM inbox WHERE sender = ? AND message_id = ?")
_INSERT_INBOX = insert_sql(inbox, ("sender", "message_id", "leaf_idx",
                                   "message_digest", "kind", "received_at"))
_INSERT_OUTBOX = insert_sql(outbox, (
    "recipient", "message_id", "message_digest", "kind", "envelope", "sent_leaf_idx",
    "created_at", "attempts", "next_attempt_at", "escalated"))


@dataclass(slots=True)
class Context:
    """What a handler gets: the open transaction, and ways to send and log within it."""

    node: Node
    txn: Transaction
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    woken: list[str] = field(default_factory=list)

    @property
    def conn(self) -> Any:
        return self.txn.conn

    @property
    def now(self) -> datetime:
        return self.txn.now

    @property
    def directory(self) -> Directory:
        return self.node.directory

    def send(self, recipient: str, body: messages.Body, *, in_reply_to: bytes = b"",
             thread: str = "", expires_at: datetime | None = None) -> bytes:
        """Sign ``body`` to ``recipient``, log SENT and queue it, in this transaction."""
        mid = self.node.send_in(self.txn, recipient, body, in_reply_to=in_reply_to,
                                thread=thread, expires_at=expires_at)
        self.sent.append((recipient, mid))
        return mid

    def wake(self, recipient: str) -> None:
        """Have ``recipient``'s outbox worker look at its queue once this commits."""
        self.woken.append(recipient)

    @property
    def to_wake(self) -> list[str]:
        return [r for r, _ in self.sent] + self.woken

    def log_action(self, subject: str, detail: bytes, *, peer: str = "",
                   message_id: bytes = b"") -> int:
        """Log one of this node's own decisions (an ACTION entry)."""
        return self.txn.append(Entry(EntryKind.ACTION, peer, self.now, message_id=message_id,
                                     detail=detail, subject=subject))


    def escalate(self, kind: messages.EscalationKind, *, subject_node: str, detail: str,
                 subject_message_id: bytes = b"", evidence: tuple[bytes, ...] = ()
                 ) -> bytes | None:
        """Send an Escalation to the office in this transaction; return its message id.

        None when there is no one to escalate to: this node is the office, or the office is
        the subject. The caller's own ACTION entry is then the record.
        """
        office = self.directory.office
        if office.node_id in (self.node.node_id, subject_node):
            return None
        return self.send(office.node_id, messages.Escalation(
            escalation_kind=kind, subject_node=subject_node,
            subject_message_id=subject_message_id, detail=detail[:1000], deadline=None,
            evidence=evidence))


Handler = Callable[[Context, checks.Accepted], None]


def checkpoint_file_path(config: NodeConfig) -> Path | None:
    """Where the node keeps its latest signed checkpoint outside the database: beside a
    SQLite file (``node.db.checkpoint``); for a server database beside node.toml, named
    after the database (``<node id>-<hash of its URL without password>.checkpoint``), so
    that pointing a configuration at another database does not compare it with this one.
    None for a database only in memory (tests)."""
    url = engines.parse_url(config.database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return None
        db = Path(url.database)
        return db.with_name(db.name + ".checkpoint")
    if config.path is None:
        return None
    where = url._replace(password=None).render_as_string(hide_password=False)
    name = hashlib.sha256(where.encode()).hexdigest()[:16]
    return config.path.parent / f"{config.node_id}-{name}.checkpoint"


class InOrder:
    """Keeps the messages of one incoming stream in their order in the ledger.

    A stream's messages are logged pipelined, in order, by the one ledger writer. If one
    of them fails for now (database unavailable, overloaded, its RPC gone: the sender will
    send it again), applying the ones after it would put them before it. So from then
    on every later message of the stream is refused "retry later" too, and the sender
    resumes from the first. A message refused for good (bad body, …) is never applied,
    so the ones after it may be. ``failed`` is called on the writer thread (GroupCommitter
    ``on_failure``) before any later work runs.
    """

    __slots__ = ("first_failure", "retry_after")

    def __init__(self, retry_after: float) -> None:
        self.first_failure: BaseException | None = None
        self.retry_after = retry_after

    def failed(self, error: BaseException) -> None:
        if self.first_failure is None and (isinstance(error, CancelledError)
                                           or not is_permanent(status_for(error))):
            self.first_failure = error

    def check(self, header: messages.Header) -> None:
        if self.first_failure is not None:
            raise OverloadedError(
                f"message {header.message_id.hex()} follows one of this stream that was not "
                f"logged ({type(self.first_failure).__name__}); send again from that one",
                retry_after=self.retry_after)


@dataclass(frozen=True, slots=True)
class ReceiveOutcome:
    receipt: Receipt
    duplicate: bool


class Node:
    """One agency's node. ``nodes`` gives it handlers; everything else is here."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        handlers: Mapping[str, Handler] | None = None,
        body_checks: Mapping[str, checks.BodyCheck] | None = None,
        clock: Callable[[], datetime] | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.clock = clock or (lambda: datetime.now(UTC))
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.body_checks = dict(body_checks or {})
        # Responsibility over this node's state (docs/who-may-send-what.md#state-rules): run
        # before any handler, in the transaction that logs the message, so a refusal leaves
        # no trace.
        self.responsibility: Handler | None = None
        ca_pem = config.ca_cert.read_bytes()
        self.ca = pki.load_certificate(config.ca_cert)
        self.credentials = pki.load_node_credentials(
            config.credentials_dir, ca=self.ca, now=self.clock()
        )
        if self.credentials.node_id != config.node_id:
            raise DirectoryError(
                f"credentials in {config.credentials_dir} are for {self.credentials.node_id}, "
                f"not {config.node_id}"
            )
        self.trust_domain = self.credentials.trust_domain
        self.signer = self.credentials.signer
        self.tls = TLSMaterial(self.credentials.tls_cert_pem, self.credentials.tls_key_pem,
                               ca_pem)
        self.origin = log_origin(self.trust_domain, self.node_id)
        self.engine = engine or engines.create_engine_for(config.database_url)
        migrate.upgrade(self.engine)
        path = checkpoint_file_path(config)
        self.store = LedgerStore(self.engine, origin=self.origin, signer=self.signer,
                                 checkpoint_file=CheckpointFile(path) if path else None)
        self.reader = self.store.reader
        # Seconds an overloaded node asks a sender to wait ([limits] retry_after_ms).
        self.retry_after = config.limits.retry_after_ms / 1000
        self.committer = GroupCommitter(
            self.store,
            max_batch=config.limits.max_batch,
            window_s=config.limits.group_commit_window_ms / 1000,
            max_pending=config.limits.max_pending,
            retry_after=self.retry_after,
            clock=self.clock,
        )
        self.limits = checks.Limits(
            max_envelope_bytes=config.limits.max_envelope_bytes,
            clock_skew=config.clock_skew,
            max_numbers_per_message=config.limits.max_numbers_per_message,
        )
        self._unrecorded: SignedDirectory | None = None
        self._directory = self._load_directory()
        self._outbox_wakeups: list[Callable[[str], None]] = []
        self._per_peer_pending: dict[str, int] = {}
        self.quotas = quota.PeerQuotas(config.limits.quota_bytes_per_peer_per_day,
                                       quota.stored_since(self.reader), now=self.clock())
        self.metrics = NodeMetrics()
        self.metrics.watch(self)

    # --- directory ---------------------------------------------------------------

    @property
    def directory(self) -> Directory:
        return self._directory

    def current_directory(self) -> Directory:
        return self._directory

    def now(self) -> datetime:
        return self.clock()

    @property
    def me(self) -> Member:
        return self._directory.member(self.node_id)

    def _load_directory(self) -> Directory:
        """The newest directory held in the database, or the configured file's if that one
        is newer (how an operator hands a node, the office first, a new directory across a
        restart: one held in the database expires after its validity)."""
        with self.reader.connect() as conn:
            row = conn.execute(
                select(directories.c.signed).order_by(directories.c.version.desc()).limit(1)
            ).first()
        held = SignedDirectory.from_bytes(bytes(row.signed)) if row else None
        from_file, file_error = self._directory_file()
        if held is None:
            if from_file is None:
                raise file_error or DirectoryError("no directory")
            return self._adopt_at_start(from_file, record=True)
        if from_file is not None:
            try:
                newer = self._verify(from_file)
            except DirectoryError as e:
                log.warning("directory file %s not used: %s", self.config.directory_file, e)
            else:
                # The one held was verified when it was adopted (and is again below).
                held_version = identity.decode_directory(
                    envelope.parse(held.envelope).payload).version
                if newer.version > held_version:
                    log.info("directory file %s holds version %d, newer than the %d held: "
                             "adopting it", self.config.directory_file, newer.version,
                             held_version)
                    return self._adopt_at_start(from_file, record=True)
        return self._adopt_at_start(held, record=False)

    def _directory_file(self) -> tuple[SignedDirectory | None, DirectoryError | None]:
        try:
            return SignedDirectory.from_bytes(self.config.directory_file.read_bytes()), None
        except OSError as e:
            return None, DirectoryError(
                f"cannot read directory file {self.config.directory_file}: {e.strerror}")
        except DirectoryError as e:
            return None, DirectoryError(f"directory file {self.config.directory_file}: {e}")

    def _verify(self, signed: SignedDirectory) -> Directory:
        return identity.verify_directory(signed, ca=self.ca, office_id=self.config.office_id,
                                         now=self.clock())

    def _adopt_at_start(self, signed: SignedDirectory, *, record: bool) -> Directory:
        d = self._verify(signed)
        d.member(self.node_id)  # this node must be listed
        # A directory not yet in the database is logged when the writer starts.
        self._unrecorded = signed if record else None
        return d

    def _record_directory(self, txn: Transaction, signed: SignedDirectory, d: Directory) -> None:
        txn.conn.execute(insert(directories), {"version": d.version, "signed": signed.to_bytes(),
                                               "loaded_at": to_micros(txn.now)})
        txn.append(Entry(EntryKind.DIRECTORY, self.config.office_id, txn.now,
                         detail=signed.to_bytes(), subject=f"directory v{d.version}"))

    async def replace_directory(self, signed: SignedDirectory) -> Directory:
        """Adopt a newer directory if it verifies and its version is higher; log it."""
        d = identity.verify_directory(signed, ca=self.ca, office_id=self.config.office_id,
                                      now=self.clock(), current=self._directory)
        d.member(self.node_id)
        await self.committer.run(lambda txn: self._record_directory(txn, signed, d))
        self._directory = d
        log.info("directory version %d adopted", d.version)
        return d

    def signed_directory(self) -> bytes:
        with self.reader.connect() as conn:
            row = conn.execute(
                select(directories.c.signed).order_by(directories.c.version.desc()).limit(1)
            ).first()
        if row is None:
            raise DirectoryError("no directory held")
        return bytes(row.signed)

    # --- life cycle ----------------------------------------------------------------

    def start_writer(self) -> None:
        self.committer.start()
        signed, self._unrecorded = self._unrecorded, None
        if signed is not None:
            d = self._directory
            self.committer.run_sync(lambda txn: self._record_directory(txn, signed, d))

    def stop_writer(self) -> None:
        self.committer.stop()

    def on_outbox(self, wake: Callable[[str], None]) -> None:
        """Register a callback told the recipient of each newly committed outbox row."""
        self._outbox_wakeups.append(wake)

    def _wake(self, recipients: list[str]) -> None:
        for r in recipients:
            for wake in self._outbox_wakeups:
                wake(r)

    # --- receiving -----------------------------------------------------------------

    def check(self, raw: bytes, peer: str) -> checks.Accepted:
        """The pure checks of docs/messages.md#how-a-receiver-checks-a-message against
        the directory in force now."""
        now = self.clock()
        try:
            self._directory.check_current(now)
            accepted = checks.check_incoming(raw, directory=self._directory, me=self.node_id,
                                              peer=peer, now=now, limits=self.limits,
                                              body_checks=self.body_checks)
            self.quotas.charge(accepted.sender.node_id, len(raw), now)
            return accepted
        except ExchangeError as e:
            self._refused(peer, None, e)
            raise

    def _admit(self, peer: str) -> None:
        held = self._per_peer_pending.get(peer, 0)
        if held >= self.config.limits.max_pending_per_peer:
            raise OverloadedError(
                f"{held} messages from {peer} are waiting to be logged; retry later",
                retry_after=self.retry_after,
            )
        self._per_peer_pending[peer] = held + 1

    def _release(self, peer: str) -> None:
        self._per_peer_pending[peer] = self._per_peer_pending.get(peer, 1) - 1

    async def receive(self, raw: bytes, peer: str) -> ReceiveOutcome:
        """Check, log and apply one message; return its receipt once durable."""
        accepted = self.check(raw, peer)
        committed = await self._submit(peer, accepted)
        return self._outcome(committed)

    def submit_receive(self, accepted: checks.Accepted, order: InOrder | None = None
                       ) -> asyncio.Future[Committed[Any]]:
        """Queue an already-checked message for logging (streams pipeline many at once;
        ``order`` keeps one stream's messages in order, see InOrder)."""
        return self._submit(accepted.sender.node_id, accepted, order)

    def _submit(self, peer: str, accepted: checks.Accepted, order: InOrder | None = None
                ) -> asyncio.Future[Committed[Any]]:
        try:
            self._admit(peer)
        except ExchangeError as e:
            self._refused(peer, accepted, e)
            raise

        def work(txn: Transaction) -> tuple[int, bool, list[str]]:
            if order is not None:
                order.check(accepted.message.header)
            return self._apply(txn, accepted)
        try:
            fut = asyncio.wrap_future(self.committer.submit(
                work, on_failure=order.failed if order is not None else None))
        except ExchangeError as e:
            self._release(peer)
            self._refused(peer, accepted, e)
            raise
        fut.add_done_callback(lambda f: self._settled(peer, accepted, f))
        return fut

    def _settled(self, peer: str, accepted: checks.Accepted,
                 fut: asyncio.Future[Committed[Any]]) -> None:
        """Count and log what became of a message once its transaction ended."""
        self._release(peer)
        if fut.cancelled():
            self.quotas.refund(accepted.sender.node_id, len(accepted.envelope.raw))
            return
        error = fut.exception()
        if error is not None:
            self._refused(peer, accepted, error)
            return
        leaf_idx, duplicate, _ = fut.result().result
        if duplicate:  # stored once already: a repeat costs the peer's quota nothing
            self.quotas.refund(accepted.sender.node_id, len(accepted.envelope.raw))
        outcome = DUPLICATE if duplicate else ACCEPTED
        header = accepted.message.header
        self.metrics.received(accepted.message.kind, outcome)
        log.info("message received kind=%s id=%s sender=%s recipient=%s digest=%s leaf=%d "
                 "outcome=%s", accepted.message.kind, header.message_id.hex(), header.sender,
                 header.recipient, accepted.digest.hex()[:16], leaf_idx, outcome)

    def _refused(self, peer: str, accepted: checks.Accepted | None,
                 error: BaseException) -> None:
        # Only the error's type: its text may quote the message's numbers.
        kind = accepted.message.kind if accepted else UNKNOWN
        if accepted is not None:  # charged to the peer's quota by check, stored not
            self.quotas.refund(accepted.sender.node_id, len(accepted.envelope.raw))
        self.metrics.refused(kind, error)
        if accepted is None:
            log.info("message refused kind=%s peer=%s recipient=%s outcome=%s error=%s",
                     kind, peer, self.node_id, REFUSED, type(error).__name__)
        else:
            header = accepted.message.header
            log.info("message refused kind=%s id=%s sender=%s recipient=%s digest=%s "
                     "outcome=%s error=%s", kind, header.message_id.hex(), header.sender,
                     header.recipient, accepted.digest.hex()[:16], REFUSED,
                     type(error).__name__)

    def outcome(self, committed: Committed[Any]) -> ReceiveOutcome:
        return self._outcome(committed)

    def _outcome(self, committed: Committed[Any]) -> ReceiveOutcome:
        leaf_idx, duplicate, recipients = committed.result
        if recipients:
            self._wake(recipients)
        if duplicate or committed.checkpoint is None:
            # The first checkpoint covering the leaf is the one the first receipt carried.
            cp = self.store.checkpoint_covering(leaf_idx)
        else:
            cp = committed.checkpoint
        return ReceiveOutcome(self.store.receipt(leaf_idx, cp), duplicate)

    def _apply(self, txn: Transaction, accepted: checks.Accepted
               ) -> tuple[int, bool, list[str]]:
        header = accepted.message.header
        seen = txn.cursor.first(_SEEN, (header.sender, header.message_id))
        if seen is not None:
            leaf_idx, digest = seen
            if bytes(digest) != accepted.digest:
                raise InvalidBodyError(
                    f"message id {header.message_id.hex()} from {header.sender} was already "
                    "used for a different message")
            return int(leaf_idx), True, []
        idx = txn.append(Entry(
            EntryKind.RECEIVED, header.sender, txn.now, message_id=header.message_id,
            message_digest=accepted.digest, envelope=accepted.envelope.raw,
            subject=accepted.message.kind,
        ))
        txn.cursor.execute(_INSERT_INBOX, (header.sender, header.message_id, idx,
                                           accepted.digest, accepted.message.kind,
                                           to_micros(txn.now)))
        return idx, False, self._handle(txn, accepted)

    def _handle(self, txn: Transaction, accepted: checks.Accepted) -> list[str]:
        ctx = Context(self, txn)
        if self.responsibility is not None:
            self.responsibility(ctx, accepted)
        handler = self.handlers.get(accepted.message.kind)
        if handler is not None:
            handler(ctx, accepted)
        return ctx.to_wake

    def reapply_received(self, txn: Transaction, entry: Entry, idx: int,
                         accepted: checks.Accepted | None) -> None:
        """Put back what receiving the RECEIVED ``entry``, re-appended at ``idx`` by
        ``bcx ledger recover``, did: its inbox row (a re-delivery then gets its first
        receipt back) and, given its checked message, the handler's workflow change.

        The handler must log nothing: had it logged something the first time, that entry
        would be in the lost tail too, and no peer holds this node's own entries.
        """
        txn.cursor.execute(_INSERT_INBOX, (entry.peer, entry.message_id, idx,
                                           entry.message_digest, entry.subject,
                                           to_micros(entry.logged_at)))
        if accepted is None:
            return
        before = len(txn.appended)
        # At the time it was first applied, so the deadlines it sets come out the same.
        self._handle(replace(txn, now=entry.logged_at), accepted)
        if len(txn.appended) != before:
            raise LedgerError(
                f"replaying message {entry.message_id.hex()} from {entry.peer} (entry {idx}) "
                "would log new entries, which the lost tail did not hold")

    # --- sending --------------------------------------------------------------------

    def send_in(self, txn: Transaction, recipient: str, body: messages.Body, *,
                in_reply_to: bytes = b"", thread: str = "",
                expires_at: datetime | None = None) -> bytes:
        """Sign, log SENT and queue for delivery inside ``txn``; return the message id."""
        to = self._directory.member(recipient)
        identity.check_allowed(self.me, to, body.kind)
        header = messages.Header(
            message_id=messages.new_message_id(txn.now), sender=self.node_id,
            recipient=recipient, created_at=txn.now, expires_at=expires_at,
            in_reply_to=in_reply_to, thread=thread,
        )
        payload = messages.encode_message(messages.Message(header, body))
        env = envelope.sign(payload, envelope.PAYLOAD_TYPE_MESSAGE, self.signer)
        idx = txn.append(Entry(EntryKind.SENT, recipient, txn.now, message_id=header.message_id,
                               message_digest=env.digest, envelope=env.raw, subject=body.kind))
        txn.cursor.execute(_INSERT_OUTBOX, (recipient, header.message_id, env.digest, body.kind,
                                            env.raw, idx, to_micros(txn.now), 0, 0, False))
        return header.message_id

    async def send(self, recipient: str, body: messages.Body, *, in_reply_to: bytes = b"",
                   thread: str = "", expires_at: datetime | None = None) -> bytes:
        committed = await self.committer.run(
            lambda txn: self.send_in(txn, recipient, body, in_reply_to=in_reply_to,
                                     thread=thread, expires_at=expires_at)
        )
        self._wake([recipient])
        return committed.result

    async def run_work(self, fn: Callable[[Context], Any]) -> Any:
        """Run node-level work (a scheduler tick, an operator command) in one transaction."""
        def work(txn: Transaction) -> tuple[Any, list[str]]:
            ctx = Context(self, txn)
            return fn(ctx), ctx.to_wake
        committed = await self.committer.run(work)
        result, recipients = committed.result
        self._wake(recipients)
        return result

    def log_verifier(self, node_id: str) -> note.Verifier:
        """The note verifier of ``node_id``'s ledger checkpoints, from the directory."""
        member = self._directory.member(node_id)
        return note.Verifier.for_key(log_origin(self.trust_domain, node_id), member.signing_key)
