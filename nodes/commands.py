"""Operator commands of `bcx`: what an agency's desk does with its running node.

Every command takes ``--config NODE.toml``. Commands that send or change (report,
withdraw, ask, appeal, decide, penalty, channel, id-report, progress, tick, outbox retry)
go to the running node; the listings (reports, notices, cases, appeals, channels,
penalties, id-holders, escalations, progress-reports, numbers show, outbox list, status)
read its database. Tables by default, ``--json`` or ``--csv`` for scripts and
spreadsheets (one renderer: ``render_rows``).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from exchange import messages
from exchange.config import NodeConfig
from exchange.errors import OperationError
from nodes import cliopts, intake, operator, render

# Numbers per operator call: one call is one transaction on the node (its parts are
# signed and queued together); a longer list takes further calls that add parts to the
# same report. 50,000 numbers are about 1 MB of JSON, well inside the node's 4 MB limit.
REPORT_BATCH = 50_000

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


def _paragraphs(text: str) -> str:
    """Help text kept as paragraphs (the formatter does not rewrap it), each wrapped."""
    return "\n\n".join(textwrap.fill(p, 78) for p in text.split("\n\n"))


def add_commands(sub: Any) -> None:
    def command(name: str, help_text: str, func: Any, *example_lines: str,
                json_flag: bool = True, example: Sequence[str] = (), listing: bool = False,
                config_required: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text,
                                                    description=help_text)
        cliopts.config_option(p, required=config_required)
        if listing:
            add_output_flags(p)
        elif json_flag:
            cliopts.json_option(p)
        example = (*example_lines, *example)
        p.set_defaults(func=func)
        return cliopts.examples(p, *example)

    p = command("report", "police/commerce: report numbers to the bureau, as one report",
                cmd_report, config_required=False, example=(
                    "bcx report --file 线索.csv --check",
                    "bcx report --config node.toml --file 线索.xlsx --column 手机号 "
                    "--category fraud --case-number FZ-2026-0042",
                    "bcx report --config node.toml 15959000001 +86-159-5900-0002 "
                    "--category fraud --case-number FZ-2026-0042"))
    p.description = _paragraphs(
        "Report numbers to the province's bureau. The numbers of one command are one "
        "report with one id, however many: `bcx withdraw --report ID` retracts all of "
        "them.\n\n"
        "--file reads CSV (comma, tab or semicolon separated; UTF-8 with or without BOM, "
        "or GBK/GB18030 as Excel saves it on Chinese Windows) or .xlsx (the first sheet). "
        "A first row naming the column (号码, 手机号, 手机号码, 电话号码, 电话, number, "
        "phone, mobile, msisdn, tel, …) is the header; without one, the only column "
        "holding numbers is read.\n\n"
        "A row whose cell is not a mainland mobile number (a header, a serial number, a "
        "name, 110…) is a problem, printed as FILE:LINE: reason, and is never sent. With "
        "problems the report is refused (nothing is sent) unless --skip-invalid; a "
        "number given twice is sent once.\n\n"
        "--check reads and validates only, sending nothing (and needs no --config): "
        "it exits 0 when the report "
        "would be sent as it is, 1 when it would be refused (any problem; with "
        "--skip-invalid: no valid number at all).")
    p.add_argument("numbers", nargs="*",
                   help="numbers as found: 15959000001, +86 159 5900 0001, 0086…")
    p.add_argument("--file", type=Path,
                   help="a CSV, TSV or .xlsx list of numbers (see above)")
    p.add_argument("--column", metavar="NAME|N",
                   help="the file's column of numbers: its header name (号码) or its "
                        "position, 1 for the first (default: found from the header)")
    p.add_argument("--check", action="store_true",
                   help="validate and print the problems by line; send nothing")
    p.add_argument("--skip-invalid", action="store_true",
                   help="send the valid numbers although some rows are problems")
    p.add_argument("--add-to", metavar="REPORT_ID", default="",
                   help="add the numbers to an earlier report of this node (same case and "
                        "category; numbers it holds already are skipped)")
    p.add_argument("--category", choices=[c.value for c in messages.Category],
                   help="what the numbers were used for (needed to send)")
    p.add_argument("--case-number", help="the case the numbers belong to (needed to send)")
    p.add_argument("--evidence", default="",
                   help="evidence summary, free text without personal data")
    p.add_argument("--confidence", type=_percent, default=80,
                   help="how sure the finding is, 0-100 (default 80)")

    p = command("withdraw", "police/commerce: retract a report, every number and part of it",
                cmd_simple("withdraw", {"report_id": "report"}), example=(
                    "bcx withdraw --config node.toml --report 01a23e93a39e7485b0d2bf0209aa0275 "
                    "--reason 'numbers mistyped from the seized phone'",))
    p.add_argument("--report", required=True, dest="report_id", metavar="REPORT_ID",
                   help="the report's id: 32 hex digits or a unique prefix of 8+ (bcx reports)")
    p.add_argument("--reason", required=True,
                   help="why, in a sentence: the bureau and carriers log it")

    p = command("ask", "police: ask a carrier for case cooperation", cmd_ask,
                "bcx ask --config police.fj/node.toml --carrier cmcc.fj --case-number "
                "FZ-2026-0412 --authorization 'FJ-PSB-2026-88' --number +8615959000123 "
                "--question activation_channel")
    p.add_argument("--carrier", required=True, metavar="ID",
                   help="node id of the carrier asked, e.g. cmcc.fj")
    p.add_argument("--case-number", required=True, metavar="TEXT",
                   help="the police case number, e.g. FZ-2026-0412")
    p.add_argument("--authorization", required=True, metavar="TEXT",
                   help="legal authorization reference for the request")
    p.add_argument("--number", action="append", required=True, dest="numbers_asked",
                   metavar="NUMBER", help="a number asked about (+86…); repeat for more")
    p.add_argument("--question", action="append", default=[], dest="questions",
                   choices=[q.value for q in messages.CaseQuestion],
                   help="what is asked, repeatable: "
                        + ", ".join(q.value for q in messages.CaseQuestion)
                        + " (default: all)")

    p = command("audit-read", "auditor: read a peer's ledger beyond this node's own entries; "
                "the reason is logged on both ledgers, and the peer serves only members its "
                "[ledger] audit_readers lists", cmd_simple("audit-read"),
                "bcx audit-read --config office.cn/node.toml --peer bureau.fj --reason "
                "'inspection order 2026-17' --from 0 --limit 100")
    p.add_argument("--peer", required=True, metavar="ID",
                   help="node id of the peer whose ledger to read, e.g. bureau.fj")
    p.add_argument("--reason", required=True, metavar="TEXT",
                   help="why the read is needed (kept in both ledgers)")
    p.add_argument("--from", dest="start", type=_count_arg, default=0, metavar="INDEX",
                   help="first leaf index, a whole number ≥ 0 (default 0)")
    p.add_argument("--limit", type=_count_arg, default=100, metavar="N",
                   help="entries at most, a whole number ≥ 0 (default 100; a page also stops "
                        "at the peer's byte limit)")

    p = command("appeal", "carrier: a subscriber contests a shutdown", cmd_simple("appeal"),
                "bcx appeal --config cmcc.fj/node.toml --number +8615959000123 "
                "--grounds 'subscriber registered in person on 2026-03-02'")
    p.add_argument("--number", required=True, metavar="NUMBER",
                   help="the number whose shutdown is contested (+86…)")
    p.add_argument("--grounds", required=True, metavar="TEXT",
                   help="the subscriber's grounds (no ID numbers)")

    p = command("decide", "bureau: decide an appeal", cmd_decide,
                "bcx decide --config bureau.fj/node.toml 0192f3c4e5a67b8c9d0e1f2a3b4c5d6e "
                "--lift --reasoning 'registration verified in person'")
    p.add_argument("appeal_id", metavar="APPEAL_ID",
                   help="the appeal's id: 32 hex digits or a unique prefix of 8+ (bcx appeals)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--lift", action="store_true", help="lift the shutdown, restore service")
    g.add_argument("--uphold", action="store_true", help="keep the line shut down")
    p.add_argument("--reasoning", required=True, metavar="TEXT",
                   help="the reasoning sent to the carrier and the police")

    p = command("penalty", "bureau: hold a carrier accountable for an outlet", cmd_penalty,
                "bcx penalty --config bureau.fj/node.toml 0192f3c4e5a67b8c9d0e1f2a3b4c5d6e "
                "--violation 'sold cards without real-name checks' --measure 'fine' "
                "--legal-basis 'Anti-Telecom Fraud Law art. 9'")
    p.add_argument("channel_report_id", metavar="CHANNEL_REPORT_ID",
                   help="the channel report's id: 32 hex digits or a unique prefix of 8+ "
                        "(bcx channels)")
    p.add_argument("--violation", required=True, metavar="TEXT",
                   help="what the carrier's outlet did wrong")
    p.add_argument("--measure", required=True, metavar="TEXT",
                   help="the measure decided, e.g. a fine or a rectification order")
    p.add_argument("--legal-basis", required=True, metavar="TEXT",
                   help="the provision the decision rests on")

    p = command("channel", "commerce: report a vendor selling unregistered cards",
                cmd_channel,
                "bcx channel --config commerce.fj/node.toml --outlet-name 'Tiantian Phones' "
                "--carrier cmcc.fj --number +8615959000123 --findings 'sold 40 cards "
                "without ID checks'")
    p.add_argument("--outlet-code", default="", metavar="CODE",
                   help="the carrier's code of the outlet, if known (default empty)")
    p.add_argument("--outlet-name", default="", metavar="TEXT",
                   help="the vendor's trading name (default empty)")
    p.add_argument("--address", default="", metavar="TEXT",
                   help="where the vendor sells (default empty)")
    p.add_argument("--agent", default="", metavar="TEXT",
                   help="the carrier's agent the vendor works for (default empty)")
    p.add_argument("--carrier", default="", metavar="ID",
                   help="node id of the carrier whose cards the vendor sold, e.g. cmcc.fj")
    p.add_argument("--number", action="append", default=[], dest="numbers_seen",
                   metavar="NUMBER", help="a number seen sold there (+86…); repeatable")
    p.add_argument("--findings", required=True, metavar="TEXT",
                   help="what was found (no personal data)")

    command("id-report", "carrier: report ID holders with 5+ cards in the province",
            cmd_simple("id-report"), "bcx id-report --config cmcc.fj/node.toml")
    command("progress", "bureau: send a progress report to the office now",
            cmd_simple("progress"), "bcx progress --config bureau.fj/node.toml")
    command("tick", "check deadlines now (the node also does it on its own)",
            cmd_simple("tick"), "bcx tick --config bureau.fj/node.toml")

    p = command("reports", "reports sent or received, and whether each is fed back",
                cmd_list(lambda conn, cfg, now, a: operator.report_rows(
                    conn, since=a.since, case_number=a.case_number)),
                listing=True, config_required=False,
                example=("bcx reports --config node.toml --since 7d",
                         "bcx reports show 01938f2a --config node.toml --rejected"))
    p.add_argument("--since", type=since_arg, help=SINCE_HELP)
    p.add_argument("--case-number", default="", help="only the reports of this case")
    r_sub = p.add_subparsers(metavar="ACTION")
    show = r_sub.add_parser(
        "show", help="one report: the bureau's verdict on each number, and when",
        description=_paragraphs(
            "One report and, per number, what the bureau did with it (noticed to a "
            "carrier, forwarded to another province, already known, rejected with the "
            "reason, unroutable) and the carrier's outcome (shut down, already inactive, "
            "not our subscriber, refused), with the time of the last word on it."))
    cliopts.examples(show, "bcx reports show 01938f2a5c7e7c1d --config node.toml",
                     "bcx reports show 01938f2a --config node.toml --rejected --csv")
    show.add_argument("report_id", metavar="REPORT_ID",
                      help="the report's id: 32 hex digits, or its first 8 or more")
    show.add_argument("--rejected", action="store_true",
                      help="only numbers nobody acted on: rejected, unroutable, refused, "
                           "not our subscriber")
    cliopts.config_option(show, suppress=True)
    add_output_flags(show, suppress=True)
    show.set_defaults(func=cmd_report_show)
    p = command("notices", "shutdown notices sent (bureau) or received (carrier)",
                cmd_list(lambda conn, cfg, now, a: operator.notice_rows(
                    conn, node_id=cfg.node_id, now=now, overdue_only=a.overdue)),
                listing=True, example=("bcx notices --config node.toml --overdue --csv",))
    p.add_argument("--overdue", action="store_true", help="only those past their deadline")
    p = command("cases", "case-cooperation requests, and opening an answer", cmd_cases,
                "bcx cases --config police.fj/node.toml",
                "bcx cases --config police.fj/node.toml --open "
                "0192f3c4e5a67b8c9d0e1f2a3b4c5d6e")
    p.add_argument("--open", metavar="REQUEST_ID",
                   help="open the sealed answer to this request: 32 hex digits or a unique "
                        "prefix of 8+ (police only)")
    command("appeals", "appeals and their decisions",
            cmd_list(lambda conn, cfg, now, a: operator.appeal_rows(conn, now=now)),
            listing=True, example=("bcx appeals --config node.toml --json",))
    command("channels", "channel reports received (bureau), with penalties",
            cmd_list(lambda conn, cfg, now, a: operator.channel_rows(conn)),
            listing=True, example=("bcx channels --config node.toml --csv",))
    add_listings(command)
    num = cliopts.examples(sub.add_parser("numbers", help="one number's history"),
                           "bcx numbers show +8615959000123 --config bureau.fj/node.toml")
    num_sub = num.add_subparsers(metavar="ACTION")
    p = cliopts.examples(
        num_sub.add_parser("show", help="a number's whole history, with ledger indexes"),
        "bcx numbers show +8615959000123 --config bureau.fj/node.toml",
        "bcx numbers show 159-5900-0123 --config bureau.fj/node.toml --json")
    p.add_argument("number", metavar="NUMBER",
                   help="the number: +86…, 0086…, 86… or 11 digits, spaces and dashes allowed")
    cliopts.config_option(p)
    cliopts.json_option(p)
    p.set_defaults(func=cmd_number_show)
    command("status", "counts, and what is overdue", cmd_status,
            "bcx status --config bureau.fj/node.toml")

    ob = cliopts.examples(
        sub.add_parser("outbox", help="messages not yet delivered, and those refused"),
        "bcx outbox list --config bureau.fj/node.toml --refused")
    ob_sub = ob.add_subparsers(metavar="ACTION")
    p = cliopts.examples(
        ob_sub.add_parser("list", help="queued messages, and those a peer refused for good"),
        "bcx outbox list --config bureau.fj/node.toml",
        "bcx outbox list --config bureau.fj/node.toml --refused --json")
    p.add_argument("--refused", action="store_true", help="only those set aside")
    cliopts.config_option(p)
    cliopts.json_option(p)
    p.set_defaults(func=cmd_list(lambda conn, cfg, now, a: operator.outbox_rows(
        conn, refused_only=a.refused)))
    p = cliopts.examples(
        ob_sub.add_parser("retry", help="requeue a refused message once its cause is fixed"),
        "bcx outbox retry 0192f3c4e5a67b8c9d0e1f2a3b4c5d6e --config bureau.fj/node.toml",
        "bcx outbox retry --peer cmcc.fj --config bureau.fj/node.toml")
    p.add_argument("message_id", nargs="?", default="", metavar="MESSAGE_ID",
                   help="the refused message: 32 hex digits or a unique prefix of 8+ "
                        "(bcx outbox list --refused)")
    p.add_argument("--peer", default="", metavar="ID",
                   help="instead: every message this peer refused, e.g. cmcc.fj")
    cliopts.config_option(p)
    cliopts.json_option(p)
    p.set_defaults(func=cmd_outbox_retry)

    p = cliopts.examples(
        sub.add_parser("subscribers", help="carrier: the subscriber system's data"),
        "bcx subscribers import subscribers.csv --config cmcc.fj/node.toml")
    s_sub = p.add_subparsers(metavar="ACTION")
    p = cliopts.examples(
        s_sub.add_parser(
            "import", help="load subscribers from a CSV file: every row is checked, and "
            "written 5,000 rows a transaction (the running node waits for no longer); rows "
            "already present are skipped, so an import that stopped is run again as it was"),
        "bcx subscribers import subscribers.csv --config cmcc.fj/node.toml")
    p.add_argument("file", type=Path, metavar="FILE.csv",
                   help="the subscriber system's export (UTF-8 CSV with a header row)")
    cliopts.config_option(p)
    cliopts.json_option(p)
    p.set_defaults(func=cmd_subscribers_import)


def _config(args: argparse.Namespace) -> NodeConfig:
    if getattr(args, "config", None) is None:
        raise OperationError("which node? give its node.toml with --config or $BCX_CONFIG")
    config = NodeConfig.from_file(args.config)
    render.set_timezone(config.timezone)
    return config


def _count_arg(text: str) -> int:
    """argparse type: a whole number ≥ 0."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 0")
    return int(text)


