"""Customers page widgets: RFM segments and movement, clusters, cohorts, lifetime value with its
validation, and the at-risk list. Their figures come from components.loaders.customers."""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analytics import customer_scores as S
from analytics.customers import COHORT_SPLITS, NOT_YET, RFM_SEGMENTS
from analytics.metrics import format_value
from components.downloads import render_downloads
from components.loaders.customers import load_customers, load_every_customer
from components.product_widgets import NEUTRAL, WARN
from components.tables import table_height
from components.theme import PALETTE
from reports.exporters import to_csv

SEGMENT_COLORS = dict(zip([s for s, *_ in RFM_SEGMENTS],
                          ["#059669", "#10b981", "#34d399", "#0ea5e9", "#38bdf8", "#eab308", "#dc2626", "#f97316",
                           "#94a3b8", "#64748b"]))
K_CHOICES = ("auto", *S.K_RANGE)


def money(v) -> str:
    return "—" if v is None or pd.isna(v) else format_value("gmv", float(v))


# --- helpers --------------------------------------------------------------------------------------

def _table(frame: pd.DataFrame, name: str, *, key: str, config: dict | None = None, most: int = 20) -> None:
    st.dataframe(frame, key=key, hide_index=True, width="stretch", column_config=config or {},
                 height=table_height(len(frame), most))
    render_downloads(frame, name, key=f"{key}_dl")


def _pct(label: str, help: str | None = None):
    return st.column_config.NumberColumn(label, format="percent", help=help)


def _eur(label: str, help: str | None = None):
    return st.column_config.NumberColumn(label, format="euro", help=help)


def _num(label: str, fmt: str = "%.1f", help: str | None = None):
    return st.column_config.NumberColumn(label, format=fmt, help=help)


def render_too_thin(scores: S.CustomerScores, *, key: str) -> None:
    """Draws why the lifetime-value models could not be fitted, and what still works."""
    st.container(key=key).warning("Too little data to fit the lifetime-value models for these customers: "
               f"{scores.message}. RFM segments, clusters and cohorts below do not need the models; widen the "
               "period or clear some filters for P(alive) and CLV.", icon=":material/warning:")


# --- segments -------------------------------------------------------------------------------------

