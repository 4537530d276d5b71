"""The storage quota per peer and per day: the pure decision, then the held usage."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from exchange.errors import OverloadedError, QuotaExceededError
from exchange.quota import QUOTA_KEY, PeerQuotas, Usage, charge, next_day

BEIJING = timezone(timedelta(hours=8))
NOON = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TODAY = date(2026, 12, 4)

# (usage held, size, limit, now, used after | None when refused)
CHARGES = [
    (Usage(TODAY, 0), 100, 1000, NOON, 100),
    (Usage(TODAY, 900), 100, 1000, NOON, 1000),  # exactly the quota fits
    (Usage(TODAY, 901), 100, 1000, NOON, None),
    (Usage(TODAY, 0), 1001, 1000, NOON, None),  # one message larger than the quota
    (Usage(TODAY - timedelta(days=1), 1000), 100, 1000, NOON, 100),  # yesterday's is gone
    # 07:30 on the 5th in Beijing is 23:30 UTC on the 4th: the day is UTC's.
    (Usage(TODAY, 950), 100, 1000, datetime(2026, 12, 5, 7, 30, tzinfo=BEIJING), None),
]


@pytest.mark.parametrize(("usage", "size", "limit", "now", "after"), CHARGES)
def test_charge(usage: Usage, size: int, limit: int, now: datetime, after: int | None) -> None:
    if after is None:
        with pytest.raises(QuotaExceededError, match=r"storage quota of police\.fj"):
            charge(usage, size, limit=limit, peer="police.fj", now=now)
    else:
        assert charge(usage, size, limit=limit, peer="police.fj", now=now) == \
            Usage(TODAY, after)


def test_refusal_names_the_quota_and_waits_until_the_next_day() -> None:
    with pytest.raises(QuotaExceededError) as caught:
        charge(Usage(TODAY, 1000), 10, limit=1000, peer="commerce.fj", now=NOON)
    error = caught.value
    assert QUOTA_KEY in str(error)
    assert "1000 of 1000 bytes a day" in str(error)
    assert "2026-12-05T00:00:00+00:00" in str(error)
    assert error.retry_after == 12 * 3600
    # An overload: the receiver answers RESOURCE_EXHAUSTED with a retry-after hint, and
    # the sender's outbox waits that long instead of retrying in a loop.
    assert isinstance(error, OverloadedError)


def test_next_day_is_utc_midnight() -> None:
    assert next_day(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)) == \
        datetime(2027, 1, 1, tzinfo=UTC)


def test_usage_starts_from_what_the_ledger_holds_and_is_per_peer() -> None:
    loads: list[datetime] = []

    def load(since: datetime) -> dict[str, int]:
        loads.append(since)
        return {"police.fj": 900}

    quotas = PeerQuotas(1000, load, now=NOON)
    assert loads == [datetime(2026, 12, 4, tzinfo=UTC)]  # read once, at start
    quotas.charge("commerce.fj", 600, NOON)  # another peer's quota is its own
    quotas.charge("police.fj", 100, NOON)
    with pytest.raises(QuotaExceededError, match=r"1000 of 1000 bytes"):
        quotas.charge("police.fj", 1, NOON)
    assert quotas.used("police.fj") == 1000 and quotas.used("commerce.fj") == 600

    # A day that begins while the node runs begins empty, without reading the database.
    quotas.charge("police.fj", 1000, NOON + timedelta(days=1))
    assert len(loads) == 1
    assert quotas.used("police.fj") == 1000 and quotas.used("commerce.fj") == 0


def test_what_is_not_stored_is_given_back() -> None:
    quotas = PeerQuotas(1000, lambda since: {}, now=NOON)
    quotas.charge("police.fj", 800, NOON)
    with pytest.raises(QuotaExceededError):
        quotas.charge("police.fj", 800, NOON)  # a retry of it, while it is refused
    quotas.refund("police.fj", 800)  # the first was refused later (overloaded)
    quotas.charge("police.fj", 800, NOON)  # so its retry fits
    assert quotas.used("police.fj") == 800
    quotas.refund("police.fj", 5000)
    assert quotas.used("police.fj") == 0  # never below nothing
