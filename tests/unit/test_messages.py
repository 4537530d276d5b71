"""Tests for exchange.messages: the codec between domain dataclasses and bcx.v1.Message."""

from __future__ import annotations

import dataclasses
import enum
import re
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange import messages
from exchange.errors import InvalidBodyError, MalformedEnvelopeError
from exchange.messages import (
    ActionOutcome,
    ActionReport,
    Appeal,
    AppealDecision,
    AppealOutcome,
    Body,
    CaseAnswer,
    CaseQuestion,
    CaseRequest,
    CaseResponse,
    Category,
    ChannelReport,
    Circular,
    Escalation,
    EscalationKind,
    Header,
    IdConcentrationReport,
    IdHolder,
    Message,
    NumberAction,
    NumberOutcome,
    NumberReport,
    Penalty,
    ProgressCount,
    ProgressReport,
    RealNameState,
    SalesChannel,
    SealedBox,
    ShutdownNotice,
    SubscriberRecord,
    Verdict,
    VerificationOutcome,
    Withdrawal,
    decode_case_answer,
    decode_message,
    encode_case_answer,
    encode_message,
    format_message_id,
    message_id_time,
    new_message_id,
    parse_message_id,
)
from exchange.wire.bcx.v1 import message_pb2 as wire

# --- strategies ------------------------------------------------------------------------

# Every instant a protobuf Timestamp holds, to the microsecond a datetime holds.
times = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59, 999_999),
    timezones=st.just(UTC),
)
opt_times = st.none() | times
text = st.text(max_size=12)
ids = st.binary(max_size=20)
uint32 = st.integers(min_value=0, max_value=2**32 - 1)


