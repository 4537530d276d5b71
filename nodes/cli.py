"""The `bcx` command: PKI, directory, running a node, and auditing its ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tomllib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exchange import pki, storage
from exchange.config import NodeConfig
from exchange.errors import ExchangeError
from exchange.identity import Role

log = logging.getLogger("bcx")

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ExchangeError as e:
        print(f"bcx: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except (FileExistsError, FileNotFoundError, PermissionError) as e:
        print(f"bcx: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bcx", description="bcx, the black-card intelligence exchange")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(metavar="COMMAND")

    pki_p = sub.add_parser("pki", help="the exchange CA and node key material")
    pki_sub = pki_p.add_subparsers(metavar="ACTION")
    a = pki_sub.add_parser("init", help="create the exchange CA")
    a.add_argument("--trust-domain", required=True)
    a.add_argument("--out", required=True, type=Path)
    a.set_defaults(func=cmd_pki_init)
    a = pki_sub.add_parser("issue", help="issue a node's certificates and keys")
    a.add_argument("--ca", required=True, type=Path, help="the CA directory (bcx pki init --out)")
    a.add_argument("--node-id", required=True)
    a.add_argument("--out", required=True, type=Path)
    a.set_defaults(func=cmd_pki_issue)

    d = sub.add_parser("directory", help="build and sign the member directory (office)")
    d_sub = d.add_subparsers(metavar="ACTION")
    a = d_sub.add_parser("build", help="sign a directory from a TOML description of members")
    a.add_argument("--spec", required=True, type=Path,
                   help="TOML: trust_domain, version, valid_days, [[member]] entries")
    a.add_argument("--ca", required=True, type=Path, help="CA certificate (ca.pem)")
    a.add_argument("--office-keys", required=True, type=Path)
    a.add_argument("--out", required=True, type=Path)
    a.set_defaults(func=cmd_directory_build)
    a = d_sub.add_parser("show", help="verify and print a signed directory")
    a.add_argument("file", type=Path)
    a.add_argument("--ca", required=True, type=Path)
    a.add_argument("--office", default="office.cn")
    a.set_defaults(func=cmd_directory_show)
    a = d_sub.add_parser("publish", help="office: put a newer directory in force on the "
                                         "running office node (members fetch it from there)")
    a.add_argument("file", type=Path, help="the signed directory (bcx directory build --out)")
    a.add_argument("--config", required=True, type=Path, help="the office's node.toml")
    a.set_defaults(func=cmd_directory_publish)

    n = sub.add_parser("node", help="configure and run one node")
    n_sub = n.add_subparsers(metavar="ACTION")
    a = n_sub.add_parser("init", help="write a commented node.toml")
    a.add_argument("--node-id", required=True)
    a.add_argument("--keys", required=True, type=Path)
    a.add_argument("--ca", required=True, type=Path)
    a.add_argument("--listen", default="127.0.0.1:7443")
    a.add_argument("--metrics-listen", default=None,
                   help="host:port for Prometheus metrics (default: none served)")
    a.add_argument("--database-url", default=None)
    a.add_argument("--directory", required=True, type=Path)
    a.add_argument("--office", default="office.cn")
    a.add_argument("--out", required=True, type=Path)
    a.set_defaults(func=cmd_node_init)
    a = n_sub.add_parser("run", help="run the node in the foreground until SIGTERM/Ctrl-C")
    a.add_argument("--config", required=True, type=Path)
    a.set_defaults(func=cmd_node_run)

    db = sub.add_parser("db", help="the node database")
    db_sub = db.add_subparsers(metavar="ACTION")
    a = db_sub.add_parser("upgrade", help="run the migrations to the newest schema")
    a.add_argument("--config", required=True, type=Path)
    a.set_defaults(func=cmd_db_upgrade)

    led = sub.add_parser("ledger", help="audit this node's ledger")
    led_sub = led.add_subparsers(metavar="ACTION")
    a = led_sub.add_parser("verify", help="recompute the tree and check every checkpoint")
    a.add_argument("--config", required=True, type=Path)
    a.set_defaults(func=cmd_ledger_verify)
    a = led_sub.add_parser("entries", help="list entries")
    a.add_argument("--config", required=True, type=Path)
    a.add_argument("--from", dest="start", type=_count, default=0)
    a.add_argument("--limit", type=_count, default=50)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_ledger_entries)
    a = led_sub.add_parser("recover", help="rebuild entries lost since the latest signed "
                           "checkpoint from what the peers hold (node stopped)")
    a.add_argument("--config", required=True, type=Path)
    a.set_defaults(func=cmd_ledger_recover)
    a = led_sub.add_parser("checkpoint", help="print the latest checkpoint with cosignatures")
    a.add_argument("--config", required=True, type=Path)
    a.set_defaults(func=cmd_ledger_checkpoint)
    a = led_sub.add_parser("vkey", help="print the ledger's verifier key")
    a.add_argument("--config", required=True, type=Path)
    a.set_defaults(func=cmd_ledger_vkey)

    ev = sub.add_parser("evidence", help="offline-verifiable evidence of one message")
    ev_sub = ev.add_subparsers(metavar="ACTION")
    a = ev_sub.add_parser("export", help="write the evidence bundle of a message")
    a.add_argument("--config", required=True, type=Path)
    a.add_argument("--message-id", required=True)
    a.add_argument("--out", required=True, type=Path)
    a.set_defaults(func=cmd_evidence_export)
    a = ev_sub.add_parser("verify", help="check an evidence bundle with only the CA")
    a.add_argument("file", type=Path)
    a.add_argument("--ca", required=True, type=Path)
    a.set_defaults(func=cmd_evidence_verify)

    from nodes import commands

    commands.add_commands(sub)

    a = sub.add_parser("demo", help="run a whole federation on this machine and its scenario")
    a.add_argument("--workspace", type=Path, default=None,
                   help="directory for keys, configs and databases (default: a new temp dir)")
    a.add_argument("--numbers", type=int, default=3000,
                   help="numbers the police report (default 3000)")
    a.add_argument("--keep", action="store_true",
                   help="leave the federation running until Ctrl-C")
    a.set_defaults(func=cmd_demo)
    return p


def cmd_demo(args: argparse.Namespace) -> int:
    # Imported here: the demo brings alembic and the numbering data, which every other
    # command (`bcx ledger verify` among them) would otherwise load at start for nothing.
    from nodes import demo

    return demo.cmd_demo(args)


def _count(text: str) -> int:
    """argparse type: a whole number ≥ 0, refused with a message naming the input."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


