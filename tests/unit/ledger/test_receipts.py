"""verify_receipt: what a sender checks before it logs a receiver's receipt. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exchange import envelope, messages
from exchange.errors import ReceiptError
from exchange.keys import Ed25519Signer
from exchange.ledger import merkle, note
from exchange.ledger.entries import Entry, EntryKind, Receipt
from exchange.ledger.receipts import envelope_digest, verify_receipt

ORIGIN = "bcx.example/bureau.fj"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _sent(signer: Ed25519Signer) -> envelope.Envelope:
    header = messages.Header(message_id=messages.new_message_id(NOW), sender="police.fj",
                             recipient="bureau.fj", created_at=NOW)
    body = messages.NumberReport(numbers=("+8615959000001",),
                                 category=messages.Category.FRAUD)
    payload = messages.encode_message(messages.Message(header, body))
    return envelope.sign(payload, envelope.PAYLOAD_TYPE_MESSAGE, signer)


def _receipt(log_key: Ed25519Signer, env: envelope.Envelope, digest: bytes) -> Receipt:
    """A one-leaf log whose RECEIVED leaf holds ``env`` under ``digest``, signed."""
    leaf = Entry(EntryKind.RECEIVED, "police.fj", NOW, message_id=b"\x01" * 16,
                 message_digest=digest, envelope=env.raw, subject="number_report").encode()
    root = merkle.leaf_hash(leaf)
    text = note.sign_checkpoint(note.Checkpoint(ORIGIN, 1, root), log_key)
    return Receipt(leaf=leaf, leaf_index=0, checkpoint=text, inclusion_proof=())


@pytest.mark.parametrize("caller_holds_digest", [True, False])
def test_a_receipt_logging_the_envelope_under_its_digest_verifies(
        caller_holds_digest: bool) -> None:
    sender, log_key = Ed25519Signer.generate(), Ed25519Signer.generate()
    env = _sent(sender)
    assert envelope_digest(env.raw) == env.digest
    cp = verify_receipt(_receipt(log_key, env, env.digest), envelope=env.raw,
                        sender="police.fj",
                        log_verifier=note.Verifier.for_key(ORIGIN, log_key.public_key),
                        origin=ORIGIN,
                        message_digest=env.digest if caller_holds_digest else None)
    assert (cp.origin, cp.size) == (ORIGIN, 1)


@pytest.mark.parametrize("caller_holds_digest", [True, False])
def test_a_receipt_whose_leaf_records_another_digest_is_refused(
        caller_holds_digest: bool) -> None:
    """A receiver that logged the right envelope under a wrong digest signed a leaf that
    lookups by digest (third parties' inclusion proofs) would never find."""
    sender, log_key = Ed25519Signer.generate(), Ed25519Signer.generate()
    env = _sent(sender)
    wrong = bytes(32)
    with pytest.raises(ReceiptError, match="different message digest"):
        verify_receipt(_receipt(log_key, env, wrong), envelope=env.raw, sender="police.fj",
                       log_verifier=note.Verifier.for_key(ORIGIN, log_key.public_key),
                       origin=ORIGIN,
                       message_digest=env.digest if caller_holds_digest else None)


def test_the_digest_of_an_envelope_that_does_not_parse_is_a_receipt_error() -> None:
    with pytest.raises(ReceiptError, match="does not parse"):
        envelope_digest(b"\xff\x00not an envelope")
