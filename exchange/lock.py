"""One process at a time writes a node's database: an exclusive lock taken before it is
touched.

A second `bcx node run` on the same configuration used to run the migrations against the
live database, open the same ledger and only then fail to bind its port. The lock is an
``flock`` on a file beside the database (for SQLite; beside node.toml for a server
database), taken first thing and held as long as the process lives: the kernel releases
it when the process ends, however it ends, so a node killed with SIGKILL leaves no stale
lock behind. The holder writes its PID into the file so the refusal can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy.engine import make_url

from exchange import files
from exchange.config import NodeConfig
from exchange.errors import ConfigError

LOCK_SUFFIX: Final = ".lock"


def lock_path(config: NodeConfig) -> Path:
    """The lock file of ``config``'s node: ``<database>.lock`` beside an SQLite file (so two
    configurations naming one database exclude each other too), else ``<node.toml>.lock``
    beside the configuration."""
    url = make_url(config.database_url)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database not in ("", ":memory:") \
            and not url.query.get("uri") and url.query.get("mode") != "memory":
        db = Path(database)
        return db.with_name(db.name + LOCK_SUFFIX)
    if config.path is not None:
        return config.path.with_name(config.path.name + LOCK_SUFFIX)
    return config.credentials_dir.parent / f"{config.node_id}{LOCK_SUFFIX}"


@dataclass(slots=True)
class NodeLock:
    """The held lock; released by ``release`` or when the process ends."""

    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


def acquire(config: NodeConfig, *, purpose: str) -> NodeLock:
    """Take ``config``'s node lock without waiting, or raise ConfigError naming the PID
    that holds it. ``purpose`` says what the refused command was about to do."""
    path = lock_path(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                     files.PRIVATE_MODE)
    except OSError as e:
        raise ConfigError(f"cannot open the lock file {path}: {e.strerror}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        who = f"process {holder}" if holder else "another process"
        raise ConfigError(
            f"node {config.node_id} is already running on this configuration: {who} holds "
            f"{path}; not {purpose}") from None
    except OSError as e:
        os.close(fd)
        raise ConfigError(f"cannot lock {path}: {e.strerror}") from e
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return NodeLock(path, fd)


def _holder(fd: int) -> int | None:
    """The PID the lock's holder wrote, if it did (it may not have yet)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
