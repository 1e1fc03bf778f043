"""Vendors: leaderboard, one vendor's drill-down, concentration, and new/growing/declining/churned."""
from __future__ import annotations

import streamlit as st

from analytics import vendors as av
from components import vendor_widgets as vw
from components.auth import require_role
from components.filters import render_filter_bar
from components.loaders.vendors import load_hhi_series, load_lifecycle, load_vendor_table

require_role("viewer", "analyst", "admin")
st.title("Vendors")
f = render_filter_bar(key="vd")
if f is None:
    st.stop()
st.caption(f.describe() + (f" · compared with {f.compare.label()}" if f.compare else ""))

table = None
with vw.explained_errors("the vendors"), st.spinner("Loading vendors…"):
    table = load_vendor_table(f)
if table is None:
    st.stop()
if not (table["orders"] > 0).any() and not (f.compare and (table["orders_prev"] > 0).any()):
    st.info(f"No vendor sold anything between {f.period.label()}"
            + (f" or {f.compare.label()}" if f.compare else "") + " for these filters. Choose another period "
            "or clear the dimension filters in the sidebar.", icon="🗓️")
    st.stop()

concentration = av.compute_concentration(table, f.compare is not None)
life = None
with vw.explained_errors("new and churned vendors"):
    life = load_lifecycle(f)
if life is not None:
    vw.render_summary(table, concentration, life, key="vd_summary")

st.subheader("Leaderboard")
picked = vw.render_leaderboard(table, f, key="vd_lb")

st.subheader("Vendor drill-down")
vendor_id = vw.render_vendor_picker(table, picked, key="vd_vendor")
if vendor_id is not None:
    with vw.explained_errors("this vendor"), st.spinner("Loading the vendor…"):
        vw.render_vendor_detail(f, table, vendor_id, key="vd_detail")

st.subheader("Concentration")
with vw.explained_errors("concentration"):
    vw.render_concentration(concentration, load_hhi_series(f), key="vd_conc")

st.subheader("New, growing, declining and churned vendors")
if life is not None:
    vw.render_lifecycle(life, key="vd_life")
