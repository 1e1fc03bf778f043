"""SQL: analysts' own queries against schema mart, with parameters, charts, downloads, saved
queries, history and a schema browser. Every run goes through analytics.query.run_query."""
from __future__ import annotations

import streamlit as st

from analytics.query import QueryRejected
from analytics.sql_params import find_parameters
from components import sql_widgets as W
from components.auth import client_addr, require_role
from components.loaders.sql import execute
from components.text import plain

user = require_role("analyst", "admin", "vendor")
st.title("SQL")
if user.is_vendor:
    st.caption("Read-only queries over schema mart, on your own database role: PostgreSQL shows it your vendors' "
               "rows only (your order lines, the orders holding them, your products). One statement, a time "
               "limit and a row limit. Nothing here can change data.")
else:
    st.caption("Read-only queries over schema mart, on the analysts' own database role: one statement, a time "
               "limit and a row limit. Nothing here can change data.")

# Opening a saved query or a history entry sets the editor before it is drawn.
pending = st.session_state.pop("sql_pending", None)
if pending is not None:
    st.session_state["sql_text"] = pending["sql"]
    st.session_state["sql_loaded"] = pending["loaded"]
    st.session_state.pop("sql_last", None)
    W.restore_parameter_inputs(pending["sql"], pending.get("params") or {}, key="sql")


def open_query(loaded, sql: str, params: dict | None = None) -> None:
    st.session_state["sql_pending"] = {"loaded": loaded, "sql": sql, "params": params}
    st.rerun()


query, saved, history, schema = st.tabs(["Query", "Saved queries", "History", "Schema"])
with query:
    c1, c2 = st.columns([3, 1])
    examples = W.examples()
    example = c1.selectbox("Start from an example", [None, *examples], key="sql_example",
                           format_func=lambda e: "—" if e is None else e)
    if c2.button("Use the example", key="sql_use_example", disabled=example is None):
        open_query(None, examples[example])
    loaded = st.session_state.get("sql_loaded")
    sql = st.text_area("SQL", key="sql_text", height=220, placeholder="SELECT … FROM mart.orders …")
    # Runs and pins count for the saved query only while the editor holds its saved text.
    saved_id = loaded["query_id"] if loaded and loaded.get("sql") == sql else None
    if loaded:
        st.caption(f"Saved query “{plain(loaded['name'])}” by {plain(loaded['owner'])}"
                   + ("." if saved_id else " — edited: save it to keep the changes."))
    try:
        params = find_parameters(sql or "")
    except QueryRejected as ex:
        st.error(f"{ex}.", icon=":material/error:")
        params = None
    values = W.render_parameter_inputs(params or [], key="sql") if params is not None else {}
    c1, c2, c3, _ = st.columns([1, 1, 1, 3], vertical_alignment="bottom")
    limit = c1.selectbox("Row limit", W.ROW_LIMITS, index=W.ROW_LIMITS.index(W.DEFAULT_ROW_LIMIT), key="sql_limit",
                         format_func=lambda n: f"{n:,} rows")
    run = c2.button("Run", type="primary", key="sql_run", icon=":material/play_arrow:", disabled=params is None,
                    shortcut="Ctrl+Enter", help="Ctrl+Enter runs the query")
    c3.button("Format", key="sql_format", icon=":material/format_align_left:", on_click=W.format_editor,
              args=("sql_text",), disabled=not (sql or "").strip(), help="Lay the query out one clause a line")
    if st.session_state.get("sql_format_error"):
        st.warning(st.session_state.pop("sql_format_error"), icon=":material/warning:")
    if run:
        with st.spinner("Running…"):
            result, message = execute(user, sql, values, row_limit=limit,
                                      query_id=saved_id, client_addr=client_addr())
        st.session_state["sql_last"] = {"sql": sql, "values": values, "result": result, "message": message}
    last = st.session_state.get("sql_last")
    if last and last["sql"] == sql:
        if last["message"]:
            st.error(last["message"], icon=":material/error:")
        else:
            W.render_result(last["result"], last["sql"], last["values"], key="sql", user=user, query_id=saved_id)
    if (sql or "").strip():
        W.render_save_form(user, sql, loaded, key="sql")
with saved:
    W.render_saved(user, key="sql", on_open=open_query)
with history:
    W.render_history(user, key="sql", on_open=open_query)
with schema:
    W.render_schema(key="sql")
