"""The members file round trip, pure: any directory exported by `export_spec` reads back
(`tomllib`) and builds (`directory_from_spec`) into the same members and numbering plan,
whatever the organisation names, endpoints and serials hold."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange import pki
from exchange.identity import Member, Role
from exchange.keys import PublicKey
from exchange.numbers import NumberBlock
from nodes.federation import build_directory, directory_from_spec, export_spec

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
TEXT = st.text(min_size=1, max_size=40)  # any Unicode, control characters and quotes too


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> x509.Certificate:
    files = pki.init_ca(trust_domain="bcx.example", out=tmp_path_factory.mktemp("ca") / "ca")
    return pki.load_certificate(files.cert)


members = st.lists(st.builds(
    lambda n, role, province, org, endpoint, keys, reseller: Member(
        node_id=f"m{n}.fj", role=role, province=province, organisation=org, endpoint=endpoint,
        auth_cert_sha256=keys[0], signing_key=PublicKey(keys[1]), hpke_public_key=keys[2],
        reseller=reseller),
    st.integers(0, 10**6), st.sampled_from(list(Role)), TEXT, TEXT, TEXT,
    st.tuples(*(st.binary(min_size=32, max_size=32),) * 3), st.booleans()),
    min_size=1, max_size=4, unique_by=lambda m: m.node_id)
blocks = st.lists(st.builds(
    lambda digits, carrier, province, reseller: NumberBlock(
        prefix=f"+861{digits}", carrier_node=carrier, province=province, reseller=reseller),
    st.text("0123456789", min_size=1, max_size=6), TEXT, TEXT, st.booleans()),
    max_size=4, unique_by=lambda b: b.prefix)


@settings(max_examples=60, deadline=None)
@given(members=members, plan=blocks, serials=st.lists(TEXT, max_size=3),
       days=st.integers(1, 400))
def test_export_then_build_is_the_same_directory(
        ca: x509.Certificate, members: list[Member], plan: list[NumberBlock],
        serials: list[str], days: int) -> None:
    d = build_directory(trust_domain="bcx.example", members=members, version=3,
                        valid_for=timedelta(days=days), numbering_plan=plan,
                        revoked_cert_serials=serials, issued_at=NOW)
    rebuilt = directory_from_spec(tomllib.loads(export_spec(d)), base=Path("/nonexistent"),
                                  ca=ca, now=NOW)
    assert rebuilt.version == 4
    assert rebuilt.members == d.members
    assert rebuilt.numbering_plan == d.numbering_plan
    assert rebuilt.revoked_cert_serials == d.revoked_cert_serials
    assert rebuilt.expires_at - rebuilt.issued_at == timedelta(days=days)
