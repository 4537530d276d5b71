"""Responsibility over the receiver's own state, checked before any handler
(docs/who-may-send-what.md#state-rules).

``exchange.responsibility`` decides what the directory alone can: which bureau may
notice which carrier, whose envelope a forwarded report carries. What needs this
node's tables is decided here: does the report, notice or appeal named exist, did it
go to this sender, does the state machine allow the move. Each check is a thin
``load_…`` (named queries, nothing else) and a pure ``decide_…`` over the values it
returns; ``check`` runs the one for the receiving role and body, inside the
transaction that logs the message, so a refusal rolls back the RECEIVED entry and
changes nothing. Refusal texts name the rule and never quote a number.

These rules live in ``nodes`` because they read the agencies' tables and their state
machine (``nodes.shared.statuses.Status``); ``exchange`` never imports ``nodes``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from exchange import messages
from exchange.errors import NumberError, UnknownMemberError
from exchange.identity import Directory, Role
from exchange.node import Context, Handler
from exchange.receive import Accepted
from exchange.responsibility import Refusal, Rule
from nodes.carrier.subscribers import PORTED_OUT
from nodes.carrier.tables import subscriber_system
from nodes.models import (
    appeals,
    case_requests,
    notice_numbers,
    notices,
    numbers,
    report_numbers,
    reports,
)
from nodes.shared.batching import chunks
from nodes.shared.routing import Router, router_for
from nodes.shared.statuses import FINAL, Status

# --- The rules ---------------------------------------------------------------------------

REPORT_BUREAU = Rule(
    "report-bureau", ("circular", "appeal_decision"), Refusal.NOT_RESPONSIBLE,
    "feedback and appeal decisions reach a reporter only from the bureau its report went "
    "to, or the bureau of the number's province that report was forwarded to")
OWN_REPORT = Rule(
    "own-report", ("circular", "appeal_decision"), Refusal.STATE,
    "feedback and appeal decisions are about a report the receiving node sent")
OUTCOME_TRANSITION = Rule(
    "outcome-transition", ("circular", "appeal_decision"), Refusal.STATE,
    "feedback moves only open lines: a final outcome is never replaced by another; a "
    "lifted appeal restores a line that was cut, once")
SERVED_NUMBERS = Rule(
    "served-numbers", ("shutdown_notice",), Refusal.NOT_RESPONSIBLE,
    "a notice lists only numbers the carrier serves: in its blocks of the numbering plan, "
    "or ported in (its subscriber system lists them as its own)")
OWN_NOTICE = Rule(
    "own-notice", ("action_report", "withdrawal"), Refusal.STATE,
    "an action report answers a notice the bureau sent that carrier, for numbers the "
    "notice listed; a withdrawal at a carrier names a notice that bureau sent it")
CUTTING_CARRIER = Rule(
    "cutting-carrier", ("appeal",), Refusal.NOT_RESPONSIBLE,
    "an appeal comes only from the carrier that cut the line, about its own notice")
SHUT_LINE = Rule(
    "shut-line", ("appeal",), Refusal.STATE,
    "an appeal contests a line the bureau's case says is shut down, with no appeal open "
    "for it already")
OPEN_APPEAL = Rule(
    "open-appeal", ("appeal_decision",), Refusal.STATE,
    "an appeal decision at a carrier answers an appeal it made to that bureau, not "
    "decided yet")
APPEAL_NUMBER = Rule(
    "appeal-number", ("appeal_decision",), Refusal.NOT_RESPONSIBLE,
    "an appeal decision restores only the appeal's own number")
WITHDRAWN_REPORT = Rule(
    "withdrawn-report", ("withdrawal",), Refusal.STATE,
    "a withdrawal at a bureau names a report its reporter sent there")
FORWARDING_BUREAU = Rule(
    "forwarding-bureau", ("withdrawal",), Refusal.NOT_RESPONSIBLE,
    "a withdrawal passed on comes from the bureau that forwarded the report")
OWN_CASE_REQUEST = Rule(
    "own-case-request", ("case_response",), Refusal.STATE,
    "a case response answers a case request the receiving police node sent that carrier")

RULES: tuple[Rule, ...] = (REPORT_BUREAU, OWN_REPORT, OUTCOME_TRANSITION, SERVED_NUMBERS,
                           OWN_NOTICE, CUTTING_CARRIER, SHUT_LINE, OPEN_APPEAL,
                           APPEAL_NUMBER, WITHDRAWN_REPORT, FORWARDING_BUREAU,
                           OWN_CASE_REQUEST)


# --- The state machine of a reporter's line ------------------------------------------------

# A lifted appeal restores a line that was cut, or whose feedback is still on its way.
LIFTABLE = frozenset({Status.REPORTED, Status.NOTICED, Status.FORWARDED, Status.SHUT_DOWN})


def may_feed_back(current: Status, new: Status) -> bool:
    """Whether a Circular may say ``new`` of a line that is ``current``.

    An open line moves anywhere. A final line stays as it is: the same outcome again, a
    late acknowledgement (``new`` not final) or anything after the reporter withdrew it
    is accepted and changes nothing; another final outcome is refused.
    """
    return (current not in FINAL or current is new or current is Status.WITHDRAWN
            or new not in FINAL)


# --- Reporters (police, commerce): feedback and appeal decisions ---------------------------


@dataclass(frozen=True, slots=True)
class ReportLines:
    """The receiver's reports a message names and their lines for the numbers it lists."""

    went_to: Mapping[bytes, str]  # report id -> the bureau it was sent to
    status: Mapping[tuple[bytes, str], Status]  # (report id, number) -> line status


