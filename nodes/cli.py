"""The `bcx` command: PKI, directory, running a node, and auditing its ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import argcomplete

from exchange import pki
from exchange.config import NodeConfig
from exchange.errors import ExchangeError
from exchange.storage import engines
from nodes import render
from nodes.cliopts import config_option, examples, json_option

log = logging.getLogger("bcx")

Command = Callable[[argparse.Namespace], int]

# Exit statuses: 1 a refused command or bad input, 2 bad usage, 3 a ledger that does not
# verify, 70 a failure bcx did not expect, 130 Ctrl-C, 141 output closed (as SIGPIPE).
EXIT_FAILED, EXIT_USAGE, EXIT_UNEXPECTED, EXIT_INTERRUPTED, EXIT_PIPE = 1, 2, 70, 130, 141


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one JSON object when the command line has --json."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if Parser.json_errors:
            report_error(f"{self.prog}: {message}", as_json=True, code=EXIT_USAGE)
            raise SystemExit(EXIT_USAGE)
        super().error(message)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    Parser.json_errors = "--json" in arguments
    parser = build_parser()
    argcomplete.autocomplete(parser)  # answers the shell and exits when completing
    args = parser.parse_args(arguments)
    render.configure_logging(verbose=args.verbose, service=getattr(args, "service", False))
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE
    try:
        code = int(args.func(args))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`bcx numbers show … | head`): stop quietly, as a Unix
        # tool killed by SIGPIPE does, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:
        line, code = describe_error(e)
        if code == EXIT_UNEXPECTED:
            log.debug("unexpected failure", exc_info=e)
        report_error(line, as_json=getattr(args, "json", False), code=code)
    return code


def describe_error(e: BaseException) -> tuple[str, int]:
    """The one line an operator reads for a failed command, and the exit status."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(e, ExchangeError):
        return str(e), EXIT_FAILED
    if isinstance(e, OSError) and e.strerror is None and e.filename is None:
        return str(e), EXIT_FAILED  # raised by bcx with its own sentence
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        return f"cannot use{where}: {e.strerror or e}", EXIT_FAILED
    if isinstance(e, SQLAlchemyError):
        return f"the node database failed: {render.database_cause(e)}", EXIT_FAILED
    return (f"unexpected failure: {e or type(e).__name__} "
            "(bcx --verbose … shows where)", EXIT_UNEXPECTED)


def report_error(line: str, *, as_json: bool, code: int) -> None:
    """An error on stderr: `bcx: …`, or with --json one object {"error": …, "exit": …}."""
    if as_json:
        print(render.to_json({"error": line, "exit": code}, indent=None), file=sys.stderr)
    else:
        render.err(f"bcx: {line}")


