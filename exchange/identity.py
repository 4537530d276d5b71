"""Node identities, roles and the signed member directory (docs/formats.md#the-member-directory).

The role of a peer always comes from the directory the office signed, never from
the peer's own word. Everything here is pure: bytes and values in, values out.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509

from exchange import envelope, pki
from exchange.errors import (
    DirectoryError,
    DirectoryExpiredError,
    DirectoryRollbackError,
    ExchangeError,
    MalformedEnvelopeError,
    RoleNotAllowedError,
    UnknownMemberError,
    VerificationError,
)
from exchange.keys import PublicKey, Signer
from exchange.numbers import NumberBlock
from exchange.wire.bcx.v1 import directory_pb2

NODE_ID = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


class Role(enum.Enum):
    POLICE = "police"
    BUREAU = "bureau"
    CARRIER = "carrier"
    COMMERCE = "commerce"
    OFFICE = "office"


_ROLE_TO_PB = {
    Role.POLICE: directory_pb2.ROLE_POLICE,
    Role.BUREAU: directory_pb2.ROLE_BUREAU,
    Role.CARRIER: directory_pb2.ROLE_CARRIER,
    Role.COMMERCE: directory_pb2.ROLE_COMMERCE,
    Role.OFFICE: directory_pb2.ROLE_OFFICE,
}
_PB_TO_ROLE = {v: k for k, v in _ROLE_TO_PB.items()}

_ANY_AGENCY = frozenset({Role.POLICE, Role.BUREAU, Role.CARRIER, Role.COMMERCE})

# Who may send which body to whom: (sender role, body kind) -> recipient roles, as
# docs/who-may-send-what.md#the-role-table gives them. Every pair listed here has
# a handler at the receiving role (tests/unit/test_rules.py holds the two together);
# which member of a role, about whose object, is the rules' business
# (docs/who-may-send-what.md#responsibility-rules).
ALLOWED: dict[tuple[Role, str], frozenset[Role]] = {
    (Role.POLICE, "number_report"): frozenset({Role.BUREAU}),
    (Role.COMMERCE, "number_report"): frozenset({Role.BUREAU}),
    # A bureau forwards numbers of another province to that province's bureau.
    (Role.BUREAU, "number_report"): frozenset({Role.BUREAU}),
    (Role.BUREAU, "shutdown_notice"): frozenset({Role.CARRIER}),
    (Role.CARRIER, "action_report"): frozenset({Role.BUREAU}),
    (Role.CARRIER, "channel_report"): frozenset({Role.BUREAU}),
    (Role.COMMERCE, "channel_report"): frozenset({Role.BUREAU}),
    (Role.CARRIER, "id_concentration_report"): frozenset({Role.BUREAU}),
    (Role.POLICE, "case_request"): frozenset({Role.CARRIER}),
    (Role.CARRIER, "case_response"): frozenset({Role.POLICE}),
    # Feedback to whoever reported: police and market regulators.
    (Role.BUREAU, "circular"): frozenset({Role.POLICE, Role.COMMERCE}),
    (Role.BUREAU, "penalty"): frozenset({Role.CARRIER}),
    (Role.CARRIER, "appeal"): frozenset({Role.BUREAU}),
    (Role.BUREAU, "appeal_decision"): frozenset({Role.CARRIER, Role.POLICE}),
    # A reporter withdraws its report at the bureau; the bureau passes the withdrawal on
    # to the bureau it forwarded numbers to and the carriers it sent notices.
    (Role.POLICE, "withdrawal"): frozenset({Role.BUREAU}),
    (Role.COMMERCE, "withdrawal"): frozenset({Role.BUREAU}),
    (Role.BUREAU, "withdrawal"): frozenset({Role.BUREAU, Role.CARRIER}),
    **{(role, "escalation"): frozenset({Role.OFFICE}) for role in _ANY_AGENCY},
    (Role.BUREAU, "progress_report"): frozenset({Role.OFFICE}),
}


def check_allowed(sender: Member, recipient: Member, body_kind: str) -> None:
    """Raise RoleNotAllowedError unless ``sender``'s role may send this body to ``recipient``."""
    allowed = ALLOWED.get((sender.role, body_kind), frozenset())
    if recipient.role not in allowed:
        raise RoleNotAllowedError(
            f"a {sender.role.value} ({sender.node_id}) may not send {body_kind} "
            f"to a {recipient.role.value} ({recipient.node_id})"
        )


