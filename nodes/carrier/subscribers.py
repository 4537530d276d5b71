"""A carrier's subscriber system, as bcx needs it: look up, suspend, restore, sales channel.

``SubscriberSystem`` is the interface a carrier's real business-support system would
implement; ``SqlSubscriberSystem`` is the implementation over the node's own database
(tables ``sub_subscribers`` and ``sub_outlets``) that the demo and the tests use.
``Audited`` wraps any implementation so that every call is logged as an ACTION ledger
entry in the same transaction as the workflow change it serves.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, func, select, update

from exchange import numbers
from exchange.errors import NumberError, OperationError
from exchange.ledger.entries import from_micros, to_micros
from exchange.messages import RealNameState, SalesChannel
from exchange.storage.statements import DriverStatement
from nodes.models import outlets, subscribers
from nodes.shared.batching import chunks

ACTIVE = "active"
SUSPENDED = "suspended"
INACTIVE = "inactive"
PORTED_OUT = "ported_out"
STATES = frozenset({ACTIVE, SUSPENDED, INACTIVE, PORTED_OUT})

# Cards under one ID in one province from which a carrier reports the holder (the rule
# of the special action: five or more).
CONCENTRATION_THRESHOLD = 5


@dataclass(frozen=True, slots=True)
class Subscriber:
    number: str
    status: str
    real_name_state: RealNameState
    province: str
    ported_to: str = ""
    outlet_code: str = ""
    registered_at: datetime | None = None
    activated_at: datetime | None = None
    protected_reason: str = ""
    suspended_by: bytes | None = None
    # Personal data: out of repr, so it cannot reach a log by accident.
    subscriber_name: str = field(default="", repr=False)
    id_number: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Holder:
    """An ID holder with many cards in one province (the ID number stays in the carrier)."""

    id_number: str = field(repr=False)
    numbers: tuple[str, ...]
    states: tuple[RealNameState, ...]


class SubscriberSystem(Protocol):
    def lookup(self, numbers: Sequence[str]) -> dict[str, Subscriber]: ...

    def suspend(self, numbers: Sequence[str], *, by: bytes, at: datetime) -> int: ...

    def restore(self, numbers: Sequence[str], *, at: datetime) -> int: ...

    def channel(self, outlet_code: str) -> SalesChannel | None: ...

    def cards_under_ids(self, id_numbers: Iterable[str]) -> dict[str, list[str]]: ...

    def concentrated_holders(self, province: str, threshold: int) -> list[Holder]: ...


_REAL_NAME_STATES = {s.value: s for s in RealNameState}


def _subscriber(row: tuple[Any, ...]) -> Subscriber:
    # Once per number of a notice: a dict lookup for the enum, times only where set.
    (number, status, ported_to, subscriber_name, id_number, real_name_state, province,
     registered_at, activated_at, outlet_code, protected_reason, suspended_by) = row
    try:
        state = _REAL_NAME_STATES[real_name_state]
    except KeyError:
        state = RealNameState(real_name_state)  # raises, naming the bad value
    return Subscriber(
        number=number, status=status, real_name_state=state,
        province=province, ported_to=ported_to, outlet_code=outlet_code,
        registered_at=from_micros(registered_at) if registered_at else None,
        activated_at=from_micros(activated_at) if activated_at else None,
        protected_reason=protected_reason,
        suspended_by=bytes(suspended_by) if suspended_by else None,
        subscriber_name=subscriber_name, id_number=id_number,
    )


# A notice's numbers, looked up and suspended a message at a time (bulk notices carry
# a thousand): statements straight to the driver, as nodes.models explains.
_LOOKUP = DriverStatement.listing(
    "SELECT number, status, ported_to, subscriber_name, id_number, real_name_state, province, "
    "registered_at, activated_at, outlet_code, protected_reason, suspended_by "
    "FROM sub_subscribers WHERE number IN ({list})")
_SUSPEND = DriverStatement.listing(
    "UPDATE sub_subscribers SET status = ?, suspended_at = ?, suspended_by = ? "
    "WHERE status = ? AND number IN ({list})")


class SqlSubscriberSystem:
    """The subscriber system over this node's database, inside the caller's transaction."""

    def __init__(self, conn: Connection, *, carrier_node: str) -> None:
        self.conn = conn
        self.carrier_node = carrier_node

    def lookup(self, numbers: Sequence[str]) -> dict[str, Subscriber]:
        out: dict[str, Subscriber] = {}
        for part in chunks(list(numbers)):
            for row in _LOOKUP(len(part)).tuples(self.conn, tuple(part)):
                out[row[0]] = _subscriber(row)
        return out

    def suspend(self, numbers: Sequence[str], *, by: bytes, at: datetime) -> int:
        done = 0
        for part in chunks(list(numbers)):
            done += _SUSPEND(len(part)).run(
                self.conn, [(SUSPENDED, to_micros(at), by, ACTIVE, *part)])
        return done

    def restore(self, numbers: Sequence[str], *, at: datetime) -> int:
        done = 0
        for part in chunks(list(numbers)):
            done += self.conn.execute(
                update(subscribers)
                .where(subscribers.c.number.in_(part), subscribers.c.status == SUSPENDED)
                .values(status=ACTIVE, suspended_at=None, suspended_by=None)
            ).rowcount
        return done

    def channel(self, outlet_code: str) -> SalesChannel | None:
        if not outlet_code:
            return None
        row = self.conn.execute(
            select(outlets).where(outlets.c.outlet_code == outlet_code)).first()
        if row is None:
            return SalesChannel(outlet_code=outlet_code, carrier_node=self.carrier_node)
        return SalesChannel(outlet_code=row.outlet_code, outlet_name=row.outlet_name,
                            agent=row.agent, address=row.address,
                            carrier_node=self.carrier_node)

    def cards_under_ids(self, id_numbers: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        wanted = sorted({i for i in id_numbers if i})
        for part in chunks(wanted):
            for row in self.conn.execute(
                    select(subscribers.c.id_number, subscribers.c.number)
                    .where(subscribers.c.id_number.in_(part),
                           subscribers.c.status != PORTED_OUT)
                    .order_by(subscribers.c.number)):
                out.setdefault(row.id_number, []).append(row.number)
        return out

    def concentrated_holders(self, province: str, threshold: int) -> list[Holder]:
        live = (subscribers.c.province == province) & subscribers.c.status.in_(
            (ACTIVE, SUSPENDED)) & (subscribers.c.id_number != "")
        ids = list(self.conn.scalars(
            select(subscribers.c.id_number).where(live).group_by(subscribers.c.id_number)
            .having(func.count() >= threshold).order_by(subscribers.c.id_number)))
        holders = []
        for id_number in ids:
            rows = self.conn.execute(
                select(subscribers.c.number, subscribers.c.real_name_state)
                .where(live, subscribers.c.id_number == id_number)
                .order_by(subscribers.c.number)).all()
            holders.append(Holder(id_number=id_number, numbers=tuple(r.number for r in rows),
                                  states=tuple(RealNameState(r.real_name_state) for r in rows)))
        return holders


class Audited:
    """Any SubscriberSystem whose every call is logged as an ACTION entry.

    ``log_action(subject, detail)`` appends the entry in the caller's transaction. The
    detail names numbers and counts, never names or ID numbers.
    """

    def __init__(self, inner: SubscriberSystem,
                 log_action: Callable[[str, bytes], int]) -> None:
        self.inner = inner
        self.log_action = log_action

    def _log(self, call: str, **detail: Any) -> None:
        self.log_action(f"subscribers.{call}", json.dumps(detail, sort_keys=True).encode())

    def lookup(self, numbers: Sequence[str]) -> dict[str, Subscriber]:
        found = self.inner.lookup(numbers)
        self._log("lookup", numbers=len(numbers), found=len(found))
        return found

    def suspend(self, numbers: Sequence[str], *, by: bytes, at: datetime) -> int:
        done = self.inner.suspend(numbers, by=by, at=at)
        self._log("suspend", numbers=list(numbers), suspended=done, by=by.hex())
        return done

    def restore(self, numbers: Sequence[str], *, at: datetime) -> int:
        done = self.inner.restore(numbers, at=at)
        self._log("restore", numbers=list(numbers), restored=done)
        return done

    def channel(self, outlet_code: str) -> SalesChannel | None:
        found = self.inner.channel(outlet_code)
        self._log("channel", outlet=outlet_code, found=found is not None)
        return found

    def cards_under_ids(self, id_numbers: Iterable[str]) -> dict[str, list[str]]:
        found = self.inner.cards_under_ids(id_numbers)
        self._log("cards_under_ids", ids=len(found))
        return found

    def concentrated_holders(self, province: str, threshold: int) -> list[Holder]:
        holders = self.inner.concentrated_holders(province, threshold)
        self._log("concentrated_holders", province=province, threshold=threshold,
                  holders=len(holders))
        return holders


# --- ID numbers leave the carrier only as a keyed HMAC ----------------------------------

HMAC_KEY_FILE = "id-hmac.key"


def id_hmac_key(keys_dir: Path) -> bytes:
    """This carrier's secret key for ID-number HMACs (created, 0600, on first use)."""
    from exchange.keys import write_private

    path = keys_dir / HMAC_KEY_FILE
    if not path.exists():
        import os
        write_private(path, os.urandom(32).hex().encode())
    return bytes.fromhex(path.read_text().strip())


