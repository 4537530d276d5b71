"""nodes/registry.py: the operator commands, decoded from JSON and offered on the command
line from one definition each."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.errors import OperationError
from exchange.identity import Role
from nodes import registry
from nodes.cli import node_commands
from nodes.cli.main import build_parser
from nodes.registry import Report


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
    ({"numbers_found": ["1"], "category": 3, "case_number": "X"},
     r"report: argument category must be str, got int"),
    ({"numbers_found": None, "category": "fraud", "case_number": "X"},
     r"report: argument numbers_found must be Sequence\[str\], got NoneType"),
])
def test_operator_arguments_are_checked_before_any_work(arguments: dict[str, object],
                                                        error: str) -> None:
    with pytest.raises(OperationError, match=error):
        registry.decode(Report, dict(arguments))


def test_well_typed_operator_arguments_pass() -> None:
    report = registry.decode(Report, {
        "numbers_found": ["110"], "category": "fraud", "case_number": "X", "confidence": 90})
    assert report == Report(numbers_found=("110",), category="fraud", case_number="X",
                            confidence=90)
    assert report.evidence == "" and report.report_id == ""


@pytest.mark.parametrize(("command", "arguments", "error"), [
    (registry.Decide, {"appeal_id": "a", "lift": 1, "reasoning": "r"},
     r"decide: argument lift must be bool, got int"),
    (registry.AuditRead, {"peer": "p", "reason": "r", "limit": False},
     r"audit-read: argument limit must be int, got bool"),
    (registry.Ask, {"carrier": "c", "case_number": "n", "authorization": "a",
                    "numbers_asked": ["1"], "questions": ["x", 2]},
     r"ask: argument questions must be Sequence\[str\], got list"),
    (registry.Withdraw, {"reason": "r"},
     r"withdraw: missing a required argument: 'report_id' \(arguments: report_id, reason\)"),
    (registry.Withdraw, {"report": "r", "reason": "r", "report_id": "x"},
     r"withdraw: got an unexpected keyword argument 'report'"),
    (registry.DirectoryRefresh, {"now": True}, r"directory-refresh takes no arguments, got now"),
    (registry.Tick, {"b": 1, "a": 2}, r"tick takes no arguments, got a, b"),
])
def test_each_bad_argument_is_named(command: type[registry.Command],
                                    arguments: dict[str, object], error: str) -> None:
    with pytest.raises(OperationError, match=error):
        registry.decode(command, arguments)


def _value(argument: registry.Argument) -> st.SearchStrategy[Any]:
    return {str: st.text(), int: st.integers(min_value=0, max_value=2**53),
            bool: st.booleans(), tuple[str, ...]: st.lists(st.text()).map(tuple),
            }[argument.type]


@st.composite
def commands(draw: st.DrawFn) -> registry.Command:
    kind = draw(st.sampled_from(registry.COMMANDS))
    values = {a.name: draw(_value(a)) for a in registry.arguments_of(kind)
              if a.required or draw(st.booleans())}
    return kind(**values)


@given(commands())
def test_every_command_round_trips_through_json(command: registry.Command) -> None:
    sent = json.loads(json.dumps(registry.encode(command)))
    assert registry.decode(type(command), sent) == command


@given(st.sampled_from(registry.COMMANDS), st.dictionaries(st.text(), st.integers()))
def test_decoding_either_builds_the_command_or_names_the_problem(
        command: type[registry.Command], arguments: dict[str, int]) -> None:
    try:
        registry.decode(command, arguments)
    except OperationError as e:
        assert str(e).startswith(command.name)


def test_the_table_names_each_command_once_with_its_roles() -> None:
    names = [c.name for c in registry.COMMANDS]
    assert len(names) == len(set(names))
    assert {c.name for c in registry.commands_for(Role.POLICE)} == {
        "report", "withdraw", "ask", "tick", "outbox-retry", "directory-refresh",
        "audit-read"}
    assert {c.name for c in registry.commands_for(Role.OFFICE)} == {
        "tick", "outbox-retry", "directory-publish", "directory-refresh", "audit-read"}
    assert {c.name for c in registry.commands_for(Role.BUREAU)} >= {
        "decide", "penalty", "progress"}
    assert {c.name for c in registry.commands_for(Role.CARRIER)} >= {"appeal", "id-report"}
    assert {c.name for c in registry.commands_for(Role.COMMERCE)} >= {
        "report", "withdraw", "channel"}


def _parsers() -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        found[" ".join(path)] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, (*path, name))
    walk(build_parser(), ())
    return found


PARSERS = _parsers()
DESKS = {d.command: d for d in (*node_commands.DESKS, node_commands.OUTBOX_RETRY,
                                node_commands.DIRECTORY_PUBLISH,
                                node_commands.DIRECTORY_REFRESH)}


def _path(command: type[registry.Command]) -> str:
    return {"outbox-retry": "outbox retry", "directory-publish": "directory publish",
            "directory-refresh": "directory refresh"}.get(command.name, command.name)


@pytest.mark.parametrize("command", registry.COMMANDS, ids=lambda c: c.name)
def test_the_command_line_takes_each_field_with_its_help(command: type[registry.Command]
                                                         ) -> None:
    parser = PARSERS[_path(command)]
    assert parser.description is not None
    by_dest = {}
    for action in parser._actions:
        by_dest.setdefault(action.dest, action)
    for argument in registry.arguments_of(command):
        if argument.cli.hidden:
            assert argument.name not in by_dest, argument.name
            continue
        assert by_dest[argument.name].help == argument.help, argument.name


@pytest.mark.parametrize(("line", "command"), [
    ("withdraw --config n.toml --report 01a23e93 --reason mistyped",
     registry.Withdraw(report_id="01a23e93", reason="mistyped")),
    ("decide --config n.toml 0192f3c4 --uphold --reasoning r",
     registry.Decide(appeal_id="0192f3c4", lift=False, reasoning="r")),
    ("decide --config n.toml 0192f3c4 --lift --reasoning r",
     registry.Decide(appeal_id="0192f3c4", lift=True, reasoning="r")),
    ("ask --config n.toml --carrier cmcc.fj --case-number C --authorization A "
     "--number 1 --number 2 --question activation_channel",
     registry.Ask(carrier="cmcc.fj", case_number="C", authorization="A",
                  numbers_asked=("1", "2"), questions=("activation_channel",))),
    ("channel --config n.toml --findings f",
     registry.Channel(outlet_code="", outlet_name="", findings="f")),
    ("audit-read --config n.toml --peer bureau.fj --reason r --from 3",
     registry.AuditRead(peer="bureau.fj", reason="r", start=3)),
    ("outbox retry --config n.toml --peer cmcc.fj", registry.OutboxRetry(peer="cmcc.fj")),
    ("tick --config n.toml", registry.Tick()),
])
def test_a_command_line_gives_its_command(line: str, command: registry.Command) -> None:
    args = build_parser().parse_args(line.split())
    assert node_commands.command_of(DESKS[type(command)], args) == command


@pytest.mark.parametrize(("line", "error"), [
    ("audit-read --config n.toml --peer p --reason r --limit -1", "is not a whole number ≥ 0"),
    ("report --confidence 101 1", "is not a whole number from 0 to 100"),
    ("decide --config n.toml 0192f3c4 --reasoning r", "one of the arguments --lift --uphold"),
])
def test_command_line_values_are_refused_naming_them(line: str, error: str,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(line.split())
    assert error in capsys.readouterr().err


class _NoWork:
    """A node whose transaction must not be entered: arguments are refused before."""

    def __init__(self, role: Role) -> None:
        self.me = type("Me", (), {"role": role})()

    async def run_work(self, fn: Any) -> Any:
        raise AssertionError("work began before the arguments were checked")


def _operations(role: Role) -> dict[str, Any]:
    from types import SimpleNamespace
    from typing import cast

    running = SimpleNamespace(node=_NoWork(role))
    return registry.operations(registry.OperatedNode(cast(Any, running), cast(Any, None)))


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_the_admin_service_gets_each_command_of_the_role(role: Role) -> None:
    assert set(_operations(role)) == {c.name for c in registry.commands_for(role)}


def test_the_admin_service_refuses_bad_arguments_before_any_work() -> None:
    import asyncio

    operation = _operations(Role.POLICE)["report"]
    with pytest.raises(OperationError, match=r"report: argument confidence must be int"):
        asyncio.run(operation({"numbers_found": ["1"], "category": "fraud",
                               "case_number": "X", "confidence": "high"}))
