"""The products page's loaders, keyed on the filters, the page's controls and the version of the
days they read (loaders.version_for)."""
from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from analytics import products as P
from analytics.filters import Filters
from components.loaders import read, snapshot, tz


@st.cache_data(ttl=600, show_spinner=False)
def load_products(f: Filters, metric: str, n: int, min_gmv: float, margin_n: int, rollup_version: int) -> dict:
    """Returns compute_product_figures(f) with the comparison period, read in one snapshot."""
    with snapshot() as conn:
        return P.compute_product_figures(conn, f, metric=metric, n=n, min_gmv=min_gmv, margin_n=margin_n,
                                         compare=True, tz=tz())


@st.cache_data(ttl=600, show_spinner=False)
def load_inventory(f: Filters, as_of: date, low: int, high: int, rollup_version: int) -> dict:
    """Returns fetch_inventory_summary(f) as of as_of with the page's thresholds."""
    with read() as conn:
        return P.fetch_inventory_summary(conn, f, as_of, low=low, high=high, tz=tz())


@st.cache_data(ttl=600, show_spinner=False, max_entries=4)
def load_all_products(f: Filters, rollup_version: int) -> pd.DataFrame:
    """Returns fetch_product_metrics(f): every product ordered in the period (for the full download)."""
    with read() as conn:
        return P.fetch_product_metrics(conn, f, tz=tz())