def _percent(text: str) -> int:
    """argparse type: a whole number 0-100."""
    if not text.strip().isdigit() or not 0 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to 100")
    return int(text)


def add_output_flags(p: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """--json and --csv, for a listing (the table is the default)."""
    default: Any = argparse.SUPPRESS if suppress else False
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", default=default,
                   help="a JSON list of rows, for scripts")
    g.add_argument("--csv", action="store_true", default=default,
                   help="CSV with a header row (UTF-8 with BOM, which Excel opens as is)")


def add_listings(command: Any) -> None:
    """The desks' listings of what their node received: one shape, one renderer."""
    from nodes import bureau, carrier, office

    p = command("escalations", "office: escalations received (overdue obligations, "
                "forks, delivery failures)",
                cmd_list(lambda conn, cfg, now, a: office.escalation_rows(
                    conn, since=a.since, about=a.about, kind=a.kind)), listing=True,
                example=("bcx escalations --config node.toml --since 24h",
                         "bcx escalations --config node.toml --about cmcc.fj --csv"))
    p.add_argument("--since", type=since_arg, help=SINCE_HELP)
    p.add_argument("--about", default="", metavar="NODE",
                   help="only those about this node (a carrier, bureau or police id)")
    p.add_argument("--kind", default="", choices=[k.value for k in messages.EscalationKind],
                   help="only this kind")

    p = command("progress-reports", "office: the bureaus' progress reports, one row per "
                "carrier and category",
                cmd_list(lambda conn, cfg, now, a: office.progress_rows(
                    conn, since=a.since, bureau=a.bureau, carrier=a.carrier)), listing=True,
                example=("bcx progress-reports --config node.toml --since 2026-12-01",
                         "bcx progress-reports --config node.toml --carrier cmcc.fj --json"))
    p.add_argument("--since", type=since_arg, help=SINCE_HELP)
    p.add_argument("--bureau", default="", metavar="NODE", help="only this bureau's reports")
    p.add_argument("--carrier", default="", metavar="NODE",
                   help="only the lines of this carrier")

    p = command("penalties", "carrier: penalties received; bureau: penalties issued",
                cmd_list(lambda conn, cfg, now, a: carrier.penalty_rows(
                    conn, since=a.since, carrier=a.carrier, outlet=a.outlet)), listing=True,
                example=("bcx penalties --config node.toml --since 30d",
                         "bcx penalties --config node.toml --outlet FZ-0457 --csv"))
    p.add_argument("--since", type=since_arg, help=SINCE_HELP)
    p.add_argument("--carrier", default="", metavar="NODE",
                   help="only those of this carrier (a bureau's listing)")
    p.add_argument("--outlet", default="", metavar="CODE",
                   help="only those about this sales outlet code")

    p = command("id-holders", "bureau: ID holders with many cards, as carriers reported "
                "them (keyed HMACs, never ID numbers)",
                cmd_list(lambda conn, cfg, now, a: bureau.id_holder_rows(
                    conn, since=a.since, carrier=a.carrier, min_cards=a.min_cards,
                    outcome=a.outcome)), listing=True,
                example=("bcx id-holders --config node.toml --carrier cmcc.fj",
                         "bcx id-holders --config node.toml --min-cards 10 --since 7d --csv"))
    p.add_argument("--since", type=since_arg, help=SINCE_HELP)
    p.add_argument("--carrier", default="", metavar="NODE",
                   help="only those this carrier reported")
    p.add_argument("--min-cards", type=_cards, default=0, metavar="N",
                   help="only holders with at least N cards (a whole number, 1 or more)")
    p.add_argument("--outcome", default="",
                   choices=[o.value for o in messages.VerificationOutcome],
                   help="only holders with this verification outcome")


