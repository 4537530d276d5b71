"""C2SP signed notes, checkpoints, cosignatures and tlog-proof bundles, without I/O.

Implements signed-note v1.0.0 (Ed25519, signature type 0x01), tlog-checkpoint v1.0.0,
tlog-cosignature v1.0.1 (Ed25519 ``cosignature/v1``, type 0x04, timestamped) and the
``c2sp.org/tlog-proof@v1`` text format. Everything is parsed strictly: base64 must be
canonical and numbers must have no leading zeros, so one text has exactly one meaning and
any changed byte either fails to parse, fails to verify or parses to a different value.
Signatures are always checked over the bytes received, never over a re-serialization.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from exchange.errors import BadSignatureError, NoteError
from exchange.keys import PublicKey, Signer

KIND_ED25519 = 0x01
"""Signature type of Ed25519 note signatures (signed-note)."""
KIND_COSIGNATURE_V1 = 0x04
"""Signature type of timestamped Ed25519 checkpoint cosignatures (tlog-cosignature)."""
_KINDS = {KIND_ED25519: "Ed25519", KIND_COSIGNATURE_V1: "cosignature/v1"}

MAX_SIGNATURES = 100
"""Most signature lines a note may carry; the spec demands at least 16 (Go uses 100)."""
MAX_NOTE_BYTES = 1 << 20
"""Largest signed note accepted, so a hostile peer cannot make us parse without end."""
MAX_TIMESTAMP = (1 << 63) - 1
MAX_PROOF_HASHES = 64
"""An inclusion path in a tree of fewer than 2**64 leaves has at most 64 hashes."""

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
_SIG_PREFIX = "\u2014 "  # em dash, space
_COSIGNATURE_HEADER = "cosignature/v1\n"
_ED25519_SIGNATURE_BYTES = 64
_HASH_BYTES = 32
_KEY_HASH_BYTES = 4

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


# --- helpers -------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    """Decode standard base64, rejecting anything but its one canonical spelling."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except ValueError as e:  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise NoteError(f"{what} is not valid base64: {text[:64]!r}") from e
    if _b64(raw) != text:
        raise NoteError(f"{what} is not canonical base64: {text[:64]!r}")
    return raw


def _decimal(text: str, what: str) -> int:
    """Parse an unsigned ASCII decimal below 2**64 with no leading zeros."""
    if _DECIMAL.fullmatch(text) is None:
        raise NoteError(f"{what} is not a decimal without leading zeros: {text[:32]!r}")
    if len(text) > 20 or int(text) >= 1 << 64:
        raise NoteError(f"{what} {text[:32]} does not fit in 64 bits")
    return int(text)


def _check_text(text: str, what: str) -> None:
    """Valid UTF-8 with no ASCII control character other than newline (signed-note)."""
    match = _CONTROL.search(text)
    if match is not None:
        raise NoteError(
            f"{what} contains control character U+{ord(match.group()):04X} "
            f"at offset {match.start()}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise NoteError(f"{what} is not valid Unicode: {e.reason} at offset {e.start}") from e


def _check_line(line: str, what: str) -> None:
    if not line:
        raise NoteError(f"{what} is empty")
    if "\n" in line:
        raise NoteError(f"{what} contains a newline")
    _check_text(line, what)


def _check_key_name(name: str) -> None:
    """Key names are non-empty, without Unicode spaces or '+' (signed-note)."""
    if not name:
        raise NoteError("key name is empty")
    if "+" in name:
        raise NoteError(f"key name {name!r} contains '+'")
    # str.isspace also covers U+001C..U+001F, which _check_text rejects anyway.
    if any(c.isspace() for c in name):
        raise NoteError(f"key name {name!r} contains a space")
    _check_text(name, f"key name {name!r}")


def _decode(data: str | bytes, what: str) -> str:
    """Text of a note or bundle received as bytes or str: UTF-8, at most MAX_NOTE_BYTES."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as e:
            raise NoteError(f"{what} is not valid UTF-8: {e.reason} at offset {e.start}") from e
    else:
        raw = data
    if len(raw) > MAX_NOTE_BYTES:
        raise NoteError(f"{what} is {len(raw)} bytes, more than the limit of {MAX_NOTE_BYTES}")
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NoteError(f"{what} is not valid UTF-8: {e.reason} at offset {e.start}") from e


def key_hash(name: str, kind: int, raw_public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || "\\n" || kind || public key)[:4]."""
    if not 0 <= kind <= 0xFF:
        raise NoteError(f"signature type {kind} is not a byte")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([kind]) + raw_public_key)
    return digest.digest()[:_KEY_HASH_BYTES]


