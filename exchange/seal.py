"""HPKE sealing (RFC 9180, base mode) of payloads for one recipient node.

A sealed payload names its suite, its recipient node and the recipient's HPKE key id, so
a node can say *why* it cannot open something before trying. The HPKE ``info`` binds the
ciphertext to the recipient's node id and to a caller-chosen context (e.g. the message
id), so a payload cut out of one message and pasted into another does not open.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from exchange.errors import SealError

SUITE_NAME = "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-128-GCM"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
_INFO_PREFIX = b"bcx seal v1\x00"


@dataclass(frozen=True, slots=True)
class Sealed:
    suite: str
    recipient: str
    recipient_key_id: str
    ciphertext: bytes  # HPKE encapsulated key (32 bytes) followed by the AEAD ciphertext


def hpke_key_id(raw_public: bytes) -> str:
    """Lowercase hex SHA-256 of a raw 32-byte X25519 public key."""
    return hashlib.sha256(raw_public).hexdigest()


def seal(
    plaintext: bytes, *, recipient: str, recipient_public_key: bytes, context: bytes
) -> Sealed:
    """Encrypt ``plaintext`` so only ``recipient``'s HPKE key can open it, bound to ``context``."""
    if len(recipient_public_key) != 32:
        raise SealError(
            f"HPKE public key for {recipient!r} must be 32 raw bytes, "
            f"got {len(recipient_public_key)}"
        )
    public_key = X25519PublicKey.from_public_bytes(recipient_public_key)
    ciphertext = _SUITE.encrypt(plaintext, public_key, info=_info(recipient, context))
    return Sealed(
        suite=SUITE_NAME,
        recipient=recipient,
        recipient_key_id=hpke_key_id(recipient_public_key),
        ciphertext=ciphertext,
    )


def open_sealed(
    sealed: Sealed, *, recipient: str, private_key: X25519PrivateKey, context: bytes
) -> bytes:
    """Return the plaintext of ``sealed`` for this node ``recipient``, or raise SealError."""
    if sealed.suite != SUITE_NAME:
        raise SealError(f"unknown HPKE suite {sealed.suite!r}; this node opens only {SUITE_NAME}")
    if sealed.recipient != recipient:
        raise SealError(
            f"payload is sealed to {sealed.recipient!r}, not to this node {recipient!r}"
        )
    own_key_id = hpke_key_id(private_key.public_key().public_bytes_raw())
    if sealed.recipient_key_id != own_key_id:
        raise SealError(
            f"payload for {recipient!r} is sealed to HPKE key {sealed.recipient_key_id[:16]}, "
            f"but this node's key is {own_key_id[:16]}"
        )
    try:
        return _SUITE.decrypt(sealed.ciphertext, private_key, info=_info(recipient, context))
    except (InvalidTag, ValueError) as e:
        raise SealError(
            f"payload sealed to {recipient!r} cannot be opened with this node's key "
            "(tampered, or sealed to another key or context)"
        ) from e


def _info(recipient: str, context: bytes) -> bytes:
    # The node id cannot contain NUL, so recipient and context cannot be confused.
    if not recipient or "\x00" in recipient:
        raise SealError(f"invalid recipient {recipient!r} for sealing")
    return _INFO_PREFIX + recipient.encode() + b"\x00" + context