def _cards(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def _print(args: argparse.Namespace, result: Any, text: str | None = None) -> None:
    """The one output hook of these commands: JSON or text, terminal-safe (nodes.render)."""
    if getattr(args, "json", False) or text is None:
        render.out(render.to_json(result))
    else:
        render.out(text)


def _call(args: argparse.Namespace, operation: str, **arguments: Any) -> Any:
    with operator.AdminClient(_config(args)) as client:
        return client.call(operation, **arguments)


def cmd_simple(operation: str, ids: dict[str, str] | None = None) -> Any:
    """An operation whose arguments are the command line's; ``ids``: arguments that are
    message ids (name → what it is), which may be abbreviated."""
    skip = {"config", "json", "func", "verbose", "service"}

    def run(args: argparse.Namespace) -> int:
        arguments = {k: v for k, v in vars(args).items() if k not in skip}
        for name, what in (ids or {}).items():
            arguments[name] = operator.expand_message_id(_config(args), arguments[name],
                                                         what=what)
        result = _call(args, operation, **arguments)
        _print(args, result, "\n".join(f"{k}: {v}" for k, v in result.items())
               if isinstance(result, dict) else None)
        return 0
    return run


def _read_sources(args: argparse.Namespace) -> list[tuple[str, intake.Intake]]:
    """Each source of numbers (the arguments, the file) with what it holds."""
    sources = []
    if args.numbers:
        sources.append(("argument", intake.read_values(args.numbers)))
    if args.file:
        try:
            data = args.file.read_bytes()
        except OSError as e:
            raise OperationError(f"cannot read {args.file}: {e.strerror}") from e
        try:
            sources.append((str(args.file), intake.read_report_file(
                data, name=args.file.name, column=args.column)))
        except intake.IntakeError as e:
            raise intake.IntakeError(f"{args.file} {e}") from None
    elif args.column:
        raise OperationError("--column chooses a column of --file; there is no --file")
    if not sources:
        raise OperationError("no numbers: give them as arguments or with --file")
    return sources


def _problem_lines(sources: Sequence[tuple[str, intake.Intake]]) -> list[str]:
    out = []
    for label, got in sources:
        sep = " " if label == "argument" else ":"
        for p in got.problems:
            shown = f"{p.value!r}: " if p.value else ""
            out.append(f"{label}{sep}{p.line}: {shown}{p.reason}")
    return out


def _duplicate_lines(sources: Sequence[tuple[str, intake.Intake]]) -> list[str]:
    return [f"{label}{' ' if label == 'argument' else ':'}{d.line}: {d.number} again "
            f"(first on line {d.first_line}): sent once"
            for label, got in sources for d in got.duplicates]


def cmd_report(args: argparse.Namespace) -> int:
    sources = _read_sources(args)
    found = list(dict.fromkeys(n for _, got in sources for n in got.numbers))
    problems = _problem_lines(sources)
    if args.check:
        return _report_check(args, sources, found, problems)
    if not args.category or not args.case_number:
        raise OperationError("a report needs --category and --case-number (--check needs "
                             "neither)")
    config = _config(args)
    if problems and not args.skip_invalid:
        for line in problems:
            render.err(line)
        raise OperationError(
            f"{len(problems)} row(s) are not numbers (listed above), so nothing was sent: "
            f"correct them, or send the {len(found)} valid number(s) with --skip-invalid")
    if not found:
        raise OperationError("no numbers to report: every row is a problem (listed above)"
                             if problems else "no numbers to report")
    for line in problems:
        render.err(f"{line} (skipped)")
    result = _send_report(args, config, found)
    result["skipped"] = len(problems)
    text = (f"reported {result['numbers']} number(s) to {result['bureau']} as report "
            f"{result['report']} ({len(result['parts'])} message(s))")
    if problems:
        text += f"; {len(problems)} row(s) skipped"
    _print(args, result, text)
    return 0


def _report_check(args: argparse.Namespace, sources: Sequence[tuple[str, intake.Intake]],
                  found: Sequence[str], problems: Sequence[str]) -> int:
    would_send = bool(found) and (not problems or args.skip_invalid)
    if args.json:
        render.out(render.to_json({"numbers": len(found), "problems": len(problems),
                                   "would_send": would_send,
                                   "sources": [{"file": label, **got.as_dict()}
                                               for label, got in sources]}))
        return 0 if would_send else 1
    for label, got in sources:
        if label != "argument":
            header = f", header on line {got.header_line}" if got.header_line else ""
            render.out(f"{label}: {got.source}; numbers from {got.column}{header}")
    for line in [*problems, *_duplicate_lines(sources)]:
        render.out(line)
    duplicates = sum(len(got.duplicates) for _, got in sources)
    verdict = "would be sent" if would_send else \
        "would be refused: no valid number" if not found else \
        "would be refused (send the valid ones with --skip-invalid)"
    render.out(f"{len(found)} number(s) to report, {len(problems)} problem row(s), "
          f"{duplicates} duplicate(s): {verdict}")
    return 0 if would_send else 1


def _send_report(args: argparse.Namespace, config: NodeConfig, found: Sequence[str]
                 ) -> dict[str, Any]:
    """Send ``found`` as one report, REPORT_BATCH numbers per call to the node."""
    rid, bureau, parts, done, added = args.add_to, "", [], 0, 0
    with operator.AdminClient(config) as client, render.Progress("reported") as progress:
        for k in range(0, len(found), REPORT_BATCH):
            batch = found[k:k + REPORT_BATCH]
            try:
                result = client.call("report", numbers_found=list(batch),
                                     category=args.category, case_number=args.case_number,
                                     evidence=args.evidence, confidence=args.confidence,
                                     report_id=rid)
            except OperationError as e:
                if not rid or rid == args.add_to:
                    raise
                raise OperationError(
                    f"report {rid}: {done} of {len(found)} number(s) sent, then: {e}; send "
                    f"the rest with the same command and --add-to {rid}, or withdraw it "
                    f"with `bcx withdraw --report {rid}`") from None
            rid, bureau = result["report"], result["bureau"]
            parts += result["parts"]
            done += len(batch)
            added += result["numbers"]  # less those the report held already (--add-to)
            if len(found) > REPORT_BATCH:
                progress.update(done, len(found))
    return {"bureau": bureau, "numbers": added, "report": rid, "parts": parts}


def cmd_report_show(args: argparse.Namespace) -> int:
    from nodes.police import report_view

    cfg = _config(args)
    with operator.open_reader(cfg).connect() as conn:
        view = report_view(conn, args.report_id, rejected_only=args.rejected)
    if getattr(args, "json", False) or getattr(args, "csv", False):
        render_rows(args, view["lines"])
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in view["verdicts"].items()) or "none"
    lines = [f"report {view['report']} by {view['origin']} to {view['bureau']}, case "
             f"{view['case']} ({view['category']}), {view['numbers']} number(s), sent "
             f"{render.when(view['sent'])}"
             + (f", withdrawn {render.when(view['withdrawn'])}" if view["withdrawn"] else ""),
             f"verdicts: {counts}", "",
             operator.table(view["lines"], _columns(view["lines"]))]
    render.out("\n".join(lines))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    result = _call(args, "ask", carrier=args.carrier, case_number=args.case_number,
                   authorization=args.authorization, numbers_asked=args.numbers_asked,
                   questions=args.questions)
    _print(args, result, f"case request {result['request_id']} to {result['carrier']}, "
           f"answer due {result['deadline']}")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    appeal_id = operator.expand_message_id(_config(args), args.appeal_id, what="appeal")
    result = _call(args, "decide", appeal_id=appeal_id, lift=args.lift,
                   reasoning=args.reasoning)
    _print(args, result, f"appeal {result['appeal_id']}: {result['outcome']} for "
           f"{result['number']}; told {', '.join(result['informed'])}")
    return 0


