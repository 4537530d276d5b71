"""Building a node for an agency: the exchange runtime plus that agency's behaviour.

The role comes from the signed directory, never from the configuration: a node listed
as a bureau gets the bureau's handlers, operator commands and deadline checks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from exchange.config import NodeConfig
from exchange.errors import DirectoryError, ExchangeError, OperationError
from exchange.identity import Role, SignedDirectory
from exchange.node import Context, Handler, Node
from exchange.runtime import RunningNode
from exchange.transport import outbox as outbox_queue
from nodes import bureau, carrier, commerce, office, police, rules
from nodes.operator import overdue_counts
from nodes.workflow import message_id_arg

log = logging.getLogger(__name__)

HANDLERS: dict[Role, Mapping[str, Handler]] = {
    Role.POLICE: police.HANDLERS,
    Role.BUREAU: bureau.HANDLERS,
    Role.CARRIER: carrier.HANDLERS,
    Role.COMMERCE: commerce.HANDLERS,
    Role.OFFICE: office.HANDLERS,
}

Work = Callable[..., Any]

# Operator commands per role: name -> function(ctx, **arguments), run in one transaction.
OPERATIONS: dict[Role, dict[str, Work]] = {
    Role.POLICE: {"report": police.report, "withdraw": police.withdraw, "ask": police.ask},
    Role.COMMERCE: {"report": police.report, "withdraw": police.withdraw,
                    "channel": commerce.channel_report},
    Role.BUREAU: {"decide": bureau.decide_appeal, "penalty": bureau.issue_penalty,
                  "progress": bureau.send_progress},
    Role.CARRIER: {"appeal": carrier.appeal, "id-report": carrier.id_concentration},
    Role.OFFICE: {},
}


def make_node(config: NodeConfig, **kw: Any) -> Node:
    """The node for ``config`` with the handlers of the role the directory gives it."""
    node = Node.open(config, **kw)
    node.handlers.update(HANDLERS[node.me.role])
    node.responsibility = rules.check
    return node


class Scheduler:
    """Deadlines: escalate overdue obligations; bureaus also report progress to the office."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._last_progress = time.monotonic()

    def tick(self, ctx: Context) -> dict[str, Any]:
        role = self.node.me.role
        raised: list[bytes] = []
        out: dict[str, Any] = {}
        if role is Role.BUREAU:
            raised += bureau.overdue_notices(ctx)
            every = self.node.config.deadlines.progress_interval_seconds
            if time.monotonic() - self._last_progress >= every:
                out["progress"] = bureau.send_progress(ctx)
                self._last_progress = time.monotonic()
        elif role in (Role.POLICE, Role.COMMERCE):
            raised += police.overdue(ctx)
        elif role is Role.CARRIER:
            raised += carrier.overdue(ctx)
        out["escalations"] = [r.hex() for r in raised if r]
        out["overdue"] = len(raised)
        overdue = overdue_counts(ctx.conn, now=ctx.now)
        for kind, message_kind in (("notices", "shutdown_notice"),
                                   ("case_requests", "case_request"),
                                   ("appeals", "appeal"), ("feedback", "number_report")):
            self.node.metrics.set_overdue(message_kind, overdue[kind])
        return out

    async def run(self, running: RunningNode) -> None:
        interval = self.node.config.deadlines.scheduler_interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                result = await self.node.run_work(self.tick)
                if result["overdue"]:
                    log.warning("node %s escalated %d overdue obligation(s)",
                                self.node.node_id, result["overdue"])
            except ExchangeError as e:
                log.warning("deadline check on %s failed, retrying in %.0fs: %s",
                            self.node.node_id, interval, e)


def retry_delivery(ctx: Context, message_id: str = "", peer: str = "") -> dict[str, Any]:
    """Requeue a message its peer refused for good, or every one ``peer`` refused, once
    the cause is fixed."""
    if bool(message_id) == bool(peer):
        raise OperationError("outbox-retry: give a message id or a peer, not both")
    if peer:
        ctx.directory.member(peer)  # a peer the directory does not list is named as such
        return outbox_queue.requeue_peer(ctx, peer)
    return outbox_queue.requeue(ctx, message_id_arg(message_id, "message"))


async def publish_directory(node: Node, directory: str) -> dict[str, Any]:
    """Office: adopt a newer signed directory (``bcx directory build``'s file, base64) and
    serve it; every other node fetches it on its next refresh. It must verify against the
    CA and the office's certificate and be newer than the one in force."""
    try:
        raw = base64.b64decode(directory, validate=True)
    except binascii.Error as e:
        raise OperationError(f"directory-publish: directory is not base64: {e}") from None
    try:
        d = await node.replace_directory(SignedDirectory.from_bytes(raw))
    except DirectoryError as e:
        raise OperationError(f"directory not published: {e}") from e
    return {"version": d.version, "members": len(d.members),
            "expires_at": d.expires_at.isoformat(timespec="seconds")}