def _version() -> str:
    try:
        return metadata.version("bcx")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="bcx", description="bcx, the black-card intelligence exchange")
    examples(p, "bcx demo --numbers 50", "bcx status --config police.fj/node.toml",
             "bcx COMMAND --help")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="debug logging, and where an unexpected failure happened")
    p.add_argument("--version", action="version", version=f"bcx {_version()}",
                   help="print the installed version and exit")
    sub = p.add_subparsers(metavar="COMMAND")

    pki_p = examples(sub.add_parser("pki", help="the exchange CA and node key material"),
                     "bcx pki init --trust-domain bcx.example --out pki",
                     "bcx pki issue --ca pki --node-id police.fj --out keys/police.fj")
    pki_sub = pki_p.add_subparsers(metavar="ACTION")
    a = examples(pki_sub.add_parser("init", help="create the exchange CA"),
                 "bcx pki init --trust-domain bcx.example --out pki")
    a.add_argument("--trust-domain", required=True, metavar="DOMAIN",
                   help="the exchange's DNS-style name, e.g. bcx.example (the SPIFFE "
                        "trust domain of every node certificate)")
    a.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="directory to create for ca.pem and ca.key (key mode 0600)")
    a.set_defaults(func=cmd_pki_init)
    a = examples(pki_sub.add_parser("issue", help="issue a node's certificates and keys"),
                 "bcx pki issue --ca pki --node-id police.fj --out keys/police.fj")
    a.add_argument("--ca", required=True, type=Path, metavar="DIR",
                   help="the CA directory (bcx pki init --out)")
    a.add_argument("--node-id", required=True, metavar="ID",
                   help="lowercase dotted node id, e.g. police.fj or cmcc.fj")
    a.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="directory to create for the node's certificates and keys")
    a.set_defaults(func=cmd_pki_issue)

    d = examples(sub.add_parser("directory", help="build and sign the member directory "
                                                  "(office)"),
                 "bcx directory show directory.bin --ca pki/ca.pem")
    d_sub = d.add_subparsers(metavar="ACTION")
    a = examples(d_sub.add_parser("build", help="sign a directory from a TOML description "
                                                "of members"),
                 "bcx directory build --spec members.toml --ca pki/ca.pem "
                 "--office-keys keys/office.cn --out directory.bin")
    a.add_argument("--spec", required=True, type=Path, metavar="FILE.toml",
                   help="TOML: trust_domain, version (≥ 1), valid_days (> 0), [[member]] "
                        "and [[block]] entries")
    a.add_argument("--ca", required=True, type=Path, metavar="ca.pem",
                   help="the exchange CA certificate (PEM)")
    a.add_argument("--office-keys", required=True, type=Path, metavar="DIR",
                   help="the office's key directory (bcx pki issue --out)")
    a.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="where to write the signed directory")
    a.set_defaults(func=cmd_directory_build)
    a = examples(d_sub.add_parser("show", help="verify and print a signed directory"),
                 "bcx directory show directory.bin --ca pki/ca.pem",
                 "bcx directory show directory.bin --ca pki/ca.pem --json")
    a.add_argument("file", type=Path, metavar="FILE",
                   help="the signed directory (bcx directory build --out)")
    a.add_argument("--ca", required=True, type=Path, metavar="ca.pem",
                   help="the exchange CA certificate (PEM)")
    a.add_argument("--office", default="office.cn", metavar="ID",
                   help="node id of the office that signs it (default office.cn)")
    json_option(a)
    a.set_defaults(func=cmd_directory_show)
    a = examples(d_sub.add_parser("publish", help="office: put a newer directory in force "
                                                  "on the running office node (members "
                                                  "fetch it from there)"),
                 "bcx directory publish directory-v2.bin --config office.cn/node.toml")
    a.add_argument("file", type=Path, metavar="FILE",
                   help="the signed directory (bcx directory build --out)")
    config_option(a, "the office's")
    json_option(a)
    a.set_defaults(func=cmd_directory_publish)
    a = examples(d_sub.add_parser("export-spec", help="print the members file (bcx directory "
                                                      "build --spec) of the directory a node "
                                                      "holds"),
                 "bcx directory export-spec --config office.cn/node.toml > members.toml")
    config_option(a)
    a.set_defaults(func=cmd_directory_export_spec)
    a = examples(d_sub.add_parser("refresh", help="have the running node ask the office for "
                                                  "a newer directory now"),
                 "bcx directory refresh --config police.fj/node.toml")
    config_option(a)
    json_option(a)
    a.set_defaults(func=cmd_directory_refresh)

    n = examples(sub.add_parser("node", help="configure and run one node"),
                 "bcx node run --config police.fj/node.toml")
    n_sub = n.add_subparsers(metavar="ACTION")
    a = examples(n_sub.add_parser("init", help="write a commented node.toml"),
                 "bcx node init --node-id police.fj --keys keys/police.fj --ca pki/ca.pem "
                 "--directory directory.bin --out police.fj/node.toml")
    a.add_argument("--node-id", required=True, metavar="ID",
                   help="lowercase dotted node id, e.g. police.fj")
    a.add_argument("--keys", required=True, type=Path, metavar="DIR",
                   help="the node's key directory (bcx pki issue --out)")
    a.add_argument("--ca", required=True, type=Path, metavar="ca.pem",
                   help="the exchange CA certificate (PEM)")
    a.add_argument("--listen", default="127.0.0.1:7443", metavar="HOST:PORT",
                   help="address to serve on, port 0–65535 (default 127.0.0.1:7443)")
    a.add_argument("--metrics-listen", default=None, metavar="HOST:PORT",
                   help="address for Prometheus metrics (default: none served)")
    a.add_argument("--database-url", default=None, metavar="URL",
                   help="sqlite:///PATH or postgresql+psycopg://USER@HOST/DB "
                        "(default: node.db beside --out)")
    a.add_argument("--directory", required=True, type=Path, metavar="FILE",
                   help="the signed directory to start from (bcx directory build --out)")
    a.add_argument("--office", default="office.cn", metavar="ID",
                   help="node id of the office (default office.cn)")
    a.add_argument("--out", required=True, type=Path, metavar="NODE.toml",
                   help="where to write the configuration")
    a.set_defaults(func=cmd_node_init)
    a = examples(n_sub.add_parser("run", help="run the node in the foreground until "
                                              "SIGTERM/Ctrl-C"),
                 "bcx node run --config police.fj/node.toml",
                 "BCX_CONFIG=police.fj/node.toml bcx node run")
    config_option(a)
    a.set_defaults(func=cmd_node_run, service=True)

    db = examples(sub.add_parser("db", help="the node database"),
                  "bcx db upgrade --config police.fj/node.toml")
    db_sub = db.add_subparsers(metavar="ACTION")
    a = examples(db_sub.add_parser("upgrade", help="run the migrations to the newest schema"),
                 "bcx db upgrade --config police.fj/node.toml")
    config_option(a)
    a.set_defaults(func=cmd_db_upgrade)

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

    from nodes import commands

    commands.add_commands(sub)

    a = examples(sub.add_parser("demo", help="run a whole federation on this machine and "
                                             "its scenario"),
                 "bcx demo --numbers 50", "bcx demo --workspace /tmp/bcx-demo --keep")
    a.add_argument("--workspace", type=Path, default=None, metavar="DIR",
                   help="directory for keys, configs and databases (default: a new temp dir)")
    a.add_argument("--numbers", type=int, default=3000, metavar="N",
                   help="numbers the police report, at least 20 (default 3000)")
    a.add_argument("--keep", action="store_true",
                   help="leave the federation running until Ctrl-C")
    a.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="start the federation of a kept workspace (--keep) again")
    a.set_defaults(func=cmd_demo)

    a = examples(sub.add_parser("completion", help="print a shell completion script"),
                 'eval "$(bcx completion bash)"    # in ~/.bashrc',
                 'eval "$(bcx completion zsh)"     # in ~/.zshrc')
    a.add_argument("shell", choices=["bash", "zsh"], help="the shell: bash or zsh")
    a.set_defaults(func=cmd_completion)
    return p


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(argcomplete.shellcode(["bcx"], shell=args.shell))
    return 0


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
    render.out(f"exchange CA for {args.trust_domain}: {files.cert} (key {files.key}, mode 0600)")
    return 0


