import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_POLICE: _ClassVar[Role]
    ROLE_BUREAU: _ClassVar[Role]
    ROLE_CARRIER: _ClassVar[Role]
    ROLE_COMMERCE: _ClassVar[Role]
    ROLE_OFFICE: _ClassVar[Role]
ROLE_UNSPECIFIED: Role
ROLE_POLICE: Role
ROLE_BUREAU: Role
ROLE_CARRIER: Role
ROLE_COMMERCE: Role
ROLE_OFFICE: Role

class Member(_message.Message):
    __slots__ = ("node_id", "role", "province", "organisation", "endpoint", "auth_cert_sha256", "signing_public_key", "hpke_public_key", "reseller", "signing_certificate_pem")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    AUTH_CERT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SIGNING_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    HPKE_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    RESELLER_FIELD_NUMBER: _ClassVar[int]
    SIGNING_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    role: Role
    province: str
    organisation: str
    endpoint: str
    auth_cert_sha256: bytes
    signing_public_key: bytes
    hpke_public_key: bytes
    reseller: bool
    signing_certificate_pem: bytes
    def __init__(self, node_id: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., province: _Optional[str] = ..., organisation: _Optional[str] = ..., endpoint: _Optional[str] = ..., auth_cert_sha256: _Optional[bytes] = ..., signing_public_key: _Optional[bytes] = ..., hpke_public_key: _Optional[bytes] = ..., reseller: _Optional[bool] = ..., signing_certificate_pem: _Optional[bytes] = ...) -> None: ...

class NumberBlock(_message.Message):
    __slots__ = ("prefix", "carrier_node", "province", "reseller")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    CARRIER_NODE_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    RESELLER_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    carrier_node: str
    province: str
    reseller: bool
    def __init__(self, prefix: _Optional[str] = ..., carrier_node: _Optional[str] = ..., province: _Optional[str] = ..., reseller: _Optional[bool] = ...) -> None: ...

class Directory(_message.Message):
    __slots__ = ("trust_domain", "version", "issued_at", "expires_at", "members", "numbering_plan", "revoked_cert_serials", "retired_signing_keys")
    TRUST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    NUMBERING_PLAN_FIELD_NUMBER: _ClassVar[int]
    REVOKED_CERT_SERIALS_FIELD_NUMBER: _ClassVar[int]
    RETIRED_SIGNING_KEYS_FIELD_NUMBER: _ClassVar[int]
    trust_domain: str
    version: int
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    members: _containers.RepeatedCompositeFieldContainer[Member]
    numbering_plan: _containers.RepeatedCompositeFieldContainer[NumberBlock]
    revoked_cert_serials: _containers.RepeatedScalarFieldContainer[str]
    retired_signing_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, trust_domain: _Optional[str] = ..., version: _Optional[int] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., numbering_plan: _Optional[_Iterable[_Union[NumberBlock, _Mapping]]] = ..., revoked_cert_serials: _Optional[_Iterable[str]] = ..., retired_signing_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SignedDirectory(_message.Message):
    __slots__ = ("envelope", "signer_certificate_pem")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    SIGNER_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    envelope: bytes
    signer_certificate_pem: bytes
    def __init__(self, envelope: _Optional[bytes] = ..., signer_certificate_pem: _Optional[bytes] = ...) -> None: ...
