"""The exchange CA and node credentials (docs/formats.md#names-and-keys).

The CA issues each node two certificates, as X-Road does:

* an *auth* certificate (ECDSA P-256) for mutual TLS, naming the node by the SAN URI
  ``spiffe://<trust-domain>/node/<node-id>`` and by a DNS name equal to the node id, which
  gRPC's hostname check matches through ``grpc.ssl_target_name_override``;
* a *signing* certificate whose subject key is the node's Ed25519 message-signing key, so
  that the key listed in the directory can be proved offline from the CA alone.

Each node also gets an X25519 key for HPKE sealing (``exchange.seal``).

Node directory layout written by :func:`issue_node`::

    <out>/ca.pem          copy of the exchange CA certificate
    <out>/tls/cert.pem    auth certificate
    <out>/tls/key.pem     auth private key (0600)
    <out>/signing.pem     signing certificate
    <out>/signing.key     Ed25519 signing key, PKCS#8 PEM (0600)
    <out>/hpke.key        X25519 private key, PKCS#8 PEM (0600)
    <out>/hpke.pub        X25519 public key, SubjectPublicKeyInfo PEM
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exchange import files
from exchange.errors import (
    CertificateExpiredError,
    CertificateIdentityError,
    CertificateNotYetValidError,
    CertificateRevokedError,
    CertificateSignatureError,
    PKIError,
)
from exchange.keys import Ed25519Signer, PublicKey, write_private

logger = logging.getLogger(__name__)

NODE_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
# SPIFFE trust domain characters (SPIFFE-ID spec §2.1), lowercase only.
TRUST_DOMAIN_RE = re.compile(r"^[a-z0-9._-]+$")
_SPIFFE_RE = re.compile(r"^spiffe://(?P<td>[^/]+)/node/(?P<id>[^/]+)$")

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
TRUST_DOMAIN_FILE = "trust-domain"
TLS_CERT = "tls/cert.pem"
TLS_KEY = "tls/key.pem"
SIGNING_CERT = "signing.pem"
SIGNING_KEY = "signing.key"
HPKE_KEY = "hpke.key"
HPKE_PUB = "hpke.pub"

# Backdate notBefore a little so a peer whose clock runs slightly behind accepts a
# certificate issued a moment ago.
_BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class CAFiles:
    cert: Path
    key: Path
    trust_domain_file: Path
    trust_domain: str


@dataclass(frozen=True, slots=True)
class CA:
    """The exchange CA as loaded to issue: its certificate, key and trust domain."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    trust_domain: str


@dataclass(frozen=True, slots=True)
class NodeFiles:
    node_id: str
    dir: Path
    ca_cert: Path
    tls_cert: Path
    tls_key: Path
    signing_cert: Path
    signing_key: Path
    hpke_key: Path
    hpke_pub: Path


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who a certificate, once checked against the exchange CA, says it belongs to."""

    node_id: str
    trust_domain: str
    serial_hex: str
    fingerprint_sha256: bytes


@dataclass(frozen=True, slots=True)
class NodeCredentials:
    """Everything a node needs to speak mTLS, sign and open sealed payloads."""

    node_id: str
    trust_domain: str
    tls_cert_pem: bytes
    tls_key_pem: bytes = field(repr=False)
    ca_pem: bytes
    signer: Ed25519Signer = field(repr=False)
    signing_cert_pem: bytes
    hpke_private: X25519PrivateKey = field(repr=False)
    identity: NodeIdentity
    signing_identity: NodeIdentity

    @property
    def hpke_public_raw(self) -> bytes:
        return self.hpke_private.public_key().public_bytes_raw()


# --- Names -------------------------------------------------------------------------


def validate_node_id(node_id: str) -> str:
    """Return ``node_id`` if it is a lowercase dotted name like ``police.fj``, else raise."""
    if (
        len(node_id) > 253
        or not NODE_ID_RE.fullmatch(node_id)
        or any(len(label) > 63 for label in node_id.split("."))
    ):
        raise PKIError(
            f"invalid node id {node_id!r}: must be a lowercase dotted name like 'police.fj'"
        )
    return node_id


def validate_trust_domain(trust_domain: str) -> str:
    if not trust_domain or len(trust_domain) > 255 or not TRUST_DOMAIN_RE.fullmatch(trust_domain):
        raise PKIError(
            f"invalid trust domain {trust_domain!r}: use lowercase letters, digits, '.', '-', '_'"
        )
    return trust_domain


def spiffe_uri(trust_domain: str, node_id: str) -> str:
    return f"spiffe://{validate_trust_domain(trust_domain)}/node/{validate_node_id(node_id)}"


def parse_spiffe_uri(uri: str) -> tuple[str, str]:
    """Split ``spiffe://<trust-domain>/node/<node-id>`` into (trust domain, node id)."""
    m = _SPIFFE_RE.fullmatch(uri)
    if m is None:
        raise CertificateIdentityError(
            f"{uri!r} is not a node SPIFFE ID of the form spiffe://<trust-domain>/node/<node-id>"
        )
    try:
        return validate_trust_domain(m["td"]), validate_node_id(m["id"])
    except PKIError as e:
        raise CertificateIdentityError(f"malformed SPIFFE ID {uri!r}: {e}") from e


