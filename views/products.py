"""Products: rankings by any metric, price vs volume, margins, and inventory cover."""
from __future__ import annotations

import streamlit as st

from components import loaders
from components.auth import require_role
from components.filters import render_filter_bar
from components.loaders.products import load_inventory, load_products
from components.product_widgets import controls, render_inventory, render_margins, render_price_volume, render_rankings

require_role("viewer", "analyst", "admin")   # the marketplace's staff; vendors have their own pages
st.title("Products")
f = render_filter_bar(key="pr")
if f is None:
    st.stop()

fresh = loaders.load_freshness()
st.caption(f.describe() + (f" · compared with {f.compare.label()}" if f.compare else "")
           + (f" · data as of {fresh['refreshed_at']:%d %b %H:%M}" if fresh.get("refreshed_at") else ""))
as_of = min(f.period.end, loaders.local_today())
c = controls("pr")
with st.spinner("Loading product figures…"):
    fig = load_products(f, c["metric"], c["n"], c["min_gmv"], c["margin_n"])
    inventory = load_inventory(f, as_of, c["low"], c["high"])

rankings, price, margins, stock = st.tabs(["Rankings", "Price vs volume", "Margins", "Inventory"])
with rankings:
    render_rankings(fig, f, key="pr")
with price:
    render_price_volume(fig, f, key="pr")
with margins:
    render_margins(fig, f, key="pr")
with stock:
    render_inventory(inventory, f, key="pr")
