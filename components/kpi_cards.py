"""KPI cards: value, change against the comparison period, sparkline, progress to target."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics.metrics import format_change, format_value, get_metric


def render_kpi_cards(kpi_df: pd.DataFrame, sparks: pd.DataFrame | None, *, per_row: int = 5,
                     key: str) -> None:
    """Draws one card per row of kpi_df (metric, current, previous and, when it has the column, target)."""
    targets = "target" in kpi_df
    rows = list(kpi_df.itertuples(index=False))
    for start in range(0, len(rows), per_row):
        cols = st.columns(per_row)
        for col, r in zip(cols, rows[start:start + per_row]):
            m = get_metric(r.metric)
            spark = None
            if sparks is not None and r.metric in sparks and len(sparks) > 1:
                spark = [0.0 if pd.isna(v) else float(v) for v in sparks[r.metric]]
            with col.container(key=f"{key}_{r.metric}", border=True):
                st.metric(
                    m.label, format_value(r.metric, r.current),
                    delta=format_change(r.metric, r.current, r.previous),
                    delta_color="normal" if m.higher_is_better else "inverse",
                    help=m.description + ("" if pd.isna(r.previous) else
                                          f"\n\nComparison period: {format_value(r.metric, r.previous)}"),
                    chart_data=spark, chart_type="area",
                )
                if not targets:
                    continue
                if not pd.isna(r.target) and not pd.isna(r.current) and r.target > 0:
                    share = r.current / r.target
                    st.progress(min(max(share, 0.0), 1.0),
                                text=f"{share * 100:.0f} % of target {format_value(r.metric, r.target)}")
                else:
                    # Same height as a card with a target, so the grid stays even.
                    st.progress(0.0, text="No target for this period")
