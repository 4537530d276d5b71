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
| recipient is not this node                | FAILED_PRECONDITION |
| operator command from another node        | PERMISSION_DENIED   |
| operator command unknown or invalid       | INVALID_ARGUMENT    |
| created_at outside the clock skew         | OUT_OF_RANGE        |
| message expired                           | OUT_OF_RANGE        |
| directory expired on this node            | UNAVAILABLE         |
| database unavailable (retry later)        | UNAVAILABLE         |
| anything else                             | INTERNAL            |
"""

from __future__ import annotations

import grpc

from exchange import errors as e

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
    (e.OversizeMessageError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.WrongRecipientError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.ClockSkewError, grpc.StatusCode.OUT_OF_RANGE),
    (e.ExpiredMessageError, grpc.StatusCode.OUT_OF_RANGE),
    (e.DirectoryExpiredError, grpc.StatusCode.UNAVAILABLE),
    (e.StorageUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (e.UnknownMemberError, grpc.StatusCode.NOT_FOUND),
    (e.ProofError, grpc.StatusCode.INVALID_ARGUMENT),
    (e.NoteError, grpc.StatusCode.INVALID_ARGUMENT),
    (e.ForkError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.LedgerError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.VerificationError, grpc.StatusCode.INVALID_ARGUMENT),
)


# Trailing metadata of a RESOURCE_EXHAUSTED "overloaded" refusal: milliseconds to wait
# before trying again. Senders wait at least this long (and their own backoff if longer).
RETRY_AFTER_METADATA = "retry-after-ms"


def status_for(error: BaseException) -> grpc.StatusCode:
    for cls, code in _TABLE:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


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
