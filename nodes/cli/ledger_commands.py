"""`bcx ledger` and `bcx evidence`: auditing a node's ledger, and proving one message."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange import pki
from exchange.config import NodeConfig
from exchange.errors import ExchangeError
from exchange.storage import engines
from nodes.cli import render
from nodes.cli.options import config_option, examples, json_option, load_config


def add_ledger(sub: Any) -> None:
    led = examples(sub.add_parser("ledger", help="audit this node's ledger"),
                   "bcx ledger verify --config police.fj/node.toml")
    led_sub = led.add_subparsers(metavar="ACTION")
    a = examples(led_sub.add_parser("verify", help="recompute the tree and check every "
                                                   "checkpoint"),
                 "bcx ledger verify --config police.fj/node.toml",
                 "bcx ledger verify --config police.fj/node.toml --json")
    config_option(a)
    json_option(a)
    a.set_defaults(func=cmd_ledger_verify)
    a = examples(led_sub.add_parser("entries", help="list entries"),
                 "bcx ledger entries --config police.fj/node.toml --from 100 --limit 20")
    config_option(a)
    a.add_argument("--from", dest="start", type=_count, default=0, metavar="INDEX",
                   help="first leaf index to list, a whole number ≥ 0 (default 0)")
    a.add_argument("--limit", type=_count, default=50, metavar="N",
                   help="entries to list at most, a whole number ≥ 0 (default 50)")
    json_option(a)
    a.set_defaults(func=cmd_ledger_entries)
    a = examples(led_sub.add_parser("recover", help="rebuild entries lost since the latest "
                                                    "signed checkpoint from what the peers "
                                                    "hold (node stopped)"),
                 "bcx ledger recover --config bureau.fj/node.toml")
    config_option(a)
    json_option(a)
    a.set_defaults(func=cmd_ledger_recover)
    a = examples(led_sub.add_parser("checkpoint", help="print the latest checkpoint with "
                                                       "cosignatures"),
                 "bcx ledger checkpoint --config police.fj/node.toml",
                 "bcx ledger checkpoint --config police.fj/node.toml --json")
    config_option(a)
    json_option(a)
    a.set_defaults(func=cmd_ledger_checkpoint)
    a = examples(led_sub.add_parser("vkey", help="print the ledger's verifier key"),
                 "bcx ledger vkey --config police.fj/node.toml")
    config_option(a)
    a.set_defaults(func=cmd_ledger_vkey)


def add_evidence(sub: Any) -> None:
    ev = examples(sub.add_parser("evidence", help="offline-verifiable evidence of one "
                                                  "message"),
                  "bcx evidence export --config bureau.fj/node.toml --message-id 01a23cb4 "
                  "--out ev.json")
    ev_sub = ev.add_subparsers(metavar="ACTION")
    a = examples(ev_sub.add_parser("export", help="write the evidence bundle of a message"),
                 "bcx evidence export --config bureau.fj/node.toml --message-id 01a23cb4 "
                 "--out ev.json")
    config_option(a)
    a.add_argument("--message-id", required=True, metavar="ID",
                   help="the message's id: 32 hex digits, or any unique prefix of 8 or "
                        "more (as bcx ledger entries shows them)")
    a.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="where to write the bundle (JSON, mode 0600; never through a "
                        "symbolic link)")
    json_option(a)
    a.set_defaults(func=cmd_evidence_export)
    a = examples(ev_sub.add_parser("verify", help="check an evidence bundle with only the CA"),
                 "bcx evidence verify ev.json --ca pki/ca.pem",
                 "bcx evidence verify ev.json --ca pki/ca.pem --json")
    a.add_argument("file", type=Path, metavar="FILE",
                   help="the bundle (bcx evidence export --out)")
    a.add_argument("--ca", required=True, type=Path, metavar="ca.pem",
                   help="the exchange CA certificate (PEM): the only trust root needed")
    json_option(a)
    a.set_defaults(func=cmd_evidence_verify)


def _count(text: str) -> int:
    """argparse type: a whole number ≥ 0, refused with a message naming the input."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


