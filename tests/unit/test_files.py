"""Which permission bits make a file not private to its owner (keys, databases, evidence)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.files import private_mode_problem

P = Path("/srv/bcx/node.db")

CASES = [
    # st_mode, the problem named (None: private)
    (0o100600, None),
    (0o100400, None),
    (0o100700, None),
    (0o100644, "readable by others (mode 0644)"),
    (0o100640, "readable by others (mode 0640)"),
    (0o100604, "readable by others (mode 0604)"),
    (0o100620, "accessible by others (mode 0620)"),
    (0o100601, "accessible by others (mode 0601)"),
    (0o100610, "accessible by others (mode 0610)"),
]


@pytest.mark.parametrize(("st_mode", "problem"), CASES)
def test_private_mode_problem(st_mode: int, problem: str | None) -> None:
    found = private_mode_problem(P, st_mode)
    if problem is None:
        assert found is None
    else:
        assert found == f"{P} is {problem}; chmod 600 {P}"
