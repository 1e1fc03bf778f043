"""One download control for every chart and table: the data behind it as CSV or Excel."""
from __future__ import annotations

import re
from collections.abc import Callable

import pandas as pd
import streamlit as st

from reports.exporters import to_csv, to_xlsx


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "data"


def render_downloads(frame: pd.DataFrame | Callable[[], pd.DataFrame], name: str, *, key: str) -> None:
    """Draws "CSV" and "Excel" buttons for frame (the data a chart or table shows), side by side.

    Pass the frame with people's column names and units already applied; the files carry exactly
    what is shown. Bytes are built only when the user clicks (lazy callables). frame may itself be
    a callable returning the frame: a long list the page does not show is then queried on click.
    """
    if not callable(frame) and (frame is None or frame.empty):
        return
    get = frame if callable(frame) else (lambda: frame)
    slug = _slug(name)
    left, right, _ = st.columns([1, 1, 6], gap="small")
    left.download_button("CSV", lambda: to_csv(get()), file_name=f"{slug}.csv", mime="text/csv",
                         key=f"{key}_csv", icon=":material/download:", on_click="ignore", help=f"Download {name} as CSV")
    right.download_button("Excel", lambda: to_xlsx(get(), sheet=name), file_name=f"{slug}.xlsx",
                          mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                          key=f"{key}_xlsx", icon=":material/download:", on_click="ignore", help=f"Download {name} as Excel")
