"""Exporters: rows to files. They never know who asked or how the bytes are sent.

Each writer takes the column names and an iterable of row batches (lists of tuples), so that a
result streams from a server-side cursor to the file a batch at a time and is never held whole;
the to_* functions are the same writers over a DataFrame, for the pages' download buttons.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

import pandas as pd
from sqlalchemy.engine import Engine

from analytics.metrics import METRICS
from analytics.query import FORMULA_START, open_query

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection). Defined
# beside the COPY path that neutralises them in SQL, so that both read one list.
FORMULA_PREFIXES = FORMULA_START
# One sheet holds 1,048,576 rows: the header and 1,048,575 data rows; more continue on a new sheet.
XLSX_MAX_ROWS = 1_048_575
BATCH = 5_000
# Columns whose names say money get a two-decimal, thousands-separated format in Excel.
MONEY_NAME = re.compile(r"(^|_)(gmv|revenue|amount|price|discount|spend|cost|sales|aov|cac|clv|fee|refunded|value|"
                        r"take|net|gross|monetary|paid)(_|$)", re.IGNORECASE)
MONEY_FORMAT = "#,##0.00"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"

Batches = Iterable[Sequence[tuple]]
Output = str | Path | BinaryIO   # a binary file; xlsx also takes a path


def neutral(value: object) -> object:
    """Returns value, or the text with a leading quote when a spreadsheet would run it as a formula.
    Only text is touched: a real negative number stays a number."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """Returns a copy of frame with neutral() applied to its text cells."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutral)
    return out


def plain(value: object) -> object:
    """Returns a cell value as a plain Python value: None for SQL NULL, NaN and NaT; numpy scalars
    as Python numbers; time-zone-aware times as their wall-clock time (the session's zone, which
    is APP_TIMEZONE: spreadsheets have no time zones)."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes, Decimal, datetime, date)):
        value = value.item()  # numpy scalar
        if isinstance(value, float) and math.isnan(value):
            return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, (datetime, time)) and value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return value


def frame_batches(frame: pd.DataFrame, size: int = BATCH) -> Batches:
    """Yields frame's rows as lists of tuples, size rows at a time."""
    for start in range(0, len(frame), size):
        yield list(frame.iloc[start:start + size].itertuples(index=False, name=None))


PERCENT_NAME = re.compile(r"(_rate|rate_|growth|margin|share|p_alive|coverage|retention)", re.IGNORECASE)
COUNT_NAME = re.compile(r"^(rank|orders|units|customers|sessions|rows|n)$|(_orders|_customers|_count)$", re.IGNORECASE)
PERCENT_FORMAT = "0.0%"
COUNT_FORMAT = "#,##0"


def column_kind(name: str) -> str | None:
    """'money', 'percent', 'count' or None, from a glossary metric's kind or the column's name."""
    name = str(name)
    if name in METRICS:
        return METRICS[name].fmt
    if PERCENT_NAME.search(name):
        return "percent"
    if MONEY_NAME.search(name):
        return "money"
    if COUNT_NAME.search(name):
        return "count"
    return None


# --- CSV ----------------------------------------------------------------------------------------

def _csv_text(value) -> object:
    value = neutral(plain(value))
    if isinstance(value, bool):
        return "true" if value else "false"   # as PostgreSQL's COPY path writes them
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return value


def _quoted(value) -> str:
    """One CSV field as PostgreSQL's COPY writes it: "" for an empty string (an empty field is
    NULL), quotes around text with a comma, a quote, CR or LF."""
    if value is None:
        return ""
    text = str(value)
    if text == "" or any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_csv(columns: Sequence[str], batches: Batches, out: BinaryIO, *, bom: bool = True) -> int:
    """Writes UTF-8 CSV with a header to the binary file out (a BOM first, so that Excel reads
    accents); returns the number of data rows. Formulas are neutralised. Fields are quoted as
    PostgreSQL's COPY quotes them (analytics.query.copy_csv writes the same bytes): rows with an
    empty string or a CR, which Python's csv module leaves bare, are written field by field."""
    text = codecs.getwriter("utf-8")(out)
    if bom:
        out.write(codecs.BOM_UTF8)
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([neutral(str(c)) for c in columns])
    rows = 0
    for batch in batches:
        lines = [[_csv_text(v) for v in row] for row in batch]
        if any(v == "" or (isinstance(v, str) and "\r" in v) for line in lines for v in line):
            for line in lines:
                text.write(",".join(_quoted(v) for v in line) + "\n")
        else:
            writer.writerows(lines)
        rows += len(batch)
    return rows


