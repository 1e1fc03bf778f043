"""Marketplace BI: the router and the frame every page shares."""
from __future__ import annotations

import sqlalchemy as sa
from psycopg.errors import UndefinedColumn, UndefinedTable
import streamlit as st

from analytics.metrics import glossary
from components import auth, loaders
from components.navigation import build_navigation
from data.db import DatabaseStartError
from data.settings import SettingsError

st.set_page_config(page_title="Marketplace BI", page_icon="📊", layout="wide")

try:
    loaders.freshness()
    user = auth.gate(loaders.app_engine())
except SettingsError as ex:
    st.error(f"The app's configuration is not usable: {ex}")
    st.stop()
except DatabaseStartError as ex:
    st.error(f"The app cannot reach its database: {ex}")
    st.stop()
except sa.exc.OperationalError as ex:
    st.error(f"The app cannot reach PostgreSQL: {str(ex.orig).strip()}. Check DATABASE_URL, or unset it "
             "to use the embedded server.")
    st.stop()
except sa.exc.ProgrammingError as ex:
    if not isinstance(ex.orig, (UndefinedTable, UndefinedColumn)):
        raise
    st.error("The database has no Marketplace BI schema yet, or an older one: run `python -m data migrate` "
             "(make run does).")
    st.stop()

if user is None:
    build_navigation(None).run()
    st.stop()

with st.sidebar:
    st.markdown("### :material/analytics: Marketplace BI")
nav = build_navigation(user)
auth.render_user_box(loaders.app_engine(), user)

nav.run()

with st.sidebar.expander("Metric glossary"):
    for row in glossary():
        st.markdown(f"**{row['metric']}** — {row['definition']}")
