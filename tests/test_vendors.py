"""Vendor analytics (analytics/vendors.py) against independent pandas computations on raw rows.

Per-vendor metrics use tests/raw_metrics.expected(); ranks, concentration, lifecycle, category share
and a vendor's customers are recomputed here from the raw rows, sharing no code with analytics/.
"""
from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import vendors as av
from analytics.filters import FilterError, Filters, Period
from tests.raw_metrics import assert_close, expected, lines_in, load_raw, prepare

TZ = "UTC"
DAYS_30 = Period(date(2026, 10, 21), date(2026, 11, 19))
YEAR = Period(date(2025, 1, 1), date(2025, 12, 31))
EMPTY = Period(date(2019, 1, 1), date(2019, 1, 31))
LEADERBOARD = ("gmv", "net_revenue", "orders", "aov", "refund_rate", "cancellation_rate", "gross_margin",
               "take_revenue")

CASES = [
    ("30 days", DAYS_30, "previous", {}),
    ("1 year", YEAR, "previous", {}),
    ("30 days, web", DAYS_30, "previous", {"channel": ["web"]}),
    ("1 year, DE customers", YEAR, "previous", {"country": ["DE"]}),
    ("30 days, Electronics", DAYS_30, "previous", {"category": ["Electronics"]}),
    ("1 year vs last year, B2B", YEAR, "last_year", {"segment": ["B2B"]}),
]
IDS = [c[0] for c in CASES]


@pytest.fixture(scope="module")
def raw(engine):
    return prepare(load_raw(engine), TZ)


@pytest.fixture(scope="module")
def conn(engine):
    with engine.connect() as c:
        yield c


def _filters(period, comparison, dims) -> Filters:
    return Filters.make(period, comparison=comparison, **dims)


def _lines(raw, period: Period, dims: dict) -> pd.DataFrame:
    return lines_in(raw, period.start, period.end, dims)


def _narrow(raw, period: Period) -> dict:
    """raw with orders and lines cut to the period: expected() then filters far fewer rows."""
    o, li = raw["orders"], raw["lines"]
    return {**raw, "orders": o[(o["day"] >= period.start) & (o["day"] <= period.end)],
            "lines": li[(li["day"] >= period.start) & (li["day"] <= period.end)]}


def _gmv_by_vendor(raw, period: Period, dims: dict) -> pd.Series:
    li = _lines(raw, period, dims)
    return li[li["counted"]].groupby("vendor_id")["value"].sum()


def _none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _rank(gmv: dict) -> dict:
    """1 + number of vendors with a strictly larger positive GMV."""
    positive = [g for g in gmv.values() if g > 0]
    return {v: 1 + sum(1 for o in positive if o > g) for v, g in gmv.items() if g > 0}


# ---------------------------------------------------------------------------------------------
# Leaderboard


@pytest.mark.parametrize("name,period,comparison,dims", CASES, ids=IDS)
def test_vendor_table_matches_raw_rows(conn, raw, name, period, comparison, dims):
    f = _filters(period, comparison, dims)
    table = av.compute_vendor_table(conn, f, tz=TZ).set_index("vendor_id")
    prev_period = f.compare
    vendors = set(_lines(raw, period, dims)["vendor_id"]) | set(_lines(raw, prev_period, dims)["vendor_id"])
    assert set(table.index) == vendors, name
    now_raw, before_raw = _narrow(raw, period), _narrow(raw, prev_period)
    cur = {v: expected(now_raw, period.start, period.end, {**dims, "vendor_id": [v]}) for v in vendors}
    prev = {v: expected(before_raw, prev_period.start, prev_period.end, {**dims, "vendor_id": [v]}) for v in vendors}
    for v in vendors:
        row = table.loc[v]
        assert_close({m: _none(row[m]) for m in LEADERBOARD}, {m: cur[v][m] for m in LEADERBOARD}, f"{name} #{v}")
        assert_close({m: _none(row[f"{m}_prev"]) for m in LEADERBOARD}, {m: prev[v][m] for m in LEADERBOARD},
                     f"{name} #{v} before")
        growth = cur[v]["gmv"] / prev[v]["gmv"] - 1 if prev[v]["gmv"] > 0 else None
        assert_close({"growth": _none(row["growth"])}, {"growth": growth}, f"{name} #{v}")
    rank_now = _rank({v: cur[v]["gmv"] for v in vendors})
    rank_before = _rank({v: prev[v]["gmv"] for v in vendors})
    for v in vendors:
        assert _none(table.loc[v, "rank"]) == rank_now.get(v), (name, v)
        assert _none(table.loc[v, "rank_prev"]) == rank_before.get(v), (name, v)
        change = rank_before[v] - rank_now[v] if v in rank_now and v in rank_before else None
        assert _none(table.loc[v, "rank_change"]) == change, (name, v)
    names = pd.read_sql_query(sa.text("SELECT vendor_id, name FROM mart.vendors"), conn)
    assert dict(zip(table.index, table["name"])) == {v: n for v, n in zip(names["vendor_id"], names["name"])
                                                     if v in vendors}


