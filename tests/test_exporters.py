"""Exporters: formula neutralising, Excel sheet names and time zones."""
from __future__ import annotations

import io

import openpyxl
import pandas as pd
import pytest

from reports.exporters import to_csv, to_xlsx


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
