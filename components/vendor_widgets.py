"""Widgets of the vendors page: leaderboard, drill-down, concentration, lifecycle; their figures
come from components.loaders.vendors."""
from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics import vendors as av
from analytics.filters import COMPARISONS, FilterError, Filters
from analytics.metrics import format_change, format_value, get_metric
from components.charts import render_trend
from components.downloads import render_downloads
from components.loaders.vendors import load_vendor_detail, load_vendor_search, load_vendor_trend
from components.tables import metric_column
from components.text import plain
from components.theme import COMPARE, HOVER_FORMAT, PALETTE, TICK_FORMAT
from data.errors import DatabaseUnavailableError

SORT_LABELS = {"rank": "Rank", "name": "Vendor", **{m: get_metric(m).label for m in av.LEADERBOARD_METRICS},
               "growth": "Growth", "rank_change": "Rank change"}
ASCENDING_FIRST = frozenset({"rank", "name"})
GROUP_LABELS = {"new": "New", "growing": "Growing", "declining": "Declining", "churned": "Churned"}


@contextmanager
def explained_errors(what: str) -> Iterator[None]:
    """Turns a failing section into a message a person can act on; the rest of the page still draws."""
    try:
        yield
    except FilterError as ex:
        st.error(f"Cannot show {what}: {ex}", icon=":material/filter_alt_off:")
    except DatabaseUnavailableError as ex:
        st.error(f"Cannot show {what}: the database did not answer ({ex.first_line}). "
                 "Try again in a moment, or choose a shorter period.", icon=":material/cloud_off:")


# ---------------------------------------------------------------------------------------------
# Formatting helpers


def _config(metrics: tuple[str, ...]) -> dict:
    return {get_metric(m).label: metric_column(m) for m in metrics}


def _rank_change(change: float, rank: float, before: float) -> str:
    if rank != rank:
        return "out" if before == before else ""
    if before != before:
        return "new"
    return "=" if change == 0 else (f"▲ {change:.0f}" if change > 0 else f"▼ {-change:.0f}")


def leaderboard_frame(rows: pd.DataFrame, *, for_download: bool = False) -> pd.DataFrame:
    """Returns the leaderboard rows with people's column names. On screen growth is in percent and
    the rank change an arrow; files keep plain numbers (growth as a fraction) and add the previous rank."""
    out = pd.DataFrame({"Rank": rows["rank"].astype("Float64")})
    # Without a comparison period there is no earlier rank: leave the change blank, not "new".
    if not for_download and rows["rank_prev"].notna().any():
        out["Rank change"] = [_rank_change(c, r, b) for c, r, b in
                              zip(rows["rank_change"], rows["rank"], rows["rank_prev"])]
    out["Vendor"] = rows["name"]
    out["Category"] = rows["category"]
    out["GMV"] = rows["gmv"]
    out["Growth"] = rows["growth"] if for_download else rows["growth"] * 100
    for m in ("net_revenue", "take_revenue", "orders", "aov", "refund_rate", "cancellation_rate", "gross_margin"):
        out[get_metric(m).label] = rows[m]
    if for_download:
        out["Previous GMV"] = rows["gmv_prev"]
        out["Previous rank"] = rows["rank_prev"].astype("Float64")
        out["Rank change"] = rows["rank_change"].astype("Float64")
        out["Status"] = rows["status"]
    return out


def _text(kind: str, value: float | None) -> str:
    if value is None or value != value:
        return "–"
    if kind == "percent":
        return f"{value * 100:.1f} %"
    if kind == "index":
        return f"{value:,.0f}"
    return format_value(kind, value)


def _change(kind: str, value: float | None, previous: float | None) -> str | None:
    if value is None or previous is None or value != value or previous != previous:
        return None
    if kind == "percent":
        return f"{(value - previous) * 100:+.1f} pp"
    if kind == "index":
        return f"{value - previous:+,.0f}"
    return format_change(kind if kind in av.LEADERBOARD_METRICS else "orders", value, previous)


def _metric(col, label: str, value: float | None, previous: float | None = None, *, kind: str, help: str,
            better: bool = True, compare: bool = True) -> None:
    """Draws a bordered card; kind is a glossary metric, 'count', 'percent' (pp change) or 'index'."""
    col.metric(label, _text(kind, value), delta=_change(kind, value, previous) if compare else None,
               delta_color="normal" if better else "inverse", help=help, border=True, height="stretch")


