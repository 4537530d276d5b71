"""The Exchange and Ledger gRPC services: thin adapters from protobuf to the node runtime."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from sqlalchemy import Engine, select

from exchange import envelope, messages
from exchange.directory import DirectoryHolder
from exchange.errors import (
    LedgerError,
    NoteError,
    OperationError,
    OperatorNotAllowedError,
    ReadNotAllowedError,
    VerificationError,
)
from exchange.identity import Member
from exchange.inbox import Inbox
from exchange.ledger import note
from exchange.ledger.entries import Entry
from exchange.ledger.receipts import log_origin
from exchange.schema import outbox
from exchange.transport.server import current_peer
from exchange.transport.status import answer_for
from exchange.transport.witness import held_checkpoint
from exchange.wire.bcx.v1 import directory_pb2, service_pb2, service_pb2_grpc

if TYPE_CHECKING:
    from exchange.node import Node

log = logging.getLogger(__name__)

MAX_ENTRIES_PER_PAGE = 1000
# Call metadata naming why an auditor reads beyond its own entries (UTF-8, at most
# MAX_AUDIT_REASON_CHARS); see LedgerService.GetEntries.
AUDIT_REASON_METADATA = "bcx-audit-reason-bin"
MAX_AUDIT_REASON_CHARS = 500

# Out of the ledger writer while receiving, a LedgerError is this node's own failure
# (a handler's defect, a transaction that failed), never a refusal of the message.
RECEIVING_INTERNAL = (LedgerError,)


class ExchangeService(service_pb2_grpc.ExchangeServicer):
    """Deliver and DeliverStream: the inbox's one receive path; GetDirectory: the signed
    directory in force."""

    def __init__(self, inbox: Inbox, directories: DirectoryHolder, *, stream_window: int,
                 stream_window_bytes: int = 8 * 1024 * 1024) -> None:
        self.inbox = inbox
        self.directories = directories
        self.stream_window = stream_window
        self.stream_window_bytes = stream_window_bytes

    async def Deliver(self, request: service_pb2.DeliverRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> service_pb2.DeliverResponse:
        peer = current_peer.get().node_id
        try:
            outcome = await self.inbox.receive(request.envelope, peer)
        except Exception as e:
            # The inbox has counted and logged the refusal (by type only).
            await _abort(context, e, "Deliver", internal=RECEIVING_INTERNAL)
            raise  # unreachable: abort raises
        return service_pb2.DeliverResponse(receipt=outcome.receipt.to_pb())

    async def DeliverStream(
        self, request_iterator: AsyncIterator[service_pb2.DeliverRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[service_pb2.DeliverResponse]:
        """Answers in request order (see ``Inbox.receive_stream``: checks as requests
        arrive, logging pipelined, at most ``stream_window`` messages and
        ``stream_window_bytes`` waiting, after a "retry later" refusal nothing applied)."""
        peer = current_peer.get().node_id
        raws = (request.envelope async for request in request_iterator)
        async with contextlib.aclosing(self.inbox.receive_stream(
                raws, peer, window=self.stream_window,
                window_bytes=self.stream_window_bytes)) as results:
            async for result in results:
                if isinstance(result, Exception):
                    yield _refusal(result)
                else:
                    yield service_pb2.DeliverResponse(receipt=result.receipt.to_pb())

    async def GetDirectory(self, request: service_pb2.GetDirectoryRequest,
                           context: grpc.aio.ServicerContext[Any, Any]
                           ) -> directory_pb2.SignedDirectory:
        d = self.directories.current_directory()
        if request.newer_than >= d.version:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"no directory newer than version {request.newer_than}")
        signed = directory_pb2.SignedDirectory()
        try:
            signed.ParseFromString(await asyncio.to_thread(self.directories.signed_bytes))
        except Exception as e:
            await _abort(context, e, "GetDirectory")
            raise
        return signed


def _refusal(error: BaseException) -> service_pb2.DeliverResponse:
    return answer_for(error, where="DeliverStream", internal=RECEIVING_INTERNAL
                      ).stream_response()


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: BaseException,
                 where: str, *, internal: tuple[type[BaseException], ...] = (),
                 to_peer: bool = True) -> None:
    """End the call with the status and text ``answer_for`` gives ``error``."""
    if isinstance(error, grpc.aio.AbortError):
        raise error  # already aborted, with its own status
    answer = answer_for(error, where=where, internal=internal, to_peer=to_peer)
    await context.abort(answer.code, answer.details, answer.trailing_metadata())


@dataclass(frozen=True, slots=True)
class ReadScope:
    """The entries of this ledger one caller may read.

    ``party`` None: every entry (an audit read). Otherwise the entries whose peer is
    ``party``, and those naming one of ``message_ids``.
    """

    party: str | None
    message_ids: frozenset[bytes] = frozenset()
    audit_reason: str = ""

    def allows(self, entry: Entry) -> bool:
        return self.party is None or entry.peer == self.party or \
            (bool(entry.message_id) and entry.message_id in self.message_ids)


def read_scope(caller: Member, *, office_id: str, audit_reason: str,
               audit_readers: tuple[str, ...], escalated: frozenset[bytes]) -> ReadScope:
    """What ``caller`` may read of this ledger (pure).

    Every member reads checkpoints and proofs, and the entries it is party to. The office
    also reads the entries of each message this node escalated to it (their leaves are
    the evidence the escalation points at). More is an audit: the caller names its
    reason, and this node must list it in ``[ledger] audit_readers``.
    """
    if audit_reason:
        if caller.node_id not in audit_readers:
            raise ReadNotAllowedError(
                f"{caller.node_id} may read only the entries it is party to: this node does "
                "not list it in [ledger] audit_readers")
        if len(audit_reason) > MAX_AUDIT_REASON_CHARS or not audit_reason.isprintable():
            raise ReadNotAllowedError(
                f"an audit reason must be printable text of at most "
                f"{MAX_AUDIT_REASON_CHARS} characters")
        return ReadScope(None, audit_reason=audit_reason)
    return ReadScope(caller.node_id,
                     escalated if caller.node_id == office_id else frozenset())


class EscalatedMessages:
    """Ids of the messages this node escalated to the office, from its outbox."""

    def __init__(self, reader: Engine, *, office_id: str) -> None:
        self.reader = reader
        self.office_id = office_id
        self._ids: set[bytes] = set()
        self._seen = 0
        self._lock = threading.Lock()

    def ids(self) -> frozenset[bytes]:
        """Reads only rows queued since the last call (a thread's work: database reads)."""
        with self._lock:
            with self.reader.connect() as conn:
                rows = conn.execute(
                    select(outbox.c.seq, outbox.c.envelope)
                    .where(outbox.c.recipient == self.office_id,
                           outbox.c.kind == messages.Escalation.kind,
                           outbox.c.seq > self._seen)
                    .order_by(outbox.c.seq)).all()
            for row in rows:
                body = messages.decode_message(envelope.parse(bytes(row.envelope)).payload).body
                if isinstance(body, messages.Escalation) and body.subject_message_id:
                    self._ids.add(body.subject_message_id)
                self._seen = int(row.seq)
            return frozenset(self._ids)


def _audit_reason(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == AUDIT_REASON_METADATA:
            raw = value if isinstance(value, bytes) else str(value).encode()
            try:
                return raw.decode().strip()
            except UnicodeDecodeError:
                raise ReadNotAllowedError("the audit reason is not UTF-8 text") from None
    return ""


class LedgerService(service_pb2_grpc.LedgerServicer):
    """Checkpoints and proofs are open to every member; entries only to their parties.

    The office witnesses with checkpoints and consistency proofs alone; it reads the
    entries it is party to and those of messages escalated to it, not whole ledgers.
    """

    def __init__(self, node: Node, *, max_entries_bytes: int | None = None) -> None:
        self.node = node
        self.max_entries_bytes = max_entries_bytes or node.config.limits.max_entries_bytes
        self.escalated = EscalatedMessages(node.reader, office_id=node.config.office_id)

    def _scope(self, caller: Member, audit_reason: str = "") -> ReadScope:
        office = self.node.config.office_id
        return read_scope(caller, office_id=office, audit_reason=audit_reason,
                          audit_readers=self.node.config.audit_readers,
                          escalated=self.escalated.ids() if caller.node_id == office
                          else frozenset())

    async def GetCheckpoint(self, request: service_pb2.GetCheckpointRequest,
                            context: grpc.aio.ServicerContext[Any, Any]
                            ) -> service_pb2.GetCheckpointResponse:
        try:
            text = await asyncio.to_thread(self.node.store.latest_cosigned_checkpoint)
        except Exception as e:
            await _abort(context, e, "GetCheckpoint")
            raise
        return service_pb2.GetCheckpointResponse(checkpoint=text)

    async def GetInclusionProof(self, request: service_pb2.GetInclusionProofRequest,
                                context: grpc.aio.ServicerContext[Any, Any]
                                ) -> service_pb2.GetInclusionProofResponse:
        try:
            # Database reads: off the event loop (to_thread carries the caller's identity).
            return await asyncio.to_thread(self._inclusion, request)
        except Exception as e:
            await _abort(context, e, "GetInclusionProof")
            raise

    def _inclusion(self, request: service_pb2.GetInclusionProofRequest
                   ) -> service_pb2.GetInclusionProofResponse:
        store = self.node.store
        scope = self._scope(current_peer.get())
        if request.WhichOneof("leaf") == "message_digest":
            found = store.find(message_digest=request.message_digest)
            if not found:
                raise LedgerError("no entry of this ledger holds a message with that digest")
            # Prefer an entry the caller may read; proofs are open to every member.
            readable = [i for i in found if scope.allows(Entry.decode(store.leaf(i)))]
            index = (readable or found)[0]
        else:
            index = request.index
        latest = store.latest
        if latest is None:
            raise LedgerError("the ledger is empty: no checkpoint yet")
        cp = latest if request.tree_size in (0, latest.size) \
            else store.checkpoint_at(request.tree_size)
        hashes = store.inclusion_proof(index, cp.size)
        leaf = store.leaf(index)
        return service_pb2.GetInclusionProofResponse(
            index=index, tree_size=cp.size, hashes=hashes,
            leaf=leaf if scope.allows(Entry.decode(leaf)) else b"",
            checkpoint=store.cosigned(cp),
        )

    async def GetConsistencyProof(self, request: service_pb2.GetConsistencyProofRequest,
                                  context: grpc.aio.ServicerContext[Any, Any]
                                  ) -> service_pb2.GetConsistencyProofResponse:
        try:
            hashes = await asyncio.to_thread(self.node.store.consistency_proof,
                                             request.old_size, request.new_size)
        except Exception as e:
            await _abort(context, e, "GetConsistencyProof")
            raise
        return service_pb2.GetConsistencyProofResponse(hashes=hashes)

    async def GetEntries(self, request: service_pb2.GetEntriesRequest,
                         context: grpc.aio.ServicerContext[Any, Any]
                         ) -> service_pb2.GetEntriesResponse:
        """The entries from ``start`` on that the caller may read (see ``read_scope``).

        Chosen by the database, so others' entries are never loaded; at most ``limit``
        (capped) and at most ``[limits] max_entries_bytes`` of leaves; ``next_start``
        says where to go on (the log's size once nothing is left). An audit read (the
        reason in AUDIT_REASON_METADATA) is logged here as an ACTION ``audit-read``
        entry before anything is read.
        """
        caller = current_peer.get()
        limit = min(request.limit or MAX_ENTRIES_PER_PAGE, MAX_ENTRIES_PER_PAGE)
        try:
            scope = await asyncio.to_thread(self._scope, caller, _audit_reason(context))
            if scope.audit_reason:
                detail = json.dumps({"reader": caller.node_id, "reason": scope.audit_reason,
                                     "start": request.start, "limit": limit},
                                    sort_keys=True).encode()
                await self.node.run_work(lambda ctx: ctx.log_action(
                    "audit-read", detail, peer=caller.node_id))
                log.info("audit read by %s from index %d", caller.node_id, request.start)
            page, next_start = await asyncio.to_thread(
                self.node.store.entries_page, request.start, limit=limit,
                max_bytes=self.max_entries_bytes, party=scope.party,
                message_ids=scope.message_ids)
        except Exception as e:
            await _abort(context, e, "GetEntries")
            raise
        out = service_pb2.GetEntriesResponse(next_start=next_start)
        for index, leaf in page:
            out.entries.add(index=index, leaf=leaf)
        return out

    async def AddCosignature(self, request: service_pb2.AddCosignatureRequest,
                             context: grpc.aio.ServicerContext[Any, Any]
                             ) -> service_pb2.AddCosignatureResponse:
        witness = current_peer.get()
        node = self.node
        try:
            cp, sig, timestamp = self._verified_cosignature(request, witness)
            await node.committer.run(lambda txn: node.store.add_cosignature(
                txn.conn, size=cp.size, witness=witness.node_id, line=sig.line,
                timestamp=timestamp))
        except Exception as e:
            await _abort(context, e, "AddCosignature")
            raise
        return service_pb2.AddCosignatureResponse()

    def _verified_cosignature(self, request: service_pb2.AddCosignatureRequest,
                              witness: Member) -> tuple[note.Checkpoint, Any, int]:
        node = self.node
        cp = note.parse_checkpoint(request.checkpoint)
        ours = node.store.checkpoint_at(cp.size)
        if note.parse_checkpoint(note.parse_note(ours.note).text) != cp:
            raise NoteError(f"this ledger never signed that checkpoint of size {cp.size}")
        name = log_origin(node.trust_domain, witness.node_id)
        verifier = note.Verifier.for_key(name, witness.signing_key, note.KIND_COSIGNATURE_V1)
        line = request.cosignature.rstrip("\n") + "\n"
        try:
            sig = note.parse_note(request.checkpoint + "\n" + line).signatures[0]
        except IndexError as e:
            raise VerificationError(f"the cosignature line does not parse: {e}") from e
        return cp, sig, note.verify_cosignature(cp, sig, verifier)

    async def GetHeldCheckpoint(self, request: service_pb2.GetHeldCheckpointRequest,
                                context: grpc.aio.ServicerContext[Any, Any]
                                ) -> service_pb2.GetHeldCheckpointResponse:
        """The largest checkpoint of the caller's ledger held here, so that a node
        restored from an older copy learns, before it serves, that it signed more."""
        caller = current_peer.get()
        origin = log_origin(self.node.trust_domain, caller.node_id)
        try:
            text = await asyncio.to_thread(held_checkpoint, self.node, origin)
        except Exception as e:
            await _abort(context, e, "GetHeldCheckpoint")
            raise
        return service_pb2.GetHeldCheckpointResponse(checkpoint=text or "")


Operation = Callable[[dict[str, Any]], Awaitable[Any]]


class AdminService(service_pb2_grpc.AdminServicer):
    """Operator commands, from the node's own certificate only, to registered operations.

    The operations (and what their JSON arguments mean) belong to the agency code that
    registers them; this adapter authenticates, decodes JSON and maps errors to statuses.
    """

    def __init__(self, node_id: str, operations: Mapping[str, Operation]) -> None:
        self.node_id = node_id
        self.operations = dict(operations)

    async def Operate(self, request: service_pb2.OperateRequest,
                      context: grpc.aio.ServicerContext[Any, Any]
                      ) -> service_pb2.OperateResponse:
        try:
            op, arguments = self._resolve(request, current_peer.get().node_id)
            result = await op(arguments)
        except Exception as e:
            # The operator is told why; the log gets the type only, as the text may quote
            # the command's numbers, names or ID numbers.
            log.info("operation %s refused: %s", request.operation, type(e).__name__)
            await _abort(context, e, "Operate", to_peer=False)
            raise  # unreachable: abort raises
        log.info("operation %s done", request.operation)
        return service_pb2.OperateResponse(result_json=json.dumps(result).encode())

    def _resolve(self, request: service_pb2.OperateRequest, peer: str
                 ) -> tuple[Operation, dict[str, Any]]:
        if peer != self.node_id:
            raise OperatorNotAllowedError(
                f"operator commands to {self.node_id} need its own certificate; "
                f"{peer} may not send them")
        op = self.operations.get(request.operation)
        if op is None:
            known = ", ".join(sorted(self.operations)) or "none"
            raise OperationError(f"{self.node_id} has no operation "
                                 f"{request.operation!r} (known: {known})")
        try:
            arguments = json.loads(request.arguments_json or b"{}")
        except ValueError as e:
            raise OperationError(f"arguments of {request.operation} are not JSON: {e}") from e
        if not isinstance(arguments, dict):
            raise OperationError(f"arguments of {request.operation} must be a JSON object")
        return op, arguments
