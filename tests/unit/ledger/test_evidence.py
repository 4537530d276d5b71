"""Evidence bundles: exported from a real ledger, verified offline against the CA alone,
and refused when any part of them is changed or swapped."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from exchange import envelope, messages, migrate, pki
from exchange.errors import (
    BadSignatureError,
    LedgerError,
    NoteError,
    ProofError,
    UnknownSignerError,
    VerificationError,
)
from exchange.keys import Ed25519Signer
from exchange.ledger import merkle, note
from exchange.ledger.entries import Entry, EntryKind
from exchange.ledger.evidence import (
    FORMAT,
    EvidenceError,
    EvidenceReport,
    check_header,
    dumps,
    evidence_bundle,
    export_evidence,
    verify_evidence,
)
from exchange.ledger.store import LedgerStore
from exchange.storage import engines
from exchange.storage.unitofwork import GroupCommitter

TD = "bcx.test"
SENDER, RECIPIENT, WITNESS = "police.fj", "telco.fj", "office.fj"
WITNESS_NAME = f"{TD}/{WITNESS}"
NOW = datetime.now(UTC)


@dataclass
class Node:
    files: pki.NodeFiles
    signer: Ed25519Signer

    @property
    def cert_pem(self) -> bytes:
        return self.files.signing_cert.read_bytes()


def issue(ca_dir: Path, node_id: str, out: Path) -> Node:
    files = pki.issue_node(ca_dir=ca_dir, node_id=node_id, out=out)
    return Node(files, Ed25519Signer.from_pem_file(files.signing_key))


@dataclass
class World:
    ca: x509.Certificate
    ca_pem: bytes
    sender: Node
    recipient: Node
    witness: Node
    impostor: Node  # the sender's node id, certified by another CA
    message_id: bytes
    env: envelope.Envelope
    tmp: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("pki")
    pki.init_ca(trust_domain=TD, out=root / "ca")
    pki.init_ca(trust_domain=TD, out=root / "other-ca")
    ca = pki.load_certificate(root / "ca" / "ca.pem")
    message_id = messages.new_message_id()
    payload = messages.encode_message(messages.Message(
        messages.Header(message_id=message_id, sender=SENDER, recipient=RECIPIENT,
                        created_at=NOW),
        messages.Circular(summary="numbers to be suspended"),
    ))
    sender = issue(root / "ca", SENDER, root / "sender")
    return World(
        ca=ca,
        ca_pem=(root / "ca" / "ca.pem").read_bytes(),
        sender=sender,
        recipient=issue(root / "ca", RECIPIENT, root / "recipient"),
        witness=issue(root / "ca", WITNESS, root / "witness"),
        impostor=issue(root / "other-ca", SENDER, root / "impostor"),
        message_id=message_id,
        env=envelope.sign(payload, envelope.PAYLOAD_TYPE_MESSAGE, sender.signer),
        tmp=root,
    )


def filler(i: int, peer: str) -> Entry:
    return Entry(EntryKind.ACTION, peer, NOW, message_id=i.to_bytes(16, "big"),
                 subject=f"filler {i}")


def make_ledger(path: Path, owner: Node, origin_node: str, entry: Entry,
                witness: Node | None = None) -> tuple[LedgerStore, int]:
    """A ledger with ``entry`` among fillers, over several batches; cosigned by ``witness``."""
    engine = engines.create_engine_for(f"sqlite:///{path}")
    migrate.upgrade(engine)
    store = LedgerStore(engine, origin=f"{TD}/{origin_node}", signer=owner.signer)
    committer = GroupCommitter(store)
    committer.start()
    try:
        for batch in ([filler(0, SENDER)], [filler(i, SENDER) for i in range(1, 6)],
                      [entry], [filler(i, SENDER) for i in range(6, 20)]):
            committer.run_sync(lambda txn, batch=batch: [txn.append(e) for e in batch])
        index = store.find(message_id=entry.message_id)[0]
        if witness is not None:
            latest = store.latest
            assert latest is not None
            cp = note.parse_checkpoint(note.parse_note(latest.note).text)
            sig = note.cosign(cp, witness.signer, WITNESS_NAME, 1_700_000_000)
            committer.run_sync(lambda txn: store.add_cosignature(
                txn.conn, size=cp.size, witness=WITNESS_NAME, line=sig.line,
                timestamp=1_700_000_000))
    finally:
        committer.stop()
    return store, index


def received(world: World, **changes: Any) -> Entry:
    e = Entry(EntryKind.RECEIVED, SENDER, NOW, message_id=world.message_id,
              message_digest=world.env.digest, envelope=world.env.raw, subject="circular")
    return dataclasses.replace(e, **changes)


@pytest.fixture
def receiver_ledger(world: World, tmp_path: Path) -> Iterator[tuple[LedgerStore, int]]:
    store, index = make_ledger(tmp_path / "n.db", world.recipient, RECIPIENT, received(world),
                               world.witness)
    yield store, index
    store.engine.dispose()


def export(world: World, store: LedgerStore, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "message_id": world.message_id,
        "signer_certificate_pem": world.sender.cert_pem,
        "log_certificate_pem": world.recipient.cert_pem,
        "log_public_key": world.recipient.signer.public_key,
        "witnesses": {WITNESS_NAME: world.witness.signer.public_key,
                      f"{TD}/absent.fj": Ed25519Signer.generate().public_key},
        "ca_pem": world.ca_pem,
    }
    args.update(kw)
    return export_evidence(store, **args)


@pytest.fixture
def bundle(world: World, receiver_ledger: tuple[LedgerStore, int]) -> dict[str, Any]:
    return export(world, receiver_ledger[0])


# --- exporting and verifying ----------------------------------------------------------


def test_exported_bundle_verifies(world: World, bundle: dict[str, Any],
                                  receiver_ledger: tuple[LedgerStore, int]) -> None:
    store, index = receiver_ledger
    assert set(bundle) == {
        "format", "message_id", "envelope", "signer_public_key", "signer_certificate",
        "leaf", "tlog_proof", "log_certificate", "checkpoint_keys", "witness_keys",
    }
    assert bundle["format"] == FORMAT == "bcx-evidence/v1"
    assert bundle["message_id"] == world.message_id.hex()
    assert bundle["envelope"] == world.env.to_json()
    assert base64.b64decode(bundle["leaf"]) == store.leaf(index)
    assert bundle["checkpoint_keys"] == [
        note.Verifier.for_key(f"{TD}/{RECIPIENT}", world.recipient.signer.public_key).vkey
    ]
    assert bundle["witness_keys"] == [
        note.cosignature_vkey(WITNESS_NAME, world.witness.signer.public_key)
    ]
    proof = note.parse_tlog_proof(bundle["tlog_proof"])
    assert (proof.index, len(proof.hashes)) == (index, 5)
    assert proof.checkpoint == store.latest_cosigned_checkpoint()

    # What a reader gets is the JSON text: verify that, with nothing but the CA.
    report = verify_evidence(json.loads(dumps(bundle)), ca=world.ca)
    assert report == EvidenceReport(
        message_id=world.message_id,
        sender=SENDER,
        recipient=RECIPIENT,
        digest=envelope.payload_digest(world.env.payload),
        kind=EntryKind.RECEIVED,
        log_origin=f"{TD}/{RECIPIENT}",
        leaf_index=index,
        checkpoint_size=21,
        witnesses=(WITNESS_NAME,),
    )


def test_sender_ledger_proves_sending(world: World, tmp_path: Path) -> None:
    sent = received(world, kind=EntryKind.SENT, peer=RECIPIENT)
    store, index = make_ledger(tmp_path / "s.db", world.sender, SENDER, sent)
    bundle = export(world, store, log_certificate_pem=world.sender.cert_pem,
                    log_public_key=world.sender.signer.public_key)
    assert bundle["witness_keys"] == []
    report = verify_evidence(bundle, ca=world.ca)
    assert (report.kind, report.log_origin, report.leaf_index, report.witnesses) == (
        EntryKind.SENT, f"{TD}/{SENDER}", index, ())
    store.engine.dispose()


def test_leaf_holding_only_the_digest(world: World, tmp_path: Path) -> None:
    store, _ = make_ledger(tmp_path / "n.db", world.recipient, RECIPIENT,
                           received(world, envelope=b""))
    with pytest.raises(LedgerError, match="holds only the message's digest"):
        export(world, store)
    bundle = export(world, store, envelope=world.env.raw)
    assert verify_evidence(bundle, ca=world.ca).digest == world.env.digest
    store.engine.dispose()


def test_export_of_an_unknown_message_fails(world: World,
                                            receiver_ledger: tuple[LedgerStore, int]) -> None:
    with pytest.raises(LedgerError, match="holds no SENT or RECEIVED entry for message 00"):
        export(world, receiver_ledger[0], message_id=bytes(16))


def test_export_refuses_a_bundle_that_would_not_verify(
        world: World, receiver_ledger: tuple[LedgerStore, int]) -> None:
    with pytest.raises(UnknownSignerError, match="signer_certificate is not trusted"):
        export(world, receiver_ledger[0], signer_certificate_pem=world.impostor.cert_pem)


def test_witnesses_are_reported_only_when_their_key_is_listed(
        world: World, bundle: dict[str, Any]) -> None:
    bundle["witness_keys"] = []
    assert verify_evidence(bundle, ca=world.ca).witnesses == ()


def test_certificates_are_checked_at_the_given_time(world: World,
                                                    bundle: dict[str, Any]) -> None:
    with pytest.raises(UnknownSignerError, match=r"signer_certificate is not trusted: .*expired"):
        verify_evidence(bundle, ca=world.ca, now=NOW + timedelta(days=3650))


# --- tampering --------------------------------------------------------------------------


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def edit_proof(bundle: dict[str, Any], **changes: Any) -> None:
    proof = note.parse_tlog_proof(bundle["tlog_proof"])
    bundle["tlog_proof"] = note.format_tlog_proof(dataclasses.replace(proof, **changes))


def edit_leaf(bundle: dict[str, Any], **changes: Any) -> None:
    entry = Entry.decode(base64.b64decode(bundle["leaf"]))
    bundle["leaf"] = b64(dataclasses.replace(entry, **changes).encode())


def resign_checkpoint(bundle: dict[str, Any], signer: Ed25519Signer) -> None:
    proof = note.parse_tlog_proof(bundle["tlog_proof"])
    cp = note.parse_checkpoint(note.parse_note(proof.checkpoint).text)
    edit_proof(bundle, checkpoint=note.sign_checkpoint(cp, signer))


def impersonate(bundle: dict[str, Any], world: World) -> None:
    """The sender's node id with a key from another CA: re-sign the same payload."""
    forged = envelope.sign(world.env.payload, world.env.payload_type, world.impostor.signer)
    bundle["envelope"] = forged.to_json()
    bundle["signer_certificate"] = world.impostor.cert_pem.decode()
    bundle["signer_public_key"] = world.impostor.signer.public_key.to_pem().decode()