def hmac_key_id(key: bytes) -> str:
    return hashlib.sha256(b"bcx id-hmac key\x00" + key).hexdigest()[:16]


def id_hmac(key: bytes, id_number: str) -> bytes:
    """HMAC-SHA256 of an ID number: the same holder gives the same value, the number stays."""
    return hmac.new(key, id_number.strip().upper().encode(), hashlib.sha256).digest()


# --- Loading a subscriber base (demo, tests, a carrier's initial import) ----------------

CSV_COLUMNS = ("number", "status", "real_name_state", "province", "subscriber_name",
               "id_number", "outlet_code", "activated_at", "ported_to", "protected_reason")


# Rows written per transaction. The import shares the database with the running node,
# whose ledger writer waits for the write lock while a transaction holds it: a chunk is
# written in well under a second even on a loaded machine (see ImportResult.longest_write), where
# one transaction for a whole base held the writer for 14 s.
IMPORT_CHUNK = 5_000

_COLUMNS = ("number", "status", "real_name_state", "province", "subscriber_name",
            "id_number", "outlet_code", "ported_to", "protected_reason", "registered_at",
            "activated_at")
# Already-present rows are skipped, so an import that stopped (a bad row, a crash) is
# run again as it was and goes on from where it stopped; nothing imported is changed.
_INSERT_SUBSCRIBERS = DriverStatement(
    f"INSERT INTO sub_subscribers ({', '.join(_COLUMNS)}) "  # noqa: S608 - constant names
    f"VALUES ({', '.join('?' * len(_COLUMNS))}) ON CONFLICT (number) DO NOTHING")
