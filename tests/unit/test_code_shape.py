"""The size rule of exchange/ and nodes/: no function over 50 lines (generated code aside).

Complexity (at most 12) is ruff's C901 and statements (at most 50) its PLR0915, both in
`make lint`; ruff has no rule for a function's length in lines, so it is checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 50


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[int, str, int]]:
    """(line, name, length) of each function in ``source`` longer than ``limit`` lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                found.append((node.lineno, node.name, length))
    return sorted(found)


def test_the_check_finds_a_long_function_and_passes_a_short_one() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    assert long_functions(f"def long():\n{body}") == [(1, "long", MAX_LINES + 1)]
    assert long_functions(f"async def fits():\n{body[:-len('    x49 = 49')-1]}") == []
    nested = "class C:\n    def m(self):\n" + body.replace("    ", "        ")
    assert long_functions(nested) == [(2, "m", MAX_LINES + 1)]


@pytest.mark.parametrize("package", ["exchange", "nodes"])
def test_no_function_is_over_fifty_lines(package: str) -> None:
    over = [f"{path.relative_to(ROOT)}:{line}: {name} is {length} lines"
            for path in sorted((ROOT / package).rglob("*.py"))
            if "wire" not in path.relative_to(ROOT).parts
            for line, name, length in long_functions(path.read_text(encoding="utf-8"))]
    assert not over, "split these functions (at most 50 lines):\n" + "\n".join(over)
