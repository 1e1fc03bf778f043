"""The rollups that keep pages flat from 1M to 10M order lines, on randomised small marketplaces:
distinct customers from customer cells, weekly and monthly copies of the day rollups, new
filter-and-breakdown pairs, acquisition channels. Every figure equals tests/raw_metrics on raw
rows, across a daylight-saving change in a non-UTC time zone, cancelled first orders, two orders on one day,
orders without lines, every filter kind and empty periods; an incremental refresh after late
changes equals a full rebuild; the fallback paths give the same figures as the flat ones."""
from __future__ import annotations

import random
import re
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

import analytics.kpis as K
from analytics.filters import Filters, Period, next_bucket
from analytics.overview import compute_overview
from analytics.products import compute_product_figures
from analytics.sales import fetch_marketing
from analytics.vendors import fetch_hhi_series, fetch_new_vendors
from data import customer_rollups as CR
from data import dim_cubes as DC
from data.rollups import DAY_TABLES, ROLLUP_TABLES, fetch_period_version, refresh_rollups
from tests.raw_metrics import assert_close, expected, load_raw, prepare

FIRST, LAST = date(2025, 12, 20), date(2026, 4, 12)   # holds New Year and both DST changes of 2026 in Europe
CATEGORIES = ("Books", "Toys", "Garden")
COUNTRIES = (("DE", "Europe"), ("FR", "Europe"), ("US", "North America"))
CUSTOMER_METRICS = ("active_customers", "new_customers", "repeat_rate")


