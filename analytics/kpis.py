"""Aggregations behind the KPI pages: totals, trends, breakdowns and top lists.

One function, `fetch_aggregate`, builds every figure. For each family of base measures (sales,
customers, traffic) it picks the cheapest source that gives the exact answer for the filters and
grouping asked for: a rollup when one covers them, else the raw tables (still aggregated in
PostgreSQL). Metric formulas from analytics.metrics are then evaluated over the base measures.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.filters import BREAKDOWNS, GRAINS, FilterError, Filters, Period, buckets, next_bucket
from analytics.metrics import CUSTOMER_BASES, METRICS, SALES_BASES, TRAFFIC_BASES, get_metric
from data import customer_rollups as CR
from data import dim_cubes as DC
from data.db import frame
from data.measures import BASE_MEASURES, COUNTED, RAW_DIMENSIONS, RAW_FROM, local_day_start, local_days_sql, raw_from
from data.calendar import bucket_bounds, calendar_pieces
from data.rollups import coarse_table

ORDER_LEVEL = frozenset({"channel", "business_model", "segment", "region", "country"})
COUNT_BASES = frozenset({"orders", "all_orders", "cancelled_orders", "web_mobile_orders"})
WEB_MOBILE = "('web', 'mobile')"
# PostgreSQL has no "1 quarter" interval.
GRAIN_INTERVAL = {"week": "1 week", "month": "1 month", "quarter": "3 months", "year": "1 year"}
DIM_TYPES = {"vendor_id": "integer[]", "product_id": "integer[]"}
PAYMENT_DIMS = frozenset({"payment_method", "payment_status", "channel", "business_model", "segment"})


@dataclass(frozen=True)
class _Rollup:
    table: str
    dims: frozenset
    # The line-level keys its rows are kept per: an order's count is stored once per value of
    # them, so summed counts are exact only when the query pins each (groups by it or filters one
    # value).
    count_keys: tuple[str, ...] = ()
    # The rollup layout (data.rollups.LAYOUT) from which the table has copies with the same
    # columns summed per ISO week and per month (`day` = the bucket's first day): a period reads
    # their whole buckets and its edge days only.
    coarse_from: int = 1
    available_from: int = 0    # the layout that has the table at all
    # Dimensions a later layout added to the table: (layout, dimensions).
    added: tuple[tuple[int, frozenset], ...] = ()

    def dims_at(self, layout: int) -> frozenset:
        return self.dims.union(*(d for n, d in self.added if layout >= n))


VENDOR_DIMS, PRODUCT_DIMS = DC.VENDORS.source, DC.PRODUCTS.source
_CUBES = {c.source: c for c in DC.CUBES}
SALES_ROLLUPS = (
    _Rollup("rollup_sales_daily", ORDER_LEVEL),
    _Rollup("rollup_payment_daily", PAYMENT_DIMS),
    _Rollup("rollup_vendor_daily", frozenset({"vendor_id"}), ("vendor_id",)),
    _Rollup("rollup_category_daily", frozenset({"category"}), ("category",)),
    # Per category and order-level dimension: a category filter with a channel, region… filter.
    _Rollup("rollup_category_orders_daily", frozenset({"category", "channel", "business_model", "segment", "region"}),
            ("category",)),
    # Layout 1 (migration 0014): payments by region and country, categories by country and payment
    # method, vendors by category.
    _Rollup("rollup_payment_geo_daily", frozenset({"payment_method", "payment_status", "region", "country"}),
            available_from=1),
    _Rollup("rollup_category_geo_daily", frozenset({"category", "country", "payment_method"}), ("category",),
            available_from=1, added=((2, frozenset({"payment_status"})),)),
    _Rollup("rollup_vendor_category_daily", frozenset({"vendor_id", "category"}), ("vendor_id", "category"),
            available_from=1),
    # Layout 3 (migration 0017): vendors by one order- or customer-level dimension, per month and
    # per recent day (data.dim_cubes); read by _cube_from. Layout 4 (0018): products by the same.
    _Rollup(VENDOR_DIMS, frozenset({"vendor_id", "payment_status", *DC.DIMENSIONS}), ("vendor_id",), available_from=3),
    _Rollup(PRODUCT_DIMS, frozenset({"product_id", "payment_status", *DC.DIMENSIONS}), ("product_id",),
            available_from=4),
    # Per product, with its vendor and category: order counts are exact per single product only.
    _Rollup("rollup_product_daily", frozenset({"product_id", "vendor_id", "category"}), ("product_id",), coarse_from=0),
)
_BY_TABLE = {r.table: r for r in SALES_ROLLUPS}
HOURLY_DIMS = frozenset({"channel", "business_model"})
# Coarse buckets that fit inside one bucket of each time grain (None: a total or a breakdown).
NESTED_BUCKETS = {None: ("month", "week"), "week": ("week",), "month": ("month",), "quarter": ("month",),
                  "year": ("month",)}


def _bucket(grain: str, day_col: str) -> str:
    # grain comes from analytics.filters.GRAINS, never from user text.
    return day_col if grain == "day" else f"date_trunc('{grain}', {day_col})::date"


def _bucket_bounds(grain: str | None, day_col: str) -> tuple[str, str]:
    """Returns SQL for the first and last day of the bucket a row falls in, clipped to the period."""
    if grain in (None, "hour"):
        return ":start", ":end"
    if grain == "day":
        return day_col, day_col
    trunc = f"date_trunc('{grain}', {day_col})"
    return (f"GREATEST({trunc}::date, :start)",
            f"LEAST(({trunc} + interval '{GRAIN_INTERVAL[grain]}' - interval '1 day')::date, :end)")


def filters_sql(f: Filters, expr_of: Callable[[str], str]) -> str:
    """Returns " AND <expr> = ANY(:f_<dim>)" for each of f's dimensions; expr_of(dim) names the column."""
    return "".join(
        f" AND {expr_of(d)} = ANY(CAST(:f_{d} AS {DIM_TYPES.get(d, 'text[]')}))" for d, _ in f.dims)