def cmd_pki_issue(args: argparse.Namespace) -> int:
    files = pki.issue_node(ca_dir=args.ca, node_id=args.node_id, out=args.out)
    render.out(f"issued {args.node_id} into {files.dir}:")
    for label, path in (("auth certificate", files.tls_cert), ("auth key", files.tls_key),
                        ("signing certificate", files.signing_cert),
                        ("signing key", files.signing_key), ("HPKE key", files.hpke_key)):
        render.out(f"  {label:20} {path}")
    return 0


# --- directory ----------------------------------------------------------------------


def cmd_directory_build(args: argparse.Namespace) -> int:
    from nodes.federation import directory_from_spec, read_spec, sign_with_office

    spec = read_spec(args.spec)
    ca = pki.load_certificate(args.ca)
    try:
        directory = directory_from_spec(spec, base=args.spec.parent, ca=ca)
    except ExchangeError as e:
        raise ExchangeError(f"{args.spec}: {e}") from e
    signed = sign_with_office(directory, args.office_keys, ca)
    args.out.write_bytes(signed.to_bytes())
    render.out(f"directory version {directory.version} with {len(directory.members)} members, "
               f"expires {render.when(directory.expires_at)}: {args.out}")
    return 0


def cmd_directory_export_spec(args: argparse.Namespace) -> int:
    from nodes.federation import directory_in_force, export_spec

    # TOML for `bcx directory build --spec`: written as is (sanitised, as all output is).
    render.out(export_spec(directory_in_force(load_config(args.config))).rstrip("\n"))
    return 0


