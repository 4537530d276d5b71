import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Category(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATEGORY_UNSPECIFIED: _ClassVar[Category]
    CATEGORY_FRAUD: _ClassVar[Category]
    CATEGORY_OBSCENE: _ClassVar[Category]
    CATEGORY_TERROR: _ClassVar[Category]
    CATEGORY_OTHER: _ClassVar[Category]

class ActionOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_OUTCOME_UNSPECIFIED: _ClassVar[ActionOutcome]
    ACTION_OUTCOME_SHUT_DOWN: _ClassVar[ActionOutcome]
    ACTION_OUTCOME_ALREADY_INACTIVE: _ClassVar[ActionOutcome]
    ACTION_OUTCOME_NOT_OUR_SUBSCRIBER: _ClassVar[ActionOutcome]
    ACTION_OUTCOME_REFUSED: _ClassVar[ActionOutcome]
    ACTION_OUTCOME_RESTORED: _ClassVar[ActionOutcome]

class RealNameState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REAL_NAME_STATE_UNSPECIFIED: _ClassVar[RealNameState]
    REAL_NAME_STATE_REGISTERED: _ClassVar[RealNameState]
    REAL_NAME_STATE_UNREGISTERED: _ClassVar[RealNameState]
    REAL_NAME_STATE_FALSE_IDENTITY: _ClassVar[RealNameState]

class VerificationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_OUTCOME_UNSPECIFIED: _ClassVar[VerificationOutcome]
    VERIFICATION_OUTCOME_CONFIRMED: _ClassVar[VerificationOutcome]
    VERIFICATION_OUTCOME_CARDS_CANCELLED: _ClassVar[VerificationOutcome]
    VERIFICATION_OUTCOME_PENDING: _ClassVar[VerificationOutcome]
    VERIFICATION_OUTCOME_UNREACHABLE: _ClassVar[VerificationOutcome]

class CaseQuestion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CASE_QUESTION_UNSPECIFIED: _ClassVar[CaseQuestion]
    CASE_QUESTION_SUBSCRIBER_REGISTRATION: _ClassVar[CaseQuestion]
    CASE_QUESTION_ACTIVATION_CHANNEL: _ClassVar[CaseQuestion]
    CASE_QUESTION_OTHER_CARDS_UNDER_ID: _ClassVar[CaseQuestion]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_NOTICED: _ClassVar[Verdict]
    VERDICT_FORWARDED: _ClassVar[Verdict]
    VERDICT_REJECTED: _ClassVar[Verdict]
    VERDICT_UNROUTABLE: _ClassVar[Verdict]
    VERDICT_WITHDRAWN: _ClassVar[Verdict]

class AppealOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPEAL_OUTCOME_UNSPECIFIED: _ClassVar[AppealOutcome]
    APPEAL_OUTCOME_UPHELD: _ClassVar[AppealOutcome]
    APPEAL_OUTCOME_LIFTED: _ClassVar[AppealOutcome]

class EscalationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESCALATION_KIND_UNSPECIFIED: _ClassVar[EscalationKind]
    ESCALATION_KIND_OVERDUE_NOTICE: _ClassVar[EscalationKind]
    ESCALATION_KIND_OVERDUE_CASE: _ClassVar[EscalationKind]
    ESCALATION_KIND_OVERDUE_APPEAL: _ClassVar[EscalationKind]
    ESCALATION_KIND_OVERDUE_FEEDBACK: _ClassVar[EscalationKind]
    ESCALATION_KIND_LEDGER_FORK: _ClassVar[EscalationKind]
    ESCALATION_KIND_DELIVERY_FAILURE: _ClassVar[EscalationKind]
CATEGORY_UNSPECIFIED: Category
CATEGORY_FRAUD: Category
CATEGORY_OBSCENE: Category
CATEGORY_TERROR: Category
CATEGORY_OTHER: Category
ACTION_OUTCOME_UNSPECIFIED: ActionOutcome
ACTION_OUTCOME_SHUT_DOWN: ActionOutcome
ACTION_OUTCOME_ALREADY_INACTIVE: ActionOutcome
ACTION_OUTCOME_NOT_OUR_SUBSCRIBER: ActionOutcome
ACTION_OUTCOME_REFUSED: ActionOutcome
ACTION_OUTCOME_RESTORED: ActionOutcome
REAL_NAME_STATE_UNSPECIFIED: RealNameState
REAL_NAME_STATE_REGISTERED: RealNameState
REAL_NAME_STATE_UNREGISTERED: RealNameState
REAL_NAME_STATE_FALSE_IDENTITY: RealNameState
VERIFICATION_OUTCOME_UNSPECIFIED: VerificationOutcome
VERIFICATION_OUTCOME_CONFIRMED: VerificationOutcome
VERIFICATION_OUTCOME_CARDS_CANCELLED: VerificationOutcome
VERIFICATION_OUTCOME_PENDING: VerificationOutcome
VERIFICATION_OUTCOME_UNREACHABLE: VerificationOutcome
CASE_QUESTION_UNSPECIFIED: CaseQuestion
CASE_QUESTION_SUBSCRIBER_REGISTRATION: CaseQuestion
CASE_QUESTION_ACTIVATION_CHANNEL: CaseQuestion
CASE_QUESTION_OTHER_CARDS_UNDER_ID: CaseQuestion
VERDICT_UNSPECIFIED: Verdict
VERDICT_NOTICED: Verdict
VERDICT_FORWARDED: Verdict
VERDICT_REJECTED: Verdict
VERDICT_UNROUTABLE: Verdict
VERDICT_WITHDRAWN: Verdict
APPEAL_OUTCOME_UNSPECIFIED: AppealOutcome
APPEAL_OUTCOME_UPHELD: AppealOutcome
APPEAL_OUTCOME_LIFTED: AppealOutcome
ESCALATION_KIND_UNSPECIFIED: EscalationKind
ESCALATION_KIND_OVERDUE_NOTICE: EscalationKind
ESCALATION_KIND_OVERDUE_CASE: EscalationKind
ESCALATION_KIND_OVERDUE_APPEAL: EscalationKind
ESCALATION_KIND_OVERDUE_FEEDBACK: EscalationKind
ESCALATION_KIND_LEDGER_FORK: EscalationKind
ESCALATION_KIND_DELIVERY_FAILURE: EscalationKind

class Message(_message.Message):
    __slots__ = ("message_id", "sender", "recipient", "created_at", "expires_at", "in_reply_to", "thread", "number_report", "shutdown_notice", "action_report", "channel_report", "id_concentration_report", "case_request", "case_response", "circular", "penalty", "appeal", "appeal_decision", "withdrawal", "escalation", "progress_report")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    IN_REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    THREAD_FIELD_NUMBER: _ClassVar[int]
    NUMBER_REPORT_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_NOTICE_FIELD_NUMBER: _ClassVar[int]
    ACTION_REPORT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_REPORT_FIELD_NUMBER: _ClassVar[int]
    ID_CONCENTRATION_REPORT_FIELD_NUMBER: _ClassVar[int]
    CASE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    CASE_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CIRCULAR_FIELD_NUMBER: _ClassVar[int]
    PENALTY_FIELD_NUMBER: _ClassVar[int]
    APPEAL_FIELD_NUMBER: _ClassVar[int]
    APPEAL_DECISION_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWAL_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_REPORT_FIELD_NUMBER: _ClassVar[int]
    message_id: bytes
    sender: str
    recipient: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    in_reply_to: bytes
    thread: str
    number_report: NumberReport
    shutdown_notice: ShutdownNotice
    action_report: ActionReport
    channel_report: ChannelReport
    id_concentration_report: IdConcentrationReport
    case_request: CaseRequest
    case_response: CaseResponse
    circular: Circular
    penalty: Penalty
    appeal: Appeal
    appeal_decision: AppealDecision
    withdrawal: Withdrawal
    escalation: Escalation
    progress_report: ProgressReport
    def __init__(self, message_id: _Optional[bytes] = ..., sender: _Optional[str] = ..., recipient: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., in_reply_to: _Optional[bytes] = ..., thread: _Optional[str] = ..., number_report: _Optional[_Union[NumberReport, _Mapping]] = ..., shutdown_notice: _Optional[_Union[ShutdownNotice, _Mapping]] = ..., action_report: _Optional[_Union[ActionReport, _Mapping]] = ..., channel_report: _Optional[_Union[ChannelReport, _Mapping]] = ..., id_concentration_report: _Optional[_Union[IdConcentrationReport, _Mapping]] = ..., case_request: _Optional[_Union[CaseRequest, _Mapping]] = ..., case_response: _Optional[_Union[CaseResponse, _Mapping]] = ..., circular: _Optional[_Union[Circular, _Mapping]] = ..., penalty: _Optional[_Union[Penalty, _Mapping]] = ..., appeal: _Optional[_Union[Appeal, _Mapping]] = ..., appeal_decision: _Optional[_Union[AppealDecision, _Mapping]] = ..., withdrawal: _Optional[_Union[Withdrawal, _Mapping]] = ..., escalation: _Optional[_Union[Escalation, _Mapping]] = ..., progress_report: _Optional[_Union[ProgressReport, _Mapping]] = ...) -> None: ...

class NumberReport(_message.Message):
    __slots__ = ("numbers", "category", "discovered_at", "case_number", "evidence_summary", "confidence", "origin_envelope", "report_id")
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    DISCOVERED_AT_FIELD_NUMBER: _ClassVar[int]
    CASE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    numbers: _containers.RepeatedScalarFieldContainer[str]
    category: Category
    discovered_at: _timestamp_pb2.Timestamp
    case_number: str
    evidence_summary: str
    confidence: int
    origin_envelope: bytes
    report_id: bytes
    def __init__(self, numbers: _Optional[_Iterable[str]] = ..., category: _Optional[_Union[Category, str]] = ..., discovered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., case_number: _Optional[str] = ..., evidence_summary: _Optional[str] = ..., confidence: _Optional[int] = ..., origin_envelope: _Optional[bytes] = ..., report_id: _Optional[bytes] = ...) -> None: ...

class ShutdownNotice(_message.Message):
    __slots__ = ("numbers", "legal_basis", "deadline", "investigate_channel", "source_reports", "category")
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    INVESTIGATE_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REPORTS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    numbers: _containers.RepeatedScalarFieldContainer[str]
    legal_basis: str
    deadline: _timestamp_pb2.Timestamp
    investigate_channel: bool
    source_reports: _containers.RepeatedScalarFieldContainer[bytes]
    category: Category
    def __init__(self, numbers: _Optional[_Iterable[str]] = ..., legal_basis: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., investigate_channel: _Optional[bool] = ..., source_reports: _Optional[_Iterable[bytes]] = ..., category: _Optional[_Union[Category, str]] = ...) -> None: ...

class SalesChannel(_message.Message):
    __slots__ = ("outlet_code", "outlet_name", "agent", "address", "carrier_node")
    OUTLET_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTLET_NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CARRIER_NODE_FIELD_NUMBER: _ClassVar[int]
    outlet_code: str
    outlet_name: str
    agent: str
    address: str
    carrier_node: str
    def __init__(self, outlet_code: _Optional[str] = ..., outlet_name: _Optional[str] = ..., agent: _Optional[str] = ..., address: _Optional[str] = ..., carrier_node: _Optional[str] = ...) -> None: ...

class NumberAction(_message.Message):
    __slots__ = ("number", "outcome", "ported_to_hint", "refusal_reason", "acted_at", "acted_by", "channel", "activated_at", "real_name_state", "cards_under_same_id")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PORTED_TO_HINT_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_REASON_FIELD_NUMBER: _ClassVar[int]
    ACTED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTED_BY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    REAL_NAME_STATE_FIELD_NUMBER: _ClassVar[int]
    CARDS_UNDER_SAME_ID_FIELD_NUMBER: _ClassVar[int]
    number: str
    outcome: ActionOutcome
    ported_to_hint: str
    refusal_reason: str
    acted_at: _timestamp_pb2.Timestamp
    acted_by: str
    channel: SalesChannel
    activated_at: _timestamp_pb2.Timestamp
    real_name_state: RealNameState
    cards_under_same_id: int
    def __init__(self, number: _Optional[str] = ..., outcome: _Optional[_Union[ActionOutcome, str]] = ..., ported_to_hint: _Optional[str] = ..., refusal_reason: _Optional[str] = ..., acted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., acted_by: _Optional[str] = ..., channel: _Optional[_Union[SalesChannel, _Mapping]] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., real_name_state: _Optional[_Union[RealNameState, str]] = ..., cards_under_same_id: _Optional[int] = ...) -> None: ...

class ActionReport(_message.Message):
    __slots__ = ("actions", "withdrawal_id")
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWAL_ID_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedCompositeFieldContainer[NumberAction]
    withdrawal_id: bytes
    def __init__(self, actions: _Optional[_Iterable[_Union[NumberAction, _Mapping]]] = ..., withdrawal_id: _Optional[bytes] = ...) -> None: ...

class ChannelReport(_message.Message):
    __slots__ = ("channel", "numbers", "findings", "observed_at")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    channel: SalesChannel
    numbers: _containers.RepeatedScalarFieldContainer[str]
    findings: str
    observed_at: _timestamp_pb2.Timestamp
    def __init__(self, channel: _Optional[_Union[SalesChannel, _Mapping]] = ..., numbers: _Optional[_Iterable[str]] = ..., findings: _Optional[str] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IdHolder(_message.Message):
    __slots__ = ("id_hmac", "card_count", "outcome", "numbers")
    ID_HMAC_FIELD_NUMBER: _ClassVar[int]
    CARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    id_hmac: bytes
    card_count: int
    outcome: VerificationOutcome
    numbers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id_hmac: _Optional[bytes] = ..., card_count: _Optional[int] = ..., outcome: _Optional[_Union[VerificationOutcome, str]] = ..., numbers: _Optional[_Iterable[str]] = ...) -> None: ...

class IdConcentrationReport(_message.Message):
    __slots__ = ("province", "holders", "hmac_key_id", "as_of")
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    HMAC_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    province: str
    holders: _containers.RepeatedCompositeFieldContainer[IdHolder]
    hmac_key_id: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, province: _Optional[str] = ..., holders: _Optional[_Iterable[_Union[IdHolder, _Mapping]]] = ..., hmac_key_id: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CaseRequest(_message.Message):
    __slots__ = ("case_number", "legal_authorization", "numbers", "questions", "deadline")
    CASE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LEGAL_AUTHORIZATION_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    case_number: str
    legal_authorization: str
    numbers: _containers.RepeatedScalarFieldContainer[str]
    questions: _containers.RepeatedScalarFieldContainer[CaseQuestion]
    deadline: _timestamp_pb2.Timestamp
    def __init__(self, case_number: _Optional[str] = ..., legal_authorization: _Optional[str] = ..., numbers: _Optional[_Iterable[str]] = ..., questions: _Optional[_Iterable[_Union[CaseQuestion, str]]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SealedBox(_message.Message):
    __slots__ = ("suite", "recipient", "recipient_key_id", "ciphertext")
    SUITE_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    suite: str
    recipient: str
    recipient_key_id: str
    ciphertext: bytes
    def __init__(self, suite: _Optional[str] = ..., recipient: _Optional[str] = ..., recipient_key_id: _Optional[str] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class CaseResponse(_message.Message):
    __slots__ = ("sealed_answer",)
    SEALED_ANSWER_FIELD_NUMBER: _ClassVar[int]
    sealed_answer: SealedBox
    def __init__(self, sealed_answer: _Optional[_Union[SealedBox, _Mapping]] = ...) -> None: ...

class CaseAnswer(_message.Message):
    __slots__ = ("records", "note")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[SubscriberRecord]
    note: str
    def __init__(self, records: _Optional[_Iterable[_Union[SubscriberRecord, _Mapping]]] = ..., note: _Optional[str] = ...) -> None: ...

class SubscriberRecord(_message.Message):
    __slots__ = ("number", "subscriber_name", "id_number", "registered_at", "channel", "real_name_state", "other_numbers_under_id")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_NAME_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    REAL_NAME_STATE_FIELD_NUMBER: _ClassVar[int]
    OTHER_NUMBERS_UNDER_ID_FIELD_NUMBER: _ClassVar[int]
    number: str
    subscriber_name: str
    id_number: str
    registered_at: _timestamp_pb2.Timestamp
    channel: SalesChannel
    real_name_state: RealNameState
    other_numbers_under_id: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, number: _Optional[str] = ..., subscriber_name: _Optional[str] = ..., id_number: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel: _Optional[_Union[SalesChannel, _Mapping]] = ..., real_name_state: _Optional[_Union[RealNameState, str]] = ..., other_numbers_under_id: _Optional[_Iterable[str]] = ...) -> None: ...

class NumberOutcome(_message.Message):
    __slots__ = ("number", "outcome", "carrier_node", "detail", "report_id", "decided_at", "verdict", "forwarded_to", "already_known")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CARRIER_NODE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    FORWARDED_TO_FIELD_NUMBER: _ClassVar[int]
    ALREADY_KNOWN_FIELD_NUMBER: _ClassVar[int]
    number: str
    outcome: ActionOutcome
    carrier_node: str
    detail: str
    report_id: bytes
    decided_at: _timestamp_pb2.Timestamp
    verdict: Verdict
    forwarded_to: str
    already_known: bool
    def __init__(self, number: _Optional[str] = ..., outcome: _Optional[_Union[ActionOutcome, str]] = ..., carrier_node: _Optional[str] = ..., detail: _Optional[str] = ..., report_id: _Optional[bytes] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., forwarded_to: _Optional[str] = ..., already_known: _Optional[bool] = ...) -> None: ...

class Circular(_message.Message):
    __slots__ = ("outcomes", "summary")
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[NumberOutcome]
    summary: str
    def __init__(self, outcomes: _Optional[_Iterable[_Union[NumberOutcome, _Mapping]]] = ..., summary: _Optional[str] = ...) -> None: ...

class Penalty(_message.Message):
    __slots__ = ("violation", "legal_basis", "measure", "channel", "numbers", "evidence")
    VIOLATION_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    MEASURE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    violation: str
    legal_basis: str
    measure: str
    channel: SalesChannel
    numbers: _containers.RepeatedScalarFieldContainer[str]
    evidence: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, violation: _Optional[str] = ..., legal_basis: _Optional[str] = ..., measure: _Optional[str] = ..., channel: _Optional[_Union[SalesChannel, _Mapping]] = ..., numbers: _Optional[_Iterable[str]] = ..., evidence: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Appeal(_message.Message):
    __slots__ = ("number", "grounds", "notice_id", "decide_by")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    GROUNDS_FIELD_NUMBER: _ClassVar[int]
    NOTICE_ID_FIELD_NUMBER: _ClassVar[int]
    DECIDE_BY_FIELD_NUMBER: _ClassVar[int]
    number: str
    grounds: str
    notice_id: bytes
    decide_by: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[str] = ..., grounds: _Optional[str] = ..., notice_id: _Optional[bytes] = ..., decide_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AppealDecision(_message.Message):
    __slots__ = ("number", "outcome", "reasoning", "appeal_id")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    APPEAL_ID_FIELD_NUMBER: _ClassVar[int]
    number: str
    outcome: AppealOutcome
    reasoning: str
    appeal_id: bytes
    def __init__(self, number: _Optional[str] = ..., outcome: _Optional[_Union[AppealOutcome, str]] = ..., reasoning: _Optional[str] = ..., appeal_id: _Optional[bytes] = ...) -> None: ...

class Withdrawal(_message.Message):
    __slots__ = ("withdrawn_message_id", "reason", "numbers", "origin_envelope")
    WITHDRAWN_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    withdrawn_message_id: bytes
    reason: str
    numbers: _containers.RepeatedScalarFieldContainer[str]
    origin_envelope: bytes
    def __init__(self, withdrawn_message_id: _Optional[bytes] = ..., reason: _Optional[str] = ..., numbers: _Optional[_Iterable[str]] = ..., origin_envelope: _Optional[bytes] = ...) -> None: ...

class Escalation(_message.Message):
    __slots__ = ("kind", "subject_node", "subject_message_id", "detail", "deadline", "evidence")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_NODE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    kind: EscalationKind
    subject_node: str
    subject_message_id: bytes
    detail: str
    deadline: _timestamp_pb2.Timestamp
    evidence: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, kind: _Optional[_Union[EscalationKind, str]] = ..., subject_node: _Optional[str] = ..., subject_message_id: _Optional[bytes] = ..., detail: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., evidence: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ProgressCount(_message.Message):
    __slots__ = ("carrier_node", "category", "reported", "shut_down", "pending", "refused", "overdue")
    CARRIER_NODE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    REPORTED_FIELD_NUMBER: _ClassVar[int]
    SHUT_DOWN_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    carrier_node: str
    category: Category
    reported: int
    shut_down: int
    pending: int
    refused: int
    overdue: int
    def __init__(self, carrier_node: _Optional[str] = ..., category: _Optional[_Union[Category, str]] = ..., reported: _Optional[int] = ..., shut_down: _Optional[int] = ..., pending: _Optional[int] = ..., refused: _Optional[int] = ..., overdue: _Optional[int] = ...) -> None: ...

class ProgressReport(_message.Message):
    __slots__ = ("province", "counts", "as_of")
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    province: str
    counts: _containers.RepeatedCompositeFieldContainer[ProgressCount]
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, province: _Optional[str] = ..., counts: _Optional[_Iterable[_Union[ProgressCount, _Mapping]]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
