"""Sales page figures (analytics/sales.py) against independent computations on raw rows."""
from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.filters import Filters, Period
from analytics.sales import (NotApplicable, bucket_start, compute_sales_page, fetch_breakdown_growth,
                             fetch_funnel, fetch_marketing, fetch_metric_trend, fetch_payments, fetch_profitability)
from tests.raw_metrics import expected, load_raw, prepare

P30 = Period(date(2026, 10, 22), date(2026, 11, 20))
YEAR = Period(date(2025, 11, 1), date(2026, 10, 31))


@pytest.fixture(scope="module")
def raw(engine):
    return prepare(load_raw(engine), "UTC")


@pytest.fixture(scope="module")
def extra(engine):
    with engine.connect() as conn:
        return {"spend": pd.read_sql(sa.text("SELECT * FROM mart.marketing_spend"), conn),
                "customers": pd.read_sql(sa.text("SELECT customer_id, acquisition_channel, segment, country "
                                                 "FROM mart.customers"), conn),
                "targets": pd.read_sql(sa.text("SELECT * FROM mart.kpi_targets"), conn)}


def close(a, b, what=""):
    if b is None or (isinstance(b, float) and np.isnan(b)):
        assert a is None or pd.isna(a), f"{what}: expected no value, got {a}"
    else:
        assert a is not None and not pd.isna(a), f"{what}: expected {b}, got {a}"
        assert abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b))), f"{what}: {a} != {b}"


