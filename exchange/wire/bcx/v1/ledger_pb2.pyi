import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_KIND_UNSPECIFIED: _ClassVar[EntryKind]
    ENTRY_KIND_SENT: _ClassVar[EntryKind]
    ENTRY_KIND_RECEIVED: _ClassVar[EntryKind]
    ENTRY_KIND_RECEIPT: _ClassVar[EntryKind]
    ENTRY_KIND_ACTION: _ClassVar[EntryKind]
    ENTRY_KIND_WITNESS: _ClassVar[EntryKind]
    ENTRY_KIND_DIRECTORY: _ClassVar[EntryKind]
ENTRY_KIND_UNSPECIFIED: EntryKind
ENTRY_KIND_SENT: EntryKind
ENTRY_KIND_RECEIVED: EntryKind
ENTRY_KIND_RECEIPT: EntryKind
ENTRY_KIND_ACTION: EntryKind
ENTRY_KIND_WITNESS: EntryKind
ENTRY_KIND_DIRECTORY: EntryKind

class LedgerEntry(_message.Message):
    __slots__ = ("kind", "peer", "logged_at", "message_id", "message_digest", "envelope", "detail", "subject")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    LOGGED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    kind: EntryKind
    peer: str
    logged_at: _timestamp_pb2.Timestamp
    message_id: bytes
    message_digest: bytes
    envelope: bytes
    detail: bytes
    subject: str
    def __init__(self, kind: _Optional[_Union[EntryKind, str]] = ..., peer: _Optional[str] = ..., logged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message_id: _Optional[bytes] = ..., message_digest: _Optional[bytes] = ..., envelope: _Optional[bytes] = ..., detail: _Optional[bytes] = ..., subject: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("leaf", "leaf_index", "checkpoint", "inclusion_proof")
    LEAF_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    leaf: bytes
    leaf_index: int
    checkpoint: str
    inclusion_proof: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, leaf: _Optional[bytes] = ..., leaf_index: _Optional[int] = ..., checkpoint: _Optional[str] = ..., inclusion_proof: _Optional[_Iterable[bytes]] = ...) -> None: ...
