"""What a provincial bureau decides, as pure plans over values.

Each ``plan_…`` takes what a handler or command loaded (small frozen values, the
directory, the message body) and returns a value describing every row to write and
every message to send; ``nodes.bureau.handlers`` and ``nodes.bureau.commands`` load,
persist and send around them. No database, no gRPC, no clock: the time is an argument.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from exchange.errors import InvalidBodyError, OperationError
from exchange.identity import Directory, Role
from exchange.messages import (
    ActionOutcome,
    AppealOutcome,
    Category,
    ChannelReport,
    IdConcentrationReport,
    NumberAction,
    NumberOutcome,
    Penalty,
    ProgressCount,
    SalesChannel,
    VerificationOutcome,
)
from nodes.shared.batching import chunks
from nodes.shared.feedback import feedback
from nodes.shared.routing import Disposition, Router, Triage, is_member_carrier, triage
from nodes.shared.statuses import FINAL, STATUS_OF_OUTCOME, Status

LEGAL_BASIS = ("Anti-Telecom and Online Fraud Law art. 21; MIIT real-name registration "
               "rules: shut down unregistered cards used for fraud")


# --- Values loaded ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """This bureau's case of one number (its row of wf_numbers)."""

    number: str
    status: Status
    carrier_node: str
    notice_id: bytes | None = None

    @property
    def live(self) -> bool:
        """A case still running: an ended one (withdrawn, restored) may start again."""
        return self.status not in (Status.WITHDRAWN, Status.RESTORED)


@dataclass(frozen=True, slots=True)
class NoticeState:
    """A shutdown notice this bureau sent (its row of wf_notices)."""

    notice_id: bytes
    carrier: str
    category: Category
    numbers_total: int
    answered: int


@dataclass(frozen=True, slots=True)
class CaseOnNotice:
    """The case of a number a notice listed, as an action report finds it."""

    status: Status
    carrier_node: str
    outlet_code: str
    tried: tuple[str, ...]  # carriers asked already, so a porting hint cannot loop


@dataclass(frozen=True, slots=True)
class NoticeLine:
    """One number of a notice: whether the carrier answered it yet, and its case."""

    number: str
    answered: bool
    case: CaseOnNotice | None


@dataclass(frozen=True, slots=True)
class OpenLine:
    """A line of a report not withdrawn that has no final outcome yet."""

    report_id: bytes
    number: str
    origin: str


@dataclass(frozen=True, slots=True)
class WithdrawnLine:
    """A line of the report being withdrawn."""

    number: str
    status: Status
    forwarded_to: str  # the bureau a forwarded number went to, else ""


# --- Plans ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportLine:
    """What this bureau did with one reported number: its line of the report."""

    number: str  # E.164, or as reported when it is not a number
    status: Status  # of a known number: its case's
    reason: str = ""
    carrier_node: str = ""
    forwarded_to: str = ""  # the bureau a FORWARDED number went to
    already_known: bool = False  # this bureau had it from an earlier report

    @property
    def closed(self) -> bool:
        """Whether this bureau owes the reporter nothing more on it: a forwarded number
        is the other bureau's to feed back, the obligation ends with the hand-over."""
        return self.status in FINAL or self.status is Status.FORWARDED


@dataclass(frozen=True, slots=True)
class NoticeOrder:
    """Numbers to send one carrier in one ShutdownNotice."""

    carrier: str
    numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SentNotice:
    """A notice sent: its message id, carrier and numbers."""

    notice_id: bytes
    carrier: str
    numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Forward:
    """Numbers to pass on to another province's bureau in one message."""

    bureau: str
    numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReportPlan:
    """A number report's effect: its lines, the cases restarted, notices and forwards."""

    lines: tuple[ReportLine, ...]
    reopened: tuple[str, ...]  # numbers whose ended case is replaced by a new one
    notices: tuple[NoticeOrder, ...]
    forwards: tuple[Forward, ...]