def responsible_bureau(directory: Directory, router: Router) -> Callable[[str, str], str]:
    """``(went_to, number) -> bureau``: the bureau a report's number is with — the bureau
    of the number's province when the report went to another province's bureau."""
    def bureau(went_to: str, number: str) -> str:
        try:
            province = router.block_of(number).province
            return directory.bureau_of(province).node_id
        except (NumberError, UnknownMemberError):
            return went_to
    return bureau


def _may_answer(sender: str, went_to: str, number: str,
                bureau_of: Callable[[str, str], str]) -> bool:
    return sender == went_to or sender == bureau_of(went_to, number)


def decide_feedback(outcomes: Sequence[messages.NumberOutcome], *, sender: str,
                    facts: ReportLines, bureau_of: Callable[[str, str], str]) -> None:
    """Refuse a Circular that is not about this node's reports, comes from a bureau
    those reports are not with, or replaces a final outcome."""
    from nodes.shared.feedback import status_of_feedback

    for i, line in enumerate(outcomes):
        if not line.report_id:
            continue  # a general line, about no report: it changes nothing here
        went_to = facts.went_to.get(line.report_id)
        if went_to is None:
            raise OWN_REPORT.refuse(f"line #{i} names report {line.report_id.hex()}, "
                                    "which this node never sent")
        if not _may_answer(sender, went_to, line.number, bureau_of):
            raise REPORT_BUREAU.refuse(f"line #{i}: report {line.report_id.hex()} went to "
                                       f"{went_to}, not to {sender}")
        current = facts.status.get((line.report_id, line.number))
        new = status_of_feedback(line).status
        if current is not None and not may_feed_back(current, new):
            raise OUTCOME_TRANSITION.refuse(
                f"line #{i} of report {line.report_id.hex()} is final ({current.value}) "
                f"and cannot become {new.value}")


