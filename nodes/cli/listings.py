"""`bcx`'s listings and queries: what a node's database holds, read whether it runs or not.

Tables by default, ``--json`` or ``--csv`` for scripts and spreadsheets, one renderer
(:func:`render_rows`). Each plain listing is a :class:`Listing`: its name, help,
query, options and examples; the few that show more than rows (`reports show`, `cases
--open`, `numbers show`, `status`) have a command of their own.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from exchange import messages
from exchange.config import NodeConfig
from nodes.cli import options, queries, render
from nodes.cli.node_commands import OUTBOX_RETRY, add_desk, show

Rows = list[dict[str, Any]]
Query = Callable[[Connection, NodeConfig, datetime, argparse.Namespace], Rows]


# --- Output -------------------------------------------------------------------------------


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of every row, in the order first seen (rows may differ)."""
    return render.columns_of(rows)


def render_rows(args: argparse.Namespace, rows: Sequence[Mapping[str, Any]]) -> None:
    """A listing as a table, or with --json a JSON list, or with --csv CSV (one place)."""
    if getattr(args, "json", False):
        render.out(render.to_json(list(rows)))
    elif getattr(args, "csv", False):
        cols = columns(rows)
        out = csv.writer(sys.stdout, lineterminator="\n")
        sys.stdout.write("\ufeff")  # Excel reads UTF-8 only after a byte-order mark
        out.writerow(cols)
        for r in rows:
            out.writerow([csv_cell(r.get(c)) for c in cols])
    else:
        render.out(render.table(rows, columns(rows)))


def csv_cell(value: Any) -> str:
    """A CSV cell: times in the display zone, booleans as true/false, terminal-safe text
    (a spreadsheet opens it, but so does `cat`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, datetime):
        return render.when(value)
    return render.sanitize(str(value))


def cmd_list(query: Query) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        cfg = options.node_config(args)
        with queries.open_reader(cfg).connect() as conn:
            rows = query(conn, cfg, datetime.now(UTC), args)
        render_rows(args, rows)
        return 0
    return run


# --- Plain listings -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One option of a listing, as argparse takes it."""

    flags: tuple[str, ...]
    settings: Mapping[str, Any]


def option(*flags: str, **settings: Any) -> Option:
    return Option(flags, settings)


def since() -> Option:
    return option("--since", type=options.since_arg, help=options.SINCE_HELP)


@dataclass(frozen=True, slots=True)
class Listing:
    name: str
    help: str
    query: Query
    examples: tuple[str, ...]
    options: tuple[Option, ...] = ()
    config_required: bool = True


def add_listing(sub: Any, listing: Listing) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(listing.name, help=listing.help,
                                                description=listing.help)
    options.config_option(p, required=listing.config_required)
    options.add_output_flags(p)
    for o in listing.options:
        p.add_argument(*o.flags, **o.settings)
    p.set_defaults(func=cmd_list(listing.query))
    return options.examples(p, *listing.examples)


def _reports(conn: Connection, cfg: NodeConfig, now: datetime, a: argparse.Namespace) -> Rows:
    return queries.report_rows(conn, since=a.since, case_number=a.case_number)


def _notices(conn: Connection, cfg: NodeConfig, now: datetime, a: argparse.Namespace) -> Rows:
    return queries.notice_rows(conn, node_id=cfg.node_id, now=now, overdue_only=a.overdue)


def _appeals(conn: Connection, cfg: NodeConfig, now: datetime, a: argparse.Namespace) -> Rows:
    return queries.appeal_rows(conn, now=now)


def _channels(conn: Connection, cfg: NodeConfig, now: datetime, a: argparse.Namespace
              ) -> Rows:
    return queries.channel_rows(conn)


def _escalations(conn: Connection, cfg: NodeConfig, now: datetime, a: argparse.Namespace
                 ) -> Rows:
    from nodes.office import tables as office

    return office.escalation_rows(conn, since=a.since, about=a.about, kind=a.kind)