def plan_number_report(reported: Sequence[str], *, cases: Mapping[str, Case],
                       province: str, router: Router, directory: Directory) -> ReportPlan:
    """Triage the numbers new to a report: one line per distinct number, a notice per
    carrier for the new cases, a forward per bureau of another province.

    ``cases`` are this bureau's cases of the report's valid numbers: a live one is
    linked (already known), an ended one starts again with a new notice.
    """
    live = [n for n, c in cases.items() if c.live]
    decided = triage(reported, province=province, known=live, router=router,
                     directory=directory)
    lines: dict[str, ReportLine] = {}
    to_notice: dict[str, list[str]] = defaultdict(list)
    to_forward: dict[str, list[str]] = defaultdict(list)
    for t in decided:
        key = t.number or t.reported
        line = None if key in lines else _line_of(t, key, cases)
        if line is None:
            continue  # the same number twice in one report
        lines[key] = line
        if t.disposition is Disposition.NOTICE:
            to_notice[t.target].append(t.number)
        elif t.disposition is Disposition.FORWARD:
            to_forward[t.target].append(t.number)
    notices = tuple(NoticeOrder(c, p) for c, p in _batches(to_notice))
    return ReportPlan(
        lines=tuple(lines.values()),
        reopened=tuple(n for o in notices for n in o.numbers if n in cases),
        notices=notices,
        forwards=tuple(Forward(b, p) for b, p in _batches(to_forward)))


def _line_of(t: Triage, key: str, cases: Mapping[str, Case]) -> ReportLine | None:
    match t.disposition:
        case Disposition.REJECT:
            return ReportLine(key, Status.REJECTED, t.reason)
        case Disposition.UNROUTABLE:
            return ReportLine(key, Status.UNROUTABLE, t.reason)
        case Disposition.FORWARD:
            return ReportLine(key, Status.FORWARDED, forwarded_to=t.target)
        case Disposition.KNOWN:
            case = cases.get(t.number)
            if case is None:  # twice in this report, first time noticed just now
                return None
            return ReportLine(key, case.status, carrier_node=case.carrier_node,
                              already_known=True)
        case Disposition.NOTICE:
            return ReportLine(key, Status.NOTICED, f"notice to {t.target}",
                              carrier_node=t.target)
    return None


def _batches(by_target: Mapping[str, list[str]]) -> list[tuple[str, tuple[str, ...]]]:
    """Per target in name order, its numbers in messages of at most ``CHUNK``."""
    return [(target, tuple(part)) for target, ns in sorted(by_target.items())
            for part in chunks(ns)]


def report_outcome(line: ReportLine, *, report_id: bytes, decided_at: datetime
                   ) -> NumberOutcome:
    """A report line as the reporter is told it in a Circular."""
    return feedback(line.number, line.status, detail=line.reason,
                    carrier_node=line.carrier_node, forwarded_to=line.forwarded_to,
                    already_known=line.already_known, report_id=report_id,
                    decided_at=decided_at)


def report_summary(report_id: bytes, bureau: str, count: int) -> str:
    return f"report {report_id.hex()} received by {bureau}: {count} number(s)"


# --- Carriers' answers ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineAnswer:
    """A notice line answered: the carrier's outcome and its reason or porting hint."""

    number: str
    outcome: ActionOutcome
    detail: str


@dataclass(frozen=True, slots=True)
class CaseUpdate:
    """A case's new state (its row of wf_numbers)."""

    number: str
    status: Status
    detail: str
    carrier_node: str
    outlet_code: str
    tried: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decided:
    """A final outcome, to be fed back to every reporter of the number."""

    number: str
    status: Status
    detail: str
    carrier_node: str


@dataclass(frozen=True, slots=True)
class ActionPlan:
    """An action report's effect on the notice, the cases, and who is told what."""

    answers: tuple[LineAnswer, ...]
    cases: tuple[CaseUpdate, ...]
    answered: int | None  # the notice's new count of answered lines, when it grew
    closed: bool  # every line of the notice is answered
    reroutes: tuple[NoticeOrder, ...]  # ported numbers, to the carrier that has them
    decided: tuple[Decided, ...]


