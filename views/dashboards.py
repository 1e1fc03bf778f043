"""Dashboards: saved-query charts and KPI cards pinned by analysts, personal or shared, refreshed
on a chosen interval."""
from __future__ import annotations

import json
import time

import plotly.express as px
import sqlalchemy as sa
import streamlit as st

from analytics import dashboards as D
from analytics.filters import PRESET_LABELS, PRESETS, Filters, resolve_preset
from analytics.kpis import fetch_kpis
from analytics.metrics import METRICS, format_change, format_value
from analytics.query import QueryFailed, QueryRejected, bind_parameters, run_query
from components import loaders
from components.auth import require_role
from components.sql_widgets import analyst_engine
from components.text import plain

user = require_role("viewer", "analyst", "admin")
can_edit = user.role in ("analyst", "admin")
st.title("Dashboards")
app = loaders.app_engine()
with app.connect() as conn:
    boards = D.list_dashboards(conn, user.username)

if can_edit:
    with st.expander("New dashboard", expanded=boards.empty):
        with st.form("db_new"):
            c = st.columns([3, 1, 2])
            name = c[0].text_input("Name", key="db_new_name")
            shared = c[1].checkbox("Shared", key="db_new_shared", help="Everyone, viewers included, can open it")
            refresh = c[2].selectbox("Refresh", D.REFRESH_CHOICES, key="db_new_refresh",
                                     format_func=lambda s: "never" if s == 0 else f"every {s // 60} min")
            if st.form_submit_button("Create", icon=":material/add:"):
                try:
                    with app.begin() as conn:
                        D.create_dashboard(conn, user.username, name, shared=shared, refresh_seconds=refresh)
                    st.rerun()
                except D.DashboardError as ex:
                    st.error(f"Not created: {ex}.", icon=":material/error:")

if boards.empty:
    st.info("No dashboards yet." + (" Create one above, then pin a saved query's chart from the SQL page or add a "
                                     "KPI card here." if can_edit else " Analysts create and share them."),
            icon=":material/dashboard:")
    st.stop()

labels = {int(r.dashboard_id): f"{r.name} · {r.owner}" + (" · shared" if r.shared else "") for r in boards.itertuples()}
did = st.selectbox("Dashboard", list(labels), format_func=labels.get, key="db_pick")
board = boards.set_index("dashboard_id").loc[did]
mine = board["owner"] == user.username
refresh = int(board["refresh_seconds"])
st.caption(f"By {plain(board['owner'])} · {'shared' if board['shared'] else 'private'} · "
           + (f"refreshes every {refresh // 60} min" if refresh else "no automatic refresh"))


@st.cache_data(ttl=300, show_spinner=False)
def _query_frame(widget_id: int, sql: str, params_json: str, tick: int, rollup_version: int):
    text, params = bind_parameters(sql, json.loads(params_json))
    return run_query(text, params, row_limit=10_000, engine=analyst_engine()).frame


@st.cache_data(ttl=300, show_spinner=False)
def _kpi(metric: str, period: str, tick: int, rollup_version: int):
    f = Filters.make(resolve_preset(period, loaders.local_today()))
    with loaders.engine().connect() as conn:
        return fetch_kpis(conn, f, (metric,), tz=loaders.load_settings().timezone).iloc[0].to_dict(), f.period.label()


def _title(w) -> str:
    if w.title:
        return w.title
    if w.kind == "query":
        return w.query_name if isinstance(w.query_name, str) else "A private query"
    return METRICS[w.metric].label


