"""Forecasting page widgets: the series picker, the forecast chart with its bands, the backtest,
and earlier forecasts against the actuals. Their figures come from components.loaders.forecasting."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics import forecast_series as FS
from analytics import forecasting as FC
from components import loaders
from components.downloads import render_downloads
from components.loaders.forecasting import load_realised
from components.tables import table_height
from components.theme import COMPARE, PALETTE

HISTORY_SHOWN = {"day": 365, "week": 104, "month": 36}
MODEL_CHOICES = ("auto", *FC.MODELS)
MODEL_COLORS = {"seasonal_naive": "#94a3b8", "naive": "#94a3b8", "ets": PALETTE[1], "prophet": PALETTE[2]}


# --- controls -------------------------------------------------------------------------------------

def _series_picker(left, right, values: dict, *, key: str) -> tuple[str, str]:
    """The staff's series: the total or one value of a dimension; returns (dimension, value)."""
    dim = left.selectbox("Series", list(FS.FORECAST_DIMS), format_func=FS.FORECAST_DIMS.get, key=f"{key}_dim")
    value = ""
    if dim == "vendor_id":
        names = dict(values["vendor_id"])
        picked = right.selectbox("Vendor", list(names), format_func=lambda v: names.get(v, str(v)), key=f"{key}_vendor",
                                 index=None, placeholder="Choose a vendor")
        value = "" if picked is None else str(picked)
    elif dim:
        picked = right.selectbox(FS.FORECAST_DIMS[dim], values[dim], key=f"{key}_value_{dim}", index=None,
                                 placeholder=f"Choose a {FS.FORECAST_DIMS[dim].lower()}")
        value = "" if picked is None else str(picked)
    return dim, value


def controls(*, key: str, own_vendors: dict[int, str] | None = None) -> tuple[FS.Series, int, str, str | None] | None:
    """Draws the series picker; returns (series, horizon, model, holidays' country), or None until a
    series is chosen. own_vendors: a vendor user's {vendor_id: name}, whose series are theirs only."""
    values = loaders.load_dimension_values()
    c = st.columns([2, 3, 2, 3, 2])
    metric = c[0].selectbox("Metric", FS.VENDOR_FORECAST_METRICS if own_vendors else FS.FORECAST_METRICS,
                            format_func=FS.metric_label, key=f"{key}_metric", help="Metrics that add up over time")
    grain = c[1].radio("Grain", list(FS.GRAIN_FREQ), horizontal=True, key=f"{key}_grain", format_func=str.capitalize)
    if own_vendors:
        dim = "vendor_id"
        value = str(c[2].selectbox("Vendor", list(own_vendors), format_func=own_vendors.get, key=f"{key}_own_vendor",
                                   disabled=len(own_vendors) == 1))
    else:
        dim, value = _series_picker(c[2], c[3], values, key=key)
    horizon = int(c[4].number_input(f"Horizon ({grain}s)", 1, {"day": 365, "week": 104, "month": 24}[grain],
                                    FS.DEFAULT_HORIZON[grain], key=f"{key}_horizon_{grain}"))
    with st.expander("Model and holidays"):
        a, b = st.columns(2)
        model = a.selectbox("Model", MODEL_CHOICES, key=f"{key}_model",
                            format_func=lambda m: "Automatic (lowest backtest MASE)" if m == "auto" else FC.MODEL_LABELS[m])
        country = b.selectbox("Public holidays of (Prophet only)", [None, *values["country"]], key=f"{key}_holidays",
                              format_func=lambda v: "None" if v is None else v)
    if dim and not value:
        st.info(f"Choose a {FS.FORECAST_DIMS[dim].lower()} to forecast.", icon=":material/touch_app:")
        return None
    return FS.Series(metric, grain, dim, value), horizon, model, country


# --- drawing --------------------------------------------------------------------------------------

def render_forecast(s: FS.Series, f: FC.Forecast, history: pd.DataFrame, *, key: str) -> None:
    label = FS.metric_label(s.metric)
    st.markdown(f"**Model: {FC.MODEL_LABELS[f.model]}.** {f.reason}")
    for note in f.notes:
        st.caption(f"ℹ️ {note}")
    shown = history.tail(HISTORY_SHOWN[s.grain])
    fr = f.frame
    x_band = list(fr["ds"]) + list(fr["ds"][::-1])
    chart = go.Figure([
        go.Scatter(x=x_band, y=list(fr["yhat_upper_95"]) + list(fr["yhat_lower_95"][::-1]), fill="toself",
                   fillcolor="rgba(37,99,235,0.12)", line=dict(width=0), name="95 % interval", hoverinfo="skip"),
        go.Scatter(x=x_band, y=list(fr["yhat_upper"]) + list(fr["yhat_lower"][::-1]), fill="toself",
                   fillcolor="rgba(37,99,235,0.25)", line=dict(width=0), name="80 % interval", hoverinfo="skip"),
        go.Scatter(x=shown["ds"], y=shown["y"], name="Actual", line=dict(color="#0f172a", width=1.5)),
        go.Scatter(x=fr["ds"], y=fr["yhat"], name="Forecast", line=dict(color=PALETTE[0], width=2, dash="dash")),
    ])
    chart.update_layout(height=440, title=f"{label} per {s.grain}: history and forecast",
                        yaxis_tickformat=",.3~s", yaxis_tickprefix="€" if s.metric in ("gmv", "net_revenue") else "",
                        margin=dict(l=10, r=10, t=70, b=10))
    st.plotly_chart(chart, key=f"{key}_chart", width="stretch")
    table = pd.DataFrame({"Date": fr["ds"].dt.date, "Forecast": fr["yhat"], "Lower 80 %": fr["yhat_lower"],
                          "Upper 80 %": fr["yhat_upper"], "Lower 95 %": fr["yhat_lower_95"],
                          "Upper 95 %": fr["yhat_upper_95"]})
    render_downloads(table, f"Forecast of {label}", key=f"{key}_forecast_dl")