def plan_action_report(notice: NoticeState, listed: Mapping[str, NoticeLine],
                       actions: Sequence[NumberAction], *, sender: str, withdrawal: bool,
                       directory: Directory) -> ActionPlan:
    """Apply a carrier's actions on ``notice`` (every number one the notice listed:
    rule own-notice). Actions answering a withdrawal leave the notice's lines as the
    carrier first answered them and tell nobody: the case records the restoration."""
    answers: list[LineAnswer] = []
    updates: list[CaseUpdate] = []
    decided: list[Decided] = []
    reroute: dict[str, list[str]] = defaultdict(list)
    newly_answered = 0
    for a in actions:
        line = listed[a.number]
        if not withdrawal:
            newly_answered += not line.answered
            answers.append(LineAnswer(a.number, a.outcome, a.refusal_reason or a.ported_to_hint))
        if line.case is None:
            continue  # no case for it here
        update = case_after(a, line.case, sender=sender, withdrawal=withdrawal,
                            directory=directory)
        updates.append(update)
        if update.status is Status.NOTICED:
            reroute[update.carrier_node].append(a.number)
        elif not (withdrawal and line.case.status is Status.WITHDRAWN):
            decided.append(Decided(a.number, update.status, update.detail, sender))
    answered = notice.answered + newly_answered if newly_answered else None
    return ActionPlan(
        answers=tuple(answers), cases=tuple(updates), answered=answered,
        closed=answered is not None and answered >= notice.numbers_total,
        reroutes=tuple(NoticeOrder(c, p) for c, p in _batches(reroute)),
        decided=tuple(decided))


def case_after(a: NumberAction, case: CaseOnNotice, *, sender: str, withdrawal: bool,
               directory: Directory) -> CaseUpdate:
    """A case after its carrier's action: its outcome, re-noticed to the carrier a ported
    number went to (never one asked already), or kept withdrawn once service is back."""
    outlet = a.channel.outlet_code if a.channel is not None and a.channel.outlet_code \
        else case.outlet_code
    status, detail = STATUS_OF_OUTCOME[a.outcome], a.refusal_reason
    if a.outcome is ActionOutcome.NOT_OUR_SUBSCRIBER:
        hint = a.ported_to_hint
        if hint and hint not in case.tried and is_member_carrier(directory, hint):
            return CaseUpdate(a.number, Status.NOTICED, f"ported from {sender} to {hint}",
                              hint, outlet, tuple(sorted({*case.tried, hint})))
        detail = f"{sender}: not our subscriber" + (
            f"; ported to {hint}, not a member carrier" if hint and hint not in case.tried
            else "; no other carrier to ask")
    if withdrawal and case.status is Status.WITHDRAWN:
        return CaseUpdate(a.number, case.status,
                          f"service restored by {sender} after the withdrawal",
                          case.carrier_node, outlet, case.tried)
    return CaseUpdate(a.number, status, detail, sender, outlet, case.tried)


@dataclass(frozen=True, slots=True)
class FinalFeedback:
    """One reporter's open lines that now have their final outcome."""

    origin: str
    lines: tuple[OpenLine, ...]  # by report, then number


def plan_final_feedback(decided: Mapping[str, Decided], open_lines: Iterable[OpenLine]
                        ) -> tuple[FinalFeedback, ...]:
    """Group the open lines of decided numbers by reporter, in a stable order (the same
    Circulars on every database)."""
    by_origin: dict[str, list[OpenLine]] = defaultdict(list)
    for line in open_lines:
        if line.number in decided:
            by_origin[line.origin].append(line)
    return tuple(FinalFeedback(origin, tuple(sorted(ls, key=lambda x: (x.report_id, x.number))))
                 for origin, ls in sorted(by_origin.items()))


def final_outcome(d: Decided, *, report_id: bytes, decided_at: datetime) -> NumberOutcome:
    """A final outcome as a reporter of the number is told it."""
    return feedback(d.number, d.status, detail=d.detail, carrier_node=d.carrier_node,
                    report_id=report_id, decided_at=decided_at)


