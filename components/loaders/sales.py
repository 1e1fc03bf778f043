"""The sales page's loaders: trend, breakdown and the four sections. Each public `load_*` takes the
filters, the page's choices and the vendor user's vendor ids (none for the staff: see
loaders.read_figures); its cached twin is keyed on those and on the version of the days the figures
read (loaders.version_for), so callers never handle versions."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics import sales
from analytics.filters import Filters
from components.loaders import read_figures, version_for

SECTIONS = {"payments": sales.fetch_payments, "funnel": sales.fetch_funnel,
            "marketing": sales.fetch_marketing, "profitability": sales.fetch_profitability}


def load_trend(f: Filters, metric: str, vendor_ids: tuple[int, ...] = ()) -> pd.DataFrame:
    """Returns fetch_metric_trend(f, metric)."""
    return _load_trend(f, metric, vendor_ids, version_for(f))


def load_breakdown(f: Filters, by: str, metric: str, vendor_ids: tuple[int, ...] = ()) -> pd.DataFrame:
    """Returns fetch_breakdown_growth(f, by, metric)."""
    return _load_breakdown(f, by, metric, vendor_ids, version_for(f))


def load_section(name: str, f: Filters, vendor_ids: tuple[int, ...] = ()) -> pd.DataFrame | sales.Marketing | str:
    """Returns the section's figures, or the NotApplicable message as a string."""
    return _load_section(name, f, vendor_ids, version_for(f))


@st.cache_data(ttl=600, show_spinner=False)
def _load_trend(f: Filters, metric: str, vendor_ids: tuple[int, ...], days_version: int) -> pd.DataFrame:
    with read_figures(f, vendor_ids) as (conn, f, kw):
        return sales.fetch_metric_trend(conn, f, metric, **kw)


@st.cache_data(ttl=600, show_spinner=False)
def _load_breakdown(f: Filters, by: str, metric: str, vendor_ids: tuple[int, ...], days_version: int) -> pd.DataFrame:
    with read_figures(f, vendor_ids) as (conn, f, kw):
        return sales.fetch_breakdown_growth(conn, f, by, metric, **kw)


@st.cache_data(ttl=600, show_spinner=False)
def _load_section(name: str, f: Filters, vendor_ids: tuple[int, ...],
                  days_version: int) -> pd.DataFrame | sales.Marketing | str:
    try:
        with read_figures(f, vendor_ids) as (conn, f, kw):
            return SECTIONS[name](conn, f, **kw)
    except sales.NotApplicable as ex:
        return str(ex)
