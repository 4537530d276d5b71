"""Setting up members of an exchange: key material, the signed directory, node.toml files.

Used by the CLI (`bcx pki`, `bcx directory`, `bcx node init`), the demo and the tests.

The members file (`bcx directory build --spec`) is the office's editable description of a
directory; `bcx directory export-spec` writes the one of the directory in force, with
each member's public material inline, so admitting an agency is: export, add its
``[[member]]`` (with ``keys`` naming its `bcx pki issue` directory) and its number
blocks, build, publish.
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w
from cryptography import x509
from sqlalchemy import select

from exchange import envelope, identity, pki
from exchange.config import NodeConfig
from exchange.errors import DirectoryError, ExchangeError, PKIError
from exchange.identity import Directory, Member, Role, SignedDirectory, sign_directory
from exchange.keys import PublicKey
from exchange.numbers import NumberBlock
from exchange.schema import directories
from exchange.storage import engines

NODE_TOML = """\
# bcx node configuration. Relative paths are relative to this file.
# Commented-out values are the defaults; every key bcx reads is listed here.

[node]
# This node's id: a lowercase dotted name, listed in the directory.
id = "{node_id}"
# The office whose signature makes a member directory valid.
office = "{office_id}"
# The zone bcx shows times in (an IANA name); times are stored in UTC.
# timezone = "Asia/Shanghai"

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
        raise PKIError(f"{keys_dir} holds keys of {creds.node_id}, not {spec.node_id}")
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


# --- the members file --------------------------------------------------------------------

SPEC_HEADER = """\
# Directory {trust_domain} version {version}: {members} members, {blocks} number blocks,
# as `bcx directory build --spec` takes them. To admit an agency, add a
# [[member]] with `keys` naming the directory `bcx pki issue` wrote for it (instead of the
# inline public material the others carry) and its [[block]]s, then build and publish:
#   bcx directory build --spec THIS_FILE --ca ca.pem --office-keys OFFICE_KEYS --out d.bin
#   bcx directory publish d.bin --config OFFICE_NODE_TOML
# `version` is already the next one; valid_days is how long the new directory is valid.
"""

_MEMBER_KEYS = frozenset({"id", "role", "province", "organisation", "endpoint", "reseller",
                          "keys", "auth_cert_sha256", "signing_key", "hpke_public_key",
                          "signing_certificate"})
_INLINE_KEYS = ("auth_cert_sha256", "signing_key", "hpke_public_key")
_BLOCK_KEYS = frozenset({"prefix", "carrier", "province", "reseller"})
_TOP_KEYS = frozenset({"trust_domain", "version", "valid_days", "revoked_cert_serials",
                       "retired_signing_keys", "member", "block"})


def export_spec(d: Directory) -> str:
    """The members file that builds ``d`` again (as its next version): pure."""
    valid_days = (d.expires_at - d.issued_at).total_seconds() / 86400
    top: dict[str, Any] = {
        "trust_domain": d.trust_domain,
        "version": d.version + 1,
        "valid_days": int(valid_days) if valid_days.is_integer() else valid_days,
        "revoked_cert_serials": sorted(d.revoked_cert_serials),
        "retired_signing_keys": sorted(k.hex() for k in d.retired_signing_keys),
    }
    blocks = [{"prefix": b.prefix, "carrier": b.carrier_node, "province": b.province,
               "reseller": b.reseller} for b in d.numbering_plan]
    # Each entry as a [[member]] or [[block]] section of its own, one to edit, copy or
    # delete at a time (tomli_w would write short ones as an inline array).
    sections = [tomli_w.dumps(top)]
    sections += [f"[[member]]\n{_member_section(m)}" for m in d.members]
    sections += [f"[[block]]\n{tomli_w.dumps(b)}" for b in blocks]
    header = SPEC_HEADER.format(trust_domain=d.trust_domain, version=d.version,
                                members=len(d.members), blocks=len(d.numbering_plan))
    return header + "\n" + "\n".join(sections)


