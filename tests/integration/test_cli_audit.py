"""The auditor's commands against a real federation's workspace, as an operator runs them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.network, pytest.mark.slow]

BCX = [sys.executable, "-m", "nodes.cli"]


def bcx(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*BCX, *args], capture_output=True, text=True, timeout=300, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"bcx {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("demo")
    result = bcx("demo", "--numbers", "60", "--workspace", str(ws))
    assert "demo PASSED" in result.stdout
    for line in ("bureau.fj escalated to office.cn", "police fed back on every number",
                 "line restored", "restored its two numbers", "reports fed back: every number"):
        assert line in result.stdout
    return ws


def test_demo_exits_zero_and_every_ledger_verifies(workspace: Path) -> None:
    from nodes.demo import MEMBERS

    for node, *_ in MEMBERS:
        result = bcx("ledger", "verify", "--config", str(workspace / node / "node.toml"))
        assert f"ledger of {node} is intact" in result.stdout


def test_evidence_export_then_verify_offline(workspace: Path, tmp_path: Path) -> None:
    config = str(workspace / "bureau.fj" / "node.toml")
    entries = json.loads(bcx("ledger", "entries", "--config", config, "--json").stdout)
    received = [e for e in entries if e["kind"] == "RECEIVED"]
    assert received, entries
    assert all(len(e["message_digest"]) == 64 for e in received)
    out = tmp_path / "ev.json"
    bcx("evidence", "export", "--config", config, "--message-id", received[0]["message_id"],
        "--out", str(out))
    bundle = json.loads(out.read_text())
    assert {"envelope", "signer_public_key", "leaf", "tlog_proof", "checkpoint_keys",
            "witness_keys"} <= set(bundle)
    assert set(bundle["envelope"]) == {"payloadType", "payload", "signatures"}
    ok = bcx("evidence", "verify", str(out), "--ca", str(workspace / "pki" / "ca.pem"))
    assert "evidence verifies" in ok.stdout
    # One altered byte of the payload: the offline check refuses it and says why.
    payload = bundle["envelope"]["payload"]
    bundle["envelope"]["payload"] = ("B" if payload[0] != "B" else "C") + payload[1:]
    out.write_text(json.dumps(bundle))
    bad = bcx("evidence", "verify", str(out), "--ca", str(workspace / "pki" / "ca.pem"),
              check=False)
    assert bad.returncode != 0
    assert "bcx:" in bad.stderr


def test_checkpoint_verifies_with_the_printed_vkey(workspace: Path) -> None:
    from exchange.ledger import note

    config = str(workspace / "police.fj" / "node.toml")
    vkey = bcx("ledger", "vkey", "--config", config).stdout.strip()
    assert vkey.startswith("bcx.example/police.fj+")
    printed = bcx("ledger", "checkpoint", "--config", config).stdout
    cp, _, _ = note.open_checkpoint(printed, note.Verifier.from_vkey(vkey),
                                    origin="bcx.example/police.fj")
    entries = json.loads(bcx("ledger", "entries", "--config", config, "--json",
                             "--limit", "100000").stdout)
    assert cp.size == len(entries)


def test_tampered_leaf_is_named_by_ledger_verify(workspace: Path) -> None:
    db = workspace / "cmcc.fj" / "node.db"
    con = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE ledger_leaves SET peer = 'x' WHERE idx = 0")
    # An attacker with database access drops the trigger first.
    con.execute("DROP TRIGGER ledger_leaves_no_update")
    con.execute("UPDATE ledger_leaves SET leaf = CAST(substr(leaf, 1, 5) || X'ff' || "
                "substr(leaf, 7) AS BLOB) WHERE idx = 0")
    con.commit()
    con.close()
    result = bcx("ledger", "verify", "--config", str(workspace / "cmcc.fj" / "node.toml"),
                 check=False)
    assert result.returncode != 0
    assert "first bad index: 0" in result.stderr
    assert "NOT intact" in result.stderr