def load_feedback(ctx: Context, outcomes: Sequence[messages.NumberOutcome]) -> ReportLines:
    ids = sorted({o.report_id for o in outcomes if o.report_id})
    if not ids:
        return ReportLines({}, {})
    went_to = {bytes(r.report_id): r.counterpart for r in ctx.conn.execute(
        select(reports.c.report_id, reports.c.counterpart).where(
            reports.c.report_id.in_(ids), reports.c.origin == ctx.node.node_id))}
    status: dict[tuple[bytes, str], Status] = {}
    listed = sorted({o.number for o in outcomes if o.report_id in went_to})
    for part in chunks(listed):
        for r in ctx.conn.execute(select(
                report_numbers.c.report_id, report_numbers.c.number, report_numbers.c.status)
                .where(report_numbers.c.report_id.in_(list(went_to)),
                       report_numbers.c.number.in_(part))):
            status[(bytes(r.report_id), r.number)] = Status(r.status)
    return ReportLines(went_to, status)


@dataclass(frozen=True, slots=True)
class NumberLine:
    report_id: bytes
    went_to: str
    status: Status


def load_number_lines(ctx: Context, number: str) -> list[NumberLine]:
    """Every line of this node's own reports that lists ``number``."""
    return [NumberLine(bytes(r.report_id), r.counterpart, Status(r.status))
            for r in ctx.conn.execute(
                select(report_numbers.c.report_id, reports.c.counterpart,
                       report_numbers.c.status)
                .join(reports, reports.c.report_id == report_numbers.c.report_id)
                .where(report_numbers.c.number == number,
                       reports.c.origin == ctx.node.node_id)
                .order_by(report_numbers.c.report_id))]


def decide_reporter_appeal(decision: messages.AppealDecision, *, sender: str,
                           lines: Sequence[NumberLine],
                           bureau_of: Callable[[str, str], str]) -> list[bytes]:
    """The reports whose line of the decision's number the decision moves, or raise."""
    if not lines:
        raise OWN_REPORT.refuse("the decision is about a number no report of this node "
                                "lists")
    mine = [ln for ln in lines if _may_answer(sender, ln.went_to, decision.number, bureau_of)]
    if not mine:
        raise REPORT_BUREAU.refuse(f"no report of this node listing the number went to "
                                   f"{sender}")
    if decision.outcome is messages.AppealOutcome.LIFTED:
        moved = [ln.report_id for ln in mine if ln.status in LIFTABLE]
        if not moved:
            raise OUTCOME_TRANSITION.refuse(
                "no line of the number is cut or open: "
                + ", ".join(sorted({ln.status.value for ln in mine})))
        return moved
    return [ln.report_id for ln in mine if ln.status is not Status.WITHDRAWN]


def reporter_appeal_lines(ctx: Context, acc: Accepted) -> list[bytes]:
    """Load and decide an AppealDecision at a reporter: the reports whose line it moves."""
    body = acc.message.body
    assert isinstance(body, messages.AppealDecision)
    return decide_reporter_appeal(
        body, sender=acc.sender.node_id, lines=load_number_lines(ctx, body.number),
        bureau_of=responsible_bureau(ctx.directory, router_for(ctx)))


def decide_case_response(*, sender: str, asked: str | None) -> None:
    """``asked``: the carrier the request named in ``in_reply_to`` went to, if any."""
    if asked != sender:
        raise OWN_CASE_REQUEST.refuse(f"the response answers no case request of this node "
                                      f"to {sender}")


@dataclass(frozen=True, slots=True)
class AskedCase:
    """A case request of this node: the carrier it went to."""

    carrier: str


def load_case_request(ctx: Context, request_id: bytes) -> AskedCase | None:
    row = ctx.conn.execute(select(case_requests.c.carrier).where(
        case_requests.c.request_id == request_id,
        case_requests.c.police == ctx.node.node_id)).first()
    return AskedCase(row.carrier) if row else None


def _check_case_response(ctx: Context, acc: Accepted) -> None:
    asked = load_case_request(ctx, acc.message.header.in_reply_to)
    decide_case_response(sender=acc.sender.node_id, asked=asked.carrier if asked else None)


