"""The vendor portal's loaders (issue 22): every query runs on the vendor's own database role
(components.loaders.read_figures, engine_for), which PostgreSQL limits to the vendor's rows.

Cached figures are keyed on the vendor ids as well as the filters, so one vendor's cached figures
are never another's."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics import vendor_portal as VP
from analytics.filters import Filters
from analytics.kpis import fetch_vendor_names
from components.loaders import engine_for, read, read_figures, version, version_of
from data.peer_benchmarks import PRESETS as BENCHMARKED_PRESETS, fetch_vendor_benchmarks


__all__ = ["BENCHMARKED_PRESETS", "engine_for", "load_own_vendor_names", "load_vendor_benchmarks",
           "load_vendor_overview"]


@st.cache_data(ttl=600, show_spinner=False)
def _load_overview(vendor_ids: tuple[int, ...], f: Filters, days_versions: tuple[int, int]) -> VP.VendorOverview:
    with read_figures(f, vendor_ids) as (conn, f, kw):
        return VP.compute_vendor_overview(conn, f, vendor_ids, **kw)


def load_vendor_overview(vendor_ids: tuple[int, ...], f: Filters) -> VP.VendorOverview:
    """Returns the vendor's overview for f, cached on the vendor ids, f and the versions of its days."""
    days = (version_of(f.period), version_of(f.compare))
    return _load_overview(tuple(vendor_ids), f, days)


@st.cache_data(ttl=600, show_spinner=False)
def _load_benchmarks(vendor_ids: tuple[int, ...], preset: str, rollup_version: int) -> pd.DataFrame:
    with read(engine_for(vendor_ids)) as conn:
        return fetch_vendor_benchmarks(conn, preset, list(vendor_ids))


def load_vendor_benchmarks(vendor_ids: tuple[int, ...], preset: str) -> pd.DataFrame:
    """Returns the vendor's standing and its category's peer quartiles for a period preset (rows of
    data.peer_benchmarks.fetch_vendor_benchmarks), as the scheduler last computed them."""
    return _load_benchmarks(tuple(vendor_ids), preset, version())


@st.cache_data(ttl=3600, show_spinner=False)
def load_own_vendor_names(vendor_ids: tuple[int, ...]) -> dict[int, str]:
    """Returns {vendor_id: name} of the vendor user's own vendors, read on their role."""
    with read(engine_for(vendor_ids)) as conn:
        return fetch_vendor_names(conn, list(vendor_ids))
