"""Reports: export any report in the background (CSV, Excel, PDF, JSON), follow its progress and
download it; analysts and admins schedule reports by email and webhook. A vendor user exports and
schedules their own report (made on their vendors' own database role, mailed to their vendors' users
only) and sees only their own exports and schedules."""
from __future__ import annotations

import streamlit as st

from components import report_widgets as W
from components.auth import require_role

user = require_role("viewer", "analyst", "admin", "vendor")
st.title("Reports")
st.caption("Report templates over the same figures as the pages, made by the scheduler in the background. "
           "Periods such as “last week” are worked out when a report runs, in the app's time zone.")

names = ["My exports", "New export"] + (["Schedules"] if user.role in ("analyst", "admin", "vendor") else [])
tabs = dict(zip(names, st.tabs(names)))
with tabs["My exports"]:
    W.render_exports(user, key="rep_exports")
with tabs["New export"]:
    W.render_request(user, key="rep_request")
if "Schedules" in tabs:
    with tabs["Schedules"]:
        W.render_schedules(user, key="rep_sched")
