"""Rollups on hand-made edge cases: time-zone day boundaries, cancellations, refunds, orders without
lines, and incremental refresh after inserts, updates and deletes equals a full rebuild."""
from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from analytics.filters import Filters, Period
from analytics.kpis import fetch_aggregate, fetch_targets
from data.calendar import bucket_bounds, calendar_pieces
from data.cli import main
from data.rollups import FULL_STEPS, refresh_rollups
from tests.raw_metrics import assert_close, expected, load_raw, prepare
from tests.test_scale_rollups import snapshot as _snapshot

SETUP = """
INSERT INTO mart.vendors VALUES
  (1, 'Alpha', 'Books', 'Europe', 'DE', '2024-01-01', 'active', 0.1000),
  (2, 'Beta', 'Toys', 'Europe', 'FR', '2024-01-01', 'active', 0.1500);
INSERT INTO mart.products VALUES
  (10, 1, 'A-10', 'Novel', 'Books', 'Fiction', 20.00, 8.00, '2024-01-01'),
  (20, 2, 'B-20', 'Kite', 'Toys', 'Outdoor', 50.00, 30.00, '2024-01-01');
INSERT INTO mart.customers VALUES
  (100, 'Ann', 'DE', 'Europe', 'B2C', 'organic', '2025-01-01'),
  (200, 'Bob', 'US', 'North America', 'B2B', 'referral', '2025-01-01'),
  (300, 'Cy', 'FR', 'Europe', 'B2C', 'social', '2025-01-01');
-- 23:30 UTC on 1 March is already 2 March in Berlin (UTC+1).
INSERT INTO mart.orders VALUES
  (1, 100, '2026-02-10 12:00+00', 'delivered', 'web', 'B2C', 'card', 'captured', 'EUR', 4.99),
  (2, 100, '2026-03-01 23:30+00', 'delivered', 'mobile', 'B2C', 'card', 'partially_refunded', 'EUR', 0),
  (3, 200, '2026-03-02 09:00+00', 'cancelled', 'sales_rep', 'B2B', 'invoice', 'failed', 'EUR', 0),
  (4, 200, '2026-03-02 10:00+00', 'returned', 'sales_rep', 'B2B', 'invoice', 'refunded', 'EUR', 0),
  (5, 200, '2026-03-03 08:00+00', 'placed', 'marketplace_api', 'B2B2C', 'invoice', 'captured', 'EUR', 0),
  -- Cy's first order: 1 March in UTC and New York, 2 March in Berlin.
  (7, 300, '2026-03-01 23:45+00', 'delivered', 'web', 'B2C', 'card', 'captured', 'EUR', 0);
INSERT INTO mart.order_items VALUES
  (1, 1, 10, 1, 2, 20.00, 0.00, 8.00, 0.00),
  (2, 1, 10, 1, 1, 20.00, 2.00, 8.00, 5.00),
  (2, 2, 20, 2, 1, 50.00, 0.00, 30.00, 0.00),
  (3, 1, 20, 2, 10, 50.00, 0.00, 30.00, 0.00),
  (4, 1, 20, 2, 3, 45.00, 5.00, 30.00, 130.00),
  (7, 1, 10, 1, 1, 20.00, 0.00, 8.00, 0.00);
INSERT INTO mart.traffic_daily VALUES ('2026-03-01', 'web', 100, 50, 10, 5), ('2026-03-02', 'mobile', 80, 40, 8, 4);
"""
PERIODS = [Period(date(2026, 3, 1), date(2026, 3, 1)), Period(date(2026, 3, 2), date(2026, 3, 2)),
           Period(date(2026, 3, 1), date(2026, 3, 3)), Period(date(2026, 2, 1), date(2026, 3, 31))]
DIMS = [{}, {"channel": ["mobile"]}, {"vendor_id": [2]}, {"category": ["Books", "Toys"]}, {"segment": ["B2B"]},
        {"payment_method": ["invoice"]}, {"payment_method": ["card"], "channel": ["web"]}]