def render_segments(s: S.CustomerScores, *, key: str) -> None:
    seg = s.segments
    total = int(seg["customers"].sum())
    if not total:
        st.info("No customers with a counted order up to this date for these filters.", icon=":material/person_off:")
        return
    c = st.columns(4)
    c[0].metric("Customers", f"{total:,}", help="Customers with at least one counted order on or before the as-of date")
    champions = seg.set_index("segment")
    c[1].metric("Champions + Loyal", f"{(champions.loc[['Champions', 'Loyal'], 'customers'].sum() / total):.1%}",
                help="Share of customers in the two best segments")
    c[2].metric("GMV from Champions + Loyal", f"{champions.loc[['Champions', 'Loyal'], 'gmv_share'].sum():.1%}")
    at_risk = champions.loc[["At risk", "Can't lose"], "customers"].sum()
    c[3].metric("At risk + Can't lose", f"{int(at_risk):,}", help="Good customers who have not bought for a while")
    left, right = st.columns([3, 2])
    with left:
        d = seg[seg["customers"] > 0]
        chart = go.Figure(go.Treemap(
            labels=d["segment"], parents=[""] * len(d), values=d["customers"],
            marker_colors=[SEGMENT_COLORS[x] for x in d["segment"]],
            customdata=np.column_stack([d["share"], d["gmv_share"], d["rule"]]),
            texttemplate="<b>%{label}</b><br>%{value:,} customers<br>%{customdata[1]:.1%} of GMV",
            hovertemplate="<b>%{label}</b>: %{customdata[2]}<br>%{value:,} customers (%{customdata[0]:.1%})"
                          "<br>%{customdata[1]:.1%} of GMV<extra></extra>"))
        chart.update_layout(height=380, margin=dict(l=0, r=0, t=30, b=0), title="Customers per RFM segment")
        st.plotly_chart(chart, key=f"{key}_treemap", width="stretch")
    with right:
        d = seg.iloc[::-1]
        chart = go.Figure([
            go.Bar(y=d["segment"], x=d["share"], orientation="h", name="Customers", marker_color=NEUTRAL,
                   hovertemplate="%{y}: %{x:.1%} of customers<extra></extra>"),
            go.Bar(y=d["segment"], x=d["gmv_share"], orientation="h", name="GMV", marker_color=PALETTE[0],
                   hovertemplate="%{y}: %{x:.1%} of GMV<extra></extra>")])
        chart.update_layout(height=380, barmode="group", xaxis_tickformat=".0%", hovermode="closest",
                            title="Share of customers and of GMV", margin=dict(l=10, r=10, t=60, b=10))
        st.plotly_chart(chart, key=f"{key}_shares", width="stretch")
    st.markdown("**Segments and their rules.** Each customer gets a score of 1–5 for Recency (days since the last "
                "purchase), Frequency (purchase days) and Monetary value (GMV): the quintile of their rank, "
                "5 the best fifth. F and M combine into FM = ⌈(F + M) / 2⌉; the rules below map (R, FM) to a "
                "segment.")
    table = pd.DataFrame({"Segment": seg["segment"], "Rule": seg["rule"], "Customers": seg["customers"],
                          "Share": seg["share"], "GMV": seg["gmv"], "Share of GMV": seg["gmv_share"],
                          "Avg days since last purchase": seg["mean_days_since"],
                          "Avg purchase days": seg["mean_purchase_days"]})
    config = {"Share": _pct("Share"), "GMV": _eur("GMV"), "Share of GMV": _pct("Share of GMV"),
              "Avg days since last purchase": _num("Avg days since last purchase", "%.0f"),
              "Avg purchase days": _num("Avg purchase days", "%.2f")}
    if "clv_12m" in seg and seg["clv_12m"].notna().any():
        table["Expected purchases, next 365 days"] = seg["expected_365"]
        table["CLV, next 12 months"] = seg["clv_12m"]
        table["P(alive), repeat customers"] = seg["mean_p_alive_repeat"]
        config |= {"Expected purchases, next 365 days": _num("Expected purchases, next 365 days", "%.0f"),
                   "CLV, next 12 months": _eur("CLV, next 12 months", "Discounted expected GMV (10 % a year)"),
                   "P(alive), repeat customers": _pct(
                       "P(alive), repeat customers",
                       "Average over customers with a repeat purchase: BG/NBD counts a one-time buyer as alive")}
    _table(table, "RFM segments", key=f"{key}_segments", config=config)
    render_movement(s, key=key)


def render_movement(s: S.CustomerScores, *, key: str) -> None:
    st.subheader("Movement between segments")
    if s.movement is None or s.movement.to_numpy().sum() == 0:
        st.info("No customers to compare.", icon=":material/person_off:")
        return
    m = s.movement
    st.caption(f"Customers by segment on {s.movement_from:%d %b %Y} (rows) and on {s.as_of:%d %b %Y} (columns); "
               "the diagonal stayed. The period in the sidebar sets the two dates.")
    share = m.div(m.sum(axis=1).replace(0, np.nan), axis=0)
    chart = go.Figure(go.Heatmap(
        z=share.to_numpy(), x=list(m.columns), y=list(m.index), colorscale="Blues", zmin=0, zmax=1,
        text=m.to_numpy(), texttemplate="%{text:,}", colorbar=dict(title="Share of row", tickformat=".0%"),
        hovertemplate="%{y} → %{x}: %{text:,} customers (%{z:.1%} of the row)<extra></extra>"))
    chart.update_layout(height=480, yaxis_autorange="reversed", hovermode="closest", xaxis_side="top",
                        margin=dict(l=10, r=10, t=60, b=10))
    st.plotly_chart(chart, key=f"{key}_movement", width="stretch")
    stayed = int(np.trace(m.loc[[i for i in m.index if i != NOT_YET]].to_numpy()))
    before = int(m.drop(index=NOT_YET).to_numpy().sum())
    new = int(m.loc[NOT_YET].sum())
    st.caption(f"{stayed:,} of {before:,} earlier customers ({stayed / before if before else 0:.1%}) kept their "
               f"segment; {new:,} customers bought for the first time in between.")
    render_downloads(m.rename_axis(f"segment on {s.movement_from}").reset_index(), "Segment movement",
                     key=f"{key}_movement_dl")


