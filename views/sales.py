"""Sales: metric trend with growth and targets, breakdowns with click-to-focus, payments, funnel,
marketing and profitability. A vendor user sees their own sales (read on their own database role):
their metrics and breakdowns, payments and profitability; traffic and marketing are the marketplace's."""
from __future__ import annotations

import streamlit as st

from analytics.vendor_portal import VENDOR_SALES_SECTIONS
from components.auth import require_scope
from components.filters import render_filter_bar
from components.sales_widgets import (apply_focus, render_breakdown_section, render_focus_bar, render_funnel,
                                      render_marketing, render_payments, render_profitability, render_trend_section)

vendor_ids = require_scope("viewer", "analyst", "admin")
st.title("Your sales" if vendor_ids else "Sales")
# A vendor's filter bar offers no dimensions: its choices would name the marketplace's vendors.
f = render_filter_bar(key="sa", dimensions=not vendor_ids)
if f is None:
    st.stop()
st.caption(f.describe() + (f" · compared with {f.compare.label()}" if f.compare else "")
           + (" · your order lines only" if vendor_ids else ""))

st.subheader("Breakdown")
render_breakdown_section(f, key="sa", vendor_ids=vendor_ids)

focused = apply_focus(f, key="sa")
render_focus_bar(key="sa")
st.subheader("Trend")
render_trend_section(focused, key="sa", vendor_ids=vendor_ids)

# Only the open tab is drawn (switching tabs reruns the page): hidden tabs cost the server as much
# as the shown one, a third of a sales render.
sections = {"payments": ("Payments", render_payments), "funnel": ("Funnel", render_funnel),
            "marketing": ("Marketing", render_marketing), "profitability": ("Profitability", render_profitability)}
shown = [sections[name] for name in (VENDOR_SALES_SECTIONS if vendor_ids else sections)]
tabs = st.tabs([title for title, _ in shown], key="sa_tab", on_change="rerun")
for tab, (_, render) in zip(tabs, shown):
    if tab.open:
        with tab:
            render(focused, key="sa", vendor_ids=vendor_ids)
