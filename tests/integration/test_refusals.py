"""Every refusal of docs/messages.md#how-a-receiver-checks-a-message, over real mutual
TLS on loopback.

One case table (exchange/transport/status.py documents the same table): each row sends
one call to a running bureau.fj and names the exact gRPC status and a pattern its
details must match; after every refusal the bureau's accepted state — ledger size,
latest checkpoint, inbox — must be what it was before the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from fedharness import make_federation, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from exchange import envelope, identity, messages, pki
from exchange.config import NodeConfig
from exchange.keys import Signer
from exchange.ledger import note
from exchange.ledger.entries import Receipt
from exchange.ledger.receipts import log_origin, verify_receipt
from exchange.ledger.store import SignedCheckpoint
from exchange.node import Node
from exchange.schema import inbox
from exchange.storage.engines import sqlite_url
from exchange.transport.server import TLSMaterial
from exchange.transport.status import REFUSED_FOR_GOOD_METADATA
from exchange.wire.bcx.v1 import envelope_pb2, service_pb2, service_pb2_grpc
from nodes.federation import build_directory, sign_with_office

pytestmark = pytest.mark.network

OFFICE = "office.cn"
POLICE = "police.fj"
BUREAU = "bureau.fj"
CMCC = "cmcc.fj"
STRANGER = "stranger.fj"  # a certificate of the exchange CA, but not in the directory
OTHER_CA = "other-ca"  # police.fj's name on a certificate of another CA
NO_CERT = "no-cert"  # a client that presents no certificate at all

ENVELOPE_LIMIT = 65_536  # bureau.fj's [limits] max_envelope_bytes in this module
EVIDENCE = "seen selling unregistered cards at the night market"
NUMBER = "+8615959000001"
CALL_TIMEOUT = 10.0

Code = grpc.StatusCode


# --- the federation, built once per module (PKI and signed directories) ---------------------


@dataclass(frozen=True)
class World:
    workspace: Path
    bureau_config: Path
    trust_domain: str
    ca_pem: bytes
    signers: dict[str, Signer]
    tls: dict[str, TLSMaterial]
    bureau_log: note.Verifier
    # Version 2 of the directory: police.fj's auth certificate revoked / its signing key retired.
    revoking_police_cert: identity.SignedDirectory
    retiring_police_key: identity.SignedDirectory


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("federation")
    fed = make_federation(root)
    config = fed.config(BUREAU)
    text = config.read_text()
    assert "[limits]\n" in text
    config.write_text(text.replace("[limits]\n", f"[limits]\nmax_envelope_bytes = {ENVELOPE_LIMIT}\n",
                                   1))
    now = datetime.now(UTC)
    ca = pki.load_certificate(fed.ca_cert)
    ca_pem = fed.ca_cert.read_bytes()
    creds = {n: pki.load_node_credentials(root / n / "keys", ca=ca, now=now)
             for n in (OFFICE, POLICE, BUREAU, CMCC)}
    tls = {n: TLSMaterial(c.tls_cert_pem, c.tls_key_pem, ca_pem) for n, c in creds.items()}

    pki.issue_node(ca_dir=root / "pki", node_id=STRANGER, out=root / STRANGER / "keys")
    stranger = pki.load_node_credentials(root / STRANGER / "keys", ca=ca, now=now)
    tls[STRANGER] = TLSMaterial(stranger.tls_cert_pem, stranger.tls_key_pem, ca_pem)

    other = pki.init_ca(trust_domain=fed.trust_domain, out=root / "other-pki")
    pki.issue_node(ca_dir=root / "other-pki", node_id=POLICE, out=root / "other-police")
    impostor = pki.load_node_credentials(root / "other-police",
                                         ca=pki.load_certificate(other.cert), now=now)
    # The impostor trusts our CA, so it could reach the server: only its own cert is foreign.
    tls[OTHER_CA] = TLSMaterial(impostor.tls_cert_pem, impostor.tls_key_pem, ca_pem)

    v1 = identity.verify_directory(
        identity.SignedDirectory.from_bytes(fed.directory_file.read_bytes()),
        ca=ca, office_id=OFFICE, now=now)
    police = v1.member(POLICE)

    def v2(**kw: object) -> identity.SignedDirectory:
        d = build_directory(trust_domain=v1.trust_domain, members=v1.members, version=2, **kw)  # type: ignore[arg-type]
        return sign_with_office(d, root / OFFICE / "keys", ca)

    return World(
        workspace=root,
        bureau_config=config,
        trust_domain=fed.trust_domain,
        ca_pem=ca_pem,
        signers={n: c.signer for n, c in creds.items()},
        tls=tls,
        bureau_log=note.Verifier.for_key(log_origin(fed.trust_domain, BUREAU),
                                         creds[BUREAU].signer.public_key),
        revoking_police_cert=v2(revoked_cert_serials=[creds[POLICE].identity.serial_hex]),
        retiring_police_key=v2(retired_signing_keys=[police.signing_key.raw]),
    )


class Clock:
    """The bureau's clock: real time plus an offset a test can move."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@contextlib.asynccontextmanager
