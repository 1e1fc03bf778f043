"""Forecasting: any additive metric for the total or one vendor, category, region, channel or
business model, with the model chosen by a backtest and earlier forecasts against the actuals."""
from __future__ import annotations

from datetime import timedelta

import streamlit as st

from analytics.forecasting import ForecastError
from components import forecast_widgets as W
from components import loaders
from components.auth import require_role
from components.loaders.forecasting import load_forecast, load_history

require_role("viewer", "analyst", "admin")   # the marketplace's staff; vendors have their own pages
st.title("Forecasting")
st.caption("Prophet, exponential smoothing and a seasonal-naive baseline are each backtested on the series; "
           "the most accurate one forecasts it. Whole periods only: the current week or month is left out.")
picked = W.controls(key="fc")
if picked is None:
    st.stop()
series, horizon, model, country = picked
try:
    forecast, source = load_forecast(series, horizon, model, country)
except ForecastError as ex:
    st.warning(f"This series cannot be forecast: {ex}.", icon=":material/warning:")
    st.stop()
st.caption(source)
history = load_history(series, loaders.local_today() - timedelta(days=1))
W.render_forecast(series, forecast, history, key="fc")
W.render_backtest(series, forecast, key="fc")
W.render_tracking(series, key="fc")
