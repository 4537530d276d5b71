"""One exception hierarchy for bcx, rooted at ExchangeError.

Third-party errors are wrapped at the boundary with ``raise ... from e``. The
mapping of these errors to gRPC status codes lives in exactly one place:
``exchange.transport.status``, and so does the one function that says of any
exception whether retrying can help (``status.retryable``).

Each error type says whether retrying the same thing can help (``retryable``): False
when the same message or request is refused again every time (a bad signature, a body
the rules refuse, an envelope over the size limit), True when it may go through later
(overloaded, a database unavailable) or when this node cannot say (an error that is no
refusal: a defect, a configuration). A sender sets a message refused for good aside
and goes on with the ones after it; one refused for now it sends again after a backoff.
"""

from __future__ import annotations

from typing import ClassVar


class ExchangeError(Exception):
    """Base of every error bcx raises on purpose."""

    # Unless a type says otherwise: this node cannot tell that the same thing fails again.
    retryable: ClassVar[bool] = True


class ConfigError(ExchangeError):
    """A configuration file or value is missing or wrong; the message names the key."""


# --- PKI -------------------------------------------------------------------


class PKIError(ExchangeError):
    """A certificate or key could not be made, loaded or trusted."""

    retryable = False


class CertificateExpiredError(PKIError):
    pass


class CertificateNotYetValidError(PKIError):
    pass


class CertificateSignatureError(PKIError):
    """The certificate was not issued by the exchange CA."""


class CertificateRevokedError(PKIError):
    pass


class CertificateIdentityError(PKIError):
    """The certificate does not name the node it is supposed to belong to."""


# --- Directory ---------------------------------------------------------------


class DirectoryError(ExchangeError):
    """The member directory is invalid, untrusted, stale or lacks an entry."""

    retryable = True  # a newer directory, fetched or adopted later, may settle it


class DirectoryExpiredError(DirectoryError):
    pass


class DirectoryRollbackError(DirectoryError):
    """A replacement directory is not newer than the one held."""


class UnknownMemberError(DirectoryError):
    pass


# --- Receiving a message -------------------------------------------------------


class VerificationError(ExchangeError):
    """A message, signature, proof or note failed verification."""

    retryable = False


class MalformedEnvelopeError(VerificationError):
    pass


class OversizeMessageError(VerificationError):
    """An envelope is over the receiver's size limit: refused again every time, unlike
    overload, although both are RESOURCE_EXHAUSTED on the wire (see transport/status.py)."""


class BadSignatureError(VerificationError):
    pass


class UnknownSignerError(VerificationError):
    pass


class RevokedKeyError(VerificationError):
    pass


class UnknownPeerError(VerificationError):
    """The mTLS peer is not a current member of the directory."""


class PeerMismatchError(VerificationError):
    """The mTLS peer is not the message's sender."""


class WrongRecipientError(VerificationError):
    pass


class ClockSkewError(VerificationError):
    pass


class ExpiredMessageError(VerificationError):
    pass


class RoleNotAllowedError(VerificationError):
    """The sender's role may not send this body to the recipient's role."""


class InvalidBodyError(VerificationError):
    pass


class NotResponsibleError(VerificationError):
    """The sender may send this body, but not about this object: another bureau's
    carrier, another carrier's line, a report that went elsewhere
    (docs/who-may-send-what.md#responsibility-rules)."""


class StateConflictError(VerificationError):
    """What the message asks, the receiver's state does not allow: no such report or
    appeal, an appeal decided already, a final outcome overwritten
    (docs/who-may-send-what.md#state-rules)."""


# --- Ledger ------------------------------------------------------------------


class LedgerError(ExchangeError):
    """The ledger could not be read or written, or is not intact."""

    retryable = False


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof does not verify."""


class NoteError(VerificationError):
    """A signed note is malformed or a known key's signature on it is bad."""


class TamperError(LedgerError):
    """Stored ledger data does not match what was signed."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ForkError(VerificationError):
    """Two checkpoints from one origin are not consistent."""


class ReceiptError(VerificationError):
    """A receipt does not prove that the receiver logged the message."""


# --- Peers and load -------------------------------------------------------------


class PeerError(ExchangeError):
    """A peer could not be reached or answered with an error."""

    retryable = True


class OverloadedError(ExchangeError):
    """This node cannot take more work now; retry after ``retry_after`` seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageUnavailableError(ExchangeError):
    """The database cannot be written now (locked, stopped); nothing was accepted."""

    retryable = True


class StorageFullError(StorageUnavailableError):
    """The database's disk is full; nothing was accepted, and retrying may help later."""


class QuotaExceededError(OverloadedError):
    """A peer has used its storage quota for the day; ``retry_after`` is until the next day."""


# --- Operators ---------------------------------------------------------------------


class OperationError(ExchangeError):
    """An operator command cannot be carried out: unknown, bad arguments, no such item."""

    retryable = False


class OperatorNotAllowedError(OperationError):
    """Only the node's own certificate may send operator commands."""


class ReadNotAllowedError(ExchangeError):
    """A ledger read beyond the caller's own entries that this node does not permit."""

    retryable = False


# --- Data --------------------------------------------------------------------------


class NumberError(ExchangeError):
    """A phone number, ICCID or IMSI is invalid or never actionable; names input and reason."""


class SealError(ExchangeError):
    """HPKE sealing or opening failed."""
