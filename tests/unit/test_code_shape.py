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


# The codec (messages, envelopes, the directory, ledger entries) and the transport are
# the only modules that speak protobuf; everything else works on the domain values.
PROTOBUF_ALLOWED = ("exchange/messages.py", "exchange/envelope.py", "exchange/identity.py",
                    "exchange/ledger/entries.py", "exchange/transport/", "exchange/wire/")


def imported_modules(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_import_scan_sees_plain_from_and_nested_imports() -> None:
    got = imported_modules("import grpc\nfrom exchange.wire.bcx.v1 import message_pb2\n"
                           "def f():\n    from nodes import agency\n")
    assert {"grpc", "exchange.wire.bcx.v1.message_pb2", "nodes.agency"} <= got


@pytest.mark.parametrize("package", ["exchange", "nodes", "migrations"])
def test_protobuf_stays_in_the_codec_and_the_transport(package: str) -> None:
    speaking = [str(path.relative_to(ROOT)) for path in sorted((ROOT / package).rglob("*.py"))
                if not str(path.relative_to(ROOT)).startswith(PROTOBUF_ALLOWED)
                and any(m.startswith(("google.protobuf", "exchange.wire"))
                        for m in imported_modules(path.read_text(encoding="utf-8")))]
    assert not speaking, "protobuf outside the codec and the transport: " + ", ".join(speaking)


@pytest.mark.parametrize("package", ["exchange", "migrations"])
def test_the_library_never_imports_the_agencies(package: str) -> None:
    reaching = [str(path.relative_to(ROOT)) for path in sorted((ROOT / package).rglob("*.py"))
                if any(m == "nodes" or m.startswith("nodes.")
                       for m in imported_modules(path.read_text(encoding="utf-8")))]
    assert not reaching, "exchange/ or migrations/ importing nodes/: " + ", ".join(reaching)
