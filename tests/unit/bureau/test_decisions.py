"""A bureau's decisions as pure plans: case tables and properties, no database, no gRPC."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shared.directory import DIRECTORY, NOW, ROUTER

from exchange.errors import InvalidBodyError, OperationError
from exchange.identity import Role
from exchange.messages import (
    ActionOutcome,
    AppealOutcome,
    Category,
    ChannelReport,
    IdConcentrationReport,
    IdHolder,
    NumberAction,
    SalesChannel,
    Verdict,
    VerificationOutcome,
)
from nodes.bureau.decisions import (
    AppealState,
    Case,
    CaseOnNotice,
    ChannelState,
    Decided,
    Forward,
    NoticeLine,
    NoticeOrder,
    NoticeState,
    OpenLine,
    OverdueNotice,
    Release,
    ReportLine,
    StatusCount,
    WithdrawnLine,
    channel_record,
    check_appeal_decision,
    count_progress,
    id_holder_records,
    overdue_detail,
    plan_action_report,
    plan_final_feedback,
    plan_number_report,
    plan_penalty,
    plan_withdrawal,
    police_to_inform,
    report_outcome,
)
from nodes.shared.batching import CHUNK
from nodes.shared.feedback import status_of_feedback
from nodes.shared.routing import judge_number
from nodes.shared.statuses import Status

CMCC_1, CMCC_2, CMCC_3 = "+8615959000001", "+8615959000002", "+8615959000003"
MVNO_1 = "+8617059000001"  # the directory's plan: mvno-x.fj
GD_1 = "+8613802500001"  # province gd: bureau.gd
BJ_1 = "+8613800138000"  # province bj: no bureau
CUCC_1 = "+8618659000000"  # cucc.fj: no member
NOTICE_ID = bytes(range(16))


def plan(*reported: str, cases: tuple[Case, ...] = ()) -> tuple[
        list[tuple[str, Status, str, str, bool]], object]:
    p = plan_number_report(reported, cases={c.number: c for c in cases}, province="fj",
                           router=ROUTER, directory=DIRECTORY)
    return [(ln.number, ln.status, ln.carrier_node, ln.forwarded_to, ln.already_known)
            for ln in p.lines], p


@pytest.mark.parametrize(("reported", "cases", "lines", "notices", "forwards", "reopened"), [
    pytest.param((CMCC_1, MVNO_1), (), [
        (CMCC_1, Status.NOTICED, "cmcc.fj", "", False),
        (MVNO_1, Status.NOTICED, "mvno-x.fj", "", False)],
        [NoticeOrder("cmcc.fj", (CMCC_1,)), NoticeOrder("mvno-x.fj", (MVNO_1,))], [], (),
        id="a notice per carrier"),
    pytest.param((GD_1,), (), [(GD_1, Status.FORWARDED, "", "bureau.gd", False)], [],
                 [Forward("bureau.gd", (GD_1,))], (), id="another province: forwarded"),
    pytest.param((BJ_1, CUCC_1, "110"), (), [
        (BJ_1, Status.UNROUTABLE, "", "", False), (CUCC_1, Status.UNROUTABLE, "", "", False),
        ("110", Status.REJECTED, "", "", False)], [], [], (), id="unroutable and rejected"),
    pytest.param((CMCC_1,), (Case(CMCC_1, Status.SHUT_DOWN, "cmcc.fj", NOTICE_ID),),
                 [(CMCC_1, Status.SHUT_DOWN, "cmcc.fj", "", True)], [], [], (),
                 id="a live case: linked, not noticed again"),
    pytest.param((CMCC_1,), (Case(CMCC_1, Status.WITHDRAWN, "cmcc.fj", NOTICE_ID),),
                 [(CMCC_1, Status.NOTICED, "cmcc.fj", "", False)],
                 [NoticeOrder("cmcc.fj", (CMCC_1,))], [], (CMCC_1,),
                 id="an ended case: a new notice, the old row replaced"),
    pytest.param((CMCC_1, "159 5900 0001", "110", "110"), (),
                 [(CMCC_1, Status.NOTICED, "cmcc.fj", "", False),
                  ("110", Status.REJECTED, "", "", False)],
                 [NoticeOrder("cmcc.fj", (CMCC_1,))], [], (), id="twice in one report: once"),
])
def test_number_report_plan(reported: tuple[str, ...], cases: tuple[Case, ...],
                            lines: list[object], notices: list[NoticeOrder],
                            forwards: list[Forward], reopened: tuple[str, ...]) -> None:
    got, p = plan(*reported, cases=cases)
    assert got == lines
    assert list(p.notices) == notices  # type: ignore[attr-defined]
    assert list(p.forwards) == forwards  # type: ignore[attr-defined]
    assert p.reopened == reopened  # type: ignore[attr-defined]


def test_report_lines_keep_their_reasons_and_typed_facts() -> None:
    p = plan_number_report((CMCC_1, "110", GD_1, CMCC_2), cases={
        CMCC_2: Case(CMCC_2, Status.NOTICED, "cmcc.fj")}, province="fj", router=ROUTER,
        directory=DIRECTORY)
    assert [(ln.reason, ln.forwarded_to, ln.already_known) for ln in p.lines] == [
        ("notice to cmcc.fj", "", False), (judge_number("110")[1], "", False),
        ("", "bureau.gd", False), ("", "", True)]
    assert [ln.closed for ln in p.lines] == [False, True, True, False]
    told = [report_outcome(ln, report_id=NOTICE_ID, decided_at=NOW) for ln in p.lines]
    assert [(t.verdict, t.outcome, t.forwarded_to, t.already_known) for t in told] == [
        (Verdict.NOTICED, None, "", False), (Verdict.REJECTED, None, "", False),
        (Verdict.FORWARDED, None, "bureau.gd", False), (Verdict.NOTICED, None, "", True)]


def test_a_large_report_is_noticed_in_chunks() -> None:
    reported = [f"+86159590{k:05d}" for k in range(CHUNK + 5)]
    _, p = plan(*reported)
    assert [len(o.numbers) for o in p.notices] == [CHUNK, 5]  # type: ignore[attr-defined]


# Numbers of every kind, and ways of writing them.
NUMBERS = st.one_of(
    st.integers(0, 30).map(lambda k: f"+86159590000{k:02d}"),
    st.integers(0, 30).map(lambda k: f"159 5900 00{k:02d}"),
    st.integers(0, 9).map(lambda k: f"+86170590000{k:02d}"),
    st.integers(0, 9).map(lambda k: f"+86138025000{k:02d}"),
    st.integers(0, 9).map(lambda k: f"+86138001380{k:02d}"),
    st.integers(0, 9).map(lambda k: f"+86186590000{k:02d}"),
    st.sampled_from(["110", "12345", "+86 abc", "10086"]))
CASE_STATUSES = st.sampled_from([Status.NOTICED, Status.SHUT_DOWN, Status.WITHDRAWN,
                                 Status.RESTORED, Status.REFUSED])


@st.composite
def reports(draw: st.DrawFn) -> tuple[list[str], dict[str, Case]]:
    reported = draw(st.lists(NUMBERS, max_size=40))
    valid = sorted({n for n, _ in map(judge_number, reported) if n})
    known = draw(st.lists(st.sampled_from(valid), unique=True)) if valid else []
    return reported, {n: Case(n, draw(CASE_STATUSES), ROUTER.block_of(n).carrier_node)
                      for n in known}


@given(reports())
def test_every_reported_number_gets_exactly_one_line(report: tuple[list[str],
                                                                   dict[str, Case]]) -> None:
    reported, cases = report
    p = plan_number_report(reported, cases=cases, province="fj", router=ROUTER,
                           directory=DIRECTORY)
    keys = {judge_number(n)[0] or n for n in reported}
    assert Counter(ln.number for ln in p.lines) == Counter(keys)
    noticed = Counter(n for o in p.notices for n in o.numbers)
    forwarded = Counter(n for f in p.forwards for n in f.numbers)
    # A number is in at most one message, and only if its line says it went there.
    assert max([*noticed.values(), *forwarded.values(), 1]) == 1
    for ln in p.lines:
        assert noticed[ln.number] == (ln.status is Status.NOTICED and not ln.already_known)
        assert forwarded[ln.number] == (ln.status is Status.FORWARDED)
        assert ln.already_known == (ln.number in cases and cases[ln.number].live)


@given(reports())
def test_a_number_is_never_noticed_to_a_carrier_that_does_not_serve_it(
        report: tuple[list[str], dict[str, Case]]) -> None:
    reported, cases = report
    p = plan_number_report(reported, cases=cases, province="fj", router=ROUTER,
                           directory=DIRECTORY)
    for order in p.notices:
        assert DIRECTORY.member(order.carrier).role is Role.CARRIER
        for n in order.numbers:
            block = ROUTER.block_of(n)
            assert (block.carrier_node, block.province) == (order.carrier, "fj")
    assert set(p.reopened) == {n for o in p.notices for n in o.numbers} & set(cases)


@given(reports())
def test_each_line_reads_back_as_the_status_it_records(
        report: tuple[list[str], dict[str, Case]]) -> None:
    reported, cases = report
    p = plan_number_report(reported, cases=cases, province="fj", router=ROUTER,
                           directory=DIRECTORY)
    for ln in p.lines:
        told = report_outcome(ln, report_id=NOTICE_ID, decided_at=NOW)
        read = status_of_feedback(told)
        assert (read.status, read.reason, read.already_known, read.forwarded_to) == (
            ln.status, ln.reason, ln.already_known, ln.forwarded_to)


# --- Action reports --------------------------------------------------------------------

NOTICE = NoticeState(NOTICE_ID, "cmcc.fj", Category.FRAUD, numbers_total=2, answered=0)


def case(status: Status = Status.NOTICED, tried: tuple[str, ...] = ("cmcc.fj",)
         ) -> CaseOnNotice:
    return CaseOnNotice(status, "cmcc.fj", "FZ-1", tried)


def act(outcome: ActionOutcome, number: str = CMCC_1, **kw: object) -> NumberAction:
    return NumberAction(number=number, outcome=outcome, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("action", "on_case", "withdrawal", "update", "reroute", "decided"), [
    pytest.param(act(ActionOutcome.SHUT_DOWN), case(), False,
                 (Status.SHUT_DOWN, "", "cmcc.fj", ("cmcc.fj",)), [],
                 [Decided(CMCC_1, Status.SHUT_DOWN, "", "cmcc.fj")], id="shut down"),
    pytest.param(act(ActionOutcome.REFUSED, refusal_reason="hospital line"), case(), False,
                 (Status.REFUSED, "hospital line", "cmcc.fj", ("cmcc.fj",)), [],
                 [Decided(CMCC_1, Status.REFUSED, "hospital line", "cmcc.fj")], id="refused"),
    pytest.param(act(ActionOutcome.NOT_OUR_SUBSCRIBER, ported_to_hint="mvno-x.fj"), case(),
                 False, (Status.NOTICED, "ported from cmcc.fj to mvno-x.fj", "mvno-x.fj",
                         ("cmcc.fj", "mvno-x.fj")),
                 [NoticeOrder("mvno-x.fj", (CMCC_1,))], [], id="ported: re-routed"),
    pytest.param(act(ActionOutcome.NOT_OUR_SUBSCRIBER, ported_to_hint="mvno-x.fj"),
                 case(tried=("cmcc.fj", "mvno-x.fj")), False,
                 (Status.NOT_OUR_SUBSCRIBER, "cmcc.fj: not our subscriber; no other carrier "
                  "to ask", "cmcc.fj", ("cmcc.fj", "mvno-x.fj")), [],
                 [Decided(CMCC_1, Status.NOT_OUR_SUBSCRIBER, "cmcc.fj: not our subscriber; "
                          "no other carrier to ask", "cmcc.fj")],
                 id="ported back to a carrier asked already: final"),
    pytest.param(act(ActionOutcome.NOT_OUR_SUBSCRIBER, ported_to_hint="cucc.fj"), case(),
                 False, (Status.NOT_OUR_SUBSCRIBER, "cmcc.fj: not our subscriber; ported to "
                         "cucc.fj, not a member carrier", "cmcc.fj", ("cmcc.fj",)), [],
                 [Decided(CMCC_1, Status.NOT_OUR_SUBSCRIBER, "cmcc.fj: not our subscriber; "
                          "ported to cucc.fj, not a member carrier", "cmcc.fj")],
                 id="ported to a non-member: final"),
    pytest.param(act(ActionOutcome.NOT_OUR_SUBSCRIBER, ported_to_hint="police.fj"), case(),
                 False, (Status.NOT_OUR_SUBSCRIBER, "cmcc.fj: not our subscriber; ported to "
                         "police.fj, not a member carrier", "cmcc.fj", ("cmcc.fj",)), [],
                 [Decided(CMCC_1, Status.NOT_OUR_SUBSCRIBER, "cmcc.fj: not our subscriber; "
                          "ported to police.fj, not a member carrier", "cmcc.fj")],
                 id="ported to a member that is no carrier: final"),
    pytest.param(act(ActionOutcome.RESTORED, channel=SalesChannel(outlet_code="FZ-2")),
                 case(Status.WITHDRAWN), True,
                 (Status.WITHDRAWN, "service restored by cmcc.fj after the withdrawal",
                  "cmcc.fj", ("cmcc.fj",)), [], [], id="restored after a withdrawal"),
])
def test_action_report_plan(action: NumberAction, on_case: CaseOnNotice, withdrawal: bool,
                            update: tuple[object, ...], reroute: list[NoticeOrder],
                            decided: list[Decided]) -> None:
    listed = {CMCC_1: NoticeLine(CMCC_1, False, on_case)}
    p = plan_action_report(NOTICE, listed, [action], sender="cmcc.fj", withdrawal=withdrawal,
                           directory=DIRECTORY)
    [u] = p.cases
    assert (u.status, u.detail, u.carrier_node, u.tried) == update
    assert u.outlet_code == ("FZ-2" if action.channel else "FZ-1")
    assert list(p.reroutes) == reroute
    assert list(p.decided) == decided
    assert len(p.answers) == (0 if withdrawal else 1)


def test_action_report_counts_answers_once_and_closes_the_notice() -> None:
    listed = {CMCC_1: NoticeLine(CMCC_1, True, case()), CMCC_2: NoticeLine(CMCC_2, False, None)}
    p = plan_action_report(NOTICE, listed, [act(ActionOutcome.SHUT_DOWN),
                                            act(ActionOutcome.ALREADY_INACTIVE, CMCC_2)],
                           sender="cmcc.fj", withdrawal=False, directory=DIRECTORY)
    assert (p.answered, p.closed) == (1, False)
    assert [a.number for a in p.answers] == [CMCC_1, CMCC_2]
    assert [u.number for u in p.cases] == [CMCC_1]  # CMCC_2 has no case here
    later = plan_action_report(NoticeState(NOTICE_ID, "cmcc.fj", Category.FRAUD, 2, 1),
                               {CMCC_1: NoticeLine(CMCC_1, False, case())},
                               [act(ActionOutcome.SHUT_DOWN)], sender="cmcc.fj",
                               withdrawal=False, directory=DIRECTORY)
    assert (later.answered, later.closed) == (2, True)
    again = plan_action_report(NOTICE, {CMCC_1: NoticeLine(CMCC_1, True, case())},
                               [act(ActionOutcome.SHUT_DOWN)], sender="cmcc.fj",
                               withdrawal=False, directory=DIRECTORY)
    assert (again.answered, again.closed) == (None, False)


CARRIERS = ["cmcc.fj", "mvno-x.fj", "cmcc.gd", "cucc.fj", "police.fj", ""]


@given(st.lists(st.tuples(st.sampled_from([CMCC_1, CMCC_2, CMCC_3]),
                          st.sampled_from(list(ActionOutcome)), st.sampled_from(CARRIERS),
                          st.lists(st.sampled_from(CARRIERS[:4]), unique=True)), max_size=10),
       st.booleans())
def test_rerouting_never_asks_a_carrier_twice(
        actions: list[tuple[str, ActionOutcome, str, list[str]]], withdrawal: bool) -> None:
    tried = {n: tuple(sorted({"cmcc.fj", *t})) for n, _, _, t in actions}
    listed = {n: NoticeLine(n, False, case(tried=tried[n])) for n in tried}
    p = plan_action_report(NOTICE, listed, [act(o, n, ported_to_hint=h) for n, o, h, _ in actions],
                           sender="cmcc.fj", withdrawal=withdrawal, directory=DIRECTORY)
    for order in p.reroutes:
        assert DIRECTORY.member(order.carrier).role is Role.CARRIER
        for n in order.numbers:
            assert order.carrier not in tried[n]
    for u in p.cases:
        assert set(listed[u.number].case.tried) <= set(u.tried)  # type: ignore[union-attr]
        assert (u.status is Status.NOTICED) == (u.carrier_node != "cmcc.fj"
                                                 and u.carrier_node in u.tried)
    # Every case is either re-routed, fed back as final, or (a withdrawal) kept withdrawn.
    rerouted = sum(len(o.numbers) for o in p.reroutes)
    assert rerouted + len(p.decided) == len(p.cases)


def test_final_feedback_is_grouped_by_reporter_in_a_stable_order() -> None:
    a, b = bytes(16), bytes([1] * 16)
    decided = {CMCC_1: Decided(CMCC_1, Status.SHUT_DOWN, "", "cmcc.fj"),
               CMCC_2: Decided(CMCC_2, Status.REFUSED, "x", "cmcc.fj")}
    got = plan_final_feedback(decided, [
        OpenLine(b, CMCC_2, "police.fj"), OpenLine(a, CMCC_2, "police.fj"),
        OpenLine(a, CMCC_1, "commerce.fj"), OpenLine(a, CMCC_3, "police.fj")])
    assert [(f.origin, [(ln.report_id, ln.number) for ln in f.lines]) for f in got] == [
        ("commerce.fj", [(a, CMCC_1)]), ("police.fj", [(a, CMCC_2), (b, CMCC_2)])]


# --- Withdrawals ---------------------------------------------------------------------------


def test_withdrawal_releases_what_no_other_report_names() -> None:
    other = bytes([2] * 16)
    lines = [WithdrawnLine(CMCC_1, Status.SHUT_DOWN, ""), WithdrawnLine(CMCC_2, Status.NOTICED, ""),
             WithdrawnLine(CMCC_3, Status.REFUSED, ""), WithdrawnLine(MVNO_1, Status.NOTICED, ""),
             WithdrawnLine(GD_1, Status.FORWARDED, "bureau.gd"),
             WithdrawnLine(BJ_1, Status.FORWARDED, "bureau.bj")]
    cases = [Case(CMCC_2, Status.NOTICED, "cmcc.fj", NOTICE_ID),
             Case(CMCC_1, Status.SHUT_DOWN, "cmcc.fj", NOTICE_ID),
             Case(CMCC_3, Status.REFUSED, "cmcc.fj", NOTICE_ID),
             Case(MVNO_1, Status.NOTICED, "mvno-x.fj", other),
             Case("+8615959000009", Status.NOTICED, "cmcc.fj", None)]
    p = plan_withdrawal(lines, cases, still_reported=[MVNO_1], directory=DIRECTORY)
    assert p.ended == (CMCC_1, CMCC_2, "+8615959000009")
    assert p.releases == (Release("cmcc.fj", NOTICE_ID, (CMCC_1, CMCC_2)),)
    assert p.passed_on == (Forward("bureau.gd", (GD_1,)),)  # bureau.bj is no member


NOTICES = [NOTICE_ID, bytes([3] * 16), None]


@given(st.lists(st.tuples(st.sampled_from([CMCC_1, CMCC_2, CMCC_3, MVNO_1]), CASE_STATUSES,
                          st.sampled_from(NOTICES)), unique_by=lambda t: t[0]),
       st.lists(st.sampled_from([CMCC_1, CMCC_2, CMCC_3, MVNO_1])),
       st.lists(st.tuples(st.sampled_from([GD_1, BJ_1]),
                          st.sampled_from(["bureau.gd", "bureau.bj"]))))
def test_a_withdrawal_releases_only_what_a_carrier_holds_for_this_report_alone(
        held: list[tuple[str, Status, bytes | None]], elsewhere: list[str],
        forwarded: list[tuple[str, str]]) -> None:
    cases = [Case(n, status, "cmcc.fj", nid) for n, status, nid in held]
    lines = [WithdrawnLine(n, Status.FORWARDED, b) for n, b in forwarded]
    p = plan_withdrawal(lines, cases, still_reported=elsewhere, directory=DIRECTORY)
    releasable = {c.number for c in cases if c.number not in elsewhere
                  and c.status in (Status.NOTICED, Status.SHUT_DOWN)}
    assert set(p.ended) == releasable and len(p.ended) == len(releasable)
    released = [n for r in p.releases for n in r.numbers]
    assert sorted(released) == sorted(c.number for c in cases
                                      if c.number in releasable and c.notice_id is not None)
    for r in p.releases:
        assert all(next(c for c in cases if c.number == n).notice_id == r.notice_id
                   for n in r.numbers)
    assert {f.bureau for f in p.passed_on} <= {"bureau.gd"}
    assert sorted(n for f in p.passed_on for n in f.numbers) == sorted(
        n for n, b in forwarded if b == "bureau.gd")


# --- Channels, ID holders, appeals, penalties, progress --------------------------------------


@pytest.mark.parametrize(("channel", "role", "carrier"), [
    (SalesChannel(outlet_code="FZ-1"), Role.CARRIER, "cmcc.fj"),
    (SalesChannel(outlet_name="Kiosk"), Role.COMMERCE, ""),
    (SalesChannel(outlet_code="FZ-1", carrier_node="mvno-x.fj"), Role.COMMERCE, "mvno-x.fj"),
])
def test_channel_record_names_the_responsible_carrier(channel: SalesChannel, role: Role,
                                                      carrier: str) -> None:
    r = channel_record(ChannelReport(channel=channel, numbers=(CMCC_1, CMCC_2)),
                       report_id=NOTICE_ID, sender="cmcc.fj", sender_role=role, received_at=7)
    assert (r.carrier_node, r.numbers, r.penalty_id) == (carrier, f"{CMCC_1},{CMCC_2}", None)


def test_a_channel_report_without_an_outlet_is_refused() -> None:
    with pytest.raises(InvalidBodyError, match="names no outlet"):
        channel_record(ChannelReport(channel=None), report_id=NOTICE_ID, sender="x",
                       sender_role=Role.CARRIER, received_at=0)


def test_id_holders_need_a_full_hmac_and_default_to_pending() -> None:
    body = IdConcentrationReport(province="fj", holders=(IdHolder(id_hmac=bytes(32),
                                                                  card_count=12),))
    [r] = id_holder_records(body, report_id=NOTICE_ID, sender="cmcc.fj", received_at=1)
    assert (r.outcome, r.card_count) == (VerificationOutcome.PENDING.value, 12)
    with pytest.raises(InvalidBodyError, match=r"must be 32 bytes \(HMAC-SHA256\), got 31"):
        id_holder_records(IdConcentrationReport(holders=(IdHolder(id_hmac=bytes(31)),)),
                          report_id=NOTICE_ID, sender="cmcc.fj", received_at=1)


@pytest.mark.parametrize(("appeal", "error"), [
    (None, "no appeal A at bureau.fj"),
    (AppealState(NOTICE_ID, "cmcc.fj", CMCC_1, True, AppealOutcome.UPHELD.value),
     r"appeal A was decided already \(upheld\)"),
])
def test_an_appeal_decided_or_unknown_is_refused(appeal: AppealState | None, error: str
                                                 ) -> None:
    with pytest.raises(OperationError, match=error):
        check_appeal_decision(appeal, appeal_text="A", bureau="bureau.fj")


def test_only_member_police_are_told_of_an_appeal_decision() -> None:
    assert police_to_inform(["police.fj", "commerce.fj", "police.gone", "police.fj"],
                            DIRECTORY) == ("police.fj",)


def channel(**kw: object) -> ChannelState:
    values: dict[str, object] = {
        "report_id": NOTICE_ID, "outlet_code": "FZ-1", "outlet_name": "Kiosk", "agent": "",
        "address": "", "carrier_node": "cmcc.fj", "numbers": (CMCC_1, CMCC_2),
        "penalty_id": None}
    return ChannelState(**{**values, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(("report", "violation", "error"), [
    (channel(penalty_id=bytes(16)), "sold", "already led to penalty 0000"),
    (channel(carrier_node=""), "sold", "names no member carrier responsible for outlet 'FZ-1'"),
    (channel(carrier_node="", outlet_code=""), "sold", "for outlet 'Kiosk'"),
    (channel(carrier_node="cucc.fj"), "sold", "names no member carrier"),
    (channel(carrier_node="cmcc.gd"), "sold", "a carrier of another province"),
    (channel(), " ", "a penalty needs its violation"),
])
def test_penalty_refusals(report: ChannelState, violation: str, error: str) -> None:
    with pytest.raises(OperationError, match=error):
        plan_penalty(report, report_text="R", violation=violation, measure="fine",
                     legal_basis="art. 1", directory=DIRECTORY, province="fj", max_numbers=9)


def test_a_penalty_carries_the_channel_and_at_most_the_numbers_a_message_may() -> None:
    p = plan_penalty(channel(), report_text="R", violation="sold", measure="fine",
                     legal_basis="art. 1", directory=DIRECTORY, province="fj", max_numbers=1)
    assert p.numbers == (CMCC_1,) and p.evidence == (NOTICE_ID,)
    assert p.channel == SalesChannel(outlet_code="FZ-1", outlet_name="Kiosk",
                                     carrier_node="cmcc.fj")


def test_progress_counts_per_carrier_and_category() -> None:
    got = count_progress([
        StatusCount("cmcc.fj", "fraud", "shut_down", 3), StatusCount("cmcc.fj", "fraud",
                                                                     "noticed", 2),
        StatusCount("cmcc.fj", "fraud", "refused", 1), StatusCount("cmcc.fj", "fraud",
                                                                   "withdrawn", 4),
        StatusCount("ctcc.fj", "fraud", "noticed", 1)], {"cmcc.fj": 2})
    assert [(c.carrier_node, c.reported, c.shut_down, c.pending, c.refused, c.overdue)
            for c in got] == [("cmcc.fj", 10, 3, 2, 1, 2), ("ctcc.fj", 1, 0, 1, 0, 0)]


def test_overdue_detail_names_notice_carrier_and_what_is_missing() -> None:
    n = OverdueNotice(NOTICE_ID, "ctcc.fj", 5, 2, NOW - timedelta(hours=1))
    assert overdue_detail(n) == (f"shutdown notice {NOTICE_ID.hex()} to ctcc.fj: 3 of 5 "
                                 "number(s) unanswered past the deadline "
                                 "2026-11-28T23:00:00+00:00")


def test_report_line_closed_when_final_or_forwarded() -> None:
    assert ReportLine(CMCC_1, Status.FORWARDED, forwarded_to="bureau.gd").closed
    assert not ReportLine(CMCC_1, Status.NOTICED).closed
