"""Nodes keep their directory current from the office (docs/architecture.md#the-directory):
the refresh loop adopts what the office publishes, survives the office being down, and
refuses a forged or older directory. Real gRPC over mTLS on loopback; SQLite files."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fedharness import ServingWith, make_federation, wait_for
from fedharness import running as serving
from sqlalchemy import select

from exchange import identity, pki
from exchange.config import NodeConfig
from exchange.errors import DirectoryError, DirectoryRollbackError
from exchange.ledger.entries import Entry, EntryKind
from exchange.node import Node
from exchange.runtime import MIN_REFRESH_SECONDS, RunningNode, refresh_delay
from exchange.schema import directories
from exchange.transport.services import ExchangeService
from exchange.wire.bcx.v1 import directory_pb2
from nodes.federation import (
    Federation,
    MemberSpec,
    build_directory,
    free_port,
    member_from_credentials,
    sign_with_office,
)

pytestmark = pytest.mark.network

OFFICE, POLICE = "office.cn", "police.fj"


def node_of(fed: Federation, node_id: str, **config: Any) -> Node:
    cfg = NodeConfig.from_file(fed.config(node_id))
    return Node.open(replace(cfg, deadlines=replace(cfg.deadlines, witness_interval_seconds=3600.0),
                        **config))


def refreshes(node: Node, outcome: str) -> float:
    return node.metrics.registry.get_sample_value(
        "bcx_directory_refreshes_total", {"outcome": outcome}) or 0


def directory_entries(node: Node) -> list[str]:
    return [e.subject for _, leaf in node.store.leaves(0, node.store.size + 1)
            if (e := Entry.decode(leaf)).kind is EntryKind.DIRECTORY]


def directory_v2(fed: Federation) -> identity.SignedDirectory:
    """Version 2: the office admits a new reseller carrier."""
    ca = pki.load_certificate(fed.ca_cert)
    v1 = identity.verify_directory(
        identity.SignedDirectory.from_bytes(fed.directory_file.read_bytes()), ca=ca,
        office_id=OFFICE, now=datetime.now(UTC))
    keys = fed.workspace / "mvno-x.fj" / "keys"
    pki.issue_node(ca_dir=fed.workspace / "pki", node_id="mvno-x.fj", out=keys)
    newcomer = member_from_credentials(MemberSpec(
        node_id="mvno-x.fj", role=identity.Role.CARRIER, province="fj",
        organisation="MVNO X", endpoint=f"127.0.0.1:{free_port()}", reseller=True), keys, ca)
    d = build_directory(trust_domain=v1.trust_domain, members=(*v1.members, newcomer),
                        version=2)
    return sign_with_office(d, fed.workspace / OFFICE / "keys", ca)


def forged_v3(fed: Federation, signed_v2: identity.SignedDirectory) -> identity.SignedDirectory:
    """Version 3 presenting the office's certificate, but signed by police's key."""
    ca = pki.load_certificate(fed.ca_cert)
    v2 = identity.verify_directory(signed_v2, ca=ca, office_id=OFFICE, now=datetime.now(UTC))
    d = build_directory(trust_domain=v2.trust_domain, members=v2.members, version=3)
    police = pki.load_node_credentials(fed.workspace / POLICE / "keys", ca=ca,
                                       now=datetime.now(UTC))
    return identity.sign_directory(d, police.signer, signed_v2.signer_certificate_pem)


# --- when to ask -----------------------------------------------------------------------------


REFRESH_DELAYS = [
    # time left, interval, failures in a row, expected delay
    (timedelta(days=30), 300, 0, 300),
    (timedelta(minutes=10), 300, 0, 300),
    (timedelta(minutes=4), 300, 0, 120),  # half the time left
    (timedelta(seconds=1), 300, 0, MIN_REFRESH_SECONDS),
    (timedelta(seconds=-60), 300, 0, MIN_REFRESH_SECONDS),  # expired: ask again soon
    (timedelta(days=30), 300, 1, MIN_REFRESH_SECONDS),  # failed: retry soon, backing off
    (timedelta(days=30), 300, 4, 8 * MIN_REFRESH_SECONDS),
    (timedelta(days=30), 300, 40, 300),  # the backoff stops at the interval
    (timedelta(days=30), 0.2, 0, MIN_REFRESH_SECONDS),  # never a busy loop
]


@pytest.mark.parametrize(("left", "interval", "failures", "expected"), REFRESH_DELAYS)
def test_refresh_delay(left: timedelta, interval: float, failures: int,
                       expected: float) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert refresh_delay(now + left, now, interval, failures) == expected


# --- the loop -----------------------------------------------------------------------------------


def test_node_adopts_the_directory_the_office_publishes(tmp_path: Path) -> None:
    fed = make_federation(tmp_path)
    signed_v2 = directory_v2(fed)

    async def scenario() -> None:
        office = node_of(fed, OFFICE)
        police = node_of(fed, POLICE, directory_refresh_seconds=0.1)
        async with serving(police) as (rp,):
            # The office is down at first: failures are counted, logged and retried.
            await wait_for(lambda: refreshes(police, "unreachable") >= 2, timeout=30)
            async with serving(office):
                await wait_for(lambda: refreshes(police, "current") >= 1, timeout=30)
                assert police.directory.version == 1
                await office.replace_directory(signed_v2)
                await wait_for(lambda: police.directory.version == 2, timeout=30)
            assert police.directory.has_member("mvno-x.fj")
            assert directory_entries(police) == ["directory v1", "directory v2"]
            with police.reader.connect() as conn:
                assert sorted(conn.scalars(select(directories.c.version))) == [1, 2]
            assert refreshes(police, "adopted") == 1
            assert not [t for t in rp._tasks if t.done()]  # the loop still runs
        # A restart starts from the newest directory held, not from the v1 file.
        assert node_of(fed, POLICE).directory.version == 2

    asyncio.run(scenario())


def test_the_office_runs_no_refresh_loop(tmp_path: Path) -> None:
    fed = make_federation(tmp_path)

    async def scenario() -> None:
        office = node_of(fed, OFFICE, directory_refresh_seconds=0.1)
        police = node_of(fed, POLICE, directory_refresh_seconds=0.1)
        async with serving(office, police) as (ro, rp):
            def loops(r: RunningNode) -> int:
                return sum("refresh_directory_loop" in repr(t.get_coro()) for t in r._tasks)
            assert (loops(ro), loops(rp)) == (0, 1)

    asyncio.run(scenario())


class OfficeAnswering(ExchangeService):
    """Something in the office's place that answers GetDirectory with what it is given."""

    def __init__(self, node: Node, signed: identity.SignedDirectory) -> None:
        super().__init__(node.inbox, node.directories, stream_window=node.config.limits.stream_window)
        self.signed = signed

    async def GetDirectory(self, request: Any, context: Any) -> directory_pb2.SignedDirectory:
        return directory_pb2.SignedDirectory(
            envelope=self.signed.envelope,
            signer_certificate_pem=self.signed.signer_certificate_pem)


