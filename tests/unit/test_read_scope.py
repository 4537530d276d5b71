"""Which entries of a ledger a caller may read (exchange.transport.services.read_scope)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.errors import ReadNotAllowedError
from exchange.identity import Member, Role
from exchange.keys import PublicKey
from exchange.ledger.entries import Entry, EntryKind
from exchange.transport.services import ReadScope, read_scope

ESCALATED = b"\x07" * 16
OTHER = b"\x08" * 16
NOW = datetime(2026, 12, 4, tzinfo=UTC)


def member(node_id: str, role: Role) -> Member:
    key = PublicKey.from_cryptography(Ed25519PrivateKey.generate().public_key())
    return Member(node_id=node_id, role=role, province=node_id.rsplit(".", 1)[1],
                  organisation=node_id, endpoint="127.0.0.1:1", auth_cert_sha256=b"\0" * 32,
                  signing_key=key, hpke_public_key=b"\0" * 32)


def entry(peer: str, message_id: bytes = b"") -> Entry:
    return Entry(EntryKind.RECEIVED, peer, NOW, message_id=message_id)


OFFICE, COMMERCE = member("office.cn", Role.OFFICE), member("commerce.fj", Role.COMMERCE)

# (caller, audit reason, audit readers, entry, readable)
CASES = [
    (COMMERCE, "", (), entry("commerce.fj"), True),
    (COMMERCE, "", (), entry("police.fj"), False),
    (COMMERCE, "", (), entry("police.fj", ESCALATED), False),  # evidence is the office's
    (OFFICE, "", (), entry("office.cn"), True),
    (OFFICE, "", (), entry("police.fj"), False),  # the office is no longer a reader of all
    (OFFICE, "", (), entry("police.fj", ESCALATED), True),
    (OFFICE, "", (), entry("police.fj", OTHER), False),
    (OFFICE, "yearly audit", ("office.cn",), entry("police.fj", OTHER), True),
]


@pytest.mark.parametrize(("caller", "reason", "readers", "e", "readable"), CASES)
def test_read_scope(caller: Member, reason: str, readers: tuple[str, ...], e: Entry,
                    readable: bool) -> None:
    scope = read_scope(caller, office_id="office.cn", audit_reason=reason,
                       audit_readers=readers, escalated=frozenset({ESCALATED}))
    assert scope.allows(e) is readable


@pytest.mark.parametrize(("caller", "reason", "readers", "message"), [
    (OFFICE, "yearly audit", (), r"office\.cn may read only the entries it is party to: "
     r"this node does not list it in \[ledger\] audit_readers"),
    (COMMERCE, "curious", ("office.cn",), r"commerce\.fj may read only"),
    (OFFICE, "x" * 501, ("office.cn",), r"at most 500 characters"),
    (OFFICE, "line\nbreak", ("office.cn",), r"printable text"),
])
def test_audit_reads_refused(caller: Member, reason: str, readers: tuple[str, ...],
                             message: str) -> None:
    with pytest.raises(ReadNotAllowedError, match=message):
        read_scope(caller, office_id="office.cn", audit_reason=reason, audit_readers=readers,
                   escalated=frozenset())


def test_an_audit_scope_reads_everything() -> None:
    assert read_scope(OFFICE, office_id="office.cn", audit_reason="yearly audit",
                      audit_readers=("office.cn",), escalated=frozenset()) == \
        ReadScope(None, audit_reason="yearly audit")
