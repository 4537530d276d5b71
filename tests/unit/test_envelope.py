"""Tests for exchange.envelope: DSSE v1 pre-authentication encoding, signing and parsing."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange import envelope
from exchange.envelope import Envelope, EnvelopeSignature
from exchange.errors import (
    BadSignatureError,
    ExchangeError,
    MalformedEnvelopeError,
    OversizeMessageError,
)
from exchange.keys import Ed25519Signer, PublicKey
from exchange.wire.bcx.v1 import envelope_pb2

MESSAGE = envelope.PAYLOAD_TYPE_MESSAGE
DIRECTORY = envelope.PAYLOAD_TYPE_DIRECTORY
SIGNER = Ed25519Signer.from_seed(bytes(range(32)))
OTHER = Ed25519Signer.from_seed(bytes(range(1, 33)))
PAYLOAD = b"\x0a\x10" + bytes(16) + b"\x12\x09police.fj"


def signed(payload: bytes = PAYLOAD, payload_type: str = MESSAGE) -> Envelope:
    return envelope.sign(payload, payload_type, SIGNER)


def wire(payload: bytes = PAYLOAD, payload_type: str = MESSAGE,
         sigs: tuple[tuple[bytes, str], ...] | None = None) -> bytes:
    pb = envelope_pb2.Envelope(payload=payload, payload_type=payload_type)
    for sig, keyid in sigs if sigs is not None else ((b"s" * 64, "k"),):
        pb.signatures.add(sig=sig, keyid=keyid)
    return pb.SerializeToString()


# --- PAE ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("payload_type", "payload", "expected"), [
    # The example of the DSSE protocol specification.
    ("http://example.com/HelloWorld", b"hello world",
     b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"),
    ("", b"", b"DSSEv1 0  0 "),
    # Lengths count bytes, not characters.
    ("\u00fc", b"\x00\xff", b"DSSEv1 2 \xc3\xbc 2 \x00\xff"),
    (MESSAGE, b"x" * 1000,
     b"DSSEv1 36 application/vnd.bcx.message+protobuf 1000 " + b"x" * 1000),
])
def test_pae(payload_type: str, payload: bytes, expected: bytes) -> None:
    assert envelope.pae(payload_type, payload) == expected


def test_signature_is_over_pae_not_payload() -> None:
    env = signed()
    SIGNER.public_key.verify(env.signatures[0].sig, envelope.pae(MESSAGE, PAYLOAD))
    with pytest.raises(BadSignatureError, match="does not verify"):
        SIGNER.public_key.verify(env.signatures[0].sig, PAYLOAD)


# --- sign and verify ---------------------------------------------------------------------------


def test_sign_verify_round_trip() -> None:
    env = signed()
    assert env.verify(SIGNER.public_key) == PAYLOAD
    parsed = envelope.parse(env.raw)
    assert parsed == env
    assert parsed.verify(SIGNER.public_key) == PAYLOAD
    assert parsed.digest == hashlib.sha256(PAYLOAD).digest() == envelope.payload_digest(PAYLOAD)


def test_keyid_is_sha256_hex_of_the_raw_public_key() -> None:
    raw = SIGNER.public_key.raw
    assert len(raw) == 32
    assert SIGNER.public_key.keyid == hashlib.sha256(raw).hexdigest()
    assert signed().signatures[0].keyid == hashlib.sha256(raw).hexdigest()


def test_tampered_payload_is_rejected() -> None:
    env = signed()
    tampered = Envelope(PAYLOAD[:-1] + b"k", env.payload_type, env.signatures, env.raw)
    with pytest.raises(BadSignatureError,
                       match=r"does not verify over the payload \(altered or forged\)"):
        tampered.verify(SIGNER.public_key)


def test_tampered_payload_type_is_rejected() -> None:
    env = signed()
    raw = wire(env.payload, DIRECTORY, ((env.signatures[0].sig, env.signatures[0].keyid),))
    with pytest.raises(BadSignatureError, match=r"does not verify over the payload"):
        envelope.parse(raw).verify(SIGNER.public_key)


def test_signature_by_another_key_is_rejected() -> None:
    with pytest.raises(BadSignatureError,
                       match=rf"no signature by key {OTHER.public_key.keyid[:16]}"):
        signed().verify(OTHER.public_key)


def test_signature_under_a_forged_keyid_is_rejected() -> None:
    """A signature by OTHER labelled with SIGNER's key id does not count for SIGNER."""
    forged = envelope.sign(PAYLOAD, MESSAGE, OTHER).signatures[0].sig
    raw = wire(sigs=((forged, SIGNER.public_key.keyid),))
    with pytest.raises(BadSignatureError, match="does not verify over the payload"):
        envelope.parse(raw).verify(SIGNER.public_key)


