"""Admitting an agency: `bcx directory export-spec` prints the members file of the directory
in force, which `bcx directory build` turns back into the same directory; `bcx directory
refresh` makes a running node fetch a newer one now; and a new member whose peers have
not fetched the directory admitting it yet is not escalated against on their first
UNAUTHENTICATED answers. The installed `bcx` against real nodes over mTLS."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fedharness import make_federation, running, wait_for
from sqlalchemy import select

from exchange import envelope, identity, messages, pki
from exchange.config import NodeConfig
from exchange.identity import Directory, Role, SignedDirectory
from exchange.messages import Category, NumberReport
from exchange.node import Node
from exchange.numbers import NumberBlock
from exchange.schema import outbox
from nodes.agency import make_running
from nodes.federation import Federation, build_directory, sign_with_office

pytestmark = [pytest.mark.network, pytest.mark.slow]

BCX = str(Path(sys.executable).with_name("bcx"))
OFFICE, BUREAU, NEWCOMER = "office.cn", "bureau.fj", "commerce.fj"
SPECS = (("office.cn", Role.OFFICE, "cn"), ("police.fj", Role.POLICE, "fj"),
         ("bureau.fj", Role.BUREAU, "fj"), ("cmcc.fj", Role.CARRIER, "fj"),
         ("commerce.fj", Role.COMMERCE, "fj"))
PLAN = (NumberBlock(prefix="+8617059", carrier_node="cmcc.fj", province="fj", reseller=True),
        NumberBlock(prefix="+8615959", carrier_node="cmcc.fj", province="fj"))


def bcx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BCX, *args], capture_output=True, text=True, timeout=300,
                          check=False)


def verified(fed: Federation, raw: bytes) -> Directory:
    return identity.verify_directory(SignedDirectory.from_bytes(raw),
                                     ca=pki.load_certificate(fed.ca_cert), office_id=OFFICE,
                                     now=datetime.now(UTC))


def resign(fed: Federation, d: Directory, **changes: object) -> bytes:
    """``d`` with ``changes``, signed by the office."""
    fields = {"trust_domain": d.trust_domain, "members": d.members, "version": d.version,
              "numbering_plan": d.numbering_plan, "revoked_cert_serials": d.revoked_cert_serials,
              "retired_signing_keys": d.retired_signing_keys, **changes}
    built = build_directory(**fields)  # type: ignore[arg-type]
    return sign_with_office(built, fed.workspace / OFFICE / "keys",
                            pki.load_certificate(fed.ca_cert)).to_bytes()


def content(d: Directory) -> tuple[object, ...]:
    """Everything a directory says but its version and its dates."""
    return (d.trust_domain, d.members, d.numbering_plan, d.revoked_cert_serials,
            d.retired_signing_keys, d.expires_at - d.issued_at)


# --- export-spec and build -------------------------------------------------------------------


def test_export_spec_then_build_gives_the_same_directory(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed", SPECS)
    v1 = verified(fed, fed.directory_file.read_bytes())
    members = tuple(replace(m, organisation="福建省通信管理局 \"闽\"") if m.node_id == BUREAU
                    else m for m in v1.members)
    fed.directory_file.write_bytes(resign(
        fed, v1, version=4, members=members, numbering_plan=PLAN,
        revoked_cert_serials=frozenset({"1f2e3d", "abc123"}),
        retired_signing_keys=frozenset({bytes(range(32))})))
    in_force = verified(fed, fed.directory_file.read_bytes())

    exported = bcx("directory", "export-spec", "--config", str(fed.config(OFFICE)))
    assert exported.returncode == 0, exported.stderr
    spec = tmp_path / "members.toml"
    spec.write_text(exported.stdout)
    assert exported.stdout.count("\n[[member]]\n") == 5
    assert exported.stdout.count("\n[[block]]\n") == 2
    assert "version = 5\n" in exported.stdout

    out = tmp_path / "built.bin"
    built = bcx("directory", "build", "--spec", str(spec), "--ca", str(fed.ca_cert),
                "--office-keys", str(fed.workspace / OFFICE / "keys"), "--out", str(out))
    assert built.returncode == 0, built.stderr
    rebuilt = verified(fed, out.read_bytes())
    assert rebuilt.version == 5
    assert content(rebuilt) == content(in_force)
    assert rebuilt.member(BUREAU).organisation == "福建省通信管理局 \"闽\""


def test_an_agency_is_admitted_by_adding_it_to_the_exported_members_file(
        tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    exported = bcx("directory", "export-spec", "--config", str(fed.config(OFFICE))).stdout
    pki.issue_node(ca_dir=fed.workspace / "pki", node_id="cucc.fj",
                   out=tmp_path / "cucc-keys")
    spec = tmp_path / "members.toml"
    spec.write_text(exported + """
