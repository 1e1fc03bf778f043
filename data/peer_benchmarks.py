"""Peer benchmarks (issue 22): each vendor's figures against its category's quartiles, computed by the
scheduler, so that no query made for a vendor reads another vendor's rows.

Per period preset (PRESETS; the caller resolves the dates: data may not import analytics, where the
presets live) and vendor, seven figures (METRICS), over the vendor's own order lines:

  gmv                GMV, where the vendor had an order in the period (its rank: the leaderboard's
                     stand-in; no quartiles, which would be some vendor's exact revenue)
  gmv_growth         GMV of the period / GMV of the same number of days just before − 1
  aov                GMV / counted orders holding the vendor's lines
  refund_rate        Σ refunded amount / GMV
  cancellation_rate  cancelled orders / all orders holding the vendor's lines
  take_rate          take revenue / GMV: the share the marketplace keeps as commission
  repeat_rate        of the customers with a counted order holding the vendor's lines in the period,
                     the share with two or more such orders up to the period's end

A vendor's peers are the vendors of its own category (mart.vendors.category) with a value.
mart.vendor_benchmarks gets a row per preset, vendor and metric with a value; its rank (1 = best: the
highest growth, AOV and repeat rate, the lowest refund, cancellation and take rates), peers and
percentile (the share of peers it is at least as good as, itself included) only where the category
has at least MIN_PEERS vendors with a value. Below that they would be figures about fewer than 5
other vendors (DESIGN.md: "anonymous aggregates of at least 5 vendors"), and a vendor reads this
table on its SQL page too, not only through the page that would hide them. mart.peer_benchmarks
gets the category's quartiles (percentile_cont) where it has at least MIN_PEERS vendors with a value;
every vendor role reads it whole (data.vendor_scope's shared tables).

Sources: the sales figures sum the vendor day rollup and its weekly and monthly copies (whole months,
then whole weeks, then edge days: data.calendar.calendar_pieces), so they cost the same at any
number of orders. Repeat customers per vendor are kept by no rollup (the customer cells count a
customer's second order with any vendor; customer_daily has no vendor), so they are counted from the
counted orders' lines up to the latest period's end: one pass, sorted per customer and vendor.

Cost of refresh_peer_benchmarks over the six presets and 2,000 vendors (2026-12-07, the bench
databases): 1M order lines 2.0 s, 10M 15.5 s, of which the sales figures 0.05 s and the repeat
customers 1.3 s and 15.0 s (joining 10M lines to their orders 6 s, sorting them 4 s); once a day.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.calendar import calendar_pieces
from data.db import frame, stage_temp_table
from data.measures import COUNTED, LOCAL_DAY, local_days_sql
from data.rollups import coarse_table

PRESETS = ("last_30_days", "last_90_days", "mtd", "qtd", "ytd", "last_year")
# Fewer vendors than this make no quartile, rank or percentile (DESIGN.md's line for vendors).
MIN_PEERS = 5
# The weekly and monthly copies of the vendor day rollup (data.rollups, layout 1 on).
_FIRST_LAYOUT = 1


@dataclass(frozen=True)
class BenchmarkMetric:
    sql: str                  # over one vendor's sums in a period (_figures_sql)
    higher_is_better: bool
    # Peer quartiles kept (mart.peer_benchmarks). Not for GMV: a quartile of an odd number of vendors
    # is one of them's exact revenue, which a vendor would read as a competitor's; its rank is enough.
    quartiles: bool = True


# data/ cannot import analytics.metrics; these follow its glossary entries (DESIGN.md) over one
# vendor's lines: AOV ("gmv / NULLIF(orders, 0)"), Refund rate, Cancellation rate and Repeat rate as
# the glossary writes them, GMV growth as the overview's change against the previous period, take rate
# as Take revenue over GMV. Repeat rate counts orders holding the vendor's lines (the glossary's, under
# a vendor filter, counts a customer's orders with any vendor): how many of its customers came back to
# this vendor. Lower is better for the shares a vendor pays or loses: refunds, cancellations, commission.
METRICS: dict[str, BenchmarkMetric] = {
    # The vendor's GMV where it had an order in the period (cancelled ones too): its rank among its
    # category's vendors stands in for the marketplace's leaderboard, which names them.
    "gmv": BenchmarkMetric("CASE WHEN all_orders > 0 THEN gmv END", True, quartiles=False),
    "gmv_growth": BenchmarkMetric("gmv / NULLIF(prev_gmv, 0) - 1", True),
    "aov": BenchmarkMetric("gmv / NULLIF(orders, 0)", True),
    "refund_rate": BenchmarkMetric("refunded / NULLIF(gmv, 0)", False),
    "cancellation_rate": BenchmarkMetric("cancelled_orders::numeric / NULLIF(all_orders, 0)", False),
    "take_rate": BenchmarkMetric("take / NULLIF(gmv, 0)", False),
    "repeat_rate": BenchmarkMetric("repeat_customers::numeric / NULLIF(active_customers, 0)", True),
}


# What people call them (the portal's table and a vendor's report).
LABELS = {"gmv": "GMV", "gmv_growth": "GMV growth", "aov": "AOV", "refund_rate": "Refund rate",
          "cancellation_rate": "Cancellation rate", "take_rate": "Take rate", "repeat_rate": "Repeat rate"}


class BenchmarkPeriodError(ValueError):
    """A period preset the benchmarks are not kept for, or a period ending before it starts."""


class RollupsNotReadyError(RuntimeError):
    """The rollups cannot answer for the time zone asked: built for another one, or a full rebuild pending."""


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise BenchmarkPeriodError(f"no peer benchmarks for period {preset!r}; they are kept for {', '.join(PRESETS)}")


def fetch_rollups_ready(conn: Connection, tz: str) -> bool:
    """Whether the vendor rollups answer for time zone tz: built for it, with their weekly and monthly
    copies, and no full rebuild pending (as analytics.kpis.fetch_rollup_layout decides)."""
    return bool(conn.execute(sa.text("""
        SELECT timezone = :tz AND NOT full_needed AND layout >= :layout FROM app.rollup_state"""),
                             {"tz": tz, "layout": _FIRST_LAYOUT}).scalar())


def _pieces(periods: dict[str, tuple[date, date]]) -> dict[str, list]:
    """Bound arrays of the rollup pieces each preset reads: its period ('cur') and the same number of
    days just before ('prev'), as (preset, part, grain: day, week or month, first day, last day)."""
    out: dict[str, list] = {"pc_preset": [], "pc_part": [], "pc_grain": [], "pc_lo": [], "pc_hi": []}
    for preset, (start, end) in periods.items():
        before = (start - (end - start) - timedelta(days=1), start - timedelta(days=1))
        for part, (lo, hi) in (("cur", (start, end)), ("prev", before)):
            for grain, first, last in calendar_pieces(lo, hi):
                for key, value in zip(out, (preset, part, grain, first, last)):
                    out[key].append(value)
    return out


# The SQL below splices only fixed text (table and grain names, preset numbers, METRICS' formulas);
# every value is a bound parameter.
_SOURCES = {"day": "rollup_vendor_daily", "week": coarse_table("rollup_vendor_daily", "week"),
            "month": coarse_table("rollup_vendor_daily", "month")}
_PIECE_ROWS = " UNION ALL ".join(f"""
    SELECT p.preset, p.part, r.vendor_id, r.gmv::float8 AS gmv, r.refunded::float8 AS refunded,
           r.take::float8 AS take, r.orders, r.all_orders, r.cancelled_orders
    FROM pieces p JOIN mart.{table} r ON r.day BETWEEN p.lo AND p.hi
    WHERE p.grain = '{grain}'""" for grain, table in _SOURCES.items())


def _sum(column: str, part: str = "cur", scale: int | None = None) -> str:
    total = f"SUM({column}) FILTER (WHERE part = '{part}')"
    if part == "cur":
        total = f"COALESCE({total}, 0)"
    # The weekly and monthly copies keep float8 sums; rounded back to the scale of what they sum
    # (cents; take: cents × the commission's 4 decimals) they are the exact sums again, so a value
    # and its ties do not depend on how the period was cut into pieces.
    return f"round(({total})::numeric, {scale})" if scale is not None else total


def _customers_sql(presets: int) -> str:
    """SQL of (preset, vendor_id, active_customers, repeat_customers) from linked, for the presets
    bound as :p<k>_name, :p<k>_lo, :p<k>_hi: one pass with a pair of counts per preset (joining the
    rows to the presets instead made the whole refresh take 19 s at 10M lines, not 15.5 s)."""
    def first(k: int) -> str:   # the customer's first day with the vendor in the period
        return f"day BETWEEN :p{k}_lo AND :p{k}_hi AND (prev_day IS NULL OR prev_day < :p{k}_lo)"

    counts = ",\n           ".join(
        f"count(*) FILTER (WHERE {first(k)}) AS a{k}, "
        f"count(*) FILTER (WHERE {first(k)} AND (prev_day IS NOT NULL OR orders >= 2 OR next_day <= :p{k}_hi)) AS r{k}"
        for k in range(presets))
    rows = ", ".join(f"(CAST(:p{k}_name AS text), a{k}, r{k})" for k in range(presets))
    return f"""
    SELECT k.preset, c.vendor_id, k.active_customers, k.repeat_customers
    FROM (SELECT vendor_id, {counts}
          FROM linked WHERE day >= :first_start GROUP BY vendor_id) c
    CROSS JOIN LATERAL (VALUES {rows}) AS k(preset, active_customers, repeat_customers)
    WHERE k.active_customers > 0"""


def _figures_sql(presets: int) -> str:
    """Per preset and vendor: the sums the metrics are written over (one row per vendor of mart.vendors;
    NULL sums when it had no line in the period or the one before).

    Repeat customers: each customer's days with a counted order holding the vendor's lines, with the
    day before and after; a customer is active in a period on its first such day in it (no earlier
    day, or one before the start) and a repeat customer when that day is not its first ever, holds
    two orders, or is followed by another day up to the period's end."""
    return f"""
WITH pieces AS (
    SELECT * FROM unnest(CAST(:pc_preset AS text[]), CAST(:pc_part AS text[]), CAST(:pc_grain AS text[]),
                         CAST(:pc_lo AS date[]), CAST(:pc_hi AS date[])) AS p(preset, part, grain, lo, hi)
),
sales AS (
    SELECT preset, vendor_id,
           {_sum('gmv', scale=2)} AS gmv, {_sum('refunded', scale=2)} AS refunded, {_sum('take', scale=6)} AS take,
           {_sum('orders')} AS orders, {_sum('all_orders')} AS all_orders,
           {_sum('cancelled_orders')} AS cancelled_orders,
           {_sum('gmv', 'prev', 2)} AS prev_gmv
    FROM ({_PIECE_ROWS}) r
    GROUP BY preset, vendor_id
),
vendor_days AS (
    SELECT o.customer_id, i.vendor_id, {LOCAL_DAY} AS day, count(DISTINCT o.order_id) AS orders
    FROM mart.orders o JOIN mart.order_items i ON i.order_id = o.order_id
    WHERE {COUNTED} AND {local_days_sql('o.ordered_at', None, ':last_end')}
    GROUP BY 1, 2, 3
),
linked AS (
    SELECT vendor_id, day, orders, lag(day) OVER w AS prev_day, lead(day) OVER w AS next_day
    FROM vendor_days WINDOW w AS (PARTITION BY customer_id, vendor_id ORDER BY day)
),
customers AS ({_customers_sql(presets)})
SELECT p.preset, v.vendor_id, v.category,
       s.gmv, s.refunded, s.take, s.orders, s.all_orders, s.cancelled_orders, s.prev_gmv,
       c.active_customers, c.repeat_customers
FROM bench_periods p CROSS JOIN mart.vendors v
LEFT JOIN sales s ON s.preset = p.preset AND s.vendor_id = v.vendor_id
LEFT JOIN customers c ON c.preset = p.preset AND c.vendor_id = v.vendor_id"""


