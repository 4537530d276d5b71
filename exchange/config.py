"""Node configuration: a frozen dataclass read from node.toml, errors naming the key."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from exchange.errors import ConfigError


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
    group_commit_window_ms: float = 2.0
    max_batch: int = 512


@dataclass(frozen=True, slots=True)
class Delivery:
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 60.0
    # After this many failed attempts or this long, the sender escalates (and keeps trying).
    escalate_after_attempts: int = 20
    escalate_after_seconds: float = 3600.0
    bulk_threshold: int = 8


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


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: str
    credentials_dir: Path
    ca_cert: Path
    database_url: str
    listen: str
    directory_file: Path
    office_id: str = "office.cn"
    metrics_listen: str | None = None
    limits: Limits = field(default_factory=Limits)
    delivery: Delivery = field(default_factory=Delivery)
    deadlines: Deadlines = field(default_factory=Deadlines)
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
        where = str(path) if path else "configuration"
        r = _Reader(data, where)
        node = r.table("node")
        keys = r.table("keys")
        server = r.table("server")
        database = r.table("database")
        directory = r.table("directory")

        def rel(p: str) -> Path:
            q = Path(p).expanduser()
            return q if q.is_absolute() else (base / q)

        url = r.text(database, "database.url")
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            url = "sqlite:///" + str(rel(url.removeprefix("sqlite:///")))
        cfg = cls(
            node_id=r.text(node, "node.id"),
            office_id=r.text(node, "node.office", default="office.cn"),
            credentials_dir=rel(r.text(keys, "keys.dir")),
            ca_cert=rel(r.text(keys, "keys.ca")),
            database_url=url,
            listen=r.text(server, "server.listen"),
            metrics_listen=r.opt_str(server, "server.metrics_listen"),
            directory_file=rel(r.text(directory, "directory.file")),
            limits=r.dataclass(Limits, data.get("limits", {}), "limits"),
            delivery=r.dataclass(Delivery, data.get("delivery", {}), "delivery"),
            deadlines=r.dataclass(Deadlines, data.get("deadlines", {}), "deadlines"),
            path=path,
        )
        if ":" not in cfg.listen:
            raise ConfigError(f"{where}: server.listen must be host:port, got {cfg.listen!r}")
        return cfg

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.limits.clock_skew_seconds)


class _Reader:
    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

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