[[member]]
id = "cucc.fj"
role = "carrier"
province = "fj"
organisation = "China Unicom Fujian"
endpoint = "10.0.0.7:7443"
keys = "cucc-keys"

[[block]]
prefix = "+8618659"
carrier = "cucc.fj"
province = "fj"
""")
    out = tmp_path / "v2.bin"
    built = bcx("directory", "build", "--spec", str(spec), "--ca", str(fed.ca_cert),
                "--office-keys", str(fed.workspace / OFFICE / "keys"), "--out", str(out))
    assert built.returncode == 0, built.stderr
    assert "directory version 2 with 5 members" in built.stdout
    v2 = verified(fed, out.read_bytes())
    v1 = verified(fed, fed.directory_file.read_bytes())
    assert v2.members[:4] == v1.members
    assert v2.member("cucc.fj").endpoint == "10.0.0.7:7443"
    assert v2.numbering_plan == (NumberBlock(prefix="+8618659", carrier_node="cucc.fj",
                                             province="fj"),)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace('signing_key = "', 'signing_kee = "', 1),
     r"member 1 \(office.cn\): unknown field signing_kee"),
    (lambda s: s.replace('hpke_public_key = "', 'hpke_public_key = "zz', 1),
     r"member 1 \(office.cn\): hpke_public_key is not hexadecimal$"),
    (lambda s: s.replace('hpke_public_key = "', 'hpke_public_key = "00', 1),
     r"member 1 \(office.cn\): hpke_public_key must be 32 bytes \(64 hex digits\), got 33$"),
    (lambda s: s.replace('id = "police.fj"', 'id = "bureau.gd"', 1),
     r"member 2 \(bureau.gd\): certificate serial [0-9a-f]+ names node 'police.fj', "
     r"expected 'bureau.gd'"),
    (lambda s: s.replace('role = "police"', 'role = "sheriff"', 1),
     r"member 2 \(police.fj\): role must be one of police, bureau, carrier, commerce, office"),
    (lambda s: s.replace("version = 2", "version = 0", 1),
     r"version must be a whole number ≥ 1, got 0"),
])
def test_a_bad_members_file_is_one_line_naming_the_member_and_field(
        tmp_path: Path, edit: object, message: str) -> None:
    import re

    fed = make_federation(tmp_path / "fed")
    exported = bcx("directory", "export-spec", "--config", str(fed.config(OFFICE))).stdout
    spec = tmp_path / "members.toml"
    spec.write_text(edit(exported))  # type: ignore[operator]
    out = tmp_path / "bad.bin"
    built = bcx("directory", "build", "--spec", str(spec), "--ca", str(fed.ca_cert),
                "--office-keys", str(fed.workspace / OFFICE / "keys"), "--out", str(out))
    assert built.returncode == 1
    last = built.stderr.strip().splitlines()[-1]
    assert last.startswith(f"bcx: {spec}: "), last
    assert re.search(message, last), last
    assert "Traceback" not in built.stderr
    assert not out.exists()


# --- a new member, its peers' directories, refresh and escalation -----------------------------


def newcomer_federation(tmp: Path) -> Federation:
    """Directory v1 without commerce.fj (what office.cn and bureau.fj start from), v2 with
    it (what commerce.fj, admitted, starts from: its node.toml names directory-v2.bin)."""
    fed = make_federation(tmp, SPECS)
    every = verified(fed, fed.directory_file.read_bytes())
    fed.directory_file.write_bytes(resign(
        fed, every, version=1, members=tuple(m for m in every.members
                                             if m.node_id != NEWCOMER)))
    v2 = fed.workspace / "directory-v2.bin"
    v2.write_bytes(resign(fed, every, version=2))
    config = fed.config(NEWCOMER)
    config.write_text(config.read_text().replace(str(fed.directory_file), str(v2)))
    return fed


def config_of(fed: Federation, node_id: str, refresh: float) -> NodeConfig:
    cfg = NodeConfig.from_file(fed.config(node_id))
    return replace(cfg, directory_refresh_seconds=refresh,
                   deadlines=replace(cfg.deadlines, witness_interval_seconds=3600.0,
                                     scheduler_interval_seconds=3600.0),
                   delivery=replace(cfg.delivery, backoff_initial_seconds=0.05,
                                    backoff_max_seconds=0.3))


def queued(node: Node, kind: str | None = None) -> list[Any]:
    q = select(outbox).order_by(outbox.c.seq)
    if kind is not None:
        q = q.where(outbox.c.kind == kind)
    with node.reader.connect() as conn:
        return list(conn.execute(q))


REPORT = NumberReport(numbers=("+8615959000001",), category=Category.FRAUD)


def test_a_new_members_unauthenticated_answers_wait_for_the_peers_refresh(
        tmp_path: Path) -> None:
    """bureau.fj has not fetched v2 yet, so it answers the newcomer UNAUTHENTICATED. Before,
    the newcomer escalated a delivery failure to the office at the first answer; now it
    retries, `bcx directory refresh` has bureau.fj fetch v2, and the report goes through
    with no escalation."""
    fed = newcomer_federation(tmp_path / "fed")
    v2 = SignedDirectory.from_bytes((fed.workspace / "directory-v2.bin").read_bytes())

    async def scenario() -> None:
        office = make_running(config_of(fed, OFFICE, 3600))
        bureau = make_running(config_of(fed, BUREAU, 3600))
        newcomer = Node.open(config_of(fed, NEWCOMER, 3600))
        async with running(office, bureau, newcomer):
            await office.node.replace_directory(v2)  # `bcx directory publish`
            assert bureau.node.directory.version == 1
            mid = await newcomer.send(BUREAU, REPORT)

            def refused_twice() -> bool:
                row = queued(newcomer, "number_report")[0]
                return row.attempts >= 3 and "UNAUTHENTICATED" in (row.last_error or "")
            await wait_for(refused_twice, timeout=60)
            row = queued(newcomer, "number_report")[0]
            assert row.delivered_at is None and not row.escalated
            assert queued(newcomer, "escalation") == []

            refreshed = await asyncio.to_thread(
                bcx, "directory", "refresh", "--config", str(fed.config(BUREAU)))
            assert refreshed.returncode == 0, refreshed.stderr
            assert refreshed.stdout == "bureau.fj: directory version 2 adopted from office.cn\n"
            assert bureau.node.directory.version == 2

            await wait_for(lambda: queued(newcomer, "number_report")[0].delivered_at
                           is not None, timeout=60)
            assert queued(newcomer, "number_report")[0].message_id == mid
            assert queued(newcomer, "escalation") == []

            again = await asyncio.to_thread(
                bcx, "directory", "refresh", "--config", str(fed.config(BUREAU)))
            assert again.stdout == "bureau.fj: directory version 2 is the newest office.cn has\n"
            office_refresh = await asyncio.to_thread(
                bcx, "directory", "refresh", "--config", str(fed.config(OFFICE)))
            assert office_refresh.returncode == 1
            assert office_refresh.stderr.strip().splitlines()[-1].endswith(
                "office.cn is the office: it puts a directory in force with "
                "`bcx directory publish`, it fetches none")
        # The directory in force on bureau.fj is now the v2 held in its database.
        exported = bcx("directory", "export-spec", "--config", str(fed.config(BUREAU)))
        assert exported.returncode == 0, exported.stderr
        assert 'id = "commerce.fj"' in exported.stdout and "version = 3\n" in exported.stdout

    asyncio.run(scenario())


def test_unauthenticated_counts_once_the_peer_has_had_its_refresh(tmp_path: Path) -> None:
    """Past one refresh interval after the newcomer adopted its directory, a peer that
    still does not know it is a real failure: the office is told."""
    fed = newcomer_federation(tmp_path / "fed")
    v2 = SignedDirectory.from_bytes((fed.workspace / "directory-v2.bin").read_bytes())

    async def scenario() -> None:
        office = Node.open(config_of(fed, OFFICE, 3600))
        bureau = make_running(config_of(fed, BUREAU, 3600))
        newcomer = Node.open(config_of(fed, NEWCOMER, 3.0))
        async with running(office, bureau, newcomer):
            await office.replace_directory(v2)
            await newcomer.send(BUREAU, REPORT)
            await wait_for(lambda: bool(queued(newcomer, "escalation")), timeout=90)
            row = queued(newcomer, "number_report")[0]
            assert row.escalated and row.delivered_at is None
            (escalation,) = queued(newcomer, "escalation")
            body = messages.decode_message(envelope.parse(bytes(escalation.envelope))
                                           .payload).body
            assert isinstance(body, messages.Escalation)
            assert body.subject_node == BUREAU
            attempts = int(body.detail.split(" ", 1)[0])
            assert attempts > 1, body.detail  # the first answers did not count

    asyncio.run(scenario())


def test_refresh_of_a_node_that_is_not_running_is_one_line(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    refused = bcx("directory", "refresh", "--config", str(fed.config(BUREAU)))
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("bcx: node bureau.fj is not running at "), last
    assert "Traceback" not in refused.stderr
