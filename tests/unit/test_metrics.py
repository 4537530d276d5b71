"""The gauges a scrape reports, built from values: names, labels and values, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.core import Metric

from exchange.metrics import (
    WITNESS_STATES,
    StoredState,
    node_families,
    stored_families,
    witness_state,
)


def samples(families: list[Metric]) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in families}


def test_node_families() -> None:
    expires = datetime(2026, 12, 31, tzinfo=UTC)
    families = node_families(node_id="police.fj", role="police", directory_version=7,
                             directory_expires_at=expires, entries=3000, checkpoint_size=2999)
    assert samples(families) == {
        "bcx_node_info": [({"node_id": "police.fj", "role": "police"}, 1)],
        "bcx_directory_version": [({}, 7)],
        "bcx_directory_expiry_timestamp_seconds": [({}, expires.timestamp())],
        "bcx_ledger_entries": [({}, 3000)],
        "bcx_ledger_checkpoint_size": [({}, 2999)],
    }


def test_stored_families() -> None:
    stored = StoredState(outbox_waiting={"bureau.fj": 2, "telco.fj": 0},
                    outbox_refused={"bureau.fj": 1, "telco.fj": 0}, checkpoints=12,
                    cosignatures=30, cosigned_size={"bcx.test/office.cn": 40},
                    peer_checkpoints=5)
    assert samples(stored_families(stored)) == {
        "bcx_outbox_depth": [({"peer": "bureau.fj"}, 2), ({"peer": "telco.fj"}, 0)],
        "bcx_outbox_refused": [({"peer": "bureau.fj"}, 1), ({"peer": "telco.fj"}, 0)],
        "bcx_ledger_checkpoints": [({}, 12)],
        "bcx_ledger_cosignatures": [({}, 30)],
        "bcx_ledger_cosigned_size": [({"witness": "bcx.test/office.cn"}, 40)],
        "bcx_peer_checkpoints": [({}, 5)],
    }


def test_an_empty_database_reports_zeros_and_no_labelled_samples() -> None:
    stored = StoredState(outbox_waiting={}, outbox_refused={}, checkpoints=0, cosignatures=0,
                    cosigned_size={}, peer_checkpoints=0)
    reported = samples(stored_families(stored))
    assert reported["bcx_outbox_depth"] == reported["bcx_ledger_cosigned_size"] == []
    assert reported["bcx_ledger_checkpoints"] == [({}, 0)]


@given(st.dictionaries(st.from_regex(r"[a-z]{1,8}\.[a-z]{2}", fullmatch=True),
                       st.integers(0, 10**6), max_size=8))
def test_every_peer_gets_one_depth_sample(waiting: dict[str, int]) -> None:
    stored = StoredState(outbox_waiting=waiting, outbox_refused=dict.fromkeys(waiting, 0),
                    checkpoints=0, cosignatures=0, cosigned_size={}, peer_checkpoints=0)
    depth = samples(stored_families(stored))["bcx_outbox_depth"]
    assert depth == [({"peer": peer}, count) for peer, count in waiting.items()]


@pytest.mark.parametrize(("status", "state"), [
    ("witnessed size 12", "ok"),
    ("FORK: roots differ at size 4", "fork"),
    ("fork detected", "fork"),
    ("unreachable: connection refused", "unreachable"),
    ("no checkpoint", "no_checkpoint"),
    ("no checkpoint yet", "error"),
    ("bad signature", "error"),
])
def test_witness_state(status: str, state: str) -> None:
    assert witness_state(status) == state
    assert state in WITNESS_STATES
