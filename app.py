"""Marketplace BI: the router and the frame every page shares."""
from __future__ import annotations

import streamlit as st

from analytics.metrics import glossary
from components import auth, loaders
from components.navigation import build_navigation
from data.db import DatabaseStartError
from data.errors import DataError
from data.settings import SettingsError

st.set_page_config(page_title="Marketplace BI", page_icon="📊", layout="wide")

try:
    loaders.load_freshness()
    user = auth.gate()
except SettingsError as ex:
    st.error(f"The app's configuration is not usable: {ex}")
    st.stop()
except DatabaseStartError as ex:
    st.error(f"The app cannot reach its database: {ex}")
    st.stop()
except DataError as ex:   # unreachable, busy, or a schema to migrate: the error says what to do
    st.error(str(ex))
    st.stop()

if user is None:
    build_navigation(None).run()
    st.stop()

with st.sidebar:
    st.markdown("### :material/analytics: Marketplace BI")
nav = build_navigation(user)
auth.render_user_box(user, key="mbi")

nav.run()

with st.sidebar.expander("Metric glossary"):
    for row in glossary():
        st.markdown(f"**{row['metric']}** — {row['definition']}")
