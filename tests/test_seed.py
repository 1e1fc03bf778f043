"""The demo-data generator: exact size, determinism, guards, and the realism the pages rely on.

Most checks read the session's seeded database (`engine`: SEED_LINES lines, seed SEED, ending
SEED_END, APP_TIMEZONE UTC); the ones that write use fresh databases.
"""
from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from data.cli import main
from data.rollups import FULL_STEPS
from data.seed import CONTRACT_TABLES, SeedError, SeedSummary, seed
from tests.conftest import SEED_END, SEED_LINES, create_database

COUNTED = "o.status <> 'cancelled'"
VALUE = "(i.quantity * i.unit_price - i.discount)"


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def checksums(engine) -> dict[str, str]:
    """Returns {table: md5 of all its rows in a fixed order} for every contract table."""
    return {t: scalar(engine, f"SELECT md5(COALESCE(string_agg(x::text, '|' ORDER BY x::text), '')) FROM mart.{t} x")
            for t in CONTRACT_TABLES}


@pytest.fixture
def fresh_db(admin_url, empty_template):
    """Returns a factory of fresh migrated databases (engines), all dropped afterwards."""
    made = []

    def make():
        name = f"mbi_seed_{uuid.uuid4().hex[:8]}"
        eng = sa.create_engine(create_database(admin_url, name, template=empty_template),
                               poolclass=sa.pool.NullPool, connect_args={"options": "-c timezone=UTC"})
        made.append((name, eng))
        return eng

    yield make
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        for name, eng in made:
            eng.dispose()
            # A database name is an identifier: quoted by the dialect, it cannot take a bound parameter.
            conn.execute(sa.text("DROP DATABASE IF EXISTS " + conn.dialect.identifier_preparer.quote(name)
                                 + " WITH (FORCE)"))
    admin.dispose()


# ------------------------------------------------------------------------------------------
# Size, shape and integrity
# ------------------------------------------------------------------------------------------

def test_exact_number_of_order_lines_and_every_table_filled(engine):
    assert scalar(engine, "SELECT count(*) FROM mart.order_items") == SEED_LINES
    for t in CONTRACT_TABLES:
        assert scalar(engine, f"SELECT count(*) FROM mart.{t}") > 0, t


def test_orders_are_numbered_in_time_and_lines_without_gaps(engine):
    assert scalar(engine, """
        SELECT count(*) FROM (SELECT order_id, ordered_at, lag(ordered_at) OVER (ORDER BY order_id) AS prev
                              FROM mart.orders) x WHERE ordered_at < prev""") == 0
    assert scalar(engine, "SELECT max(order_id) = count(*) FROM mart.orders")
    assert scalar(engine, """
        SELECT count(*) FROM (SELECT order_id, max(line_no) AS m, count(*) AS n FROM mart.order_items
                              GROUP BY order_id) x WHERE m <> n""") == 0
    assert scalar(engine, """SELECT count(*) FROM mart.orders o
                             WHERE NOT EXISTS (SELECT 1 FROM mart.order_items i WHERE i.order_id = o.order_id)""") == 0


def test_data_covers_three_years_up_to_end(engine):
    first, last = rows(engine, "SELECT min(ordered_at)::date, max(ordered_at)::date FROM mart.orders")[0]
    assert last == SEED_END
    assert first in (SEED_END.replace(year=SEED_END.year - 3), SEED_END.replace(year=SEED_END.year - 3) + timedelta(1))
    assert scalar(engine, "SELECT count(DISTINCT day) FROM mart.traffic_daily") == (last - first).days + 1
    assert scalar(engine, "SELECT count(DISTINCT currency) FROM mart.orders") == 1
    assert scalar(engine, "SELECT min(currency) FROM mart.orders") == "EUR"


def test_bulk_load_puts_back_every_constraint_index_and_trigger(engine, admin_url, empty_template):
    """The seeder drops foreign keys and secondary indexes while loading: all must be back."""
    catalog = """
        SELECT 'con ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace = 'mart'::regnamespace
        UNION ALL SELECT 'idx ' || pg_get_indexdef(indexrelid) FROM pg_index
        WHERE indrelid::regclass::text LIKE 'mart.%'
        UNION ALL SELECT 'trg ' || tgname || ' ' || tgenabled::text FROM pg_trigger
        WHERE tgrelid::regclass::text LIKE 'mart.%' AND NOT tgisinternal
        ORDER BY 1"""
    template = sa.create_engine(make_url(admin_url).set(database=empty_template), poolclass=sa.pool.NullPool)
    try:
        expected = [r[0] for r in rows(template, catalog)]
    finally:
        template.dispose()
    assert [r[0] for r in rows(engine, catalog)] == expected
    assert any(e.startswith("con order_items_order_id_fkey") for e in expected)


