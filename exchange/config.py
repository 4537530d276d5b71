"""Node configuration: a frozen dataclass read from node.toml, errors naming the key."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchange.errors import ConfigError
from exchange.identity import NODE_ID
from exchange.storage import engines

DEFAULT_REFRESH_SECONDS = 300.0
# The zone an operator reads times in (stored times are UTC): node.timezone.
DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class Limits:
    max_envelope_bytes: int = 4 * 1024 * 1024
    clock_skew_seconds: float = 300.0
    max_numbers_per_message: int = 10_000
    # Units of work waiting for the ledger writer before the node answers RESOURCE_EXHAUSTED.
    max_pending: int = 20_000
    # Work one peer may have waiting at once, so a flood from one does not starve others.
    max_pending_per_peer: int = 5_000
    # Envelopes a sender keeps in flight on one DeliverStream.
    stream_window: int = 256
    # Bytes of envelopes one DeliverStream may hold waiting for the ledger on the receiver:
    # a window of large bulk messages (thousands of numbers each) is bounded by this.
    stream_window_bytes: int = 8 * 1024 * 1024
    group_commit_window_ms: float = 2.0
    max_batch: int = 512
    # What an overloaded node asks a sender to wait before trying again.
    retry_after_ms: float = 500.0
    # Bytes of envelopes one peer may have this node store a day (UTC); beyond it the
    # peer is refused RESOURCE_EXHAUSTED until the next day.
    quota_bytes_per_peer_per_day: int = 256 * 1024 * 1024
    # Bytes of leaves one GetEntries answer holds at most (it says where to go on).
    max_entries_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Delivery:
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 60.0
    # After this many failed attempts or this long, the sender escalates (and keeps trying).
    escalate_after_attempts: int = 20
    escalate_after_seconds: float = 3600.0
    bulk_threshold: int = 8
    # Longest wait for one Deliver call's receipt (a stream gets 50 ms more per message).
    call_timeout_seconds: float = 30.0
    # On SIGTERM: how long calls under way, then deliveries under way, may take to finish.
    stop_grace_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class Deadlines:
    shutdown_hours: float = 24.0
    case_hours: float = 72.0
    appeal_hours: float = 72.0
    feedback_hours: float = 48.0
    scheduler_interval_seconds: float = 30.0
    witness_interval_seconds: float = 10.0
    progress_interval_seconds: float = 3600.0

    def shutdown(self) -> timedelta:
        return timedelta(hours=self.shutdown_hours)


def parse_listen(value: str, key: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) as (host, port); ConfigError naming ``key``."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{key} must be host:port with a port from 0 to 65535, got {value!r}")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: str
    credentials_dir: Path
    ca_cert: Path
    database_url: str
    listen: str
    directory_file: Path
    office_id: str = "office.cn"
    # How often to ask the office for a newer directory (sooner as expiry nears).
    directory_refresh_seconds: float = 300.0
    metrics_listen: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    limits: Limits = field(default_factory=Limits)
    delivery: Delivery = field(default_factory=Delivery)
    deadlines: Deadlines = field(default_factory=Deadlines)
    # Members that may read this ledger beyond their own entries, each read naming its
    # reason and logged on both sides ([ledger] audit_readers; none by default).
    audit_readers: tuple[str, ...] = ()
    path: Path | None = None

    @classmethod
    def from_file(cls, path: Path) -> NodeConfig:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as e:
            raise ConfigError(f"cannot read configuration {path}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
        return cls.from_dict(data, base=path.parent, path=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: Path, path: Path | None = None
                  ) -> NodeConfig:
        r = _Reader(data, str(path) if path else "configuration")
        tables = r.tables()
        node, keys, server = tables["node"], tables["keys"], tables["server"]
        directory = tables["directory"]
        # Read in this order, so that of several mistakes the same one is named first.
        url = r.database_url(tables["database"], base)
        node_id, office_id = r.node_and_office(node)
        timezone = r.timezone(node)
        credentials_dir = r.existing_path(keys, "keys.dir", base)
        ca_cert = r.existing_path(keys, "keys.ca", base)
        listen, metrics_listen = r.addresses(server)
        return cls(
            node_id=node_id,
            office_id=office_id,
            credentials_dir=credentials_dir,
            ca_cert=ca_cert,
            database_url=url,
            listen=listen,
            metrics_listen=metrics_listen,
            timezone=timezone,
            directory_file=resolve_path(base, r.text(directory, "directory.file")),
            directory_refresh_seconds=r.number(directory, "directory.refresh_seconds",
                                               default=DEFAULT_REFRESH_SECONDS),
            limits=r.dataclass(Limits, data.get("limits", {}), "limits"),
            delivery=r.dataclass(Delivery, data.get("delivery", {}), "delivery"),
            deadlines=r.dataclass(Deadlines, data.get("deadlines", {}), "deadlines"),
            audit_readers=r.node_ids(tables["ledger"], "ledger.audit_readers"),
            path=path,
        )

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.limits.clock_skew_seconds)


# Keys of the tables that are not read into a dataclass; "": the top level's tables.
TABLES: dict[str, frozenset[str]] = {
    "": frozenset({"node", "keys", "server", "database", "directory", "limits", "delivery",
                   "deadlines", "ledger"}),
    "node": frozenset({"id", "office", "timezone"}),
    "keys": frozenset({"dir", "ca"}),
    "server": frozenset({"listen", "metrics_listen"}),
    "database": frozenset({"url"}),
    "directory": frozenset({"file", "refresh_seconds"}),
    "ledger": frozenset({"audit_readers"}),
}


# The tables [node], [keys], ... read in this order; [ledger] alone may be left out.
REQUIRED_TABLES = ("node", "keys", "server", "database", "directory")
OPTIONAL_TABLES = ("ledger",)

# Paths that must exist when the configuration is read: the test and what the path must be.
EXISTING: dict[str, tuple[Callable[[Path], bool], str]] = {
    "keys.dir": (Path.is_dir, "a directory"),
    "keys.ca": (Path.is_file, "a file"),
}


def resolve_path(base: Path, value: str) -> Path:
    """A path as written in node.toml: ``~`` expanded, a relative one taken from ``base``
    (the folder the file is in)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def resolve_sqlite_url(url: str, base: Path) -> str:
    """``sqlite:///node.db`` with its relative file taken from ``base``; an absolute SQLite
    file (``sqlite:////var/bcx.db``) and any other URL as given."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str(resolve_path(base, url.removeprefix("sqlite:///")))
    return url


def check_node_id(value: str, key: str) -> None:
    """ConfigError naming ``key`` unless ``value`` is a node id like police.fj."""
    if not NODE_ID.match(value):
        raise ConfigError(f"{key} must be a lowercase dotted node id like police.fj, "
                          f"got {value!r}")


def check_timezone(value: str, key: str) -> None:
    """ConfigError naming ``key`` unless ``value`` is an IANA zone this machine knows."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(f"{key} must be an IANA zone name like Asia/Shanghai or UTC, "
                          f"got {value!r}") from e


