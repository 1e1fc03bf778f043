"""Dashboards and their widgets (saved-query charts and KPI cards): create, list, pin, reorder,
resize, remove. Only a dashboard's owner changes it; shared ones are visible to every staff member.

A vendor user's dashboards are their own: never shared, they list only their own dashboards, pin
only their own saved queries and KPI cards of their own metrics (analytics.vendor_portal), and a
shared query of the staff never runs on them (the page runs theirs on their own database role)."""
from __future__ import annotations

import json

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.filters import PRESETS
from analytics.metrics import METRICS
from analytics.vendor_portal import VENDOR_METRICS
from data.audit import record
from data.auth import IS_VENDOR_USER
from data.db import frame

REFRESH_CHOICES = (0, 60, 300, 900, 3600)
NOT_SHARED = "shared: a vendor user's dashboards are their own and cannot be shared"


def _is_vendor(conn: Connection, user: str) -> bool:
    return bool(conn.execute(sa.text(f"SELECT {IS_VENDOR_USER.format(':u')}"), {"u": user}).scalar())


class DashboardError(ValueError):
    """A dashboard change was refused; the message says which field and why."""


def create_dashboard(conn: Connection, owner: str, name: str, *, shared: bool = False, refresh_seconds: int = 0) -> int:
    name = (name or "").strip()
    if not name:
        raise DashboardError("name: give the dashboard a name")
    if refresh_seconds not in REFRESH_CHOICES:
        raise DashboardError(f"refresh: choose one of {', '.join(map(str, REFRESH_CHOICES))} seconds")
    if shared and _is_vendor(conn, owner):
        raise DashboardError(NOT_SHARED)
    try:
        with conn.begin_nested():
            did = conn.execute(sa.text("""
                INSERT INTO app.dashboards (owner, name, shared, refresh_seconds) VALUES (:o, :n, :s, :r)
                RETURNING dashboard_id"""), {"o": owner, "n": name, "s": bool(shared), "r": refresh_seconds}).scalar()
    except sa.exc.IntegrityError:
        raise DashboardError(f"name: you already have a dashboard called {name!r}") from None
    record(conn, "dashboard.create", actor=owner, target=str(did), detail={"name": name, "shared": bool(shared)})
    return int(did)


def update_dashboard(conn: Connection, owner: str, dashboard_id: int, *, shared: bool | None = None,
                     refresh_seconds: int | None = None) -> None:
    """Changes only the settings given, so that two people's changes of different settings both stay."""
    if refresh_seconds is not None and refresh_seconds not in REFRESH_CHOICES:
        raise DashboardError(f"refresh: choose one of {', '.join(map(str, REFRESH_CHOICES))} seconds")
    if shared and _is_vendor(conn, owner):
        raise DashboardError(NOT_SHARED)
    if not conn.execute(sa.text("UPDATE app.dashboards SET shared = coalesce(:s, shared), "
                                "refresh_seconds = coalesce(:r, refresh_seconds) "
                                "WHERE dashboard_id = :d AND owner = :o"),
                        {"s": None if shared is None else bool(shared), "r": refresh_seconds, "d": dashboard_id,
                         "o": owner}).rowcount:
        raise DashboardError("only the owner can change a dashboard")


def delete_dashboard(conn: Connection, owner: str, dashboard_id: int) -> bool:
    done = conn.execute(sa.text("DELETE FROM app.dashboards WHERE dashboard_id = :d AND owner = :o"),
                        {"d": dashboard_id, "o": owner}).rowcount
    if done:
        record(conn, "dashboard.delete", actor=owner, target=str(dashboard_id))
    return bool(done)


def fetch_dashboards(conn: Connection, user: str) -> pd.DataFrame:
    """The user's own dashboards and, for the staff, everyone's shared ones."""
    return frame(conn.execute(sa.text(f"""
        SELECT d.dashboard_id, d.name, d.owner, d.shared, d.refresh_seconds,
               (SELECT count(*) FROM app.dashboard_widgets w WHERE w.dashboard_id = d.dashboard_id) AS widgets
        FROM app.dashboards d WHERE d.owner = :u OR (d.shared AND NOT {IS_VENDOR_USER.format(':u')})
        ORDER BY (d.owner = :u) DESC, d.name"""), {"u": user}))


def _owned(conn: Connection, owner: str, dashboard_id: int) -> None:
    if not conn.execute(sa.text("SELECT 1 FROM app.dashboards WHERE dashboard_id = :d AND owner = :o"),
                        {"d": dashboard_id, "o": owner}).first():
        raise DashboardError("only the owner can change a dashboard")