# --- clusters -------------------------------------------------------------------------------------

def render_clusters(s: S.CustomerScores, *, key: str) -> None:
    ck = s.cluster_k
    if s.clusters is None or s.clusters.empty:
        st.info(f"No clusters: {ck.get('how', 'too few customers')}.", icon=":material/group_off:")
        return
    sil = ck.get("silhouette") or {}
    st.markdown(f"**{ck['k']} clusters**, " + ("chosen by the best silhouette score over k = 2…8 "
                                              "(higher means better separated)." if ck["how"] == "silhouette"
                                              else "as you set them.")
                + " KMeans on standardised log recency (days since the last purchase), frequency (purchase "
                  "days), monetary value (GMV) and average order value; numbered by GMV, largest first.")
    cl = s.clusters
    left, right = st.columns([3, 2])
    with left:
        labels = [f"{int(c)}. {d}" for c, d in zip(cl["cluster"], cl["description"])]
        chart = go.Figure([
            go.Bar(x=labels, y=cl["share"], name="Customers", marker_color=NEUTRAL,
                   hovertemplate="%{x}: %{y:.1%} of customers<extra></extra>"),
            go.Bar(x=labels, y=cl["gmv_share"], name="GMV", marker_color=PALETTE[0],
                   hovertemplate="%{x}: %{y:.1%} of GMV<extra></extra>")])
        chart.update_layout(height=360, barmode="group", yaxis_tickformat=".0%", hovermode="closest",
                            title="Share of customers and of GMV per cluster", margin=dict(l=10, r=10, t=60, b=10))
        st.plotly_chart(chart, key=f"{key}_clusters_chart", width="stretch")
    with right:
        if sil:
            ks = sorted(int(k) for k in sil)
            chart = go.Figure(go.Scatter(x=ks, y=[sil[k] if k in sil else sil[str(k)] for k in ks], mode="lines+markers",
                                         marker_color=PALETTE[0], hovertemplate="k = %{x}: %{y:.3f}<extra></extra>"))
            chart.add_vline(x=ck["k"], line_dash="dash", line_color=WARN)
            chart.update_layout(height=360, title="Silhouette score by k", xaxis_title="clusters (k)",
                                hovermode="closest", margin=dict(l=10, r=10, t=60, b=10))
            st.plotly_chart(chart, key=f"{key}_silhouette", width="stretch")
    table = pd.DataFrame({"Cluster": cl["cluster"].astype(int), "In words": cl["description"],
                          "Customers": cl["customers"], "Share": cl["share"], "GMV": cl["gmv"],
                          "Share of GMV": cl["gmv_share"], "Median days since last purchase": cl["median_days_since"],
                          "Avg purchase days": cl["mean_purchase_days"], "Median GMV": cl["median_gmv"],
                          "Median AOV": cl["median_aov"]})
    config = {"Share": _pct("Share"), "GMV": _eur("GMV"), "Share of GMV": _pct("Share of GMV"),
              "Median days since last purchase": _num("Median days since last purchase", "%.0f"),
              "Avg purchase days": _num("Avg purchase days", "%.2f"), "Median GMV": _eur("Median GMV"),
              "Median AOV": _eur("Median AOV")}
    if "mean_clv_12m" in cl and cl["mean_clv_12m"].notna().any():
        table["Avg CLV, next 12 months"] = cl["mean_clv_12m"]
        table["P(alive), repeat customers"] = cl["mean_p_alive_repeat"]
        config |= {"Avg CLV, next 12 months": _eur("Avg CLV, next 12 months"),
                   "P(alive), repeat customers": _pct("P(alive), repeat customers")}
    _table(table, "Customer clusters", key=f"{key}_clusters", config=config)


# --- cohorts --------------------------------------------------------------------------------------