def swap_log_key(bundle: dict[str, Any], world: World) -> None:
    """Another key signs the checkpoint and is listed as the log's key."""
    other = Ed25519Signer.generate()
    resign_checkpoint(bundle, other)
    bundle["checkpoint_keys"] = [note.Verifier.for_key(f"{TD}/{RECIPIENT}", other.public_key).vkey]


Change = Callable[[dict[str, Any], World], None]

CASES: list[tuple[str, Change, type[VerificationError], str]] = [
    ("payload altered",
     lambda b, w: b["envelope"].update(payload=b64(flip(w.env.payload, 30))),
     BadSignatureError, r"does not verify over the payload \(altered or forged\)"),
    ("signature altered",
     lambda b, w: b["envelope"]["signatures"][0].update(
         sig=b64(flip(w.env.signatures[0].sig, 3))),
     BadSignatureError, r"does not verify over the payload"),
    ("signature removed",
     lambda b, w: b["envelope"].update(signatures=[]),
     BadSignatureError, r"^envelope has no signature by key"),
    ("leaf altered",
     lambda b, w: edit_leaf(b, logged_at=NOW + timedelta(seconds=1)),
     ProofError, r"^root mismatch: inclusion proof for index 6 in size 21"),
    ("leaf byte flipped",
     lambda b, w: b.update(leaf=b64(flip(base64.b64decode(b["leaf"]),
                                         base64.b64decode(b["leaf"]).find(b"vnd.bcx")))),
     EvidenceError, r"^leaf holds an envelope that does not parse: unknown payload type "
                    r"'application/wnd\.bcx"),
    ("leaf of another envelope",
     lambda b, w: edit_leaf(b, envelope=envelope.sign(w.env.payload, w.env.payload_type,
                                                      w.witness.signer).raw),
     EvidenceError, r"^leaf holds a different envelope than the bundle's$"),
    ("leaf with another digest",
     lambda b, w: edit_leaf(b, message_digest=bytes(32), envelope=b""),
     EvidenceError, r"^leaf records message digest 0{64}, but the envelope's payload has"),
    ("leaf of another message",
     lambda b, w: edit_leaf(b, message_id=bytes(16)),
     EvidenceError, r"^leaf records message 0{32}, not [0-9a-f]{32}$"),
    ("leaf not about a message",
     lambda b, w: edit_leaf(b, kind=EntryKind.ACTION),
     EvidenceError, r"^leaf is an entry of kind ACTION, not SENT or RECEIVED$"),
    ("leaf names another sender",
     lambda b, w: edit_leaf(b, peer=WITNESS),
     EvidenceError, r"^RECEIVED leaf names peer 'office\.fj', expected 'police\.fj'$"),
    ("leaf claims the sender logged it",
     lambda b, w: edit_leaf(b, kind=EntryKind.SENT),
     EvidenceError, r"belongs in the ledger of 'police\.fj', but the log is 'telco\.fj'$"),
    ("proof hash altered",
     lambda b, w: edit_proof(b, hashes=(flip(note.parse_tlog_proof(b["tlog_proof"]).hashes[0],
                                             0), *note.parse_tlog_proof(b["tlog_proof"]).hashes[1:])),
     ProofError, r"^root mismatch: inclusion proof for index 6 in size 21"),
    ("proof index changed",
     lambda b, w: edit_proof(b, index=7),
     ProofError, r"^root mismatch"),
    ("proof hash dropped",
     lambda b, w: edit_proof(b, hashes=note.parse_tlog_proof(b["tlog_proof"]).hashes[1:]),
     ProofError, r"^inclusion proof has 4 hashes, expected 5"),
    ("checkpoint from another key",
     lambda b, w: resign_checkpoint(b, Ed25519Signer.generate()),
     NoteError, r"^checkpoint 'bcx\.test/telco\.fj' size 21 is not signed by log key"),
    ("checkpoint and log key swapped",
     swap_log_key,
     EvidenceError, r"^checkpoint key bcx\.test/telco\.fj\+[0-9a-f]{8} is not the key "
                    r"log_certificate certifies"),
    ("cosignature altered",
     lambda b, w: b.update(tlog_proof=b["tlog_proof"][:-10] + ("A" if b["tlog_proof"][-10] != "A"
                                                               else "B") + b["tlog_proof"][-9:]),
     NoteError, r"^cosignature by bcx\.test/office\.fj\+[0-9a-f]{8} does not verify$"),
    ("log certificate of another node",
     lambda b, w: b.update(log_certificate=w.sender.cert_pem.decode()),
     EvidenceError, r"^checkpoint_keys hold no key for log 'bcx\.test/police\.fj'"),
    ("log certificate from another CA",
     lambda b, w: b.update(log_certificate=w.impostor.cert_pem.decode()),
     UnknownSignerError, r"^log_certificate is not trusted: .*was not issued by the exchange CA"),
    ("signer certificate from another CA",
     impersonate,
     UnknownSignerError, r"^signer_certificate is not trusted: certificate serial [0-9a-f]+ "
                         r"\(CN=police\.fj\) was not issued by the exchange CA"),
    ("signer key not matching its certificate",
     lambda b, w: b.update(signer_public_key=w.witness.signer.public_key.to_pem().decode()),
     EvidenceError, r"^signer_public_key \(key id [0-9a-f]{16}\) is not the key of "
                    r"signer_certificate \(key id [0-9a-f]{16}, node police\.fj\)$"),
    ("signed by another member",
     lambda b, w: b.update(
         envelope=envelope.sign(w.env.payload, w.env.payload_type, w.witness.signer).to_json(),
         signer_certificate=w.witness.cert_pem.decode(),
         signer_public_key=w.witness.signer.public_key.to_pem().decode()),
     EvidenceError, r"names sender 'police\.fj' but was signed by node 'office\.fj'$"),
    ("message id changed",
     lambda b, w: b.update(message_id="00" * 16),
     EvidenceError, r"^bundle is for message 0{32} but its envelope holds message"),
    ("format unknown",
     lambda b, w: b.update(format="bcx-evidence/v0"),
     EvidenceError, r"^evidence bundle format is 'bcx-evidence/v0', expected"),
    ("field missing",
     lambda b, w: b.pop("log_certificate"),
     EvidenceError, r"^evidence bundle has no 'log_certificate'$"),
    ("field of the wrong type",
     lambda b, w: b.update(checkpoint_keys="not a list"),
     EvidenceError, r"^evidence bundle 'checkpoint_keys' is a str, expected list$"),
    ("leaf not base64",
     lambda b, w: b.update(leaf="***"),
     EvidenceError, r"^leaf is not valid base64$"),
]