def tuples(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(elements, max_size=3).map(tuple)


def optional_enum(e: type[enum.Enum]) -> st.SearchStrategy[Any]:
    return st.none() | st.sampled_from(e)


channels = st.builds(
    SalesChannel, outlet_code=text, outlet_name=text, agent=text, address=text, carrier_node=text
)
opt_channels = st.none() | channels

number_actions = st.builds(
    NumberAction,
    number=text,
    outcome=st.sampled_from(ActionOutcome),
    ported_to_hint=text,
    refusal_reason=text,
    acted_at=opt_times,
    acted_by=text,
    channel=opt_channels,
    activated_at=opt_times,
    real_name_state=optional_enum(RealNameState),
    cards_under_same_id=uint32,
)
id_holders = st.builds(
    IdHolder,
    id_hmac=ids,
    card_count=uint32,
    outcome=optional_enum(VerificationOutcome),
    numbers=tuples(text),
)
sealed_boxes = st.builds(
    SealedBox, suite=text, recipient=text, recipient_key_id=text, ciphertext=ids
)
subscriber_records = st.builds(
    SubscriberRecord,
    number=text,
    subscriber_name=text,
    id_number=text,
    registered_at=opt_times,
    channel=opt_channels,
    real_name_state=optional_enum(RealNameState),
    other_numbers_under_id=tuples(text),
)
case_answers = st.builds(CaseAnswer, records=tuples(subscriber_records), note=text)
# A line says what became of its number once: a carrier's outcome, or the bureau's verdict
# (with the bureau it went to only when forwarded), or neither.
_said = st.one_of(
    st.tuples(st.sampled_from(ActionOutcome), st.none(), st.just("")),
    st.tuples(st.none(), st.sampled_from(Verdict).filter(lambda v: v is not Verdict.FORWARDED),
              st.just("")),
    st.tuples(st.none(), st.just(Verdict.FORWARDED), text),
    st.tuples(st.none(), st.none(), st.just("")),
)
number_outcomes = _said.flatmap(lambda said: st.builds(
    NumberOutcome,
    number=text,
    outcome=st.just(said[0]),
    carrier_node=text,
    detail=text,
    report_id=ids,
    decided_at=opt_times,
    verdict=st.just(said[1]),
    forwarded_to=st.just(said[2]),
    already_known=st.booleans(),
))
progress_counts = st.builds(
    ProgressCount,
    carrier_node=text,
    category=optional_enum(Category),
    reported=uint32,
    shut_down=uint32,
    pending=uint32,
    refused=uint32,
    overdue=uint32,
)

BODIES: dict[str, st.SearchStrategy[Any]] = {
    "number_report": st.builds(
        NumberReport,
        numbers=tuples(text),
        category=st.sampled_from(Category),
        discovered_at=opt_times,
        case_number=text,
        evidence_summary=text,
        confidence=uint32,
    ),
    "shutdown_notice": st.builds(
        ShutdownNotice,
        numbers=tuples(text),
        legal_basis=text,
        deadline=opt_times,
        investigate_channel=st.booleans(),
        source_reports=tuples(ids),
        category=optional_enum(Category),
    ),
    "action_report": st.builds(ActionReport, actions=tuples(number_actions), withdrawal_id=ids),
    "channel_report": st.builds(
        ChannelReport,
        channel=opt_channels,
        numbers=tuples(text),
        findings=text,
        observed_at=opt_times,
    ),
    "id_concentration_report": st.builds(
        IdConcentrationReport,
        province=text,
        holders=tuples(id_holders),
        hmac_key_id=text,
        as_of=opt_times,
    ),
    "case_request": st.builds(
        CaseRequest,
        case_number=text,
        legal_authorization=text,
        numbers=tuples(text),
        questions=tuples(st.sampled_from(CaseQuestion)),
        deadline=opt_times,
    ),
    "case_response": st.builds(CaseResponse, sealed_answer=st.none() | sealed_boxes),
    "circular": st.builds(Circular, outcomes=tuples(number_outcomes), summary=text),
    "penalty": st.builds(
        Penalty,
        violation=text,
        legal_basis=text,
        measure=text,
        channel=opt_channels,
        numbers=tuples(text),
        evidence=tuples(ids),
    ),
    "appeal": st.builds(Appeal, number=text, grounds=text, notice_id=ids, decide_by=opt_times),
    "appeal_decision": st.builds(
        AppealDecision,
        number=text,
        outcome=st.sampled_from(AppealOutcome),
        reasoning=text,
        appeal_id=ids,
    ),
    "withdrawal": st.builds(
        Withdrawal, withdrawn_message_id=ids, reason=text, numbers=tuples(text)
    ),
    "escalation": st.builds(
        Escalation,
        escalation_kind=st.sampled_from(EscalationKind),
        subject_node=text,
        subject_message_id=ids,
        detail=text,
        deadline=opt_times,
        evidence=tuples(ids),
    ),
    "progress_report": st.builds(
        ProgressReport, province=text, counts=tuples(progress_counts), as_of=opt_times
    ),
}

headers = st.builds(
    Header,
    message_id=st.binary(min_size=16, max_size=16),
    sender=st.text(min_size=1, max_size=12),
    recipient=st.text(min_size=1, max_size=12),
    created_at=times,
    expires_at=opt_times,
    in_reply_to=ids,
    thread=text,
)
all_messages = st.builds(Message, header=headers, body=st.one_of(*BODIES.values()))

NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def header(**changes: Any) -> Header:
    fields: dict[str, Any] = {
        "message_id": bytes(range(16)),
        "sender": "police.fj",
        "recipient": "bureau.fj",
        "created_at": NOW,
    }
    return Header(**(fields | changes))


# --- the schema and the dataclasses agree ------------------------------------------------

BODY_FIELDS = wire.Message.DESCRIPTOR.oneofs_by_name["body"].fields


def test_body_union_has_one_class_per_oneof_field() -> None:
    classes = typing.get_args(Body)
    assert sorted(c.kind for c in classes) == sorted(f.name for f in BODY_FIELDS)
    assert set(BODIES) == {f.name for f in BODY_FIELDS}


DATACLASS_FOR_PROTO: list[tuple[type, Descriptor]] = [
    *((c, getattr(wire, c.__name__).DESCRIPTOR) for c in typing.get_args(Body)),
    *(
        (c, getattr(wire, c.__name__).DESCRIPTOR)
        for c in (
            SalesChannel,
            NumberAction,
            IdHolder,
            SealedBox,
            CaseAnswer,
            SubscriberRecord,
            NumberOutcome,
            ProgressCount,
        )
    ),
]


@pytest.mark.parametrize(
    ("cls", "descriptor"), DATACLASS_FOR_PROTO, ids=[c.__name__ for c, _ in DATACLASS_FOR_PROTO]
)
def test_dataclass_fields_are_the_proto_fields(cls: type, descriptor: Descriptor) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    # Escalation.kind would shadow the body's ClassVar kind.
    proto_names = [
        "escalation_kind" if (cls is Escalation and f.name == "kind") else f.name
        for f in descriptor.fields
    ]
    assert names == proto_names
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert "__slots__" in cls.__dict__


ENUMS: list[tuple[type[enum.Enum], EnumDescriptor, str]] = [
    (Category, wire.Category.DESCRIPTOR, "CATEGORY_"),
    (ActionOutcome, wire.ActionOutcome.DESCRIPTOR, "ACTION_OUTCOME_"),
    (RealNameState, wire.RealNameState.DESCRIPTOR, "REAL_NAME_STATE_"),
    (VerificationOutcome, wire.VerificationOutcome.DESCRIPTOR, "VERIFICATION_OUTCOME_"),
    (CaseQuestion, wire.CaseQuestion.DESCRIPTOR, "CASE_QUESTION_"),
    (AppealOutcome, wire.AppealOutcome.DESCRIPTOR, "APPEAL_OUTCOME_"),
    (EscalationKind, wire.EscalationKind.DESCRIPTOR, "ESCALATION_KIND_"),
    (Verdict, wire.Verdict.DESCRIPTOR, "VERDICT_"),
]


@pytest.mark.parametrize(
    ("domain", "descriptor", "prefix"), ENUMS, ids=[e.__name__ for e, *_ in ENUMS]
)
def test_every_proto_enum_value_but_unspecified_has_a_member(
    domain: type[enum.Enum], descriptor: EnumDescriptor, prefix: str
) -> None:
    wire_names = {v.name for v in descriptor.values} - {prefix + "UNSPECIFIED"}
    assert {prefix + m.name for m in domain} == wire_names
    assert all(m.value == m.name.lower() for m in domain)


def test_enum_members_map_to_the_proto_value_of_the_same_name() -> None:
    for action in ActionOutcome:
        payload = encode_message(
            Message(header(), ActionReport(actions=(NumberAction(number="1", outcome=action),)))
        )
        w = wire.Message.FromString(payload)
        assert wire.ActionOutcome.Name(w.action_report.actions[0].outcome) == (
            "ACTION_OUTCOME_" + action.name
        )
    for category in Category:
        w = wire.Message.FromString(
            encode_message(Message(header(), NumberReport(category=category)))
        )
        assert wire.Category.Name(w.number_report.category) == "CATEGORY_" + category.name
    for kind in EscalationKind:
        w = wire.Message.FromString(
            encode_message(Message(header(), Escalation(escalation_kind=kind)))
        )
        assert wire.EscalationKind.Name(w.escalation.kind) == "ESCALATION_KIND_" + kind.name


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BODIES))
@settings(max_examples=40)
@given(data=st.data())
def test_every_body_round_trips(kind: str, data: st.DataObject) -> None:
    msg = Message(data.draw(headers), data.draw(BODIES[kind]))

    payload = encode_message(msg)
    decoded = decode_message(payload)

    assert decoded == msg
    assert decoded.kind == kind == wire.Message.FromString(payload).WhichOneof("body")