def cmd_directory_refresh(args: argparse.Namespace) -> int:
    from nodes import operator

    config = load_config(args.config)
    with operator.AdminClient(config) as client:
        result = client.call("directory-refresh")
    if args.json:
        render.out(render.to_json(result))
    elif result["outcome"] == "adopted":
        render.out(f"{config.node_id}: directory version {result['version']} adopted from "
                   f"{result['office']}")
    else:
        render.out(f"{config.node_id}: directory version {result['version']} is the newest "
                   f"{result['office']} has")
    return 0


def cmd_directory_show(args: argparse.Namespace) -> int:
    from exchange.identity import SignedDirectory, verify_directory

    try:
        raw = args.file.read_bytes()
    except OSError as e:
        raise ExchangeError(f"cannot read directory file {args.file}: {e.strerror}") from e
    d = verify_directory(SignedDirectory.from_bytes(raw), ca=pki.load_certificate(args.ca),
                         office_id=args.office, now=datetime.now(UTC))
    members = [{"id": m.node_id, "role": m.role.value, "province": m.province,
                "organisation": m.organisation, "endpoint": m.endpoint} for m in d.members]
    if args.json:
        render.out(render.to_json({
            "trust_domain": d.trust_domain, "version": d.version,
            "expires_at": render.when(d.expires_at), "members": members,
            "numbering_plan_blocks": len(d.numbering_plan),
            "revoked_certificates": len(d.revoked_cert_serials)}))
        return 0
    render.out(f"directory {d.trust_domain} version {d.version}, "
               f"expires {render.when(d.expires_at)}")
    render.out(render.table(members, ["id", "role", "province", "endpoint"]))
    render.out(f"numbering plan: {len(d.numbering_plan)} blocks; "
               f"revoked certificates: {len(d.revoked_cert_serials)}")
    return 0


def cmd_directory_publish(args: argparse.Namespace) -> int:
    import base64

    from nodes import operator

    try:
        raw = args.file.read_bytes()
    except OSError as e:
        raise ExchangeError(f"cannot read directory file {args.file}: {e.strerror}") from e
    with operator.AdminClient(load_config(args.config)) as client:
        result = client.call("directory-publish",
                             directory=base64.b64encode(raw).decode("ascii"))
    if args.json:
        render.out(render.to_json(result))
        return 0
    render.out(f"directory version {result['version']} in force on the office "
               f"({result['members']} members, expires {result['expires_at']}); members "
               "adopt it at their next refresh")
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
    render.out(f"wrote {path}; start the node with: bcx node run --config {path}")
    return 0


def load_config(path: Path) -> NodeConfig:
    """The node's configuration; from then on times show in its zone (node.timezone)."""
    config = NodeConfig.from_file(path)
    render.set_timezone(config.timezone)
    return config


def cmd_node_run(args: argparse.Namespace) -> int:
    from exchange import lock

    config = load_config(args.config)
    held = lock.acquire(config, purpose="starting a second one")  # before the database

    from nodes.agency import make_running

    async def run() -> None:
        running = make_running(config)
        node = running.node
        port = await running.start()
        log.info("%s (%s) serving on port %d; database %s", node.node_id, node.me.role.value,
                 port, engines.redact_url(config.database_url))
        await running.serve_until_signalled()

    try:
        asyncio.run(run())
    finally:
        held.release()
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from exchange import lock, migrate

    config = load_config(args.config)
    held = lock.acquire(config, purpose="upgrading its database")
    engine = engines.create_engine_for(config.database_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
        held.release()
    render.out(f"database {engines.redact_url(config.database_url)} is at the newest schema")
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
    from nodes.operator import message_id_range, resolve_message_id

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


if __name__ == "__main__":
    sys.exit(main())
