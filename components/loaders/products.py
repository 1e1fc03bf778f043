"""The products page's loaders. Each public `load_*` takes the filters, the page's controls and the
vendor user's vendor ids (none for the staff: see loaders.read_figures); its cached twin is keyed on
those and on the version of the days the figures read (loaders.version_for), so callers never handle
versions."""
from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from analytics import products as P
from analytics.filters import Filters
from components.loaders import read_figures, version_for


def load_products(f: Filters, metric: str, n: int, min_gmv: float, margin_n: int,
                  vendor_ids: tuple[int, ...] = ()) -> dict:
    """Returns compute_product_figures(f) with the comparison period, read in one snapshot."""
    return _load_products(f, metric, n, min_gmv, margin_n, vendor_ids, version_for(f))


def load_inventory(f: Filters, as_of: date, low: int, high: int, vendor_ids: tuple[int, ...] = ()) -> dict:
    """Returns fetch_inventory_summary(f) as of as_of with the page's thresholds."""
    return _load_inventory(f, as_of, low, high, vendor_ids, version_for(f))


def load_all_products(f: Filters, vendor_ids: tuple[int, ...] = ()) -> pd.DataFrame:
    """Returns fetch_product_metrics(f): every product ordered in the period (for the full download)."""
    return _load_all_products(f, vendor_ids, version_for(f))


@st.cache_data(ttl=600, show_spinner=False)
def _load_products(f: Filters, metric: str, n: int, min_gmv: float, margin_n: int, vendor_ids: tuple[int, ...],
                   days_version: int) -> dict:
    with read_figures(f, vendor_ids, one_snapshot=True) as (conn, f, kw):
        return P.compute_product_figures(conn, f, metric=metric, n=n, min_gmv=min_gmv, margin_n=margin_n,
                                         compare=True, **kw)


@st.cache_data(ttl=600, show_spinner=False)
def _load_inventory(f: Filters, as_of: date, low: int, high: int, vendor_ids: tuple[int, ...],
                    days_version: int) -> dict:
    with read_figures(f, vendor_ids) as (conn, f, kw):
        return P.fetch_inventory_summary(conn, f, as_of, low=low, high=high, **kw)


@st.cache_data(ttl=600, show_spinner=False, max_entries=4)
def _load_all_products(f: Filters, vendor_ids: tuple[int, ...], days_version: int) -> pd.DataFrame:
    with read_figures(f, vendor_ids) as (conn, f, kw):
        return P.fetch_product_metrics(conn, f, **kw)