# --- ledger -------------------------------------------------------------------------


def _offline_store(config: NodeConfig) -> Any:
    from nodes.cli.queries import offline_store

    return offline_store(config)


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from exchange.errors import TamperError
    from exchange.ledger import rollback
    from exchange.ledger.audit import verify_ledger

    config = load_config(args.config)
    store, _ = _offline_store(config)
    result: dict[str, Any] = {"node": config.node_id}
    signed = _checkpoint_file(config)
    signed_text = signed.read() if signed else None  # before the leaves are counted
    try:
        with render.Progress("  verified entries") as progress:
            report = verify_ledger(store.engine, log_verifier=store.verifier,
                                   progress=progress.update)
    except SQLAlchemyError as e:
        result.update(intact=False, error="cannot be read (corrupt or tampered database): "
                      f"{render.database_cause(e)}")
    except TamperError as e:
        result.update(intact=False, error=str(e), first_bad_index=e.index)
    else:
        result.update(intact=True, entries=report.entries, checkpoints=report.checkpoints)
        behind = rollback.behind_file(store, signed, signed_text, report.entries) \
            if signed else None
        if behind is not None:
            result.update(intact=False, behind=True,
                          error=f"intact but behind what it signed: {behind}; rebuild the "
                                "lost entries with `bcx ledger recover`")
    if args.json:
        render.out(render.to_json(result))
    elif result["intact"]:
        render.out(f"ledger of {config.node_id} is intact: {report.entries} entries, "
                   f"{report.checkpoints} checkpoints verified")
    elif result.get("behind"):
        render.err(f"ledger of {config.node_id} is {result['error']}")
    else:
        render.err(f"ledger of {config.node_id} is NOT intact: {result['error']}")
        if result.get("first_bad_index") is not None:
            render.err(f"first bad index: {result['first_bad_index']}")
    return 0 if result["intact"] else 3


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
            "time": render.when(from_micros(r.logged_at)),
        }
        for r in rows
    ]
    if args.json:
        render.out(render.to_json(out))
        return 0
    lines = [f"{'INDEX':>7}  {'KIND':9} {'PEER':12} {'MESSAGE ID':32} {'DIGEST':16} TIME"]
    lines += [f"{e['index']:>7}  {e['kind']:9} {render.cell(e['peer'])[:12]:12} "
              f"{e['message_id']:32} {e['message_digest'][:16]:16} {e['time']}" for e in out]
    render.out("\n".join(lines))
    return 0


def cmd_ledger_recover(args: argparse.Namespace) -> int:
    from exchange import lock
    from exchange.ledger import recover
    from nodes.agency import make_node

    config = load_config(args.config)
    held = lock.acquire(config, purpose="recovering its ledger")
    try:
        report = recover.run(make_node(config), progress=render.err)
    finally:
        held.release()
    if args.json:
        render.out(render.to_json({
            "node": report.node_id, "before": report.before, "after": report.after,
            "source": report.source, "replayed": report.replayed,
            "not_replayed": list(report.not_replayed)}))
    else:
        render.out(str(report))
    return 0


def cmd_ledger_checkpoint(args: argparse.Namespace) -> int:
    from exchange.ledger import note

    config = load_config(args.config)
    store, _ = _offline_store(config)
    text = store.latest_cosigned_checkpoint()
    if not args.json:
        render.out(text.removesuffix("\n"))
        return 0
    signed = note.parse_note(text)
    cp = note.parse_checkpoint(signed.text)
    render.out(render.to_json({
        "origin": cp.origin, "size": cp.size, "root_hash": cp.root.hex(),
        "signed_by": [s.name for s in signed.signatures], "note": text}))
    return 0