# --- Withdrawals ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Release:
    """Numbers of one notice to ask its carrier to restore (a Withdrawal of the notice)."""

    carrier: str
    notice_id: bytes
    numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WithdrawalPlan:
    """A report withdrawn: cases ended, notices withdrawn, forwards withdrawn."""

    ended: tuple[str, ...]  # cases no other live report names: now withdrawn
    releases: tuple[Release, ...]
    passed_on: tuple[Forward, ...]  # to the member bureaus numbers were forwarded to


def plan_withdrawal(lines: Sequence[WithdrawnLine], cases: Iterable[Case], *,
                    still_reported: Iterable[str], directory: Directory) -> WithdrawalPlan:
    """Release the numbers of a withdrawn report that no other live report names and that
    a carrier has (noticed or shut down); pass the withdrawal on where numbers went."""
    named = set(still_reported)
    ended: list[str] = []
    release: dict[tuple[str, bytes], list[str]] = defaultdict(list)
    for case in sorted(cases, key=lambda c: c.number):
        if case.number in named or case.status not in (Status.NOTICED, Status.SHUT_DOWN):
            continue
        ended.append(case.number)
        if case.notice_id is not None:
            release[(case.carrier_node, case.notice_id)].append(case.number)
    forwarded: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        if line.status is Status.FORWARDED and directory.has_member(line.forwarded_to):
            forwarded[line.forwarded_to].append(line.number)
    return WithdrawalPlan(
        ended=tuple(ended),
        releases=tuple(Release(carrier, nid, tuple(part))
                       for (carrier, nid), ns in sorted(release.items())
                       for part in chunks(ns)),
        passed_on=tuple(Forward(b, p) for b, p in _batches(forwarded)))


# --- Channels, ID holders, appeals ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """A sales channel reported (its row of wf_channel_reports)."""

    report_id: bytes
    reporter: str
    outlet_code: str
    outlet_name: str
    agent: str
    address: str
    carrier_node: str
    numbers: str  # comma-separated
    findings: str
    received_at: int
    penalty_id: bytes | None = None


def channel_record(body: ChannelReport, *, report_id: bytes, sender: str,
                   sender_role: Role, received_at: int) -> ChannelRecord:
    """The row a ChannelReport makes; its carrier is the one named, or the sender when a
    carrier reports its own outlet."""
    ch = body.channel or SalesChannel()
    if not ch.outlet_code and not ch.outlet_name:
        raise InvalidBodyError("channel_report names no outlet (outlet_code or outlet_name)")
    carrier = ch.carrier_node or (sender if sender_role is Role.CARRIER else "")
    return ChannelRecord(
        report_id=report_id, reporter=sender, outlet_code=ch.outlet_code,
        outlet_name=ch.outlet_name, agent=ch.agent, address=ch.address,
        carrier_node=carrier, numbers=",".join(body.numbers), findings=body.findings,
        received_at=received_at)


@dataclass(frozen=True, slots=True)
class IdHolderRecord:
    """An ID holder a carrier reported (its row of wf_id_holders)."""

    report_id: bytes
    id_hmac: bytes
    carrier: str
    province: str
    hmac_key_id: str
    card_count: int
    outcome: str
    received_at: int


def id_holder_records(body: IdConcentrationReport, *, report_id: bytes, sender: str,
                      received_at: int) -> tuple[IdHolderRecord, ...]:
    out = []
    for holder in body.holders:
        if len(holder.id_hmac) != 32:
            raise InvalidBodyError("id_concentration_report: an ID HMAC must be 32 bytes "
                                   f"(HMAC-SHA256), got {len(holder.id_hmac)}")
        out.append(IdHolderRecord(
            report_id=report_id, id_hmac=holder.id_hmac, carrier=sender,
            province=body.province, hmac_key_id=body.hmac_key_id,
            card_count=holder.card_count,
            outcome=(holder.outcome or VerificationOutcome.PENDING).value,
            received_at=received_at))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AppealState:
    """An appeal this bureau received (its row of wf_appeals)."""

    appeal_id: bytes
    carrier: str
    number: str
    decided: bool
    outcome: str | None


