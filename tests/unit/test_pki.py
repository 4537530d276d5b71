"""Tests for exchange.pki: the exchange CA, node credentials, and a real mTLS handshake."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from hypothesis import given
from hypothesis import strategies as st

from exchange import pki
from exchange.errors import (
    CertificateExpiredError,
    CertificateIdentityError,
    CertificateNotYetValidError,
    CertificateRevokedError,
    CertificateSignatureError,
    PKIError,
)

TD = "bcx.example"


@dataclass
class World:
    """Two CAs (ours and a stranger's with the same trust domain) and a scratch area."""

    root: Path
    ca_dir: Path
    ca: x509.Certificate
    other_ca_dir: Path
    counter: int = 0

    def issue(self, node_id: str = "police.fj", *, ca_dir: Path | None = None, **kw: Any) -> Path:
        self.counter += 1
        out = self.root / f"node{self.counter}-{node_id}"
        pki.issue_node(ca_dir=ca_dir or self.ca_dir, node_id=node_id, out=out, **kw)
        return out

    def ca_signed(self, san: list[x509.GeneralName] | None) -> x509.Certificate:
        """A leaf certificate signed by our CA with an arbitrary subjectAltName."""
        ca_key = serialization.load_pem_private_key(
            (self.ca_dir / "ca.key").read_bytes(), password=None
        )
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "police.fj")]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
        )
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("pki")
    pki.init_ca(trust_domain=TD, out=root / "ca")
    pki.init_ca(trust_domain=TD, out=root / "other-ca")
    return World(
        root=root,
        ca_dir=root / "ca",
        ca=pki.load_certificate(root / "ca" / "ca.pem"),
        other_ca_dir=root / "other-ca",
    )


def now() -> datetime:
    return datetime.now(UTC)


# --- Issuing ------------------------------------------------------------------------------


def test_issue_then_load(world: World) -> None:
    out = world.issue("mvno-x.fj")
    creds = pki.load_node_credentials(out, ca=world.ca, now=now())

    assert creds.node_id == "mvno-x.fj"
    assert creds.trust_domain == TD
    assert creds.identity.node_id == "mvno-x.fj"
    tls_cert = x509.load_pem_x509_certificate(creds.tls_cert_pem)
    assert creds.identity.fingerprint_sha256 == pki.fingerprint(tls_cert)
    assert creds.identity.serial_hex == format(tls_cert.serial_number, "x")
    assert creds.ca_pem == world.ca.public_bytes(serialization.Encoding.PEM)
    assert (out / "ca.pem").read_bytes() == creds.ca_pem
    assert len(creds.hpke_public_raw) == 32
    hpke_pub = serialization.load_pem_public_key((out / "hpke.pub").read_bytes())
    assert isinstance(hpke_pub, X25519PublicKey)
    assert hpke_pub.public_bytes_raw() == creds.hpke_public_raw
    # Key material stays out of logs.
    assert b"PRIVATE" not in repr(creds).encode()


def test_auth_certificate_profile(world: World) -> None:
    cert = pki.load_certificate(world.issue("police.fj") / "tls" / "cert.pem")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://{TD}/node/police.fj"
    ]
    assert san.get_values_for_type(x509.DNSName) == ["police.fj"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_signing_certificate_proves_the_signing_key_offline(world: World) -> None:
    out = world.issue("bureau.fj")
    creds = pki.load_node_credentials(out, ca=world.ca, now=now())
    signing_cert = x509.load_pem_x509_certificate(creds.signing_cert_pem)

    identity = pki.check_certificate(
        signing_cert, ca=world.ca, now=now(), expect_node_id="bureau.fj"
    )
    key = pki.signing_public_key_from_cert(signing_cert)
    key.verify(creds.signer.sign(b"envelope bytes"), b"envelope bytes")

    assert identity == creds.signing_identity
    assert key == creds.signer.public_key
    assert isinstance(signing_cert.public_key(), Ed25519PublicKey)
    ku = signing_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        signing_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)


def test_signing_public_key_from_auth_cert_refused(world: World) -> None:
    cert = pki.load_certificate(world.issue() / "tls" / "cert.pem")
    with pytest.raises(PKIError, match="not an Ed25519 signing key"):
        pki.signing_public_key_from_cert(cert)