@settings(max_examples=100)
@given(all_messages)
def test_encoding_is_deterministic(msg: Message) -> None:
    payload = encode_message(msg)
    rebuilt = Message(dataclasses.replace(msg.header), dataclasses.replace(msg.body))

    assert encode_message(msg) == payload
    assert encode_message(rebuilt) == payload
    assert encode_message(decode_message(payload)) == payload


@given(case_answers)
def test_case_answer_round_trips(answer: CaseAnswer) -> None:
    plaintext = encode_case_answer(answer)
    assert decode_case_answer(plaintext) == answer
    assert encode_case_answer(answer) == plaintext


def test_decoded_times_are_utc() -> None:
    offset = timezone(timedelta(hours=8))
    local = datetime(2026, 3, 1, 16, 30, tzinfo=offset)
    msg = Message(
        header(created_at=local), NumberReport(category=Category.FRAUD, discovered_at=local)
    )

    decoded = decode_message(encode_message(msg))

    assert decoded == msg
    assert decoded.header.created_at.tzinfo is UTC
    assert decoded.header.created_at == NOW
    assert isinstance(decoded.body, NumberReport)
    assert decoded.body.discovered_at is not None
    assert decoded.body.discovered_at.tzinfo is UTC


def test_nanoseconds_below_a_microsecond_are_dropped() -> None:
    w = wire.Message(
        message_id=bytes(16),
        sender="a",
        recipient="b",
        created_at=Timestamp(seconds=1, nanos=1_999),
        withdrawal=wire.Withdrawal(),
    )
    decoded = decode_message(w.SerializeToString())
    assert decoded.header.created_at == datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=UTC)


