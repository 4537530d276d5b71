"""What an agency's operator reads of a node's state, straight from its database.

Queries (notices, cases, appeals, a number's history, status) read the node's database
read-only and work whether the node runs or not; commands that send messages go to the
running node instead (nodes.registry, over its Admin service: nodes/cli/admin_client.py).
Abbreviated message ids are resolved here against the node's ledger.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from exchange import pki
from exchange.config import NodeConfig
from exchange.errors import OperationError
from exchange.ledger.entries import EntryKind, from_micros, to_micros
from exchange.ledger.receipts import log_origin
from exchange.ledger.store import LedgerStore
from exchange.schema import ledger_leaves, outbox
from exchange.storage import engines
from nodes.cli import render
from nodes.models import (
    appeals,
    case_requests,
    channel_reports,
    escalations,
    notice_numbers,
    notices,
    numbers,
    report_numbers,
    reports,
    subscribers,
)

# --- Queries over the node's database ---------------------------------------------------------


def _hex(b: Any) -> str:
    return bytes(b).hex() if b is not None else ""


def _when(micros: Any) -> str:
    """A stored time (UTC microseconds) as the operator reads it (node.timezone, seconds)."""
    return render.when(from_micros(int(micros))) if micros else ""


def notice_rows(conn: Connection, *, node_id: str, now: datetime, overdue_only: bool = False
                ) -> list[dict[str, Any]]:
    q = select(notices).order_by(notices.c.created_at)
    now_us = to_micros(now)
    if overdue_only:
        q = q.where(notices.c.closed_at.is_(None), notices.c.deadline < now_us)
    out = []
    for n in conn.execute(q):
        state = "answered" if n.closed_at is not None else \
            "OVERDUE" if n.deadline < now_us else "open"
        out.append({
            "notice": _hex(n.notice_id), "bureau": n.bureau, "carrier": n.carrier,
            "direction": "sent" if n.bureau == node_id else "received",
            "numbers": n.numbers_total, "answered": n.answered, "state": state,
            "deadline": _when(n.deadline), "escalated": _when(n.escalated_at)})
    return out


def case_rows(conn: Connection, *, now: datetime) -> list[dict[str, Any]]:
    now_us = to_micros(now)
    return [{
        "request": _hex(r.request_id), "police": r.police, "carrier": r.carrier,
        "case": r.case_number, "numbers": len(r.numbers.split(",")) if r.numbers else 0,
        "state": "answered" if r.answered_at else "OVERDUE" if r.deadline < now_us else "open",
        "deadline": _when(r.deadline), "answered": _when(r.answered_at),
        "response": _hex(r.response_id) if r.response_id else "",
        "escalated": _when(r.escalated_at)}
        for r in conn.execute(select(case_requests).order_by(case_requests.c.created_at))]


def appeal_rows(conn: Connection, *, now: datetime) -> list[dict[str, Any]]:
    now_us = to_micros(now)
    return [{
        "appeal": _hex(a.appeal_id), "carrier": a.carrier, "bureau": a.bureau,
        "number": a.number, "grounds": a.grounds,
        "state": a.outcome or ("OVERDUE" if a.decide_by < now_us else "pending"),
        "decide_by": _when(a.decide_by), "decided": _when(a.decided_at),
        "reasoning": a.reasoning}
        for a in conn.execute(select(appeals).order_by(appeals.c.created_at))]


def channel_rows(conn: Connection) -> list[dict[str, Any]]:
    return [{
        "channel_report": _hex(c.report_id), "reporter": c.reporter, "outlet": c.outlet_code,
        "name": c.outlet_name, "carrier": c.carrier_node,
        "numbers": len([n for n in c.numbers.split(",") if n]),
        "penalty": _hex(c.penalty_id) if c.penalty_id else ""}
        for c in conn.execute(select(channel_reports).order_by(channel_reports.c.received_at))]


def report_rows(conn: Connection, *, since: datetime | None = None, case_number: str = ""
                ) -> list[dict[str, Any]]:
    open_lines: dict[Any, int] = dict(conn.execute(
        select(report_numbers.c.report_id, func.count()).where(
            report_numbers.c.final.is_(False)).group_by(report_numbers.c.report_id)).all())
    q = select(reports).order_by(reports.c.created_at)
    if since is not None:
        q = q.where(reports.c.created_at >= to_micros(since))
    if case_number:
        q = q.where(reports.c.case_number == case_number)
    return [{
        "report": _hex(r.report_id), "origin": r.origin, "via": r.counterpart,
        "case": r.case_number, "category": r.category, "numbers": r.numbers_total,
        "awaiting_outcome": open_lines.get(r.report_id, 0),
        "state": "withdrawn" if r.withdrawn_at else
        "open" if open_lines.get(r.report_id) else "fed back",
        "sent": _when(r.created_at), "feedback_due": _when(r.feedback_due_at)}
        for r in conn.execute(q)]


def outbox_rows(conn: Connection, *, refused_only: bool = False) -> list[dict[str, Any]]:
    """Messages not yet delivered: queued (with their attempts and last error) or set
    aside because the peer refused them for good (``bcx outbox retry`` requeues those)."""
    q = select(outbox).where(outbox.c.delivered_at.is_(None)).order_by(outbox.c.seq)
    if refused_only:
        q = q.where(outbox.c.refused_at.is_not(None))
    return [{
        "message": _hex(r.message_id), "to": r.recipient, "kind": r.kind,
        "state": "refused" if r.refused_at is not None else "queued",
        "attempts": r.attempts, "signed": _when(r.created_at),
        "refused": _when(r.refused_at) if r.refused_at is not None else "",
        "last_error": (r.last_error or "")[:120]}
        for r in conn.execute(q)]


def number_history(conn: Connection, number: str) -> dict[str, Any]:
    """Everything this node knows of one number, with the ledger entries of each message."""
    ids: dict[bytes, str] = {}
    lines = _history(conn, number, ids)
    case = conn.execute(select(numbers).where(numbers.c.number == number)).first()
    sub = conn.execute(select(subscribers.c.status, subscribers.c.suspended_by)
                       .where(subscribers.c.number == number)).first()
    return {
        "number": number,
        "case": None if case is None else {
            "status": case.status, "carrier": case.carrier_node, "detail": case.detail,
            "notice": _hex(case.notice_id) if case.notice_id else "",
            "outlet": case.outlet_code},
        "subscriber": None if sub is None else {
            "status": sub.status, "suspended_by": _hex(sub.suspended_by)
            if sub.suspended_by else ""},
        "history": lines,
        "ledger": _ledger_entries(conn, ids),
    }


def _history(conn: Connection, number: str, ids: dict[bytes, str]) -> list[dict[str, Any]]:
    """The reports, notices and appeals naming ``number``; their message ids into ``ids``
    (id → what the message is)."""
    lines: list[dict[str, Any]] = []
    for r in conn.execute(select(report_numbers, reports.c.origin, reports.c.case_number)
                          .join(reports, reports.c.report_id == report_numbers.c.report_id)
                          .where(report_numbers.c.number == number)):
        ids[bytes(r.report_id)] = "report"
        if r.feedback_id:
            ids[bytes(r.feedback_id)] = "feedback"
        lines.append({"what": "report", "id": _hex(r.report_id), "by": r.origin,
                      "to": r.forwarded_to or "", "case": r.case_number, "status": r.status,
                      "detail": r.detail, "already_known": bool(r.already_known),
                      "final": bool(r.final)})
    for n in conn.execute(select(notice_numbers, notices.c.carrier, notices.c.bureau)
                          .join(notices, notices.c.notice_id == notice_numbers.c.notice_id)
                          .where(notice_numbers.c.number == number)):
        ids[bytes(n.notice_id)] = "notice"
        if n.answer_id:
            ids[bytes(n.answer_id)] = "action report"
        lines.append({"what": "notice", "id": _hex(n.notice_id), "by": n.bureau,
                      "to": n.carrier, "status": n.outcome or "awaiting answer",
                      "detail": n.detail})
    for a in conn.execute(select(appeals).where(appeals.c.number == number)):
        ids[bytes(a.appeal_id)] = "appeal"
        if a.decision_id:
            ids[bytes(a.decision_id)] = "appeal decision"
        lines.append({"what": "appeal", "id": _hex(a.appeal_id), "by": a.carrier,
                      "to": a.bureau, "status": a.outcome or "pending", "detail": a.grounds})
    return lines


def _ledger_entries(conn: Connection, ids: dict[bytes, str]) -> list[dict[str, Any]]:
    """This node's ledger entries of the messages ``ids`` names."""
    if not ids:
        return []
    # Messages answering them (action reports, circulars, decisions) point back by
    # in_reply_to, which the ledger index does not hold: list what this node logged
    # under the related ids, plus its own ACTION entries naming them.
    return [{"index": e.idx, "kind": EntryKind(e.kind).name, "peer": e.peer,
             "message": _hex(e.message_id), "about": ids.get(bytes(e.message_id), ""),
             "logged_at": _when(e.logged_at)}
            for e in conn.execute(select(ledger_leaves.c.idx, ledger_leaves.c.kind,
                                         ledger_leaves.c.peer, ledger_leaves.c.message_id,
                                         ledger_leaves.c.logged_at)
                                  .where(ledger_leaves.c.message_id.in_(list(ids)))
                                  .order_by(ledger_leaves.c.idx))]


