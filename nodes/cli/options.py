"""The options every `bcx` command shares, written once so they read the same everywhere.

Also the values options take (times, whole numbers) and reading the --config it names.

Conventions (tests/unit/test_cli_tree.py walks the whole parser and enforces them): every
option has help text saying its format or range, every command shows an example in its
help, ``--config`` defaults to ``$BCX_CONFIG``, and listings take ``--json``.
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from exchange.config import NodeConfig
from exchange.errors import OperationError
from nodes.cli import render

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


def add_output_flags(p: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """--json and --csv, for a listing (the table is the default)."""
    default: object = argparse.SUPPRESS if suppress else False
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", default=default,
                   help="a JSON list of rows, for scripts")
    g.add_argument("--csv", action="store_true", default=default,
                   help="CSV with a header row (UTF-8 with BOM, which Excel opens as is)")


def paragraphs(text: str) -> str:
    """Help text kept as paragraphs (the formatter does not rewrap it), each wrapped."""
    return "\n\n".join(textwrap.fill(p, 78) for p in text.split("\n\n"))


def node_config(args: argparse.Namespace) -> NodeConfig:
    """The configuration ``--config`` names; from then on times show in its zone."""
    if getattr(args, "config", None) is None:
        raise OperationError("which node? give its node.toml with --config or $BCX_CONFIG")
    return load_config(args.config)


def load_config(path: Path) -> NodeConfig:
    """The node's configuration; from then on times show in its zone (node.timezone)."""
    config = NodeConfig.from_file(path)
    render.set_timezone(config.timezone)
    return config


# --- Values -------------------------------------------------------------------------------


def whole_number(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number within ``low``..``high``, refused naming the input."""
    if high is not None:
        what = f"a whole number from {low or 0} to {high}"
    elif low:
        what = f"a whole number of {low} or more"
    else:
        what = "a whole number ≥ 0"

    def parse(text: str) -> int:
        if not text.strip().isdigit() or (low is not None and int(text) < low) or \
                (high is not None and int(text) > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return int(text)
    parse.__name__ = "whole_number"
    return parse


# A date or time without an offset is Beijing time, as desks read their clocks.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
_SPAN = re.compile(r"([1-9][0-9]*)([mhd])")
SINCE_HELP = ("only those from this time on: a date or time in Beijing time (2026-12-01, "
              "2026-12-01T08:30), one with an offset (2026-12-01T00:00+00:00), or a span "
              "back from now (90m, 24h, 7d)")


def since_arg(text: str) -> datetime:
    """argparse type for --since: an ISO date/time (Beijing time unless it says) or a span."""
    span = _SPAN.fullmatch(text.strip())
    if span:
        n, unit = int(span.group(1)), span.group(2)
        delta = {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}
        return datetime.now(UTC) - delta[unit]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a date/time (2026-12-01, 2026-12-01T08:30) nor a span "
            "(90m, 24h, 7d)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=BEIJING)
