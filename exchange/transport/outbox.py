"""Durable delivery: one worker per peer sends outbox rows in order until receipts come back.

A row leaves the queue only when a receipt that verifies is logged (RECEIPT entry), in
the same transaction that marks it delivered. Failures back off exponentially with
jitter; past a threshold the node escalates to the office and keeps trying.

Whether a failure is retried is the error's ``retryable`` (exchange/transport/status.py
reads a peer's answer back into an error that says it). A refusal for good, an envelope
over the receiver's size limit among them, is set aside: the row leaves the queue with
the refusal, the office is told once, and the messages after it go on (``sets_aside``).
A retryable one backs off and stays at the head of the peer's queue.

One refusal for good is not set aside: UNAUTHENTICATED refuses the sender, not the
message. While the directory in force is younger than one refresh interval it most
likely says the peer has not fetched it yet (a member the office just admitted, or one
whose keys it just renewed). That answer waits for the peer's next refresh before it
counts (``unauthenticated_counts``); the message is retried meanwhile, and escalated at
once when it counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
from sqlalchemy import func, select, update

from exchange import messages
from exchange.config import Delivery
from exchange.errors import ExchangeError, OperationError
from exchange.ledger import note
from exchange.ledger.entries import Entry, EntryKind, Receipt, from_micros, to_micros
from exchange.ledger.receipts import envelope_digest, log_origin, verify_receipt
from exchange.schema import directories, outbox, peer_checkpoints
from exchange.storage.statements import DriverCursor, DriverStatement, insert_sql
from exchange.transport.status import (
    RefusedError,
    refusal_of_call,
    refusal_of_response,
    retryable,
)
from exchange.wire.bcx.v1 import service_pb2, service_pb2_grpc

if TYPE_CHECKING:
    from exchange.node import Context, Node
    from exchange.transport.client import Peers

log = logging.getLogger(__name__)

# These run for every receipt, on the driver (see exchange/ledger/store.py).
_MARK_DELIVERED = DriverStatement(
    "UPDATE outbox SET delivered_at = ?, receipt_leaf_idx = ?, last_error = NULL "
    "WHERE seq = ?")
_PEER_CHECKPOINT_ID = DriverStatement(
    "SELECT id FROM peer_checkpoints WHERE origin = ? AND size = ? AND root = ?")
_INSERT_PEER_CHECKPOINT = insert_sql(peer_checkpoints, (
    "origin", "size", "root", "note", "seen_at", "witnessed"))


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    message_id: bytes
    envelope: bytes
    attempts: int
    created_at: int
    escalated: bool
    kind: str
    digest: bytes = b""


_ReceiptCheck = Callable[[Pending, Receipt], tuple[Pending, Receipt, note.Checkpoint]]


@dataclass(slots=True)
class _Answers:
    """What one round of delivery to a peer brought back, in queue order."""

    check: _ReceiptCheck
    receipts: list[tuple[Pending, Receipt, note.Checkpoint]] = field(default_factory=list)
    # Refused for good: the receiver never applies these and goes on with the ones after
    # them, so the queue does too (the rows are set aside, see Outbox._set_aside).
    refused: list[tuple[Pending, RefusedError]] = field(default_factory=list)
    # The failure that ends the round, and the message it is charged to.
    failure: tuple[Pending, BaseException] | None = None

    def take(self, p: Pending, answer: service_pb2.DeliverResponse | RefusedError) -> bool:
        """Keep the peer's answer to ``p``; whether the round goes on to the next message."""
        if isinstance(answer, RefusedError):
            if sets_aside(answer):
                self.refused.append((p, answer))
                return True
            self.failure = (p, answer)
            return False
        try:
            self.receipts.append(self.check(p, Receipt.from_pb(answer.receipt)))
        except ExchangeError as e:
            self.failure = (p, e)
            return False
        return True


