"""Sales: metric trend with growth and targets, breakdowns with click-to-focus, payments, funnel,
marketing and profitability."""
from __future__ import annotations

import streamlit as st

from components.auth import require_role
from components.filters import render_filter_bar
from components.sales_widgets import (apply_focus, render_breakdown_section, render_focus_bar, render_funnel,
                                      render_marketing, render_payments, render_profitability, render_trend_section)

require_role("viewer", "analyst", "admin")   # the marketplace's staff; vendors have their own pages
st.title("Sales")
f = render_filter_bar(key="sa")
if f is None:
    st.stop()
st.caption(f.describe() + (f" · compared with {f.compare.label()}" if f.compare else ""))

st.subheader("Breakdown")
render_breakdown_section(f, key="sa")

focused = apply_focus(f, key="sa")
render_focus_bar(key="sa")
st.subheader("Trend")
render_trend_section(focused, key="sa")

# Only the open tab is drawn (switching tabs reruns the page): hidden tabs cost the server as much
# as the shown one, a third of a sales render.
tabs = st.tabs(["Payments", "Funnel", "Marketing", "Profitability"], key="sa_tab", on_change="rerun")
for tab, render in zip(tabs, (render_payments, render_funnel, render_marketing, render_profitability)):
    if tab.open:
        with tab:
            render(focused, key="sa")