def filter_params(f: Filters) -> dict:
    """Returns the bound values filters_sql refers to."""
    return {f"f_{d}": list(v) for d, v in f.dims}


def _key(by: str | None, grain: str | None, day_col: str, hour_col: str | None, dim_expr) -> str:
    if by is not None:
        return dim_expr(by)
    if grain is None:
        return "'total'::text"
    if grain == "hour":
        return hour_col
    return _bucket(grain, day_col)


def sales_source(f: Filters, by: str | None, grain: str | None, bases: set[str], layout: int | None) -> str:
    """Returns the table that answers the base measures for f grouped by `by` (and the grain):
    the first rollup holding every dimension needed (with exact order counts, when counts are
    asked for), or 'raw'. layout: the rollups' (fetch_rollup_layout), None when they cannot answer."""
    needed = set(f.dim_map) | ({by} if by else set())
    if layout is None:
        return "raw"
    if grain == "hour":
        return "rollup_sales_hourly" if needed <= HOURLY_DIMS else "raw"
    for r in SALES_ROLLUPS:
        if not needed <= r.dims_at(layout) or layout < r.available_from:
            continue
        if r.table in _CUBES and DC.row_dimension(needed, _CUBES[r.table].key) is None:
            continue
        counts_exact = all(k == by or len(f.dim_map.get(k, ())) == 1 for k in r.count_keys)
        if counts_exact or not (bases & COUNT_BASES):
            return r.table
    return "raw"


def rollup_from(f: Filters, source: str, period: Period, grain: str | None, layout: int,
                by: str | None = None) -> tuple[str, dict]:
    """Returns the FROM clause reading a sales rollup for the period (filters applied) and its
    parameters: the table itself, or its whole months and weeks (those that fit in one bucket of
    the grain) and the edge days."""
    if source in _CUBES:
        return _cube_from(_CUBES[source], f, period, grain, by, layout)
    rollup = _BY_TABLE.get(source)
    where = filters_sql(f, lambda d: d)
    nested = NESTED_BUCKETS.get(grain, ())
    if rollup is None or layout < rollup.coarse_from or not nested:
        return f"mart.{source} WHERE day BETWEEN :start AND :end {where}", {}
    pieces = calendar_pieces(period.start, period.end, nested)
    if len(pieces) == 1 and pieces[0][0] == "day":
        return f"mart.{source} WHERE day BETWEEN :start AND :end {where}", {}
    table = {"day": source, **{b: coarse_table(source, b) for b in nested}}
    union = " UNION ALL ".join(f"SELECT * FROM mart.{table[b]} WHERE day BETWEEN :pc{i}_lo AND :pc{i}_hi {where}"
                               for i, (b, _, _) in enumerate(pieces))
    params = {f"pc{i}_{end}": d for i, (_, lo, hi) in enumerate(pieces) for end, d in (("lo", lo), ("hi", hi))}
    return f"({union}) r", params


def _month_portions(lo: date, hi: date):
    """Yields (first, last, month's first day, month's last day) for the days lo..hi of each month."""
    while lo <= hi:
        first, last = bucket_bounds("month", lo)
        yield lo, min(hi, last), first, last
        lo = last + timedelta(days=1)


# The cubes' buckets a piece may be read from, per grain of the figures (largest first).
_CUBE_BUCKETS = {None: ("year", "quarter", "month"), "year": ("year", "quarter", "month"),
                 "quarter": ("quarter", "month"), "month": ("month",)}