def test_unset_optional_fields_decode_to_none() -> None:
    w = wire.Message(
        message_id=bytes(16),
        sender="a",
        recipient="b",
        created_at=Timestamp(seconds=0),
        action_report=wire.ActionReport(
            actions=[wire.NumberAction(outcome=wire.ACTION_OUTCOME_SHUT_DOWN)]
        ),
    )
    decoded = decode_message(w.SerializeToString())

    assert decoded.header.created_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert decoded.header.expires_at is None
    assert decoded.body == ActionReport(actions=(NumberAction(outcome=ActionOutcome.SHUT_DOWN),))
    action = decoded.body.actions[0]
    assert (action.acted_at, action.channel, action.real_name_state) == (None, None, None)


def test_bulk_lines_sharing_times_and_channels_each_carry_them_in_full() -> None:
    # The codec converts each distinct time and sales channel of a bulk body once; every
    # line must still carry its own on the wire, and decode to what was sent.
    t1, t2 = NOW, NOW + timedelta(microseconds=7)
    shop = SalesChannel(outlet_code="FZ-0457", agent="Xinda", carrier_node="cmcc.fj")
    same_shop = SalesChannel(outlet_code="FZ-0457", agent="Xinda", carrier_node="cmcc.fj")
    actions = tuple(
        NumberAction(number=f"+86159590000{i:02d}", outcome=ActionOutcome.SHUT_DOWN,
                     acted_at=(t1, t2, None)[i % 3], channel=(shop, None, same_shop)[i % 3],
                     activated_at=(None, t2, t1)[i % 3],
                     real_name_state=(None, RealNameState.UNREGISTERED)[i % 2],
                     cards_under_same_id=i)
        for i in range(7))
    outcomes = tuple(
        NumberOutcome(number=f"+86159590000{i:02d}", outcome=(None, ActionOutcome.REFUSED)[i % 2],
                      report_id=bytes([i]) * 16, decided_at=(t1, None, t2)[i % 3])
        for i in range(7))

    for body in (ActionReport(actions=actions), Circular(outcomes=outcomes, summary="s")):
        assert decode_message(encode_message(Message(header(), body))).body == body
    w = wire.Message.FromString(encode_message(Message(header(), ActionReport(actions=actions))))
    assert [a.acted_at.ToDatetime(UTC) if a.HasField("acted_at") else None
            for a in w.action_report.actions] == [a.acted_at for a in actions]
    assert [a.channel.outlet_code for a in w.action_report.actions] == [
        a.channel.outlet_code if a.channel else "" for a in actions]
    w = wire.Message.FromString(encode_message(Message(header(), Circular(outcomes=outcomes))))
    assert [o.decided_at.ToDatetime(UTC) if o.HasField("decided_at") else None
            for o in w.circular.outcomes] == [o.decided_at for o in outcomes]


def test_a_bad_line_after_good_ones_sharing_its_time_is_named_by_its_index() -> None:
    good = NumberAction(outcome=ActionOutcome.SHUT_DOWN, acted_at=NOW)
    naive = NumberAction(outcome=ActionOutcome.SHUT_DOWN, acted_at=NOW.replace(tzinfo=None))
    with pytest.raises(InvalidBodyError,
                       match=r"^action_report\.actions\[2\]\.acted_at must be timezone-aware$"):
        encode_message(Message(header(), ActionReport(actions=(good, good, naive))))
    ok, bad = Timestamp(seconds=5), Timestamp(seconds=5, nanos=-1)
    payload = wire_message(action_report=wire.ActionReport(actions=[
        wire.NumberAction(outcome=wire.ACTION_OUTCOME_SHUT_DOWN, acted_at=ok),
        wire.NumberAction(outcome=wire.ACTION_OUTCOME_SHUT_DOWN, activated_at=ok),
        wire.NumberAction(outcome=wire.ACTION_OUTCOME_SHUT_DOWN, activated_at=bad)]))
    with pytest.raises(InvalidBodyError,
                       match=r"^action_report\.actions\[2\]\.activated_at is out of range"):
        decode_message(payload)
    payload = wire_message(circular=wire.Circular(outcomes=[
        wire.NumberOutcome(decided_at=ok), wire.NumberOutcome(outcome=17)]))
    with pytest.raises(InvalidBodyError,
                       match=r"^circular\.outcomes\[1\]\.outcome has unknown value 17$"):
        decode_message(payload)


