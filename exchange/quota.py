"""A storage quota per peer and per day: no member can fill another's disk.

A node stores what its peers send for good (the ledger is append-only), so a member
with valid keys could otherwise grow a peer's database as fast as the network allows
(40 channel reports of 4 MiB were accepted in under 5 s). Each peer may have this node
store ``[limits] quota_bytes_per_peer_per_day`` bytes of envelopes a day (UTC); beyond
that it is refused RESOURCE_EXHAUSTED, naming the quota, with a ``retry-after-ms`` hint
that reaches to the next day, so its outbox waits (and escalates) instead of retrying
in a loop. The refusal is retryable (``QuotaExceededError`` is an ``OverloadedError``):
the same message is accepted the next day, so it is not set aside.

``charge`` is the decision, pure. ``PeerQuotas`` holds today's usage in memory: charged
as a message passes the receive checks (so messages in flight together cannot pass the
quota), given back if it is not stored after all (refused later, a repeat of one stored,
its call gone), so a sender's retries never use it up. A node starts from what its
ledger already holds for the day, so restarting it does not give every peer a fresh
quota.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, func, select

from exchange.errors import QuotaExceededError
from exchange.ledger.entries import to_micros
from exchange.schema import inbox, ledger_leaves

QUOTA_KEY = "[limits] quota_bytes_per_peer_per_day"


@dataclass(frozen=True, slots=True)
class Usage:
    """Bytes a peer has had stored on ``day`` (UTC)."""

    day: date
    used: int


def day_of(now: datetime) -> date:
    return now.astimezone(UTC).date()


def next_day(now: datetime) -> datetime:
    return datetime.combine(day_of(now) + timedelta(days=1), time(), tzinfo=UTC)


def charge(usage: Usage, size: int, *, limit: int, peer: str, now: datetime) -> Usage:
    """The usage once ``size`` more bytes from ``peer`` are stored at ``now``, or
    QuotaExceededError if that would pass ``limit`` (the usage of another day is 0)."""
    day = day_of(now)
    used = usage.used if usage.day == day else 0
    if used + size > limit:
        wait = max((next_day(now) - now).total_seconds(), 1.0)
        raise QuotaExceededError(
            f"storage quota of {peer} on this node is used up for today: {used} of "
            f"{limit} bytes a day ({QUOTA_KEY}), a message of {size} bytes does not fit; "
            f"send again after {next_day(now).isoformat()}", retry_after=wait)
    return Usage(day, used + size)


UsageLoader = Callable[[datetime], Mapping[str, int]]


class PeerQuotas:
    """Today's usage of every peer; ``charge`` is called for each message received.

    The usage of the day the node starts in is read from the database once, when this is
    made (before the node serves); a day that begins while it runs begins empty.
    """

    def __init__(self, limit: int, load: UsageLoader, *, now: datetime) -> None:
        self.limit = limit
        self._day = day_of(now)
        start = datetime.combine(self._day, time(), tzinfo=UTC)
        self._usage = {p: Usage(self._day, n) for p, n in load(start).items()}
        self._lock = threading.Lock()

    def charge(self, peer: str, size: int, now: datetime) -> None:
        with self._lock:
            day = day_of(now)
            if day != self._day:
                self._usage, self._day = {}, day
            usage = self._usage.get(peer, Usage(day, 0))
            self._usage[peer] = charge(usage, size, limit=self.limit, peer=peer, now=now)

    def refund(self, peer: str, size: int) -> None:
        """Give back what ``charge`` took for a message that was not stored after all
        (refused later, a repeat, its call gone), so retries do not use up the quota."""
        with self._lock:
            usage = self._usage.get(peer)
            if usage is not None and usage.day == self._day:
                self._usage[peer] = Usage(usage.day, max(usage.used - size, 0))

    def used(self, peer: str) -> int:
        with self._lock:
            usage = self._usage.get(peer)
            return usage.used if usage is not None and usage.day == self._day else 0


def stored_since(engine: Engine) -> UsageLoader:
    """A loader of the bytes of the messages each peer has had this node log since a time.

    It goes through the inbox (small rows, one a message) to the leaves by index: the
    ledger's own rows hold the leaf before the columns a filter would need, and reading
    past large leaves costs their every page.
    """
    def load(since: datetime) -> dict[str, int]:
        leaf = ledger_leaves.c
        with engine.connect() as conn:
            rows = conn.execute(
                select(inbox.c.sender, func.sum(func.length(leaf.leaf)))
                .select_from(inbox.join(ledger_leaves, leaf.idx == inbox.c.leaf_idx))
                .where(inbox.c.received_at >= to_micros(since))
                .group_by(inbox.c.sender)).all()
        return {str(peer): int(n or 0) for peer, n in rows}
    return load
