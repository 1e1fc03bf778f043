"""Products page widgets: rankings, price vs volume, margins and inventory cover."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics import products as P
from analytics.filters import COMPARISONS, Filters
from analytics.metrics import format_value
from components import loaders
from components.downloads import render_downloads
from components.loaders.products import load_all_products
from components.tables import table_height
from components.theme import HOVER_FORMAT, NUMBER_FORMAT, PALETTE, TICK_FORMAT, TICK_PREFIX

# 12 categories: the theme's palette plus four that stay distinct from it (pink, lime, brown, navy).
CATEGORY_COLORS = PALETTE + ["#ec4899", "#84cc16", "#92400e", "#1e3a8a"]
GOOD, BAD, NEUTRAL, WARN = "#10b981", "#ef4444", "#94a3b8", "#f97316"
N_CHOICES = (5, 10, 20, 50)


def controls(key: str) -> dict:
    """Returns the page's control values from the last run (defaults on the first): the figures
    are loaded before the tabs that draw the controls."""
    state = st.session_state
    return {"metric": state.get(f"{key}_rank_metric", "gmv"), "n": state.get(f"{key}_rank_n", P.TOP_N),
            "min_gmv": float(state.get(f"{key}_margin_min_gmv", P.DEFAULT_MIN_GMV)),
            "margin_n": state.get(f"{key}_margin_n", P.TOP_N),
            "low": int(state.get(f"{key}_cover_low", P.STOCKOUT_DAYS)),
            "high": int(state.get(f"{key}_cover_high", P.OVERSTOCK_DAYS))}


def _color_map(categories) -> dict:
    """Returns {category: colour}, the same colour for a category whatever the filters."""
    known = loaders.load_dimension_values()["category"]
    every = list(known) + sorted(set(categories) - set(known))
    return {c: CATEGORY_COLORS[i % len(CATEGORY_COLORS)] for i, c in enumerate(every)}


def _number(label: str, fmt: str, help: str | None = None):
    return st.column_config.NumberColumn(label, format=NUMBER_FORMAT[fmt], help=help)


def _metric_column(key: str):
    return _number(P.metric_label(key), P.metric_fmt(key), P.metric_help(key))


def _show(frame: pd.DataFrame, name: str, *, key: str, config: dict, most: int = 20) -> None:
    """Draws a table with its column formats and the CSV/Excel download of what it shows."""
    st.dataframe(frame, key=key, hide_index=True, width="stretch", column_config=config,
                 height=table_height(len(frame), most))
    render_downloads(frame, name, key=f"{key}_dl")


def _money_text(value: float) -> str:
    """format_value for money, with the sign before the euro: −€600.17."""
    return "−" + format_value("net_revenue", -value) if value < 0 else format_value("net_revenue", value)


def _log_ticks(lo: float, hi: float, money: bool) -> dict:
    """Returns 1-2-5 tick values and labels for a log axis spanning lo..hi (no bare "2" and "5")."""
    vals = [m * 10.0 ** e for e in range(-2, 9) for m in (1, 2, 5) if lo / 2 <= m * 10.0 ** e <= hi * 2]
    text = [("€" if money else "") + (f"{v / 1000:g}k" if v >= 1000 else f"{v:g}") for v in vals]
    return dict(tickvals=vals, ticktext=text)


def _empty_sales(f: Filters) -> None:
    st.info(f"No product sales between {f.period.label()} for these filters. Choose another period or clear "
            "the dimension filters in the sidebar.", icon="🗓️")


# --- rankings -----------------------------------------------------------------------------------

def _context_metrics(metric: str) -> list[str]:
    return [m for m in ("gmv", "orders", "units") if m != metric][:2]


def _ranked_products(rows: pd.DataFrame, metric: str, with_change: bool) -> tuple[pd.DataFrame, dict]:
    out = pd.DataFrame({"#": range(1, len(rows) + 1), "Product": rows["name"], "Vendor": rows["vendor"],
                        "Category": rows["category"], P.metric_label(metric): rows[metric]})
    config = {"#": st.column_config.NumberColumn("#", width=40), P.metric_label(metric): _metric_column(metric)}
    if with_change:
        out["Change"] = rows["change"]
        config["Change"] = st.column_config.TextColumn("Change", help="Against the comparison period", width="small")
    for m in _context_metrics(metric):
        out[P.metric_label(m)] = rows[m]
        config[P.metric_label(m)] = _metric_column(m)
    return out, config


def render_rankings(fig: dict, f: Filters, *, key: str, vendor_ids: tuple[int, ...] = ()) -> None:
    """Draws the metric and N pickers, top and bottom products, and every category ranked."""
    c1, c2, _ = st.columns([2, 2, 3])
    metric = c1.selectbox("Rank by", P.RANK_METRICS, format_func=P.metric_label, key=f"{key}_rank_metric",
                          help="Any metric that makes sense per product; hover a column title for its definition.")
    n = c2.radio("How many", N_CHOICES, index=1, horizontal=True, key=f"{key}_rank_n")
    summary, label = fig["summary"], P.metric_label(metric)
    if not summary["products"]:
        _empty_sales(f)
        return
    compare = fig["products_before"] is not None
    before = f" · change against the {COMPARISONS[f.comparison].lower()}" if compare else ""
    st.subheader(f"Top {n} products by {label}")
    st.caption(f"Highest {label} of the {summary['products']:,} products ordered in the period{before}.")
    top = P.with_change(fig["top"], fig["products_before"], "product_id", metric)
    table, config = _ranked_products(top, metric, compare)
    _show(table, f"Top products by {label}", key=f"{key}_top", config=config, most=50)
    st.subheader(f"Bottom {n} products by {label}")
    st.caption(f"Lowest {label} among the {summary['sold']:,} products with at least one sale in "
               "the period; products that sold nothing are not ranked.")
    bottom = P.with_change(fig["bottom"], fig["products_before"], "product_id", metric)
    table, config = _ranked_products(bottom, metric, compare)
    _show(table, f"Bottom products by {label}", key=f"{key}_bottom", config=config, most=50)
    st.caption(f"Every one of the {summary['products']:,} products ordered in the period, with all its figures "
               "(built when you click):")
    render_downloads(lambda: _all_products_table(load_all_products(f, vendor_ids)), "All products",
                     key=f"{key}_all_dl")
    _render_categories(fig, metric, compare, key=key)


def _all_products_table(products: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"Product": products["name"], "SKU": products["sku"], "Vendor": products["vendor"],
                        "Category": products["category"], "Subcategory": products["subcategory"]})
    for m in P.RANK_METRICS:
        out[P.metric_label(m)] = products[m]
    out["Average selling price"] = products["asp"]
    out["Margin €"] = products["margin"]
    return out


def _render_categories(fig: dict, metric: str, compare: bool, *, key: str) -> None:
    cats = P.with_change(fig["categories"], fig["categories_before"], "category", metric)
    label, fmt = P.metric_label(metric), P.metric_fmt(metric)
    st.subheader(f"Categories by {label}")
    d = cats[cats[metric].notna()].sort_values(metric)
    colors = _color_map(cats["category"])
    chart = go.Figure(go.Bar(
        x=d[metric], y=d["category"], orientation="h", marker_color=[colors[c] for c in d["category"]],
        text=[format_value(metric, v) for v in d[metric]], textposition="outside", cliponaxis=False,
        hovertemplate=f"%{{y}}: %{{x:{HOVER_FORMAT[fmt]}}}<extra></extra>"))
    chart.update_layout(height=80 + 26 * len(d), xaxis_tickformat=TICK_FORMAT[fmt], xaxis_tickprefix=TICK_PREFIX[fmt],
                        hovermode="closest", margin=dict(l=10, r=60, t=20, b=10), showlegend=False)
    st.plotly_chart(chart, key=f"{key}_chart_categories", width="stretch")
    render_downloads(d[["category", metric]].rename(columns={"category": "Category", metric: label}).iloc[::-1],
                     f"Categories by {label} (chart)", key=f"{key}_chart_categories_dl")
    total = cats["gmv"].sum()
    ranked = cats.sort_values([metric, "gmv"], ascending=False, na_position="last")
    table = pd.DataFrame({"Category": ranked["category"], label: ranked[metric]})
    config = {label: _metric_column(metric)}
    if compare:
        table["Change"] = ranked["change"]
        config["Change"] = st.column_config.TextColumn("Change", help="Against the comparison period")
    table["Share of GMV"] = ranked["gmv"] / total if total else 0.0
    config["Share of GMV"] = st.column_config.ProgressColumn("Share of GMV", format="percent", min_value=0,
                                                             max_value=1, width="small")
    for m in ("gmv", "orders", "units", "aov", "gross_margin", "refund_rate", "take_revenue"):
        if m != metric:
            table[P.metric_label(m)] = ranked[m]
            config[P.metric_label(m)] = _metric_column(m)
    _show(table, f"Categories by {label}", key=f"{key}_categories", config=config)


# --- price vs volume ------------------------------------------------------------------------------

def render_price_volume(fig: dict, f: Filters, *, key: str) -> None:
    """Draws average selling price against units for the top products by GMV."""
    if not fig["summary"]["products"]:
        _empty_sales(f)
        return
    pv, sold = fig["price_volume"], fig["summary"]["priced"]
    st.caption(f"Each dot is a product: units sold against its average selling price (GMV / units), sized by "
               f"GMV and coloured by category. Showing the {len(pv):,} products with the largest GMV of the "
               f"{sold:,} sold in the period, to keep the chart readable. Both axes are logarithmic; dashed lines "
               "mark the medians.")
    colors = _color_map(pv["category"])
    size_ref = 2.0 * pv["gmv"].max() / 38 ** 2
    # Plain dicts: validating twelve go.Scatter objects one by one costs a quarter of a second.
    traces = [dict(
        type="scatter", x=d["units"].tolist(), y=d["asp"].tolist(), mode="markers", name=cat,
        marker=dict(size=d["gmv"].tolist(), sizemode="area", sizeref=size_ref, sizemin=3, color=colors[cat],
                    opacity=0.8, line=dict(width=0.5, color="white")),
        customdata=np.stack([d["name"], d["vendor"], d["gmv"]], axis=-1).tolist(),
        hovertemplate=(f"<b>%{{customdata[0]}}</b><br>%{{customdata[1]}} · {cat}<br>Units %{{x:,.0f}} · "
                       "average price €%{y:,.2f}<br>GMV €%{customdata[2]:,.2f}<extra></extra>"))
        for cat, d in pv.groupby("category", sort=True)]
    chart = go.Figure(data=traces)
    median = dict(type="line", line=dict(dash="dash", color=NEUTRAL, width=1))
    chart.update_layout(
        height=560, hovermode="closest",
        xaxis=dict(type="log", title="Units sold", **_log_ticks(pv["units"].min(), pv["units"].max(), False)),
        yaxis=dict(type="log", title="Average selling price", **_log_ticks(pv["asp"].min(), pv["asp"].max(), True)),
        shapes=[{**median, "xref": "x", "yref": "paper", "x0": pv["units"].median(), "x1": pv["units"].median(),
                 "y0": 0, "y1": 1},
                {**median, "xref": "paper", "yref": "y", "y0": pv["asp"].median(), "y1": pv["asp"].median(),
                 "x0": 0, "x1": 1}],
        legend=dict(orientation="h", y=-0.12, yanchor="top"), margin=dict(l=10, r=10, t=20, b=10))
    st.plotly_chart(chart, key=f"{key}_chart_price_volume", width="stretch")
    data = pd.DataFrame({"Product": pv["name"], "Vendor": pv["vendor"], "Category": pv["category"],
                         "Units": pv["units"], "Average selling price": pv["asp"], "GMV": pv["gmv"]})
    render_downloads(data, "Price vs volume", key=f"{key}_chart_price_volume_dl")


# --- margins ------------------------------------------------------------------------------------

def render_margins(fig: dict, f: Filters, *, key: str) -> None:
    """Draws the highest and lowest gross-margin products above a GMV threshold: bars and a table."""
    summary = fig["summary"]
    c1, c2, _ = st.columns([2, 2, 3])
    min_gmv = c1.number_input("Minimum GMV (€)", min_value=0.0, value=P.DEFAULT_MIN_GMV, step=500.0, format="%.0f",
                              key=f"{key}_margin_min_gmv",
                              help="Products with less GMV in the period are left out: margins on a few sales "
                                   "swing widely.")
    n = c2.radio("How many", N_CHOICES, index=1, horizontal=True, key=f"{key}_margin_n")
    if not summary["products"]:
        _empty_sales(f)
        return
    gmv, refunded, cost, eligible = summary["gmv"], summary["refunded"], summary["cost"], summary["eligible"]
    k1, k2, k3 = st.columns(3)
    k1.metric("Gross margin, all products", format_value("gross_margin", (gmv - refunded - cost) / (gmv - refunded)
                                                         if gmv - refunded else None),
              help=P.metric_help("gross_margin"), border=True)
    k2.metric("Margin €, all products", format_value("net_revenue", gmv - refunded - cost),
              help="Net revenue − Σ quantity × unit cost.", border=True)
    k3.metric(f"Products with GMV ≥ {format_value('gmv', min_gmv)}", f"{eligible:,}", border=True)
    high, low = fig["margin_high"], fig["margin_low"]
    if high.empty:
        st.info(f"No product reached {format_value('gmv', min_gmv)} GMV in this period. Lower the minimum GMV.")
        return
    both = pd.concat([high.assign(group="Highest"), low.assign(group="Lowest")], ignore_index=True)
    d = both.iloc[::-1]
    # Bars sit on a category axis: two products of the same name would share one bar without their SKU.
    labels = d["name"].where(~d["name"].duplicated(keep=False), d["name"] + " · " + d["sku"]) + " "
    chart = go.Figure(go.Bar(
        x=d["gross_margin"], y=labels, orientation="h",
        marker_color=[GOOD if g == "Highest" else BAD for g in d["group"]],
        text=[f"{m:.1%} · {_money_text(v)}".replace("-", "−") for m, v in zip(d["gross_margin"], d["margin"])],
        textposition="outside", cliponaxis=False, customdata=np.stack([d["vendor"], d["gmv"]], axis=-1),
        hovertemplate="<b>%{y}</b><br>%{customdata[0]}<br>Gross margin %{x:.1%}<br>GMV €%{customdata[1]:,.2f}"
                      "<extra></extra>"))
    lo, hi = min(0.0, d["gross_margin"].min()), max(0.0, d["gross_margin"].max())
    pad = 0.3 * (hi - lo or 1.0)     # room for the labels outside the bars, on both sides
    chart.update_layout(height=90 + 26 * len(d), xaxis=dict(tickformat=".0%", range=[lo - (pad if lo < 0 else 0),
                        hi + pad]), hovermode="closest", showlegend=False, margin=dict(l=10, r=10, t=20, b=10))
    st.caption(f"Highest and lowest gross margin among the {eligible:,} products with at least "
               f"{format_value('gmv', min_gmv)} GMV and a positive net revenue. Labels: gross margin · margin €.")
    st.plotly_chart(chart, key=f"{key}_chart_margins", width="stretch")
    render_downloads(pd.DataFrame({"Group": d["group"], "Product": d["name"], "Gross margin": d["gross_margin"],
                                   "Margin €": d["margin"]}).iloc[::-1], "Margin extremes (chart)",
                     key=f"{key}_chart_margins_dl")
    table = pd.DataFrame({"Group": both["group"], "Product": both["name"], "Vendor": both["vendor"],
                          "Category": both["category"], "GMV": both["gmv"], "Net revenue": both["net_revenue"],
                          "Cost": both["cost"], "Margin €": both["margin"], "Gross margin": both["gross_margin"]})
    config = {"GMV": _metric_column("gmv"), "Net revenue": _metric_column("net_revenue"),
              "Cost": _number("Cost", "money", "Σ quantity × unit cost over counted orders."),
              "Margin €": _number("Margin €", "money", "Net revenue − cost."),
              "Gross margin": _metric_column("gross_margin")}
    _show(table, "Margins by product", key=f"{key}_margins", config=config, most=100)


# --- inventory ----------------------------------------------------------------------------------

def _stock_table(rows: pd.DataFrame, *, with_value: bool) -> tuple[pd.DataFrame, dict]:
    cover = [("∞" if np.isinf(c) else f"{c:,.1f}") if c == c else "–" for c in rows["days_cover"]]
    status = np.where(rows["on_hand"] <= 0, "Out of stock",
                      np.where(rows["avg_daily_units"] <= 0, "No sales in 28 days", ""))
    out = pd.DataFrame({"Product": rows["name"], "Vendor": rows["vendor"], "Category": rows["category"],
                        "On hand": rows["on_hand"], "Avg daily units": rows["avg_daily_units"], "Days of cover": cover,
                        "Stock value": rows["stock_value"], "Status": status, "SKU": rows["sku"]})
    if not with_value:
        out = out.drop(columns="Stock value")
    config = {"On hand": _number("On hand", "count", "Units in stock at the snapshot."),
              "Avg daily units": st.column_config.NumberColumn(
                  "Avg daily units", format="%.2f",
                  help="Units sold over the 28 days ending on the snapshot date / 28."),
              "Days of cover": st.column_config.TextColumn(
                  "Days of cover", alignment="right", help="On hand / average daily units; ∞: no sales in 28 days."),
              "Stock value": _number("Stock value", "money", "On hand × unit cost.")}
    return out, config


def render_inventory(inv: dict, f: Filters, *, key: str) -> None:
    """Draws days of cover: thresholds, summary, distribution, stock-out risk and overstock lists."""
    sm = inv["summary"]
    as_of, window = sm["as_of"], sm["window"]
    if not sm["products"]:
        first = sm["first_snapshot"]
        st.info(f"No stock snapshot on or before {as_of:%d %b %Y} for these products"
                + (f"; the first snapshot is from {first:%d %b %Y}. Choose a later period." if first else
                   ". Load inventory snapshots (python -m data load inventory_snapshots FILE.csv)."), icon="📦")
        return
    lo_date, hi_date = sm["first_date"], sm["last_date"]
    when = f"{hi_date:%d %b %Y}" if lo_date == hi_date else f"{lo_date:%d %b} – {hi_date:%d %b %Y}"
    st.caption(f"Stock from the latest snapshot on or before {as_of:%d %b %Y} ({when}); average daily units over the "
               f"{window} days ending on the snapshot date. Only the category and vendor filters apply here: stock "
               "serves every channel and customer.")
    c1, c2, _ = st.columns([2, 2, 3])
    low = c1.number_input("Stock-out risk below (days of cover)", min_value=1, max_value=365, value=P.STOCKOUT_DAYS,
                          step=1, key=f"{key}_cover_low")
    high = c2.number_input("Overstock above (days of cover)", min_value=1, max_value=3650, value=P.OVERSTOCK_DAYS,
                           step=10, key=f"{key}_cover_high")
    k1, k2, k3, k4 = st.columns(4)
    k1.metric("Products with stock data", f"{sm['products']:,}", border=True,
              help=f"{sm['in_stock']:,} of them in stock.")
    k2.metric("Stock-out risk", f"{sm['risk']:,}", border=True,
              help=f"Selling products with under {low} days of cover, out of stock ones included: "
                   f"{sm['risk_out']:,} are out of stock.")
    k3.metric("Overstock", f"{sm['over']:,}", border=True,
              help=f"Over {high} days of cover, or in stock with no sales in {window} days.")
    k4.metric("Stock value at cost", format_value("gmv", sm["stock_value"]), border=True,
              help=f"On hand × unit cost; overstock holds {format_value('gmv', sm['over_value'])}.")
    dist = inv["distribution"]
    colors = [BAD, BAD, PALETTE[0], PALETTE[0], PALETTE[0], WARN, WARN, NEUTRAL]
    chart = go.Figure(go.Bar(x=dist["bucket"], y=dist["products"], marker_color=colors, text=dist["products"],
                             texttemplate="%{text:,}", textposition="outside", cliponaxis=False,
                             customdata=dist["stock_value"],
                             hovertemplate="%{x}: %{y:,} products<br>Stock value €%{customdata:,.0f}<extra></extra>"))
    chart.update_layout(height=300, title="Products by days of cover", hovermode="closest",
                        yaxis_tickformat=",.3~s", margin=dict(l=10, r=10, t=50, b=10))
    st.plotly_chart(chart, key=f"{key}_chart_cover", width="stretch")
    render_downloads(dist.rename(columns={"bucket": "Days of cover", "products": "Products",
                                          "stock_value": "Stock value"}), "Days of cover", key=f"{key}_chart_cover_dl")
    for title, rows, total, with_value, suffix, caption, none in (
        ("Stock-out risk", inv["stockout"], sm["risk"], False, "stockout",
         f"{sm['risk']:,} products sold in the last {window} days with under {low} days of cover or none in stock; "
         "fewest days first.", f"No selling product is below {low} days of cover."),
        ("Overstock", inv["overstock"], sm["over"], True, "overstock",
         f"{sm['over']:,} products in stock with over {high} days of cover or no sales in {window} days; "
         "most stock value first.", f"No product holds more than {high} days of cover."),
    ):
        st.subheader(title)
        shown = f" The first {len(rows):,} are listed." if len(rows) < total else ""
        st.caption(caption + shown)
        if rows.empty:
            st.success(none)
        else:
            table, config = _stock_table(rows, with_value=with_value)
            _show(table, title, key=f"{key}_{suffix}", config=config, most=12)
