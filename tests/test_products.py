"""Products page analytics against independent computations on raw rows.

Per-product and per-category figures are checked against tests/raw_metrics.py (expected() for
every category and a sample of products, and a vectorised pandas computation from the same
prepared raw rows for every product). Inventory cover, stock-out and overstock lists are checked
against a pandas computation from raw snapshots and order lines; edge cases use hand-made rows.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import products as P
from analytics.filters import Filters, Period
from analytics.kpis import fetch_rollups_usable
from data.rollups import refresh_rollups
from tests.conftest import SEED_END
from tests.raw_metrics import assert_close, expected, lines_in, load_raw, prepare

TZ = "UTC"
LAST_DAY = SEED_END - timedelta(days=1)
PERIODS = {"30 days": Period(LAST_DAY - timedelta(days=29), LAST_DAY),
           "a year": Period(LAST_DAY - timedelta(days=364), LAST_DAY)}
METRICS = ("gmv", "net_revenue", "take_revenue", "orders", "aov", "refund_rate", "gross_margin",
           "cancellation_rate")


@pytest.fixture(scope="module")
def raw(engine):
    data = load_raw(engine)
    with engine.connect() as conn:
        data["snapshots"] = pd.read_sql_query(sa.text("SELECT * FROM mart.inventory_snapshots"), conn)
    prepared = prepare(data, TZ)
    prepared["snapshots"] = data["snapshots"]
    prepared["products"] = data["products"]
    prepared["vendors"] = data["vendors"]
    return prepared


@pytest.fixture(scope="module")
def filter_sets(raw):
    lines = raw["lines"]
    busiest_vendor = int(lines["vendor_id"].value_counts().idxmax())
    category = sorted(lines["category"].unique())[0]
    return {"no filter": {}, "a category": {"category": [category]}, "a vendor": {"vendor_id": [busiest_vendor]},
            "channel web": {"channel": ["web"]}}


def _lines(raw, period: Period, dims: dict) -> pd.DataFrame:
    return lines_in(raw, period.start, period.end, dims)


def _per(raw, period: Period, dims: dict, key: str) -> pd.DataFrame:
    """Glossary metrics per key from raw lines, computed here with pandas (independent of the app)."""
    li = _lines(raw, period, dims)
    c = li[li["counted"]]
    out = pd.DataFrame({
        "gmv": c.groupby(key)["value"].sum(), "refunded": c.groupby(key)["refund"].sum(),
        "take_revenue": c.groupby(key)["take"].sum(), "cost": c.groupby(key)["cost"].sum(),
        "units": c.groupby(key)["quantity"].sum(), "orders": c.groupby(key)["order_id"].nunique(),
        "all_orders": li.groupby(key)["order_id"].nunique(),
        "cancelled_orders": li[~li["counted"]].groupby(key)["order_id"].nunique(),
    }).fillna(0.0).astype(float)
    out["net_revenue"] = out["gmv"] - out["refunded"]
    out["aov"] = out["gmv"] / out["orders"].replace(0, np.nan)
    out["refund_rate"] = out["refunded"] / out["gmv"].replace(0, np.nan)
    out["gross_margin"] = (out["net_revenue"] - out["cost"]) / out["net_revenue"].replace(0, np.nan)
    out["cancellation_rate"] = out["cancelled_orders"] / out["all_orders"].replace(0, np.nan)
    out["asp"] = out["gmv"] / out["units"].replace(0, np.nan)
    return out


def _close(a, b) -> bool:
    if a is None or b is None or (isinstance(a, float) and np.isnan(a)) or (isinstance(b, float) and np.isnan(b)):
        return (a is None or a != a) and (b is None or b != b)
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def _row(frame: pd.DataFrame, key: str, value) -> dict:
    r = frame.set_index(key).loc[value]
    return {m: (None if pd.isna(r[m]) else float(r[m])) for m in METRICS}


CASES = [(p, s) for p in PERIODS for s in ("no filter", "a category", "a vendor", "channel web")]


@pytest.fixture(scope="module")
def computed(engine, filter_sets):
    """compute_products_page for every case, on rollups and on raw tables, with every product's
    figures (fetch_product_metrics) under "products"."""
    out = {}
    with engine.connect() as conn:
        for pname, sname in CASES:
            f = Filters.make(PERIODS[pname], **filter_sets[sname])
            pages = (P.compute_products_page(conn, f, tz=TZ, compare=True),
                     P.compute_products_page(conn, f, tz=TZ, use_rollups=False))
            for page, use_rollups in zip(pages, (True, False)):
                page["products"] = P.fetch_product_metrics(conn, f, tz=TZ, use_rollups=use_rollups)
            out[pname, sname] = pages
    return out


@pytest.mark.parametrize("pname,sname", CASES, ids=[f"{p}-{s}" for p, s in CASES])
def test_every_product_figure_equals_raw(raw, filter_sets, computed, pname, sname):
    period, dims = PERIODS[pname], filter_sets[sname]
    page, raw_page = computed[pname, sname]
    products = page["products"]
    want = _per(raw, period, dims, "product_id")
    assert set(products["product_id"]) == set(want.index), "one row per product ordered in the period"
    assert len(products) > 5
    got = products.set_index("product_id")
    for col in ("gmv", "net_revenue", "take_revenue", "units", "orders", "cancelled_orders", "aov", "refund_rate",
                "gross_margin", "cancellation_rate", "asp"):
        a, w = got[col].to_numpy(float), want[col].reindex(got.index).to_numpy(float)
        same = np.isclose(a, w, rtol=1e-9, atol=1e-6) | (np.isnan(a) & np.isnan(w))
        assert same.all(), (col, got.index[~same][:5].tolist(), a[~same][:5], w[~same][:5])
    assert (got["margin"] - (want["net_revenue"] - want["cost"]).reindex(got.index)).abs().max() < 1e-6
    # Names, vendor and category come from the product's row.
    info = raw["products"].set_index("product_id")
    vendors = raw["vendors"].set_index("vendor_id")["name"]
    assert (got["name"] == info.loc[got.index, "name"]).all()
    assert (got["category"] == info.loc[got.index, "category"]).all()
    assert (got["vendor_id"] == info.loc[got.index, "vendor_id"]).all()
    assert (got["vendor"] == vendors.loc[got["vendor_id"]].to_numpy()).all()
    # The raw baseline gives the same figures.
    pd.testing.assert_frame_equal(products.reset_index(drop=True), raw_page["products"].reset_index(drop=True),
                                  check_exact=False, rtol=1e-9)
    # expected() per product, for the top, the bottom and a few in between.
    sample = list(products["product_id"].head(4)) + list(products["product_id"].tail(3)) \
        + list(products["product_id"].sample(4, random_state=1))
    for pid in sample:
        want = expected(raw, period.start, period.end, {**dims, "product_id": [pid]})
        assert_close(_row(products, "product_id", pid), {m: want[m] for m in METRICS}, f"{pname} {sname} product {pid}")


@pytest.mark.parametrize("pname,sname", CASES, ids=[f"{p}-{s}" for p, s in CASES])
def test_every_category_figure_equals_raw(raw, filter_sets, computed, pname, sname):
    period, dims = PERIODS[pname], filter_sets[sname]
    page, raw_page = computed[pname, sname]
    cats = page["categories"]
    assert set(cats["category"]) == set(_lines(raw, period, dims)["category"])
    for c in cats["category"]:
        want = expected(raw, period.start, period.end, {**dims, "category": [c]})
        assert_close(_row(cats, "category", c), {m: want[m] for m in METRICS}, f"{pname} {sname} {c}")
        assert_close(_row(raw_page["categories"], "category", c), {m: want[m] for m in METRICS}, "raw tables")
    units = _lines(raw, period, dims).query("counted").groupby("category")["quantity"].sum()
    assert (cats.set_index("category")["units"] == units.reindex(cats["category"]).to_numpy()).all()


def _ranked(want: pd.DataFrame, metric: str, n: int, *, bottom: bool = False) -> pd.DataFrame:
    """The n highest (lowest) values of metric; ties: larger GMV first, then product id."""
    pool = want[want[metric].notna() & ((want["orders"] > 0) if bottom else True)].reset_index()
    pool = pool.sort_values([metric, "gmv", "product_id"], ascending=[bottom, False, True], kind="mergesort")
    return pool.head(n)


@pytest.mark.parametrize("pname,sname", CASES, ids=[f"{p}-{s}" for p, s in CASES])
def test_top_and_bottom_products_by_every_metric(engine, raw, filter_sets, computed, pname, sname):
    period, dims = PERIODS[pname], filter_sets[sname]
    f = Filters.make(period, **dims)
    want = _per(raw, period, dims, "product_id")
    with engine.connect() as conn:
        for metric in P.RANK_METRICS:
            n = 5 if metric in ("aov", "orders") else 10
            got = P.fetch_product_lists(conn, f, metric=metric, n=n, tz=TZ)
            for bottom in (False, True):
                lst = got["bottom" if bottom else "top"]
                wanted = _ranked(want, metric, n, bottom=bottom)
                assert np.allclose(lst[metric], wanted[metric].to_numpy(), rtol=1e-9), (metric, bottom)
                # Equal values may come in either order from float sums: compare ids where values differ.
                distinct = ~wanted[metric].round(9).duplicated(keep=False).to_numpy()
                assert (lst["product_id"].to_numpy()[distinct] == wanted["product_id"].to_numpy()[distinct]).all()
                if bottom:
                    assert (lst["orders"] > 0).all(), "bottom lists only products with a sale"
            assert got["summary"]["products"] == len(want)
            assert got["summary"]["sold"] == int((want["orders"] > 0).sum())
    top, bottom = computed[pname, sname][0]["top"], computed[pname, sname][0]["bottom"]
    assert list(top["gmv"]) == sorted(top["gmv"], reverse=True) and list(bottom["gmv"]) == sorted(bottom["gmv"])
    raw_page = computed[pname, sname][1]
    for name in ("top", "bottom", "price_volume", "margin_high", "margin_low"):
        pd.testing.assert_frame_equal(computed[pname, sname][0][name], raw_page[name], check_exact=False, rtol=1e-9)


@pytest.mark.parametrize("pname,sname", CASES, ids=[f"{p}-{s}" for p, s in CASES])
def test_price_vs_volume_and_margins(engine, raw, filter_sets, computed, pname, sname):
    period, dims = PERIODS[pname], filter_sets[sname]
    page = computed[pname, sname][0]
    want = _per(raw, period, dims, "product_id")
    sold = want[(want["units"] > 0) & (want["gmv"] > 0)].sort_values("gmv", ascending=False)
    pv = page["price_volume"]
    assert len(pv) == min(P.SCATTER_LIMIT, len(sold))
    assert set(pv["product_id"]) == set(sold.index[:P.SCATTER_LIMIT])
    for r in pv.itertuples():
        assert _close(r.asp, sold.at[r.product_id, "gmv"] / sold.at[r.product_id, "units"])
        assert _close(r.units, sold.at[r.product_id, "units"])
    assert page["summary"]["priced"] == len(sold)
    f = Filters.make(period, **dims)
    with engine.connect() as conn:
        for min_gmv in (0.0, 500.0):
            got = P.fetch_product_lists(conn, f, min_gmv=min_gmv, margin_n=5, tz=TZ)
            high, low = got["margin_high"], got["margin_low"]
            pool = want[(want["gmv"] >= min_gmv) & (want["net_revenue"] > 0)]["gross_margin"].dropna()
            assert got["summary"]["eligible"] == len(pool)
            assert np.allclose(high["gross_margin"], pool.sort_values(ascending=False).head(5).to_numpy())
            rest = pool.drop(high["product_id"])
            assert np.allclose(low["gross_margin"], rest.sort_values().head(5).to_numpy())
            assert (high["gmv"] >= min_gmv).all() and (low["gmv"] >= min_gmv).all()
            assert not set(high["product_id"]) & set(low["product_id"])
            for k in ("gmv", "refunded", "cost"):
                assert _close(got["summary"][k], float(want[k].sum()))


def test_year_has_more_products_than_the_scatter_shows(computed):
    page = computed["a year", "no filter"][0]
    assert len(page["price_volume"]) == P.SCATTER_LIMIT < page["summary"]["priced"]


# --- inventory against raw snapshots ------------------------------------------------------------

def _cover(raw, as_of: date, dims: dict, window: int = 28) -> pd.DataFrame:
    """Latest snapshot ≤ as_of per product, units over the window ending on its date, cover."""
    prods = raw["products"]
    for d in ("category", "vendor_id"):
        if d in dims:
            prods = prods[prods[d].isin(dims[d])]
    s = raw["snapshots"]
    s = s[(s["snapshot_date"] <= as_of) & s["product_id"].isin(prods["product_id"])]
    s = s.sort_values("snapshot_date").groupby("product_id").tail(1).set_index("product_id")
    li = raw["lines"][raw["lines"]["counted"]]
    li = li[li["product_id"].isin(s.index)]
    snap_day = li["product_id"].map(s["snapshot_date"])
    inside = (li["day"] <= snap_day) & (li["day"] >= snap_day - timedelta(days=window - 1))
    units = li[inside].groupby("product_id")["quantity"].sum().reindex(s.index).fillna(0).astype(float)
    out = pd.DataFrame({"snapshot_date": s["snapshot_date"], "on_hand": s["on_hand"].astype(float), "units": units})
    out["avg"] = out["units"] / window
    out["cover"] = [oh / a if a > 0 else (np.inf if oh > 0 else np.nan) for oh, a in zip(out["on_hand"], out["avg"])]
    return out


@pytest.mark.parametrize("as_of", [SEED_END, LAST_DAY, SEED_END - timedelta(days=30)], ids=str)
@pytest.mark.parametrize("sname", ["no filter", "a category", "a vendor", "channel web"])
def test_inventory_cover_equals_raw(engine, raw, filter_sets, as_of, sname):
    dims = filter_sets[sname]
    f = Filters.make(PERIODS["30 days"], **dims)
    want = _cover(raw, as_of, dims)
    assert len(want) > 0
    with engine.connect() as conn:
        frames = [P.fetch_inventory_cover(conn, f, as_of, tz=TZ),
                  P.fetch_inventory_cover(conn, f, as_of, tz=TZ, use_rollups=False)]
    for inv in frames:
        got = inv.set_index("product_id")
        assert set(got.index) == set(want.index)
        assert (got["snapshot_date"] == want["snapshot_date"].reindex(got.index)).all()
        assert (got["on_hand"] == want["on_hand"].reindex(got.index)).all()
        assert np.allclose(got["avg_daily_units"], want["avg"].reindex(got.index))
        w = want["cover"].reindex(got.index)
        assert ((np.isinf(got["days_cover"])) == np.isinf(w)).all() and (got["days_cover"].isna() == w.isna()).all()
        finite = np.isfinite(w)
        assert np.allclose(got["days_cover"][finite], w[finite])
    with engine.connect() as conn:
        summaries = {(low, high, use_rollups): P.fetch_inventory_summary(conn, f, as_of, low=low, high=high, tz=TZ,
                                                                         use_rollups=use_rollups)
                     for low, high in ((7, 180), (14, 60)) for use_rollups in (True, False)}
    for (low, high, _), got in summaries.items():
        risk = want[(want["avg"] > 0) & ((want["on_hand"] == 0) | (want["cover"] < low))]
        over = want[(want["on_hand"] > 0) & ((want["avg"] == 0) | (want["cover"] > high))]
        assert set(got["stockout"]["product_id"]) == set(risk.index)
        assert set(got["overstock"]["product_id"]) == set(over.index)
        assert list(got["stockout"]["days_cover"]) == sorted(got["stockout"]["days_cover"])
        stock_value = got["overstock"]["stock_value"]
        assert list(stock_value) == sorted(stock_value, reverse=True)
        sm = got["summary"]
        assert (sm["products"], sm["risk"], sm["over"]) == (len(want), len(risk), len(over))
        assert sm["risk_out"] == int((risk["on_hand"] == 0).sum())
        assert sm["in_stock"] == int((want["on_hand"] > 0).sum())
        # Buckets: counted here from the raw cover, with the page's labels.
        c, selling = want["cover"], want["avg"] > 0
        buckets = [selling & (want["on_hand"] <= 0), (c > 0) & (c < 7), (c >= 7) & (c < 30), (c >= 30) & (c < 90),
                   (c >= 90) & (c <= 180), (c > 180) & np.isfinite(c), np.isinf(c), c.isna()]
        assert list(got["distribution"]["bucket"]) == list(P.COVER_BUCKETS)
        assert list(got["distribution"]["products"]) == [int(m.sum()) for m in buckets]
    # Snapshots are weekly: a date between two picks the earlier one.
    if as_of == LAST_DAY:
        assert (frames[0]["snapshot_date"] == SEED_END - timedelta(days=7)).all()


def test_empty_period(engine):
    f = Filters.make(Period(date(2019, 1, 1), date(2019, 1, 31)))
    with engine.connect() as conn:
        for use_rollups in (True, False):
            page = P.compute_products_page(conn, f, tz=TZ, use_rollups=use_rollups, compare=True)
            for k in ("top", "bottom", "categories", "price_volume", "margin_high", "margin_low"):
                assert page[k].empty, k
            assert page["summary"] == {"products": 0, "sold": 0, "priced": 0, "eligible": 0, "gmv": 0.0,
                                       "refunded": 0.0, "cost": 0.0}
            inv = page["inventory"]
            assert inv["stockout"].empty and inv["overstock"].empty and inv["summary"]["products"] == 0
            assert inv["summary"]["first_snapshot"] == SEED_END - timedelta(weeks=11)
            assert inv["distribution"]["products"].sum() == 0
            assert P.fetch_product_metrics(conn, f, tz=TZ, use_rollups=use_rollups).empty


def test_raw_baseline_reads_raw_tables_only(engine):
    f = Filters.make(PERIODS["30 days"], category=["Fashion"])
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)
    with engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", record)
        P.compute_products_page(conn, f, tz=TZ, use_rollups=False, compare=True)
        sa.event.remove(conn, "before_cursor_execute", record)
        assert seen and not any("rollup" in s for s in seen), [s for s in seen if "rollup" in s]
        seen.clear()
        sa.event.listen(conn, "before_cursor_execute", record)
        P.compute_products_page(conn, f, tz=TZ)
        sa.event.remove(conn, "before_cursor_execute", record)
    assert any("rollup_product_daily" in s or "rollup_category_daily" in s for s in seen)
    # Every value is a bound parameter: the category never appears in the SQL text.
    assert not any("Fashion" in s for s in seen)


def test_rank_refuses_unknown_metric(engine):
    with engine.connect() as conn, pytest.raises(KeyError, match="cannot rank by"):
        P.fetch_product_lists(conn, Filters.make(PERIODS["30 days"]), metric="sessions", tz=TZ)


def test_change_text():
    assert P.change_text("units", 110, 100) == "+10.0 %"
    assert P.change_text("units", 5, 0) is None
    assert P.change_text("gross_margin", 0.31, 0.30) == "+1.0 pp"


# --- inventory edge cases with hand-made rows ----------------------------------------------------

def _at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


def _seed_inventory(conn) -> None:
    x = lambda sql, rows: conn.execute(sa.text(sql), rows)  # noqa: E731
    x("INSERT INTO mart.vendors VALUES (:id, :name, 'Fashion', 'EU', 'DE', '2020-01-01', 'active', 0.1)",
      [{"id": 1, "name": "Alpha Wear"}, {"id": 2, "name": "Beta Tools"}])
    x("""INSERT INTO mart.products VALUES (:id, :v, :sku, :name, :cat, 'Misc', 10, 4, '2020-01-01')""", [
        {"id": 1, "v": 1, "sku": "A-1", "name": "Dusty coat", "cat": "Fashion"},        # stock, no recent sales
        {"id": 2, "v": 1, "sku": "A-2", "name": "Sold-out scarf", "cat": "Fashion"},     # no stock, recent sales
        {"id": 3, "v": 2, "sku": "B-3", "name": "Forgotten drill", "cat": "Tools"},      # no stock, no sales
        {"id": 4, "v": 2, "sku": "B-4", "name": "Two-snapshot saw", "cat": "Tools"},     # snapshot by date
        {"id": 5, "v": 2, "sku": "B-5", "name": "Future hammer", "cat": "Tools"},        # snapshot after as_of only
    ])
    x("INSERT INTO mart.customers VALUES (1, 'C', 'DE', 'EU', 'B2C', 'web', '2020-01-01')", {})
    orders, lines = [], []

    def sell(day: date, product: int, qty: int, status: str = "delivered") -> None:
        oid = len(orders) + 1
        orders.append({"id": oid, "at": _at(day), "status": status})
        lines.append({"o": oid, "p": product, "v": 1 if product <= 2 else 2, "q": qty})
    sell(date(2026, 9, 1), 1, 5)            # product 1: only long before the window
    sell(date(2026, 11, 10), 2, 14)         # product 2: 14 units in the window -> 0.5 a day
    # product 4, snapshot 2026-11-08 (window 12 Oct – 8 Nov): 28 units -> 1 a day
    sell(date(2026, 10, 12), 4, 10)         # first day of the window: counts
    sell(date(2026, 10, 11), 4, 100)        # the day before: does not count
    sell(date(2026, 11, 8), 4, 18)          # the snapshot's day: counts
    sell(date(2026, 11, 9), 4, 50)          # after the snapshot: does not count for it
    sell(date(2026, 11, 1), 4, 99, "cancelled")   # cancelled: never counts
    x("""INSERT INTO mart.orders VALUES (:id, 1, :at, :status, 'web', 'B2C', 'card', 'captured', 'EUR', 0)""", orders)
    x("""INSERT INTO mart.order_items VALUES (:o, 1, :p, :v, :q, 10, 0, 4, 0)""", lines)
    x("INSERT INTO mart.inventory_snapshots VALUES (:d, :p, :n)", [
        {"d": date(2026, 11, 15), "p": 1, "n": 40}, {"d": date(2026, 11, 15), "p": 2, "n": 0},
        {"d": date(2026, 11, 15), "p": 3, "n": 0},
        {"d": date(2026, 11, 1), "p": 4, "n": 100}, {"d": date(2026, 11, 8), "p": 4, "n": 5},
        {"d": date(2026, 12, 1), "p": 5, "n": 7},
    ])


@pytest.mark.parametrize("rollups", [False, True], ids=["raw", "rollups"])
def test_inventory_edge_cases(empty_engine, rollups):
    with empty_engine.begin() as conn:
        _seed_inventory(conn)
        if rollups:
            refresh_rollups(conn, full=True, timezone=TZ)
    f = Filters.make(Period(date(2026, 11, 1), date(2026, 11, 20)))
    with empty_engine.connect() as conn:
        assert fetch_rollups_usable(conn, TZ) == rollups
        inv = P.fetch_inventory_cover(conn, f, date(2026, 11, 20), tz=TZ).set_index("product_id")
        early = P.fetch_inventory_cover(conn, f, date(2026, 11, 5), tz=TZ).set_index("product_id")
        tools = P.fetch_inventory_cover(conn, Filters.make(f.period, category=["Tools"]), date(2026, 11, 20), tz=TZ)
        web = P.fetch_inventory_cover(conn, Filters.make(f.period, channel=["mobile"]), date(2026, 11, 20), tz=TZ)
        before = P.fetch_inventory_cover(conn, f, date(2026, 10, 1), tz=TZ)
        summary = P.fetch_inventory_summary(conn, f, date(2026, 11, 20), tz=TZ)
        tight = P.fetch_inventory_summary(conn, f, date(2026, 11, 20), low=5, high=4, tz=TZ)
        few = P.fetch_inventory_summary(conn, f, date(2026, 11, 20), limit=1, tz=TZ)
    assert list(inv.index) == [1, 2, 3, 4], "a snapshot after as_of is not used"
    assert inv.at[1, "units_window"] == 0 and np.isinf(inv.at[1, "days_cover"])
    assert inv.at[2, "on_hand"] == 0 and inv.at[2, "avg_daily_units"] == 0.5 and inv.at[2, "days_cover"] == 0
    assert np.isnan(inv.at[3, "days_cover"])
    assert inv.at[4, "snapshot_date"] == date(2026, 11, 8) and inv.at[4, "on_hand"] == 5
    assert inv.at[4, "units_window"] == 28 and inv.at[4, "avg_daily_units"] == 1 and inv.at[4, "days_cover"] == 5
    assert inv.at[4, "vendor"] == "Beta Tools" and inv.at[4, "category"] == "Tools"
    assert inv.at[1, "stock_value"] == 40 * 4
    assert list(summary["stockout"]["product_id"]) == [2, 4], "zero stock first, then fewest days"
    assert list(summary["overstock"]["product_id"]) == [1], "stock and no sales in 28 days"
    assert list(tight["stockout"]["product_id"]) == [2], "5 days is not below 5"
    assert set(tight["overstock"]["product_id"]) == {1, 4}
    assert list(summary["distribution"]["products"]) == [1, 1, 0, 0, 0, 0, 1, 1], "2 out, 4 at 5 days, 1 ∞, 3 none"
    assert list(few["stockout"]["product_id"]) == [2] and few["summary"]["risk"] == 2, "the list is cut, not the count"
    # As of 5 Nov the 1 Nov snapshot counts (window 5 Oct – 1 Nov: 10 + 100 units; the cancelled 99 never).
    assert early.at[4, "snapshot_date"] == date(2026, 11, 1) and early.at[4, "units_window"] == 110
    assert set(early.index) == {4}, "products whose first snapshot is later are not listed"
    assert set(tools["product_id"]) == {3, 4}
    assert list(web["units_window"]) == list(inv["units_window"]), "order-level filters do not apply to stock"
    assert before.empty and before.attrs["first_snapshot"] == date(2026, 11, 1)