def test_search_matches_names_case_insensitively(conn, raw):
    vendors = pd.read_sql_query(sa.text("SELECT vendor_id, name FROM mart.vendors"), conn)
    fragment = vendors["name"].iloc[0][1:4].upper()
    want = sorted(vendors.loc[vendors["name"].str.contains(fragment, case=False, regex=False), "vendor_id"])
    assert want and av.fetch_matching_vendor_ids(conn, fragment) == want
    assert av.fetch_matching_vendor_ids(conn, "%") == [] and av.fetch_matching_vendor_ids(conn, "_") == [], \
        "wildcards are searched for literally"
    f = _filters(DAYS_30, "previous", {})
    # The page's path: the table, the vendors whose names match, one page of those.
    table = av.compute_vendor_table(conn, f, tz=TZ)
    page = av.page_leaderboard(table, ids=av.fetch_matching_vendor_ids(conn, fragment.lower()), page_size=1000)
    assert sorted(page.rows["vendor_id"]) == sorted(set(want) & set(table["vendor_id"]))
    assert page.total == len(table) and page.matching == len(page.rows)


def test_search_escapes_like_wildcards(empty_engine):
    names = {1: "100% Organic", 2: "100 Organic", 3: "Snake_Case Ltd", 4: "SnakeXCase Ltd", 5: "Back\\slash Co",
             6: "Backslash Co"}
    with empty_engine.begin() as c:
        for vid, name in names.items():
            c.execute(sa.text("""INSERT INTO mart.vendors VALUES (:id, :name, 'Books & Media', 'Europe', 'DE',
                                  DATE '2024-01-01', 'active', 0.1)"""), {"id": vid, "name": name})
    with empty_engine.connect() as c:
        for text, want in [("100%", [1]), ("%", [1]), ("e_C", [3]), ("_", [3]), ("\\", [5]), ("organic", [1, 2]),
                           ("  snake", [3, 4]), ("%_", [])]:
            assert av.fetch_matching_vendor_ids(c, text) == want, text


SORT_KEYS = list(av.SORTS)


@pytest.fixture(scope="module")
def table_30(conn):
    return av.compute_vendor_table(conn, _filters(DAYS_30, "previous", {}), tz=TZ)


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("sort", SORT_KEYS)
def test_sort_orders_every_page(table_30, sort, descending):
    pages, n, seen = [], 1, []
    while True:
        p = av.page_leaderboard(table_30, sort=sort, descending=descending, page=n, page_size=7)
        pages.append(p.rows)
        seen.append(p.page)
        if p.page == p.pages:
            break
        n += 1
    rows = pd.concat(pages, ignore_index=True)
    assert sorted(rows["vendor_id"]) == sorted(table_30["vendor_id"]), "every vendor once"
    values = rows[sort]
    known = values.dropna()
    assert values.isna().sum() == 0 or values.iloc[len(known):].isna().all(), "unknown values last"
    known = known.str.lower() if sort == "name" else known.astype(float)
    pairs = list(zip(known, known.iloc[1:]))
    assert all((a >= b) if descending else (a <= b) for a, b in pairs), sort


def test_unknown_sort_is_refused(table_30):
    with pytest.raises(FilterError, match="cannot sort by"):
        av.page_leaderboard(table_30, sort="gmv; DROP TABLE x")


def test_pagination_bounds(table_30):
    n = len(table_30)
    assert n > av.PAGE_SIZE, "the test data has more than one page of vendors"
    first = av.page_leaderboard(table_30)
    assert (first.page, first.pages, len(first.rows)) == (1, math.ceil(n / av.PAGE_SIZE), av.PAGE_SIZE)
    assert (first.first, first.last, first.matching, first.total) == (1, av.PAGE_SIZE, n, n)
    assert list(first.rows["rank"][:3]) == [1, 2, 3]
    assert av.page_leaderboard(table_30, page=0).page == 1
    assert av.page_leaderboard(table_30, page=-5).page == 1
    last = av.page_leaderboard(table_30, page=10_000)
    assert last.page == last.pages and len(last.rows) == n - (last.pages - 1) * av.PAGE_SIZE
    assert (last.first, last.last) == ((last.pages - 1) * av.PAGE_SIZE + 1, n)
    none = av.page_leaderboard(table_30, ids=[])
    assert (none.page, none.pages, len(none.rows), none.matching, none.first, none.last) == (1, 1, 0, 0, 0, 0)
    some = av.page_leaderboard(table_30, ids=list(table_30["vendor_id"][:3]), page=2)
    assert (some.page, some.pages, some.matching, some.total) == (1, 1, 3, n)