def _member_section(m: Member) -> str:
    entry: dict[str, Any] = {
        "id": m.node_id, "role": m.role.value, "province": m.province,
        "organisation": m.organisation, "endpoint": m.endpoint, "reseller": m.reseller,
        "auth_cert_sha256": m.auth_cert_sha256.hex(), "signing_key": m.signing_key.raw.hex(),
        "hpke_public_key": m.hpke_public_key.hex(),
    }
    text = tomli_w.dumps(entry)
    if m.signing_certificate_pem:
        pem = m.signing_certificate_pem.decode("ascii")
        # The PEM as a multi-line string, readable; only where it has no CR, which a TOML
        # reader would turn into LF (so an organisation's "\r\n" stays an escape).
        text += tomli_w.dumps({"signing_certificate": pem}, multiline_strings="\r" not in pem)
    return text


def read_spec(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ExchangeError(f"cannot read directory spec {path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ExchangeError(f"{path}: not valid TOML: {e}") from e


def directory_from_spec(spec: dict[str, Any], *, base: Path, ca: x509.Certificate,
                        now: datetime | None = None) -> Directory:
    """The directory a members file describes (not yet signed). A member's keys come from
    its `bcx pki issue` directory (``keys``, relative to ``base``) or inline, as
    `export-spec` writes them; an inline signing certificate must be issued by ``ca`` to
    that member and hold its signing key. Errors name the member or block and the field."""
    now = now or datetime.now(UTC)
    _known(spec, _TOP_KEYS, "the top level")
    members = [_member_from_entry(i, m, base=base, ca=ca, now=now)
               for i, m in enumerate(_tables(spec, "member"), start=1)]
    plan = []
    for i, b in enumerate(_tables(spec, "block"), start=1):
        where = f"block {i}"
        _known(b, _BLOCK_KEYS, where)
        try:
            plan.append(NumberBlock(prefix=_text(b, "prefix", where),
                                    carrier_node=_text(b, "carrier", where),
                                    province=_text(b, "province", where),
                                    reseller=_flag(b, "reseller", where)))
        except ExchangeError as e:
            raise ExchangeError(f"{where}: {e}") from e
    version = spec.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExchangeError(f"version must be a whole number ≥ 1, got {version!r}")
    valid_days = spec.get("valid_days", 30)
    if isinstance(valid_days, bool) or not isinstance(valid_days, int | float) \
            or valid_days <= 0:
        raise ExchangeError(f"valid_days must be a positive number, got {valid_days!r}")
    try:
        retired = frozenset(bytes.fromhex(k) for k in _strings(spec, "retired_signing_keys"))
    except ValueError as e:
        raise ExchangeError(f"retired_signing_keys: not hex: {e}") from e
    return build_directory(
        trust_domain=_text(spec, "trust_domain", "the top level"), members=members,
        version=version, valid_for=timedelta(days=float(valid_days)), numbering_plan=plan,
        revoked_cert_serials=_strings(spec, "revoked_cert_serials"),
        retired_signing_keys=retired, issued_at=now)


def _member_from_entry(i: int, m: Any, *, base: Path, ca: x509.Certificate,
                       now: datetime) -> Member:
    where = f"member {i}" + (f" ({m['id']})" if isinstance(m, dict) and "id" in m else "")
    _known(m, _MEMBER_KEYS, where)
    try:
        role = Role(_text(m, "role", where))
    except ValueError:
        raise ExchangeError(f"{where}: role must be one of "
                            f"{', '.join(r.value for r in Role)}, got {m['role']!r}") from None
    spec = MemberSpec(node_id=_text(m, "id", where), role=role,
                      province=_text(m, "province", where),
                      organisation=m.get("organisation", m["id"]),
                      endpoint=_text(m, "endpoint", where),
                      reseller=_flag(m, "reseller", where))
    inline = [k for k in (*_INLINE_KEYS, "signing_certificate") if k in m]
    if "keys" in m and inline:
        raise ExchangeError(f"{where}: give keys or {', '.join(inline)}, not both")
    try:
        if "keys" in m:
            return member_from_credentials(spec, (base / _text(m, "keys", where)).resolve(), ca)
        return _inline_member(spec, m, where, ca=ca, now=now)
    except ExchangeError as e:
        raise ExchangeError(f"{where}: {e}") from e


def _inline_member(spec: MemberSpec, m: dict[str, Any], where: str, *,
                   ca: x509.Certificate, now: datetime) -> Member:
    missing = [k for k in _INLINE_KEYS if k not in m]
    if missing:
        raise ExchangeError(f"needs keys (a `bcx pki issue` directory) or "
                            f"{', '.join(_INLINE_KEYS)}; missing {', '.join(missing)}")
    raw = {k: _hex(m, k, where) for k in _INLINE_KEYS}
    for key, value in raw.items():
        if len(value) != 32:
            raise ExchangeError(f"{key} must be 32 bytes (64 hex digits), got {len(value)}")
    signing_key = PublicKey(raw["signing_key"])
    pem = _text(m, "signing_certificate", where).encode() if "signing_certificate" in m else b""
    if pem:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as e:
            raise PKIError(f"signing_certificate is not a PEM certificate: {e}") from e
        pki.check_certificate(cert, ca=ca, now=now, expect_node_id=spec.node_id)
        if pki.signing_public_key_from_cert(cert) != signing_key:
            raise PKIError("signing_certificate does not hold signing_key")
    return Member(node_id=spec.node_id, role=spec.role, province=spec.province,
                  organisation=spec.organisation, endpoint=spec.endpoint,
                  auth_cert_sha256=raw["auth_cert_sha256"], signing_key=signing_key,
                  hpke_public_key=raw["hpke_public_key"], reseller=spec.reseller,
                  signing_certificate_pem=pem)


def _known(table: Any, keys: frozenset[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ExchangeError(f"{where} must be a table")
    unknown = sorted(set(table) - keys)
    if unknown:
        raise ExchangeError(f"{where}: unknown field {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(keys))})")


def _tables(spec: dict[str, Any], key: str) -> list[Any]:
    value = spec.get(key, [])
    if not isinstance(value, list):
        raise ExchangeError(f"{key} must be an array of tables ([[{key}]])")
    return value


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        what = "missing" if value is None else f"not a non-empty string ({value!r})"
        raise ExchangeError(f"{where}: {key} {what}")
    return value


def _hex(table: dict[str, Any], key: str, where: str) -> bytes:
    try:
        return bytes.fromhex(_text(table, key, where))
    except ValueError:
        raise ExchangeError(f"{key} is not hexadecimal") from None


def _flag(table: dict[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ExchangeError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _strings(spec: dict[str, Any], key: str) -> list[str]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ExchangeError(f"{key} must be a list of strings")
    return value


# --- the directory a node holds -------------------------------------------------------------


def directory_in_force(config: NodeConfig, *, now: datetime | None = None) -> Directory:
    """The directory ``config``'s node holds: the newest in its database, else the file
    its node.toml names (a node that never ran). Checked against the CA and the office's
    certificate as of a moment it was valid, so an expired one can still be renewed."""
    now = now or datetime.now(UTC)
    signed = _held_directory(config)
    if signed is None:
        try:
            signed = SignedDirectory.from_bytes(config.directory_file.read_bytes())
        except OSError as e:
            raise DirectoryError(f"cannot read directory file {config.directory_file}: "
                                 f"{e.strerror}") from e
    claimed = identity.decode_directory(envelope.parse(signed.envelope).payload)
    when = min(now, claimed.expires_at - timedelta(seconds=1))
    return identity.verify_directory(signed, ca=pki.load_certificate(config.ca_cert),
                                     office_id=config.office_id, now=when)


def _held_directory(config: NodeConfig) -> SignedDirectory | None:
    url = engines.parse_url(config.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return None  # never ran: nothing held (and no empty database made by looking)
    engine = engines.create_engine_for(config.database_url)
    try:
        with engines.reader(engine).connect() as conn:
            row = conn.execute(select(directories.c.signed)
                               .order_by(directories.c.version.desc()).limit(1)).first()
    finally:
        engine.dispose()
    return SignedDirectory.from_bytes(bytes(row.signed)) if row is not None else None

