"""The receive pipeline's checks, in order, as one pure function
(docs/messages.md#how-a-receiver-checks-a-message).

Everything a node must decide about an incoming envelope before it may log it:
bytes, the directory, who the mTLS peer is and the time go in; an accepted
message comes out, or the error that names the first check it failed. The last
step is responsibility (docs/who-may-send-what.md#responsibility-rules): the directory's
rules here, then, inside the transaction that logs the message and before any handler, the
rules over the receiver's own state (``Node.responsibility``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from exchange import envelope, messages, numbers, responsibility
from exchange.errors import (
    ClockSkewError,
    ExpiredMessageError,
    InvalidBodyError,
    MalformedEnvelopeError,
    NumberError,
    PeerMismatchError,
    RevokedKeyError,
    UnknownMemberError,
    UnknownSignerError,
    WrongRecipientError,
)
from exchange.identity import Directory, Member, check_allowed


@dataclass(frozen=True, slots=True)
class Limits:
    max_envelope_bytes: int = envelope.DEFAULT_MAX_ENVELOPE_BYTES
    clock_skew: timedelta = timedelta(minutes=5)
    # Bodies listing numbers may list this many at most (a bulk report is many messages).
    max_numbers_per_message: int = 10_000


@dataclass(frozen=True, slots=True)
class Accepted:
    envelope: envelope.Envelope
    message: messages.Message
    sender: Member
    # A report or withdrawal a bureau passed on: its reporter, from the envelope carried.
    origin: responsibility.Origin | None = None

    @property
    def digest(self) -> bytes:
        return self.envelope.digest


BodyCheck = Callable[[messages.Message, datetime], None]


def check_incoming(
    raw: bytes,
    *,
    directory: Directory,
    me: str,
    peer: str,
    now: datetime,
    limits: Limits,
    body_checks: Mapping[str, BodyCheck] | None = None,
) -> Accepted:
    """Run every receive check in order (docs/messages.md#how-a-receiver-checks-a-message);
    return the accepted message or raise."""
    env = envelope.parse(raw, max_bytes=limits.max_envelope_bytes)
    if env.payload_type != envelope.PAYLOAD_TYPE_MESSAGE:
        raise MalformedEnvelopeError(f"payload type {env.payload_type!r} is not a bcx message")
    msg = messages.decode_message(env.payload)
    header = msg.header
    try:
        sender = directory.member(header.sender)
    except UnknownMemberError as e:
        raise UnknownSignerError(f"sender {header.sender!r} is not a member of the directory") \
            from e
    if sender.signing_key.raw in directory.retired_signing_keys:
        raise RevokedKeyError(f"signing key of {sender.node_id} has been retired")
    env.verify(sender.signing_key)
    if peer != sender.node_id:
        raise PeerMismatchError(
            f"connection is from {peer}, but the message is signed by sender {sender.node_id}"
        )
    if header.recipient != me:
        raise WrongRecipientError(f"message is addressed to {header.recipient!r}, not to {me}")
    if abs(header.created_at - now) > limits.clock_skew:
        raise ClockSkewError(
            f"created_at {header.created_at.isoformat()} is more than "
            f"{limits.clock_skew.total_seconds():.0f}s from this node's clock {now.isoformat()}"
        )
    if header.expires_at is not None and header.expires_at <= now:
        raise ExpiredMessageError(f"message expired at {header.expires_at.isoformat()}")
    recipient = directory.member(me)
    check_allowed(sender, recipient, msg.kind)
    check_body(msg, now, limits)
    if body_checks and msg.kind in body_checks:
        body_checks[msg.kind](msg, now)
    origin = responsibility.check(msg, sender=sender, recipient=recipient, directory=directory)
    return Accepted(env, msg, sender, origin)


_NUMBER_FIELDS = ("numbers",)
# Reports carry numbers as investigators found them: the bureau judges each one and
# answers per number (rejected with its reason, or accepted), so one bad number in a
# report of thousands does not refuse the rest. Every other body lists numbers its
# sender has already validated, and a bad one refuses the message.
AS_REPORTED = frozenset({"number_report"})
MAX_REPORTED_NUMBER_CHARS = 64


def check_body(msg: messages.Message, now: datetime, limits: Limits) -> None:
    """Checks every body needs whoever handles it: numbers are E.164 mobile numbers."""
    body = msg.body
    for name in _NUMBER_FIELDS:
        values = getattr(body, name, None)
        if values is None:
            continue
        if len(values) > limits.max_numbers_per_message:
            raise InvalidBodyError(
                f"{msg.kind} lists {len(values)} numbers, at most "
                f"{limits.max_numbers_per_message} per message"
            )
        if msg.kind in AS_REPORTED:
            for value in values:
                if not value or len(value) > MAX_REPORTED_NUMBER_CHARS:
                    raise InvalidBodyError(
                        f"{msg.kind}: a reported number must be 1 to "
                        f"{MAX_REPORTED_NUMBER_CHARS} characters, got {len(value)}")
            continue
        for value in values:
            _check_e164(msg.kind, value)
    single = getattr(body, "number", None)
    if isinstance(single, str):
        _check_e164(msg.kind, single)


def _check_e164(kind: str, value: str) -> None:
    try:
        normalised = numbers.normalise(value)
    except NumberError as e:
        raise InvalidBodyError(f"{kind}: {e}") from e
    if normalised != value:
        raise InvalidBodyError(f"{kind}: number {value!r} is not in E.164 form ({normalised})")