@pytest.mark.parametrize(("change", "error", "message"),
                         [pytest.param(c[1], c[2], c[3], id=c[0]) for c in CASES])
def test_changed_bundle_is_refused(world: World, bundle: dict[str, Any], change: Change,
                                   error: type[VerificationError], message: str) -> None:
    verify_evidence(bundle, ca=world.ca)
    changed = copy.deepcopy(bundle)
    change(changed, world)
    assert changed != bundle
    with pytest.raises(error, match=message):
        verify_evidence(changed, ca=world.ca)


# --- the pure pieces ------------------------------------------------------------------------

MESSAGE_ID = bytes(range(16))


@pytest.mark.parametrize(("message_id", "sender", "signer", "error"), [
    (MESSAGE_ID, SENDER, SENDER, None),
    (bytes(16), SENDER, SENDER,
     rf"^bundle is for message {'00' * 16} but its envelope holds message {MESSAGE_ID.hex()}$"),
    (MESSAGE_ID, SENDER, "police.gd",
     rf"^message {MESSAGE_ID.hex()} names sender 'police\.fj' but was signed by node "
     r"'police\.gd'$"),
    (bytes(16), SENDER, "police.gd", r"^bundle is for message"),
])
def test_check_header(message_id: bytes, sender: str, signer: str, error: str | None) -> None:
    header = messages.Header(message_id=MESSAGE_ID, sender=sender, recipient=RECIPIENT,
                             created_at=NOW)
    if error is None:
        check_header(header, message_id=message_id, signer=signer)
    else:
        with pytest.raises(EvidenceError, match=error):
            check_header(header, message_id=message_id, signer=signer)


