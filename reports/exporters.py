"""Exporters: DataFrames to file bytes. They never know who asked or how the bytes are sent."""
from __future__ import annotations

import io
import re

import pandas as pd

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """Returns a copy where text cells that a spreadsheet would run as formulas start with a quote.

    Only text is touched: a real negative number stays a number.
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v)
    return out


def to_csv(frame: pd.DataFrame) -> bytes:
    """Returns frame as UTF-8 CSV bytes (with a BOM so Excel reads accents), formulas neutralised."""
    return neutralise(frame).to_csv(index=False).encode("utf-8-sig")


def to_xlsx(frame: pd.DataFrame, *, sheet: str = "data") -> bytes:
    """Returns frame as an Excel workbook: formulas neutralised, times without zone, header frozen."""
    out = neutralise(frame)
    for col in out.columns:
        # Excel has no time zones: write local wall-clock times.
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_localize(None)
    # Excel refuses []:*?/\ in sheet names, a leading or trailing quote, and more than 31 characters.
    name = re.sub(r"[\[\]:*?/\\]", " ", sheet).strip().strip("'")[:31].strip() or "data"
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xl:
        out.to_excel(xl, index=False, sheet_name=name)
        ws = xl.sheets[name]
        ws.freeze_panes = "A2"
        for i, col in enumerate(out.columns, start=1):
            width = max([len(str(col))] + [len(str(v)) for v in out[col].head(200)])
            ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = min(60, width + 2)
    return buf.getvalue()