def test_empty_period(conn):
    f = _filters(EMPTY, "previous", {})
    out = av.compute_vendors_page(conn, f, tz=TZ)
    assert out["table"].empty and out["leaderboard"].rows.empty and out["leaderboard"].matching == 0
    c = out["concentration"]
    assert c.hhi is None and c.curve.empty and c.points.empty and c.vendors == 0
    assert out["hhi"].empty
    assert out["lifecycle"].vendors.empty and set(out["lifecycle"].counts.values()) == {0}
    page = av.page_leaderboard(av.compute_vendor_table(conn, f, tz=TZ), ids=av.fetch_matching_vendor_ids(conn, "a"))
    assert page.rows.empty and page.pages == 1


# ---------------------------------------------------------------------------------------------
# Concentration


@pytest.mark.parametrize("name,period,comparison,dims", CASES, ids=IDS)
def test_concentration_matches_raw_rows(conn, raw, name, period, comparison, dims):
    f = _filters(period, comparison, dims)
    out = av.compute_vendors_page(conn, f, tz=TZ)
    c = out["concentration"]
    for gmv_map, hhi, points in ((_gmv_by_vendor(raw, period, dims), c.hhi, c.points),
                                 (_gmv_by_vendor(raw, f.compare, dims), c.hhi_prev, c.points_prev)):
        g = sorted((x for x in gmv_map if x > 0), reverse=True)
        total = sum(g)
        assert hhi == pytest.approx(sum((100 * x / total) ** 2 for x in g), rel=1e-9), name
        for top, k, share in zip(points["top_share"], points["vendors"], points["gmv_share"]):
            want_k = max(1, math.ceil(round(top * len(g), 9)))
            assert k == want_k and share == pytest.approx(sum(g[:want_k]) / total, rel=1e-9), (name, top)
    sold = _lines(raw, period, dims)
    assert c.vendors == sold[sold["counted"]]["vendor_id"].nunique()
    curve = c.curve
    assert curve["gmv_share"].iloc[0] == 0 and curve["gmv_share"].iloc[-1] == pytest.approx(1.0)
    assert curve["gmv_share"].is_monotonic_increasing

    # HHI per month over the window: the 12 months up to the period's end, or the whole period.
    hhi = out["hhi"]
    end = period.end
    first_month = date(end.year - (1 if end.month < 12 else 0), (end.month % 12) + 1, 1)
    window = Period(min(first_month, period.start.replace(day=1)), end)
    li = _lines(raw, window, dims)
    li = li[li["counted"]].assign(month=lambda d: d["day"].map(lambda x: x.replace(day=1)))
    per = li.groupby(["month", "vendor_id"])["value"].sum()
    per = per[per > 0]
    want = per.groupby(level="month").apply(lambda s: float(((100 * s / s.sum()) ** 2).sum()))
    assert list(hhi["month"]) == list(want.index), name
    assert np.allclose(hhi["hhi"], want.to_numpy(), rtol=1e-9)
    assert list(hhi["vendors"]) == list(per.groupby(level="month").size())


def test_hhi_window():
    assert av.hhi_window(DAYS_30) == Period(date(2025, 12, 1), date(2026, 11, 19))
    assert av.hhi_window(Period(date(2023, 1, 15), date(2025, 3, 3))) == Period(date(2023, 1, 1), date(2025, 3, 3))
    assert av.hhi_window(Period(date(2025, 12, 1), date(2025, 12, 31))) == Period(date(2025, 1, 1), date(2025, 12, 31))


@pytest.mark.parametrize("gmv,want", [([100.0], 10_000.0), ([50.0, 50.0], 5_000.0), ([1.0] * 4, 2_500.0),
                                      ([30.0, 0.0, -5.0, 10.0], 6_250.0), ([], None)])
def test_hhi_formula(gmv, want):
    assert av.hhi(pd.Series(gmv, dtype="float64")) == want