def _check_feedback(ctx: Context, acc: Accepted) -> None:
    body = acc.message.body
    assert isinstance(body, messages.Circular)
    decide_feedback(body.outcomes, sender=acc.sender.node_id,
                    facts=load_feedback(ctx, body.outcomes),
                    bureau_of=responsible_bureau(ctx.directory, router_for(ctx)))


def _check_reporter_appeal(ctx: Context, acc: Accepted) -> None:
    reporter_appeal_lines(ctx, acc)


# --- Carriers: notices, withdrawals, appeal decisions ---------------------------------------


def decide_served(listed: Sequence[str], *, me: str, plan_carrier: Callable[[str], str],
                  ported_in: Iterable[str]) -> None:
    """Refuse a notice listing a number neither in this carrier's blocks nor ported in."""
    own = set(ported_in)
    for i, n in enumerate(listed):
        if plan_carrier(n) != me and n not in own:
            raise SERVED_NUMBERS.refuse(f"number #{i} of the notice is not served by {me}")


def _plan_carrier(router: Router) -> Callable[[str], str]:
    def carrier(number: str) -> str:
        try:
            return router.block_of(number).carrier_node
        except NumberError:
            return ""
    return carrier


def load_ported_in(ctx: Context, listed: Sequence[str]) -> list[str]:
    """Those of ``listed`` the subscriber system holds as this carrier's own (ported in)."""
    found = subscriber_system(ctx).lookup(listed) if listed else {}
    return [n for n, s in found.items() if s.status != PORTED_OUT]


def _check_notice(ctx: Context, acc: Accepted) -> None:
    body = acc.message.body
    assert isinstance(body, messages.ShutdownNotice)
    me = ctx.node.node_id
    plan_carrier = _plan_carrier(router_for(ctx))
    elsewhere = [n for n in body.numbers if plan_carrier(n) != me]
    decide_served(body.numbers, me=me, plan_carrier=plan_carrier,
                  ported_in=load_ported_in(ctx, elsewhere))


def decide_notice_withdrawal(*, notice_bureau: str | None, sender: str) -> None:
    if notice_bureau != sender:
        raise OWN_NOTICE.refuse(f"the withdrawal names no shutdown notice from {sender} to "
                                "this carrier")


@dataclass(frozen=True, slots=True)
class NoticeParties:
    """A shutdown notice: the bureau that sent it, the carrier it went to."""

    bureau: str
    carrier: str


def load_notice_to_me(ctx: Context, notice_id: bytes) -> NoticeParties | None:
    """A notice some bureau sent this carrier."""
    row = ctx.conn.execute(select(notices.c.bureau, notices.c.carrier).where(
        notices.c.notice_id == notice_id, notices.c.carrier == ctx.node.node_id)).first()
    return NoticeParties(row.bureau, row.carrier) if row else None


def load_notice_from_me(ctx: Context, notice_id: bytes) -> NoticeParties | None:
    """A notice this bureau sent some carrier."""
    row = ctx.conn.execute(select(notices.c.bureau, notices.c.carrier).where(
        notices.c.notice_id == notice_id, notices.c.bureau == ctx.node.node_id)).first()
    return NoticeParties(row.bureau, row.carrier) if row else None


def _check_notice_withdrawal(ctx: Context, acc: Accepted) -> None:
    body = acc.message.body
    assert isinstance(body, messages.Withdrawal)
    notice = load_notice_to_me(ctx, body.withdrawn_message_id)
    decide_notice_withdrawal(notice_bureau=notice.bureau if notice else None,
                             sender=acc.sender.node_id)


@dataclass(frozen=True, slots=True)
class AppealRow:
    bureau: str
    number: str
    decided: bool


