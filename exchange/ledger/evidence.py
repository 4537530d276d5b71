"""Evidence bundles: everything needed to prove, offline and with nothing but the exchange
CA, that a node logged a message signed by its sender (docs/formats.md#evidence-files,
``bcx evidence``).

A bundle is a JSON object (format ``bcx-evidence/v1``)::

    format              "bcx-evidence/v1"
    message_id          the message id, 32 hex digits
    envelope            the DSSE envelope in its JSON form (payloadType, payload, signatures)
    signer_public_key   PEM of the sender's Ed25519 signing key
    signer_certificate  PEM of the sender's signing certificate: binds that key to the
                        sender's node id under the CA
    leaf                base64 of the exact ledger leaf bytes (a SENT or RECEIVED entry)
    tlog_proof          c2sp.org/tlog-proof@v1 text: leaf index, inclusion path and the
                        log's checkpoint with the cosignatures it collected
    log_certificate     PEM of the logging node's signing certificate: its key signs the
                        checkpoints, its SAN names the log's origin <trust-domain>/<node-id>
    checkpoint_keys     note verifier keys of the log (vkey strings)
    witness_keys        cosignature/v1 verifier keys of the witnesses that cosigned

``verify_evidence`` trusts nothing in the bundle but what the CA certifies: the sender's
key and the log's key are each taken from a certificate that must chain to the CA. The
witness keys are not certified by the bundle: the report names the witnesses whose
cosignatures verify under the keys the bundle lists, for the reader to compare with the
witness keys they trust.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from cryptography import x509

from exchange import envelope as dsse
from exchange import messages, pki
from exchange.errors import (
    LedgerError,
    MalformedEnvelopeError,
    PKIError,
    UnknownSignerError,
    VerificationError,
)
from exchange.keys import PublicKey
from exchange.ledger import merkle, note
from exchange.ledger.entries import Entry, EntryKind
from exchange.ledger.receipts import log_origin
from exchange.ledger.store import LedgerStore

__all__ = [
    "FORMAT",
    "EvidenceError",
    "EvidenceReport",
    "dumps",
    "export_evidence",
    "verify_evidence",
]

log = logging.getLogger(__name__)

FORMAT = "bcx-evidence/v1"

_T = TypeVar("_T")


class EvidenceError(VerificationError):
    """An evidence bundle is malformed, or its parts do not prove what it claims."""


@dataclass(frozen=True, slots=True)
class EvidenceReport:
    """What a verified bundle proves: ``log_origin`` logged this message as ``kind``."""

    message_id: bytes
    sender: str
    recipient: str
    digest: bytes
    """SHA-256 of the DSSE payload: the message's digest (docs/formats.md#message-digests)."""
    kind: EntryKind
    """SENT (the sender logged it) or RECEIVED (the recipient logged it)."""
    log_origin: str
    leaf_index: int
    checkpoint_size: int
    witnesses: tuple[str, ...]
    """Names of the witnesses whose cosignatures verified, under the bundle's keys."""


# --- export ------------------------------------------------------------------------


