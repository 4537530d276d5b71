"""The installed `bcx` as an operator meets it: one clear line for every bad input, output
that is readable and safe on a terminal, and the conventions every command shares.

Each test runs the real command (the venv's `bcx` entry point) against the databases of a
federation the demo ran.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = [pytest.mark.network, pytest.mark.slow]

BCX = Path(sys.executable).with_name("bcx")
LISTINGS = [["reports"], ["notices"], ["cases"], ["appeals"], ["channels"], ["status"],
            ["outbox", "list"], ["numbers", "show", "+8615959000123"], ["ledger", "verify"],
            ["ledger", "entries"], ["ledger", "checkpoint"]]


def bcx(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "BCX_CONFIG"} | (env or {})
    return subprocess.run([str(BCX), *map(str, args)], capture_output=True, text=True,
                          timeout=300, check=False, env=full_env, cwd=cwd)


def one_error_line(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bcx: "), lines[0]
    assert not re.search(r"\b\w+Error\b", lines[0]), lines[0]  # no internal type names
    return lines[0]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = tmp_path_factory.mktemp("fed")
    result = bcx("demo", "--numbers", "50", "--workspace", workspace)
    assert result.returncode == 0 and "demo PASSED" in result.stdout, result.stderr[-2000:]
    return workspace


def config_of(ws: Path, node: str = "bureau.fj") -> Path:
    return ws / node / "node.toml"


def variant(ws: Path, tmp_path: Path, *, database: Path | None = None,
            timezone: str | None = None, node: str = "bureau.fj") -> Path:
    """A copy of a node's node.toml with another database or display zone."""
    text = config_of(ws, node).read_text()
    if database is not None:
        text = re.sub(r'(?m)^url = .*$', f'url = "sqlite:///{database}"', text)
    if timezone is not None:
        text = text.replace('office = "office.cn"\n',
                            f'office = "office.cn"\ntimezone = "{timezone}"\n', 1)
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def message_ids(ws: Path) -> list[str]:
    entries = json.loads(bcx("ledger", "entries", "--config", config_of(ws), "--json",
                             "--limit", "100000").stdout)
    return sorted({e["message_id"] for e in entries if e["message_id"]})


# --- message ids like git's abbreviations ----------------------------------------------


def test_evidence_export_takes_a_unique_prefix_of_eight_hex_digits(ws: Path, tmp_path: Path
                                                                   ) -> None:
    ids = message_ids(ws)
    entries = json.loads(bcx("ledger", "entries", "--config", config_of(ws), "--json",
                             "--limit", "100000").stdout)
    received = next(e["message_id"] for e in entries if e["kind"] == "RECEIVED")
    n = next(n for n in range(8, 33) if sum(i.startswith(received[:n]) for i in ids) == 1)
    out = tmp_path / "ev.json"
    result = bcx("evidence", "export", "--config", config_of(ws), "--message-id",
                 received[:n], "--out", out)
    assert result.returncode == 0, result.stderr
    assert f"evidence for message {received} written" in result.stdout
    assert json.loads(out.read_text())["message_id"] == received
    assert out.stat().st_mode & 0o777 == 0o600


def test_ambiguous_message_id_prefix_names_the_count(ws: Path, tmp_path: Path) -> None:
    counts = Counter(i[:8] for i in message_ids(ws))
    prefix, count = counts.most_common(1)[0]
    assert count > 1  # UUIDv7: ids of one run share their leading (time) digits
    line = one_error_line(bcx("evidence", "export", "--config", config_of(ws),
                              "--message-id", prefix, "--out", tmp_path / "ev.json"))
    assert line == (f"bcx: message id {prefix} is ambiguous: {count} messages in this "
                    "ledger start with it; give more digits")
    assert not (tmp_path / "ev.json").exists()


@pytest.mark.parametrize(("given", "says"), [
    ("01a2", "message id '01a2' is too short: give at least 8 hex digits"),
    ("01a23cb", "message id '01a23cb' is too short: give at least 8 hex digits"),
    ("01a2zz4b", "message id '01a2zz4b' is not hex digits"),
    ("0" * 33, f"message id '{'0' * 33}' is longer than 32 hex digits"),
    ("ffffffff", "this ledger holds no message with id ffffffff"),
])
def test_bad_message_ids_are_one_line(ws: Path, tmp_path: Path, given: str, says: str) -> None:
    line = one_error_line(bcx("evidence", "export", "--config", config_of(ws),
                              "--message-id", given, "--out", tmp_path / "ev.json"))
    assert line == f"bcx: {says}"