def _cube_from(cube: DC.Cube, f: Filters, period: Period, grain: str | None, by: str | None,
               layout: int) -> tuple[str, dict]:
    """rollup_from for vendors or products by one dimension: (day, <key>, <dimension>, base
    measures) rows of whole years and quarters (layout 5, those the cube keeps) and months (when
    they fit in one bucket of the grain), the edge days kept as day rows, and the older edge days
    from the order lines (grouped the same way).

    An edge of more than half a month reads the month's row minus the other days of the month
    (rows with negated measures): the lines of at most half a month, not of nearly all of it
    (the first month of a three-year range at 10M lines: 457 ms of 585 ms). The caller keeps only
    keys with orders (_sales_cte), as the other days' keys sum to zero. The month's row is as
    of the last refresh while older days are read from the lines as they are now, so this is done
    only while no day of the month waits for a refresh (rollup_meta.dirty_days); otherwise the
    edge's own days are read (each branch is guarded by that one-time condition).

    The order lines are read only for days before the cube's day rows start (`lo < kept`, also a
    one-time condition: PostgreSQL skips the branch when it is false), and the edge's own bounds are
    constants the planner can weigh against a vendor filter's. Without both, a vendor's filter planned
    a branch of a few days (or none) as a scan of all the vendor's lines: 750 ms for the largest vendor
    at 10M."""
    dim = DC.row_dimension({*f.dim_map, *([by] if by else [])}, cube.key)
    where = filters_sql(f, DC.column_of)
    extra = [("status", "payment_status")] if dim == "payment_method" else []
    keys = ["day", cube.key, f"value AS {dim}", *(f"{c} AS {d}" for c, d in extra)]
    raw_keys = [f"{RAW_DIMENSIONS['day']} AS day", f"i.{cube.key}", f"{RAW_DIMENSIONS[dim]} AS {dim}",
                *(f"{RAW_DIMENSIONS[d]} AS {d}" for _, d in extra)]
    groups = ", ".join(str(n) for n in range(1, len(keys) + 1))
    kept = f"(SELECT {cube.days_from_column} FROM rollup_meta.days_from)"
    kept_buckets = {"month", *(cube.coarse_buckets if layout >= DC.COARSE_LAYOUT else ())}
    nested = tuple(b for b in _CUBE_BUCKETS.get(grain, ()) if b in kept_buckets)
    parts, params = [], {}

    def bounds(lo: date, hi: date) -> tuple[str, str]:
        n = len(params) // 2
        params.update({f"pc{n}_lo": lo, f"pc{n}_hi": hi})
        return f"CAST(:pc{n}_lo AS date)", f"CAST(:pc{n}_hi AS date)"

    def days(lo: date, hi: date, sign: str = "", guard: str = "") -> None:
        lo, hi = bounds(lo, hi)
        measures = ", ".join(f"{sign}{m} AS {m}" for m in BASE_MEASURES)
        parts.append(f"SELECT {', '.join(keys)}, {measures} FROM mart.{cube.daily} WHERE dim = '{dim}' "
                     f"AND day BETWEEN GREATEST({lo}, {kept}) AND {hi}{where}{guard}")
        measures = ", ".join(f"{sign}{BASE_MEASURES[m]} AS {m}" for m in BASE_MEASURES)
        parts.append(f"""
            SELECT {', '.join(raw_keys)}, {measures}
            FROM {raw_from([dim])}
            WHERE {local_days_sql('o.ordered_at', lo, hi)} AND {local_days_sql('o.ordered_at', None, f'{kept} - 1')}
              AND {lo} < {kept}
              AND i.{cube.key} IS NOT NULL{filters_sql(f, RAW_DIMENSIONS.get)}{guard}
            GROUP BY {groups}""")

    def whole(lo: date, hi: date, guard: str = "", bucket: str = "month") -> None:
        lo, hi = bounds(lo, hi)
        table, grain_of = ((cube.monthly, "") if bucket == "month" else
                           (cube.coarse, f" AND grain = '{DC.GRAIN_CODE[bucket]}'"))
        parts.append(f"SELECT {', '.join(keys)}, {', '.join(BASE_MEASURES)} FROM mart.{table} "
                     f"WHERE dim = '{dim}'{grain_of} AND day BETWEEN {lo} AND {hi}{where}{guard}")

    for bucket, lo, hi in calendar_pieces(period.start, period.end, nested):
        if bucket != "day":
            whole(lo, hi, bucket=bucket)
            continue
        for a, b, first, last in _month_portions(lo, hi):
            others = [(x, y) for x, y in ((first, a - timedelta(days=1)), (b + timedelta(days=1), last)) if x <= y]
            if nested and sum((y - x).days + 1 for x, y in others) < (b - a).days + 1:
                # The month's UTC days reach a day beyond it at each end.
                m_lo, m_hi = bounds(first - timedelta(days=1), last + timedelta(days=1))
                clean = f"NOT EXISTS (SELECT 1 FROM rollup_meta.dirty_days WHERE day_utc BETWEEN {m_lo} AND {m_hi})"
                whole(first, first, f" AND {clean}")
                for x, y in others:
                    days(x, y, "-", f" AND {clean}")
                days(a, b, guard=f" AND NOT {clean}")
            else:
                days(a, b)
    return f"({' UNION ALL '.join(parts)}) r", params