# --- pki ----------------------------------------------------------------------------


def cmd_pki_init(args: argparse.Namespace) -> int:
    files = pki.init_ca(trust_domain=args.trust_domain, out=args.out)
    print(f"exchange CA for {args.trust_domain}: {files.cert} (key {files.key}, mode 0600)")
    return 0


def cmd_pki_issue(args: argparse.Namespace) -> int:
    files = pki.issue_node(ca_dir=args.ca, node_id=args.node_id, out=args.out)
    print(f"issued {args.node_id} into {files.dir}:")
    for label, path in (("auth certificate", files.tls_cert), ("auth key", files.tls_key),
                        ("signing certificate", files.signing_cert),
                        ("signing key", files.signing_key), ("HPKE key", files.hpke_key)):
        print(f"  {label:20} {path}")
    return 0


# --- directory ----------------------------------------------------------------------


def cmd_directory_build(args: argparse.Namespace) -> int:
    from exchange.numbers import NumberBlock
    from nodes.federation import (
        MemberSpec,
        build_directory,
        member_from_credentials,
        sign_with_office,
    )

    try:
        spec = tomllib.loads(args.spec.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ExchangeError(f"cannot read directory spec {args.spec}: {e}") from e
    ca = pki.load_certificate(args.ca)
    members = []
    for i, m in enumerate(spec.get("member", [])):
        try:
            ms = MemberSpec(node_id=m["id"], role=Role(m["role"]), province=m["province"],
                            organisation=m.get("organisation", m["id"]), endpoint=m["endpoint"],
                            reseller=bool(m.get("reseller", False)))
            keys = (args.spec.parent / m["keys"]).resolve()
        except (KeyError, ValueError) as e:
            raise ExchangeError(f"{args.spec}: member {i + 1}: missing or bad field {e}") from e
        members.append(member_from_credentials(ms, keys, ca))
    try:
        plan = [NumberBlock(prefix=b["prefix"], carrier_node=b["carrier"],
                            province=b["province"], reseller=bool(b.get("reseller", False)))
                for b in spec.get("block", [])]
        trust_domain, version = spec["trust_domain"], int(spec["version"])
        valid_for = timedelta(days=float(spec.get("valid_days", 30)))
    except (KeyError, ValueError, TypeError) as e:
        raise ExchangeError(f"{args.spec}: missing or bad field {e}") from e
    if version < 1 or valid_for <= timedelta(0):
        raise ExchangeError(f"{args.spec}: version must be ≥ 1 and valid_days positive")
    directory = build_directory(
        trust_domain=trust_domain, members=members, version=version, valid_for=valid_for,
        numbering_plan=plan, revoked_cert_serials=spec.get("revoked_cert_serials", []))
    signed = sign_with_office(directory, args.office_keys, ca)
    args.out.write_bytes(signed.to_bytes())
    print(f"directory version {directory.version} with {len(members)} members, "
          f"expires {directory.expires_at:%Y-%m-%d %H:%M} UTC: {args.out}")
    return 0


def cmd_directory_show(args: argparse.Namespace) -> int:
    from exchange.identity import SignedDirectory, verify_directory

    d = verify_directory(SignedDirectory.from_bytes(args.file.read_bytes()),
                         ca=pki.load_certificate(args.ca), office_id=args.office,
                         now=datetime.now(UTC))
    print(f"directory {d.trust_domain} version {d.version}, expires {d.expires_at.isoformat()}")
    for m in d.members:
        print(f"  {m.node_id:14} {m.role.value:9} {m.province:4} {m.endpoint}")
    print(f"  numbering plan: {len(d.numbering_plan)} blocks; "
          f"revoked certificates: {len(d.revoked_cert_serials)}")
    return 0


def cmd_directory_publish(args: argparse.Namespace) -> int:
    import base64

    from nodes import operator

    try:
        raw = args.file.read_bytes()
    except OSError as e:
        raise ExchangeError(f"cannot read directory file {args.file}: {e.strerror}") from e
    with operator.AdminClient(NodeConfig.from_file(args.config)) as client:
        result = client.call("directory-publish",
                             directory=base64.b64encode(raw).decode("ascii"))
    print(f"directory version {result['version']} in force on the office "
          f"({result['members']} members, expires {result['expires_at']}); members adopt "
          "it at their next refresh")
    return 0


# --- node ---------------------------------------------------------------------------


def cmd_node_init(args: argparse.Namespace) -> int:
    from nodes.federation import write_node_toml

    url = args.database_url or f"sqlite:///{(args.out.parent / 'node.db').resolve()}"
    path = write_node_toml(args.out, node_id=args.node_id, office_id=args.office,
                           keys_dir=args.keys.resolve(), ca=args.ca.resolve(),
                           listen=args.listen, database_url=url,
                           directory=args.directory.resolve(),
                           metrics_listen=args.metrics_listen)
    print(f"wrote {path}; start the node with: bcx node run --config {path}")
    return 0


def load_config(path: Path) -> NodeConfig:
    return NodeConfig.from_file(path)


def cmd_node_run(args: argparse.Namespace) -> int:
    from nodes.agency import make_running

    config = load_config(args.config)

    async def run() -> None:
        running = make_running(config)
        node = running.node
        port = await running.start()
        log.info("%s (%s) serving on port %d; database %s", node.node_id, node.me.role.value,
                 port, storage.redact_url(config.database_url))
        await running.serve_until_signalled()

    asyncio.run(run())
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from exchange import migrate

    config = load_config(args.config)
    engine = storage.create_engine_for(config.database_url)
    migrate.upgrade(engine)
    print(f"database {storage.redact_url(config.database_url)} is at the newest schema")
    return 0


# --- ledger -------------------------------------------------------------------------


def _offline_store(config: NodeConfig) -> Any:
    from nodes.operator import offline_store

    return offline_store(config)


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from exchange.errors import TamperError
    from exchange.ledger import rollback
    from exchange.ledger.audit import verify_ledger

    config = load_config(args.config)
    store, _ = _offline_store(config)
    signed = _checkpoint_file(config)
    signed_text = signed.read() if signed else None  # before the leaves are counted

    def progress(done: int, total: int) -> None:
        print(f"\r  verified {done}/{total} entries", end="", file=sys.stderr, flush=True)

    try:
        report = verify_ledger(store.engine, log_verifier=store.verifier, progress=progress)
    except SQLAlchemyError as e:
        print(file=sys.stderr)
        print(f"ledger of {config.node_id} cannot be read (corrupt or tampered database): "
              f"{str(e).splitlines()[0]}", file=sys.stderr)
        return 3
    except TamperError as e:
        print(file=sys.stderr)
        print(f"ledger of {config.node_id} is NOT intact: {e}", file=sys.stderr)
        if e.index is not None:
            print(f"first bad index: {e.index}", file=sys.stderr)
        return 3
    print(file=sys.stderr)
    behind = rollback.behind_file(store, signed, signed_text, report.entries) if signed \
        else None
    if behind is not None:
        print(f"ledger of {config.node_id} is intact but behind what it signed: {behind}; "
              "rebuild the lost entries with `bcx ledger recover`", file=sys.stderr)
        return 3
    print(f"ledger of {config.node_id} is intact: {report.entries} entries, "
          f"{report.checkpoints} checkpoints verified")
    return 0


def _checkpoint_file(config: NodeConfig) -> Any:
    from exchange.ledger.store import CheckpointFile
    from exchange.node import checkpoint_file_path

    path = checkpoint_file_path(config)
    return CheckpointFile(path) if path else None


def cmd_ledger_entries(args: argparse.Namespace) -> int:
    from exchange.ledger.entries import EntryKind, from_micros

    config = load_config(args.config)
    store, _ = _offline_store(config)
    rows = store.rows(args.start, args.limit)
    out = [
        {
            "index": r.idx,
            "kind": EntryKind(r.kind).name,
            "peer": r.peer,
            "message_id": bytes(r.message_id).hex() if r.message_id else "",
            "message_digest": bytes(r.message_digest).hex() if r.message_digest else "",
            "time": from_micros(r.logged_at).isoformat(),
        }
        for r in rows
    ]
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'INDEX':>7}  {'KIND':9} {'PEER':12} {'MESSAGE ID':32} {'DIGEST':16} TIME")
    for e in out:
        print(f"{e['index']:>7}  {e['kind']:9} {e['peer'][:12]:12} {e['message_id']:32} "
              f"{e['message_digest'][:16]:16} {e['time']}")
    return 0


