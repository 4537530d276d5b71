"""Feedback wording: what a bureau tells a reporter, and how the reporter reads it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nodes.shared.feedback import feedback, status_of_feedback
from nodes.shared.statuses import FINAL, Status
from shared.directory import NOW


@given(st.sampled_from(list(Status)), st.text(max_size=40))
def test_feedback_wording_round_trips(status: Status, detail: str) -> None:
    line = feedback("+8615959000001", status, detail=detail, report_id=bytes(16),
                    decided_at=NOW)
    got, reason = status_of_feedback(line)
    assert got is status
    assert reason == detail
    assert (got in FINAL) == (status in FINAL)
