"""One node: its collaborators wired together, and the ``Context`` handlers get.

The collaborators (docs/architecture.md#a-node): ``exchange.directory``'s
``DirectoryHolder`` (the directory in force), ``exchange.inbox``'s ``Inbox`` (check, admit,
apply, answer: the one receive path) and ``exchange.sender``'s ``Sender`` (sign, log SENT,
queue). ``Node.open`` does the I/O (CA, credentials, database, directory) and builds them
from values; the transport and the runtime are given the one they need.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import Engine

from exchange import messages, migrate, pki, quota
from exchange import receive as checks
from exchange.config import NodeConfig
from exchange.directory import DirectoryHolder
from exchange.errors import DirectoryError
from exchange.identity import Directory, Member, SignedDirectory
from exchange.inbox import Inbox, PeerAdmission
from exchange.ledger import note
from exchange.ledger.entries import Entry, EntryKind
from exchange.ledger.receipts import log_origin
from exchange.ledger.store import CheckpointFile, LedgerStore
from exchange.metrics import NodeMetrics
from exchange.sender import Sender, Wakeups
from exchange.storage import engines
from exchange.storage.unitofwork import GroupCommitter, Transaction
from exchange.transport.server import TLSMaterial


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
        mid = self.node.sender.send_in(self.txn, recipient, body, in_reply_to=in_reply_to,
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


class Node:
    """One agency's node: wires the directory holder, the inbox and the sender together,
    and gives handlers their ``Context``. ``Node.open`` does the I/O and builds one.

    ``handlers`` (by body kind) and ``responsibility`` are read when a message is applied:
    ``nodes`` fills them in once it knows the node's role.
    """

    def __init__(self, config: NodeConfig, *, credentials: pki.NodeCredentials,
                 ca: x509.Certificate, tls: TLSMaterial, engine: Engine, store: LedgerStore,
                 committer: GroupCommitter, directories: DirectoryHolder,
                 quotas: quota.PeerQuotas, clock: Callable[[], datetime],
                 handlers: Mapping[str, Handler] | None = None,
                 body_checks: Mapping[str, checks.BodyCheck] | None = None) -> None:
        self.config = config
        self.node_id = config.node_id
        self.clock = clock
        self.handlers: dict[str, Handler] = dict(handlers or {})
        # Responsibility over this node's state (docs/who-may-send-what.md#state-rules): run
        # before any handler, in the transaction that logs the message, so a refusal leaves
        # no trace.
        self.responsibility: Handler | None = None
        self.ca = ca
        self.credentials = credentials
        self.trust_domain = credentials.trust_domain
        self.signer = credentials.signer
        self.tls = tls
        self.origin = store.origin
        self.engine = engine
        self.store = store
        self.reader = store.reader
        self.committer = committer
        self.directories = directories
        self.quotas = quotas
        self.metrics = NodeMetrics()
        self.wakeups = Wakeups()
        self.sender = Sender(node_id=self.node_id, signer=self.signer,
                             directory=directories.current_directory)
        self.inbox = Inbox(
            node_id=self.node_id, directory=directories.current_directory, clock=clock,
            limits=checks.Limits(
                max_envelope_bytes=config.limits.max_envelope_bytes,
                clock_skew=config.clock_skew,
                max_numbers_per_message=config.limits.max_numbers_per_message),
            body_checks=body_checks or {}, quotas=quotas,
            admission=PeerAdmission(config.limits.max_pending_per_peer,
                                    retry_after=committer.retry_after),
            committer=committer, receipts=store, metrics=self.metrics, handle=self.handle,
            wake=self.wakeups.wake)
        self.metrics.watch(self)

    @classmethod
    def open(cls, config: NodeConfig, *, handlers: Mapping[str, Handler] | None = None,
             body_checks: Mapping[str, checks.BodyCheck] | None = None,
             clock: Callable[[], datetime] | None = None, engine: Engine | None = None,
             ) -> Node:
        """The node ``config`` describes: reads the CA and credentials, opens and migrates
        the database (unless ``engine`` is given), loads the directory from it or the file."""
        clock = clock or _utc_now
        ca_pem = config.ca_cert.read_bytes()
        ca = pki.load_certificate(config.ca_cert)
        credentials = pki.load_node_credentials(config.credentials_dir, ca=ca, now=clock())
        if credentials.node_id != config.node_id:
            raise DirectoryError(f"credentials in {config.credentials_dir} are for "
                                 f"{credentials.node_id}, not {config.node_id}")
        tls = TLSMaterial(credentials.tls_cert_pem, credentials.tls_key_pem, ca_pem)
        engine = engine or engines.create_engine_for(config.database_url)
        migrate.upgrade(engine)
        store, committer = open_ledger(config, engine, credentials, clock)
        directories = DirectoryHolder.load(
            node_id=config.node_id, office_id=config.office_id,
            directory_file=config.directory_file, ca=ca, clock=clock, committer=committer,
            reader=store.reader)
        quotas = quota.PeerQuotas(config.limits.quota_bytes_per_peer_per_day,
                                  quota.stored_since(store.reader), now=clock())
        return cls(config, credentials=credentials, ca=ca, tls=tls, engine=engine,
                   store=store, committer=committer, directories=directories, quotas=quotas,
                   clock=clock, handlers=handlers, body_checks=body_checks)

    # --- what handlers and the runtime ask of it -------------------------------------

    @property
    def directory(self) -> Directory:
        return self.directories.current_directory()

    def current_directory(self) -> Directory:
        return self.directories.current_directory()

    def now(self) -> datetime:
        return self.clock()

    @property
    def me(self) -> Member:
        return self.directories.me

    async def replace_directory(self, signed: SignedDirectory) -> Directory:
        """Adopt a newer directory if it verifies and its version is higher; log it."""
        return await self.directories.replace(signed)

    def log_verifier(self, node_id: str) -> note.Verifier:
        """The note verifier of ``node_id``'s ledger checkpoints, from the directory."""
        member = self.directory.member(node_id)
        return note.Verifier.for_key(log_origin(self.trust_domain, node_id), member.signing_key)

    # --- life cycle ----------------------------------------------------------------

    def start_writer(self) -> None:
        self.committer.start()
        self.directories.record_at_start()

    def stop_writer(self) -> None:
        self.committer.stop()

    def on_outbox(self, wake: Callable[[str], None]) -> None:
        """Register a callback told the recipient of each newly committed outbox row."""
        self.wakeups.register(wake)

    # --- handlers ------------------------------------------------------------------

    def handle(self, txn: Transaction, accepted: checks.Accepted) -> list[str]:
        """Run responsibility, then the handler of the message's kind, in ``txn``; return
        the recipients whose outbox workers must look once it commits."""
        ctx = Context(self, txn)
        if self.responsibility is not None:
            self.responsibility(ctx, accepted)
        handler = self.handlers.get(accepted.message.kind)
        if handler is not None:
            handler(ctx, accepted)
        return ctx.to_wake

    async def send(self, recipient: str, body: messages.Body, *, in_reply_to: bytes = b"",
                   thread: str = "", expires_at: datetime | None = None) -> bytes:
        """Send ``body`` to ``recipient`` in a transaction of its own; return its id."""
        committed = await self.committer.run(
            lambda txn: self.sender.send_in(txn, recipient, body, in_reply_to=in_reply_to,
                                            thread=thread, expires_at=expires_at))
        self.wakeups.wake([recipient])
        return committed.result

    async def run_work(self, fn: Callable[[Context], Any]) -> Any:
        """Run node-level work (a scheduler tick, an operator command) in one transaction."""
        def work(txn: Transaction) -> tuple[Any, list[str]]:
            ctx = Context(self, txn)
            return fn(ctx), ctx.to_wake
        committed = await self.committer.run(work)
        result, recipients = committed.result
        self.wakeups.wake(recipients)
        return result


def open_ledger(config: NodeConfig, engine: Engine, credentials: pki.NodeCredentials,
                clock: Callable[[], datetime]) -> tuple[LedgerStore, GroupCommitter]:
    """The ledger in ``engine`` and its one writer, with the limits of ``config``."""
    path = checkpoint_file_path(config)
    store = LedgerStore(engine, origin=log_origin(credentials.trust_domain, config.node_id),
                        signer=credentials.signer,
                        checkpoint_file=CheckpointFile(path) if path else None)
    committer = GroupCommitter(
        store,
        max_batch=config.limits.max_batch,
        window_s=config.limits.group_commit_window_ms / 1000,
        max_pending=config.limits.max_pending,
        # Seconds an overloaded node asks a sender to wait ([limits] retry_after_ms).
        retry_after=config.limits.retry_after_ms / 1000,
        clock=clock,
    )
    return store, committer


def _utc_now() -> datetime:
    return datetime.now(UTC)
