"""What the office stores of a progress report (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from exchange.messages import Category, ProgressCount, ProgressReport
from nodes.office.decisions import progress_counts_json


def test_progress_counts_are_stored_one_object_per_carrier_and_category() -> None:
    report = ProgressReport(province="fj", as_of=datetime(2026, 11, 29, tzinfo=UTC), counts=(
        ProgressCount(carrier_node="cmcc.fj", category=Category.FRAUD, reported=5,
                      shut_down=3, pending=1, refused=1, overdue=0),
        ProgressCount(carrier_node="cucc.fj", reported=1)))
    assert json.loads(progress_counts_json(report)) == [
        {"carrier": "cmcc.fj", "category": "fraud", "reported": 5, "shut_down": 3,
         "pending": 1, "refused": 1, "overdue": 0},
        {"carrier": "cucc.fj", "category": "", "reported": 1, "shut_down": 0, "pending": 0,
         "refused": 0, "overdue": 0}]