def _progress(conn: Connection, cfg: NodeConfig, now: datetime, a: argparse.Namespace
              ) -> Rows:
    from nodes.office import tables as office

    return office.progress_rows(conn, since=a.since, bureau=a.bureau, carrier=a.carrier)


def _penalties(conn: Connection, cfg: NodeConfig, now: datetime, a: argparse.Namespace
               ) -> Rows:
    from nodes.carrier import tables as carrier

    return carrier.penalty_rows(conn, since=a.since, carrier=a.carrier, outlet=a.outlet)


def _id_holders(conn: Connection, cfg: NodeConfig, now: datetime, a: argparse.Namespace
                ) -> Rows:
    from nodes.bureau import tables as bureau

    return bureau.id_holder_rows(conn, since=a.since, carrier=a.carrier,
                                 min_cards=a.min_cards, outcome=a.outcome)


def _outbox(conn: Connection, cfg: NodeConfig, now: datetime, a: argparse.Namespace) -> Rows:
    return queries.outbox_rows(conn, refused_only=a.refused)


REPORTS = Listing(
    "reports", "reports sent or received, and whether each is fed back", _reports,
    ("bcx reports --config node.toml --since 7d",
     "bcx reports show 01938f2a --config node.toml --rejected"),
    (since(), option("--case-number", default="", help="only the reports of this case")),
    config_required=False)

BEFORE_CASES = (
    Listing("notices", "shutdown notices sent (bureau) or received (carrier)", _notices,
            ("bcx notices --config node.toml --overdue --csv",),
            (option("--overdue", action="store_true", help="only those past their deadline"),)),
)

AFTER_CASES = (
    Listing("appeals", "appeals and their decisions", _appeals,
            ("bcx appeals --config node.toml --json",)),
    Listing("channels", "channel reports received (bureau), with penalties", _channels,
            ("bcx channels --config node.toml --csv",)),
    Listing("escalations", "office: escalations received (overdue obligations, forks, "
            "delivery failures)", _escalations,
            ("bcx escalations --config node.toml --since 24h",
             "bcx escalations --config node.toml --about cmcc.fj --csv"),
            (since(), option("--about", default="", metavar="NODE",
                             help="only those about this node (a carrier, bureau or "
                                  "police id)"),
             option("--kind", default="", choices=[k.value for k in messages.EscalationKind],
                    help="only this kind"))),
    Listing("progress-reports", "office: the bureaus' progress reports, one row per "
            "carrier and category", _progress,
            ("bcx progress-reports --config node.toml --since 2026-12-01",
             "bcx progress-reports --config node.toml --carrier cmcc.fj --json"),
            (since(), option("--bureau", default="", metavar="NODE",
                             help="only this bureau's reports"),
             option("--carrier", default="", metavar="NODE",
                    help="only the lines of this carrier"))),
    Listing("penalties", "carrier: penalties received; bureau: penalties issued", _penalties,
            ("bcx penalties --config node.toml --since 30d",
             "bcx penalties --config node.toml --outlet FZ-0457 --csv"),
            (since(), option("--carrier", default="", metavar="NODE",
                             help="only those of this carrier (a bureau's listing)"),
             option("--outlet", default="", metavar="CODE",
                    help="only those about this sales outlet code"))),
    Listing("id-holders", "bureau: ID holders with many cards, as carriers reported them "
            "(keyed HMACs, never ID numbers)", _id_holders,
            ("bcx id-holders --config node.toml --carrier cmcc.fj",
             "bcx id-holders --config node.toml --min-cards 10 --since 7d --csv"),
            (since(), option("--carrier", default="", metavar="NODE",
                             help="only those this carrier reported"),
             option("--min-cards", type=options.whole_number(1), default=0, metavar="N",
                    help="only holders with at least N cards (a whole number, 1 or more)"),
             option("--outcome", default="",
                    choices=[o.value for o in messages.VerificationOutcome],
                    help="only holders with this verification outcome"))),
)