def _sales_cte(f: Filters, source: str, by: str | None, grain: str | None, period: Period,
               span: bool = False, layout: int = 0, lines: str | None = None) -> tuple[str, dict]:
    """Returns the sales family's CTE body (key and base measures) and its extra parameters."""
    if source == "raw":
        key = _key(by, grain, RAW_DIMENSIONS["day"], "date_trunc('hour', o.ordered_at, :tz)", RAW_DIMENSIONS.get)
        sums = ",\n".join(f"{BASE_MEASURES[m]} AS {m}" for m in BASE_MEASURES)
        bounds = ("o.ordered_at >= :t0 AND o.ordered_at < :t1" if span else
                  local_days_sql("o.ordered_at", ":start", ":end"))
        return f"""
        SELECT {key} AS key, {sums},
               COUNT(DISTINCT o.order_id) FILTER (WHERE {COUNTED} AND o.channel IN {WEB_MOBILE}) AS web_mobile_orders
        FROM {raw_from([*f.dim_map, *([by] if by else [])], lines)}
        WHERE {bounds}
          {filters_sql(f, RAW_DIMENSIONS.get)}
        GROUP BY 1""", {}
    key = _key(by, grain, "day", "hour", lambda d: d)
    sums = ", ".join(f"SUM({m}) AS {m}" for m in BASE_MEASURES)
    web_mobile = (f"SUM(orders) FILTER (WHERE channel IN {WEB_MOBILE})"
                  if source in ("rollup_sales_daily", "rollup_sales_hourly", "rollup_payment_daily") else "NULL::bigint")
    source_sql, params = rollup_from(f, source, period, grain, layout, by)
    # Vendors and products by dimension subtract days from a month: a key whose days were all
    # subtracted is none (each real one has an order, cancelled or not).
    having = " HAVING SUM(all_orders) <> 0" if source in _CUBES else ""
    return f"""
        SELECT {key} AS key, {sums}, {web_mobile} AS web_mobile_orders
        FROM {source_sql}
        GROUP BY 1{having}""", params


def _cell_space(f: Filters, by: str | None) -> tuple[str, list[str] | None] | None:
    """Returns (space, values; None for every value) of rollup_customer_cells that answers
    distinct customers for f grouped by `by`, or None when the cells cannot.

    Customer-level dimensions share the marketplace's previous order days, so any set of their
    values adds up; an order-level dimension, a category or a vendor is a space of its own per
    value, so several values (without a breakdown by them) would count a customer once per value."""
    dims = f.dim_map
    if by is not None and by not in CR.CELL_DIMENSIONS:
        return None
    if not dims:
        return (by, None) if by else ("all", [""])
    if len(dims) > 1:
        return None
    (dim, values), = dims.items()
    if dim not in CR.CELL_DIMENSIONS or (by is not None and by != dim):
        return None
    if dim in CR.CUSTOMER_SPACES or by == dim or len(values) == 1:
        return dim, [str(v) for v in values]
    return None


def _customer_source(f: Filters, by: str | None, grain: str | None, layout: int | None) -> str | None:
    if grain == "hour":
        return None  # first orders are kept per day, so customer counts stop at daily grain
    if layout is None:
        return "raw"
    if layout >= 1 and _cell_space(f, by) is not None:
        return CR.CELLS
    needed = set(f.dim_map) | ({by} if by else set())
    return "rollup_customer_daily" if needed <= ORDER_LEVEL else "raw"


def _cell_pieces(period: Period, grain: str | None) -> dict[str, list]:
    """Returns the pieces the cells are read in, as parameter arrays: for each bucket of the grain
    (or the whole period) its key, and for each of its whole months and single days the piece's
    grain, bucket and the bucket's first day (keys from it on are read)."""
    spans = [(start, lo, hi) for start, lo, hi in buckets(period, grain)] if grain else [(None, period.start, period.end)]
    out: dict[str, list] = {"cq_key": [], "cq_grain": [], "cq_bucket": [], "cq_lo": []}
    for key, lo, hi in spans:
        for kind, first, last in calendar_pieces(lo, hi, ("month",)):
            d = first
            while d <= last:
                out["cq_key"].append(key or lo)
                out["cq_grain"].append("m" if kind == "month" else "d")
                out["cq_bucket"].append(d)
                out["cq_lo"].append(lo)
                d = next_bucket(d, "month" if kind == "month" else "day")
    return out


# Distinct customers of a piece from its cells row (see data.customer_rollups): the keys from the
# period's (or bucket's) first day on, which only pieces after the first have.
_CELL_SUMS = """
    SUM(c.active - COALESCE(k.p, 0)) AS active_customers,
    SUM(c.new_in + COALESCE(k.f, 0)) AS new_customers,
    SUM(c.active - COALESCE(k.p, 0) - c.natives + c.second_in + COALESCE(k.s, 0)) AS repeat_customers"""


