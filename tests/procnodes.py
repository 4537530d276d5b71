"""Real node processes for integration tests: kill -9, SIGTERM and restart them.

``NodeProcess`` runs ``python -m nodes.cli node run --config node.toml`` (or, for a node
the test makes send, ``tests/sendnode.py``, which is the same node plus a command line on
stdin) in its own process group, with its log in a file. ``NodeDB`` reads a node's
database from the test process, as an operator would while the node runs (SQLite WAL
readers and PostgreSQL readers do not block the node's writer).

Everything is polled with generous deadlines (``wait_until``): the machine is small and
shared, so a slow step must make a test slower, never make it fail.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy import select as sql_select

from exchange import envelope, messages, pki
from exchange.config import NodeConfig
from exchange.ledger.audit import AuditReport, verify_ledger
from exchange.ledger.entries import Entry, EntryKind
from exchange.ledger.note import Verifier
from exchange.ledger.receipts import log_origin
from exchange.schema import inbox, ledger_leaves, outbox
from exchange.storage import engines

REPO = Path(__file__).resolve().parent.parent
SENDNODE = Path(__file__).resolve().parent / "sendnode.py"

# Generous on purpose: a node process on a loaded 2-core machine may take seconds to start.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def wait_until(predicate: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; return that, or fail naming
    ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def report_number(i: int) -> str:
    """The i-th number a test reports: distinct, valid China Mobile Fujian numbers."""
    return f"+861595{9_000_000 + i:07d}"


def tune(config: Path, **sections: dict[str, float | int]) -> None:
    """Set keys of node.toml tables (``limits``, ``delivery``, ``deadlines``) in place."""
    text = config.read_text()
    for table, values in sections.items():
        header = f"[{table}]\n"
        if header not in text:
            raise ValueError(f"{config} has no [{table}] table")
        lines = "".join(f"{k} = {v!r}\n" for k, v in values.items())
        text = text.replace(header, header + lines, 1)
    config.write_text(text)
    NodeConfig.from_file(config)  # refuse a typo here rather than in the node's log


@dataclass
class NodeProcess:
    """One node as an operating-system process, restartable on the same config and port."""

    config_path: Path
    log_path: Path
    sender: bool = False  # run tests/sendnode.py, which takes `send` commands on stdin
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def config(self) -> NodeConfig:
        return NodeConfig.from_file(self.config_path)

    @property
    def node_id(self) -> str:
        return self.config.node_id

    @property
    def port(self) -> int:
        return int(self.config.listen.rsplit(":", 1)[1])

    def start(self, *, sender: bool | None = None, wait: bool = True) -> NodeProcess:
        """Start the node; with ``wait``, return once it listens (see ``start_all``)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if sender is not None:
            self.sender = sender
        command = ([sys.executable, str(SENDNODE), "--config", str(self.config_path)]
                   if self.sender else
                   [sys.executable, "-m", "nodes.cli", "node", "run", "--config",
                    str(self.config_path)])
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"==== start {self.starts}: {' '.join(command)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE if self.sender else subprocess.DEVNULL,
            stderr=log, stdin=subprocess.PIPE if self.sender else subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own process group: signals reach only it
        )
        log.close()
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        def listening() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"{self.node_id} exited with {self.returncode} while "
                                     f"starting:\n{self.log_tail()}")
            with socket.socket() as s:
                s.settimeout(1.0)
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        wait_until(listening, timeout=timeout, interval=0.1,
                   what=f"{self.node_id} to listen on port {self.port}")

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no chance to finish anything."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)
        self._close_pipes()

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, as an init system stops a service; the node's exit status."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.node_id} did not exit within {timeout:.0f}s of "
                                 f"SIGTERM:\n{self.log_tail()}") from None
        self._close_pipes()
        return code

    def _close_pipes(self) -> None:
        assert self.proc is not None
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def send(self, recipient: str, count: int, *, numbers_per_message: int = 1,
             first_number: int = 0, timeout: float = 120.0) -> list[bytes]:
        """Have the node sign, log and queue ``count`` NumberReports to ``recipient`` in one
        transaction; return their message ids once that transaction is committed."""
        assert self.sender and self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(
            f"send {recipient} {count} {numbers_per_message} {first_number}\n".encode())
        self.proc.stdin.flush()
        line = self._read_line(timeout)
        reply = json.loads(line)
        if "error" in reply:
            raise AssertionError(f"{self.node_id} could not send: {reply['error']}")
        return [bytes.fromhex(h) for h in reply["queued"]]

    def _read_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.node_id} gave no answer in {timeout:.0f}s:\n"
                                     f"{self.log_tail()}")
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if ready:
                line = self.proc.stdout.readline().decode()
                if not line:
                    raise AssertionError(f"{self.node_id} exited ({self.returncode}):\n"
                                         f"{self.log_tail()}")
                return line

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def log_count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log_path.read_text(errors="replace")))

    def stop_quietly(self) -> None:
        """For clean-up: kill -9 whatever still runs."""
        if self.alive:
            self.kill()