def validate_node_id(node_id: str) -> str:
    if not NODE_ID.match(node_id):
        raise DirectoryError(
            f"invalid node id {node_id!r}: expected a lowercase dotted name like 'police.fj'"
        )
    return node_id


@dataclass(frozen=True, slots=True)
class Member:
    node_id: str
    role: Role
    province: str
    organisation: str
    endpoint: str
    auth_cert_sha256: bytes
    signing_key: PublicKey
    hpke_public_key: bytes
    reseller: bool = False
    signing_certificate_pem: bytes = b""

    def __post_init__(self) -> None:
        validate_node_id(self.node_id)
        if len(self.auth_cert_sha256) != 32:
            raise DirectoryError(f"member {self.node_id}: auth_cert_sha256 must be 32 bytes")
        if len(self.hpke_public_key) != 32:
            raise DirectoryError(f"member {self.node_id}: hpke_public_key must be 32 bytes")


@dataclass(frozen=True, slots=True)
class Directory:
    trust_domain: str
    version: int
    issued_at: datetime
    expires_at: datetime
    members: tuple[Member, ...]
    numbering_plan: tuple[NumberBlock, ...] = ()
    revoked_cert_serials: frozenset[str] = frozenset()
    retired_signing_keys: frozenset[bytes] = frozenset()
    _by_id: dict[str, Member] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Member] = {}
        for m in self.members:
            if m.node_id in by_id:
                raise DirectoryError(f"directory lists member {m.node_id} twice")
            by_id[m.node_id] = m
        object.__setattr__(self, "_by_id", by_id)
        if self.expires_at <= self.issued_at:
            raise DirectoryError("directory expires before it was issued")

    def member(self, node_id: str) -> Member:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise UnknownMemberError(f"{node_id!r} is not a member of the directory") from None

    def has_member(self, node_id: str) -> bool:
        return node_id in self._by_id

    def by_role(self, role: Role) -> list[Member]:
        return [m for m in self.members if m.role is role]

    def bureau_of(self, province: str) -> Member:
        for m in self.members:
            if m.role is Role.BUREAU and m.province == province:
                return m
        raise UnknownMemberError(f"no bureau for province {province!r} in the directory")

    @property
    def office(self) -> Member:
        offices = self.by_role(Role.OFFICE)
        if len(offices) != 1:
            raise DirectoryError(f"directory must list exactly one office, lists {len(offices)}")
        return offices[0]

    def check_current(self, now: datetime) -> None:
        if now >= self.expires_at:
            raise DirectoryExpiredError(
                f"directory version {self.version} expired at {self.expires_at.isoformat()}; "
                "refusing traffic until a newer one is loaded"
            )

    def signing_key_current(self, member: Member) -> None:
        if member.signing_key.raw in self.retired_signing_keys:
            raise VerificationError(f"signing key of {member.node_id} is retired")