def cmd_ledger_recover(args: argparse.Namespace) -> int:
    from exchange.ledger import recover
    from nodes.agency import make_node

    report = recover.run(make_node(load_config(args.config)),
                         progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(report)
    return 0


def cmd_ledger_checkpoint(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store, _ = _offline_store(config)
    print(store.latest_cosigned_checkpoint(), end="")
    return 0


def cmd_ledger_vkey(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store, _ = _offline_store(config)
    print(store.verifier.vkey)
    return 0


# --- evidence -----------------------------------------------------------------------


def cmd_evidence_export(args: argparse.Namespace) -> int:
    from exchange import envelope
    from exchange.identity import SignedDirectory, verify_directory
    from exchange.ledger import evidence
    from exchange.ledger.entries import Entry, EntryKind
    from exchange.ledger.receipts import log_origin
    from exchange.messages import decode_message, parse_message_id
    from exchange.schema import directories

    config = load_config(args.config)
    store, creds = _offline_store(config)
    ca = pki.load_certificate(config.ca_cert)
    with storage.reader(store.engine).connect() as conn:
        from sqlalchemy import select

        row = conn.execute(select(directories.c.signed)
                           .order_by(directories.c.version.desc()).limit(1)).first()
    signed = SignedDirectory.from_bytes(bytes(row.signed) if row else
                                        config.directory_file.read_bytes())
    directory = verify_directory(signed, ca=ca, office_id=config.office_id,
                                 now=datetime.now(UTC))
    mid = parse_message_id(args.message_id)
    index = (store.find(message_id=mid, kind=EntryKind.RECEIVED)
             or store.find(message_id=mid, kind=EntryKind.SENT))
    if not index:
        raise ExchangeError(f"this ledger holds no message with id {args.message_id}")
    sender = decode_message(envelope.parse(Entry.decode(store.leaf(index[0])).envelope)
                            .payload).header.sender
    witnesses = {log_origin(creds.trust_domain, m.node_id): m.signing_key
                 for m in directory.members if m.node_id != creds.node_id}
    bundle = evidence.export_evidence(
        store, message_id=mid,
        signer_certificate_pem=directory.member(sender).signing_certificate_pem,
        log_certificate_pem=creds.signing_cert_pem, log_public_key=creds.signer.public_key,
        witnesses=witnesses, ca_pem=config.ca_cert.read_bytes())
    args.out.write_text(json.dumps(bundle, indent=2) + "\n")
    print(f"evidence for message {args.message_id} written to {args.out}")
    return 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    from exchange.ledger import evidence

    try:
        bundle = json.loads(args.file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExchangeError(f"cannot read evidence {args.file}: {e}") from e
    report = evidence.verify_evidence(bundle, ca=pki.load_certificate(args.ca))
    print(f"evidence verifies: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
