"""Setting up members of an exchange: key material, the signed directory, node.toml files.

Used by the CLI (`bcx pki`, `bcx directory`, `bcx node init`), the demo and the tests.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from exchange import pki
from exchange.identity import Directory, Member, Role, SignedDirectory, sign_directory
from exchange.numbers import NumberBlock

NODE_TOML = """\
# bcx node configuration. Relative paths are relative to this file.
# Commented-out values are the defaults; every key bcx reads is listed here.

[node]
# This node's id: a lowercase dotted name, listed in the directory.
id = "{node_id}"
# The office whose signature makes a member directory valid.
office = "{office_id}"

[keys]
# Made by `bcx pki issue`: tls/cert.pem, tls/key.pem, signing.key, signing.pem, hpke.key.
dir = "{keys_dir}"
# The exchange CA certificate (`bcx pki init`).
ca = "{ca}"

[server]
# host:port this node's gRPC server listens on (mutual TLS).
listen = "{listen}"
# host:port of the Prometheus metrics endpoint (plain HTTP: keep it on loopback or a
# monitoring network); absent, no metrics are served.
{metrics_line}

[database]
# SQLite file by default; PostgreSQL as postgresql+psycopg://user@host:port/dbname
url = "{database_url}"

[directory]
# The signed member directory to start from; newer versions are kept in the database.
file = "{directory}"
# Seconds between asks to the office for a newer directory (sooner as expiry nears).
# refresh_seconds = 300

[limits]
# Largest envelope accepted, in bytes.
# max_envelope_bytes = 4194304
# How far a message's created_at may be from this node's clock.
# clock_skew_seconds = 300
# Most numbers one message may carry.
# max_numbers_per_message = 10000
# Work waiting for the ledger writer before the node answers RESOURCE_EXHAUSTED.
# max_pending = 20000
# Work one peer may have waiting at once.
# max_pending_per_peer = 5000
# Envelopes a sender keeps in flight on one DeliverStream.
# stream_window = 256
# Bytes of envelopes one incoming DeliverStream may hold waiting for the ledger.
# stream_window_bytes = 8388608
# How long the ledger writer, while busy, collects work into one transaction and
# checkpoint (a lone unit of work is committed at once).
# group_commit_window_ms = 2
# Most units of work in one transaction.
# max_batch = 512
# What an overloaded node asks a sender to wait before trying again.
# retry_after_ms = 500
# Bytes of envelopes one peer may have this node store a day (UTC); beyond it the peer
# is refused RESOURCE_EXHAUSTED, naming this key, until the next day.
# quota_bytes_per_peer_per_day = 268435456
# Bytes of leaves one GetEntries answer holds at most (it says where to go on).
# max_entries_bytes = 4194304

[delivery]
# Retry backoff: doubles from the initial delay up to the maximum, with jitter.
# backoff_initial_seconds = 0.5
# backoff_max_seconds = 60
# Escalate to the office after this many failed attempts or this long (and keep trying).
# escalate_after_attempts = 20
# escalate_after_seconds = 3600
# A queue at least this long to one peer is sent over one DeliverStream.
# bulk_threshold = 8
# Longest wait for one Deliver call's receipt (a stream gets 50 ms more per message).
# call_timeout_seconds = 30
# On SIGTERM: how long calls under way, then deliveries under way, may take to finish.
# stop_grace_seconds = 5

[ledger]
# A member reads this ledger's checkpoints and proofs, and only the entries it is party
# to (or that an escalation to the office names). Members listed here may read more, an
# audit: each such read names its reason, is refused unless listed, and is logged as an
# ACTION "audit-read" entry here and on the reader's ledger.
# audit_readers = ["office.cn"]