def decide_carrier_appeal(decision: messages.AppealDecision, *, sender: str,
                          appeal: AppealRow | None) -> None:
    if appeal is None or appeal.bureau != sender:
        raise OPEN_APPEAL.refuse(f"the decision answers {decision.appeal_id.hex()}, which is "
                                 f"no appeal of this carrier to {sender}")
    if appeal.decided:
        raise OPEN_APPEAL.refuse(f"appeal {decision.appeal_id.hex()} was decided already")
    if decision.number != appeal.number:
        raise APPEAL_NUMBER.refuse(f"the decision names another number than appeal "
                                   f"{decision.appeal_id.hex()}")


def load_carrier_appeal(ctx: Context, appeal_id: bytes) -> AppealRow | None:
    """An appeal this carrier made."""
    row = ctx.conn.execute(select(appeals.c.bureau, appeals.c.number, appeals.c.decided_at)
                           .where(appeals.c.appeal_id == appeal_id,
                                  appeals.c.carrier == ctx.node.node_id)).first()
    return AppealRow(row.bureau, row.number, row.decided_at is not None) if row else None


def _check_carrier_appeal(ctx: Context, acc: Accepted) -> None:
    body = acc.message.body
    assert isinstance(body, messages.AppealDecision)
    decide_carrier_appeal(body, sender=acc.sender.node_id,
                          appeal=load_carrier_appeal(ctx, body.appeal_id))


# --- Bureaus: action reports, appeals, withdrawals --------------------------------------------


def decide_action_report(report: messages.ActionReport, *, sender: str,
                         notice_carrier: str | None, listed: Iterable[str]) -> None:
    if notice_carrier != sender:
        raise OWN_NOTICE.refuse(f"the action report answers no notice of this bureau to "
                                f"{sender}")
    on_notice = set(listed)
    for i, a in enumerate(report.actions):
        if a.number not in on_notice:
            raise OWN_NOTICE.refuse(f"action #{i} is for a number the notice did not list")


def load_listed(ctx: Context, notice_id: bytes, asked: Iterable[str]) -> list[str]:
    """Those of ``asked`` the notice listed."""
    listed: list[str] = []
    for part in chunks(sorted(set(asked))):
        listed.extend(ctx.conn.scalars(select(notice_numbers.c.number).where(
            notice_numbers.c.notice_id == notice_id, notice_numbers.c.number.in_(part))))
    return listed


def _check_action_report(ctx: Context, acc: Accepted) -> None:
    body = acc.message.body
    assert isinstance(body, messages.ActionReport)
    notice_id = acc.message.header.in_reply_to
    notice = load_notice_from_me(ctx, notice_id)
    listed = load_listed(ctx, notice_id, (a.number for a in body.actions)) if notice else []
    decide_action_report(body, sender=acc.sender.node_id,
                         notice_carrier=notice.carrier if notice else None, listed=listed)


@dataclass(frozen=True, slots=True)
class CaseRow:
    status: Status
    carrier: str


def decide_appeal(appeal: messages.Appeal, *, sender: str, case: CaseRow | None,
                  notice_carrier: str | None, open_appeal: bool) -> None:
    if case is None:
        raise SHUT_LINE.refuse("the appeal is about a number this bureau never noticed")
    if case.carrier != sender:
        raise CUTTING_CARRIER.refuse(f"the line is with {case.carrier}, not with {sender}")
    if appeal.notice_id and notice_carrier != sender:
        raise CUTTING_CARRIER.refuse(f"notice {appeal.notice_id.hex()} is no notice of this "
                                     f"bureau to {sender}")
    if case.status is not Status.SHUT_DOWN:
        raise SHUT_LINE.refuse(f"the line is {case.status.value}, not shut down")
    if open_appeal:
        raise SHUT_LINE.refuse("an appeal for the line is open already")


def load_case(ctx: Context, number: str) -> CaseRow | None:
    """This bureau's case of ``number``."""
    case = ctx.conn.execute(select(numbers.c.status, numbers.c.carrier_node).where(
        numbers.c.number == number)).first()
    return CaseRow(Status(case.status), case.carrier_node) if case else None


