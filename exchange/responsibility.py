"""Responsibility from the directory alone: may this sender say this about this object?

The role table (``identity.ALLOWED``) says which role may send which body. One level up
(docs/who-may-send-what.md#directory-rules), these rules ask *which* member, about
*whose* object, using only the signed directory and the message itself, so they run in
``receive.check_incoming`` before anything is logged. The rules that need the receiver's
own state (does the report exist, is the appeal still open) live with the agencies'
tables, in ``nodes/rules.py``; both kinds are ``Rule`` values, listed in plain tables a
script can read.

A refusal names its rule and is PERMISSION_DENIED (``NotResponsibleError``: this
sender may not), FAILED_PRECONDITION (``StateConflictError``: the state does not
allow it) or, for an impossible value such as a deadline in 1970, INVALID_ARGUMENT.
Refusal texts never quote a number or a name: they go back to the peer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from exchange import envelope, messages, numbers
from exchange.errors import (
    ExchangeError,
    InvalidBodyError,
    NoteError,
    NotResponsibleError,
    NumberError,
    StateConflictError,
)
from exchange.identity import Directory, Member, Role
from exchange.ledger import note
from exchange.ledger.receipts import log_origin


class Refusal(enum.Enum):
    NOT_RESPONSIBLE = "permission_denied"  # who may not
    STATE = "failed_precondition"  # the receiver's state does not allow it
    INVALID = "invalid_argument"  # a value no one may send

    @property
    def error(self) -> type[ExchangeError]:
        return {Refusal.NOT_RESPONSIBLE: NotResponsibleError,
                Refusal.STATE: StateConflictError,
                Refusal.INVALID: InvalidBodyError}[self]


@dataclass(frozen=True, slots=True)
class Rule:
    """One responsibility rule: its name (quoted in every refusal), the bodies it
    governs, how a refusal is answered, and what it requires."""

    name: str
    bodies: tuple[str, ...]
    refusal: Refusal
    requires: str

    def refuse(self, why: str) -> ExchangeError:
        return self.refusal.error(f"rule {self.name}: {why}")


# Obligations in the special action run for hours or days (the longest default is
# 72 h); a deadline must fall after the message was made and within this window of it.
# A deadline in 1970 makes every obligation overdue at once; one in 9999 none ever.
MAX_DEADLINE_AHEAD = timedelta(days=366)

PROVINCE_BUREAU = Rule(
    "province-bureau", ("shutdown_notice", "penalty"), Refusal.NOT_RESPONSIBLE,
    "a shutdown notice or a penalty comes only from the bureau of the carrier's province")
OWN_PARTY = Rule(
    "own-party", ("action_report", "channel_report", "id_concentration_report",
                  "progress_report", "penalty"), Refusal.NOT_RESPONSIBLE,
    "province and party fields of a body name its sender: a carrier reports its own "
    "actions, channels and ID holders, in its own province, to that province's bureau; a "
    "bureau reports progress of its own province; a penalty's channel names the carrier "
    "it is sent to")
FORWARDED_ORIGIN = Rule(
    "forwarded-origin", ("number_report", "withdrawal"), Refusal.NOT_RESPONSIBLE,
    "a report or withdrawal a bureau passes on to another bureau carries the reporter's "
    "own signed envelope, addressed to the bureau passing it on, of the same kind and "
    "covering every number passed on; only a bureau passes one on. The origin is never "
    "read from a free-text field")
DEADLINE_WINDOW = Rule(
    "deadline-window", ("shutdown_notice", "case_request", "appeal"), Refusal.INVALID,
    f"a deadline falls after the message's created_at and at most "
    f"{MAX_DEADLINE_AHEAD.days} days after it")
FORK_EVIDENCE = Rule(
    "fork-evidence", ("escalation",), Refusal.NOT_RESPONSIBLE,
    "an escalation of a ledger fork carries the two checkpoints, each signed by the "
    "subject's ledger key, that do not agree")

RULES: tuple[Rule, ...] = (PROVINCE_BUREAU, OWN_PARTY, FORWARDED_ORIGIN, DEADLINE_WINDOW,
                           FORK_EVIDENCE)


@dataclass(frozen=True, slots=True)
class Origin:
    """Who first sent a forwarded report or withdrawal, from its verified envelope."""

    sender: str
    message_id: bytes
    # The report the carried message belongs to: a later part of a report names its first
    # part; otherwise the carried message's own id.
    report_id: bytes = b""


def check(msg: messages.Message, *, sender: Member, recipient: Member,
          directory: Directory) -> Origin | None:
    """Apply every directory rule to ``msg``; return the verified origin of a forwarded
    report or withdrawal (None for anything else), or raise naming the rule broken."""
    body = msg.body
    if isinstance(body, messages.ShutdownNotice | messages.Penalty) and \
            sender.province != recipient.province:
        raise PROVINCE_BUREAU.refuse(
            f"{sender.node_id} is the bureau of province {sender.province!r}, "
            f"{recipient.node_id} a carrier of province {recipient.province!r}")
    _check_party(msg, sender, recipient)
    _check_deadline(msg)
    if isinstance(body, messages.Escalation) and \
            body.escalation_kind is messages.EscalationKind.LEDGER_FORK:
        _check_fork_evidence(body, directory)
    if isinstance(body, messages.NumberReport | messages.Withdrawal) and \
            recipient.role is Role.BUREAU:
        return origin_of(msg, sender=sender, directory=directory)
    if isinstance(body, messages.Withdrawal) and body.origin_envelope:
        # A bureau retracting its own notice at a carrier passes nothing on.
        raise FORWARDED_ORIGIN.refuse("a withdrawal of a notice carries no reporter's envelope")
    return None


def _check_party(msg: messages.Message, sender: Member, recipient: Member) -> None:
    body = msg.body
    if isinstance(body, messages.ActionReport):
        for i, a in enumerate(body.actions):
            if a.acted_by not in ("", sender.node_id):
                raise OWN_PARTY.refuse(f"action #{i} says another member acted, not "
                                       f"{sender.node_id}")
    elif isinstance(body, messages.ChannelReport):
        named = body.channel.carrier_node if body.channel else ""
        if sender.role is Role.CARRIER and named not in ("", sender.node_id):
            raise OWN_PARTY.refuse(f"carrier {sender.node_id} reports a channel of "
                                   f"{named}, not its own")
    elif isinstance(body, messages.IdConcentrationReport):
        if body.province != sender.province or recipient.province != sender.province:
            raise OWN_PARTY.refuse(
                f"{sender.node_id} of province {sender.province!r} reports ID holders of "
                f"province {body.province!r} to the bureau of {recipient.province!r}")
    elif isinstance(body, messages.ProgressReport):
        if body.province != sender.province:
            raise OWN_PARTY.refuse(f"{sender.node_id} of province {sender.province!r} "
                                   f"reports progress of province {body.province!r}")
    elif isinstance(body, messages.Penalty):
        named = body.channel.carrier_node if body.channel else ""
        if named not in ("", recipient.node_id):
            raise OWN_PARTY.refuse(f"the penalty's channel belongs to {named}, not to "
                                   f"{recipient.node_id}")


def _check_deadline(msg: messages.Message) -> None:
    body = msg.body
    deadline: datetime | None
    if isinstance(body, messages.ShutdownNotice | messages.CaseRequest):
        deadline = body.deadline
    elif isinstance(body, messages.Appeal):
        deadline = body.decide_by
    else:
        return
    if deadline is None:
        return  # the handler says whether this body needs one
    made = msg.header.created_at
    if not made < deadline <= made + MAX_DEADLINE_AHEAD:
        raise DEADLINE_WINDOW.refuse(
            f"{msg.kind} deadline {deadline.isoformat()} is not after its created_at "
            f"{made.isoformat()} and within {MAX_DEADLINE_AHEAD.days} days of it")


def _check_fork_evidence(body: messages.Escalation, directory: Directory) -> None:
    if not directory.has_member(body.subject_node):
        raise FORK_EVIDENCE.refuse("the escalation's subject is not a member")
    subject = directory.member(body.subject_node)
    origin = log_origin(directory.trust_domain, subject.node_id)
    verifier = note.Verifier.for_key(origin, subject.signing_key)
    texts = set()
    for i, item in enumerate(body.evidence):
        try:
            _, signed, _ = note.open_checkpoint(item, verifier, origin=origin)
        except NoteError as e:
            raise FORK_EVIDENCE.refuse(f"evidence #{i} is no checkpoint of "
                                       f"{subject.node_id}: {e}") from e
        texts.add(signed.text)
    if len(texts) < 2:
        raise FORK_EVIDENCE.refuse(
            f"a fork of {subject.node_id} needs two different signed checkpoints, "
            f"the escalation carries {len(texts)}")


def origin_of(msg: messages.Message, *, sender: Member, directory: Directory
              ) -> Origin | None:
    """The reporter of a report or withdrawal a bureau passes on, proven by the envelope
    it carries; None when the sender is the reporter itself."""
    body = msg.body
    assert isinstance(body, messages.NumberReport | messages.Withdrawal)
    raw = body.origin_envelope
    if sender.role is not Role.BUREAU:
        if raw:
            raise FORWARDED_ORIGIN.refuse(f"a {sender.role.value} sends its own {msg.kind}; "
                                          "only a bureau passes on another's")
        return None
    if not raw:
        raise FORWARDED_ORIGIN.refuse(f"a {msg.kind} from bureau {sender.node_id} carries no "
                                      "envelope of the reporter")
    try:
        env = envelope.parse(raw)
        if env.payload_type != envelope.PAYLOAD_TYPE_MESSAGE:
            raise InvalidBodyError(f"payload type {env.payload_type!r} is not a bcx message")
        inner = messages.decode_message(env.payload)
        reporter = directory.member(inner.header.sender)
        directory.signing_key_current(reporter)
        env.verify(reporter.signing_key)
    except ExchangeError as e:
        raise FORWARDED_ORIGIN.refuse(f"the reporter's envelope does not verify: {e}") from e
    if reporter.role not in (Role.POLICE, Role.COMMERCE):
        raise FORWARDED_ORIGIN.refuse(f"the envelope carried is signed by a "
                                      f"{reporter.role.value}, not by a reporter")
    if inner.kind != msg.kind:
        raise FORWARDED_ORIGIN.refuse(f"the envelope carried is a {inner.kind}, not a "
                                      f"{msg.kind}")
    if inner.header.recipient != sender.node_id:
        raise FORWARDED_ORIGIN.refuse(f"the envelope carried was addressed to "
                                      f"{inner.header.recipient}, not to {sender.node_id}")
    first = inner.body
    assert isinstance(first, messages.NumberReport | messages.Withdrawal)
    if isinstance(body, messages.Withdrawal):
        assert isinstance(first, messages.Withdrawal)
        if first.withdrawn_message_id != body.withdrawn_message_id:
            raise FORWARDED_ORIGIN.refuse("the withdrawal carried withdraws another report")
    if first.numbers:  # a withdrawal listing none withdraws every number
        _check_covered(body.numbers, first.numbers, inner.kind)
    part_of = first.report_id if isinstance(first, messages.NumberReport) else b""
    return Origin(sender=reporter.node_id, message_id=inner.header.message_id,
                  report_id=part_of or inner.header.message_id)


def _check_covered(passed_on: tuple[str, ...], reported: tuple[str, ...], kind: str) -> None:
    """Every number passed on is one the reporter listed (a bureau passes numbers on in
    E.164; the reporter may have written them otherwise)."""
    listed = set(reported)
    normalised: set[str] | None = None
    for i, n in enumerate(passed_on):
        if n in listed:
            continue
        if normalised is None:  # rare: parse the reporter's numbers only when needed
            normalised = {_comparable(r) for r in reported}
        if n not in normalised:
            raise FORWARDED_ORIGIN.refuse(f"number #{i} is not in the reporter's {kind}")


def _comparable(reported: str) -> str:
    """A reported number as a bureau passes it on: E.164 where it normalises."""
    try:
        return numbers.normalise(reported)
    except NumberError:
        return reported