def render_cohorts(s: S.CustomerScores, *, key: str) -> None:
    co = s.cohorts
    if co.cells.empty:
        st.info("No cohorts: no customers for these filters.", icon=":material/group_off:")
        return
    c1, c2, c3 = st.columns(3)
    # The splits the figures hold (a vendor's have no customer records to split by).
    splits = [x for x in COHORT_SPLITS if x == "all" or (co.sizes["split"] == x).any()]
    split = c1.selectbox("Split by", splits, format_func=COHORT_SPLITS.get, key=f"{key}_cohort_split")
    values = sorted(co.sizes.loc[co.sizes["split"] == split, "split_value"].unique())
    value = c2.selectbox(COHORT_SPLITS[split], values, key=f"{key}_cohort_value_{split}",
                         disabled=split == "all")
    measure = c3.radio("Retention of", ["customers", "revenue"], horizontal=True, key=f"{key}_cohort_measure",
                       format_func=lambda m: "Customers" if m == "customers" else "Revenue")
    revenue = measure == "revenue"
    m = co.matrix(split, value, revenue=revenue)
    sizes = co.sizes[(co.sizes["split"] == split) & (co.sizes["split_value"] == value)].set_index("cohort")
    what = ("GMV in each month as a share of the cohort's first-month GMV" if revenue else
            "share of the cohort's customers who bought in each month")
    st.caption(f"Cohorts by month of first counted order (rows) and months since (columns): {what}. "
               f"Month 0 is the first month, 100 % by definition; empty cells are still to come.")
    y = [f"{c:%b %Y} ({int(sizes.loc[c, 'customers']):,})" for c in m.index]
    z = m.to_numpy(dtype="float64")
    cap = 1.0 if not revenue else max(1.0, float(np.nanpercentile(z[:, 1:], 95)) if z.shape[1] > 1 else 1.0)
    chart = go.Figure(go.Heatmap(
        z=z, x=list(m.columns), y=y, colorscale="Blues", zmin=0, zmax=cap if revenue else float(
            np.nanmax(z[:, 1:])) if z.shape[1] > 1 and np.isfinite(z[:, 1:]).any() else 1.0,
        text=np.where(np.isnan(z), "", np.vectorize(lambda v: f"{v:.0%}")(np.nan_to_num(z))), texttemplate="%{text}",
        textfont=dict(size=9), colorbar=dict(tickformat=".0%"),
        hovertemplate="%{y}, month %{x}: %{z:.1%}<extra></extra>"))
    chart.update_layout(height=max(320, 22 * len(y) + 90), yaxis_autorange="reversed", hovermode="closest",
                        xaxis_title="months since the first order", xaxis_side="top",
                        margin=dict(l=10, r=10, t=60, b=10))
    st.plotly_chart(chart, key=f"{key}_cohort_heatmap", width="stretch")
    out = m.copy()
    out.columns = [f"month {c}" for c in out.columns]
    out.insert(0, "customers", sizes["customers"].reindex(m.index).to_numpy())
    render_downloads(out.rename_axis("cohort").reset_index(), f"Cohort {measure} retention", key=f"{key}_cohort_dl")
    left, right = st.columns(2)
    with left:
        rate = sizes["repeat_customers"] / sizes["customers"]
        chart = go.Figure(go.Bar(x=[f"{c:%b %y}" for c in sizes.index], y=rate, marker_color=PALETTE[0],
                                 hovertemplate="%{x}: %{y:.1%} bought again<extra></extra>"))
        chart.update_layout(height=320, yaxis_tickformat=".0%", hovermode="closest",
                            title="Repeat-purchase rate by cohort (≥ 2 counted orders so far)",
                            margin=dict(l=10, r=10, t=60, b=10))
        st.plotly_chart(chart, key=f"{key}_repeat", width="stretch")
        st.caption("Younger cohorts have had less time to come back.")
    with right:
        g = co.gaps
        chart = go.Figure(go.Bar(x=g["bucket"], y=g["gaps"], marker_color=PALETTE[2],
                                 hovertemplate="%{x}: %{y:,} repeat purchases<extra></extra>"))
        median = "—" if co.gap_median is None else f"{co.gap_median:.0f} days"
        chart.update_layout(height=320, hovermode="closest", margin=dict(l=10, r=10, t=60, b=10),
                            title=f"Time between purchases (median {median})")
        st.plotly_chart(chart, key=f"{key}_gaps", width="stretch")
        mean = "—" if co.gap_mean is None else f"{co.gap_mean:.0f}"
        st.caption(f"Days from one purchase day to the customer's next; all customers (mean {mean} days).")


# --- lifetime value -------------------------------------------------------------------------------

def _not_fitted() -> None:
    st.info("Not available for these customers: too little data to fit the models (see above).", icon=":material/info:")


