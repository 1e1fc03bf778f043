"""Peer benchmarks (issue 22): every stored value, rank, percentile and quartile equals a computation from
the raw order lines; categories with fewer than 5 vendors get no comparison; a vendor's role reads its
own rows and the anonymous quartiles only; the scheduler's job writes them once a day."""
from __future__ import annotations

import random
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.filters import resolve_period
from data import peer_benchmarks as PB
from data.rollups import refresh_rollups
from data.settings import load_settings
from data.vendor_scope import ensure_vendor_role
from reports import jobs
from reports import scheduler as S
from tests.conftest import clone, create_database, use_database, vendor_role_engine, vendor_settings

TZ = "Europe/Berlin"
TODAY = date(2026, 11, 21)        # the local day the presets are resolved on
LAST_DAY = date(2026, 11, 20)     # the last local day with orders
# Books has 7 vendors (6 never sells, 7 sells rarely, mostly cancelled; 3 is closed), Toys 5 (12
# starts selling on NEW_FROM: no GMV before, so fewer than 5 vendors have a growth over the last 30
# days), Garden 3: never enough peers.
VENDORS = {**{v: "Books" for v in range(1, 8)}, **{v: "Toys" for v in range(8, 13)},
           **{v: "Garden" for v in range(13, 16)}}
SILENT, RARE, CLOSED, NEW = 6, 7, 3, 12
NEW_FROM = date(2026, 11, 5)
PRICES = [Decimal(p) for p in ("9.99", "12.50", "20.00", "35.99", "4.75")]
HIGHER_IS_BETTER = {"gmv": True, "gmv_growth": True, "aov": True, "refund_rate": False, "cancellation_rate": False,
                    "take_rate": False, "repeat_rate": True}


def _market() -> tuple[list[dict], list[dict]]:
    """Orders and order lines of a small marketplace from June 2024 to LAST_DAY (deterministic):
    orders holding two vendors' lines, cancelled and returned orders, refunds and discounts, customers
    ordering from one vendor twice a day, and order times around local midnight."""
    rng = random.Random(22)
    orders, lines = [], []
    first = datetime(2024, 6, 1, tzinfo=ZoneInfo(TZ))
    span = int((datetime(2026, 11, 21, tzinfo=ZoneInfo(TZ)) - first).total_seconds())
    for order_id in range(1, 1601):
        at = first + timedelta(seconds=rng.randrange(span))
        day = at.date()
        sellers = [v for v in VENDORS if v != SILENT and (v != NEW or day >= NEW_FROM)
                   and (v != RARE or rng.random() < 0.05)]
        picked = rng.sample(sellers, 2 if rng.random() < 0.25 else 1)
        status = "cancelled" if (RARE in picked and rng.random() < 0.7) or rng.random() < 0.08 else \
            rng.choice(["delivered", "delivered", "shipped", "returned", "paid"])
        customer = rng.randrange(1, 41) if rng.random() < 0.7 else rng.randrange(41, 201)
        orders.append({"id": order_id, "c": customer, "at": at.astimezone(timezone.utc), "st": status})
        for line_no, vendor in enumerate(picked * rng.choice([1, 1, 2]), start=1):
            qty, price = rng.randrange(1, 4), rng.choice(PRICES)
            value = qty * price - (Decimal("1.50") if rng.random() < 0.2 else 0)
            discount = qty * price - value
            refund = value if status == "returned" else (Decimal("2.00") if rng.random() < 0.1 else Decimal(0))
            lines.append({"o": order_id, "n": line_no, "p": vendor * 10, "v": vendor, "q": qty, "u": price,
                          "d": discount, "r": refund})
        # Now and then the same customer orders from the same vendor again that day.
        if rng.random() < 0.05:
            orders.append({"id": 5000 + order_id, "c": customer, "st": "delivered",
                           "at": at.astimezone(timezone.utc) + timedelta(minutes=5)})
            lines.append({"o": 5000 + order_id, "n": 1, "p": picked[0] * 10, "v": picked[0], "q": 1,
                          "u": PRICES[0], "d": Decimal(0), "r": Decimal(0)})
    return orders, lines


