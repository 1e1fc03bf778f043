"""Dashboards: saved-query charts and KPI cards pinned by analysts, personal or shared, refreshed
on a chosen interval. A vendor user's are their own, never shared, drawn on their own database role."""
from __future__ import annotations

import streamlit as st

from analytics.metrics import METRICS
from analytics.vendor_portal import VENDOR_METRICS
from components import dashboard_widgets as W
from components.auth import current_user, require_scope
from components.loaders.dashboards import load_dashboards
from components.text import plain

vendor_ids = require_scope("viewer", "analyst", "admin")
user = current_user()
can_edit = user.role in ("analyst", "admin") or user.is_vendor
st.title("Your dashboards" if vendor_ids else "Dashboards")
boards = load_dashboards(user.username)

if can_edit:
    W.render_new_dashboard(user.username, expanded=boards.empty, key="db_new", shareable=not vendor_ids)

if boards.empty:
    st.info("No dashboards yet." + (" Create one above, then pin a saved query's chart from the SQL page or add a "
                                     "KPI card here." if can_edit else " Analysts create and share them."),
            icon=":material/dashboard:")
    st.stop()

labels = {int(r.dashboard_id): f"{r.name} · {r.owner}" + (" · shared" if r.shared else "") for r in boards.itertuples()}
# A dashboard's own link, /dashboards?d=ID, opens it (after the login, which keeps the address).
wanted, index = st.query_params.get("d"), 0
if wanted is not None and "db_pick" not in st.session_state:
    try:
        index = list(labels).index(int(wanted))
    except ValueError:
        st.warning(f"Dashboard {plain(wanted)} is not one you can open: it was deleted, or it is someone else's and "
                   "not shared. Showing your first one instead.", icon=":material/link_off:")
did = st.selectbox("Dashboard", list(labels), index=index, format_func=labels.get, key="db_pick")
st.query_params["d"] = str(did)
board = boards.set_index("dashboard_id").loc[did]
mine = board["owner"] == user.username
refresh = int(board["refresh_seconds"])
st.caption(f"By {plain(board['owner'])} · {'shared' if board['shared'] else 'private'} · "
           + (f"refreshes every {refresh // 60} min" if refresh else "no automatic refresh")
           + (" · your own rows only" if vendor_ids else "")
           + f" · link: {W.dashboard_link(did)}")

W.render_board(did, refresh=refresh, mine=mine, key="db", vendor_ids=vendor_ids)
if mine:
    W.render_add_kpi(user.username, did, key="db_kpi", metrics=VENDOR_METRICS if vendor_ids else tuple(METRICS))
    W.render_arrange(user.username, did, board, key="db", shareable=not vendor_ids)
