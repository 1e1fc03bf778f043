"""Exporters: formula neutralising, Excel sheet names and time zones."""
from __future__ import annotations

import csv
import inspect
import io
import json
from datetime import date, datetime
from decimal import Decimal

import openpyxl
import pandas as pd
import pytest

from analytics.query import QueryFailed, QueryRejected, copy_csv, open_query
from analytics.sql_params import bind_parameters
from reports.exporters import XLSX_MAX_ROWS, export_query, to_csv, to_xlsx, write_csv, write_json, write_xlsx


@pytest.mark.parametrize("sheet,expected", [
    ("Top products", "Top products"),
    ("Nordic A/S trend", "Nordic A S trend"),             # / is not allowed in a sheet name
    ("[x]: what?*\\", "x   what"),
    ("'quoted'", "quoted"),
    ("A" * 40, "A" * 31),
    ("???", "data"),
])
def test_xlsx_sheet_names_excel_accepts(sheet, expected):
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(pd.DataFrame({"n": [1]}), sheet=sheet)))
    assert book.sheetnames == [expected]


def test_xlsx_neutralises_formulas_and_keeps_numbers_and_local_times():
    frame = pd.DataFrame({"name": ["=1+1", "ok"], "n": [-1.5, 2.0],
                          "at": pd.to_datetime(["2026-01-01T10:00Z", "2026-06-01T10:00Z"]).tz_convert("Europe/Berlin")})
    back = pd.read_excel(io.BytesIO(to_xlsx(frame)))
    assert list(back["name"]) == ["'=1+1", "ok"] and list(back["n"]) == [-1.5, 2.0]
    assert [str(t) for t in back["at"]] == ["2026-01-01 11:00:00", "2026-06-01 12:00:00"]
    assert to_csv(frame).decode("utf-8-sig").splitlines()[1].startswith("'=1+1,-1.5,")


# --- streamed writers --------------------------------------------------------------------------

ROWS = [("=HYPERLINK(\"x\")", Decimal("12345.675"), -3, date(2026, 1, 31), datetime(2026, 1, 31, 9, 30), None),
        ("plain, with comma", Decimal("0.10"), 7, None, None, "@SUM(A1)"),
        ("é ü", Decimal("-0.01"), 0, date(2026, 2, 1), datetime(2026, 2, 1, 23, 59, 59), "-2")]
COLUMNS = ["name", "gmv", "n", "day", "at", "note"]


def _batches(rows, size=2):
    return (rows[i:i + size] for i in range(0, len(rows), size))


def test_write_csv_streams_batches_neutralises_text_and_keeps_decimals_exact():
    buf = io.BytesIO()
    assert write_csv(COLUMNS, _batches(ROWS), buf) == 3
    text = buf.getvalue().decode("utf-8")
    assert text.startswith("\ufeff")
    back = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert back[0] == COLUMNS
    assert back[1] == ["'=HYPERLINK(\"x\")", "12345.675", "-3", "2026-01-31", "2026-01-31 09:30:00", ""]
    assert back[2][5] == "'@SUM(A1)" and back[3][5] == "'-2" and back[3][1] == "-0.01" and back[3][0] == "é ü"


def test_write_json_has_iso_dates_exact_decimals_and_nulls():
    buf = io.BytesIO()
    assert write_json(COLUMNS, _batches(ROWS), buf) == 3
    records = json.loads(buf.getvalue(), parse_float=Decimal)
    assert records[0]["gmv"] == Decimal("12345.675") and records[1]["gmv"] == Decimal("0.10")
    assert records[0]["day"] == "2026-01-31" and records[0]["at"] == "2026-01-31T09:30:00"
    assert records[1]["day"] is None and records[0]["n"] == -3 and records[2]["name"] == "é ü"
    empty = io.BytesIO()
    assert write_json(["a"], [], empty) == 0 and json.loads(empty.getvalue()) == []


