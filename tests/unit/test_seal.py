"""Tests for exchange.seal: HPKE sealing to one node, bound to a context."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.errors import SealError
from exchange.seal import SUITE_NAME, Sealed, hpke_key_id, open_sealed, seal

RECIPIENT = "police.fj"
CONTEXT = b"message-id 0193f0c2"
PLAINTEXT = b"subscriber record for a black card"

POLICE_KEY = X25519PrivateKey.generate()
THIRD_KEY = X25519PrivateKey.generate()


def raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def sealed_for_police(plaintext: bytes = PLAINTEXT, context: bytes = CONTEXT) -> Sealed:
    return seal(
        plaintext,
        recipient=RECIPIENT,
        recipient_public_key=raw_public(POLICE_KEY),
        context=context,
    )


def test_round_trip() -> None:
    sealed = sealed_for_police()

    assert sealed.suite == SUITE_NAME
    assert sealed.recipient == RECIPIENT
    assert sealed.recipient_key_id == hpke_key_id(raw_public(POLICE_KEY))
    assert PLAINTEXT not in sealed.ciphertext
    # 32-byte encapsulated key + plaintext + 16-byte GCM tag
    assert len(sealed.ciphertext) == 32 + len(PLAINTEXT) + 16
    opened = open_sealed(sealed, recipient=RECIPIENT, private_key=POLICE_KEY, context=CONTEXT)
    assert opened == PLAINTEXT


def test_each_seal_is_fresh() -> None:
    assert sealed_for_police().ciphertext != sealed_for_police().ciphertext


def test_hpke_key_id_is_hex_sha256() -> None:
    raw = raw_public(POLICE_KEY)
    assert hpke_key_id(raw) == hashlib.sha256(raw).hexdigest()


def _flip_last_byte(s: Sealed) -> Sealed:
    return dataclasses.replace(s, ciphertext=s.ciphertext[:-1] + bytes([s.ciphertext[-1] ^ 1]))


def _flip_encapsulated_key(s: Sealed) -> Sealed:
    return dataclasses.replace(s, ciphertext=bytes([s.ciphertext[0] ^ 1]) + s.ciphertext[1:])


def _truncate(s: Sealed) -> Sealed:
    return dataclasses.replace(s, ciphertext=s.ciphertext[:20])


def _claim_third_key(s: Sealed) -> Sealed:
    return dataclasses.replace(s, recipient_key_id=hpke_key_id(raw_public(THIRD_KEY)))


def _renamed_suite(s: Sealed) -> Sealed:
    return dataclasses.replace(s, suite="DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/ChaCha20Poly1305")


def _readdressed(s: Sealed) -> Sealed:
    return dataclasses.replace(s, recipient="bureau.fj")


CANNOT_OPEN = r"cannot be opened with this node's key \(tampered, or sealed to another key"

# (case, change to the sealed payload, opener's arguments, expected message)
OPEN_FAILURES: list[tuple[str, Any, dict[str, Any], str]] = [
    ("tampered ciphertext", _flip_last_byte, {}, CANNOT_OPEN),
    ("tampered encapsulated key", _flip_encapsulated_key, {}, CANNOT_OPEN),
    ("truncated", _truncate, {}, CANNOT_OPEN),
    ("other context", None, {"context": b"message-id 0193f0c3"}, CANNOT_OPEN),
    ("empty context", None, {"context": b""}, CANNOT_OPEN),
    (
        "third key",
        None,
        {"private_key": THIRD_KEY},
        r"sealed to HPKE key [0-9a-f]{16}, but this node's key is [0-9a-f]{16}",
    ),
    (
        "third key, key id forged to match",
        _claim_third_key,
        {"private_key": THIRD_KEY},
        CANNOT_OPEN,
    ),
    (
        "wrong recipient",
        None,
        {"recipient": "bureau.fj"},
        r"payload is sealed to 'police\.fj', not to this node 'bureau\.fj'",
    ),
    (
        "readdressed to the opener",
        _readdressed,
        {"recipient": "bureau.fj"},
        r"payload sealed to 'bureau\.fj' cannot be opened with this node's key",
    ),
    ("unknown suite", _renamed_suite, {}, r"unknown HPKE suite 'DHKEM\(X25519,HKDF-SHA256\)/.*"),
]


@pytest.mark.parametrize(
    ("case", "change", "opener", "message"), OPEN_FAILURES, ids=[c[0] for c in OPEN_FAILURES]
)
def test_open_refuses(case: str, change: Any, opener: dict[str, Any], message: str) -> None:
    sealed = sealed_for_police()
    if change is not None:
        sealed = change(sealed)
    kwargs: dict[str, Any] = {
        "recipient": RECIPIENT,
        "private_key": POLICE_KEY,
        "context": CONTEXT,
        **opener,
    }
    with pytest.raises(SealError, match=message):
        open_sealed(sealed, **kwargs)


@pytest.mark.parametrize(
    ("recipient", "public_key", "message"),
    [
        (
            "police.fj",
            b"\x01" * 31,
            r"HPKE public key for 'police\.fj' must be 32 raw bytes, got 31",
        ),
        ("", raw_public(POLICE_KEY), r"invalid recipient ''"),
        ("police.fj\x00x", raw_public(POLICE_KEY), r"invalid recipient"),
    ],
)
def test_seal_refuses(recipient: str, public_key: bytes, message: str) -> None:
    with pytest.raises(SealError, match=message):
        seal(b"x", recipient=recipient, recipient_public_key=public_key, context=CONTEXT)


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=4096), context=st.binary(max_size=64))
def test_round_trip_any_plaintext(plaintext: bytes, context: bytes) -> None:
    sealed = sealed_for_police(plaintext, context)
    assert open_sealed(sealed, recipient=RECIPIENT, private_key=POLICE_KEY, context=context) == (
        plaintext
    )