def test_unknown_fields_are_ignored() -> None:
    # A newer peer may add fields; field 99, varint 1 is appended to a valid message.
    payload = encode_message(Message(header(), Appeal(number="+8615959000001")))
    decoded = decode_message(payload + b"\x98\x06\x01")
    assert decoded.body == Appeal(number="+8615959000001")


def test_subscriber_record_repr_hides_personal_data() -> None:
    record = SubscriberRecord(
        number="+8615959000001", subscriber_name="Zhang San", id_number="3501"
    )
    assert "Zhang San" not in repr(CaseAnswer(records=(record,)))
    assert "3501" not in repr(record)


# --- decoding arbitrary bytes ----------------------------------------------------------------


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_decode_of_random_bytes_raises_only_exchange_errors(payload: bytes) -> None:
    try:
        decoded = decode_message(payload)
    except (MalformedEnvelopeError, InvalidBodyError):
        return
    assert isinstance(decoded, Message)


@settings(max_examples=300)
@given(
    all_messages,
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(min_value=0),
)
def test_decode_of_damaged_messages_raises_only_exchange_errors(
    msg: Message, edits: list[tuple[int, int]], cut: int
) -> None:
    payload = bytearray(encode_message(msg))
    for position, value in edits:
        payload[position % len(payload)] = value
    damaged = bytes(payload[: len(payload) - cut % 8])
    try:
        decoded = decode_message(damaged)
    except (MalformedEnvelopeError, InvalidBodyError):
        return
    assert isinstance(decoded, Message)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_decode_case_answer_of_random_bytes_raises_only_invalid_body(plaintext: bytes) -> None:
    try:
        decoded = decode_case_answer(plaintext)
    except InvalidBodyError:
        return
    assert isinstance(decoded, CaseAnswer)


# --- structural errors -----------------------------------------------------------------------

MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z


def wire_message(**changes: Any) -> bytes:
    """A valid NumberReport message with ``changes``; a change to None unsets the field."""
    fields: dict[str, Any] = {
        "message_id": bytes(16),
        "sender": "police.fj",
        "recipient": "bureau.fj",
        "created_at": Timestamp(seconds=1_772_353_800),
        "number_report": wire.NumberReport(
            numbers=["+8615959000001"], category=wire.CATEGORY_FRAUD
        ),
    }
    if any(f.name in changes for f in BODY_FIELDS):
        del fields["number_report"]
    fields |= changes
    return wire.Message(**{k: v for k, v in fields.items() if v is not None}).SerializeToString()


