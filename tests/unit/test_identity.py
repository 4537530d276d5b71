"""Tests for exchange.identity: the office-signed member directory and the role table."""

from __future__ import annotations

import itertools
import typing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from fedharness import make_federation

from exchange import envelope, identity, messages, pki
from exchange.errors import (
    CertificateIdentityError,
    CertificateRevokedError,
    CertificateSignatureError,
    DirectoryError,
    DirectoryExpiredError,
    DirectoryRollbackError,
    RoleNotAllowedError,
    UnknownMemberError,
)
from exchange.identity import (
    ALLOWED,
    Directory,
    Member,
    Role,
    SignedDirectory,
    check_allowed,
    sign_directory,
    verify_directory,
)
from exchange.keys import PublicKey
from nodes.federation import build_directory, sign_with_office

OFFICE = "office.cn"
POLICE = "police.fj"


@dataclass(frozen=True)
class World:
    root: Path
    ca: x509.Certificate
    office: pki.NodeCredentials
    police: pki.NodeCredentials
    v1: Directory
    signed_v1: SignedDirectory

    def directory(self, version: int = 2, **kw: typing.Any) -> Directory:
        kw.setdefault("members", self.v1.members)
        return build_directory(trust_domain=self.v1.trust_domain, version=version, **kw)

    def sign(self, d: Directory) -> SignedDirectory:
        return sign_with_office(d, self.root / OFFICE / "keys", self.ca)

    def verify(self, signed: SignedDirectory, *, now: datetime | None = None,
               current: Directory | None = None) -> Directory:
        return verify_directory(signed, ca=self.ca, office_id=OFFICE,
                                now=now or datetime.now(UTC), current=current)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("federation")
    fed = make_federation(root)
    ca = pki.load_certificate(fed.ca_cert)
    now = datetime.now(UTC)
    signed = SignedDirectory.from_bytes(fed.directory_file.read_bytes())
    return World(
        root=root, ca=ca,
        office=pki.load_node_credentials(root / OFFICE / "keys", ca=ca, now=now),
        police=pki.load_node_credentials(root / POLICE / "keys", ca=ca, now=now),
        v1=verify_directory(signed, ca=ca, office_id=OFFICE, now=now),
        signed_v1=signed,
    )


# --- signing and verifying ---------------------------------------------------------------------


def test_sign_verify_round_trip(world: World) -> None:
    d = world.directory(numbering_plan=(), revoked_cert_serials=["abc"],
                        retired_signing_keys=[b"\x01" * 32])
    signed = world.sign(d)
    assert SignedDirectory.from_bytes(signed.to_bytes()) == signed
    got = world.verify(SignedDirectory.from_bytes(signed.to_bytes()))
    assert got == d
    assert got.revoked_cert_serials == {"abc"}
    assert got.retired_signing_keys == {b"\x01" * 32}
    assert [m.node_id for m in got.members] == [m.node_id for m in world.v1.members]
    assert got.office.signing_key == world.office.signer.public_key


def test_encode_decode_round_trip(world: World) -> None:
    d = world.v1
    assert identity.decode_directory(identity.encode_directory(d)) == d


def test_newer_directory_replaces_the_current_one(world: World) -> None:
    assert world.verify(world.sign(world.directory(2)), current=world.v1).version == 2


def test_signed_by_a_member_that_is_not_the_office(world: World) -> None:
    police = world.police
    signed = sign_directory(world.directory(), police.signer, police.signing_cert_pem)
    with pytest.raises(CertificateIdentityError,
                       match=r"names node 'police\.fj', expected 'office\.cn'"):
        world.verify(signed)


def test_office_certificate_with_another_key_signature(world: World) -> None:
    signed = sign_directory(world.directory(), world.police.signer,
                            world.office.signing_cert_pem)
    with pytest.raises(DirectoryError, match=r"^directory signature does not verify: "):
        world.verify(signed)