_INSERT_OUTLETS = DriverStatement(
    "INSERT INTO sub_outlets (outlet_code, outlet_name, agent, address) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (outlet_code) DO NOTHING")


@dataclass(frozen=True, slots=True)
class ImportResult:
    rows: int  # rows read and checked
    added: int  # rows new to the subscriber system (the others were there already)
    longest_write: float  # seconds the longest transaction held the database's writer


def check_row(n: int, row: dict[str, Any]) -> tuple[Any, ...]:
    """Subscriber row ``n`` as the values of _COLUMNS; OperationError naming the row."""
    try:
        number = numbers.normalise(str(row["number"]))
    except (KeyError, NumberError) as e:
        raise OperationError(f"subscriber row {n}: bad or missing number: {e}") from e
    status = row.get("status") or ACTIVE
    if status not in STATES:
        raise OperationError(f"subscriber row {n}: status {status!r} is not one of "
                             f"{', '.join(sorted(STATES))}")
    try:
        state = RealNameState(row.get("real_name_state") or "registered")
    except ValueError as e:
        raise OperationError(f"subscriber row {n}: {e}") from e
    activated = row.get("activated_at")
    if isinstance(activated, str) and activated:
        try:
            activated = datetime.fromisoformat(activated)
        except ValueError as e:
            raise OperationError(f"subscriber row {n}: activated_at {activated!r} is not "
                                 "an ISO 8601 time") from e
        if activated.utcoffset() is None:
            raise OperationError(f"subscriber row {n}: activated_at {activated} has no "
                                 "time zone (write e.g. +08:00)")
    province = row.get("province") or ""
    if not province:
        raise OperationError(f"subscriber row {n}: province is empty")
    at = to_micros(activated) if activated else None
    return (number, status, state.value, province, row.get("subscriber_name") or "",
            row.get("id_number") or "", row.get("outlet_code") or "",
            row.get("ported_to") or "", row.get("protected_reason") or "", at, at)


