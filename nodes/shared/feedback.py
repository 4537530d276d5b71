"""How a bureau words one number's outcome in a Circular, and how a reporter reads it.

A carrier's outcome travels as ``NumberOutcome.outcome``; the bureau's own verdict
(noticed, forwarded, rejected, unroutable, withdrawn) as ``verdict``, the bureau a
forwarded number went to as ``forwarded_to``, and "this bureau had the number already"
as ``already_known``. ``detail`` is only the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from exchange.messages import NumberOutcome
from nodes.shared.statuses import (
    OUTCOME_OF_STATUS,
    STATUS_OF_OUTCOME,
    STATUS_OF_VERDICT,
    VERDICT_OF_STATUS,
    Status,
)


def feedback(number: str, status: Status, *, detail: str = "", carrier_node: str = "",
             forwarded_to: str = "", already_known: bool = False, report_id: bytes,
             decided_at: datetime) -> NumberOutcome:
    """One number's line in a Circular to its reporter.

    ``forwarded_to`` names the bureau of a FORWARDED number (and is dropped for any other
    status: a line names a bureau only when it forwarded the number there).
    """
    outcome = OUTCOME_OF_STATUS.get(status)
    verdict = VERDICT_OF_STATUS.get(status)
    if outcome is None and verdict is None:
        raise ValueError(f"status {status.value!r} is no outcome a bureau tells a reporter")
    return NumberOutcome(
        number=number, outcome=outcome, verdict=verdict, carrier_node=carrier_node,
        detail=detail, report_id=report_id, decided_at=decided_at,
        forwarded_to=forwarded_to if status is Status.FORWARDED else "",
        already_known=already_known)


@dataclass(frozen=True, slots=True)
class Told:
    """What a Circular line tells its reporter about one number."""

    status: Status
    reason: str
    already_known: bool = False  # the bureau had it from an earlier report
    forwarded_to: str = ""  # the bureau it went to, when FORWARDED


def status_of_feedback(line: NumberOutcome) -> Told:
    """The status, reason and typed facts a Circular line reports (the inverse of
    ``feedback``). A line with neither an outcome nor a verdict says nothing more than
    that the bureau has the number: NOTICED."""
    if line.outcome is not None:
        status = STATUS_OF_OUTCOME[line.outcome]
    elif line.verdict is not None:
        status = STATUS_OF_VERDICT[line.verdict]
    else:
        status = Status.NOTICED
    return Told(status, line.detail, line.already_known, line.forwarded_to)