def add_widget(conn: Connection, owner: str, dashboard_id: int, *, kind: str, title: str = "", width: int = 2,
               query_id: int | None = None, params: dict | None = None, chart: dict | None = None,
               metric: str | None = None, period: str | None = None) -> int:
    """Appends a widget: kind "query" (a saved query the user can see, with its parameter values
    and chart) or "kpi" (a glossary metric over a period preset)."""
    _owned(conn, owner, dashboard_id)
    if width not in (1, 2, 3, 4):
        raise DashboardError("width: 1 to 4 quarters of the page")
    vendor = _is_vendor(conn, owner)
    if kind == "query":
        visible = conn.execute(sa.text("SELECT 1 FROM app.saved_queries WHERE query_id = :q "
                                       "AND (owner = :o OR (shared AND NOT :vendor))"),
                               {"q": query_id, "o": owner, "vendor": vendor}).first()
        if not visible:
            raise DashboardError("query: save the query first (pinned charts run a saved query)")
    elif kind == "kpi":
        if metric not in METRICS:
            raise DashboardError(f"metric: {metric!r} is not a glossary metric")
        if vendor and metric not in VENDOR_METRICS:
            raise DashboardError(f"metric: {METRICS[metric].label} is the marketplace's, not a vendor's own figure")
        if period not in PRESETS or period == "custom":
            raise DashboardError(f"period: choose one of {', '.join(p for p in PRESETS if p != 'custom')}")
    else:
        raise DashboardError(f"kind: {kind!r} is neither a query chart nor a KPI card")
    wid = conn.execute(sa.text("""
        INSERT INTO app.dashboard_widgets (dashboard_id, position, width, kind, title, query_id, params, chart, metric, period)
        SELECT :d, COALESCE(max(position), 0) + 1, :w, :k, :t, :q, CAST(:p AS jsonb), CAST(:c AS jsonb), :m, :per
        FROM app.dashboard_widgets WHERE dashboard_id = :d
        RETURNING widget_id"""), {"d": dashboard_id, "w": width, "k": kind, "t": (title or "").strip(), "q": query_id,
                                  "p": json.dumps(params or {}, default=str), "c": json.dumps(chart or {}),
                                  "m": metric if kind == "kpi" else None, "per": period if kind == "kpi" else None}).scalar()
    record(conn, "dashboard.pin", actor=owner, target=str(dashboard_id), detail={"widget": int(wid), "kind": kind})
    return int(wid)


def fetch_widgets(conn: Connection, dashboard_id: int) -> pd.DataFrame:
    """The dashboard's widgets in order. A query chart runs its saved query's current SQL only
    while the dashboard's owner may see that query (theirs, or shared, unless the owner is a vendor
    user): a query its owner made private comes with query_hidden and neither name nor SQL, so it
    stops running on others' dashboards (it ran there with whatever SQL it got next)."""
    return frame(conn.execute(sa.text(f"""
        SELECT w.widget_id, w.position, w.width, w.kind, w.title, w.query_id, w.params, w.chart, w.metric, w.period,
               CASE WHEN v.visible THEN q.name END AS query_name, CASE WHEN v.visible THEN q.sql END AS sql,
               w.kind = 'query' AND NOT v.visible AS query_hidden
        FROM app.dashboard_widgets w
        JOIN app.dashboards d ON d.dashboard_id = w.dashboard_id
        LEFT JOIN app.saved_queries q ON q.query_id = w.query_id
        CROSS JOIN LATERAL (SELECT COALESCE(q.owner = d.owner OR (q.shared AND NOT {IS_VENDOR_USER.format('d.owner')}),
                                            false) AS visible) v
        WHERE w.dashboard_id = :d ORDER BY w.position, w.widget_id"""), {"d": dashboard_id}))


def move_widget(conn: Connection, owner: str, dashboard_id: int, widget_id: int, step: int) -> None:
    """Moves a widget one place earlier (step −1) or later (+1)."""
    _owned(conn, owner, dashboard_id)
    ids = list(fetch_widgets(conn, dashboard_id)["widget_id"])
    i = ids.index(widget_id)
    j = min(max(i + step, 0), len(ids) - 1)
    ids.insert(j, ids.pop(i))
    for pos, wid in enumerate(ids, start=1):
        conn.execute(sa.text("UPDATE app.dashboard_widgets SET position = :p WHERE widget_id = :w"), {"p": pos, "w": int(wid)})


def resize_widget(conn: Connection, owner: str, dashboard_id: int, widget_id: int, width: int) -> None:
    _owned(conn, owner, dashboard_id)
    if width not in (1, 2, 3, 4):
        raise DashboardError("width: 1 to 4 quarters of the page")
    conn.execute(sa.text("UPDATE app.dashboard_widgets SET width = :x WHERE widget_id = :w AND dashboard_id = :d"),
                 {"x": width, "w": widget_id, "d": dashboard_id})


def remove_widget(conn: Connection, owner: str, dashboard_id: int, widget_id: int) -> None:
    _owned(conn, owner, dashboard_id)
    conn.execute(sa.text("DELETE FROM app.dashboard_widgets WHERE widget_id = :w AND dashboard_id = :d"),
                 {"w": widget_id, "d": dashboard_id})