def export_evidence(
    store: LedgerStore,
    *,
    message_id: bytes,
    signer_certificate_pem: bytes,
    log_certificate_pem: bytes,
    log_public_key: PublicKey,
    witnesses: Mapping[str, PublicKey],
    ca_pem: bytes,
    envelope: bytes | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The evidence bundle for ``message_id`` from this node's ledger, at its latest checkpoint.

    Uses the message's RECEIVED entry if the ledger holds one, else its SENT entry. The
    envelope comes from that leaf; ``envelope`` supplies the bytes when the leaf holds only
    their digest. ``witnesses`` maps cosigner names to keys: those whose cosignature the
    checkpoint carries are listed in the bundle. The bundle is verified against ``ca_pem``
    (at ``now``) before it is returned, so a bundle that would not verify is never written.

    Raises LedgerError if the ledger holds no such message or no checkpoint covering it,
    and the VerificationError saying why if the bundle would not verify.
    """
    index = _entry_index(store, message_id)
    leaf = store.leaf(index)
    env = dsse.parse(_envelope_bytes(Entry.decode(leaf), envelope, index, message_id))
    latest = store.latest
    if latest is None or latest.size <= index:
        raise LedgerError(f"no checkpoint covers ledger entry {index} yet")
    checkpoint = store.cosigned(latest)
    log_verifier = note.Verifier.for_key(store.origin, log_public_key)
    cosigners = [
        note.Verifier.for_key(name, key, note.KIND_COSIGNATURE_V1)
        for name, key in witnesses.items()
    ]
    _, _, cosigned = note.open_checkpoint(checkpoint, log_verifier, cosigners,
                                          origin=store.origin)
    proof = note.TlogProof(index, tuple(store.inclusion_proof(index, latest.size)), checkpoint)
    bundle = evidence_bundle(
        message_id=message_id, envelope=env, signer_certificate_pem=signer_certificate_pem,
        leaf=leaf, proof=proof, log_certificate_pem=log_certificate_pem,
        checkpoint_keys=[log_verifier], witness_keys=cosigned,
    )
    ca = _load_certificate(ca_pem, "CA certificate")
    verify_evidence(bundle, ca=ca, now=now)
    log.info("exported evidence for message %s: leaf %d, checkpoint size %d",
             message_id.hex(), index, latest.size)
    return bundle


def _envelope_bytes(entry: Entry, envelope: bytes | None, index: int,
                    message_id: bytes) -> bytes:
    """The envelope the leaf holds, else the one the caller passed for a digest-only leaf."""
    raw = entry.envelope or envelope
    if not raw:
        raise LedgerError(
            f"ledger entry {index} for message {message_id.hex()} holds only the message's "
            "digest; pass the envelope bytes"
        )
    return raw


def evidence_bundle(
    *,
    message_id: bytes,
    envelope: dsse.Envelope,
    signer_certificate_pem: bytes,
    leaf: bytes,
    proof: note.TlogProof,
    log_certificate_pem: bytes,
    checkpoint_keys: Sequence[note.Verifier],
    witness_keys: Sequence[note.Verifier],
) -> dict[str, Any]:
    """The bundle's JSON object from its parts (the format in this module's docstring)."""
    signer_cert = _load_certificate(signer_certificate_pem, "signer_certificate")
    return {
        "format": FORMAT,
        "message_id": message_id.hex(),
        "envelope": envelope.to_json(),
        "signer_public_key": pki.signing_public_key_from_cert(signer_cert).to_pem().decode(),
        "signer_certificate": signer_certificate_pem.decode("ascii"),
        "leaf": base64.b64encode(leaf).decode("ascii"),
        "tlog_proof": note.format_tlog_proof(proof),
        "log_certificate": log_certificate_pem.decode("ascii"),
        "checkpoint_keys": [v.vkey for v in checkpoint_keys],
        "witness_keys": [v.vkey for v in witness_keys],
    }


def dumps(bundle: Mapping[str, Any]) -> str:
    """The bundle as the JSON text ``bcx evidence export`` writes."""
    return json.dumps(bundle, indent=2, sort_keys=True) + "\n"


def _entry_index(store: LedgerStore, message_id: bytes) -> int:
    for kind in (EntryKind.RECEIVED, EntryKind.SENT):
        found = store.find(message_id=message_id, kind=kind)
        if found:
            return found[0]
    raise LedgerError(f"the ledger holds no SENT or RECEIVED entry for message {message_id.hex()}")


# --- verification -------------------------------------------------------------------


def verify_evidence(
    bundle: Mapping[str, Any],
    *,
    ca: x509.Certificate,
    now: datetime | None = None,
) -> EvidenceReport:
    """Check an evidence bundle offline against the exchange CA; return what it proves.

    Certificates must be valid at ``now`` (default: the current time). Raises a
    VerificationError subclass naming the first thing that does not hold:
    :class:`UnknownSignerError` for a certificate the CA did not issue (or not valid now),
    :class:`~exchange.errors.BadSignatureError` for an envelope signature,
    :class:`~exchange.errors.NoteError` for a checkpoint,
    :class:`~exchange.errors.ProofError` for the inclusion proof,
    :class:`EvidenceError` for a malformed bundle or parts that do not belong together.
    """
    if now is None:
        now = datetime.now(UTC)
    _check_format(bundle)
    message_id = _hex(_field(bundle, "message_id", str), "message_id")
    message = _signed_message(bundle, message_id, ca=ca, now=now)
    tlog = _certified_log(bundle, ca=ca, now=now)
    leaf = _base64(_field(bundle, "leaf", str), "leaf")
    entry = _leaf_entry(leaf)
    _check_entry(entry, message.envelope, message.digest, message_id)
    _check_roles(entry, message.header, tlog.node_id)

    proof = note.parse_tlog_proof(_field(bundle, "tlog_proof", str))
    cp, _, cosigned = note.open_checkpoint(proof.checkpoint, tlog.verifier, tlog.cosigners,
                                           origin=tlog.origin)
    merkle.verify_inclusion(merkle.leaf_hash(leaf), proof.index, cp.size, proof.hashes, cp.root)
    return EvidenceReport(
        message_id=message_id,
        sender=message.header.sender,
        recipient=message.header.recipient,
        digest=message.digest,
        kind=entry.kind,
        log_origin=tlog.origin,
        leaf_index=proof.index,
        checkpoint_size=cp.size,
        witnesses=tuple(v.name for v in cosigned),
    )


@dataclass(frozen=True, slots=True)
class _SignedMessage:
    """The bundle's envelope, its signature checked under the sender's certified key."""

    envelope: dsse.Envelope
    header: messages.Header
    digest: bytes


@dataclass(frozen=True, slots=True)
class _CertifiedLog:
    """The logging node as its CA-certified certificate names it, with the keys to check
    its checkpoint and the witnesses' cosignatures."""

    node_id: str
    origin: str
    verifier: note.Verifier
    cosigners: tuple[note.Verifier, ...]