def cmd_penalty(args: argparse.Namespace) -> int:
    report_id = operator.expand_message_id(_config(args), args.channel_report_id,
                                           what="channel report")
    result = _call(args, "penalty", channel_report_id=report_id,
                   violation=args.violation, measure=args.measure,
                   legal_basis=args.legal_basis)
    _print(args, result, f"penalty {result['penalty_id']} to {result['carrier']} "
           f"for outlet {result['outlet']}")
    return 0


def cmd_channel(args: argparse.Namespace) -> int:
    result = _call(args, "channel", outlet_code=args.outlet_code, outlet_name=args.outlet_name,
                   address=args.address, agent=args.agent, carrier=args.carrier,
                   numbers_seen=args.numbers_seen, findings=args.findings)
    _print(args, result, f"channel report(s) {', '.join(result['reports'])} to "
           f"{result['bureau']}")
    return 0


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    message_id = operator.expand_message_id(_config(args), args.message_id) \
        if args.message_id else ""
    result = _call(args, "outbox-retry", message_id=message_id, peer=args.peer)
    if args.peer:
        _print(args, result, f"{result['requeued']} message(s) requeued for {args.peer}")
    else:
        _print(args, result, f"{result['kind']} {result['message_id']} requeued for "
               f"{result['recipient']}")
    return 0


