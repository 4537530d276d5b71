"""What the outbox makes of a failed delivery (pure parts of exchange.transport.outbox):
set aside or retried, escalated or not, and how long it waits."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.config import Delivery
from exchange.transport.outbox import Setback, backoff_seconds, plan_failure, sets_aside
from exchange.transport.status import refusal

Code = grpc.StatusCode
DELIVERY = Delivery(backoff_initial_seconds=0.5, backoff_max_seconds=60.0,
                    escalate_after_attempts=20, escalate_after_seconds=3600.0)

# (status, refused-for-good marker, set aside?)
SET_ASIDE = [
    (Code.INVALID_ARGUMENT, False, True),
    (Code.PERMISSION_DENIED, False, True),
    (Code.FAILED_PRECONDITION, False, True),
    (Code.OUT_OF_RANGE, False, True),
    (Code.RESOURCE_EXHAUSTED, True, True),  # over the receiver's size limit
    (Code.RESOURCE_EXHAUSTED, False, False),  # overloaded
    (Code.UNAVAILABLE, False, False),
    (Code.INTERNAL, False, False),
    (Code.UNAUTHENTICATED, False, False),  # refuses the sender: stays at the head
]


@pytest.mark.parametrize(("code", "marked", "expected"), SET_ASIDE)
def test_sets_aside(code: grpc.StatusCode, marked: bool, expected: bool) -> None:
    assert sets_aside(refusal(code, "why", refused_for_good=marked)) is expected


# (case, attempts, escalated, final, counts, age seconds, expected)
PLANS = [
    ("retryable, first attempt", 1, False, False, True, 1.0, Setback(1, False, False)),
    ("final: escalated at once", 1, False, True, True, 1.0, Setback(1, True, True)),
    ("final, escalated already", 1, True, True, True, 1.0, Setback(1, True, False)),
    ("retryable, attempts used up", 20, False, False, True, 1.0, Setback(20, False, True)),
    ("retryable, one attempt short", 19, False, False, True, 1.0, Setback(19, False, False)),
    ("retryable, too old", 2, False, False, True, 3600.0, Setback(2, False, True)),
    ("retryable, escalated already", 25, True, False, True, 7200.0, Setback(25, False, False)),
    ("does not count yet", 30, False, True, False, 7200.0, Setback(30, False, False)),
]


@pytest.mark.parametrize(("attempts", "escalated", "final", "counts", "age", "expected"),
                         [c[1:] for c in PLANS], ids=[c[0] for c in PLANS])
def test_plan_failure(attempts: int, escalated: bool, final: bool, counts: bool, age: float,
                      expected: Setback) -> None:
    assert plan_failure(attempts=attempts, escalated=escalated, final=final, counts=counts,
                        age_seconds=age, delivery=DELIVERY) == expected


@given(attempts=st.integers(min_value=1, max_value=10_000),
       jitter=st.floats(min_value=0.5, max_value=1.0),
       hint=st.none() | st.floats(min_value=0.0, max_value=3600.0))
def test_backoff_is_capped_jittered_and_at_least_the_receivers_hint(
        attempts: int, jitter: float, hint: float | None) -> None:
    delay = backoff_seconds(attempts, DELIVERY, jitter=jitter, retry_after=hint)
    own = min(60.0, 0.5 * 2 ** min(attempts, 20)) * jitter
    assert delay == (own if hint is None else max(own, hint))
    assert delay <= max(60.0, hint or 0.0)
    if hint is not None:
        assert delay >= hint


@pytest.mark.parametrize(("attempts", "expected"), [(1, 1.0), (2, 2.0), (6, 32.0), (7, 60.0),
                                                    (500, 60.0)])
def test_backoff_doubles_up_to_its_cap(attempts: int, expected: float) -> None:
    assert backoff_seconds(attempts, DELIVERY, jitter=1.0, retry_after=None) == expected
