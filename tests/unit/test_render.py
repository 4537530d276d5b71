"""nodes/cli/render.py: what reaches an operator's terminal."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from nodes.cli import render


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("raw", "shown"), [
    ("FZ-2026-0412", "FZ-2026-0412"),
    ("闽公刑 2026 第 12 号", "闽公刑 2026 第 12 号"),
    ("a\x1b[2Jb", "a\\x1b[2Jb"),
    ("title\x1b]0;owned\x07", "title\\x1b]0;owned\\x07"),
    ("csi\x9b31m", "csi\\x9b31m"),
    ("del\x7f", "del\\x7f"),
    ("line\nbreak\r", "line\\x0abreak\\x0d"),
    ("rtl\u202eexe.txt", "rtl\\u202eexe.txt"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
])
def test_sanitize_writes_controls_as_escapes(raw: str, shown: str) -> None:
    assert render.sanitize(raw) == shown
    assert render.cell(raw) == shown


def test_sanitize_keeps_newlines_of_a_block_only_when_asked() -> None:
    assert render.sanitize("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"


@pytest.mark.parametrize("hostile", [
    "FZ\x1b[2J\x9b\u202e号", "soft\xadhyphen", "tag\U000e0041s", "bom\ufeff", "del\x7f",
    "line\u2028sep",
])
def test_json_is_terminal_safe_and_the_same_data(hostile: str) -> None:
    value = {"case": hostile, "n": [1, "号码"]}
    for indent in (2, None):
        text = render.to_json(value, indent=indent)
        assert render.sanitize(text, keep_newlines=True) == text  # nothing left to escape
        assert json.loads(text) == value
    assert "号" in render.to_json(value)


def test_table_takes_every_column_of_every_row() -> None:
    rows = [{"what": "report", "by": "police.fj"},
            {"what": "notice", "by": "bureau.fj", "to": "ctcc.fj"}]
    lines = render.table(rows).splitlines()
    assert lines[0].split() == ["what", "by", "to"]
    assert lines[2].split() == ["notice", "bureau.fj", "ctcc.fj"]
    assert render.table([]) == "(none)"


@pytest.mark.parametrize(("zone", "shown"), [
    ("Asia/Shanghai", "2026-12-04 08:50:45+08:00"),
    ("UTC", "2026-12-04 00:50:45+00:00"),
    ("Europe/Berlin", "2026-12-04 01:50:45+01:00"),
])
def test_times_show_in_the_zone_to_the_second(zone: str, shown: str) -> None:
    moment = datetime(2026, 12, 4, 0, 50, 45, 987654, tzinfo=UTC)
    assert render.when(moment, ZoneInfo(zone)) == shown
    assert render.when(moment.replace(tzinfo=None), ZoneInfo(zone)) == shown  # stored UTC
    assert render.when(None) == ""


def test_times_from_the_node_are_localized() -> None:
    render.set_timezone("Asia/Shanghai")
    got = render.localize_times({"deadline": "2026-12-04T00:50:45.123456+00:00",
                                 "ids": ["2026-12-04", "01a23cb4"], "n": 3})
    assert got == {"deadline": "2026-12-04 08:50:45+08:00", "ids": ["2026-12-04", "01a23cb4"],
                   "n": 3}


def test_a_log_record_clears_the_progress_line_and_redraws_it() -> None:
    term = Terminal()
    handler = render.TerminalLogHandler()
    handler.setStream(term)
    logger = logging.getLogger("test.render.progress")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with render.Progress("verified", stream=term) as progress:
            progress.update(1, 4)
            logger.warning("peer %s slow", "cmcc.fj")
            progress.update(2, 4)
    finally:
        logger.removeHandler(handler)
    # The progress line, cleared; the log record on a line of its own; progress again.
    assert re.fullmatch(
        r"\r\x1b\[Kverified 1/4\r\x1b\[K"
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d WARNING test\.render\.progress: "
        r"peer cmcc\.fj slow\n"
        r"\r\x1b\[Kverified 1/4\r\x1b\[Kverified 2/4\r\x1b\[K", term.getvalue()), \
        repr(term.getvalue())


def test_progress_is_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with render.Progress("verified", stream=stream) as progress:
        progress.update(1, 2)
    assert stream.getvalue() == ""
