"""Responsibility (docs/who-may-send-what.md#responsibility-rules): case tables generated
from the rules and the role table.

Directory rules (exchange/responsibility.py) run over every (sender role, body,
recipient role) the role table accepts, in every relationship that matters: same or
other province, own or another party, the reporter's real or a forged envelope. State
rules (nodes/rules.py) are pure ``decide_…`` functions over the facts their loaders
read, tested here without a database.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from exchange import envelope, messages
from exchange.errors import (
    InvalidBodyError,
    NotResponsibleError,
    StateConflictError,
)
from exchange.identity import ALLOWED, Directory, Member, Role
from exchange.keys import Ed25519Signer
from exchange.ledger import note
from exchange.ledger.receipts import log_origin
from exchange.messages import (
    ActionOutcome,
    AppealDecision,
    AppealOutcome,
    Category,
    NumberOutcome,
)
from exchange.receive import Limits, check_incoming
from exchange.responsibility import (
    MAX_DEADLINE_AHEAD,
    Origin,
    Refusal,
    check,
)
from exchange.responsibility import (
    RULES as DIRECTORY_RULES,
)
from exchange.transport.status import status_for
from nodes import rules
from nodes.agency import BEHAVIOUR
from nodes.rules import (
    AppealRow,
    CaseRow,
    NumberLine,
    ReportLines,
    ReportRow,
    Status,
)
from nodes.shared.feedback import feedback
from nodes.shared.statuses import FINAL

NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
TRUST = "bcx.test"
SHUT = "+8615959000001"  # a Fujian China Mobile number
OTHER = "+8615959000002"
GD_NUMBER = "+8613802500001"  # Guangdong
REPORT_ID = messages.new_message_id(NOW)
BODY_KINDS = sorted({kind for _, kind in ALLOWED})


def _signer(node_id: str) -> Ed25519Signer:
    return Ed25519Signer.from_seed(hashlib.sha256(node_id.encode()).digest())


SPECS = [("office.cn", Role.OFFICE, "cn"),
         *((f"{role.value}.{p}", role, p) for role in (Role.POLICE, Role.BUREAU, Role.COMMERCE)
           for p in ("fj", "gd")),
         ("cmcc.fj", Role.CARRIER, "fj"), ("cucc.fj", Role.CARRIER, "fj"),
         ("cmcc.gd", Role.CARRIER, "gd")]
DIRECTORY = Directory(
    trust_domain=TRUST, version=1, issued_at=NOW - timedelta(days=1),
    expires_at=NOW + timedelta(days=30),
    members=tuple(Member(node_id=i, role=r, province=p, organisation=i,
                         endpoint="127.0.0.1:1", auth_cert_sha256=bytes(32),
                         signing_key=_signer(i).public_key, hpke_public_key=bytes(32))
                  for i, r, p in SPECS))


def member(role: Role, province: str) -> Member:
    if role is Role.OFFICE:
        return DIRECTORY.member("office.cn")
    if role is Role.CARRIER:
        return DIRECTORY.member(f"cmcc.{province}")
    return DIRECTORY.member(f"{role.value}.{province}")


def message(sender: str, recipient: str, body: messages.Body, *,
            created_at: datetime = NOW) -> messages.Message:
    return messages.Message(messages.Header(
        message_id=messages.new_message_id(created_at), sender=sender, recipient=recipient,
        created_at=created_at), body)


def sealed(msg: messages.Message, signer: str | None = None) -> bytes:
    return envelope.sign(messages.encode_message(msg), envelope.PAYLOAD_TYPE_MESSAGE,
                         _signer(signer or msg.header.sender)).raw


def report(numbers: tuple[str, ...] = (SHUT,), origin_envelope: bytes = b""
           ) -> messages.NumberReport:
    return messages.NumberReport(numbers=numbers, category=Category.FRAUD,
                                 case_number="FZ-1", origin_envelope=origin_envelope)


def police_report(to: str = "bureau.fj", numbers: tuple[str, ...] = (SHUT, GD_NUMBER),
                  sender: str = "police.fj") -> tuple[messages.Message, bytes]:
    msg = message(sender, to, report(numbers))
    return msg, sealed(msg)


def body_for(kind: str, sender: Member, recipient: Member) -> messages.Body:
    """The body of ``kind`` a well-behaved ``sender`` sends ``recipient``: every party and
    province field names the sender (or, for a penalty, the carrier it goes to)."""
    channel = messages.SalesChannel(outlet_code="FZ-0457")
    match kind:
        case "number_report":
            if sender.role is Role.BUREAU:
                _, raw = police_report(to=sender.node_id, sender=f"police.{sender.province}")
                return report((GD_NUMBER,), origin_envelope=raw)
            return report()
        case "withdrawal":
            if recipient.role is Role.BUREAU and sender.role is Role.BUREAU:
                first = message(f"police.{sender.province}", sender.node_id,
                                messages.Withdrawal(withdrawn_message_id=REPORT_ID,
                                                    numbers=(SHUT,), reason="mistyped"))
                return messages.Withdrawal(withdrawn_message_id=REPORT_ID, numbers=(SHUT,),
                                           reason="mistyped", origin_envelope=sealed(first))
            return messages.Withdrawal(withdrawn_message_id=REPORT_ID, reason="mistyped")
        case "shutdown_notice":
            return messages.ShutdownNotice(numbers=(SHUT,), deadline=NOW + timedelta(hours=24))
        case "penalty":
            return messages.Penalty(violation="v", measure="m", legal_basis="b",
                                    channel=replace(channel, carrier_node=recipient.node_id))
        case "action_report":
            return messages.ActionReport(actions=(messages.NumberAction(
                number=SHUT, outcome=ActionOutcome.SHUT_DOWN, acted_by=sender.node_id),))
        case "channel_report":
            named = sender.node_id if sender.role is Role.CARRIER else "cmcc.fj"
            return messages.ChannelReport(channel=replace(channel, carrier_node=named))
        case "id_concentration_report":
            return messages.IdConcentrationReport(province=sender.province)
        case "progress_report":
            return messages.ProgressReport(province=sender.province)
        case "case_request":
            return messages.CaseRequest(case_number="FZ-1", legal_authorization="a",
                                        numbers=(SHUT,), deadline=NOW + timedelta(hours=72))
        case "appeal":
            return messages.Appeal(number=SHUT, grounds="g", decide_by=NOW + timedelta(hours=72))
        case "appeal_decision":
            return AppealDecision(number=SHUT, outcome=AppealOutcome.LIFTED, appeal_id=REPORT_ID)
        case "escalation":
            return messages.Escalation(escalation_kind=messages.EscalationKind.OVERDUE_NOTICE)
        case "circular":
            return messages.Circular(outcomes=())
        case "case_response":
            return messages.CaseResponse()
    raise AssertionError(kind)


def verdict(fn: Callable[[], object]) -> tuple[type[Exception] | None, str]:
    try:
        fn()
    except (NotResponsibleError, StateConflictError, InvalidBodyError) as e:
        return type(e), str(e)
    return None, ""


# --- The role table and the handlers --------------------------------------------------------


ACCEPTED = sorted(((s, k, r) for (s, k), rs in ALLOWED.items() for r in rs),
                  key=lambda t: (t[0].value, t[1], t[2].value))


@pytest.mark.parametrize(("sender", "kind", "recipient"), ACCEPTED,
                         ids=lambda v: v.value if isinstance(v, Role) else v)
def test_every_accepted_pair_has_a_handler(sender: Role, kind: str, recipient: Role) -> None:
    # Regression: carrier -> police / commerce withdrawals (and seven more pairs) were
    # accepted, logged and receipted, and then nothing handled them.
    assert kind in BEHAVIOUR[recipient].handlers, f"{sender.value} -> {recipient.value}: {kind}"


@pytest.mark.parametrize(("role", "kind"), sorted(
    ((role, kind) for role, b in BEHAVIOUR.items() for kind in b.handlers),
    key=lambda t: (t[0].value, t[1])), ids=lambda v: v.value if isinstance(v, Role) else v)
def test_every_handler_is_reachable_through_the_table(role: Role, kind: str) -> None:
    assert any(role in ALLOWED.get((s, kind), frozenset()) for s in Role)


def test_withdrawals_follow_the_design() -> None:
    # docs/who-may-send-what.md#the-role-table: the police withdraw; a bureau passes
    # withdrawals on. Carriers never do.
    senders = {s for (s, k) in ALLOWED if k == "withdrawal"}
    assert senders == {Role.POLICE, Role.COMMERCE, Role.BUREAU}
    assert ALLOWED[(Role.BUREAU, "withdrawal")] == {Role.BUREAU, Role.CARRIER}
    assert Role.CARRIER not in ALLOWED[(Role.BUREAU, "circular")]


# --- The rules themselves -------------------------------------------------------------------

ALL_RULES = (*DIRECTORY_RULES, *rules.RULES)


def test_rule_names_are_unique_and_govern_real_bodies() -> None:
    assert len({r.name for r in ALL_RULES}) == len(ALL_RULES)
    for r in ALL_RULES:
        assert r.bodies and set(r.bodies) <= set(BODY_KINDS), r.name
    assert [d["rule"] for d in rules.describe()] == [r.name for r in ALL_RULES]


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_each_rule_refuses_with_its_status_and_its_name(rule: rules.Rule) -> None:
    error = rule.refuse("why")
    expected = {Refusal.NOT_RESPONSIBLE: grpc.StatusCode.PERMISSION_DENIED,
                Refusal.STATE: grpc.StatusCode.FAILED_PRECONDITION,
                Refusal.INVALID: grpc.StatusCode.INVALID_ARGUMENT}[rule.refusal]
    assert status_for(error) == expected
    assert str(error) == f"rule {rule.name}: why"


# --- Directory rules: roles x bodies x relationships ---------------------------------------

# What a well-formed body refuses when sender and recipient are of different provinces.
ACROSS_PROVINCES = {"shutdown_notice": "province-bureau", "penalty": "province-bureau",
                    "id_concentration_report": "own-party"}


def _province_cases() -> list[tuple[Role, str, Role, str]]:
    cases = []
    for sender, kind, recipient in ACCEPTED:
        for relation in ("same province", "other province"):
            if relation == "other province" and Role.OFFICE in (sender, recipient):
                continue  # the office is national
            cases.append((sender, kind, recipient, relation))
    return cases


@pytest.mark.parametrize(("sender", "kind", "recipient", "relation"), _province_cases(),
                         ids=lambda v: v.value if isinstance(v, Role) else v)
def test_directory_rules_over_every_accepted_pair(sender: Role, kind: str, recipient: Role,
                                                  relation: str) -> None:
    s = member(sender, "fj")
    r = member(recipient, "fj" if relation == "same province" else "gd")
    if s.node_id == r.node_id:
        r = DIRECTORY.member("bureau.gd" if r.role is Role.BUREAU else "cucc.fj")
    msg = message(s.node_id, r.node_id, body_for(kind, s, r))
    refused, text = verdict(lambda: check(msg, sender=s, recipient=r, directory=DIRECTORY))
    rule = ACROSS_PROVINCES.get(kind) if relation == "other province" else None
    if rule is None:
        assert refused is None, text
    else:
        assert refused is NotResponsibleError and text.startswith(f"rule {rule}: "), text


BUREAU_FJ, BUREAU_GD = DIRECTORY.member("bureau.fj"), DIRECTORY.member("bureau.gd")
CMCC_FJ, CUCC_FJ = DIRECTORY.member("cmcc.fj"), DIRECTORY.member("cmcc.gd")
OWN_PARTY_CASES = [
    # (sender, recipient, body naming another party)
    (CMCC_FJ, BUREAU_FJ, messages.ActionReport(actions=(messages.NumberAction(
        number=SHUT, outcome=ActionOutcome.SHUT_DOWN, acted_by="cucc.fj"),))),
    (CMCC_FJ, BUREAU_FJ, messages.ChannelReport(
        channel=messages.SalesChannel(outlet_code="X", carrier_node="cucc.fj"))),
    (CMCC_FJ, BUREAU_FJ, messages.IdConcentrationReport(province="gd")),
    (BUREAU_FJ, DIRECTORY.office, messages.ProgressReport(province="gd")),
    (BUREAU_FJ, CMCC_FJ, messages.Penalty(
        violation="v", channel=messages.SalesChannel(outlet_code="X", carrier_node="cucc.fj"))),
]


@pytest.mark.parametrize(("sender", "recipient", "body"), OWN_PARTY_CASES,
                         ids=lambda v: getattr(v, "kind", getattr(v, "node_id", "")))
def test_a_body_claiming_another_party_is_refused(sender: Member, recipient: Member,
                                                  body: messages.Body) -> None:
    msg = message(sender.node_id, recipient.node_id, body)
    with pytest.raises(NotResponsibleError, match=r"^rule own-party: "):
        check(msg, sender=sender, recipient=recipient, directory=DIRECTORY)


@pytest.mark.parametrize(("deadline", "refused"), [
    (NOW - timedelta(days=20000), True),  # 1970
    (NOW - timedelta(seconds=1), True),
    (NOW, True),
    (NOW + timedelta(seconds=1), False),
    (NOW + timedelta(hours=24), False),
    (NOW + MAX_DEADLINE_AHEAD, False),
    (NOW + MAX_DEADLINE_AHEAD + timedelta(seconds=1), True),
    (datetime(9999, 12, 31, tzinfo=UTC), True),
])
@pytest.mark.parametrize("kind", ["shutdown_notice", "case_request", "appeal"])
def test_deadlines_fall_within_a_window_of_the_message_time(
        kind: str, deadline: datetime, refused: bool) -> None:
    pairs = {"shutdown_notice": (BUREAU_FJ, CMCC_FJ),
             "case_request": (DIRECTORY.member("police.fj"), CMCC_FJ),
             "appeal": (CMCC_FJ, BUREAU_FJ)}
    s, r = pairs[kind]
    body = body_for(kind, s, r)
    field = "decide_by" if kind == "appeal" else "deadline"
    msg = message(s.node_id, r.node_id, replace(body, **{field: deadline}))  # type: ignore[type-var]
    got, text = verdict(lambda: check(msg, sender=s, recipient=r, directory=DIRECTORY))
    if refused:
        assert got is InvalidBodyError and text.startswith("rule deadline-window: "), text
    else:
        assert got is None, text


# --- Forwarded origin: the reporter's envelope, never a name in a free-text field ----------


def _forward(body: messages.Body, sender: str = "bureau.fj", to: str = "bureau.gd"
             ) -> tuple[Origin | None, type[Exception] | None, str]:
    msg = message(sender, to, body)
    out: list[Origin | None] = []
    got, text = verdict(lambda: out.append(check(
        msg, sender=DIRECTORY.member(sender), recipient=DIRECTORY.member(to),
        directory=DIRECTORY)))
    return (out[0] if out else None), got, text


def _forged(sender: str = "police.fj", signer: str = "bureau.fj") -> bytes:
    msg = message(sender, "bureau.fj", report((GD_NUMBER,)))
    return sealed(msg, signer=signer)


def _police_withdrawal(withdrawn: bytes = REPORT_ID) -> bytes:
    return sealed(message("police.fj", "bureau.fj",
                          messages.Withdrawal(withdrawn_message_id=withdrawn)))


def _passed_on(origin_envelope: bytes = b"") -> messages.Withdrawal:
    return messages.Withdrawal(withdrawn_message_id=REPORT_ID, numbers=(GD_NUMBER,),
                               origin_envelope=origin_envelope)


ORIGIN_CASES: list[tuple[str, Callable[[], messages.Body], str | None]] = [
    ("the reporter's own envelope", lambda: report((GD_NUMBER,), police_report()[1]), None),
    ("the reporter's number as found, forwarded in E.164",
     lambda: report((GD_NUMBER,), police_report(numbers=("86 138-0250-0001",))[1]), None),
    ("no envelope (origin named in the thread only)", lambda: report((GD_NUMBER,)),
     "carries no envelope of the reporter"),
    ("an envelope signed with the forwarding bureau's own key",
     lambda: report((GD_NUMBER,), _forged()), "does not verify"),
    ("the reporter's report to another bureau",
     lambda: report((GD_NUMBER,), police_report(to="bureau.gd")[1]), "addressed to bureau.gd"),
    ("a number the reporter never reported",
     lambda: report(("+8613802500002",), police_report()[1]), "number #0 is not in"),
    ("an envelope that is not a report", lambda: report((GD_NUMBER,), _police_withdrawal()),
     "is a withdrawal, not a number_report"),
    ("an envelope signed by a carrier",
     lambda: report((GD_NUMBER,), sealed(message("cmcc.fj", "bureau.fj", report()))),
     "signed by a carrier"),
    ("garbage", lambda: report((GD_NUMBER,), b"\x00not an envelope"), "does not verify"),
    ("a withdrawal with the reporter's withdrawal", lambda: _passed_on(_police_withdrawal()),
     None),
    ("a withdrawal of another report",
     lambda: _passed_on(_police_withdrawal(messages.new_message_id(NOW))),
     "withdraws another report"),
    ("a withdrawal naming the reporter in the thread only", _passed_on,
     "carries no envelope of the reporter"),
]


@pytest.mark.parametrize(("case", "make", "refusal"), ORIGIN_CASES, ids=[c[0] for c in ORIGIN_CASES])
def test_a_forwarded_report_or_withdrawal_is_believed_only_with_the_reporters_envelope(
        case: str, make: Callable[[], messages.Body], refusal: str | None) -> None:
    origin, got, text = _forward(make())
    if refusal is None:
        assert got is None, text
        assert origin is not None and origin.sender == "police.fj"
    else:
        assert got is NotResponsibleError, (case, text)
        assert text.startswith("rule forwarded-origin: ") and refusal in text, text


def test_a_reporter_passes_on_nothing() -> None:
    s, r = DIRECTORY.member("police.fj"), BUREAU_FJ
    msg = message(s.node_id, r.node_id, report((SHUT,), police_report(sender="police.gd")[1]))
    with pytest.raises(NotResponsibleError, match="only a bureau passes on"):
        check(msg, sender=s, recipient=r, directory=DIRECTORY)
    assert check(message(s.node_id, r.node_id, report()), sender=s, recipient=r,
                 directory=DIRECTORY) is None


def test_the_receive_pipeline_applies_the_rules_and_returns_the_origin() -> None:
    # Regression: bureau.gd's ShutdownNotice to cmcc.fj passed every check.
    raw = sealed(message("bureau.gd", "cmcc.fj", body_for("shutdown_notice", BUREAU_GD,
                                                          CMCC_FJ)))
    with pytest.raises(NotResponsibleError, match=r"^rule province-bureau: bureau\.gd is the "
                                                  r"bureau of province 'gd'"):
        check_incoming(raw, directory=DIRECTORY, me="cmcc.fj", peer="bureau.gd", now=NOW,
                       limits=Limits())
    police_msg, police_raw = police_report()
    raw = sealed(message("bureau.fj", "bureau.gd", report((GD_NUMBER,), police_raw)))
    acc = check_incoming(raw, directory=DIRECTORY, me="bureau.gd", peer="bureau.fj", now=NOW,
                         limits=Limits())
    assert acc.origin is not None
    assert (acc.origin.sender, acc.origin.message_id) == ("police.fj",
                                                          police_msg.header.message_id)


# --- Fork escalations carry their evidence -------------------------------------------------


def _checkpoint(size: int, node: str = "bureau.fj", signer: str | None = None) -> bytes:
    origin = log_origin(TRUST, node)
    cp = note.Checkpoint(origin, size, hashlib.sha256(str(size).encode()).digest())
    return note.sign_checkpoint(cp, _signer(signer or node)).encode()


@pytest.mark.parametrize(("evidence", "refusal"), [
    ((), "carries 0"),
    ((_checkpoint(5),), "carries 1"),
    ((_checkpoint(5), _checkpoint(5)), "carries 1"),
    ((_checkpoint(5), _checkpoint(5, signer="cmcc.fj")), "evidence #1 is no checkpoint"),
    ((_checkpoint(5), _checkpoint(6, node="cmcc.fj")), "evidence #1 is no checkpoint"),
    ((_checkpoint(5), b"not a note"), "evidence #1 is no checkpoint"),
    ((_checkpoint(5), _checkpoint(9)), None),
])
def test_a_fork_escalation_carries_two_signed_checkpoints(evidence: tuple[bytes, ...],
                                                          refusal: str | None) -> None:
    body = messages.Escalation(escalation_kind=messages.EscalationKind.LEDGER_FORK,
                               subject_node="bureau.fj", evidence=evidence)
    s, r = CMCC_FJ, DIRECTORY.office
    got, text = verdict(lambda: check(message(s.node_id, r.node_id, body), sender=s,
                                      recipient=r, directory=DIRECTORY))
    if refusal is None:
        assert got is None, text
    else:
        assert got is NotResponsibleError and text.startswith("rule fork-evidence: "), text
        assert refusal in text, text


# --- State rules: a reporter's lines --------------------------------------------------------


def test_the_state_machine_never_replaces_a_final_outcome() -> None:
    for current, new in itertools.product(Status, Status):
        allowed = rules.may_feed_back(current, new)
        if current not in FINAL or current is new or current is Status.WITHDRAWN:
            assert allowed, (current, new)
        elif new in FINAL:
            assert not allowed, (current, new)  # e.g. shut_down -> restored by a Circular
        else:
            assert allowed, (current, new)  # a late acknowledgement: changes nothing


def _bureau_of(went_to: str, number: str) -> str:
    return {GD_NUMBER: "bureau.gd"}.get(number, "bureau.fj")


def _line(status: Status, number: str = SHUT) -> NumberOutcome:
    return feedback(number, status, report_id=REPORT_ID, decided_at=NOW)


FEEDBACK_CASES = [
    # (sender, report went to, line status now, what the Circular says, refused by)
    ("bureau.fj", "bureau.fj", Status.NOTICED, _line(Status.SHUT_DOWN), None),
    ("bureau.gd", "bureau.fj", Status.SHUT_DOWN, _line(Status.REFUSED), "report-bureau"),
    ("bureau.gd", "bureau.fj", Status.FORWARDED, _line(Status.SHUT_DOWN, GD_NUMBER), None),
    ("bureau.fj", "bureau.fj", Status.SHUT_DOWN, _line(Status.REFUSED), "outcome-transition"),
    ("bureau.fj", "bureau.fj", Status.SHUT_DOWN, _line(Status.RESTORED), "outcome-transition"),
    ("bureau.fj", "bureau.fj", Status.SHUT_DOWN, _line(Status.SHUT_DOWN), None),
    ("bureau.fj", "bureau.fj", Status.SHUT_DOWN, _line(Status.NOTICED), None),
    ("bureau.fj", "bureau.fj", Status.WITHDRAWN, _line(Status.SHUT_DOWN), None),
    ("bureau.fj", None, None, _line(Status.SHUT_DOWN), "own-report"),
]


@pytest.mark.parametrize(("sender", "went_to", "current", "line", "refusal"), FEEDBACK_CASES)
def test_feedback_only_from_the_reports_bureau_and_along_the_state_machine(
        sender: str, went_to: str | None, current: Status | None, line: NumberOutcome,
        refusal: str | None) -> None:
    facts = ReportLines({REPORT_ID: went_to} if went_to else {},
                        {(REPORT_ID, line.number): current} if current else {})
    got, text = verdict(lambda: rules.decide_feedback([line], sender=sender, facts=facts,
                                                      bureau_of=_bureau_of))
    if refusal is None:
        assert got is None, text
    else:
        assert got is not None and text.startswith(f"rule {refusal}: line #0"), text
        assert SHUT not in text and GD_NUMBER not in text  # texts go back to the peer


def _decision(outcome: AppealOutcome = AppealOutcome.LIFTED, number: str = SHUT
              ) -> AppealDecision:
    return AppealDecision(number=number, outcome=outcome, appeal_id=REPORT_ID)


R1, R2 = REPORT_ID, messages.new_message_id(NOW + timedelta(seconds=1))


@pytest.mark.parametrize(("sender", "lines", "decision", "expected"), [
    ("bureau.fj", [NumberLine(R1, "bureau.fj", Status.SHUT_DOWN)], _decision(), [R1]),
    ("bureau.gd", [NumberLine(R1, "bureau.fj", Status.SHUT_DOWN)], _decision(),
     "report-bureau"),
    ("bureau.fj", [], _decision(), "own-report"),
    ("bureau.fj", [NumberLine(R1, "bureau.fj", Status.RESTORED)], _decision(),
     "outcome-transition"),
    ("bureau.fj", [NumberLine(R1, "bureau.fj", Status.RESTORED),
                   NumberLine(R2, "bureau.fj", Status.SHUT_DOWN)], _decision(), [R2]),
    # A Fujian number reported to bureau.gd (R1) and to bureau.fj (R2): bureau.gd holds R1
    # only; bureau.fj, the number's own bureau, would hold both.
    ("bureau.gd", [NumberLine(R1, "bureau.gd", Status.SHUT_DOWN),
                   NumberLine(R2, "bureau.fj", Status.SHUT_DOWN)], _decision(), [R1]),
    ("bureau.fj", [NumberLine(R1, "bureau.gd", Status.SHUT_DOWN),
                   NumberLine(R2, "bureau.fj", Status.SHUT_DOWN)], _decision(), [R1, R2]),
    ("bureau.fj", [NumberLine(R1, "bureau.fj", Status.WITHDRAWN),
                   NumberLine(R2, "bureau.fj", Status.SHUT_DOWN)],
     _decision(AppealOutcome.UPHELD), [R2]),
])
def test_an_appeal_decision_moves_only_lines_the_deciding_bureau_holds(
        sender: str, lines: list[NumberLine], decision: AppealDecision,
        expected: list[bytes] | str) -> None:
    got: list[list[bytes]] = []
    refused, text = verdict(lambda: got.append(rules.decide_reporter_appeal(
        decision, sender=sender, lines=lines, bureau_of=_bureau_of)))
    if isinstance(expected, str):
        assert refused is not None and text.startswith(f"rule {expected}: "), text
    else:
        assert refused is None and got == [expected], text


# --- State rules: carriers --------------------------------------------------------------------


@pytest.mark.parametrize(("listed", "plan", "ported_in", "refused"), [
    ((SHUT, OTHER), {SHUT: "cmcc.fj", OTHER: "cmcc.fj"}, (), False),
    ((SHUT,), {SHUT: "cucc.fj"}, (SHUT,), False),  # ported in: its own answer
    ((SHUT, OTHER), {SHUT: "cmcc.fj", OTHER: "cucc.fj"}, (), True),
    ((GD_NUMBER,), {GD_NUMBER: "cmcc.gd"}, (), True),
])
def test_a_notice_lists_only_numbers_the_carrier_serves(
        listed: tuple[str, ...], plan: dict[str, str], ported_in: tuple[str, ...],
        refused: bool) -> None:
    got, text = verdict(lambda: rules.decide_served(listed, me="cmcc.fj",
                                                    plan_carrier=plan.__getitem__,
                                                    ported_in=ported_in))
    if refused:
        assert got is NotResponsibleError and text.startswith("rule served-numbers: "), text
        assert "cmcc.fj" in text and all(n not in text for n in listed)
    else:
        assert got is None, text


@pytest.mark.parametrize(("sender", "appeal", "decision", "expected"), [
    ("bureau.fj", AppealRow("bureau.fj", SHUT, decided=False), _decision(), None),
    ("bureau.fj", None, _decision(), (StateConflictError, "open-appeal")),
    ("bureau.gd", AppealRow("bureau.fj", SHUT, decided=False), _decision(),
     (StateConflictError, "open-appeal")),
    ("bureau.fj", AppealRow("bureau.fj", SHUT, decided=True), _decision(),
     (StateConflictError, "open-appeal")),
    ("bureau.fj", AppealRow("bureau.fj", SHUT, decided=False), _decision(number=OTHER),
     (NotResponsibleError, "appeal-number")),
])
def test_a_carrier_restores_only_the_appeals_own_number_once(
        sender: str, appeal: AppealRow | None, decision: AppealDecision,
        expected: tuple[type[Exception], str] | None) -> None:
    got, text = verdict(lambda: rules.decide_carrier_appeal(decision, sender=sender,
                                                            appeal=appeal))
    if expected is None:
        assert got is None, text
    else:
        assert got is expected[0] and text.startswith(f"rule {expected[1]}: "), text


@pytest.mark.parametrize(("bureau", "sender", "refused"), [
    ("bureau.fj", "bureau.fj", False), (None, "bureau.fj", True), ("bureau.fj", "bureau.gd", True)])
def test_a_carrier_takes_back_only_notices_the_sender_sent(
        bureau: str | None, sender: str, refused: bool) -> None:
    got, text = verdict(lambda: rules.decide_notice_withdrawal(notice_bureau=bureau,
                                                               sender=sender))
    assert (got is StateConflictError) == refused, text


# --- State rules: bureaus ------------------------------------------------------------------------


def _actions(*nums: str) -> messages.ActionReport:
    return messages.ActionReport(actions=tuple(
        messages.NumberAction(number=n, outcome=ActionOutcome.SHUT_DOWN) for n in nums))


@pytest.mark.parametrize(("carrier", "listed", "report", "refused"), [
    ("cmcc.fj", (SHUT, OTHER), _actions(SHUT), None),
    (None, (), _actions(SHUT), "answers no notice"),
    ("cucc.fj", (SHUT,), _actions(SHUT), "answers no notice"),
    ("cmcc.fj", (SHUT,), _actions(SHUT, OTHER), "action #1 is for a number"),
])
def test_an_action_report_answers_the_notice_it_names(
        carrier: str | None, listed: tuple[str, ...], report: messages.ActionReport,
        refused: str | None) -> None:
    got, text = verdict(lambda: rules.decide_action_report(
        report, sender="cmcc.fj", notice_carrier=carrier, listed=listed))
    if refused is None:
        assert got is None, text
    else:
        assert got is StateConflictError and refused in text, text


@pytest.mark.parametrize(("case", "notice_carrier", "open_appeal", "expected"), [
    (CaseRow(Status.SHUT_DOWN, "cmcc.fj"), "cmcc.fj", False, None),
    (CaseRow(Status.SHUT_DOWN, "cucc.fj"), "cmcc.fj", False,
     (NotResponsibleError, "cutting-carrier")),
    (CaseRow(Status.SHUT_DOWN, "cmcc.fj"), "cucc.fj", False,
     (NotResponsibleError, "cutting-carrier")),
    (None, None, False, (StateConflictError, "shut-line")),
    (CaseRow(Status.REFUSED, "cmcc.fj"), "cmcc.fj", False, (StateConflictError, "shut-line")),
    (CaseRow(Status.RESTORED, "cmcc.fj"), "cmcc.fj", False, (StateConflictError, "shut-line")),
    (CaseRow(Status.SHUT_DOWN, "cmcc.fj"), "cmcc.fj", True, (StateConflictError, "shut-line")),
])
def test_an_appeal_comes_only_from_the_carrier_that_cut_the_line(
        case: CaseRow | None, notice_carrier: str | None, open_appeal: bool,
        expected: tuple[type[Exception], str] | None) -> None:
    appeal = messages.Appeal(number=SHUT, grounds="g", notice_id=REPORT_ID)
    got, text = verdict(lambda: rules.decide_appeal(
        appeal, sender="cmcc.fj", case=case, notice_carrier=notice_carrier,
        open_appeal=open_appeal))
    if expected is None:
        assert got is None, text
    else:
        assert got is expected[0] and text.startswith(f"rule {expected[1]}: "), text


@pytest.mark.parametrize(("sender", "origin", "report", "expected"), [
    ("police.fj", None, ReportRow("police.fj", "police.fj"), None),
    ("police.gd", None, ReportRow("police.fj", "police.fj"), "withdrawn-report"),
    ("police.fj", None, None, "withdrawn-report"),
    ("bureau.fj", "police.fj", ReportRow("police.fj", "bureau.fj"), None),
    ("bureau.gd", "police.fj", ReportRow("police.fj", "bureau.fj"), "forwarding-bureau"),
    ("bureau.fj", "police.gd", ReportRow("police.fj", "bureau.fj"), "withdrawn-report"),
])
def test_a_withdrawal_names_a_report_of_its_reporter_from_whoever_brought_it(
        sender: str, origin: str | None, report: ReportRow | None, expected: str | None
) -> None:
    got, text = verdict(lambda: rules.decide_report_withdrawal(sender=sender, origin=origin,
                                                               report=report))
    if expected is None:
        assert got is None, text
    else:
        assert got is not None and text.startswith(f"rule {expected}: "), text


@pytest.mark.parametrize(("asked", "refused"), [("cmcc.fj", False), (None, True),
                                                ("cucc.fj", True)])
def test_a_case_response_answers_a_request_made_to_its_sender(asked: str | None,
                                                              refused: bool) -> None:
    got, text = verdict(lambda: rules.decide_case_response(sender="cmcc.fj", asked=asked))
    assert (got is StateConflictError) == refused, text
    if refused:
        assert text.startswith("rule own-case-request: "), text