def _check_all(engine, conn, tz: str) -> None:
    raw = prepare(load_raw(engine), tz)
    for p in PERIODS:
        for d in DIMS:
            assert_close(_totals(conn, p, d, tz), expected(raw, p.start, p.end, d), f"{tz} {p} {d}")


def _totals(conn, p, d, tz):
    row = fetch_aggregate(conn, Filters.make(p, **d), tz=tz).iloc[0]
    return {k: (None if row[k] != row[k] else float(row[k])) for k in row.index if k != "key"}


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York"])
def test_edge_cases_equal_raw(empty_engine, tz):
    with empty_engine.begin() as conn:
        conn.execute(sa.text(SETUP))
        r = refresh_rollups(conn, timezone=tz)
        assert r.mode == "full"
    with empty_engine.connect() as conn:
        _check_all(empty_engine, conn, tz)


def test_berlin_moves_the_late_order_to_the_next_day(empty_engine):
    with empty_engine.begin() as conn:
        conn.execute(sa.text(SETUP))
        refresh_rollups(conn, timezone="Europe/Berlin")
        day = Period(date(2026, 3, 1), date(2026, 3, 1))
        assert fetch_aggregate(conn, Filters.make(day), tz="Europe/Berlin").iloc[0]["orders"] == 0
        refresh_rollups(conn, timezone="UTC")
        assert fetch_aggregate(conn, Filters.make(day), tz="UTC").iloc[0]["orders"] == 2


def test_incremental_refresh_equals_full_rebuild(empty_engine):
    with empty_engine.begin() as conn:
        conn.execute(sa.text(SETUP))
        refresh_rollups(conn, timezone="Europe/Berlin")
    with empty_engine.begin() as conn:
        # A late cancellation, a new line on an old order, a new order, and a deleted order.
        conn.execute(sa.text("UPDATE mart.orders SET status = 'cancelled' WHERE order_id = 1"))
        conn.execute(sa.text("INSERT INTO mart.order_items VALUES (5, 1, 10, 1, 4, 19.00, 0, 8.00, 0)"))
        conn.execute(sa.text(
            "INSERT INTO mart.orders VALUES (6, 100, '2026-03-03 23:30+00', 'paid', 'web', 'B2C', 'card', 'captured', 'EUR', 0)"))
        conn.execute(sa.text("INSERT INTO mart.order_items VALUES (6, 1, 20, 2, 1, 50.00, 0, 30.00, 0)"))
        conn.execute(sa.text("DELETE FROM mart.orders WHERE order_id = 4"))
        r = refresh_rollups(conn, timezone="Europe/Berlin")
        assert r.mode == "days" and r.days >= 3
        incremental = _snapshot(conn)
        refresh_rollups(conn, full=True, timezone="Europe/Berlin")
        assert _snapshot(conn) == incremental
    with empty_engine.connect() as conn:
        _check_all(empty_engine, conn, "Europe/Berlin")
        # Customer 100's first counted order moved from 10 Feb to 2 March (Berlin).
        first = conn.execute(sa.text("SELECT first_day FROM mart.rollup_customers WHERE customer_id = 100")).scalar()
        assert first == date(2026, 3, 2)


def test_dimension_change_forces_full_rebuild(empty_engine):
    with empty_engine.begin() as conn:
        conn.execute(sa.text(SETUP))
        refresh_rollups(conn, timezone="UTC")
        conn.execute(sa.text("UPDATE mart.vendors SET commission_rate = 0.2 WHERE vendor_id = 1"))
        assert refresh_rollups(conn, timezone="UTC").mode == "full"
        assert refresh_rollups(conn, timezone="UTC").mode == "none"
    with empty_engine.connect() as conn:
        _check_all(empty_engine, conn, "UTC")


