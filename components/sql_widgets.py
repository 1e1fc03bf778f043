"""SQL page widgets: the editor with its parameters, results with a chart builder and downloads,
saved queries, the user's history and the schema browser."""
from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import date, timedelta

import pandas as pd
import streamlit as st

from analytics import dashboards as D
from analytics.metrics import METRICS
from analytics.query import DEFAULT_ROW_LIMIT, QueryFailed, QueryRejected, QueryResult
from analytics.sql_params import Parameter, find_parameters, format_sql
from components import loaders
from components.auth import current_user
from components.charts import SAVED_CHART_TYPES, render_saved_chart
from components.loaders import sql as L
from components.loaders.dashboards import add_widget, load_dashboards
from components.tables import table_height
from components.text import plain
from data import saved_queries as SQ
from data.auth import User
from data.errors import AnalystRoleError
from reports.exporters import FORMATS, frame_batches, write_rows

EXPORT_ROW_LIMIT = 100_000
ROW_LIMITS = (100, 1_000, DEFAULT_ROW_LIMIT, 50_000)
CHARTS = ("table only", *SAVED_CHART_TYPES)
EXAMPLES = {
    "GMV per day, last 30 days": (
        "SELECT o.ordered_at::date AS day, sum(i.quantity * i.unit_price - i.discount) AS gmv\n"
        "FROM mart.orders o JOIN mart.order_items i USING (order_id)\n"
        "WHERE o.status <> 'cancelled' AND o.ordered_at >= now() - interval '30 days'\n"
        "GROUP BY 1 ORDER BY 1"),
    "Top vendors in a period (parameters)": (
        "SELECT v.name AS vendor, sum(i.quantity * i.unit_price - i.discount) AS gmv, count(DISTINCT o.order_id) AS orders\n"
        "FROM mart.order_items i JOIN mart.orders o USING (order_id) JOIN mart.vendors v USING (vendor_id)\n"
        "WHERE o.status <> 'cancelled' AND o.ordered_at::date BETWEEN {{period:daterange}}\n"
        "[[ AND v.category = {{category:list(SELECT DISTINCT category FROM mart.vendors ORDER BY 1)}} ]]\n"
        "GROUP BY 1 ORDER BY gmv DESC LIMIT {{top:number}}"),
    "Orders by channel and status": (
        "SELECT channel, status, count(*) AS orders FROM mart.orders GROUP BY 1, 2 ORDER BY 1, 2"),
    "Customers by segment and country": (
        "SELECT segment, country, count(*) AS customers FROM mart.customers GROUP BY 1, 2 ORDER BY 3 DESC"),
}


# A vendor user's examples: their own rows (the role sees nothing else, whatever the SQL says).
VENDOR_EXAMPLES = {
    "My GMV per day, last 30 days": EXAMPLES["GMV per day, last 30 days"],
    "My products by GMV in a period (parameters)": (
        "SELECT p.name AS product, sum(i.quantity * i.unit_price - i.discount) AS gmv, sum(i.quantity) AS units\n"
        "FROM mart.order_items i JOIN mart.orders o USING (order_id) JOIN mart.products p USING (product_id)\n"
        "WHERE o.status <> 'cancelled' AND o.ordered_at::date BETWEEN {{period:daterange}}\n"
        "GROUP BY 1 ORDER BY gmv DESC LIMIT 50"),
    "My orders by channel and status": EXAMPLES["Orders by channel and status"],
}


def _scope() -> tuple[int, ...]:
    """The signed-in user's vendor ids (empty for the staff): the role their SQL runs on."""
    user = current_user()
    return user.vendor_ids if user is not None else ()


def examples() -> dict[str, str]:
    """The example queries offered to the signed-in user."""
    return VENDOR_EXAMPLES if _scope() else EXAMPLES


# --- editor and parameters ----------------------------------------------------------------------

