"""The one place bcx errors become gRPC status codes, and the one place a peer's status
becomes an error again.

| refusal                                   | status                               | sender      |
|-------------------------------------------|--------------------------------------|-------------|
| no client certificate / another CA        | TLS fails (client: UNAVAILABLE)      | retries     |
| revoked certificate                       | UNAUTHENTICATED                      | final, held |
| peer not a member of the directory        | UNAUTHENTICATED                      | final, held |
| unknown sender                            | UNAUTHENTICATED                      | final, held |
| bad or missing signature, altered payload | UNAUTHENTICATED                      | final, held |
| retired signing key                       | UNAUTHENTICATED                      | final, held |
| peer is not the message's sender          | PERMISSION_DENIED                    | final       |
| role may not send this body               | PERMISSION_DENIED                    | final       |
| sender not responsible for the object     | PERMISSION_DENIED                    | final       |
| receiver's state does not allow it        | FAILED_PRECONDITION                  | final       |
| garbage or truncated envelope             | INVALID_ARGUMENT                     | final       |
| invalid body (numbers, deadlines, fields) | INVALID_ARGUMENT                     | final       |
| message over the size limit               | RESOURCE_EXHAUSTED, refused-for-good | final       |
| node overloaded (retry later)             | RESOURCE_EXHAUSTED, retry-after-ms   | retries     |
| peer's storage quota for the day used up  | RESOURCE_EXHAUSTED, retry-after-ms   | retries     |
| this node's disk full ("storage full")    | RESOURCE_EXHAUSTED                   | retries     |
| recipient is not this node                | FAILED_PRECONDITION                  | final       |
| operator command from another node        | PERMISSION_DENIED                    | final       |
| operator command unknown or invalid       | INVALID_ARGUMENT                     | final       |
| ledger read beyond the caller's entries   | PERMISSION_DENIED                    | final       |
| created_at outside the clock skew         | OUT_OF_RANGE                         | final       |
| message expired                           | OUT_OF_RANGE                         | final       |
| unknown member named in a request         | NOT_FOUND                            | retries     |
| directory expired on this node            | UNAVAILABLE                          | retries     |
| database unavailable (retry later)        | UNAVAILABLE                          | retries     |
| anything else                             | INTERNAL                             | retries     |

The last column is the error type's ``retryable`` (exchange/errors.py) as a sender reads
it back (``refusal``): "final" means the same envelope is refused again every time, so
the sender sets it aside and goes on with the ones after it; "held" means UNAUTHENTICATED
is final but refuses the sender rather than the message (most often the peer's directory
does not list this node, or its current keys, yet), so the message stays at the head of
its queue and is retried (exchange/transport/outbox.py).

A status alone says final for UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT,
FAILED_PRECONDITION and OUT_OF_RANGE (``FINAL_STATUSES``), and "try again" for the rest.
Where an error's type says otherwise, the answer carries the marker
``refused-for-good: 1`` (a trailer of a unary call; ``refused_for_good`` in a stream's
``DeliverResponse``): today an envelope over the receiver's size limit, which is
RESOURCE_EXHAUSTED like overload. A node that predates the marker neither sends nor
reads it: its oversize answer reads as overload here (retried with backoff, and
escalated after ``delivery.escalate_after_attempts``), and it retries a marked answer
as it always retried an oversize one. An overload answer carries ``retry-after-ms``,
the milliseconds the receiver asks the sender to wait (capped at an hour when read back).

An envelope larger than even gRPC's own receive limit (``max_envelope_bytes`` + 64 KiB)
is refused by gRPC before bcx sees it, RESOURCE_EXHAUSTED without the marker: retried.

What the peer is told (``answer_for``) is the error's own message for a refusal of this
table: those name the check that failed and are written to be sent. Two kinds of error
are told a fixed text instead, since their messages name this node's database: "storage
full" and "database unavailable". Anything else (a database error, a defect) is never
described to the peer, nor logged with its message: its text and a driver's parameters
may quote the message's numbers, names or ID numbers. The peer gets INTERNAL with an
opaque incident id; this node's log gets the same id with the error's type only.

A refusal's message may name what it refused, a number among them; before it leaves the
node (a peer keeps it with the message it could not deliver, and tells the office) every
mobile or ID number in it is masked down to its last four characters (``redact``).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import ClassVar

import grpc

from exchange import errors as e
from exchange.storage import faults
from exchange.wire.bcx.v1 import service_pb2

log = logging.getLogger(__name__)

_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (e.CertificateRevokedError, grpc.StatusCode.UNAUTHENTICATED),
    (e.PKIError, grpc.StatusCode.UNAUTHENTICATED),
    (e.UnknownPeerError, grpc.StatusCode.UNAUTHENTICATED),
    (e.UnknownSignerError, grpc.StatusCode.UNAUTHENTICATED),
    (e.BadSignatureError, grpc.StatusCode.UNAUTHENTICATED),
    (e.RevokedKeyError, grpc.StatusCode.UNAUTHENTICATED),
    (e.PeerMismatchError, grpc.StatusCode.PERMISSION_DENIED),
    (e.RoleNotAllowedError, grpc.StatusCode.PERMISSION_DENIED),
    (e.NotResponsibleError, grpc.StatusCode.PERMISSION_DENIED),
    (e.StateConflictError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.OperatorNotAllowedError, grpc.StatusCode.PERMISSION_DENIED),
    (e.OperationError, grpc.StatusCode.INVALID_ARGUMENT),
    (e.MalformedEnvelopeError, grpc.StatusCode.INVALID_ARGUMENT),
    (e.InvalidBodyError, grpc.StatusCode.INVALID_ARGUMENT),
    (e.ReadNotAllowedError, grpc.StatusCode.PERMISSION_DENIED),
    (e.OversizeMessageError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.WrongRecipientError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.ClockSkewError, grpc.StatusCode.OUT_OF_RANGE),
    (e.ExpiredMessageError, grpc.StatusCode.OUT_OF_RANGE),
    (e.StorageFullError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.DirectoryExpiredError, grpc.StatusCode.UNAVAILABLE),
    (e.StorageUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (e.UnknownMemberError, grpc.StatusCode.NOT_FOUND),
    (e.ProofError, grpc.StatusCode.INVALID_ARGUMENT),
    (e.NoteError, grpc.StatusCode.INVALID_ARGUMENT),
    (e.ForkError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.LedgerError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.VerificationError, grpc.StatusCode.INVALID_ARGUMENT),
)

# Mainland mobile numbers, E.164 or national (with the separators people type), and
# 18-character resident ID numbers, standing alone: not inside a hex id or a word.
_ALONE_BEFORE, _ALONE_AFTER = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
_PERSONAL_NUMBER = re.compile(
    _ALONE_BEFORE + r"(?:(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d){8}|\d{17}[\dXx])"
    + _ALONE_AFTER)


def redact(text: str) -> str:
    """``text`` with every mobile number and ID number in it masked but its last four
    characters (``…9517``): enough for the sender to find it in its own message."""
    return _PERSONAL_NUMBER.sub(lambda m: "…" + m.group(0)[-4:], text)


# Told instead of the error's message, which names this node's database.
STORAGE_FULL = "storage full: this node cannot store more now; retry later"
STORAGE_UNAVAILABLE = "database unavailable: retry later"


# Trailing metadata of a RESOURCE_EXHAUSTED "overloaded" refusal: milliseconds to wait
# before trying again. Senders wait at least this long (and their own backoff if longer).
RETRY_AFTER_METADATA = "retry-after-ms"
# Trailing metadata "1" of a refusal for good whose status alone reads "try again"
# (an envelope over the size limit); ``refused_for_good`` in a stream's DeliverResponse.
REFUSED_FOR_GOOD_METADATA = "refused-for-good"
# A peer cannot park a sender's queue for longer than this with its retry hint.
MAX_RETRY_AFTER_SECONDS = 3600.0

# Statuses after which the same envelope will never be accepted, when the answer says no
# more (see the module's docstring); every other status reads "try again".
FINAL_STATUSES = frozenset({
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
})


def status_for(error: BaseException) -> grpc.StatusCode:
    for cls, code in _TABLE:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


# --- the way out: what a peer is told ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What a peer is told of an error: a status code, a text safe to send, and the hints
    of the module's docstring (``retry_after_ms`` 0: none)."""

    code: grpc.StatusCode
    details: str
    incident: str = ""
    retry_after_ms: int = 0
    refused_for_good: bool = False

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        """The hints as a unary call's trailers."""
        hints = []
        if self.retry_after_ms:
            hints.append((RETRY_AFTER_METADATA, str(self.retry_after_ms)))
        if self.refused_for_good:
            hints.append((REFUSED_FOR_GOOD_METADATA, "1"))
        return tuple(hints)

    def stream_response(self) -> service_pb2.DeliverResponse:
        """The answer as a stream's DeliverResponse for one refused envelope."""
        return service_pb2.DeliverResponse(
            error_code=self.code.value[0], error_message=self.details,
            retry_after_ms=self.retry_after_ms, refused_for_good=self.refused_for_good)


