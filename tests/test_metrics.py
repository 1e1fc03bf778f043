"""Every glossary metric, for several periods and filters, equals raw rows computed with pandas."""
from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.filters import FilterError, Filters, Period
from analytics.kpis import (INDEXED_CUSTOMER_DIMENSIONS, fetch_aggregate, fetch_breakdown, fetch_dimension_values,
                            fetch_targets, fetch_totals, fetch_trend)
from analytics.metrics import METRICS
from tests.conftest import SEED_END
from tests.raw_metrics import assert_close, expected, load_raw, prepare

PERIODS = {
    "last_30_days": Period(SEED_END - timedelta(days=30), SEED_END - timedelta(days=1)),
    "one_day": Period(SEED_END - timedelta(days=3), SEED_END - timedelta(days=3)),
    "a_year": Period(date(2025, 1, 1), date(2025, 12, 31)),
    "month_to_date": Period(SEED_END.replace(day=1), SEED_END),
    "empty": Period(date(2019, 1, 1), date(2019, 1, 31)),
}


@pytest.fixture(scope="module")
def raw(engine):
    return prepare(load_raw(engine), "UTC")


@pytest.fixture(scope="module")
def pick(engine):
    """Real dimension values from the seeded data: the two largest vendors, a category, a country."""
    with engine.connect() as conn:
        top = [r[0] for r in conn.execute(sa.text(
            "SELECT vendor_id FROM mart.rollup_vendor_daily GROUP BY 1 ORDER BY sum(gmv) DESC LIMIT 2"))]
        cat = conn.execute(sa.text("SELECT category FROM mart.rollup_category_daily GROUP BY 1 ORDER BY sum(gmv) DESC LIMIT 1")).scalar()
        country = conn.execute(sa.text("SELECT country FROM mart.customers GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")).scalar()
        region = conn.execute(sa.text("SELECT region FROM mart.customers GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")).scalar()
    return {"vendors": top, "category": cat, "country": country, "region": region}


# (name, dims builder, expected sales source for last_30_days)
FILTERS = [
    ("none", lambda p: {}, "rollup_sales_daily"),
    ("web", lambda p: {"channel": ["web"]}, "rollup_sales_daily"),
    ("web+mobile", lambda p: {"channel": ["web", "mobile"]}, "rollup_sales_daily"),
    ("b2b", lambda p: {"segment": ["B2B"]}, "rollup_sales_daily"),
    ("country", lambda p: {"country": [p["country"]]}, "rollup_sales_daily"),
    ("region+model", lambda p: {"region": [p["region"]], "business_model": ["B2C"]}, "rollup_sales_daily"),
    ("one vendor", lambda p: {"vendor_id": p["vendors"][:1]}, "rollup_vendor_daily"),
    ("two vendors", lambda p: {"vendor_id": p["vendors"]}, "raw"),
    ("category", lambda p: {"category": [p["category"]]}, "rollup_category_daily"),
    ("category+web", lambda p: {"category": [p["category"]], "channel": ["web"]}, "rollup_category_orders_daily"),
    ("category+region+b2b", lambda p: {"category": [p["category"]], "region": [p["region"]], "segment": ["B2B"]},
     "rollup_category_orders_daily"),
    ("two categories+web", lambda p: {"category": [p["category"], "Toys"], "channel": ["web"]}, "raw"),
    ("category+country", lambda p: {"category": [p["category"]], "country": [p["country"]]}, "rollup_category_geo_daily"),
    ("card", lambda p: {"payment_method": ["card"]}, "rollup_payment_daily"),
    ("card+web+b2b", lambda p: {"payment_method": ["card"], "channel": ["web"], "segment": ["B2B"]},
     "rollup_payment_daily"),
    ("paypal+country", lambda p: {"payment_method": ["paypal"], "country": [p["country"]]}, "rollup_payment_geo_daily"),
    ("paypal+web+country", lambda p: {"payment_method": ["paypal"], "channel": ["web"], "country": [p["country"]]}, "raw"),
]


