"""How a bureau words one number's outcome in a Circular, and how a reporter reads it."""

from __future__ import annotations

import functools
from datetime import datetime

from exchange.messages import ActionOutcome, NumberOutcome
from nodes.shared.statuses import OUTCOME_OF_STATUS, STATUS_OF_OUTCOME, Status


def feedback(number: str, status: Status, *, detail: str = "", carrier_node: str = "",
             report_id: bytes, decided_at: datetime) -> NumberOutcome:
    """One number's line in a Circular to its reporter.

    A carrier's outcome travels as the ``outcome`` enum; the bureau's own verdicts
    (accepted and noticed, forwarded, rejected, unroutable, withdrawn) have no enum
    value, so they travel as ``detail`` = "<status>: <reason>".
    """
    outcome, text = _wording(status, detail)
    return NumberOutcome(number=number, outcome=outcome, carrier_node=carrier_node,
                         detail=text, report_id=report_id, decided_at=decided_at)


@functools.lru_cache(maxsize=1024)
def _wording(status: Status, detail: str) -> tuple[ActionOutcome | None, str]:
    # Once per distinct (status, detail): a bulk Circular repeats a handful of them.
    outcome = OUTCOME_OF_STATUS.get(status)
    text = detail if outcome is not None else f"{status.value}: {detail}" if detail \
        else status.value
    return outcome, text


def status_of_feedback(line: NumberOutcome) -> tuple[Status, str]:
    """The status and reason a Circular line reports (the inverse of ``feedback``)."""
    if line.outcome is not None:
        return STATUS_OF_OUTCOME[line.outcome], line.detail
    head, _, reason = line.detail.partition(": ")
    status = _STATUS_OF_VALUE.get(head)
    if status is None:
        return Status.NOTICED, line.detail
    return status, reason


_STATUS_OF_VALUE = {s.value: s for s in Status}
