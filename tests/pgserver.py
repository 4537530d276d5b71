"""A throwaway PostgreSQL server for the tests, run from the machine's server binaries.

Used by the fixtures in tests/conftest.py. ``initdb`` and ``pg_ctl`` refuse to run as
root, and CI runs as root: then every server command runs as the ``postgres`` system
user through ``runuser``, in a temporary directory that user owns
(docs/architecture.md#storage).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "bcx"
_START_ATTEMPTS = 3
_LOG_TAIL_LINES = 40
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresServerError(RuntimeError):
    """The test server could not be set up, started or stopped."""


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: ``pg_config --bindir``, else the newest
    Debian ``/usr/lib/postgresql/*/bin``; None if neither has them."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(re.sub(r"\D", "", Path(p).parent.name) or 0),
        reverse=True,
    )
    candidates.extend(Path(p) for p in debian)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in its own temporary directory, on a free loopback port.

    ``launch()`` makes and starts it; ``stop()``/``start()`` take it down and bring it
    back on the same port with the same data (for "database unavailable" tests);
    ``close()`` stops it and deletes everything.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # When root, the server runs as "postgres", which must be able to reach the
        # directory: pytest's own tmp_path (under a 0700 root-owned directory) would not do.
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.base_dir = Path(tempfile.mkdtemp(prefix="bcx-pg-"))
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.log_path = self.base_dir / "server.log"
        self.socket_dir.mkdir(mode=0o700)
        if self.run_as is not None:
            try:
                user = pwd.getpwnam(self.run_as)
            except KeyError as e:
                shutil.rmtree(self.base_dir, ignore_errors=True)
                raise PostgresServerError(
                    "running as root, but there is no 'postgres' system user to run "
                    "initdb/pg_ctl as (install the 'postgresql' package)"
                ) from e
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.port = 0
        self.running = False

    @classmethod
    def launch(cls, bindir: Path) -> PostgresServer:
        server = cls(bindir)
        try:
            server._initdb()
            server._start_on_free_port()
        except BaseException:
            server.close()
            raise
        return server

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL."""
        if not _DATABASE_NAME.match(name):
            raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting anyone still using it."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def start(self) -> None:
        if self.running:
            return
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=on"
        result = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_path),
            "-w", "-t", "30", "start",
        )  # fmt: skip
        if result.returncode != 0:
            raise PostgresServerError(
                f"pg_ctl start failed on port {self.port} (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n--- server log tail ---\n{self.log_tail()}"
            )
        self.running = True

    def stop(self) -> None:
        if not self.running:
            return
        result = self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        if result.returncode != 0:
            raise PostgresServerError(
                f"pg_ctl stop failed (exit {result.returncode}):\n{result.stdout}"
                f"{result.stderr}\n--- server log tail ---\n{self.log_tail()}"
            )
        self.running = False

    def close(self) -> None:
        """Stop the server if it runs and delete its directory."""
        try:
            if self.running:
                self.stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no server log: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def _initdb(self) -> None:
        # --locale=C: the machine's LANG may name a locale that is not generated.
        result = self._run(
            "initdb", "-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8",
            "--locale=C", "-D", str(self.data_dir),
        )  # fmt: skip
        if result.returncode != 0:
            raise PostgresServerError(
                f"initdb failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _start_on_free_port(self) -> None:
        # The port found free may be taken before the server binds it: try a few.
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = _free_port()
            try:
                self.start()
            except PostgresServerError:
                in_use = "could not bind" in self.log_tail() or "in use" in self.log_tail()
                if attempt == _START_ATTEMPTS or not in_use:
                    raise
            else:
                return

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        # stdin from /dev/null and cwd the server's own directory: the postmaster that
        # pg_ctl leaves behind must not hold our pipes, and "postgres" may not be allowed
        # into the current directory.
        return subprocess.run(
            command,
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def unique_database_name(hint: str) -> str:
    """A database name made from ``hint`` (a test's name), unique within the server."""
    stem = re.sub(r"[^a-z0-9_]+", "_", hint.lower()).strip("_")[:40] or "db"
    return f"t_{stem}_{os.urandom(4).hex()}"