def _draw(w) -> None:
    tick = int(time.time() // refresh) if refresh else 0
    title = _title(w)
    with st.container(border=True):
        if w.kind != "kpi" or w.title:  # a KPI card's metric label is its title
            st.markdown(f"**{plain(title)}**")
        if w.query_hidden:
            st.info("Its saved query was made private by its owner, so it no longer runs here. Remove the chart, "
                    "or ask the owner to share the query again.", icon=":material/lock:")
            return
        if w.kind == "kpi":
            k, label = _kpi(w.metric, w.period, tick, loaders.version())
            st.metric(METRICS[w.metric].label, format_value(w.metric, k["current"]),
                      delta=format_change(w.metric, k["current"], k["previous"]),
                      delta_color="normal" if METRICS[w.metric].higher_is_better else "inverse",
                      help=f"{PRESET_LABELS[w.period]}: {label}, against the period before")
            return
        try:
            frame = _query_frame(int(w.widget_id), w.sql, json.dumps(w.params or {}), tick, loaders.version())
        except (QueryRejected, QueryFailed) as ex:
            st.error(f"The saved query cannot run: {plain(ex)}.", icon=":material/error:")
            return
        except sa.exc.SQLAlchemyError as ex:
            st.error(f"The analysts' database role cannot run queries: {plain(getattr(ex, 'orig', ex))}", icon=":material/error:")
            return
        chart = w.chart or {}
        if chart.get("type") in ("line", "bar", "area", "scatter") and {chart.get("x"), chart.get("y")} <= set(frame.columns):
            draw = {"line": px.line, "bar": px.bar, "area": px.area, "scatter": px.scatter}[chart["type"]]
            colour = chart.get("colour") if chart.get("colour") in frame.columns else None
            fig = draw(frame, x=chart["x"], y=chart["y"], color=colour)
        elif chart.get("type") == "pie" and {chart.get("x"), chart.get("y")} <= set(frame.columns):
            fig = px.pie(frame, names=chart["x"], values=chart["y"])
        else:
            st.dataframe(frame, hide_index=True, width="stretch", key=f"db_w{w.widget_id}_table")
            return
        fig.update_layout(height=320, margin=dict(l=10, r=10, t=20, b=10))
        st.plotly_chart(fig, key=f"db_w{w.widget_id}_chart", width="stretch")


@st.fragment(run_every=refresh or None)
def render_board() -> None:
    with app.connect() as conn:
        ws = D.widgets(conn, did)
    if ws.empty:
        st.info("This dashboard has no widgets yet." + (" Pin a saved query's chart from the SQL page, or add a KPI "
                                                         "card below." if mine else ""), icon=":material/dashboard:")
        return
    row, used = [], 0
    rows = []
    for w in ws.itertuples():
        if used + int(w.width) > 4 and row:
            rows.append(row)
            row, used = [], 0
        row.append(w)
        used += int(w.width)
    rows.append(row)
    for row in rows:
        cols = st.columns([int(w.width) for w in row] + ([4 - sum(int(w.width) for w in row)]
                                                           if sum(int(w.width) for w in row) < 4 else []))
        for col, w in zip(cols, row):
            with col:
                _draw(w)


render_board()

def _resize(widget_id: int) -> None:
    with app.begin() as conn:
        D.resize_widget(conn, user.username, did, widget_id, int(st.session_state[f"db_width_{widget_id}"]))


def _update_board(field: str, key: str) -> None:
    with app.begin() as conn:
        D.update_dashboard(conn, user.username, did, **{field: st.session_state[key]})


if mine:
    with st.expander("Add a KPI card"):
        with st.form("db_kpi"):
            c = st.columns([2, 2, 1, 2])
            metric = c[0].selectbox("Metric", list(METRICS), format_func=lambda m: METRICS[m].label, key="db_kpi_metric")
            period = c[1].selectbox("Period", [p for p in PRESETS if p != "custom"], format_func=PRESET_LABELS.get,
                                    key="db_kpi_period")
            width = c[2].selectbox("Width", (1, 2, 3, 4), key="db_kpi_width", format_func=lambda w: f"{w}/4")
            title = c[3].text_input("Title (optional)", key="db_kpi_title")
            if st.form_submit_button("Add", icon=":material/add:"):
                try:
                    with app.begin() as conn:
                        D.add_widget(conn, user.username, did, kind="kpi", metric=metric, period=period, width=width,
                                     title=title)
                    st.rerun()
                except D.DashboardError as ex:
                    st.error(f"Not added: {ex}.", icon=":material/error:")
    with st.expander("Arrange"):
        with app.connect() as conn:
            ws = D.widgets(conn, did)
        for w in ws.itertuples():
            c = st.columns([4, 1, 1, 2, 1])
            c[0].markdown(plain(_title(w)))
            moves = {"up": -1, "down": 1}
            for i, (label, step) in enumerate(moves.items(), start=1):
                if c[i].button(label, key=f"db_move_{label}_{w.widget_id}"):
                    with app.begin() as conn:
                        D.move_widget(conn, user.username, did, int(w.widget_id), step)
                    st.rerun()
            # Settings are written when the user changes them (on_change), and the inputs show the
            # database's values on every run: a second tab's change is shown, never written back.
            st.session_state[f"db_width_{w.widget_id}"] = int(w.width)
            c[3].selectbox("Width", (1, 2, 3, 4), key=f"db_width_{w.widget_id}", format_func=lambda x: f"{x}/4",
                           label_visibility="collapsed", on_change=_resize, args=(int(w.widget_id),))
            if c[4].button("Remove", key=f"db_remove_{w.widget_id}"):
                with app.begin() as conn:
                    D.remove_widget(conn, user.username, did, int(w.widget_id))
                st.rerun()
        s1, s2, s3 = st.columns([1, 2, 2])
        st.session_state[f"db_shared_{did}"] = bool(board["shared"])
        st.session_state[f"db_refresh_{did}"] = refresh
        s1.checkbox("Shared", key=f"db_shared_{did}", on_change=_update_board, args=("shared", f"db_shared_{did}"))
        s2.selectbox("Refresh", D.REFRESH_CHOICES, key=f"db_refresh_{did}", on_change=_update_board,
                     args=("refresh_seconds", f"db_refresh_{did}"),
                     format_func=lambda s: "never" if s == 0 else f"every {s // 60} min")
        if s3.button("Delete this dashboard", key=f"db_delete_{did}", icon=":material/delete:"):
            with app.begin() as conn:
                D.delete_dashboard(conn, user.username, did)
            st.rerun()