# --- Issuing -------------------------------------------------------------------------


def init_ca(*, trust_domain: str, out: Path, valid_days: int = 3650) -> CAFiles:
    """Create the exchange CA in ``out``; refuse to replace an existing one."""
    validate_trust_domain(trust_domain)
    files = CAFiles(
        cert=out / CA_CERT,
        key=out / CA_KEY,
        trust_domain_file=out / TRUST_DOMAIN_FILE,
        trust_domain=trust_domain,
    )
    for path in (files.cert, files.key, files.trust_domain_file):
        if path.exists():
            raise PKIError(f"refusing to overwrite existing CA file {path}")
    _make_private_dir(out)

    key = ec.generate_private_key(ec.SECP256R1())
    not_before = datetime.now(UTC) - _BACKDATE
    cert = ca_certificate(
        key, trust_domain=trust_domain, not_before=not_before,
        not_after=not_before + timedelta(days=valid_days),
    )
    write_private(files.key, _private_pem(key))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.trust_domain_file.write_text(trust_domain + "\n", encoding="utf-8")
    logger.info("created exchange CA for %s, serial %s", trust_domain, _serial_hex(cert))
    return files


def ca_certificate(
    key: ec.EllipticCurvePrivateKey, *, trust_domain: str, not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """The self-signed exchange CA certificate: it may sign node certificates, no CAs."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"bcx exchange CA ({trust_domain})"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


@dataclass(frozen=True, slots=True)
class Validity:
    """When a node's certificates are valid, and the end asked for before any cut."""

    not_before: datetime
    not_after: datetime
    asked_not_after: datetime

    @property
    def cut(self) -> bool:
        return self.not_after < self.asked_not_after


def leaf_validity(*, not_before: datetime, valid_days: int, ca_not_after: datetime) -> Validity:
    """``valid_days`` from ``not_before``, but never beyond the CA's own end: a certificate
    cannot be trusted longer than the CA that vouches for it."""
    asked = not_before + timedelta(days=valid_days)
    return Validity(not_before=not_before, not_after=min(asked, ca_not_after),
                    asked_not_after=asked)


def issue_node(
    *,
    ca_dir: Path,
    node_id: str,
    out: Path,
    valid_days: int = 825,
    dns_names: Sequence[str] = (),
    not_before: datetime | None = None,
) -> NodeFiles:
    """Issue auth and signing certificates and an HPKE key for ``node_id`` into ``out``.

    Refuses to overwrite an existing node's keys: re-keying a node means a new directory
    entry, so it should be a deliberate step (remove the old files first).
    """
    validate_node_id(node_id)
    ca = _load_ca(ca_dir)
    files = _node_files(node_id, out)
    for path in (files.tls_key, files.signing_key, files.hpke_key):
        if path.exists():
            raise PKIError(f"refusing to overwrite existing key {path} for node {node_id}")

    start = (datetime.now(UTC) - _BACKDATE) if not_before is None else _aware(not_before)
    validity = leaf_validity(not_before=start, valid_days=valid_days,
                             ca_not_after=ca.cert.not_valid_after_utc)
    if validity.cut:
        logger.warning("node %s certificates cut to end with the CA at %s", node_id,
                       validity.asked_not_after)
    uri = spiffe_uri(ca.trust_domain, node_id)

    _make_private_dir(out)
    _make_private_dir(out / "tls")
    tls_key = ec.generate_private_key(ec.SECP256R1())
    tls_cert = tls_certificate(ca, tls_key.public_key(), node_id=node_id, uri=uri,
                               dns_names=dns_names, validity=validity)
    signer_key = Ed25519PrivateKey.generate()
    signing_cert = signing_certificate(ca, signer_key.public_key(), node_id=node_id, uri=uri,
                                       validity=validity)
    hpke_key = X25519PrivateKey.generate()

    write_private(files.tls_key, _private_pem(tls_key))
    write_private(files.signing_key, _private_pem(signer_key))
    write_private(files.hpke_key, _private_pem(hpke_key))
    _write_public(files, ca=ca.cert, tls_cert=tls_cert, signing_cert=signing_cert,
                  hpke_public=hpke_key.public_key())
    logger.info("issued node %s: auth serial %s, signing serial %s",
                node_id, _serial_hex(tls_cert), _serial_hex(signing_cert))
    return files


def _node_files(node_id: str, out: Path) -> NodeFiles:
    return NodeFiles(
        node_id=node_id,
        dir=out,
        ca_cert=out / CA_CERT,
        tls_cert=out / TLS_CERT,
        tls_key=out / TLS_KEY,
        signing_cert=out / SIGNING_CERT,
        signing_key=out / SIGNING_KEY,
        hpke_key=out / HPKE_KEY,
        hpke_pub=out / HPKE_PUB,
    )


def _write_public(
    files: NodeFiles, *, ca: x509.Certificate, tls_cert: x509.Certificate,
    signing_cert: x509.Certificate, hpke_public: X25519PublicKey,
) -> None:
    files.tls_cert.write_bytes(tls_cert.public_bytes(serialization.Encoding.PEM))
    files.signing_cert.write_bytes(signing_cert.public_bytes(serialization.Encoding.PEM))
    files.hpke_pub.write_bytes(
        hpke_public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))


