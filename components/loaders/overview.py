"""The overview's loaders: the period's figures and the comparison period's, each cached on the
version of its own days and read in one snapshot per part."""
from __future__ import annotations

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


def load_overview(f: Filters) -> ov.OverviewFigures:
    """Returns the overview's figures, the period's and the comparison period's each cached on the
    version of its own days."""
    return ov.overview_figures(_load_period(f, version_of(f.period)), _load_comparison(f, version_of(f.compare)))