def test_prices_costs_and_product_dates(engine):
    assert scalar(engine, "SELECT count(*) FROM mart.products WHERE unit_cost >= list_price") == 0
    assert scalar(engine, """SELECT count(*) FROM mart.order_items i JOIN mart.products p USING (product_id)
                             WHERE i.unit_cost <> p.unit_cost OR i.vendor_id <> p.vendor_id""") == 0
    lo, hi = rows(engine, """SELECT min(i.unit_price / p.list_price), max(i.unit_price / p.list_price)
                             FROM mart.order_items i JOIN mart.products p USING (product_id)""")[0]
    assert 0.85 <= lo and hi <= 1.15
    assert scalar(engine, "SELECT count(*) FROM mart.order_items WHERE discount > quantity * unit_price") == 0
    assert 0.05 <= scalar(engine, "SELECT avg((discount > 0)::int) FROM mart.order_items") <= 0.35
    assert scalar(engine, """SELECT count(*) FROM mart.order_items i JOIN mart.orders o USING (order_id)
                             JOIN mart.products p USING (product_id)
                             WHERE (o.ordered_at AT TIME ZONE 'UTC')::date < p.created_on""") == 0
    assert scalar(engine, "SELECT count(DISTINCT category) FROM mart.products") >= 10
    assert scalar(engine, "SELECT min(n) FROM (SELECT count(DISTINCT subcategory) n FROM mart.products GROUP BY category) x") >= 2


# ------------------------------------------------------------------------------------------
# Realism bounds (parametrized: name, SQL giving one number, low, high)
# ------------------------------------------------------------------------------------------