def _key_label(name: str, hash_: bytes) -> str:
    return f"{name}+{hash_.hex()}"


# --- verifier keys -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verifier:
    """A trusted public key as a signed-note verifier: name, key ID, key and signature type."""

    name: str
    key_hash: bytes
    public_key: PublicKey
    kind: int = KIND_ED25519

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if self.kind not in _KINDS:
            raise NoteError(f"verifier {self.name}: unsupported signature type 0x{self.kind:02x}")
        if len(self.key_hash) != _KEY_HASH_BYTES:
            raise NoteError(
                f"verifier {self.name}: key ID must be {_KEY_HASH_BYTES} bytes, "
                f"got {len(self.key_hash)}"
            )
        want = key_hash(self.name, self.kind, self.public_key.raw)
        if self.key_hash != want:
            raise NoteError(
                f"verifier {self.name}: key ID {self.key_hash.hex()} does not match "
                f"its key (want {want.hex()})"
            )

    @classmethod
    def for_key(cls, name: str, public_key: PublicKey, kind: int = KIND_ED25519) -> Verifier:
        """The verifier for ``public_key`` under ``name``, with the key ID computed."""
        _check_key_name(name)
        return cls(name, key_hash(name, kind, public_key.raw), public_key, kind)

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key ID>+<base64(type || key)>``; the key ID must match."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"verifier key {vkey[:64]!r} does not have three '+'-separated parts")
        name, hex_id, key64 = parts
        _check_key_name(name)
        if _KEY_ID_HEX.fullmatch(hex_id) is None:
            raise NoteError(
                f"verifier key {name}: key ID {hex_id[:16]!r} is not 8 lowercase hex digits"
            )
        material = _b64decode(key64, f"verifier key {name} public key")
        if not material:
            raise NoteError(f"verifier key {name} has no key material")
        kind, raw = material[0], material[1:]
        if kind not in _KINDS:
            raise NoteError(f"verifier key {name}: unsupported signature type 0x{kind:02x}")
        if len(raw) != 32:
            raise NoteError(f"verifier key {name}: Ed25519 key must be 32 bytes, got {len(raw)}")
        want = key_hash(name, kind, raw)
        if want.hex() != hex_id:
            raise NoteError(
                f"verifier key {name}: key ID {hex_id} does not match its key (want {want.hex()})"
            )
        return cls(name, want, PublicKey(raw), kind)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_hash.hex()}+{_b64(bytes([self.kind]) + self.public_key.raw)}"

    @property
    def label(self) -> str:
        """``name+hexid``, how messages name this key."""
        return _key_label(self.name, self.key_hash)


def note_vkey(name: str, public_key: PublicKey) -> str:
    """The verifier key string of an Ed25519 note key (signature type 0x01)."""
    return Verifier.for_key(name, public_key, KIND_ED25519).vkey


def cosignature_vkey(name: str, public_key: PublicKey) -> str:
    """The verifier key string of an Ed25519 cosigner (signature type 0x04)."""
    return Verifier.for_key(name, public_key, KIND_COSIGNATURE_V1).vkey


# --- signed notes --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID and the signature bytes after it."""

    name: str
    key_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.key_hash) != _KEY_HASH_BYTES:
            raise NoteError(
                f"signature by {self.name}: key ID must be {_KEY_HASH_BYTES} bytes, "
                f"got {len(self.key_hash)}"
            )
        if not self.signature:
            raise NoteError(f"signature by {self.label} is empty")

    @property
    def label(self) -> str:
        return _key_label(self.name, self.key_hash)

    @property
    def line(self) -> str:
        return f"{_SIG_PREFIX}{self.name} {_b64(self.key_hash + self.signature)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A note text (ending in a newline) and its signatures, in the order they appear."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        if not self.text.endswith("\n"):
            raise NoteError("note text does not end with a newline")
        _check_text(self.text, "note text")


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise NoteError(
            f"signature line {number} does not start with an em dash and a space: {line[:64]!r}"
        )
    name, space, sig64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not space or not sig64:
        raise NoteError(f"signature line {number} has no signature: {line[:64]!r}")
    try:
        _check_key_name(name)
    except NoteError as e:
        raise NoteError(f"signature line {number}: {e}") from e
    raw = _b64decode(sig64, f"signature line {number} ({name})")
    if len(raw) <= _KEY_HASH_BYTES:
        raise NoteError(
            f"signature line {number} ({name}) is too short: {len(raw)} bytes, "
            f"need a {_KEY_HASH_BYTES}-byte key ID and a signature"
        )
    return NoteSignature(name, raw[:_KEY_HASH_BYTES], raw[_KEY_HASH_BYTES:])