def _check_format(bundle: Mapping[str, Any]) -> None:
    if not isinstance(bundle, Mapping):
        raise EvidenceError(f"evidence bundle is a {type(bundle).__name__}, not a JSON object")
    if bundle.get("format") != FORMAT:
        raise EvidenceError(
            f"evidence bundle format is {bundle.get('format')!r}, expected {FORMAT!r}"
        )


def _signed_message(bundle: Mapping[str, Any], message_id: bytes, *, ca: x509.Certificate,
                    now: datetime) -> _SignedMessage:
    """The sender: its key, certified by the CA, signed the envelope of ``message_id``."""
    signer, signer_key = _certified_signer(bundle, ca=ca, now=now)
    env = dsse.Envelope.from_json(_field(bundle, "envelope", dict))
    payload = dsse.verify(env, signer_key)
    if env.payload_type != dsse.PAYLOAD_TYPE_MESSAGE:
        raise MalformedEnvelopeError(
            f"envelope payload type is {env.payload_type[:80]!r}, not a message "
            f"({dsse.PAYLOAD_TYPE_MESSAGE})"
        )
    header = messages.decode_message(payload).header
    digest = dsse.payload_digest(payload)
    check_header(header, message_id=message_id, signer=signer.node_id)
    return _SignedMessage(envelope=env, header=header, digest=digest)


def _certified_signer(bundle: Mapping[str, Any], *, ca: x509.Certificate,
                      now: datetime) -> tuple[pki.NodeIdentity, PublicKey]:
    """Who signer_certificate names and the key it certifies, which signer_public_key
    must repeat."""
    signer_cert = _load_certificate(
        _field(bundle, "signer_certificate", str).encode(), "signer_certificate"
    )
    signer = _check_certificate(signer_cert, "signer_certificate", ca=ca, now=now)
    signer_key = _certified_key(signer_cert, "signer_certificate")
    try:
        claimed_key = PublicKey.from_pem(_field(bundle, "signer_public_key", str).encode())
    except PKIError as e:
        raise EvidenceError(f"signer_public_key: {e}") from e
    if claimed_key != signer_key:
        raise EvidenceError(
            f"signer_public_key (key id {claimed_key.keyid[:16]}) is not the key of "
            f"signer_certificate (key id {signer_key.keyid[:16]}, node {signer.node_id})"
        )
    return signer, signer_key


def check_header(header: messages.Header, *, message_id: bytes, signer: str) -> None:
    """EvidenceError unless the signed message is ``message_id`` and names its ``signer``
    as the sender."""
    if header.message_id != message_id:
        raise EvidenceError(
            f"bundle is for message {message_id.hex()} but its envelope holds message "
            f"{header.message_id.hex()}"
        )
    if header.sender != signer:
        raise EvidenceError(
            f"message {message_id.hex()} names sender {header.sender!r} but was signed "
            f"by node {signer!r}"
        )


def _certified_log(bundle: Mapping[str, Any], *, ca: x509.Certificate,
                   now: datetime) -> _CertifiedLog:
    """The log: its key, certified by the CA, signs the checkpoints."""
    log_cert = _load_certificate(_field(bundle, "log_certificate", str).encode(),
                                 "log_certificate")
    logger_id = _check_certificate(log_cert, "log_certificate", ca=ca, now=now)
    origin = log_origin(logger_id.trust_domain, logger_id.node_id)
    log_verifier = note.Verifier.for_key(origin, _certified_key(log_cert, "log_certificate"))
    _check_checkpoint_keys(_field(bundle, "checkpoint_keys", list), log_verifier)
    cosigners = _witness_verifiers(_field(bundle, "witness_keys", list))
    return _CertifiedLog(node_id=logger_id.node_id, origin=origin, verifier=log_verifier,
                         cosigners=tuple(cosigners))


