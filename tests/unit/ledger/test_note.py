"""Signed notes, checkpoints, cosignatures and tlog-proof bundles (exchange.ledger.note).

Conformance vectors come from tests/vectors/note/vectors.json (BCX_VECTORS overrides
the vectors folder); a missing file fails the run rather than skipping it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from exchange.errors import NoteError
from exchange.keys import Ed25519Signer
from exchange.ledger.note import (
    KIND_COSIGNATURE_V1,
    KIND_ED25519,
    MAX_SIGNATURES,
    Checkpoint,
    Note,
    NoteSignature,
    TlogProof,
    Verifier,
    add_signatures,
    cosign,
    cosignature_vkey,
    format_note,
    format_tlog_proof,
    key_hash,
    note_vkey,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    parse_tlog_proof,
    sign_checkpoint,
    sign_note,
    verify_cosignature,
    verify_note,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
VECTORS = Path(os.environ.get("BCX_VECTORS") or REPO_ROOT / "tests" / "vectors")
NOTE_VECTORS = VECTORS / "note" / "vectors.json"
VECTOR_CASES = ("signed_note", "real_checkpoint", "deterministic_checkpoint_and_cosignature")


def load_vectors() -> dict[str, Any]:
    if not NOTE_VECTORS.is_file():
        pytest.fail(
            f"signed-note conformance vectors not found at {NOTE_VECTORS}; "
            "restore tests/vectors from the repository or set BCX_VECTORS to the vectors folder"
        )
    vectors: dict[str, Any] = json.loads(NOTE_VECTORS.read_text(encoding="utf-8"))
    return vectors


LOG = Ed25519Signer.from_seed(bytes([1]) * 32)
LOG_NAME = "bcx.gov/police.fj"
WITNESS = Ed25519Signer.from_seed(bytes([2]) * 32)
WITNESS_NAME = "bcx.gov/office"
OTHER = Ed25519Signer.from_seed(bytes([3]) * 32)
OTHER_NAME = "bcx.gov/carrier.vodafone"

LOG_V = Verifier.from_vkey(note_vkey(LOG_NAME, LOG.public_key))
WITNESS_V = Verifier.from_vkey(cosignature_vkey(WITNESS_NAME, WITNESS.public_key))
OTHER_V = Verifier.from_vkey(cosignature_vkey(OTHER_NAME, OTHER.public_key))

CP = Checkpoint(LOG_NAME, 42, hashlib.sha256(b"root").digest())
TS = 1_700_000_000


def cosigned_checkpoint() -> str:
    return add_signatures(sign_checkpoint(CP, LOG), [cosign(CP, WITNESS, WITNESS_NAME, TS)])


def signature_line(note_text: str, number: int = 1) -> str:
    return note_text.rsplit("\n\n", 1)[1].split("\n")[number - 1] + "\n"


# --- conformance vectors ---------------------------------------------------------------


def check_signed_note(case: dict[str, Any]) -> None:
    # PRIVATE+KEY+<name>+<hex id>+base64(0x01 || seed); the base64 may contain '+'.
    _, _, name, hex_id, key64 = case["private_key"].split("+", 4)
    material = base64.b64decode(key64)
    assert material[0] == KIND_ED25519
    signer = Ed25519Signer.from_seed(material[1:])
    assert note_vkey(name, signer.public_key) == case["verifier_key"]
    assert key_hash(name, KIND_ED25519, signer.public_key.raw).hex() == hex_id

    assert format_note(sign_note(case["text"], name, signer)) == case["signed_note"]

    verifier = Verifier.from_vkey(case["verifier_key"])
    assert verifier.vkey == case["verifier_key"]
    note, verified = verify_note(case["signed_note"].encode("utf-8"), [verifier])
    assert note.text == case["text"]
    assert verified == [verifier]


def check_real_checkpoint(case: dict[str, Any]) -> None:
    verifier = Verifier.from_vkey(case["verifier_key"])
    assert verifier.vkey == case["verifier_key"]
    cp, note, witnesses = open_checkpoint(case["checkpoint"], verifier)
    assert (cp.origin, cp.size, cp.extensions) == ("go.sum database tree", 30055305, ())
    assert cp.body == note.text
    assert format_note(note) == case["checkpoint"]
    assert witnesses == []
    assert verify_note(case["checkpoint"], [verifier])[1] == [verifier]


def check_deterministic_checkpoint_and_cosignature(case: dict[str, Any]) -> None:
    signer = Ed25519Signer.from_seed(bytes.fromhex(case["ed25519_seed_hex"]))
    origin = "sigsum.org/v1/tree/" + hashlib.sha256(signer.public_key.raw).hexdigest()
    body = case["log_checkpoint_body"].replace("<origin>", origin)
    cp = parse_checkpoint(body)
    signed = sign_checkpoint(cp, signer)
    assert signed == f"{body}\n— {origin} {case['log_signature_base64']}\n"
    log_v = Verifier.from_vkey(note_vkey(origin, signer.public_key))
    assert open_checkpoint(signed, log_v)[0] == cp

    cosigned = parse_checkpoint(case["cosigned_checkpoint_body"])
    name, ts = case["cosigner_name"], case["cosignature_timestamp"]
    sig = cosign(cosigned, signer, name, ts)
    assert sig.line == f"— {name} {case['cosignature_base64']}\n"
    witness_v = Verifier.from_vkey(cosignature_vkey(name, signer.public_key))
    assert verify_cosignature(cosigned, sig, witness_v) == ts


VECTOR_CHECKS = {
    "signed_note": check_signed_note,
    "real_checkpoint": check_real_checkpoint,
    "deterministic_checkpoint_and_cosignature": check_deterministic_checkpoint_and_cosignature,
}


def test_every_vector_case_has_a_check() -> None:
    assert set(load_vectors()) == set(VECTOR_CASES) == set(VECTOR_CHECKS)


@pytest.mark.parametrize("case", VECTOR_CASES)
def test_vector(case: str) -> None:
    vectors = load_vectors()
    assert case in vectors, f"{NOTE_VECTORS} has no case {case!r}"
    VECTOR_CHECKS[case](vectors[case])


def test_spec_example_note_verifies() -> None:
    # signed-note.md, "Example"
    verifier = Verifier.from_vkey(
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
    )
    note, verified = verify_note(
        "This is an example message.\n\n— example.com/foo "
        "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n",
        [verifier],
    )
    assert note.text == "This is an example message.\n"
    assert verified == [verifier]


# --- malformed notes ---------------------------------------------------------------------

GOOD = format_note(sign_note("hello\n", LOG_NAME, LOG))
LINE = signature_line(GOOD)
SIG64 = LINE.rsplit(" ", 1)[1].rstrip("\n")


def _noncanonical(b64: str) -> str:
    # 68 bytes encode to 91 characters and one '='; the last character carries 2 unused
    # bits, so flipping its lowest bit gives the same bytes under a lenient decoder.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(b64[-2])
    return b64[:-2] + alphabet[last ^ 1] + "="


MALFORMED_NOTES: list[tuple[str, str | bytes, str]] = [
    ("empty", "", "does not end with a newline"),
    ("no trailing newline", GOOD[:-1], "does not end with a newline"),
    ("missing blank line", "hello\n" + LINE, "no blank line between text and signatures"),
    ("text only", "hello\n", "no blank line"),
    ("blank line after the signatures", GOOD + "\n", "ends with a blank line"),
    ("no signature lines", "hello\n\n", "ends with a blank line"),
    ("bad base64", f"hello\n\n— {LOG_NAME} !!!{SIG64[3:]}\n", "not valid base64"),
    ("base64 without padding", f"hello\n\n— {LOG_NAME} {SIG64[:-1]}\n", "not valid base64"),
    ("non-canonical base64", f"hello\n\n— {LOG_NAME} {_noncanonical(SIG64)}\n", "not canonical"),
    ("hyphen instead of em dash", f"hello\n\n- {LOG_NAME} {SIG64}\n", "em dash"),
    ("en dash instead of em dash", f"hello\n\n\u2013 {LOG_NAME} {SIG64}\n", "em dash"),
    ("no space after em dash", f"hello\n\n—{LOG_NAME} {SIG64}\n", "em dash"),
    ("indented signature line", f"hello\n\n — {LOG_NAME} {SIG64}\n", "em dash"),
    ("name without signature", f"hello\n\n— {LOG_NAME}\n", "has no signature"),
    ("name and space without signature", f"hello\n\n— {LOG_NAME} \n", "has no signature"),
    ("empty key name", f"hello\n\n—  {SIG64}\n", "key name is empty"),
    ("key name with plus", f"hello\n\n— a+b {SIG64}\n", r"contains '\+'"),
    ("key name with no-break space", f"hello\n\n— a\u00a0b {SIG64}\n", "contains a space"),
    ("key name with ideographic space", f"hello\n\n— a\u3000b {SIG64}\n", "contains a space"),
    ("two spaces before signature", f"hello\n\n— {LOG_NAME}  {SIG64}\n", "not valid base64"),
    ("trailing space", f"hello\n\n— {LOG_NAME} {SIG64} \n", "not valid base64"),
    (
        "signature of only a key ID",
        f"hello\n\n— {LOG_NAME} {base64.b64encode(b'1234').decode()}\n",
        "too short",
    ),
    (
        "signature shorter than a key ID",
        f"hello\n\n— {LOG_NAME} {base64.b64encode(b'12').decode()}\n",
        "too short",
    ),
    ("carriage return in text", "hel\rlo\n\n" + LINE, "control character U\\+000D"),
    ("CRLF line endings", GOOD.replace("\n", "\r\n"), "control character U\\+000D"),
    ("tab in text", "hel\tlo\n\n" + LINE, "control character U\\+0009"),
    ("NUL in text", "hel\x00lo\n\n" + LINE, "control character U\\+0000"),
    ("escape in signature line", "hello\n\n— a\x1bb " + SIG64 + "\n", "control character"),
    ("non-UTF-8 byte", b"hel\xfflo\n\n" + LINE.encode(), "not valid UTF-8"),
    ("overlong UTF-8", b"hel\xc0\xaflo\n\n" + LINE.encode(), "not valid UTF-8"),
    ("UTF-8 encoded surrogate", b"hel\xed\xa0\x80lo\n\n" + LINE.encode(), "not valid UTF-8"),
    ("lone surrogate in str", "hel\ud800lo\n\n" + LINE, "not valid UTF-8"),
    ("too many signatures", "hello\n\n" + LINE * (MAX_SIGNATURES + 1), "101 signatures"),
    ("oversize note", "a" * (1 << 20) + "\n\n" + LINE, "more than the limit"),
]


@pytest.mark.parametrize(
    ("data", "match"),
    [pytest.param(data, match, id=name) for name, data, match in MALFORMED_NOTES],
)
def test_malformed_note_rejected(data: str | bytes, match: str) -> None:
    with pytest.raises(NoteError, match=match):
        parse_note(data)
    with pytest.raises(NoteError, match=match):
        verify_note(data, [LOG_V])


def test_max_signatures_accepted() -> None:
    note = parse_note("hello\n\n" + LINE * MAX_SIGNATURES)
    assert len(note.signatures) == MAX_SIGNATURES
    assert verify_note("hello\n\n" + LINE * MAX_SIGNATURES, [LOG_V])[1] == [LOG_V]


def test_text_may_contain_blank_lines() -> None:
    text = "first\n\nthird\n\n"
    signed = format_note(sign_note(text, LOG_NAME, LOG))
    assert signed.startswith("first\n\nthird\n\n\n— ")
    note, _ = verify_note(signed, [LOG_V])
    assert note.text == text


def test_blank_line_between_signatures_makes_the_first_part_of_the_text() -> None:
    # The last blank line separates text from signatures, so the earlier signature line
    # becomes text, and the log's signature no longer covers it.
    witness_line = cosign(CP, WITNESS, WITNESS_NAME, TS).line
    data = GOOD + "\n" + witness_line
    note = parse_note(data)
    assert note.text == GOOD
    assert [s.name for s in note.signatures] == [WITNESS_NAME]
    with pytest.raises(NoteError, match="no signature by a known key"):
        verify_note(data, [LOG_V])


def test_note_constructor_checks_text() -> None:
    with pytest.raises(NoteError, match="does not end with a newline"):
        Note("hello")
    with pytest.raises(NoteError, match="control character"):
        Note("a\rb\n")
    with pytest.raises(NoteError, match="at least one signature"):
        format_note(Note("hello\n"))


def test_sign_note_rejects_bad_text_and_names() -> None:
    with pytest.raises(NoteError, match="does not end with a newline"):
        sign_note("hello", LOG_NAME, LOG)
    with pytest.raises(NoteError, match="contains a space"):
        sign_note("hello\n", "a b", LOG)
    with pytest.raises(NoteError, match="key name is empty"):
        sign_note("hello\n", "", LOG)


def test_note_signature_constructor_checks_fields() -> None:
    with pytest.raises(NoteError, match="key ID must be 4 bytes"):
        NoteSignature(LOG_NAME, b"123", b"sig")
    with pytest.raises(NoteError, match="is empty"):
        NoteSignature(LOG_NAME, b"1234", b"")


# --- verifying notes -------------------------------------------------------------------


def test_unknown_signatures_are_ignored() -> None:
    signed = sign_note("hello\n", LOG_NAME, LOG)
    good = signed.signatures[0]
    bogus = bytes(64)
    unknown = [
        NoteSignature(OTHER_NAME, key_hash(OTHER_NAME, KIND_ED25519, OTHER.public_key.raw), bogus),
        # a known name with another key ID, and a known key ID under another name
        NoteSignature(LOG_NAME, key_hash(LOG_NAME, KIND_ED25519, OTHER.public_key.raw), bogus),
        NoteSignature("bcx.gov/impostor", good.key_hash, bogus),
    ]
    data = format_note(Note("hello\n", (unknown[0], good, *unknown[1:])))
    note, verified = verify_note(data, [LOG_V])
    assert verified == [LOG_V]
    assert note.signatures == (unknown[0], good, *unknown[1:])


def test_known_key_bad_signature_rejected() -> None:
    sig = sign_note("hello\n", LOG_NAME, LOG).signatures[0]
    flipped = bytearray(sig.signature)
    flipped[10] ^= 0x01
    bad = NoteSignature(sig.name, sig.key_hash, bytes(flipped))
    data = format_note(Note("hello\n", (bad,)))
    with pytest.raises(NoteError, match=rf"note signature by {LOG_NAME}\+[0-9a-f]{{8}} does not"):
        verify_note(data, [LOG_V])


def test_known_key_bad_signature_rejected_even_beside_a_good_one() -> None:
    sig = sign_note("hello\n", LOG_NAME, LOG).signatures[0]
    bad = NoteSignature(sig.name, sig.key_hash, bytes(64))
    for order in ((sig, bad), (bad, sig)):
        with pytest.raises(NoteError, match="does not verify"):
            verify_note(format_note(Note("hello\n", order)), [LOG_V])


def test_known_key_wrong_signature_length_rejected() -> None:
    sig = sign_note("hello\n", LOG_NAME, LOG).signatures[0]
    short = NoteSignature(sig.name, sig.key_hash, sig.signature[:-1])
    with pytest.raises(NoteError, match="is 63 bytes, want 64"):
        verify_note(format_note(Note("hello\n", (short,))), [LOG_V])


def test_tampered_text_rejected() -> None:
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(GOOD.replace("hello", "hellp"), [LOG_V])


def test_no_known_signature_rejected() -> None:
    with pytest.raises(NoteError, match=rf"no signature by a known key \(signed by {LOG_NAME}\+"):
        verify_note(GOOD, [Verifier.for_key(OTHER_NAME, OTHER.public_key)])
    with pytest.raises(NoteError, match="no signature by a known key"):
        verify_note(GOOD, [])


def test_each_verifier_reported_once() -> None:
    data = add_signatures(GOOD, [])
    twice = format_note(Note("hello\n", parse_note(data).signatures * 2))
    assert verify_note(twice, [LOG_V, LOG_V])[1] == [LOG_V]


# --- verifier keys ---------------------------------------------------------------------


def test_vkey_round_trip_and_kinds() -> None:
    note_key = note_vkey(LOG_NAME, LOG.public_key)
    cosigner_key = cosignature_vkey(LOG_NAME, LOG.public_key)
    assert note_key.split("+")[1] != cosigner_key.split("+")[1]  # type byte is in the ID
    for vkey, kind in ((note_key, KIND_ED25519), (cosigner_key, KIND_COSIGNATURE_V1)):
        v = Verifier.from_vkey(vkey)
        assert (v.name, v.kind, v.public_key) == (LOG_NAME, kind, LOG.public_key)
        assert v.vkey == vkey
        assert v == Verifier.for_key(LOG_NAME, LOG.public_key, kind)


def _vkey(name: str, hex_id: str, material: bytes) -> str:
    return f"{name}+{hex_id}+{base64.b64encode(material).decode()}"


RAW = LOG.public_key.raw
GOOD_ID = key_hash(LOG_NAME, KIND_ED25519, RAW).hex()

BAD_VKEYS = [
    ("two parts", f"{LOG_NAME}+{GOOD_ID}", "three '\\+'-separated parts"),
    ("one part", LOG_NAME, "three"),
    ("uppercase key ID", _vkey(LOG_NAME, GOOD_ID.upper(), b"\x01" + RAW), "lowercase hex"),
    ("short key ID", _vkey(LOG_NAME, GOOD_ID[:7], b"\x01" + RAW), "8 lowercase hex"),
    ("key ID not hex", _vkey(LOG_NAME, "zzzzzzzz", b"\x01" + RAW), "8 lowercase hex"),
    ("mismatched key ID", _vkey(LOG_NAME, "00000000", b"\x01" + RAW), "does not match its key"),
    (
        "key ID of another type",
        _vkey(LOG_NAME, GOOD_ID, b"\x04" + RAW),
        "does not match its key",
    ),
    (
        "key ID of another name",
        _vkey("bcx.gov/other", GOOD_ID, b"\x01" + RAW),
        "does not match its key",
    ),
    ("bad base64", f"{LOG_NAME}+{GOOD_ID}+!!!!", "not valid base64"),
    ("empty key", f"{LOG_NAME}+{GOOD_ID}+", "no key material"),
    ("unsupported type", _vkey(LOG_NAME, GOOD_ID, b"\x02" + RAW), "unsupported signature type"),
    ("short key", _vkey(LOG_NAME, GOOD_ID, b"\x01" + RAW[:31]), "32 bytes, got 31"),
    ("empty name", _vkey("", GOOD_ID, b"\x01" + RAW), "key name is empty"),
    ("name with space", _vkey("a b", GOOD_ID, b"\x01" + RAW), "contains a space"),
]


@pytest.mark.parametrize(
    ("vkey", "match"), [pytest.param(v, m, id=name) for name, v, m in BAD_VKEYS]
)
def test_bad_verifier_key_rejected(vkey: str, match: str) -> None:
    with pytest.raises(NoteError, match=match):
        Verifier.from_vkey(vkey)


def test_verifier_constructor_checks_key_id() -> None:
    with pytest.raises(NoteError, match="does not match its key"):
        Verifier(LOG_NAME, b"\x00\x00\x00\x00", LOG.public_key, KIND_ED25519)
    with pytest.raises(NoteError, match="key ID must be 4 bytes"):
        Verifier(LOG_NAME, b"\x00", LOG.public_key, KIND_ED25519)
    with pytest.raises(NoteError, match="unsupported signature type 0x02"):
        Verifier(LOG_NAME, bytes.fromhex(GOOD_ID), LOG.public_key, 0x02)


# --- checkpoints -----------------------------------------------------------------------

ROOT64 = base64.b64encode(bytes(range(32))).decode()

GOOD_CHECKPOINTS = [
    ("empty tree", f"o\n0\n{ROOT64}\n", Checkpoint("o", 0, bytes(range(32)))),
    (
        "largest size",
        f"o\n18446744073709551615\n{ROOT64}\n",
        Checkpoint("o", (1 << 64) - 1, bytes(range(32))),
    ),
    (
        "extensions",
        f"o\n7\n{ROOT64}\next one\nx2\n",
        Checkpoint("o", 7, bytes(range(32)), ("ext one", "x2")),
    ),
    (
        "origin with spaces",
        f"go.sum db\n1\n{ROOT64}\n",
        Checkpoint("go.sum db", 1, bytes(range(32))),
    ),
]


@pytest.mark.parametrize(
    ("text", "want"), [pytest.param(t, cp, id=name) for name, t, cp in GOOD_CHECKPOINTS]
)
def test_checkpoint_parses(text: str, want: Checkpoint) -> None:
    assert parse_checkpoint(text) == want
    assert want.body == text


BAD_CHECKPOINTS = [
    ("empty", "", "does not end with a newline"),
    ("no trailing newline", f"o\n1\n{ROOT64}", "does not end with a newline"),
    ("one line", "o\n", "1 line"),
    ("missing root", "o\n1\n", "2 line"),
    ("empty origin", f"\n1\n{ROOT64}\n", "origin is empty"),
    ("leading zero", f"o\n010\n{ROOT64}\n", "leading zeros"),
    ("zero zero", f"o\n00\n{ROOT64}\n", "leading zeros"),
    ("negative", f"o\n-1\n{ROOT64}\n", "leading zeros"),
    ("plus sign", f"o\n+1\n{ROOT64}\n", "leading zeros"),
    ("leading space", f"o\n 1\n{ROOT64}\n", "leading zeros"),
    ("underscore", f"o\n1_000\n{ROOT64}\n", "leading zeros"),
    ("non-ASCII digits", f"o\n\u0661\u0662\n{ROOT64}\n", "leading zeros"),
    ("hex size", f"o\n0x10\n{ROOT64}\n", "leading zeros"),
    ("empty size", f"o\n\n{ROOT64}\n", "leading zeros"),
    ("2^64", f"o\n18446744073709551616\n{ROOT64}\n", "does not fit in 64 bits"),
    ("very long size", f"o\n{'9' * 5000}\n{ROOT64}\n", "does not fit in 64 bits"),
    ("root of 31 bytes", f"o\n1\n{base64.b64encode(bytes(31)).decode()}\n", "32 bytes, got 31"),
    ("root of 33 bytes", f"o\n1\n{base64.b64encode(bytes(33)).decode()}\n", "32 bytes, got 33"),
    ("root not base64", "o\n1\n" + "!" * 44 + "\n", "not valid base64"),
    ("root without padding", f"o\n1\n{ROOT64[:-1]}\n", "not valid base64"),
    ("root in URL-safe base64", "o\n1\n" + "_" * 43 + "=\n", "not valid base64"),
    ("empty root", "o\n1\n\n", "32 bytes, got 0"),
    ("empty extension line", f"o\n1\n{ROOT64}\n\n", "extension line 1 is empty"),
    ("carriage return in origin", f"o\r\n1\n{ROOT64}\n", "control character"),
]


@pytest.mark.parametrize(
    ("text", "match"), [pytest.param(t, m, id=name) for name, t, m in BAD_CHECKPOINTS]
)
def test_bad_checkpoint_rejected(text: str, match: str) -> None:
    with pytest.raises(NoteError, match=match):
        parse_checkpoint(text)


def test_checkpoint_root_non_canonical_base64_rejected() -> None:
    # 32 bytes leave 2 unused bits in the last character before '='
    root64 = base64.b64encode(bytes(32)).decode()
    assert root64.endswith("A=")
    with pytest.raises(NoteError, match="not canonical base64"):
        parse_checkpoint(f"o\n1\n{root64[:-2]}B=\n")


def test_checkpoint_constructor_checks_fields() -> None:
    with pytest.raises(NoteError, match="not a 64-bit unsigned integer"):
        Checkpoint("o", -1, bytes(32))
    with pytest.raises(NoteError, match="root hash must be 32 bytes"):
        Checkpoint("o", 1, bytes(20))
    with pytest.raises(NoteError, match="origin contains a newline"):
        Checkpoint("o\n1", 1, bytes(32))
    with pytest.raises(NoteError, match="extension line 2 is empty"):
        Checkpoint("o", 1, bytes(32), ("x", ""))


def test_checkpoint_key_name_defaults_to_origin() -> None:
    signed = sign_checkpoint(CP, LOG)
    assert signature_line(signed).startswith(f"— {CP.origin} ")
    named = sign_checkpoint(Checkpoint("log one", 1, bytes(32)), LOG, name=LOG_NAME)
    assert open_checkpoint(named, LOG_V)[0].origin == "log one"
    with pytest.raises(NoteError, match="contains a space"):
        sign_checkpoint(Checkpoint("log one", 1, bytes(32)), LOG)


def test_open_checkpoint_requires_the_log_signature() -> None:
    witness_only = format_note(Note(CP.body, (cosign(CP, WITNESS, WITNESS_NAME, TS),)))
    with pytest.raises(NoteError, match=rf"not signed by log key {LOG_NAME}\+"):
        open_checkpoint(witness_only, LOG_V, [WITNESS_V])
    with pytest.raises(NoteError, match="not signed by log key"):
        open_checkpoint(sign_checkpoint(CP, OTHER, name=LOG_NAME), LOG_V)


def test_open_checkpoint_checks_origin() -> None:
    signed = sign_checkpoint(CP, LOG)
    assert open_checkpoint(signed, LOG_V, origin=LOG_NAME)[0] == CP
    with pytest.raises(NoteError, match=r"is not the expected 'bcx\.gov/other'"):
        open_checkpoint(signed, LOG_V, origin="bcx.gov/other")


def test_open_checkpoint_rejects_a_note_that_is_no_checkpoint() -> None:
    with pytest.raises(NoteError, match="line"):
        open_checkpoint(GOOD, LOG_V)


def test_open_checkpoint_reports_witnesses() -> None:
    data = add_signatures(cosigned_checkpoint(), [cosign(CP, OTHER, OTHER_NAME, TS + 1)])
    cp, note, witnesses = open_checkpoint(data, LOG_V, [WITNESS_V, OTHER_V])
    assert cp == CP
    assert len(note.signatures) == 3
    assert witnesses == [WITNESS_V, OTHER_V]
    # a witness we do not know is ignored; one we know that did not sign is not reported
    assert open_checkpoint(data, LOG_V, [OTHER_V])[2] == [OTHER_V]
    assert open_checkpoint(sign_checkpoint(CP, LOG), LOG_V, [WITNESS_V])[2] == []


def test_open_checkpoint_rejects_a_bad_known_cosignature() -> None:
    good = cosign(CP, WITNESS, WITNESS_NAME, TS)
    bad = NoteSignature(good.name, good.key_hash, (TS + 1).to_bytes(8, "big") + good.signature[8:])
    data = add_signatures(sign_checkpoint(CP, LOG), [bad])
    with pytest.raises(NoteError, match=rf"cosignature by {WITNESS_NAME}\+\w{{8}} does not verify"):
        open_checkpoint(data, LOG_V, [WITNESS_V])
    assert open_checkpoint(data, LOG_V)[2] == []  # unknown to this client: ignored


# --- cosignatures ----------------------------------------------------------------------


def test_cosignature_round_trip() -> None:
    sig = cosign(CP, WITNESS, WITNESS_NAME, TS)
    assert sig.key_hash == WITNESS_V.key_hash
    assert sig.signature[:8] == TS.to_bytes(8, "big")
    assert len(sig.signature) == 72
    assert verify_cosignature(CP, sig, WITNESS_V) == TS
    # a cosigner key verifies through the generic note path too
    assert verify_note(cosigned_checkpoint(), [WITNESS_V])[1] == [WITNESS_V]


def test_cosignature_with_wrong_timestamp_rejected() -> None:
    sig = cosign(CP, WITNESS, WITNESS_NAME, TS)
    moved = NoteSignature(sig.name, sig.key_hash, (TS - 1).to_bytes(8, "big") + sig.signature[8:])
    with pytest.raises(NoteError, match=r"cosignature by .* does not verify"):
        verify_cosignature(CP, moved, WITNESS_V)


def test_cosignature_over_tampered_body_rejected() -> None:
    sig = cosign(CP, WITNESS, WITNESS_NAME, TS)
    for other in (
        Checkpoint(CP.origin, CP.size + 1, CP.root),
        Checkpoint(CP.origin, CP.size, bytes(32)),
        Checkpoint("bcx.gov/other", CP.size, CP.root),
        Checkpoint(CP.origin, CP.size, CP.root, ("ext",)),
    ):
        with pytest.raises(NoteError, match="does not verify"):
            verify_cosignature(other, sig, WITNESS_V)


def test_cosignature_is_not_a_plain_note_signature() -> None:
    # cosignature/v1 signs a prefixed message, so it never passes as a type 0x01 signature
    sig = cosign(CP, WITNESS, WITNESS_NAME, TS)
    as_note_sig = NoteSignature(
        WITNESS_NAME,
        key_hash(WITNESS_NAME, KIND_ED25519, WITNESS.public_key.raw),
        sig.signature[8:],
    )
    note_v = Verifier.for_key(WITNESS_NAME, WITNESS.public_key, KIND_ED25519)
    with pytest.raises(NoteError, match=r"note signature by .* does not verify"):
        verify_note(format_note(Note(CP.body, (as_note_sig,))), [note_v])


def test_cosignature_timestamp_limits() -> None:
    with pytest.raises(NoteError, match=r"outside 0\.\.2\^63-1"):
        cosign(CP, WITNESS, WITNESS_NAME, -1)
    with pytest.raises(NoteError, match="outside"):
        cosign(CP, WITNESS, WITNESS_NAME, 1 << 63)
    top = cosign(CP, WITNESS, WITNESS_NAME, (1 << 63) - 1)
    assert verify_cosignature(CP, top, WITNESS_V) == (1 << 63) - 1
    over = NoteSignature(top.name, top.key_hash, (1 << 63).to_bytes(8, "big") + top.signature[8:])
    with pytest.raises(NoteError, match=r"timestamp 9223372036854775808 > 2\^63-1"):
        verify_cosignature(CP, over, WITNESS_V)


def test_cosignature_checks_the_verifier() -> None:
    sig = cosign(CP, WITNESS, WITNESS_NAME, TS)
    note_v = Verifier.for_key(WITNESS_NAME, WITNESS.public_key, KIND_ED25519)
    with pytest.raises(NoteError, match=r"is not a cosigner key: signature type 0x01 \(Ed25519\)"):
        verify_cosignature(CP, sig, note_v)
    with pytest.raises(NoteError, match=f"is not by cosigner {OTHER_NAME}"):
        verify_cosignature(CP, sig, OTHER_V)
    short = NoteSignature(sig.name, sig.key_hash, sig.signature[:-1])
    with pytest.raises(NoteError, match="is 71 bytes, want 72"):
        verify_cosignature(CP, short, WITNESS_V)


def test_add_signatures_dedups_in_stable_order() -> None:
    signed = sign_checkpoint(CP, LOG)
    w1 = cosign(CP, WITNESS, WITNESS_NAME, TS)
    w1_later = cosign(CP, WITNESS, WITNESS_NAME, TS + 60)
    w2 = cosign(CP, OTHER, OTHER_NAME, TS)
    once = add_signatures(signed, [w1, w1_later, w2])
    assert once == signed + w1.line + w2.line
    assert add_signatures(once, [w2, w1_later]) == once  # first signature per key wins
    assert add_signatures(signed, []) == signed
    with pytest.raises(NoteError, match="no blank line"):
        add_signatures(CP.body, [w1])


def test_add_signatures_respects_the_signature_limit() -> None:
    sigs = [
        cosign(CP, Ed25519Signer.from_seed(bytes([i]) * 32), f"w{i}.example", TS)
        for i in range(10, 10 + MAX_SIGNATURES)
    ]
    with pytest.raises(NoteError, match="more than the limit"):
        add_signatures(sign_checkpoint(CP, LOG), sigs)


# --- tlog-proof ------------------------------------------------------------------------

HASHES = tuple(hashlib.sha256(bytes([i])).digest() for i in range(3))


def test_tlog_proof_layout() -> None:
    checkpoint = cosigned_checkpoint()
    proof = TlogProof(5, HASHES, checkpoint, extra=b"age-v1.2.1")
    b64 = [base64.b64encode(h).decode() for h in HASHES]
    want = (
        "c2sp.org/tlog-proof@v1\n"
        f"extra {base64.b64encode(b'age-v1.2.1').decode()}\n"
        "index 5\n" + "".join(f"{h}\n" for h in b64) + "\n" + checkpoint
    )
    assert format_tlog_proof(proof) == want
    assert parse_tlog_proof(want) == proof


@pytest.mark.parametrize(
    "proof",
    [
        pytest.param(TlogProof(0, (), sign_checkpoint(CP, LOG)), id="no extra, no hashes"),
        pytest.param(TlogProof(41, HASHES, cosigned_checkpoint()), id="no extra"),
        pytest.param(TlogProof(7, HASHES[:1], cosigned_checkpoint(), b"\x00"), id="extra"),
        pytest.param(TlogProof((1 << 64) - 1, HASHES * 21, sign_checkpoint(CP, LOG)), id="max"),
    ],
)
def test_tlog_proof_round_trip(proof: TlogProof) -> None:
    text = format_tlog_proof(proof)
    assert parse_tlog_proof(text) == proof
    assert parse_tlog_proof(text.encode()) == proof
    assert format_tlog_proof(parse_tlog_proof(text)) == text
    assert ("\nextra " in text) == bool(proof.extra)


def _proof_text(head: str, hashes: str = "", checkpoint: str | None = None) -> str:
    return head + hashes + "\n" + (cosigned_checkpoint() if checkpoint is None else checkpoint)


H64 = base64.b64encode(HASHES[0]).decode()

BAD_PROOFS = [
    ("empty", "", "ends before its header line"),
    ("wrong header", _proof_text("c2sp.org/tlog-proof@v2\nindex 1\n"), "does not start with"),
    ("header with space", _proof_text("c2sp.org/tlog-proof@v1 \nindex 1\n"), "does not start"),
    ("missing index", _proof_text("c2sp.org/tlog-proof@v1\n", H64 + "\n"), "no 'index <n>'"),
    ("index leading zero", _proof_text("c2sp.org/tlog-proof@v1\nindex 01\n"), "leading zeros"),
    ("negative index", _proof_text("c2sp.org/tlog-proof@v1\nindex -1\n"), "leading zeros"),
    ("index 2^64", _proof_text("c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n"), "64 bits"),
    ("index without space", _proof_text("c2sp.org/tlog-proof@v1\nindex1\n"), "no 'index <n>'"),
    ("empty extra", _proof_text("c2sp.org/tlog-proof@v1\nextra \nindex 1\n"), "no data"),
    ("extra not base64", _proof_text("c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n"), "base64"),
    (
        "extra after index",
        _proof_text("c2sp.org/tlog-proof@v1\nindex 1\nextra AA==\n"),
        "hash 1 is not valid base64",
    ),
    (
        "short hash",
        _proof_text(
            "c2sp.org/tlog-proof@v1\nindex 1\n", base64.b64encode(bytes(31)).decode() + "\n"
        ),
        "hash 1 must be 32 bytes, got 31",
    ),
    (
        "too many hashes",
        _proof_text("c2sp.org/tlog-proof@v1\nindex 1\n", (H64 + "\n") * 65),
        "more than 64 hashes",
    ),
    ("no blank line", "c2sp.org/tlog-proof@v1\nindex 1\n" + H64 + "\n", "ends before its blank"),
    ("no checkpoint", _proof_text("c2sp.org/tlog-proof@v1\nindex 1\n", checkpoint=""), "newline"),
    (
        "unsigned checkpoint",
        _proof_text("c2sp.org/tlog-proof@v1\nindex 1\n", checkpoint=CP.body),
        "checkpoint: signed note has no blank line",
    ),
    (
        "note that is no checkpoint",
        _proof_text("c2sp.org/tlog-proof@v1\nindex 1\n", checkpoint=GOOD),
        "checkpoint: checkpoint has 1 line",
    ),
    ("CRLF", _proof_text("c2sp.org/tlog-proof@v1\r\nindex 1\r\n"), "does not start with"),
    ("non-UTF-8", b"c2sp.org/tlog-proof@v1\xff\nindex 1\n", "not valid UTF-8"),
]


@pytest.mark.parametrize(
    ("text", "match"), [pytest.param(t, m, id=name) for name, t, m in BAD_PROOFS]
)
def test_bad_tlog_proof_rejected(text: str | bytes, match: str) -> None:
    with pytest.raises(NoteError, match=match):
        parse_tlog_proof(text)


def test_tlog_proof_constructor_checks_fields() -> None:
    with pytest.raises(NoteError, match="hash 2 must be 32 bytes"):
        TlogProof(1, (bytes(32), bytes(31)), cosigned_checkpoint())
    with pytest.raises(NoteError, match="not a 64-bit unsigned integer"):
        TlogProof(-1, (), cosigned_checkpoint())
    with pytest.raises(NoteError, match="tlog-proof checkpoint"):
        TlogProof(1, (), "not a note")


# --- properties ------------------------------------------------------------------------

line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
)
checkpoints = st.builds(
    Checkpoint,
    origin=line_text,
    size=st.integers(min_value=0, max_value=(1 << 64) - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(line_text, max_size=3).map(tuple),
)


@given(cp=checkpoints, timestamp=st.integers(min_value=0, max_value=(1 << 63) - 1))
def test_checkpoint_sign_open_round_trip(cp: Checkpoint, timestamp: int) -> None:
    assert parse_checkpoint(cp.body) == cp
    signed = sign_checkpoint(cp, LOG, name=LOG_NAME)
    cosignature = cosign(cp, WITNESS, WITNESS_NAME, timestamp)
    data = add_signatures(signed, [cosignature])
    opened, note, witnesses = open_checkpoint(data.encode("utf-8"), LOG_V, [WITNESS_V])
    assert opened == cp
    assert note.text == cp.body
    assert witnesses == [WITNESS_V]
    assert verify_cosignature(opened, note.signatures[1], WITNESS_V) == timestamp


@given(
    text=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=30),
        min_size=1,
        max_size=5,
    ).map(lambda lines: "\n".join(lines) + "\n")
)
def test_note_sign_format_parse_round_trip(text: str) -> None:
    note = sign_note(text, LOG_NAME, LOG)
    data = format_note(note)
    assert parse_note(data) == note
    assert verify_note(data, [LOG_V]) == (note, [LOG_V])


SIGNED = cosigned_checkpoint().encode("utf-8")
SIGNED_NOTE = parse_note(SIGNED)
B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def unused_bit_changes(data: bytes) -> list[tuple[int, int]]:
    """The last base64 character before padding has unused low bits: flipping one gives
    the same bytes under a lenient decoder, which random changes would rarely find."""
    changes = []
    start = 0
    for line in data.split(b"\n"):
        if line.endswith(b"="):
            last = start + len(line.rstrip(b"=")) - 1
            changes.append((last, B64_ALPHABET[B64_ALPHABET.index(data[last]) ^ 1]))
        start += len(line) + 1
    return changes


UNUSED_BIT_CHANGES = unused_bit_changes(SIGNED)  # root hash, log signature, cosignature


def test_unused_bit_changes_cover_root_and_both_signatures() -> None:
    assert len(UNUSED_BIT_CHANGES) == 3


@given(position=st.integers(min_value=0, max_value=len(SIGNED) - 1), byte=st.integers(0, 255))
@example(position=UNUSED_BIT_CHANGES[0][0], byte=UNUSED_BIT_CHANGES[0][1])
@example(position=UNUSED_BIT_CHANGES[1][0], byte=UNUSED_BIT_CHANGES[1][1])
@example(position=UNUSED_BIT_CHANGES[2][0], byte=UNUSED_BIT_CHANGES[2][1])
def test_any_changed_byte_is_rejected_or_changes_the_result(position: int, byte: int) -> None:
    if SIGNED[position] == byte:
        byte ^= 0xFF
    mutated = SIGNED[:position] + bytes([byte]) + SIGNED[position + 1 :]
    try:
        cp, note, witnesses = open_checkpoint(mutated, LOG_V, [WITNESS_V])
    except NoteError:
        return
    assert note != SIGNED_NOTE
    assert note.text == SIGNED_NOTE.text  # the signed text itself can never change
    assert cp == CP
    assert witnesses == []  # only an unknown (ignored) cosignature line can have changed
