"""The options every `bcx` command shares, written once so they read the same everywhere.

Conventions (tests/unit/test_cli_tree.py walks the whole parser and enforces them): every
option has help text saying its format or range, every command shows an example in its
help, ``--config`` defaults to ``$BCX_CONFIG``, and listings take ``--json``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

CONFIG_ENV = "BCX_CONFIG"


def config_option(parser: argparse.ArgumentParser, what: str = "the node's", *,
                  required: bool = True, suppress: bool = False) -> None:
    """``--config NODE.toml``, defaulting to ``$BCX_CONFIG``; required when that is unset
    (unless ``required`` is False: a command that can run without a node). ``suppress``:
    a subcommand's own ``--config`` that leaves its parent's value alone when not given."""
    default = os.environ.get(CONFIG_ENV) or None
    value: object = argparse.SUPPRESS if suppress else (Path(default) if default else None)
    parser.add_argument(
        "--config", type=Path, default=value,
        required=required and not suppress and default is None, metavar="NODE.toml",
        help=f"{what} node.toml (default: ${CONFIG_ENV}"
             + (f", now {default})" if default else ", unset)"))


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of text (errors too, as {\"error\": …})")


def examples(parser: argparse.ArgumentParser, *lines: str) -> argparse.ArgumentParser:
    """Put example command lines at the end of ``parser``'s help."""
    parser.epilog = "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(
        f"  {line}" for line in lines)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser
