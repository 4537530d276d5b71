"""`bcx report`: numbers from the command line or a desk's file, checked, then sent.

The numbers of one command are one report however many there are: they go to the node
REPORT_BATCH a call (nodes.registry.Report), each call after the first adding parts to
the report the first made.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exchange.config import NodeConfig
from exchange.errors import OperationError
from nodes import intake, registry
from nodes.cli import options, render
from nodes.cli.admin_client import AdminClient
from nodes.cli.node_commands import Desk, show

# Numbers per operator call: one call is one transaction on the node (its parts are
# signed and queued together); a longer list takes further calls that add parts to the
# same report. 50,000 numbers are about 1 MB of JSON, well inside the node's 4 MB limit.
REPORT_BATCH = 50_000

DESCRIPTION = options.paragraphs(
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


def report_sources(p: argparse.ArgumentParser) -> None:
    """The options of `bcx report` that are the command line's own: where the numbers
    come from, and whether to send them."""
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
    config = options.node_config(args)
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
    show(args, result, text)
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
    rid, bureau, parts, done, added = args.report_id, "", [], 0, 0
    with AdminClient(config) as client, render.Progress("reported") as progress:
        for k in range(0, len(found), REPORT_BATCH):
            batch = found[k:k + REPORT_BATCH]
            command = registry.Report(
                numbers_found=tuple(batch), category=args.category,
                case_number=args.case_number, evidence=args.evidence,
                confidence=args.confidence, report_id=rid)
            try:
                result = client.call(command.name, **registry.encode(command))
            except OperationError as e:
                if not rid or rid == args.report_id:
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


REPORT = Desk(registry.Report, run=cmd_report, own_options=report_sources, description=DESCRIPTION,
              config_required=False, examples=(
                  "bcx report --file 线索.csv --check",
                  "bcx report --config node.toml --file 线索.xlsx --column 手机号 "
                  "--category fraud --case-number FZ-2026-0042",
                  "bcx report --config node.toml 15959000001 +86-159-5900-0002 "
                  "--category fraud --case-number FZ-2026-0042"))
