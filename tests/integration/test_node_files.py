"""A node's files on disk, through the installed `bcx` against real node processes: one
node per configuration (a second is refused before it touches the database), a database
and its WAL/SHM files only the owner may read (created so, refused otherwise, as keys
are), and evidence written 0600 without following a symbolic link."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fedharness import load_node, make_federation, running, wait_for
from procnodes import NodeProcess, tune
from sqlalchemy import select

from exchange.messages import Category, NumberReport
from exchange.schema import outbox
from nodes.federation import Federation

pytestmark = [pytest.mark.network, pytest.mark.slow]

BCX = str(Path(sys.executable).with_name("bcx"))
POLICE = "police.fj"


def bcx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BCX, *args], capture_output=True, text=True, timeout=300,
                          check=False)


def quiet(fed: Federation, node_id: str) -> Path:
    """node.toml of ``node_id`` with its background loops slowed to once an hour, so the
    running node writes nothing to its database while the test looks at it."""
    config = fed.config(node_id)
    tune(config, deadlines={"witness_interval_seconds": 3600,
                            "scheduler_interval_seconds": 3600})
    text = config.read_text().replace("# refresh_seconds = 300", "refresh_seconds = 3600")
    config.write_text(text)
    return config


def node_process(fed: Federation, node_id: str, tmp_path: Path) -> NodeProcess:
    return NodeProcess(quiet(fed, node_id), tmp_path / f"{node_id}.log")


def database(fed: Federation, node_id: str) -> Path:
    return fed.workspace / node_id / "node.db"


def snapshot(db: Path) -> dict[str, object]:
    """What a second process must not change: each file's size and mtime, the schema."""
    files = {p.name: (p.stat().st_size, p.stat().st_mtime_ns)
             for p in (db, db.with_name(db.name + "-wal")) if p.exists()}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        conn.close()
    return {"files": files, "schema": schema, "version": version}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- one node per configuration ----------------------------------------------------------