def render_parameter_inputs(params: list[Parameter], *, key: str) -> dict:
    """Draws one typed input per parameter; returns {name: value} (None when left empty)."""
    values: dict = {}
    if not params:
        return values
    st.caption("Parameters ({{name}}, {{name:number}}, {{name:date}}, {{name:daterange}} or "
               "{{name:list(SELECT …)}} in the query; [[ … ]] marks a part left out when its parameter is empty). "
               "Values are sent to PostgreSQL as bound parameters, never pasted into the SQL.")
    cols = st.columns(min(len(params), 4))
    today = loaders.local_today()
    for i, p in enumerate(params):
        label = p.name + (" (optional)" if p.optional else "")
        c = cols[i % len(cols)]
        k = f"{key}_param_{p.name}_{p.kind}"
        if p.kind == "number":
            raw = c.text_input(label, key=k, placeholder="a number")
            values[p.name] = raw.strip() or None
        elif p.kind == "date":
            values[p.name] = c.date_input(label, value=None, key=k)
        elif p.kind == "daterange":
            picked = c.date_input(label, value=(today - timedelta(days=30), today - timedelta(days=1)), key=k)
            values[p.name] = tuple(picked) if isinstance(picked, (tuple, list)) and len(picked) == 2 else None
        elif p.kind == "list":
            try:
                options = L.load_parameter_options(p.name, p.source, _scope())
            except (QueryRejected, QueryFailed, AnalystRoleError) as ex:
                c.error(f"{plain(ex)}.", icon=":material/error:")
                values[p.name] = None
                continue
            values[p.name] = c.selectbox(label, options, index=None, key=k, placeholder="choose a value",
                                         help=f"One of the {len(options):,} values of the list's query")
        else:
            values[p.name] = c.text_input(label, key=k) or None
    return values


def restore_parameter_inputs(sql: str, values: dict, *, key: str) -> None:
    """Puts recorded parameter values (as history stores them: ISO dates) back into the inputs
    render_parameter_inputs draws, before they are drawn."""
    try:
        params = find_parameters(sql)
    except QueryRejected:
        return
    for p in params:
        value = values.get(p.name)
        k = f"{key}_param_{p.name}_{p.kind}"
        if value is None:
            continue
        try:
            if p.kind == "date":
                st.session_state[k] = date.fromisoformat(value)
            elif p.kind == "daterange":
                st.session_state[k] = tuple(date.fromisoformat(v) for v in value)
            elif p.kind == "list":
                # History keeps values as JSON: find the option that was picked.
                options = L.load_parameter_options(p.name, p.source, _scope())
                match = [o for o in options if o == value or L.json_ready({"v": o})["v"] == value]
                if match:
                    st.session_state[k] = match[0]
            else:
                st.session_state[k] = str(value)
        except (TypeError, ValueError):   # QueryRejected and QueryFailed are ValueErrors
            continue  # a value this type cannot take: the input starts empty


def format_editor(key: str) -> None:
    """on_click of Format: lays out the editor's SQL, or leaves it and says why."""
    try:
        st.session_state[key] = format_sql(st.session_state.get(key) or "")
    except QueryRejected as ex:
        st.session_state[f"{key.removesuffix('_text')}_format_error"] = f"Not formatted: {ex}."


# --- results ------------------------------------------------------------------------------------

def render_result(result: QueryResult, sql: str, values: dict, *, key: str, user: User | None = None,
                  query_id: int | None = None) -> None:
    """Draws a result: the table, its downloads, the chart builder and the pin to a dashboard."""
    note = (f" · first {len(result.frame):,} rows only (the {'row' if result.truncated_by == 'rows' else 'size'} "
            f"limit); downloads hold up to {EXPORT_ROW_LIMIT:,}" if result.truncated else "")
    st.caption(f"{len(result.frame):,} rows · {result.elapsed_ms:,} ms{note}")
    frame = result.frame
    st.dataframe(frame, key=f"{key}_result", hide_index=True, width="stretch", height=table_height(len(frame), 15))
    _downloads(frame, result.truncated, sql, values, key=key, user=user)
    if frame.empty or len(frame.columns) < 2:
        return
    c = st.columns(4)
    kind = c[0].selectbox("Chart", CHARTS, key=f"{key}_chart")
    if kind == "table only":
        render_pin(user, query_id, values, {"type": "table"}, key=key)
        return
    numeric = [col for col in frame.columns if pd.api.types.is_numeric_dtype(frame[col])]
    if not numeric:
        st.info("A chart needs a numeric column.", icon=":material/bar_chart:")
        return
    x = c[1].selectbox("x" if kind != "pie" else "Names", list(frame.columns), key=f"{key}_x")
    y = c[2].selectbox("y" if kind != "pie" else "Values", numeric, index=len(numeric) - 1, key=f"{key}_y")
    colour = c[3].selectbox("Colour", [None, *[col for col in frame.columns if col not in (x, y)]], key=f"{key}_colour",
                            format_func=lambda v: "none" if v is None else v)
    chart = {"type": kind, "x": x, "y": y, "colour": colour}
    # The same function draws the chart once pinned (components.dashboard_widgets): it cannot drift.
    render_saved_chart(frame, chart, height=420, top=40, key=f"{key}_plot")
    render_pin(user, query_id, values, chart, key=key)


