"""Building a node for an agency: the exchange runtime plus that agency's behaviour.

The role comes from the signed directory, never from the configuration: a node listed
as a bureau gets the bureau's handlers, operator commands and deadline checks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exchange.config import NodeConfig
from exchange.errors import ExchangeError
from exchange.identity import Role
from exchange.node import Context, Handler, Node
from exchange.runtime import RunningNode
from nodes import bureau, carrier, commerce, office, police, registry, rules
from nodes.cli.queries import overdue_counts

log = logging.getLogger(__name__)

Deadlines = Callable[[Context], list[bytes]]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a role does on top of the exchange. Its operator commands are the
    ``nodes.registry`` commands that name the role, and the state rules before every
    handler are ``nodes.rules``."""

    handlers: Mapping[str, Handler]  # body kind -> handler
    deadlines: Deadlines | None = None  # escalates what is overdue; the message ids raised
    progress: Callable[[Context], dict[str, Any]] | None = None  # the periodic report


BEHAVIOUR: dict[Role, Behaviour] = {
    Role.POLICE: Behaviour(police.HANDLERS, police.overdue),
    Role.COMMERCE: Behaviour(commerce.HANDLERS, police.overdue),
    Role.BUREAU: Behaviour(bureau.HANDLERS, bureau.overdue_notices, bureau.send_progress),
    Role.CARRIER: Behaviour(carrier.HANDLERS, carrier.overdue),
    Role.OFFICE: Behaviour(office.HANDLERS),
}

# The metric of overdue obligations per message kind, from nodes.cli.queries.overdue_counts.
_OVERDUE_METRICS = (("notices", "shutdown_notice"), ("case_requests", "case_request"),
                    ("appeals", "appeal"), ("feedback", "number_report"))


def make_node(config: NodeConfig, **kw: Any) -> Node:
    """The node for ``config`` with the handlers of the role the directory gives it."""
    node = Node.open(config, **kw)
    node.handlers.update(BEHAVIOUR[node.me.role].handlers)
    node.responsibility = rules.check
    return node


class Scheduler:
    """Deadlines: escalate overdue obligations; bureaus also report progress to the office."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.behaviour = BEHAVIOUR[node.me.role]
        self._last_progress = time.monotonic()

    def tick(self, ctx: Context) -> dict[str, Any]:
        out: dict[str, Any] = {}
        raised = self.behaviour.deadlines(ctx) if self.behaviour.deadlines else []
        every = self.node.config.deadlines.progress_interval_seconds
        if self.behaviour.progress and time.monotonic() - self._last_progress >= every:
            out["progress"] = self.behaviour.progress(ctx)
            self._last_progress = time.monotonic()
        out["escalations"] = [r.hex() for r in raised if r]
        out["overdue"] = len(raised)
        overdue = overdue_counts(ctx.conn, now=ctx.now)
        for kind, message_kind in _OVERDUE_METRICS:
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


def make_running(config: NodeConfig, *, listen: str | None = None, **kw: Any) -> RunningNode:
    """A node ready to start: server, outbox, witness, deadline scheduler, and the operator
    commands of its role (nodes.registry) on its Admin service."""
    node = make_node(config, **kw)
    scheduler = Scheduler(node)
    running = RunningNode(node, listen=listen, background=[scheduler.run])
    running.operations.update(registry.operations(registry.OperatedNode(running, scheduler)))
    return running