def test_signed_by_an_office_certificate_of_another_ca(world: World, tmp_path: Path) -> None:
    pki.init_ca(trust_domain=world.v1.trust_domain, out=tmp_path / "other-ca")
    pki.issue_node(ca_dir=tmp_path / "other-ca", node_id=OFFICE, out=tmp_path / "office")
    other = pki.load_node_credentials(tmp_path / "office",
                                      ca=pki.load_certificate(tmp_path / "other-ca" / "ca.pem"),
                                      now=datetime.now(UTC))
    signed = sign_directory(world.directory(), other.signer, other.signing_cert_pem)
    with pytest.raises(CertificateSignatureError, match=r"was not issued by the exchange CA"):
        world.verify(signed)


def test_tampered_payload(world: World) -> None:
    env = envelope.parse(world.signed_v1.envelope)
    forged = identity.encode_directory(replace(world.v1, version=99))
    raw = envelope.encode(forged, env.payload_type, env.signatures)
    with pytest.raises(DirectoryError,
                       match=r"directory signature does not verify: .*altered or forged"):
        world.verify(SignedDirectory(raw, world.signed_v1.signer_certificate_pem))


def test_one_flipped_payload_byte(world: World) -> None:
    env = envelope.parse(world.signed_v1.envelope)
    payload = bytearray(env.payload)
    payload[len(payload) // 2] ^= 0x20
    raw = envelope.encode(bytes(payload), env.payload_type, env.signatures)
    with pytest.raises(DirectoryError, match=r"directory signature does not verify"):
        world.verify(SignedDirectory(raw, world.signed_v1.signer_certificate_pem))


def test_message_envelope_is_not_a_directory(world: World) -> None:
    env = envelope.sign(identity.encode_directory(world.directory()),
                        envelope.PAYLOAD_TYPE_MESSAGE, world.office.signer)
    with pytest.raises(DirectoryError, match=r"not a directory envelope"):
        world.verify(SignedDirectory(env.raw, world.office.signing_cert_pem))


def test_signer_certificate_not_pem(world: World) -> None:
    with pytest.raises(DirectoryError, match=r"^directory signer certificate is not PEM"):
        world.verify(SignedDirectory(world.signed_v1.envelope, b"not pem"))


def test_malformed_envelope(world: World) -> None:
    with pytest.raises(DirectoryError, match=r"^directory envelope is malformed: envelope is empty"):
        world.verify(SignedDirectory(b"", world.office.signing_cert_pem))


def test_signed_directory_garbage() -> None:
    with pytest.raises(DirectoryError, match=r"^signed directory does not decode"):
        SignedDirectory.from_bytes(b"\x00\xff\xfe garbage")


def test_directory_of_another_trust_domain(world: World) -> None:
    d = replace(world.directory(), trust_domain="other.example")
    with pytest.raises(DirectoryError,
                       match=r"for trust domain 'other\.example', its signer for 'bcx\.example'"):
        world.verify(world.sign(d))


def test_office_entry_must_hold_the_signing_key(world: World) -> None:
    members = tuple(replace(m, signing_key=world.police.signer.public_key)
                    if m.node_id == OFFICE else m for m in world.v1.members)
    with pytest.raises(DirectoryError, match=r"office entry does not match the key that signed"):
        world.verify(world.sign(world.directory(members=members)))


# --- expiry --------------------------------------------------------------------------------------


def test_expired_directory(world: World) -> None:
    d = world.directory(issued_at=datetime.now(UTC) - timedelta(days=2),
                        valid_for=timedelta(days=1))
    with pytest.raises(DirectoryExpiredError,
                       match=r"^directory version 2 expired at .*; refusing traffic"):
        world.verify(world.sign(d))


def test_directory_expires_at_its_expiry_time(world: World) -> None:
    d = world.directory(valid_for=timedelta(hours=1))
    signed = world.sign(d)
    assert world.verify(signed, now=d.expires_at - timedelta(microseconds=1)) == d
    with pytest.raises(DirectoryExpiredError, match=r"expired at"):
        world.verify(signed, now=d.expires_at)
    with pytest.raises(DirectoryExpiredError, match=r"expired at"):
        d.check_current(d.expires_at + timedelta(seconds=1))


# --- rollback ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("held", "offered"), [(1, 1), (3, 2), (5, 1)])
def test_rollback_refused(world: World, held: int, offered: int) -> None:
    current = world.directory(held)
    with pytest.raises(DirectoryRollbackError,
                       match=rf"^directory version {offered} is not newer than the version "
                             rf"{held} held$"):
        world.verify(world.sign(world.directory(offered)), current=current)


# --- revocation ----------------------------------------------------------------------------------


def test_signer_certificate_revoked_by_the_current_directory(world: World) -> None:
    serial = world.office.signing_identity.serial_hex
    current = world.directory(1, revoked_cert_serials=[serial])
    with pytest.raises(CertificateRevokedError, match=rf"certificate serial {serial} is revoked"):
        world.verify(world.sign(world.directory(2)), current=current)


def test_directory_revoking_its_own_signer(world: World) -> None:
    serial = world.office.signing_identity.serial_hex
    d = world.directory(revoked_cert_serials=[serial])
    with pytest.raises(DirectoryError,
                       match=rf"^directory is signed by revoked certificate {serial}$"):
        world.verify(world.sign(d))


def test_revoking_another_certificate_leaves_the_directory_valid(world: World) -> None:
    serial = world.police.identity.serial_hex
    d = world.directory(revoked_cert_serials=[serial])
    assert world.verify(world.sign(d), current=world.v1).revoked_cert_serials == {serial}


# --- the directory's own invariants --------------------------------------------------------------


def test_member_lookup(world: World) -> None:
    assert world.v1.member(POLICE).role is Role.POLICE
    assert world.v1.has_member(POLICE)
    assert not world.v1.has_member("ghost.fj")
    with pytest.raises(UnknownMemberError, match=r"'ghost\.fj' is not a member of the directory"):
        world.v1.member("ghost.fj")
    assert world.v1.bureau_of("fj").node_id == "bureau.fj"
    with pytest.raises(UnknownMemberError, match=r"no bureau for province 'gd'"):
        world.v1.bureau_of("gd")


def test_member_listed_twice(world: World) -> None:
    with pytest.raises(DirectoryError, match=r"lists member police\.fj twice"):
        world.directory(members=(*world.v1.members, world.v1.member(POLICE)))


def test_expires_before_issued(world: World) -> None:
    with pytest.raises(DirectoryError, match=r"expires before it was issued"):
        world.directory(valid_for=timedelta(0))


def test_exactly_one_office(world: World) -> None:
    d = world.directory(members=tuple(m for m in world.v1.members if m.role is not Role.OFFICE))
    with pytest.raises(DirectoryError, match=r"exactly one office, lists 0"):
        _ = d.office


# --- the role table --------------------------------------------------------------------------------

BODY_KINDS = sorted(b.kind for b in typing.get_args(messages.Body))


def member(role: Role, node_id: str | None = None) -> Member:
    return Member(node_id=node_id or f"{role.value}.fj", role=role, province="fj",
                  organisation=role.value, endpoint="127.0.0.1:1",
                  auth_cert_sha256=bytes(32), signing_key=PublicKey(bytes(32)),
                  hpke_public_key=bytes(32))


def test_role_table_names_only_real_bodies() -> None:
    assert {kind for _, kind in ALLOWED} <= set(BODY_KINDS)
    # Every body can be sent by someone.
    assert {kind for _, kind in ALLOWED} == set(BODY_KINDS)


@pytest.mark.parametrize(("sender", "kind", "recipient"), sorted(
    ((s, k, r) for (s, k), rs in ALLOWED.items() for r in rs),
    key=lambda t: (t[0].value, t[1], t[2].value)),
    ids=lambda v: v.value if isinstance(v, Role) else v)
def test_allowed(sender: Role, kind: str, recipient: Role) -> None:
    check_allowed(member(sender), member(recipient, "other.fj"), kind)


def test_every_pair_outside_the_table_is_refused() -> None:
    refused = 0
    for sender, kind, recipient in itertools.product(Role, BODY_KINDS, Role):
        if recipient in ALLOWED.get((sender, kind), frozenset()):
            continue
        with pytest.raises(RoleNotAllowedError, match=rf"may not send {kind} to a "):
            check_allowed(member(sender), member(recipient, "other.fj"), kind)
        refused += 1
    assert refused > 250


@pytest.mark.parametrize(("sender", "kind", "recipient"), [
    (Role.POLICE, "shutdown_notice", Role.BUREAU),
    (Role.POLICE, "number_report", Role.CARRIER),
    (Role.CARRIER, "number_report", Role.BUREAU),
    (Role.CARRIER, "shutdown_notice", Role.CARRIER),
    (Role.COMMERCE, "case_request", Role.CARRIER),
    (Role.BUREAU, "case_response", Role.POLICE),
    (Role.CARRIER, "case_response", Role.BUREAU),
    (Role.POLICE, "penalty", Role.CARRIER),
    (Role.BUREAU, "circular", Role.BUREAU),
    (Role.BUREAU, "circular", Role.OFFICE),
    (Role.OFFICE, "withdrawal", Role.POLICE),
    (Role.POLICE, "escalation", Role.BUREAU),
    (Role.CARRIER, "progress_report", Role.OFFICE),
    (Role.BUREAU, "appeal", Role.CARRIER),
    (Role.CARRIER, "appeal_decision", Role.POLICE),
])
def test_disallowed(sender: Role, kind: str, recipient: Role) -> None:
    s, r = member(sender, "sender.fj"), member(recipient, "recipient.fj")
    with pytest.raises(RoleNotAllowedError,
                       match=rf"^an? {sender.value} \(sender\.fj\) may not send {kind} to an? "
                             rf"{recipient.value} \(recipient\.fj\)$"):
        check_allowed(s, r, kind)


@pytest.mark.parametrize(("sender", "kind", "recipients"), [
    # docs/who-may-send-what.md#the-role-table, row by row.
    (Role.POLICE, "number_report", {Role.BUREAU}),
    (Role.COMMERCE, "number_report", {Role.BUREAU}),
    (Role.BUREAU, "shutdown_notice", {Role.CARRIER}),
    (Role.CARRIER, "action_report", {Role.BUREAU}),
    (Role.CARRIER, "channel_report", {Role.BUREAU}),
    (Role.COMMERCE, "channel_report", {Role.BUREAU}),
    (Role.CARRIER, "id_concentration_report", {Role.BUREAU}),
    (Role.POLICE, "case_request", {Role.CARRIER}),
    (Role.CARRIER, "case_response", {Role.POLICE}),
    # Feedback goes to reporters: a carrier receives no circulars
    # (docs/architecture.md#differences-from-the-original-design).
    (Role.BUREAU, "circular", {Role.POLICE, Role.COMMERCE}),
    (Role.BUREAU, "penalty", {Role.CARRIER}),
    (Role.CARRIER, "appeal", {Role.BUREAU}),
    (Role.BUREAU, "appeal_decision", {Role.CARRIER, Role.POLICE}),
    (Role.BUREAU, "progress_report", {Role.OFFICE}),
    (Role.POLICE, "withdrawal", {Role.BUREAU}),
    (Role.COMMERCE, "withdrawal", {Role.BUREAU}),
    (Role.BUREAU, "withdrawal", {Role.BUREAU, Role.CARRIER}),
])
def test_role_table_follows_the_design(sender: Role, kind: str, recipients: set[Role]) -> None:
    assert ALLOWED[(sender, kind)] == recipients