def new_incident() -> str:
    return secrets.token_hex(8)


def answer_for(error: BaseException, *, where: str,
               internal: tuple[type[BaseException], ...] = (), to_peer: bool = True
               ) -> Answer:
    """The status, text and hints to send a peer for ``error`` (see the module's docstring).

    ``internal`` names error types that are refusals elsewhere but say, where they are
    raised now, that this node failed (a LedgerError out of the ledger writer while
    receiving is its own trouble, not a refusal of the message). ``where`` (an RPC name)
    goes into the incident's log line. ``to_peer`` False: the answer goes to this node's
    own operator, who may see the numbers of the command it gave.
    """
    answer = _told(error, where=where, internal=internal, to_peer=to_peer)
    wait = int(error.retry_after * 1000) if isinstance(error, e.OverloadedError) else 0
    # The marker only where the status alone would read "try again" (see FINAL_STATUSES).
    marked = (answer.code is not grpc.StatusCode.INTERNAL and not retryable(error)
              and answer.code not in FINAL_STATUSES)
    return replace(answer, retry_after_ms=wait, refused_for_good=marked)


def _told(error: BaseException, *, where: str, internal: tuple[type[BaseException], ...],
          to_peer: bool) -> Answer:
    if isinstance(error, e.StorageFullError) or faults.is_disk_full(error):
        # Wherever it came from (a batch, or one unit of work's own statement).
        return Answer(grpc.StatusCode.RESOURCE_EXHAUSTED, STORAGE_FULL)
    code = status_for(error)
    if code is grpc.StatusCode.INTERNAL or isinstance(error, internal):
        incident = new_incident()
        # The type only: a message or traceback may quote SQL parameters or personal data.
        log.error("internal error incident=%s where=%s error=%s", incident, where,
                  type(error).__name__)
        return Answer(grpc.StatusCode.INTERNAL, f"internal error (incident {incident})",
                      incident)
    if isinstance(error, e.StorageUnavailableError):
        return Answer(code, STORAGE_UNAVAILABLE)
    text = str(error) or type(error).__name__
    return Answer(code, redact(text) if to_peer else text)


