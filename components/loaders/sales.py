"""The sales page's loaders: trend, breakdown and the four sections. Each public `load_*` takes the
filters and the page's choices; its cached twin is keyed on those and on the version of the days
the figures read (loaders.version_for), so callers never handle versions."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics import sales
from analytics.filters import Filters
from components.loaders import read, tz, version_for

SECTIONS = {"payments": sales.fetch_payments, "funnel": sales.fetch_funnel,
            "marketing": sales.fetch_marketing, "profitability": sales.fetch_profitability}


def load_trend(f: Filters, metric: str) -> pd.DataFrame:
    """Returns fetch_metric_trend(f, metric)."""
    return _load_trend(f, metric, version_for(f))


def load_breakdown(f: Filters, by: str, metric: str) -> pd.DataFrame:
    """Returns fetch_breakdown_growth(f, by, metric)."""
    return _load_breakdown(f, by, metric, version_for(f))


def load_section(name: str, f: Filters) -> pd.DataFrame | sales.Marketing | str:
    """Returns the section's figures, or the NotApplicable message as a string."""
    return _load_section(name, f, version_for(f))


@st.cache_data(ttl=600, show_spinner=False)
def _load_trend(f: Filters, metric: str, days_version: int) -> pd.DataFrame:
    with read() as conn:
        return sales.fetch_metric_trend(conn, f, metric, tz=tz())


@st.cache_data(ttl=600, show_spinner=False)
def _load_breakdown(f: Filters, by: str, metric: str, days_version: int) -> pd.DataFrame:
    with read() as conn:
        return sales.fetch_breakdown_growth(conn, f, by, metric, tz=tz())


@st.cache_data(ttl=600, show_spinner=False)
def _load_section(name: str, f: Filters, days_version: int) -> pd.DataFrame | sales.Marketing | str:
    try:
        with read() as conn:
            return SECTIONS[name](conn, f, tz=tz())
    except sales.NotApplicable as ex:
        return str(ex)