BOUNDS = [
    ("cancellation share of orders",
     "SELECT avg((status = 'cancelled')::int) FROM mart.orders", 0.02, 0.04),
    ("share of counted lines with a refund",
     f"SELECT avg((i.refunded_amount > 0)::int) FROM mart.order_items i JOIN mart.orders o USING (order_id) WHERE {COUNTED}",
     0.03, 0.07),
    ("refund rate (refunded / GMV)",
     f"SELECT sum(i.refunded_amount) / sum({VALUE}) FROM mart.order_items i JOIN mart.orders o USING (order_id) WHERE {COUNTED}",
     0.01, 0.08),
    ("B2B share of customers",
     "SELECT avg((segment = 'B2B')::int) FROM mart.customers", 0.06, 0.12),
    ("customers with two or more counted orders, of buyers",
     f"SELECT avg((n >= 2)::int) FROM (SELECT customer_id, count(*) n FROM mart.orders o WHERE {COUNTED} GROUP BY 1) x",
     0.25, 0.75),
    ("B2B orders paid by invoice",
     "SELECT avg((payment_method = 'invoice')::int) FROM mart.orders WHERE business_model = 'B2B'", 0.75, 1.0),
    ("B2B orders via sales_rep or marketplace_api",
     "SELECT avg((channel IN ('sales_rep', 'marketplace_api'))::int) FROM mart.orders WHERE business_model = 'B2B'", 0.6, 0.95),
    ("B2B2C orders via marketplace_api",
     "SELECT avg((channel = 'marketplace_api')::int) FROM mart.orders WHERE business_model = 'B2B2C'", 1.0, 1.0),
    ("B2C orders on web or mobile",
     "SELECT avg((channel IN ('web', 'mobile'))::int) FROM mart.orders WHERE business_model = 'B2C'", 1.0, 1.0),
    ("gross margin",
     f"SELECT 1 - sum(i.quantity * i.unit_cost) / sum({VALUE} - i.refunded_amount) FROM mart.order_items i JOIN mart.orders o USING (order_id) WHERE {COUNTED}",
     0.15, 0.6),
    ("B2B AOV / B2C AOV",
     f"""SELECT (sum(v) FILTER (WHERE bm = 'B2B') / count(*) FILTER (WHERE bm = 'B2B'))
              / (sum(v) FILTER (WHERE bm = 'B2C') / count(*) FILTER (WHERE bm = 'B2C'))
         FROM (SELECT o.order_id, o.business_model bm, sum({VALUE}) v FROM mart.orders o
               JOIN mart.order_items i USING (order_id) WHERE {COUNTED} GROUP BY 1, 2) x""", 2.0, 12.0),
    ("B2B lines per order / B2C lines per order",
     """SELECT avg(n) FILTER (WHERE bm = 'B2B') / avg(n) FILTER (WHERE bm = 'B2C')
        FROM (SELECT o.order_id, o.business_model bm, count(*) n FROM mart.orders o
              JOIN mart.order_items i USING (order_id) GROUP BY 1, 2) x""", 1.5, 4.0),
    ("orders in the last 365 days / the 365 before (growth)",
     """SELECT count(*) FILTER (WHERE ordered_at >= :end - interval '365 days')::numeric
             / count(*) FILTER (WHERE ordered_at < :end - interval '365 days' AND ordered_at >= :end - interval '730 days')
        FROM mart.orders""", 1.15, 1.5),
    ("December orders per day / February orders per day",
     """SELECT (count(*) FILTER (WHERE extract(month FROM ordered_at) = 12) / 31.0)
             / (count(*) FILTER (WHERE extract(month FROM ordered_at) = 2) / 28.25) FROM mart.orders""", 1.2, 2.0),
    ("Black Friday orders / the average day of that November",
     """SELECT max(n) FILTER (WHERE d = DATE '2025-11-28') / avg(n)
        FROM (SELECT ordered_at::date d, count(*) n FROM mart.orders
              WHERE ordered_at >= '2025-11-01' AND ordered_at < '2025-12-01' GROUP BY 1) x""", 1.8, 4.0),
    ("B2C orders per weekend day / per weekday",
     """SELECT (count(*) FILTER (WHERE extract(isodow FROM ordered_at) >= 6) / 2.0)
             / (count(*) FILTER (WHERE extract(isodow FROM ordered_at) < 6) / 5.0)
        FROM mart.orders WHERE business_model = 'B2C'""", 1.05, 1.5),
    ("B2B orders per weekend day / per weekday",
     """SELECT (count(*) FILTER (WHERE extract(isodow FROM ordered_at) >= 6) / 2.0)
             / (count(*) FILTER (WHERE extract(isodow FROM ordered_at) < 6) / 5.0)
        FROM mart.orders WHERE business_model = 'B2B'""", 0.0, 0.25),
    ("B2B orders in office hours (8-18 h)",
     "SELECT avg((extract(hour FROM ordered_at) BETWEEN 8 AND 17)::int) FROM mart.orders WHERE business_model = 'B2B'",
     0.8, 1.0),
    ("B2C orders 19-22 h / 2-5 h",
     """SELECT count(*) FILTER (WHERE extract(hour FROM ordered_at) BETWEEN 19 AND 22)::numeric
             / count(*) FILTER (WHERE extract(hour FROM ordered_at) BETWEEN 2 AND 5)
        FROM mart.orders WHERE business_model = 'B2C'""", 5.0, 100.0),
    ("top 10 % of vendors' share of GMV",
     f"""SELECT sum(g) FILTER (WHERE rk <= (SELECT count(*) FROM mart.vendors) / 10) / sum(g)
         FROM (SELECT i.vendor_id, sum({VALUE}) g, row_number() OVER (ORDER BY sum({VALUE}) DESC) rk
               FROM mart.order_items i JOIN mart.orders o USING (order_id) WHERE {COUNTED} GROUP BY 1) x""",
     0.45, 0.85),
    ("vendor commission rate, lowest",
     "SELECT min(commission_rate) FROM mart.vendors", 0.05, 0.20),
    ("vendor commission rate, highest",
     "SELECT max(commission_rate) FROM mart.vendors", 0.05, 0.20),
    ("share of paused or closed vendors",
     "SELECT avg((status <> 'active')::int) FROM mart.vendors", 0.03, 0.25),
]


@pytest.mark.parametrize("name, sql, lo, hi", BOUNDS, ids=[b[0] for b in BOUNDS])
def test_realism_bound(engine, name, sql, lo, hi):
    value = scalar(engine, sql, end=SEED_END + timedelta(days=1))
    assert value is not None and lo <= float(value) <= hi, f"{name}: {value} not in [{lo}, {hi}]"