# ---------------------------------------------------------------------------------------------
# Summary and leaderboard


def render_summary(table: pd.DataFrame, conc: av.Concentration, life: av.Lifecycle, *, key: str) -> None:
    """Draws the headline cards: active vendors, HHI, top 10 % share, new and churned vendors."""
    cols = st.columns(5)
    top = conc.points.set_index("top_share")["gmv_share"].get(0.10)
    top_prev = conc.points_prev.set_index("top_share")["gmv_share"].get(0.10) if len(conc.points_prev) else None
    _metric(cols[0], "Active vendors", conc.vendors, conc.vendors_prev, kind="count",
            help="Vendors with at least one counted order in the period.")
    _metric(cols[1], "HHI", conc.hhi, conc.hhi_prev, kind="index", better=False,
            help="Herfindahl-Hirschman index of vendor GMV shares: Σ (share × 100)², 0–10,000. "
                 "Higher means sales depend on fewer vendors.")
    _metric(cols[2], "Top 10 % of vendors", top, top_prev, kind="percent", better=False,
            help="Share of GMV made by the largest 10 % of vendors with sales.")
    _metric(cols[3], "New vendors", life.counts["new"], kind="count", compare=False,
            help=av.LIFECYCLE_LABELS["new"])
    _metric(cols[4], "Churned vendors", life.counts["churned"], kind="count", compare=False,
            help=av.LIFECYCLE_LABELS["churned"])


def _reset_page(key: str) -> None:
    st.session_state[f"{key}_page"] = 1


def _sort_changed(key: str) -> None:
    # Rank and name read naturally from the top; amounts and rates from the largest.
    st.session_state[f"{key}_order"] = "asc" if st.session_state[f"{key}_sort"] in ASCENDING_FIRST else "desc"
    _reset_page(key)