def _marketplace(conn, seed: int, orders: int = 260) -> None:
    """Inserts a small random marketplace: 4 vendors (one selling in two categories), 9 products,
    36 customers, orders with lines (some without), many placed near midnight."""
    rng = random.Random(seed)
    conn.execute(sa.text("""INSERT INTO mart.vendors VALUES
        (1, 'Alpha', 'Books', 'Europe', 'DE', '2024-01-01', 'active', 0.10),
        (2, 'Beta', 'Toys', 'Europe', 'FR', '2024-01-01', 'active', 0.15),
        (3, 'Gamma', 'Garden', 'North America', 'US', '2024-01-01', 'paused', 0.12),
        (4, 'Delta', 'Books', 'Europe', 'DE', '2024-01-01', 'active', 0.08)"""))
    products = [(10 + i, 1 + i % 4, CATEGORIES[(i + i // 4) % 3]) for i in range(9)]
    conn.execute(sa.text("INSERT INTO mart.products VALUES (:id, :v, :sku, :name, :cat, 'Sub', 20, 8, '2024-01-01')"),
                 [{"id": p, "v": v, "sku": f"S-{p}", "name": f"P{p}", "cat": c} for p, v, c in products])
    customers = [(100 + i, *COUNTRIES[i % 3], "B2B" if i % 4 == 0 else "B2C") for i in range(36)]
    conn.execute(sa.text("INSERT INTO mart.customers VALUES (:id, :name, :country, :region, :segment, 'organic', '2025-01-01')"),
                 [{"id": c, "name": f"C{c}", "country": k, "region": r, "segment": s} for c, k, r, s in customers])
    rows, lines = [], []
    span = (LAST - FIRST).days
    for oid in range(1, orders + 1):
        cust = rng.choice(customers)[0]
        day = FIRST + timedelta(days=rng.randint(0, span))
        # Near midnight UTC, so Berlin and New York days differ from UTC ones.
        hour = rng.choice((0, 0, 1, 5, 12, 22, 23, 23))
        at = datetime(day.year, day.month, day.day, hour, rng.randint(0, 59), tzinfo=timezone.utc)
        rows.append({"id": oid, "c": cust, "at": at,
                     "st": rng.choice(("delivered", "delivered", "paid", "returned", "cancelled", "cancelled")),
                     "ch": rng.choice(("web", "mobile", "mobile", "marketplace_api", "sales_rep")),
                     "bm": rng.choice(("B2C", "B2B", "B2B2C")), "pm": rng.choice(("card", "paypal", "invoice")),
                     "ps": rng.choice(("captured", "captured", "captured", "failed", "refunded"))})
        if rng.random() < 0.15:  # a second order by the same customer a few minutes later: same day
            rows.append({**rows[-1], "id": orders + oid, "at": at + timedelta(minutes=3), "st": "paid"})
            lines.append({"o": orders + oid, "n": 1, **_line(rng, products)})
        for n in range(rng.choice((0, 1, 1, 2, 3)) if oid > 5 else 1):
            lines.append({"o": oid, "n": n + 1, **_line(rng, products)})
    conn.execute(sa.text("INSERT INTO mart.orders VALUES (:id, :c, :at, :st, :ch, :bm, :pm, :ps, 'EUR', 0)"), rows)
    conn.execute(sa.text("INSERT INTO mart.order_items VALUES (:o, :n, :p, :v, :q, :price, :disc, 8, :ref)"), lines)


def _built(engine, seed: int, tz: str):
    """Seeds a random marketplace and builds its rollups for tz; returns its raw rows, prepared."""
    with engine.begin() as conn:
        _marketplace(conn, seed)
        refresh_rollups(conn, timezone=tz)
    return prepare(load_raw(engine), tz)


def _line(rng: random.Random, products) -> dict:
    p, v, _ = rng.choice(products)
    price = rng.choice((10, 20, 35))
    return {"p": p, "v": v, "q": rng.randint(1, 3), "price": price, "disc": rng.choice((0, 0, 2)),
            "ref": rng.choice((0, 0, 0, 5))}


def _filters(rng: random.Random) -> list[dict]:
    return [{}, {"segment": ["B2B"]}, {"region": ["Europe"]}, {"country": [rng.choice(COUNTRIES)[0]]},
            {"country": ["DE", "US"]}, {"channel": ["mobile"]}, {"business_model": ["B2C"]},
            {"payment_method": ["paypal"]}, {"category": [rng.choice(CATEGORIES)]}, {"vendor_id": [rng.randint(1, 4)]},
            # Served by the fallbacks: several values of an order-level dimension, two dimensions.
            {"channel": ["web", "mobile"]}, {"channel": ["web"], "segment": ["B2C"]}]


def _periods(rng: random.Random, n: int) -> list[Period]:
    out = [Period(date(2026, 1, 1), date(2026, 3, 31)), Period(date(2026, 3, 29), date(2026, 3, 29)),
           Period(date(2026, 2, 3), date(2026, 4, 11)), Period(date(2025, 6, 1), date(2025, 6, 30)),  # empty
           Period(date(2025, 11, 30), date(2026, 5, 2))]
    for _ in range(n):
        a = FIRST + timedelta(days=rng.randint(-5, (LAST - FIRST).days))
        out.append(Period(a, a + timedelta(days=rng.choice((0, 1, 6, 13, 30, 45, 70, 110)))))
    return out


# Whole years and quarters, read from the cubes' coarse rows (vendors: years and quarters;
# products: years), with months and edge days around them.
COARSE_PERIODS = [Period(date(2025, 1, 1), date(2026, 12, 31)), Period(date(2025, 10, 1), date(2026, 6, 30)),
                  Period(date(2025, 12, 24), date(2026, 4, 10))]


def _row(df, i=0) -> dict:
    row = df.iloc[i]
    return {k: (None if row[k] != row[k] else float(row[k])) for k in row.index if k != "key"}


def _check_totals(engine, conn, tz: str, seed: int, n_periods: int = 18) -> None:
    raw = prepare(load_raw(engine), tz)
    rng = random.Random(seed)
    for p in _periods(rng, n_periods):
        for dims in _filters(rng):
            got = K.fetch_aggregate(conn, Filters.make(p, **dims), tz=tz)
            assert_close(_row(got), expected(raw, p.start, p.end, dims), f"{tz} {p} {dims}")


def _source(conn, dims: dict, tz: str, **kw) -> str:
    f = Filters.make(Period(FIRST, LAST), **dims)
    return K.fetch_aggregate(conn, f, metrics=CUSTOMER_METRICS, tz=tz, **kw).attrs["sources"]["customers"]


def _query(conn, f, tz, **kw):
    """aggregate_query over the rollups as this database has them (fetch_rollup_layout, which tests patch)."""
    return K.aggregate_query(f, layout=K.fetch_rollup_layout(conn, tz), tz=tz, **kw)


@pytest.mark.parametrize("tz,seed", [("UTC", 1), ("Europe/Berlin", 2), ("America/New_York", 3)])
def test_figures_equal_raw(empty_engine, tz, seed):
    with empty_engine.begin() as conn:
        _marketplace(conn, seed)
        refresh_rollups(conn, timezone=tz)
    with empty_engine.connect() as conn:
        assert _source(conn, {}, tz) == "rollup_customer_cells"
        assert _source(conn, {"channel": ["web"]}, tz) == "rollup_customer_cells"
        assert _source(conn, {"country": ["DE", "US"]}, tz) == "rollup_customer_cells"
        assert _source(conn, {"vendor_id": [2]}, tz) == "rollup_customer_cells"
        assert _source(conn, {"channel": ["web", "mobile"]}, tz) == "rollup_customer_daily"
        assert _source(conn, {"category": ["Toys", "Books"]}, tz) == "raw"
        _check_totals(empty_engine, conn, tz, seed)


@pytest.mark.parametrize("grain", ["day", "week", "month", "quarter"])
def test_trend_buckets_equal_raw(empty_engine, grain):
    tz = "Europe/Berlin"
    raw = _built(empty_engine, 4, tz)
    period = Period(date(2025, 12, 24), date(2026, 4, 9)) if grain != "day" else Period(date(2026, 3, 20), date(2026, 4, 5))
    with empty_engine.connect() as conn:
        for dims in ({}, {"channel": ["web"]}, {"country": ["FR"]}, {"category": ["Garden"]}, {"vendor_id": [3]}):
            df = K.fetch_trend(conn, Filters.make(period, grain=grain, **dims), CUSTOMER_METRICS + ("gmv", "orders"), tz=tz)
            assert len(df) > 1
            for i, key in enumerate(df["key"]):
                lo, hi = max(key, period.start), min(_bucket_end(key, grain), period.end)
                want = {k: v for k, v in expected(raw, lo, hi, dims).items() if k in df.columns}
                assert_close(_row(df, i), want, f"{grain} {dims} {key}")


def _bucket_end(key: date, grain: str) -> date:
    return next_bucket(key, grain) - timedelta(days=1)


@pytest.mark.parametrize("by", ["channel", "category", "country", "payment_method", "vendor_id"])
def test_breakdowns_equal_raw(empty_engine, by):
    tz = "Europe/Berlin"
    raw = _built(empty_engine, 5, tz)
    p = Period(date(2026, 1, 10), date(2026, 3, 30))
    with empty_engine.connect() as conn:
        df = K.fetch_aggregate(conn, Filters.make(p), by=by, metrics=CUSTOMER_METRICS, tz=tz)
        assert df.attrs["sources"]["customers"] == "rollup_customer_cells"
        assert len(df) > 1
        for i, key in enumerate(df["key"]):
            assert_close(_row(df, i), {k: v for k, v in expected(raw, p.start, p.end, {by: [key]}).items()
                                       if k in CUSTOMER_METRICS}, f"{by}={key}")


def test_failed_payments_in_a_category_read_the_category_rollup(empty_engine, monkeypatch):
    """Payments by method narrowed to failed ones under a category filter (the sales page's
    payments section) read categories by country, payment method and status (layout 2)."""
    tz = "America/New_York"
    raw = _built(empty_engine, 10, tz)
    metrics = ("gmv", "orders", "aov", "refund_rate", "cancellation_rate")
    with empty_engine.connect() as conn:
        for p in (Period(date(2025, 12, 24), date(2026, 4, 9)), Period(date(2026, 3, 28), date(2026, 3, 30))):
            for dims in ({"category": ["Toys"], "payment_status": ["failed"]},
                         {"category": ["Books"], "country": ["US"], "payment_status": ["failed", "refunded"]}):
                df = K.fetch_aggregate(conn, Filters.make(p, **dims), by="payment_method", metrics=metrics, tz=tz)
                assert df.attrs["sources"]["sales"] == "rollup_category_geo_daily"
                assert p.days < 60 or len(df) > 1
                for i, key in enumerate(df["key"]):
                    want = expected(raw, p.start, p.end, {**dims, "payment_method": [key]})
                    assert_close(_row(df, i), {k: v for k, v in want.items() if k in metrics}, f"{p} {key} {dims}")
                # Before the rebuild (layout 1) the rows have no payment status: the lines answer.
                with monkeypatch.context() as m:
                    m.setattr(K, "fetch_rollup_layout", lambda c, z: 1)
                    old = K.fetch_aggregate(conn, Filters.make(p, **dims), by="payment_method", metrics=metrics, tz=tz)
                assert old.attrs["sources"]["sales"] == "raw"
                pd.testing.assert_frame_equal(df, old, check_dtype=False)


VENDOR_FILTERS = ({"channel": ["mobile"]}, {"region": ["Europe"]}, {"country": ["DE", "US"]}, {"segment": ["B2B"]},
                  {"payment_method": ["paypal", "card"]}, {"business_model": ["B2C"]},
                  {"payment_status": ["failed", "refunded"]},
                  {"payment_method": ["card"], "payment_status": ["captured"]})
LEADERBOARD = ("gmv", "net_revenue", "orders", "aov", "refund_rate", "cancellation_rate", "gross_margin",
               "take_revenue")


def _ranked_equal_raw(conn, raw, f: Filters, by: str, source: str, tz: str) -> pd.DataFrame:
    """Returns the leaderboard metrics by `by` under f after checking they were read from source
    and equal the raw tables' and tests/raw_metrics' figures."""
    df = K.fetch_aggregate(conn, f, by=by, metrics=LEADERBOARD, tz=tz)
    assert df.attrs["sources"]["sales"] == source
    pd.testing.assert_frame_equal(df, K.fetch_aggregate(conn, f, by=by, metrics=LEADERBOARD, tz=tz, use_rollups=False),
                                  check_dtype=False)
    for i, key in enumerate(df["key"]):
        want = expected(raw, f.period.start, f.period.end, {**f.dim_map, by: [int(key)]})
        assert_close(_row(df, i), {k: v for k, v in want.items() if k in LEADERBOARD}, f"{f.period} {f.dims} {key}")
    return df


@pytest.mark.slow
@pytest.mark.parametrize("keep", [DC.KEEP_DAYS["vendor"], 40])
def test_vendors_by_dimension_equal_raw(empty_engine, monkeypatch, keep):
    """Vendors ranked under an order- or customer-level filter, a vendor's breakdown by one of them,
    its monthly trend, the HHI series and new vendors read vendors by dimension: whole months,
    kept day rows, and (keep=40: day rows from March 1st) older edge days from the order lines."""
    monkeypatch.setitem(DC.KEEP_DAYS, "vendor", keep)
    tz = "Europe/Berlin"
    raw = _built(empty_engine, 13, tz)
    rng = random.Random(13)
    with empty_engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT vendor_days_from FROM app.rollup_state")).scalar()
        today = conn.execute(sa.text("SELECT (now() AT TIME ZONE :tz)::date"), {"tz": tz}).scalar()
        assert kept == (min(LAST, today) - timedelta(days=keep)).replace(day=1)
        assert keep != 40 or kept == date(2026, 3, 1)
        for p in [*_periods(rng, 5), *COARSE_PERIODS]:
            for dims in VENDOR_FILTERS:
                f = Filters.make(p, **dims)
                df = _ranked_equal_raw(conn, raw, f, "vendor_id", K.VENDOR_DIMS, tz)
                sold = [int(k) for k in df.loc[df["orders"] > 0, "key"]]
                assert fetch_new_vendors(conn, f, sold, tz=tz).to_dict() == \
                    fetch_new_vendors(conn, f, sold, tz=tz, use_rollups=False).to_dict()
                pd.testing.assert_frame_equal(fetch_hhi_series(conn, f, tz=tz),
                                              fetch_hhi_series(conn, f, tz=tz, use_rollups=False), check_dtype=False)
                one = Filters.make(p, vendor_id=[rng.randint(1, 4)], **dims)
                trend = K.fetch_aggregate(conn, one, grain="month", metrics=LEADERBOARD, tz=tz)
                assert trend.attrs["sources"]["sales"] == K.VENDOR_DIMS
                pd.testing.assert_frame_equal(trend, K.fetch_aggregate(conn, one, grain="month", metrics=LEADERBOARD,
                                                                       tz=tz, use_rollups=False), check_dtype=False)
            vendor = rng.randint(1, 4)
            # A vendor's breakdowns, and its failed payments by method (the sales page's payments).
            for by, dims in [*((by, {}) for by in (*DC.DIMENSIONS, "payment_status")),
                             ("payment_method", {"payment_status": ["failed"]})]:
                df = K.fetch_aggregate(conn, Filters.make(p, vendor_id=[vendor], **dims), by=by, metrics=LEADERBOARD,
                                       tz=tz)
                assert df.attrs["sources"]["sales"] == K.VENDOR_DIMS
                for i, key in enumerate(df["key"]):
                    want = expected(raw, p.start, p.end, {"vendor_id": [vendor], **dims, by: [key]})
                    assert_close(_row(df, i), {k: v for k, v in want.items() if k in LEADERBOARD}, f"{p} {by}={key}")
        # Whole years and quarters read the coarse rows; before the rebuild for layout 5 the months.
        f = Filters.make(COARSE_PERIODS[0], channel=["web"])
        assert re.search(rf"{DC.VENDORS.coarse} WHERE dim = 'channel' AND grain = 'y'",
                         _query(conn, f, tz, by="vendor_id").sql)
        f = Filters.make(COARSE_PERIODS[1], channel=["web"])
        assert re.search(rf"{DC.VENDORS.coarse} WHERE dim = 'channel' AND grain = 'q'",
                         _query(conn, f, tz, by="vendor_id").sql)
        with monkeypatch.context() as m:
            m.setattr(K, "fetch_rollup_layout", lambda c, z: 4)
            assert DC.VENDORS.coarse not in _query(conn, f, tz, by="vendor_id").sql
            pd.testing.assert_frame_equal(K.fetch_aggregate(conn, f, by="vendor_id", tz=tz),
                                          K.fetch_aggregate(conn, f, by="vendor_id", tz=tz, use_rollups=False),
                                          check_dtype=False)
        # Before the rebuild for layout 3 (an upgraded database) the lines answer.
        with monkeypatch.context() as m:
            m.setattr(K, "fetch_rollup_layout", lambda c, z: 2)
            assert K.fetch_aggregate(conn, Filters.make(Period(FIRST, LAST), channel=["web"]), by="vendor_id", tz=tz
                                     ).attrs["sources"]["sales"] == "raw"
        # Two dimensions at once, or several vendors counted together, are not kept: the lines answer.
        for dims in ({"channel": ["web"], "region": ["Europe"]}, {"vendor_id": [1, 2], "channel": ["web"]}):
            assert K.fetch_aggregate(conn, Filters.make(Period(FIRST, LAST), **dims), by="payment_method", tz=tz,
                                     ).attrs["sources"]["sales"] == "raw"


@pytest.mark.slow
@pytest.mark.parametrize("keep", [DC.KEEP_DAYS["product"], 40])
def test_products_by_dimension_equal_raw(empty_engine, monkeypatch, keep):
    """Products ranked under an order- or customer-level filter (the products page's lists and
    their comparison period, narrowed to the listed products) read products by dimension: whole
    months, kept day rows and (keep=40) older edge days from the order lines."""
    monkeypatch.setitem(DC.KEEP_DAYS, "product", keep)
    tz = "America/New_York"
    raw = _built(empty_engine, 15, tz)
    rng = random.Random(15)
    with empty_engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT product_days_from FROM app.rollup_state")).scalar()
        assert keep != 40 or kept == date(2026, 3, 1)
        for p in [*_periods(rng, 4), *COARSE_PERIODS]:
            for dims in VENDOR_FILTERS:
                f = Filters.make(p, **dims)
                df = _ranked_equal_raw(conn, raw, f, "product_id", K.PRODUCT_DIMS, tz)
                few = Filters.make(p, product_id=[int(k) for k in df["key"][:3]] or [10], **dims)
                assert K.fetch_aggregate(conn, few, by="product_id", tz=tz).attrs["sources"]["sales"] == K.PRODUCT_DIMS
                # Several products together: GMV adds up over product rows, order counts do not.
                gmv = K.fetch_aggregate(conn, few, metrics=("gmv",), tz=tz)
                assert gmv.attrs["sources"]["sales"] == K.PRODUCT_DIMS
                lines = K.fetch_aggregate(conn, few, metrics=("gmv",), tz=tz, use_rollups=False)
                assert_close({"gmv": float(gmv["gmv"].sum())}, {"gmv": float(lines["gmv"].sum())}, f"{p} {dims} gmv")
                if len(few.dim_map["product_id"]) > 1:
                    assert K.fetch_aggregate(conn, few, metrics=("orders",), tz=tz).attrs["sources"]["sales"] == "raw"
            figures = compute_product_figures(conn, Filters.make(p, region=["Europe"]),
                                              compare=True, tz=tz)
            baseline = compute_product_figures(conn, Filters.make(p, region=["Europe"]),
                                               compare=True, tz=tz, use_rollups=False)
            for name in ("top", "bottom", "price_volume", "margin_high", "margin_low", "products_before"):
                pd.testing.assert_frame_equal(figures[name], baseline[name], check_dtype=False, obj=f"{p} {name}")
            assert figures["summary"] == baseline["summary"]
        # Whole years read the coarse rows, quarters the months (products keep no quarters).
        sql = _query(conn, Filters.make(COARSE_PERIODS[0], region=["Europe"]), tz, by="product_id").sql
        assert re.search(rf"{DC.PRODUCTS.coarse} WHERE dim = 'region' AND grain = 'y'", sql)
        sql = _query(conn, Filters.make(COARSE_PERIODS[1], region=["Europe"]), tz, by="product_id").sql
        assert DC.PRODUCTS.coarse not in sql and DC.PRODUCTS.monthly in sql
        # Before the rebuild for layout 4 (an upgraded database) the lines answer.
        with monkeypatch.context() as m:
            m.setattr(K, "fetch_rollup_layout", lambda c, z: 3)
            assert K.fetch_aggregate(conn, Filters.make(Period(FIRST, LAST), channel=["web"]), by="product_id", tz=tz
                                     ).attrs["sources"]["sales"] == "raw"
        # A category or a second dimension beside the product's: the lines answer.
        for dims in ({"category": ["Toys"], "channel": ["web"]}, {"channel": ["web"], "region": ["Europe"]}):
            assert K.fetch_aggregate(conn, Filters.make(Period(FIRST, LAST), **dims), by="product_id", tz=tz,
                                     ).attrs["sources"]["sales"] == "raw"


def test_vendors_by_dimension_subtract_the_other_days_of_a_month(empty_engine, monkeypatch):
    """Most of a month reads the month's row minus its other days: a vendor that sold only on
    those days is not listed (its rows sum to zero), the others equal the order lines. An order
    on those days that no refresh has seen yet does not leak into the period."""
    monkeypatch.setitem(DC.KEEP_DAYS, "vendor", 40)   # day rows from March 1st: February's days are lines
    with empty_engine.begin() as conn:
        _marketplace(conn, 14)
        conn.execute(sa.text("""DELETE FROM mart.order_items WHERE vendor_id = 4 AND order_id IN (
            SELECT order_id FROM mart.orders WHERE ordered_at >= '2026-02-02' AND ordered_at < '2026-03-01')"""))
        conn.execute(sa.text("""INSERT INTO mart.orders VALUES
            (9100, 100, '2026-02-01 12:00+00', 'cancelled', 'web', 'B2C', 'card', 'captured', 'EUR', 0)"""))
        conn.execute(sa.text("INSERT INTO mart.order_items VALUES (9100, 1, 13, 4, 1, 20, 0, 8, 0)"))
        refresh_rollups(conn, timezone="UTC")
    p = Period(date(2026, 2, 3), date(2026, 2, 28))
    with empty_engine.connect() as conn:
        for f, kw in ((Filters.make(p, channel=["web"]), {"by": "vendor_id"}),
                      (Filters.make(p, channel=["web"], vendor_id=[4]), {"grain": "month"})):
            assert DC.VENDORS.monthly in _query(conn, f, "UTC", **kw).sql
            flat = K.fetch_aggregate(conn, f, tz="UTC", **kw)
            assert flat.attrs["sources"]["sales"] == K.VENDOR_DIMS
            pd.testing.assert_frame_equal(flat, K.fetch_aggregate(conn, f, tz="UTC", use_rollups=False, **kw),
                                          check_dtype=False)
            if "by" in kw:
                assert 4 not in set(flat["key"]) and len(flat) == 3
    with empty_engine.begin() as conn:
        conn.execute(sa.text("""INSERT INTO mart.orders VALUES
            (9101, 101, '2026-02-02 10:00+00', 'paid', 'web', 'B2C', 'card', 'captured', 'EUR', 0)"""))
        conn.execute(sa.text("INSERT INTO mart.order_items VALUES (9101, 1, 13, 4, 2, 35, 0, 8, 0)"))
    f = Filters.make(p, channel=["web"])
    with empty_engine.connect() as conn:
        pd.testing.assert_frame_equal(K.fetch_aggregate(conn, f, by="vendor_id", tz="UTC"),
                                      K.fetch_aggregate(conn, f, by="vendor_id", tz="UTC", use_rollups=False),
                                      check_dtype=False)


@pytest.mark.parametrize("dims", [{}, {"region": ["Europe"]}, {"channel": ["mobile"]}, {"vendor_id": [2, 3]}])
def test_the_overviews_top_vendors_before_equal_every_vendors_comparison(empty_engine, monkeypatch, dims):
    """The overview reads the comparison period's figures of its top vendors only; they equal that
    period's figures of every vendor for those vendors and the order lines, also on days before the
    kept day rows (keep=40: February's days are lines)."""
    monkeypatch.setitem(DC.KEEP_DAYS, "vendor", 40)
    raw = _built(empty_engine, 15, "UTC")
    f = Filters.make(Period(date(2026, 3, 10), date(2026, 4, 12)), **dims)   # compared with Feb 4 - Mar 9
    with empty_engine.connect() as conn:
        fig = compute_overview(conn, f, tz="UTC")
        top = [int(k) for k in fig.top_vendors["key"]]
        assert top and set(top) <= set(dims.get("vendor_id", top))
        every = K.fetch_breakdown(conn, f, "vendor_id", ("gmv", "orders", "aov"), period=f.compare, tz="UTC")
    before = fig.vendors_before.set_index("key")
    assert set(before.index) == set(every["key"]) & set(top)
    pd.testing.assert_frame_equal(before, every.set_index("key").loc[list(before.index)], check_dtype=False)
    for key, row in before.iterrows():
        want = expected(raw, f.compare.start, f.compare.end, {**dims, "vendor_id": [int(key)]})
        assert_close({m: float(row[m]) for m in ("gmv", "orders", "aov")},
                     {m: want[m] for m in ("gmv", "orders", "aov")}, f"{dims} {key}")


def snapshot(conn) -> dict[str, list]:
    """Returns every rollup table's rows, sorted, to compare an incremental refresh with a rebuild."""
    out = {}
    for t in ROLLUP_TABLES:
        rows = conn.execute(sa.select(sa.Table(t, sa.MetaData(), schema="mart", autoload_with=conn))).all()
        out[t] = sorted(tuple(r) for r in rows)
    # Cells name their space by id, and keep keys in arrays in no particular order: compare them
    # by name, with each array's (key, count) pairs sorted.
    out["rollup_customer_cells"] = sorted(
        (space, value, grain, bucket, active, natives, new_in, second_in,
         *(tuple(sorted(zip(k or [], n or []))) for k, n in ((pk, pn), (fk, fn), (sk, sn))))
        for space, value, grain, bucket, active, natives, new_in, second_in, pk, pn, fk, fn, sk, sn
        in conn.execute(sa.text("""
            SELECT s.space, s.value, c.grain, c.bucket, c.active, c.natives, c.new_in, c.second_in,
                   c.p_keys, c.p_n, c.f_keys, c.f_n, c.s_keys, c.s_n
            FROM mart.rollup_customer_cells c JOIN mart.rollup_customer_spaces s ON s.id = c.space_id""")))
    return out


LATE_CHANGES = [
    # A customer's first order cancelled long after, an old order moved to another channel and a
    # line changed category, an order deleted, orders placed "now", a second order the same day.
    "UPDATE mart.orders SET status = 'cancelled' WHERE order_id = (SELECT min(order_id) FROM mart.orders WHERE status <> 'cancelled')",
    "UPDATE mart.orders SET channel = 'sales_rep', payment_method = 'invoice' WHERE order_id IN (7, 40, 41)",
    """UPDATE mart.order_items SET product_id = 12, vendor_id = 3
       WHERE (order_id, line_no) = (SELECT order_id, line_no FROM mart.order_items ORDER BY 1, 2 OFFSET 60 LIMIT 1)""",
    "DELETE FROM mart.orders WHERE order_id IN (15, 90)",
    "UPDATE mart.orders SET ordered_at = ordered_at - interval '40 days' WHERE order_id IN (120, 121)",
    """INSERT INTO mart.orders VALUES (9001, 101, '2026-04-12 21:50+00', 'paid', 'web', 'B2C', 'card', 'captured', 'EUR', 0),
                                      (9002, 135, '2026-04-12 22:10+00', 'paid', 'mobile', 'B2B', 'paypal', 'captured', 'EUR', 0),
                                      (9003, 135, '2026-04-12 22:20+00', 'placed', 'web', 'B2B', 'paypal', 'captured', 'EUR', 0)""",
    """INSERT INTO mart.order_items VALUES (9001, 1, 11, 2, 1, 20, 0, 8, 0), (9002, 1, 13, 4, 2, 35, 0, 8, 0),
                                           (9003, 1, 14, 1, 1, 10, 0, 8, 0)""",
]


@pytest.mark.slow
@pytest.mark.parametrize("tz,keep,recent", [("UTC", None, None), ("Europe/Berlin", 40, 400)])
def test_incremental_refresh_equals_full_rebuild(empty_engine, monkeypatch, tz, keep, recent):
    # None: the kept days of each cube (vendors: every day; products: from January 1st, so the
    # two cubes keep different days in one refresh). 40: both from March 1st. Late changes before
    # the kept days recount their months from the order lines. Customer cells: with the recent
    # days by default (35), late changes recount days and new orders move the cells by deltas;
    # with 400 days kept, every change moves them by deltas.
    for cube in DC.CUBES:
        monkeypatch.setitem(DC.KEEP_DAYS, cube.name, keep or DC.KEEP_DAYS[cube.name])
    monkeypatch.setattr(CR, "RECENT_DAYS", recent or CR.RECENT_DAYS)
    with empty_engine.begin() as conn:
        _marketplace(conn, 6)
        refresh_rollups(conn, timezone=tz)
    for change in LATE_CHANGES:
        with empty_engine.begin() as conn:
            conn.execute(sa.text(change))
            r = refresh_rollups(conn, timezone=tz)
            assert r.mode == "days", change
            assert r.customer_cells == ("deltas" if recent or "9001" in change else "recount"), change
            incremental = snapshot(conn)
            refresh_rollups(conn, full=True, timezone=tz)
            full = snapshot(conn)
            for t in full:
                assert incremental[t] == full[t], f"{t} after {change}"
    with empty_engine.connect() as conn:
        _check_totals(empty_engine, conn, tz, 6, n_periods=8)


def test_recent_customer_days_fill_move_and_serve_deltas(empty_engine):
    """An upgraded database (no recent days yet) recounts once and fills them; the triggers
    record the customers of new orders and lines; the kept days move with the latest order, and
    a change before them recounts days again. Each step equals a full rebuild."""
    def recent_days(conn):
        return conn.execute(sa.text(f"SELECT min(day), max(day), count(DISTINCT customer_id) FROM mart.{CR.RECENT}")).one()

    def equals_full(conn, tz="UTC"):
        incremental = snapshot(conn)
        refresh_rollups(conn, full=True, timezone=tz)
        assert snapshot(conn) == incremental

    with empty_engine.begin() as conn:
        _marketplace(conn, 13)
        refresh_rollups(conn, timezone="UTC")
        assert recent_days(conn)[0] == LAST - timedelta(days=CR.RECENT_DAYS - 1)
        conn.execute(sa.text(f"DELETE FROM mart.{CR.RECENT}"))
        conn.execute(sa.text("UPDATE app.rollup_state SET customer_days_from = 'infinity'"))
        conn.execute(sa.text("UPDATE mart.orders SET status = 'paid' WHERE order_id = 3"))
        assert refresh_rollups(conn, timezone="UTC").customer_cells == "recount"
        assert recent_days(conn)[0] == LAST - timedelta(days=CR.RECENT_DAYS - 1)
        equals_full(conn)
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO mart.orders VALUES (9201, 104, :at, 'paid', 'web', 'B2C', 'card', 'captured', 'EUR', 0)"),
                     {"at": datetime(LAST.year, LAST.month, LAST.day, 12, tzinfo=timezone.utc) + timedelta(days=20)})
        assert conn.execute(sa.text("SELECT array_agg(customer_id) FROM app.rollup_dirty_customers")).scalar() == [104]
        conn.execute(sa.text("DELETE FROM app.rollup_dirty_customers"))
        conn.execute(sa.text("INSERT INTO mart.order_items VALUES (9201, 1, 11, 2, 1, 20, 0, 8, 0)"))
        assert conn.execute(sa.text("SELECT array_agg(customer_id) FROM app.rollup_dirty_customers")).scalar() == [104]
        r = refresh_rollups(conn, timezone="UTC")
        assert (r.customer_cells, r.customers) == ("deltas", 1)
        first, last, _ = recent_days(conn)
        assert last == LAST + timedelta(days=20) and first >= last - timedelta(days=CR.RECENT_DAYS - 1)
        assert conn.execute(sa.text("SELECT customer_days_from FROM app.rollup_state")).scalar() == \
            last - timedelta(days=CR.RECENT_DAYS - 1)
        equals_full(conn)
    with empty_engine.begin() as conn:
        conn.execute(sa.text("UPDATE mart.order_items SET quantity = 3 WHERE order_id = 9201"))
        conn.execute(sa.text("UPDATE mart.orders SET channel = 'mobile' WHERE order_id = 5"))
        assert refresh_rollups(conn, timezone="UTC").customer_cells == "recount"
        equals_full(conn)


@pytest.mark.slow
def test_fallback_paths_give_the_flat_figures(empty_engine, monkeypatch):
    """The same figures with the rollups of layouts 0 and 1 (before migrations 0014's and 0015's
    rebuilds) and from raw."""
    tz = "Europe/Berlin"
    with empty_engine.begin() as conn:
        _marketplace(conn, 7)
        refresh_rollups(conn, timezone=tz)
    rng = random.Random(7)
    with empty_engine.connect() as conn:
        for p in _periods(rng, 6):
            for dims in _filters(rng):
                f = Filters.make(p, **dims)
                flat = K.fetch_aggregate(conn, f, grain="week", tz=tz)
                others = [K.fetch_aggregate(conn, f, grain="week", tz=tz, use_rollups=False)]
                for layout in (0, 1):
                    with monkeypatch.context() as m:
                        m.setattr(K, "fetch_rollup_layout", lambda c, z, n=layout: n)
                        others.append(K.fetch_aggregate(conn, f, grain="week", tz=tz))
                for other in others:
                    assert list(flat["key"]) == list(other["key"])
                    for i in range(len(flat)):
                        assert_close(_row(flat, i), _row(other, i), f"{p} {dims}")


def test_upgraded_database_reads_the_old_rollups_until_rebuilt(empty_engine):
    """A database migrated to 0014 keeps serving pages from the rollups it had (layout 0); the
    next refresh rebuilds everything and switches to the new tables."""
    with empty_engine.begin() as conn:
        _marketplace(conn, 8)
        refresh_rollups(conn, timezone="UTC")
        conn.execute(sa.text("UPDATE app.rollup_state SET layout = 0"))
        assert _source(conn, {}, "UTC") == "rollup_customer_daily"
        assert refresh_rollups(conn, timezone="UTC").mode == "full"
        assert _source(conn, {}, "UTC") == "rollup_customer_cells"


def test_marketing_reads_acquisition_rollup(empty_engine):
    tz = "Europe/Berlin"
    with empty_engine.begin() as conn:
        _marketplace(conn, 9)
        conn.execute(sa.text("UPDATE mart.customers SET acquisition_channel = CASE WHEN customer_id % 3 = 0 "
                             "THEN 'paid_search' ELSE 'organic' END"))
        conn.execute(sa.text("INSERT INTO mart.marketing_spend VALUES ('2026-02-01', 'paid_search', 'Spring', 500)"))
        refresh_rollups(conn, full=True, timezone=tz)
    with empty_engine.connect() as conn:
        for i, p in enumerate((Period(date(2026, 1, 1), date(2026, 2, 28)), Period(date(2026, 3, 28), date(2026, 3, 30)))):
            f = Filters.make(p)
            flat = fetch_marketing(conn, f, tz=tz).by_channel
            raw = fetch_marketing(conn, f, tz=tz, use_rollups=False).by_channel
            assert i or (len(flat) == 2 and flat["gmv"].sum() > 0)
            pd.testing.assert_frame_equal(flat, raw, check_dtype=False)


def test_a_refresh_moves_only_the_versions_of_days_it_changed(empty_engine):
    """Caches key figures on fetch_period_version: today's orders move today's (and its stock windows'),
    a late change the days whose figures it moves; a full rebuild moves every day."""
    with empty_engine.begin() as conn:
        _marketplace(conn, 12)
        v0 = refresh_rollups(conn, timezone="UTC").version
    earlier = (FIRST, LAST - timedelta(days=1))
    with empty_engine.begin() as conn:
        conn.execute(sa.text(LATE_CHANGES[5]))
        conn.execute(sa.text(LATE_CHANGES[6]))
        v1 = refresh_rollups(conn, timezone="UTC").version
        assert v1 > v0
        assert fetch_period_version(conn, *earlier) == v0, "earlier days' figures stay cached"
        assert fetch_period_version(conn, LAST, LAST) == v1
        # A late cancellation: the order's day moves, and so does the customer's next order day.
        oid, day, cust = conn.execute(sa.text("""
            SELECT order_id, ordered_at::date, customer_id FROM mart.orders
            WHERE status <> 'cancelled' AND ordered_at < '2026-01-15' ORDER BY order_id LIMIT 1""")).one()
        nxt = conn.execute(sa.text("""SELECT min(ordered_at::date) FROM mart.orders
                                      WHERE customer_id = :c AND ordered_at::date > :d AND status <> 'cancelled'"""),
                           {"c": cust, "d": day}).scalar()
        conn.execute(sa.text("UPDATE mart.orders SET status = 'cancelled' WHERE order_id = :o"), {"o": oid})
        v2 = refresh_rollups(conn, timezone="UTC").version
        assert fetch_period_version(conn, day, day) == v2
        if nxt:
            assert fetch_period_version(conn, nxt, nxt) == v2
        untouched = conn.execute(sa.text("""
            SELECT min(d)::date FROM generate_series(CAST(:a AS date), CAST(:b AS date), interval '1 day') d
            WHERE d::date NOT IN (SELECT day FROM app.rollup_day_versions)"""), {"a": FIRST, "b": LAST}).scalar()
        assert fetch_period_version(conn, untouched, untouched) == v0
        v3 = refresh_rollups(conn, full=True, timezone="UTC").version
        assert fetch_period_version(conn, *earlier) == v3


def _one_new_line(engine, seed: int, busiest: str, rows) -> tuple[dict, dict]:
    """Adds one line of product 11 (vendor 2's) at noon of the busiest day (the query busiest
    names it) of a random marketplace and refreshes; checks that the refresh equals a full rebuild
    and returns rows(conn, day) before and after it."""
    with engine.begin() as conn:
        _marketplace(conn, seed)
        refresh_rollups(conn, timezone="UTC")
        day = conn.execute(sa.text(busiest)).scalar()
        before = rows(conn, day)
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
        conn.execute(sa.text("INSERT INTO mart.orders VALUES (9301, 105, :at, 'paid', 'web', 'B2C', 'card', "
                             "'captured', 'EUR', 0)"), {"at": noon})
        conn.execute(sa.text("INSERT INTO mart.order_items VALUES (9301, 1, 11, 2, 1, 20, 0, 8, 0)"))
    with engine.begin() as conn:
        refresh_rollups(conn, timezone="UTC")
        after = rows(conn, day)
        incremental = snapshot(conn)
        refresh_rollups(conn, full=True, timezone="UTC")
        assert snapshot(conn) == incremental
    return before, after


def test_a_refresh_rewrites_only_the_cube_rows_that_changed(empty_engine):
    """One new line of one product on a busy kept day: the cubes' rows of that day for other
    products and vendors are left as they were (same row version), the product's and its vendor's
    rows move, and everything equals a full rebuild."""
    def versions(conn, day):
        return {c.name: dict(conn.execute(sa.text(f"""
            SELECT ({c.key}, dim, value, status)::text, xmin::text FROM mart.{c.daily} WHERE day = :d"""),
            {"d": day}).all()) for c in DC.CUBES}

    before, after = _one_new_line(empty_engine, 17, f"""SELECT day FROM mart.{DC.PRODUCTS.daily} GROUP BY day
        ORDER BY count(DISTINCT product_id) DESC, day DESC LIMIT 1""", versions)
    for cube, key in ((DC.PRODUCTS, 11), (DC.VENDORS, 2)):   # product 11 is vendor 2's
        old, new = before[cube.name], after[cube.name]
        others = {k for k in old if not k.startswith(f"({key},")}
        moved = {k for k in new if old.get(k) != new[k]}
        assert len(others) >= 10, (cube.name, len(others))
        assert moved and all(k.startswith(f"({key},") for k in moved), (cube.name, moved)
        assert all(new.get(k) == old[k] for k in others), cube.name


def test_a_refresh_rewrites_only_the_day_rollup_rows_that_changed(empty_engine):
    """One new line on a busy day: every day rollup's rows of that day whose figures stayed the
    same keep their row version (are not deleted and written again), and everything equals a full
    rebuild."""
    def rows(conn, day):
        return {t: dict(conn.execute(sa.text(f"SELECT (r.*)::text, xmin::text FROM mart.{t} r WHERE day = :d"),
                                     {"d": day}).all()) for t in DAY_TABLES}

    before, after = _one_new_line(empty_engine, 23, """SELECT day FROM mart.rollup_customer_daily GROUP BY day
        ORDER BY count(*) DESC, day DESC LIMIT 1""", rows)
    kept = 0
    for t in DAY_TABLES:
        same = before[t].keys() & after[t].keys()
        assert after[t] != before[t], t   # the new line moved a row of every table
        assert all(after[t][r] == before[t][r] for r in same), t
        kept += len(same)
    assert kept >= 20, kept
