"""Figures behind the vendors page: leaderboard, one vendor's drill-down, concentration, lifecycle.

Per-vendor measures come from analytics.kpis.fetch_aggregate (rollup_vendor_daily, the vendor and
category rollup under a category filter, vendors by dimension under an order- or customer-level
filter, raw rows otherwise), once for the period and once for the comparison period. That
per-vendor aggregate is small (one row per vendor), so ranks, search, sorting and pages are taken
over it and only one page of it is handed on. Monthly concentration, first sales and a vendor's
customers have their own SQL here, over rollups where one answers exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.filters import GRAINS, FilterError, Filters, Period
from analytics.kpis import (VENDOR_DIMS, fetch_aggregate, fetch_rollup_layout, filter_params, filters_sql, rollup_from,
                            sales_source)
from data import dim_cubes as DC
from data.db import frame
from data.measures import BASE_MEASURES, COUNTED, LINE_VALUE, RAW_DIMENSIONS, RAW_FROM, local_day_start, local_days_sql

LEADERBOARD_METRICS = ("gmv", "net_revenue", "orders", "aov", "refund_rate", "cancellation_rate",
                       "gross_margin", "take_revenue")
# Columns of the vendor table the leaderboard sorts by.
SORTS = ("rank", "name", *LEADERBOARD_METRICS, "growth", "rank_change")
PAGE_SIZE = 25
GROWTH_THRESHOLD = 0.20          # growing / declining: GMV change beyond ±20 % vs the comparison
HHI_MONTHS = 12                  # the HHI chart shows at least this many months up to the period's end
PARETO_POINTS = (0.01, 0.05, 0.10, 0.20, 0.50)
TOP_PRODUCTS = 20
DRILL_METRICS = ("gmv", "net_revenue", "orders", "aov", "take_revenue", "refund_rate", "gross_margin",
                 "cancellation_rate")
LIFECYCLE = ("new", "growing", "declining", "churned")
LIFECYCLE_LABELS = {
    "new": "New: first ever sale (under these filters) falls in the period",
    "growing": "Growing: GMV up more than 20 % on the comparison period",
    "declining": "Declining: GMV down more than 20 % on the comparison period",
    "churned": "Churned: sales in the comparison period, none in this period",
}


# ---------------------------------------------------------------------------------------------
# Shared plumbing


def _aggregate(conn: Connection, f: Filters, period: Period | None, *, metrics: tuple[str, ...],
               use_rollups: bool = True, tz: str, by: str | None = None, **kw: Any) -> pd.DataFrame:
    return fetch_aggregate(conn, f, period, by=by, metrics=metrics, tz=tz,
                           use_rollups=use_rollups, **kw)


def for_vendor(f: Filters, vendor_id: int) -> Filters:
    """Returns f narrowed to one vendor (replacing any vendor filter)."""
    return f.narrowed(vendor_id=[int(vendor_id)])


def _filter_sql(f: Filters, expr_of) -> tuple[str, dict]:
    """Returns (' AND expr = ANY(:p)…', params) for f's dimension filters."""
    types = {"vendor_id": "integer[]", "product_id": "integer[]"}
    sql = "".join(f" AND {expr_of(d)} = ANY(CAST(:vf_{d} AS {types.get(d, 'text[]')}))" for d, _ in f.dims)
    return sql, {f"vf_{d}": list(v) for d, v in f.dims}


def _vendor_source(conn: Connection, f: Filters, tz: str, use_rollups: bool) -> tuple[str, int]:
    """Returns the table that answers GMV and sales per vendor and day under f (a rollup or 'raw')
    and the rollups' layout (data.rollups.LAYOUT; 0 for raw)."""
    layout = fetch_rollup_layout(conn, tz) if use_rollups else None
    source = sales_source(f, "vendor_id", None, {"gmv"}, layout)
    return source, (layout or 0)