def status_summary(conn: Connection, *, node_id: str, now: datetime) -> dict[str, Any]:
    def count(q: Any) -> int:
        return int(conn.execute(q).scalar_one())

    by_status: dict[str, int] = dict(conn.execute(
        select(numbers.c.status, func.count()).group_by(numbers.c.status)).all())
    lines_by_status: dict[str, int] = dict(conn.execute(
        select(report_numbers.c.status, func.count()).group_by(report_numbers.c.status)).all())
    return {
        "node": node_id,
        "ledger_entries": count(select(func.count()).select_from(ledger_leaves)),
        "sent": count(select(func.count()).select_from(ledger_leaves).where(
            ledger_leaves.c.kind == int(EntryKind.SENT))),
        "received": count(select(func.count()).select_from(ledger_leaves).where(
            ledger_leaves.c.kind == int(EntryKind.RECEIVED))),
        "outbox_pending": count(select(func.count()).select_from(outbox).where(
            outbox.c.delivered_at.is_(None), outbox.c.refused_at.is_(None))),
        "outbox_refused": count(select(func.count()).select_from(outbox).where(
            outbox.c.delivered_at.is_(None), outbox.c.refused_at.is_not(None))),
        "reports": count(select(func.count()).select_from(reports)),
        "reported_numbers_by_status": lines_by_status,
        "numbers_awaiting_outcome": count(select(func.count()).select_from(report_numbers)
                                          .where(report_numbers.c.final.is_(False))),
        "province_numbers_by_status": by_status,
        "notices_open": count(select(func.count()).select_from(notices).where(
            notices.c.closed_at.is_(None))),
        "overdue": overdue_counts(conn, now=now),
        "escalations_received": count(select(func.count()).select_from(escalations)),
    }


