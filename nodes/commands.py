"""Operator commands of `bcx`: what an agency's desk does with its running node.

Every command takes ``--config NODE.toml``. Commands that send or change (report,
withdraw, ask, appeal, decide, penalty, channel, id-report, progress, tick, outbox retry)
go to the running node; the listings (reports, notices, cases, appeals, channels,
numbers show, outbox list, status) read its database. Tables by default, ``--json`` for
scripts.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange import messages
from exchange.config import NodeConfig
from exchange.errors import OperationError
from nodes import cliopts, operator, render

REPORT_BATCH = 5000


def add_commands(sub: Any) -> None:
    def command(name: str, help_text: str, func: Any, *example: str, json_flag: bool = True
                ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        cliopts.config_option(p)
        if json_flag:
            cliopts.json_option(p)
        p.set_defaults(func=func)
        return cliopts.examples(p, *example)

    p = command("report", "police/commerce: report numbers to the bureau", cmd_report,
                "bcx report --config police.fj/node.toml --category fraud "
                "--case-number FZ-2026-0412 +8615959000123 0086-159-5900-0124",
                "bcx report --config police.fj/node.toml --category fraud "
                "--case-number FZ-2026-0412 --file numbers.csv")
    p.add_argument("numbers", nargs="*", metavar="NUMBER",
                   help="numbers as found: +86…, 0086…, 86…, with spaces or dashes")
    p.add_argument("--file", type=Path, metavar="FILE.csv",
                   help="CSV with a 'number' column (or one number per line)")
    p.add_argument("--category", required=True,
                   choices=[c.value for c in messages.Category],
                   help="what the numbers were used for: "
                        + ", ".join(c.value for c in messages.Category))
    p.add_argument("--case-number", required=True, metavar="TEXT",
                   help="the police case number the numbers belong to, e.g. FZ-2026-0412")
    p.add_argument("--evidence", default="", metavar="TEXT",
                   help="evidence summary (no personal data; default empty)")
    p.add_argument("--confidence", type=int, default=80, metavar="0-100",
                   help="how sure the finding is, 0 to 100 (default 80)")

    p = command("withdraw", "police/commerce: retract a report",
                cmd_simple("withdraw", {"report_id": "report"}),
                "bcx withdraw --config police.fj/node.toml --report 0192f3c4e5a67b8c9d0e1f2a"
                "3b4c5d6e --reason 'numbers belong to a different case'")
    p.add_argument("--report", required=True, dest="report_id", metavar="ID",
                   help="the report's id: 32 hex digits or a unique prefix of 8+ (bcx reports)")
    p.add_argument("--reason", required=True, metavar="TEXT",
                   help="why the report was wrong (sent to everyone who acted on it)")

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
                cmd_list(lambda conn, cfg, now, a: operator.report_rows(conn)),
                "bcx reports --config police.fj/node.toml",
                "bcx reports --config police.fj/node.toml --json")
    p = command("notices", "shutdown notices sent (bureau) or received (carrier)",
                cmd_list(lambda conn, cfg, now, a: operator.notice_rows(
                    conn, node_id=cfg.node_id, now=now, overdue_only=a.overdue)),
                "bcx notices --config bureau.fj/node.toml --overdue")
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
            "bcx appeals --config bureau.fj/node.toml")
    command("channels", "channel reports received (bureau), with penalties",
            cmd_list(lambda conn, cfg, now, a: operator.channel_rows(conn)),
            "bcx channels --config bureau.fj/node.toml")
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
        s_sub.add_parser("import", help="load subscribers from a CSV file"),
        "bcx subscribers import subscribers.csv --config cmcc.fj/node.toml")
    p.add_argument("file", type=Path, metavar="FILE.csv",
                   help="the subscriber system's export (UTF-8 CSV with a header row)")
    cliopts.config_option(p)
    cliopts.json_option(p)
    p.set_defaults(func=cmd_subscribers_import)


def _config(args: argparse.Namespace) -> NodeConfig:
    config = NodeConfig.from_file(args.config)
    render.set_timezone(config.timezone)
    return config


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


def cmd_report(args: argparse.Namespace) -> int:
    found = list(args.numbers)
    if args.file:
        found += operator.read_numbers_file(args.file)
    if not found:
        raise OperationError("no numbers: give them as arguments or with --file")
    done, report_ids, bureau = 0, [], ""
    with operator.AdminClient(_config(args)) as client:
        for k in range(0, len(found), REPORT_BATCH):
            part = found[k:k + REPORT_BATCH]
            result = client.call("report", numbers_found=part, category=args.category,
                                 case_number=args.case_number, evidence=args.evidence,
                                 confidence=args.confidence)
            done += len(part)
            report_ids += result["reports"]
            bureau = result["bureau"]
            if len(found) > REPORT_BATCH:
                print(f"\rreported {done}/{len(found)} numbers", end="", file=sys.stderr,
                      flush=True)
    if len(found) > REPORT_BATCH:
        print(file=sys.stderr)
    result = {"bureau": bureau, "numbers": done, "reports": report_ids}
    _print(args, result, f"reported {done} number(s) to {bureau} in {len(report_ids)} "
           f"message(s):\n" + "\n".join(f"  report {r}" for r in report_ids))
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
        _print(args, rows, operator.table(rows))
        return 0
    return run


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
    from exchange import migrate, storage
    from nodes.subscribers import import_csv

    cfg = _config(args)
    engine = storage.create_engine_for(cfg.database_url)
    migrate.upgrade(engine)
    n = import_csv(engine, args.file)
    _print(args, {"node": cfg.node_id, "imported": n},
           f"imported {n} subscriber(s) into {cfg.node_id}")
    return 0