def test_write_xlsx_types_cells_styles_the_header_and_says_what_produced_it():
    buf = io.BytesIO()
    rows = write_xlsx(COLUMNS, _batches(ROWS), buf, sheet="Sales", about={"Report": "test", "SQL": "=SELECT 1"})
    assert rows == 3
    book = openpyxl.load_workbook(io.BytesIO(buf.getvalue()))
    assert book.sheetnames == ["Sales", "About"]
    ws = book["Sales"]
    assert ws.freeze_panes == "A2" and ws["A1"].font.bold
    assert ws["A2"].value == "'=HYPERLINK(\"x\")" and ws["F3"].value == "'@SUM(A1)" and ws["F4"].value == "'-2"
    assert ws["B2"].value == pytest.approx(12345.675) and ws["B2"].number_format == "#,##0.00"
    assert ws["C2"].value == -3 and isinstance(ws["C2"].value, int)
    assert ws["D2"].value == datetime(2026, 1, 31) and ws["D2"].number_format == "yyyy-mm-dd"
    assert ws["E3"].value is None and ws.column_dimensions["A"].width >= len("plain, with comma")
    about = {r[0]: r[1] for r in book["About"].iter_rows(values_only=True)}
    assert about["Report"] == "test" and about["SQL"] == "'=SELECT 1" and about["Rows"] == 3


def test_write_xlsx_continues_on_a_new_sheet_past_the_row_limit():
    buf = io.BytesIO()
    rows = [(i,) for i in range(25)]
    assert write_xlsx(["i"], _batches(rows, 7), buf, sheet="data", max_rows=10) == 25
    book = openpyxl.load_workbook(io.BytesIO(buf.getvalue()), read_only=True)
    assert book.sheetnames == ["data", "data (2)", "data (3)"]
    values = [[r[0] for r in book[s].iter_rows(values_only=True)] for s in book.sheetnames]
    assert [v[0] for v in values] == ["i", "i", "i"]
    assert sum((v[1:] for v in values), []) == list(range(25))


def test_the_default_sheet_limit_is_excels():
    """Excel's sheet holds 1,048,576 rows: the header and 1,048,575 data rows. Writing a real
    million-row file took 46 s of the suite; the continuation itself is tested above with a
    small limit through the same code."""
    assert XLSX_MAX_ROWS == 1_048_576 - 1
    assert inspect.signature(write_xlsx).parameters["max_rows"].default == XLSX_MAX_ROWS


def test_export_query_streams_the_whole_result_up_to_the_cap(analyst):
    buf = io.BytesIO()
    rows, cut = export_query("SELECT g AS n, g * 1.5 AS gmv FROM generate_series(1, 12000) g", None, "csv", buf,
                             row_limit=11_000, engine=analyst)
    assert (rows, cut) == (11_000, True)
    lines = buf.getvalue().decode("utf-8-sig").splitlines()
    assert lines[0] == "n,gmv" and lines[1] == "1,1.5" and lines[-1] == "11000,16500.0" and len(lines) == 11_001
    buf = io.BytesIO()
    assert export_query("SELECT 1 AS one", None, "json", buf, row_limit=10, engine=analyst) == (1, False)
    with pytest.raises(QueryRejected, match="function pg_read_file is not allowed"):
        export_query("SELECT pg_read_file('/etc/passwd')", None, "csv", io.BytesIO(), engine=analyst)
    with pytest.raises(ValueError, match="unknown export format 'pdf'"):
        export_query("SELECT 1", None, "pdf", io.BytesIO(), engine=analyst)