class _Reader:
    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def tables(self) -> dict[str, dict[str, Any]]:
        """The tables that are not read into a dataclass, each holding only keys bcx reads."""
        self.known(self.data, "", TABLES[""])
        tables = {name: self.table(name) for name in REQUIRED_TABLES}
        for name in OPTIONAL_TABLES:
            value = self.data.get(name, {})
            if not isinstance(value, dict):
                raise ConfigError(f"{self.where}: [{name}] must be a table")
            tables[name] = value
        for name, table in tables.items():
            self.known(table, name, TABLES[name])
        return tables

    def database_url(self, table: dict[str, Any], base: Path) -> str:
        url = self.text(table, "database.url")
        try:
            engines.parse_url(url)
        except ConfigError as e:
            raise ConfigError(f"{self.where}: database.url: {e}") from e
        return resolve_sqlite_url(url, base)

    def node_and_office(self, table: dict[str, Any]) -> tuple[str, str]:
        node_id = self.text(table, "node.id")
        office_id = self.text(table, "node.office", default="office.cn")
        self.check(check_node_id, node_id, "node.id")
        self.check(check_node_id, office_id, "node.office")
        return node_id, office_id

    def timezone(self, table: dict[str, Any]) -> str:
        timezone = self.text(table, "node.timezone", default=DEFAULT_TIMEZONE)
        self.check(check_timezone, timezone, "node.timezone")
        return timezone

    def existing_path(self, table: dict[str, Any], key: str, base: Path) -> Path:
        path = resolve_path(base, self.text(table, key))
        exists, what = EXISTING[key]
        if not exists(path):
            raise ConfigError(f"{self.where}: {key}: {path} is not {what}")
        return path

    def addresses(self, table: dict[str, Any]) -> tuple[str, str | None]:
        """server.listen and the optional server.metrics_listen, each host:port."""
        listen = self.text(table, "server.listen")
        metrics_listen = self.opt_str(table, "server.metrics_listen")
        self.check(parse_listen, listen, "server.listen")
        if metrics_listen is not None:
            self.check(parse_listen, metrics_listen, "server.metrics_listen")
        return listen, metrics_listen

    def check(self, check: Callable[[str, str], object], value: str, key: str) -> None:
        """Run a check whose error names only the key, so that it names the file too."""
        try:
            check(value, key)
        except ConfigError as e:
            raise ConfigError(f"{self.where}: {e}") from e

    def known(self, table: dict[str, Any], name: str, keys: frozenset[str]) -> None:
        for key in table:
            if key not in keys:
                what = f"table [{key}]" if not name else f"key {name}.{key}"
                raise ConfigError(
                    f"{self.where}: unknown {what} (known: {', '.join(sorted(keys))})")

    def number(self, table: dict[str, Any], key: str, *, default: float) -> float:
        value = table.get(key.rsplit(".", maxsplit=1)[-1], default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self.where}: {key} must be a number, got {value!r}")
        if value <= 0:
            raise ConfigError(f"{self.where}: {key} must be positive, got {value!r}")
        return float(value)

    def table(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        if not isinstance(value, dict):
            raise ConfigError(f"{self.where}: missing table [{name}]")
        return value

    def text(self, table: dict[str, Any], key: str, default: str | None = None) -> str:
        value = table.get(key.rsplit(".", maxsplit=1)[-1], default)
        if value is None:
            raise ConfigError(f"{self.where}: missing key {key}")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.where}: {key} must be a non-empty string, got {value!r}")
        return value

    def node_ids(self, table: dict[str, Any], key: str) -> tuple[str, ...]:
        value = table.get(key.rsplit(".", maxsplit=1)[-1], [])
        if not isinstance(value, list) or not all(
                isinstance(v, str) and NODE_ID.match(v) for v in value):
            raise ConfigError(f"{self.where}: {key} must be a list of node ids like "
                              f"[\"office.cn\"], got {value!r}")
        return tuple(value)

    def opt_str(self, table: dict[str, Any], key: str) -> str | None:
        if key.rsplit(".", maxsplit=1)[-1] not in table:
            return None
        return self.text(table, key)

    def dataclass(self, cls: Any, table: Any, name: str) -> Any:
        if not isinstance(table, dict):
            raise ConfigError(f"{self.where}: [{name}] must be a table")
        known = {f.name: f for f in cls.__dataclass_fields__.values()}
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in known:
                raise ConfigError(
                    f"{self.where}: unknown key {name}.{key} (known: {', '.join(sorted(known))})"
                )
            default = known[key].default
            if isinstance(default, bool) or not isinstance(value, int | float) \
                    or isinstance(value, bool):
                raise ConfigError(f"{self.where}: {name}.{key} must be a number, got {value!r}")
            if value <= 0:
                raise ConfigError(f"{self.where}: {name}.{key} must be positive, got {value!r}")
            if isinstance(default, int) and not isinstance(value, int):
                raise ConfigError(f"{self.where}: {name}.{key} must be an integer, got {value!r}")
            values[key] = value
        return cls(**values)