@pytest.mark.parametrize("period_name", list(PERIODS))
@pytest.mark.parametrize("name,dims,source", FILTERS, ids=[f[0] for f in FILTERS])
def test_totals_equal_raw(engine, raw, pick, period_name, name, dims, source):
    period = PERIODS[period_name]
    d = dims(pick)
    f = Filters.make(period, **d)
    with engine.connect() as conn:
        got = fetch_totals(conn, f, tz="UTC")
        sources = fetch_aggregate(conn, f, metrics=("orders",), tz="UTC").attrs["sources"]
    assert_close(got, expected(raw, period.start, period.end, d), f"{period_name}/{name}")
    assert sources["sales"] == source


def test_seeded_data_has_the_edge_cases(raw):
    """The comparisons above only mean something if the data holds what they guard against."""
    o, li = raw["orders"], raw["lines"]
    p = PERIODS["last_30_days"]
    in_p = o[(o["day"] >= p.start) & (o["day"] <= p.end)]
    assert (in_p["status"] == "cancelled").any()
    assert ((li["refund"] > 0) & (li["refund"] < li["value"])).any(), "partial refunds"
    assert ((li["refund"] > 0) & (li["refund"] >= li["value"])).any(), "full refunds"
    firsts = raw["first"]
    assert ((firsts >= p.start) & (firsts <= p.end)).any(), "customers whose first order is in the period"


@pytest.mark.parametrize("grain", ["day", "week", "month", "quarter", "year"])
def test_trend_buckets_equal_raw(engine, raw, grain):
    period = Period(date(2025, 8, 10), date(2026, 11, 12)) if grain in ("quarter", "year") \
        else Period(date(2026, 8, 10), date(2026, 11, 12))
    f = Filters.make(period, grain=grain)
    keys = ("gmv", "orders", "active_customers", "new_customers", "repeat_rate", "conversion_rate")
    with engine.connect() as conn:
        df = fetch_trend(conn, f, keys, tz="UTC")
    days = [period.start + timedelta(n) for n in range(period.days)]
    assert len(df) == len({_bucket(d, grain) for d in days})
    for _, row in df.iterrows():
        b_start = max(row["key"], period.start)
        b_end = min(_bucket_end(row["key"], grain), period.end)
        want = {k: v for k, v in expected(raw, b_start, b_end).items() if k in keys}
        assert_close({k: (None if row[k] != row[k] else row[k]) for k in keys}, want, f"{grain} {row['key']}")


def _bucket(d: date, grain: str) -> date:
    if grain == "day":
        return d
    if grain == "week":
        return d - timedelta(days=d.weekday())
    if grain == "quarter":
        return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
    if grain == "year":
        return date(d.year, 1, 1)
    return d.replace(day=1)


