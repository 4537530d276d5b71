"""Each desk's listings, run with the installed `bcx` against node processes.

The office lists escalations and progress reports, a carrier the penalties it received,
a bureau the ID holders carriers reported; each as a table, `--json` or `--csv`, with
the filters a desk needs. One scenario makes something for every listing: a black card
shut down and traced to its outlet, a penalty for the outlet, an ID-concentration
report, a progress report, and a case request to a carrier that is down, escalated.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedharness import make_federation
from procnodes import NodeProcess, start_all, tune, wait_until

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
    ("cucc.fj", Role.CARRIER, "fj"),  # never started: a case request to it goes unanswered
)
SHUT = "+8615959000001"
ID_NUMBER = "350102198805052222"
HOLDER_CARDS = [f"+86159590001{i:02d}" for i in range(6)]


def bcx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BCX, *args], capture_output=True, text=True, timeout=300,
                          check=False)


def ok(*args: str) -> str:
    result = bcx(*args)
    assert result.returncode == 0, f"bcx {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def rows_of(*args: str) -> list[dict[str, object]]:
    return json.loads(ok(*args, "--json"))  # type: ignore[no-any-return]


def csv_of(*args: str) -> list[dict[str, str]]:
    text = ok(*args, "--csv")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


class Desks:
    def __init__(self, configs: dict[str, Path]) -> None:
        self.configs = configs

    def cfg(self, node_id: str) -> str:
        return str(self.configs[node_id])

    def count(self, node_id: str, table: str) -> int:
        url = NodeConfig.from_file(self.configs[node_id]).database_url
        with sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True) as c:
            return int(c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.fixture(scope="module")
def desks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desks]:
    tmp = tmp_path_factory.mktemp("listings")
    fed = make_federation(tmp / "fed", SPECS)
    d = Desks({i: fed.config(i) for i, _, _ in SPECS})
    subs = tmp / "subscribers.csv"
    with subs.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "status", "real_name_state", "province", "outlet_code",
                    "id_number"])
        w.writerow([SHUT, "active", "unregistered", "fj", "FZ-0457", ""])
        w.writerows([n, "active", "registered", "fj", "", ID_NUMBER] for n in HOLDER_CARDS)
    ok("subscribers", "import", str(subs), "--config", d.cfg("cmcc.fj"))
    tune(fed.config("police.fj"), deadlines={"case_hours": 0.0003})  # about one second
    procs = [NodeProcess(fed.config(i), tmp / f"{i}.log") for i, _, _ in SPECS[:4]]
    for p in procs:
        tune(p.config_path, delivery={"backoff_initial_seconds": 0.1,
                                      "backoff_max_seconds": 1.0})
    try:
        start_all(*procs)
        make_one_of_everything(d)
        yield d
    finally:
        for p in procs:
            p.stop_quietly()
        for p in procs:
            print(f"--- {p.log_path.name} ---\n{p.log_tail(15)}")


def make_one_of_everything(d: Desks) -> None:
    ok("report", "--config", d.cfg("police.fj"), SHUT, "--category", "fraud",
       "--case-number", "FZ-2026-0200")
    wait_until(lambda: d.count("bureau.fj", "wf_channel_reports"), timeout=120,
               what="the carrier's channel report")
    [channel] = rows_of("channels", "--config", d.cfg("bureau.fj"))
    ok("penalty", str(channel["channel_report"]), "--config", d.cfg("bureau.fj"),
       "--violation", "sold cards without real-name registration",
       "--measure", "fine and suspension of the outlet's sales code",
       "--legal-basis", "Anti-Telecom and Online Fraud Law art. 38")
    ok("id-report", "--config", d.cfg("cmcc.fj"))
    wait_until(lambda: d.count("cmcc.fj", "wf_penalties") and
               d.count("bureau.fj", "wf_id_holders"), timeout=120,
               what="the penalty at the carrier and the ID holders at the bureau")
    ok("progress", "--config", d.cfg("bureau.fj"))
    ok("ask", "--config", d.cfg("police.fj"), "--carrier", "cucc.fj",
       "--case-number", "FZ-2026-0201", "--authorization", "FZGA-2026-77",
       "--number", SHUT)
    time.sleep(1.5)  # past the case request's deadline
    ok("tick", "--config", d.cfg("police.fj"))
    wait_until(lambda: d.count("office.cn", "wf_escalations") and
               d.count("office.cn", "wf_progress"), timeout=120,
               what="the escalation and the progress report at the office")


def test_the_office_lists_its_escalations_with_filters(desks: Desks) -> None:
    office = desks.cfg("office.cn")
    # The case request, undelivered, may also bring delivery-failure escalations.
    every = rows_of("escalations", "--config", office)
    [e] = [r for r in every if r["kind"] == "overdue_case"]
    assert (e["raised_by"], e["kind"], e["about"]) == ("police.fj", "overdue_case", "cucc.fj")
    assert {r["about"] for r in every} == {"cucc.fj"}
    assert "FZ-2026-0201" in str(e["detail"]) and len(str(e["subject"])) == 32
    assert rows_of("escalations", "--config", office, "--about", "cucc.fj", "--since", "1d",
                   "--kind", "overdue_case") == [e]
    assert rows_of("escalations", "--config", office, "--about", "cmcc.fj") == []
    assert rows_of("escalations", "--config", office, "--kind", "overdue_notice") == []
    assert rows_of("escalations", "--config", office, "--since", "2099-01-01") == []
    [row] = csv_of("escalations", "--config", office, "--kind", "overdue_case")
    assert row["escalation"] == e["escalation"] and row["about"] == "cucc.fj"
    table = ok("escalations", "--config", office)
    assert table.splitlines()[0].split()[:4] == ["escalation", "received", "raised_by", "kind"]


def test_the_office_lists_progress_reports_by_carrier(desks: Desks) -> None:
    office = desks.cfg("office.cn")
    rows = rows_of("progress-reports", "--config", office)
    cmcc = [r for r in rows if r["carrier"] == "cmcc.fj"]
    assert [(r["bureau"], r["province"], r["category"], r["shut_down"]) for r in cmcc] == [
        ("bureau.fj", "fj", "fraud", 1)]
    assert rows_of("progress-reports", "--config", office, "--carrier", "cucc.fj") == []
    assert rows_of("progress-reports", "--config", office, "--bureau", "bureau.gd") == []
    assert [r["shut_down"] for r in csv_of("progress-reports", "--config", office,
                                           "--carrier", "cmcc.fj")] == ["1"]


def test_a_carrier_lists_the_penalties_it_received(desks: Desks) -> None:
    carrier = desks.cfg("cmcc.fj")
    [p] = rows_of("penalties", "--config", carrier)
    assert (p["bureau"], p["carrier"], p["outlet"], p["numbers"]) == (
        "bureau.fj", "cmcc.fj", "FZ-0457", 1)
    assert p["measure"] == "fine and suspension of the outlet's sales code"
    assert rows_of("penalties", "--config", carrier, "--outlet", "XM-0099") == []
    assert rows_of("penalties", "--config", carrier, "--since", "2099-01-01T00:00+00:00") == []
    assert [r["penalty"] for r in csv_of("penalties", "--config", carrier, "--since",
                                         "24h")] == [p["penalty"]]
    # The bureau lists the same penalty as issued, and filters by carrier.
    assert [r["penalty"] for r in rows_of("penalties", "--config", desks.cfg("bureau.fj"),
                                          "--carrier", "cmcc.fj")] == [p["penalty"]]
    assert "FZ-0457" in ok("penalties", "--config", carrier)


def test_the_bureau_lists_id_holders_by_hmac_never_the_id_number(desks: Desks) -> None:
    bureau = desks.cfg("bureau.fj")
    [h] = rows_of("id-holders", "--config", bureau)
    assert (h["carrier"], h["province"], h["cards"], h["outcome"]) == (
        "cmcc.fj", "fj", 6, "confirmed")
    assert len(str(h["id_hmac"])) == 64
    assert rows_of("id-holders", "--config", bureau, "--min-cards", "7") == []
    assert rows_of("id-holders", "--config", bureau, "--carrier", "cucc.fj") == []
    assert rows_of("id-holders", "--config", bureau, "--outcome", "pending") == []
    for output in (ok("id-holders", "--config", bureau), ok("id-holders", "--config", bureau,
                                                            "--csv")):
        # (the table cuts long cells short; --csv and --json carry the whole HMAC)
        assert ID_NUMBER not in output and str(h["id_hmac"])[:32] in output


def test_the_reports_listing_filters_by_case_and_time(desks: Desks) -> None:
    police = desks.cfg("police.fj")
    [r] = rows_of("reports", "--config", police, "--case-number", "FZ-2026-0200")
    assert r["numbers"] == 1 and r["state"] == "fed back"
    assert rows_of("reports", "--config", police, "--case-number", "nope") == []
    assert rows_of("reports", "--config", police, "--since", "2099-01-01") == []


@pytest.mark.parametrize(("args", "message"), [
    (("penalties", "--since", "yesterday"),
     "argument --since: 'yesterday' is neither a date/time"),
    (("id-holders", "--min-cards", "0"), "argument --min-cards: '0' is not a whole number of 1"),
    (("escalations", "--json", "--csv"), "argument --csv: not allowed with argument --json"),
    (("escalations", "--kind", "late"), "argument --kind: invalid choice: 'late'"),
])
def test_a_bad_filter_is_one_line_naming_it(desks: Desks, args: tuple[str, ...],
                                            message: str) -> None:
    result = bcx(*args, "--config", desks.cfg("office.cn"))
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