def test_operator_commands_take_id_prefixes_too(ws: Path) -> None:
    # The id is resolved in the node's own ledger before the command goes to the node.
    counts = Counter(i[:8] for i in message_ids(ws))
    prefix, count = counts.most_common(1)[0]
    line = one_error_line(bcx("penalty", prefix, "--config", config_of(ws), "--violation",
                              "v", "--measure", "m", "--legal-basis", "b"))
    assert line == (f"bcx: channel report id {prefix} is ambiguous: {count} messages in this "
                    "ledger start with it; give more digits")
    short = one_error_line(bcx("outbox", "retry", "01a2", "--config", config_of(ws)))
    assert short == "bcx: message id '01a2' is too short: give at least 8 hex digits"
    # A unique prefix resolves; the node itself is stopped, which is then the only problem.
    ids = message_ids(ws)
    unique = next(i[:12] for i in ids if sum(j.startswith(i[:12]) for j in ids) == 1)
    stopped = one_error_line(bcx("decide", unique, "--lift", "--reasoning", "r",
                                 "--config", config_of(ws)))
    assert stopped.startswith("bcx: node bureau.fj is not running at ")


def test_evidence_is_not_written_through_a_symbolic_link(ws: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    (tmp_path / "ev.json").symlink_to(target)
    full = message_ids(ws)[-1]
    line = one_error_line(bcx("evidence", "export", "--config", config_of(ws),
                              "--message-id", full, "--out", tmp_path / "ev.json"))
    assert "is a symbolic link already there" in line
    assert target.read_text() == "keep\n"


# --- listings never create or misread a database ---------------------------------------


@pytest.mark.parametrize("listing", LISTINGS, ids=" ".join)
def test_listing_against_a_missing_database_is_one_line_and_creates_nothing(
        ws: Path, tmp_path: Path, listing: list[str]) -> None:
    db = tmp_path / "data" / "node.db"
    config = variant(ws, tmp_path, database=db)
    line = one_error_line(bcx(*listing, "--config", config))
    assert line == (f"bcx: no database at {db}: node bureau.fj has not run with this "
                    f"configuration yet (start it with bcx node run --config {config})")
    assert not db.exists() and not db.parent.exists()


@pytest.mark.parametrize("listing", LISTINGS[:4], ids=" ".join)
def test_listing_against_an_unmigrated_database_is_one_line(ws: Path, tmp_path: Path,
                                                            listing: list[str]) -> None:
    db = tmp_path / "node.db"
    db.touch()  # what a listing of an older bcx left behind
    config = variant(ws, tmp_path, database=db)
    line = one_error_line(bcx(*listing, "--config", config))
    assert line.endswith(f"holds no bcx schema (never migrated): start the node once or "
                         f"run bcx db upgrade --config {config}")
    assert db.stat().st_size == 0


def test_listing_against_an_older_schema_says_to_upgrade(ws: Path, tmp_path: Path) -> None:
    from alembic import command

    from exchange import migrate
    from exchange.storage import engines

    db = tmp_path / "node.db"
    with migrate.script_location() as location:
        command.upgrade(migrate.alembic_config(engines.sqlite_url(db), location), "0002")
    db.chmod(0o600)  # made here, not by a node: as private as a node makes it
    config = variant(ws, tmp_path, database=db)
    line = one_error_line(bcx("reports", "--config", config))
    head = ", ".join(sorted(migrate.head_revisions()))
    assert f"is at schema revision 0002, this bcx reads {head}: run bcx db upgrade" in line
    upgraded = bcx("db", "upgrade", "--config", config)
    assert upgraded.returncode == 0 and upgraded.stderr == ""  # no alembic INFO lines
    assert bcx("reports", "--config", config).stdout.strip() == "(none)"


# --- pipes, errors as JSON, BCX_CONFIG -------------------------------------------------


def test_numbers_show_into_a_closed_pipe_exits_quietly(ws: Path) -> None:
    # `bcx numbers show … | head` where head has gone: no BrokenPipeError traceback.
    proc = subprocess.Popen([str(BCX), "numbers", "show", "+8618959100001", "--config",
                             str(config_of(ws))], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    assert proc.wait(timeout=120) == 128 + signal.SIGPIPE
    assert proc.stderr.read() == b""


def test_with_json_errors_are_json(ws: Path, tmp_path: Path) -> None:
    missing = variant(ws, tmp_path, database=tmp_path / "none.db")
    result = bcx("reports", "--config", missing, "--json")
    assert result.returncode == 1 and result.stdout == ""
    error = json.loads(result.stderr)
    assert error["exit"] == 1 and error["error"].startswith("no database at ")
    usage = bcx("ledger", "entries", "--config", config_of(ws), "--limit", "-3", "--json")
    assert usage.returncode == 2
    assert json.loads(usage.stderr)["error"] == (
        "bcx ledger entries: argument --limit: '-3' is negative")


def test_bcx_config_gives_the_default_config(ws: Path) -> None:
    env = {"BCX_CONFIG": str(config_of(ws, "police.fj"))}
    result = bcx("ledger", "vkey", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("bcx.example/police.fj+")
    explicit = bcx("ledger", "vkey", "--config", config_of(ws), env=env)
    assert explicit.stdout.startswith("bcx.example/bureau.fj+")
    assert "the following arguments are required: --config" in bcx("status").stderr


# --- output ----------------------------------------------------------------------------


def test_ledger_verify_prints_only_its_answer(ws: Path) -> None:
    # No library INFO lines, and no progress line when stderr is not a terminal.
    result = bcx("ledger", "verify", "--config", config_of(ws))
    assert result.returncode == 0
    assert result.stderr == ""
    assert re.fullmatch(r"ledger of bureau\.fj is intact: \d+ entries, \d+ checkpoints "
                        r"verified\n", result.stdout)
    as_json = json.loads(bcx("ledger", "verify", "--config", config_of(ws), "--json").stdout)
    assert as_json["intact"] is True and as_json["node"] == "bureau.fj"


def test_evidence_verify_prints_a_summary_and_json(ws: Path, tmp_path: Path) -> None:
    entries = json.loads(bcx("ledger", "entries", "--config", config_of(ws), "--json",
                             "--limit", "100000").stdout)
    received = next(e for e in entries if e["kind"] == "RECEIVED")
    out = tmp_path / "ev.json"
    assert bcx("evidence", "export", "--config", config_of(ws), "--message-id",
               received["message_id"], "--out", out).returncode == 0
    ca = ws / "pki" / "ca.pem"
    text = bcx("evidence", "verify", out, "--ca", ca)
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0] == f"evidence verifies: message {received['message_id']}"
    assert lines[1] == (f"  from {received['peer']} to bureau.fj, signed by "
                        f"{received['peer']}'s certified key")
    assert lines[2] == f"  digest sha256:{received['message_digest']}"
    assert lines[3].startswith(f"  received by bureau.fj: leaf {received['index']} of the ")
    assert "EvidenceReport(" not in text.stdout
    report = json.loads(bcx("evidence", "verify", out, "--ca", ca, "--json").stdout)
    assert report["verified"] is True
    assert report["leaf_index"] == received["index"]
    assert report["digest"] == received["message_digest"]
    assert report["cosigned_by"]


def test_times_show_in_the_configured_zone_to_the_second(ws: Path, tmp_path: Path) -> None:
    moment = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d([+-]\d\d:\d\d)")
    shanghai = json.loads(bcx("ledger", "entries", "--config", config_of(ws), "--json",
                              "--limit", "3").stdout)
    assert {moment.fullmatch(e["time"]).group(1) for e in shanghai} == {"+08:00"}
    utc = variant(ws, tmp_path, timezone="UTC")
    utc_entries = json.loads(bcx("ledger", "entries", "--config", utc, "--json",
                                 "--limit", "3").stdout)
    assert {moment.fullmatch(e["time"]).group(1) for e in utc_entries} == {"+00:00"}
    notices = bcx("notices", "--config", utc).stdout
    assert moment.search(notices) and "+00:00" in notices
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", notices)  # one precision: seconds
    bad = variant(ws, tmp_path, timezone="Mars/Olympus")
    line = one_error_line(bcx("reports", "--config", bad))
    assert "node.timezone must be an IANA zone name like Asia/Shanghai or UTC, got " \
           "'Mars/Olympus'" in line


def test_numbers_show_gives_every_row_every_column(ws: Path) -> None:
    # The report row comes first and has no carrier; the notice row's carrier must show.
    result = bcx("numbers", "show", "+8618959100001", "--config", config_of(ws))
    assert result.returncode == 0, result.stderr
    history = result.stdout.split("history:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    header = history[0].split()
    assert header[:2] == ["what", "id"] and "to" in header
    notice = next(line for line in history if line.startswith("notice"))
    assert "ctcc.fj" in notice


def test_peer_text_with_escape_sequences_is_sanitised(ws: Path) -> None:
    hostile = "FZ-9\x1b]0;owned\x07\x1b[2J\u202e"
    con = sqlite3.connect(ws / "bureau.fj" / "node.db")
    con.execute("UPDATE wf_reports SET case_number = ? WHERE report_id = "
                "(SELECT report_id FROM wf_reports ORDER BY created_at LIMIT 1)", (hostile,))
    con.commit()
    con.close()
    text = bcx("reports", "--config", config_of(ws))
    assert text.returncode == 0, text.stderr
    assert "\x1b" not in text.stdout and "\x07" not in text.stdout
    assert "\u202e" not in text.stdout
    assert "FZ-9\\x1b]0;owned\\x07\\x1b[2J\\u202e" in text.stdout
    as_json = bcx("reports", "--config", config_of(ws), "--json")
    assert "\x1b" not in as_json.stdout and "\u202e" not in as_json.stdout
    assert hostile in [r["case"] for r in json.loads(as_json.stdout)]  # the data, intact


def test_the_other_listings_take_json(ws: Path, tmp_path: Path) -> None:
    shown = json.loads(bcx("directory", "show", ws / "directory.bin", "--ca",
                           ws / "pki" / "ca.pem", "--json").stdout)
    assert shown["trust_domain"] == "bcx.example" and shown["version"] >= 1
    assert {"office.cn", "bureau.fj", "cmcc.fj"} <= {m["id"] for m in shown["members"]}
    checkpoint = json.loads(bcx("ledger", "checkpoint", "--config", config_of(ws),
                                "--json").stdout)
    entries = json.loads(bcx("ledger", "entries", "--config", config_of(ws), "--json",
                             "--limit", "100000").stdout)
    assert checkpoint["origin"] == "bcx.example/bureau.fj"
    assert checkpoint["size"] == len(entries)
    assert checkpoint["signed_by"][0] == "bcx.example/bureau.fj"
    assert checkpoint["note"].startswith(f"bcx.example/bureau.fj\n{len(entries)}\n")
    csv = tmp_path / "subscribers.csv"
    csv.write_text("number,province\n+8615959000999,fj\n+8615959000998,fj\n")
    config = variant(ws, tmp_path, database=tmp_path / "cmcc.db", node="cmcc.fj")
    imported = bcx("subscribers", "import", csv, "--config", config, "--json")
    assert imported.returncode == 0, imported.stderr
    answer = json.loads(imported.stdout)
    assert {k: answer[k] for k in ("imported", "added", "already_present", "node")} == \
        {"imported": 2, "added": 2, "already_present": 0, "node": "cmcc.fj"}


# --- completion and version ------------------------------------------------------------


def test_version_is_the_installed_distributions() -> None:
    result = bcx("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"bcx {metadata.version('bcx')}"


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_and_completions(shell: str, tmp_path: Path) -> None:
    script = bcx("completion", shell)
    assert script.returncode == 0
    assert "bcx" in script.stdout and ("complete" in script.stdout or "compdef" in
                                       script.stdout)
    out = tmp_path / "completions"
    line = "bcx ledger ve"
    env = {"_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": shell, "COMP_LINE": line,
           "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
           "_ARGCOMPLETE_IFS": "\n"}
    assert bcx(env=env).returncode == 0
    assert "verify" in out.read_text()
