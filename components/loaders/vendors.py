"""The vendors page's loaders, keyed on the filters and the version of the days they read
(loaders.version_for); each returns a small aggregate."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics import vendors as av
from analytics.filters import Filters
from components.loaders import read, tz, version_for


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def load_vendor_table(f: Filters, rollup_version: int) -> pd.DataFrame:
    """Returns compute_vendor_table(f): every vendor with its figures and ranks."""
    with read() as conn:
        return av.compute_vendor_table(conn, f, tz=tz())


@st.cache_data(ttl=600, show_spinner=False, max_entries=256)
def load_vendor_search(text: str, rollup_version: int) -> list[int]:
    """Returns the ids of vendors whose name contains text."""
    with read() as conn:
        return av.fetch_matching_vendor_ids(conn, text)


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def load_hhi_series(f: Filters, rollup_version: int) -> pd.DataFrame:
    """Returns (month, vendors, gmv, hhi) rows up to f's period end."""
    with read() as conn:
        return av.fetch_hhi_series(conn, f, tz=tz())


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def load_lifecycle(f: Filters, rollup_version: int) -> av.Lifecycle:
    """Returns new, growing, declining and churned vendors."""
    # Keyed on every day's version (a vendor is new when it never sold before the period), the
    # table it starts from on its own days'.
    table = load_vendor_table(f, version_for(f))
    with read() as conn:
        return av.compute_lifecycle(conn, f, table, tz=tz())


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def load_vendor_detail(f: Filters, vendor_id: int, rollup_version: int) -> av.VendorDetail | None:
    """Returns one vendor's profile, products, customers, refunds and share of category (None: gone)."""
    table = load_vendor_table(f, version_for(f))
    with read() as conn:
        return av.compute_vendor_detail(conn, f, vendor_id, table=table, tz=tz())


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def load_vendor_trend(f: Filters, vendor_id: int, metric: str,
                      rollup_version: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Returns the vendor's metric per bucket of the period, and of the comparison period (or None)."""
    with read() as conn:
        cur = av.fetch_vendor_trend(conn, f, vendor_id, metric, tz=tz())
        prev = av.fetch_vendor_trend(conn, f, vendor_id, metric, f.compare, tz=tz()) if f.compare else None
    return cur, prev
