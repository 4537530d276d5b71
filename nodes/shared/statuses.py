"""What became of one reported number: the status every role's tables record."""

from __future__ import annotations

import enum

from exchange.messages import ActionOutcome, Verdict


class Status(enum.StrEnum):
    """What became of one reported number, as a node sees it."""

    REPORTED = "reported"  # police: sent, nothing heard yet
    NOTICED = "noticed"  # a shutdown notice is with the carrier
    FORWARDED = "forwarded"  # another province's bureau has it
    REJECTED = "rejected"  # invalid or never-actionable; with the reason
    UNROUTABLE = "unroutable"  # no member carrier serves it
    SHUT_DOWN = "shut_down"
    ALREADY_INACTIVE = "already_inactive"
    NOT_OUR_SUBSCRIBER = "not_our_subscriber"  # and no other carrier to ask
    REFUSED = "refused"
    RESTORED = "restored"  # an appeal lifted the shutdown
    WITHDRAWN = "withdrawn"  # the reporter retracted it


FINAL = frozenset({
    Status.REJECTED, Status.UNROUTABLE, Status.SHUT_DOWN, Status.ALREADY_INACTIVE,
    Status.NOT_OUR_SUBSCRIBER, Status.REFUSED, Status.RESTORED, Status.WITHDRAWN,
})

STATUS_OF_OUTCOME = {
    ActionOutcome.SHUT_DOWN: Status.SHUT_DOWN,
    ActionOutcome.ALREADY_INACTIVE: Status.ALREADY_INACTIVE,
    ActionOutcome.NOT_OUR_SUBSCRIBER: Status.NOT_OUR_SUBSCRIBER,
    ActionOutcome.REFUSED: Status.REFUSED,
    ActionOutcome.RESTORED: Status.RESTORED,
}
OUTCOME_OF_STATUS = {v: k for k, v in STATUS_OF_OUTCOME.items()}

# The bureau's own verdicts: what it did with a number no carrier has answered for.
STATUS_OF_VERDICT = {
    Verdict.NOTICED: Status.NOTICED,
    Verdict.FORWARDED: Status.FORWARDED,
    Verdict.REJECTED: Status.REJECTED,
    Verdict.UNROUTABLE: Status.UNROUTABLE,
    Verdict.WITHDRAWN: Status.WITHDRAWN,
}
VERDICT_OF_STATUS = {v: k for k, v in STATUS_OF_VERDICT.items()}