def cmd_ledger_vkey(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store, _ = _offline_store(config)
    render.out(store.verifier.vkey)
    return 0


# --- evidence -----------------------------------------------------------------------


def cmd_evidence_export(args: argparse.Namespace) -> int:
    from exchange import envelope
    from exchange.identity import SignedDirectory, verify_directory
    from exchange.ledger import evidence
    from exchange.ledger.entries import Entry, EntryKind
    from exchange.ledger.receipts import log_origin
    from exchange.messages import decode_message
    from exchange.schema import directories
    from nodes.cli.queries import message_id_range, resolve_message_id

    message_id_range(args.message_id)  # a malformed id is refused before anything opens
    config = load_config(args.config)
    store, creds = _offline_store(config)
    ca = pki.load_certificate(config.ca_cert)
    with engines.reader(store.engine).connect() as conn:
        from sqlalchemy import select

        row = conn.execute(select(directories.c.signed)
                           .order_by(directories.c.version.desc()).limit(1)).first()
        mid = resolve_message_id(conn, args.message_id)
    signed = SignedDirectory.from_bytes(bytes(row.signed) if row else
                                        config.directory_file.read_bytes())
    directory = verify_directory(signed, ca=ca, office_id=config.office_id,
                                 now=datetime.now(UTC))
    index = (store.find(message_id=mid, kind=EntryKind.RECEIVED)
             or store.find(message_id=mid, kind=EntryKind.SENT))
    if not index:
        raise ExchangeError(f"this ledger holds message {mid.hex()} but neither sent nor "
                            "received it (only a receipt or an action names it)")
    sender = decode_message(envelope.parse(Entry.decode(store.leaf(index[0])).envelope)
                            .payload).header.sender
    witnesses = {log_origin(creds.trust_domain, m.node_id): m.signing_key
                 for m in directory.members if m.node_id != creds.node_id}
    bundle = evidence.export_evidence(
        store, message_id=mid,
        signer_certificate_pem=directory.member(sender).signing_certificate_pem,
        log_certificate_pem=creds.signing_cert_pem, log_public_key=creds.signer.public_key,
        witnesses=witnesses, ca_pem=config.ca_cert.read_bytes())
    from exchange import files

    files.create_private(args.out, (json.dumps(bundle, indent=2) + "\n").encode())
    if args.json:
        render.out(render.to_json({"message_id": mid.hex(), "out": str(args.out)}))
    else:
        render.out(f"evidence for message {mid.hex()} written to {args.out}")
    return 0


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    from exchange.ledger import evidence

    try:
        bundle = json.loads(args.file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExchangeError(f"cannot read evidence {args.file}: {e}") from e
    report = evidence.verify_evidence(bundle, ca=pki.load_certificate(args.ca))
    summary = evidence_summary(report)
    if args.json:
        render.out(render.to_json({"verified": True, **summary}))
    else:
        render.out(evidence_text(summary))
    return 0


def evidence_summary(report: Any) -> dict[str, Any]:
    """What a verified bundle proves, as plain values (the --json form)."""
    return {
        "message_id": report.message_id.hex(), "sender": report.sender,
        "recipient": report.recipient, "digest": report.digest.hex(),
        "logged_as": report.kind.name, "log": report.log_origin,
        "leaf_index": report.leaf_index, "checkpoint_size": report.checkpoint_size,
        "cosigned_by": list(report.witnesses)}


def evidence_text(s: dict[str, Any]) -> str:
    logger = s["recipient"] if s["logged_as"] == "RECEIVED" else s["sender"]
    witnesses = ", ".join(s["cosigned_by"]) or "no witness"
    return "\n".join([
        f"evidence verifies: message {s['message_id']}",
        f"  from {s['sender']} to {s['recipient']}, signed by {s['sender']}'s certified key",
        f"  digest sha256:{s['digest']}",
        f"  {s['logged_as'].lower()} by {logger}: leaf {s['leaf_index']} of the "
        f"{s['checkpoint_size']}-entry checkpoint of {s['log']}",
        f"  checkpoint cosigned by {witnesses}"])
