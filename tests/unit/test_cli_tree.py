"""The CLI's conventions, enforced over the whole argparse tree (every command, present and
future): each option and argument has help text, each command shows an example, and the
commands that read a node's configuration take ``--config`` defaulting to $BCX_CONFIG."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from nodes.cli.main import build_parser

LISTINGS = [  # commands whose output a script reads: each takes --json
    "directory show", "ledger verify", "ledger entries", "ledger checkpoint",
    "evidence verify", "subscribers import", "reports", "notices", "cases", "appeals",
    "channels", "numbers show", "status", "outbox list",
]


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
         ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk(child, (*path, name))


def commands() -> dict[str, argparse.ArgumentParser]:
    return {" ".join(path): p for path, p in walk(build_parser())}


TREE = commands()


def test_the_tree_is_walked_to_its_leaves() -> None:
    found = TREE
    assert {"pki init", "ledger verify", "evidence export", "numbers show", "completion",
            "outbox retry", "subscribers import"} <= set(found)


@pytest.mark.parametrize("name", sorted(TREE))
def test_every_option_and_argument_has_help(name: str) -> None:
    parser = TREE[name]
    missing = [action.option_strings[0] if action.option_strings else action.dest
               for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction)
               and (not action.help or action.help == argparse.SUPPRESS)]
    assert not missing, f"bcx {name}: no help text for {', '.join(missing)}"


@pytest.mark.parametrize("name", sorted(TREE))
def test_every_command_shows_an_example(name: str) -> None:
    parser = TREE[name]
    epilog = parser.epilog or ""
    assert epilog.startswith("example"), f"bcx {name}: no example in its help"
    assert "\n  bcx " in epilog or "bcx " in epilog.splitlines()[1], \
        f"bcx {name}: the example is not a bcx command line"
    assert isinstance(parser.formatter_class, type)
    assert issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter), \
        f"bcx {name}: the example's line breaks would be reflowed"


@pytest.mark.parametrize("name", LISTINGS)
def test_every_listing_takes_json(name: str) -> None:
    options = {o for a in TREE[name]._actions for o in a.option_strings}
    assert "--json" in options, f"bcx {name} has no --json"


def config_actions() -> list[tuple[str, argparse.Action]]:
    return [(name, a) for name, p in commands().items() for a in p._actions
            if "--config" in a.option_strings]


def test_config_defaults_to_bcx_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BCX_CONFIG", raising=False)
    unset = config_actions()
    assert len(unset) > 20
    # Commands that can run without a node (`report --check`), and the parents of
    # subcommands that take their own --config (`reports show`), leave it optional.
    may_omit = {"report", "reports", "reports show"}
    for name, a in unset:
        if name in may_omit:
            assert not a.required, name
        else:
            assert a.required, f"bcx {name} runs without --config or $BCX_CONFIG"
        assert a.default in (None, argparse.SUPPRESS), name
    monkeypatch.setenv("BCX_CONFIG", "/srv/bcx/node.toml")
    for name, action in config_actions():
        assert not action.required, f"bcx {name} still requires --config"
        if action.default is not argparse.SUPPRESS:
            assert str(action.default) == "/srv/bcx/node.toml", name
