"""Exporters: DataFrames to file bytes. They never know who asked or how the bytes are sent."""
from __future__ import annotations

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
