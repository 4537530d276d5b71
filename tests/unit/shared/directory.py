"""A small directory for the pure tests of routing and of a bureau's decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exchange.identity import Directory, Member, Role
from exchange.keys import Ed25519Signer
from exchange.numbers import NumberBlock
from nodes.shared.routing import Router

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def member(node_id: str, role: Role, province: str) -> Member:
    return Member(node_id=node_id, role=role, province=province, organisation=node_id,
                  endpoint="127.0.0.1:1", auth_cert_sha256=bytes(32),
                  signing_key=Ed25519Signer.generate().public_key, hpke_public_key=bytes(32))


DIRECTORY = Directory(
    trust_domain="bcx.example", version=1, issued_at=NOW, expires_at=NOW + timedelta(days=1),
    members=(member("office.cn", Role.OFFICE, "cn"), member("bureau.fj", Role.BUREAU, "fj"),
             member("bureau.gd", Role.BUREAU, "gd"), member("cmcc.fj", Role.CARRIER, "fj"),
             member("mvno-x.fj", Role.CARRIER, "fj"),
             member("cmcc.gd", Role.CARRIER, "gd"), member("police.fj", Role.POLICE, "fj"),
             member("commerce.fj", Role.COMMERCE, "fj")),
    numbering_plan=(NumberBlock("+8617059", "mvno-x.fj", "fj", reseller=True),),
)
ROUTER = Router.for_directory(DIRECTORY)