def parse_note(data: str | bytes) -> Note:
    """Split a signed note into text and signatures, strictly per signed-note v1.0.0.

    Nothing is verified: use :func:`verify_note` before trusting the text.
    """
    text = _decode(data, "signed note")
    _check_text(text, "signed note")
    if not text.endswith("\n"):
        raise NoteError("signed note does not end with a newline")
    if text.endswith("\n\n"):
        raise NoteError("signed note ends with a blank line instead of a signature line")
    # The text is separated from the signatures by the last empty line; signature lines
    # are never empty, so that is the last "\n\n".
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteError("signed note has no blank line between text and signatures")
    body, block = text[: split + 1], text[split + 2 :]
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(
            f"signed note has {len(lines)} signatures, more than the limit of {MAX_SIGNATURES}"
        )
    signatures = tuple(_parse_signature_line(line, i) for i, line in enumerate(lines, 1))
    return Note(body, signatures)


def format_note(note: Note) -> str:
    """The signed note text: note text, a blank line, one line per signature."""
    if not note.signatures:
        raise NoteError("a signed note needs at least one signature")
    if len(note.signatures) > MAX_SIGNATURES:
        raise NoteError(
            f"note has {len(note.signatures)} signatures, more than the limit of {MAX_SIGNATURES}"
        )
    return note.text + "\n" + "".join(sig.line for sig in note.signatures)


def sign_note(text: str, name: str, signer: Signer) -> Note:
    """Sign ``text`` with an Ed25519 note signature (type 0x01) under key name ``name``."""
    note = Note(text)
    _check_key_name(name)
    signature = NoteSignature(
        name,
        key_hash(name, KIND_ED25519, signer.public_key.raw),
        signer.sign(text.encode("utf-8")),
    )
    return Note(note.text, (signature,))


def _cosigned_message(timestamp: int, body: str) -> bytes:
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n{body}".encode()


def _verify_cosignature(text: str, sig: NoteSignature, verifier: Verifier) -> int:
    """Verify a cosignature/v1 over checkpoint body ``text``; return its timestamp."""
    want = 8 + _ED25519_SIGNATURE_BYTES
    if len(sig.signature) != want:
        raise NoteError(
            f"cosignature by {verifier.label} is {len(sig.signature)} bytes, want {want}"
        )
    timestamp = int.from_bytes(sig.signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise NoteError(f"cosignature by {verifier.label} has timestamp {timestamp} > 2^63-1")
    try:
        verifier.public_key.verify(sig.signature[8:], _cosigned_message(timestamp, text))
    except BadSignatureError as e:
        raise NoteError(f"cosignature by {verifier.label} does not verify") from e
    return timestamp


def _verify_signature(text: str, sig: NoteSignature, verifier: Verifier) -> None:
    """Verify one signature by a known key over note ``text``, by the key's signature type."""
    if verifier.kind == KIND_COSIGNATURE_V1:
        _verify_cosignature(text, sig, verifier)
        return
    if len(sig.signature) != _ED25519_SIGNATURE_BYTES:
        raise NoteError(
            f"note signature by {verifier.label} is {len(sig.signature)} bytes, "
            f"want {_ED25519_SIGNATURE_BYTES}"
        )
    try:
        verifier.public_key.verify(sig.signature, text.encode("utf-8"))
    except BadSignatureError as e:
        raise NoteError(f"note signature by {verifier.label} does not verify") from e


def _verify_known(note: Note, verifiers: Iterable[Verifier]) -> list[Verifier]:
    """Verify every signature by a known key (name and key ID both match); ignore the rest.

    Returns the verifiers with a valid signature, once each, in signature order.
    """
    known = {(v.name, v.key_hash): v for v in verifiers}
    verified: list[Verifier] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_hash))
        if verifier is None:
            continue
        _verify_signature(note.text, sig, verifier)
        if verifier not in verified:
            verified.append(verifier)
    return verified