def render_pin(user: User | None, query_id: int | None, values: dict, chart: dict, *, key: str) -> None:
    """Pins this saved query's chart (or table), with the parameter values used, to a dashboard."""
    if user is None:
        return
    if query_id is None:
        st.caption("Save the query to pin its chart to a dashboard.")
        return
    boards = load_dashboards(user.username)
    boards = boards[boards["owner"] == user.username]
    with st.expander("Pin to a dashboard"):
        if boards.empty:
            st.caption("Create a dashboard on the Dashboards page first.")
            return
        with st.form(f"{key}_pin"):
            names = dict(zip(boards["dashboard_id"], boards["name"]))
            c = st.columns([3, 1, 3])
            did = c[0].selectbox("Dashboard", list(names), format_func=names.get, key=f"{key}_pin_board")
            width = c[1].selectbox("Width", (1, 2, 3, 4), index=1, key=f"{key}_pin_width", format_func=lambda w: f"{w}/4")
            title = c[2].text_input("Title (optional)", key=f"{key}_pin_title")
            if st.form_submit_button("Pin", icon=":material/push_pin:"):
                try:
                    add_widget(user.username, int(did), kind="query", query_id=query_id,
                               params=L.json_ready(values), chart=chart, width=width, title=title)
                    st.success(f"Pinned to “{plain(names[did])}”.", icon=":material/check:")
                except D.DashboardError as ex:
                    st.error(f"Not pinned: {ex}.", icon=":material/error:")


def _downloads(frame: pd.DataFrame, truncated: bool, sql: str, values: dict, *, key: str,
               user: User | None = None) -> None:
    """CSV, Excel and JSON of the whole result up to EXPORT_ROW_LIMIT rows. A result the page holds
    whole is written from memory; a truncated one runs again (same checks, same role) and streams
    from PostgreSQL into the file batch by batch, built only when the button is clicked."""
    about = {"Query": sql, "Parameters": json.dumps(L.json_ready(values)) if values else "none",
             "Generated at": loaders.local_now().strftime("%Y-%m-%d %H:%M:%S %Z"),
             "By": getattr(user, "username", ""), "Row limit": f"{EXPORT_ROW_LIMIT:,}"}

    def build(fmt: str):
        def make() -> io.BytesIO:
            buf = io.BytesIO()
            if truncated:
                L.export_result(sql, values, fmt, buf, row_limit=EXPORT_ROW_LIMIT, about=about, scope=_scope())
            else:
                write_rows(fmt, list(map(str, frame.columns)), frame_batches(frame), buf, sheet="Query", about=about)
            return buf
        return make
    cols = st.columns([1, 1, 1, 5])
    for col, (fmt, label) in zip(cols, (("csv", "CSV"), ("xlsx", "Excel"), ("json", "JSON"))):
        mime, ext = FORMATS[fmt]
        col.download_button(label, build(fmt), file_name=f"query{ext}", mime=mime, key=f"{key}_{fmt}",
                            icon=":material/download:", on_click="ignore")


# --- saved queries and history ------------------------------------------------------------------

def render_save_form(user: User, sql: str, loaded: dict | None, *, key: str) -> None:
    """Draws the save form: a new query, or an update of the loaded one when it is the user's."""
    mine = loaded is not None and loaded.get("owner") == user.username
    with st.form(f"{key}_save", border=True):
        st.markdown("**Save this query**" + (f" (updating “{plain(loaded['name'])}”)" if mine else ""))
        c = st.columns([2, 3, 2, 1])
        name = c[0].text_input("Name", value=loaded["name"] if mine else "", key=f"{key}_save_name")
        description = c[1].text_input("Description", value=loaded.get("description", "") if mine else "",
                                      key=f"{key}_save_description")
        tags = c[2].text_input("Tags (comma-separated)", value=", ".join(loaded.get("tags") or []) if mine else "",
                               key=f"{key}_save_tags")
        shared = c[3].checkbox("Shared", value=bool(loaded.get("shared")) if mine else False, key=f"{key}_save_shared",
                               help="Everyone with the SQL page sees shared queries; private ones only you",
                               disabled=user.is_vendor)
        if st.form_submit_button("Save", icon=":material/save:"):
            try:
                qid = L.save_query(user, name, sql, description=description, tags=tags, shared=shared,
                                   query_id=loaded["query_id"] if mine else None)
                st.session_state[f"{key}_loaded"] = {"query_id": qid, "name": name.strip(), "owner": user.username,
                                                     "description": description, "tags": SQ._tags(tags),
                                                     "shared": shared and not user.is_vendor, "sql": sql}
                st.success(f"Saved “{plain(name)}”.", icon=":material/check:")
            except SQ.SavedQueryError as ex:
                st.error(f"Not saved: {ex}.", icon=":material/error:")