def test_extra_dns_names(world: World) -> None:
    cert = pki.load_certificate(
        world.issue("office.cn", dns_names=["bcx.office.example"]) / "tls" / "cert.pem"
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["office.cn", "bcx.office.example"]


def test_node_certificates_do_not_outlive_the_ca(world: World) -> None:
    cert = pki.load_certificate(world.issue(valid_days=100_000) / "tls" / "cert.pem")
    assert cert.not_valid_after_utc == world.ca.not_valid_after_utc


T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("valid_days", "ca_end", "not_after", "cut"), [
    (825, T0 + timedelta(days=3650), T0 + timedelta(days=825), False),
    (825, T0 + timedelta(days=825), T0 + timedelta(days=825), False),
    (825, T0 + timedelta(days=100), T0 + timedelta(days=100), True),
    (1, T0 + timedelta(seconds=1), T0 + timedelta(seconds=1), True),
])
def test_leaf_validity_ends_no_later_than_the_ca(valid_days: int, ca_end: datetime,
                                                 not_after: datetime, cut: bool) -> None:
    validity = pki.leaf_validity(not_before=T0, valid_days=valid_days, ca_not_after=ca_end)
    assert (validity.not_before, validity.not_after, validity.cut) == (T0, not_after, cut)
    assert validity.asked_not_after == T0 + timedelta(days=valid_days)


@given(st.integers(min_value=1, max_value=100_000), st.integers(min_value=0, max_value=10**9))
def test_leaf_validity_is_the_asked_span_or_the_ca_end(valid_days: int, ca_seconds: int) -> None:
    ca_end = T0 + timedelta(seconds=ca_seconds)
    validity = pki.leaf_validity(not_before=T0, valid_days=valid_days, ca_not_after=ca_end)
    assert validity.not_after <= ca_end
    assert validity.not_after <= validity.asked_not_after
    assert validity.cut == (validity.not_after != validity.asked_not_after)
    assert validity.not_after in (ca_end, T0 + timedelta(days=valid_days))


@pytest.mark.parametrize(("expect_td", "expect_node", "error"), [
    (None, None, None),
    (TD, "police.fj", None),
    (TD, None, None),
    (None, "police.fj", None),
    ("other.example", "police.fj",
     r"certificate serial 1f is for trust domain 'bcx\.example', expected 'other\.example'"),
    (TD, "police.gd", r"certificate serial 1f names node 'police\.fj', expected 'police\.gd'"),
    ("other.example", "police.gd", r"for trust domain"),
])
def test_check_names(expect_td: str | None, expect_node: str | None, error: str | None) -> None:
    def check() -> None:
        pki.check_names("1f", trust_domain=TD, node_id="police.fj",
                        expect_trust_domain=expect_td, expect_node_id=expect_node)
    if error is None:
        check()
    else:
        with pytest.raises(CertificateIdentityError, match=error):
            check()


def test_ca_certificate_profile() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = pki.ca_certificate(key, trust_domain=TD, not_before=T0,
                              not_after=T0 + timedelta(days=10))
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        f"bcx exchange CA ({TD})")
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (T0, T0 + timedelta(days=10))
    cert.verify_directly_issued_by(cert)