def _end(key: date, grain: str) -> date:
    if grain == "day":
        return key
    if grain == "week":
        return key + timedelta(days=6)
    months = {"month": 1, "quarter": 3, "year": 12}[grain]
    m = key.month - 1 + months
    return date(key.year + m // 12, m % 12 + 1, 1) - timedelta(days=1)


FILTER_SETS = [{}, {"channel": ["web"]}, {"segment": ["B2B"], "payment_method": ["card"]}]


@pytest.mark.parametrize("dims", FILTER_SETS, ids=["all", "web", "b2b-card"])
@pytest.mark.parametrize("metric", ["gmv", "aov", "new_customers"])
def test_month_trend_growth_and_targets_equal_raw(engine, raw, extra, dims, metric):
    f = Filters.make(YEAR, grain="month", comparison="previous", **dims)
    with engine.connect() as conn:
        df = fetch_metric_trend(conn, f, metric, tz="UTC")
    assert len(df) == 12
    for r in df.itertuples():
        lo, hi = r.key, _end(r.key, "month")
        close(r.value, expected(raw, lo, hi, dims)[metric], f"{metric} {lo}")
        ya = expected(raw, lo.replace(year=lo.year - 1), _end(lo.replace(year=lo.year - 1), "month"), dims)[metric]
        close(r.yoy, ya, f"yoy {lo}")
        close(r.yoy_growth, None if not ya else r.value / ya - 1, f"yoy growth {lo}")
        prev_lo = bucket_start(lo - timedelta(days=1), "month")
        before = expected(raw, prev_lo, lo - timedelta(days=1), dims)[metric]
        close(r.pop_growth, None if not before else r.value / before - 1, f"pop {lo}")
        t = extra["targets"]
        t = t[(t["metric"] == metric) & (t["period_start"] == lo) & (t["period_end"] == hi)]
        want_target = None if dims or t.empty else float(t["target"].iloc[0])
        close(r.target, want_target, f"target {lo}")
        close(r.vs_target, None if want_target is None else r.value / want_target - 1, f"vs target {lo}")
    # The comparison period is the 12 months before, bucket by bucket.
    with engine.connect() as conn:
        before = fetch_metric_trend(conn, f.with_period(f.compare), metric, tz="UTC")["value"].to_numpy()
    np.testing.assert_allclose(df["compare"].to_numpy(dtype=float)[:len(before)], before.astype(float), rtol=1e-9)


def test_day_trend_moving_average(engine, raw):
    f = Filters.make(P30, grain="day")
    with engine.connect() as conn:
        df = fetch_metric_trend(conn, f, "orders", tz="UTC")
    assert len(df) == 30 and df["moving_avg"].iloc[:6].isna().all()
    for i in range(6, 30):
        days = [P30.start + timedelta(days=d) for d in range(i - 6, i + 1)]
        close(df["moving_avg"].iloc[i], np.mean([expected(raw, d, d)["orders"] for d in days]), f"ma {days[-1]}")
    assert df["target"].isna().all(), "targets per bucket at month grain and above only"


@pytest.mark.parametrize("by", ["category", "country", "payment_method", "segment"])
def test_breakdown_growth_equals_raw(engine, raw, by):
    f = Filters.make(P30)
    with engine.connect() as conn:
        df = fetch_breakdown_growth(conn, f, by, "gmv", tz="UTC")
    assert abs(df["share"].sum() - 1) < 1e-9
    assert list(df["value"]) == sorted(df["value"], reverse=True)
    for r in df.itertuples():
        now = expected(raw, P30.start, P30.end, {by: [r.key]})["gmv"]
        was = expected(raw, f.compare.start, f.compare.end, {by: [r.key]})["gmv"]
        close(r.value, now, f"{by}={r.key}")
        close(r.growth, now / was - 1 if was else None, f"growth {by}={r.key}")


def test_breakdown_of_a_rate_has_no_share(engine):
    with engine.connect() as conn:
        df = fetch_breakdown_growth(conn, Filters.make(P30), "channel", "aov", tz="UTC")
    assert df["share"].isna().all() and df["value"].notna().all()


@pytest.mark.parametrize("dims", [{}, {"channel": ["mobile"]}, {"country": ["DE"]}], ids=["all", "mobile", "DE"])
def test_payments_equal_raw(engine, raw, dims):
    f = Filters.make(YEAR, **dims)
    with engine.connect() as conn:
        df = fetch_payments(conn, f, tz="UTC")
    o = raw["orders"]
    o = o[(o["day"] >= YEAR.start) & (o["day"] <= YEAR.end)]
    for d, v in dims.items():
        o = o[o[d].isin(v)]
    assert set(df["payment_method"]) == set(o["payment_method"])
    for r in df.itertuples():
        want = expected(raw, YEAR.start, YEAR.end, {**dims, "payment_method": [r.payment_method]})
        close(r.gmv, want["gmv"], r.payment_method)
        close(r.refund_rate, want["refund_rate"], r.payment_method)
        mine = o[o["payment_method"] == r.payment_method]
        failed = (mine["payment_status"] == "failed").sum()
        close(r.failed_orders, failed, f"failed {r.payment_method}")
        close(r.failure_rate, failed / len(mine), f"failure rate {r.payment_method}")
    close(df["gmv_share"].sum(), 1.0, "shares")


@pytest.mark.parametrize("dims", [{}, {"channel": ["web"]}], ids=["all", "web"])
def test_funnel_equals_raw(engine, raw, dims):
    f = Filters.make(P30, **dims)
    with engine.connect() as conn:
        df = fetch_funnel(conn, f, tz="UTC")
    t = raw["traffic"]
    t = t[(t["day"] >= P30.start) & (t["day"] <= P30.end)]
    if dims:
        t = t[t["channel"].isin(dims["channel"])]
    want = t.groupby("channel")[["sessions", "product_views", "add_to_carts", "checkouts"]].sum()
    assert set(df["channel"]) == set(want.index)
    for r in df.itertuples():
        for col in want.columns:
            close(getattr(r, col), want.loc[r.channel, col], f"{r.channel} {col}")
        orders = expected(raw, P30.start, P30.end, {"channel": [r.channel]})["orders"]
        close(r.orders, orders, f"{r.channel} orders")
        close(r.step_orders, orders / want.loc[r.channel, "checkouts"], f"{r.channel} checkout→order")
        close(r.overall, orders / want.loc[r.channel, "sessions"], f"{r.channel} overall")


def test_sections_refuse_filters_they_cannot_honour(engine):
    with engine.connect() as conn:
        with pytest.raises(NotApplicable, match="clear the category filter"):
            fetch_funnel(conn, Filters.make(P30, category=["Electronics"]), tz="UTC")
        for dims in ({"channel": ["web"]}, {"segment": ["B2B"]}):
            # Spend has no segment or order channel: a filtered CAC would divide all spend by some customers.
            with pytest.raises(NotApplicable, match="clear them to see marketing efficiency"):
                fetch_marketing(conn, Filters.make(P30, **dims), tz="UTC")


@pytest.mark.parametrize("use_rollups", [True, False], ids=["rollups", "raw"])
@pytest.mark.parametrize("dims", [{}], ids=["all"])
def test_marketing_equals_raw(engine, raw, extra, dims, use_rollups):
    f = Filters.make(YEAR, **dims)
    with engine.connect() as conn:
        m = fetch_marketing(conn, f, use_rollups=use_rollups, tz="UTC")
    cust = extra["customers"].set_index("customer_id")
    for d, v in dims.items():
        cust = cust[cust[d].isin(v)]
    first = raw["first"].reindex(cust.index)
    new = cust[(first >= YEAR.start) & (first <= YEAR.end)].groupby("acquisition_channel").size()
    lines = raw["lines"]
    lines = lines[lines["counted"] & (lines["day"] >= YEAR.start) & (lines["day"] <= YEAR.end)
                  & lines["customer_id"].isin(cust.index)]
    gmv = lines.merge(cust[["acquisition_channel"]], left_on="customer_id", right_index=True).groupby(
        "acquisition_channel")["value"].sum()
    s = extra["spend"]
    s = s[(s["day"] >= YEAR.start) & (s["day"] <= YEAR.end)]
    spend = s.groupby("channel")["spend"].sum().astype(float)
    by = m.by_channel.set_index("acquisition_channel")
    assert set(by.index) == set(new.index) | set(spend.index) | set(gmv.index)
    for ch, r in by.iterrows():
        close(r["new_customers"], new.get(ch, 0), f"new {ch}")
        close(r["gmv"], gmv.get(ch, 0.0), f"gmv {ch}")
        close(r["spend"], spend.get(ch, 0.0), f"spend {ch}")
        sp = spend.get(ch, 0.0)
        close(r["cac"], sp / new[ch] if sp and new.get(ch) else None, f"cac {ch}")
        close(r["roas"], gmv.get(ch, 0.0) / sp if sp else None, f"roas {ch}")
    camp = s.groupby(["channel", "campaign"])["spend"].sum().astype(float)
    assert len(m.by_campaign) == len(camp)
    for r in m.by_campaign.itertuples():
        close(r.spend, camp[(r.channel, r.campaign)], f"{r.channel}/{r.campaign}")
        close(r.share_of_channel, camp[(r.channel, r.campaign)] / spend[r.channel], "share")


@pytest.mark.parametrize("dims", [{}, {"business_model": ["B2B"]}], ids=["all", "b2b"])
def test_profitability_equals_raw(engine, raw, dims):
    f = Filters.make(P30, **dims)
    with engine.connect() as conn:
        df = fetch_profitability(conn, f, tz="UTC")
    for r in df.itertuples():
        want = expected(raw, P30.start, P30.end, {**dims, "category": [r.category]})
        close(r.net_revenue, want["net_revenue"], r.category)
        close(r.gross_margin, want["gross_margin"], r.category)
        close(r.take_revenue, want["take_revenue"], r.category)
        close(r.margin, want["gross_margin"] * want["net_revenue"], f"margin {r.category}")


def test_page_figures_are_the_same_from_raw_tables(engine):
    f = Filters.make(P30, grain="day")
    with engine.connect() as conn:
        fast = compute_sales_page(conn, f, tz="UTC")
        slow = compute_sales_page(conn, f, use_rollups=False, tz="UTC")
    for name in ("trend", "breakdown", "payments", "profitability", "funnel"):
        pd.testing.assert_frame_equal(fast[name].reset_index(drop=True), slow[name].reset_index(drop=True),
                                      check_exact=False, rtol=1e-9, obj=name)
    pd.testing.assert_frame_equal(fast["marketing"].by_channel, slow["marketing"].by_channel, check_exact=False)


def test_empty_period(engine):
    f = Filters.make(Period(date(2019, 1, 1), date(2019, 1, 31)))
    with engine.connect() as conn:
        page = compute_sales_page(conn, f, tz="UTC")
    assert page["payments"].empty and page["profitability"].empty and page["breakdown"].empty
    assert (page["trend"]["value"] == 0).all()


def test_partial_first_bucket_has_no_growth_and_the_next_compares_with_a_whole_bucket(engine, raw):
    p = Period(date(2025, 10, 15), date(2026, 1, 12))
    with engine.connect() as conn:
        df = fetch_metric_trend(conn, Filters.make(p, grain="month"), "gmv", tz="UTC")
    assert df["key"].iloc[0] == date(2025, 10, 1) and pd.isna(df["pop_growth"].iloc[0])
    close(df["before"].iloc[0], expected(raw, date(2025, 9, 1), date(2025, 9, 30))["gmv"], "September, whole")
    # November is compared with the whole of October, not with the 17 days inside the period.
    close(df["before"].iloc[1], expected(raw, date(2025, 10, 1), date(2025, 10, 31))["gmv"], "October, whole")


def test_week_year_ago_is_52_weeks_back_on_the_same_weekdays(engine, raw):
    p = Period(date(2025, 1, 6), date(2025, 3, 30))   # Mondays to Sundays
    with engine.connect() as conn:
        df = fetch_metric_trend(conn, Filters.make(p, grain="week"), "orders", tz="UTC")
    for r in df.itertuples():
        lo = r.key - timedelta(days=364)
        close(r.yoy, expected(raw, lo, lo + timedelta(days=6))["orders"], f"week of {r.key}")