def cmd_list(query: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        cfg = _config(args)
        with operator.open_reader(cfg).connect() as conn:
            rows = query(conn, cfg, datetime.now(UTC), args)
        render_rows(args, rows)
        return 0
    return run


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of every row, in the order first seen (rows may differ)."""
    return list(dict.fromkeys(k for r in rows for k in r))


def render_rows(args: argparse.Namespace, rows: Sequence[dict[str, Any]]) -> None:
    """A listing as a table, or with --json a JSON list, or with --csv CSV (one place)."""
    if getattr(args, "json", False):
        render.out(render.to_json(list(rows)))
    elif getattr(args, "csv", False):
        columns = _columns(rows)
        out = csv.writer(sys.stdout, lineterminator="\n")
        sys.stdout.write("\ufeff")  # Excel reads UTF-8 only after a byte-order mark
        out.writerow(columns)
        for r in rows:
            out.writerow([_csv_cell(r.get(c)) for c in columns])
    else:
        render.out(operator.table(rows, _columns(rows)))


def _csv_cell(value: Any) -> str:
    """A CSV cell: times in the display zone, booleans as true/false, terminal-safe text
    (a spreadsheet opens it, but so does `cat`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, datetime):
        return render.when(value)
    return render.sanitize(str(value))


def cmd_cases(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.open:
        from nodes.agency import make_node
        from nodes.police import open_case_answer
        from nodes.workflow import message_id_arg

        node = make_node(cfg)
        try:
            request = operator.expand_message_id(cfg, args.open, what="case request")
            answer = open_case_answer(node, message_id_arg(request, "case request"))
        finally:
            node.engine.dispose()
        records = [{
            "number": r.number, "subscriber": r.subscriber_name, "id_number": r.id_number,
            "registered": r.registered_at.isoformat() if r.registered_at else "",
            "real_name": r.real_name_state.value if r.real_name_state else "not ours",
            "outlet": r.channel.outlet_code if r.channel else "",
            "agent": r.channel.agent if r.channel else "",
            "other_cards": " ".join(r.other_numbers_under_id)} for r in answer.records]
        _print(args, {"note": answer.note, "records": records},
               f"{answer.note}\n{operator.table(records)}")
        return 0
    with operator.open_reader(cfg).connect() as conn:
        rows = operator.case_rows(conn, now=datetime.now(UTC))
    _print(args, rows, operator.table(rows))
    return 0


def cmd_number_show(args: argparse.Namespace) -> int:
    from exchange import numbers

    cfg = _config(args)
    number = numbers.normalise(args.number)
    with operator.open_reader(cfg).connect() as conn:
        h = operator.number_history(conn, number)
    lines = [f"{number}"]
    if h["case"]:
        c = h["case"]
        lines.append(f"  in this province: {c['status']} at {c['carrier']} {c['detail']}".rstrip())
    if h["subscriber"]:
        lines.append(f"  subscriber line: {h['subscriber']['status']}")
    lines += ["", "history:", operator.table(h["history"]), "",
              "ledger entries:", operator.table(h["ledger"])]
    _print(args, h, "\n".join(lines))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _config(args)
    with operator.open_reader(cfg).connect() as conn:
        s = operator.status_summary(conn, node_id=cfg.node_id, now=datetime.now(UTC))
    lines = [f"node {s['node']}: ledger {s['ledger_entries']} entries, sent {s['sent']}, "
             f"received {s['received']}, outbox pending {s['outbox_pending']}",
             f"reports: {s['reports']}; numbers awaiting an outcome: "
             f"{s['numbers_awaiting_outcome']}"]
    if s["reported_numbers_by_status"]:
        lines.append("reported numbers: " + ", ".join(
            f"{k} {v}" for k, v in sorted(s["reported_numbers_by_status"].items())))
    if s["province_numbers_by_status"]:
        lines.append("numbers in this province: " + ", ".join(
            f"{k} {v}" for k, v in sorted(s["province_numbers_by_status"].items())))
    lines.append(f"open notices: {s['notices_open']}; escalations received: "
                 f"{s['escalations_received']}")
    lines.append("overdue: " + ", ".join(f"{k} {v}" for k, v in s["overdue"].items()))
    _print(args, s, "\n".join(lines))
    return 0


def cmd_subscribers_import(args: argparse.Namespace) -> int:
    from exchange import migrate
    from exchange.storage import engines
    from nodes.subscribers import import_csv

    cfg = _config(args)
    engine = engines.create_engine_for(cfg.database_url)
    migrate.upgrade(engine)
    with render.Progress("imported rows:") as shown:
        result = import_csv(engine, args.file, progress=shown.update)
    _print(args, {"node": cfg.node_id, "imported": result.rows, "added": result.added,
                  "already_present": result.rows - result.added,
                  "longest_write_seconds": round(result.longest_write, 3)},
           f"imported {result.rows} subscriber row(s) into {cfg.node_id}: {result.added} "
           f"new, {result.rows - result.added} already present; longest write "
           f"{result.longest_write:.3f}s")
    return 0
