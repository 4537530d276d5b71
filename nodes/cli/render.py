"""How `bcx` shows things to an operator: tables, JSON, times, progress and log lines.

Every renderer goes through :func:`sanitize`: text that came from a peer or from the
database (a case number, an outlet name, a peer's error detail) may hold control or
escape sequences, and none of them reaches the terminal as such. Times are stored in UTC
and shown in the node's configured zone (``node.timezone``, default Asia/Shanghai), to
the second, in one format everywhere (``2026-12-04 08:50:45+08:00``). A progress line is
drawn on stderr only when stderr is a terminal, and a log record emitted meanwhile first
clears it, so progress and logs never share a line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"

_zone = ZoneInfo(DEFAULT_TIMEZONE)


# --- Terminal safety ----------------------------------------------------------------------

# C0 controls, DEL, C1 controls; format characters (bidi overrides, zero-width joiners) can
# disguise what a line says, so they are shown as escapes too.
def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_CANDIDATE = re.compile(r"[^\x20-\x7e]")  # only these need a closer look


def sanitize(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control, escape and format character written as ``\\xNN``.

    ``keep_newlines`` keeps ``\\n`` (for a whole block of our own output, whose values were
    already sanitized or are ours); a value from a peer or a database row never keeps one.
    """
    if text.isprintable():
        return text

    def shown(m: re.Match[str]) -> str:
        ch = m.group()
        return ch if not _unsafe(ch) or (keep_newlines and ch == "\n") else _escape(ch)

    return _CANDIDATE.sub(shown, text)


def out(text: str = "", *, stream: TextIO | None = None) -> None:
    """Print a block of output (a line or several) to stdout, terminal-safe."""
    print(sanitize(text, keep_newlines=True), file=stream or sys.stdout)


def err(text: str) -> None:
    """One line to stderr, terminal-safe (progress cleared first)."""
    with _progress_cleared():
        print(sanitize(text, keep_newlines=True), file=sys.stderr, flush=True)


def database_cause(e: BaseException) -> str:
    """A database failure as one line: the driver's own first line, never the SQL or its
    parameters (which a SQLAlchemy error's text carries, and which may hold personal data)."""
    from sqlalchemy.exc import DBAPIError

    cause = e.orig if isinstance(e, DBAPIError) and e.orig is not None else e
    return str(cause).strip().split("\n", 1)[0] or "no detail"


# --- Times --------------------------------------------------------------------------------


def set_timezone(name: str) -> None:
    """The zone times are shown in from now on (the node's ``node.timezone``)."""
    global _zone
    _zone = ZoneInfo(name)


def timezone() -> ZoneInfo:
    return _zone


def when(value: datetime | None, zone: ZoneInfo | None = None) -> str:
    """A moment as the operator reads it: in the display zone, to the second; '' for None."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # stored times are UTC
    return value.astimezone(zone or _zone).isoformat(sep=" ", timespec="seconds")


_ISO_MOMENT = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")


def localize_times(value: Any) -> Any:
    """``value`` (decoded JSON from the node) with every ISO 8601 moment shown by :func:`when`.

    The running node answers in UTC with microseconds; the operator sees the display zone
    to the second, as in every listing.
    """
    if isinstance(value, str) and _ISO_MOMENT.fullmatch(value):
        return when(datetime.fromisoformat(value))
    if isinstance(value, list):
        return [localize_times(v) for v in value]
    if isinstance(value, dict):
        return {k: localize_times(v) for k, v in value.items()}
    return value


# --- Tables and JSON ----------------------------------------------------------------------


def columns_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every key of every row, in the order first seen (rows of one listing differ: a
    report row has no carrier, a notice row has one)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as an aligned text table with every column of every row; '(none)' if empty."""
    if not rows:
        return "(none)"
    cols = list(columns or columns_of(rows))
    cells = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    return "\n".join(lines)


def cell(value: Any) -> str:
    """One value as a table cell: one line, terminal-safe, at most 60 characters."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return when(value)
    text = sanitize(str(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_escape(m: re.Match[str]) -> str:
    ch = m.group()
    if ch == "\n" or not _unsafe(ch):
        return ch
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def to_json(value: Any, *, indent: int | None = 2) -> str:
    """JSON, readable (non-ASCII kept) yet terminal-safe: JSON escapes the controls below
    0x20 itself; DEL, C1 controls and format characters are written as ``\\uXXXX``, so
    the text still parses to the same data."""
    text = json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=False,
                      default=_json_default)
    return _CANDIDATE.sub(_json_escape, text)


# --- Progress and logging -----------------------------------------------------------------


class Progress:
    """A one-line counter on stderr (``verified 120/400 entries``), drawn only on a terminal.

    Use as a context manager; :class:`TerminalLogHandler` clears the line before a log
    record and draws it again after, so the two never share a line.
    """

    def __init__(self, label: str, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.text = ""

    def __enter__(self) -> Progress:
        _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()
        _active.remove(self)

    def update(self, done: int, total: int | None = None) -> None:
        """``label done/total``, or ``label done`` where the total is not known yet."""
        self.text = f"{self.label} {done}" + (f"/{total}" if total is not None else "")
        self.draw()

    def draw(self) -> None:
        if self.live and self.text:
            self.stream.write(f"\r\x1b[K{self.text}")
            self.stream.flush()

    def clear(self) -> None:
        if self.live and self.text:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


_active: list[Progress] = []


@contextmanager
def _progress_cleared() -> Iterator[None]:
    for p in _active:
        p.clear()
    try:
        yield
    finally:
        for p in _active:
            p.draw()


class TerminalFormatter(logging.Formatter):
    """``2026-12-04 08:50:45+08:00 WARNING exchange.node: …``, in the display zone, with
    the message sanitized (log arguments may be a peer's text)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return when(datetime.fromtimestamp(record.created, UTC))

    def format(self, record: logging.LogRecord) -> str:
        return sanitize(super().format(record), keep_newlines=True)


class TerminalLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log records to stderr, clearing any progress line first."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(TerminalFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        with _progress_cleared():
            super().emit(record)


# Our own loggers; everything else (alembic, sqlalchemy, grpc, asyncio) is a library whose
# INFO lines an operator does not want to read.
OWN_LOGGERS = ("bcx", "exchange", "nodes")


def configure_logging(*, verbose: bool, service: bool = False) -> None:
    """Warnings only for a command an operator runs (its output is the answer); a node
    running as a service (``bcx node run``) logs bcx's INFO lines too. ``--verbose``:
    bcx's DEBUG and the libraries' INFO."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(TerminalLogHandler())
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    own = logging.DEBUG if verbose else logging.INFO if service else logging.WARNING
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(own)
