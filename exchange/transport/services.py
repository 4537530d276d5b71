"""The Exchange and Ledger gRPC services: thin adapters from protobuf to the node runtime."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import grpc

from exchange.errors import (
    ExchangeError,
    LedgerError,
    NoteError,
    OperationError,
    OperatorNotAllowedError,
    OverloadedError,
    StorageUnavailableError,
    VerificationError,
)
from exchange.identity import Role
from exchange.ledger import note
from exchange.ledger.entries import Entry
from exchange.ledger.receipts import log_origin
from exchange.ledger.witness import held_checkpoint
from exchange.node import InOrder
from exchange.transport.server import abort_with, current_peer
from exchange.transport.status import RETRY_AFTER_METADATA, status_for
from exchange.wire.bcx.v1 import directory_pb2, service_pb2, service_pb2_grpc

if TYPE_CHECKING:
    from exchange.node import Node

log = logging.getLogger(__name__)

MAX_ENTRIES_PER_PAGE = 1000

# Refusals that say "not now": the same envelope will be accepted on a later try.
RETRY_LATER = (OverloadedError, StorageUnavailableError)


class ExchangeService(service_pb2_grpc.ExchangeServicer):
    def __init__(self, node: Node, *, stream_window: int,
                 stream_window_bytes: int = 8 * 1024 * 1024) -> None:
        self.node = node
        self.stream_window = stream_window
        self.stream_window_bytes = stream_window_bytes

    async def Deliver(self, request: service_pb2.DeliverRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> service_pb2.DeliverResponse:
        peer = current_peer.get().node_id
        try:
            outcome = await self.node.receive(request.envelope, peer)
        except ExchangeError as e:
            await _abort(context, e)  # the node has counted and logged the refusal
            raise  # unreachable: abort raises
        return service_pb2.DeliverResponse(receipt=outcome.receipt.to_pb())

    async def DeliverStream(
        self, request_iterator: AsyncIterator[service_pb2.DeliverRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[service_pb2.DeliverResponse]:
        """Answers in request order; checks run as requests arrive, logging is pipelined.

        At most ``stream_window`` messages, and at most ``stream_window_bytes`` of them,
        wait for the ledger at once (a decoded bulk message is many times its size);
        gRPC flow control then holds the sender back, so memory stays bounded.

        An envelope refused for good (bad signature, invalid body, …) is refused alone:
        it will never be applied, so applying those after it keeps the sender's order.
        An envelope refused for now (overloaded, database unavailable) will be applied on
        a later try, so nothing after it in this stream is applied: each later envelope
        gets the same "retry later" refusal and the sender resumes from the first.
        """
        peer = current_peer.get().node_id
        order = InOrder(self.node.retry_after)
        window: asyncio.Queue[tuple[asyncio.Future[Any] | BaseException, int] | None] = \
            asyncio.Queue(maxsize=self.stream_window)
        held: list[ExchangeError] = []  # the first "retry later" refusal, once there is one
        waiting_bytes = 0
        room = asyncio.Condition()

        async def admit() -> None:
            nonlocal waiting_bytes
            try:
                async for request in request_iterator:
                    size = len(request.envelope)
                    async with room:
                        # One envelope is always let in, however large (the size limit
                        # has its own check), so a stream cannot stall on its own window.
                        while waiting_bytes and \
                                waiting_bytes + size > self.stream_window_bytes:
                            await room.wait()
                        waiting_bytes += size
                    item: asyncio.Future[Any] | BaseException
                    if held:
                        item = held[0]
                    else:
                        try:
                            accepted = self.node.check(request.envelope, peer)
                            item = self.node.submit_receive(accepted, order)
                        except ExchangeError as e:
                            item = e
                            if isinstance(e, RETRY_LATER):
                                held.append(e)
                    await window.put((item, size))
            except Exception:
                log.exception("reading the stream from %s failed", peer)
                raise
            finally:
                await window.put(None)

        async def release(size: int) -> None:
            nonlocal waiting_bytes
            async with room:
                waiting_bytes -= size
                room.notify_all()

        reader = asyncio.ensure_future(admit())
        try:
            while True:
                entry = await window.get()
                if entry is None:
                    break
                item, size = entry
                if isinstance(item, BaseException):
                    await release(size)
                    yield _refusal(item)
                    continue
                try:
                    committed = await item
                    outcome = self.node.outcome(committed)
                except ExchangeError as e:
                    await release(size)
                    if isinstance(e, RETRY_LATER) and not held:
                        held.append(e)
                    yield _refusal(e)
                    continue
                await release(size)
                yield service_pb2.DeliverResponse(receipt=outcome.receipt.to_pb())
        finally:
            reader.cancel()
            # Nobody reads what is left. Empty the queue, so that the reader, if it is
            # blocked putting into a full one, can end; and cancel the work the ledger
            # writer has not started (no receipt would reach the sender; it retries).
            while not window.empty():
                left = window.get_nowait()
                if left is not None and isinstance(left[0], asyncio.Future):
                    left[0].cancel()

    async def GetDirectory(self, request: service_pb2.GetDirectoryRequest,
                           context: grpc.aio.ServicerContext[Any, Any]
                           ) -> directory_pb2.SignedDirectory:
        d = self.node.directory
        if request.newer_than >= d.version:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"no directory newer than version {request.newer_than}")
        signed = directory_pb2.SignedDirectory()
        signed.ParseFromString(self.node.signed_directory())
        return signed


def _refusal(error: BaseException) -> service_pb2.DeliverResponse:
    return service_pb2.DeliverResponse(error_code=status_for(error).value[0],
                                       error_message=str(error))


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: ExchangeError) -> None:
    if isinstance(error, OverloadedError):
        context.set_trailing_metadata(
            ((RETRY_AFTER_METADATA, str(int(error.retry_after * 1000))),))
    await abort_with(context, error)


class LedgerService(service_pb2_grpc.LedgerServicer):
    """Checkpoints and proofs are open to every member; entries only to their parties."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def _may_read(self, leaf: bytes) -> bool:
        caller = current_peer.get()
        if caller.role is Role.OFFICE:
            return True
        return Entry.decode(leaf).peer == caller.node_id

    async def GetCheckpoint(self, request: service_pb2.GetCheckpointRequest,
                            context: grpc.aio.ServicerContext[Any, Any]
                            ) -> service_pb2.GetCheckpointResponse:
        try:
            text = await asyncio.to_thread(self.node.store.latest_cosigned_checkpoint)
        except LedgerError as e:
            await abort_with(context, e)
        return service_pb2.GetCheckpointResponse(checkpoint=text)

    async def GetInclusionProof(self, request: service_pb2.GetInclusionProofRequest,
                                context: grpc.aio.ServicerContext[Any, Any]
                                ) -> service_pb2.GetInclusionProofResponse:
        try:
            # Database reads: off the event loop (to_thread carries the caller's identity).
            return await asyncio.to_thread(self._inclusion, request)
        except ExchangeError as e:
            await abort_with(context, e)
            raise

    def _inclusion(self, request: service_pb2.GetInclusionProofRequest
                   ) -> service_pb2.GetInclusionProofResponse:
        store = self.node.store
        if request.WhichOneof("leaf") == "message_digest":
            found = store.find(message_digest=request.message_digest)
            if not found:
                raise LedgerError("no entry of this ledger holds a message with that digest")
            # Prefer an entry the caller may read; proofs are open to every member.
            readable = [i for i in found if self._may_read(store.leaf(i))]
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
            leaf=leaf if self._may_read(leaf) else b"", checkpoint=store.cosigned(cp),
        )

    async def GetConsistencyProof(self, request: service_pb2.GetConsistencyProofRequest,
                                  context: grpc.aio.ServicerContext[Any, Any]
                                  ) -> service_pb2.GetConsistencyProofResponse:
        try:
            hashes = await asyncio.to_thread(self.node.store.consistency_proof,
                                             request.old_size, request.new_size)
        except ExchangeError as e:
            await abort_with(context, e)
            raise
        return service_pb2.GetConsistencyProofResponse(hashes=hashes)

    async def GetEntries(self, request: service_pb2.GetEntriesRequest,
                         context: grpc.aio.ServicerContext[Any, Any]
                         ) -> service_pb2.GetEntriesResponse:
        limit = min(request.limit or MAX_ENTRIES_PER_PAGE, MAX_ENTRIES_PER_PAGE)
        rows = await asyncio.to_thread(self.node.store.leaves, request.start, limit)
        out = service_pb2.GetEntriesResponse(
            next_start=(rows[-1][0] + 1) if rows else request.start)
        for index, leaf in rows:
            if self._may_read(leaf):
                out.entries.add(index=index, leaf=leaf)
        return out

    async def AddCosignature(self, request: service_pb2.AddCosignatureRequest,
                             context: grpc.aio.ServicerContext[Any, Any]
                             ) -> service_pb2.AddCosignatureResponse:
        witness = current_peer.get()
        node = self.node
        try:
            cp = note.parse_checkpoint(request.checkpoint)
            ours = node.store.checkpoint_at(cp.size)
            if note.parse_checkpoint(note.parse_note(ours.note).text) != cp:
                raise NoteError(f"this ledger never signed that checkpoint of size {cp.size}")
            name = log_origin(node.trust_domain, witness.node_id)
            verifier = note.Verifier.for_key(name, witness.signing_key,
                                             note.KIND_COSIGNATURE_V1)
            line = request.cosignature.rstrip("\n") + "\n"
            sig = note.parse_note(request.checkpoint + "\n" + line).signatures[0]
            timestamp = note.verify_cosignature(cp, sig, verifier)
        except (ExchangeError, IndexError) as e:
            err = e if isinstance(e, ExchangeError) else VerificationError(str(e))
            await abort_with(context, err)
            raise
        await node.committer.run(lambda txn: node.store.add_cosignature(
            txn.conn, size=cp.size, witness=witness.node_id, line=sig.line,
            timestamp=timestamp))
        return service_pb2.AddCosignatureResponse()

    async def GetHeldCheckpoint(self, request: service_pb2.GetHeldCheckpointRequest,
                                context: grpc.aio.ServicerContext[Any, Any]
                                ) -> service_pb2.GetHeldCheckpointResponse:
        """The largest checkpoint of the caller's ledger held here, so that a node
        restored from an older copy learns, before it serves, that it signed more."""
        caller = current_peer.get()
        origin = log_origin(self.node.trust_domain, caller.node_id)
        text = await asyncio.to_thread(held_checkpoint, self.node, origin)
        return service_pb2.GetHeldCheckpointResponse(checkpoint=text or "")


