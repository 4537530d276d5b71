"""What every benchmark shares: a federation on loopback, the messages sent, processes.

The federation is made by the same code as `bcx demo` and the tests (office, police,
bureau, each with its own CA-issued keys, SQLite database and node.toml); the baselines
use the very TLS material the nodes use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from exchange import envelope, messages
from exchange.identity import Role
from exchange.messages import Category, NumberReport
from nodes.federation import Federation, MemberSpec, create_federation, free_port

SENDER = "police.fj"
RECEIVER = "bureau.fj"
CARRIER = "cmcc.fj"
TYPICAL_NUMBERS = 5  # a number report from one investigation: a handful of numbers
BULK_NUMBERS_PER_REPORT = 500  # what `bcx demo` sends per message


def make_federation(workspace: Path, *, with_carrier: bool = False) -> Federation:
    """office, police and bureau; with ``with_carrier`` also the carrier the bulk numbers
    belong to, for the full path from report to feedback."""
    specs = [
        MemberSpec(node_id="office.cn", role=Role.OFFICE, province="cn", organisation="office",
                   endpoint=f"127.0.0.1:{free_port()}"),
        MemberSpec(node_id=SENDER, role=Role.POLICE, province="fj", organisation="police",
                   endpoint=f"127.0.0.1:{free_port()}"),
        MemberSpec(node_id=RECEIVER, role=Role.BUREAU, province="fj", organisation="bureau",
                   endpoint=f"127.0.0.1:{free_port()}"),
    ]
    if with_carrier:
        specs.append(MemberSpec(node_id=CARRIER, role=Role.CARRIER, province="fj",
                                organisation="carrier", endpoint=f"127.0.0.1:{free_port()}"))
    fed = create_federation(workspace, specs)
    for path in fed.configs.values():
        # The office is not running during the bench: a witness round every 10 s would
        # only add failed connections to the figures.
        text = path.read_text().replace("# witness_interval_seconds = 10",
                                        "witness_interval_seconds = 3600")
        path.write_text(text)
    return fed


def report_body(numbers: tuple[str, ...], case: int = 1) -> NumberReport:
    return NumberReport(
        numbers=numbers, category=Category.FRAUD, discovered_at=datetime.now(UTC),
        case_number=f"FZ-2026-{case:06d}",
        evidence_summary="numbers seen in a telecom-fraud call centre", confidence=90)


def typical_numbers() -> tuple[str, ...]:
    return tuple(f"+861595900{i:04d}" for i in range(TYPICAL_NUMBERS))


def bulk_numbers(count: int, first: int = 0) -> list[str]:
    """``count`` distinct valid Fujian China Mobile numbers, in order (deterministic)."""
    # nodes.demo.sample_numbers draws at random and normalises each (~25 µs a number);
    # consecutive numbers in valid blocks are as real and cost nothing to make.
    if first + count > 1_000_000:
        raise ValueError("the bench's number range holds 1,000,000 numbers")
    return [f"+86159{59000000 + i:08d}" for i in range(first, first + count)]


def sign_envelope(signer: object, sender: str, recipient: str, body: messages.Body) -> bytes:
    now = datetime.now(UTC)
    header = messages.Header(message_id=messages.new_message_id(now), sender=sender,
                             recipient=recipient, created_at=now)
    payload = messages.encode_message(messages.Message(header, body))
    return envelope.sign(payload, envelope.PAYLOAD_TYPE_MESSAGE, signer).raw  # type: ignore[arg-type]


# --- processes -------------------------------------------------------------------------


@dataclass
class Child:
    """A process this bench started (and only that one is ever signalled)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.proc.pid)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM: the process's peak resident set since it started, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU time the process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(name: str, args: list[str], log: Path, *, wait_port: int | None = None) -> Child:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=out, env=env,
                                cwd=Path(__file__).resolve().parent.parent)
    child = Child(name, proc, log)
    if wait_port is not None:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", wait_port),
                                                                         timeout=0.2):
                break
            if time.monotonic() > deadline:
                child.stop()
                raise RuntimeError(f"{name} did not listen on port {wait_port}; see {log}")
            time.sleep(0.05)
    return child


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def endpoint_member(member: object, port: int) -> object:
    return replace(member, endpoint=f"127.0.0.1:{port}")  # type: ignore[type-var]