def test_copy_csv_matches_the_streamed_writer_and_neutralises_in_sql(analyst):
    """The COPY path (queries without parameters) writes what the streamed writer writes."""
    sql = ("SELECT g AS n, (g * 1.25)::numeric(12, 2) AS amount, CASE WHEN g % 3 = 0 THEN '=cmd|' || g "
           "WHEN g % 3 = 1 THEN '-' || g ELSE 'plain, \"quoted\"' END AS label, g % 2 = 0 AS even, "
           "timestamptz '2026-03-01 10:00:00+00' + g * interval '1 hour' AS at, NULL::text AS nothing, "
           "-g AS negative FROM generate_series(1, 2000) g ORDER BY g; -- trailing comment")
    fast, slow = io.BytesIO(), io.BytesIO()
    assert copy_csv(sql, fast, engine=analyst) == 2000
    with open_query(sql, engine=analyst) as stream:
        write_csv(stream.columns, stream.batches(500), slow)
    assert fast.getvalue() == slow.getvalue()
    rows = list(csv.reader(io.StringIO(fast.getvalue().decode("utf-8-sig"))))
    assert rows[0] == ["n", "amount", "label", "even", "at", "nothing", "negative"]
    assert rows[3][2] == "'=cmd|3" and rows[1][2] == "'-1" and rows[1][6] == "-1" and rows[2][3] == "true"
    tabbed, slow = io.BytesIO(), io.BytesIO()
    sql = "SELECT E'\\tx' AS t, E'\\rcr' AS r, E'two\\nlines' AS n, '' AS empty"
    copy_csv(sql, tabbed, engine=analyst)
    with open_query(sql, engine=analyst) as stream:
        write_csv(stream.columns, stream.batches(), slow)
    assert tabbed.getvalue() == slow.getvalue()
    assert next(csv.reader(io.StringIO(tabbed.getvalue().decode("utf-8-sig").split("\n", 1)[1])))[:2] == ["'\tx", "'\rcr"]
    # Failures in the middle of the COPY are the runner's errors, and the pool is fine after.
    with pytest.raises(QueryFailed, match="division by zero"):
        copy_csv("SELECT 1 / (g - 9000) AS x FROM generate_series(1, 12000) g", io.BytesIO(), engine=analyst)
    with pytest.raises(QueryFailed, match="ran longer than 0.3 s"):
        copy_csv("SELECT count(*) FROM generate_series(1, 100000000) g", io.BytesIO(), engine=analyst, timeout_ms=300)
    assert copy_csv("SELECT 1 AS one", io.BytesIO(), engine=analyst) == 1
    # What COPY cannot take comes back as None with nothing written.
    empty = io.BytesIO()
    assert copy_csv("SELECT 1 AS a, 2 AS a", empty, engine=analyst) is None and empty.getvalue() == b""
    with pytest.raises(QueryRejected, match="function pg_read_file is not allowed"):
        copy_csv("SELECT pg_read_file('/etc/passwd')", io.BytesIO(), engine=analyst)


def test_copy_csv_with_parameters_passes_them_as_settings_and_matches_the_cursor_path(analyst):
    sql, params = bind_parameters(
        "SELECT g AS n, {{label}} || g AS label, d::date AS day FROM generate_series(1, {{top:number}}) g, "
        "generate_series(date '2026-01-01', date '2026-03-01', interval '1 day') d "
        "WHERE d::date BETWEEN {{span:daterange}} ORDER BY g, day",
        {"label": "'); DROP TABLE mart.orders; --", "top": "3", "span": (date(2026, 1, 30), date(2026, 2, 1))})
    fast, slow = io.BytesIO(), io.BytesIO()
    assert copy_csv(sql, fast, params=params, engine=analyst) == 9
    with open_query(sql, params, engine=analyst) as stream:
        write_csv(stream.columns, stream.batches(), slow)
    assert fast.getvalue() == slow.getvalue()
    rows = list(csv.reader(io.StringIO(fast.getvalue().decode("utf-8-sig"))))
    assert rows[1] == ["1", "'); DROP TABLE mart.orders; --1", "2026-01-30"] and rows[-1][2] == "2026-02-01"
    # Escaped colons, and parameter names differing only in case, read as the cursor path reads them.
    sql, params = bind_parameters("SELECT 'a\\:b' AS t, {{Foo}} AS upper_foo, {{foo}} AS lower_foo", {"Foo": "A", "foo": "b"})
    fast, slow = io.BytesIO(), io.BytesIO()
    copy_csv(sql, fast, params=params, engine=analyst)
    with open_query(sql, params, engine=analyst) as stream:
        write_csv(stream.columns, stream.batches(), slow)
    assert fast.getvalue() == slow.getvalue() and fast.getvalue().decode("utf-8-sig").splitlines()[1] == "a:b,A,b"
    # A text parameter PostgreSQL would have read as a number: COPY declines, the cursor path binds it.
    assert copy_csv("SELECT 1 AS one WHERE 5 > :n", io.BytesIO(), params={"n": "3"}, engine=analyst) is None

