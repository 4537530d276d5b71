"""`bcx db upgrade --config` brings a node's database to the newest schema on either back
end, and alembic then finds nothing between the models and that database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fedharness import make_federation
from sqlalchemy import inspect

from exchange.schema import metadata
from exchange.storage import engines

ROOT = Path(__file__).resolve().parents[2]
POLICE = "police.fj"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, check=False,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def test_bcx_db_upgrade_then_alembic_check_agrees(db_url: str, tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed", database_urls={POLICE: db_url})
    upgraded = run(sys.executable, "-m", "nodes.cli", "db", "upgrade",
                   "--config", str(fed.config(POLICE)))
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith("database ")
    assert upgraded.stdout.rstrip().endswith("is at the newest schema")

    engine = engines.create_engine_for(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables
    assert "alembic_version" in tables

    # Idempotent: a second upgrade finds nothing to do.
    again = run(sys.executable, "-m", "nodes.cli", "db", "upgrade",
                "--config", str(fed.config(POLICE)))
    assert again.returncode == 0, again.stderr

    alembic = str(Path(sys.executable).with_name("alembic"))
    checked = run(alembic, "check", env={"BCX_DATABASE_URL": db_url})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr
