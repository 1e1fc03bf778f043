"""Marketplace BI: the router and the frame every page shares."""
from __future__ import annotations

import sqlalchemy as sa
import streamlit as st

from analytics.metrics import glossary
from components import loaders
from data.db import DatabaseStartError
from data.settings import SettingsError

st.set_page_config(page_title="Marketplace BI", page_icon="📊", layout="wide")

try:
    loaders.freshness()
except (SettingsError, DatabaseStartError) as ex:
    st.error(f"The app cannot reach its database: {ex}")
    st.stop()
except sa.exc.OperationalError as ex:
    st.error(f"The app cannot reach PostgreSQL: {str(ex.orig).strip()}. Check DATABASE_URL, or unset it "
             "to use the embedded server.")
    st.stop()
except sa.exc.ProgrammingError:
    st.error("The database has no Marketplace BI schema yet: run `python -m data migrate` (make run does).")
    st.stop()

pages = {
    "Analysis": [st.Page("views/overview.py", title="Overview", icon="📈", url_path="overview", default=True)],
}
nav = st.navigation(pages)

with st.sidebar:
    st.markdown("### Marketplace BI")

nav.run()

with st.sidebar.expander("Metric glossary"):
    for row in glossary():
        st.markdown(f"**{row['metric']}** — {row['definition']}")