def overdue_counts(conn: Connection, *, now: datetime) -> dict[str, int]:
    """Obligations past their deadline, by kind (the part of the status the scheduler
    needs on every tick: it runs in the ledger writer's transaction, so it must not
    count whole workflow tables)."""
    now_us = to_micros(now)

    def count(q: Any) -> int:
        return int(conn.execute(q).scalar_one())

    return {
        "notices": count(select(func.count()).select_from(notices).where(
            notices.c.closed_at.is_(None), notices.c.deadline < now_us)),
        "case_requests": count(select(func.count()).select_from(case_requests).where(
            case_requests.c.answered_at.is_(None), case_requests.c.deadline < now_us)),
        "appeals": count(select(func.count()).select_from(appeals).where(
            appeals.c.decided_at.is_(None), appeals.c.decide_by < now_us)),
        "feedback": count(select(func.count()).select_from(reports).where(
            reports.c.withdrawn_at.is_(None), reports.c.feedback_due_at < now_us,
            reports.c.report_id.in_(select(report_numbers.c.report_id).where(
                report_numbers.c.final.is_(False))))),
    }


def offline_store(config: NodeConfig) -> tuple[LedgerStore, pki.NodeCredentials]:
    """The node's ledger opened from its database, without starting the node (the node
    may be running: this only reads)."""
    ca = pki.load_certificate(config.ca_cert)
    creds = pki.load_node_credentials(config.credentials_dir, ca=ca, now=datetime.now(UTC))
    engine = open_database(config)
    origin = log_origin(creds.trust_domain, creds.node_id)
    return LedgerStore(engine, origin=origin, signer=creds.signer), creds


def open_reader(config: NodeConfig) -> Any:
    """A read-only view of the node's database (the node may be running)."""
    return engines.reader(open_database(config))


def open_database(config: NodeConfig) -> Any:
    """The node's existing, migrated database, opened for reading only.

    A listing must never create a database (SQLite makes an empty file on connect) nor
    read one whose schema this bcx does not know: a missing file, a database never
    migrated and one at another schema revision are each refused with one line saying
    what to run. SQLite is opened read-only (``mode=ro``), so nothing is written; its
    revision is read with the driver alone first, since the engine's set-up (WAL) would
    try to write to a file that bcx never migrated.
    """
    url = engines.parse_url(config.database_url)
    if url.get_backend_name() != "sqlite":
        engine = engines.create_engine_for(config.database_url, pool_size=1)
        try:
            check_schema(_stored_revisions(engine, config), config)
        except BaseException:
            engine.dispose()
            raise
        return engine
    if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
        raise OperationError(f"database.url of {config.node_id} names an in-memory "
                             "database: there is nothing to read")
    path = Path(url.database)
    if not path.is_file():
        raise OperationError(
            f"no database at {path}: node {config.node_id} has not run with this "
            f"configuration yet (start it with bcx node run --config {_config_hint(config)})")
    uri = path.resolve().as_uri()
    check_schema(_sqlite_revisions(uri, path), config)
    return engines.create_engine_for(URL_READ_ONLY.format(uri=uri), pool_size=1)