def to_csv(frame: pd.DataFrame) -> bytes:
    """Returns frame as UTF-8 CSV bytes (with a BOM), formulas neutralised."""
    buf = io.BytesIO()
    write_csv(list(map(str, frame.columns)), frame_batches(frame), buf)
    return buf.getvalue()


# --- JSON ---------------------------------------------------------------------------------------

def json_value(value: object) -> str:
    value = plain(value)
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else "null"   # exact: never through a float
    if isinstance(value, (datetime, date, time)):
        return json.dumps(value.isoformat())
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    if isinstance(value, (bytes, memoryview)):
        return json.dumps(bytes(value).hex())
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return json.dumps(str(value), ensure_ascii=False)


def write_json(columns: Sequence[str], batches: Batches, out: BinaryIO) -> int:
    """Writes a JSON array of records (one per line) to the binary file out: ISO dates, exact
    decimals (numeric values are written digit for digit). Returns the number of rows."""
    keys = [json.dumps(str(c), ensure_ascii=False) + ": " for c in columns]
    out.write(b"[")
    rows = 0
    for batch in batches:
        for row in batch:
            record = "{" + ", ".join(k + json_value(v) for k, v in zip(keys, row)) + "}"
            out.write(((",\n" if rows else "\n") + record).encode("utf-8"))
            rows += 1
    out.write(b"\n]\n" if rows else b"]\n")
    return rows