def render_saved(user: User, *, key: str, on_open: Callable[..., None]) -> None:
    """Draws the saved queries with search, open, delete and edit history."""
    search = st.text_input("Search names, descriptions, tags and SQL", key=f"{key}_search")
    saved = L.load_saved(user, search)
    if saved.empty:
        st.info("No saved queries yet: run one on the Query tab and save it.", icon=":material/bookmark:")
        return
    table = pd.DataFrame({"Name": saved["name"], "Description": saved["description"],
                          "Tags": [", ".join(t or []) for t in saved["tags"]], "Owner": saved["owner"],
                          "Shared": saved["shared"], "Runs": saved["run_count"], "Last run": saved["last_run_at"],
                          "Avg duration (ms)": saved["avg_ms"]})
    st.dataframe(table, key=f"{key}_saved_table", hide_index=True, width="stretch", height=table_height(len(table)))
    names = dict(zip(saved["query_id"], saved["name"] + " · " + saved["owner"]))
    picked = st.selectbox("Query", list(names), format_func=names.get, key=f"{key}_saved_pick")
    row = saved.set_index("query_id").loc[picked]
    st.code(row["sql"], language="sql", wrap_lines=True)
    c = st.columns([1, 1, 4])
    if c[0].button("Open in the editor", key=f"{key}_open", icon=":material/edit:"):
        on_open({"query_id": int(picked), "name": row["name"], "owner": row["owner"], "description": row["description"],
                 "tags": list(row["tags"] or []), "shared": bool(row["shared"]), "sql": row["sql"]}, row["sql"])
    if row["owner"] == user.username and c[1].button("Delete", key=f"{key}_delete", icon=":material/delete:"):
        L.delete_query(user.username, int(picked))
        st.rerun()
    with st.expander("Edit history"):
        versions = L.load_versions(int(picked))
        st.dataframe(versions.rename(columns=str.capitalize), hide_index=True, width="stretch",
                     key=f"{key}_versions")


def render_history(user: User, *, key: str, on_open: Callable[..., None]) -> None:
    """Draws the user's last runs; one can be opened in the editor again."""
    h = L.load_history(user.username)
    if h.empty:
        st.info("You have not run a query yet.", icon=":material/history:")
        return
    table = pd.DataFrame({"Ran at": h["ran_at"], "Outcome": h["outcome"], "Rows": h["rows"],
                          "Duration (ms)": h["duration_ms"], "Query": h["sql"].str.slice(0, 120),
                          "Message": h["message"]})
    st.dataframe(table, key=f"{key}_history_table", hide_index=True, width="stretch", height=table_height(len(table)))
    labels = dict(zip(h["id"], h["ran_at"].astype(str).str.slice(0, 19) + " · " + h["sql"].str.slice(0, 60)))
    picked = st.selectbox("Run", list(labels), format_func=labels.get, key=f"{key}_history_pick")
    if st.button("Open in the editor", key=f"{key}_history_open", icon=":material/edit:"):
        row = h.set_index("id").loc[picked]
        on_open(None, row["sql"], row["params"] if isinstance(row["params"], dict) else json.loads(row["params"]))


# --- schema browser -----------------------------------------------------------------------------

def render_schema(*, key: str) -> None:
    """Draws mart's tables and columns with a search, and the metric glossary."""
    scope = _scope()
    cols = L.load_schema(scope)
    st.caption("Schema mart: the tables your SQL can read, each limited to your own vendors' rows."
               if scope else "Schema mart: the tables analysts' SQL can read. Row counts are PostgreSQL's estimates.")
    with st.expander("Metric glossary: the pages' definitions, to match them in SQL"):
        st.dataframe(pd.DataFrame({"Metric": [m.label for m in METRICS.values()],
                                   "Definition": [m.description for m in METRICS.values()]}),
                     hide_index=True, width="stretch", key=f"{key}_glossary",
                     column_config={"Definition": st.column_config.TextColumn(width="large")})
    search = st.text_input("Find a table or column", key=f"{key}_schema_search").strip().lower()
    for table, g in cols.groupby("table", sort=True):
        if search and search not in table and not g["column"].str.contains(search, regex=False).any():
            continue
        rows = int(g["approx_rows"].iloc[0])
        counted = f"{max(rows, 0):,} rows · " if not scope else ""
        with st.expander(f"{table} · {counted}{len(g)} columns"):
            st.dataframe(g[["column", "type"]], hide_index=True, width="stretch", key=f"{key}_schema_{table}")