def test_evidence_bundle_holds_the_documented_fields(world: World) -> None:
    import exchange.ledger.evidence as module

    assert module.__doc__ is not None
    documented = re.findall(r"^    (\w+) {2,}", module.__doc__, flags=re.MULTILINE)
    log_verifier = note.Verifier.for_key(f"{TD}/{RECIPIENT}", world.recipient.signer.public_key)
    checkpoint = note.sign_checkpoint(
        note.Checkpoint(f"{TD}/{RECIPIENT}", 1, merkle.leaf_hash(b"leaf")),
        world.recipient.signer)
    proof = note.TlogProof(0, (), checkpoint)
    bundle = evidence_bundle(
        message_id=world.message_id, envelope=world.env,
        signer_certificate_pem=world.sender.cert_pem, leaf=b"leaf", proof=proof,
        log_certificate_pem=world.recipient.cert_pem, checkpoint_keys=[log_verifier],
        witness_keys=[],
    )
    assert list(bundle) == documented
    assert bundle["format"] == FORMAT
    assert bundle["leaf"] == base64.b64encode(b"leaf").decode()
    assert bundle["checkpoint_keys"] == [log_verifier.vkey]
    assert bundle["witness_keys"] == []
    assert bundle["tlog_proof"] == note.format_tlog_proof(proof)
    assert bundle["signer_public_key"] == world.sender.signer.public_key.to_pem().decode()
