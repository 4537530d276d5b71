"""Operator commands of `bcx`: what an agency's desk does with its running node.

Every command takes ``--config NODE.toml``. Commands that send or change (report,
withdraw, ask, appeal, decide, penalty, channel, id-report, progress, tick, outbox retry)
go to the running node; the listings (reports, notices, cases, appeals, channels,
numbers show, outbox list, status) read its database. Tables by default, ``--json`` for
scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange import messages
from exchange.config import NodeConfig
from exchange.errors import OperationError
from nodes import operator

REPORT_BATCH = 5000


def add_commands(sub: Any) -> None:
    def command(name: str, help_text: str, func: Any, *, json_flag: bool = True
                ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        p.add_argument("--config", required=True, type=Path, help="the node's node.toml")
        if json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)
        return p

    p = command("report", "police/commerce: report numbers to the bureau", cmd_report)
    p.add_argument("numbers", nargs="*", help="numbers as found (+86…, 0086…, spaces…)")
    p.add_argument("--file", type=Path, help="CSV with a 'number' column (or one per line)")
    p.add_argument("--category", required=True,
                   choices=[c.value for c in messages.Category])
    p.add_argument("--case-number", required=True)
    p.add_argument("--evidence", default="", help="evidence summary (no personal data)")
    p.add_argument("--confidence", type=int, default=80)

    p = command("withdraw", "police/commerce: retract a report", cmd_simple("withdraw"))
    p.add_argument("--report", required=True, dest="report_id")
    p.add_argument("--reason", required=True)

    p = command("ask", "police: ask a carrier for case cooperation", cmd_ask)
    p.add_argument("--carrier", required=True)
    p.add_argument("--case-number", required=True)
    p.add_argument("--authorization", required=True, help="legal authorization reference")
    p.add_argument("--number", action="append", required=True, dest="numbers_asked")
    p.add_argument("--question", action="append", default=[], dest="questions",
                   choices=[q.value for q in messages.CaseQuestion])

    p = command("audit-read", "auditor: read a peer's ledger beyond this node's own entries; "
                "the reason is logged on both ledgers, and the peer serves only members its "
                "[ledger] audit_readers lists", cmd_simple("audit-read"))
    p.add_argument("--peer", required=True, help="the node whose ledger to read")
    p.add_argument("--reason", required=True, help="why (kept in both ledgers)")
    p.add_argument("--from", dest="start", type=int, default=0, help="first index")
    p.add_argument("--limit", type=int, default=100, help="at most this many entries")

    p = command("appeal", "carrier: a subscriber contests a shutdown", cmd_simple("appeal"))
    p.add_argument("--number", required=True)
    p.add_argument("--grounds", required=True)

    p = command("decide", "bureau: decide an appeal", cmd_decide)
    p.add_argument("appeal_id")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--lift", action="store_true", help="lift the shutdown, restore service")
    g.add_argument("--uphold", action="store_true")
    p.add_argument("--reasoning", required=True)

    p = command("penalty", "bureau: hold a carrier accountable for an outlet", cmd_penalty)
    p.add_argument("channel_report_id")
    p.add_argument("--violation", required=True)
    p.add_argument("--measure", required=True)
    p.add_argument("--legal-basis", required=True)

    p = command("channel", "commerce: report a vendor selling unregistered cards",
                cmd_channel)
    p.add_argument("--outlet-code", default="")
    p.add_argument("--outlet-name", default="")
    p.add_argument("--address", default="")
    p.add_argument("--agent", default="")
    p.add_argument("--carrier", default="", help="carrier whose cards the vendor sold")
    p.add_argument("--number", action="append", default=[], dest="numbers_seen")
    p.add_argument("--findings", required=True)

    command("id-report", "carrier: report ID holders with 5+ cards in the province",
            cmd_simple("id-report"))
    command("progress", "bureau: send a progress report to the office now",
            cmd_simple("progress"))
    command("tick", "check deadlines now (the node also does it on its own)",
            cmd_simple("tick"))

    p = command("reports", "reports sent or received, and whether each is fed back",
                cmd_list(lambda conn, cfg, now, a: operator.report_rows(conn)))
    p = command("notices", "shutdown notices sent (bureau) or received (carrier)",
                cmd_list(lambda conn, cfg, now, a: operator.notice_rows(
                    conn, node_id=cfg.node_id, now=now, overdue_only=a.overdue)))
    p.add_argument("--overdue", action="store_true", help="only those past their deadline")
    p = command("cases", "case-cooperation requests, and opening an answer", cmd_cases)
    p.add_argument("--open", metavar="REQUEST_ID",
                   help="open the sealed answer to this request (police only)")
    command("appeals", "appeals and their decisions",
            cmd_list(lambda conn, cfg, now, a: operator.appeal_rows(conn, now=now)))
    command("channels", "channel reports received (bureau), with penalties",
            cmd_list(lambda conn, cfg, now, a: operator.channel_rows(conn)))
    num = sub.add_parser("numbers", help="one number's history")
    num_sub = num.add_subparsers(metavar="ACTION")
    p = num_sub.add_parser("show", help="a number's whole history, with ledger indexes")
    p.add_argument("number")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_number_show)
    command("status", "counts, and what is overdue", cmd_status)

    ob = sub.add_parser("outbox", help="messages not yet delivered, and those refused")
    ob_sub = ob.add_subparsers(metavar="ACTION")
    p = ob_sub.add_parser("list", help="queued messages, and those a peer refused for good")
    p.add_argument("--refused", action="store_true", help="only those set aside")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list(lambda conn, cfg, now, a: operator.outbox_rows(
        conn, refused_only=a.refused)))
    p = ob_sub.add_parser("retry", help="requeue a refused message once its cause is fixed")
    p.add_argument("message_id", nargs="?", default="")
    p.add_argument("--peer", default="", help="instead: every message this peer refused")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_outbox_retry)

    p = sub.add_parser("subscribers", help="carrier: the subscriber system's data")
    s_sub = p.add_subparsers(metavar="ACTION")
    p = s_sub.add_parser(
        "import", help="load subscribers from a CSV file: every row is checked first, then "
        "written 5,000 rows a transaction (the running node waits for no longer); rows "
        "already present are skipped, so an import that stopped is run again as it was")
    p.add_argument("file", type=Path)
    p.add_argument("--config", required=True, type=Path)
    p.set_defaults(func=cmd_subscribers_import)


def _config(args: argparse.Namespace) -> NodeConfig:
    return NodeConfig.from_file(args.config)


def _print(args: argparse.Namespace, result: Any, text: str | None = None) -> None:
    if getattr(args, "json", False) or text is None:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(text)


def _call(args: argparse.Namespace, operation: str, **arguments: Any) -> Any:
    with operator.AdminClient(_config(args)) as client:
        return client.call(operation, **arguments)


def cmd_simple(operation: str) -> Any:
    skip = {"config", "json", "func", "verbose"}

    def run(args: argparse.Namespace) -> int:
        arguments = {k: v for k, v in vars(args).items() if k not in skip}
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
    result = _call(args, "decide", appeal_id=args.appeal_id, lift=args.lift,
                   reasoning=args.reasoning)
    _print(args, result, f"appeal {result['appeal_id']}: {result['outcome']} for "
           f"{result['number']}; told {', '.join(result['informed'])}")
    return 0


def cmd_penalty(args: argparse.Namespace) -> int:
    result = _call(args, "penalty", channel_report_id=args.channel_report_id,
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
    result = _call(args, "outbox-retry", message_id=args.message_id, peer=args.peer)
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
            answer = open_case_answer(node, message_id_arg(args.open, "case request"))
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
    result = import_csv(engine, args.file, progress=lambda done: print(
        f"  {done} rows imported", file=sys.stderr, flush=True))
    print(f"imported {result.rows} subscriber row(s) into {cfg.node_id}: {result.added} new, "
          f"{result.rows - result.added} already present; longest write "
          f"{result.longest_write:.3f}s")
    return 0