@pytest.mark.parametrize("length", [0, 63, 65])
def test_signature_of_wrong_length_is_rejected(length: int) -> None:
    raw = wire(sigs=((b"\x01" * length, SIGNER.public_key.keyid),))
    with pytest.raises(BadSignatureError, match="does not verify over the payload"):
        envelope.parse(raw).verify(SIGNER.public_key)


def test_verify_finds_the_signature_of_the_key_asked_for() -> None:
    ours = signed().signatures[0]
    theirs = envelope.sign(PAYLOAD, MESSAGE, OTHER).signatures[0]
    bad = EnvelopeSignature(SIGNER.public_key.keyid, b"\x00" * 64)
    raw = wire(sigs=tuple((s.sig, s.keyid) for s in (theirs, bad, ours)))
    env = envelope.parse(raw)
    assert env.verify(SIGNER.public_key) == PAYLOAD
    assert env.verify(OTHER.public_key) == PAYLOAD


def length_delimited(field: int, data: bytes) -> bytes:
    n, size = len(data), b""
    while n >= 0x80:
        size += bytes([n & 0x7F | 0x80])
        n >>= 7
    return bytes([field << 3 | 2]) + size + bytes([n]) + data


def test_received_bytes_are_kept_not_re_encoded() -> None:
    """Fields in another order (valid protobuf, not what sign() writes) verify as received."""
    env = signed()
    sig = envelope_pb2.Signature(sig=env.signatures[0].sig, keyid=env.signatures[0].keyid)
    raw = (length_delimited(3, sig.SerializeToString())
           + length_delimited(2, MESSAGE.encode()) + length_delimited(1, PAYLOAD))
    assert raw != env.raw
    parsed = envelope.parse(raw)
    assert parsed.raw is raw
    assert parsed.verify(SIGNER.public_key) == PAYLOAD
    assert parsed.digest == env.digest


# --- JSON form ---------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    env = signed()
    data = json.loads(json.dumps(env.to_json()))
    assert data == {
        "payloadType": MESSAGE,
        "payload": base64.b64encode(PAYLOAD).decode(),
        "signatures": [{"keyid": SIGNER.public_key.keyid,
                        "sig": base64.b64encode(env.signatures[0].sig).decode()}],
    }
    back = Envelope.from_json(data)
    assert back == env
    assert back.verify(SIGNER.public_key) == PAYLOAD


@pytest.mark.parametrize(("data", "match"), [
    ({}, r"DSSE JSON envelope is malformed: KeyError\('payload'\)"),
    ({"payload": "!!", "payloadType": MESSAGE, "signatures": []},
     r"DSSE JSON envelope is malformed: Error\("),
    ({"payload": "", "payloadType": MESSAGE, "signatures": [{"keyid": "k"}]},
     r"malformed: KeyError\('sig'\)"),
    ({"payload": "", "payloadType": MESSAGE, "signatures": None}, r"malformed: TypeError"),
    ({"payload": "", "payloadType": 7, "signatures": []}, r"payloadType must be a string"),
    ([], r"DSSE JSON envelope is malformed: TypeError"),
])
def test_json_malformed(data: object, match: str) -> None:
    with pytest.raises(MalformedEnvelopeError, match=match):
        Envelope.from_json(data)