# Each metric's value per preset and vendor, where it has one, from the figures staged above.
_VALUES = """
SELECT f.preset, f.vendor_id, f.category, m.metric, m.value::float8 AS value
FROM bench_figures f
CROSS JOIN LATERAL (VALUES {metrics}) AS m(metric, value)
WHERE m.value IS NOT NULL"""

# Rank: 1 = best; percentile: the share of the category's vendors with a value whose value is no
# better than this one's (itself included), as cume_dist() over the values ordered from worst to best.
_INSERT_VENDORS = """
INSERT INTO mart.vendor_benchmarks (preset, period_start, period_end, vendor_id, category, metric, value,
                                    rank, peers, percentile, computed_at)
SELECT b.preset, p.lo, p.hi, b.vendor_id, b.category, b.metric, b.value,
       CASE WHEN b.peers >= :min_peers THEN b.rank END,
       CASE WHEN b.peers >= :min_peers THEN b.peers END,
       CASE WHEN b.peers >= :min_peers THEN 100 * b.share END,
       :computed_at
FROM (
    SELECT v.*, count(*) OVER c AS peers,
           rank() OVER (c ORDER BY v.value * d.sign DESC) AS rank,
           cume_dist() OVER (c ORDER BY v.value * d.sign) AS share
    FROM bench_values v
    JOIN unnest(CAST(:metric_names AS text[]), CAST(:signs AS integer[])) AS d(metric, sign) USING (metric)
    WINDOW c AS (PARTITION BY v.preset, v.category, v.metric)
) b
JOIN bench_periods p USING (preset)"""