def _cells_cte(f: Filters, by: str | None, grain: str | None, period: Period) -> tuple[str, dict]:
    space, values = _cell_space(f, by)
    value = "sp.value::integer" if by == "vendor_id" else "sp.value"
    key = value if by else ("q.key" if grain else "'total'::text")
    params = {"c_space": space, "c_values": values, **_cell_pieces(period, grain)}
    which = "" if values is None else "AND value = ANY(CAST(:c_values AS text[]))"
    after = lambda a: f"(SELECT sum(u.n) FROM unnest(c.{a}_keys, c.{a}_n) AS u(key, n) WHERE u.key >= q.lo)"  # noqa: E731
    return f"""
        SELECT {key} AS key, {_CELL_SUMS}
        FROM unnest(CAST(:cq_key AS date[]), CAST(:cq_grain AS "char"[]), CAST(:cq_bucket AS date[]),
                    CAST(:cq_lo AS date[])) AS q(key, grain, bucket, lo)
        CROSS JOIN (SELECT id, value FROM mart.{CR.SPACES} WHERE space = :c_space {which}) sp
        JOIN mart.{CR.CELLS} c ON c.space_id = sp.id AND c.grain = q.grain AND c.bucket = q.bucket
        LEFT JOIN LATERAL (SELECT {after('p')} AS p, {after('f')} AS f, {after('s')} AS s
                           WHERE q.lo < q.bucket) k ON true
        GROUP BY 1""", params


def _customer_cte(f: Filters, source: str, by: str | None, grain: str | None) -> str:
    if source == "raw":
        day = RAW_DIMENSIONS["day"]
        lo, hi = _bucket_bounds(grain, day)
        key = _key(by, grain, day, None, RAW_DIMENSIONS.get)
        # First and second counted order days from the orders themselves, in :tz: the raw path
        # is what answers when the rollups are stale or built for another time zone.
        return f"""
        WITH rc AS (
            SELECT customer_id, min(day) FILTER (WHERE rn = 1) AS first_day,
                   min(day) FILTER (WHERE rn = 2) AS second_day
            FROM (SELECT o.customer_id, {day} AS day,
                         row_number() OVER (PARTITION BY o.customer_id ORDER BY o.ordered_at, o.order_id) AS rn
                  FROM mart.orders o
                  WHERE {COUNTED} AND o.customer_id IN (
                      SELECT customer_id FROM mart.orders
                      WHERE {local_days_sql('ordered_at', ':start', ':end')})) ranked
            WHERE rn <= 2 GROUP BY customer_id)
        SELECT {key} AS key,
               COUNT(DISTINCT o.customer_id) FILTER (WHERE {COUNTED}) AS active_customers,
               COUNT(DISTINCT o.customer_id) FILTER (WHERE {COUNTED} AND rc.first_day BETWEEN {lo} AND {hi}) AS new_customers,
               COUNT(DISTINCT o.customer_id) FILTER (WHERE {COUNTED} AND rc.second_day <= {hi}) AS repeat_customers
        FROM {RAW_FROM}
        LEFT JOIN rc ON rc.customer_id = o.customer_id
        WHERE {local_days_sql('o.ordered_at', ':start', ':end')}
          {filters_sql(f, RAW_DIMENSIONS.get)}
        GROUP BY 1"""
    # One row per (key, customer) by hash aggregation, then plain counts: measured 2x faster than
    # COUNT(DISTINCT), which sorts (YTD on 10M lines: 4.3 s vs 7.7-9.2 s). first_day and
    # second_day are the customer's, the same on all their rows. Bucket bounds come from the key,
    # which is the bucket's first day.
    lo, hi = _bucket_bounds(grain, "key")
    key = _key(by, grain, "day", None, lambda d: d)
    return f"""
        SELECT key,
               count(*) AS active_customers,
               count(*) FILTER (WHERE first_day BETWEEN {lo} AND {hi}) AS new_customers,
               count(*) FILTER (WHERE second_day <= {hi}) AS repeat_customers
        FROM (SELECT {key} AS key, customer_id, min(first_day) AS first_day, min(second_day) AS second_day
              FROM mart.rollup_customer_daily
              WHERE day BETWEEN :start AND :end {filters_sql(f, lambda d: d)}
              GROUP BY 1, 2) per_customer
        GROUP BY key"""


def _traffic_cte(f: Filters, by: str | None, grain: str | None) -> str | None:
    # Traffic is kept per day and channel only; any other filter or grouping leaves it blank.
    if grain == "hour" or not set(f.dim_map) <= {"channel"} or by not in (None, "channel"):
        return None
    key = _key(by, grain, "day", None, lambda d: d)
    return f"""
        SELECT {key} AS key, SUM(sessions) AS sessions
        FROM mart.traffic_daily
        WHERE day BETWEEN :start AND :end {filters_sql(f, lambda d: d)}
        GROUP BY 1"""


def _keys_cte(by: str | None, grain: str | None, families: list[str]) -> str:
    if by is None and grain is None:
        return "SELECT 'total'::text AS key"
    if by is None and grain == "hour":
        return f"""SELECT generate_series({local_day_start(':start')},
                         {local_day_start('CAST(:end AS date) + 1')} - interval '1 hour',
                         interval '1 hour') AS key"""
    if by is None:
        return (f"SELECT DISTINCT {_bucket(grain, 'd::date')} AS key "
                "FROM generate_series(CAST(:start AS date), CAST(:end AS date), interval '1 day') d")
    keys = " UNION ".join(f"SELECT key FROM {fam}" for fam in families)
    return f"SELECT key FROM ({keys}) u WHERE key IS NOT NULL"