def _field(bundle: Mapping[str, Any], name: str, kind: type[_T]) -> _T:
    if name not in bundle:
        raise EvidenceError(f"evidence bundle has no {name!r}")
    value = bundle[name]
    if not isinstance(value, kind):
        raise EvidenceError(
            f"evidence bundle {name!r} is a {type(value).__name__}, expected {kind.__name__}"
        )
    return value


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError as e:
        raise EvidenceError(f"{what} {text[:40]!r} is not hex") from e


def _base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise EvidenceError(f"{what} is not valid base64") from e


def _load_certificate(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise EvidenceError(f"{what} is not a PEM certificate: {e}") from e


def _check_certificate(
    cert: x509.Certificate, what: str, *, ca: x509.Certificate, now: datetime
) -> pki.NodeIdentity:
    try:
        return pki.check_certificate(cert, ca=ca, now=now)
    except PKIError as e:
        raise UnknownSignerError(f"{what} is not trusted: {e}") from e


def _certified_key(cert: x509.Certificate, what: str) -> PublicKey:
    try:
        return pki.signing_public_key_from_cert(cert)
    except PKIError as e:
        raise UnknownSignerError(f"{what} certifies no signing key: {e}") from e


def _check_checkpoint_keys(vkeys: list[Any], log_verifier: note.Verifier) -> None:
    """The bundle's log key must be the one the log certificate certifies."""
    listed = [note.Verifier.from_vkey(_as_str(v, "checkpoint_keys")) for v in vkeys]
    named = [v for v in listed if v.name == log_verifier.name]
    if not named:
        raise EvidenceError(
            f"checkpoint_keys hold no key for log {log_verifier.name!r} (the origin "
            "log_certificate names)"
        )
    for v in named:
        if v != log_verifier:
            raise EvidenceError(
                f"checkpoint key {v.label} is not the key log_certificate certifies for "
                f"{log_verifier.name!r} ({log_verifier.label})"
            )


def _witness_verifiers(vkeys: list[Any]) -> list[note.Verifier]:
    verifiers = [note.Verifier.from_vkey(_as_str(v, "witness_keys")) for v in vkeys]
    for v in verifiers:
        if v.kind != note.KIND_COSIGNATURE_V1:
            raise EvidenceError(f"witness key {v.label} is not a cosignature/v1 key")
    return verifiers


def _as_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise EvidenceError(f"{what} holds a {type(value).__name__}, expected key strings")
    return value


def _leaf_entry(leaf: bytes) -> Entry:
    try:
        return Entry.decode(leaf)
    except LedgerError as e:
        raise EvidenceError(f"leaf is not a ledger entry: {e}") from e


def _check_entry(entry: Entry, env: dsse.Envelope, digest: bytes, message_id: bytes) -> None:
    """The leaf must record this very message: its envelope, or at least its digest."""
    if entry.kind not in (EntryKind.SENT, EntryKind.RECEIVED):
        raise EvidenceError(f"leaf is an entry of kind {entry.kind.name}, not SENT or RECEIVED")
    if entry.message_id != message_id:
        raise EvidenceError(
            f"leaf records message {entry.message_id.hex()}, not {message_id.hex()}"
        )
    if entry.message_digest and entry.message_digest != digest:
        raise EvidenceError(
            f"leaf records message digest {entry.message_digest.hex()}, but the envelope's "
            f"payload has digest {digest.hex()}"
        )
    if entry.envelope:
        # Compare what was signed, not bytes: the envelope in the leaf is stored as
        # received, and protobuf encoding is not canonical.
        try:
            logged = dsse.parse(entry.envelope)
        except VerificationError as e:
            raise EvidenceError(f"leaf holds an envelope that does not parse: {e}") from e
        if (logged.payload_type, logged.payload, logged.signatures) != (
            env.payload_type, env.payload, env.signatures
        ):
            raise EvidenceError("leaf holds a different envelope than the bundle's")
    elif not entry.message_digest:
        raise EvidenceError("leaf holds neither the envelope nor the message digest")


def _check_roles(entry: Entry, header: messages.Header, logger: str) -> None:
    """A RECEIVED leaf is the recipient's record of the sender; SENT, the reverse."""
    if entry.kind is EntryKind.RECEIVED:
        expect_logger, expect_peer = header.recipient, header.sender
    else:
        expect_logger, expect_peer = header.sender, header.recipient
    if logger != expect_logger:
        raise EvidenceError(
            f"a {entry.kind.name} entry for this message belongs in the ledger of "
            f"{expect_logger!r}, but the log is {logger!r}"
        )
    if entry.peer != expect_peer:
        raise EvidenceError(
            f"{entry.kind.name} leaf names peer {entry.peer!r}, expected {expect_peer!r}"
        )
