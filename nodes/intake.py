"""Reading the numbers of a report from the file a desk keeps them in (pure: bytes in, values out).

Desks keep their lists as CSV saved by Excel on Chinese Windows (GBK), as UTF-8 with or
without a byte-order mark, as tab- or semicolon-separated text, or as ``.xlsx``. A list
usually has a header row (``序号,号码,备注``, ``phone,name``) and other columns beside the
numbers. ``read_report_file`` finds the column of numbers, checks each of its cells with
``exchange.numbers`` and returns the numbers to send with every row it refused, by line:
a header, a serial number or a name is never sent as a number.

Which column:
- ``column`` given as a 1-based index or a header name: that one;
- else a header cell the desk would use for numbers (``HEADER_NAMES``): that one, and a
  header with two such cells is ambiguous and refused;
- else, with no header, the only column that holds any number; several are refused.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from exchange import numbers
from exchange.errors import NumberError, OperationError

__all__ = [
    "HEADER_NAMES",
    "MAX_FILE_BYTES",
    "Duplicate",
    "Intake",
    "IntakeError",
    "Problem",
    "decode_text",
    "read_report_file",
    "read_values",
]

# A report file larger than this is not a desk's list (about two million rows of CSV).
MAX_FILE_BYTES = 64 * 1024 * 1024

# Header cells naming the column of numbers, compared after ``_header_key`` (lowercase,
# no spaces or punctuation, a bracketed note dropped: "手机号码（必填）" is "手机号码").
HEADER_NAMES: frozenset[str] = frozenset({
    "号码", "手机", "手机号", "手机号码", "电话", "电话号码", "联系电话", "移动电话",
    "涉案号码", "涉诈号码", "可疑号码", "黑卡号码", "卡号码",
    "number", "numbers", "phone", "phonenumber", "phoneno", "mobile", "mobilenumber",
    "mobileno", "mobilephone", "cellphone", "msisdn", "tel", "telephone", "telno", "e164",
})
# The few of them an error message names.
HEADER_NAMES_SHOWN = ("号码", "手机号", "电话号码", "number", "phone", "msisdn")

_DELIMITERS = ",\t;"
_BRACKETED = re.compile(r"[(（\[【].*?[)）\]】]")
_NOT_KEY = re.compile(r"[\s_\-.:：#/]+")
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"  # the OLE2 container of Excel 97-2003 .xls
_MAX_SHOWN = 40
_SAMPLE_ROWS = 200
_TITLE_ROWS = 3  # rows of title a sheet may have above its header


class IntakeError(OperationError):
    """The file as a whole cannot be read as a list of numbers (one line says why)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A row whose chosen cell is not a number: never sent."""

    line: int  # 1-based line of the text file, or row of the sheet
    value: str  # the cell as found (cut short)
    reason: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A number given again on a later row: sent once."""

    line: int
    number: str  # E.164
    first_line: int


@dataclass(frozen=True, slots=True)
class Intake:
    """What a report file holds: the numbers to send and every row refused."""

    numbers: tuple[str, ...]  # E.164, in the file's order, each once
    problems: tuple[Problem, ...]
    duplicates: tuple[Duplicate, ...]
    rows: int  # data rows read (the header and empty rows not counted)
    column: str  # what was read: "column 2 '号码'"
    header_line: int | None  # the header row's line, if there is one
    source: str  # "CSV, GBK/GB18030, ',' separated", "xlsx sheet 'Sheet1'", …

    def as_dict(self) -> dict[str, object]:
        return {
            "numbers": len(self.numbers), "rows": self.rows, "column": self.column,
            "header_line": self.header_line, "source": self.source,
            "problems": [{"line": p.line, "value": p.value, "reason": p.reason}
                         for p in self.problems],
            "duplicates": [{"line": d.line, "number": d.number, "first_line": d.first_line}
                           for d in self.duplicates],
        }


# --- Bytes to rows -----------------------------------------------------------------------


