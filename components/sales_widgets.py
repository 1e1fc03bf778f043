"""Sales page widgets: the trend, breakdown (with click-to-focus), payments, funnel, marketing and
profitability sections; their figures come from components.loaders.sales."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analytics import sales
from analytics.filters import BREAKDOWNS, Filters
from analytics.metrics import METRICS, format_change, format_value, get_metric
from analytics.vendor_portal import VENDOR_BREAKDOWNS, VENDOR_METRICS
from components.downloads import render_downloads
from components.labels import label
from components.loaders.sales import load_breakdown, load_section, load_trend
from components.tables import metric_column
from components.text import plain
from components.theme import COMPARE, HOVER_FORMAT, PALETTE, TICK_FORMAT, TICK_PREFIX

BREAKDOWN_DIMS = ("category", "region", "country", "channel", "business_model", "payment_method", "segment")
# ISO 3166 alpha-2 -> alpha-3 for the map (plotly locates countries by alpha-3).
ISO3 = {"US": "USA", "DE": "DEU", "GB": "GBR", "FR": "FRA", "NL": "NLD", "JP": "JPN", "ES": "ESP", "AU": "AUS",
        "IT": "ITA", "CA": "CAN", "BR": "BRA", "PL": "POL", "SG": "SGP", "MX": "MEX", "SE": "SWE", "AT": "AUT",
        "BE": "BEL", "CH": "CHE", "DK": "DNK", "FI": "FIN", "IE": "IRL", "NO": "NOR", "PT": "PRT", "CZ": "CZE",
        "IN": "IND", "CN": "CHN", "KR": "KOR", "NZ": "NZL", "ZA": "ZAF", "AR": "ARG", "CL": "CHL", "CO": "COL",
        "TR": "TUR", "AE": "ARE", "IL": "ISR", "HK": "HKG", "TW": "TWN", "GR": "GRC", "HU": "HUN", "RO": "ROU"}


def _metrics(vendor_ids: tuple[int, ...]) -> list[str]:
    """The metrics a user may chart: a vendor user's are their own sales' (analytics.vendor_portal)."""
    return list(VENDOR_METRICS if vendor_ids else METRICS)


def _pct(title: str, help: str | None = None):
    return st.column_config.NumberColumn(title, format="percent", help=help)


def _growth_text(metric: str, now, was) -> str:
    return format_change(metric, now, was) or "–"


# --- focus (click a value to filter the rest of the page) -----------------------------------

def current_focus(*, key: str) -> tuple[str, str] | None:
    """Returns the focused (dimension, value), if any."""
    return st.session_state.get(f"{key}_focus")


def apply_focus(f: Filters, *, key: str) -> Filters:
    """Returns f narrowed to the focused breakdown value, if any.

    A sidebar filter on the same dimension that leaves the value out ends the focus: the sidebar
    wins, and the caption never says one thing while the sections show another.
    """
    focus = current_focus(key=key)
    if focus and focus[0] in f.dim_map and focus[1] not in f.dim_map[focus[0]]:
        st.session_state.pop(f"{key}_focus", None)
        focus = None
    return f.narrowed(**{focus[0]: [focus[1]]}) if focus else f


def render_focus_bar(*, key: str) -> None:
    """Draws which value the page is focused on, with a button to clear it."""
    focus = current_focus(key=key)
    if not focus:
        return
    left, right = st.columns([5, 1])
    left.info(f"The page below the breakdown is focused on **{BREAKDOWNS[focus[0]]}: {plain(label(focus[1]))}**. "
              "Click another bar to change it.", icon=":material/filter_alt:")
    if right.button("Clear focus", key=f"{key}_focus_clear", icon=":material/close:"):
        st.session_state.pop(f"{key}_focus", None)
        # The chart keeps its selection in its own state: a new key starts it unselected.
        st.session_state[f"{key}_chart_gen"] = st.session_state.get(f"{key}_chart_gen", 0) + 1
        st.rerun()


# --- trend --------------------------------------------------------------------------------

def render_trend_section(f: Filters, *, key: str, vendor_ids: tuple[int, ...] = ()) -> None:
    """Draws the chosen metric over time with comparison, moving average and target, plus growth."""
    left, right = st.columns([2, 3])
    metric = left.selectbox("Metric", _metrics(vendor_ids), format_func=lambda k: METRICS[k].label, key=f"{key}_metric")
    m = get_metric(metric)
    with st.spinner("Loading the trend…"):
        df = load_trend(f, metric, vendor_ids)
    if df.empty or df["value"].isna().all():
        st.info(f"{m.label} is not available for these filters or this grain. {m.description}",
                icon=":material/info:")
        return
    if df["value"].fillna(0).eq(0).all():
        st.info("No orders in this period for these filters.", icon=":material/calendar_month:")
        return
    right.caption(f"{m.description} Moving average over {sales.MOVING_WINDOW[f.grain]} {f.grain}s; "
                  "growth against the bucket before and the same bucket a year earlier. "
                  "The first and last buckets may be partial.")
    last = df.iloc[-1]
    c = st.columns(3 if vendor_ids else 4)   # targets are the marketplace's
    c[0].metric(f"Last {f.grain}", format_value(metric, last["value"]))
    c[1].metric(f"vs {f.grain} before", _growth_text(metric, last["value"], last["before"]))
    c[2].metric("vs a year earlier", _growth_text(metric, last["value"], last["yoy"]))
    has_target = df["target"].notna().any()
    total_vs = None
    if has_target and m.additive and df["target"].notna().all() and df["target"].sum() > 0:
        total_vs = df["value"].sum() / df["target"].sum() - 1
    if not vendor_ids:
        c[3].metric("vs target", "–" if total_vs is None else f"{total_vs * 100:+.1f} %",
                    help="Σ value / Σ target − 1 over buckets with a target (month grain and above, no filters).")
    fig = go.Figure()
    if df["compare"].notna().any():
        fig.add_scatter(x=df["key"], y=df["compare"], name="Comparison period", line=dict(color=COMPARE, dash="dot"))
    fig.add_scatter(x=df["key"], y=df["value"], name=m.label, line=dict(color=PALETTE[0], width=2.5))
    fig.add_scatter(x=df["key"], y=df["moving_avg"], name="Moving average", line=dict(color=PALETTE[1], dash="dash"))
    if has_target:
        fig.add_scatter(x=df["key"], y=df["target"], name="Target", mode="lines+markers",
                        line=dict(color=PALETTE[2], shape="hv"))
    fig.update_traces(hovertemplate=f"%{{y:{HOVER_FORMAT[m.fmt]}}}")
    fig.update_layout(height=360, yaxis_tickformat=TICK_FORMAT[m.fmt], yaxis_tickprefix=TICK_PREFIX[m.fmt])
    st.plotly_chart(fig, key=f"{key}_trend_chart")
    table = df.rename(columns={"key": "Bucket", "value": m.label, "compare": "Comparison",
                               "moving_avg": "Moving average", "before": "Bucket before",
                               "pop_growth": "Growth vs before", "yoy": "A year earlier", "yoy_growth": "Growth YoY",
                               "target": "Target", "vs_target": "vs target"})
    with st.expander("Numbers by bucket"):
        st.dataframe(table, hide_index=True, key=f"{key}_trend_table", column_config={
            m.label: metric_column(metric),
            **{title: metric_column(metric, title)
               for title in ("Comparison", "Moving average", "Bucket before", "A year earlier", "Target")},
            "Growth vs before": _pct("Growth vs before"), "Growth YoY": _pct("Growth YoY"), "vs target": _pct("vs target")})
    render_downloads(table, f"{m.label} trend", key=f"{key}_trend_dl")


# --- breakdown ----------------------------------------------------------------------------

def render_breakdown_section(f: Filters, *, key: str, vendor_ids: tuple[int, ...] = ()) -> None:
    """Draws a breakdown as bars, a treemap or a map; clicking a bar focuses the rest of the page."""
    c1, c2, c3 = st.columns([2, 2, 2])
    by = c1.selectbox("Break down by", VENDOR_BREAKDOWNS if vendor_ids else BREAKDOWN_DIMS, format_func=BREAKDOWNS.get,
                      key=f"{key}_by")
    metric = c2.selectbox("Measure", [k for k in _metrics(vendor_ids) if METRICS[k].additive], index=0,
                          format_func=lambda k: METRICS[k].label, key=f"{key}_by_metric")
    kinds = ["Bars", "Treemap"] + (["Map"] if by == "country" else [])
    kind = c3.segmented_control("Chart", kinds, default="Bars", key=f"{key}_chart_{by}") or "Bars"
    m = get_metric(metric)
    with st.spinner("Loading the breakdown…"):
        df = load_breakdown(f, by, metric, vendor_ids)
    if df.empty:
        st.info("Nothing to break down in this period for these filters.")
        return
    df = df.assign(name=df["key"].map(label))
    growth = [_growth_text(metric, a, b) for a, b in zip(df["value"], df["previous"])]
    hover = [f"{n}<br>{format_value(metric, v)} · {s:.1%} of total · {g}" for n, v, s, g in
             zip(df["name"], df["value"], df["share"], growth)]
    if kind == "Treemap":
        fig = px.treemap(df, names="name", parents=[""] * len(df), values="value")
        fig.update_traces(hovertext=hover, hoverinfo="text", textinfo="label+percent root")
        fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0))
        st.plotly_chart(fig, key=f"{key}_by_treemap_{by}")
    elif kind == "Map":
        mapped = df.assign(iso3=df["key"].map(ISO3))
        fig = px.choropleth(mapped.dropna(subset=["iso3"]), locations="iso3", color="value",
                            color_continuous_scale="Blues", hover_name="name")
        fig.update_traces(hovertemplate="%{hovertext}<br>" + f"%{{z:{HOVER_FORMAT[m.fmt]}}}<extra></extra>")
        fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0), coloraxis_colorbar_title=m.label,
                          geo=dict(showframe=False, projection_type="natural earth"))
        st.plotly_chart(fig, key=f"{key}_by_map")
        if mapped["iso3"].isna().any():
            st.caption("Not on the map (unknown country code): " + ", ".join(mapped.loc[mapped["iso3"].isna(), "name"]))
    else:
        shown = df.iloc[::-1]
        fig = go.Figure(go.Bar(x=shown["value"], y=shown["name"], orientation="h", marker_color=PALETTE[0],
                               customdata=shown["key"], text=[f"{s:.0%}" for s in shown["share"]],
                               textposition="outside", cliponaxis=False, hovertext=hover[::-1], hoverinfo="text"))
        fig.update_layout(height=90 + 32 * len(df), hovermode="closest", clickmode="event+select",
                          xaxis_tickformat=TICK_FORMAT[m.fmt], xaxis_tickprefix=TICK_PREFIX[m.fmt],
                          margin=dict(l=10, r=40, t=10, b=10))
        event = st.plotly_chart(fig, key=f"{key}_by_bars_{by}_{st.session_state.get(f'{key}_chart_gen', 0)}",
                                on_select="rerun", selection_mode="points")
        points = event.selection.points if event and event.selection else []
        if points and points[0].get("point_index") is not None:
            picked = shown["key"].iloc[int(points[0]["point_index"])]
            picked = picked.item() if hasattr(picked, "item") else picked
            if st.session_state.get(f"{key}_focus") != (by, picked):
                st.session_state[f"{key}_focus"] = (by, picked)
                st.rerun()
        st.caption("Click a bar to focus the sections below on that value.")
    table = pd.DataFrame({BREAKDOWNS[by]: df["name"], m.label: df["value"], "Share": df["share"],
                          "Comparison period": df["previous"], "Growth": df["growth"]})
    st.dataframe(table, hide_index=True, key=f"{key}_by_table", column_config={
        m.label: metric_column(metric), "Comparison period": metric_column(metric, "Comparison period"),
        "Share": st.column_config.ProgressColumn("Share", format="percent", min_value=0, max_value=1),
        "Growth": _pct("Growth", "Against the comparison period")})
    render_downloads(table, f"{m.label} by {BREAKDOWNS[by].lower()}", key=f"{key}_by_dl")


# --- payments, funnel, marketing, profitability ----------------------------------------------

def _not_applicable(result) -> bool:
    if isinstance(result, str):
        st.info(result, icon=":material/info:")
        return True
    return False


def render_payments(f: Filters, *, key: str, vendor_ids: tuple[int, ...] = ()) -> None:
    """Draws GMV by payment method, failure and refund rates."""
    df = load_section("payments", f, vendor_ids)
    if _not_applicable(df):
        return
    if df.empty:
        st.info("No payments in this period for these filters.")
        return
    df = df.assign(method=df["payment_method"].map(label))
    left, right = st.columns(2)
    # go.Pie, not px.pie: plotly express builds the same figure at several times the cost.
    fig = go.Figure(go.Pie(labels=df["method"], values=df["gmv"], hole=0.55, marker_colors=PALETTE,
                           textinfo="label+percent", hovertemplate="%{label}: €%{value:,.0f}<extra></extra>"))
    fig.update_layout(height=320, showlegend=False)
    left.markdown("**GMV by payment method**")
    left.plotly_chart(fig, key=f"{key}_pay_mix")
    fig = go.Figure([go.Bar(name="Failure rate", x=df["method"], y=df["failure_rate"], marker_color=PALETTE[4]),
                     go.Bar(name="Refund rate", x=df["method"], y=df["refund_rate"], marker_color=PALETTE[1])])
    fig.update_layout(height=320, barmode="group", yaxis_tickformat=".1%", hovermode="x unified")
    right.markdown("**Failure and refund rates**")
    right.plotly_chart(fig, key=f"{key}_pay_rates")
    table = pd.DataFrame({"Payment method": df["method"], "GMV": df["gmv"], "GMV share": df["gmv_share"],
                          "Orders": df["orders"], "All orders": df["all_orders"], "Failed payments": df["failed_orders"],
                          "Failure rate": df["failure_rate"], "Refunded": df["refunded"], "Refund rate": df["refund_rate"]})
    st.dataframe(table, hide_index=True, key=f"{key}_pay_table", column_config={
        "GMV": metric_column("gmv"), "GMV share": _pct("GMV share"), "Orders": metric_column("orders"),
        "All orders": st.column_config.NumberColumn("All orders", format="localized", help="Cancelled included"),
        "Failed payments": st.column_config.NumberColumn("Failed payments", format="localized"),
        "Failure rate": _pct("Failure rate", "Orders whose payment failed / all orders with the method"),
        "Refunded": st.column_config.NumberColumn("Refunded", format="euro"),
        "Refund rate": metric_column("refund_rate")})
    render_downloads(table, "Payments by method", key=f"{key}_pay_dl")


def render_funnel(f: Filters, *, key: str, vendor_ids: tuple[int, ...] = ()) -> None:
    """Draws the funnel from sessions to orders per channel."""
    df = load_section("funnel", f, vendor_ids)
    if _not_applicable(df):
        return
    if df.empty:
        st.info("No traffic recorded in this period.")
        return
    fig = go.Figure()
    for i, r in enumerate(df.itertuples()):
        fig.add_trace(go.Funnel(name=label(r.channel), y=[name for _, name in sales.FUNNEL_STEPS],
                                x=[getattr(r, col) for col, _ in sales.FUNNEL_STEPS],
                                textinfo="value+percent previous", marker_color=PALETTE[i % len(PALETTE)]))
    fig.update_layout(height=360, hovermode="closest")
    st.plotly_chart(fig, key=f"{key}_funnel_chart")
    table = pd.DataFrame({"Channel": df["channel"].map(label)})
    for col, name in sales.FUNNEL_STEPS:
        table[name] = df[col]
        if col != "sessions":
            table[f"→ {name}"] = df[f"step_{col}"]
    table["Sessions → orders"] = df["overall"]
    st.dataframe(table, hide_index=True, key=f"{key}_funnel_table", column_config={
        **{name: st.column_config.NumberColumn(name, format="localized") for _, name in sales.FUNNEL_STEPS},
        **{f"→ {name}": _pct(f"→ {name}", "Share of the step before") for _, name in sales.FUNNEL_STEPS[1:]},
        "Sessions → orders": metric_column("conversion_rate", "Sessions → orders")})
    st.caption("Orders are counted orders placed on the channel; sessions and steps come from site traffic.")
    render_downloads(table, "Funnel by channel", key=f"{key}_funnel_dl")


def render_marketing(f: Filters, *, key: str, vendor_ids: tuple[int, ...] = ()) -> None:
    """Draws CAC and ROAS per acquisition channel and spend by campaign."""
    m = load_section("marketing", f, vendor_ids)
    if _not_applicable(m):
        return
    ch = m.by_channel
    if ch.empty:
        st.info("No spend and no new customers in this period.")
        return
    paid = ch[ch["spend"] > 0]
    left, right = st.columns(2)
    fig = go.Figure(go.Bar(x=paid["acquisition_channel"].map(label), y=paid["cac"], marker_color=PALETTE[0],
                           text=[format_value("gmv", v) for v in paid["cac"]], textposition="outside"))
    fig.update_layout(height=300, yaxis_tickprefix="€", hovermode="closest")
    left.markdown("**CAC: spend per new customer**")
    left.plotly_chart(fig, key=f"{key}_mkt_cac")
    fig = go.Figure(go.Bar(x=paid["acquisition_channel"].map(label), y=paid["roas"], marker_color=PALETTE[2],
                           text=[f"{v:.1f}×" if pd.notna(v) else "–" for v in paid["roas"]], textposition="outside"))
    fig.update_layout(height=300, hovermode="closest")
    right.markdown("**ROAS: GMV from the channel's customers per € spent**")
    right.plotly_chart(fig, key=f"{key}_mkt_roas")
    table = pd.DataFrame({"Acquisition channel": ch["acquisition_channel"].map(label), "Spend": ch["spend"],
                          "New customers": ch["new_customers"], "CAC": ch["cac"], "GMV": ch["gmv"], "ROAS": ch["roas"]})
    st.dataframe(table, hide_index=True, key=f"{key}_mkt_table", column_config={
        "Spend": st.column_config.NumberColumn("Spend", format="euro"), "New customers": metric_column("new_customers"),
        "CAC": st.column_config.NumberColumn("CAC", format="euro", help="Spend / new customers"),
        "GMV": st.column_config.NumberColumn("GMV", format="euro", help="In the period, from customers acquired "
                                             "through the channel (new and returning)"),
        "ROAS": st.column_config.NumberColumn("ROAS", format="%.2f×", help="GMV / spend")})
    render_downloads(table, "Marketing by channel", key=f"{key}_mkt_dl")
    st.markdown("**Spend by campaign**")
    camp = m.by_campaign
    camp_table = pd.DataFrame({"Channel": camp["channel"].map(label), "Campaign": camp["campaign"],
                               "Spend": camp["spend"], "Share of channel spend": camp["share_of_channel"],
                               "Days with spend": camp["days"]})
    st.dataframe(camp_table, hide_index=True, key=f"{key}_camp_table", column_config={
        "Spend": st.column_config.NumberColumn("Spend", format="euro"),
        "Share of channel spend": st.column_config.ProgressColumn("Share of channel spend", format="percent",
                                                                  min_value=0, max_value=1)})
    st.caption("Customers record their acquisition channel, not the campaign, so CAC and ROAS are per channel.")
    render_downloads(camp_table, "Spend by campaign", key=f"{key}_camp_dl")


def render_profitability(f: Filters, *, key: str, vendor_ids: tuple[int, ...] = ()) -> None:
    """Draws margin by category with gross margin and take rate."""
    df = load_section("profitability", f, vendor_ids)
    if _not_applicable(df):
        return
    if df.empty:
        st.info("No sales in this period for these filters.")
        return
    shown = df.iloc[::-1]
    fig = go.Figure(go.Bar(x=shown["margin"], y=shown["category"], orientation="h", marker_color=PALETTE[2],
                           text=[format_value("gross_margin", v) for v in shown["gross_margin"]],
                           textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: margin €%{x:,.0f}<extra></extra>"))
    fig.update_layout(height=60 + 30 * len(df), xaxis_tickprefix="€", xaxis_tickformat=",.3~s", hovermode="closest",
                      margin=dict(l=10, r=50, t=10, b=10))
    st.markdown("**Margin (net revenue − cost) by category**, labelled with gross margin %")
    st.plotly_chart(fig, key=f"{key}_profit_chart")
    table = pd.DataFrame({"Category": df["category"], "GMV": df["gmv"], "Net revenue": df["net_revenue"],
                          "Cost": df["cost"], "Margin": df["margin"], "Gross margin": df["gross_margin"],
                          "Take revenue": df["take_revenue"], "Take rate": df["take_rate"]})
    st.dataframe(table, hide_index=True, key=f"{key}_profit_table", column_config={
        "GMV": metric_column("gmv"), "Net revenue": metric_column("net_revenue"),
        "Cost": st.column_config.NumberColumn("Cost", format="euro", help="Σ quantity × unit cost"),
        "Margin": st.column_config.NumberColumn("Margin", format="euro", help="Net revenue − cost"),
        "Gross margin": metric_column("gross_margin"), "Take revenue": metric_column("take_revenue"),
        "Take rate": _pct("Take rate", "Take revenue / net revenue")})
    render_downloads(table, "Profitability by category", key=f"{key}_profit_dl")
