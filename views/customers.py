"""Customers: RFM segments and their movement, clusters, cohorts, lifetime value and churn risk."""
from __future__ import annotations

import streamlit as st

from components import customer_widgets as W
from components.auth import require_role
from components.filters import render_filter_bar
from components.loaders.customers import load_scores

require_role("viewer", "analyst", "admin")   # the marketplace's staff; vendors have their own pages
st.title("Customers")
f = render_filter_bar(key="cu")
if f is None:
    st.stop()

k_choice = st.session_state.get("cu_k", "auto")
with st.spinner("Loading customer figures…"):
    scores, source = load_scores(f, None if k_choice == "auto" else int(k_choice))
st.caption(f"{source} Segments move between the day before the period and its end; the dimension filters keep "
           "the customers and orders that match.")
if scores.status != "ok":
    W.render_too_thin(scores, key="cu_thin")

segments, clusters, cohorts, value, risk = st.tabs(["Segments", "Clusters", "Cohorts", "Lifetime value", "At risk"])
with segments:
    W.render_segments(scores, key="cu")
with clusters:
    st.selectbox("Clusters", W.K_CHOICES, key="cu_k", format_func=lambda k: "Automatic (best silhouette)"
                 if k == "auto" else f"{k} clusters", help="Setting k recomputes the scores for this page.")
    W.render_clusters(scores, key="cu")
with cohorts:
    W.render_cohorts(scores, key="cu")
with value:
    W.render_lifetime_value(scores, key="cu")
with risk:
    W.render_at_risk(scores, key="cu")