# ------------------------------------------------------------------------------------------
# Consistency between tables
# ------------------------------------------------------------------------------------------

def test_status_and_payment_status_agree_with_refunds(engine):
    per_order = f"""
        SELECT o.status, o.payment_status, sum(i.refunded_amount) AS back, sum({VALUE}) AS value
        FROM mart.orders o JOIN mart.order_items i USING (order_id) GROUP BY o.order_id"""
    bad = rows(engine, f"""
        SELECT status, payment_status, count(*) FROM ({per_order}) x
        WHERE NOT CASE
            WHEN status = 'cancelled' THEN (payment_status = 'failed' AND back = 0)
                                        OR (payment_status = 'refunded' AND back = value)
            WHEN payment_status = 'refunded' THEN status = 'returned' AND back = value
            WHEN payment_status = 'partially_refunded' THEN status = 'delivered' AND back > 0 AND back < value
            WHEN payment_status = 'captured' THEN back = 0 AND status <> 'returned'
            ELSE false END
        GROUP BY 1, 2""")
    assert bad == []
    kinds = {r[0] for r in rows(engine, "SELECT DISTINCT payment_status FROM mart.orders")}
    assert kinds == {"captured", "failed", "refunded", "partially_refunded"}
    assert scalar(engine, "SELECT count(*) FROM mart.order_items WHERE refunded_amount > quantity * unit_price - discount") == 0


def test_recent_orders_are_still_in_progress(engine):
    last_day = rows(engine, """SELECT DISTINCT status FROM mart.orders
                               WHERE ordered_at >= :end AND status <> 'cancelled'""", end=SEED_END)
    assert {r[0] for r in last_day} <= {"placed", "paid"}
    assert scalar(engine, """SELECT count(*) FROM mart.orders WHERE ordered_at >= :since
                             AND payment_status IN ('refunded', 'partially_refunded') AND status <> 'cancelled'""",
                  since=SEED_END - timedelta(days=6)) == 0
    assert scalar(engine, "SELECT count(DISTINCT status) FROM mart.orders WHERE ordered_at >= :since",
                  since=SEED_END - timedelta(days=5)) >= 4


def test_daily_conversion_and_funnel(engine):
    per_day = rows(engine, f"""
        WITH o AS (SELECT (ordered_at AT TIME ZONE 'UTC')::date AS day, channel, count(*) AS n
                   FROM mart.orders o WHERE {COUNTED} AND channel IN ('web', 'mobile') GROUP BY 1, 2)
        SELECT t.day, sum(coalesce(o.n, 0))::numeric / sum(t.sessions) AS cr,
               bool_and(t.sessions > t.product_views AND t.product_views > t.add_to_carts
                        AND t.add_to_carts > t.checkouts AND t.checkouts >= coalesce(o.n, 0)) AS funnel
        FROM mart.traffic_daily t LEFT JOIN o ON o.day = t.day AND o.channel = t.channel
        GROUP BY t.day""")
    assert len(per_day) > 1000
    outside = [(d, float(cr)) for d, cr, _ in per_day if not 0.015 <= cr <= 0.04]
    assert outside == []
    assert [d for d, _, ok in per_day if not ok] == []
    assert {r[0] for r in rows(engine, "SELECT DISTINCT channel FROM mart.traffic_daily")} == {"web", "mobile"}


def test_vendors_sell_only_while_open(engine):
    assert scalar(engine, """SELECT count(*) FROM mart.order_items i JOIN mart.orders o USING (order_id)
                             JOIN mart.vendors v USING (vendor_id)
                             WHERE (o.ordered_at AT TIME ZONE 'UTC')::date < v.joined_on""") == 0
    assert scalar(engine, """SELECT count(*) FROM mart.order_items i JOIN mart.orders o USING (order_id)
                             JOIN mart.vendors v USING (vendor_id)
                             WHERE v.status <> 'active' AND o.ordered_at >= :since""",
                  since=SEED_END - timedelta(days=3)) == 0
    statuses = {r[0] for r in rows(engine, "SELECT DISTINCT status FROM mart.vendors")}
    assert statuses == {"active", "paused", "closed"}
    assert scalar(engine, "SELECT count(*) FROM mart.vendors") >= 30
    assert scalar(engine, "SELECT count(*) FROM mart.vendors WHERE joined_on > :start",
                  start=SEED_END - timedelta(days=365 * 2)) > 0


