"""Operator arguments of the police report command, checked before any work."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("arguments", "error"), [
    ({"numbers_found": "+8615959000001", "category": "fraud", "case_number": "X"},
     r"report: argument numbers_found must be Sequence\[str\], got str"),
    ({"numbers_found": [15959000001], "category": "fraud", "case_number": "X"},
     r"report: argument numbers_found must be Sequence\[str\], got list"),
    ({"numbers_found": ["1"], "category": "fraud", "case_number": "X", "confidence": "90"},
     r"report: argument confidence must be int, got str"),
    ({"numbers_found": ["1"], "category": "fraud", "case_number": "X", "confidence": True},
     r"report: argument confidence must be int, got bool"),
    ({"numbers_found": ["1"], "category": "fraud"}, r"report: missing a required argument: "
     r"'case_number' \(arguments: numbers_found, category, case_number"),
    ({"numbers_found": ["1"], "category": "fraud", "case_number": "X", "bureau_id": "b"},
     r"report: got an unexpected keyword argument 'bureau_id'"),
])
def test_operator_arguments_are_checked_before_any_work(arguments: dict[str, object],
                                                        error: str) -> None:
    import inspect

    from exchange.errors import OperationError
    from nodes import police
    from nodes.agency import check_arguments

    with pytest.raises(OperationError, match=error):
        check_arguments("report", inspect.signature(police.report), dict(arguments))


def test_well_typed_operator_arguments_pass() -> None:
    import inspect

    from nodes import police
    from nodes.agency import check_arguments

    check_arguments("report", inspect.signature(police.report), {
        "numbers_found": ["110"], "category": "fraud", "case_number": "X", "confidence": 90})
