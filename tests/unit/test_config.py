"""node.toml: every bad configuration is refused with a message naming the key and the
problem; `bcx node init` writes a file that parses and documents every key."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.config import (
    TABLES,
    Deadlines,
    Delivery,
    Limits,
    NodeConfig,
    check_node_id,
    check_timezone,
    resolve_path,
    resolve_sqlite_url,
)
from exchange.errors import ConfigError
from nodes.federation import write_node_toml

Table = dict[str, Any]


def valid(tmp: Path) -> dict[str, Table]:
    (tmp / "keys").mkdir(exist_ok=True)
    (tmp / "ca.pem").write_text("not parsed by the configuration\n")
    return {
        "node": {"id": "police.fj", "office": "office.cn"},
        "keys": {"dir": "keys", "ca": "ca.pem"},
        "server": {"listen": "127.0.0.1:7443", "metrics_listen": "127.0.0.1:9100"},
        "database": {"url": "sqlite:///node.db"},
        "directory": {"file": "directory.bin", "refresh_seconds": 60},
        "limits": {"max_batch": 64},
        "delivery": {"backoff_initial_seconds": 0.25},
        "deadlines": {"shutdown_hours": 12},
    }


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def to_toml(data: dict[str, Any]) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            lines.append(f"\n[{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


Edit = Callable[[dict[str, Any]], None]


def set_key(table: str, key: str, value: Any) -> Edit:
    return lambda d: d[table].__setitem__(key, value)


def drop_key(table: str, key: str) -> Edit:
    return lambda d: d[table].pop(key)


def drop_table(table: str) -> Edit:
    return lambda d: d.pop(table)


@dataclass(frozen=True)
class Bad:
    id: str
    edit: Edit
    error: str  # regular expression searched in the ConfigError's message


BAD = (
    Bad("missing-table-node", drop_table("node"), r"missing table \[node\]"),
    Bad("missing-table-database", drop_table("database"), r"missing table \[database\]"),
    Bad("table-is-a-value", lambda d: d.__setitem__("server", "127.0.0.1:7443"),
        r"missing table \[server\]"),
    Bad("missing-key-node-id", drop_key("node", "id"), r"missing key node\.id"),
    Bad("missing-key-listen", drop_key("server", "listen"), r"missing key server\.listen"),
    Bad("missing-key-database-url", drop_key("database", "url"), r"missing key database\.url"),
    Bad("missing-key-directory-file", drop_key("directory", "file"),
        r"missing key directory\.file"),
    Bad("node-id-wrong-type", set_key("node", "id", 7),
        r"node\.id must be a non-empty string, got 7"),
    Bad("node-id-empty", set_key("node", "id", ""), r"node\.id must be a non-empty string"),
    Bad("node-id-not-a-node-id", set_key("node", "id", "Police FJ"),
        r"node\.id must be a lowercase dotted node id like police\.fj, got 'Police FJ'"),
    Bad("office-not-a-node-id", set_key("node", "office", "office"),
        r"node\.office must be a lowercase dotted node id"),
    Bad("limit-negative", set_key("limits", "max_batch", -1),
        r"limits\.max_batch must be positive, got -1"),
    Bad("limit-zero", set_key("limits", "stream_window", 0),
        r"limits\.stream_window must be positive, got 0"),
    Bad("limit-wrong-type", set_key("limits", "max_pending", "lots"),
        r"limits\.max_pending must be a number, got 'lots'"),
    Bad("limit-bool", set_key("limits", "max_pending", True),
        r"limits\.max_pending must be a number, got True"),
    Bad("limit-integer-given-a-fraction", set_key("limits", "max_batch", 1.5),
        r"limits\.max_batch must be an integer, got 1\.5"),
    Bad("delivery-negative", set_key("delivery", "backoff_max_seconds", -5),
        r"delivery\.backoff_max_seconds must be positive"),
    Bad("deadline-wrong-type", set_key("deadlines", "case_hours", [72]),
        r"deadlines\.case_hours must be a number"),
    Bad("limits-not-a-table", lambda d: d.__setitem__("limits", 5), r"\[limits\] must be a table"),
    Bad("unknown-limit", set_key("limits", "max_bacth", 64),
        r"unknown key limits\.max_bacth \(known: .*max_batch"),
    Bad("unknown-key-in-node", set_key("node", "role", "police"),
        r"unknown key node\.role \(known: id, office, timezone\)"),
    Bad("unknown-timezone", set_key("node", "timezone", "Mars/Olympus"),
        r"node\.timezone must be an IANA zone name like Asia/Shanghai or UTC, "
        r"got 'Mars/Olympus'"),
    Bad("timezone-not-a-string", set_key("node", "timezone", 8),
        r"node\.timezone must be a non-empty string, got 8"),
    Bad("unknown-key-in-server", set_key("server", "port", 7443),
        r"unknown key server\.port \(known: listen, metrics_listen\)"),
    Bad("unknown-key-in-database", set_key("database", "password", "x"),
        r"unknown key database\.password \(known: url\)"),
    Bad("unknown-table", lambda d: d.__setitem__("metrics", {"port": 9100}),
        r"unknown table \[metrics\]"),
    Bad("listen-without-port", set_key("server", "listen", "127.0.0.1"),
        r"server\.listen must be host:port with a port from 0 to 65535, got '127\.0\.0\.1'"),
    Bad("listen-port-not-a-number", set_key("server", "listen", "127.0.0.1:https"),
        r"server\.listen must be host:port"),
    Bad("listen-without-host", set_key("server", "listen", ":7443"),
        r"server\.listen must be host:port"),
    Bad("listen-port-too-large", set_key("server", "listen", "0.0.0.0:70000"),
        r"server\.listen must be host:port with a port from 0 to 65535, got '0\.0\.0\.0:70000'"),
    Bad("metrics-listen-without-port", set_key("server", "metrics_listen", "localhost"),
        r"server\.metrics_listen must be host:port .*got 'localhost'"),
    Bad("metrics-listen-a-url", set_key("server", "metrics_listen", "http://127.0.0.1:9100/"),
        r"server\.metrics_listen must be host:port"),
    Bad("metrics-listen-wrong-type", set_key("server", "metrics_listen", 9100),
        r"server\.metrics_listen must be a non-empty string, got 9100"),
    Bad("database-url-unknown-scheme", set_key("database", "url", "mysql://db/bcx"),
        r"database\.url: database URL scheme 'mysql' is not supported"),
    Bad("database-url-psycopg2", set_key("database", "url", "postgresql://app@db/bcx"),
        r"database\.url: .*'postgresql' is not supported \(use postgresql\+psycopg://\)"),
    Bad("database-url-not-a-url", set_key("database", "url", "node.db"),
        r"database\.url: database URL .* is not a valid URL"),
    Bad("database-url-password-not-echoed",
        set_key("database", "url", "postgresql+psycopg://app:s3cret@db:port/bcx"),
        r"database\.url: database URL 'postgresql\+psycopg://\*\*\*' is not a valid URL"),
    Bad("keys-dir-missing", set_key("keys", "dir", "no-such-keys"),
        r"keys\.dir: .*no-such-keys is not a directory"),
    Bad("keys-ca-missing", set_key("keys", "ca", "no-such-ca.pem"),
        r"keys\.ca: .*no-such-ca\.pem is not a file"),
    Bad("refresh-negative", set_key("directory", "refresh_seconds", -1),
        r"directory\.refresh_seconds must be positive, got -1"),
    Bad("refresh-wrong-type", set_key("directory", "refresh_seconds", "5m"),
        r"directory\.refresh_seconds must be a number, got '5m'"),
    Bad("ledger-not-a-table", lambda d: d.__setitem__("ledger", 5), r"\[ledger\] must be a table"),
    Bad("unknown-key-in-ledger", lambda d: d.__setitem__("ledger", {"readers": []}),
        r"unknown key ledger\.readers \(known: audit_readers\)"),
    Bad("audit-readers-not-node-ids",
        lambda d: d.__setitem__("ledger", {"audit_readers": ["Office CN"]}),
        r"ledger\.audit_readers must be a list of node ids like \[\"office\.cn\"\], "
        r"got \['Office CN'\]"),
)


def test_the_valid_base_configuration_loads(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(to_toml(valid(tmp_path)))
    cfg = NodeConfig.from_file(path)
    assert cfg.node_id == "police.fj"
    assert cfg.credentials_dir == tmp_path / "keys"
    assert cfg.database_url == f"sqlite:///{tmp_path / 'node.db'}"
    assert cfg.metrics_listen == "127.0.0.1:9100"
    assert cfg.directory_refresh_seconds == 60.0
    assert cfg.limits.max_batch == 64
    assert cfg.delivery.backoff_initial_seconds == 0.25
    assert cfg.deadlines.shutdown_hours == 12
    assert cfg.audit_readers == ()


def test_audit_readers_are_read_from_the_ledger_table(tmp_path: Path) -> None:
    data = valid(tmp_path)
    data["ledger"] = {"audit_readers": ["office.cn", "police.gd"]}
    assert NodeConfig.from_dict(data, base=tmp_path).audit_readers == ("office.cn", "police.gd")


@pytest.mark.parametrize("case", BAD, ids=[b.id for b in BAD])
def test_bad_configuration_names_the_key_and_the_problem(case: Bad, tmp_path: Path) -> None:
    data = valid(tmp_path)
    case.edit(data)
    path = tmp_path / "node.toml"
    path.write_text(to_toml(data))
    with pytest.raises(ConfigError, match=case.error) as refused:
        NodeConfig.from_file(path)
    assert str(refused.value).startswith(f"{path}: "), refused.value
    assert "s3cret" not in str(refused.value)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=rf"cannot read configuration {re.escape(str(missing))}: "
                                          r"No such file or directory"):
        NodeConfig.from_file(missing)


def test_bad_toml_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[node]\nid = "police.fj\n')
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: not valid TOML: .*line 2"):
        NodeConfig.from_file(path)


def test_metrics_listen_is_optional_and_ipv6_is_accepted(tmp_path: Path) -> None:
    data = valid(tmp_path)
    del data["server"]["metrics_listen"]
    del data["directory"]["refresh_seconds"]
    data["server"]["listen"] = "[::1]:7443"
    path = tmp_path / "node.toml"
    path.write_text(to_toml(data))
    cfg = NodeConfig.from_file(path)
    assert cfg.metrics_listen is None
    assert cfg.listen == "[::1]:7443"
    assert cfg.directory_refresh_seconds == 300.0


# --- the pure pieces ---------------------------------------------------------------------------

BASE = Path("/etc/bcx/police")


@pytest.mark.parametrize(("written", "resolved"), [
    ("keys", BASE / "keys"),
    ("./keys/ca.pem", BASE / "keys" / "ca.pem"),
    ("../common/directory.bin", BASE / ".." / "common" / "directory.bin"),
    ("/var/lib/bcx/keys", Path("/var/lib/bcx/keys")),
    ("~/keys", Path.home() / "keys"),
])
def test_a_relative_path_is_taken_from_the_configuration_folder(written: str,
                                                                resolved: Path) -> None:
    assert resolve_path(BASE, written) == resolved


@pytest.mark.parametrize(("url", "resolved"), [
    ("sqlite:///node.db", f"sqlite:///{BASE / 'node.db'}"),
    ("sqlite:///data/node.db", f"sqlite:///{BASE / 'data' / 'node.db'}"),
    ("sqlite:////var/lib/bcx/node.db", "sqlite:////var/lib/bcx/node.db"),
    ("sqlite://", "sqlite://"),
    ("postgresql+psycopg://app@db/bcx", "postgresql+psycopg://app@db/bcx"),
])
def test_only_a_relative_sqlite_file_is_resolved(url: str, resolved: str) -> None:
    assert resolve_sqlite_url(url, BASE) == resolved


@given(st.from_regex(r"[a-z][a-z0-9_-]{0,20}(\.[a-z][a-z0-9_-]{0,20}){0,2}", fullmatch=True))
def test_resolving_a_sqlite_url_twice_changes_nothing_more(name: str) -> None:
    once = resolve_sqlite_url(f"sqlite:///{name}.db", BASE)
    assert once == f"sqlite:///{BASE / (name + '.db')}"
    assert resolve_sqlite_url(once, BASE) == once


@pytest.mark.parametrize(("value", "error"), [
    ("police.fj", None),
    ("office.cn", None),
    ("Police.FJ", r"node\.id must be a lowercase dotted node id like police\.fj, "
                  r"got 'Police\.FJ'"),
    ("police fj", r"node\.id must be a lowercase dotted node id"),
])
def test_check_node_id(value: str, error: str | None) -> None:
    if error is None:
        check_node_id(value, "node.id")
    else:
        with pytest.raises(ConfigError, match=error):
            check_node_id(value, "node.id")


@pytest.mark.parametrize(("value", "error"), [
    ("Asia/Shanghai", None),
    ("UTC", None),
    ("Mars/Olympus", r"node\.timezone must be an IANA zone name like Asia/Shanghai or UTC, "
                     r"got 'Mars/Olympus'"),
    ("../etc/passwd", r"node\.timezone must be an IANA zone name"),
])
def test_check_timezone(value: str, error: str | None) -> None:
    if error is None:
        check_timezone(value, "node.timezone")
    else:
        with pytest.raises(ConfigError, match=error):
            check_timezone(value, "node.timezone")


def test_of_several_mistakes_the_database_url_is_named_first(tmp_path: Path) -> None:
    data = valid(tmp_path)
    data["database"]["url"] = "mysql://db/bcx"
    data["node"]["id"] = "Police FJ"
    data["server"]["listen"] = "nowhere"
    with pytest.raises(ConfigError, match=r"^configuration: database\.url: "):
        NodeConfig.from_dict(data, base=tmp_path)


# --- the template ---------------------------------------------------------------------------


def written(tmp_path: Path, **kw: Any) -> Path:
    valid(tmp_path)
    return write_node_toml(tmp_path / "node.toml", node_id="police.fj", office_id="office.cn",
                           keys_dir=tmp_path / "keys", ca=tmp_path / "ca.pem",
                           listen="127.0.0.1:7443", database_url="sqlite:///node.db",
                           directory=tmp_path / "directory.bin", **kw)


def test_template_documents_every_key_bcx_reads(tmp_path: Path) -> None:
    text = written(tmp_path).read_text()
    keys = {f"{name}.{key}" for name, table in TABLES.items() if name for key in table}
    for name, cls in (("limits", Limits), ("delivery", Delivery), ("deadlines", Deadlines)):
        keys |= {f"{name}.{f.name}" for f in dataclasses.fields(cls)}
    table = ""
    documented = set()
    for line in text.splitlines():
        if m := re.match(r"^\[(\w+)\]$", line):
            table = m.group(1)
        elif m := re.match(r"^#? ?(\w+) = ", line):
            documented.add(f"{table}.{m.group(1)}")
    assert documented == keys
    assert {f"[{t}]" for t in TABLES[""]} <= set(text.splitlines())


def test_template_defaults_are_the_dataclass_defaults(tmp_path: Path) -> None:
    """Uncommenting every documented default changes nothing."""
    text = re.sub(r"^# (\w+ = )", r"\1", written(tmp_path).read_text(), flags=re.MULTILINE)
    data = tomllib.loads(text)
    for name, cls in (("limits", Limits), ("delivery", Delivery), ("deadlines", Deadlines)):
        assert cls(**data[name]) == cls(), name
    assert data["directory"]["refresh_seconds"] == NodeConfig.__dataclass_fields__[
        "directory_refresh_seconds"].default


def test_written_configuration_parses(tmp_path: Path) -> None:
    cfg = NodeConfig.from_file(written(tmp_path))
    assert (cfg.node_id, cfg.office_id, cfg.listen) == ("police.fj", "office.cn", "127.0.0.1:7443")
    assert cfg.metrics_listen is None


def test_written_configuration_with_metrics_parses(tmp_path: Path) -> None:
    cfg = NodeConfig.from_file(written(tmp_path, metrics_listen="127.0.0.1:9464"))
    assert cfg.metrics_listen == "127.0.0.1:9464"


# --- the command ------------------------------------------------------------------------------


def bcx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nodes.cli", *args], check=False,
                          capture_output=True,
                          text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})


@pytest.mark.parametrize("command", [["node", "run"], ["db", "upgrade"]])
def test_bcx_with_a_bad_configuration_exits_non_zero_naming_the_key(
        command: list[str], tmp_path: Path) -> None:
    data = valid(tmp_path)
    data["server"]["metrics_listen"] = "localhost"
    path = tmp_path / "bad.toml"
    path.write_text(to_toml(data))
    result = bcx(*command, "--config", str(path), cwd=tmp_path)
    assert result.returncode == 1, result
    assert re.search(r"bcx: [^ ]*bad\.toml: server\.metrics_listen must be host:port "
                     r"with a port from 0 to 65535, got 'localhost'", result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "node.db").exists()


def test_bcx_node_init_writes_a_configuration_that_loads(tmp_path: Path) -> None:
    valid(tmp_path)
    out = tmp_path / "police" / "node.toml"
    result = bcx("node", "init", "--node-id", "police.fj", "--keys", "keys", "--ca", "ca.pem",
                 "--directory", "directory.bin", "--metrics-listen", "127.0.0.1:9464",
                 "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = NodeConfig.from_file(out)
    assert cfg.credentials_dir == tmp_path / "keys"
    assert cfg.metrics_listen == "127.0.0.1:9464"
    assert cfg.database_url == f"sqlite:///{tmp_path / 'police' / 'node.db'}"
