"""`bcx pki`, `bcx directory`, `bcx node` and `bcx db`: setting up the exchange and a node."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange import pki
from exchange.errors import ExchangeError
from exchange.storage import engines
from nodes.cli import render
from nodes.cli.node_commands import DIRECTORY_PUBLISH, DIRECTORY_REFRESH, add_desk
from nodes.cli.options import config_option, examples, json_option, load_config

log = logging.getLogger("bcx")


def add_pki(sub: Any) -> None:
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


def add_directory(sub: Any) -> None:
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
    add_desk(d_sub, DIRECTORY_PUBLISH)
    a = examples(d_sub.add_parser("export-spec", help="print the members file (bcx directory "
                                                      "build --spec) of the directory a node "
                                                      "holds"),
                 "bcx directory export-spec --config office.cn/node.toml > members.toml")
    config_option(a)
    a.set_defaults(func=cmd_directory_export_spec)
    add_desk(d_sub, DIRECTORY_REFRESH)


def add_node(sub: Any) -> None:
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


def add_db(sub: Any) -> None:
    db = examples(sub.add_parser("db", help="the node database"),
                  "bcx db upgrade --config police.fj/node.toml")
    db_sub = db.add_subparsers(metavar="ACTION")
    a = examples(db_sub.add_parser("upgrade", help="run the migrations to the newest schema"),
                 "bcx db upgrade --config police.fj/node.toml")
    config_option(a)
    a.set_defaults(func=cmd_db_upgrade)


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


def cmd_node_run(args: argparse.Namespace) -> int:
    from exchange import lock

    config = load_config(args.config)
    held = lock.acquire(config, purpose="starting a second one")  # before the database

    from exchange.runtime import stop_on_signals
    from nodes.agency import make_running

    async def run() -> None:
        stop = stop_on_signals()  # before the port opens: a SIGTERM from then on is clean
        running = make_running(config)
        node = running.node
        port = await running.start()
        log.info("%s (%s) serving on port %d; database %s", node.node_id, node.me.role.value,
                 port, engines.redact_url(config.database_url))
        await running.serve_until(stop)

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