async def serving(world: World, db: Path | str, clock: Clock | None = None
                  ) -> AsyncIterator[tuple[Node, int]]:
    """bureau.fj with a fresh database of its own (an SQLite file or a database URL),
    listening on a free loopback port."""
    config = NodeConfig.from_file(world.bureau_config)
    assert config.limits.max_envelope_bytes == ENVELOPE_LIMIT
    url = db if isinstance(db, str) else sqlite_url(db)
    config = replace(config, database_url=url, listen="127.0.0.1:0")
    node = Node.open(config, clock=clock)
    async with running(node) as (rn,):
        yield node, rn.port


def dial(world: World, port: int, client: str) -> grpc.aio.Channel:
    if client == NO_CERT:
        credentials = grpc.ssl_channel_credentials(root_certificates=world.ca_pem)
    else:
        tls = world.tls[client]
        credentials = grpc.ssl_channel_credentials(
            root_certificates=world.ca_pem, private_key=tls.key_pem,
            certificate_chain=tls.cert_pem)
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=[
        ("grpc.ssl_target_name_override", BUREAU),
        ("grpc.max_send_message_length", 8 * 1024 * 1024),
    ])


@dataclass(frozen=True)
class State:
    size: int
    latest: SignedCheckpoint | None
    inbox_rows: int


def state(node: Node) -> State:
    with node.reader.connect() as conn:
        rows = int(conn.scalar(select(func.count()).select_from(inbox)) or 0)
    return State(node.store.size, node.store.latest, rows)


# --- envelopes -----------------------------------------------------------------------------


def withdrawal(numbers: tuple[str, ...]) -> messages.Withdrawal:
    return messages.Withdrawal(withdrawn_message_id=bytes(16), reason="entered in error",
                               numbers=numbers)


def report(numbers: tuple[str, ...] = (NUMBER,), evidence: str = EVIDENCE
           ) -> messages.NumberReport:
    return messages.NumberReport(numbers=numbers, category=messages.Category.FRAUD,
                                 case_number="FJ-2024-0117", evidence_summary=evidence,
                                 confidence=80)


def sealed(world: World, *, body: messages.Body | None = None, signer: str = POLICE,
           sender: str | None = None, recipient: str = BUREAU,
           created_at: datetime | None = None, expires_at: datetime | None = None,
           message_id: bytes | None = None) -> bytes:
    """A DSSE envelope signed by ``signer``'s key whose header names ``sender``."""
    created = created_at or datetime.now(UTC)
    header = messages.Header(
        message_id=message_id or messages.new_message_id(created), sender=sender or signer,
        recipient=recipient, created_at=created, expires_at=expires_at)
    payload = messages.encode_message(messages.Message(header, body or report()))
    return envelope.sign(payload, envelope.PAYLOAD_TYPE_MESSAGE, world.signers[signer]).raw


def reframed(raw: bytes, edit: Callable[[envelope_pb2.Envelope], None]) -> bytes:
    pb = envelope_pb2.Envelope.FromString(raw)
    edit(pb)
    return pb.SerializeToString()


def flipped_signature(world: World) -> bytes:
    def edit(pb: envelope_pb2.Envelope) -> None:
        sig = bytearray(pb.signatures[0].sig)
        sig[10] ^= 0x01
        pb.signatures[0].sig = bytes(sig)
    return reframed(sealed(world), edit)


def unsigned(world: World) -> bytes:
    return reframed(sealed(world), lambda pb: pb.ClearField("signatures"))


