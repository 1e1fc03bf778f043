"""Products: rankings by any metric, price vs volume, margins, and inventory cover. A vendor user sees
their own products (read on their own database role): what their lines sold and their stock."""
from __future__ import annotations

import streamlit as st

from components import loaders
from components.auth import require_scope
from components.filters import render_filter_bar
from components.loaders.products import load_inventory, load_products
from components.product_widgets import controls, render_inventory, render_margins, render_price_volume, render_rankings

vendor_ids = require_scope("viewer", "analyst", "admin")
st.title("Your products" if vendor_ids else "Products")
# A vendor's filter bar offers no dimensions: its choices would name the marketplace's vendors.
f = render_filter_bar(key="pr", dimensions=not vendor_ids)
if f is None:
    st.stop()

fresh = loaders.load_freshness()
st.caption(f.describe() + (f" · compared with {f.compare.label()}" if f.compare else "")
           + (f" · data as of {fresh['refreshed_at']:%d %b %H:%M}" if fresh.get("refreshed_at") else "")
           + (" · your order lines only" if vendor_ids else ""))
as_of = min(f.period.end, loaders.local_today())
c = controls("pr")
with st.spinner("Loading product figures…"):
    fig = load_products(f, c["metric"], c["n"], c["min_gmv"], c["margin_n"], vendor_ids)
    inventory = load_inventory(f, as_of, c["low"], c["high"], vendor_ids)

rankings, price, margins, stock = st.tabs(["Rankings", "Price vs volume", "Margins", "Inventory"])
with rankings:
    render_rankings(fig, f, key="pr", vendor_ids=vendor_ids)
with price:
    render_price_volume(fig, f, key="pr")
with margins:
    render_margins(fig, f, key="pr")
with stock:
    render_inventory(inventory, f, key="pr")
