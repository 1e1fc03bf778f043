"""Admin: users, audit log, scheduler status. Admins only (the router checks too)."""
from __future__ import annotations

import streamlit as st

from components.admin import render_audit, render_deliveries, render_scheduler, render_users
from components.auth import require_role

admin = require_role("admin")
st.title("Admin")
users, audit, scheduler = st.tabs(["Users", "Audit log", "Scheduler"])
with users:
    render_users(admin, key="admin")
with audit:
    render_audit(key="audit")
with scheduler:
    render_scheduler(key="scheduler")
    render_deliveries(admin, key="deliveries")
