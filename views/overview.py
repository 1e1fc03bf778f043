"""KPI overview: cards, revenue trend, breakdowns, top vendors and categories."""
from __future__ import annotations

import streamlit as st

from analytics.filters import COMPARISONS
from analytics.overview import TOP, TREND
from components import loaders
from components.auth import require_live_session, require_role
from components.charts import render_share_bars, render_trend
from components.filters import render_filter_bar
from components.kpi_cards import render_kpi_cards
from components.labels import VALUE_LABELS
from components.loaders.overview import load_overview
from components.tables import ranked_table, render_ranked_table

require_role("viewer", "analyst", "admin")   # the marketplace's staff; vendors have their own pages
st.title("Overview")
f = render_filter_bar(key="ov")
auto = st.sidebar.toggle("Auto-refresh every 5 minutes", key="ov_auto")
if f is None:
    st.stop()


@st.fragment(run_every=300 if auto else None)
def body() -> None:
    # An auto-refresh reruns only this fragment, not app.py's gate: check the session here too.
    require_live_session()
    fresh = loaders.load_freshness()
    st.caption(f.describe() + (f" · compared with {f.compare.label()}" if f.compare else "")
               + (f" · data as of {fresh['refreshed_at']:%d %b %H:%M}" if fresh.get("refreshed_at") else ""))
    with st.spinner("Loading figures…"):
        fig = load_overview(f)
    if fig.empty:
        st.info(f"No orders between {f.period.label()} for these filters. Choose another period or clear "
                "the dimension filters in the sidebar.", icon="🗓️")
        return
    render_kpi_cards(fig.kpis, fig.sparks, key="ov_kpi")

    st.subheader("Revenue trend")
    render_trend(fig.trend, fig.trend_before, TREND, compare_label=COMPARISONS[f.comparison], key="ov_chart_trend")

    left, right = st.columns(2)
    with left:
        render_share_bars(fig.by_business_model, "gmv", title="GMV by business model", key="ov_chart_bm")
    with right:
        render_share_bars(fig.by_channel, "gmv", title="GMV by channel", labels=VALUE_LABELS, key="ov_chart_channel")

    total = float(fig.kpis.set_index("metric").loc["gmv", "current"])
    left, right = st.columns(2)
    with left:
        st.subheader("Top 10 vendors")
        table = ranked_table(fig.top_vendors, fig.vendors_before, TOP, fig.vendor_names, "Vendor", total)
        render_ranked_table(table, TOP, key="ov_top_vendors")
    with right:
        st.subheader("Top 10 categories")
        table = ranked_table(fig.top_categories, fig.categories_before, TOP, None, "Category", total)
        render_ranked_table(table, TOP, key="ov_top_categories")


body()