@pytest.mark.parametrize(("served", "error", "message"), [
    ("forged", DirectoryError, r"directory signature does not verify"),
    ("older", DirectoryRollbackError, r"directory version 1 is not newer than the version 2"),
    ("same", DirectoryRollbackError, r"directory version 2 is not newer than the version 2"),
])
def test_a_forged_or_older_directory_from_the_office_is_refused(
        tmp_path: Path, served: str, error: type[Exception], message: str) -> None:
    fed = make_federation(tmp_path)
    signed_v2 = directory_v2(fed)
    signed_v1 = identity.SignedDirectory.from_bytes(fed.directory_file.read_bytes())
    answer = {"forged": forged_v3(fed, signed_v2), "older": signed_v1, "same": signed_v2}[served]

    async def scenario() -> None:
        office, police = node_of(fed, OFFICE), node_of(fed, POLICE)
        async with serving(ServingWith(office, OfficeAnswering(office, answer)), police) \
                as (_, rp):
            await police.replace_directory(signed_v2)
            size = police.store.size
            with pytest.raises(error, match=message):
                await rp.refresh_directory()
            assert police.directory.version == 2
            assert police.store.size == size
            assert directory_entries(police) == ["directory v1", "directory v2"]
            assert refreshes(police, "refused") == 1

    asyncio.run(scenario())


# --- the office puts a new directory in force ---------------------------------------------


def test_the_office_publishes_a_new_directory_and_members_adopt_it(tmp_path: Path) -> None:
    """`bcx directory publish` on the running office: the office adopts v2 and serves it,
    and police fetch it on their next refresh. Without it a directory could never be
    renewed, and the whole federation would stop when it expired (30 days by default)."""
    import subprocess
    import sys

    from nodes.agency import make_running

    fed = make_federation(tmp_path)
    signed_v2 = directory_v2(fed)
    v2_file = tmp_path / "directory-v2.bin"
    v2_file.write_bytes(signed_v2.to_bytes())
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a directory")

    def publish(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nodes.cli", "directory", "publish", str(path),
             "--config", str(fed.config(OFFICE))], capture_output=True, text=True,
            check=False, timeout=60)

    async def scenario() -> None:
        office = make_running(NodeConfig.from_file(fed.config(OFFICE)))
        police = node_of(fed, POLICE, directory_refresh_seconds=0.1)
        async with serving(office, police):
            await wait_for(lambda: refreshes(police, "current") >= 1, timeout=30)
            done = await asyncio.to_thread(publish, v2_file)
            assert done.returncode == 0, done.stderr
            assert "directory version 2 in force on the office" in done.stdout
            assert office.node.directory.version == 2
            await wait_for(lambda: police.directory.version == 2, timeout=30)
            assert police.directory.has_member("mvno-x.fj")
            assert directory_entries(office.node) == ["directory v1", "directory v2"]

            again = await asyncio.to_thread(publish, v2_file)
            assert again.returncode == 1
            assert "directory not published: directory version 2 is not newer than the " \
                "version 2 held" in again.stderr
            bad = await asyncio.to_thread(publish, garbage)
            assert bad.returncode == 1 and "directory not published" in bad.stderr
            assert office.node.directory.version == 2

    asyncio.run(scenario())


def test_a_node_restarted_with_a_newer_directory_file_adopts_it(tmp_path: Path) -> None:
    """Once a node has run, the directory in its database wins over the file named in
    node.toml, unless the file holds a newer version: then the file's is adopted (and
    logged). An older or unreadable file changes nothing."""
    fed = make_federation(tmp_path)
    signed_v2 = directory_v2(fed)
    v1_bytes = fed.directory_file.read_bytes()

    async def start_and_stop(node: Node) -> None:
        async with serving(node):
            pass

    first = node_of(fed, POLICE)
    asyncio.run(start_and_stop(first))
    assert directory_entries(first) == ["directory v1"]

    fed.directory_file.write_bytes(signed_v2.to_bytes())
    second = node_of(fed, POLICE)
    assert second.directory.version == 2
    asyncio.run(start_and_stop(second))
    assert directory_entries(second) == ["directory v1", "directory v2"]

    fed.directory_file.write_bytes(v1_bytes)  # older than what is held
    assert node_of(fed, POLICE).directory.version == 2
    fed.directory_file.write_bytes(b"torn")  # unreadable: what is held is used
    assert node_of(fed, POLICE).directory.version == 2
    fed.directory_file.unlink()
    assert node_of(fed, POLICE).directory.version == 2
