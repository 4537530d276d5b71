"""A plain install works: the wheel alone, in a fresh virtual environment outside the
checkout, migrates and runs a whole federation (`make wheel-check`, run by CI).

The first test is quick and always runs: the migration history is found as installed
package data, not beside the source tree. The wheel check builds, installs (with the
dependencies from the package index) and runs the demo, which takes a minute or two, so
the suite runs it only when asked (BCX_WHEEL_CHECK=1, as `make wheel-check` does).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_migration_history_is_found_as_package_data(tmp_path: Path) -> None:
    # From an unrelated working directory, with nothing of the checkout on the path but
    # the installed packages: the history and its environment are found and a database
    # is brought to the newest schema, with no alembic.ini anywhere.
    script = (
        "from exchange import migrate\n"
        "from exchange.storage import engines\n"
        "from pathlib import Path\n"
        "with migrate.script_location() as loc:\n"
        "    assert (loc / 'env.py').is_file() and (loc / 'versions').is_dir(), loc\n"
        "engine = engines.create_engine_for(engines.sqlite_url(Path('node.db')))\n"
        "migrate.upgrade(engine)\n"
        "with engine.connect() as conn:\n"
        "    print(sorted(migrate.current_revisions(conn)), sorted(migrate.head_revisions()))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    current, head = result.stdout.strip().split("] [")
    assert current + "]" == "[" + head and head != "]"
    assert result.stderr == ""  # no alembic INFO lines


def test_migrations_do_not_import_the_agencies_models(tmp_path: Path) -> None:
    # exchange -> migrations must not reach nodes: upgrading loads no nodes module.
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from exchange import migrate\n"
        "from exchange.storage import engines\n"
        "migrate.upgrade(engines.create_engine_for(engines.sqlite_url(Path('n.db'))))\n"
        "print(sorted(m for m in sys.modules if m == 'nodes' or m.startswith('nodes.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


wheel_check = pytest.mark.skipif(
    os.environ.get("BCX_WHEEL_CHECK") != "1",
    reason="builds and installs the wheel with its dependencies: make wheel-check runs it")


def run(*args: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, check=False, env=env)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.mark.slow
@wheel_check
def test_wheel_installed_in_a_fresh_venv_runs_the_demo(tmp_path_factory: pytest.TempPathFactory
                                                       ) -> None:
    base = tmp_path_factory.mktemp("wheel-check")
    assert ROOT not in base.parents
    dist, venv, cwd = base / "dist", base / "venv", base / "cwd"
    cwd.mkdir()
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist,
        ROOT, cwd=cwd)
    (wheel,) = dist.glob("bcx-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"migrations/env.py", "migrations/script.py.mako",
            "migrations/versions/0001_exchange_tables.py"} <= set(names)
    assert not any(n.startswith("tests/") for n in names)

    python = getattr(sys, "_base_executable", None) or "python3"
    run(python, "-m", "venv", venv, cwd=cwd)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=cwd)

    version = run(venv / "bin" / "bcx", "--version", cwd=cwd).stdout.strip()
    assert version == f"bcx {metadata.version('bcx')}"
    where = run(venv / "bin" / "python", "-c",
                "import exchange, migrations, nodes; "
                "print(exchange.__file__, migrations.__file__, nodes.__file__)",
                cwd=cwd).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where), where

    demo = run(venv / "bin" / "bcx", "demo", "--numbers", "50", "--workspace", base / "ws",
               cwd=cwd, timeout=900)
    assert "demo PASSED" in demo.stdout
    assert not re.search(r"INFO (alembic|sqlalchemy)", demo.stdout + demo.stderr)
