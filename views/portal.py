"""A vendor user's overview of their own business: KPI cards, revenue trend, their standing against
their category's peers, top products and categories. Every figure is read on the vendor's database
role, which PostgreSQL limits to the vendor's own rows."""
from __future__ import annotations

import streamlit as st

from analytics.filters import COMPARISONS, PRESET_LABELS
from analytics.vendor_portal import TREND
from components import loaders
from components import portal_widgets as W
from components.auth import require_scope
from components.charts import render_trend
from components.filters import chosen_preset, render_filter_bar
from components.kpi_cards import render_kpi_cards
from components.loaders.portal import BENCHMARKED_PRESETS as BENCHMARKED, load_vendor_benchmarks, load_vendor_overview
from components.text import plain

vendor_ids = require_scope()   # vendor users only
f = render_filter_bar(key="vp", dimensions=False)
if f is None:
    st.stop()
with st.spinner("Loading your figures…"):
    fig = load_vendor_overview(vendor_ids, f)
names = ", ".join(fig.vendor_names.get(v, str(v)) for v in vendor_ids)
st.title(plain(names))
fresh = loaders.load_freshness()
st.caption(f.describe() + (f" · compared with {f.compare.label()}" if f.compare else "")
           + (f" · data as of {fresh['refreshed_at']:%d %b %H:%M}" if fresh.get("refreshed_at") else "")
           + " · your order lines only: GMV and units of your lines, the orders that hold them")
if fig.empty:
    st.info(f"No orders of yours between {f.period.label()}. Choose another period in the sidebar.", icon="🗓️")
else:
    render_kpi_cards(fig.kpis, fig.sparks, per_row=4, key="vp_kpi")

st.subheader("How you compare in your category")
preset = chosen_preset("vp")
if preset not in BENCHMARKED:
    st.info("Peer benchmarks are computed once a day for " + ", ".join(PRESET_LABELS[p].lower() for p in BENCHMARKED)
            + ": choose one of these periods in the sidebar to see them.", icon=":material/info:")
else:
    W.render_benchmarks(load_vendor_benchmarks(vendor_ids, preset), fig.vendor_names, key="vp_bench")

if not fig.empty:
    st.subheader("Revenue trend")
    render_trend(fig.trend, fig.trend_before, TREND, compare_label=COMPARISONS[f.comparison], key="vp_trend")
    st.subheader("Top products")
    W.render_top_products(fig.top_products, key="vp_products")
    if len(fig.categories) > 1:
        st.subheader("By category")
        W.render_categories(fig.categories, key="vp_categories")