# ---------------------------------------------------------------------------------------------
# Lifecycle


@pytest.mark.parametrize("name,period,comparison,dims", CASES, ids=IDS)
def test_lifecycle_matches_raw_rows(conn, raw, name, period, comparison, dims):
    f = _filters(period, comparison, dims)
    life = av.compute_vendors_page(conn, f, tz=TZ)["lifecycle"]
    everything = _lines(raw, Period(date(2000, 1, 1), period.end), dims)
    counted = everything[everything["counted"]]
    first = counted.groupby("vendor_id")["day"].min()
    gmv_now = _gmv_by_vendor(raw, period, dims)
    gmv_before = _gmv_by_vendor(raw, f.compare, dims)
    now, before = set(gmv_now.index), set(gmv_before.index)   # vendors with a counted line
    new = {v for v in now if first[v] >= period.start}
    change = {v: gmv_now[v] / gmv_before[v] - 1 for v in now & before - new if gmv_before[v] > 0}
    want = {"new": new, "growing": {v for v, c in change.items() if c > 0.2},
            "declining": {v for v, c in change.items() if c < -0.2}, "churned": before - now}
    got = life.vendors.groupby("group")["vendor_id"].apply(set).to_dict()
    for g in av.LIFECYCLE:
        assert got.get(g, set()) == want[g], (name, g)
        assert life.counts[g] == len(want[g])
    firsts = life.vendors[life.vendors["group"] == "new"].set_index("vendor_id")["first_sale"]
    assert {v: firsts[v] for v in new} == {v: first[v] for v in new}


def test_lifecycle_without_comparison(conn):
    life = av.compute_vendors_page(conn, _filters(DAYS_30, "none", {}), tz=TZ)["lifecycle"]
    assert not life.has_compare and life.counts["growing"] is None and life.counts["churned"] is None
    assert set(life.vendors["group"]) <= {"new"}


# ---------------------------------------------------------------------------------------------
# One vendor


