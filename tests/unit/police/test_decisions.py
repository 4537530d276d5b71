"""A reporter's pure plans: a report and its parts, feedback, appeals, withdrawals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.errors import InvalidBodyError, OperationError
from exchange.messages import (
    ActionOutcome,
    AppealDecision,
    AppealOutcome,
    CaseQuestion,
    CaseResponse,
    Category,
    EscalationKind,
    NumberOutcome,
    SealedBox,
)
from nodes.police.decisions import (
    LateReport,
    ReportRequest,
    SentReport,
    UnansweredCase,
    check_case_request,
    check_case_response,
    check_extension,
    check_report,
    overdue_case,
    overdue_report,
    plan_appeal_decision,
    plan_feedback,
    plan_report,
    plan_withdrawal,
    prepare,
)
from nodes.shared.batching import CHUNK
from nodes.shared.feedback import feedback
from nodes.shared.statuses import Status

NOW = datetime(2026, 11, 29, tzinfo=UTC)
RID = bytes([7]) * 16
REPORT = SentReport(RID, "bureau.fj", "fraud", "FZ-1", 2, withdrawn=False)


@pytest.mark.parametrize(("found", "prepared"), [
    (["159 5900 0001", "+8615959000001", "0086-159-5900-0001"], ["+8615959000001"]),
    (["  ", "", "110"], ["110"]),  # sent as found; the bureau rejects it with the reason
    (["12345", "12345 "], ["12345"]),
    (["x" * 80], ["x" * 64]),
])
def test_numbers_are_prepared_once_each_in_e164_where_they_normalise(
        found: list[str], prepared: list[str]) -> None:
    assert prepare(found) == prepared


@pytest.mark.parametrize(("arguments", "error"), [
    ({"category": "spam"}, r"category 'spam' is not one of fraud"),
    ({"case_number": " "}, r"a report needs its case number \(--case-number\)"),
    ({"confidence": 101}, r"confidence must be 0-100, got 101"),
    ({"confidence": -1}, r"confidence must be 0-100, got -1"),
    ({"numbers_found": [" "]}, r"no numbers to report"),
])
def test_a_bad_report_is_refused_by_name(arguments: dict[str, object], error: str) -> None:
    args: dict[str, object] = {"numbers_found": ["+8615959000001"], "category": "fraud",
                               "case_number": "FZ-1", "confidence": 80, **arguments}
    with pytest.raises(OperationError, match=error):
        check_report(**args)  # type: ignore[arg-type]


def request(*numbers: str, category: Category = Category.FRAUD, case: str = "FZ-1"
            ) -> ReportRequest:
    return ReportRequest(category, case, 80, numbers)


@pytest.mark.parametrize(("report", "req", "error"), [
    (None, request("+8615959000001"), r"police\.fj sent no report r1"),
    (SentReport(RID, "bureau.fj", "fraud", "FZ-1", 2, withdrawn=True),
     request("+8615959000001"), r"report r1 was withdrawn: it takes no more numbers"),
    (REPORT, request("+8615959000001", case="FZ-2"),
     r"report r1 is for case FZ-1 \(fraud\); its further parts must be too"),
    (REPORT, request("+8615959000001", category=Category.OTHER),
     r"report r1 is for case FZ-1 \(fraud\)"),
])
def test_only_an_open_report_of_the_same_case_takes_further_parts(
        report: SentReport | None, req: ReportRequest, error: str) -> None:
    with pytest.raises(OperationError, match=error):
        check_extension(report, "r1", node_id="police.fj", request=req)


def test_a_report_of_the_same_case_takes_further_parts() -> None:
    assert check_extension(REPORT, "r1", node_id="police.fj",
                           request=request("+8615959000001")) is REPORT


numbers = st.lists(st.integers(0, 3 * CHUNK).map(lambda i: f"+861595900{i:04d}"),
                   max_size=3 * CHUNK)


@given(numbers, st.sets(st.integers(0, 3 * CHUNK).map(lambda i: f"+861595900{i:04d}")),
       st.booleans())
def test_a_report_never_counts_a_number_twice(found: list[str], already: set[str],
                                               extend: bool) -> None:
    req = request(*prepare(found))
    plan = plan_report(req, bureau="bureau.fj", extends=REPORT if extend else None,
                       already_in=already)
    assert len(set(plan.numbers)) == len(plan.numbers)
    assert [n for part in plan.parts for n in part] == list(plan.numbers)
    assert all(0 < len(part) <= CHUNK for part in plan.parts)
    if extend:
        assert (plan.report_id, plan.bureau) == (RID, REPORT.counterpart)
        assert not set(plan.numbers) & already
        assert set(plan.numbers) == set(req.numbers) - already
    else:
        assert (plan.report_id, plan.bureau) == (b"", "bureau.fj")
        assert plan.numbers == req.numbers


def test_a_repeated_call_adds_nothing_to_its_report() -> None:
    req = request("+8615959000001", "+8615959000002")
    plan = plan_report(req, bureau="", extends=REPORT, already_in=set(req.numbers))
    assert (plan.numbers, plan.parts) == ((), ())


def outcome(number: str, status: Status, detail: str = "", report_id: bytes = RID
            ) -> NumberOutcome:
    return feedback(number, status, detail=detail, carrier_node="cmcc.fj",
                    report_id=report_id, decided_at=NOW)


@pytest.mark.parametrize(("line", "status", "detail", "final"), [
    (outcome("+8615959000001", Status.NOTICED), Status.NOTICED, "", False),
    (outcome("+8615959000001", Status.SHUT_DOWN), Status.SHUT_DOWN, "", True),
    (outcome("+8615959000001", Status.REFUSED, "ambulance"), Status.REFUSED, "ambulance",
     True),
    (outcome("12345", Status.REJECTED, "too short"), Status.REJECTED, "too short", True),
    (outcome("+8613802500001", Status.FORWARDED), Status.FORWARDED, "", False),
])
def test_feedback_moves_the_line_to_the_status_it_reports(
        line: NumberOutcome, status: Status, detail: str, final: bool) -> None:
    [update] = plan_feedback([line])
    assert (update.report_id, update.number) == (RID, line.number)
    assert (update.status, update.detail, update.final) == (status, detail, final)
    assert update.carrier_node == "cmcc.fj"


def test_a_general_feedback_line_moves_no_report_line() -> None:
    general = NumberOutcome(number="+8615959000001", outcome=ActionOutcome.SHUT_DOWN)
    assert plan_feedback([general, outcome("+8615959000002", Status.SHUT_DOWN)])[0].number \
        == "+8615959000002"


@pytest.mark.parametrize(("result", "detail", "restored"), [
    (AppealOutcome.LIFTED, "appeal lifted: re-registered", True),
    (AppealOutcome.UPHELD, "appeal upheld: re-registered", False),
])
def test_an_appeal_decision_words_the_lines_it_moves(result: AppealOutcome, detail: str,
                                                     restored: bool) -> None:
    decision = AppealDecision(appeal_id=bytes(16), number="+8615959000001", outcome=result,
                              reasoning="re-registered")
    plan = plan_appeal_decision(decision, [RID])
    assert (plan.number, plan.report_ids) == ("+8615959000001", (RID,))
    assert (plan.detail, plan.restored) == (detail, restored)


@pytest.mark.parametrize("response", [
    CaseResponse(),
    CaseResponse(sealed_answer=SealedBox(suite="s", recipient="police.gd",
                                         recipient_key_id=b"", ciphertext=b"")),
])
def test_a_case_response_not_sealed_to_this_node_is_refused(response: CaseResponse) -> None:
    with pytest.raises(InvalidBodyError, match=r"case_response must carry an answer sealed "
                                               r"to police\.fj"):
        check_case_response(response, me="police.fj")


@pytest.mark.parametrize(("report", "reason", "error"), [
    (REPORT, " ", r"a withdrawal needs its reason \(--reason\)"),
    (None, "mistake", r"police\.fj sent no report r1"),
    (SentReport(RID, "bureau.fj", "fraud", "FZ-1", 2, withdrawn=True), "mistake",
     r"report r1 was withdrawn already"),
])
def test_a_bad_withdrawal_is_refused_by_name(report: SentReport | None, reason: str,
                                            error: str) -> None:
    with pytest.raises(OperationError, match=error):
        plan_withdrawal(report, "r1", node_id="police.fj", reason=reason, carried=())


@pytest.mark.parametrize(("carried", "listed", "count"), [
    (["+8615959000001", "12345"], ("+8615959000001",), 1),  # as found stays out
    ([f"+861595900{i:04d}" for i in range(CHUNK + 1)], (), CHUNK + 1),  # whole, no list
])
def test_a_withdrawal_lists_the_e164_numbers_that_fit_one_message(
        carried: list[str], listed: tuple[str, ...], count: int) -> None:
    plan = plan_withdrawal(REPORT, "r1", node_id="police.fj", reason="mistake",
                           carried=carried)
    assert (plan.bureau, plan.report_id, plan.numbers, plan.count) == (
        "bureau.fj", RID, listed, count)


@pytest.mark.parametrize(("arguments", "error"), [
    ({"is_carrier": False}, r"'cmcc\.fj' is not a carrier in the directory"),
    ({"authorization": ""}, r"needs its legal authorization reference"),
    ({"questions": ["favourite colour"]}, r"questions are subscriber_registration"),
    ({"numbers_asked": ["12"]}, r"'12'"),
    ({"numbers_asked": []}, r"a case request names at least one number"),
])
def test_a_bad_case_request_is_refused_by_name(arguments: dict[str, object],
                                               error: str) -> None:
    args: dict[str, object] = {"carrier": "cmcc.fj", "is_carrier": True,
                               "authorization": "letter 118", "questions": [],
                               "numbers_asked": ["15959000001"], **arguments}
    with pytest.raises(OperationError, match=error):
        check_case_request(**args)  # type: ignore[arg-type]


def test_a_case_request_without_questions_asks_them_all() -> None:
    ask = check_case_request(carrier="cmcc.fj", is_carrier=True, authorization="letter",
                             numbers_asked=["15959000001"], questions=[])
    assert ask.numbers == ("+8615959000001",) and ask.questions == tuple(CaseQuestion)


def test_overdue_obligations_name_what_is_late_and_since_when() -> None:
    case = overdue_case(UnansweredCase(RID, "cmcc.fj", "FZ-1", NOW))
    assert (case.kind, case.subject_node, case.subject_id) == (
        EscalationKind.OVERDUE_CASE, "cmcc.fj", RID)
    assert case.detail == (f"case request {RID.hex()} (FZ-1) unanswered past its deadline "
                           f"{NOW.isoformat()}")
    late = overdue_report(LateReport(RID, "bureau.fj", "FZ-1", 5, 2, NOW))
    assert (late.kind, late.subject_node) == (EscalationKind.OVERDUE_FEEDBACK, "bureau.fj")
    assert late.detail == (f"report {RID.hex()} (FZ-1): 2 of 5 number(s) without a final "
                           f"outcome past {NOW.isoformat()}")


def test_the_bureau_knowing_a_number_already_is_recorded_from_its_typed_field() -> None:
    line = replace(outcome("+8615959000001", Status.SHUT_DOWN), already_known=True)
    [update] = plan_feedback([line])
    assert (update.status, update.already_known, update.detail) == (
        Status.SHUT_DOWN, True, "")
    [plain] = plan_feedback([outcome("+8615959000001", Status.SHUT_DOWN)])
    assert not plain.already_known


def test_a_forwarded_number_records_the_bureau_it_went_to() -> None:
    line = replace(outcome("+8613802500001", Status.FORWARDED), forwarded_to="bureau.gd")
    [update] = plan_feedback([line])
    assert (update.status, update.forwarded_to, update.final) == (
        Status.FORWARDED, "bureau.gd", False)
