"""Customers: RFM segments and their movement, clusters, cohorts, lifetime value and churn risk. A
vendor user sees the customers of their own lines as aggregates and scores, read on their own
database role (their vendor's nightly scores when they answer, else computed): no customer's name,
details or list."""
from __future__ import annotations

import streamlit as st

from components import customer_widgets as W
from components.auth import require_scope
from components.filters import render_filter_bar
from components.loaders.customers import load_scores

vendor_ids = require_scope("viewer", "analyst", "admin")
st.title("Your customers" if vendor_ids else "Customers")
# A vendor's filter bar offers no dimensions: its choices would name the marketplace's vendors.
f = render_filter_bar(key="cu", dimensions=not vendor_ids)
if f is None:
    st.stop()

k_choice = st.session_state.get("cu_k", "auto")
with st.spinner("Loading customer figures…"):
    scores, source = load_scores(f, None if k_choice == "auto" else int(k_choice), vendor_ids)
st.caption(f"{source} Segments move between the day before the period and its end; "
           + ("customers are those who bought your products, measured on your order lines only."
              if vendor_ids else "the dimension filters keep the customers and orders that match."))
if scores.status != "ok":
    W.render_too_thin(scores, key="cu_thin")

names = ["Segments", "Clusters", "Cohorts", "Lifetime value"] + ([] if vendor_ids else ["At risk"])
tabs = dict(zip(names, st.tabs(names)))
with tabs["Segments"]:
    W.render_segments(scores, key="cu")
with tabs["Clusters"]:
    st.selectbox("Clusters", W.K_CHOICES, key="cu_k", format_func=lambda k: "Automatic (best silhouette)"
                 if k == "auto" else f"{k} clusters", help="Setting k recomputes the scores for this page.")
    W.render_clusters(scores, key="cu")
with tabs["Cohorts"]:
    W.render_cohorts(scores, key="cu")
with tabs["Lifetime value"]:
    W.render_lifetime_value(scores, key="cu", customers=not vendor_ids)
if not vendor_ids:   # the at-risk list names customers
    with tabs["At risk"]:
        W.render_at_risk(scores, key="cu")