Operation = Callable[[dict[str, Any]], Awaitable[Any]]


class AdminService(service_pb2_grpc.AdminServicer):
    """Operator commands, from the node's own certificate only, to registered operations.

    The operations (and what their JSON arguments mean) belong to the agency code that
    registers them; this adapter authenticates, decodes JSON and maps errors to statuses.
    """

    def __init__(self, node: Node, operations: Mapping[str, Operation]) -> None:
        self.node = node
        self.operations = dict(operations)

    async def Operate(self, request: service_pb2.OperateRequest,
                      context: grpc.aio.ServicerContext[Any, Any]
                      ) -> service_pb2.OperateResponse:
        peer = current_peer.get().node_id
        try:
            if peer != self.node.node_id:
                raise OperatorNotAllowedError(
                    f"operator commands to {self.node.node_id} need its own certificate; "
                    f"{peer} may not send them")
            op = self.operations.get(request.operation)
            if op is None:
                known = ", ".join(sorted(self.operations)) or "none"
                raise OperationError(f"{self.node.node_id} has no operation "
                                     f"{request.operation!r} (known: {known})")
            try:
                arguments = json.loads(request.arguments_json or b"{}")
            except ValueError as e:
                raise OperationError(f"arguments of {request.operation} are not JSON: {e}") \
                    from e
            if not isinstance(arguments, dict):
                raise OperationError(f"arguments of {request.operation} must be a JSON object")
            result = await op(arguments)
        except ExchangeError as e:
            log.info("operation %s refused: %s: %s", request.operation, type(e).__name__, e)
            await _abort(context, e)
            raise  # unreachable: abort raises
        log.info("operation %s done", request.operation)
        return service_pb2.OperateResponse(result_json=json.dumps(result).encode())
