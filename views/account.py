"""My account: who I am, my role, and changing my own password."""
from __future__ import annotations

import streamlit as st

from components.admin import render_password_change
from components.auth import ROLE_LABELS, current_session_id, require_role
from components.text import plain

user = require_role("viewer", "analyst", "admin", "vendor")
st.title("My account")
left, right = st.columns([1, 2], gap="large")
with left:
    st.markdown(f"**Username** {plain(user.username)}  \n**Name** {plain(user.name or '—')}  \n"
                f"**Email** {plain(user.email or '—')}  \n**Role** {ROLE_LABELS[user.role]}"
                + (f"  \n**Vendors** {', '.join(map(str, user.vendor_ids))}" if user.is_vendor else ""))
    st.caption("An admin can change your role or reset your password.")
with right:
    st.subheader("Change password")
    render_password_change(user, current_session_id(), key="account")