def _ts(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


def encode_directory(d: Directory) -> bytes:
    pb = directory_pb2.Directory(trust_domain=d.trust_domain, version=d.version)
    pb.issued_at.FromMicroseconds(_ts(d.issued_at))
    pb.expires_at.FromMicroseconds(_ts(d.expires_at))
    for m in d.members:
        pb.members.add(
            node_id=m.node_id,
            role=_ROLE_TO_PB[m.role],
            province=m.province,
            organisation=m.organisation,
            endpoint=m.endpoint,
            auth_cert_sha256=m.auth_cert_sha256,
            signing_public_key=m.signing_key.raw,
            hpke_public_key=m.hpke_public_key,
            reseller=m.reseller,
            signing_certificate_pem=m.signing_certificate_pem,
        )
    for b in d.numbering_plan:
        pb.numbering_plan.add(
            prefix=b.prefix, carrier_node=b.carrier_node, province=b.province, reseller=b.reseller
        )
    pb.revoked_cert_serials.extend(sorted(d.revoked_cert_serials))
    pb.retired_signing_keys.extend(sorted(d.retired_signing_keys))
    return pb.SerializeToString(deterministic=True)


def decode_directory(payload: bytes) -> Directory:
    pb = directory_pb2.Directory()
    try:
        pb.ParseFromString(payload)
        members = tuple(
            Member(
                node_id=m.node_id,
                role=_role(m.role, m.node_id),
                province=m.province,
                organisation=m.organisation,
                endpoint=m.endpoint,
                auth_cert_sha256=m.auth_cert_sha256,
                signing_key=PublicKey(m.signing_public_key),
                hpke_public_key=m.hpke_public_key,
                reseller=m.reseller,
                signing_certificate_pem=m.signing_certificate_pem,
            )
            for m in pb.members
        )
        return Directory(
            trust_domain=pb.trust_domain,
            version=pb.version,
            issued_at=pb.issued_at.ToDatetime(tzinfo=UTC),
            expires_at=pb.expires_at.ToDatetime(tzinfo=UTC),
            members=members,
            numbering_plan=tuple(
                NumberBlock(
                    prefix=b.prefix, carrier_node=b.carrier_node, province=b.province,
                    reseller=b.reseller,
                )
                for b in pb.numbering_plan
            ),
            revoked_cert_serials=frozenset(pb.revoked_cert_serials),
            retired_signing_keys=frozenset(pb.retired_signing_keys),
        )
    except DirectoryError:
        raise
    except ExchangeError as e:
        raise DirectoryError(f"directory is invalid: {e}") from e
    except Exception as e:  # protobuf DecodeError and friends
        raise DirectoryError(f"directory does not decode: {e}") from e


def _role(value: int, node_id: str) -> Role:
    try:
        return _PB_TO_ROLE[value]  # type: ignore[index]
    except KeyError:
        raise DirectoryError(f"member {node_id} has no valid role ({value})") from None


@dataclass(frozen=True, slots=True)
class SignedDirectory:
    """A directory as published: DSSE envelope bytes and the office's signing certificate."""

    envelope: bytes
    signer_certificate_pem: bytes

    def to_bytes(self) -> bytes:
        return directory_pb2.SignedDirectory(
            envelope=self.envelope, signer_certificate_pem=self.signer_certificate_pem
        ).SerializeToString(deterministic=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedDirectory:
        pb = directory_pb2.SignedDirectory()
        try:
            pb.ParseFromString(data)
        except Exception as e:
            raise DirectoryError(f"signed directory does not decode: {e}") from e
        return cls(pb.envelope, pb.signer_certificate_pem)


def sign_directory(d: Directory, signer: Signer, signer_certificate_pem: bytes) -> SignedDirectory:
    env = envelope.sign(encode_directory(d), envelope.PAYLOAD_TYPE_DIRECTORY, signer)
    return SignedDirectory(env.raw, signer_certificate_pem)


def verify_directory(
    signed: SignedDirectory,
    *,
    ca: x509.Certificate,
    office_id: str,
    now: datetime,
    current: Directory | None = None,
) -> Directory:
    """Verify a published directory and return it, or raise naming what is wrong.

    It must be signed by the office's signing certificate (issued by the exchange CA,
    naming ``office_id``), be unexpired, and be newer than ``current``.
    """
    try:
        cert = x509.load_pem_x509_certificate(signed.signer_certificate_pem)
    except ValueError as e:
        raise DirectoryError(f"directory signer certificate is not PEM: {e}") from e
    revoked: frozenset[str] = current.revoked_cert_serials if current else frozenset()
    ident = pki.check_certificate(cert, ca=ca, now=now, revoked_serials=revoked,
                                  expect_node_id=office_id)
    key = pki.signing_public_key_from_cert(cert)
    try:
        env = envelope.parse(signed.envelope)
    except MalformedEnvelopeError as e:
        raise DirectoryError(f"directory envelope is malformed: {e}") from e
    if env.payload_type != envelope.PAYLOAD_TYPE_DIRECTORY:
        raise DirectoryError(f"not a directory envelope (payload type {env.payload_type!r})")
    try:
        payload = env.verify(key)
    except VerificationError as e:
        raise DirectoryError(f"directory signature does not verify: {e}") from e
    d = decode_directory(payload)
    if d.trust_domain != ident.trust_domain:
        raise DirectoryError(
            f"directory is for trust domain {d.trust_domain!r}, "
            f"its signer for {ident.trust_domain!r}"
        )
    if d.office.node_id != office_id or d.office.signing_key != key:
        raise DirectoryError("directory's office entry does not match the key that signed it")
    if ident.serial_hex in d.revoked_cert_serials:
        raise DirectoryError(f"directory is signed by revoked certificate {ident.serial_hex}")
    d.check_current(now)
    if current is not None and d.version <= current.version:
        raise DirectoryRollbackError(
            f"directory version {d.version} is not newer than the version {current.version} held"
        )
    return d
