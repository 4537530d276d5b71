"""Whether retrying can help: the error types' ``retryable``, and how it survives the wire
(exchange.transport.status: ``answer_for`` one way, ``refusal_of_*`` the other)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Callable

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange import errors as e
from exchange.transport.status import (
    FINAL_STATUSES,
    MAX_RETRY_AFTER_SECONDS,
    REFUSED_FOR_GOOD_METADATA,
    RETRY_AFTER_METADATA,
    Answer,
    RefusedError,
    RefusedForGoodError,
    answer_for,
    refusal,
    refusal_of_call,
    refusal_of_response,
    retryable,
    status_for,
)
from exchange.wire.bcx.v1 import service_pb2

Code = grpc.StatusCode

ERROR_TYPES = sorted((cls for _, cls in inspect.getmembers(e, inspect.isclass)
                      if issubclass(cls, e.ExchangeError)), key=lambda cls: cls.__name__)


def failed_call(code: grpc.StatusCode, details: str = "",
                trailers: tuple[tuple[str, str], ...] = ()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers),
                                details=details)


def unary_round_trip(error: BaseException) -> RefusedError:
    answer = answer_for(error, where="Deliver")
    return refusal_of_call(failed_call(answer.code, answer.details, answer.trailing_metadata()))


def stream_round_trip(error: BaseException) -> RefusedError:
    answer = answer_for(error, where="DeliverStream")
    response = service_pb2.DeliverResponse.FromString(
        answer.stream_response().SerializeToString())
    return refusal_of_response(response)


# --- the error types ------------------------------------------------------------------------

# (type, retryable): refusals for good, and those that may go through later.
RETRYABLE = [
    (e.ExchangeError, True),
    (e.ConfigError, True),
    (e.PKIError, False),
    (e.CertificateRevokedError, False),
    (e.DirectoryError, True),
    (e.DirectoryExpiredError, True),
    (e.UnknownMemberError, True),
    (e.VerificationError, False),
    (e.OversizeMessageError, False),
    (e.MalformedEnvelopeError, False),
    (e.StateConflictError, False),
    (e.ClockSkewError, False),
    (e.ReceiptError, False),
    (e.ForkError, False),
    (e.LedgerError, False),
    (e.TamperError, False),
    (e.PeerError, True),
    (e.OverloadedError, True),
    (e.QuotaExceededError, True),
    (e.StorageUnavailableError, True),
    (e.StorageFullError, True),
    (e.OperationError, False),
    (e.OperatorNotAllowedError, False),
    (e.ReadNotAllowedError, False),
    (e.NumberError, True),
    (e.SealError, True),
]


@pytest.mark.parametrize(("cls", "expected"), RETRYABLE, ids=lambda c: getattr(c, "__name__", ""))
def test_each_error_type_says_whether_retrying_can_help(cls: type[e.ExchangeError],
                                                        expected: bool) -> None:
    assert cls.retryable is expected
    assert retryable(cls("x")) is expected


@pytest.mark.parametrize("cls", ERROR_TYPES, ids=lambda c: c.__name__)
def test_only_an_oversize_envelope_is_final_where_its_status_alone_reads_try_again(
        cls: type[e.ExchangeError]) -> None:
    # What a sender that predates the marker makes of each error: its status alone. The
    # types agree with it, but for the one the marker is for.
    by_status = status_for(cls("x")) not in FINAL_STATUSES
    if cls is e.OversizeMessageError:
        assert (cls.retryable, by_status) == (False, True)
    else:
        assert cls.retryable is by_status


@pytest.mark.parametrize("cls", ERROR_TYPES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("trip", [unary_round_trip, stream_round_trip], ids=["unary", "stream"])
def test_retryable_survives_the_wire(cls: type[e.ExchangeError],
                                     trip: Callable[[BaseException], RefusedError]) -> None:
    back = trip(cls("x"))
    assert isinstance(back, RefusedError)
    assert back.retryable is cls.retryable


def test_an_internal_failure_reads_retryable_whatever_its_type() -> None:
    # A LedgerError out of the ledger writer while receiving is this node's own trouble.
    answer = answer_for(e.LedgerError("x"), where="Deliver", internal=(e.LedgerError,))
    assert answer.code is Code.INTERNAL and not answer.refused_for_good
    assert refusal_of_call(failed_call(answer.code, answer.details)).retryable


# --- what goes on the wire --------------------------------------------------------------------

# (error, trailing metadata of a unary answer, stream fields: retry_after_ms, refused_for_good)
HINTS = [
    (e.OversizeMessageError("envelope is 20000 bytes, over the limit of 16384"),
     ((REFUSED_FOR_GOOD_METADATA, "1"),), (0, True)),
    (e.OverloadedError("busy", retry_after=0.8), ((RETRY_AFTER_METADATA, "800"),), (800, False)),
    (e.QuotaExceededError("quota", retry_after=3.5), ((RETRY_AFTER_METADATA, "3500"),),
     (3500, False)),
    (e.StorageFullError("disk"), (), (0, False)),
    (e.InvalidBodyError("no numbers"), (), (0, False)),  # final by its status already
    (e.BadSignatureError("bad"), (), (0, False)),
    (KeyError("defect"), (), (0, False)),
]


@pytest.mark.parametrize(("error", "trailers", "stream"), HINTS,
                         ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else "")
def test_an_answer_carries_its_hints(error: BaseException, trailers: tuple[tuple[str, str], ...],
                                     stream: tuple[int, bool]) -> None:
    answer = answer_for(error, where="Deliver")
    assert answer.trailing_metadata() == trailers
    response = answer.stream_response()
    assert (response.retry_after_ms, response.refused_for_good) == stream
    assert (response.error_code, response.error_message) == (answer.code.value[0],
                                                            answer.details)
    assert not response.HasField("receipt")


def test_an_oversize_envelope_is_still_resource_exhausted_with_its_own_text() -> None:
    answer = answer_for(e.OversizeMessageError("envelope is 9 bytes, over the limit of 8"),
                        where="Deliver")
    assert answer == Answer(Code.RESOURCE_EXHAUSTED, "envelope is 9 bytes, over the limit of 8",
                            refused_for_good=True)


# --- the way back -----------------------------------------------------------------------------

# (status, the peer's marker, refused for good?, refuses the sender?)
REFUSALS = [
    (Code.UNAUTHENTICATED, False, True, True),
    (Code.PERMISSION_DENIED, False, True, False),
    (Code.INVALID_ARGUMENT, False, True, False),
    (Code.FAILED_PRECONDITION, False, True, False),
    (Code.OUT_OF_RANGE, False, True, False),
    (Code.RESOURCE_EXHAUSTED, False, False, False),  # overload, or an old peer's oversize
    (Code.RESOURCE_EXHAUSTED, True, True, False),  # oversize
    (Code.UNAVAILABLE, False, False, False),
    (Code.DEADLINE_EXCEEDED, False, False, False),
    (Code.NOT_FOUND, False, False, False),
    (Code.INTERNAL, False, False, False),
    (Code.UNKNOWN, False, False, False),
    (Code.INVALID_ARGUMENT, True, True, False),
]


@pytest.mark.parametrize(("code", "marked", "final", "sender"), REFUSALS)
def test_refusal(code: grpc.StatusCode, marked: bool, final: bool, sender: bool) -> None:
    error = refusal(code, "why", refused_for_good=marked)
    assert isinstance(error, RefusedForGoodError) is final
    assert error.retryable is not final and retryable(error) is not final
    assert error.refuses_sender is sender
    assert (error.code, error.details, str(error)) == (code, "why", f"{code.name}: why")


def test_an_old_peers_oversize_answer_reads_as_overload() -> None:
    # A receiver that predates the marker: retried with backoff, as it always was.
    call = failed_call(Code.RESOURCE_EXHAUSTED, "envelope is 9 bytes, over the limit of 8")
    assert type(refusal_of_call(call)) is RefusedError
    response = service_pb2.DeliverResponse(error_code=Code.RESOURCE_EXHAUSTED.value[0],
                                           error_message="envelope is 9 bytes, over the limit")
    assert type(refusal_of_response(response)) is RefusedError


def test_a_stream_answer_with_an_unknown_code_reads_unknown_and_retryable() -> None:
    error = refusal_of_response(service_pb2.DeliverResponse(error_code=99, error_message="?"))
    assert (error.code, error.retryable) == (Code.UNKNOWN, True)


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_a_peers_retry_hint_is_read_and_capped(ms: int) -> None:
    hint = refusal_of_call(failed_call(Code.RESOURCE_EXHAUSTED, "busy",
                                       ((RETRY_AFTER_METADATA, str(ms)),))).retry_after
    assert hint == min(max(ms, 0) / 1000, MAX_RETRY_AFTER_SECONDS)
    if ms >= 0:
        streamed = refusal_of_response(service_pb2.DeliverResponse(
            error_code=Code.RESOURCE_EXHAUSTED.value[0], retry_after_ms=ms % 2**32))
        assert streamed.retry_after == (min((ms % 2**32) / 1000, MAX_RETRY_AFTER_SECONDS)
                                        if ms % 2**32 else None)


@pytest.mark.parametrize("value", ["soon", "", "1.5"])
def test_a_retry_hint_that_is_no_number_is_ignored(value: str) -> None:
    call = failed_call(Code.RESOURCE_EXHAUSTED, "busy", ((RETRY_AFTER_METADATA, value),))
    assert refusal_of_call(call).retry_after is None


# --- any exception ----------------------------------------------------------------------------

# (exception, retryable)
ANY = [
    (asyncio.CancelledError(), True),
    (concurrent.futures.CancelledError(), True),
    (OSError("connection reset"), True),
    (TimeoutError(), True),
    (KeyError("a defect"), True),
    (failed_call(Code.UNAVAILABLE, "peer down"), True),
    (failed_call(Code.RESOURCE_EXHAUSTED, "busy"), True),
    (failed_call(Code.RESOURCE_EXHAUSTED, "too big", ((REFUSED_FOR_GOOD_METADATA, "1"),)), False),
    (failed_call(Code.PERMISSION_DENIED, "no"), False),
    (e.OversizeMessageError("too big"), False),
    (e.OverloadedError("busy"), True),
    (refusal(Code.RESOURCE_EXHAUSTED, "too big", refused_for_good=True), False),
]


@pytest.mark.parametrize(("error", "expected"), ANY, ids=lambda v: type(v).__name__)
def test_retryable_for_any_exception(error: BaseException, expected: bool) -> None:
    assert retryable(error) is expected