def operations(node: Node, scheduler: Scheduler) -> dict[str, Callable[[dict[str, Any]],
                                                                     Awaitable[Any]]]:
    """The operator commands this node accepts over its Admin service."""
    table = dict(OPERATIONS[node.me.role])
    table["tick"] = scheduler.tick
    table["outbox-retry"] = retry_delivery
    ops = {name: _operation(name, fn, _in_one_transaction(node, fn))
           for name, fn in table.items()}
    if node.me.role is Role.OFFICE:
        ops["directory-publish"] = _operation(
            "directory-publish", publish_directory,
            lambda arguments: publish_directory(node, **arguments))
    return ops


# JSON types an operation's annotated parameters accept (annotations are strings here).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "bool": (bool,), "Sequence[str]": (list,),
}


def check_arguments(name: str, signature: inspect.Signature, arguments: dict[str, Any]
                    ) -> None:
    """Refuse arguments an operation does not take, lacks, or gets with the wrong JSON type."""
    try:
        signature.bind(None, **arguments)
    except TypeError as e:
        params = [p for p in signature.parameters if p != "ctx"]
        raise OperationError(f"{name}: {e} (arguments: {', '.join(params)})") from None
    for key, value in arguments.items():
        annotation = signature.parameters[key].annotation
        accepted = _JSON_TYPES.get(annotation if isinstance(annotation, str) else "")
        if accepted is None:
            continue
        wrong = not isinstance(value, accepted) or (int in accepted and isinstance(value, bool))
        if not wrong and annotation == "Sequence[str]":
            wrong = not all(isinstance(v, str) for v in value)
        if wrong:
            raise OperationError(f"{name}: argument {key} must be {annotation}, "
                                 f"got {type(value).__name__}")


def _operation(name: str, fn: Callable[..., Any],
               call: Callable[[dict[str, Any]], Awaitable[Any]]
               ) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    """An operator command: arguments checked against ``fn``'s signature, then ``call``."""
    signature = inspect.signature(fn)

    async def run(arguments: dict[str, Any]) -> Any:
        check_arguments(name, signature, arguments)
        return await call(arguments)
    return run


def _in_one_transaction(node: Node, fn: Work) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    """``fn(ctx, **arguments)`` as one unit of work in the node's ledger transaction."""
    return lambda arguments: node.run_work(lambda ctx: fn(ctx, **arguments))


def make_running(config: NodeConfig, *, listen: str | None = None, **kw: Any) -> RunningNode:
    """A node ready to start: server, outbox, witness, deadline scheduler, operator commands."""
    from nodes.federation import directory_refresh_operation

    node = make_node(config, **kw)
    scheduler = Scheduler(node)
    running = RunningNode(node, listen=listen, background=[scheduler.run],
                          operations=operations(node, scheduler))
    running.operations["directory-refresh"] = directory_refresh_operation(running)
    running.operations["audit-read"] = _operation(
        "audit-read", audit_read, lambda arguments: audit_read(running, **arguments))
    return running


async def audit_read(running: RunningNode, *, peer: str, reason: str, start: int = 0,
                     limit: int = 100) -> dict[str, Any]:
    """An auditor's read of ``peer``'s ledger beyond this node's own entries: logged here
    (ACTION audit-read) before asking, and by the peer, which serves it only if its
    [ledger] audit_readers lists this node."""
    import grpc

    from exchange.ledger.entries import Entry
    from exchange.transport.reads import read_entries

    running.node.directory.member(peer)  # a peer the directory does not list is named
    if not reason.strip():
        raise OperationError("audit-read: name the reason for reading (--reason)")
    try:
        page = await read_entries(running.node, running.peers, peer, start=start,
                                  limit=limit, audit_reason=reason)
    except grpc.aio.AioRpcError as e:
        raise OperationError(f"audit-read of {peer}: {e.code().name}: {e.details()}") from None
    entries = []
    for index, leaf in page.entries:
        entry = Entry.decode(leaf)
        entries.append({"index": index, "kind": entry.kind.name, "peer": entry.peer,
                        "message_id": entry.message_id.hex(), "subject": entry.subject,
                        "logged_at": entry.logged_at.isoformat(timespec="seconds"),
                        "leaf": base64.b64encode(leaf).decode()})
    return {"peer": peer, "read": len(entries), "next_start": page.next_start,
            "entries": entries}
