"""The dashboards page's reads and writes: dashboards and their widgets, a pinned saved query's
result and a KPI card's figure (cached per refresh tick and rollup version)."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from analytics import dashboards as D
from analytics.filters import Filters, resolve_preset
from analytics.kpis import fetch_kpis
from analytics.query import run_query
from analytics.sql_params import bind_parameters
from components import loaders
from components.loaders import app_engine, engine_of, read, read_figures, version, write
from data.errors import translated


def load_dashboards(user: str) -> pd.DataFrame:
    """Returns the dashboards the user sees: theirs and shared ones."""
    with read(app_engine()) as conn:
        return D.fetch_dashboards(conn, user)


def load_widgets(dashboard_id: int) -> pd.DataFrame:
    """Returns the dashboard's widgets in order, with their saved queries (hidden ones marked)."""
    with read(app_engine()) as conn:
        return D.fetch_widgets(conn, dashboard_id)


def load_query_frame(widget_id: int, sql: str, params_json: str, tick: int,
                     vendor_ids: tuple[int, ...] = ()) -> pd.DataFrame:
    """Returns a pinned saved query's rows (at most 10,000), run on the analysts' role, or a vendor
    user's own (vendor_ids; EXPLAIN refused, as on their SQL page); cached per refresh tick and rollup
    version."""
    return _load_query_frame(widget_id, sql, params_json, tick, vendor_ids, version())


def load_kpi(metric: str, period: str, tick: int, vendor_ids: tuple[int, ...] = ()) -> tuple[dict, str]:
    """Returns a KPI card's (figures: current, previous, …) over a period preset, and the period's
    label (a vendor user's: of their own lines, on their role); cached per refresh tick and rollup version."""
    return _load_kpi(metric, period, tick, vendor_ids, version())


@st.cache_data(ttl=300, show_spinner=False)
def _load_query_frame(widget_id: int, sql: str, params_json: str, tick: int, vendor_ids: tuple[int, ...],
                      rollup_version: int) -> pd.DataFrame:
    text, params = bind_parameters(sql, json.loads(params_json))
    with translated(analyst=True):
        return run_query(text, params, row_limit=10_000, engine=engine_of(vendor_ids), explain=not vendor_ids).frame


@st.cache_data(ttl=300, show_spinner=False)
def _load_kpi(metric: str, period: str, tick: int, vendor_ids: tuple[int, ...],
              rollup_version: int) -> tuple[dict, str]:
    with read_figures(Filters.make(resolve_preset(period, loaders.local_today())), vendor_ids) as (conn, f, kw):
        return fetch_kpis(conn, f, (metric,), **kw).iloc[0].to_dict(), f.period.label()


def create_dashboard(owner: str, name: str, *, shared: bool, refresh_seconds: int) -> int:
    """Creates a dashboard; returns its id. Raises DashboardError with the reason."""
    with write() as conn:
        return D.create_dashboard(conn, owner, name, shared=shared, refresh_seconds=refresh_seconds)


def update_dashboard(owner: str, dashboard_id: int, **fields) -> None:
    with write() as conn:
        D.update_dashboard(conn, owner, dashboard_id, **fields)


def delete_dashboard(owner: str, dashboard_id: int) -> None:
    with write() as conn:
        D.delete_dashboard(conn, owner, dashboard_id)


def add_widget(owner: str, dashboard_id: int, **fields) -> int:
    """Adds a widget (a saved query's chart or a KPI card). Raises DashboardError with the reason."""
    with write() as conn:
        return D.add_widget(conn, owner, dashboard_id, **fields)


def move_widget(owner: str, dashboard_id: int, widget_id: int, step: int) -> None:
    with write() as conn:
        D.move_widget(conn, owner, dashboard_id, widget_id, step)


def resize_widget(owner: str, dashboard_id: int, widget_id: int, width: int) -> None:
    with write() as conn:
        D.resize_widget(conn, owner, dashboard_id, widget_id, width)


def remove_widget(owner: str, dashboard_id: int, widget_id: int) -> None:
    with write() as conn:
        D.remove_widget(conn, owner, dashboard_id, widget_id)
