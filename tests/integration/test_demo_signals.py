"""`bcx demo` owns its ten node processes: the installed command, run for real, stopped by
SIGTERM or SIGHUP, resumed from a kept workspace, and failed by a node that dies. After
each run no node process survives (checked by PID) and every node port is free."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from procnodes import wait_until

from exchange.config import NodeConfig
from nodes.demo import MEMBERS

pytestmark = [pytest.mark.network, pytest.mark.slow]

BCX = str(Path(sys.executable).with_name("bcx"))
RUNNING = "federation running"


@dataclass
class DemoProcess:
    """`bcx demo …` in its own session, its output collected line by line."""

    args: tuple[str, ...]
    proc: subprocess.Popen[str] = field(init=False)
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen([BCX, "demo", *self.args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 400) -> None:
        def seen() -> bool:
            if any(text in line for line in self.lines):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.5)  # the reader may still hold the last lines
                if any(text in line for line in self.lines):
                    return True
                raise AssertionError(f"demo exited ({self.proc.returncode}) before "
                                     f"{text!r}:\n{self.output}")
            return False
        wait_until(seen, timeout=timeout, interval=0.2, what=f"demo to print {text!r}")

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.3)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def node_pids(workspace: Path) -> dict[str, int]:
    """PID of every running `node run` process whose configuration is in ``workspace``."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if "node" in words and "run" in words and "--config" in words:
            config = Path(words[words.index("--config") + 1])
            if config.parent.parent == workspace:
                found[config.parent.name] = int(entry.name)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def ports(workspace: Path) -> dict[str, int]:
    return {i: int(NodeConfig.from_file(workspace / i / "node.toml").listen.rsplit(":", 1)[1])
            for i, *_ in MEMBERS}


def assert_all_gone(pids: dict[str, int], workspace: Path) -> None:
    wait_until(lambda: not any(alive(p) for p in pids.values()), timeout=60,
               what="every node process to end")
    assert node_pids(workspace) == {}
    for node_id, port in ports(workspace).items():
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"{node_id} still listens"
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # nothing holds the port any more


@contextlib.contextmanager
def demo(*args: str) -> Iterator[DemoProcess]:
    d = DemoProcess(args)
    try:
        yield d
    finally:
        d.kill()


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str, dict[str, int]]:
    """A whole demo kept running, then SIGTERM to the demo: (workspace, exit status,
    output, the node PIDs seen while it ran)."""
    ws = tmp_path_factory.mktemp("kept") / "ws"
    with demo("--numbers", "40", "--keep", "--workspace", str(ws)) as d:
        d.wait_for(RUNNING)
        pids = node_pids(ws)
        d.signal(signal.SIGTERM)
        code = d.wait()
        return ws, code, d.output, pids


def test_sigterm_to_a_kept_demo_stops_every_node_and_frees_its_port(
        kept: tuple[Path, int, str, dict[str, int]]) -> None:
    ws, code, output, pids = kept
    assert sorted(pids) == sorted(i for i, *_ in MEMBERS), output
    assert code == 0, output
    assert "demo PASSED" in output
    assert f"start it again with: bcx demo --resume {ws}" in output
    assert_all_gone(pids, ws)


def test_a_kept_workspace_resumes_and_sighup_stops_it(
        kept: tuple[Path, int, str, dict[str, int]]) -> None:
    ws = kept[0]
    with demo("--resume", str(ws)) as d:
        d.wait_for(RUNNING, timeout=200)
        pids = node_pids(ws)
        assert sorted(pids) == sorted(i for i, *_ in MEMBERS), d.output
        # The resumed nodes serve: an operator command reaches one of them.
        status = subprocess.run([BCX, "status", "--config", str(ws / "police.fj" / "node.toml")],
                                capture_output=True, text=True, timeout=120, check=False)
        assert status.returncode == 0, status.stdout + status.stderr
        d.signal(signal.SIGHUP)
        assert d.wait() == 0, d.output
        assert f"start them again with: bcx demo --resume {ws}" in d.output
    assert_all_gone(pids, ws)


def test_a_node_that_dies_fails_the_demo_naming_it_and_its_log(
        kept: tuple[Path, int, str, dict[str, int]]) -> None:
    ws = kept[0]
    with demo("--resume", str(ws)) as d:
        d.wait_for(RUNNING, timeout=200)
        pids = node_pids(ws)
        os.kill(pids["cmcc.fj"], signal.SIGKILL)
        assert d.wait() == 1, d.output
        out = d.output
    assert f"node cmcc.fj was killed by SIGKILL; last lines of {ws / 'cmcc.fj' / 'node.log'}:" \
        in out
    tail = out.split("last lines of", 1)[1].splitlines()[1:]
    assert tail and all(line.startswith("    ") for line in tail[:3]), out
    assert "cmcc.fj (carrier) serving on port" in out  # a line of the node's own log
    assert "demo FAILED" in out and "demo PASSED" not in out
    assert_all_gone(pids, ws)


def test_a_node_that_dies_during_the_scenario_fails_it(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with demo("--numbers", "40", "--workspace", str(ws)) as d:
        d.wait_for("police.fj reported")
        pids = node_pids(ws)
        os.kill(pids["bureau.fj"], signal.SIGKILL)
        assert d.wait(timeout=400) == 1, d.output
        out = d.output
    assert "node bureau.fj was killed by SIGKILL; last lines of" in out
    assert "demo FAILED" in out and "demo PASSED" not in out
    assert_all_gone(pids, ws)


def test_sigterm_during_the_scenario_stops_every_node(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with demo("--numbers", "40", "--workspace", str(ws)) as d:
        d.wait_for("node processes up")
        pids = node_pids(ws)
        assert len(pids) == len(MEMBERS) - 1  # ctcc.fj starts late
        d.signal(signal.SIGTERM)
        assert d.wait() == 128 + signal.SIGTERM, d.output
        assert "demo stopped by SIGTERM: every node stopped" in d.output
    assert_all_gone(pids, ws)


def test_a_workspace_is_never_set_up_twice_and_only_a_demo_one_resumes(
        kept: tuple[Path, int, str, dict[str, int]], tmp_path: Path) -> None:
    ws = kept[0]
    again = subprocess.run([BCX, "demo", "--numbers", "40", "--workspace", str(ws)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1] == (
        f"bcx demo: {ws} already holds a demo federation; start it again with: "
        f"bcx demo --resume {ws}")
    empty = tmp_path / "empty"
    empty.mkdir()
    resumed = subprocess.run([BCX, "demo", "--resume", str(empty)], capture_output=True,
                             text=True, timeout=120, check=False)
    assert resumed.returncode == 2
    assert "is not a demo workspace (no node.toml for office.cn, " in resumed.stderr
    assert "make one with bcx demo --keep --workspace DIR" in resumed.stderr
