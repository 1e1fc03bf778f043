"""The vendor portal's widgets: the vendor's standing in its category with the peers' quartiles, its
top products and its categories. Everything drawn here was read on the vendor's own database role."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics.metrics import format_value
from components.downloads import render_downloads
from components.tables import metric_column, table_height
from components.text import plain
from data.peer_benchmarks import LABELS, MIN_PEERS

# Peer benchmark metric -> (format as analytics.metrics' glossary names it, what it means); labels
# are data.peer_benchmarks.LABELS. Growth and take rate are not glossary metrics: defined there.
BENCHMARKS = {
    "gmv": ("money", "GMV of your lines in the period: your rank among your category's vendors."),
    "gmv_growth": ("percent", "GMV of the period against the same number of days just before, as a change."),
    "aov": ("money", "GMV / orders holding your lines."),
    "refund_rate": ("percent", "Σ refunded amount / GMV of your lines."),
    "cancellation_rate": ("percent", "Cancelled orders / all orders holding your lines."),
    "take_rate": ("percent", "The marketplace's commission: take revenue / GMV of your lines."),
    "repeat_rate": ("percent",
                    "Share of your customers in the period with two or more orders from you up to its end."),
}


def _fmt(fmt: str, value) -> str:
    if value is None or value != value:
        return "–"
    if fmt == "percent":
        return f"{value * 100:.1f} %"
    return format_value("aov", value, compact=False)


def benchmark_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Returns the standing as people read it: one row per metric with your value, the category's
    quartiles and your rank, or "not enough peers" where fewer than MIN_PEERS vendors have a value."""
    out = []
    for metric, (fmt, _) in BENCHMARKS.items():
        label = LABELS[metric]
        r = rows[rows["metric"] == metric]
        if r.empty:
            out.append({"Metric": label, "You": "–", "Category 25th percentile": "", "Category median": "",
                        "Category 75th percentile": "", "Standing": "no value in this period"})
            continue
        r = r.iloc[0]
        enough = r["peers"] == r["peers"] and r["peers"] >= MIN_PEERS
        quartiles = enough and r["median"] == r["median"]   # none for GMV: they would be a vendor's revenue
        out.append({
            "Metric": label, "You": _fmt(fmt, r["value"]),
            "Category 25th percentile": _fmt(fmt, r["p25"]) if quartiles else "",
            "Category median": _fmt(fmt, r["median"]) if quartiles else "",
            "Category 75th percentile": _fmt(fmt, r["p75"]) if quartiles else "",
            # percentile: the share of the category's vendors this one is at least as good as
            "Standing": (f"#{int(r['rank'])} of {int(r['peers'])} · percentile {r['percentile']:.0f}"
                         if enough else f"not enough peers (fewer than {MIN_PEERS} vendors)"),
        })
    return pd.DataFrame(out)


def render_benchmarks(rows: pd.DataFrame, names: dict, *, key: str) -> None:
    """Draws the vendor's standing against its category's peers, per vendor it sees."""
    if rows.empty:
        st.info("Peer benchmarks for this period are not computed yet: the scheduler computes them once a day "
                "for the preset periods (not for a custom range).", icon=":material/hourglass_empty:")
        return
    for vendor_id, mine in rows.groupby("vendor_id", sort=True):
        category = mine["category"].iloc[0]
        first = mine.iloc[0]
        if len(names) > 1:
            st.markdown(f"**{plain(names.get(int(vendor_id), str(vendor_id)))}**")
        st.caption(f"Against the vendors of {plain(str(category))} over {first['period_start']:%d %b %Y} – "
                   f"{first['period_end']:%d %b %Y}. Quartiles and ranks are anonymous: no other vendor is named, "
                   f"and none is shown where fewer than {MIN_PEERS} vendors contribute. Rank 1 is the best: the "
                   "highest GMV, growth, AOV and repeat rate, the lowest refund, cancellation and take rates; the "
                   "percentile is the share of the category's vendors you are level with or ahead of.")
        help_text = {LABELS[m]: text for m, (_, text) in BENCHMARKS.items()}
        table = benchmark_table(mine)
        st.dataframe(table, key=f"{key}_{int(vendor_id)}", hide_index=True, width="stretch",
                     height=table_height(len(table)),
                     column_config={"Metric": st.column_config.TextColumn("Metric", help=" · ".join(
                         f"{k}: {v}" for k, v in help_text.items()))})


PRODUCT_COLUMNS = {"sku": "SKU", "name": "Product", "category": "Category", "gmv": "GMV", "units": "Units",
                   "orders": "Orders", "refund_rate": "Refund rate", "gross_margin": "Gross margin"}


def render_top_products(products: pd.DataFrame, *, key: str) -> None:
    """Draws the vendor's top products by GMV, with CSV and Excel downloads of what is shown."""
    if products.empty:
        st.caption("No product sold in this period.")
        return
    shown = products[list(PRODUCT_COLUMNS)].rename(columns=PRODUCT_COLUMNS)
    config = {PRODUCT_COLUMNS[m]: metric_column(m) for m in ("gmv", "orders", "refund_rate", "gross_margin")}
    config["Units"] = st.column_config.NumberColumn("Units", format="%d")
    st.dataframe(shown, key=key, hide_index=True, width="stretch", column_config=config,
                 height=table_height(len(shown)))
    render_downloads(shown, "top products", key=f"{key}_dl")


def render_categories(categories: pd.DataFrame, *, key: str) -> None:
    """Draws the vendor's GMV per category of its products."""
    if categories.empty:
        return
    cols = {"category": "Category", "gmv": "GMV", "orders": "Orders", "units": "Units", "net_revenue": "Net revenue"}
    shown = categories[list(cols)].rename(columns=cols)
    config = {cols[m]: metric_column(m) for m in ("gmv", "orders", "net_revenue")}
    config["Units"] = st.column_config.NumberColumn("Units", format="%d")
    st.dataframe(shown, key=key, hide_index=True, width="stretch", column_config=config,
                 height=table_height(len(shown)))
