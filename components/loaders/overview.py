"""The overview's loaders: the period's figures and the comparison period's, each cached on the
version of its own days and read in one snapshot per part; the comparison period's figures of the
period's top vendors are cached apart, on those vendors too."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics import overview as ov
from analytics.filters import Filters
from components.loaders import snapshot, tz, version_of


@st.cache_data(ttl=600, show_spinner=False)
def _load_period(f: Filters, days_version: int) -> dict:
    with snapshot() as conn:
        return ov.compute_period(conn, f, tz=tz())


@st.cache_data(ttl=600, show_spinner=False)
def _load_comparison(f: Filters, days_version: int) -> dict | None:
    with snapshot() as conn:
        return ov.compute_comparison(conn, f, tz=tz())


@st.cache_data(ttl=600, show_spinner=False)
def _load_vendors_before(f: Filters, top_vendors: tuple[int, ...], days_version: int) -> pd.DataFrame | None:
    with snapshot() as conn:
        return ov.compute_vendors_before(conn, f, top_vendors, tz=tz())


def load_overview(f: Filters) -> ov.OverviewFigures:
    """Returns the overview's figures, the period's and the comparison period's each cached on the
    version of its own days."""
    current = _load_period(f, version_of(f.period))
    before = version_of(f.compare)
    return ov.overview_figures(current, _load_comparison(f, before),
                               _load_vendors_before(f, ov.top_vendor_ids(current), before))