def fetch_rollup_layout(conn: Connection, tz: str) -> int | None:
    """Returns the layout (data.rollups.LAYOUT) the rollups were built with, or None when they
    cannot answer: built for another time zone, or a full rebuild pending."""
    row = conn.execute(sa.text("SELECT timezone, full_needed, layout FROM app.rollup_state")).first()
    return row[2] if row and row[0] == tz and not row[1] else None


def fetch_rollups_usable(conn: Connection, tz: str) -> bool:
    """True when the rollups were built for time zone tz and no full rebuild is pending."""
    return fetch_rollup_layout(conn, tz) is not None


# fetch_aggregate's default layout: read app.rollup_state on the query's connection.
READ_LAYOUT = "read"


@dataclass(frozen=True)
class AggregateQuery:
    sql: str          # SELECT key, base measures, metrics (all float8); no ORDER BY
    params: dict
    sources: dict     # family -> table read (None: the family is not needed)


def aggregate_query(f: Filters, period: Period | None = None, *, layout: int | None, tz: str,
                    by: str | None = None, grain: str | None = None, metrics: tuple[str, ...] = tuple(METRICS),
                    span: tuple[datetime, datetime] | None = None, lines: str | None = None) -> AggregateQuery:
    """Returns the query behind fetch_aggregate(), for callers that rank or pick from its rows in SQL
    (pure: builds SQL, reads nothing).

    layout: the rollups' layout (fetch_rollup_layout, read by the caller in the transaction that runs the
    query), or None to read the raw tables only. span=(t0, t1) counts the orders placed from t0 up
    to (not including) t1 instead of whole local days, from the order lines (alerts over the last
    hour or 24 hours: a small range of an index). Customer and traffic figures are kept per day, so
    they cannot be asked for with a span. lines: with a span, a copy of the order lines covering it
    to read instead of the tables (data.measures.raw_from)."""
    period = period or f.period
    # grain and by become SQL identifiers and literals: only the fixed names pass.
    if grain not in (None, *GRAINS):
        raise FilterError(f"unknown grain {grain!r}; choose one of {', '.join(GRAINS)}")
    if by not in (None, *BREAKDOWNS):
        raise FilterError(f"cannot break down by {by!r}; choose one of {', '.join(BREAKDOWNS)}")
    if by and grain:
        raise FilterError("a breakdown by dimension has no time grain; ask for one or the other")
    bases: set[str] = set()
    for m in metrics:
        bases.update(get_metric(m).bases)
    if span is not None:
        daily = [get_metric(m).label for m in metrics if set(get_metric(m).bases) & {*CUSTOMER_BASES, *TRAFFIC_BASES}]
        if daily or grain is not None:
            raise FilterError(f"{', '.join(daily) or 'a time grain'} is counted per day: choose a window of whole days")
        period = Period(span[0].astimezone(ZoneInfo(tz)).date(), span[1].astimezone(ZoneInfo(tz)).date())
    if span is not None:
        layout = None
    ctes: dict[str, str] = {}
    piece_params: dict = {}
    sources: dict[str, str | None] = {"sales": None, "customers": None, "traffic": None}
    if bases & set(SALES_BASES) or not bases:
        sources["sales"] = sales_source(f, by, grain, bases, layout)
        ctes["s"], piece_params = _sales_cte(f, sources["sales"], by, grain, period, span is not None, layout or 0,
                                             lines if span is not None else None)
    if bases & set(CUSTOMER_BASES):
        sources["customers"] = _customer_source(f, by, grain, layout)
        if sources["customers"] == CR.CELLS:
            ctes["c"], cell_params = _cells_cte(f, by, grain, period)
            piece_params = {**piece_params, **cell_params}
        elif sources["customers"]:
            ctes["c"] = _customer_cte(f, sources["customers"], by, grain)
    if bases & set(TRAFFIC_BASES):
        traffic = _traffic_cte(f, by, grain)
        if traffic:
            sources["traffic"] = "traffic_daily"
            ctes["t"] = traffic
    # Bases become float8 once, here; metrics are then evaluated in float8 (numeric arithmetic
    # on every row of a 21k-product list cost as much as the sums themselves).
    cols = []
    for b in SALES_BASES:
        src = "s" if "s" in ctes else None
        cols.append(f"COALESCE(s.{b}, 0)::float8 AS {b}" if src and not (b == "web_mobile_orders" and "t" not in ctes)
                    else f"NULL::float8 AS {b}")
    for b in CUSTOMER_BASES:
        cols.append(f"COALESCE(c.{b}, 0)::float8 AS {b}" if "c" in ctes else f"NULL::float8 AS {b}")
    cols.append("COALESCE(t.sessions, 0)::float8 AS sessions" if "t" in ctes else "NULL::float8 AS sessions")
    if by is not None and list(ctes) == ["s"]:
        # One family grouped by a dimension: its own keys are all the keys.
        keyed = f"SELECT s.key, {', '.join(cols)} FROM s WHERE s.key IS NOT NULL"
    else:
        ctes["keys"] = _keys_cte(by, grain, [k for k in ctes])
        joins = "".join(f" LEFT JOIN {a} ON {a}.key = k.key" for a in ("s", "c", "t") if a in ctes)
        keyed = f"SELECT k.key, {', '.join(cols)} FROM keys k {joins}"
    base_names = SALES_BASES + CUSTOMER_BASES + TRAFFIC_BASES
    # A metric named like its base measure (gmv, orders…) is that column already.
    metric_cols = "".join(f", ({get_metric(m).sql})::float8 AS {m}" for m in metrics if m not in base_names)
    sql = "WITH " + ",\n".join(f"{name} AS ({body})" for name, body in ctes.items()) + f""",
        b AS ({keyed})
        SELECT key, {', '.join(base_names)}{metric_cols}
        FROM b"""
    params = {"start": period.start, "end": period.end, "tz": tz, **filter_params(f), **piece_params}
    if span is not None:
        params.update(t0=span[0], t1=span[1])
    return AggregateQuery(sql, params, sources)