def test_customers_regions_and_signup(engine):
    per_country = rows(engine, "SELECT country, count(DISTINCT region) FROM mart.customers GROUP BY 1")
    assert {c for c, _ in per_country} >= {"DE", "FR", "GB", "US", "JP", "BR"}
    assert all(n == 1 for _, n in per_country)
    assert rows(engine, """SELECT DISTINCT c.region FROM mart.customers c JOIN mart.vendors v USING (country)
                           WHERE c.region <> v.region""") == []
    assert scalar(engine, """SELECT count(*) FROM mart.customers c
                             JOIN (SELECT customer_id, min(ordered_at) AS first FROM mart.orders GROUP BY 1) o
                             USING (customer_id) WHERE c.signup_at >= o.first""") == 0
    b2b = {r[0]: r[1] for r in rows(engine, """SELECT acquisition_channel, count(*) FROM mart.customers
                                               WHERE segment = 'B2B' GROUP BY 1""")}
    assert (b2b.get("sales", 0) + b2b.get("referral", 0)) / sum(b2b.values()) > 0.5
    b2c = {r[0] for r in rows(engine, "SELECT DISTINCT acquisition_channel FROM mart.customers WHERE segment = 'B2C'")}
    assert b2c == {"organic", "paid_search", "social", "affiliate", "email", "referral"}
    # acquisition grows: more new buyers in the last year than in the first
    first_year, last_year = rows(engine, """
        SELECT count(*) FILTER (WHERE first < :a), count(*) FILTER (WHERE first >= :b)
        FROM (SELECT customer_id, min(ordered_at) AS first FROM mart.orders GROUP BY 1) x""",
        a=SEED_END - timedelta(days=730), b=SEED_END - timedelta(days=365))[0]
    assert last_year > first_year


def test_marketing_spend_follows_acquisitions(engine):
    channels = {r[0] for r in rows(engine, "SELECT DISTINCT channel FROM mart.marketing_spend")}
    assert channels == {"paid_search", "social", "affiliate"}
    assert scalar(engine, "SELECT min(n) FROM (SELECT channel, count(DISTINCT campaign) n FROM mart.marketing_spend GROUP BY 1) x") >= 2
    for channel in channels:
        corr = scalar(engine, """
            WITH s AS (SELECT date_trunc('quarter', day) q, sum(spend) spend FROM mart.marketing_spend
                       WHERE channel = :c GROUP BY 1),
                 a AS (SELECT date_trunc('quarter', signup_at AT TIME ZONE 'UTC') q, count(*) n FROM mart.customers
                       WHERE acquisition_channel = :c GROUP BY 1)
            SELECT corr(s.spend, a.n) FROM s JOIN a USING (q)""", c=channel)
        assert corr > 0.8, channel


def test_inventory_weekly_for_every_product(engine):
    dates = [r[0] for r in rows(engine, "SELECT DISTINCT snapshot_date FROM mart.inventory_snapshots ORDER BY 1")]
    assert dates == [SEED_END - timedelta(days=7 * k) for k in range(11, -1, -1)]
    products = scalar(engine, "SELECT count(*) FROM mart.products")
    assert scalar(engine, "SELECT count(*) FROM mart.inventory_snapshots") == 12 * products
    share_low, share_high = rows(engine, """
        SELECT avg((on_hand <= 2)::int), avg((on_hand > 10 * med)::int)
        FROM mart.inventory_snapshots,
             (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY on_hand) med FROM mart.inventory_snapshots) m
        WHERE snapshot_date = :d""", d=SEED_END)[0]
    assert 0.02 < share_low < 0.4 and 0.01 < share_high < 0.2


