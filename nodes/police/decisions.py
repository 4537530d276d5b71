"""What a police unit (or a market regulator reporting the same way) decides: pure plans.

Each function takes the values its handler or command loaded and returns a plan, a
frozen value naming every row to write and every message to send, or raises the
error that names what is wrong. Nothing here reads a database or sends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from exchange import messages, numbers
from exchange.errors import InvalidBodyError, NumberError, OperationError
from exchange.messages import AppealOutcome, CaseQuestion, Category, EscalationKind
from nodes.shared.batching import CHUNK, chunks
from nodes.shared.feedback import status_of_feedback
from nodes.shared.statuses import FINAL, Status

# --- A report ---------------------------------------------------------------------------


def prepare(reported: Sequence[str]) -> list[str]:
    """Numbers as the report will carry them: E.164 where they normalise, else as found.

    The bureau judges every number and answers per number, so an investigator's odd
    entry is sent as written and comes back rejected with the reason.
    """
    out = []
    seen = set()
    for raw in reported:
        text = str(raw).strip()
        if not text:
            continue
        with contextlib.suppress(NumberError):
            text = numbers.normalise(text)
        if text not in seen:
            seen.add(text)
            out.append(text[:64])
    return out


@dataclass(frozen=True, slots=True)
class SentReport:
    """A report this node sent, as its row holds it."""

    report_id: bytes
    counterpart: str  # the bureau it went to
    category: str
    case_number: str
    numbers_total: int
    withdrawn: bool


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """An operator's report, its arguments checked."""

    category: Category
    case_number: str
    confidence: int
    numbers: tuple[str, ...]


def check_report(*, numbers_found: Sequence[str], category: str, case_number: str,
                 confidence: int) -> ReportRequest:
    """The operator's arguments as a report, or the error naming the first bad one."""
    try:
        cat = Category(category)
    except ValueError as e:
        raise OperationError(f"category {category!r} is not one of "
                             f"{', '.join(c.value for c in Category)}") from e
    if not case_number.strip():
        raise OperationError("a report needs its case number (--case-number)")
    if not 0 <= confidence <= 100:
        raise OperationError(f"confidence must be 0-100, got {confidence}")
    nums = prepare(numbers_found)
    if not nums:
        raise OperationError("no numbers to report")
    return ReportRequest(cat, case_number, confidence, tuple(nums))


def check_extension(report: SentReport | None, report_id: str, *, node_id: str,
                    request: ReportRequest) -> SentReport:
    """The report ``report_id`` names, if further parts of ``request`` may join it."""
    if report is None:
        raise OperationError(f"{node_id} sent no report {report_id}")
    if report.withdrawn:
        raise OperationError(f"report {report_id} was withdrawn: it takes no more numbers")
    if (report.category, report.case_number) != (request.category.value,
                                                 request.case_number):
        raise OperationError(f"report {report_id} is for case {report.case_number} "
                             f"({report.category}); its further parts must be too")
    return report


@dataclass(frozen=True, slots=True)
class ReportPlan:
    """The parts to send and the lines to add for one operator call."""

    bureau: str
    report_id: bytes  # empty: a new report, whose id is its first part's message id
    numbers: tuple[str, ...]  # new to the report, each once, in the order given
    parts: tuple[tuple[str, ...], ...]  # at most CHUNK numbers each, in order


def plan_report(request: ReportRequest, *, bureau: str, extends: SentReport | None,
                already_in: Collection[str]) -> ReportPlan:
    """A new report to ``bureau``, or further parts of ``extends`` with only the numbers
    it does not carry yet (``already_in``): a repeated call adds nothing."""
    nums = request.numbers
    if extends is not None:
        bureau, rid = extends.counterpart, extends.report_id
        nums = tuple(n for n in nums if n not in already_in)
    else:
        rid = b""
    return ReportPlan(bureau, rid, nums, tuple(tuple(p) for p in chunks(nums)))


# --- Feedback and appeal decisions from the bureau ------------------------------------


@dataclass(frozen=True, slots=True)
class LineUpdate:
    """A report line's new status, as a Circular tells it (applied only if still open)."""

    report_id: bytes
    number: str
    status: Status
    detail: str  # the reason only
    carrier_node: str
    forwarded_to: str = ""  # the bureau a forwarded number went to
    already_known: bool = False  # the bureau had the number: its status is the case's

    @property
    def final(self) -> bool:
        return self.status in FINAL