def fetch_aggregate(conn: Connection, f: Filters, period: Period | None = None, *, by: str | None = None,
                    grain: str | None = None, metrics: tuple[str, ...] = tuple(METRICS),
                    order_by: str | None = None, limit: int | None = None, tz: str,
                    use_rollups: bool = True, span: tuple[datetime, datetime] | None = None,
                    layout: int | None | str = READ_LAYOUT) -> pd.DataFrame:
    """Returns one row per key (total, time bucket or dimension value) with base measures and the
    requested metrics; .attrs["sources"] names the table each family was read from.

    use_rollups=False reads raw tables only: the queries a BI tool without rollups would send
    (the benchmark's baseline). layout: the rollups' layout when the caller read it already
    (fetch_rollup_layout; a vendor's connection cannot read schema app); by default read on conn."""
    if order_by and order_by not in metrics and order_by not in BASE_MEASURES:
        raise KeyError(f"cannot order by {order_by!r}")
    if not use_rollups or span is not None:
        layout = None
    elif layout == READ_LAYOUT:
        layout = fetch_rollup_layout(conn, tz)
    q = aggregate_query(f, period, layout=layout, tz=tz, by=by, grain=grain, metrics=metrics, span=span)
    order = f"{order_by} DESC NULLS LAST, key" if order_by else "key"
    sql = q.sql + f" ORDER BY {order}" + (" LIMIT :limit" if limit else "")
    params = {**q.params, "limit": limit}
    sources = q.sources
    result = conn.execute(sa.text(sql), params)
    # Figures leave PostgreSQL as float8: building a frame from Decimal objects cost seconds for
    # tens of thousands of keys (measured: 21k products, 2.6 s of 3.2 s).
    df = frame(result)
    columns = list(df.columns)
    for c in columns[1:]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df.attrs["sources"] = sources
    return df


def fetch_totals(conn: Connection, f: Filters, period: Period | None = None,
                 metrics: tuple[str, ...] = tuple(METRICS), **kw: Any) -> dict[str, float | None]:
    """Returns {metric: value} for the period (default f.period); None where a value is unknown."""
    row = fetch_aggregate(conn, f, period, metrics=metrics, **kw).iloc[0]
    return {m: (None if pd.isna(row[m]) else float(row[m])) for m in metrics}


def fetch_kpis(conn: Connection, f: Filters, metrics: tuple[str, ...] = tuple(METRICS), **kw: Any) -> pd.DataFrame:
    """Returns (metric, current, previous, target) rows for f.period and its comparison period."""
    cur = fetch_totals(conn, f, metrics=metrics, **kw)
    prev = fetch_totals(conn, f, f.compare, metrics, **kw) if f.compare else {}
    targets = fetch_targets(conn, f.period, metrics) if not f.dims else {}
    return pd.DataFrame([{"metric": m, "current": cur[m], "previous": prev.get(m),
                          "target": targets.get(m)} for m in metrics])


def fetch_trend(conn: Connection, f: Filters, metrics: tuple[str, ...], period: Period | None = None,
                grain: str | None = None, **kw: Any) -> pd.DataFrame:
    """Returns (key = bucket start, metrics…) rows for every bucket of the period, zeros included."""
    return fetch_aggregate(conn, f, period, grain=grain or f.grain, metrics=metrics, **kw)


def fetch_breakdown(conn: Connection, f: Filters, by: str, metrics: tuple[str, ...], period: Period | None = None,
                    limit: int | None = None, order_by: str | None = None, **kw: Any) -> pd.DataFrame:
    """Returns (key = dimension value, metrics…) rows, largest first by order_by (default first metric)."""
    return fetch_aggregate(conn, f, period, by=by, metrics=metrics, order_by=order_by or metrics[0], limit=limit, **kw)


