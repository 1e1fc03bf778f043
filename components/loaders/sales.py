"""The sales page's loaders: trend, breakdown and the four sections, keyed on the filters and the
version of the days they read (loaders.version_for)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics import sales
from analytics.filters import Filters
from components.loaders import read, tz

SECTIONS = {"payments": sales.fetch_payments, "funnel": sales.fetch_funnel,
            "marketing": sales.fetch_marketing, "profitability": sales.fetch_profitability}


@st.cache_data(ttl=600, show_spinner=False)
def load_trend(f: Filters, metric: str, rollup_version: int) -> pd.DataFrame:
    """Returns fetch_metric_trend(f, metric)."""
    with read() as conn:
        return sales.fetch_metric_trend(conn, f, metric, tz=tz())


@st.cache_data(ttl=600, show_spinner=False)
def load_breakdown(f: Filters, by: str, metric: str, rollup_version: int) -> pd.DataFrame:
    """Returns fetch_breakdown_growth(f, by, metric)."""
    with read() as conn:
        return sales.fetch_breakdown_growth(conn, f, by, metric, tz=tz())


@st.cache_data(ttl=600, show_spinner=False)
def load_section(name: str, f: Filters, rollup_version: int) -> pd.DataFrame | sales.Marketing | str:
    """Returns the section's figures, or the NotApplicable message as a string."""
    try:
        with read() as conn:
            return SECTIONS[name](conn, f, tz=tz())
    except sales.NotApplicable as ex:
        return str(ex)
