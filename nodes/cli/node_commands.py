"""`bcx`'s commands to the running node, built from the typed commands of nodes.registry.

Each command's options come from its dataclass fields (name, type, help and command-line
form written once, in the registry); this module adds only what is the command line's
own: where the command sits in the tree, its examples, which arguments are message ids
an operator may abbreviate, and the sentence its answer is shown as (``--json`` prints
the answer itself). `bcx report`, which reads files of numbers, is nodes/cli/report.py.
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from exchange.errors import ExchangeError
from nodes import registry
from nodes.cli import options, queries, render
from nodes.cli.admin_client import AdminClient

Answer = Mapping[str, Any]
Run = Callable[[argparse.Namespace], int]


@dataclass(frozen=True, slots=True)
class Desk:
    """How `bcx` offers one registry command. ``name``: its name in the tree when not the
    registry's; ``ids``: arguments holding message ids (name → what the id is), which may
    be abbreviated; ``text``: the answer as a sentence (default: one ``key: value`` line
    each); ``run``: a handler of its own, for a command whose arguments the command line
    does not give as they are (a file to read, numbers to send in batches), with
    ``own_options``: the options of the command line's own it reads, put before the fields'."""

    command: type[registry.Command]
    examples: tuple[str, ...]
    name: str = ""
    ids: Mapping[str, str] = field(default_factory=dict)
    text: Callable[[Answer], str] | None = None
    config_what: str = "the node's"
    config_required: bool = True
    run: Run | None = None
    own_options: Callable[[argparse.ArgumentParser], None] | None = None
    description: str = ""


# --- Options from the fields ---------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: type[registry.Command]) -> None:
    """The command-line options of ``command``'s fields, in field order."""
    for argument in registry.arguments_of(command):
        if argument.cli.hidden:
            continue
        if argument.cli.negation is not None:
            add_choice(parser, argument, argument.cli.negation)
        else:
            parser.add_argument(*option_names(argument), **option_settings(argument))


def option_names(argument: registry.Argument) -> tuple[str, ...]:
    if argument.cli.positional:
        return (argument.name,)
    return (argument.cli.flag or "--" + argument.name.replace("_", "-"),)


def option_settings(argument: registry.Argument) -> dict[str, Any]:
    """argparse's settings for ``argument``: its help, type, default and whether it is
    required, from the field and its command-line form."""
    cli = argument.cli
    default = argument.default if cli.default is registry.FIELD_DEFAULT else cli.default
    required = argument.required if cli.required is None else cli.required
    settings: dict[str, Any] = {"help": argument.help}
    if cli.metavar:
        settings["metavar"] = cli.metavar
    if cli.choices:
        settings["choices"] = list(cli.choices)
    if cli.positional:
        return settings if required else {**settings, "nargs": "?", "default": default}
    settings["dest"] = argument.name
    if argument.type is bool:
        settings["action"] = "store_true"
    elif argument.type == tuple[str, ...]:
        settings["action"] = "append"
    elif argument.type is int:
        settings["type"] = options.whole_number(cli.low, cli.high)
    if required:
        settings["required"] = True
    elif default is not MISSING:
        settings["default"] = list(default) if isinstance(default, tuple) else default
    return settings


def add_choice(parser: argparse.ArgumentParser, argument: registry.Argument,
               negation: tuple[str, str]) -> None:
    """A bool as one required choice between its flag and its opposite (--lift, --uphold)."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(*option_names(argument), dest=argument.name, action="store_true",
                       default=False, help=argument.help)
    flag, help_text = negation
    group.add_argument(flag, dest=argument.name, action="store_false", default=False,
                       help=help_text)


def command_of(desk: Desk, args: argparse.Namespace) -> registry.Command:
    """The command the parsed command line gives (lists as tuples, as fields hold them)."""
    values = {}
    for argument in registry.arguments_of(desk.command):
        if argument.cli.hidden:
            continue
        value = getattr(args, argument.name)
        values[argument.name] = tuple(value) if isinstance(value, list) else value
    return desk.command(**values)


# --- Running them --------------------------------------------------------------------------


def show(args: argparse.Namespace, result: Any, text: str | None = None) -> None:
    """The one output hook of these commands: JSON or text, terminal-safe (render)."""
    if getattr(args, "json", False) or text is None:
        render.out(render.to_json(result))
    else:
        render.out(text)


def send(args: argparse.Namespace, command: registry.Command) -> Any:
    """Run ``command`` on the node ``--config`` names; its answer."""
    with AdminClient(options.node_config(args)) as client:
        return client.call(command.name, **registry.encode(command))


def key_values(result: Answer) -> str:
    return "\n".join(f"{k}: {v}" for k, v in result.items())


def runner(desk: Desk) -> Run:
    """The handler of ``desk``: arguments from the command line, abbreviated ids found in
    the node's ledger, the command sent, its answer shown."""
    def run(args: argparse.Namespace) -> int:
        config = options.node_config(args)
        for name, what in desk.ids.items():
            value = getattr(args, name)
            if value:
                setattr(args, name, queries.expand_message_id(config, value, what=what))
        result = send(args, command_of(desk, args))
        text = desk.text or key_values
        show(args, result, text(result) if isinstance(result, dict) else None)
        return 0
    return run


def add_desk(sub: Any, desk: Desk) -> argparse.ArgumentParser:
    """``desk``'s parser in the subcommands ``sub``: summary, --config, the fields'
    options, --json, examples."""
    summary = desk.command.summary
    p: argparse.ArgumentParser = sub.add_parser(desk.name or desk.command.name, help=summary,
                                                description=desk.description or summary)
    options.config_option(p, desk.config_what, required=desk.config_required)
    options.json_option(p)
    if desk.own_options is not None:
        desk.own_options(p)
    add_arguments(p, desk.command)
    p.set_defaults(func=desk.run or runner(desk))
    return options.examples(p, *desk.examples)


