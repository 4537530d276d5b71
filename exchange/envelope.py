"""DSSE v1 envelopes (https://github.com/secure-systems-lab/dsse/blob/master/protocol.md).

The signature covers PAE(payload_type, payload). A received envelope is parsed
once; the payload bytes it carries are what is verified, stored and decoded,
never a re-serialization.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from exchange.errors import (
    BadSignatureError,
    MalformedEnvelopeError,
    OversizeMessageError,
)
from exchange.keys import PublicKey, Signer
from exchange.wire.bcx.v1 import envelope_pb2

PAYLOAD_TYPE_MESSAGE = "application/vnd.bcx.message+protobuf"
PAYLOAD_TYPE_DIRECTORY = "application/vnd.bcx.directory+protobuf"
PAYLOAD_TYPES = frozenset({PAYLOAD_TYPE_MESSAGE, PAYLOAD_TYPE_DIRECTORY})

DEFAULT_MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
MAX_SIGNATURES = 4
ED25519_SIGNATURE_BYTES = 64


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def payload_digest(payload: bytes) -> bytes:
    """A message's digest: SHA-256 of its DSSE payload (docs/formats.md#message-digests)."""
    return hashlib.sha256(payload).digest()


@dataclass(frozen=True, slots=True)
class EnvelopeSignature:
    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed DSSE envelope together with the exact bytes it was parsed from."""

    payload: bytes
    payload_type: str
    signatures: tuple[EnvelopeSignature, ...]
    raw: bytes

    @property
    def digest(self) -> bytes:
        return payload_digest(self.payload)

    def verify(self, key: PublicKey) -> bytes:
        """Return the payload if a signature by ``key`` verifies over it; raise otherwise."""
        return verify(self, key)

    def to_json(self) -> dict[str, Any]:
        """DSSE's JSON form, as in-toto and sigstore write it."""
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> Envelope:
        """Parse DSSE's JSON form; raise MalformedEnvelopeError naming what is wrong."""
        try:
            payload = base64.b64decode(data["payload"], validate=True)
            payload_type = data["payloadType"]
            sigs = tuple(
                EnvelopeSignature(keyid=s["keyid"], sig=base64.b64decode(s["sig"], validate=True))
                for s in data["signatures"]
            )
        except (KeyError, TypeError, binascii.Error) as e:
            raise MalformedEnvelopeError(f"DSSE JSON envelope is malformed: {e!r}") from e
        if not isinstance(payload_type, str):
            raise MalformedEnvelopeError("DSSE JSON envelope: payloadType must be a string")
        return cls(payload, payload_type, sigs, encode(payload, payload_type, sigs))


def encode(payload: bytes, payload_type: str, signatures: tuple[EnvelopeSignature, ...]) -> bytes:
    pb = envelope_pb2.Envelope(payload=payload, payload_type=payload_type)
    for s in signatures:
        pb.signatures.add(sig=s.sig, keyid=s.keyid)
    return pb.SerializeToString(deterministic=True)


def sign(payload: bytes, payload_type: str, signer: Signer) -> Envelope:
    """Sign ``payload`` and return the envelope with its serialized bytes."""
    sig = EnvelopeSignature(signer.public_key.keyid, signer.sign(pae(payload_type, payload)))
    return Envelope(payload, payload_type, (sig,), encode(payload, payload_type, (sig,)))


def parse(raw: bytes, *, max_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES) -> Envelope:
    """Parse envelope bytes as received, checking size and shape (not signatures)."""
    if len(raw) > max_bytes:
        raise OversizeMessageError(f"envelope is {len(raw)} bytes, over the limit of {max_bytes}")
    if not raw:
        raise MalformedEnvelopeError("envelope is empty")
    pb = envelope_pb2.Envelope()
    try:
        pb.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise MalformedEnvelopeError(f"envelope does not decode: {e}") from e
    if pb.payload_type not in PAYLOAD_TYPES:
        raise MalformedEnvelopeError(f"unknown payload type {pb.payload_type[:80]!r}")
    if not pb.payload:
        raise MalformedEnvelopeError("envelope has an empty payload")
    if not pb.signatures:
        raise BadSignatureError("envelope carries no signature")
    if len(pb.signatures) > MAX_SIGNATURES:
        raise MalformedEnvelopeError(
            f"envelope carries {len(pb.signatures)} signatures, at most {MAX_SIGNATURES} allowed"
        )
    sigs = tuple(EnvelopeSignature(s.keyid, s.sig) for s in pb.signatures)
    return Envelope(pb.payload, pb.payload_type, sigs, raw)


def verify(envelope: Envelope, key: PublicKey) -> bytes:
    """Return the payload if the signature whose keyid is ``key``'s verifies; raise otherwise.

    Signatures under other key ids are ignored: the caller decides whose key counts.
    """
    keyid = key.keyid
    candidates = [s for s in envelope.signatures if s.keyid == keyid]
    if not candidates:
        raise BadSignatureError(f"envelope has no signature by key {keyid[:16]}")
    message = pae(envelope.payload_type, envelope.payload)
    for candidate in candidates:
        if len(candidate.sig) != ED25519_SIGNATURE_BYTES:
            continue
        try:
            key.verify(candidate.sig, message)
        except BadSignatureError:
            continue
        return envelope.payload
    raise BadSignatureError(
        f"signature by key {keyid[:16]} does not verify over the payload (altered or forged)"
    )