def plan_feedback(outcomes: Sequence[messages.NumberOutcome]) -> tuple[LineUpdate, ...]:
    """The lines a Circular moves: one per line naming a report (general lines move none).

    The status is the carrier's outcome or the bureau's verdict; whether the bureau knew
    the number already and where it forwarded it are typed fields of the line."""
    out = []
    for line in outcomes:
        if not line.report_id:
            continue
        told = status_of_feedback(line)
        out.append(LineUpdate(line.report_id, line.number, told.status, told.reason,
                              line.carrier_node, told.forwarded_to, told.already_known))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AppealLines:
    """What an appeal decision writes on the lines of its number in ``report_ids``."""

    number: str
    report_ids: tuple[bytes, ...]
    detail: str
    restored: bool  # lifted: the lines become RESTORED, final


def plan_appeal_decision(decision: messages.AppealDecision, moved: Sequence[bytes]
                         ) -> AppealLines:
    """``moved``: the reports whose line the state rules let the decision change."""
    lifted = decision.outcome is AppealOutcome.LIFTED
    word = "lifted" if lifted else "upheld"
    return AppealLines(decision.number, tuple(moved),
                       f"appeal {word}: {decision.reasoning}", lifted)


def check_case_response(response: messages.CaseResponse, *, me: str) -> None:
    """A case response carries an answer sealed to this node."""
    if response.sealed_answer is None or response.sealed_answer.recipient != me:
        raise InvalidBodyError(f"case_response must carry an answer sealed to {me}")


# --- Withdrawing a report --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WithdrawalPlan:
    bureau: str
    report_id: bytes
    numbers: tuple[str, ...]  # listed in the Withdrawal; empty: every number
    count: int  # numbers withdrawn (E.164 ones: what the bureau can act on)


def is_e164(n: str) -> bool:
    try:
        return numbers.normalise(n) == n
    except NumberError:
        return False


def plan_withdrawal(report: SentReport | None, report_id: str, *, node_id: str,
                    reason: str, carried: Sequence[str]) -> WithdrawalPlan:
    """``carried``: the numbers the report's lines hold.

    Numbers the report carried as found and that never normalised stay out: a
    Withdrawal lists E.164 numbers only. A report of several parts is withdrawn whole
    without a list (an empty list means every number), which would not fit a message.
    """
    if not reason.strip():
        raise OperationError("a withdrawal needs its reason (--reason)")
    if report is None:
        raise OperationError(f"{node_id} sent no report {report_id}")
    if report.withdrawn:
        raise OperationError(f"report {report_id} was withdrawn already")
    valid = tuple(n for n in carried if is_e164(n))
    listed = valid if len(valid) <= CHUNK else ()
    return WithdrawalPlan(report.counterpart, report.report_id, listed, len(valid))


# --- Asking a carrier about a case -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseAsk:
    """A case request, its arguments checked."""

    numbers: tuple[str, ...]
    questions: tuple[CaseQuestion, ...]


def check_case_request(*, carrier: str, is_carrier: bool, authorization: str,
                       numbers_asked: Sequence[str], questions: Sequence[str]) -> CaseAsk:
    """``is_carrier``: the directory lists ``carrier`` as a carrier."""
    if not is_carrier:
        raise OperationError(f"{carrier!r} is not a carrier in the directory")
    if not authorization.strip():
        raise OperationError("a case request needs its legal authorization reference "
                             "(--authorization)")
    try:
        qs = tuple(CaseQuestion(q) for q in questions) or tuple(CaseQuestion)
    except ValueError as e:
        raise OperationError(f"questions are {', '.join(q.value for q in CaseQuestion)}: "
                             f"{e}") from e
    try:
        nums = tuple(numbers.normalise(n) for n in numbers_asked)
    except NumberError as e:
        raise OperationError(str(e)) from e
    if not nums:
        raise OperationError("a case request names at least one number")
    return CaseAsk(nums, qs)


# --- Overdue obligations ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overdue:
    """An obligation past its deadline, to escalate once."""

    kind: EscalationKind
    subject_node: str
    subject_id: bytes
    detail: str


@dataclass(frozen=True, slots=True)
class UnansweredCase:
    request_id: bytes
    carrier: str
    case_number: str
    deadline: datetime


@dataclass(frozen=True, slots=True)
class LateReport:
    """A report past its feedback deadline with ``open`` lines not final yet."""

    report_id: bytes
    bureau: str
    case_number: str
    numbers_total: int
    open: int
    feedback_due: datetime


def overdue_case(case: UnansweredCase) -> Overdue:
    return Overdue(EscalationKind.OVERDUE_CASE, case.carrier, case.request_id,
                   f"case request {case.request_id.hex()} ({case.case_number}) unanswered "
                   f"past its deadline {case.deadline.isoformat()}")


def overdue_report(report: LateReport) -> Overdue:
    return Overdue(EscalationKind.OVERDUE_FEEDBACK, report.bureau, report.report_id,
                   f"report {report.report_id.hex()} ({report.case_number}): {report.open} "
                   f"of {report.numbers_total} number(s) without a final outcome past "
                   f"{report.feedback_due.isoformat()}")
