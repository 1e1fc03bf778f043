"""Forecasting: any additive metric for the total or one vendor, category, region, channel or
business model, with the model chosen by a backtest and earlier forecasts against the actuals.
A vendor user forecasts their own sales, computed on their own database role."""
from __future__ import annotations

from datetime import timedelta

import streamlit as st

from analytics.forecasting import ForecastError
from components import forecast_widgets as W
from components import loaders
from components.auth import require_scope
from components.loaders.forecasting import load_forecast, load_history
from components.loaders.portal import load_own_vendor_names

vendor_ids = require_scope("viewer", "analyst", "admin")
st.title("Forecasting")
st.caption("Prophet, exponential smoothing and a seasonal-naive baseline are each backtested on the series; "
           "the most accurate one forecasts it. Whole periods only: the current week or month is left out."
           + (" Your own order lines only." if vendor_ids else ""))
picked = W.controls(key="fc", own_vendors=load_own_vendor_names(vendor_ids) if vendor_ids else None)
if picked is None:
    st.stop()
series, horizon, model, country = picked
try:
    forecast, source = load_forecast(series, horizon, model, country, vendor_ids)
except ForecastError as ex:
    st.warning(f"This series cannot be forecast: {ex}.", icon=":material/warning:")
    st.stop()
st.caption(source)
history = load_history(series, loaders.local_today() - timedelta(days=1), vendor_ids)
W.render_forecast(series, forecast, history, key="fc")
W.render_backtest(series, forecast, key="fc")
if not vendor_ids:   # the nightly run's stored forecasts are the staff's
    W.render_tracking(series, key="fc")