URL_READ_ONLY = "sqlite:///{uri}?mode=ro&uri=true"


def _config_hint(config: NodeConfig) -> str:
    return str(config.path) if config.path else "node.toml"


def _sqlite_revisions(uri: str, path: Path) -> frozenset[str]:
    import sqlite3

    try:
        con = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise OperationError(f"cannot open database {path}: {e}") from e
    try:
        has_table = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                "AND name = 'alembic_version'").fetchone()
        if not has_table:
            return frozenset()
        return frozenset(r[0] for r in con.execute("SELECT version_num FROM alembic_version"))
    except sqlite3.DatabaseError as e:
        raise OperationError(f"{path} is not a readable SQLite database: {e}") from e
    finally:
        con.close()


def _stored_revisions(engine: Any, config: NodeConfig) -> frozenset[str]:
    from sqlalchemy.exc import SQLAlchemyError

    from exchange import migrate

    try:
        with engines.reader(engine).connect() as conn:
            return migrate.current_revisions(conn)
    except SQLAlchemyError as e:
        raise OperationError(f"cannot read database {engines.redact_url(config.database_url)}"
                             f": {render.database_cause(e)}") from e


def check_schema(current: frozenset[str], config: NodeConfig) -> None:
    """Refuse a database whose schema revision is not the one this bcx migrates to."""
    from exchange import migrate

    head = migrate.head_revisions()
    where = engines.redact_url(config.database_url)
    upgrade = f"bcx db upgrade --config {_config_hint(config)}"
    if not current:
        raise OperationError(f"database {where} holds no bcx schema (never migrated): "
                             f"start the node once or run {upgrade}")
    if current != head:
        raise OperationError(
            f"database {where} is at schema revision {', '.join(sorted(current))}, this bcx "
            f"reads {', '.join(sorted(head))}: run {upgrade}")


# --- Message ids ----------------------------------------------------------------------------

MIN_PREFIX = 8


def message_id_range(text: str, *, what: str = "message") -> tuple[bytes, bytes]:
    """The ids an operator's prefix stands for, as the lowest and highest 16-byte id.

    Like git's abbreviated commits: any 8 or more hex digits (dashes of the UUID form
    ignored, either case); the full 32 digits name one id.
    """
    digits = text.strip().replace("-", "").lower()
    if not digits or any(c not in "0123456789abcdef" for c in digits):
        raise OperationError(f"{what} id {text[:40]!r} is not hex digits")
    if len(digits) > 32:
        raise OperationError(f"{what} id {text[:40]!r} is longer than 32 hex digits")
    if len(digits) < MIN_PREFIX:
        raise OperationError(f"{what} id {text!r} is too short: give at least "
                             f"{MIN_PREFIX} hex digits")
    return bytes.fromhex(digits.ljust(32, "0")), bytes.fromhex(digits.ljust(32, "f"))


def resolve_message_id(conn: Connection, text: str, *, what: str = "message") -> bytes:
    """The one message of this node's ledger whose id starts with ``text``."""
    low, high = message_id_range(text, what=what)
    found = list(conn.scalars(
        select(ledger_leaves.c.message_id).distinct()
        .where(ledger_leaves.c.message_id.between(low, high)).limit(1000)))
    if not found:
        raise OperationError(f"this ledger holds no {what} with id {text.strip()}")
    if len(found) > 1:
        more = "1000 or more" if len(found) >= 1000 else str(len(found))
        raise OperationError(f"{what} id {text.strip()} is ambiguous: {more} messages in this "
                             "ledger start with it; give more digits")
    return bytes(found[0])


def expand_message_id(config: NodeConfig, text: str, *, what: str = "message") -> str:
    """The full id of an abbreviated one (8–31 hex digits), found in the node's ledger.

    A full id, or text that is no hex prefix at all, is passed on as given: the running
    node checks it and answers precisely.
    """
    digits = text.strip().replace("-", "").lower()
    if len(digits) >= 32 or not digits or any(c not in "0123456789abcdef" for c in digits):
        return text
    engine = open_database(config)
    try:
        with engines.reader(engine).connect() as conn:
            return resolve_message_id(conn, text, what=what).hex()
    finally:
        engine.dispose()
