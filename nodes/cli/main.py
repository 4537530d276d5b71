"""The `bcx` command: its parser, assembled from each group's, and how it fails.

The groups: nodes/cli/federation_commands.py (pki, directory, node, db),
ledger_commands.py (ledger, evidence), node_commands.py and report.py (the commands a
desk sends to its running node, built from nodes.registry), listings.py (what the
node's database holds).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import argcomplete
from argcomplete.shell_integration import shellcode

from exchange.errors import ExchangeError
from nodes.cli import federation_commands, ledger_commands, listings, node_commands, render
from nodes.cli.options import examples

log = logging.getLogger("bcx")

Command = Callable[[argparse.Namespace], int]

# Exit statuses: 1 a refused command or bad input, 2 bad usage, 3 a ledger that does not
# verify, 70 a failure bcx did not expect, 130 Ctrl-C, 141 output closed (as SIGPIPE).
EXIT_FAILED, EXIT_USAGE, EXIT_UNEXPECTED, EXIT_INTERRUPTED, EXIT_PIPE = 1, 2, 70, 130, 141


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one JSON object when the command line has --json."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if Parser.json_errors:
            report_error(f"{self.prog}: {message}", as_json=True, code=EXIT_USAGE)
            raise SystemExit(EXIT_USAGE)
        super().error(message)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    Parser.json_errors = "--json" in arguments
    parser = build_parser()
    argcomplete.autocomplete(parser)  # answers the shell and exits when completing
    args = parser.parse_args(arguments)
    render.configure_logging(verbose=args.verbose, service=getattr(args, "service", False))
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE
    try:
        code = int(args.func(args))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`bcx numbers show … | head`): stop quietly, as a Unix
        # tool killed by SIGPIPE does, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:
        line, code = describe_error(e)
        if code == EXIT_UNEXPECTED:
            log.debug("unexpected failure", exc_info=e)
        report_error(line, as_json=getattr(args, "json", False), code=code)
    return code


def describe_error(e: BaseException) -> tuple[str, int]:
    """The one line an operator reads for a failed command, and the exit status."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(e, ExchangeError):
        return str(e), EXIT_FAILED
    if isinstance(e, OSError) and e.strerror is None and e.filename is None:
        return str(e), EXIT_FAILED  # raised by bcx with its own sentence
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        return f"cannot use{where}: {e.strerror or e}", EXIT_FAILED
    if isinstance(e, SQLAlchemyError):
        return f"the node database failed: {render.database_cause(e)}", EXIT_FAILED
    return (f"unexpected failure: {e or type(e).__name__} "
            "(bcx --verbose … shows where)", EXIT_UNEXPECTED)


def report_error(line: str, *, as_json: bool, code: int) -> None:
    """An error on stderr: `bcx: …`, or with --json one object {"error": …, "exit": …}."""
    if as_json:
        print(render.to_json({"error": line, "exit": code}, indent=None), file=sys.stderr)
    else:
        render.err(f"bcx: {line}")


def _version() -> str:
    try:
        return metadata.version("bcx")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="bcx", description="bcx, the black-card intelligence exchange")
    examples(p, "bcx demo --numbers 50", "bcx status --config police.fj/node.toml",
             "bcx COMMAND --help")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="debug logging, and where an unexpected failure happened")
    p.add_argument("--version", action="version", version=f"bcx {_version()}",
                   help="print the installed version and exit")
    sub = p.add_subparsers(metavar="COMMAND")

    for add in (federation_commands.add_pki, federation_commands.add_directory,
                federation_commands.add_node, federation_commands.add_db,
                ledger_commands.add_ledger, ledger_commands.add_evidence,
                node_commands.add_desk_commands, listings.add_listings, add_demo,
                add_completion):
        add(sub)
    return p


def add_demo(sub: Any) -> None:
    a = examples(sub.add_parser("demo", help="run a whole federation on this machine and "
                                             "its scenario"),
                 "bcx demo --numbers 50", "bcx demo --workspace /tmp/bcx-demo --keep")
    a.add_argument("--workspace", type=Path, default=None, metavar="DIR",
                   help="directory for keys, configs and databases (default: a new temp dir)")
    a.add_argument("--numbers", type=int, default=3000, metavar="N",
                   help="numbers the police report, at least 20 (default 3000)")
    a.add_argument("--keep", action="store_true",
                   help="leave the federation running until Ctrl-C")
    a.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="start the federation of a kept workspace (--keep) again")
    a.set_defaults(func=cmd_demo)


def add_completion(sub: Any) -> None:
    a = examples(sub.add_parser("completion", help="print a shell completion script"),
                 'eval "$(bcx completion bash)"    # in ~/.bashrc',
                 'eval "$(bcx completion zsh)"     # in ~/.zshrc')
    a.add_argument("shell", choices=["bash", "zsh"], help="the shell: bash or zsh")
    a.set_defaults(func=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(shellcode(["bcx"], shell=args.shell))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    # Imported here: the demo brings alembic and the numbering data, which every other
    # command (`bcx ledger verify` among them) would otherwise load at start for nothing.
    from nodes import demo

    return demo.cmd_demo(args)


if __name__ == "__main__":
    sys.exit(main())