STRUCTURAL_ERRORS: list[tuple[str, bytes, type[Exception], str]] = [
    ("not protobuf", b"\xff", MalformedEnvelopeError, r"payload is not a bcx\.v1\.Message"),
    ("truncated", wire_message()[:-3], MalformedEnvelopeError, r"not a bcx\.v1\.Message"),
    ("bad utf-8 in sender", b"\x12\x01\xff", MalformedEnvelopeError, r"not a bcx\.v1\.Message"),
    ("short message_id", wire_message(message_id=b"abc"), InvalidBodyError,
     "^message_id must be 16 bytes, got 3$"),
    ("no message_id", wire_message(message_id=None), InvalidBodyError,
     "^message_id must be 16 bytes, got 0$"),
    ("long message_id", wire_message(message_id=bytes(17)), InvalidBodyError,
     "^message_id must be 16 bytes, got 17$"),
    ("empty sender", wire_message(sender=None), InvalidBodyError, "^sender is empty$"),
    ("empty recipient", wire_message(recipient=""), InvalidBodyError, "^recipient is empty$"),
    ("created_at unset", wire_message(created_at=None), InvalidBodyError,
     "^created_at is unset$"),
    ("created_at after 9999", wire_message(created_at=Timestamp(seconds=MAX_SECONDS + 1)),
     InvalidBodyError, "^created_at is out of range"),
    ("created_at before year 1", wire_message(created_at=Timestamp(seconds=MIN_SECONDS - 1)),
     InvalidBodyError, "^created_at is out of range"),
    ("negative nanos", wire_message(created_at=Timestamp(seconds=0, nanos=-1)),
     InvalidBodyError, "^created_at is out of range"),
    ("nanos of a whole second", wire_message(created_at=Timestamp(nanos=1_000_000_000)),
     InvalidBodyError, "^created_at is out of range"),
    ("expires_at out of range", wire_message(expires_at=Timestamp(seconds=2**62)),
     InvalidBodyError, "^expires_at is out of range"),
    ("no body", wire_message(number_report=None), InvalidBodyError, "^message has no body$"),
    ("category unspecified",
     wire_message(number_report=wire.NumberReport(numbers=["+8615959000001"])),
     InvalidBodyError, r"^number_report\.category is unspecified$"),
    ("category unknown", wire_message(number_report=wire.NumberReport(category=99)),
     InvalidBodyError, r"^number_report\.category has unknown value 99$"),
    ("discovered_at out of range",
     wire_message(number_report=wire.NumberReport(
         category=wire.CATEGORY_FRAUD, discovered_at=Timestamp(seconds=-(2**40)))),
     InvalidBodyError, r"^number_report\.discovered_at is out of range"),
    ("optional category unknown",
     wire_message(shutdown_notice=wire.ShutdownNotice(category=7)),
     InvalidBodyError, r"^shutdown_notice\.category has unknown value 7$"),
    ("action outcome unspecified",
     wire_message(action_report=wire.ActionReport(actions=[
         wire.NumberAction(outcome=wire.ACTION_OUTCOME_SHUT_DOWN), wire.NumberAction()])),
     InvalidBodyError, r"^action_report\.actions\[1\]\.outcome is unspecified$"),
    ("real-name state unknown",
     wire_message(action_report=wire.ActionReport(actions=[
         wire.NumberAction(outcome=wire.ACTION_OUTCOME_SHUT_DOWN, real_name_state=5)])),
     InvalidBodyError, r"^action_report\.actions\[0\]\.real_name_state has unknown value 5$"),
    ("acted_at out of range",
     wire_message(action_report=wire.ActionReport(actions=[
         wire.NumberAction(outcome=wire.ACTION_OUTCOME_REFUSED,
                           acted_at=Timestamp(nanos=-5))])),
     InvalidBodyError, r"^action_report\.actions\[0\]\.acted_at is out of range"),
    ("verification outcome unknown",
     wire_message(id_concentration_report=wire.IdConcentrationReport(
         holders=[wire.IdHolder(outcome=42)])),
     InvalidBodyError, r"^id_concentration_report\.holders\[0\]\.outcome has unknown value 42$"),
    ("case question unspecified",
     wire_message(case_request=wire.CaseRequest(
         questions=[wire.CASE_QUESTION_ACTIVATION_CHANNEL, wire.CASE_QUESTION_UNSPECIFIED])),
     InvalidBodyError, r"^case_request\.questions\[1\] is unspecified$"),
    ("circular decided_at out of range",
     wire_message(circular=wire.Circular(outcomes=[
         wire.NumberOutcome(decided_at=Timestamp(seconds=MAX_SECONDS + 1))])),
     InvalidBodyError, r"^circular\.outcomes\[0\]\.decided_at is out of range"),
    ("circular line with an outcome and a verdict",
     wire_message(circular=wire.Circular(outcomes=[
         wire.NumberOutcome(),
         wire.NumberOutcome(outcome=wire.ACTION_OUTCOME_SHUT_DOWN,
                            verdict=wire.VERDICT_NOTICED)])),
     InvalidBodyError, r"^circular\.outcomes\[1\] has both an outcome and a verdict: give one$"),
    ("circular line names a bureau it was not forwarded to",
     wire_message(circular=wire.Circular(outcomes=[
         wire.NumberOutcome(verdict=wire.VERDICT_REJECTED, forwarded_to="bureau.gd")])),
     InvalidBodyError,
     r"^circular\.outcomes\[0\]\.forwarded_to is set but the verdict is not FORWARDED$"),
    ("circular verdict unknown",
     wire_message(circular=wire.Circular(outcomes=[wire.NumberOutcome(verdict=9)])),
     InvalidBodyError, r"^circular\.outcomes\[0\]\.verdict has unknown value 9$"),
    ("appeal decision outcome unspecified",
     wire_message(appeal_decision=wire.AppealDecision(number="+8615959000001")),
     InvalidBodyError, r"^appeal_decision\.outcome is unspecified$"),
    ("escalation kind unspecified",
     wire_message(escalation=wire.Escalation(subject_node="carrier.cm.fj")),
     InvalidBodyError, r"^escalation\.kind is unspecified$"),
    ("escalation kind unknown", wire_message(escalation=wire.Escalation(kind=12)),
     InvalidBodyError, r"^escalation\.kind has unknown value 12$"),
    ("progress count category unknown",
     wire_message(progress_report=wire.ProgressReport(counts=[wire.ProgressCount(category=9)])),
     InvalidBodyError, r"^progress_report\.counts\[0\]\.category has unknown value 9$"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "error", "match"),
    [row[1:] for row in STRUCTURAL_ERRORS],
    ids=[row[0] for row in STRUCTURAL_ERRORS],
)
def test_structural_errors(payload: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        decode_message(payload)


def test_the_valid_base_of_the_error_table_decodes() -> None:
    decoded = decode_message(wire_message())
    assert decoded.body == NumberReport(numbers=("+8615959000001",), category=Category.FRAUD)


def test_case_answer_errors() -> None:
    with pytest.raises(InvalidBodyError, match=r"case answer is not a bcx\.v1\.CaseAnswer"):
        decode_case_answer(b"\xff")
    bad_state = wire.CaseAnswer(
        records=[wire.SubscriberRecord(), wire.SubscriberRecord(real_name_state=8)]
    )
    with pytest.raises(
        InvalidBodyError, match=r"^case_answer\.records\[1\]\.real_name_state has unknown value 8$"
    ):
        decode_case_answer(bad_state.SerializeToString())
    with pytest.raises(
        InvalidBodyError, match=r"^case_answer\.records\[0\]\.registered_at must be"
    ):
        encode_case_answer(
            CaseAnswer(records=(SubscriberRecord(registered_at=datetime(2026, 1, 1)),))
        )


HEADER_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("short message_id", {"message_id": b"abc"}, "^message_id must be 16 bytes, got 3$"),
    ("empty sender", {"sender": ""}, "^sender is empty$"),
    ("empty recipient", {"recipient": ""}, "^recipient is empty$"),
    (
        "naive created_at",
        {"created_at": datetime(2026, 3, 1)},
        "^created_at must be timezone-aware$",
    ),
    (
        "naive expires_at",
        {"expires_at": datetime(2026, 3, 2)},
        "^expires_at must be timezone-aware$",
    ),
]


