"""The forecasting page's loaders: the nightly run's stored forecast when it answers the same
question, else one computed here (cached), the history and earlier forecasts against actuals.
A vendor user's (vendor_ids) are computed on their own database role (loaders.read_figures); the
nightly run's store, in schema app, is the staff's."""
from __future__ import annotations

import time
from datetime import date, timedelta

import pandas as pd
import streamlit as st

from analytics import forecast_series as FS
from analytics import forecasting as FC
from components import loaders
from components.loaders import read, read_figures, version
from data.settings import load_settings


def load_history(s: FS.Series, last_day: date, vendor_ids: tuple[int, ...] = ()) -> pd.DataFrame:
    """Returns the series' (ds, y) history up to last_day, cached on the rollup version."""
    return _load_history(s, last_day, vendor_ids, version())


@st.cache_data(ttl=600, show_spinner=False)
def _load_history(s: FS.Series, last_day: date, vendor_ids: tuple[int, ...], rollup_version: int) -> pd.DataFrame:
    with read_figures(None, vendor_ids) as (conn, _, kw):
        return FS.fetch_metric_history(conn, s, last_day=last_day, **kw)


@st.cache_data(ttl=300, show_spinner=False)
def load_stored(s: FS.Series, run_date: date, horizon: int) -> FS.StoredForecast | None:
    """Returns the nightly run's forecast of s made on run_date, if one covers horizon."""
    with read() as conn:
        return FS.fetch_stored_forecast(conn, s, run_date=run_date, horizon=horizon)


@st.cache_data(ttl=3600, show_spinner=False, max_entries=20)
def _load_computed(s: FS.Series, last_day: date, horizon: int, model: str, country: str | None,
                   vendor_ids: tuple[int, ...], rollup_version: int) -> FC.Forecast:
    with read_figures(None, vendor_ids) as (conn, _, kw):
        return FS.compute_series_forecast(conn, s, last_day=last_day, horizon=horizon, model=model, country=country,
                                          **kw)


def load_realised(s: FS.Series, before: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (runs, points): earlier stored forecasts of s against the actuals before `before`,
    cached on the rollup version."""
    return _load_realised(s, before, version())


@st.cache_data(ttl=600, show_spinner=False)
def _load_realised(s: FS.Series, before: date, rollup_version: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    with read_figures(None) as (conn, _, kw):
        actuals = FS.fetch_metric_history(conn, s, last_day=before - timedelta(days=1), **kw)
        return FS.compute_realised_errors(conn, s, actuals, before=before)


def load_forecast(s: FS.Series, horizon: int, model: str, country: str | None,
                  vendor_ids: tuple[int, ...] = ()) -> tuple[FC.Forecast, str]:
    """Returns the forecast and where it comes from: the nightly run when it answers the same
    question (the staff's), else computed now (cached)."""
    today = loaders.local_today()
    if model == "auto" and country is None and not vendor_ids:
        stored = load_stored(s, today, horizon)
        if stored is not None:
            when = pd.Timestamp(stored.created_at).tz_convert(load_settings().tz)
            return stored.forecast, f"From the nightly run of {when:%d %b %H:%M}."
    started = time.perf_counter()
    with st.spinner("Fitting the models and backtesting them…"):
        f = _load_computed(s, today - timedelta(days=1), horizon, model, country, vendor_ids, version())
    took = time.perf_counter() - started
    return f, ("Computed now" + (f" in {took:.1f} s" if took > 0.5 else " (from the cache)") + ".")
