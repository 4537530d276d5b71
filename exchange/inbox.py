"""Receiving (docs/architecture.md#receiving): check, admit, apply, answer.

The checks of ``exchange.receive`` run on the event loop; then logging RECEIVED, recording
the message for idempotence (its ``inbox`` row) and the handlers' workflow change run in
one ledger transaction (group-committed); the receipt is built only once that transaction
is durable. ``Inbox.receive_stream`` is the one receive path: a stream of envelopes is
checked as it arrives and logged pipelined, in order (``receive_in_order``);
``Inbox.receive``, for a unary call, is its one-message case.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from exchange import messages, quota
from exchange import receive as checks
from exchange.errors import (
    ExchangeError,
    InvalidBodyError,
    LedgerError,
    OverloadedError,
    StorageUnavailableError,
)
from exchange.identity import Directory
from exchange.ledger.entries import Entry, EntryKind, Receipt, to_micros
from exchange.ledger.store import SignedCheckpoint
from exchange.metrics import ACCEPTED, DUPLICATE, REFUSED, UNKNOWN, NodeMetrics
from exchange.schema import inbox
from exchange.storage.statements import DriverStatement, insert_sql
from exchange.storage.unitofwork import Committed, GroupCommitter, Transaction
from exchange.transport.status import retryable

log = logging.getLogger(__name__)

# These run for every message, on the driver (see exchange/ledger/store.py).
_SEEN = DriverStatement(
    "SELECT leaf_idx, message_digest FROM inbox WHERE sender = ? AND message_id = ?")
_INSERT_INBOX = insert_sql(inbox, ("sender", "message_id", "leaf_idx",
                                           "message_digest", "kind", "received_at"))

# Refusals that say "not now": the same envelope will be accepted on a later try.
RETRY_LATER = (OverloadedError, StorageUnavailableError)

# What applying a message in its transaction does, for the handlers (see exchange.node).
Handle = Callable[[Transaction, checks.Accepted], list[str]]


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
        if self.first_failure is None and retryable(error):
            self.first_failure = error

    def check(self, header: messages.Header) -> None:
        if self.first_failure is not None:
            raise OverloadedError(
                f"message {header.message_id.hex()} follows one of this stream that was not "
                f"logged ({type(self.first_failure).__name__}); send again from that one",
                retry_after=self.retry_after)


@dataclass(frozen=True, slots=True)
class Applied:
    """What logging one message did: its RECEIVED entry (the earlier one for a repeat)
    and the recipients whose outbox workers must look at their queues."""

    leaf_idx: int
    duplicate: bool
    to_wake: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiveOutcome:
    receipt: Receipt
    duplicate: bool


class Receipts(Protocol):
    """What answering needs of the ledger: receipts, and the checkpoint they carry."""

    def checkpoint_covering(self, index: int) -> SignedCheckpoint: ...

    def receipt(self, index: int, checkpoint: SignedCheckpoint) -> Receipt: ...


def repeat_of(header: messages.Header, digest: bytes, seen: tuple[int, bytes] | None
              ) -> int | None:
    """The ledger index of the earlier copy if this message was received before (``seen``
    is its inbox row's leaf index and digest), else None; a message id used before for a
    message with another digest is refused."""
    if seen is None:
        return None
    leaf_idx, earlier = seen
    if bytes(earlier) != digest:
        raise InvalidBodyError(
            f"message id {header.message_id.hex()} from {header.sender} was already "
            "used for a different message")
    return int(leaf_idx)


class PeerAdmission:
    """At most ``max_pending`` messages of each peer wait for the ledger at once, so one
    peer cannot fill the writer's queue for all."""

    def __init__(self, max_pending: int, *, retry_after: float) -> None:
        self.max_pending = max_pending
        self.retry_after = retry_after
        self._pending: dict[str, int] = {}

    def admit(self, peer: str) -> None:
        held = self._pending.get(peer, 0)
        if held >= self.max_pending:
            raise OverloadedError(
                f"{held} messages from {peer} are waiting to be logged; retry later",
                retry_after=self.retry_after,
            )
        self._pending[peer] = held + 1

    def release(self, peer: str) -> None:
        self._pending[peer] = self._pending.get(peer, 1) - 1

    def pending(self, peer: str) -> int:
        return self._pending.get(peer, 0)


class Inbox:
    """Checks, admits, applies and answers the messages this node receives."""

    def __init__(self, *, node_id: str, directory: Callable[[], Directory],
                 clock: Callable[[], datetime], limits: checks.Limits,
                 body_checks: Mapping[str, checks.BodyCheck], quotas: quota.PeerQuotas,
                 admission: PeerAdmission, committer: GroupCommitter, receipts: Receipts,
                 metrics: NodeMetrics, handle: Handle,
                 wake: Callable[[Iterable[str]], None]) -> None:
        self.node_id = node_id
        self.limits = limits
        self.body_checks = dict(body_checks)
        self.admission = admission
        self._directory = directory
        self._clock = clock
        self._quotas = quotas
        self._committer = committer
        self._receipts = receipts
        self._metrics = metrics
        self._handle = handle
        self._wake = wake

    @property
    def retry_after(self) -> float:
        return self.admission.retry_after

    # --- check and admit ------------------------------------------------------------

    def check(self, raw: bytes, peer: str) -> checks.Accepted:
        """The pure checks of docs/messages.md#how-a-receiver-checks-a-message against
        the directory in force now; charges the sender's quota."""
        now = self._clock()
        directory = self._directory()
        try:
            directory.check_current(now)
            accepted = checks.check_incoming(raw, directory=directory, me=self.node_id,
                                              peer=peer, now=now, limits=self.limits,
                                              body_checks=self.body_checks)
            self._quotas.charge(accepted.sender.node_id, len(raw), now)
            return accepted
        except ExchangeError as e:
            self._refused(peer, None, e)
            raise

    def accept(self, raw: bytes, peer: str, order: InOrder
               ) -> asyncio.Future[Committed[Applied]]:
        """Check ``raw`` and queue it for logging after the messages ``order`` saw."""
        accepted = self.check(raw, peer)
        try:
            self.admission.admit(peer)
        except ExchangeError as e:
            self._refused(peer, accepted, e)
            raise

        def work(txn: Transaction) -> Applied:
            order.check(accepted.message.header)
            return self._apply(txn, accepted)
        try:
            fut = asyncio.wrap_future(self._committer.submit(work, on_failure=order.failed))
        except ExchangeError as e:
            self.admission.release(peer)
            self._refused(peer, accepted, e)
            raise
        fut.add_done_callback(lambda f: self._settled(peer, accepted, f))
        return fut

    # --- apply ----------------------------------------------------------------------

    def _apply(self, txn: Transaction, accepted: checks.Accepted) -> Applied:
        header = accepted.message.header
        earlier = repeat_of(header, accepted.digest,
                            txn.cursor.first(_SEEN, (header.sender, header.message_id)))
        if earlier is not None:
            return Applied(earlier, duplicate=True)
        idx = txn.append(Entry(
            EntryKind.RECEIVED, header.sender, txn.now, message_id=header.message_id,
            message_digest=accepted.digest, envelope=accepted.envelope.raw,
            subject=accepted.message.kind,
        ))
        txn.cursor.execute(_INSERT_INBOX, (header.sender, header.message_id, idx,
                                           accepted.digest, accepted.message.kind,
                                           to_micros(txn.now)))
        return Applied(idx, duplicate=False, to_wake=tuple(self._handle(txn, accepted)))

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

    # --- answer ---------------------------------------------------------------------

    def answer(self, committed: Committed[Applied]) -> ReceiveOutcome:
        """Wake the outboxes the handlers queued for, and build the receipt."""
        applied = committed.result
        if applied.to_wake:
            self._wake(applied.to_wake)
        if applied.duplicate or committed.checkpoint is None:
            # The first checkpoint covering the leaf is the one the first receipt carried.
            cp = self._receipts.checkpoint_covering(applied.leaf_idx)
        else:
            cp = committed.checkpoint
        return ReceiveOutcome(self._receipts.receipt(applied.leaf_idx, cp), applied.duplicate)

    async def receive(self, raw: bytes, peer: str) -> ReceiveOutcome:
        """Check, log and apply one message; return its receipt once durable.

        The one-message case of ``receive_stream``: the same accept and answer, with
        nothing before it to keep order with and no window to bound.
        """
        return self.answer(await self.accept(raw, peer, InOrder(self.retry_after)))

    def receive_stream(self, raws: AsyncIterator[bytes], peer: str, *, window: int,
                       window_bytes: int) -> AsyncGenerator[ReceiveOutcome | Exception, None]:
        """Each envelope's outcome or refusal, in the order the envelopes came (see
        ``receive_in_order``)."""
        return receive_in_order(self, raws, peer, window=window, window_bytes=window_bytes)

    # --- counting and logging -------------------------------------------------------

    def _settled(self, peer: str, accepted: checks.Accepted,
                 fut: asyncio.Future[Committed[Applied]]) -> None:
        """Count and log what became of a message once its transaction ended."""
        self.admission.release(peer)
        if fut.cancelled():
            self._quotas.refund(accepted.sender.node_id, len(accepted.envelope.raw))
            return
        error = fut.exception()
        if error is not None:
            self._refused(peer, accepted, error)
            return
        applied = fut.result().result
        if applied.duplicate:  # stored once already: a repeat costs the peer's quota nothing
            self._quotas.refund(accepted.sender.node_id, len(accepted.envelope.raw))
        outcome = DUPLICATE if applied.duplicate else ACCEPTED
        header = accepted.message.header
        self._metrics.received(accepted.message.kind, outcome)
        log.info("message received kind=%s id=%s sender=%s recipient=%s digest=%s leaf=%d "
                 "outcome=%s", accepted.message.kind, header.message_id.hex(), header.sender,
                 header.recipient, accepted.digest.hex()[:16], applied.leaf_idx, outcome)

    def _refused(self, peer: str, accepted: checks.Accepted | None,
                 error: BaseException) -> None:
        # Only the error's type: its text may quote the message's numbers.
        kind = accepted.message.kind if accepted else UNKNOWN
        if accepted is not None:  # charged to the peer's quota by check, stored not
            self._quotas.refund(accepted.sender.node_id, len(accepted.envelope.raw))
        self._metrics.refused(kind, error)
        if accepted is None:
            log.info("message refused kind=%s peer=%s recipient=%s outcome=%s error=%s",
                     kind, peer, self.node_id, REFUSED, type(error).__name__)
        else:
            header = accepted.message.header
            log.info("message refused kind=%s id=%s sender=%s recipient=%s digest=%s "
                     "outcome=%s error=%s", kind, header.message_id.hex(), header.sender,
                     header.recipient, accepted.digest.hex()[:16], REFUSED,
                     type(error).__name__)


class Intake(Protocol):
    """What ``receive_in_order`` needs of an inbox."""

    @property
    def retry_after(self) -> float: ...

    def accept(self, raw: bytes, peer: str, order: InOrder
               ) -> asyncio.Future[Committed[Applied]]: ...

    def answer(self, committed: Committed[Applied]) -> ReceiveOutcome: ...


async def receive_in_order(intake: Intake, raws: AsyncIterator[bytes], peer: str, *,
                           window: int, window_bytes: int
                           ) -> AsyncGenerator[ReceiveOutcome | Exception, None]:
    """Each envelope's outcome or refusal, in the order the envelopes came.

    Checks run as envelopes arrive and logging is pipelined. At most ``window``
    envelopes, and at most ``window_bytes`` of them, wait for the ledger at once (a
    decoded bulk message is many times its size); reading ``raws`` then waits, so
    memory stays bounded.

    An envelope refused for good (bad signature, invalid body, …) is refused alone:
    it will never be applied, so applying those after it keeps the sender's order.
    An envelope refused for now (overloaded, database unavailable) will be applied on
    a later try, so nothing after it is applied: each later envelope gets the same
    "retry later" refusal and the sender resumes from the first.
    """
    stream = _Stream(intake, peer, window=window, window_bytes=window_bytes)
    reader = asyncio.ensure_future(stream.admit_all(raws))
    try:
        while (waiting := await stream.queue.get()) is not None:
            yield await stream.settle(*waiting)
    finally:
        reader.cancel()
        stream.cancel_left()


Waiting = tuple["asyncio.Future[Committed[Applied]] | Exception", int]


class _Stream:
    """One incoming stream: its envelopes waiting for the ledger, in order, and the window
    that bounds them."""

    def __init__(self, intake: Intake, peer: str, *, window: int, window_bytes: int) -> None:
        self.intake = intake
        self.peer = peer
        self.order = InOrder(intake.retry_after)
        self.queue: asyncio.Queue[Waiting | None] = asyncio.Queue(maxsize=window)
        self.window_bytes = window_bytes
        self.waiting_bytes = 0
        self.room = asyncio.Condition()
        # The first "retry later" refusal, once there is one: every later envelope gets it.
        self.held: Exception | None = None

    async def admit_all(self, raws: AsyncIterator[bytes]) -> None:
        try:
            async for raw in raws:
                size = len(raw)
                await self.make_room(size)
                await self.queue.put((self.start(raw), size))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # The type only: the error's text may quote what the stream carried.
            log.warning("reading the stream from %s failed: %s", self.peer, type(e).__name__)
            raise
        finally:
            await self.queue.put(None)

    def start(self, raw: bytes) -> asyncio.Future[Committed[Applied]] | Exception:
        if self.held is not None:
            return self.held
        try:
            return self.intake.accept(raw, self.peer, self.order)
        except Exception as e:  # noqa: BLE001 - answered as a refusal
            if isinstance(e, RETRY_LATER):
                self.held = e
            return e

    async def make_room(self, size: int) -> None:
        async with self.room:
            # One envelope is always let in, however large (the size limit has its own
            # check), so a stream cannot stall on its own window.
            while self.waiting_bytes and self.waiting_bytes + size > self.window_bytes:
                await self.room.wait()
            self.waiting_bytes += size

    async def release(self, size: int) -> None:
        async with self.room:
            self.waiting_bytes -= size
            self.room.notify_all()

    async def settle(self, item: asyncio.Future[Committed[Applied]] | Exception, size: int
                     ) -> ReceiveOutcome | Exception:
        if isinstance(item, Exception):
            await self.release(size)
            return item
        try:
            outcome = self.intake.answer(await item)
        except Exception as e:  # noqa: BLE001 - answered as a refusal
            await self.release(size)
            if isinstance(e, RETRY_LATER) and self.held is None:
                self.held = e
            return e
        await self.release(size)
        return outcome

    def cancel_left(self) -> None:
        """Nobody reads what is left. Empty the queue, so that the reader, if it is
        blocked putting into a full one, can end; and cancel the work the ledger writer
        has not started (no receipt would reach the sender; it retries)."""
        while not self.queue.empty():
            left = self.queue.get_nowait()
            if left is not None and isinstance(left[0], asyncio.Future):
                left[0].cancel()