def test_a_second_node_on_the_same_configuration_is_refused_before_touching_the_database(
        tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    first = node_process(fed, POLICE, tmp_path).start()
    try:
        db = database(fed, POLICE)
        before = snapshot(db)
        second = bcx("node", "run", "--config", str(fed.config(POLICE)))
        assert second.returncode == 1, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"node {POLICE} is already running on this configuration" in lines[0]
        assert first.proc is not None and f"process {first.proc.pid} holds" in lines[0]
        assert "Running upgrade" not in second.stderr
        assert snapshot(db) == before
        assert first.alive

        upgrade = bcx("db", "upgrade", "--config", str(fed.config(POLICE)))
        assert upgrade.returncode == 1
        assert f"process {first.proc.pid} holds" in upgrade.stderr
        assert "not upgrading its database" in upgrade.stderr
        assert snapshot(db) == before
    finally:
        first.stop_quietly()


def test_a_node_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    node = node_process(fed, POLICE, tmp_path).start()
    node.kill()
    assert node.config_path.exists() and database(fed, POLICE).with_suffix(".db.lock").exists()
    try:
        node.start()  # the kernel dropped the dead process's lock
        assert node.alive
        assert node.terminate() == 0
    finally:
        node.stop_quietly()
    upgraded = bcx("db", "upgrade", "--config", str(fed.config(POLICE)))
    assert upgraded.returncode == 0, upgraded.stderr


# --- the database is private ---------------------------------------------------------------


def test_the_database_and_its_wal_and_shm_files_are_created_0600(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    db = database(fed, POLICE)
    assert not db.exists()
    node = node_process(fed, POLICE, tmp_path).start()
    try:
        companions = [db, db.with_name("node.db-wal"), db.with_name("node.db-shm")]
        assert {p.name: mode(p) for p in companions} == {p.name: 0o600 for p in companions}
        assert mode(db.with_name("node.db.lock")) == 0o600
    finally:
        node.stop_quietly()


@pytest.mark.parametrize(("name", "loose"), [
    ("node.db", 0o644),
    ("node.db-wal", 0o640),
    ("node.db-shm", 0o604),
])
def test_a_node_refuses_to_start_on_a_database_others_may_read(
        tmp_path: Path, name: str, loose: int) -> None:
    fed = make_federation(tmp_path / "fed")
    node = node_process(fed, POLICE, tmp_path).start()
    node.kill()  # a killed node leaves its -wal and -shm files behind
    path = database(fed, POLICE).with_name(name)
    assert path.exists()
    path.chmod(loose)

    refused = bcx("node", "run", "--config", str(fed.config(POLICE)))
    assert refused.returncode == 1
    assert f"database file {path} is readable by others (mode {loose:04o}); " \
        f"chmod 600 {path}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert mode(path) == loose  # reported, never silently changed

    path.chmod(0o600)
    node.start()
    assert node.terminate() == 0


def test_a_sigterm_while_the_node_starts_stops_it_cleanly_once_started(tmp_path: Path) -> None:
    # `bcx node run` installs its handlers before it opens its database and port: a
    # supervisor's SIGTERM that arrives while the node starts is a clean stop once it has
    # started (it used to kill the process with -15 in the window before the handlers).
    import signal

    from exchange.config import NodeConfig
    from exchange.runtime import stop_on_signals
    from nodes.agency import make_running

    fed = make_federation(tmp_path / "fed")

    async def scenario() -> None:
        stop = stop_on_signals()
        os.kill(os.getpid(), signal.SIGTERM)  # before the node exists
        node = make_running(NodeConfig.from_file(fed.config(POLICE)), listen="127.0.0.1:0")
        assert await node.start() > 0
        await asyncio.wait_for(node.serve_until(stop), timeout=60)
        assert stop.is_set()

    asyncio.run(scenario())


# --- evidence files ---------------------------------------------------------------------------


@pytest.fixture
def delivered(tmp_path: Path) -> tuple[Federation, str]:
    """A federation where police.fj sent bureau.fj one report and holds its receipt."""
    fed = make_federation(tmp_path / "fed")

    async def scenario() -> str:
        police, bureau = load_node(fed, POLICE), load_node(fed, "bureau.fj")
        async with running(police, bureau):
            mid = await police.send("bureau.fj", NumberReport(
                numbers=("+8615959000001",), category=Category.FRAUD))

            def receipted() -> bool:
                with police.reader.connect() as conn:
                    return conn.scalar(select(outbox.c.delivered_at).where(
                        outbox.c.message_id == mid)) is not None
            await wait_for(receipted, timeout=60)
        return mid.hex()

    return fed, asyncio.run(scenario())


def test_evidence_is_written_0600_and_never_through_a_symbolic_link(
        delivered: tuple[Federation, str], tmp_path: Path) -> None:
    fed, message_id = delivered
    config = str(fed.config(POLICE))
    os.umask(0o022)  # what an operator's shell has as a rule

    out = tmp_path / "evidence.json"
    done = bcx("evidence", "export", "--config", config, "--message-id", message_id,
               "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert mode(out) == 0o600
    assert json.loads(out.read_text())["envelope"]["payloadType"]

    # A link planted where the evidence is to go: refused, the target left alone.
    target = tmp_path / "elsewhere.txt"
    target.write_text("not evidence\n")
    link = tmp_path / "planted.json"
    link.symlink_to(target)
    refused = bcx("evidence", "export", "--config", config, "--message-id", message_id,
                  "--out", str(link))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"bcx: {link} is a symbolic link already there; refusing to write over it "
        "(choose a new --out path)")
    assert target.read_text() == "not evidence\n"

    # A dangling link, which O_CREAT alone would follow and create the target of.
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "created-through-the-link.json")
    refused = bcx("evidence", "export", "--config", config, "--message-id", message_id,
                  "--out", str(dangling))
    assert refused.returncode == 1 and "is a symbolic link already there" in refused.stderr
    assert not (tmp_path / "created-through-the-link.json").exists()

    # An existing file is not overwritten either.
    again = bcx("evidence", "export", "--config", config, "--message-id", message_id,
                "--out", str(out))
    assert again.returncode == 1 and f"{out} is a file already there" in again.stderr