_INSERT_PEERS = """
INSERT INTO mart.peer_benchmarks (preset, period_start, period_end, category, metric, peers, p25, median, p75,
                                  computed_at)
SELECT v.preset, p.lo, p.hi, v.category, v.metric, count(*),
       percentile_cont(0.25) WITHIN GROUP (ORDER BY v.value),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY v.value),
       percentile_cont(0.75) WITHIN GROUP (ORDER BY v.value),
       :computed_at
FROM bench_values v JOIN bench_periods p USING (preset)
WHERE v.metric = ANY(:quartile_metrics)
GROUP BY v.preset, p.lo, p.hi, v.category, v.metric
HAVING count(*) >= :min_peers"""


def _period_params(periods: dict[str, tuple[date, date]]) -> dict:
    """The bound values of the periods: as arrays, per preset (p<k>_name, _lo, _hi) and as pieces."""
    names = list(periods)
    return {"presets": names, "starts": [periods[p][0] for p in names], "ends": [periods[p][1] for p in names],
            "first_start": min(start for start, _ in periods.values()),
            "last_end": max(end for _, end in periods.values()), **_pieces(periods),
            **{f"p{k}_{key}": value for k, name in enumerate(names)
               for key, value in (("name", name), ("lo", periods[name][0]), ("hi", periods[name][1]))}}


