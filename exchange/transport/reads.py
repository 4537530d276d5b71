"""Reading from peers: ledger entries (a party's own, or an auditor's wider read), the
checkpoint a witness holds of this node, and a newer directory from the office.

A member reads of a peer's ledger the entries it is party to (the peer's
``LedgerService.GetEntries`` chooses them). An audit reads more: the reader names its
reason, which travels as call metadata; the peer serves it only if its
``[ledger] audit_readers`` lists the reader, and both ledgers keep an ACTION
``audit-read`` entry naming reader, peer and reason (this side's before asking).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from exchange.errors import OperationError
from exchange.identity import SignedDirectory
from exchange.transport.services import (
    AUDIT_REASON_METADATA,
    MAX_AUDIT_REASON_CHARS,
    MAX_ENTRIES_PER_PAGE,
)
from exchange.wire.bcx.v1 import service_pb2

if TYPE_CHECKING:
    from exchange.node import Node
    from exchange.transport.client import Peers

AUDIT_READ = "audit-read"


@dataclass(frozen=True, slots=True)
class Page:
    entries: tuple[tuple[int, bytes], ...]  # (index, leaf) in ledger order
    next_start: int


async def newer_directory(peers: Peers, office_id: str, *, newer_than: int,
                          timeout: float = 10.0) -> SignedDirectory | None:
    """The office's signed directory if it holds one newer than version ``newer_than``,
    else None. grpc.aio.AioRpcError if the office could not be asked."""
    try:
        response = await peers.exchange(office_id).GetDirectory(
            service_pb2.GetDirectoryRequest(newer_than=newer_than), timeout=timeout)
    except grpc.aio.AioRpcError as e:
        if e.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return SignedDirectory(response.envelope, response.signer_certificate_pem)


async def held_checkpoint_of_me(peers: Peers, witness: str, *, timeout: float) -> str:
    """The signed checkpoint note of this node's ledger that ``witness`` holds ("" if it
    holds none). grpc.aio.AioRpcError if it cannot be asked."""
    response = await peers.ledger(witness).GetHeldCheckpoint(
        service_pb2.GetHeldCheckpointRequest(), timeout=timeout)
    return str(response.checkpoint)


async def read_entries(node: Node, peers: Peers, peer: str, *, start: int = 0,
                       limit: int = MAX_ENTRIES_PER_PAGE, audit_reason: str = "",
                       timeout: float = 30.0) -> Page:
    """One page of ``peer``'s entries from ``start``; with ``audit_reason``, an audit."""
    metadata: tuple[tuple[str, bytes], ...] = ()
    reason = audit_reason.strip()
    if reason:
        if len(reason) > MAX_AUDIT_REASON_CHARS or not reason.isprintable():
            raise OperationError(f"an audit reason must be printable text of at most "
                                 f"{MAX_AUDIT_REASON_CHARS} characters")
        detail = json.dumps({"peer": peer, "reason": reason, "start": start, "limit": limit},
                            sort_keys=True).encode()
        await node.run_work(lambda ctx: ctx.log_action(AUDIT_READ, detail, peer=peer))
        metadata = ((AUDIT_REASON_METADATA, reason.encode()),)
    response = await peers.ledger(peer).GetEntries(
        service_pb2.GetEntriesRequest(start=start, limit=limit), metadata=metadata,
        timeout=timeout)
    return Page(tuple((e.index, e.leaf) for e in response.entries), response.next_start)


async def read_all(node: Node, peers: Peers, peer: str, *, start: int = 0, end: int,
                   audit_reason: str = "") -> AsyncIterator[Page]:
    """Pages from ``start`` until ``next_start`` reaches ``end`` (a size the caller
    chose: an audit read adds an entry to the peer's ledger each time)."""
    while start < end:
        page = await read_entries(node, peers, peer, start=start, audit_reason=audit_reason)
        yield page
        if page.next_start <= start:
            return
        start = page.next_start