def test_kpi_targets_monthly_near_actuals(engine):
    months = rows(engine, """SELECT metric, count(*), min(period_start), max(period_end),
                                    bool_and(extract(day FROM period_start) = 1
                                             AND period_end = (period_start + interval '1 month' - interval '1 day')::date)
                             FROM mart.kpi_targets GROUP BY 1 ORDER BY 1""")
    assert [m[0] for m in months] == sorted(
        ["gmv", "net_revenue", "orders", "aov", "new_customers", "conversion_rate", "gross_margin"])
    for metric, n, first, last, whole_months in months:
        assert whole_months, metric
        assert first == date(2023, 11, 1) and last == date(2027, 2, 28), metric
        assert n == 40, metric
    ratio = rows(engine, """
        WITH a AS (SELECT date_trunc('month', day)::date m, sum(gmv) gmv FROM mart.rollup_sales_daily GROUP BY 1)
        SELECT min(t.target / a.gmv), max(t.target / a.gmv) FROM mart.kpi_targets t JOIN a ON a.m = t.period_start
        WHERE t.metric = 'gmv' AND t.period_start > DATE '2023-11-01' AND t.period_start < DATE '2026-11-01'""")[0]
    assert 0.99 <= ratio[0] and ratio[1] <= 1.12
    cr = rows(engine, "SELECT min(target), max(target) FROM mart.kpi_targets WHERE metric = 'conversion_rate'")[0]
    assert 0.015 <= cr[0] and cr[1] <= 0.045
    gm = rows(engine, "SELECT min(target), max(target) FROM mart.kpi_targets WHERE metric = 'gross_margin'")[0]
    assert 0.1 <= gm[0] and gm[1] <= 0.7


def test_rollups_built_in_the_same_transaction(engine):
    assert scalar(engine, "SELECT count(*) FROM mart.rollup_sales_daily") > 0
    assert scalar(engine, "SELECT count(*) FROM mart.rollup_customers") > 0
    raw = scalar(engine, f"SELECT sum({VALUE}) FROM mart.order_items i JOIN mart.orders o USING (order_id) WHERE {COUNTED}")
    assert scalar(engine, "SELECT sum(gmv) FROM mart.rollup_sales_daily") == raw
    state = rows(engine, """SELECT full_needed, version, timezone, (SELECT count(*) FROM app.rollup_dirty_days)
                            FROM app.rollup_state""")[0]
    assert state[0] is False and state[1] >= 1 and state[2:] == ("UTC", 0)


# ------------------------------------------------------------------------------------------
# Guards, determinism, time zone, command line
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("orders", [0, -5, 10, 2.5, "1000"])
def test_bad_size_is_refused_before_touching_the_database(orders):
    with pytest.raises(SeedError, match="--orders"):
        seed(None, orders=orders, progress=False)


def test_if_empty_replace_and_refusal(empty_engine):
    end = date(2026, 3, 31)
    first = seed(empty_engine, orders=400, seed=1, end=end, progress=False)
    assert isinstance(first, SeedSummary) and first.order_lines == 400
    before = checksums(empty_engine)

    assert seed(empty_engine, orders=900, seed=2, end=end, if_empty=True, progress=False) is None
    assert checksums(empty_engine) == before

    with pytest.raises(SeedError, match=r"mart\.orders already has [\d,]+ rows; use --replace"):
        seed(empty_engine, orders=900, seed=2, end=end, progress=False)
    assert checksums(empty_engine) == before

    again = seed(empty_engine, orders=900, seed=2, end=end, replace=True, progress=False)
    assert again.order_lines == 900
    assert scalar(empty_engine, "SELECT count(*) FROM mart.order_items") == 900
    last = scalar(empty_engine, "SELECT max(ordered_at)::date FROM mart.orders")
    assert end - timedelta(days=14) <= last <= end


def test_other_tables_with_rows_are_not_overwritten_silently(empty_engine):
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO mart.vendors VALUES (1, 'Mine', 'Books', 'Europe', 'DE', "
                             "'2024-01-01', 'active', 0.1)"))
    for if_empty in (False, True):
        with pytest.raises(SeedError, match=r"mart\.vendors already has 1 rows; use --replace"):
            seed(empty_engine, orders=200, end=date(2026, 1, 31), if_empty=if_empty, progress=False)
    assert scalar(empty_engine, "SELECT name FROM mart.vendors") == "Mine"


def test_same_inputs_same_bytes_other_seed_other_data(fresh_db, monkeypatch):
    # Small chunks and COPY blocks, so that the chunked path is the one compared.
    monkeypatch.setattr("data.seed.tables.LINES_PER_CHUNK", 700)
    monkeypatch.setattr("data.seed.binary_copy.ROWS_PER_COPY_BLOCK", 500)
    a, b, c = fresh_db(), fresh_db(), fresh_db()
    for eng, s in ((a, 11), (b, 11), (c, 12)):
        seed(eng, orders=3000, seed=s, end=date(2025, 6, 30), progress=False)
    sums_a = checksums(a)
    assert sums_a == checksums(b)
    differs = {t for t, v in checksums(c).items() if v != sums_a[t]}
    assert differs >= {"orders", "order_items", "customers", "vendors", "products", "traffic_daily"}
    assert scalar(a, "SELECT count(*) FROM mart.order_items") == 3000
    assert scalar(a, "SELECT max(order_id) = count(*) FROM mart.orders")