class Outbox:
    def __init__(self, node: Node, peers: Peers) -> None:
        self.node = node
        self.peers = peers
        self._events: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._known: dict[str, dict[str, note.Checkpoint]] = {}
        self._watchers: dict[bytes, asyncio.Future[int]] = {}
        self._stopping = False
        # (version, when this node adopted it) of the directory in force.
        self._adopted: tuple[int, datetime] | None = None
        self.delivered = 0
        self.failures = 0
        node.on_outbox(self.wake)

    def wake(self, recipient: str) -> None:
        if self._stopping:
            return
        event = self._events.get(recipient)
        if event is None:
            event = self._events[recipient] = asyncio.Event()
            self._tasks[recipient] = asyncio.ensure_future(self._worker(recipient))
        event.set()

    async def start(self) -> None:
        """Resume every peer with undelivered rows (after a restart, nothing is lost)."""
        def pending_recipients() -> list[str]:
            with self.node.reader.connect() as conn:
                return list(conn.scalars(
                    select(outbox.c.recipient).where(outbox.c.delivered_at.is_(None),
                                                     outbox.c.refused_at.is_(None)).distinct()
                ))
        for r in await asyncio.to_thread(pending_recipients):
            self.wake(r)

    async def stop(self, grace: float = 5.0) -> None:
        """Start no new delivery; let those under way finish and log their receipts for up
        to ``grace`` seconds, then cancel what is left (its rows stay queued)."""
        self._stopping = True
        for event in self._events.values():
            event.set()  # idle and backing-off workers see _stopping and return
        tasks = list(self._tasks.values())
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=grace)
            for t in unfinished:
                t.cancel()
            for t in unfinished:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    def watch(self, message_id: bytes) -> asyncio.Future[int]:
        """A future resolved with the RECEIPT entry's ledger index once ``message_id`` is
        delivered (its receipt logged), or failed with ExchangeError once the peer refused
        it for good and it was set aside. Call it before the row can be delivered."""
        fut = self._watchers.get(message_id)
        if fut is None:
            fut = self._watchers[message_id] = asyncio.get_running_loop().create_future()
            fut.add_done_callback(lambda _: self._watchers.pop(message_id, None))
        return fut

    def depth(self) -> int:
        with self.node.reader.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(outbox)
                                   .where(outbox.c.delivered_at.is_(None),
                                          outbox.c.refused_at.is_(None))) or 0)

    # --- the per-peer worker ---------------------------------------------------------

    def _due(self, recipient: str, limit: int) -> tuple[list[Pending], float | None]:
        now = to_micros(self.node.clock())
        with self.node.reader.connect() as conn:
            rows = conn.execute(
                select(outbox.c.seq, outbox.c.message_id, outbox.c.envelope, outbox.c.attempts,
                       outbox.c.created_at, outbox.c.escalated, outbox.c.next_attempt_at,
                       outbox.c.kind, outbox.c.message_digest)
                .where(outbox.c.recipient == recipient, outbox.c.delivered_at.is_(None),
                       outbox.c.refused_at.is_(None))
                .order_by(outbox.c.seq).limit(limit)
            ).all()
        if not rows:
            return [], None
        # In order: if the head is backing off, everything behind it waits too.
        if rows[0].next_attempt_at > now:
            return [], (rows[0].next_attempt_at - now) / 1e6
        return [Pending(r.seq, bytes(r.message_id), bytes(r.envelope), r.attempts,
                        r.created_at, r.escalated, r.kind, bytes(r.message_digest))
                for r in rows], None

    async def _worker(self, recipient: str) -> None:
        event = self._events[recipient]
        window = self.node.config.limits.stream_window
        while not self._stopping:
            event.clear()
            try:
                due, wait = await asyncio.to_thread(self._due, recipient, window)
            except Exception as e:  # noqa: BLE001 - database trouble: wait and retry, never die
                log.warning("outbox for %s cannot read its queue: %s", recipient, e)
                due, wait = [], 1.0
            if self._stopping:
                return
            if not due:
                if wait is None:
                    await event.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), timeout=wait)
                continue
            try:
                await self._deliver(recipient, due)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure is retried with backoff
                await self._failed(recipient, due[0], e)

    async def _deliver(self, recipient: str, due: list[Pending]) -> None:
        answers = _Answers(self._receipt_check(recipient))
        stub = self.peers.exchange(recipient)
        if len(due) >= self.node.config.delivery.bulk_threshold:
            await self._send_stream(stub, due, answers)
        else:
            await self._send_each(stub, due, answers)
        await self._settle(recipient, answers)

    def _receipt_check(self, recipient: str) -> _ReceiptCheck:
        """How a receipt of ``recipient`` is verified, against the checkpoints of its log
        this worker has seen lately."""
        member = self.node.directory.member(recipient)
        verifier = note.Verifier.for_key(log_origin(self.node.trust_domain, recipient),
                                         member.signing_key)
        known = self._known.setdefault(recipient, {})
        if len(known) > 64:
            known.clear()
        return lambda p, receipt: self._check(p, receipt, verifier, verifier.name, known)

    async def _send_each(self, stub: service_pb2_grpc.ExchangeStub, due: list[Pending],
                         answers: _Answers) -> None:
        """One Deliver call per message, in order, until one fails."""
        timeout = self.node.config.delivery.call_timeout_seconds
        for p in due:
            answer: service_pb2.DeliverResponse | RefusedError
            try:
                answer = await stub.Deliver(service_pb2.DeliverRequest(envelope=p.envelope),
                                            timeout=timeout)
            except grpc.aio.AioRpcError as e:
                answer = refusal_of_call(e)
            if not answers.take(p, answer):
                return

    async def _send_stream(self, stub: service_pb2_grpc.ExchangeStub, due: list[Pending],
                           answers: _Answers) -> None:
        """One DeliverStream call for all of ``due``: one answer per message, in order."""
        timeout = self.node.config.delivery.call_timeout_seconds + len(due) * 0.05
        call = stub.DeliverStream(_requests(due), timeout=timeout)
        answered = 0
        try:
            async for response in call:
                p = due[answered]
                answered += 1
                if not answers.take(p, response if response.HasField("receipt")
                                    else refusal_of_response(response)):
                    break
        except grpc.aio.AioRpcError as e:
            # The stream broke (the peer died, the network went): keep the receipts
            # that came back before, and resume from the first message without one.
            if answered < len(due):
                answers.failure = (due[answered], refusal_of_call(e))
        if answers.failure is None and answered < len(due):
            answers.failure = (due[answered],
                               ExchangeError("stream ended before every receipt came back"))
        call.cancel()

    async def _settle(self, recipient: str, answers: _Answers) -> None:
        """Log the receipts, set aside what was refused for good, back off on a failure."""
        if answers.receipts:
            receipts = answers.receipts
            committed = await self.node.committer.run(
                lambda txn: self._record(txn, recipient, receipts))
            self.delivered += len(receipts)
            self._observe_delivered(recipient, receipts, committed.appended)
        for p, error in answers.refused:
            await self._set_aside(recipient, p, error)
        if answers.failure is not None:
            await self._failed(recipient, *answers.failure)

    def _check(self, p: Pending, receipt: Receipt, verifier: note.Verifier, origin: str,
               known: dict[str, note.Checkpoint]) -> tuple[Pending, Receipt, note.Checkpoint]:
        if not p.digest:
            p = replace(p, digest=envelope_digest(p.envelope))
        cp = verify_receipt(receipt, envelope=p.envelope, sender=self.node.node_id,
                            log_verifier=verifier, origin=origin, known_checkpoints=known,
                            message_digest=p.digest)
        return p, receipt, cp

    def _record(self, txn: Any, recipient: str,
                receipts: list[tuple[Pending, Receipt, note.Checkpoint]]) -> None:
        seen: set[tuple[int, bytes]] = set()
        now = to_micros(txn.now)
        marks = []
        for p, receipt, cp in receipts:
            # p.digest is the digest the receipt was verified against (_check).
            idx = txn.append(Entry(EntryKind.RECEIPT, recipient, txn.now, message_id=p.message_id,
                                   message_digest=p.digest, detail=receipt.encode(),
                                   subject=p.kind))
            marks.append((now, idx, p.seq))
            if (cp.size, cp.root) not in seen:
                seen.add((cp.size, cp.root))
                record_peer_checkpoint(txn.cursor, cp, receipt.checkpoint, txn.now)
        txn.cursor.executemany(_MARK_DELIVERED, marks)

    def _observe_delivered(self, recipient: str,
                           receipts: list[tuple[Pending, Receipt, note.Checkpoint]],
                           appended: tuple[int, ...]) -> None:
        now = to_micros(self.node.clock())
        for (p, receipt, _), receipt_idx in zip(receipts, appended, strict=True):
            watcher = self._watchers.get(p.message_id)
            if watcher is not None and not watcher.done():
                watcher.set_result(receipt_idx)
            latency = (now - p.created_at) / 1e6
            self.node.metrics.delivered(p.kind, recipient, latency)
            log.info("message delivered kind=%s id=%s sender=%s recipient=%s digest=%s leaf=%d "
                     "outcome=delivered attempts=%d latency=%.3fs", p.kind, p.message_id.hex(),
                     self.node.node_id, recipient, p.digest.hex()[:16], receipt.leaf_index,
                     p.attempts + 1, latency)

    async def _failed(self, recipient: str, p: Pending, error: BaseException) -> None:
        self.failures += 1
        cfg = self.node.config.delivery
        hint = error.retry_after if isinstance(error, RefusedError) else None
        jitter = random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        delay = backoff_seconds(p.attempts + 1, cfg, jitter=jitter, retry_after=hint)
        counts = await self._counts(error)
        setback = plan_failure(attempts=p.attempts + 1, escalated=p.escalated,
                               final=not retryable(error), counts=counts,
                               age_seconds=time.time() - p.created_at / 1e6, delivery=cfg)
        if not counts:
            log.info("peer %s does not authenticate this node: it may not have fetched "
                     "directory version %d yet; retrying without escalating until its next "
                     "refresh", recipient, self.node.directory.version)
        # The peer's refusal text may quote the message's numbers: only the code is logged
        # (the whole text is kept in the outbox row's last_error).
        reason = _reason(error)
        outcome = "refused" if setback.final else "retry"
        self.node.metrics.delivery_failed(p.kind, recipient, outcome, reason)
        log.warning("message delivery failed kind=%s id=%s sender=%s recipient=%s digest=%s "
                    "outcome=%s error=%s attempts=%d retry_in=%.1fs", p.kind, p.message_id.hex(),
                    self.node.node_id, recipient, p.digest.hex()[:16], outcome, reason,
                    setback.attempts, delay)
        await self._record_failure(recipient, p, error, setback, delay)

    async def _counts(self, error: BaseException) -> bool:
        """Whether ``error`` counts toward escalation now: a refusal of this node as the
        sender waits for the peer's next directory refresh (``unauthenticated_counts``)."""
        if not (isinstance(error, RefusedError) and error.refuses_sender):
            return True
        adopted = await self._directory_adopted_at()
        return adopted is None or unauthenticated_counts(
            directory_adopted_at=adopted, now=self.node.clock(),
            refresh_seconds=self.node.config.directory_refresh_seconds)

    async def _record_failure(self, recipient: str, p: Pending, error: BaseException,
                              setback: Setback, delay: float) -> None:
        """Keep the row queued until ``delay`` has passed; tell the office if it is time."""
        next_at = to_micros(self.node.clock()) + int(delay * 1e6)
        text = str(error)

        def work(ctx: Context) -> None:
            ctx.conn.execute(update(outbox).where(outbox.c.seq == p.seq).values(
                attempts=setback.attempts, next_attempt_at=next_at, last_error=text[:500],
                escalated=p.escalated or setback.escalate))
            if setback.escalate and ctx.escalate(
                    messages.EscalationKind.DELIVERY_FAILURE, subject_node=recipient,
                    subject_message_id=p.message_id,
                    detail=f"{setback.attempts} delivery attempts failed: {text[:300]}") is None:
                ctx.log_action("delivery-failure", text.encode()[:500], peer=recipient,
                               message_id=p.message_id)
        try:
            await self.node.run_work(work)
        except ExchangeError as e:
            log.warning("cannot record delivery failure for %s: %s", recipient, e)
            await asyncio.sleep(delay)

    async def _directory_adopted_at(self) -> datetime | None:
        """When this node adopted the directory in force (its row in ``directories``);
        now, if it is not recorded yet (the writer records it as it starts); None if the
        database cannot say (then the answer counts, as it did before this rule)."""
        version = self.node.directory.version
        if self._adopted is not None and self._adopted[0] == version:
            return self._adopted[1]

        def loaded_at() -> int | None:
            with self.node.reader.connect() as conn:
                value = conn.scalar(select(directories.c.loaded_at).where(
                    directories.c.version == version))
            return None if value is None else int(value)
        try:
            micros = await asyncio.to_thread(loaded_at)
        except Exception as e:  # noqa: BLE001 - a failed delivery must never stop the worker
            log.warning("cannot read when directory version %d was adopted: %s", version, e)
            return None
        if micros is None:
            return self.node.clock()
        self._adopted = (version, from_micros(micros))
        return self._adopted[1]

    async def _set_aside(self, recipient: str, p: Pending, error: RefusedError) -> None:
        """The peer refused ``p`` for good: take it out of the queue (the row stays, with
        the refusal), log that, and tell the office once. The messages after it go on."""
        self.failures += 1
        reason = error.code.name
        self.node.metrics.delivery_failed(p.kind, recipient, "refused", reason)
        log.warning("message delivery refused kind=%s id=%s sender=%s recipient=%s digest=%s "
                    "outcome=set-aside error=%s attempts=%d", p.kind, p.message_id.hex(),
                    self.node.node_id, recipient, p.digest.hex()[:16], reason, p.attempts + 1)
        text = str(error)[:500]

        def work(ctx: Context) -> None:
            ctx.conn.execute(update(outbox).where(outbox.c.seq == p.seq).values(
                attempts=p.attempts + 1, refused_at=to_micros(ctx.now), last_error=text,
                escalated=True))
            ctx.log_action("delivery-refused", text.encode(), peer=recipient,
                           message_id=p.message_id)
            if not p.escalated:
                ctx.escalate(messages.EscalationKind.DELIVERY_FAILURE, subject_node=recipient,
                             subject_message_id=p.message_id,
                             detail=f"{recipient} refused the message for good and it was "
                                    f"set aside ({reason}): {text[:300]}")
        try:
            await self.node.run_work(work)
        except ExchangeError as e:
            # Not recorded: the row stays queued and is sent (and refused) again.
            log.warning("cannot set aside a refused message for %s: %s", recipient, e)
            await asyncio.sleep(self.node.config.delivery.backoff_initial_seconds)
            return
        watcher = self._watchers.get(p.message_id)
        if watcher is not None and not watcher.done():
            watcher.set_exception(ExchangeError(
                f"{recipient} refused message {p.message_id.hex()} for good: {text}"))


