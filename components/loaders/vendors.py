"""The vendors page's loaders; each returns a small aggregate. Each public `load_*` takes the filters
and the page's choices; its cached twin is keyed on those and on the version of the days the figures
read (loaders.version_for, or every day's version where a figure depends on all history), so
callers never handle versions."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics import vendors as av
from analytics.filters import Filters
from components.loaders import read, tz, version, version_for


def load_vendor_table(f: Filters) -> pd.DataFrame:
    """Returns compute_vendor_table(f): every vendor with its figures and ranks."""
    return _load_vendor_table(f, version_for(f))


def load_vendor_search(text: str) -> list[int]:
    """Returns the ids of vendors whose name contains text."""
    return _load_vendor_search(text, version())


def load_hhi_series(f: Filters) -> pd.DataFrame:
    """Returns (month, vendors, gmv, hhi) rows up to f's period end."""
    return _load_hhi_series(f, version_for(f))


def load_lifecycle(f: Filters) -> av.Lifecycle:
    """Returns new, growing, declining and churned vendors."""
    # Keyed on every day's version: a vendor is new when it never sold before the period.
    return _load_lifecycle(f, version())


def load_vendor_detail(f: Filters, vendor_id: int) -> av.VendorDetail | None:
    """Returns one vendor's profile, products, customers, refunds and share of category (None: gone)."""
    return _load_vendor_detail(f, vendor_id, version_for(f))


def load_vendor_trend(f: Filters, vendor_id: int, metric: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Returns the vendor's metric per bucket of the period, and of the comparison period (or None)."""
    return _load_vendor_trend(f, vendor_id, metric, version_for(f))


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def _load_vendor_table(f: Filters, days_version: int) -> pd.DataFrame:
    with read() as conn:
        return av.compute_vendor_table(conn, f, tz=tz())


@st.cache_data(ttl=600, show_spinner=False, max_entries=256)
def _load_vendor_search(text: str, rollup_version: int) -> list[int]:
    with read() as conn:
        return av.fetch_matching_vendor_ids(conn, text)


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def _load_hhi_series(f: Filters, days_version: int) -> pd.DataFrame:
    with read() as conn:
        return av.fetch_hhi_series(conn, f, tz=tz())


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def _load_lifecycle(f: Filters, rollup_version: int) -> av.Lifecycle:
    table = load_vendor_table(f)   # cached on its own days' version
    with read() as conn:
        return av.compute_lifecycle(conn, f, table, tz=tz())


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def _load_vendor_detail(f: Filters, vendor_id: int, days_version: int) -> av.VendorDetail | None:
    table = load_vendor_table(f)
    with read() as conn:
        return av.compute_vendor_detail(conn, f, vendor_id, table=table, tz=tz())


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def _load_vendor_trend(f: Filters, vendor_id: int, metric: str,
                       days_version: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    with read() as conn:
        cur = av.fetch_vendor_trend(conn, f, vendor_id, metric, tz=tz())
        prev = av.fetch_vendor_trend(conn, f, vendor_id, metric, f.compare, tz=tz()) if f.compare else None
    return cur, prev