def check_appeal_decision(appeal: AppealState | None, *, appeal_text: str, bureau: str
                          ) -> AppealState:
    """The appeal to decide, or an error naming why it cannot be."""
    if appeal is None:
        raise OperationError(f"no appeal {appeal_text} at {bureau}")
    if appeal.decided:
        raise OperationError(f"appeal {appeal_text} was decided already ({appeal.outcome})")
    return appeal


def appeal_outcome(lift: bool) -> AppealOutcome:
    return AppealOutcome.LIFTED if lift else AppealOutcome.UPHELD


def police_to_inform(origins: Iterable[str], directory: Directory) -> tuple[str, ...]:
    """The reporters of an appealed number told of the decision: member police units."""
    return tuple(o for o in sorted(set(origins)) if directory.has_member(o)
                 and directory.member(o).role is Role.POLICE)


# --- Penalties --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelState:
    """A channel report as a penalty reads it."""

    report_id: bytes
    outlet_code: str
    outlet_name: str
    agent: str
    address: str
    carrier_node: str
    numbers: tuple[str, ...]
    penalty_id: bytes | None


def plan_penalty(report: ChannelState, *, report_text: str, violation: str, measure: str,
                 legal_basis: str, directory: Directory, province: str, max_numbers: int
                 ) -> Penalty:
    """The Penalty a channel report leads to, or an error naming why it cannot."""
    if report.penalty_id is not None:
        raise OperationError(f"channel report {report_text} already led to penalty "
                             f"{report.penalty_id.hex()}")
    carrier = report.carrier_node
    if not carrier or not directory.has_member(carrier):
        raise OperationError(f"channel report {report_text} names no member carrier "
                             "responsible for outlet "
                             f"{report.outlet_code or report.outlet_name!r}")
    if directory.member(carrier).province != province:
        # The carrier would refuse it (rule province-bureau): its own bureau decides.
        raise OperationError(f"channel report {report_text} names {carrier}, "
                             "a carrier of another province: its own bureau decides penalties")
    for name, value in (("violation", violation), ("measure", measure),
                        ("legal basis", legal_basis)):
        if not value.strip():
            raise OperationError(f"a penalty needs its {name}")
    return Penalty(
        violation=violation, legal_basis=legal_basis, measure=measure,
        channel=SalesChannel(outlet_code=report.outlet_code, outlet_name=report.outlet_name,
                             agent=report.agent, address=report.address,
                             carrier_node=carrier),
        numbers=report.numbers[:max_numbers], evidence=(report.report_id,))


# --- Progress and deadlines -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusCount:
    """How many of a carrier's numbers of a category have a status."""

    carrier_node: str
    category: str
    status: str
    count: int


def count_progress(counts: Iterable[StatusCount], overdue: Mapping[str, int]
                   ) -> list[ProgressCount]:
    """The special action's counts per carrier and category, in that order."""
    acc: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in counts:
        acc[(c.carrier_node, c.category)][c.status] += c.count
    return [ProgressCount(
        carrier_node=carrier, category=Category(category),
        reported=sum(by_status.values()), shut_down=by_status[Status.SHUT_DOWN],
        pending=by_status[Status.NOTICED], refused=by_status[Status.REFUSED],
        overdue=overdue.get(carrier, 0))
        for (carrier, category), by_status in sorted(acc.items())]


@dataclass(frozen=True, slots=True)
class OverdueNotice:
    """A notice past its deadline without a full answer, not escalated yet."""

    notice_id: bytes
    carrier: str
    numbers_total: int
    answered: int
    deadline: datetime


def overdue_detail(n: OverdueNotice) -> str:
    return (f"shutdown notice {n.notice_id.hex()} to {n.carrier}: "
            f"{n.numbers_total - n.answered} of {n.numbers_total} number(s) unanswered "
            f"past the deadline {n.deadline.isoformat()}")