def _monthly_gmv_sql(f: Filters, source: str, layout: int, window: Period) -> tuple[str, dict]:
    """Returns SQL for (month, vendor_id, gmv) rows of the window's local days, and its params.

    GMV is a sum, so the product rollup answers it exactly too (its order counts would not be).
    Whole months are read from the rollups' monthly copies."""
    if source == "raw":
        where, params = _filter_sql(f, RAW_DIMENSIONS.get)
        return f"""
            SELECT date_trunc('month', {RAW_DIMENSIONS['day']})::date AS month, i.vendor_id,
                   {BASE_MEASURES['gmv']} AS gmv
            FROM {RAW_FROM}
            WHERE i.vendor_id IS NOT NULL
              AND {local_days_sql('o.ordered_at', ':start', ':end')} {where}
            GROUP BY 1, 2""", params
    rows, params = rollup_from(f, source, window, "month", layout)
    return f"""
            SELECT date_trunc('month', day)::date AS month, vendor_id, SUM(gmv) AS gmv
            FROM {rows}
            GROUP BY 1, 2""", {**params, **filter_params(f)}


# ---------------------------------------------------------------------------------------------
# Leaderboard


def fetch_vendor_info(conn: Connection, ids: list[int] | None = None) -> pd.DataFrame:
    """Returns (vendor_id, name, category, region, country, joined_on, status, commission_rate) rows,
    for ids or every vendor."""
    cols = ["vendor_id", "name", "category", "region", "country", "joined_on", "status", "commission_rate"]
    sql = f"SELECT {', '.join(cols)} FROM mart.vendors"
    params = {}
    if ids is not None:
        sql += " WHERE vendor_id = ANY(:ids)"
        params = {"ids": [int(i) for i in ids]}
    df = frame(conn.execute(sa.text(sql + " ORDER BY vendor_id"), params))
    if df.empty:
        return pd.DataFrame(columns=cols)
    df["commission_rate"] = df["commission_rate"].astype("float64")
    return df


def _measures(conn: Connection, f: Filters, period: Period, **kw: Any) -> pd.DataFrame:
    df = _aggregate(conn, f, period, by="vendor_id", metrics=LEADERBOARD_METRICS, **kw)
    df = df.rename(columns={"key": "vendor_id"})
    df["vendor_id"] = df["vendor_id"].astype("int64")
    return df[["vendor_id", "refunded", "cost", "units", "all_orders", "cancelled_orders", *LEADERBOARD_METRICS]]


def rank_by_gmv(gmv: pd.Series) -> pd.Series:
    """Returns 1 for the largest GMV (ties share the better rank); NaN where GMV is not positive."""
    return gmv.where(gmv > 0).rank(method="min", ascending=False)


def compute_vendor_table(conn: Connection, f: Filters, **kw: Any) -> pd.DataFrame:
    """Returns one row per vendor with activity in the period or the comparison period: vendor_id,
    name, category, status, the leaderboard metrics, their <metric>_prev, growth (GMV change),
    rank, rank_prev and rank_change (previous rank − current rank), ordered by rank."""
    cur = _measures(conn, f, f.period, **kw)
    prev = _measures(conn, f, f.compare, **kw) if f.compare else cur.iloc[0:0]
    t = cur.merge(prev, on="vendor_id", how="outer", suffixes=("", "_prev"))
    for col in ("gmv", "net_revenue", "orders", "take_revenue", "refunded", "cost", "units", "all_orders",
                "cancelled_orders"):
        t[col] = t[col].fillna(0.0)
        if f.compare:
            t[f"{col}_prev"] = t[f"{col}_prev"].fillna(0.0)
    t["growth"] = (t["gmv"] / t["gmv_prev"].where(t["gmv_prev"] > 0) - 1).astype("float64")
    t["rank"] = rank_by_gmv(t["gmv"])
    t["rank_prev"] = rank_by_gmv(t["gmv_prev"])
    t["rank_change"] = t["rank_prev"] - t["rank"]
    info = fetch_vendor_info(conn, t["vendor_id"].tolist())[["vendor_id", "name", "category", "status"]]
    t = info.merge(t, on="vendor_id", how="right")
    return _sorted(t, "rank", descending=False).reset_index(drop=True)