# --- the way back: what a peer's answer means to this node --------------------------------


class RefusedError(e.PeerError):
    """A call to a peer failed with ``code``: a refusal for now (overloaded, a database
    unavailable, a quota) or no answer at all (UNAVAILABLE, DEADLINE_EXCEEDED). Sending
    the same thing again may succeed, after ``retry_after`` seconds if the peer said."""

    def __init__(self, code: grpc.StatusCode, details: str, *,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.retry_after = retry_after

    @property
    def refuses_sender(self) -> bool:
        """UNAUTHENTICATED: the peer does not accept who sent it rather than what was
        sent; most often its directory does not list this node, or its keys, yet."""
        return self.code is grpc.StatusCode.UNAUTHENTICATED


class RefusedForGoodError(RefusedError):
    """A peer refused for good: the same message is refused again every time."""

    retryable: ClassVar[bool] = False


def refusal(code: grpc.StatusCode, details: str, *, refused_for_good: bool = False,
            retry_after: float | None = None) -> RefusedError:
    """The error a peer's answer ``code`` and ``details`` stands for; ``refused_for_good``
    is the peer's marker, ``retry_after`` its hint in seconds (see the module's docstring)."""
    final = refused_for_good or code in FINAL_STATUSES
    cls = RefusedForGoodError if final else RefusedError
    return cls(code, details, retry_after=retry_after)


def refusal_of_call(error: grpc.aio.AioRpcError | grpc.Call) -> RefusedError:
    """The error a failed gRPC call (unary, or a stream that broke) stands for."""
    trailers = list(error.trailing_metadata() or ())
    return refusal(error.code(), error.details() or "",
                   refused_for_good=any(k == REFUSED_FOR_GOOD_METADATA for k, _ in trailers),
                   retry_after=_retry_hint(trailers))


def refusal_of_response(response: service_pb2.DeliverResponse) -> RefusedError:
    """The error a stream's answer without a receipt stands for."""
    hint = (min(response.retry_after_ms / 1000, MAX_RETRY_AFTER_SECONDS)
            if response.retry_after_ms else None)
    return refusal(_STATUS_BY_NUMBER.get(response.error_code, grpc.StatusCode.UNKNOWN),
                   response.error_message, refused_for_good=response.refused_for_good,
                   retry_after=hint)


_STATUS_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


def _retry_hint(trailers: Iterable[tuple[str, str | bytes]]) -> float | None:
    """Seconds the peer asked us to wait (RETRY_AFTER_METADATA), if it said, capped."""
    for key, value in trailers:
        if key == RETRY_AFTER_METADATA:
            try:
                return min(max(int(value), 0) / 1000, MAX_RETRY_AFTER_SECONDS)
            except ValueError:
                return None
    return None


def retryable(error: BaseException) -> bool:
    """Whether doing the same thing again can help, for any exception a node meets.

    A bcx error says so by its type (``ExchangeError.retryable``); a failed gRPC call as
    its peer's answer reads back (``refusal_of_call``). Cancelled work (asyncio's, or a
    future's as the ledger writer reports it), the network or a disk (OSError) and
    anything else: nothing says that the same thing fails again, and retrying loses
    nothing.
    """
    if isinstance(error, e.ExchangeError):
        return error.retryable
    if isinstance(error, grpc.aio.AioRpcError | grpc.Call):
        return refusal_of_call(error).retryable
    return True
