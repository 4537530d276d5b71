"""Signing keys: a small Signer interface (an HSM signer can replace the file signer) and
Ed25519 public keys with the key ids bcx derives from them."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from exchange.errors import BadSignatureError, PKIError


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A raw 32-byte Ed25519 public key."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise PKIError(f"Ed25519 public key must be 32 bytes, got {len(self.raw)}")

    @property
    def keyid(self) -> str:
        """DSSE key id: lowercase hex SHA-256 of the raw public key."""
        return hashlib.sha256(self.raw).hexdigest()

    def verify(self, signature: bytes, data: bytes) -> None:
        """Return None if ``signature`` is valid over ``data``, else raise BadSignatureError."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except InvalidSignature as e:
            raise BadSignatureError(f"signature by key {self.keyid[:16]} does not verify") from e

    def to_pem(self) -> bytes:
        return Ed25519PublicKey.from_public_bytes(self.raw).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_pem(cls, pem: bytes) -> PublicKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as e:
            raise PKIError(f"not a PEM public key: {e}") from e
        if not isinstance(key, Ed25519PublicKey):
            raise PKIError(f"expected an Ed25519 public key, got {type(key).__name__}")
        return cls(key.public_bytes_raw())

    @classmethod
    def from_cryptography(cls, key: Ed25519PublicKey) -> PublicKey:
        return cls(key.public_bytes_raw())


class Signer(Protocol):
    """Signs bytes with a private key it may never reveal (a file, an HSM)."""

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


class Ed25519Signer:
    """A Signer holding an Ed25519 private key in memory."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public = PublicKey(key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem_file(cls, path: Path) -> Ed25519Signer:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as e:
            raise PKIError(f"cannot load signing key {path}: {e}") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise PKIError(f"{path} is not an Ed25519 private key")
        return cls(key)

    def write_pem(self, path: Path) -> None:
        """Write the private key as PKCS#8 PEM, readable by the owner only (0600)."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start, so the secret is never world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