def test_a_full_rebuild_reports_its_steps(empty_engine, monkeypatch, capsys):
    """The seed and `python -m data refresh --full` show which step a rebuild of minutes is in;
    an incremental refresh (seconds) reports none."""
    steps = []
    with empty_engine.begin() as conn:
        conn.execute(sa.text(SETUP))
        refresh_rollups(conn, timezone="UTC", progress=steps.append)
        assert steps == list(FULL_STEPS)
        conn.execute(sa.text("UPDATE mart.orders SET status = 'cancelled' WHERE order_id = 1"))
        assert refresh_rollups(conn, timezone="UTC", progress=steps.append).mode == "days"
        assert steps == list(FULL_STEPS)
    monkeypatch.setenv("DATABASE_URL", empty_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("APP_TIMEZONE", "UTC")
    assert main(["refresh", "--full"]) == 0
    out = capsys.readouterr()
    assert "rollups: full" in out.out
    assert [line for line in out.err.splitlines() if line.startswith("rollups: ")] == \
        [f"rollups: {step} …" for step in FULL_STEPS]


def test_stale_time_zone_falls_back_to_raw(empty_engine):
    with empty_engine.begin() as conn:
        conn.execute(sa.text(SETUP))
        refresh_rollups(conn, timezone="UTC")
    with empty_engine.connect() as conn:
        df = fetch_aggregate(conn, Filters.make(PERIODS[2]), tz="Europe/Berlin")
        assert df.attrs["sources"]["sales"] == "raw"
        _check_all(empty_engine, conn, "Europe/Berlin")


def test_truncate_asks_for_a_full_rebuild(empty_engine):
    with empty_engine.begin() as conn:
        conn.execute(sa.text(SETUP))
        refresh_rollups(conn, timezone="UTC")
        conn.execute(sa.text("TRUNCATE mart.order_items"))
        assert refresh_rollups(conn, timezone="UTC").mode == "full"
        assert conn.execute(sa.text("SELECT sum(gmv) FROM mart.rollup_sales_daily")).scalar() == 0


def test_overlapping_targets_give_no_target(empty_engine):
    month = Period(date(2026, 1, 1), date(2026, 1, 31))
    with empty_engine.begin() as conn:
        conn.execute(sa.text("""INSERT INTO mart.kpi_targets VALUES
            ('gmv', '2026-01-01', '2026-01-31', 310), ('orders', '2026-01-01', '2026-01-15', 10),
            ('orders', '2026-01-01', '2026-01-16', 10), ('aov', '2026-01-01', '2026-01-31', 50)"""))
        got = fetch_targets(conn, month, ("gmv", "orders", "aov"))
    assert got == {"gmv": 310, "aov": 50}


def test_calendar_pieces_cover_every_day_once():
    rng = random.Random(7)
    cases = [(date(2026, 10, 24), date(2026, 11, 22)), (date(2026, 1, 1), date(2026, 12, 31)),
             (date(2026, 3, 5), date(2026, 3, 5)), (date(2024, 2, 26), date(2024, 3, 3))]
    cases += [(d, d + timedelta(days=rng.randint(0, 500)))
              for d in (date(2024, 1, 1) + timedelta(days=rng.randint(0, 900)) for _ in range(500))]
    for start, end in cases:
        days = []
        for bucket, first, last in calendar_pieces(start, end):
            if bucket == "day":
                days += [first + timedelta(days=n) for n in range((last - first).days + 1)]
                continue
            d = first
            while d <= last:
                lo, hi = bucket_bounds(bucket, d)
                assert lo == d, "a coarse piece starts on its bucket's first day"
                days += [lo + timedelta(days=n) for n in range((hi - lo).days + 1)]
                d = hi + timedelta(days=1)
        assert sorted(days) == [start + timedelta(days=n) for n in range((end - start).days + 1)], (start, end)
    assert calendar_pieces(date(2026, 1, 1), date(2026, 11, 22)) == [
        ("month", date(2026, 1, 1), date(2026, 10, 1)), ("week", date(2026, 11, 2), date(2026, 11, 16)),
        ("day", date(2026, 11, 1), date(2026, 11, 1))]


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin"])
def test_products_over_weeks_and_months_equal_raw(empty_engine, tz):
    """Per-product figures read from the weekly and monthly rollups (and edge days) equal raw."""
    with empty_engine.begin() as conn:
        conn.execute(sa.text(SETUP))
        refresh_rollups(conn, timezone=tz)
    with empty_engine.connect() as conn:
        for p in PERIODS + [Period(date(2026, 2, 23), date(2026, 3, 8))]:
            for d in ({}, {"category": ["Books"]}, {"channel": ["web"]}):
                f = Filters.make(p, **d)
                got = fetch_aggregate(conn, f, by="product_id", tz=tz)
                want = fetch_aggregate(conn, f, by="product_id", tz=tz, use_rollups=False)
                if not d.get("channel"):
                    assert got.attrs["sources"]["sales"] == "rollup_product_daily"
                cols = [c for c in got.columns if c != "key" and got[c].notna().any()]
                assert list(got["key"]) == list(want["key"]), (p, d)
                for c in cols:
                    assert got[c].tolist() == pytest.approx(want[c].tolist(), rel=1e-9, nan_ok=True), (p, d, c)


def test_stock_cover_follows_orders_and_snapshots(empty_engine):
    """units_window per snapshot equals the units counted from raw lines, after a full rebuild and
    after incremental refreshes for new orders and new, changed and deleted snapshots."""
    def want(conn) -> dict:
        return {(d, p): (oh, int(u)) for d, p, oh, u in conn.execute(sa.text("""
            SELECT s.snapshot_date, s.product_id, s.on_hand,
                   COALESCE((SELECT SUM(i.quantity) FROM mart.order_items i JOIN mart.orders o USING (order_id)
                             WHERE i.product_id = s.product_id AND o.status <> 'cancelled'
                               AND (o.ordered_at AT TIME ZONE 'Europe/Berlin')::date
                                   BETWEEN s.snapshot_date - 27 AND s.snapshot_date), 0)
            FROM mart.inventory_snapshots s"""))}

    def got(conn) -> dict:
        return {(d, p): (oh, u) for d, p, oh, u in conn.execute(sa.text(
            "SELECT snapshot_date, product_id, on_hand, units_window FROM mart.rollup_stock_cover"))}

    with empty_engine.begin() as conn:
        conn.execute(sa.text(SETUP))
        conn.execute(sa.text("""INSERT INTO mart.inventory_snapshots VALUES
            ('2026-03-02', 10, 7), ('2026-03-02', 20, 0), ('2026-03-29', 20, 3), ('2026-04-10', 10, 1)"""))
        refresh_rollups(conn, timezone="Europe/Berlin")
        assert got(conn) == want(conn)
        before = got(conn)[date(2026, 3, 29), 20][1]
        assert before > 0
    with empty_engine.begin() as conn:
        # A new order inside two windows, a new snapshot, a changed one and a deleted one.
        conn.execute(sa.text(
            "INSERT INTO mart.orders VALUES (8, 300, '2026-03-20 10:00+00', 'paid', 'web', 'B2C', 'card', 'captured', 'EUR', 0)"))
        conn.execute(sa.text("INSERT INTO mart.order_items VALUES (8, 1, 20, 2, 6, 50.00, 0, 30.00, 0)"))
        conn.execute(sa.text("INSERT INTO mart.inventory_snapshots VALUES ('2026-03-25', 20, 9)"))
        conn.execute(sa.text("UPDATE mart.inventory_snapshots SET on_hand = 2 WHERE snapshot_date = '2026-03-02' AND product_id = 10"))
        conn.execute(sa.text("DELETE FROM mart.inventory_snapshots WHERE snapshot_date = '2026-04-10'"))
        assert refresh_rollups(conn, timezone="Europe/Berlin").mode == "days"
        incremental = got(conn)
        assert incremental == want(conn)
        assert incremental[date(2026, 3, 29), 20] == (3, before + 6), "the new order's 6 units count"
        assert incremental[date(2026, 3, 25), 20] == (9, before + 6)
        assert (date(2026, 4, 10), 10) not in incremental and incremental[date(2026, 3, 2), 10][0] == 2
        refresh_rollups(conn, full=True, timezone="Europe/Berlin")
        assert got(conn) == incremental
