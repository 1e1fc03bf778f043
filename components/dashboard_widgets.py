"""Dashboards page widgets: the new-dashboard form, the board of pinned charts and KPI cards
(redrawn by a fragment on the dashboard's interval), the KPI card form and the arrange panel."""
from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from analytics import dashboards as D
from analytics.filters import PRESET_LABELS, PRESETS
from analytics.metrics import METRICS, format_change, format_value
from analytics.query import QueryFailed, QueryRejected
from components.charts import render_saved_chart
from components.loaders import dashboards as L
from components.text import plain
from data.errors import AnalystRoleError, StatementNotRunError
from data.settings import load_settings


def _refresh_label(seconds: int) -> str:
    return "never" if seconds == 0 else f"every {seconds // 60} min"


def render_new_dashboard(owner: str, *, expanded: bool, key: str, shareable: bool = True) -> None:
    """Draws the "New dashboard" form; a created dashboard reruns the page. shareable=False: no
    "Shared" box (a vendor user's dashboards are their own)."""
    with st.expander("New dashboard", expanded=expanded):
        with st.form(key):
            c = st.columns([3, 1, 2])
            name = c[0].text_input("Name", key=f"{key}_name")
            shared = shareable and c[1].checkbox("Shared", key=f"{key}_shared",
                                                 help="Every staff member, viewers included, can open it")
            refresh = c[2].selectbox("Refresh", D.REFRESH_CHOICES, key=f"{key}_refresh", format_func=_refresh_label)
            if st.form_submit_button("Create", icon=":material/add:"):
                try:
                    L.create_dashboard(owner, name, shared=shared, refresh_seconds=refresh)
                    st.rerun()
                except D.DashboardError as ex:
                    st.error(f"Not created: {ex}.", icon=":material/error:")


def widget_title(w) -> str:
    """Returns a widget's title: its own, else its saved query's name, else its metric's label."""
    if w.title:
        return w.title
    if w.kind == "query":
        return w.query_name if isinstance(w.query_name, str) else "A private query"
    return METRICS[w.metric].label