def _bucket_end(b: date, grain: str) -> date:
    if grain == "day":
        return b
    if grain == "week":
        return b + timedelta(days=6)
    if grain == "year":
        return date(b.year, 12, 31)
    months = 3 if grain == "quarter" else 1
    m = b.month - 1 + months
    return date(b.year + m // 12, m % 12 + 1, 1) - timedelta(days=1)


@pytest.mark.parametrize("by", ["channel", "business_model", "vendor_id", "category", "country", "payment_method",
                                "payment_status", "product_id"])
def test_breakdown_equals_raw(engine, raw, by):
    period = PERIODS["last_30_days"]
    f = Filters.make(period)
    with engine.connect() as conn:
        df = fetch_breakdown(conn, f, by, ("gmv", "orders", "aov", "net_revenue"), limit=10, tz="UTC")
    assert 0 < len(df) <= 10
    assert list(df["gmv"]) == sorted(df["gmv"], reverse=True)
    for _, row in df.iterrows():
        want = expected(raw, period.start, period.end, {by: [row["key"]]})
        assert_close({k: (None if pd.isna(row[k]) else row[k]) for k in ("gmv", "orders", "aov", "net_revenue")},
                     {k: want[k] for k in ("gmv", "orders", "aov", "net_revenue")}, f"{by}={row['key']}")


def test_breakdown_shares_add_up_to_total(engine):
    f = Filters.make(PERIODS["a_year"])
    with engine.connect() as conn:
        total = fetch_totals(conn, f, metrics=("gmv", "orders"), tz="UTC")
        df = fetch_breakdown(conn, f, "channel", ("gmv", "orders"), tz="UTC")
    assert df["gmv"].sum() == pytest.approx(total["gmv"])
    assert df["orders"].sum() == pytest.approx(total["orders"])


def test_hour_grain_sums_to_the_day(engine, raw):
    day = PERIODS["one_day"]
    f = Filters.make(day, grain="hour")
    with engine.connect() as conn:
        df = fetch_trend(conn, f, ("gmv", "orders"), tz="UTC")
    assert len(df) == 24
    want = expected(raw, day.start, day.end)
    assert df["gmv"].sum() == pytest.approx(want["gmv"])
    assert df["orders"].sum() == pytest.approx(want["orders"])


def test_targets_cover_whole_months_only(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT metric, target FROM mart.kpi_targets WHERE period_start = '2026-10-01'")).all()
        got = fetch_targets(conn, Period(date(2026, 10, 1), date(2026, 10, 31)), tuple(METRICS))
        half = fetch_targets(conn, Period(date(2026, 10, 1), date(2026, 10, 15)), ("gmv",))
        none = fetch_targets(conn, Period(date(2015, 1, 1), date(2015, 1, 31)), ("gmv",))
    assert rows, "the demo data has October targets"
    for metric, target in rows:
        assert got[metric] == pytest.approx(float(target))
    gmv = dict(rows)["gmv"]
    assert half["gmv"] == pytest.approx(float(gmv) * 15 / 31)
    assert none == {}


def test_every_metric_has_a_definition_shown_to_users():
    for m in METRICS.values():
        assert m.label and len(m.description) > 20 and m.fmt in {"money", "count", "percent"}


@pytest.mark.parametrize("kw,message", [
    ({"grain": "fortnight'); DROP TABLE x; --"}, "unknown grain"),
    ({"by": "password"}, "cannot break down by"),
    ({"by": "channel", "grain": "day"}, "one or the other"),
])
def test_aggregate_rejects_names_it_does_not_know(engine, kw, message):
    with engine.connect() as conn, pytest.raises(FilterError, match=message):
        fetch_aggregate(conn, Filters.make(PERIODS["one_day"]), tz="UTC", **kw)


def test_vendor_breakdown_within_a_category_counts_each_order_once(engine, raw, pick):
    # Rows of rollup_product_daily count an order once per product: an order with two of a
    # vendor's products must not count twice when products are summed per vendor. The vendor and
    # category rollup keeps an order once per vendor and category.
    period = PERIODS["a_year"]
    f = Filters.make(period, category=[pick["category"]])
    with engine.connect() as conn:
        df = fetch_breakdown(conn, f, "vendor_id", ("orders", "aov"), limit=15, tz="UTC")
        source = fetch_aggregate(conn, f, by="vendor_id", metrics=("orders",), tz="UTC").attrs["sources"]["sales"]
    assert source == "rollup_vendor_category_daily"
    for _, row in df.iterrows():
        want = expected(raw, period.start, period.end, {"category": [pick["category"]], "vendor_id": [row["key"]]})
        assert_close({"orders": row["orders"], "aov": row["aov"]}, {"orders": want["orders"], "aov": want["aov"]},
                     f"vendor {row['key']}")


def test_dimension_values_equal_a_distinct_read_of_every_row(engine):
    """The filter bar's lists: customer dimensions by the index skip scan (fetch_distinct_values), the
    same values in the same order as DISTINCT over every customer."""
    with engine.connect() as conn:
        got = fetch_dimension_values(conn)
        for dim in INDEXED_CUSTOMER_DIMENSIONS:
            want = [r[0] for r in conn.execute(sa.select(sa.column(dim)).select_from(
                sa.table("customers", sa.column(dim), schema="mart")).distinct().order_by(sa.column(dim)))]
            assert got[dim] == want and len(want) > 1, dim