# --- Listings with more than rows ---------------------------------------------------------


def cmd_report_show(args: argparse.Namespace) -> int:
    from nodes.police.tables import report_view

    cfg = options.node_config(args)
    with queries.open_reader(cfg).connect() as conn:
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
             render.table(view["lines"], columns(view["lines"]))]
    render.out("\n".join(lines))
    return 0


def cmd_cases(args: argparse.Namespace) -> int:
    cfg = options.node_config(args)
    if args.open:
        from nodes.agency import make_node
        from nodes.police.tables import open_case_answer
        from nodes.shared.arguments import message_id_arg

        node = make_node(cfg)
        try:
            request = queries.expand_message_id(cfg, args.open, what="case request")
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
        show(args, {"note": answer.note, "records": records},
               f"{answer.note}\n{render.table(records)}")
        return 0
    with queries.open_reader(cfg).connect() as conn:
        rows = queries.case_rows(conn, now=datetime.now(UTC))
    show(args, rows, render.table(rows))
    return 0


def cmd_number_show(args: argparse.Namespace) -> int:
    from exchange import numbers

    cfg = options.node_config(args)
    number = numbers.normalise(args.number)
    with queries.open_reader(cfg).connect() as conn:
        h = queries.number_history(conn, number)
    lines = [f"{number}"]
    if h["case"]:
        c = h["case"]
        lines.append(f"  in this province: {c['status']} at {c['carrier']} {c['detail']}".rstrip())
    if h["subscriber"]:
        lines.append(f"  subscriber line: {h['subscriber']['status']}")
    lines += ["", "history:", render.table(h["history"]), "",
              "ledger entries:", render.table(h["ledger"])]
    show(args, h, "\n".join(lines))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = options.node_config(args)
    with queries.open_reader(cfg).connect() as conn:
        s = queries.status_summary(conn, node_id=cfg.node_id, now=datetime.now(UTC))
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
    show(args, s, "\n".join(lines))
    return 0


def cmd_subscribers_import(args: argparse.Namespace) -> int:
    from exchange import migrate
    from exchange.storage import engines
    from nodes.carrier.subscribers import import_csv

    cfg = options.node_config(args)
    engine = engines.create_engine_for(cfg.database_url)
    migrate.upgrade(engine)
    with render.Progress("imported rows:") as shown:
        result = import_csv(engine, args.file, progress=shown.update)
    show(args, {"node": cfg.node_id, "imported": result.rows, "added": result.added,
                  "already_present": result.rows - result.added,
                  "longest_write_seconds": round(result.longest_write, 3)},
           f"imported {result.rows} subscriber row(s) into {cfg.node_id}: {result.added} "
           f"new, {result.rows - result.added} already present; longest write "
           f"{result.longest_write:.3f}s")
    return 0


# --- The parsers --------------------------------------------------------------------------


def add_reports(sub: Any) -> None:
    """`bcx reports`, and `bcx reports show` for one report's numbers."""
    p = add_listing(sub, REPORTS)
    actions = p.add_subparsers(metavar="ACTION")
    one = actions.add_parser(
        "show", help="one report: the bureau's verdict on each number, and when",
        description=options.paragraphs(
            "One report and, per number, what the bureau did with it (noticed to a "
            "carrier, forwarded to another province, already known, rejected with the "
            "reason, unroutable) and the carrier's outcome (shut down, already inactive, "
            "not our subscriber, refused), with the time of the last word on it."))
    options.examples(one, "bcx reports show 01938f2a5c7e7c1d --config node.toml",
                     "bcx reports show 01938f2a --config node.toml --rejected --csv")
    one.add_argument("report_id", metavar="REPORT_ID",
                     help="the report's id: 32 hex digits, or its first 8 or more")
    one.add_argument("--rejected", action="store_true",
                     help="only numbers nobody acted on: rejected, unroutable, refused, "
                          "not our subscriber")
    options.config_option(one, suppress=True)
    options.add_output_flags(one, suppress=True)
    one.set_defaults(func=cmd_report_show)