def fetch_targets(conn: Connection, period: Period, metrics: tuple[str, ...]) -> dict[str, float]:
    """Returns {metric: target} for metrics whose kpi_targets rows cover every day of the period.

    Additive metrics sum each target row prorated by the days it shares with the period; rates
    and averages take the day-weighted mean of the overlapping targets.
    """
    rows = conn.execute(sa.text("""
        SELECT metric,
               SUM(target * (LEAST(period_end, :end) - GREATEST(period_start, :start) + 1)
                   / (period_end - period_start + 1)) AS prorated,
               SUM(target * (LEAST(period_end, :end) - GREATEST(period_start, :start) + 1))
                   / SUM(LEAST(period_end, :end) - GREATEST(period_start, :start) + 1) AS weighted,
               SUM(LEAST(period_end, :end) - GREATEST(period_start, :start) + 1) AS covered,
               (SELECT count(DISTINCT d) FROM mart.kpi_targets t2,
                       generate_series(GREATEST(t2.period_start, :start), LEAST(t2.period_end, :end),
                                       interval '1 day') d
                WHERE t2.metric = t.metric AND t2.period_start <= :end AND t2.period_end >= :start) AS days
        FROM mart.kpi_targets t
        WHERE metric = ANY(:metrics) AND period_start <= :end AND period_end >= :start
        GROUP BY metric"""), {"start": period.start, "end": period.end, "metrics": list(metrics)})
    out = {}
    for metric, prorated, weighted, covered, days in rows:
        # Overlapping target rows (a month and its quarter) would be counted twice: no target.
        if metric in METRICS and days >= period.days and covered == days:
            out[metric] = float(prorated if METRICS[metric].additive else weighted)
    return out


# Customer dimensions with an index of their own (migration 0016).
INDEXED_CUSTOMER_DIMENSIONS = ("region", "country", "segment")


def fetch_distinct_values(conn: Connection, dim: str) -> list:
    """Returns a customer dimension's distinct values, sorted, by a skip scan of its index: one
    probe per value instead of a read of every customer (2.4M customers: 120-150 ms -> under 5 ms)."""
    if dim not in INDEXED_CUSTOMER_DIMENSIONS:
        raise KeyError(f"no index to skip through for {dim!r}")
    # dim is one of the fixed names above: an identifier, not a value.
    return [r[0] for r in conn.execute(sa.text(f"""
        WITH RECURSIVE v AS (
            SELECT min({dim}) AS x FROM mart.customers
            UNION ALL
            SELECT (SELECT min({dim}) FROM mart.customers WHERE {dim} > v.x) FROM v WHERE v.x IS NOT NULL)
        SELECT x FROM v WHERE x IS NOT NULL ORDER BY 1"""))]


def fetch_dimension_values(conn: Connection) -> dict[str, list]:
    """Returns {dimension: sorted values} for the filter widgets (vendors as (id, name) pairs)."""
    out = {"category": [r[0] for r in conn.execute(sa.text("SELECT DISTINCT category FROM mart.products ORDER BY 1"))]}
    out.update({d: fetch_distinct_values(conn, d) for d in INDEXED_CUSTOMER_DIMENSIONS})
    out["channel"] = ["web", "mobile", "marketplace_api", "sales_rep"]
    out["business_model"] = ["B2C", "B2B", "B2B2C"]
    # From the rollup: a DISTINCT over mart.orders reads every order.
    out["payment_method"] = [r[0] for r in conn.execute(sa.text(
        "SELECT DISTINCT payment_method FROM mart.rollup_payment_daily ORDER BY 1"))] or [
        # Rollups not built yet (just migrated): read the orders once; the loader caches it.
        r[0] for r in conn.execute(sa.text("SELECT DISTINCT payment_method FROM mart.orders ORDER BY 1"))]
    out["vendor_id"] = [tuple(r) for r in conn.execute(sa.text("SELECT vendor_id, name FROM mart.vendors ORDER BY name"))]
    return out


def fetch_vendor_names(conn: Connection, ids: list[int]) -> dict[int, str]:
    """Returns {vendor_id: name} for the ids."""
    rows = conn.execute(sa.text("SELECT vendor_id, name FROM mart.vendors WHERE vendor_id = ANY(:ids)"),
                        {"ids": [int(i) for i in ids]})
    return {r[0]: r[1] for r in rows}


def fetch_data_bounds(conn: Connection, tz: str) -> tuple[date | None, date | None]:
    """Returns the first and last local day with orders in the marketplace (also on a vendor's role,
    whose own orders are not the data's bounds: rollup_meta.data_bounds, migration 0027)."""
    row = conn.execute(sa.text("""
        SELECT (first_order_at AT TIME ZONE :tz)::date, (last_order_at AT TIME ZONE :tz)::date
        FROM rollup_meta.data_bounds"""), {"tz": tz}).first()
    return (row[0], row[1]) if row else (None, None)