# --- Answers as sentences ------------------------------------------------------------------


def ask_text(r: Answer) -> str:
    return f"case request {r['request_id']} to {r['carrier']}, answer due {r['deadline']}"


def decide_text(r: Answer) -> str:
    return (f"appeal {r['appeal_id']}: {r['outcome']} for {r['number']}; told "
            f"{', '.join(r['informed'])}")


def penalty_text(r: Answer) -> str:
    return f"penalty {r['penalty_id']} to {r['carrier']} for outlet {r['outlet']}"


def channel_text(r: Answer) -> str:
    return f"channel report(s) {', '.join(r['reports'])} to {r['bureau']}"


def requeued_text(r: Answer) -> str:
    if "requeued" in r:
        return f"{r['requeued']} message(s) requeued for {r['recipient']}"
    return f"{r['kind']} {r['message_id']} requeued for {r['recipient']}"


def publish_text(r: Answer) -> str:
    return (f"directory version {r['version']} in force on the office ({r['members']} "
            f"members, expires {r['expires_at']}); members adopt it at their next refresh")


def cmd_directory_refresh(args: argparse.Namespace) -> int:
    config = options.node_config(args)
    result = send(args, registry.DirectoryRefresh())
    if result["outcome"] == "adopted":
        text = (f"{config.node_id}: directory version {result['version']} adopted from "
                f"{result['office']}")
    else:
        text = (f"{config.node_id}: directory version {result['version']} is the newest "
                f"{result['office']} has")
    show(args, result, text)
    return 0


def directory_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE",
                        help="the signed directory (bcx directory build --out)")


def cmd_directory_publish(args: argparse.Namespace) -> int:
    try:
        raw = args.file.read_bytes()
    except OSError as e:
        raise ExchangeError(f"cannot read directory file {args.file}: {e.strerror}") from e
    command = registry.DirectoryPublish(directory=base64.b64encode(raw).decode("ascii"))
    result = send(args, command)
    show(args, result, publish_text(result))
    return 0


# --- The table -----------------------------------------------------------------------------

DESKS: tuple[Desk, ...] = (
    Desk(registry.Withdraw, ids={"report_id": "report"}, examples=(
        "bcx withdraw --config node.toml --report 01a23e93a39e7485b0d2bf0209aa0275 "
        "--reason 'numbers mistyped from the seized phone'",)),
    Desk(registry.Ask, text=ask_text, examples=(
        "bcx ask --config police.fj/node.toml --carrier cmcc.fj --case-number "
        "FZ-2026-0412 --authorization 'FJ-PSB-2026-88' --number +8615959000123 "
        "--question activation_channel",)),
    Desk(registry.AuditRead, examples=(
        "bcx audit-read --config office.cn/node.toml --peer bureau.fj --reason "
        "'inspection order 2026-17' --from 0 --limit 100",)),
    Desk(registry.Appeal, examples=(
        "bcx appeal --config cmcc.fj/node.toml --number +8615959000123 "
        "--grounds 'subscriber registered in person on 2026-03-02'",)),
    Desk(registry.Decide, ids={"appeal_id": "appeal"}, text=decide_text, examples=(
        "bcx decide --config bureau.fj/node.toml 0192f3c4e5a67b8c9d0e1f2a3b4c5d6e "
        "--lift --reasoning 'registration verified in person'",)),
    Desk(registry.Penalty, ids={"channel_report_id": "channel report"}, text=penalty_text,
         examples=(
             "bcx penalty --config bureau.fj/node.toml 0192f3c4e5a67b8c9d0e1f2a3b4c5d6e "
             "--violation 'sold cards without real-name checks' --measure 'fine' "
             "--legal-basis 'Anti-Telecom Fraud Law art. 9'",)),
    Desk(registry.Channel, text=channel_text, examples=(
        "bcx channel --config commerce.fj/node.toml --outlet-name 'Tiantian Phones' "
        "--carrier cmcc.fj --number +8615959000123 --findings 'sold 40 cards "
        "without ID checks'",)),
    Desk(registry.IdReport, examples=("bcx id-report --config cmcc.fj/node.toml",)),
    Desk(registry.Progress, examples=("bcx progress --config bureau.fj/node.toml",)),
    Desk(registry.Tick, examples=("bcx tick --config bureau.fj/node.toml",)),
)

OUTBOX_RETRY = Desk(registry.OutboxRetry, name="retry", ids={"message_id": "message"},
                    text=requeued_text, examples=(
                        "bcx outbox retry 0192f3c4e5a67b8c9d0e1f2a3b4c5d6e --config "
                        "bureau.fj/node.toml",
                        "bcx outbox retry --peer cmcc.fj --config bureau.fj/node.toml"))
DIRECTORY_PUBLISH = Desk(registry.DirectoryPublish, name="publish",
                         config_what="the office's", run=cmd_directory_publish,
                         own_options=directory_file, examples=(
                             "bcx directory publish directory-v2.bin --config "
                             "office.cn/node.toml",))
DIRECTORY_REFRESH = Desk(registry.DirectoryRefresh, name="refresh",
                         run=cmd_directory_refresh, examples=(
                             "bcx directory refresh --config police.fj/node.toml",))


def add_desk_commands(sub: Any) -> None:
    """`bcx report`, `withdraw`, `ask`, … : the commands a desk sends to its node."""
    from nodes.cli.report import REPORT

    for desk in (REPORT, *DESKS):
        add_desk(sub, desk)
