"""Cached data loaders: engines as resources, figures keyed on filters and the rollup version."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import streamlit as st

from analytics import kpis
from analytics import overview as ov
from analytics.filters import Filters, Period, shift_year
from data.db import get_analytics_engine, get_engine
from data.rollups import period_version, rollup_status
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


@st.cache_data(ttl=20, show_spinner=False)
def _period_version(start: date, end: date, rollup_version: int) -> int:
    with engine().connect() as conn:
        return int(period_version(conn, start, end))


def version_of(p: Period | None) -> int:
    """Returns the key to cache figures of period p's days on: the rollup version that last
    changed them, so a refresh folding in today's orders leaves earlier periods' figures cached."""
    return 0 if p is None else _period_version(p.start, p.end, version())


def local_now() -> datetime:
    return datetime.now(load_settings().tz)


def local_today() -> date:
    return local_now().date()


def version_for(f: Filters, since: date | None = None) -> int:
    """Returns version_of the days a page's figures for f may read: from a year and a week before
    its period (growth on the year before and on the bucket before), or `since`, to its end."""
    start = since or min(shift_year(f.period.start, -1) - timedelta(days=7),
                         f.compare.start if f.compare else f.period.start)
    return version_of(Period(start, f.period.end))


def _snapshot(compute, f: Filters):
    # One snapshot for all of a part's queries: a refresh committing midway cannot mix versions.
    with engine().connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        with conn.begin():
            return compute(conn, f, tz=load_settings().timezone)


@st.cache_data(ttl=600, show_spinner=False)
def _overview_period(f: Filters, days_version: int) -> dict:
    return _snapshot(ov.compute_period, f)


@st.cache_data(ttl=600, show_spinner=False)
def _overview_comparison(f: Filters, days_version: int) -> dict | None:
    return _snapshot(ov.compute_comparison, f)


def overview(f: Filters) -> ov.OverviewFigures:
    """Returns the overview's figures, the period's and the comparison period's each cached on the
    version of its own days."""
    return ov.overview_figures(_overview_period(f, version_of(f.period)),
                               _overview_comparison(f, version_of(f.compare)))


@st.cache_data(ttl=3600, show_spinner=False)
def dimension_values(rollup_version: int) -> dict[str, list]:
    with engine().connect() as conn:
        return kpis.fetch_dimension_values(conn)