def to_json(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    write_json(list(map(str, frame.columns)), frame_batches(frame), buf)
    return buf.getvalue()


# --- Excel --------------------------------------------------------------------------------------

def sheet_name(name: str) -> str:
    """Excel refuses []:*?/\\ in sheet names, a leading or trailing quote, and more than 31 characters."""
    return re.sub(r"[\[\]:*?/\\]", " ", name).strip().strip("'")[:31].strip() or "data"


class XlsxBook:
    """An Excel workbook written in openpyxl's write-only mode, so memory stays flat however many
    rows come: typed cells (numbers, dates, money with two decimals), a bold frozen header, column
    widths from the first rows; past max_rows data rows a sheet continues on a new one
    ("name (2)", …); close() adds a sheet "About" with what produced it."""

    def __init__(self, out: Output, *, max_rows: int = XLSX_MAX_ROWS) -> None:
        # openpyxl loads only when a workbook is made: CSV and JSON exports (and the app) never need it.
        from openpyxl import Workbook
        from openpyxl.styles import Font, PatternFill

        self.out, self.max_rows = out, max_rows
        self.book = Workbook(write_only=True)
        self.names: set[str] = set()
        self.rows = 0
        self._bold, self._fill = Font(bold=True, color="FFFFFF"), PatternFill("solid", fgColor="1F4E79")

    def _name(self, wanted: str) -> str:
        base, n = sheet_name(wanted), 1
        name = base
        while name.lower() in self.names:
            n += 1
            suffix = f" ({n})"
            name = base[:31 - len(suffix)] + suffix
        self.names.add(name.lower())
        return name

    def sheet(self, name: str, columns: Sequence[str], batches: Batches, *, money: set[str] | None = None) -> int:
        """Writes one table (continuing on further sheets past max_rows); returns its data rows."""
        from openpyxl.cell import WriteOnlyCell  # lazily, as in __init__

        kinds = {"money": MONEY_FORMAT, "percent": PERCENT_FORMAT, "count": COUNT_FORMAT}
        formats = [(MONEY_FORMAT if c in money else None) if money is not None else kinds.get(column_kind(c))
                   for c in columns]
        widths = [len(str(c)) for c in columns]
        state = {"ws": None, "n": 0}

        def new_sheet(sample: Sequence[tuple]) -> None:
            ws = self.book.create_sheet(self._name(name))
            ws.freeze_panes = "A2"
            for row in sample[:200]:
                for i, v in enumerate(row):
                    widths[i] = max(widths[i], len(str(plain(v))) if v is not None else 0)
            for i, w in enumerate(widths):
                ws.column_dimensions[_letter(i + 1)].width = min(60, w + 2)
            header = []
            for c in columns:
                cell = WriteOnlyCell(ws, value=neutral(str(c)))
                cell.font, cell.fill = self._bold, self._fill
                header.append(cell)
            ws.append(header)
            state["ws"], state["n"] = ws, 0

        def typed(ws, value, fmt):
            value = neutral(plain(value))
            if isinstance(value, (bytes, memoryview)):
                value = bytes(value).hex()
            elif isinstance(value, (list, dict, tuple)):
                value = json.dumps(value, default=str)
            elif value is not None and not isinstance(value, (str, int, float, Decimal, datetime, date, time, bool)):
                value = str(value)
            if fmt is None and not isinstance(value, (datetime, date)):
                return value
            cell = WriteOnlyCell(ws, value=value)
            if isinstance(value, datetime):
                cell.number_format = DATETIME_FORMAT
            elif isinstance(value, date):
                cell.number_format = DATE_FORMAT
            elif isinstance(value, (int, float, Decimal)):
                cell.number_format = fmt
            return cell

        rows = 0
        for batch in batches:
            if state["ws"] is None:
                new_sheet(batch)
            for row in batch:
                if state["n"] >= self.max_rows:
                    new_sheet([])
                ws = state["ws"]
                ws.append([typed(ws, v, f) for v, f in zip(row, formats)])
                state["n"] += 1
                rows += 1
        if state["ws"] is None:
            new_sheet([])
        self.rows += rows
        return rows

    def close(self, about: dict | None = None) -> None:
        if about:
            ws = self.book.create_sheet(self._name("About"))
            ws.column_dimensions["A"].width = 18
            ws.column_dimensions["B"].width = 100
            for label, value in about.items():
                ws.append([neutral(str(label)), neutral(value if isinstance(value, (int, float)) else str(value))])
            ws.append(["Rows", self.rows])
        self.book.save(self.out)


def write_xlsx(columns: Sequence[str], batches: Batches, out: Output, *, sheet: str = "data",
               about: dict | None = None, money: set[str] | None = None, max_rows: int = XLSX_MAX_ROWS) -> int:
    """Writes one table as an Excel workbook (see XlsxBook) to out, a path or a binary file;
    returns the number of data rows."""
    book = XlsxBook(out, max_rows=max_rows)
    rows = book.sheet(sheet, columns, batches, money=money)
    book.close(about)
    return rows


def _letter(i: int) -> str:
    from openpyxl.utils import get_column_letter  # lazily, as in XlsxBook.__init__
    return get_column_letter(i)


def to_xlsx(frame: pd.DataFrame, *, sheet: str = "data", about: dict | None = None) -> bytes:
    """Returns frame as an Excel workbook: formulas neutralised, times without zone, header frozen."""
    buf = io.BytesIO()
    write_xlsx(list(map(str, frame.columns)), frame_batches(frame), buf, sheet=sheet, about=about)
    return buf.getvalue()


# --- streamed exports of analysts' queries ---------------------------------------------------------

FORMATS = {"csv": ("text/csv", ".csv"), "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                                                 ".xlsx"),
           "json": ("application/json", ".json")}


def write_rows(fmt: str, columns: Sequence[str], batches: Batches, out: Output, *, sheet: str = "data",
               about: dict | None = None) -> int:
    """Writes rows in one of FORMATS to out; returns the number of data rows."""
    if fmt == "csv":
        return write_csv(columns, batches, out)
    if fmt == "json":
        return write_json(columns, batches, out)
    if fmt == "xlsx":
        return write_xlsx(columns, batches, out, sheet=sheet, about=about)
    raise ValueError(f"unknown export format {fmt!r}; use {', '.join(FORMATS)}")


def export_query(sql: str, params: dict | None, fmt: str, out: Output, *, row_limit: int | None = None,
                 engine: Engine | None = None, sheet: str = "Query", about: dict | None = None,
                 timeout_ms: int | None = None, explain: bool = True) -> tuple[int, bool]:
    """Streams an analyst's query (through analytics.query.open_query: the same checks and role as
    the SQL page) batch by batch into out. Returns (rows written, whether row_limit cut it short)."""
    with open_query(sql, params, engine=engine, timeout_ms=timeout_ms, explain=explain) as stream:
        limit = None if row_limit is None else row_limit + 1
        seen = {"rows": 0}

        def capped():
            for batch in stream.batches(BATCH, limit=limit):
                room = (row_limit - seen["rows"]) if row_limit is not None else len(batch)
                seen["rows"] += len(batch)
                if room > 0:
                    yield batch[:room]
        rows = write_rows(fmt, stream.columns, capped(), out, sheet=sheet, about=about)
    return rows, row_limit is not None and seen["rows"] > row_limit