def test_local_days_follow_app_timezone(fresh_db, monkeypatch):
    monkeypatch.setenv("APP_TIMEZONE", "America/New_York")
    eng = fresh_db()
    seed(eng, orders=6000, seed=3, end=date(2026, 11, 20), progress=False)
    tz = "America/New_York"
    local = rows(eng, f"""
        WITH o AS (SELECT (ordered_at AT TIME ZONE :tz)::date AS day, count(*) AS n FROM mart.orders o
                   WHERE {COUNTED} AND channel IN ('web', 'mobile') GROUP BY 1)
        SELECT min(n::numeric / s), max(n::numeric / s), count(*)
        FROM (SELECT day, sum(sessions) s FROM mart.traffic_daily GROUP BY 1) t JOIN o USING (day)""", tz=tz)[0]
    assert 0.015 <= local[0] and local[1] <= 0.04
    assert scalar(eng, "SELECT max((ordered_at AT TIME ZONE :tz)::date) FROM mart.orders", tz=tz) == date(2026, 11, 20)
    office = scalar(eng, """SELECT avg((extract(hour FROM ordered_at AT TIME ZONE :tz) BETWEEN 8 AND 17)::int)
                            FROM mart.orders WHERE business_model = 'B2B'""", tz=tz)
    assert office > 0.8
    assert scalar(eng, "SELECT timezone FROM app.rollup_state") == tz


def test_command_line_seed(empty_engine, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", empty_engine.url.render_as_string(hide_password=False))
    assert main(["seed", "--orders", "300", "--end", "2026-01-31", "--seed", "5"]) == 0
    out = capsys.readouterr()
    assert "seeded 300 order lines" in out.out and " s" in out.out
    assert "100%" in out.err and "order lines" in out.err  # the progress report
    # The rollup build says which of its steps it is in.
    assert all(f"refreshing rollups: {step}" in out.err for step in FULL_STEPS)

    assert main(["seed", "--orders", "300", "--quiet"]) == 1
    out = capsys.readouterr()
    assert "use --replace" in out.err and out.err.startswith("error: ")

    assert main(["seed", "--orders", "300", "--if-empty", "--quiet"]) == 0
    assert "nothing seeded" in capsys.readouterr().out

    assert main(["seed", "--orders", "500", "--replace", "--quiet", "--end", "2026-01-31"]) == 0
    assert scalar(empty_engine, "SELECT count(*) FROM mart.order_items") == 500
    assert main(["seed", "--orders", "5", "--quiet"]) == 1


def test_a_user_who_does_not_own_the_tables_gets_a_clear_error(empty_engine):
    role = f"seed_guest_{uuid.uuid4().hex[:6]}"
    db = empty_engine.url.database
    with empty_engine.begin() as conn:
        # Roles and databases are identifiers, which cannot be bound: the dialect quotes them.
        r, d = (conn.dialect.identifier_preparer.quote(x) for x in (role, db))
        conn.execute(sa.text("CREATE ROLE " + r + " LOGIN"))
        conn.execute(sa.text("GRANT CONNECT ON DATABASE " + d + " TO " + r))
        conn.execute(sa.text("GRANT USAGE ON SCHEMA mart, app TO " + r))
        conn.execute(sa.text("GRANT SELECT, INSERT, TRUNCATE ON ALL TABLES IN SCHEMA mart TO " + r))
    guest = sa.create_engine(empty_engine.url.set(username=role), poolclass=sa.pool.NullPool)
    try:
        with pytest.raises(SeedError, match="run it as the user that ran"):
            seed(guest, orders=200, seed=1, end=date(2026, 1, 31), progress=False)
    finally:
        guest.dispose()
        with empty_engine.begin() as conn:
            r = conn.dialect.identifier_preparer.quote(role)
            conn.execute(sa.text("DROP OWNED BY " + r))
            conn.execute(sa.text("DROP ROLE " + r))
    assert scalar(empty_engine, "SELECT count(*) FROM mart.vendors") == 0