def start_all(*procs: NodeProcess) -> tuple[NodeProcess, ...]:
    """Start several nodes at once (their start-up costs overlap), then wait for each."""
    for p in procs:
        p.start(wait=False)
    for p in procs:
        p.wait_listening()
    return procs


class NodeDB:
    """A node's database, read from outside the node (it may be running or not)."""

    def __init__(self, config: Path) -> None:
        self.config = NodeConfig.from_file(config)
        self.engine: Engine = engines.create_engine_for(self.config.database_url)
        self.reader = engines.reader(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def entries(self, kind: EntryKind, peer: str | None = None) -> list[tuple[int, Entry]]:
        q = sql_select(ledger_leaves.c.idx, ledger_leaves.c.leaf).where(
            ledger_leaves.c.kind == int(kind)).order_by(ledger_leaves.c.idx)
        if peer is not None:
            q = q.where(ledger_leaves.c.peer == peer)
        with self.reader.connect() as conn:
            return [(int(r.idx), Entry.decode(bytes(r.leaf))) for r in conn.execute(q)]

    def count(self, kind: EntryKind, peer: str | None = None) -> int:
        q = sql_select(func.count()).select_from(ledger_leaves).where(
            ledger_leaves.c.kind == int(kind))
        if peer is not None:
            q = q.where(ledger_leaves.c.peer == peer)
        with self.reader.connect() as conn:
            return int(conn.scalar(q) or 0)

    def leaves(self, kind: EntryKind) -> dict[int, bytes]:
        """Every leaf of ``kind`` by index, in one query."""
        q = sql_select(ledger_leaves.c.idx, ledger_leaves.c.leaf).where(
            ledger_leaves.c.kind == int(kind))
        with self.reader.connect() as conn:
            return {int(r.idx): bytes(r.leaf) for r in conn.execute(q)}

    def leaf(self, index: int) -> bytes | None:
        with self.reader.connect() as conn:
            leaf = conn.scalar(sql_select(ledger_leaves.c.leaf).where(ledger_leaves.c.idx == index))
        return None if leaf is None else bytes(leaf)

    def inbox_count(self, sender: str | None = None) -> int:
        q = sql_select(func.count()).select_from(inbox)
        if sender is not None:
            q = q.where(inbox.c.sender == sender)
        with self.reader.connect() as conn:
            return int(conn.scalar(q) or 0)

    def outbox(self, recipient: str) -> list[Any]:
        with self.reader.connect() as conn:
            return list(conn.execute(sql_select(outbox).where(outbox.c.recipient == recipient)
                                     .order_by(outbox.c.seq)))

    def undelivered(self, recipient: str) -> int:
        with self.reader.connect() as conn:
            return int(conn.scalar(sql_select(func.count()).select_from(outbox).where(
                outbox.c.recipient == recipient, outbox.c.delivered_at.is_(None))) or 0)

    def unsettled(self, recipient: str) -> int:
        """Messages to ``recipient`` neither delivered nor refused for good."""
        with self.reader.connect() as conn:
            return int(conn.scalar(sql_select(func.count()).select_from(outbox).where(
                outbox.c.recipient == recipient, outbox.c.delivered_at.is_(None),
                outbox.c.refused_at.is_(None))) or 0)

    def verify(self) -> AuditReport:
        """``bcx ledger verify``'s check: the tree recomputed against every checkpoint."""
        ca = pki.load_certificate(self.config.ca_cert)
        creds = pki.load_node_credentials(self.config.credentials_dir, ca=ca,
                                          now=datetime.now(UTC))
        verifier = Verifier.for_key(log_origin(creds.trust_domain, creds.node_id),
                                    creds.signer.public_key)
        return verify_ledger(self.engine, log_verifier=verifier)


def received_reports(db: NodeDB, sender: str) -> list[tuple[bytes, tuple[str, ...]]]:
    """(message id, numbers) of every NumberReport ``db``'s node logged RECEIVED from
    ``sender``, in ledger order."""
    out = []
    for _, e in db.entries(EntryKind.RECEIVED, peer=sender):
        msg = messages.decode_message(envelope.parse(e.envelope).payload)
        assert isinstance(msg.body, messages.NumberReport), msg.kind
        out.append((msg.header.message_id, msg.body.numbers))
    return out


def all_numbers(reports: Iterable[tuple[bytes, tuple[str, ...]]]) -> list[str]:
    return [n for _, numbers in reports for n in numbers]