def _load(conn) -> None:
    rates = ["0.1000", "0.1250", "0.0875", "0.1500", "0.0950"]
    conn.execute(sa.text("""
        INSERT INTO mart.vendors
        VALUES (:v, :name, :cat, 'Europe', 'DE', '2024-01-01', :status, CAST(:rate AS numeric))"""),
                 [{"v": v, "name": f"Vendor {v}", "cat": cat, "status": "closed" if v == CLOSED else "active",
                   "rate": rates[v % len(rates)]} for v, cat in VENDORS.items()])
    conn.execute(sa.text("""
        INSERT INTO mart.products VALUES (:p, :v, :sku, :name, :cat, 'Misc', 20.00, 8.00, '2024-01-01')"""),
                 [{"p": v * 10, "v": v, "sku": f"S-{v}", "name": f"Product {v}", "cat": cat}
                  for v, cat in VENDORS.items()])
    conn.execute(sa.text("""
        INSERT INTO mart.customers VALUES (:c, :name, 'DE', 'Europe', 'B2C', 'organic', '2024-01-01')"""),
                 [{"c": c, "name": f"Customer {c}"} for c in range(1, 201)])
    orders, lines = _market()
    conn.execute(sa.text("""
        INSERT INTO mart.orders VALUES (:id, :c, :at, :st, 'web', 'B2C', 'card', 'captured', 'EUR', 0)"""), orders)
    conn.execute(sa.text("""
        INSERT INTO mart.order_items VALUES (:o, :n, :p, :v, :q, :u, :d, 1.00, :r)"""), lines)


def _periods(today: date = TODAY) -> dict[str, tuple[date, date]]:
    return {p: (resolve_period(p, today).start, resolve_period(p, today).end) for p in PB.PRESETS}


@pytest.fixture(scope="module")
def template(admin_url, empty_template) -> str:
    """The marketplace above with its rollups built for TZ, made once for the module."""
    url = create_database(admin_url, "mbi_peers", template=empty_template)
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.begin() as conn:
        _load(conn)
        refresh_rollups(conn, full=True, timezone=TZ)
    eng.dispose()
    return "mbi_peers"


@pytest.fixture(scope="module")
def world(admin_url, template):
    """A copy of the template with the benchmarks computed on TODAY, and a login role for vendor 1 and
    one for vendors 8 and 13; yields the app's engine and an engine per scope."""
    settings = vendor_settings()
    with clone(admin_url, template) as app:
        with app.begin() as conn:
            PB.refresh_peer_benchmarks(conn, _periods(), tz=TZ)
            roles = {"one": ensure_vendor_role(conn, [1], settings), "two": ensure_vendor_role(conn, [8, 13], settings)}
        engines = {name: vendor_role_engine(app.url, role) for name, role in roles.items()}
        yield app, engines
        for e in engines.values():
            e.dispose()


# --- the independent computation: plain SQL over the raw rows, ranks and quartiles in pandas ---------

# Per vendor over [lo, hi] (and [plo, phi], the same number of days just before): the glossary's sums
# of its lines, straight from mart.order_items, mart.orders and mart.vendors.
RAW = """
WITH l AS (
    SELECT o.order_id, o.customer_id, o.status <> 'cancelled' AS counted, (o.ordered_at AT TIME ZONE :tz)::date AS day,
           i.vendor_id, i.quantity * i.unit_price - i.discount AS value, i.refunded_amount AS refunded,
           v.commission_rate AS rate
    FROM mart.order_items i JOIN mart.orders o ON o.order_id = i.order_id
    JOIN mart.vendors v ON v.vendor_id = i.vendor_id
),
s AS (
    SELECT vendor_id,
           sum(value) FILTER (WHERE counted AND day BETWEEN :lo AND :hi) AS gmv,
           sum(value) FILTER (WHERE counted AND day BETWEEN :plo AND :phi) AS prev_gmv,
           sum(refunded) FILTER (WHERE counted AND day BETWEEN :lo AND :hi) AS refunded,
           sum((value - refunded) * rate) FILTER (WHERE counted AND day BETWEEN :lo AND :hi) AS take,
           count(DISTINCT order_id) FILTER (WHERE counted AND day BETWEEN :lo AND :hi) AS orders,
           count(DISTINCT order_id) FILTER (WHERE day BETWEEN :lo AND :hi) AS all_orders,
           count(DISTINCT order_id) FILTER (WHERE NOT counted AND day BETWEEN :lo AND :hi) AS cancelled
    FROM l GROUP BY vendor_id
),
c AS (   -- each customer of each vendor: active in the period, and counted orders with it up to the end
    SELECT vendor_id, customer_id, bool_or(counted AND day BETWEEN :lo AND :hi) AS active,
           count(DISTINCT order_id) FILTER (WHERE counted AND day <= :hi) AS orders_to_end
    FROM l GROUP BY vendor_id, customer_id
),
r AS (
    SELECT vendor_id, count(*) FILTER (WHERE active) AS active,
           count(*) FILTER (WHERE active AND orders_to_end >= 2) AS repeat
    FROM c GROUP BY vendor_id
)
SELECT v.vendor_id, v.category,
       (CASE WHEN s.all_orders > 0 THEN COALESCE(s.gmv, 0) END)::float8 AS gmv,
       (COALESCE(s.gmv, 0) / NULLIF(s.prev_gmv, 0) - 1)::float8 AS gmv_growth,
       (s.gmv / NULLIF(s.orders, 0))::float8 AS aov,
       (s.refunded / NULLIF(s.gmv, 0))::float8 AS refund_rate,
       (s.cancelled::numeric / NULLIF(s.all_orders, 0))::float8 AS cancellation_rate,
       (s.take / NULLIF(s.gmv, 0))::float8 AS take_rate,
       (r.repeat::numeric / NULLIF(r.active, 0))::float8 AS repeat_rate
FROM mart.vendors v LEFT JOIN s ON s.vendor_id = v.vendor_id LEFT JOIN r ON r.vendor_id = v.vendor_id"""