def render_backtest(s: FS.Series, f: FC.Forecast, *, key: str) -> None:
    st.subheader("How wrong has each model been? The backtest")
    bt = f.backtest
    if bt.empty:
        st.info("The history is too short to backtest: accuracy cannot be measured yet.", icon=":material/science:")
        return
    st.caption("Each model was fitted on the history before a window of one full horizon and forecast it, for "
               "each of the last windows. MASE below 1 beats repeating the last season; sMAPE is the average "
               "relative error; coverage is how often the actual fell inside the 80 % interval (ideal: 80 %).")
    table = pd.DataFrame({"Model": [FC.MODEL_LABELS[m] + (" ✓" if m == f.model else "") for m in bt["model"]],
                          "MASE": bt["mase"], "sMAPE": bt["smape"], "80 % coverage": bt["coverage"],
                          "Windows": bt["folds"]})
    st.dataframe(table, key=f"{key}_backtest", hide_index=True, width="stretch", height=table_height(len(table)),
                 column_config={"MASE": st.column_config.NumberColumn("MASE", format="%.3f"),
                                "sMAPE": st.column_config.NumberColumn("sMAPE", format="percent"),
                                "80 % coverage": st.column_config.NumberColumn("80 % coverage", format="percent")})
    render_downloads(table, "Backtest", key=f"{key}_backtest_dl")
    bf = f.backtest_forecasts
    if bf is None or bf.empty:
        return
    # One actual line per window, so that the gap between windows is not drawn as a line.
    chart = go.Figure()
    for fold, g in bf.drop_duplicates(["fold", "ds"]).sort_values("ds").groupby("fold"):
        chart.add_trace(go.Scatter(x=g["ds"], y=g["y"], name="Actual", legendgroup="actual", showlegend=bool(fold == 1),
                                   line=dict(color="#0f172a", width=1.5)))
    for model, g in bf.groupby("model", sort=False):
        for fold, gf in g.groupby("fold"):
            chart.add_trace(go.Scatter(x=gf["ds"], y=gf["yhat"], name=FC.MODEL_LABELS[model], legendgroup=model,
                                       showlegend=bool(fold == 1),
                                       line=dict(color=MODEL_COLORS.get(model, COMPARE),
                                                 width=2.5 if model == f.model else 1.2,
                                                 dash=None if model == f.model else "dot")))
    chart.update_layout(height=360, title="Backtest forecasts against what happened",
                        yaxis_tickformat=",.3~s", margin=dict(l=10, r=10, t=60, b=10))
    st.plotly_chart(chart, key=f"{key}_backtest_chart", width="stretch")


def render_tracking(s: FS.Series, *, key: str) -> None:
    st.subheader("Earlier forecasts against the actuals")
    today = loaders.local_today()
    runs, points = load_realised(s, today)
    if runs.empty:
        st.info("No stored forecast of this series has met its actuals yet. The scheduler stores forecasts of "
                "GMV and orders per day for the total and the top vendors and categories every night.", icon=":material/history:")
        return
    table = pd.DataFrame({"Made on": runs["run_date"], "Model": runs["model"].map(FC.MODEL_LABELS),
                          "Days with actuals": runs["points"], "Mean absolute error": runs["mae"],
                          "sMAPE": runs["smape"], "Inside 80 %": runs["coverage"], "Inside 95 %": runs["coverage_95"]})
    st.dataframe(table, key=f"{key}_tracking", hide_index=True, width="stretch", height=table_height(len(table), 10),
                 column_config={"Mean absolute error": st.column_config.NumberColumn("Mean absolute error", format="%,.2f"),
                                "sMAPE": st.column_config.NumberColumn("sMAPE", format="percent"),
                                "Inside 80 %": st.column_config.NumberColumn("Inside 80 %", format="percent"),
                                "Inside 95 %": st.column_config.NumberColumn("Inside 95 %", format="percent")})
    render_downloads(table, "Forecast against actuals", key=f"{key}_tracking_dl")
    latest = points[points["run_date"] == runs["run_date"].iloc[-1]]  # the oldest run: the most actuals
    chart = go.Figure([
        go.Scatter(x=list(latest["ds"]) + list(latest["ds"][::-1]),
                   y=list(latest["yhat_upper"]) + list(latest["yhat_lower"][::-1]), fill="toself",
                   fillcolor="rgba(37,99,235,0.2)", line=dict(width=0), name="80 % interval", hoverinfo="skip"),
        go.Scatter(x=latest["ds"], y=latest["yhat"], name="Forecast", line=dict(color=PALETTE[0], dash="dash")),
        go.Scatter(x=latest["ds"], y=latest["y"], name="Actual", mode="lines+markers", line=dict(color="#0f172a")),
    ])
    chart.update_layout(height=320, title=f"Forecast made on {runs['run_date'].iloc[-1]:%d %b %Y} against what happened",
                        yaxis_tickformat=",.3~s", margin=dict(l=10, r=10, t=60, b=10))
    st.plotly_chart(chart, key=f"{key}_tracking_chart", width="stretch")
