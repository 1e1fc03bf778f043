"""The UI's data access: engines as resources, the one connection helper, and the version keys
every cached figure is keyed on. One module per page beside this one holds that page's `load_*`
readers (cached with st.cache_data, keyed on the filters and the version of the days they read)
and its writes (`save_*`, `delete_*`, …); widgets and views call them and hold no connection code.

Every connection is opened through `read`, `write`, `snapshot` or `read_figures` (data.db.connection),
which turn driver errors into data.errors' domain errors; the UI catches those only.

A page's figures are read through `read_figures(f, vendor_ids)`: for the staff on the pages' engine,
for a vendor user on their own database role (data.vendor_scope), which PostgreSQL limits to their
vendors' rows, whatever the page asks. Cached figures are keyed on the vendor ids as well."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

import sqlalchemy as sa
import streamlit as st
from sqlalchemy.engine import Engine

from analytics import kpis
from analytics.filters import Filters, Period, shift_year
from analytics.vendor_portal import vendor_filters
from data.db import connection, get_analyst_engine, get_analytics_engine, get_engine
from data.rollups import fetch_period_version, fetch_rollup_status
from data import calendar
from data.settings import load_settings
from data.vendor_scope import vendor_engine


@st.cache_resource(show_spinner=False)
def engine() -> Engine:
    """Returns the pooled engine the pages read from."""
    return get_analytics_engine(load_settings())


@st.cache_resource(show_spinner=False)
def app_engine() -> Engine:
    """Returns the pooled engine for the app's own tables (users, sessions, audit): never a replica."""
    return get_engine(load_settings())


@st.cache_resource(show_spinner=False)
def analyst_engine() -> Engine:
    """Returns the pooled engine of the analysts' role (SQL page, dashboards' saved queries)."""
    return get_analyst_engine()


@contextmanager
def read(eng: Engine | None = None) -> Iterator[sa.Connection]:
    """Yields a connection of eng (default: the pages' engine) for reading."""
    with connection(eng or engine()) as conn:
        yield conn


@contextmanager
def write() -> Iterator[sa.Connection]:
    """Yields a connection to the app's tables in a transaction, committed when the block ends."""
    with connection(app_engine(), begin=True) as conn:
        yield conn


@contextmanager
def snapshot() -> Iterator[sa.Connection]:
    """Yields a connection in one REPEATABLE READ transaction: a refresh committing midway cannot mix
    two versions of the rollups in the queries run on it."""
    with connection(engine(), begin=True, isolation_level="REPEATABLE READ") as conn:
        yield conn


def engine_for(vendor_ids: tuple[int, ...]) -> Engine:
    """Returns the engine of the vendor's database role (a connection per use: data.vendor_scope.vendor_engine)."""
    return vendor_engine(load_settings(), vendor_ids)


def engine_of(vendor_ids: tuple[int, ...]) -> Engine:
    """Returns the engine a user's own SQL runs on (the SQL page, dashboards' saved queries): their
    vendors' role for a vendor user, else the analysts'."""
    return engine_for(vendor_ids) if vendor_ids else analyst_engine()


@contextmanager
def read_figures(f: Filters | None, vendor_ids: tuple[int, ...] = (), *,
                 one_snapshot: bool = False) -> Iterator[tuple[sa.Connection, Filters | None, dict]]:
    """Yields (connection, filters, keyword arguments) for the analytics' readers of f's figures.
    Staff (no vendor_ids): the pages' engine, f as given, {tz}. A vendor user: their own role, f
    narrowed to exactly their vendors (None stays None), {tz, layout}: the rollups' layout is read on
    the app's engine, as their role cannot read schema app. one_snapshot: one REPEATABLE READ
    transaction (snapshot)."""
    kw = {"tz": tz()}
    if not vendor_ids:
        with (snapshot() if one_snapshot else read()) as conn:
            yield conn, f, kw
        return
    kw["layout"] = _layout(version())
    with connection(engine_for(vendor_ids), begin=one_snapshot,
                    isolation_level="REPEATABLE READ" if one_snapshot else None) as conn:
        yield conn, None if f is None else vendor_filters(f, vendor_ids), kw


@st.cache_data(ttl=60, show_spinner=False)
def _layout(rollup_version: int) -> int | None:
    with read() as conn:
        return kpis.fetch_rollup_layout(conn, tz())


@st.cache_data(ttl=20, show_spinner=False)
def load_freshness() -> dict:
    """Returns the rollup status; its version keys every cached figure below."""
    with read() as conn:
        return fetch_rollup_status(conn)


def version() -> int:
    """Returns the rollup version (every refresh bumps it)."""
    return int(load_freshness()["version"])


@st.cache_data(ttl=20, show_spinner=False)
def _period_version(start: date, end: date, rollup_version: int) -> int:
    with read() as conn:
        return int(fetch_period_version(conn, start, end))


def version_of(p: Period | None) -> int:
    """Returns the key to cache figures of period p's days on: the rollup version that last
    changed them, so a refresh folding in today's orders leaves earlier periods' figures cached."""
    return 0 if p is None else _period_version(p.start, p.end, version())


def tz() -> str:
    """Returns the app's time zone (APP_TIMEZONE), which every figure's local day is taken in."""
    return load_settings().timezone


def local_now() -> datetime:
    return datetime.now(load_settings().tz)


def local_today() -> date:
    return calendar.local_today(tz())


def version_for(f: Filters, since: date | None = None) -> int:
    """Returns version_of the days a page's figures for f may read: from a year and a week before
    its period (growth on the year before and on the bucket before), or `since`, to its end."""
    start = since or min(shift_year(f.period.start, -1) - timedelta(days=7),
                         f.compare.start if f.compare else f.period.start)
    return version_of(Period(start, f.period.end))


def load_dimension_values() -> dict[str, list]:
    """Returns {dimension: values} for the filter bar (vendors as (id, name) pairs), cached on the
    rollup version."""
    return _load_dimension_values(version())


@st.cache_data(ttl=3600, show_spinner=False)
def _load_dimension_values(rollup_version: int) -> dict[str, list]:
    with read() as conn:
        return kpis.fetch_dimension_values(conn)
