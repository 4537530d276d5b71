"""When a peer's UNAUTHENTICATED answer counts toward escalation: not before the peer has
had one directory refresh to learn of the directory that admitted (or re-keyed) us."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exchange.transport.outbox import unauthenticated_counts

ADOPTED = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

CASES = [
    # seconds since this node adopted the directory in force, refresh interval, counts
    (0, 300, False),  # just admitted: the peer has surely not refreshed yet
    (1, 300, False),
    (299.999, 300, False),
    (300, 300, True),  # one whole interval: the peer has asked the office since
    (301, 300, True),
    (86_400 * 20, 300, True),  # a long-standing directory: the refusal is real
    (5, 3600, False),
    (3599, 3600, False),
    (3600, 3600, True),
    (1.5, 1, True),
    (-5, 300, False),  # clock stepped back since adoption: still within the interval
]


@pytest.mark.parametrize(("since", "refresh", "counts"), CASES)
def test_unauthenticated_counts(since: float, refresh: float, counts: bool) -> None:
    now = ADOPTED + timedelta(seconds=since)
    assert unauthenticated_counts(directory_adopted_at=ADOPTED, now=now,
                                  refresh_seconds=refresh) is counts
