"""What a peer is told of an error (exchange.transport.status.answer_for)."""

from __future__ import annotations

import logging
import sqlite3

import grpc
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from exchange import errors as e
from exchange.transport.status import STORAGE_FULL, STORAGE_UNAVAILABLE, answer_for, redact

SQL_ERROR = IntegrityError(
    "INSERT INTO wf_channel_reports (report_id, outlet_name, numbers) VALUES (?, ?, ?)",
    (b"\x01" * 16, "Golden Dragon Mobile", "+8615959039517"),
    sqlite3.IntegrityError("UNIQUE constraint failed: wf_channel_reports.report_id"))

# (error, code, exact details, or None for "internal error (incident …)")
ANSWERS = [
    (e.InvalidBodyError("channel_report names no outlet"), grpc.StatusCode.INVALID_ARGUMENT,
     "channel_report names no outlet"),
    (e.InvalidBodyError("appeal: number '15959039517' is not in E.164 form (+8615959039517)"),
     grpc.StatusCode.INVALID_ARGUMENT, "appeal: number '…9517' is not in E.164 form (…9517)"),
    (e.QuotaExceededError("storage quota of cmcc.fj on this node is used up"),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "storage quota of cmcc.fj on this node is used up"),
    (e.ReadNotAllowedError("not listed"), grpc.StatusCode.PERMISSION_DENIED, "not listed"),
    (e.StorageFullError("database sqlite:////srv/bcx/node.db is full: …"),
     grpc.StatusCode.RESOURCE_EXHAUSTED, STORAGE_FULL),
    (OperationalError("INSERT …", (), sqlite3.OperationalError("database or disk is full")),
     grpc.StatusCode.RESOURCE_EXHAUSTED, STORAGE_FULL),
    (e.StorageUnavailableError("database postgresql+psycopg://bcx:***@db.internal/bcx is "
                               "unavailable: OperationalError: connection refused"),
     grpc.StatusCode.UNAVAILABLE, STORAGE_UNAVAILABLE),
    (SQL_ERROR, grpc.StatusCode.INTERNAL, None),
    (e.ExchangeError("database sqlite:////srv/bcx/node.db failed: IntegrityError: …"),
     grpc.StatusCode.INTERNAL, None),
    (KeyError("+8615959039517"), grpc.StatusCode.INTERNAL, None),
]


@pytest.mark.parametrize(("error", "code", "details"), ANSWERS)
def test_answer_for(error: BaseException, code: grpc.StatusCode, details: str | None,
                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    answer = answer_for(error, where="Deliver")
    assert answer.code is code
    if details is not None:
        assert answer.details == details
        return
    assert answer.details == f"internal error (incident {answer.incident})"
    assert len(answer.incident) == 16
    # Logged with the same id and the error's type, nothing of its text.
    assert caplog.messages == [f"internal error incident={answer.incident} where=Deliver "
                               f"error={type(error).__name__}"]


def test_a_ledger_error_out_of_the_writer_is_internal_where_the_caller_says_so() -> None:
    error = e.LedgerError("handler failed: KeyError('+8615959039517')")
    assert answer_for(error, where="GetEntries").code is grpc.StatusCode.FAILED_PRECONDITION
    answer = answer_for(error, where="Deliver", internal=(e.LedgerError,))
    assert answer.code is grpc.StatusCode.INTERNAL and "8615959039517" not in answer.details


def test_the_nodes_own_operator_sees_the_number_it_gave() -> None:
    error = e.OperationError("+8615959039517 is not a line this carrier suspended")
    assert answer_for(error, where="Operate", to_peer=False).details == str(error)


@pytest.mark.parametrize(("text", "shown"), [
    ("0086 159 5903 9517", "…9517"),
    ("+86-159-5903-9517 and 13800138000", "…9517 and …8000"),
    ("ID 35010219880505222X", "ID …222X"),
    # Not numbers of people: hex ids, sizes, times, short codes.
    ("message 01a2270ca1c97a4a8c1a617a710a0ed9 of 268435456 bytes at "
     "2026-12-04T00:00:00+00:00 from 110", None),
])
def test_redact(text: str, shown: str | None) -> None:
    assert redact(text) == (text if shown is None else shown)