def requeue(ctx: Context, message_id: bytes) -> dict[str, str]:
    """Put a message its peer refused for good back at its place in the peer's queue
    (once the cause, a directory or a clock, is fixed); log the operator's decision."""
    row = ctx.conn.execute(select(outbox.c.recipient, outbox.c.kind, outbox.c.delivered_at,
                                  outbox.c.refused_at)
                           .where(outbox.c.message_id == message_id)).first()
    if row is None:
        raise OperationError(f"no message {message_id.hex()} in this node's outbox")
    if row.delivered_at is not None:
        raise OperationError(f"message {message_id.hex()} was delivered to {row.recipient}")
    if row.refused_at is None:
        raise OperationError(f"message {message_id.hex()} was not refused: it is still "
                             f"queued for {row.recipient}")
    ctx.conn.execute(update(outbox).where(outbox.c.message_id == message_id).values(
        refused_at=None, next_attempt_at=0))
    ctx.log_action("delivery-requeued", b"", peer=row.recipient, message_id=message_id)
    ctx.wake(row.recipient)
    return {"message_id": message_id.hex(), "recipient": row.recipient, "kind": row.kind}


def requeue_peer(ctx: Context, recipient: str) -> dict[str, Any]:
    """Requeue every message ``recipient`` refused for good (a directory entry fixed,
    say, after it refused them all), in their order; each logged as with ``requeue``."""
    ids = list(ctx.conn.scalars(select(outbox.c.message_id).where(
        outbox.c.recipient == recipient, outbox.c.delivered_at.is_(None),
        outbox.c.refused_at.is_not(None)).order_by(outbox.c.seq)))
    if not ids:
        raise OperationError(f"no message to {recipient} is set aside in this node's outbox")
    for message_id in ids:
        requeue(ctx, bytes(message_id))
    return {"recipient": recipient, "requeued": len(ids)}