def verify_note(data: str | bytes, verifiers: Iterable[Verifier]) -> tuple[Note, list[Verifier]]:
    """Parse a signed note and verify it; return it and the verifiers whose signatures verified.

    Signatures by unknown keys are ignored. A bad signature by a known key, or no valid
    signature by any known key, raises NoteError.
    """
    note = parse_note(data)
    verified = _verify_known(note, verifiers)
    if not verified:
        signers = ", ".join(sig.label for sig in note.signatures)
        raise NoteError(f"note has no signature by a known key (signed by {signers})")
    return note, verified


def add_signatures(note_text: str, extra: Iterable[NoteSignature]) -> str:
    """Append signature lines to a signed note, e.g. witness cosignatures.

    A signature by a key (name and key ID) that already signed is skipped, so the first
    one wins and the order of the rest is kept. Nothing is verified.
    """
    note = parse_note(note_text)
    signatures = list(note.signatures)
    seen = {(sig.name, sig.key_hash) for sig in signatures}
    for sig in extra:
        if (sig.name, sig.key_hash) not in seen:
            seen.add((sig.name, sig.key_hash))
            signatures.append(sig)
    return format_note(Note(note.text, tuple(signatures)))


# --- checkpoints ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog-checkpoint note text: origin, tree size, root hash, optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin")
        if not 0 <= self.size < 1 << 64:
            raise NoteError(f"checkpoint tree size {self.size} is not a 64-bit unsigned integer")
        if len(self.root) != _HASH_BYTES:
            raise NoteError(
                f"checkpoint root hash must be {_HASH_BYTES} bytes, got {len(self.root)}"
            )
        for i, line in enumerate(self.extensions, 1):
            _check_line(line, f"checkpoint extension line {i}")

    @property
    def body(self) -> str:
        """The note text: the exact bytes a log signs and a witness cosigns."""
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), _b64(self.root), *self.extensions)
        )


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text (not the signed note): strict, one spelling per value."""
    if not text.endswith("\n"):
        raise NoteError("checkpoint text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(
            f"checkpoint has {len(lines)} line(s), needs origin, tree size and root hash"
        )
    origin, size, root, *extensions = lines
    if not origin:
        raise NoteError("checkpoint origin is empty")
    cp = Checkpoint(
        origin,
        _decimal(size, "checkpoint tree size"),
        _b64decode(root, "checkpoint root hash"),
        tuple(extensions),
    )
    if cp.body != text:  # cannot happen given the checks above; guards the signed bytes
        raise NoteError("checkpoint text is not in canonical form")
    return cp


def sign_checkpoint(cp: Checkpoint, signer: Signer, name: str | None = None) -> str:
    """The signed note of ``cp`` with a log signature; the key name defaults to the origin."""
    return format_note(sign_note(cp.body, cp.origin if name is None else name, signer))


def open_checkpoint(
    data: str | bytes,
    log_verifier: Verifier,
    witness_verifiers: Iterable[Verifier] = (),
    *,
    origin: str | None = None,
) -> tuple[Checkpoint, Note, list[Verifier]]:
    """Verify a signed checkpoint: the log's signature is required, known witnesses' are checked.

    Returns the checkpoint, the note, and the witnesses whose cosignatures verified. If
    ``origin`` is given, the checkpoint's origin must equal it.
    """
    note = parse_note(data)
    cp = parse_checkpoint(note.text)
    if origin is not None and cp.origin != origin:
        raise NoteError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    verified = _verify_known(note, [log_verifier, *witness_verifiers])
    if log_verifier not in verified:
        raise NoteError(
            f"checkpoint {cp.origin!r} size {cp.size} is not signed by log key {log_verifier.label}"
        )
    return cp, note, [v for v in verified if v != log_verifier]


# --- cosignatures --------------------------------------------------------------------


def cosign(cp: Checkpoint, signer: Signer, name: str, timestamp: int) -> NoteSignature:
    """A tlog-cosignature/v1 of ``cp`` at POSIX time ``timestamp`` by cosigner ``name``."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} is outside 0..2^63-1")
    _check_key_name(name)
    signature = signer.sign(_cosigned_message(timestamp, cp.body))
    return NoteSignature(
        name,
        key_hash(name, KIND_COSIGNATURE_V1, signer.public_key.raw),
        timestamp.to_bytes(8, "big") + signature,
    )


