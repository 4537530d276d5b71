"""The one place bcx errors become gRPC status codes.

| refusal                                   | status              |
|-------------------------------------------|---------------------|
| no client certificate / another CA        | (TLS handshake fails: the client sees UNAVAILABLE) |
| revoked certificate                       | UNAUTHENTICATED     |
| peer not a member of the directory        | UNAUTHENTICATED     |
| unknown sender                            | UNAUTHENTICATED     |
| bad or missing signature, altered payload | UNAUTHENTICATED     |
| retired signing key                       | UNAUTHENTICATED     |
| peer is not the message's sender          | PERMISSION_DENIED   |
| role may not send this body               | PERMISSION_DENIED   |
| sender not responsible for the object     | PERMISSION_DENIED   |
| receiver's state does not allow it        | FAILED_PRECONDITION |
| garbage or truncated envelope             | INVALID_ARGUMENT    |
| invalid body (numbers, deadlines, fields) | INVALID_ARGUMENT    |
| message over the size limit               | RESOURCE_EXHAUSTED  |
| node overloaded (retry later)             | RESOURCE_EXHAUSTED  |
| peer's storage quota for the day used up  | RESOURCE_EXHAUSTED  |
| this node's disk full ("storage full")    | RESOURCE_EXHAUSTED  |
| recipient is not this node                | FAILED_PRECONDITION |
| operator command from another node        | PERMISSION_DENIED   |
| operator command unknown or invalid       | INVALID_ARGUMENT    |
| ledger read beyond the caller's entries   | PERMISSION_DENIED   |
| created_at outside the clock skew         | OUT_OF_RANGE        |
| message expired                           | OUT_OF_RANGE        |
| directory expired on this node            | UNAVAILABLE         |
| database unavailable (retry later)        | UNAVAILABLE         |
| anything else                             | INTERNAL            |

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
from dataclasses import dataclass

import grpc

from exchange import errors as e
from exchange.storage import faults

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


def status_for(error: BaseException) -> grpc.StatusCode:
    for cls, code in _TABLE:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


@dataclass(frozen=True, slots=True)
class Answer:
    """What a peer is told of an error: a status code and a text safe to send."""

    code: grpc.StatusCode
    details: str
    incident: str = ""


def new_incident() -> str:
    return secrets.token_hex(8)


def answer_for(error: BaseException, *, where: str,
               internal: tuple[type[BaseException], ...] = (), to_peer: bool = True
               ) -> Answer:
    """The status and text to send a peer for ``error`` (see the module's docstring).

    ``internal`` names error types that are refusals elsewhere but say, where they are
    raised now, that this node failed (a LedgerError out of the ledger writer while
    receiving is its own trouble, not a refusal of the message). ``where`` (an RPC name)
    goes into the incident's log line. ``to_peer`` False: the answer goes to this node's
    own operator, who may see the numbers of the command it gave.
    """
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


# Statuses after which the same envelope will never be accepted: the sender escalates at
# once (and keeps the row, so nothing is lost) instead of waiting out its retries.
PERMANENT = frozenset({
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
})


def is_permanent(code: grpc.StatusCode) -> bool:
    return code in PERMANENT
