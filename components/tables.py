"""Ranked tables with share and change against the comparison period."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics.metrics import format_change, get_metric
from components.theme import NUMBER_FORMAT


def ranked_table(cur: pd.DataFrame, prev: pd.DataFrame | None, metrics: tuple[str, ...],
                 names: dict | None = None, label: str = "Name", total: float | None = None) -> pd.DataFrame:
    """Returns cur's rows with a name column, share of total (default: cur's sum) of the first
    metric, and its change against prev."""
    first = metrics[0]
    out = pd.DataFrame({label: [(names or {}).get(k, k) for k in cur["key"]]})
    for m in metrics:
        out[get_metric(m).label] = cur[m].to_numpy()
    total = total or cur[first].sum()
    out["Share"] = (cur[first] / total).to_numpy() if total else 0.0
    if prev is not None:
        before = prev.set_index("key")[first].reindex(cur["key"])
        out["Change"] = [format_change(first, now, was) or ("new" if not (was == was and was) else "")
                         for now, was in zip(cur[first], before)]
    return out


def render_ranked_table(df: pd.DataFrame, metrics: tuple[str, ...], *, key: str) -> None:
    """Draws a ranked table with money, counts and percentages formatted."""
    config = {get_metric(m).label: metric_column(m) for m in metrics}
    config["Share"] = st.column_config.ProgressColumn("Share", format="percent", min_value=0, max_value=1,
                                                      width="small")
    if "Change" in df:
        config["Change"] = st.column_config.TextColumn("Change", help="Against the comparison period")
    st.dataframe(df, key=key, hide_index=True, column_config=config, width="stretch")


def metric_column(metric: str, title: str | None = None) -> dict:
    """Returns the table column of a glossary metric: its label (or title), its definition as help,
    its number format."""
    m = get_metric(metric)
    return st.column_config.NumberColumn(title or m.label, help=m.description, format=NUMBER_FORMAT[m.fmt])


def table_height(rows: int, most: int = 20) -> int:
    """Returns a st.dataframe height showing up to `most` rows without scrolling."""
    return 35 * (min(max(rows, 1), most) + 1) + 2