def render_lifetime_value(s: S.CustomerScores, *, key: str, customers: bool = True) -> None:
    """Draws the models, their totals and validation; customers=False leaves out the list of the
    customers with the highest expected value (their names and details: never a vendor user's)."""
    if s.status != "ok":
        _not_fitted()
        return
    bg, gg = s.bgnbd, s.gamma_gamma
    st.markdown(
        "**How it works.** BG/NBD (Fader, Hardie & Lee 2005) models each customer's purchase rate and their "
        "chance of dropping out after each purchase; Gamma-Gamma (Fader & Hardie 2013) models the value of "
        "their purchases. Both are fitted by maximum likelihood on the customers' repeat purchase days, "
        "days between the first and last purchase, and tenure (a random sample of at most 100,000 customers; "
        "every customer is then scored). CLV is the expected GMV of the next 12 months, "
        "discounted at 10 % a year.")
    seg = s.segments
    cols = st.columns(3)
    cols[0].metric("Customers scored", f"{s.customers:,}")
    cols[1].metric("Expected purchase days, next 365 days", f"{seg['expected_365'].sum():,.0f}")
    cols[2].metric("CLV of all customers, next 12 months", money(seg["clv_12m"].sum()))
    with st.expander("Fitted parameters (time in days)"):
        st.write(f"BG/NBD: r = {bg['r']:.4f}, α = {bg['alpha']:.3f}, a = {bg['a']:.4f}, b = {bg['b']:.4f}. "
                 f"Gamma-Gamma: p = {gg['p']:.4f}, q = {gg['q']:.4f}, v = {gg['v']:.3f}.")
    if customers:
        render_top_value(s, key=key)
    render_validation(s, key=key)


def render_top_value(s: S.CustomerScores, *, key: str) -> None:
    st.subheader("Customers with the highest expected value")
    rows = load_customers(s, "clv_12m", None, (), 100)
    table = pd.DataFrame({
        "Customer": rows["name"], "Customer ID": rows["customer_id"], "Country": rows["country"],
        "Segment": rows["segment"], "RFM segment": rows["rfm_segment"], "Main vendor": rows["main_vendor"],
        "CLV, next 12 months": rows["clv_12m"], "Expected purchases, 30 days": rows["expected_30"],
        "Expected, 90 days": rows["expected_90"], "Expected, 365 days": rows["expected_365"], "P(alive)": rows["p_alive"],
        "Expected value per purchase": rows["expected_value"], "Past GMV": rows["gmv"],
        "Purchase days": rows["purchase_days"]})
    _table(table, "Highest expected value", key=f"{key}_top_clv", most=12, config={
        "Customer ID": st.column_config.NumberColumn("Customer ID", format="%d"),
        "CLV, next 12 months": _eur("CLV, next 12 months"), "Expected value per purchase": _eur(
            "Expected value per purchase", "Gamma-Gamma: their own average blended with everyone's"),
        "Expected purchases, 30 days": _num("Expected purchases, 30 days", "%.2f"),
        "Expected, 90 days": _num("Expected, 90 days", "%.2f"),
        "Expected, 365 days": _num("Expected, 365 days", "%.2f"), "P(alive)": _pct("P(alive)"),
        "Past GMV": _eur("Past GMV")})
    st.download_button("Every customer's scores (CSV)", lambda: to_csv(load_every_customer(s)),
                       file_name="customer_scores.csv", mime="text/csv", key=f"{key}_all_scores",
                       icon=":material/download:", on_click="ignore",
                       help=f"All {s.customers:,} customers: RFM, cluster, P(alive), expected purchases in "
                            "30/90/365 days, expected value and 12-month CLV")