def escape_like(text: str) -> str:
    """Returns text with LIKE's wildcards (and the escape character) escaped by a backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def fetch_matching_vendor_ids(conn: Connection, text: str) -> list[int]:
    """Returns the ids of vendors whose name contains text (case-insensitive, no wildcards)."""
    rows = conn.execute(sa.text(
        "SELECT vendor_id FROM mart.vendors WHERE name ILIKE :pattern ESCAPE '\\' ORDER BY vendor_id"),
        {"pattern": f"%{escape_like(text.strip())}%"})
    return [r[0] for r in rows]


@dataclass(frozen=True)
class LeaderboardPage:
    rows: pd.DataFrame     # the vendor table's rows on this page
    page: int              # 1-based, clamped to [1, pages]
    pages: int
    page_size: int
    matching: int          # vendors matching the search
    total: int             # vendors in the table

    @property
    def first(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.matching else 0

    @property
    def last(self) -> int:
        return min(self.page * self.page_size, self.matching)


def _sorted(t: pd.DataFrame, sort: str, descending: bool) -> pd.DataFrame:
    if sort not in SORTS:
        raise FilterError(f"cannot sort by {sort!r}; choose one of {', '.join(SORTS)}")
    by = [sort] + [c for c in ("rank", "vendor_id") if c != sort]
    # Unknown values (no rank, no growth) go last in either direction; ties fall back to the rank.
    return t.sort_values(by, ascending=[not descending] + [True] * (len(by) - 1), na_position="last",
                         key=lambda s: s.str.lower() if s.name == "name" else s, kind="mergesort")


def page_leaderboard(table: pd.DataFrame, *, ids: list[int] | None = None, sort: str = "rank",
                     descending: bool = False, page: int = 1, page_size: int = PAGE_SIZE) -> LeaderboardPage:
    """Returns one page of the vendor table, narrowed to ids (a search's result) and sorted."""
    t = table if ids is None else table[table["vendor_id"].isin(ids)]
    pages = max(1, math.ceil(len(t) / page_size))
    page = min(max(int(page), 1), pages)
    t = _sorted(t, sort, descending)
    rows = t.iloc[(page - 1) * page_size: page * page_size].reset_index(drop=True)
    return LeaderboardPage(rows, page, pages, page_size, len(t), len(table))


# ---------------------------------------------------------------------------------------------
# Concentration


def hhi(gmv: pd.Series) -> float | None:
    """Returns the Herfindahl-Hirschman index of the positive GMVs: Σ (100 × share)², 0–10,000."""
    g = gmv[gmv > 0].astype("float64")
    if g.empty:
        return None
    return float(((100 * g / g.sum()) ** 2).sum())


def pareto_curve(gmv: pd.Series) -> pd.DataFrame:
    """Returns (vendors, vendor_share, gmv_share) points: the top `vendors` by GMV (vendor_share of
    the vendors with sales) make gmv_share of GMV; starts at (0, 0, 0)."""
    g = np.sort(gmv[gmv > 0].astype("float64").to_numpy())[::-1]
    if not len(g):
        return pd.DataFrame(columns=["vendors", "vendor_share", "gmv_share"], dtype="float64")
    n = np.arange(0, len(g) + 1)
    return pd.DataFrame({"vendors": n, "vendor_share": n / len(g),
                         "gmv_share": np.concatenate([[0.0], np.cumsum(g) / g.sum()])})


def pareto_points(curve: pd.DataFrame, shares: tuple[float, ...] = PARETO_POINTS) -> pd.DataFrame:
    """Returns (top_share, vendors, gmv_share): the ceil(top_share × N) largest vendors' GMV share."""
    if curve.empty:
        return pd.DataFrame(columns=["top_share", "vendors", "gmv_share"])
    n = int(curve["vendors"].iloc[-1])
    k = [max(1, math.ceil(s * n - 1e-9)) for s in shares]
    return pd.DataFrame({"top_share": shares, "vendors": k, "gmv_share": curve["gmv_share"].to_numpy()[k]})


@dataclass(frozen=True)
class Concentration:
    curve: pd.DataFrame           # pareto_curve of the period
    points: pd.DataFrame          # pareto_points of the period
    points_prev: pd.DataFrame     # same for the comparison period (empty without one)
    hhi: float | None
    hhi_prev: float | None
    vendors: int                  # vendors with sales (counted orders) in the period
    vendors_prev: int | None


def compute_concentration(table: pd.DataFrame, has_compare: bool) -> Concentration:
    """Returns the period's concentration (and the comparison period's) from the vendor table."""
    prev_gmv = table["gmv_prev"] if has_compare else pd.Series(dtype="float64")
    curve = pareto_curve(table["gmv"])
    return Concentration(
        curve=curve, points=pareto_points(curve), points_prev=pareto_points(pareto_curve(prev_gmv)),
        hhi=hhi(table["gmv"]), hhi_prev=hhi(prev_gmv) if has_compare else None,
        vendors=int((table["orders"] > 0).sum()),
        vendors_prev=int((table["orders_prev"] > 0).sum()) if has_compare else None)


def hhi_window(p: Period, months: int = HHI_MONTHS) -> Period:
    """Returns the months the HHI chart covers: from the first month of p, or `months` months up to
    p's last month if that starts earlier, to p's end (the last month may be partial)."""
    first = p.end.replace(day=1)
    y, m = divmod(first.year * 12 + first.month - 1 - (months - 1), 12)
    earlier = date(y, m + 1, 1)
    return Period(min(earlier, p.start.replace(day=1)), p.end)


def fetch_hhi_series(conn: Connection, f: Filters, *, months: int = HHI_MONTHS, tz: str,
                     use_rollups: bool = True) -> pd.DataFrame:
    """Returns (month, vendors, gmv, hhi) per calendar month of hhi_window(f.period): HHI over the
    GMV shares of vendors with positive GMV that month. Months without sales are left out."""
    window = hhi_window(f.period, months)
    monthly, params = _monthly_gmv_sql(f, *_vendor_source(conn, f, tz, use_rollups), window)
    rows = conn.execute(sa.text(f"""
        WITH m AS (SELECT * FROM ({monthly}) mv WHERE gmv > 0)
        SELECT month, count(*) AS vendors, SUM(gmv) AS gmv, SUM(power(100 * gmv / total, 2)) AS hhi
        FROM (SELECT month, gmv, SUM(gmv) OVER (PARTITION BY month) AS total FROM m) s
        GROUP BY month ORDER BY month"""), {"start": window.start, "end": window.end, "tz": tz, **params})
    df = frame(rows)
    if df.empty:
        return pd.DataFrame(columns=["month", "vendors", "gmv", "hhi"])
    for c in ("vendors", "gmv", "hhi"):
        df[c] = df[c].astype("float64")
    return df


# ---------------------------------------------------------------------------------------------
# Lifecycle: new, growing, declining, churned


def fetch_new_vendors(conn: Connection, f: Filters, ids: list[int], *, tz: str,
                      use_rollups: bool = True) -> pd.Series:
    """Returns {vendor_id: first sale day} for those of ids whose first ever sale (a line in a
    counted order matching f's filters) falls in f.period; ids are the vendors that sold in it."""
    source, layout = _vendor_source(conn, f, tz, use_rollups)
    params = {"ids": [int(i) for i in ids], "start": f.period.start, "end": f.period.end, "tz": tz}
    if source == VENDOR_DIMS:
        # Each month (and year: layout 5) row keeps its first day with a counted order: the
        # earliest over the months, or the years (a tenth of the rows), is the vendor's first sale
        # under the filter.
        table = f"{DC.VENDORS.coarse} WHERE grain = 'y' AND" if layout >= DC.COARSE_LAYOUT else f"{DC.VENDORS.monthly} WHERE"
        rows = conn.execute(sa.text(f"""
            SELECT vendor_id, min(first_day) FROM mart.{table}
            dim = '{DC.row_dimension(f.dim_map, DC.VENDORS.key)}' AND orders > 0
              AND vendor_id = ANY(CAST(:ids AS integer[]))
              {filters_sql(f, DC.column_of)}
            GROUP BY vendor_id HAVING min(first_day) BETWEEN :start AND :end"""),
            {**params, **filter_params(f)}).all()
        return pd.Series({r[0]: r[1] for r in rows}, dtype="object")
    # NOT EXISTS stops at a vendor's first earlier sale found, so long-selling vendors cost one
    # index probe each instead of a scan of their whole history.
    if source == "raw":
        where, fp = _filter_sql(f, RAW_DIMENSIONS.get)
        sales = f"""SELECT {{what}} FROM {RAW_FROM}
                    WHERE i.vendor_id = sold_ids.id AND {COUNTED} {where} AND {{when}}"""
        before = f"o.ordered_at < {local_day_start(':start')}"
        within = local_days_sql("o.ordered_at", ":start", ":end")
        first = f"min({RAW_DIMENSIONS['day']})"
    else:
        where, fp = _filter_sql(f, lambda d: d)
        sales = f"SELECT {{what}} FROM mart.{source} WHERE vendor_id = sold_ids.id AND orders > 0 {where} AND {{when}}"
        before, within, first = "day < :start", "day BETWEEN :start AND :end", "min(day)"
    rows = conn.execute(sa.text(f"""
        SELECT sold_ids.id, ({sales.format(what=first, when=within)}) AS first_sale
        FROM unnest(CAST(:ids AS integer[])) AS sold_ids(id)
        WHERE NOT EXISTS ({sales.format(what="1", when=before)})"""), {**params, **fp}).all()
    return pd.Series({r[0]: r[1] for r in rows}, dtype="object")


@dataclass(frozen=True)
class Lifecycle:
    vendors: pd.DataFrame        # vendor_id, name, category, group, gmv, gmv_prev, growth, first_sale (new only)
    counts: dict[str, int | None]  # per group; None where it needs a comparison period
    has_compare: bool


def compute_lifecycle(conn: Connection, f: Filters, table: pd.DataFrame, **kw: Any) -> Lifecycle:
    """Returns the new, growing, declining and churned vendors (LIFECYCLE_LABELS defines them)."""
    sold = table["orders"] > 0
    first = fetch_new_vendors(conn, f, table.loc[sold, "vendor_id"].tolist(), **kw)
    t = table.assign(first_sale=table["vendor_id"].map(first))
    new = sold & table["vendor_id"].isin(first.index)
    group = pd.Series(np.where(new, "new", ""), index=t.index, dtype="object")
    has_compare = f.compare is not None
    if has_compare:
        sold_before = t["orders_prev"] > 0
        both = sold & sold_before & ~new
        group[both & (t["growth"] > GROWTH_THRESHOLD)] = "growing"
        group[both & (t["growth"] < -GROWTH_THRESHOLD)] = "declining"
        group[sold_before & ~sold] = "churned"
    t = t.assign(group=group)
    t = t[t["group"] != ""]
    cols = ["vendor_id", "name", "category", "group", "gmv", "gmv_prev", "growth", "first_sale"]
    out = t[cols].sort_values(["group", "gmv", "vendor_id"], ascending=[True, False, True])
    counts = {g: (int((out["group"] == g).sum()) if has_compare or g == "new" else None) for g in LIFECYCLE}
    return Lifecycle(out.reset_index(drop=True), counts, has_compare)


# ---------------------------------------------------------------------------------------------
# One vendor


def fetch_vendor_trend(conn: Connection, f: Filters, vendor_id: int, metric: str, period: Period | None = None,
                       **kw: Any) -> pd.DataFrame:
    """Returns (key = bucket start, metric and its base measures) for one vendor at f.grain."""
    return _aggregate(conn, for_vendor(f, vendor_id), period, grain=f.grain, metrics=(metric,), **kw)


def fetch_vendor_products(conn: Connection, f: Filters, vendor_id: int, *, limit: int = TOP_PRODUCTS,
                          **kw: Any) -> pd.DataFrame:
    """Returns the vendor's top products by GMV: product_id, name, category, gmv, units, net_revenue,
    orders, gross_margin, refund_rate, share (of the vendor's GMV)."""
    fv = for_vendor(f, vendor_id)
    metrics = ("gmv", "net_revenue", "orders", "gross_margin", "refund_rate")
    top = _aggregate(conn, fv, None, by="product_id", metrics=metrics, order_by="gmv", limit=limit, **kw)
    total = _aggregate(conn, fv, None, metrics=("gmv",), **kw)["gmv"].sum()
    cols = ["product_id", "name", "category", "gmv", "units", "net_revenue", "orders", "gross_margin",
            "refund_rate", "share"]
    if top.empty:
        return pd.DataFrame(columns=cols)
    top = top.rename(columns={"key": "product_id"})
    top["product_id"] = top["product_id"].astype("int64")
    names = frame(conn.execute(sa.text(
        "SELECT product_id, name, category FROM mart.products WHERE product_id = ANY(:ids)"),
        {"ids": top["product_id"].tolist()}))
    top = top.merge(names, on="product_id", how="left")
    top["share"] = top["gmv"] / total if total else np.nan
    return top[cols]


def _vendor_customers_sql(f: Filters, grain: str | None) -> tuple[str, dict]:
    if grain not in (None, *GRAINS):   # becomes SQL text: only the fixed names pass
        raise FilterError(f"unknown grain {grain!r}; choose one of {', '.join(GRAINS)}")
    # The vendor is bound as :vendor; a vendor filter from the filter bar would only repeat it.
    where, params = _filter_sql(f.without("vendor_id"), RAW_DIMENSIONS.get)
    day = RAW_DIMENSIONS["day"]
    if grain is None:
        key, lo = "'total'::text", ":start"
    else:
        key = day if grain == "day" else f"date_trunc('{grain}', {day})::date"
        lo = f"GREATEST({key}, CAST(:start AS date))"
    # A customer is new to the vendor in a bucket when their first counted order with a line of
    # this vendor, ever and over every channel, falls in it (like the glossary's new customers).
    return f"""
        WITH firsts AS (
            SELECT o.customer_id, min({day}) AS first_day
            FROM mart.order_items i JOIN mart.orders o ON o.order_id = i.order_id
            WHERE i.vendor_id = :vendor AND {COUNTED}
              AND {local_days_sql('o.ordered_at', None, ':end')}
            GROUP BY 1),
        active AS (
            SELECT {key} AS key, {lo} AS lo, o.customer_id, SUM({LINE_VALUE}) AS gmv
            FROM {RAW_FROM}
            WHERE i.vendor_id = :vendor AND {COUNTED}
              AND {local_days_sql('o.ordered_at', ':start', ':end')} {where}
            GROUP BY 1, 2, 3)
        SELECT a.key, count(*) AS customers,
               count(*) FILTER (WHERE fi.first_day >= a.lo) AS new,
               count(*) FILTER (WHERE fi.first_day < a.lo) AS returning,
               COALESCE(SUM(a.gmv) FILTER (WHERE fi.first_day >= a.lo), 0) AS gmv_new,
               COALESCE(SUM(a.gmv) FILTER (WHERE fi.first_day < a.lo), 0) AS gmv_returning
        FROM active a JOIN firsts fi ON fi.customer_id = a.customer_id
        GROUP BY a.key ORDER BY a.key""", params


def fetch_vendor_customers(conn: Connection, f: Filters, vendor_id: int, period: Period | None = None, *,
                           grain: str | None = None, tz: str, **_: Any) -> pd.DataFrame:
    """Returns (key, customers, new, returning, gmv_new, gmv_returning): the vendor's customers in
    the period (counted orders matching f) split into new and returning to this vendor; one 'total'
    row, or one row per bucket of grain (hour counts per day)."""
    period = period or f.period
    grain = "day" if grain == "hour" else grain
    sql, params = _vendor_customers_sql(f, grain)
    df = frame(conn.execute(sa.text(sql), {"vendor": int(vendor_id), "start": period.start, "end": period.end,
                                            "tz": tz, **params}))
    cols = ["key", "customers", "new", "returning", "gmv_new", "gmv_returning"]
    if df.empty:
        return pd.DataFrame([{"key": "total", **{c: 0.0 for c in cols[1:]}}] if grain is None else [],
                            columns=cols)
    for c in cols[1:]:
        df[c] = df[c].astype("float64")
    return df


def fetch_category_share(conn: Connection, f: Filters, vendor_id: int, category: str, *,
                         table: pd.DataFrame | None = None, **kw: Any) -> pd.DataFrame:
    """Returns (period, label, vendor_gmv, category_gmv, share, rank, vendors) rows for the period and
    the comparison period: the vendor's GMV against all vendors of its category (mart.vendors)
    under f's filters other than the vendor filter. table: compute_vendor_table(f), to reuse."""
    members = set(frame(conn.execute(sa.text("SELECT vendor_id FROM mart.vendors WHERE category = :c"),
                                      {"c": category}))["vendor_id"].astype(int)) if category else set()
    out = []
    for name, period, column in (("current", f.period, "gmv"), ("comparison", f.compare, "gmv_prev")):
        if period is None:
            continue
        if table is not None and "vendor_id" not in f.dim_map:
            gmv = table.set_index("vendor_id")[column]
        else:
            g = _aggregate(conn, f.without("vendor_id"), period, by="vendor_id", metrics=("gmv",), **kw)
            gmv = g.set_index(g["key"].astype(int))["gmv"]
        gmv = gmv[gmv.index.isin(members)]
        mine = float(gmv.get(int(vendor_id), 0.0))
        total = float(gmv.sum())
        out.append({"period": name, "label": period.label(), "vendor_gmv": mine, "category_gmv": total,
                    "share": mine / total if total > 0 else np.nan,
                    "rank": rank_by_gmv(gmv).get(int(vendor_id), np.nan), "vendors": int((gmv > 0).sum())})
    return pd.DataFrame(out, columns=["period", "label", "vendor_gmv", "category_gmv", "share", "rank", "vendors"])


@dataclass(frozen=True)
class VendorDetail:
    profile: dict                  # mart.vendors row
    products: pd.DataFrame         # fetch_vendor_products
    customers: pd.DataFrame        # totals: key 'current' / 'comparison'
    customer_trend: pd.DataFrame   # per bucket
    refunds: pd.DataFrame          # key, gmv, refunded, refund_rate per bucket
    category_share: pd.DataFrame


def compute_vendor_detail(conn: Connection, f: Filters, vendor_id: int, *, table: pd.DataFrame | None = None,
                          **kw: Any) -> VendorDetail | None:
    """Returns one vendor's drill-down (all but the metric trend), or None for an unknown vendor;
    table: compute_vendor_table(f) when at hand, which saves recomputing category totals."""
    info = fetch_vendor_info(conn, [vendor_id])
    if info.empty:
        return None
    profile = info.iloc[0].to_dict()
    totals = [fetch_vendor_customers(conn, f, vendor_id, f.period, **kw).assign(key="current")]
    if f.compare:
        totals.append(fetch_vendor_customers(conn, f, vendor_id, f.compare, **kw).assign(key="comparison"))
    refunds = fetch_vendor_trend(conn, f, vendor_id, "refund_rate", **kw)[["key", "gmv", "refunded", "refund_rate"]]
    return VendorDetail(
        profile=profile,
        products=fetch_vendor_products(conn, f, vendor_id, **kw),
        customers=pd.concat(totals, ignore_index=True),
        customer_trend=fetch_vendor_customers(conn, f, vendor_id, grain=f.grain, **kw),
        refunds=refunds,
        category_share=fetch_category_share(conn, f, vendor_id, profile["category"], table=table, **kw),
    )


# ---------------------------------------------------------------------------------------------
# The page's default figures in one call (the benchmark times it against raw tables)


def compute_vendors_page(conn: Connection, f: Filters, *, use_rollups: bool = True, tz: str) -> dict:
    """Returns {table, leaderboard, concentration, hhi, lifecycle}: what the vendors page computes
    before anyone picks a vendor. use_rollups=False reads only the raw tables."""
    kw = {"use_rollups": use_rollups, "tz": tz}
    table = compute_vendor_table(conn, f, **kw)
    return {
        "table": table,
        "leaderboard": page_leaderboard(table),
        "concentration": compute_concentration(table, f.compare is not None),
        "hhi": fetch_hhi_series(conn, f, **kw),
        "lifecycle": compute_lifecycle(conn, f, table, **kw),
    }