def load_open_appeal(ctx: Context, number: str) -> bool:
    """Whether an appeal to this bureau for ``number`` is still undecided."""
    return ctx.conn.execute(select(appeals.c.appeal_id).where(
        appeals.c.number == number, appeals.c.bureau == ctx.node.node_id,
        appeals.c.decided_at.is_(None))).first() is not None


def _check_appeal(ctx: Context, acc: Accepted) -> None:
    body = acc.message.body
    assert isinstance(body, messages.Appeal)
    notice = load_notice_from_me(ctx, body.notice_id) if body.notice_id else None
    decide_appeal(body, sender=acc.sender.node_id, case=load_case(ctx, body.number),
                  notice_carrier=notice.carrier if notice else None,
                  open_appeal=load_open_appeal(ctx, body.number))


@dataclass(frozen=True, slots=True)
class ReportRow:
    origin: str
    went_to: str  # who sent it here: the reporter, or the bureau that forwarded it


def decide_report_withdrawal(*, sender: str, origin: str | None, report: ReportRow | None
                             ) -> None:
    """``origin``: the reporter proven by the envelope a bureau carried, None when the
    sender is the reporter."""
    reporter = origin or sender
    if report is None or report.origin != reporter:
        raise WITHDRAWN_REPORT.refuse(f"the withdrawal names no report of {reporter} to this "
                                      "bureau")
    if origin is not None and report.went_to != sender:
        raise FORWARDING_BUREAU.refuse(f"the report came from {report.went_to}, not from "
                                       f"{sender}")


def load_report(ctx: Context, report_id: bytes) -> ReportRow | None:
    """A report this bureau holds, whoever sent it here."""
    row = ctx.conn.execute(select(reports.c.origin, reports.c.counterpart).where(
        reports.c.report_id == report_id)).first()
    return ReportRow(row.origin, row.counterpart) if row else None


def _check_report_withdrawal(ctx: Context, acc: Accepted) -> None:
    body = acc.message.body
    assert isinstance(body, messages.Withdrawal)
    decide_report_withdrawal(
        sender=acc.sender.node_id, origin=acc.origin.sender if acc.origin else None,
        report=load_report(ctx, body.withdrawn_message_id))


# --- One table, one hook ------------------------------------------------------------------------

# (receiving role, body) -> the state check; bodies not listed need only the directory's.
CHECKS: dict[tuple[Role, str], Handler] = {
    (Role.POLICE, "circular"): _check_feedback,
    (Role.COMMERCE, "circular"): _check_feedback,
    (Role.POLICE, "appeal_decision"): _check_reporter_appeal,
    (Role.POLICE, "case_response"): _check_case_response,
    (Role.CARRIER, "shutdown_notice"): _check_notice,
    (Role.CARRIER, "withdrawal"): _check_notice_withdrawal,
    (Role.CARRIER, "appeal_decision"): _check_carrier_appeal,
    (Role.BUREAU, "action_report"): _check_action_report,
    (Role.BUREAU, "appeal"): _check_appeal,
    (Role.BUREAU, "withdrawal"): _check_report_withdrawal,
}


def check(ctx: Context, acc: Accepted) -> None:
    """Node.responsibility: the state rules for this node's role and the message's body."""
    rule = CHECKS.get((ctx.node.me.role, acc.message.kind))
    if rule is not None:
        rule(ctx, acc)


def describe() -> list[dict[str, Any]]:
    """Every responsibility rule, directory and state alike, as plain values (for docs)."""
    from exchange.responsibility import RULES as DIRECTORY_RULES

    return [{"rule": r.name, "bodies": list(r.bodies), "refusal": r.refusal.value,
             "requires": r.requires, "needs": "directory" if r in DIRECTORY_RULES else "state"}
            for r in (*DIRECTORY_RULES, *RULES)]