def render_validation(s: S.CustomerScores, *, key: str) -> None:
    v = s.validation or {}
    st.subheader("How right is it? Calibration and holdout")
    if not v or "unavailable" in v:
        st.info(v.get("unavailable", "No validation for these customers."), icon=":material/science:")
        return
    cal_end = date.fromisoformat(v["cal_end"])
    st.caption(f"The purchase model was fitted again on the history up to {cal_end:%d %b %Y} only, then asked how "
               f"many repeat purchase days each of those {v['customers']:,} customers would make in the next "
               f"{v['holdout_days']} days. Bars compare its answer with what happened, by the number of repeat "
               "purchases in the calibration period.")
    t = pd.DataFrame(v["table"])
    err = v["error"]
    cols = st.columns(3)
    def shown(x, spec: str) -> str:    # a stored run keeps a thin fit's NaN as null
        return "–" if x is None or x != x else format(x, spec)
    cols[0].metric("Actual repeat purchase days in the holdout", shown(v["actual"], ",.0f"))
    cols[1].metric("Predicted", shown(v["predicted"], ",.0f"),
                   delta=None if err is None or err != err else f"{err:+.1%} total error", delta_color="off")
    cols[2].metric("Mean absolute error per customer", shown(v["mae"], ".2f"))
    chart = go.Figure([
        go.Bar(x=t["label"], y=t["actual"], name="Actual", marker_color=NEUTRAL,
               hovertemplate="%{x} repeat purchases before: %{y:.2f} actual<extra></extra>"),
        go.Bar(x=t["label"], y=t["predicted"], name="Predicted", marker_color=PALETTE[0],
               hovertemplate="%{x} repeat purchases before: %{y:.2f} predicted<extra></extra>")])
    chart.update_layout(height=340, barmode="group", hovermode="closest", xaxis_title="repeat purchases in calibration",
                        yaxis_title="avg purchase days in holdout", margin=dict(l=10, r=10, t=40, b=10))
    st.plotly_chart(chart, key=f"{key}_validation", width="stretch")
    table = t.rename(columns={"label": "Repeat purchases in calibration", "customers": "Customers",
                              "actual": "Actual per customer", "predicted": "Predicted per customer"})
    _table(table, "CLV validation", key=f"{key}_validation_table",
           config={"Actual per customer": _num("Actual per customer", "%.3f"),
                   "Predicted per customer": _num("Predicted per customer", "%.3f")})


# --- at risk --------------------------------------------------------------------------------------

def render_at_risk(s: S.CustomerScores, *, key: str) -> None:
    if s.status != "ok":
        _not_fitted()
        return
    st.caption("Customers who are probably gone (low P(alive)) and were worth most: ranked by value at risk = "
               "past GMV × (1 − P(alive)). One-time buyers never appear: BG/NBD cannot tell they left.")
    c1, c2, c3 = st.columns([2, 3, 1])
    p = c1.slider("P(alive) below", 0.05, 0.95, S.AT_RISK_P_ALIVE, 0.05, key=f"{key}_risk_p")
    segments = c2.multiselect("RFM segments", [x for x, *_ in RFM_SEGMENTS], key=f"{key}_risk_segments",
                              placeholder="All segments")
    limit = c3.selectbox("Rows", (100, 1000, 5000), index=1, key=f"{key}_risk_limit")
    rows = load_customers(s, "value_at_risk", float(p), tuple(segments), int(limit))
    if rows.empty:
        st.info("No customer matches: raise the P(alive) threshold or choose other segments.", icon=":material/check_circle:")
        return
    table = pd.DataFrame({
        "Customer": rows["name"], "Customer ID": rows["customer_id"], "Country": rows["country"],
        "Segment": rows["segment"], "RFM segment": rows["rfm_segment"], "Main vendor": rows["main_vendor"],
        "Share with main vendor": rows["main_vendor_share"],
        "Past GMV": rows["gmv"], "Orders": rows["orders"], "Last purchase": rows["last_day"],
        "Days since": rows["days_since"], "P(alive)": rows["p_alive"], "Value at risk": rows["value_at_risk"],
        "CLV, next 12 months": rows["clv_12m"], "Acquisition channel": rows["acquisition_channel"]})
    st.markdown(f"**{len(table):,} customers**, {money(table['Value at risk'].sum())} of past GMV at risk.")
    _table(table, "At-risk customers", key=f"{key}_risk", most=25, config={
        "Customer ID": st.column_config.NumberColumn("Customer ID", format="%d"),
        "Past GMV": _eur("Past GMV"), "P(alive)": _pct("P(alive)"), "Value at risk": _eur("Value at risk"),
        "CLV, next 12 months": _eur("CLV, next 12 months"),
        "Main vendor": st.column_config.TextColumn("Main vendor", help="The vendor they spent most with"),
        "Share with main vendor": _pct("Share with main vendor", "Share of their GMV spent with that vendor")})