def refresh_peer_benchmarks(conn: Connection, periods: dict[str, tuple[date, date]], *, tz: str,
                            now: datetime | None = None) -> int:
    """Replaces the peer and vendor benchmarks of the presets in periods ({preset: (first, last local
    day)}, resolved by the caller) inside conn's transaction, so readers see the old rows or the new
    ones; returns the vendor rows written. Raises BenchmarkPeriodError for an unknown preset or a
    period ending before it starts, RollupsNotReadyError when the rollups cannot answer for tz."""
    for preset, (start, end) in periods.items():
        _check_preset(preset)
        if end < start:
            raise BenchmarkPeriodError(f"the period of {preset} ends ({end}) before it starts ({start})")
    if not periods:
        return 0
    if not fetch_rollups_ready(conn, tz):
        raise RollupsNotReadyError(f"the rollups are not built for {tz} yet (or wait for a full rebuild): the "
                                   "scheduler's next refresh rebuilds them, and the benchmarks can follow")
    params = {**_period_params(periods), "tz": tz, "min_peers": MIN_PEERS, "metric_names": list(METRICS),
              "signs": [1 if m.higher_is_better else -1 for m in METRICS.values()],
              "quartile_metrics": [name for name, m in METRICS.items() if m.quartiles],
              "computed_at": now or conn.execute(sa.text("SELECT now()")).scalar()}
    stage_temp_table(conn, "bench_periods", """
        SELECT * FROM unnest(CAST(:presets AS text[]), CAST(:starts AS date[]), CAST(:ends AS date[]))
            AS p(preset, lo, hi)""",
                     params)
    # The repeat customers sort one row per customer, vendor and day of every counted order.
    conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
    stage_temp_table(conn, "bench_figures", _figures_sql(len(periods)), params, analyze="preset")
    metrics = ", ".join(f"('{name}', ({m.sql}))" for name, m in METRICS.items())
    stage_temp_table(conn, "bench_values", _VALUES.format(metrics=metrics))
    conn.execute(sa.text("DELETE FROM mart.vendor_benchmarks WHERE preset = ANY(:presets)"), params)
    conn.execute(sa.text("DELETE FROM mart.peer_benchmarks WHERE preset = ANY(:presets)"), params)
    written = conn.execute(sa.text(_INSERT_VENDORS), params).rowcount
    conn.execute(sa.text(_INSERT_PEERS), params)
    return written


def fetch_vendor_benchmarks(conn: Connection, preset: str, vendor_ids: list[int] | None = None) -> pd.DataFrame:
    """Returns (vendor_id, category, metric, value, rank, peers, percentile, p25, median, p75,
    period_start, period_end) rows of preset for the vendors the connection may see (a vendor role:
    its own), metrics in METRICS order; value to p75 as float64, NaN where unknown: rank, peers,
    percentile and the quartiles where fewer than MIN_PEERS vendors of the category have a value.
    Reads mart.vendor_benchmarks and mart.peer_benchmarks only. vendor_ids: those vendors' rows only
    (a vendor's report made on the app's own role, which row-level security does not limit)."""
    _check_preset(preset)
    result = conn.execute(sa.text("""
        SELECT v.vendor_id, v.category, v.metric, v.value, v.rank, v.peers, v.percentile,
               p.p25, p.median, p.p75, v.period_start, v.period_end
        FROM mart.vendor_benchmarks v
        LEFT JOIN mart.peer_benchmarks p ON p.preset = v.preset AND p.category = v.category AND p.metric = v.metric
        WHERE v.preset = :preset AND (CAST(:ids AS integer[]) IS NULL OR v.vendor_id = ANY(CAST(:ids AS integer[])))
        ORDER BY v.vendor_id, array_position(CAST(:metrics AS text[]), v.metric)"""),
                          {"preset": preset, "metrics": list(METRICS),
                           "ids": None if vendor_ids is None else [int(v) for v in vendor_ids]})
    df = frame(result)
    # One dtype whatever the rows hold (a column of only NULLs would come back as objects).
    for c in ("value", "rank", "peers", "percentile", "p25", "median", "p75"):
        df[c] = pd.to_numeric(df[c]).astype("float64")
    return df
