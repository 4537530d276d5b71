"""A carrier's pure plans: per number of a notice, a withdrawal, a case request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.errors import InvalidBodyError, OperationError
from exchange.messages import (
    ActionOutcome,
    AppealDecision,
    AppealOutcome,
    CaseQuestion,
    CaseRequest,
    RealNameState,
    SalesChannel,
    ShutdownNotice,
    VerificationOutcome,
    Withdrawal,
)
from nodes.carrier.decisions import (
    ChannelFinding,
    UndecidedAppeal,
    channel_lookups,
    check_appeal,
    check_case_request,
    check_grounds,
    check_notice,
    decide,
    decide_all,
    holder_lines,
    outlets_to_show,
    overdue_appeal_detail,
    plan_case_answer,
    plan_notice,
    plan_restore,
    to_restore_on_decision,
    to_suspend,
    untraced_sales,
    verification_outcome,
)
from nodes.carrier.subscribers import STATES, Holder, Subscriber, id_hmac

NOW = datetime(2026, 11, 29, tzinfo=UTC)
ME = "cmcc.fj"
NOTICE = bytes([1]) * 16
OTHER_NOTICE = bytes([2]) * 16
POOL = [f"+861595900{i:04d}" for i in range(8)]


def sub(status: str = "active", number: str = POOL[0], **kw: object) -> Subscriber:
    fields: dict[str, object] = {"real_name_state": RealNameState.UNREGISTERED, **kw}
    return Subscriber(number=number, status=status, province="fj", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("subscriber", "outcome", "suspend", "hint", "reason"), [
    (None, ActionOutcome.NOT_OUR_SUBSCRIBER, False, "", ""),
    (sub("ported_out", ported_to="cucc.fj"), ActionOutcome.NOT_OUR_SUBSCRIBER, False,
     "cucc.fj", ""),
    (sub("inactive"), ActionOutcome.ALREADY_INACTIVE, False, "", ""),
    (sub("suspended"), ActionOutcome.ALREADY_INACTIVE, False, "", ""),
    (sub(protected_reason="ambulance dispatch SIM"), ActionOutcome.REFUSED, False, "",
     "ambulance dispatch SIM"),
    (sub(), ActionOutcome.SHUT_DOWN, True, "", ""),
])
def test_carrier_decision(subscriber: Subscriber | None, outcome: ActionOutcome,
                          suspend: bool, hint: str, reason: str) -> None:
    d = decide(subscriber)
    assert (d.outcome, d.suspend, d.ported_to, d.reason) == (outcome, suspend, hint, reason)


def test_verification_outcome() -> None:
    assert verification_outcome([RealNameState.REGISTERED] * 5).value == "confirmed"
    assert verification_outcome([RealNameState.REGISTERED, RealNameState.FALSE_IDENTITY]
                                ).value == "pending"


subscribers = st.builds(
    lambda number, status, protected, by, outlet, state, id_number: sub(
        status, number=number, protected_reason=protected,
        suspended_by=by if status == "suspended" else None, outlet_code=outlet,
        real_name_state=state, id_number=id_number),
    st.sampled_from(POOL), st.sampled_from(sorted(STATES)), st.sampled_from(["", "SOS"]),
    st.sampled_from([NOTICE, OTHER_NOTICE]), st.sampled_from(["", "FZ-1", "FZ-2"]),
    st.sampled_from(list(RealNameState)), st.sampled_from(["id-a", "id-b"]))
found_maps = st.lists(subscribers, max_size=8).map(lambda subs: {s.number: s for s in subs})
listed = st.lists(st.sampled_from(POOL), max_size=10)


@given(found_maps, listed)
def test_a_carrier_never_suspends_a_line_it_does_not_serve_or_that_is_protected(
        found: dict[str, Subscriber], numbers: list[str]) -> None:
    for n in to_suspend(decide_all(numbers, found)):
        s = found[n]
        assert s.status == "active" and not s.protected_reason


@given(found_maps, listed, st.booleans())
def test_a_notice_is_answered_once_per_number_in_its_order(
        found: dict[str, Subscriber], numbers: list[str], investigate: bool) -> None:
    decided = decide_all(numbers, found)
    channels = {o: SalesChannel(outlet_code=o) for o in outlets_to_show(decided, found)}
    plan = plan_notice(decided, found, channels=channels, cards={}, investigate=investigate,
                       now=NOW, me=ME)
    assert [a.number for a in plan.actions] == list(dict.fromkeys(numbers))
    for a in plan.actions:
        s = found.get(a.number)
        shows = s is not None and s.outlet_code and s.status != "ported_out"
        assert (a.channel is not None) == bool(shows)
    if not investigate:
        assert plan.channel_reports == ()
    for finding in plan.channel_reports:
        for n in finding.numbers:
            assert decided[n].outcome is ActionOutcome.SHUT_DOWN
            assert found[n].outlet_code == finding.outlet_code


def test_channel_findings_group_untraced_cut_cards_by_outlet() -> None:
    found = {
        POOL[0]: sub(number=POOL[0], outlet_code="FZ-2"),
        POOL[1]: sub(number=POOL[1], outlet_code="FZ-1",
                     real_name_state=RealNameState.FALSE_IDENTITY),
        POOL[2]: sub(number=POOL[2], outlet_code="FZ-2"),
        POOL[3]: sub(number=POOL[3], outlet_code="FZ-1",
                     real_name_state=RealNameState.REGISTERED),  # registered: not a finding
        POOL[4]: sub("inactive", number=POOL[4], outlet_code="FZ-1"),  # not cut now
    }
    got = untraced_sales(decide_all(list(found), found), found)
    assert got == (ChannelFinding("FZ-1", (POOL[1],)),
                   ChannelFinding("FZ-2", (POOL[0], POOL[2])))
    assert got[1].findings.startswith("2 card(s) shut down on notice")


def test_a_notice_without_a_deadline_is_refused() -> None:
    with pytest.raises(InvalidBodyError, match="shutdown_notice without a deadline"):
        check_notice(ShutdownNotice(numbers=(POOL[0],)))


@given(found_maps, listed)
def test_a_withdrawal_restores_only_what_this_notice_suspended(
        found: dict[str, Subscriber], numbers: list[str]) -> None:
    plan = plan_restore(Withdrawal(withdrawn_message_id=NOTICE, numbers=tuple(numbers)),
                        {n: s for n, s in found.items() if n in numbers}, now=NOW, me=ME)
    for n in plan.restore:
        assert found[n].status == "suspended" and found[n].suspended_by == NOTICE
    assert [a.number for a in plan.actions] == numbers
    for a in plan.actions:
        restored = a.number in plan.restore
        assert (a.outcome is ActionOutcome.RESTORED) == restored
        assert a.refusal_reason == ("" if restored else "not suspended by this notice")
        if not restored:
            assert a.outcome is (ActionOutcome.ALREADY_INACTIVE if a.number in found
                                 else ActionOutcome.NOT_OUR_SUBSCRIBER)


def request(*questions: CaseQuestion, numbers: tuple[str, ...] = (POOL[0], POOL[1]),
            authorization: str = "letter 118", deadline: bool = True) -> CaseRequest:
    return CaseRequest(case_number="FZ-1", legal_authorization=authorization,
                       numbers=numbers, questions=questions,
                       deadline=NOW + timedelta(days=1) if deadline else None)


@pytest.mark.parametrize(("req", "error"), [
    (request(authorization=" "), "case_request without a legal authorization reference"),
    (request(deadline=False), "case_request without a deadline"),
])
def test_a_case_request_lacking_its_grounds_is_refused(req: CaseRequest, error: str) -> None:
    with pytest.raises(InvalidBodyError, match=error):
        check_case_request(req)


WANG = sub(number=POOL[0], subscriber_name="Wang Wu", id_number="3501", outlet_code="FZ-1")


@pytest.mark.parametrize(("questions", "name", "channel", "others"), [
    ((CaseQuestion.SUBSCRIBER_REGISTRATION,), "Wang Wu", False, ()),
    ((CaseQuestion.ACTIVATION_CHANNEL,), "", True, ()),
    ((CaseQuestion.OTHER_CARDS_UNDER_ID,), "", False, (POOL[5],)),
    (tuple(CaseQuestion), "Wang Wu", True, (POOL[5],)),
])
def test_a_case_answer_says_what_was_asked_and_nothing_more(
        questions: tuple[CaseQuestion, ...], name: str, channel: bool,
        others: tuple[str, ...]) -> None:
    req = request(*questions)
    found = {POOL[0]: WANG, POOL[1]: sub("ported_out", number=POOL[1])}
    outlets = channel_lookups(req, found)
    assert outlets == (["FZ-1"] if channel else [])
    asked_others = {"3501": [POOL[0], POOL[5]]} \
        if CaseQuestion.OTHER_CARDS_UNDER_ID in questions else {}
    answer = plan_case_answer(req, found, others=asked_others,
                              channels={o: SalesChannel(outlet_code=o) for o in outlets}, me=ME)
    mine, ported = answer.records
    assert (mine.subscriber_name, mine.id_number) == (name, "3501" if name else "")
    assert (mine.channel is not None) == channel
    assert mine.other_numbers_under_id == others
    assert ported.number == POOL[1] and not ported.real_name_state and not ported.id_number
    assert answer.note == f"1 of 2 number(s) are subscribers of {ME}"


@pytest.mark.parametrize(("subscriber", "error"), [
    (None, "is not a line this carrier suspended on a notice"),
    (sub("active"), "is not a line this carrier suspended on a notice"),
    (sub("suspended"), "is not a line this carrier suspended on a notice"),  # by no notice
])
def test_only_a_line_cut_on_a_notice_can_be_appealed(subscriber: Subscriber | None,
                                                     error: str) -> None:
    with pytest.raises(OperationError, match=error):
        check_appeal(POOL[0], subscriber)


def test_an_appeal_names_the_notice_that_cut_the_line_and_needs_grounds() -> None:
    assert check_appeal(POOL[0], sub("suspended", suspended_by=NOTICE)) == NOTICE
    with pytest.raises(OperationError, match=r"an appeal needs its grounds \(--grounds\)"):
        check_grounds("  ")


@pytest.mark.parametrize(("outcome", "restored"), [
    (AppealOutcome.LIFTED, [POOL[0]]), (AppealOutcome.UPHELD, [])])
def test_only_a_lifted_appeal_restores_its_own_line(outcome: AppealOutcome,
                                                    restored: list[str]) -> None:
    decision = AppealDecision(appeal_id=NOTICE, number=POOL[0], outcome=outcome,
                              reasoning="r")
    assert to_restore_on_decision(decision, POOL[0]) == restored


def test_holders_are_reported_by_keyed_digest_with_their_verification() -> None:
    key = bytes(32)
    holders = [Holder("3501", (POOL[0], POOL[1]),
                      (RealNameState.REGISTERED, RealNameState.REGISTERED)),
               Holder("3502", (POOL[2],), (RealNameState.UNREGISTERED,))]
    a, b = holder_lines(holders, key=key)
    assert a.id_hmac == id_hmac(key, "3501") and a.card_count == 2
    assert (a.outcome, b.outcome) == (VerificationOutcome.CONFIRMED, VerificationOutcome.PENDING)
    assert b"3501" not in a.id_hmac


def test_an_overdue_appeal_names_itself_its_number_and_deadline() -> None:
    detail = overdue_appeal_detail(UndecidedAppeal(NOTICE, "bureau.fj", POOL[0], NOW))
    assert detail == (f"appeal {NOTICE.hex()} for {POOL[0]} undecided past its deadline "
                      f"{NOW.isoformat()}")