def test_private_files_are_0600_and_dirs_0700(world: World) -> None:
    out = world.issue()
    for name in ("tls/key.pem", "signing.key", "hpke.key"):
        assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o600, name
    for d in (out, out / "tls"):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
    assert stat.S_IMODE(os.stat(world.ca_dir / "ca.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(world.ca_dir).st_mode) == 0o700
    assert (world.ca_dir / "trust-domain").read_text().strip() == TD


@pytest.mark.parametrize("existing", ["ca.pem", "ca.key", "trust-domain"])
def test_init_ca_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("keep me")
    with pytest.raises(PKIError, match=f"refusing to overwrite existing CA file .*{existing}"):
        pki.init_ca(trust_domain=TD, out=tmp_path)
    assert (tmp_path / existing).read_text() == "keep me"


def test_init_ca_twice_refused(tmp_path: Path) -> None:
    pki.init_ca(trust_domain=TD, out=tmp_path / "ca")
    before = (tmp_path / "ca" / "ca.key").read_bytes()
    with pytest.raises(PKIError, match="refusing to overwrite existing CA file"):
        pki.init_ca(trust_domain=TD, out=tmp_path / "ca")
    assert (tmp_path / "ca" / "ca.key").read_bytes() == before


def test_issue_node_refuses_to_overwrite_keys(world: World) -> None:
    out = world.issue()
    before = (out / "signing.key").read_bytes()
    with pytest.raises(PKIError, match=r"refusing to overwrite existing key .*tls/key\.pem"):
        pki.issue_node(ca_dir=world.ca_dir, node_id="police.fj", out=out)
    assert (out / "signing.key").read_bytes() == before


@pytest.mark.parametrize(
    "node_id",
    [
        "Police.fj",
        "police",
        "police.",
        ".fj",
        "-police.fj",
        "police-.fj",
        "po_lice.fj",
        "police..fj",
        "police.fj/x",
        "police fj.x",
        "",
        "a" * 64 + ".fj",
    ],
)
def test_bad_node_id_rejected(world: World, node_id: str) -> None:
    with pytest.raises(PKIError, match="invalid node id"):
        pki.issue_node(ca_dir=world.ca_dir, node_id=node_id, out=world.root / "never")
    assert not (world.root / "never").exists()


@pytest.mark.parametrize("node_id", ["police.fj", "mvno-x.fj", "office.cn", "a.b.c", "x1.y-2.z"])
def test_good_node_ids(node_id: str) -> None:
    assert pki.validate_node_id(node_id) == node_id


@pytest.mark.parametrize("trust_domain", ["", "BCX.example", "bcx/example", "bcx example"])
def test_bad_trust_domain_rejected(tmp_path: Path, trust_domain: str) -> None:
    with pytest.raises(PKIError, match="invalid trust domain"):
        pki.init_ca(trust_domain=trust_domain, out=tmp_path / "ca")


# --- SPIFFE IDs ------------------------------------------------------------------------------


def test_spiffe_uri_round_trip() -> None:
    uri = pki.spiffe_uri(TD, "mvno-x.fj")
    assert uri == "spiffe://bcx.example/node/mvno-x.fj"
    assert pki.parse_spiffe_uri(uri) == (TD, "mvno-x.fj")


@pytest.mark.parametrize(
    "uri",
    [
        "https://bcx.example/node/police.fj",
        "spiffe://bcx.example/agent/police.fj",
        "spiffe://bcx.example/node/police.fj/extra",
        "spiffe://bcx.example/node/",
        "spiffe:///node/police.fj",
        "spiffe://bcx.example/node/Police.fj",
        "spiffe://BCX.example/node/police.fj",
    ],
)
def test_parse_spiffe_uri_rejects(uri: str) -> None:
    with pytest.raises(CertificateIdentityError, match="spiffe"):
        pki.parse_spiffe_uri(uri)


# --- Checking certificates ----------------------------------------------------------------


@dataclass(frozen=True)
class CheckCase:
    name: str
    make: Callable[[World], x509.Certificate]
    check: dict[str, Any]
    error: type[Exception] | None
    match: str = ""
    revoke_own_serial: Callable[[str], str] | None = None


def _auth(**issue_kw: Any) -> Callable[[World], x509.Certificate]:
    def make(w: World) -> x509.Certificate:
        return pki.load_certificate(w.issue(**issue_kw) / "tls" / "cert.pem")

    return make


def _signing(**issue_kw: Any) -> Callable[[World], x509.Certificate]:
    def make(w: World) -> x509.Certificate:
        return pki.load_certificate(w.issue(**issue_kw) / "signing.pem")

    return make


def _foreign(w: World) -> x509.Certificate:
    return pki.load_certificate(w.issue(ca_dir=w.other_ca_dir) / "tls" / "cert.pem")


def _foreign_named(w: World) -> x509.Certificate:
    other = w.root / "stranger-ca"
    if not other.exists():
        pki.init_ca(trust_domain="stranger.example", out=other)
    return pki.load_certificate(w.issue(ca_dir=other) / "tls" / "cert.pem")


def _with_san(*names: x509.GeneralName) -> Callable[[World], x509.Certificate]:
    return lambda w: w.ca_signed(list(names))


CHECK_CASES = [
    CheckCase("auth cert ok", _auth(), {"expect_node_id": "police.fj"}, None),
    CheckCase("signing cert ok", _signing(), {"trust_domain": TD}, None),
    CheckCase(
        "expired",
        _auth(not_before=now() - timedelta(days=10), valid_days=1),
        {},
        CertificateExpiredError,
        r"certificate serial [0-9a-f]+ expired at ",
    ),
    CheckCase(
        "not yet valid",
        _auth(not_before=now() + timedelta(days=1)),
        {},
        CertificateNotYetValidError,
        r"certificate serial [0-9a-f]+ is not valid before ",
    ),
    CheckCase(
        "another CA, same name",
        _foreign,
        {},
        CertificateSignatureError,
        r"certificate serial [0-9a-f]+ .* was not issued by the exchange CA",
    ),
    CheckCase(
        "another CA, other name",
        _foreign_named,
        {},
        CertificateSignatureError,
        r"was not issued by the exchange CA O=bcx\.example,CN=bcx exchange CA \(bcx\.example\)",
    ),
    CheckCase(
        "revoked",
        _auth(),
        {},
        CertificateRevokedError,
        r"certificate serial [0-9a-f]+ is revoked",
        revoke_own_serial=lambda s: s,
    ),
    CheckCase(
        "revoked, listed upper-case and zero-padded",
        _signing(),
        {},
        CertificateRevokedError,
        r"is revoked",
        revoke_own_serial=lambda s: s.upper().rjust(40, "0"),
    ),
    CheckCase(
        "other node expected",
        _auth(),
        {"expect_node_id": "bureau.fj"},
        CertificateIdentityError,
        r"names node 'police\.fj', expected 'bureau\.fj'",
    ),
    CheckCase(
        "other trust domain expected",
        _auth(),
        {"trust_domain": "other.example"},
        CertificateIdentityError,
        r"is for trust domain 'bcx\.example', expected 'other\.example'",
    ),
    CheckCase(
        "no SAN",
        lambda w: w.ca_signed(None),
        {},
        CertificateIdentityError,
        r"has no subjectAltName",
    ),
    CheckCase(
        "DNS SAN only",
        _with_san(x509.DNSName("police.fj")),
        {},
        CertificateIdentityError,
        r"exactly one SPIFFE URI SAN, has \[\]",
    ),
    CheckCase(
        "two URIs",
        _with_san(
            x509.UniformResourceIdentifier("spiffe://bcx.example/node/police.fj"),
            x509.UniformResourceIdentifier("spiffe://bcx.example/node/bureau.fj"),
        ),
        {},
        CertificateIdentityError,
        r"exactly one SPIFFE URI SAN",
    ),
    CheckCase(
        "not a node SPIFFE ID",
        _with_san(x509.UniformResourceIdentifier("spiffe://bcx.example/agent/police.fj")),
        {},
        CertificateIdentityError,
        r"'spiffe://bcx\.example/agent/police\.fj' is not a node SPIFFE ID",
    ),
    CheckCase(
        "malformed node id in SPIFFE ID",
        _with_san(x509.UniformResourceIdentifier("spiffe://bcx.example/node/POLICE")),
        {},
        CertificateIdentityError,
        r"malformed SPIFFE ID 'spiffe://bcx\.example/node/POLICE'",
    ),
    CheckCase(
        "naive clock",
        _auth(),
        {"now": datetime.now()},  # naive on purpose
        PKIError,
        r"has no timezone",
    ),
]


@pytest.mark.parametrize("case", CHECK_CASES, ids=[c.name for c in CHECK_CASES])
def test_check_certificate(world: World, case: CheckCase) -> None:
    cert = case.make(world)
    kwargs: dict[str, Any] = {"now": now(), **case.check}
    if case.revoke_own_serial is not None:
        kwargs["revoked_serials"] = {"01", case.revoke_own_serial(format(cert.serial_number, "x"))}
    if case.error is None:
        identity = pki.check_certificate(cert, ca=world.ca, **kwargs)
        assert identity.node_id == "police.fj"
        assert identity.trust_domain == TD
        assert identity.fingerprint_sha256 == pki.fingerprint(cert)
    else:
        with pytest.raises(case.error, match=case.match):
            pki.check_certificate(cert, ca=world.ca, **kwargs)


def test_other_serials_revoked_do_not_matter(world: World) -> None:
    cert = _auth()(world)
    pki.check_certificate(cert, ca=world.ca, now=now(), revoked_serials=["1", "abc"])


def test_bad_revocation_entry_refused(world: World) -> None:
    cert = _auth()(world)
    with pytest.raises(PKIError, match="revoked serial 'xyz' is not a hex number"):
        pki.check_certificate(cert, ca=world.ca, now=now(), revoked_serials=["xyz"])


def test_load_certificate_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(PKIError, match=r"cannot load certificate .*junk\.pem"):
        pki.load_certificate(tmp_path / "junk.pem")
    with pytest.raises(PKIError, match=r"cannot load certificate .*missing\.pem"):
        pki.load_certificate(tmp_path / "missing.pem")


# --- Loading node credentials ----------------------------------------------------------------


@pytest.mark.parametrize("key_file", ["tls/key.pem", "signing.key", "hpke.key"])
@pytest.mark.parametrize(
    ("mode", "how"), [(0o644, "readable"), (0o640, "readable"), (0o620, "accessible")]
)
def test_key_readable_by_others_refused(world: World, key_file: str, mode: int, how: str) -> None:
    out = world.issue()
    (out / key_file).chmod(mode)
    with pytest.raises(
        PKIError, match=rf"{key_file} is {how} by others \(mode {mode:04o}\); chmod 600 "
    ):
        pki.load_node_credentials(out, ca=world.ca, now=now())


def test_ca_key_readable_by_others_refused(tmp_path: Path) -> None:
    pki.init_ca(trust_domain=TD, out=tmp_path / "ca")
    (tmp_path / "ca" / "ca.key").chmod(0o644)
    with pytest.raises(PKIError, match=r"ca\.key is readable by others \(mode 0644\)"):
        pki.issue_node(ca_dir=tmp_path / "ca", node_id="police.fj", out=tmp_path / "n")


def test_load_refuses_swapped_signing_key(world: World) -> None:
    out, other = world.issue(), world.issue("bureau.fj")
    (out / "signing.key").write_bytes((other / "signing.key").read_bytes())
    with pytest.raises(PKIError, match=r"signing\.key is not the private key of .*signing\.pem"):
        pki.load_node_credentials(out, ca=world.ca, now=now())


def test_load_refuses_swapped_tls_key(world: World) -> None:
    out, other = world.issue(), world.issue("bureau.fj")
    (out / "tls" / "key.pem").write_bytes((other / "tls" / "key.pem").read_bytes())
    with pytest.raises(PKIError, match=r"key\.pem is not the private key of .*cert\.pem"):
        pki.load_node_credentials(out, ca=world.ca, now=now())


def test_load_refuses_certificates_of_two_nodes(world: World) -> None:
    out, other = world.issue(), world.issue("bureau.fj")
    for name in ("signing.pem", "signing.key"):
        (out / name).write_bytes((other / name).read_bytes())
        (out / name).chmod(0o600)
    with pytest.raises(
        CertificateIdentityError, match=r"names node 'bureau\.fj', expected 'police\.fj'"
    ):
        pki.load_node_credentials(out, ca=world.ca, now=now())


def test_load_checks_expiry_and_revocation(world: World) -> None:
    out = world.issue()
    later = now() + timedelta(days=900)
    with pytest.raises(CertificateExpiredError, match="expired at"):
        pki.load_node_credentials(out, ca=world.ca, now=later)
    serial = format(pki.load_certificate(out / "signing.pem").serial_number, "x")
    with pytest.raises(CertificateRevokedError, match=f"serial {serial} is revoked"):
        pki.load_node_credentials(out, ca=world.ca, now=now(), revoked_serials=[serial])


def test_load_from_another_ca_refused(world: World) -> None:
    out = world.issue(ca_dir=world.other_ca_dir)
    with pytest.raises(CertificateSignatureError, match="was not issued by the exchange CA"):
        pki.load_node_credentials(out, ca=world.ca, now=now())


def test_load_missing_file(world: World) -> None:
    out = world.issue()
    (out / "hpke.key").unlink()
    with pytest.raises(PKIError, match=r"cannot read private key .*hpke\.key"):
        pki.load_node_credentials(out, ca=world.ca, now=now())


# --- A real mTLS handshake ----------------------------------------------------------------


class RecordingHealthServicer(health.aio.HealthServicer):  # type: ignore[misc]
    """Records the auth context the server saw for each call."""

    def __init__(self) -> None:
        super().__init__()
        self.auth_contexts: list[dict[str, list[bytes]]] = []

    async def Check(self, request: Any, context: Any) -> Any:
        self.auth_contexts.append(dict(context.auth_context()))
        return await super().Check(request, context)


@pytest.fixture(scope="module")
def tls_nodes(world: World) -> dict[str, pki.NodeCredentials]:
    def load(out: Path, ca_dir: Path) -> pki.NodeCredentials:
        return pki.load_node_credentials(out, ca=pki.load_certificate(ca_dir / "ca.pem"), now=now())

    return {
        "server": load(world.issue("police.fj"), world.ca_dir),
        "client": load(world.issue("bureau.fj"), world.ca_dir),
        "stranger": load(world.issue("bureau.fj", ca_dir=world.other_ca_dir), world.other_ca_dir),
    }


async def _health_check(
    server_creds: pki.NodeCredentials,
    channel_credentials: grpc.ChannelCredentials,
    target_name: str,
    servicer: RecordingHealthServicer,
) -> int:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port(
        "127.0.0.1:0",
        grpc.ssl_server_credentials(
            [(server_creds.tls_key_pem, server_creds.tls_cert_pem)],
            root_certificates=server_creds.ca_pem,
            require_client_auth=True,
        ),
    )
    await server.start()
    try:
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{port}",
            channel_credentials,
            options=[("grpc.ssl_target_name_override", target_name)],
        ) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            return int(reply.status)
    finally:
        await server.stop(None)


@pytest.mark.network
def test_mtls_handshake_and_peer_spiffe_id(tls_nodes: dict[str, pki.NodeCredentials]) -> None:
    server, client = tls_nodes["server"], tls_nodes["client"]
    servicer = RecordingHealthServicer()
    status = asyncio.run(
        _health_check(
            server,
            grpc.ssl_channel_credentials(client.ca_pem, client.tls_key_pem, client.tls_cert_pem),
            "police.fj",
            servicer,
        )
    )

    assert status == health_pb2.HealthCheckResponse.SERVING
    (auth,) = servicer.auth_contexts
    client_uri = b"spiffe://bcx.example/node/bureau.fj"
    assert auth["peer_spiffe_id"] == [client_uri]
    assert auth["peer_uri"] == [client_uri]
    assert auth["peer_dns"] == [b"bureau.fj"]
    assert auth["x509_subject_alternative_name"] == [client_uri, b"bureau.fj"]
    assert auth["transport_security_type"] == [b"ssl"]
    assert auth["ssl_tls_version"] == [b"TLSv1.3"]
    # The server can tie the connection to the directory entry by fingerprint.
    (pem,) = auth["x509_pem_cert"]
    assert (
        pki.fingerprint(x509.load_pem_x509_certificate(pem)) == client.identity.fingerprint_sha256
    )


HANDSHAKE_FAILURES = [
    # (case, client credentials from tls_nodes, server name the client insists on)
    ("client cert from another CA", "stranger", "police.fj"),
    ("client without a certificate", None, "police.fj"),
    ("server is not the node the client meant", "client", "bureau.fj"),
]


@pytest.mark.network
@pytest.mark.parametrize(
    ("case", "client_name", "target_name"),
    HANDSHAKE_FAILURES,
    ids=[c[0] for c in HANDSHAKE_FAILURES],
)
def test_mtls_handshake_refused(
    tls_nodes: dict[str, pki.NodeCredentials],
    case: str,
    client_name: str | None,
    target_name: str,
) -> None:
    server = tls_nodes["server"]
    if client_name is None:
        channel_credentials = grpc.ssl_channel_credentials(server.ca_pem)
    else:
        client = tls_nodes[client_name]
        channel_credentials = grpc.ssl_channel_credentials(
            server.ca_pem, client.tls_key_pem, client.tls_cert_pem
        )
    servicer = RecordingHealthServicer()
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        asyncio.run(_health_check(server, channel_credentials, target_name, servicer))
    assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE, case
    assert servicer.auth_contexts == []