[deadlines]
# Time a receiver has to act, by obligation.
# shutdown_hours = 24
# case_hours = 72
# appeal_hours = 72
# feedback_hours = 48
# How often the scheduler looks for overdue obligations, witnesses peers' ledgers,
# and sends progress reports.
# scheduler_interval_seconds = 30
# witness_interval_seconds = 10
# progress_interval_seconds = 3600
"""


@dataclass(frozen=True, slots=True)
class MemberSpec:
    node_id: str
    role: Role
    province: str
    organisation: str
    endpoint: str
    reseller: bool = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def member_from_credentials(spec: MemberSpec, keys_dir: Path, ca: x509.Certificate) -> Member:
    creds = pki.load_node_credentials(keys_dir, ca=ca, now=datetime.now(UTC))
    if creds.node_id != spec.node_id:
        raise pki.PKIError(f"{keys_dir} holds keys of {creds.node_id}, not {spec.node_id}")
    return Member(
        node_id=spec.node_id, role=spec.role, province=spec.province,
        organisation=spec.organisation, endpoint=spec.endpoint,
        auth_cert_sha256=creds.identity.fingerprint_sha256,
        signing_key=creds.signer.public_key, hpke_public_key=creds.hpke_public_raw,
        reseller=spec.reseller, signing_certificate_pem=creds.signing_cert_pem,
    )


def build_directory(
    *,
    trust_domain: str,
    members: Sequence[Member],
    version: int,
    valid_for: timedelta = timedelta(days=30),
    numbering_plan: Iterable[NumberBlock] = (),
    revoked_cert_serials: Iterable[str] = (),
    retired_signing_keys: Iterable[bytes] = (),
    issued_at: datetime | None = None,
) -> Directory:
    now = issued_at or datetime.now(UTC)
    return Directory(
        trust_domain=trust_domain, version=version, issued_at=now, expires_at=now + valid_for,
        members=tuple(members), numbering_plan=tuple(numbering_plan),
        revoked_cert_serials=frozenset(revoked_cert_serials),
        retired_signing_keys=frozenset(retired_signing_keys),
    )


def sign_with_office(directory: Directory, office_keys: Path,
                     ca: x509.Certificate) -> SignedDirectory:
    creds = pki.load_node_credentials(office_keys, ca=ca, now=datetime.now(UTC))
    return sign_directory(directory, creds.signer, creds.signing_cert_pem)


def write_node_toml(path: Path, *, node_id: str, office_id: str, keys_dir: Path, ca: Path,
                    listen: str, database_url: str, directory: Path,
                    metrics_listen: str | None = None) -> Path:
    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite a node's configuration")
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics_line = (f'metrics_listen = "{metrics_listen}"' if metrics_listen
                    else '# metrics_listen = "127.0.0.1:9100"')
    path.write_text(NODE_TOML.format(
        node_id=node_id, office_id=office_id, keys_dir=keys_dir, ca=ca, listen=listen,
        metrics_line=metrics_line, database_url=database_url, directory=directory))
    return path


@dataclass(frozen=True, slots=True)
class Federation:
    workspace: Path
    trust_domain: str
    office_id: str
    configs: dict[str, Path]
    directory_file: Path
    ca_cert: Path

    def config(self, node_id: str) -> Path:
        return self.configs[node_id]


def create_federation(
    workspace: Path,
    specs: Sequence[MemberSpec],
    *,
    trust_domain: str = "bcx.example",
    numbering_plan: Iterable[NumberBlock] = (),
    database_urls: dict[str, str] | None = None,
    directory_valid_for: timedelta = timedelta(days=30),
) -> Federation:
    """Key material, a signed directory and a node.toml for every member, under ``workspace``.

    Layout: ``pki/ca.pem``; per node ``<id>/node.toml``, ``<id>/node.db``,
    ``<id>/keys/tls/cert.pem``, ``<id>/keys/tls/key.pem`` and its other keys.
    """
    offices = [s for s in specs if s.role is Role.OFFICE]
    if len(offices) != 1:
        raise ValueError("a federation needs exactly one office")
    office_id = offices[0].node_id
    ca_files = pki.init_ca(trust_domain=trust_domain, out=workspace / "pki")
    ca = pki.load_certificate(ca_files.cert)
    members = []
    for spec in specs:
        keys = workspace / spec.node_id / "keys"
        pki.issue_node(ca_dir=workspace / "pki", node_id=spec.node_id, out=keys)
        members.append(member_from_credentials(spec, keys, ca))
    directory = build_directory(trust_domain=trust_domain, members=members, version=1,
                                numbering_plan=numbering_plan, valid_for=directory_valid_for)
    signed = sign_with_office(directory, workspace / office_id / "keys", ca)
    directory_file = workspace / "directory.bin"
    directory_file.write_bytes(signed.to_bytes())
    configs = {}
    for spec in specs:
        node_dir = workspace / spec.node_id
        url = (database_urls or {}).get(spec.node_id) or f"sqlite:///{node_dir / 'node.db'}"
        configs[spec.node_id] = write_node_toml(
            node_dir / "node.toml", node_id=spec.node_id, office_id=office_id,
            keys_dir=node_dir / "keys", ca=ca_files.cert, listen=spec.endpoint,
            database_url=url, directory=directory_file)
    return Federation(workspace, trust_domain, office_id, configs, directory_file, ca_files.cert)