def render_leaderboard(table: pd.DataFrame, f: Filters, *, key: str) -> int | None:
    """Draws the searchable, sortable, paginated leaderboard; returns the vendor_id of a row the
    user just selected, else None. Only the current page is sent to the browser."""
    c1, c2, c3 = st.columns([3, 2, 2], vertical_alignment="bottom")
    search = c1.text_input("Search vendors", key=f"{key}_search", placeholder="Vendor name contains…",
                           on_change=_reset_page, args=(key,))
    sort = c2.selectbox("Sort by", list(SORT_LABELS), format_func=SORT_LABELS.get, key=f"{key}_sort",
                        on_change=_sort_changed, args=(key,))
    order = c3.radio("Order", ["asc", "desc"], key=f"{key}_order", horizontal=True, on_change=_reset_page,
                     args=(key,), format_func={"asc": "Ascending", "desc": "Descending"}.get)
    ids = load_vendor_search(search.strip()) if search.strip() else None
    everything = av.page_leaderboard(table, ids=ids, sort=sort, descending=order == "desc",
                                     page_size=max(len(table), 1))
    pages = max(1, -(-everything.matching // av.PAGE_SIZE))
    if st.session_state.get(f"{key}_page", 1) > pages:
        st.session_state[f"{key}_page"] = pages
    box = st.container()
    left, right = st.columns([4, 1], vertical_alignment="center")
    page_no = right.number_input("Page", min_value=1, max_value=pages, step=1, key=f"{key}_page",
                                 label_visibility="collapsed")
    page = av.page_leaderboard(table, ids=ids, sort=sort, descending=order == "desc", page=page_no)
    searched = f" matching “{search.strip()}” ({page.total:,} in all)" if ids is not None else ""
    left.caption(f"{page.first:,}–{page.last:,} of {page.matching:,} vendors{searched} · page {page.page} of "
                 f"{page.pages} · rank by GMV; rank change against the comparison period. "
                 "Select a row to drill down." if page.matching else
                 f"No vendor matches “{search.strip()}”." if ids is not None else "No vendors.")
    picked = None
    with box:
        if page.matching:
            shown = leaderboard_frame(page.rows)
            config = {"Rank": st.column_config.NumberColumn("Rank", format="%d", width=50, pinned=True),
                      "Rank change": st.column_config.TextColumn(
                          "Rank change", width=95, help="Previous rank − current rank: ▲ climbed, ▼ fell"),
                      "Vendor": st.column_config.TextColumn("Vendor", pinned=True),
                      "Growth": st.column_config.NumberColumn("Growth", format="%+.1f %%",
                                                              help="GMV change against the comparison period"),
                      **_config(av.LEADERBOARD_METRICS)}
            # Keyed on the view, so a selection never points at a row of another page or order.
            view = f"{key}_table_{page.page}_{sort}_{order}_{zlib.crc32(search.strip().encode())}"
            event = st.dataframe(shown, key=view, hide_index=True, column_config=config, width="stretch",
                                 on_select="rerun", selection_mode="single-row",
                                 height=min(38 + 35 * len(shown), 38 + 35 * av.PAGE_SIZE))
            rows = list(event.selection.rows) if event is not None else []
            if rows and st.session_state.get(f"{key}_applied") != (view, rows[0]):
                st.session_state[f"{key}_applied"] = (view, rows[0])
                picked = int(page.rows["vendor_id"].iloc[rows[0]])
    render_downloads(leaderboard_frame(everything.rows, for_download=True), "Vendor leaderboard", key=f"{key}_dl")
    return picked


# ---------------------------------------------------------------------------------------------
# Drill-down


def render_vendor_picker(table: pd.DataFrame, picked: int | None, *, key: str) -> int | None:
    """Draws the vendor select box (rank order); a row picked in the leaderboard selects it."""
    options = [int(v) for v in table["vendor_id"]]
    if not options:
        return None
    names = dict(zip(options, table["name"]))
    ranks = dict(zip(options, table["rank"]))
    if picked is not None and picked in names:
        st.session_state[key] = picked
    elif st.session_state.get(key) not in names:
        st.session_state.pop(key, None)
    return st.columns([2, 3])[0].selectbox("Vendor", options, key=key,
                        format_func=lambda v: f"{names[v]}" + (f" · #{ranks[v]:.0f}" if ranks[v] == ranks[v] else ""),
                        help="Pick a vendor here or select a row in the leaderboard.")


def _line_bar(df: pd.DataFrame, bars: str, bar_label: str, line: str, line_label: str, *, key: str) -> None:
    fig = go.Figure()
    fig.add_bar(x=df["key"], y=df[bars], name=bar_label, marker_color=PALETTE[0],
                hovertemplate=f"%{{y:{HOVER_FORMAT['money']}}}")
    fig.add_scatter(x=df["key"], y=df[line], name=line_label, yaxis="y2", line=dict(color=PALETTE[1], width=2.5),
                    hovertemplate=f"%{{y:{HOVER_FORMAT['percent']}}}")
    fig.update_layout(height=320, yaxis=dict(tickformat=TICK_FORMAT["money"], tickprefix="€"),
                      yaxis2=dict(overlaying="y", side="right", tickformat=".0%", showgrid=False, rangemode="tozero"))
    st.plotly_chart(fig, key=key, width="stretch")


def _vendor_cards(row: pd.Series, share: pd.DataFrame) -> None:
    metrics = ("gmv", "net_revenue", "orders", "aov", "take_revenue", "refund_rate", "gross_margin")
    cols = [*st.columns(4), *st.columns(4)]
    for col, m in zip(cols, metrics):
        meta = get_metric(m)
        prev = row.get(f"{m}_prev")
        _metric(col, meta.label, row[m], prev, kind=m, help=meta.description, better=meta.higher_is_better)
    cur = share.set_index("period")
    now = cur["share"].get("current")
    before = cur["share"].get("comparison")
    _metric(cols[-1], "Share of category", now, before, kind="percent",
            help="The vendor's GMV / GMV of all vendors of its category (see the Category tab).")


def render_vendor_detail(f: Filters, table: pd.DataFrame, vendor_id: int, *, key: str) -> None:
    """Draws one vendor: profile, cards, and tabs for trend, products, customers, refunds, category."""
    detail = load_vendor_detail(f, vendor_id)
    if detail is None:
        st.info("This vendor no longer exists. Pick another one.")
        return
    p = detail.profile
    row = table.set_index("vendor_id").loc[vendor_id]
    st.markdown(f"#### {plain(p['name'])}")
    st.caption(f"{plain(p['category'])} · {plain(p['country'])} ({plain(p['region'])}) · joined {p['joined_on']:%d %b %Y} · "
               f"{p['status']} · commission {p['commission_rate'] * 100:.1f} %"
               + (f" · rank {row['rank']:.0f} by GMV" if row["rank"] == row["rank"] else ""))
    _vendor_cards(row, detail.category_share)
    compare = COMPARISONS[f.comparison]
    trend, products, customers, refunds, category = st.tabs(
        ["Trend", "Products", "Customers", "Refunds", "Share of category"])
    with trend, explained_errors("the vendor's trend"):
        metric = st.columns([1, 3])[0].selectbox("Metric", av.DRILL_METRICS, key=f"{key}_metric",
                                                 format_func=lambda m: get_metric(m).label)
        cur, prev = load_vendor_trend(f, vendor_id, metric)
        render_trend(cur, prev, (metric,), compare_label=compare, key=f"{key}_chart_trend")
        out = cur[["key", metric]].rename(columns={"key": "Period start", metric: get_metric(metric).label})
        if prev is not None:
            out[f"{get_metric(metric).label} · {compare}"] = prev[metric].reindex(range(len(cur))).to_numpy()
        render_downloads(out, f"{p['name']} {get_metric(metric).label} trend", key=f"{key}_dl_trend")
    with products:
        _render_products(detail.products, key=key)
    with customers:
        _render_customers(detail, f, key=key)
    with refunds:
        r = detail.refunds
        if not r["gmv"].any():
            st.info("No sales in this period, so no refunds either.")
        else:
            _line_bar(r, "refunded", "Refunded", "refund_rate", "Refund rate", key=f"{key}_chart_refunds")
            st.caption(f"Refunded {format_value('gmv', r['refunded'].sum())} of "
                       f"{format_value('gmv', r['gmv'].sum())} GMV: refund rate "
                       f"{format_value('refund_rate', r['refunded'].sum() / r['gmv'].sum())}.")
            render_downloads(r.rename(columns={"key": "Period start", "gmv": "GMV", "refunded": "Refunded",
                                               "refund_rate": "Refund rate"}), f"{p['name']} refunds",
                             key=f"{key}_dl_refunds")
    with category:
        _render_category_share(detail.category_share, p, key=key)


def _render_products(df: pd.DataFrame, *, key: str) -> None:
    if df.empty:
        st.info("No product of this vendor sold in the period.")
        return
    shown = pd.DataFrame({"Product": df["name"], "Category": df["category"], "GMV": df["gmv"], "Units": df["units"],
                          "Net revenue": df["net_revenue"], "Orders": df["orders"],
                          "Gross margin": df["gross_margin"], "Refund rate": df["refund_rate"],
                          "Share of vendor GMV": df["share"]})
    config = {**_config(("gmv", "net_revenue", "orders", "gross_margin", "refund_rate")),
              "Units": st.column_config.NumberColumn("Units", format="localized", help="Units sold in counted orders"),
              "Share of vendor GMV": st.column_config.ProgressColumn("Share of vendor GMV", format="percent",
                                                                     min_value=0, max_value=1)}
    st.caption(f"Top {len(df)} products by GMV." if len(df) >= av.TOP_PRODUCTS else
               f"All {len(df)} products with sales, by GMV.")
    st.dataframe(shown, key=f"{key}_products", hide_index=True, column_config=config, width="stretch")
    render_downloads(shown, "Vendor top products", key=f"{key}_dl_products")


def _render_customers(detail: av.VendorDetail, f: Filters, *, key: str) -> None:
    totals = detail.customers.set_index("key")
    cur = totals.loc["current"]
    prev = totals.loc["comparison"] if "comparison" in totals.index else None
    cols = st.columns(4)
    cards = (("customers", "Customers", "count"), ("new", "New to the vendor", "count"),
             ("returning", "Returning", "count"), ("gmv_returning", "GMV from returning", "gmv"))
    for col, (name, label, kind) in zip(cols, cards):
        _metric(col, label, cur[name], None if prev is None else prev[name], kind=kind,
                help="A customer is new to the vendor when their first counted order with a line of this vendor "
                     "(ever, any channel) falls in the period; returning customers bought from it before.")
    t = detail.customer_trend
    if t.empty:
        st.info("No customer bought from this vendor in the period.")
        return
    fig = go.Figure()
    fig.add_bar(x=t["key"], y=t["returning"], name="Returning", marker_color=PALETTE[0])
    fig.add_bar(x=t["key"], y=t["new"], name="New to the vendor", marker_color=PALETTE[2])
    fig.update_layout(barmode="stack", height=300, yaxis_tickformat=",d")
    st.plotly_chart(fig, key=f"{key}_chart_customers", width="stretch")
    st.caption("Customers per " + ("day" if f.grain == "hour" else f.grain) +
               "; a customer who buys in several buckets counts in each.")
    render_downloads(t.rename(columns={"key": "Period start", "customers": "Customers", "new": "New to the vendor",
                                       "returning": "Returning", "gmv_new": "GMV from new",
                                       "gmv_returning": "GMV from returning"}),
                     "Vendor customers", key=f"{key}_dl_customers")


def _render_category_share(share: pd.DataFrame, profile: dict, *, key: str) -> None:
    st.caption(f"The vendor's GMV against every vendor in its category, {plain(profile['category'])}, under the same "
               "filters (the vendor filter aside).")
    shown = pd.DataFrame({"Period": share["label"], "Vendor GMV": share["vendor_gmv"],
                          "Category GMV": share["category_gmv"], "Share of category": share["share"],
                          "Rank in category": share["rank"].astype("Float64"),
                          "Vendors with sales": share["vendors"]})
    st.dataframe(shown, key=f"{key}_category", hide_index=True, width="stretch", column_config={
        "Vendor GMV": st.column_config.NumberColumn(format="euro"),
        "Category GMV": st.column_config.NumberColumn(format="euro"),
        "Share of category": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
        "Rank in category": st.column_config.NumberColumn(format="%d")})
    render_downloads(shown, "Vendor share of category", key=f"{key}_dl_category")


# ---------------------------------------------------------------------------------------------
# Concentration and lifecycle


def render_concentration(conc: av.Concentration, series: pd.DataFrame, *, key: str) -> None:
    """Draws the Pareto curve with its key points, and HHI per month with how to read it."""
    st.markdown("**Pareto curve** · share of the period's GMV made by the top x % of vendors")
    if conc.curve.empty:
        st.info("No vendor sold in this period.")
    else:
        c, pts = conc.curve, conc.points
        chart, side = st.columns([3, 2], gap="large")
        fig = go.Figure()
        fig.add_scatter(x=[0, 1], y=[0, 1], name="Equal shares", line=dict(color=COMPARE, dash="dot", width=1.5),
                        hoverinfo="skip")
        fig.add_scatter(x=c["vendor_share"], y=c["gmv_share"], name="Vendors by GMV", fill="tozeroy",
                        fillcolor="rgba(37, 99, 235, 0.12)", line=dict(color=PALETTE[0], width=2.5),
                        customdata=c["vendors"],
                        hovertemplate="Top %{x:.1%} (%{customdata:,} vendors): %{y:.1%} of GMV<extra></extra>")
        fig.add_scatter(x=pts["top_share"], y=pts["gmv_share"], mode="markers+text", showlegend=False,
                        marker=dict(color=PALETTE[1], size=8), textposition="bottom right",
                        text=[f"top {t:.0%} → {v:.0%}" for t, v in zip(pts["top_share"], pts["gmv_share"])],
                        hoverinfo="skip")
        fig.update_layout(height=360, hovermode="closest",
                          xaxis=dict(tickformat=".0%", title="Top share of vendors", range=[0, 1.01]),
                          yaxis=dict(tickformat=".0%", title="Share of GMV", range=[0, 1.02]))
        chart.plotly_chart(fig, key=f"{key}_chart_pareto", width="stretch")
        shown = pd.DataFrame({"Top": [f"{s:.0%}" for s in pts["top_share"]], "Vendors": pts["vendors"],
                              "Share of GMV": pts["gmv_share"]})
        if len(conc.points_prev):
            shown["Comparison"] = conc.points_prev["gmv_share"].to_numpy()
        ten = pts.set_index("top_share")["gmv_share"].get(0.10)
        side.markdown(f"The largest **10 %** of the {conc.vendors:,} vendors that sold make "
                      f"**{_text('percent', ten)}** of GMV. The further the curve bows above the diagonal, the more "
                      "sales depend on a few vendors.")
        side.dataframe(shown, key=f"{key}_pareto_points", hide_index=True, width="stretch", column_config={
            "Vendors": st.column_config.NumberColumn(format="localized"),
            "Share of GMV": st.column_config.NumberColumn(format="percent"),
            "Comparison": st.column_config.NumberColumn(format="percent",
                                                        help="Share of GMV in the comparison period")})
        render_downloads(c.rename(columns={"vendors": "Vendors", "vendor_share": "Share of vendors",
                                           "gmv_share": "Share of GMV"}), "Vendor Pareto curve", key=f"{key}_dl_pareto")

    st.markdown("**HHI per month** · Herfindahl-Hirschman index of vendor GMV shares")
    if series.empty:
        st.info("No sales in these months.")
        return
    s = series.assign(equivalent=10_000 / series["hhi"])
    chart, side = st.columns([3, 2], gap="large")
    fig = go.Figure(go.Scatter(x=s["month"], y=s["hhi"], mode="lines+markers", name="HHI",
                               line=dict(color=PALETTE[3], width=2.5), customdata=s[["vendors", "equivalent"]],
                               hovertemplate="%{x|%B %Y}: HHI %{y:,.0f} · %{customdata[0]:,} vendors sold · "
                                             "like %{customdata[1]:,.0f} equal vendors<extra></extra>"))
    top = float(s["hhi"].max())
    for level, label in ((1500, "moderately concentrated"), (2500, "highly concentrated")):
        if top > level * 0.6:
            fig.add_hline(y=level, line=dict(color=COMPARE, dash="dot"), annotation_text=label)
    fig.update_layout(height=320, yaxis=dict(tickformat=",d", rangemode="tozero", title="HHI"), hovermode="closest",
                      xaxis=dict(dtick="M1" if len(s) <= 18 else None, tickformat="%b %Y"))
    chart.plotly_chart(fig, key=f"{key}_chart_hhi", width="stretch")
    last = s.iloc[-1]
    side.markdown(
        f"**How to read it.** HHI = Σ (each vendor's share of the month's GMV × 100)², from near 0 (sales spread "
        f"over many vendors) to 10,000 (one vendor sells everything). Below 1,500 a market is usually read as "
        f"unconcentrated, above 2,500 as highly concentrated.\n\n"
        f"10,000 / HHI is the number of equal-sized vendors that would give the same figure: in "
        f"{last['month']:%B %Y}, HHI {last['hhi']:,.0f} ≈ {last['equivalent']:,.0f} equal vendors, among "
        f"{last['vendors']:,.0f} that sold. Months run to the period's end (the last one may be partial).")
    render_downloads(s.rename(columns={"month": "Month", "vendors": "Vendors with sales", "gmv": "GMV",
                                       "hhi": "HHI", "equivalent": "Equivalent equal vendors"}),
                     "Vendor HHI per month", key=f"{key}_dl_hhi")


def render_lifecycle(life: av.Lifecycle, *, key: str) -> None:
    """Draws counts of new, growing, declining and churned vendors, their definitions and lists."""
    cols = st.columns(4)
    for col, g in zip(cols, av.LIFECYCLE):
        n = life.counts[g]
        col.metric(f"{GROUP_LABELS[g]} vendors", "–" if n is None else f"{n:,}", help=av.LIFECYCLE_LABELS[g],
                   border=True)
    st.caption(" · ".join(av.LIFECYCLE_LABELS[g] for g in av.LIFECYCLE) + ".")
    if not life.has_compare:
        st.info("Choose a comparison period in the sidebar to see growing, declining and churned vendors.")
    tabs = st.tabs([f"{GROUP_LABELS[g]} ({life.counts[g] or 0:,})" for g in av.LIFECYCLE])
    for tab, g in zip(tabs, av.LIFECYCLE):
        with tab:
            v = life.vendors[life.vendors["group"] == g]
            if v.empty:
                st.caption("None.")
                continue
            shown = pd.DataFrame({"Vendor": v["name"], "Category": v["category"], "GMV": v["gmv"]})
            if g != "new":
                shown["Comparison GMV"] = v["gmv_prev"]
            if g in ("growing", "declining"):
                shown["Growth"] = v["growth"] * 100
            if g == "new":
                shown["First sale"] = v["first_sale"]
            st.dataframe(shown, key=f"{key}_{g}", hide_index=True, width="stretch", column_config={
                "GMV": st.column_config.NumberColumn(format="euro"),
                "Comparison GMV": st.column_config.NumberColumn(format="euro"),
                "Growth": st.column_config.NumberColumn(format="%+.1f %%"),
                "First sale": st.column_config.DateColumn(format="DD MMM YYYY")})
            render_downloads(shown, f"{GROUP_LABELS[g]} vendors", key=f"{key}_dl_{g}")