def tls_certificate(
    ca: CA, public_key: ec.EllipticCurvePublicKey, *, node_id: str, uri: str,
    dns_names: Sequence[str], validity: Validity,
) -> x509.Certificate:
    """The auth certificate: mTLS client and server, named by SPIFFE URI and DNS names."""
    return (
        _leaf_builder(node_id, ca.cert, public_key, validity.not_before, validity.not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(uri),
                    x509.DNSName(node_id),
                    *(x509.DNSName(name) for name in dns_names),
                ]
            ),
            critical=False,
        )
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )


def signing_certificate(
    ca: CA, public_key: Ed25519PublicKey, *, node_id: str, uri: str, validity: Validity
) -> x509.Certificate:
    """The signing certificate: binds the node's Ed25519 message key to its SPIFFE URI."""
    return (
        _leaf_builder(node_id, ca.cert, public_key, validity.not_before, validity.not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
        .add_extension(_key_usage(digital_signature=True, content_commitment=True), critical=True)
        .sign(ca.key, hashes.SHA256())
    )


# --- Loading and checking ---------------------------------------------------------------


def load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as e:
        raise PKIError(f"cannot load certificate {path}: {e}") from e


def fingerprint(cert: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's DER encoding."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def check_certificate(
    cert: x509.Certificate,
    *,
    ca: x509.Certificate,
    now: datetime,
    revoked_serials: Collection[str] = (),
    expect_node_id: str | None = None,
    trust_domain: str | None = None,
) -> NodeIdentity:
    """Return the node identity ``cert`` proves, or raise the PKIError saying why not.

    ``revoked_serials`` are hex certificate serials (as the directory lists them).
    The checks run in order: issued by ``ca``, valid at ``now``, not revoked, then named.
    """
    now = _aware(now)
    serial = _serial_hex(cert)
    _check_issued_by(cert, ca, serial)
    _check_valid_at(cert, now, serial)
    if cert.serial_number in _serial_numbers(revoked_serials):
        raise CertificateRevokedError(f"certificate serial {serial} is revoked")
    td, node_id = parse_spiffe_uri(_spiffe_uri_of(cert, serial))
    check_names(serial, trust_domain=td, node_id=node_id,
                expect_trust_domain=trust_domain, expect_node_id=expect_node_id)
    return NodeIdentity(
        node_id=node_id, trust_domain=td, serial_hex=serial, fingerprint_sha256=fingerprint(cert)
    )


def _check_issued_by(cert: x509.Certificate, ca: x509.Certificate, serial: str) -> None:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise CertificateSignatureError(
            f"certificate serial {serial} ({cert.subject.rfc4514_string()}) was not issued "
            f"by the exchange CA {ca.subject.rfc4514_string()}"
        ) from e


def _check_valid_at(cert: x509.Certificate, now: datetime, serial: str) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateNotYetValidError(
            f"certificate serial {serial} is not valid before "
            f"{cert.not_valid_before_utc.isoformat()} (now {now.isoformat()})"
        )
    if now > cert.not_valid_after_utc:
        raise CertificateExpiredError(
            f"certificate serial {serial} expired at {cert.not_valid_after_utc.isoformat()}"
        )


def _spiffe_uri_of(cert: x509.Certificate, serial: str) -> str:
    """The one URI subjectAltName a node certificate carries."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as e:
        raise CertificateIdentityError(
            f"certificate serial {serial} has no subjectAltName, so names no node"
        ) from e
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise CertificateIdentityError(
            f"certificate serial {serial} must carry exactly one SPIFFE URI SAN, has {uris!r}"
        )
    return uris[0]


def check_names(
    serial: str, *, trust_domain: str, node_id: str, expect_trust_domain: str | None,
    expect_node_id: str | None,
) -> None:
    """CertificateIdentityError if the certificate ``serial`` names another trust domain or
    node than expected (``None``: anything is expected)."""
    if expect_trust_domain is not None and trust_domain != expect_trust_domain:
        raise CertificateIdentityError(
            f"certificate serial {serial} is for trust domain {trust_domain!r}, "
            f"expected {expect_trust_domain!r}"
        )
    if expect_node_id is not None and node_id != expect_node_id:
        raise CertificateIdentityError(
            f"certificate serial {serial} names node {node_id!r}, expected {expect_node_id!r}"
        )


def signing_public_key_from_cert(cert: x509.Certificate) -> PublicKey:
    key = cert.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise PKIError(
            f"certificate serial {_serial_hex(cert)} holds a {type(key).__name__}, "
            "not an Ed25519 signing key"
        )
    return PublicKey.from_cryptography(key)


def load_node_credentials(
    dir: Path,
    *,
    ca: x509.Certificate,
    now: datetime,
    revoked_serials: Collection[str] = (),
) -> NodeCredentials:
    """Load and check a node directory written by :func:`issue_node`."""
    tls_cert = load_certificate(dir / TLS_CERT)
    signing_cert = load_certificate(dir / SIGNING_CERT)
    identity = check_certificate(tls_cert, ca=ca, now=now, revoked_serials=revoked_serials)
    signing_identity = check_certificate(
        signing_cert,
        ca=ca,
        now=now,
        revoked_serials=revoked_serials,
        expect_node_id=identity.node_id,
        trust_domain=identity.trust_domain,
    )
    tls_key_pem, _ = _load_ec_key_of(tls_cert, dir / TLS_KEY, dir / TLS_CERT)
    return NodeCredentials(
        node_id=identity.node_id,
        trust_domain=identity.trust_domain,
        tls_cert_pem=tls_cert.public_bytes(serialization.Encoding.PEM),
        tls_key_pem=tls_key_pem,
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        signer=_load_signer_of(signing_cert, dir / SIGNING_KEY, dir / SIGNING_CERT),
        signing_cert_pem=signing_cert.public_bytes(serialization.Encoding.PEM),
        hpke_private=_load_hpke_key(dir / HPKE_KEY),
        identity=identity,
        signing_identity=signing_identity,
    )


def _load_ec_key_of(
    cert: x509.Certificate, key_path: Path, cert_path: Path
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """The PEM and the ECDSA private key in ``key_path``, which must be ``cert``'s key."""
    pem = _read_private(key_path)
    key = _load_private_pem(key_path, pem)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or _spki(key.public_key()) != _spki(
        cert.public_key()
    ):
        raise PKIError(f"{key_path} is not the private key of {cert_path}")
    return pem, key


def _load_signer_of(cert: x509.Certificate, key_path: Path, cert_path: Path) -> Ed25519Signer:
    _read_private(key_path)  # permission check
    signer = Ed25519Signer.from_pem_file(key_path)
    if signer.public_key != signing_public_key_from_cert(cert):
        raise PKIError(f"{key_path} is not the private key of {cert_path}")
    return signer


def _load_hpke_key(path: Path) -> X25519PrivateKey:
    key = _load_private_pem(path, _read_private(path))
    if not isinstance(key, X25519PrivateKey):
        raise PKIError(f"{path} is not an X25519 private key")
    return key


# --- Helpers -----------------------------------------------------------------------------


def _load_ca(ca_dir: Path) -> CA:
    cert = load_certificate(ca_dir / CA_CERT)
    _, key = _load_ec_key_of(cert, ca_dir / CA_KEY, ca_dir / CA_CERT)
    td_path = ca_dir / TRUST_DOMAIN_FILE
    try:
        trust_domain = td_path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise PKIError(f"cannot read trust domain {td_path}: {e}") from e
    return CA(cert=cert, key=key, trust_domain=validate_trust_domain(trust_domain))


def _leaf_builder(
    node_id: str,
    ca_cert: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey | Ed25519PublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )


def _key_usage(
    *, digital_signature: bool = False, content_commitment: bool = False,
    key_cert_sign: bool = False, crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def _serial_numbers(serials: Collection[str]) -> set[int]:
    numbers = set()
    for s in serials:
        try:
            numbers.add(int(s, 16))
        except ValueError as e:
            raise PKIError(f"revoked serial {s!r} is not a hex number") from e
    return numbers


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise PKIError(f"time {moment.isoformat()} has no timezone; pass an aware datetime")
    return moment


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_pem(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _read_private(path: Path) -> bytes:
    """Read a private key file, refusing one that group or others may access."""
    try:
        problem = files.private_mode_problem(path, path.stat().st_mode)
        if problem is not None:
            raise PKIError(problem)
        return path.read_bytes()
    except OSError as e:
        raise PKIError(f"cannot read private key {path}: {e}") from e


def _load_private_pem(path: Path, pem: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise PKIError(f"cannot load private key {path}: {e}") from e


def _make_private_dir(path: Path) -> None:
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        path.chmod(0o700)