def altered_payload(world: World) -> bytes:
    """One letter of evidence_summary changed after signing; the payload still decodes."""
    def edit(pb: envelope_pb2.Envelope) -> None:
        at = pb.payload.index(b"night market")
        altered = pb.payload[:at] + b"N" + pb.payload[at + 1:]
        assert messages.decode_message(altered).body.evidence_summary == \
            EVIDENCE.replace("night", "Night")  # type: ignore[union-attr]
        pb.payload = altered
    return reframed(sealed(world), edit)


def truncated(world: World) -> bytes:
    raw = sealed(world)
    return raw[: len(raw) // 2]


def garbage(world: World) -> bytes:
    # A field tag of 0 can never start a protobuf field.
    return b"\x00\x9c\x8b\x7f garbage, not an envelope \xff\xfe" * 4


def oversize(world: World) -> bytes:
    raw = sealed(world, body=report(evidence="x" * (ENVELOPE_LIMIT + 10_000)))
    assert ENVELOPE_LIMIT < len(raw) < ENVELOPE_LIMIT + 64 * 1024  # under gRPC's own limit
    return raw


def skewed(delta: timedelta) -> Callable[[World], bytes]:
    return lambda world: sealed(world, created_at=datetime.now(UTC) + delta)


# --- the case table --------------------------------------------------------------------------

Setup = Callable[[Node, Clock, World], Awaitable[None]]


async def adopt_revoking_directory(node: Node, clock: Clock, world: World) -> None:
    await node.replace_directory(world.revoking_police_cert)


async def adopt_retiring_directory(node: Node, clock: Clock, world: World) -> None:
    await node.replace_directory(world.retiring_police_key)


async def jump_past_directory_expiry(node: Node, clock: Clock, world: World) -> None:
    clock.offset = node.directory.expires_at - datetime.now(UTC) + timedelta(minutes=1)


@dataclass(frozen=True)
class Refusal:
    id: str
    code: grpc.StatusCode
    details: str  # regular expression, searched in the status details
    make: Callable[[World], bytes] = sealed
    client: str = POLICE
    setup: Setup | None = None
    call: str = "deliver"  # or "checkpoint": Ledger.GetCheckpoint
    # Final although its status alone reads "try again": the answer says so (status.py).
    refused_for_good: bool = False


# The server ends the TLS handshake: the client sees the connection fail, not a status of ours.
HANDSHAKE = r"failed to connect to all addresses"

REFUSALS = (
    Refusal("no-client-certificate", Code.UNAVAILABLE, HANDSHAKE, client=NO_CERT),
    Refusal("certificate-of-another-ca", Code.UNAVAILABLE, HANDSHAKE, client=OTHER_CA),
    Refusal("revoked-certificate", Code.UNAUTHENTICATED,
            r"certificate serial [0-9a-f]+ of police\.fj is revoked",
            setup=adopt_revoking_directory),
    Refusal("retired-signing-key", Code.UNAUTHENTICATED,
            r"signing key of police\.fj has been retired", setup=adopt_retiring_directory),
    Refusal("peer-not-in-directory", Code.UNAUTHENTICATED,
            r"peer 'stranger\.fj' is not a member of the directory", client=STRANGER),
    Refusal("peer-not-in-directory-ledger", Code.UNAUTHENTICATED,
            r"peer 'stranger\.fj' is not a member of the directory", client=STRANGER,
            call="checkpoint"),
    Refusal("peer-is-not-the-sender", Code.PERMISSION_DENIED,
            r"connection is from police\.fj, but the message is signed by sender cmcc\.fj",
            make=lambda world: sealed(world, signer=CMCC)),
    Refusal("unknown-sender", Code.UNAUTHENTICATED,
            r"sender 'ghost\.fj' is not a member of the directory",
            make=lambda world: sealed(world, sender="ghost.fj")),
    Refusal("bad-signature", Code.UNAUTHENTICATED,
            r"signature by key [0-9a-f]{16} does not verify", make=flipped_signature),
    Refusal("missing-signature", Code.UNAUTHENTICATED, r"envelope carries no signature",
            make=unsigned),
    Refusal("payload-altered-after-signing", Code.UNAUTHENTICATED,
            r"does not verify over the payload \(altered or forged\)", make=altered_payload),
    Refusal("garbage-envelope", Code.INVALID_ARGUMENT, r"envelope does not decode",
            make=garbage),
    Refusal("truncated-envelope", Code.INVALID_ARGUMENT, r"envelope does not decode",
            make=truncated),
    Refusal("over-the-size-limit", Code.RESOURCE_EXHAUSTED,
            rf"envelope is \d+ bytes, over the limit of {ENVELOPE_LIMIT}", make=oversize,
            refused_for_good=True),
    Refusal("recipient-is-not-this-node", Code.FAILED_PRECONDITION,
            r"message is addressed to 'cmcc\.fj', not to bureau\.fj",
            make=lambda world: sealed(world, recipient=CMCC)),
    Refusal("created-at-10-minutes-ahead", Code.OUT_OF_RANGE,
            r"created_at .* is more than 300s from this node's clock",
            make=skewed(timedelta(minutes=10))),
    Refusal("created-at-10-minutes-behind", Code.OUT_OF_RANGE,
            r"created_at .* is more than 300s from this node's clock",
            make=skewed(timedelta(minutes=-10))),
    Refusal("message-expired", Code.OUT_OF_RANGE, r"message expired at ",
            make=lambda world: sealed(world, expires_at=datetime.now(UTC) - timedelta(seconds=1))),
    Refusal("role-may-not-send-this-body", Code.PERMISSION_DENIED,
            r"a police \(police\.fj\) may not send shutdown_notice to a bureau \(bureau\.fj\)",
            make=lambda world: sealed(world, body=messages.ShutdownNotice(
                numbers=(NUMBER,), legal_basis="art. 1",
                deadline=datetime.now(UTC) + timedelta(hours=24)))),
    # A number report carries numbers as found (the bureau answers per number); a
    # withdrawal lists numbers its sender already knows in E.164, and a bad one refuses it.
    Refusal("number-not-in-e164-form", Code.INVALID_ARGUMENT,
            # The number is masked in what the peer is told (status.redact).
            r"withdrawal: number '…2345' is not in E\.164 form \(…2345\)$",
            make=lambda world: sealed(world, body=withdrawal(("13959112345",)))),
    Refusal("number-not-a-mobile-number", Code.INVALID_ARGUMENT,
            r"withdrawal: '\+861100000000': not a mainland mobile number",
            make=lambda world: sealed(world, body=withdrawal(("+861100000000",)))),
    Refusal("reported-number-empty", Code.INVALID_ARGUMENT,
            r"number_report: a reported number must be 1 to 64 characters, got 0",
            make=lambda world: sealed(world, body=report(numbers=("",)))),
    Refusal("directory-expired", Code.UNAVAILABLE,
            r"directory version 1 expired at .*; refusing traffic",
            setup=jump_past_directory_expiry),
    Refusal("directory-expired-ledger", Code.UNAVAILABLE,
            r"directory version 1 expired at .*; refusing traffic",
            setup=jump_past_directory_expiry, call="checkpoint"),
)


@pytest.mark.parametrize("case", REFUSALS, ids=[r.id for r in REFUSALS])
def test_refusal(case: Refusal, world: World, db_url: str) -> None:
    raw = case.make(world)

    async def scenario() -> None:
        clock = Clock()
        async with serving(world, db_url, clock) as (node, port):
            if case.setup is not None:
                await case.setup(node, clock, world)
            before = state(node)
            async with dial(world, port, case.client) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    if case.call == "deliver":
                        await service_pb2_grpc.ExchangeStub(channel).Deliver(
                            service_pb2.DeliverRequest(envelope=raw), timeout=CALL_TIMEOUT)
                    else:
                        await service_pb2_grpc.LedgerStub(channel).GetCheckpoint(
                            service_pb2.GetCheckpointRequest(), timeout=CALL_TIMEOUT)
            error = refused.value
            assert error.code() == case.code, error.details()
            assert re.search(case.details, error.details() or ""), error.details()
            trailers = dict(error.trailing_metadata() or ())
            assert (trailers.get(REFUSED_FOR_GOOD_METADATA) == "1") is case.refused_for_good
            assert state(node) == before

    asyncio.run(scenario())


# --- idempotent delivery -------------------------------------------------------------------------


async def deliver(channel: grpc.aio.Channel, raw: bytes) -> service_pb2.DeliverResponse:
    return await service_pb2_grpc.ExchangeStub(channel).Deliver(
        service_pb2.DeliverRequest(envelope=raw), timeout=CALL_TIMEOUT)


def check_receipt(world: World, pb: object, raw: bytes) -> None:
    verify_receipt(Receipt.from_pb(pb), envelope=raw, sender=POLICE,  # type: ignore[arg-type]
                   log_verifier=world.bureau_log, origin=log_origin(world.trust_domain, BUREAU))


def test_a_valid_message_is_accepted_with_a_receipt(world: World, db_url: str) -> None:
    """The control for the table: what each row changes, unchanged, is accepted."""
    async def scenario() -> None:
        async with serving(world, db_url) as (node, port), \
                dial(world, port, POLICE) as channel:
            before = state(node)
            raw = sealed(world)
            response = await deliver(channel, raw)
            check_receipt(world, response.receipt, raw)
            after = state(node)
            assert (after.size, after.inbox_rows) == (before.size + 1, before.inbox_rows + 1)

    asyncio.run(scenario())


def test_duplicate_message_id_gets_the_first_receipt_back(world: World, db_url: str) -> None:
    async def scenario() -> None:
        async with serving(world, db_url) as (node, port), \
                dial(world, port, POLICE) as channel:
            raw = sealed(world)
            first = await deliver(channel, raw)
            check_receipt(world, first.receipt, raw)
            size = node.store.size
            # Another message in between, so the latest checkpoint is no longer the first's.
            await deliver(channel, sealed(world))
            again = await deliver(channel, raw)
            assert again.receipt.SerializeToString(deterministic=True) == \
                first.receipt.SerializeToString(deterministic=True)
            assert node.store.size == size + 1
            assert state(node).inbox_rows == 2

    asyncio.run(scenario())


def test_duplicate_in_one_stream_gets_the_first_receipt_back(world: World,
                                                              db_url: str) -> None:
    async def scenario() -> None:
        async with serving(world, db_url) as (node, port), \
                dial(world, port, POLICE) as channel:
            before = state(node)
            raw = sealed(world)
            call = service_pb2_grpc.ExchangeStub(channel).DeliverStream(
                iter([service_pb2.DeliverRequest(envelope=e)
                      for e in (raw, sealed(world), raw)]), timeout=CALL_TIMEOUT)
            first, _, again = [r async for r in call]
            assert again.error_message == ""
            check_receipt(world, first.receipt, raw)
            assert again.receipt.SerializeToString(deterministic=True) == \
                first.receipt.SerializeToString(deterministic=True)
            assert state(node).size == before.size + 2
            assert state(node).inbox_rows == 2

    asyncio.run(scenario())


def test_reused_message_id_for_another_message_is_refused(world: World, db_url: str) -> None:
    async def scenario() -> None:
        async with serving(world, db_url) as (node, port), \
                dial(world, port, POLICE) as channel:
            mid = messages.new_message_id()
            await deliver(channel, sealed(world, message_id=mid))
            before = state(node)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await deliver(channel, sealed(world, message_id=mid,
                                              body=report(evidence="another report")))
            assert refused.value.code() == Code.INVALID_ARGUMENT
            assert re.search(rf"message id {mid.hex()} from police\.fj was already used for a "
                             "different message", refused.value.details() or "")
            assert state(node) == before

    asyncio.run(scenario())


# --- streams ---------------------------------------------------------------------------------------


def test_deliver_stream_answers_each_request_in_order(world: World, db_url: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    goods = [sealed(world) for _ in range(3)]
    batch: list[tuple[bytes, grpc.StatusCode | None, str]] = [
        (goods[0], None, ""),
        (garbage(world), Code.INVALID_ARGUMENT, r"envelope does not decode"),
        (goods[1], None, ""),
        (sealed(world, recipient=CMCC), Code.FAILED_PRECONDITION, r"addressed to 'cmcc\.fj'"),
        (flipped_signature(world), Code.UNAUTHENTICATED, r"does not verify"),
        (sealed(world, signer=CMCC), Code.PERMISSION_DENIED, r"connection is from police\.fj"),
        (goods[2], None, ""),
        (oversize(world), Code.RESOURCE_EXHAUSTED, r"over the limit"),
    ]

    async def scenario() -> None:
        async with serving(world, db_url) as (node, port), \
                dial(world, port, POLICE) as channel:
            before = state(node)
            requests = [service_pb2.DeliverRequest(envelope=raw) for raw, _, _ in batch]
            call = service_pb2_grpc.ExchangeStub(channel).DeliverStream(
                iter(requests), timeout=CALL_TIMEOUT)
            responses = [r async for r in call]
            assert await call.code() == Code.OK
            assert len(responses) == len(batch)
            for (raw, code, details), response in zip(batch, responses, strict=True):
                if code is None:
                    assert response.HasField("receipt"), response.error_message
                    assert response.error_code == 0
                    check_receipt(world, response.receipt, raw)
                else:
                    assert not response.HasField("receipt")
                    assert response.error_code == code.value[0], response.error_message
                    assert re.search(details, response.error_message), response.error_message
                    # Only the oversize envelope's status alone would read "try again".
                    assert response.refused_for_good is (code is Code.RESOURCE_EXHAUSTED)
            after = state(node)
            assert after.size == before.size + len(goods)
            assert after.inbox_rows == len(goods)
            logged = {bytes(e) for _, e in node.store.leaves(0, 100)}
            assert not any(raw in leaf for raw, code, _ in batch if code is not None
                           for leaf in logged)

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


# --- fuzzing a running server -----------------------------------------------------------------------


def envelopes_to_fuzz(valid: bytes) -> st.SearchStrategy[bytes]:
    pb = envelope_pb2.Envelope.FromString(valid)
    payload = pb.payload

    def flip(at_xor: tuple[int, int]) -> bytes:
        at, xor = at_xor
        out = bytearray(valid)
        out[at % len(out)] ^= xor
        return bytes(out)

    def payload_flip(at_xor: tuple[int, int]) -> bytes:
        at, xor = at_xor
        altered = bytearray(payload)
        altered[at % len(altered)] ^= xor

        def edit(e: envelope_pb2.Envelope) -> None:
            e.payload = bytes(altered)
        return reframed(valid, edit)

    def resigned_payload(random_payload: bytes) -> bytes:
        # Unauthenticated payload bytes reach decode_message before the signature check.
        def edit(e: envelope_pb2.Envelope) -> None:
            e.payload = random_payload
        return reframed(valid, edit)

    def structured(parts: tuple[bytes, str, list[tuple[bytes, str]]]) -> bytes:
        body, ptype, sigs = parts
        e = envelope_pb2.Envelope(payload=body, payload_type=ptype)
        for sig, keyid in sigs:
            e.signatures.add(sig=sig, keyid=keyid)
        return e.SerializeToString()

    index_xor = st.tuples(st.integers(0, 1 << 16), st.integers(1, 255))
    return st.one_of(
        st.binary(max_size=512),
        index_xor.map(flip),
        st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),
        index_xor.map(payload_flip),
        st.binary(min_size=1, max_size=256).map(resigned_payload),
        st.tuples(
            st.binary(max_size=128),
            st.sampled_from([envelope.PAYLOAD_TYPE_MESSAGE, envelope.PAYLOAD_TYPE_DIRECTORY,
                             "", "application/json"]),
            st.lists(st.tuples(st.binary(max_size=80),
                               st.sampled_from(["", pb.signatures[0].keyid, "x" * 64])),
                     max_size=6),
        ).map(structured),
    )


@pytest.mark.slow
def test_fuzzed_envelopes_never_get_a_receipt_and_never_break_the_server(
        world: World, tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with serving(world, tmp_path / "bureau.db") as (node, port), \
                dial(world, port, POLICE) as channel:
            before = state(node)
            valid = sealed(world)

            @settings(max_examples=100, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.too_slow])
            @given(envelopes_to_fuzz(valid))
            def fuzz(raw: bytes) -> None:
                assert raw != valid
                future = asyncio.run_coroutine_threadsafe(deliver(channel, raw), loop)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    future.result(timeout=2 * CALL_TIMEOUT)
                code = refused.value.code()
                seen[code.name] = seen.get(code.name, 0) + 1
                assert code in {Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED,
                                Code.PERMISSION_DENIED}, (code, refused.value.details())

            await asyncio.to_thread(fuzz)
            assert state(node) == before
            # Still serving: the valid message the fuzz started from is accepted.
            response = await deliver(channel, valid)
            check_receipt(world, response.receipt, valid)
            assert state(node).inbox_rows == 1

    asyncio.run(scenario())
    assert sum(seen.values()) >= 100
    # The fuzz reached both the parser and the signature check.
    assert {"INVALID_ARGUMENT", "UNAUTHENTICATED"} <= set(seen), seen
