"""Dashboards: saved-query charts and KPI cards pinned by analysts, personal or shared, refreshed
on a chosen interval."""
from __future__ import annotations

import streamlit as st

from components import dashboard_widgets as W
from components.auth import require_role
from components.loaders.dashboards import load_dashboards
from components.text import plain

user = require_role("viewer", "analyst", "admin")
can_edit = user.role in ("analyst", "admin")
st.title("Dashboards")
boards = load_dashboards(user.username)

if can_edit:
    W.render_new_dashboard(user.username, expanded=boards.empty, key="db_new")

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

W.render_board(did, refresh=refresh, mine=mine, key="db")
if mine:
    W.render_add_kpi(user.username, did, key="db_kpi")
    W.render_arrange(user.username, did, board, key="db")
