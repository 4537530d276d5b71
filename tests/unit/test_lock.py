"""Where a node's lock lives, and that a second holder is refused naming the first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from exchange import lock
from exchange.config import NodeConfig
from exchange.errors import ConfigError


def config(url: str, path: Path | None = Path("/etc/bcx/police/node.toml")) -> NodeConfig:
    return NodeConfig(node_id="police.fj", credentials_dir=Path("/etc/bcx/police/keys"),
                      ca_cert=Path("/etc/bcx/ca.pem"), database_url=url,
                      listen="127.0.0.1:7443", directory_file=Path("/etc/bcx/d.bin"),
                      path=path)


@pytest.mark.parametrize(("url", "path", "expected"), [
    ("sqlite:////var/lib/bcx/node.db", None, "/var/lib/bcx/node.db.lock"),
    ("sqlite:////var/lib/bcx/police.sqlite", None, "/var/lib/bcx/police.sqlite.lock"),
    ("postgresql+psycopg://bcx@db/police", Path("/etc/bcx/police/node.toml"),
     "/etc/bcx/police/node.toml.lock"),
    ("postgresql+psycopg://bcx@db/police", None, "/etc/bcx/police/police.fj.lock"),
    ("sqlite:///:memory:", Path("/etc/bcx/police/node.toml"), "/etc/bcx/police/node.toml.lock"),
])
def test_lock_path(url: str, path: Path | None, expected: str) -> None:
    assert lock.lock_path(config(url, path)) == Path(expected)


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    cfg = config(f"sqlite:///{tmp_path / 'node.db'}")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(tmp_path / 'node.db.lock')!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, f'{os.getpid()}\\n'.encode())\n"
         "print('held', flush=True)\n"
         "time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(ConfigError, match=(
                rf"^node police\.fj is already running on this configuration: process "
                rf"{holder.pid} holds {re.escape(str(tmp_path / 'node.db.lock'))}; not testing$")):
            lock.acquire(cfg, purpose="testing")
    finally:
        holder.kill()
        holder.wait()
    held = lock.acquire(cfg, purpose="testing")  # free once the holder is gone
    try:
        assert (tmp_path / "node.db.lock").read_text() == f"{os.getpid()}\n"
        assert (tmp_path / "node.db.lock").stat().st_mode & 0o777 == 0o600
    finally:
        held.release()
