"""Charts: metric trend with the comparison period overlaid, share-of-total bars, and a saved
query's chart (the SQL page's chart builder and the dashboards draw it with the same function)."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics.metrics import get_metric
from components.theme import COMPARE, HOVER_FORMAT, PALETTE, TICK_FORMAT, TICK_PREFIX


def render_trend(cur: pd.DataFrame, prev: pd.DataFrame | None, metrics: tuple[str, ...], *,
                 compare_label: str = "Comparison", key: str) -> None:
    """Draws metrics over cur's buckets; prev (same bucket count, earlier dates) dashed beneath."""
    fmt = get_metric(metrics[0]).fmt
    fig = go.Figure()
    for i, m in enumerate(metrics):
        label = get_metric(m).label
        if prev is not None and len(prev):
            n = min(len(prev), len(cur))
            fig.add_scatter(
                x=cur["key"].iloc[:n], y=prev[m].iloc[:n], name=f"{label} · {compare_label}",
                line=dict(color=COMPARE, dash="dot", width=1.5),
                customdata=prev["key"].iloc[:n].astype(str),
                hovertemplate=f"%{{y:{HOVER_FORMAT[fmt]}}} (%{{customdata}})",
            )
        fig.add_scatter(x=cur["key"], y=cur[m], name=label, line=dict(color=PALETTE[i], width=2.5),
                        hovertemplate=f"%{{y:{HOVER_FORMAT[fmt]}}}")
    fig.update_layout(height=340, yaxis_tickformat=TICK_FORMAT[fmt], yaxis_tickprefix=TICK_PREFIX[fmt])
    st.plotly_chart(fig, key=key, width="stretch")


def render_share_bars(df: pd.DataFrame, metric: str, *, title: str, labels: dict | None = None,
                      key: str) -> None:
    """Draws horizontal bars of metric per key with each value's share of the total."""
    d = df[["key", metric]].copy()
    total = d[metric].sum()
    d["share"] = d[metric] / total if total else 0.0
    d["label"] = d["key"].map(lambda k: (labels or {}).get(k, str(k)))
    d = d.sort_values(metric)
    fmt = get_metric(metric).fmt
    fig = go.Figure(go.Bar(
        x=d[metric], y=d["label"], orientation="h", marker_color=PALETTE[0],
        text=[f"{s:.0%}" for s in d["share"]], textposition="outside", cliponaxis=False,
        hovertemplate=f"%{{y}}: %{{x:{HOVER_FORMAT[fmt]}}}<extra></extra>",
    ))
    fig.update_layout(title=title, height=80 + 36 * len(d), xaxis_tickformat=TICK_FORMAT[fmt],
                      xaxis_tickprefix=TICK_PREFIX[fmt],
                      hovermode="closest", margin=dict(l=10, r=40, t=40, b=10))
    st.plotly_chart(fig, key=key, width="stretch")


# The chart types of a saved query's chart spec {"type", "x", "y", "colour"}: the SQL page offers
# them, dashboards redraw a pinned spec with saved_chart_figure.
SAVED_CHART_TYPES = {"line": px.line, "bar": px.bar, "area": px.area, "scatter": px.scatter, "pie": px.pie}


def saved_chart_figure(frame: pd.DataFrame, chart: dict) -> go.Figure | None:
    """Returns the figure of a saved query's chart spec over frame; None when the spec draws no chart
    (a table, or columns the result no longer has)."""
    kind = chart.get("type")
    if kind not in SAVED_CHART_TYPES or not {chart.get("x"), chart.get("y")} <= set(frame.columns):
        return None
    if kind == "pie":
        return px.pie(frame, names=chart["x"], values=chart["y"])
    colour = chart.get("colour") if chart.get("colour") in frame.columns else None
    return SAVED_CHART_TYPES[kind](frame, x=chart["x"], y=chart["y"], color=colour)


def render_saved_chart(frame: pd.DataFrame, chart: dict, *, height: int, top: int, key: str) -> bool:
    """Draws a saved query's chart spec over frame; returns False (drawing nothing) when it draws no chart."""
    fig = saved_chart_figure(frame, chart)
    if fig is None:
        return False
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=top, b=10))
    st.plotly_chart(fig, key=key, width="stretch")
    return True