def decode_text(data: bytes) -> tuple[str, str]:
    """``(text, encoding name)``: UTF-8 (with or without BOM), UTF-16 with a BOM, else
    GB18030 (a superset of GBK and GB2312), each decoded strictly; or raise IntakeError."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "UTF-8 with BOM"
        except UnicodeDecodeError as e:
            raise IntakeError(f"starts with a UTF-8 byte-order mark but byte {e.start + 3} "
                              "is not UTF-8") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError:
            raise IntakeError("starts with a UTF-16 byte-order mark but is not UTF-16") \
                from None
    try:
        text, name = data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        try:
            text, name = data.decode("gb18030"), "GBK/GB18030"
        except UnicodeDecodeError as e:
            raise IntakeError(f"is neither UTF-8 nor GBK/GB18030 text (byte {e.start} "
                              f"is 0x{data[e.start]:02x}): save it as CSV UTF-8 or .xlsx") \
                from None
    if "\x00" in text:
        raise IntakeError("holds NUL characters: not a text file (save it as CSV or .xlsx)")
    return text, name


def _csv_rows(text: str) -> tuple[list[tuple[int, list[str]]], str]:
    sample = text[:64 * 1024]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            sample, delimiters=_DELIMITERS)
    except csv.Error:
        dialect = csv.excel  # one column: no delimiter to find
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    rows = []
    start = 1
    try:
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as e:
        raise IntakeError(f"line {reader.line_num}: not CSV: {e}") from None
    shown = {"\t": "tab", ",": "comma", ";": "semicolon"}.get(dialect.delimiter,
                                                             repr(dialect.delimiter))
    return rows, f"{shown} separated"


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        # Excel keeps a number typed into a cell as a float: 13800138000.0
        return str(int(value))
    return str(value).strip()


def _xlsx_rows(data: bytes) -> tuple[list[tuple[int, list[str]]], str]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise IntakeError(f"is not a readable .xlsx workbook: {e}") from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise IntakeError("is a workbook without sheets")
        rows = [(i, [_cell_text(v) for v in row])
                for i, row in enumerate(sheet.iter_rows(values_only=True), start=1)]
        return rows, f"xlsx, sheet {sheet.title!r}"
    finally:
        book.close()


def _rows_of(data: bytes, name: str) -> tuple[list[tuple[int, list[str]]], str]:
    if len(data) > MAX_FILE_BYTES:
        raise IntakeError(f"is {len(data)} bytes, more than the {MAX_FILE_BYTES} a report "
                          "file may have")
    if data.startswith(_XLS_MAGIC):
        raise IntakeError("is an Excel 97-2003 .xls workbook: save it as .xlsx or CSV")
    if data.startswith(_XLSX_MAGIC) or name.lower().endswith((".xlsx", ".xlsm")):
        return _xlsx_rows(data)
    text, encoding = decode_text(data)
    rows, dialect = _csv_rows(text)
    return rows, f"CSV, {encoding}, {dialect}"


# --- Rows to numbers ---------------------------------------------------------------------


def _header_key(cell: str) -> str:
    return _NOT_KEY.sub("", _BRACKETED.sub("", cell.replace("\ufeff", ""))).lower()


def _shown(value: str) -> str:
    return value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "…"


def _judge(cell: str) -> tuple[str, str]:
    """``(E.164, "")`` for a cell that is a number a report may carry, ``("", reason)``."""
    # Most cells of a list are 11 national digits: as E.164 they take numbers' fast path
    # (one phonenumbers parse per 7-digit block instead of one per number).
    raw = "+86" + cell if _NATIONAL_MOBILE.fullmatch(cell) else cell
    try:
        return numbers.check_actionable(raw), ""
    except NumberError as e:
        # The error names the input first ("'abc': contains letters"); the problem's
        # line shows the value already.
        return "", str(e).removeprefix(f"{raw!r}: ")


_NATIONAL_MOBILE = re.compile(r"1[3-9][0-9]{9}")


def _label(index: int, header: Sequence[str] | None) -> str:
    name = header[index] if header is not None and index < len(header) else ""
    return f"column {index + 1}" + (f" {name!r}" if name else "")


def _header_position(rows: Sequence[tuple[int, list[str]]], *, want: str = "") -> int:
    """The position of the row that may be the header: the first row naming the column
    (``want``, or any of HEADER_NAMES) among the first few, when only title rows without
    a number stand above it ("涉诈号码清单" over "序号,号码"); else the first row."""
    filled = [k for k, (_, cells) in enumerate(rows) if any(c.strip() for c in cells)]
    if not filled:
        raise IntakeError("holds no rows")
    for k in filled[:_TITLE_ROWS + 1]:
        keys = {_header_key(c) for c in rows[k][1]}
        if (want in keys) if want else bool(keys & HEADER_NAMES):
            return k
        if any(_judge(c.strip())[0] for c in rows[k][1] if c.strip()):
            break  # a row with a number: the list has begun, no header below it
    return filled[0]


def _choose_column(rows: Sequence[tuple[int, list[str]]], column: str | None
                   ) -> tuple[int, int | None]:
    """``(0-based column, header row's position in rows or None)``, or raise."""
    first = _header_position(rows, want=_header_key(column) if column is not None and
                             not column.strip().isdigit() else "")
    head_line, head = rows[first]
    keys = [_header_key(c) for c in head]
    known = [i for i, k in enumerate(keys) if k in HEADER_NAMES]
    width = max(len(cells) for _, cells in rows)
    if column is not None and column.strip().isdigit():
        n = int(column)
        if not 1 <= n <= width:
            raise IntakeError(f"has {width} column(s); --column {n} is not one of them")
        return n - 1, first if known else None
    if column is not None:
        want = _header_key(column)
        named = [i for i, k in enumerate(keys) if k == want]
        if not named:
            shown = ", ".join(repr(c) for c in head if c.strip())
            raise IntakeError(f"has no column named {column!r} in its header "
                              f"(line {head_line}: {shown})")
        return named[0], first
    if len(known) > 1:
        both = " and ".join(_label(i, head) for i in known)
        raise IntakeError(f"{both} both name numbers: choose one with --column")
    if known:
        return known[0], first
    # Judged on the first rows only: a column of numbers shows itself early, and judging
    # every cell of every column of a 100,000-row sheet would cost seconds.
    holding = sorted({i for _, cells in rows[:_SAMPLE_ROWS] for i, c in enumerate(cells)
                      if c.strip() and _judge(c.strip())[0]})
    if len(holding) == 1:
        return holding[0], None
    if not holding:
        if width == 1:
            return 0, None
        raise IntakeError("has no column of numbers and no header naming one "
                          f"({', '.join(HEADER_NAMES_SHOWN)}): choose it with --column")
    raise IntakeError(f"has numbers in {len(holding)} columns "
                      f"({', '.join(str(i + 1) for i in holding)}) and no header naming "
                      "one: choose it with --column NAME or N")


def _collect(cells: Iterable[tuple[int, str]]) -> tuple[list[str], list[Problem],
                                                         list[Duplicate], int]:
    accepted: list[str] = []
    first_seen: dict[str, int] = {}
    problems: list[Problem] = []
    duplicates: list[Duplicate] = []
    count = 0
    for line, cell in cells:
        count += 1
        if not cell:
            problems.append(Problem(line, "", "no number in this row's column"))
            continue
        number, reason = _judge(cell)
        if not number:
            problems.append(Problem(line, _shown(cell), reason))
        elif number in first_seen:
            duplicates.append(Duplicate(line, number, first_seen[number]))
        else:
            first_seen[number] = line
            accepted.append(number)
    return accepted, problems, duplicates, count


def read_report_file(data: bytes, *, name: str = "", column: str | None = None) -> Intake:
    """The numbers of a report file (CSV, TSV or .xlsx) and every row refused, by line.

    ``column`` is a 1-based index ("2") or a header name ("号码"). Raises IntakeError
    when the file as a whole cannot be read (encoding, format, no column of numbers).
    """
    rows, source = _rows_of(data, name)
    index, header_pos = _choose_column(rows, column)
    header = rows[header_pos][1] if header_pos is not None else None
    body = rows[header_pos + 1:] if header_pos is not None else rows
    cells = ((line, cells[index].strip() if index < len(cells) else "")
             for line, cells in body if any(c.strip() for c in cells))
    accepted, problems, duplicates, count = _collect(cells)
    return Intake(numbers=tuple(accepted), problems=tuple(problems),
                  duplicates=tuple(duplicates), rows=count, column=_label(index, header),
                  header_line=rows[header_pos][0] if header_pos is not None else None,
                  source=source)


def read_values(values: Sequence[str]) -> Intake:
    """Numbers typed as command arguments, checked as a file's rows are (line = position)."""
    accepted, problems, duplicates, count = _collect(
        (i, v.strip()) for i, v in enumerate(values, start=1) if v.strip())
    return Intake(numbers=tuple(accepted), problems=tuple(problems),
                  duplicates=tuple(duplicates), rows=count, column="arguments",
                  header_line=None, source="command line")