@pytest.mark.parametrize(
    ("changes", "match"), [row[1:] for row in HEADER_ERRORS], ids=[row[0] for row in HEADER_ERRORS]
)
def test_header_checks_its_fields(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidBodyError, match=match):
        header(**changes)


ENCODE_ERRORS: list[tuple[str, Body, str]] = [
    ("naive body time", NumberReport(category=Category.FRAUD, discovered_at=datetime(2026, 3, 1)),
     r"^number_report\.discovered_at must be timezone-aware$"),
    ("before year 1 in UTC",
     Appeal(decide_by=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))),
     r"^appeal\.decide_by is out of range"),
    ("confidence beyond uint32", NumberReport(category=Category.OTHER, confidence=2**32),
     r"^number_report\.confidence must fit in a uint32, got 4294967296$"),
    ("negative count",
     ProgressReport(counts=(ProgressCount(), ProgressCount(overdue=-1))),
     r"^progress_report\.counts\[1\]\.overdue must fit in a uint32, got -1$"),
    ("nested naive time",
     ActionReport(actions=(NumberAction(outcome=ActionOutcome.REFUSED,
                                        activated_at=datetime(2020, 1, 1)),)),
     r"^action_report\.actions\[0\]\.activated_at must be timezone-aware$"),
    ("card count beyond uint32",
     IdConcentrationReport(holders=(IdHolder(card_count=2**40),)),
     r"^id_concentration_report\.holders\[0\]\.card_count must fit in a uint32"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "match"), [row[1:] for row in ENCODE_ERRORS], ids=[row[0] for row in ENCODE_ERRORS]
)
def test_encode_refuses_what_the_wire_cannot_carry(body: Body, match: str) -> None:
    with pytest.raises(InvalidBodyError, match=match):
        encode_message(Message(header(), body))