# --- parse errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "error", "match"), [
    (b"", MalformedEnvelopeError, r"^envelope is empty$"),
    (b"\x00\x01\x02", MalformedEnvelopeError, r"^envelope does not decode"),
    (wire()[:-3], MalformedEnvelopeError, r"^envelope does not decode"),
    (wire(payload_type="application/json"), MalformedEnvelopeError,
     r"^unknown payload type 'application/json'$"),
    (wire(payload_type=""), MalformedEnvelopeError, r"^unknown payload type ''$"),
    (wire(payload_type="x" * 500), MalformedEnvelopeError,
     r"^unknown payload type 'x{80}'$"),
    (wire(payload=b""), MalformedEnvelopeError, r"^envelope has an empty payload$"),
    (wire(sigs=()), BadSignatureError, r"^envelope carries no signature$"),
    (wire(sigs=((b"s" * 64, "k"),) * 5), MalformedEnvelopeError,
     r"^envelope carries 5 signatures, at most 4 allowed$"),
], ids=["empty", "garbage", "truncated", "unknown-type", "no-type", "long-type",
        "empty-payload", "no-signatures", "too-many-signatures"])
def test_parse_errors(raw: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        envelope.parse(raw)


def test_parse_accepts_max_signatures() -> None:
    assert len(envelope.parse(wire(sigs=((b"s" * 64, "k"),) * 4)).signatures) == 4


def test_parse_oversize() -> None:
    raw = signed(b"p" * 100).raw
    assert envelope.parse(raw, max_bytes=len(raw)).payload == b"p" * 100
    with pytest.raises(OversizeMessageError,
                       match=rf"^envelope is {len(raw)} bytes, over the limit of {len(raw) - 1}$"):
        envelope.parse(raw, max_bytes=len(raw) - 1)


def test_parse_default_limit() -> None:
    limit = envelope.DEFAULT_MAX_ENVELOPE_BYTES
    with pytest.raises(OversizeMessageError, match=rf"over the limit of {limit}"):
        envelope.parse(b"\x00" * (limit + 1))


# --- properties --------------------------------------------------------------------------------

VALID = signed().raw


def parse_and_verify(raw: bytes) -> None:
    """The receiver's path; must raise an ExchangeError (and nothing else) for ``raw``."""
    with pytest.raises(ExchangeError):
        envelope.parse(raw).verify(SIGNER.public_key)


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_random_bytes_never_verify(raw: bytes) -> None:
    parse_and_verify(raw)


@settings(max_examples=500)
@given(st.integers(0, len(VALID) - 1), st.integers(1, 255))
def test_flipped_byte_never_verifies(at: int, xor: int) -> None:
    mutated = bytearray(VALID)
    mutated[at] ^= xor
    parse_and_verify(bytes(mutated))


@given(st.integers(0, len(VALID) - 1))
def test_truncated_envelope_never_verifies(length: int) -> None:
    parse_and_verify(VALID[:length])


@settings(max_examples=300)
@given(st.integers(0, len(VALID) - 1), st.integers(1, 40), st.binary(min_size=1, max_size=40))
def test_spliced_envelope_never_verifies(at: int, cut: int, insert: bytes) -> None:
    mutated = VALID[:at] + insert + VALID[at + cut:]
    if mutated[:len(VALID)] == VALID:
        # Only bytes appended after the whole envelope: protobuf keeps them as unknown
        # fields or rejects them, so this is not a mutation of what was signed.
        return
    parse_and_verify(mutated)


@settings(max_examples=300)
@given(st.binary(max_size=200), st.sampled_from([MESSAGE, DIRECTORY]),
       st.lists(st.tuples(st.binary(max_size=80),
                          st.sampled_from([SIGNER.public_key.keyid, "", "k"])), max_size=6))
def test_structured_forgeries_never_verify(payload: bytes, payload_type: str,
                                           sigs: list[tuple[bytes, str]]) -> None:
    parse_and_verify(wire(payload, payload_type, tuple(sigs)))


@given(st.binary(min_size=1, max_size=200))
def test_any_payload_round_trips(payload: bytes) -> None:
    env = envelope.parse(envelope.sign(payload, DIRECTORY, SIGNER).raw)
    assert env.verify(SIGNER.public_key) == payload
    assert Envelope.from_json(env.to_json()) == env


def test_public_key_size_is_checked() -> None:
    from exchange.errors import PKIError

    with pytest.raises(PKIError, match="must be 32 bytes, got 31"):
        PublicKey(bytes(31))