def add_cases(sub: Any) -> None:
    p = sub.add_parser("cases", help="case-cooperation requests, and opening an answer",
                       description="case-cooperation requests, and opening an answer")
    options.config_option(p)
    options.json_option(p)
    p.add_argument("--open", metavar="REQUEST_ID",
                   help="open the sealed answer to this request: 32 hex digits or a unique "
                        "prefix of 8+ (police only)")
    p.set_defaults(func=cmd_cases)
    options.examples(p, "bcx cases --config police.fj/node.toml",
                     "bcx cases --config police.fj/node.toml --open "
                     "0192f3c4e5a67b8c9d0e1f2a3b4c5d6e")


def add_numbers(sub: Any) -> None:
    num = options.examples(sub.add_parser("numbers", help="one number's history"),
                           "bcx numbers show +8615959000123 --config bureau.fj/node.toml")
    actions = num.add_subparsers(metavar="ACTION")
    p = options.examples(
        actions.add_parser("show", help="a number's whole history, with ledger indexes"),
        "bcx numbers show +8615959000123 --config bureau.fj/node.toml",
        "bcx numbers show 159-5900-0123 --config bureau.fj/node.toml --json")
    p.add_argument("number", metavar="NUMBER",
                   help="the number: +86…, 0086…, 86… or 11 digits, spaces and dashes allowed")
    options.config_option(p)
    options.json_option(p)
    p.set_defaults(func=cmd_number_show)


def add_status(sub: Any) -> None:
    p = sub.add_parser("status", help="counts, and what is overdue",
                       description="counts, and what is overdue")
    options.config_option(p)
    options.json_option(p)
    p.set_defaults(func=cmd_status)
    options.examples(p, "bcx status --config bureau.fj/node.toml")


def add_outbox(sub: Any) -> None:
    """`bcx outbox list`, and `bcx outbox retry` (a command to the running node)."""
    ob = options.examples(
        sub.add_parser("outbox", help="messages not yet delivered, and those refused"),
        "bcx outbox list --config bureau.fj/node.toml --refused")
    actions = ob.add_subparsers(metavar="ACTION")
    p = options.examples(
        actions.add_parser("list", help="queued messages, and those a peer refused for good"),
        "bcx outbox list --config bureau.fj/node.toml",
        "bcx outbox list --config bureau.fj/node.toml --refused --json")
    p.add_argument("--refused", action="store_true", help="only those set aside")
    options.config_option(p)
    options.json_option(p)
    p.set_defaults(func=cmd_list(_outbox))
    add_desk(actions, OUTBOX_RETRY)


def add_subscribers(sub: Any) -> None:
    p = options.examples(
        sub.add_parser("subscribers", help="carrier: the subscriber system's data"),
        "bcx subscribers import subscribers.csv --config cmcc.fj/node.toml")
    actions = p.add_subparsers(metavar="ACTION")
    p = options.examples(
        actions.add_parser(
            "import", help="load subscribers from a CSV file: every row is checked, and "
            "written 5,000 rows a transaction (the running node waits for no longer); rows "
            "already present are skipped, so an import that stopped is run again as it was"),
        "bcx subscribers import subscribers.csv --config cmcc.fj/node.toml")
    p.add_argument("file", type=Path, metavar="FILE.csv",
                   help="the subscriber system's export (UTF-8 CSV with a header row)")
    options.config_option(p)
    options.json_option(p)
    p.set_defaults(func=cmd_subscribers_import)


def add_listings(sub: Any) -> None:
    """Every listing and query of `bcx`, in the order its help shows them."""
    add_reports(sub)
    for listing in BEFORE_CASES:
        add_listing(sub, listing)
    add_cases(sub)
    for listing in AFTER_CASES:
        add_listing(sub, listing)
    add_numbers(sub)
    add_status(sub)
    add_outbox(sub)
    add_subscribers(sub)