def import_rows(engine: Engine, rows: Iterable[dict[str, Any]],
                outlet_rows: Iterable[dict[str, str]] = (), *, chunk: int = IMPORT_CHUNK,
                progress: Callable[[int], None] | None = None) -> ImportResult:
    """Insert subscribers (and outlets), ``chunk`` rows a transaction; rows already
    present are skipped. Each row is checked; a bad one stops the import with an
    OperationError naming it and saying how many rows before it were imported (run the
    import again once it is fixed: those are skipped). ``progress`` is told the number of
    rows done after each transaction."""
    longest = 0.0

    def write(statement: DriverStatement, part: list[tuple[Any, ...]]) -> int:
        nonlocal longest
        started = time.monotonic()
        with engine.begin() as conn:
            added = statement.run(conn, part)
        longest = max(longest, time.monotonic() - started)
        return max(added, 0)

    outlet_values = [(o["outlet_code"], o["outlet_name"], o["agent"], o["address"])
                     for o in outlet_rows]
    for k in range(0, len(outlet_values), chunk):
        write(_INSERT_OUTLETS, outlet_values[k:k + chunk])
    done = added = 0
    part: list[tuple[Any, ...]] = []
    for n, row in enumerate(rows, 1):
        try:
            part.append(check_row(n, row))
        except OperationError as e:
            if done:
                raise OperationError(f"{e} (rows 1 to {done} were imported; fix the row and "
                                     "import again: rows already present are skipped)") from e
            raise
        if len(part) >= chunk:
            added += write(_INSERT_SUBSCRIBERS, part)
            done += len(part)
            part = []
            if progress is not None:
                progress(done)
    if part:
        added += write(_INSERT_SUBSCRIBERS, part)
        done += len(part)
        if progress is not None:
            progress(done)
    return ImportResult(rows=done, added=added, longest_write=longest)


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"number", "province"} - set(reader.fieldnames or ())
        if missing:
            raise OperationError(f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                                 f"columns are {', '.join(CSV_COLUMNS)}")
        yield from reader


def import_csv(engine: Engine, path: Path, *, chunk: int = IMPORT_CHUNK,
               progress: Callable[[int], None] | None = None) -> ImportResult:
    """Check every row of the file first (a bad file imports nothing), then import it in
    chunks as ``import_rows`` does."""
    for n, row in enumerate(_csv_rows(path), 1):
        check_row(n, row)
    return import_rows(engine, _csv_rows(path), chunk=chunk, progress=progress)