# --- message ids -----------------------------------------------------------------------------

# UUIDv7 holds Unix milliseconds; datetime ends at 9999.
id_times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)


def to_millisecond(t: datetime) -> datetime:
    return t - timedelta(microseconds=t.microsecond % 1000)


@given(st.none() | id_times)
def test_new_message_id_is_a_uuid7(now: datetime | None) -> None:
    mid = new_message_id(now)
    assert len(mid) == 16
    assert mid[6] >> 4 == 7
    assert mid[8] >> 6 == 0b10
    parsed = uuid.UUID(bytes=mid)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


@given(id_times)
def test_message_id_time_round_trips(now: datetime) -> None:
    assert message_id_time(new_message_id(now)) == to_millisecond(now)


def test_message_id_time_of_the_current_time() -> None:
    before = to_millisecond(datetime.now(UTC))
    mid = new_message_id()
    after = datetime.now(UTC)
    assert before <= message_id_time(mid) <= after


LAST_MILLISECOND = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


@given(
    st.lists(
        st.integers(min_value=0, max_value=LAST_MILLISECOND), min_size=2, max_size=20, unique=True
    ),
    st.integers(min_value=0, max_value=LAST_MILLISECOND - 5),
)
def test_ids_sort_by_time(milliseconds: list[int], start: int) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    # Far apart and one millisecond apart.
    for sample in (sorted(milliseconds), list(range(start, start + 5))):
        mids = [new_message_id(epoch + timedelta(milliseconds=ms)) for ms in sample]
        assert mids == sorted(mids)
        assert len(set(mids)) == len(mids)


def test_successive_ids_differ_within_one_millisecond() -> None:
    assert len({new_message_id(NOW) for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("now", "match"),
    [
        (datetime(2026, 3, 1), "timezone-aware"),
        (datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), "outside the UUIDv7 time range"),
    ],
    ids=["naive", "before 1970"],
)
def test_new_message_id_refuses(now: datetime, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        new_message_id(now)


@pytest.mark.parametrize(
    ("mid", "match"),
    [
        (b"\x01" * 15, "must be 16 bytes, got 15"),
        (uuid.UUID("1b4e28ba-2fa1-41d2-883f-0016d3cca427").bytes, "is not a UUIDv7"),
        (bytes.fromhex("01890a5d-ac96-774b-ccbf-000000000000".replace("-", "")), "is not a UUIDv7"),
    ],
    ids=["short", "version 4", "wrong variant"],
)
def test_message_id_time_refuses(mid: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        message_id_time(mid)


@given(st.binary(min_size=16, max_size=16))
def test_format_and_parse_round_trip(mid: bytes) -> None:
    text_form = format_message_id(mid)
    assert re.fullmatch("[0-9a-f]{32}", text_form)
    assert parse_message_id(text_form) == mid
    assert parse_message_id(text_form.upper()) == mid
    assert parse_message_id(str(uuid.UUID(bytes=mid))) == mid


def test_format_refuses_wrong_length() -> None:
    with pytest.raises(ValueError, match="must be 16 bytes, got 4"):
        format_message_id(b"abcd")


BAD_ID_TEXT = [
    "",
    "0" * 31,
    "0" * 33,
    "g" * 32,
    " " + "0" * 32,
    "0" * 32 + "\n",
    "0" * 8 + "-" + "0" * 24,
    "0000-00000000-0000-0000-000000000000",
    "{00000000-0000-0000-0000-000000000000}",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "٠" * 32,  # Arabic-Indic zeros are digits to str.isdigit, not hex
]


@pytest.mark.parametrize("text_form", BAD_ID_TEXT)
def test_parse_message_id_refuses_and_names_the_input(text_form: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text_form))):
        parse_message_id(text_form)


def test_module_exports_exist() -> None:
    assert all(hasattr(messages, name) for name in messages.__all__)