def _vendors_to_check(table: pd.DataFrame) -> list[int]:
    """The top vendor, one from the middle and the smallest with sales."""
    sold = table[table["rank"].notna()].sort_values("rank")
    return [int(sold["vendor_id"].iloc[i]) for i in (0, len(sold) // 2, len(sold) - 1)]


DRILL_CASES = [CASES[0], CASES[2], CASES[3], CASES[4]]


@pytest.mark.parametrize("name,period,comparison,dims", DRILL_CASES, ids=[c[0] for c in DRILL_CASES])
def test_vendor_detail_matches_raw_rows(conn, raw, name, period, comparison, dims):
    f = _filters(period, comparison, dims)
    table = av.compute_vendor_table(conn, f, tz=TZ)
    vendors = pd.read_sql_query(sa.text("SELECT vendor_id, category FROM mart.vendors"), conn)
    vendor_category = dict(zip(vendors["vendor_id"], vendors["category"]))
    li_all = raw["lines"]
    for i, v in enumerate(_vendors_to_check(table)):
        # With and without the vendor table at hand (category totals from it, or queried).
        d = av.compute_vendor_detail(conn, f, v, tz=TZ, table=table if i % 2 else None)
        assert d.profile["vendor_id"] == v
        # Products: top by GMV with units, orders and margin.
        li = _lines(raw, period, {**dims, "vendor_id": [v]})
        lc = li[li["counted"]]
        per = lc.groupby("product_id").agg(gmv=("value", "sum"), refund=("refund", "sum"), cost=("cost", "sum"),
                                           units=("quantity", "sum"), orders=("order_id", "nunique"))
        top = per.sort_values("gmv", ascending=False).head(20)
        got = d.products.set_index("product_id")
        assert len(got) == len(top) and got["gmv"].to_numpy() == pytest.approx(top["gmv"].to_numpy())
        for pid, r in got.iterrows():
            w = per.loc[pid]
            net = w["gmv"] - w["refund"]
            assert (r["units"], r["orders"]) == (w["units"], w["orders"]), (name, v, pid)
            assert r["gross_margin"] == pytest.approx((net - w["cost"]) / net if net else np.nan, nan_ok=True)
            assert r["share"] == pytest.approx(w["gmv"] / per["gmv"].sum())

        # Customers new vs returning to this vendor: first counted order with its line, ever.
        mine = li_all[(li_all["vendor_id"] == v) & li_all["counted"]]
        first = mine.groupby("customer_id")["day"].min()
        for label, p in (("current", period), ("comparison", f.compare)):
            act = _lines(raw, p, {**dims, "vendor_id": [v]})
            act = act[act["counted"]].groupby("customer_id")["value"].sum()
            is_new = first.reindex(act.index) >= p.start
            row = d.customers.set_index("key").loc[label]
            assert (row["customers"], row["new"], row["returning"]) == (len(act), is_new.sum(), (~is_new).sum()), \
                (name, v, label)
            assert row["gmv_new"] == pytest.approx(act[is_new].sum())
            assert row["gmv_returning"] == pytest.approx(act[~is_new].sum())

        # Refunds per bucket.
        refunds = d.refunds.set_index("key")
        assert refunds["refunded"].sum() == pytest.approx(lc["refund"].sum())
        assert refunds["gmv"].sum() == pytest.approx(lc["value"].sum())

        # Share of its category (mart.vendors.category), vendor filter aside.
        peers = {u for u, c in vendor_category.items() if c == vendor_category[v]}
        for label, p in (("current", period), ("comparison", f.compare)):
            g = _gmv_by_vendor(raw, p, dims)
            g = g[g.index.isin(peers)]
            row = d.category_share.set_index("period").loc[label]
            assert row["vendor_gmv"] == pytest.approx(g.get(v, 0.0))
            assert row["category_gmv"] == pytest.approx(g.sum())
            assert row["share"] == pytest.approx(g.get(v, 0.0) / g.sum() if g.sum() else np.nan, nan_ok=True)
            assert _none(row["rank"]) == _rank(g.to_dict()).get(v)


def test_vendor_trend_and_customer_buckets(conn, raw):
    f = Filters.make(YEAR, grain="month", channel=["web"])
    table = av.compute_vendor_table(conn, f, tz=TZ)
    v = _vendors_to_check(table)[1]
    trend = av.fetch_vendor_trend(conn, f, v, "refund_rate", tz=TZ)
    assert len(trend) == 12
    for _, r in trend.iterrows():
        start = r["key"]
        end = (pd.Timestamp(start) + pd.offsets.MonthEnd(0)).date()
        want = expected(raw, start, end, {"channel": ["web"], "vendor_id": [v]})
        assert_close({"gmv": r["gmv"], "refund_rate": _none(r["refund_rate"])},
                     {"gmv": want["gmv"], "refund_rate": want["refund_rate"]}, str(start))
    buckets = av.fetch_vendor_customers(conn, f, v, grain="month", tz=TZ).set_index("key")
    mine = raw["lines"][(raw["lines"]["vendor_id"] == v) & raw["lines"]["counted"]]
    first = mine.groupby("customer_id")["day"].min()
    web = mine[mine["channel"] == "web"]
    for start, row in buckets.iterrows():
        end = (pd.Timestamp(start) + pd.offsets.MonthEnd(0)).date()
        act = web[(web["day"] >= start) & (web["day"] <= end)]["customer_id"].unique()
        new = int((first.reindex(act) >= start).sum())
        assert (row["customers"], row["new"], row["returning"]) == (len(act), new, len(act) - new), start


def test_unknown_vendor_has_no_detail(conn):
    assert av.compute_vendor_detail(conn, _filters(DAYS_30, "previous", {}), 10**9, tz=TZ) is None


# ---------------------------------------------------------------------------------------------
# The benchmark's entry point: rollups and raw tables agree, and raw reads no rollup


@pytest.mark.parametrize("dims", [{}, {"category": ["Electronics"]}], ids=["all", "category"])
def test_compute_vendors_page_raw_baseline(engine, dims):
    f = _filters(YEAR, "previous", dims)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as c:
            fast = av.compute_vendors_page(c, f, tz=TZ)
            read_by_app = list(statements)
            statements.clear()
            slow = av.compute_vendors_page(c, f, tz=TZ, use_rollups=False)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    vendor_rollup = "rollup_vendor_category_" if dims else "rollup_vendor_daily"
    assert any(vendor_rollup in s for s in read_by_app)
    assert not [s for s in read_by_app if "mart.order_items" in s], "the default figures read rollups only"
    assert not [s for s in statements if "rollup_" in s], "use_rollups=False reads raw tables only"
    pd.testing.assert_frame_equal(fast["table"], slow["table"], check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(fast["hhi"], slow["hhi"], check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(fast["lifecycle"].vendors, slow["lifecycle"].vendors, check_exact=False)
    assert fast["concentration"].hhi == pytest.approx(slow["concentration"].hhi)
    assert list(fast["leaderboard"].rows["vendor_id"]) == list(slow["leaderboard"].rows["vendor_id"])
