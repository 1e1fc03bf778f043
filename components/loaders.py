"""Cached data loaders: engines as resources, figures keyed on filters and the rollup version."""
from __future__ import annotations

from datetime import date, datetime

import streamlit as st

from analytics import kpis
from analytics.filters import Filters
from analytics.overview import OverviewFigures, compute_overview
from data.db import get_analytics_engine, get_engine
from data.rollups import rollup_status
from data.settings import load_settings


@st.cache_resource(show_spinner=False)
def engine():
    """Returns the pooled engine the pages read from."""
    return get_analytics_engine(load_settings())


@st.cache_resource(show_spinner=False)
def app_engine():
    """Returns the pooled engine for the app's own tables (users, sessions, audit): never a replica."""
    return get_engine(load_settings())


@st.cache_data(ttl=20, show_spinner=False)
def freshness() -> dict:
    """Returns the rollup status; its version keys every cached figure below."""
    with engine().connect() as conn:
        return rollup_status(conn)


def version() -> int:
    return int(freshness()["version"])


def local_now() -> datetime:
    return datetime.now(load_settings().tz)


def local_today() -> date:
    return local_now().date()


@st.cache_data(ttl=600, show_spinner=False)
def overview(f: Filters, rollup_version: int) -> OverviewFigures:
    # One snapshot for all the overview's queries: a refresh committing midway cannot mix versions.
    with engine().connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        with conn.begin():
            return compute_overview(conn, f)


@st.cache_data(ttl=3600, show_spinner=False)
def dimension_values(rollup_version: int) -> dict[str, list]:
    with engine().connect() as conn:
        return kpis.fetch_dimension_values(conn)
