"""Feedback wording: what a bureau tells a reporter, and how the reporter reads it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.messages import ActionOutcome, NumberOutcome, Verdict
from nodes.shared.feedback import Told, feedback, status_of_feedback
from nodes.shared.statuses import FINAL, Status
from shared.directory import NOW

TOLD = [s for s in Status if s is not Status.REPORTED]  # what a bureau can tell


@given(st.sampled_from(TOLD), st.text(max_size=40), st.booleans(),
       st.sampled_from(["", "bureau.gd"]))
def test_feedback_wording_round_trips(status: Status, detail: str, known: bool,
                                      bureau: str) -> None:
    line = feedback("+8615959000001", status, detail=detail, forwarded_to=bureau,
                    already_known=known, report_id=bytes(16), decided_at=NOW)
    told = status_of_feedback(line)
    assert told.status is status
    assert told.reason == detail  # the reason alone, never "<status>: <reason>"
    assert told.already_known == known
    assert told.forwarded_to == (bureau if status is Status.FORWARDED else "")
    assert (told.status in FINAL) == (status in FINAL)
    # One of outcome and verdict says it, never both.
    assert (line.outcome is None) != (line.verdict is None)


@pytest.mark.parametrize(("status", "outcome", "verdict"), [
    (Status.SHUT_DOWN, ActionOutcome.SHUT_DOWN, None),
    (Status.NOT_OUR_SUBSCRIBER, ActionOutcome.NOT_OUR_SUBSCRIBER, None),
    (Status.RESTORED, ActionOutcome.RESTORED, None),
    (Status.NOTICED, None, Verdict.NOTICED),
    (Status.FORWARDED, None, Verdict.FORWARDED),
    (Status.REJECTED, None, Verdict.REJECTED),
    (Status.UNROUTABLE, None, Verdict.UNROUTABLE),
    (Status.WITHDRAWN, None, Verdict.WITHDRAWN),
])
def test_a_status_travels_as_the_carriers_outcome_or_the_bureaus_verdict(
        status: Status, outcome: ActionOutcome | None, verdict: Verdict | None) -> None:
    line = feedback("+8615959000001", status, detail="why", report_id=bytes(16),
                    decided_at=NOW)
    assert (line.outcome, line.verdict, line.detail) == (outcome, verdict, "why")


def test_reported_is_no_feedback() -> None:
    with pytest.raises(ValueError, match="status 'reported' is no outcome a bureau tells"):
        feedback("+8615959000001", Status.REPORTED, report_id=bytes(16), decided_at=NOW)


def test_a_line_with_neither_outcome_nor_verdict_reads_as_noticed() -> None:
    assert status_of_feedback(NumberOutcome(number="+8615959000001", detail="x")) == \
        Told(Status.NOTICED, "x")