def unauthenticated_counts(*, directory_adopted_at: datetime, now: datetime,
                           refresh_seconds: float) -> bool:
    """Whether a peer's UNAUTHENTICATED answer counts toward escalation yet.

    Members ask the office for a newer directory every ``[directory] refresh_seconds``
    (this node's own setting stands for the federation's). Until that long after this node
    adopted the directory in force, the peer may simply not have fetched it: it does not
    know this node yet (newly admitted) or not its current keys. Such an answer waits for
    that refresh and is retried without escalating; from then on it counts, as any
    refusal for good does. Pure: the caller finds the adoption time.
    """
    return now >= directory_adopted_at + timedelta(seconds=refresh_seconds)


def sets_aside(refusal: RefusedError) -> bool:
    """Whether ``refusal`` is about this message, so that it is set aside and the ones
    after it go on: a refusal for good. One that refuses the sender is not: it mostly says
    the peer does not know this node yet (its directory is behind), and then every message
    would be set aside; that message stays at the head, is retried and escalated, as for
    any failure."""
    return not refusal.retryable and not refusal.refuses_sender


@dataclass(frozen=True, slots=True)
class Setback:
    """What one failed delivery attempt changes (``plan_failure``)."""

    attempts: int  # the row's attempts, this one counted
    final: bool  # refused for good ("refused"), rather than "retry"
    escalate: bool  # the office is told now (once per message)