def verify_cosignature(cp: Checkpoint, sig: NoteSignature, verifier: Verifier) -> int:
    """Verify a cosignature/v1 of ``cp`` by ``verifier``; return its timestamp."""
    if verifier.kind != KIND_COSIGNATURE_V1:
        raise NoteError(
            f"verifier {verifier.label} is not a cosigner key: signature type "
            f"0x{verifier.kind:02x} ({_KINDS[verifier.kind]}), want 0x04 (cosignature/v1)"
        )
    if (sig.name, sig.key_hash) != (verifier.name, verifier.key_hash):
        raise NoteError(f"signature by {sig.label} is not by cosigner {verifier.label}")
    return _verify_cosignature(cp.body, sig, verifier)


# --- tlog-proof ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlogProof:
    """A c2sp.org/tlog-proof@v1 bundle: leaf index, inclusion path, signed checkpoint.

    ``extra`` is the optional opaque, unauthenticated extra data (empty: no extra line).
    The checkpoint is kept as the signed note text received, cosignatures included.
    """

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.index < 1 << 64:
            raise NoteError(f"tlog-proof index {self.index} is not a 64-bit unsigned integer")
        if len(self.hashes) > MAX_PROOF_HASHES:
            raise NoteError(
                f"tlog-proof has {len(self.hashes)} hashes, more than {MAX_PROOF_HASHES}"
            )
        for i, h in enumerate(self.hashes, 1):
            if len(h) != _HASH_BYTES:
                raise NoteError(f"tlog-proof hash {i} must be {_HASH_BYTES} bytes, got {len(h)}")
        try:
            parse_checkpoint(parse_note(self.checkpoint).text)
        except NoteError as e:
            raise NoteError(f"tlog-proof checkpoint: {e}") from e


def format_tlog_proof(p: TlogProof) -> str:
    lines = [TLOG_PROOF_HEADER]
    if p.extra:
        lines.append(f"extra {_b64(p.extra)}")
    lines.append(f"index {p.index}")
    lines.extend(_b64(h) for h in p.hashes)
    return "\n".join(lines) + "\n\n" + p.checkpoint


def parse_tlog_proof(text: str | bytes) -> TlogProof:
    """Parse a tlog-proof bundle. Nothing is verified: check the checkpoint and the path."""
    source = _decode(text, "tlog-proof")
    pos = 0

    def next_line(what: str) -> str:
        nonlocal pos
        end = source.find("\n", pos)
        if end < 0:
            raise NoteError(f"tlog-proof ends before its {what}")
        line, pos = source[pos:end], end + 1
        return line

    header = next_line("header line")
    if header != TLOG_PROOF_HEADER:
        raise NoteError(f"tlog-proof does not start with {TLOG_PROOF_HEADER!r}: {header[:64]!r}")
    line = next_line("index line")
    extra = b""
    if line.startswith("extra "):
        extra = _b64decode(line[len("extra ") :], "tlog-proof extra data")
        if not extra:
            raise NoteError("tlog-proof extra line has no data (omit the line instead)")
        line = next_line("index line")
    if not line.startswith("index "):
        raise NoteError(f"tlog-proof has no 'index <n>' line where expected: {line[:64]!r}")
    index = _decimal(line[len("index ") :], "tlog-proof index")
    hashes: list[bytes] = []
    while (line := next_line("blank line before the checkpoint")) != "":
        if len(hashes) == MAX_PROOF_HASHES:
            raise NoteError(f"tlog-proof has more than {MAX_PROOF_HASHES} hashes")
        h = _b64decode(line, f"tlog-proof hash {len(hashes) + 1}")
        if len(h) != _HASH_BYTES:
            raise NoteError(
                f"tlog-proof hash {len(hashes) + 1} must be {_HASH_BYTES} bytes, got {len(h)}"
            )
        hashes.append(h)
    return TlogProof(index, tuple(hashes), source[pos:], extra)