def _draw(w, refresh: int, key: str, vendor_ids: tuple[int, ...]) -> None:
    tick = int(time.time() // refresh) if refresh else 0
    title = widget_title(w)
    with st.container(border=True):
        if w.kind != "kpi" or w.title:  # a KPI card's metric label is its title
            st.markdown(f"**{plain(title)}**")
        if w.query_hidden:
            st.info("Its saved query was made private by its owner, so it no longer runs here. Remove the chart, "
                    "or ask the owner to share the query again.", icon=":material/lock:")
            return
        if w.kind == "kpi":
            k, label = L.load_kpi(w.metric, w.period, tick, vendor_ids)
            st.metric(METRICS[w.metric].label, format_value(w.metric, k["current"]),
                      delta=format_change(w.metric, k["current"], k["previous"]),
                      delta_color="normal" if METRICS[w.metric].higher_is_better else "inverse",
                      help=f"{PRESET_LABELS[w.period]}: {label}, against the period before")
            return
        try:
            frame = L.load_query_frame(int(w.widget_id), w.sql, json.dumps(w.params or {}), tick, vendor_ids)
        except (QueryRejected, QueryFailed) as ex:
            st.error(f"The saved query cannot run: {plain(ex)}.", icon=":material/error:")
            return
        except (AnalystRoleError, StatementNotRunError) as ex:
            st.error(plain(ex), icon=":material/error:")
            return
        if not render_saved_chart(frame, w.chart or {}, height=320, top=20, key=f"{key}_w{w.widget_id}_chart"):
            st.dataframe(frame, hide_index=True, width="stretch", key=f"{key}_w{w.widget_id}_table")


def _rows(ws: pd.DataFrame) -> list[list]:
    """Returns the widgets in rows of at most 4 quarters of the page."""
    row, used, rows = [], 0, []
    for w in ws.itertuples():
        if used + int(w.width) > 4 and row:
            rows.append(row)
            row, used = [], 0
        row.append(w)
        used += int(w.width)
    rows.append(row)
    return rows


def _board(dashboard_id: int, refresh: int, mine: bool, key: str, vendor_ids: tuple[int, ...]) -> None:
    ws = L.load_widgets(dashboard_id)
    if ws.empty:
        st.info("This dashboard has no widgets yet." + (" Pin a saved query's chart from the SQL page, or add a KPI "
                                                         "card below." if mine else ""), icon=":material/dashboard:")
        return
    for row in _rows(ws):
        cols = st.columns([int(w.width) for w in row] + ([4 - sum(int(w.width) for w in row)]
                                                           if sum(int(w.width) for w in row) < 4 else []))
        for col, w in zip(cols, row):
            with col:
                _draw(w, refresh, key, vendor_ids)


def render_board(dashboard_id: int, *, refresh: int, mine: bool, key: str, vendor_ids: tuple[int, ...] = ()) -> None:
    """Draws the dashboard's widgets in rows, redrawn every `refresh` seconds (0: never) by a fragment;
    a vendor user's (vendor_ids) on their own database role."""
    st.fragment(run_every=refresh or None)(_board)(dashboard_id, refresh, mine, key, vendor_ids)


def render_add_kpi(owner: str, dashboard_id: int, *, key: str, metrics: tuple[str, ...] = tuple(METRICS)) -> None:
    """Draws the "Add a KPI card" form, offering metrics."""
    with st.expander("Add a KPI card"):
        with st.form(key):
            c = st.columns([2, 2, 1, 2])
            metric = c[0].selectbox("Metric", list(metrics), format_func=lambda m: METRICS[m].label,
                                    key=f"{key}_metric")
            period = c[1].selectbox("Period", [p for p in PRESETS if p != "custom"], format_func=PRESET_LABELS.get,
                                    key=f"{key}_period")
            width = c[2].selectbox("Width", (1, 2, 3, 4), key=f"{key}_width", format_func=lambda w: f"{w}/4")
            title = c[3].text_input("Title (optional)", key=f"{key}_title")
            if st.form_submit_button("Add", icon=":material/add:"):
                try:
                    L.add_widget(owner, dashboard_id, kind="kpi", metric=metric, period=period, width=width,
                                 title=title)
                    st.rerun()
                except D.DashboardError as ex:
                    st.error(f"Not added: {ex}.", icon=":material/error:")


def _resize(owner: str, dashboard_id: int, widget_id: int, key: str) -> None:
    L.resize_widget(owner, dashboard_id, widget_id, int(st.session_state[key]))


def _update_board(owner: str, dashboard_id: int, field: str, key: str) -> None:
    L.update_dashboard(owner, dashboard_id, **{field: st.session_state[key]})


def render_arrange(owner: str, dashboard_id: int, board: pd.Series, *, key: str, shareable: bool = True) -> None:
    """Draws the "Arrange" panel: move, resize and remove widgets; share (when shareable), refresh and
    delete the dashboard."""
    with st.expander("Arrange"):
        for w in L.load_widgets(dashboard_id).itertuples():
            wid = int(w.widget_id)
            c = st.columns([4, 1, 1, 2, 1])
            c[0].markdown(plain(widget_title(w)))
            for i, (label, step) in enumerate({"up": -1, "down": 1}.items(), start=1):
                if c[i].button(label, key=f"{key}_move_{label}_{wid}"):
                    L.move_widget(owner, dashboard_id, wid, step)
                    st.rerun()
            # Settings are written when the user changes them (on_change), and the inputs show the
            # database's values on every run: a second tab's change is shown, never written back.
            st.session_state[f"{key}_width_{wid}"] = int(w.width)
            c[3].selectbox("Width", (1, 2, 3, 4), key=f"{key}_width_{wid}", format_func=lambda x: f"{x}/4",
                           label_visibility="collapsed", on_change=_resize,
                           args=(owner, dashboard_id, wid, f"{key}_width_{wid}"))
            if c[4].button("Remove", key=f"{key}_remove_{wid}"):
                L.remove_widget(owner, dashboard_id, wid)
                st.rerun()
        s1, s2, s3 = st.columns([1, 2, 2])
        shared_key, refresh_key = f"{key}_shared_{dashboard_id}", f"{key}_refresh_{dashboard_id}"
        st.session_state[shared_key] = bool(board["shared"])
        st.session_state[refresh_key] = int(board["refresh_seconds"])
        if shareable:
            s1.checkbox("Shared", key=shared_key, on_change=_update_board,
                        args=(owner, dashboard_id, "shared", shared_key))
        s2.selectbox("Refresh", D.REFRESH_CHOICES, key=refresh_key, on_change=_update_board,
                     args=(owner, dashboard_id, "refresh_seconds", refresh_key), format_func=_refresh_label)
        if s3.button("Delete this dashboard", key=f"{key}_delete_{dashboard_id}", icon=":material/delete:"):
            L.delete_dashboard(owner, dashboard_id)
            st.rerun()


def dashboard_link(dashboard_id: int) -> str:
    """The dashboard's own address (APP_BASE_URL), which opens it after the login."""
    return f"{load_settings().app_base_url}/dashboards?d={dashboard_id}"