def plan_failure(*, attempts: int, escalated: bool, final: bool, counts: bool,
                 age_seconds: float, delivery: Delivery) -> Setback:
    """What a failed attempt means for the row: its ``attempts`` (this one counted),
    whether ``escalated`` already, whether the error is ``final`` (not retryable), whether
    it ``counts`` yet (``unauthenticated_counts``), and the message's age. The office is
    told once: at a refusal for good, or after ``delivery.escalate_after_attempts``
    attempts or ``escalate_after_seconds``, whichever comes first."""
    final = final and counts
    escalate = counts and not escalated and (
        final or attempts >= delivery.escalate_after_attempts
        or age_seconds >= delivery.escalate_after_seconds)
    return Setback(attempts, final, escalate)


def backoff_seconds(attempts: int, delivery: Delivery, *, jitter: float,
                    retry_after: float | None) -> float:
    """Seconds to wait after ``attempts`` failed ones: exponential, capped, times
    ``jitter`` (drawn from [0.5, 1]), and at least the receiver's ``retry_after``: it
    knows its load best."""
    delay = min(delivery.backoff_max_seconds,
                delivery.backoff_initial_seconds * 2.0 ** min(attempts, 20)) * jitter
    return delay if retry_after is None else max(delay, retry_after)


def _reason(error: BaseException) -> str:
    """What a failure is called in logs and metrics: a peer's status, else the type."""
    return error.code.name if isinstance(error, RefusedError) else type(error).__name__


async def _requests(due: list[Pending]) -> AsyncIterator[service_pb2.DeliverRequest]:
    for p in due:
        yield service_pb2.DeliverRequest(envelope=p.envelope)


def record_peer_checkpoint(cursor: DriverCursor, cp: note.Checkpoint, text: str,
                           now: datetime) -> None:
    """Keep a peer's checkpoint (once per origin, size and root) for witnessing."""
    if cursor.first(_PEER_CHECKPOINT_ID, (cp.origin, cp.size, cp.root)) is None:
        cursor.execute(_INSERT_PEER_CHECKPOINT, (cp.origin, cp.size, cp.root, text,
                                                 to_micros(now), False))