def expected(engine, lo: date, hi: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (vendor rows, peer rows) for the period lo..hi as the glossary and the issue define them."""
    days = (hi - lo).days + 1
    with engine.connect() as conn:
        raw = pd.read_sql_query(sa.text(RAW), conn, params={
            "tz": TZ, "lo": lo, "hi": hi, "plo": lo - timedelta(days=days), "phi": lo - timedelta(days=1)})
    long = raw.melt(id_vars=["vendor_id", "category"], var_name="metric", value_name="value").dropna(subset=["value"])
    vendor_rows, peer_rows = [], []
    for (category, metric), g in long.groupby(["category", "metric"]):
        values = g["value"].astype(float)
        n = len(values)
        better = HIGHER_IS_BETTER[metric]
        for vendor_id, v in zip(g["vendor_id"], values):
            no_better = (values <= v).sum() if better else (values >= v).sum()
            rank = 1 + ((values > v).sum() if better else (values < v).sum())
            enough = n >= PB.MIN_PEERS
            vendor_rows.append({"vendor_id": int(vendor_id), "metric": metric, "category": category, "value": v,
                                "rank": int(rank) if enough else None, "peers": n if enough else None,
                                "percentile": 100.0 * no_better / n if enough else None})
        if n >= PB.MIN_PEERS and metric != "gmv":   # GMV: ranks only, no quartiles (some vendor's revenue)
            p25, median, p75 = np.percentile(values, [25, 50, 75])
            peer_rows.append({"category": category, "metric": metric, "peers": n, "p25": p25, "median": median,
                              "p75": p75})
    return pd.DataFrame(vendor_rows), pd.DataFrame(peer_rows)


_STORED = {"peer_benchmarks": "SELECT * FROM mart.peer_benchmarks WHERE preset = :p",
           "vendor_benchmarks": "SELECT * FROM mart.vendor_benchmarks WHERE preset = :p"}


def _stored(engine, table: str, preset: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(sa.text(_STORED[table]), conn, params={"p": preset})


def _same(got: pd.DataFrame, want: pd.DataFrame, keys: list[str], context: str) -> None:
    got = got.sort_values(keys).reset_index(drop=True)
    want = want.sort_values(keys).reset_index(drop=True)
    assert got[keys].values.tolist() == want[keys].values.tolist(), context
    for col in want.columns.difference(keys):
        for k, (a, b) in enumerate(zip(got[col], want[col])):
            where = f"{context} {col} of {dict(zip(keys, want.loc[k, keys]))}"
            if b is None or (isinstance(b, float) and np.isnan(b)):
                assert a is None or (isinstance(a, float) and np.isnan(a)), f"{where}: {a}, expected none"
            elif isinstance(b, str):
                assert a == b, where
            else:
                assert abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b))), f"{where}: {a} != {b}"


# --- tests ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", PB.PRESETS)
def test_every_value_rank_percentile_and_quartile_equals_a_computation_from_raw_rows(world, preset):
    app, _ = world
    lo, hi = _periods()[preset]
    want_vendors, want_peers = expected(app, lo, hi)
    vendors = _stored(app, "vendor_benchmarks", preset)
    peers = _stored(app, "peer_benchmarks", preset)
    assert len(want_vendors) > 20 and not want_peers.empty
    _same(vendors[list(want_vendors.columns)], want_vendors, ["vendor_id", "metric"], preset)
    _same(peers[list(want_peers.columns)], want_peers, ["category", "metric"], preset)
    assert {tuple(r) for r in vendors[["period_start", "period_end"]].drop_duplicates().values} == {(lo, hi)}
    assert {tuple(r) for r in peers[["period_start", "period_end"]].drop_duplicates().values} == {(lo, hi)}


def test_the_data_has_what_the_comparison_must_get_right(world):
    """The cases above are exercised: ties, a vendor without orders, one with only cancelled orders (a
    cancellation rate but no AOV), a GMV fallen to nothing (growth −1), a vendor without an earlier GMV
    (no growth), repeat customers, and both sides of MIN_PEERS."""
    app, _ = world
    with app.connect() as conn:
        stored = pd.read_sql_query(sa.text("SELECT * FROM mart.vendor_benchmarks"), conn)
    assert stored.dropna(subset=["rank"]).duplicated(["preset", "category", "metric", "rank"]).sum() >= 10
    assert SILENT not in set(stored["vendor_id"])
    rare = stored[(stored["preset"] == "last_30_days") & (stored["vendor_id"] == RARE)].set_index("metric")["value"]
    assert rare["cancellation_rate"] == 1 and rare["gmv_growth"] == -1 and "aov" not in rare
    new = stored[(stored["preset"] == "last_90_days") & (stored["vendor_id"] == NEW)]
    assert {"aov", "refund_rate"} <= set(new["metric"]) and "gmv_growth" not in set(new["metric"])
    repeat = stored[stored["metric"] == "repeat_rate"]["value"]
    assert ((repeat > 0) & (repeat < 1)).any()


def test_categories_with_fewer_than_five_vendors_get_no_peer_rows_and_no_ranks(world):
    app, _ = world
    for preset in PB.PRESETS:
        peers = _stored(app, "peer_benchmarks", preset)
        vendors = _stored(app, "vendor_benchmarks", preset)
        assert "Garden" not in set(peers["category"]) and (peers["peers"] >= PB.MIN_PEERS).all()
        garden = vendors[vendors["category"] == "Garden"]
        assert not garden.empty and garden[["rank", "peers", "percentile"]].isna().all().all()
        # Toys has 5 vendors only from NEW_FROM on: last year, 4 of them sold.
        assert set(peers["category"]) == ({"Books"} if preset == "last_year" else {"Books", "Toys"}), preset
    # Only 4 of Toys' 5 vendors sold before the last 30 days: no growth quartiles, no growth ranks there.
    peers = _stored(app, "peer_benchmarks", "last_30_days")
    toys = set(peers[peers["category"] == "Toys"]["metric"])
    assert "gmv_growth" not in toys and "aov" in toys
    # The database refuses a peer row of fewer than 5 vendors, and a rank without peers.
    with app.connect() as conn:
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text("""
                INSERT INTO mart.peer_benchmarks VALUES ('ytd', '2026-01-01', '2026-11-21', 'Garden', 'aov', 3,
                                                         1, 2, 3, now())"""))
        conn.rollback()
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text("UPDATE mart.vendor_benchmarks SET rank = 1 WHERE vendor_id = 13"))


def test_a_vendor_role_reads_its_own_rows_and_every_peer_row_only(world):
    app, engines = world
    with app.connect() as conn:
        every = {p: PB.fetch_vendor_benchmarks(conn, p) for p in PB.PRESETS}
        all_peers = conn.execute(sa.text("SELECT count(*) FROM mart.peer_benchmarks")).scalar()
    for name, ids in (("one", {1}), ("two", {8, 13})):
        with engines[name].connect() as conn:
            assert set(conn.execute(sa.text("SELECT DISTINCT vendor_id FROM mart.vendor_benchmarks")).scalars()) == ids
            assert conn.execute(sa.text("SELECT count(*) FROM mart.peer_benchmarks")).scalar() == all_peers > 0
            for preset in PB.PRESETS:
                got = PB.fetch_vendor_benchmarks(conn, preset)
                want = every[preset][every[preset]["vendor_id"].isin(ids)].reset_index(drop=True)
                assert not got.empty
                pd.testing.assert_frame_equal(got, want)
    got = every["ytd"]
    assert list(got.columns) == ["vendor_id", "category", "metric", "value", "rank", "peers", "percentile", "p25",
                                 "median", "p75", "period_start", "period_end"]
    assert list(got[got["vendor_id"] == 1]["metric"]) == list(PB.METRICS)
    # The quartiles joined are the category's; Garden has none.
    books = got[(got["category"] == "Books") & (got["metric"] == "aov")]
    assert books["median"].notna().all() and books["median"].nunique() == 1
    assert got[got["category"] == "Garden"][["p25", "median", "p75"]].isna().all().all()


def test_a_refresh_replaces_the_presets_it_is_given_and_refuses_what_it_cannot_compute(admin_url, template):
    with clone(admin_url, template) as eng:
        with eng.begin() as conn:
            assert PB.refresh_peer_benchmarks(conn, _periods(), tz=TZ) > 0
        later = _periods(TODAY + timedelta(days=3))
        with eng.begin() as conn:
            PB.refresh_peer_benchmarks(conn, {"mtd": later["mtd"]}, tz=TZ)
        with eng.connect() as conn:
            ends = dict(conn.execute(sa.text(
                "SELECT preset, max(period_end) FROM mart.vendor_benchmarks GROUP BY 1")).all())
            assert ends["mtd"] == TODAY + timedelta(days=3) and ends["ytd"] == TODAY
            assert conn.execute(sa.text(
                "SELECT count(DISTINCT period_end) FROM mart.vendor_benchmarks WHERE preset = 'mtd'")).scalar() == 1
            before = conn.execute(sa.text("SELECT count(*) FROM mart.vendor_benchmarks")).scalar()
        for periods, error in (({"custom": (TODAY, TODAY)}, "no peer benchmarks for period 'custom'"),
                               ({"mtd": (TODAY, TODAY - timedelta(days=1))}, "ends .* before it starts")):
            with eng.begin() as conn, pytest.raises(PB.BenchmarkPeriodError, match=error):
                PB.refresh_peer_benchmarks(conn, periods, tz=TZ)
        with eng.begin() as conn, pytest.raises(PB.RollupsNotReadyError, match="not built for UTC"):
            PB.refresh_peer_benchmarks(conn, _periods(), tz="UTC")
        with eng.begin() as conn:
            conn.execute(sa.text("UPDATE app.rollup_state SET full_needed = true"))
            assert not PB.fetch_rollups_ready(conn, TZ)
            with pytest.raises(PB.RollupsNotReadyError):
                PB.refresh_peer_benchmarks(conn, _periods(), tz=TZ)
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM mart.vendor_benchmarks")).scalar() == before
            with pytest.raises(PB.BenchmarkPeriodError):
                PB.fetch_vendor_benchmarks(conn, "today")


def test_the_scheduler_job_writes_them_at_once_when_none_are_stored_then_once_a_day(admin_url, template, monkeypatch):
    with clone(admin_url, template) as eng:
        use_database(monkeypatch, eng.url.render_as_string(hide_password=False), APP_TIMEZONE=TZ,
                     PEER_BENCHMARKS_AT="00:30")
        # The scheduler's own row, on the real clock: none stored, so due at once.
        job = next(j for j in S.JOBS if j.name == "peer_benchmarks")
        assert job.thread == "nightly"
        ctx = S.Context(eng, load_settings(), threading.Event())
        assert S.run_command(job, ctx) is not S.FAILED
        real_today = datetime.now(ZoneInfo(TZ)).date()
        with eng.connect() as conn:
            run = conn.execute(sa.text("SELECT ok, message FROM app.job_runs WHERE job = 'peer_benchmarks'")).one()
            assert run.ok and run.message.startswith(f"{real_today}: ")
            assert conn.execute(sa.text("SELECT max(period_end) FROM mart.vendor_benchmarks WHERE preset = 'last_year'"
                                        )).scalar() == date(real_today.year - 1, 12, 31)
            conn.execute(sa.text("DELETE FROM mart.vendor_benchmarks"))
            conn.execute(sa.text("DELETE FROM mart.peer_benchmarks"))
            conn.execute(sa.text("DELETE FROM app.job_runs"))
            conn.commit()

        def at(day: date, hhmm: str) -> datetime:
            return datetime.combine(day, datetime.strptime(hhmm, "%H:%M").time(), ZoneInfo(TZ))

        early = at(TODAY, "00:10")
        with eng.connect() as conn:
            assert jobs.fetch_peer_benchmarks_due(conn, early) == TODAY   # none stored: at once
        assert jobs.run_job(eng, "peer_benchmarks", lambda c: jobs.peer_benchmarks_job(c, early),
                            lock="peer_benchmarks")
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT ok FROM app.job_runs WHERE job = 'peer_benchmarks'")).scalar()
            assert conn.execute(sa.text("SELECT DISTINCT computed_at FROM mart.vendor_benchmarks")).scalar() == early
            stored = pd.read_sql_query(
                sa.text("SELECT * FROM mart.vendor_benchmarks WHERE preset = 'last_30_days'"), conn)
            assert jobs.fetch_peer_benchmarks_due(conn, at(TODAY, "23:00")) is None          # done today
            tomorrow = TODAY + timedelta(days=1)
            assert jobs.fetch_peer_benchmarks_due(conn, at(tomorrow, "00:20")) is None   # before the hour
            assert jobs.fetch_peer_benchmarks_due(conn, at(tomorrow, "00:40")) == tomorrow
        want, _ = expected(eng, *_periods()["last_30_days"])
        _same(stored[list(want.columns)], want, ["vendor_id", "metric"], "job")
        # Rollups waiting for a rebuild: not due (the refresh comes first), and nothing is recorded as failed.
        with eng.begin() as conn:
            conn.execute(sa.text("UPDATE app.rollup_state SET full_needed = true"))
        with eng.connect() as conn:
            assert jobs.fetch_peer_benchmarks_due(conn, at(TODAY + timedelta(days=1), "00:40")) is None


def test_without_order_lines_the_job_is_never_due(empty_engine, monkeypatch):
    use_database(monkeypatch, empty_engine.url.render_as_string(hide_password=False), APP_TIMEZONE="UTC")
    with empty_engine.begin() as conn:
        refresh_rollups(conn, full=True, timezone="UTC")
    with empty_engine.connect() as conn:
        assert jobs.fetch_peer_benchmarks_due(conn, datetime(2026, 11, 21, 12, tzinfo=timezone.utc)) is None


def test_equal_values_tie_however_the_period_is_cut_into_months_weeks_and_days(empty_engine):
    """The weekly and monthly copies keep float8 sums: 0.10 (October's row) + 0.20 (a week of November)
    must equal 0.15 + 0.15, or of two vendors with the same AOV one would rank above the other."""
    sales = {21: ("0.10", "0.20"), 22: ("0.15", "0.15"), 23: ("0.05", "0.05"), 24: ("1.00", "1.00"),
             25: ("2.00", "3.00")}
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO mart.customers VALUES (1, 'Ann', 'DE', 'Europe', 'B2C', 'organic', "
                             "'2024-01-01')"))
        for vendor, amounts in sales.items():
            conn.execute(sa.text("INSERT INTO mart.vendors VALUES (:v, 'V', 'Tools', 'Europe', 'DE', '2024-01-01', "
                                 "'active', 0.1)"), {"v": vendor})
            conn.execute(sa.text("INSERT INTO mart.products "
                                 "VALUES (:p, :v, CAST(:p AS text), 'P', 'Tools', 'M', 1, 0, '2024-01-01')"),
                         {"p": vendor, "v": vendor})
            for k, (at, amount) in enumerate(zip(("2026-10-10 12:00+00", "2026-11-10 12:00+00"), amounts)):
                order = vendor * 10 + k
                conn.execute(sa.text("INSERT INTO mart.orders VALUES (:o, 1, :at, 'delivered', 'web', 'B2C', 'card', "
                                     "'captured', 'EUR', 0)"), {"o": order, "at": at})
                conn.execute(sa.text("INSERT INTO mart.order_items "
                                     "VALUES (:o, 1, :p, :v, 1, CAST(:a AS numeric), 0, 0, 0)"),
                             {"o": order, "p": vendor, "v": vendor, "a": amount})
        refresh_rollups(conn, full=True, timezone="UTC")
        PB.refresh_peer_benchmarks(conn, {"qtd": _periods()["qtd"]}, tz="UTC")
        aov = {v: (value, rank) for v, value, rank in conn.execute(sa.text(
            "SELECT vendor_id, value, rank FROM mart.vendor_benchmarks WHERE metric = 'aov'"))}
    assert aov[21] == aov[22] == (0.15, 3) and aov[23] == (0.05, 5) and aov[25] == (2.5, 1)
