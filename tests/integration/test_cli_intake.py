"""`bcx report --file` and `bcx reports show`, run as a desk runs them, against node processes.

The federation's nodes run as `bcx node run` processes; every command is the installed
`bcx`. The files are what desks have: GBK CSV from Excel on Chinese Windows with a
serial-number column, UTF-8 with a BOM, `phone,name` lists, .xlsx sheets.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from fedharness import make_federation
from procnodes import NodeProcess, report_number, start_all, tune, wait_until

from exchange.config import NodeConfig
from exchange.identity import Role

pytestmark = [pytest.mark.network, pytest.mark.slow]

_INSTALLED = Path(sys.executable).parent / "bcx"
BCX = [str(_INSTALLED)] if _INSTALLED.exists() else [sys.executable, "-m", "nodes.cli"]

SPECS = (
    ("office.cn", Role.OFFICE, "cn"),
    ("police.fj", Role.POLICE, "fj"),
    ("bureau.fj", Role.BUREAU, "fj"),
    ("cmcc.fj", Role.CARRIER, "fj"),
    ("bureau.gd", Role.BUREAU, "gd"),
    ("cmcc.gd", Role.CARRIER, "gd"),
)
BULK = 2500  # numbers of the large file: three messages of at most 1000
ACTIVE = [report_number(i) for i in range(BULK + 20)]
NOT_OURS = report_number(9000)  # a China Mobile Fujian number the carrier does not serve
BJ = "+8613910000001"  # Beijing's: no bureau of Beijing in this federation
GD = [f"+86138025{i:05d}" for i in range(2)]  # Guangdong's: bureau.gd's to act on


def bcx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BCX, *args], capture_output=True, text=True, timeout=300,
                          check=False)


class Desk:
    def __init__(self, fed_dir: Path, configs: dict[str, Path]) -> None:
        self.dir = fed_dir
        self.configs = configs

    def cfg(self, node_id: str) -> str:
        return str(self.configs[node_id])

    def db(self, node_id: str) -> sqlite3.Connection:
        url = NodeConfig.from_file(self.configs[node_id]).database_url
        return sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True)

    def scalar(self, node_id: str, sql: str, *params: object) -> object:
        with self.db(node_id) as conn:
            return conn.execute(sql, params).fetchone()[0]

    def settled(self, rid: str) -> None:
        """Every number of report ``rid`` has its final outcome at the police."""
        wait_until(lambda: self.scalar(
            "police.fj", "SELECT count(*) FROM wf_report_numbers WHERE report_id = ? "
            "AND final = 0", bytes.fromhex(rid)) == 0, timeout=120,
            what=f"final outcomes of report {rid}")

    def police_reports(self) -> int:
        return int(self.scalar("police.fj", "SELECT count(*) FROM wf_reports"))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    tmp = tmp_path_factory.mktemp("intake")
    fed = make_federation(tmp / "fed", SPECS)
    subs = tmp / "subscribers.csv"
    with subs.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "status", "real_name_state", "province"])
        w.writerows([n, "active", "registered", "fj"] for n in ACTIVE)
    imported = bcx("subscribers", "import", str(subs), "--config", str(fed.config("cmcc.fj")))
    assert imported.returncode == 0, imported.stderr
    procs = []
    for node_id, _, _ in SPECS:
        tune(fed.config(node_id), delivery={"backoff_initial_seconds": 0.1,
                                            "backoff_max_seconds": 1.0})
        procs.append(NodeProcess(fed.config(node_id), tmp / f"{node_id}.log"))
    try:
        start_all(*procs)
        yield Desk(tmp, {i: fed.config(i) for i, _, _ in SPECS})
    finally:
        for p in procs:
            p.stop_quietly()
        for p in procs:
            print(f"--- {p.log_path.name} ---\n{p.log_tail(15)}")


def sent_report(out: str) -> tuple[str, int]:
    found = re.search(r"as report ([0-9a-f]{32}) \((\d+) message\(s\)\)", out)
    assert found, out
    return found.group(1), int(found.group(2))


def test_a_gbk_file_with_a_serial_column_is_one_report_and_one_withdrawal(desk: Desk) -> None:
    # The regression: a GBK file was a traceback; `序号,号码,备注` sent 序号, 1, 2; and
    # 2,500 rows became several report ids, each to withdraw on its own.
    numbers = ACTIVE[:BULK]
    text = "序号,号码,备注\r\n" + "".join(
        f"{i},{n.removeprefix('+86')},现场扣押\r\n" for i, n in enumerate(numbers, start=1))
    path = desk.dir / "线索.csv"
    path.write_bytes(text.encode("gbk"))
    before = desk.police_reports()

    checked = bcx("report", "--file", str(path), "--check")  # no node needed to check
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "CSV, GBK/GB18030, comma separated; numbers from column 2 '号码', header on " \
           "line 1" in checked.stdout
    assert f"{BULK} number(s) to report, 0 problem row(s)" in checked.stdout
    assert desk.police_reports() == before  # --check sent nothing

    result = bcx("report", "--config", desk.cfg("police.fj"), "--file", str(path),
                 "--category", "fraud", "--case-number", "FZ-2026-0100")
    assert result.returncode == 0, result.stderr
    rid, parts = sent_report(result.stdout)
    assert parts == 3
    assert desk.police_reports() == before + 1
    desk.settled(rid)

    at_bureau = json.loads(bcx("reports", "--config", desk.cfg("bureau.fj"), "--json",
                               "--case-number", "FZ-2026-0100").stdout)
    assert [(r["report"], r["numbers"]) for r in at_bureau] == [(rid, BULK)]
    shown = json.loads(bcx("reports", "show", rid[:16], "--config", desk.cfg("police.fj"),
                           "--json").stdout)
    assert sorted(r["number"] for r in shown) == sorted(numbers)  # no 序号, no serials
    assert {r["verdict"] for r in shown} == {"shut_down"}

    withdrawn = bcx("withdraw", "--config", desk.cfg("police.fj"), "--report", rid,
                    "--reason", "wrong seizure list")
    assert withdrawn.returncode == 0, withdrawn.stderr
    wait_until(lambda: desk.scalar(
        "cmcc.fj", "SELECT count(*) FROM sub_subscribers WHERE status = 'active' AND "
        f"number IN ({','.join('?' * 50)})", *numbers[-50:]) == 50, timeout=120,
        what="the carrier restoring the last part's numbers")
    bureau_view = json.loads(bcx("reports", "show", rid, "--config", desk.cfg("bureau.fj"),
                                 "--json").stdout)
    assert len(bureau_view) == BULK and {r["verdict"] for r in bureau_view} == {"withdrawn"}


def test_check_prints_problems_by_line_and_a_file_with_problems_is_refused(
        desk: Desk) -> None:
    # The regression: `phone,name` sent the word 'phone' as a number.
    path = desk.dir / "list.csv"
    path.write_text(f"phone,name\n{ACTIVE[BULK]},Li\n序号,Wang\n110,Zhao\n"
                    f"{ACTIVE[BULK]},Li again\n")
    before = desk.police_reports()
    checked = bcx("report", "--config", desk.cfg("police.fj"), "--file", str(path), "--check")
    assert checked.returncode == 1
    assert f"{path}:3: '序号': contains letters" in checked.stdout
    assert f"{path}:4: '110': is an emergency/service number, never actionable" \
        in checked.stdout
    assert f"{path}:5: {ACTIVE[BULK]} again (first on line 2): sent once" in checked.stdout
    assert "1 number(s) to report, 2 problem row(s), 1 duplicate(s): would be refused" \
        in checked.stdout

    refused = bcx("report", "--config", desk.cfg("police.fj"), "--file", str(path),
                  "--category", "fraud", "--case-number", "FZ-2026-0101")
    assert refused.returncode == 1
    assert f"{path}:3: '序号': contains letters" in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        "bcx: 2 row(s) are not numbers (listed above), so nothing was sent: "
        "correct them, or send the 1 valid number(s) with --skip-invalid")
    assert desk.police_reports() == before

    sent = bcx("report", "--config", desk.cfg("police.fj"), "--file", str(path),
               "--category", "fraud", "--case-number", "FZ-2026-0101", "--skip-invalid")
    assert sent.returncode == 0, sent.stderr
    assert "2 row(s) skipped" in sent.stdout and "(skipped)" in sent.stderr
    rid, _ = sent_report(sent.stdout)
    with desk.db("police.fj") as conn:
        lines = conn.execute("SELECT number FROM wf_report_numbers WHERE report_id = ?",
                             (bytes.fromhex(rid),)).fetchall()
    assert lines == [(ACTIVE[BULK],)]


def test_a_bom_csv_and_an_xlsx_sheet_are_read_by_their_header(desk: Desk) -> None:
    bom = desk.dir / "bom.csv"
    bom.write_bytes(f"\ufeff手机号码;备注\n{ACTIVE[BULK + 1]};x\n".encode())
    checked = bcx("report", "--config", desk.cfg("police.fj"), "--file", str(bom), "--check")
    assert checked.returncode == 0, checked.stdout
    assert "CSV, UTF-8 with BOM, semicolon separated; numbers from column 1 '手机号码'" \
        in checked.stdout

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["序号", "姓名", "手机号", "电话"])
    sheet.append([1, "张三", int(ACTIVE[BULK + 2].removeprefix("+86")), "0591-87654321"])
    sheet.append([2, "李四", ACTIVE[BULK + 3], ""])
    path = desk.dir / "名单.xlsx"
    buf = io.BytesIO()
    book.save(buf)
    path.write_bytes(buf.getvalue())
    ambiguous = bcx("report", "--config", desk.cfg("police.fj"), "--file", str(path),
                    "--check")
    assert ambiguous.returncode == 1
    assert ambiguous.stderr.strip() == (
        f"bcx: {path} column 3 '手机号' and column 4 '电话' both name numbers: "
        "choose one with --column")
    sent = bcx("report", "--config", desk.cfg("police.fj"), "--file", str(path),
               "--column", "手机号", "--category", "fraud", "--case-number", "FZ-2026-0102")
    assert sent.returncode == 0, sent.stderr
    rid, parts = sent_report(sent.stdout)
    assert parts == 1 and "reported 2 number(s)" in sent.stdout
    with desk.db("police.fj") as conn:
        lines = conn.execute("SELECT number FROM wf_report_numbers WHERE report_id = ? "
                             "ORDER BY number", (bytes.fromhex(rid),)).fetchall()
    assert lines == [(ACTIVE[BULK + 2],), (ACTIVE[BULK + 3],)]  # numeric cell read exactly


def test_reports_show_gives_each_numbers_verdict_and_rejected_lists_only_those_not_acted_on(
        desk: Desk) -> None:
    first = bcx("report", "--config", desk.cfg("police.fj"), ACTIVE[BULK + 4],
                "--category", "fraud", "--case-number", "FZ-2026-0103")
    rid1, _ = sent_report(first.stdout)
    desk.settled(rid1)
    result = bcx("report", "--config", desk.cfg("police.fj"), ACTIVE[BULK + 4], NOT_OURS, BJ,
                 "--category", "fraud", "--case-number", "FZ-2026-0104")
    assert result.returncode == 0, result.stderr
    rid, _ = sent_report(result.stdout)
    desk.settled(rid)

    table = bcx("reports", "show", rid[:16], "--config", desk.cfg("police.fj"))
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith(f"report {rid} by police.fj to bureau.fj, case "
                                   "FZ-2026-0104 (fraud), 3 number(s)")
    rows = json.loads(bcx("reports", "show", rid, "--config", desk.cfg("police.fj"),
                          "--json").stdout)
    verdicts = {r["number"]: (r["verdict"], r["reason"]) for r in rows}
    assert verdicts[ACTIVE[BULK + 4]] == ("already known (shut_down)", "")
    assert verdicts[NOT_OURS][0] == "not_our_subscriber"
    assert "no other carrier to ask" in verdicts[NOT_OURS][1]
    assert verdicts[BJ][0] == "unroutable" and "no bureau" in verdicts[BJ][1]
    assert all(re.match(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d", r["when"]) for r in rows)

    rejected = bcx("reports", "show", rid, "--config", desk.cfg("police.fj"), "--rejected",
                   "--csv")
    assert rejected.returncode == 0, rejected.stderr
    got = list(csv.DictReader(io.StringIO(rejected.stdout.removeprefix("\ufeff"))))
    assert sorted(r["number"] for r in got) == sorted([NOT_OURS, BJ])


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d.write_bytes(b"\x81\x20\xfe\xff\x00\x80"), "is neither UTF-8 nor GBK/GB18030"),
    (lambda d: d.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64),
     "is an Excel 97-2003 .xls workbook: save it as .xlsx or CSV"),
    (lambda d: d.write_text("name,note\nLi,x\n"), "has no column of numbers"),
])
def test_a_file_that_cannot_be_read_is_one_line_and_sends_nothing(desk: Desk, make: object,
                                                                   message: str) -> None:
    path = desk.dir / "bad.csv"
    make(path)  # type: ignore[operator]
    before = desk.police_reports()
    result = bcx("report", "--config", desk.cfg("police.fj"), "--file", str(path),
                 "--category", "fraud", "--case-number", "FZ-2026-0105")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"bcx: {path} ") and message in line, line
    assert desk.police_reports() == before


def test_reports_show_names_an_unknown_or_short_id(desk: Desk) -> None:
    unknown = bcx("reports", "show", "ab" * 16, "--config", desk.cfg("police.fj"))
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == f"bcx: this node holds no report {'ab' * 16}"
    short = bcx("reports", "show", "abc", "--config", desk.cfg("police.fj"))
    assert short.returncode == 1 and "the first 8 or more" in short.stderr


def test_add_to_makes_later_numbers_parts_of_the_same_report(desk: Desk) -> None:
    a, b, c = ACTIVE[BULK + 5], ACTIVE[BULK + 6], ACTIVE[BULK + 7]
    police = desk.cfg("police.fj")
    rid, _ = sent_report(bcx("report", "--config", police, a, b, "--category", "fraud",
                             "--case-number", "FZ-2026-0106").stdout)
    more = bcx("report", "--config", police, b, c, "--add-to", rid, "--category", "fraud",
               "--case-number", "FZ-2026-0106")
    assert more.returncode == 0, more.stderr
    assert f"reported 1 number(s) to bureau.fj as report {rid} (1 message(s))" in more.stdout
    desk.settled(rid)
    at_bureau = json.loads(bcx("reports", "--config", desk.cfg("bureau.fj"), "--json",
                               "--case-number", "FZ-2026-0106").stdout)
    assert [(r["report"], r["numbers"], r["state"]) for r in at_bureau] == [
        (rid, 3, "fed back")]
    other = bcx("report", "--config", police, c, "--add-to", rid, "--category", "fraud",
                "--case-number", "FZ-2026-0107")
    assert other.returncode == 1
    assert other.stderr.strip() == (
        f"bcx: report: report {rid} is for case FZ-2026-0106 (fraud); its "
        "further parts must be too")


def test_every_forwarded_part_of_a_report_is_acted_on_by_the_other_province(
        desk: Desk) -> None:
    # Each part of a report forwards its other province's numbers under the one report
    # id: the other bureau must take the second forward as more of the report, not as a
    # repeat of the first to drop (its numbers would never get an outcome).
    fj = [report_number(3000 + i) for i in range(999)]  # served by cmcc.fj, not subscribers
    path = desk.dir / "two-provinces.csv"
    path.write_text("号码\n" + "\n".join([GD[0], *fj, GD[1]]) + "\n")
    result = bcx("report", "--config", desk.cfg("police.fj"), "--file", str(path),
                 "--category", "fraud", "--case-number", "FZ-2026-0108")
    assert result.returncode == 0, result.stderr
    rid, parts = sent_report(result.stdout)
    assert parts == 2
    desk.settled(rid)
    rows = json.loads(bcx("reports", "show", rid, "--config", desk.cfg("police.fj"),
                          "--json").stdout)
    got = {r["number"]: (r["verdict"], r["carrier"]) for r in rows if r["number"] in GD}
    assert got == {n: ("not_our_subscriber", "cmcc.gd") for n in GD}
    at_gd = json.loads(bcx("reports", "--config", desk.cfg("bureau.gd"), "--json").stdout)
    assert [(r["report"], r["origin"], r["numbers"]) for r in at_gd] == [(rid, "police.fj", 2)]
