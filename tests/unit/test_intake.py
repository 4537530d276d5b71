"""Reading a report file: encodings, formats, headers, columns, refused rows (nodes.intake)."""

from __future__ import annotations

import io

import openpyxl
import pytest

from nodes.intake import IntakeError, decode_text, read_report_file, read_values

A, B, C = "+8615959000001", "+8615959000002", "+8613800138000"


def xlsx(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# Each row: file bytes, --column, expected numbers, expected problems (line, reason part).
CASES = [
    pytest.param("序号,号码,备注\n1,15959000001,raid\n2,159 5900 0002,\n".encode("gbk"), None,
                 [A, B], [], id="gbk-chinese-header-serial-column-not-sent"),
    pytest.param("\ufeff手机号码\n15959000001\n+86 159-5900-0002\n".encode(), None,
                 [A, B], [], id="utf8-bom-header"),
    pytest.param(b"phone,name\n15959000001,Li\nnot-a-number,Wang\n", None,
                 [A], [(3, "contains letters")], id="english-header-bad-row-refused"),
    pytest.param(b"15959000001\n15959000002\n", None, [A, B], [], id="plain-list"),
    pytest.param(b"name;tel\nLi;15959000001\nWang;13800138000\n", None, [A, C], [],
                 id="semicolon"),
    pytest.param(b"msisdn\tnote\n15959000001\tx\n", None, [A], [], id="tab"),
    pytest.param(b"Li,15959000001\nWang,13800138000\n", None, [A, C], [],
                 id="no-header-the-only-column-with-numbers"),
    pytest.param(b"id,value\n1,15959000001\n", "2", [A], [(1, "contains letters")],
                 id="column-by-index-unknown-header-is-a-problem"),
    pytest.param(b"id,value\n1,15959000001\n", "value", [A], [], id="column-by-name"),
    pytest.param(b"number\n15959000001\n110\n1234\n\n15959000001\n", None, [A],
                 [(3, "never actionable"), (4, "not a mainland mobile")],
                 id="service-and-short-numbers-refused-blank-lines-skipped"),
    pytest.param("号码,备注\n,空\n15959000001,\n".encode(), None, [A],
                 [(2, "no number")], id="empty-cell-in-a-row-with-content"),
    pytest.param(b'number,note\n15959000001,"two\nlines"\n15959000002,x\n', None, [A, B],
                 [], id="quoted-newline-keeps-line-numbers"),
    pytest.param("涉诈号码清单,,\n,,\n序号,号码,备注\n1,15959000001,x\n".encode(), None, [A], [],
                 id="title-rows-above-the-header"),
    pytest.param("线索\n报送单位\n号码\n15959000001\n".encode(), "号码", [A], [],
                 id="title-rows-above-a-named-column"),
    pytest.param("15959000001,a\n号码,b\n".encode(), None, [A], [(2, "contains letters")],
                 id="no-header-below-the-first-number"),
]


@pytest.mark.parametrize(("data", "column", "numbers", "problems"), CASES)
def test_read_report_file(data: bytes, column: str | None, numbers: list[str],
                          problems: list[tuple[int, str]]) -> None:
    got = read_report_file(data, name="list.csv", column=column)
    assert list(got.numbers) == numbers
    assert [p.line for p in got.problems] == [line for line, _ in problems]
    for p, (_, reason) in zip(got.problems, problems, strict=True):
        assert reason in p.reason


def test_a_serial_number_header_never_becomes_numbers() -> None:
    # The regression: `序号,号码,备注` sent '序号', '1', '2' as numbers.
    got = read_report_file("序号,号码,备注\n1,15959000001,a\n2,15959000002,b\n".encode("gbk"))
    assert got.column == "column 2 '号码'" and got.header_line == 1
    assert got.source.startswith("CSV, GBK/GB18030, comma")
    assert set(got.numbers) == {A, B} and not got.problems


def test_line_numbers_follow_the_file_past_a_quoted_newline() -> None:
    got = read_report_file(b'number,note\n15959000001,"a\nb"\nbad,x\n')
    assert [(p.line, p.value) for p in got.problems] == [(4, "bad")]


def test_duplicates_are_reported_and_sent_once() -> None:
    got = read_report_file(b"number\n15959000001\n+86 159 5900 0001\n15959000002\n")
    assert got.numbers == (A, B)
    assert [(d.line, d.number, d.first_line) for d in got.duplicates] == [(3, A, 2)]


def test_xlsx_with_numeric_cells_and_a_header() -> None:
    data = xlsx([["序号", "电话号码", "备注"], [1, 15959000001, "raid"],
                 [2, "159 5900 0002", None], [3, "张三", None]])
    got = read_report_file(data, name="list.xlsx")
    assert got.numbers == (A, B)
    assert [(p.line, p.value) for p in got.problems] == [(4, "张三")]
    assert got.source.startswith("xlsx")


def test_full_width_digits_are_numbers() -> None:
    got = read_report_file("号码\n１５９５９０００００１\n".encode())
    assert got.numbers == (A,)


@pytest.mark.parametrize(("data", "column", "message"), [
    (b"\xff\x00\xfe\x81\x00\x01garbage\x80", None, "neither UTF-8 nor GBK/GB18030"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", None, "Excel 97-2003 .xls"),
    (b"PK\x03\x04broken", None, "not a readable .xlsx"),
    (b"", None, "holds no rows"),
    (b"\n\n", None, "holds no rows"),
    (b"a,b\nx,y\n", None, "no column of numbers"),
    ("手机号,电话\n15959000001,15959000002\n".encode(), None, "both name numbers"),
    (b"15959000001,15959000002\n", None, "numbers in 2 columns"),
    (b"number\n15959000001\n", "3", "--column 3 is not one of them"),
    (b"number\n15959000001\n", "phone", "no column named 'phone' in its header"),
    (b"\xef\xbb\xbfnumber\n\xff\n", None, "not UTF-8"),
])
def test_a_file_that_cannot_be_read_is_one_clear_error(data: bytes, column: str | None,
                                                       message: str) -> None:
    with pytest.raises(IntakeError, match=message):
        read_report_file(data, name="list.csv", column=column)


def test_decoding_is_strict_and_names_the_encoding() -> None:
    assert decode_text("号码".encode("gb18030")) == ("号码", "GBK/GB18030")
    assert decode_text("号码".encode()) == ("号码", "UTF-8")
    assert decode_text("\ufeff号码".encode()) == ("号码", "UTF-8 with BOM")
    assert decode_text("号码".encode("utf-16")) == ("号码", "UTF-16")
    with pytest.raises(IntakeError, match="NUL"):
        decode_text(b"a\x00b")


def test_arguments_are_checked_as_rows_are() -> None:
    got = read_values(["15959000001", "phone", " ", "0086 159 5900 0001"])
    assert got.numbers == (A,)
    assert [(p.line, p.value) for p in got.problems] == [(2, "phone")]
    assert [d.line for d in got.duplicates] == [4]


def test_a_long_list_is_read_quickly() -> None:
    import time

    data = "序号,号码\n".encode() + b"".join(
        f"{i},159{i:08d}\n".encode() for i in range(100_000))
    start = time.perf_counter()
    got = read_report_file(data)
    elapsed = time.perf_counter() - start
    assert len(got.numbers) + len(got.problems) == 100_000
    assert elapsed < 30, elapsed  # about 1 s on an idle machine; minutes if per-cell work grew
