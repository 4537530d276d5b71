"""A carrier's handlers: notices, withdrawals, case requests, penalties, appeal decisions.

Handlers run inside the node's ledger transaction: the notice is logged RECEIVED, the
subscriber system suspends the numbers (ACTION entries) and the ActionReport is signed
and queued (SENT) in one commit, so a crash can never leave a number cut and unreported.
Each loads through the subscriber system and ``tables``, plans with ``decisions``, then
writes and sends what the plan says.
"""

from __future__ import annotations

from collections.abc import Mapping

from exchange import messages, seal
from exchange.messages import ActionReport, ChannelReport, NumberAction, SealedBox
from exchange.node import Context, Handler
from exchange.receive import Accepted
from nodes.carrier import decisions, tables
from nodes.carrier.decisions import NoticePlan
from nodes.carrier.subscribers import SubscriberSystem
from nodes.shared.batching import chunks


def on_shutdown_notice(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.ShutdownNotice)
    decisions.check_notice(body)
    subs = tables.subscriber_system(ctx)
    found = subs.lookup(body.numbers)
    decided = decisions.decide_all(body.numbers, found)
    subs.suspend(decisions.to_suspend(decided), by=h.message_id, at=ctx.now)
    cards = subs.cards_under_ids(s.id_number for s in found.values())
    channels = {o: subs.channel(o) for o in decisions.outlets_to_show(decided, found)}
    plan = decisions.plan_notice(decided, found, channels=channels, cards=cards,
                                 investigate=body.investigate_channel, now=ctx.now,
                                 me=ctx.node.node_id)
    # The action reports first, so each notice line is written once, with its answer.
    answered: list[tuple[NumberAction, bytes]] = []
    for part in chunks(plan.actions):
        aid = ctx.send(h.sender, ActionReport(actions=tuple(part)), in_reply_to=h.message_id,
                       thread=h.thread)
        answered.extend((a, aid) for a in part)
    tables.insert_answered_notice(ctx.conn, body, notice_id=h.message_id, bureau=h.sender,
                                  carrier=ctx.node.node_id, sent_at=h.created_at,
                                  answered_at=ctx.now)
    tables.insert_notice_lines(ctx.conn, h.message_id, answered, answered_at=ctx.now)
    _report_channels(ctx, h.sender, plan, tables.subscriber_system(ctx))


def _report_channels(ctx: Context, bureau: str, plan: NoticePlan,
                     subs: SubscriberSystem) -> None:
    """One ChannelReport per outlet that sold cards without (true) real-name registration."""
    for finding in plan.channel_reports:
        for part in chunks(finding.numbers):
            ctx.send(bureau, ChannelReport(
                channel=subs.channel(finding.outlet_code), numbers=tuple(part),
                observed_at=ctx.now, findings=finding.findings))


def on_withdrawal(ctx: Context, acc: Accepted) -> None:
    """A bureau retracts a notice (its report was withdrawn): restore what it cut.

    The notice is one the sender sent this carrier (rule own-notice)."""
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.Withdrawal)
    subs = tables.subscriber_system(ctx)
    plan = decisions.plan_restore(body, subs.lookup(body.numbers), now=ctx.now,
                                  me=ctx.node.node_id)
    subs.restore(list(plan.restore), at=ctx.now)
    # Each report answers the notice (in_reply_to) and names the withdrawal it carries out.
    for part in chunks(plan.actions):
        ctx.send(h.sender, ActionReport(actions=tuple(part), withdrawal_id=h.message_id),
                 in_reply_to=body.withdrawn_message_id, thread=h.thread)


def on_case_request(ctx: Context, acc: Accepted) -> None:
    """Answer a police case request, sealed to the requesting node alone."""
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.CaseRequest)
    decisions.check_case_request(body)
    subs = tables.subscriber_system(ctx)
    found = subs.lookup(body.numbers)
    others = subs.cards_under_ids(s.id_number for s in found.values()) \
        if messages.CaseQuestion.OTHER_CARDS_UNDER_ID in body.questions else {}
    channels = {o: subs.channel(o) for o in decisions.channel_lookups(body, found)}
    answer = decisions.plan_case_answer(body, found, others=others, channels=channels,
                                        me=ctx.node.node_id)
    sealed = seal.seal(messages.encode_case_answer(answer), recipient=h.sender,
                       recipient_public_key=ctx.directory.member(h.sender).hpke_public_key,
                       context=decisions.CASE_CONTEXT + h.message_id)
    tables.insert_case_request(ctx.conn, body, request_id=h.message_id, police=h.sender,
                               carrier=ctx.node.node_id, sent_at=h.created_at,
                               answered_at=ctx.now)
    response_id = ctx.send(h.sender, messages.CaseResponse(sealed_answer=SealedBox(
        suite=sealed.suite, recipient=sealed.recipient,
        recipient_key_id=sealed.recipient_key_id, ciphertext=sealed.ciphertext)),
        in_reply_to=h.message_id, thread=body.case_number)
    tables.set_response(ctx.conn, h.message_id, response_id)


def on_penalty(ctx: Context, acc: Accepted) -> None:
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.Penalty)
    tables.insert_penalty(ctx.conn, body, penalty_id=h.message_id, bureau=h.sender,
                          carrier=ctx.node.node_id, issued_at=h.created_at)


def on_appeal_decision(ctx: Context, acc: Accepted) -> None:
    """An open appeal of this carrier to the sender, about the number named (rules
    open-appeal, appeal-number): the line restored is the appeal's own, once."""
    h, body = acc.message.header, acc.message.body
    assert isinstance(body, messages.AppealDecision)
    number = tables.appeal_number(ctx.conn, body.appeal_id)
    tables.record_decision(ctx.conn, body, decision_id=h.message_id, now=ctx.now)
    restore = decisions.to_restore_on_decision(body, number)
    if restore:
        tables.subscriber_system(ctx).restore(restore, at=ctx.now)


HANDLERS: Mapping[str, Handler] = {
    "shutdown_notice": on_shutdown_notice,
    "withdrawal": on_withdrawal,
    "case_request": on_case_request,
    "penalty": on_penalty,
    "appeal_decision": on_appeal_decision,
}
