"""Admin: users, audit log, scheduler status. Admins only (the router checks too)."""
from __future__ import annotations

import streamlit as st

from components import loaders
from components.admin import render_audit, render_deliveries, render_scheduler, render_users
from components.auth import require_role

admin = require_role("admin")
st.title("Admin")
users, audit, scheduler = st.tabs(["Users", "Audit log", "Scheduler"])
with users:
    render_users(loaders.app_engine(), admin)
with audit:
    render_audit(loaders.app_engine())
with scheduler:
    render_scheduler(loaders.app_engine())
    render_deliveries(loaders.app_engine(), admin)
