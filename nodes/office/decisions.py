"""What the national office keeps of a bureau's progress report, pure."""

from __future__ import annotations

import json

from exchange import messages


def progress_counts_json(report: messages.ProgressReport) -> str:
    """The report's counts as stored: one object per carrier and category."""
    return json.dumps([{
        "carrier": c.carrier_node, "category": c.category.value if c.category else "",
        "reported": c.reported, "shut_down": c.shut_down, "pending": c.pending,
        "refused": c.refused, "overdue": c.overdue} for c in report.counts])
