"""Customer analytics: per-customer summaries, RFM segments, clusters, cohorts, CLV and churn risk.

Per-customer figures are computed in PostgreSQL from counted orders on or before an "as of"
date: from rollup_customer_daily (one row per customer and day) when the filters are order- or
customer-level, else from the raw order lines. The CLV models live in analytics.clv;
fit_bgnbd and fit_gamma_gamma are re-exported here, the interface fixed in the design.

Time is counted in days. A customer's purchases are their purchase days: two orders on one day
are one purchase for frequency and recency, as in the BG/NBD papers.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.clv import FitError, fit_bgnbd, fit_gamma_gamma
from analytics.filters import Filters
from analytics.kpis import ORDER_LEVEL, fetch_rollups_usable, filter_params, filters_sql
from data.db import copy_frame, frame
from data.measures import COUNTED, LINE_VALUE, RAW_DIMENSIONS, local_days_sql, raw_from

__all__ = ["FitError", "fit_bgnbd", "fit_gamma_gamma", "fetch_customer_summary", "fetch_rfm_scores", "RFM_SEGMENTS",
           "segment_of"]

SUMMARY_COLUMNS = ["customer_id", "first_day", "last_day", "purchase_days", "orders", "gmv", "frequency",
                   "recency", "T", "days_since", "monetary_value"]


def _days_sql(f: Filters, use_rollups: bool) -> tuple[str, str]:
    """Returns (SQL of one row per customer and purchase day with orders and GMV, source name)."""
    if use_rollups and set(f.dim_map) <= ORDER_LEVEL:
        return f"""
            SELECT customer_id, day, SUM(orders) AS orders, SUM(gmv) AS gmv
            FROM mart.rollup_customer_daily
            WHERE day <= :as_of {filters_sql(f, lambda d: d)}
            GROUP BY 1, 2""", "rollup_customer_daily"
    day = RAW_DIMENSIONS["day"]
    return f"""
            SELECT o.customer_id, {day} AS day, COUNT(DISTINCT o.order_id) AS orders,
                   COALESCE(SUM({LINE_VALUE}), 0) AS gmv
            FROM {raw_from(f.dim_map)}
            WHERE {COUNTED} AND {local_days_sql('o.ordered_at', None, ':as_of')}
              {filters_sql(f, RAW_DIMENSIONS.get)}
            GROUP BY 1, 2""", "raw"


@dataclass(frozen=True)
class SummaryQuery:
    sql: str       # WITH … defining `d` (customer purchase days) and `cs` (one row per customer)
    params: dict
    source: str


def summary_query(conn: Connection, f: Filters, as_of: date, *, tz: str,
                  use_rollups: bool = True, cal_end: date | None = None,
                  previous: date | None = None) -> SummaryQuery:
    """Returns the WITH clause defining `cs`, the per-customer summary as of as_of (see
    fetch_customer_summary), for callers that score or pick in SQL.

    With cal_end, `cs` also holds each customer's summary at cal_end (cal_frequency, cal_recency,
    cal_T; NULL for customers who first bought after it) and their purchase days after it
    (holdout_purchases); with previous, their purchase days, days since the last one and GMV at
    that date (prev_purchase_days, prev_days_since, prev_gmv). One pass over the purchase days.
    """
    # Asked only when the rollup could answer: a vendor's role (a vendor filter) cannot read schema app.
    days, source = _days_sql(f, use_rollups and set(f.dim_map) <= ORDER_LEVEL and fetch_rollups_usable(conn, tz))
    aggs, cols, params = "", "", {"as_of": as_of, "tz": tz, **filter_params(f)}
    if cal_end is not None:
        aggs += """, min(day) FILTER (WHERE day <= :cal_end) AS cal_first,
                   max(day) FILTER (WHERE day <= :cal_end) AS cal_last,
                   count(*) FILTER (WHERE day <= :cal_end) AS cal_days,
                   count(*) FILTER (WHERE day > :cal_end) AS after_days"""
        cols += """, (NULLIF(c.cal_days, 0) - 1)::float8 AS cal_frequency,
                   (c.cal_last - c.cal_first)::float8 AS cal_recency,
                   (CAST(:cal_end AS date) - c.cal_first)::float8 AS "cal_T",
                   CASE WHEN c.cal_days > 0 THEN c.after_days END::float8 AS holdout_purchases"""
        params["cal_end"] = cal_end
    if previous is not None:
        aggs += """, count(*) FILTER (WHERE day <= :previous) AS prev_days,
                   max(day) FILTER (WHERE day <= :previous) AS prev_last,
                   SUM(gmv) FILTER (WHERE day <= :previous) AS prev_gmv"""
        cols += """, c.prev_days::float8 AS prev_purchase_days,
                   (CAST(:previous AS date) - c.prev_last)::float8 AS prev_days_since,
                   c.prev_gmv::float8 AS prev_gmv"""
        params["previous"] = previous
    sql = f"""
        WITH d AS MATERIALIZED ({days}),
        c AS (
            SELECT customer_id, min(day) AS first_day, max(day) AS last_day, count(*) AS purchase_days,
                   SUM(orders) AS orders, SUM(gmv) AS gmv{aggs}
            FROM d GROUP BY customer_id),
        cs AS (
            SELECT c.customer_id, c.first_day, c.last_day, c.purchase_days, c.orders::float8 AS orders,
                   c.gmv::float8 AS gmv, (c.purchase_days - 1)::float8 AS frequency,
                   (c.last_day - c.first_day)::float8 AS recency, (CAST(:as_of AS date) - c.first_day)::float8 AS "T",
                   (CAST(:as_of AS date) - c.last_day)::float8 AS days_since,
                   ((c.gmv - f.gmv) / NULLIF(c.purchase_days - 1, 0))::float8 AS monetary_value{cols}
            FROM c JOIN d f ON f.customer_id = c.customer_id AND f.day = c.first_day)"""
    return SummaryQuery(sql, params, source)


def fetch_customer_summary(conn: Connection, f: Filters, as_of: date, *, tz: str,
                           use_rollups: bool = True) -> pd.DataFrame:
    """Returns one row per customer with a counted order on or before as_of matching f:

    first_day, last_day   first and last purchase day
    purchase_days, orders days with a counted order, and counted orders
    gmv                   GMV of those orders (matching lines only under a vendor or category filter)
    frequency             repeat purchases: purchase_days − 1
    recency               days from the first to the last purchase (0 without repeats)
    T                     days from the first purchase to as_of (tenure)
    days_since            days from the last purchase to as_of
    monetary_value        average GMV of the repeat purchase days (NaN without repeats)
    """
    q = summary_query(conn, f, as_of, tz=tz, use_rollups=use_rollups)
    df = frame(conn.execute(sa.text(q.sql + " SELECT * FROM cs ORDER BY customer_id"), q.params))
    if df.empty:
        df = pd.DataFrame(columns=SUMMARY_COLUMNS)
    for c in SUMMARY_COLUMNS[3:]:
        df[c] = pd.to_numeric(df[c]).astype("float64")
    df.attrs["source"] = q.source
    return df


# --- RFM ------------------------------------------------------------------------------------------
# Scores 1–5 by quintile of rank: score = 1 + floor(5 × (rank − 1) / customers), rank counting from
# the worst (most days since the last purchase; fewest purchases; least GMV) with ties sharing the
# lowest rank, so equal customers always share a score. F and M combine into FM = ⌈(F + M) / 2⌉.

# (segment, rule shown on the page, R scores, FM scores), first match wins; together they cover
# every (R, FM) pair once.
RFM_SEGMENTS: tuple[tuple[str, str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("Champions", "bought very recently, often and for a lot (R 5, FM 4–5)", (5,), (4, 5)),
    ("Loyal", "buy often and for a lot, fairly recently (R 3–4, FM 4–5)", (3, 4), (4, 5)),
    ("Potential loyalists", "recent, with a few purchases (R 4–5, FM 2–3)", (4, 5), (2, 3)),
    ("New", "first purchase very recently (R 5, FM 1)", (5,), (1,)),
    ("Promising", "recent, little bought yet (R 4, FM 1)", (4,), (1,)),
    ("Need attention", "middling on every count (R 3, FM 1–3)", (3,), (1, 2, 3)),
    ("Can't lose", "were the best customers, not seen for a while (R 1–2, FM 5)", (1, 2), (5,)),
    ("At risk", "bought often, not seen for a while (R 1–2, FM 3–4)", (1, 2), (3, 4)),
    ("Hibernating", "few purchases, long ago (R 2, FM 1–2)", (2,), (1, 2)),
    ("Lost", "fewest purchases, longest ago (R 1, FM 1–2)", (1,), (1, 2)),
)


SEGMENT_NAMES = [name for name, *_ in RFM_SEGMENTS]


def segment_of(r: int, fm: int) -> str:
    """Returns the RFM segment of recency score r and combined frequency-monetary score fm."""
    for name, _, rs, fms in RFM_SEGMENTS:
        if r in rs and fm in fms:
            return name
    raise ValueError(f"scores out of range: R {r}, FM {fm}")


def _segment_case(r: str, fm: str) -> str:
    whens = " ".join(f"WHEN {r} IN ({', '.join(map(str, rs))}) AND {fm} IN ({', '.join(map(str, fms))}) "
                     f"THEN '{name.replace(chr(39), chr(39) * 2)}'" for name, _, rs, fms in RFM_SEGMENTS)
    return f"CASE {whens} END"


def _score(order: str, within: str | None = None) -> str:
    """The 1–5 score by rank of order, among every customer or among those where `within` holds."""
    part = f"PARTITION BY {within} " if within else ""
    return (f"(1 + floor(5 * (rank() OVER ({part}ORDER BY {order}) - 1)::float8 "
            f"/ count(*) OVER ({part.strip()})))::int")


# The segment at `previous` is scored among the customers who had bought by then in the same pass
# (a partition), not in a second scan joined back: that join, planned on the estimate of a vendor's
# role (its row-level security and its filter both narrow the lines), nested two scans of the
# customers (a vendor's 2,718 customers: 6.1 s).
_BOUGHT_BEFORE = "prev_purchase_days > 0"
_PREVIOUS_SCORES = "".join(
    f",\n               CASE WHEN {_BOUGHT_BEFORE} THEN {_score(order, _BOUGHT_BEFORE)} END AS {name}"
    for name, order in (("prev_r", "prev_days_since DESC"), ("prev_f", "prev_purchase_days"), ("prev_m", "prev_gmv")))


def rfm_sql(previous: bool = False) -> str:
    """SQL of the CTEs `scored` and `rfm` over `cs` (summary_query): RFM scores and segment, and with
    previous the segment at summary_query's `previous` (prev_segment, NULL for customers who had not
    bought by then; prev_r, prev_f, prev_m its scores)."""
    prev = f", {_segment_case('prev_r', '((prev_f + prev_m + 1) / 2)')} AS prev_segment" if previous else ""
    return f"""
    scored AS (
        SELECT cs.*, {_score("days_since DESC")} AS r_score, {_score("purchase_days")} AS f_score,
               {_score("gmv")} AS m_score{_PREVIOUS_SCORES if previous else ""}
        FROM cs),
    rfm AS (
        SELECT scored.*, ((f_score + m_score + 1) / 2) AS fm_score,
               {_segment_case("r_score", "((f_score + m_score + 1) / 2)")} AS segment{prev}
        FROM scored)"""


def fetch_rfm_scores(conn: Connection, f: Filters, as_of: date, *, tz: str, use_rollups: bool = True,
                     cal_end: date | None = None, previous: date | None = None) -> pd.DataFrame:
    """Returns fetch_customer_summary with r_score, f_score, m_score (1–5), fm_score and segment; with
    cal_end or previous, also summary_query's extra columns, and prev_segment: the customer's
    segment at previous (NaN when they had not bought by then)."""
    q = summary_query(conn, f, as_of, tz=tz, use_rollups=use_rollups, cal_end=cal_end, previous=previous)
    # Streamed: at 10M order lines this is two million rows.
    df = copy_frame(conn, f"{q.sql},{rfm_sql(previous is not None)} SELECT rfm.* FROM rfm ORDER BY rfm.customer_id",
                    q.params, dates=("first_day", "last_day"))
    df = df.drop(columns=["prev_r", "prev_f", "prev_m"], errors="ignore")
    for c in SUMMARY_COLUMNS[3:]:
        df[c] = pd.to_numeric(df[c]).astype("float64")
    df.attrs["source"] = q.source
    return df


NOT_YET = "Not yet a customer"
PREVIOUS_RFM_SQL = f"""
    prev_scored AS (
        SELECT customer_id, {_score("prev_days_since DESC")} AS r, {_score("prev_purchase_days")} AS f,
               {_score("prev_gmv")} AS m
        FROM cs WHERE prev_purchase_days > 0),
    prev_rfm AS (
        SELECT customer_id, {_segment_case("r", "((f + m + 1) / 2)")} AS prev_segment FROM prev_scored)"""


def segment_movement(scores: pd.DataFrame, segment: str = "segment") -> pd.DataFrame:
    """Returns the customers moving from each RFM segment at the earlier date (rows; "Not yet a
    customer" for those who had not bought) to each segment at as_of (columns), from a frame with
    the segment column and `prev_segment`."""
    before = scores["prev_segment"].fillna(NOT_YET)
    table = pd.crosstab(before, scores[segment])
    return table.reindex(index=[*SEGMENT_NAMES, NOT_YET], columns=SEGMENT_NAMES, fill_value=0).astype(int)


# --- cohorts --------------------------------------------------------------------------------------
# A customer's cohort is the month of their first counted order (matching the filters) on or before
# as_of; month k counts the customers of a cohort who bought in its k-th calendar month after that
# (k = 0 is the first month: every member) and the GMV they spent. Splits group each cohort by the
# customer's acquisition channel or segment.

COHORT_SPLITS = {"all": "All customers", "acquisition_channel": "Acquisition channel", "segment": "Segment"}
GAP_BUCKETS = ((1, 7, "1–7 days"), (8, 14, "8–14 days"), (15, 30, "15–30 days"), (31, 60, "31–60 days"),
               (61, 90, "61–90 days"), (91, 180, "91–180 days"), (181, 365, "181–365 days"),
               (366, None, "over a year"))


def _split_columns(prefix: str = "", splits: bool = True) -> str:
    if not splits:
        return "'all' AS split, 'All customers' AS split_value"
    return (f"CASE WHEN GROUPING({prefix}acquisition_channel) = 0 THEN 'acquisition_channel' "
            f"WHEN GROUPING({prefix}segment) = 0 THEN 'segment' ELSE 'all' END AS split, "
            f"COALESCE({prefix}acquisition_channel, {prefix}segment, 'All customers') AS split_value")


def cohort_query(conn: Connection, f: Filters, as_of: date, *, tz: str,
                 use_rollups: bool = True, splits: bool = True) -> tuple[str, dict]:
    """Returns one statement whose single row holds three JSON arrays: cohort cells (cohort, split,
    split_value, month, customers, revenue), cohort sizes with repeat customers (≥ 2 counted
    orders by as_of), and the gaps in days between a customer's consecutive purchase days, bucketed
    (GAP_BUCKETS) with their median and mean. splits=False: the "all" split only, without reading
    the customers' records (a vendor's role cannot)."""
    q = summary_query(conn, f, as_of, tz=tz, use_rollups=use_rollups)
    by_split = ("k.acquisition_channel, k.segment FROM c JOIN mart.customers k ON k.customer_id = c.customer_id"
                if splits else "NULL::text AS acquisition_channel, NULL::text AS segment FROM c")
    ym = "(date_part('year', {0}) * 12 + date_part('month', {0}))::int"
    month = f"a.ym - {ym.format('f.cohort')}"
    cell_sets = f", (f.cohort, {month}, f.acquisition_channel), (f.cohort, {month}, f.segment)" if splits else ""
    size_sets = ", (cohort, acquisition_channel), (cohort, segment)" if splits else ""
    buckets = " ".join(f"WHEN gap <= {hi} THEN {i}" if hi else f"ELSE {i}"
                       for i, (_, hi, _) in enumerate(GAP_BUCKETS))
    sql = q.sql + f""",
        firsts AS (
            SELECT c.customer_id, date_trunc('month', c.first_day)::date AS cohort, c.orders, {by_split}),
        act AS (
            SELECT customer_id, {ym.format("day")} AS ym, SUM(gmv) AS gmv FROM d GROUP BY 1, 2),
        cells AS (
            SELECT f.cohort, {_split_columns("f.", splits)}, {month} AS month,
                   count(*) AS customers, SUM(a.gmv)::float8 AS revenue
            FROM act a JOIN firsts f ON f.customer_id = a.customer_id
            GROUP BY GROUPING SETS ((f.cohort, {month}){cell_sets})),
        sizes AS (
            SELECT cohort, {_split_columns("", splits)}, count(*) AS customers,
                   count(*) FILTER (WHERE orders >= 2) AS repeat_customers
            FROM firsts GROUP BY GROUPING SETS ((cohort){size_sets})),
        gaps AS (
            SELECT day - lag(day) OVER (PARTITION BY customer_id ORDER BY day) AS gap FROM d)
        SELECT (SELECT COALESCE(json_agg(cells ORDER BY split, split_value, cohort, month), '[]') FROM cells),
               (SELECT COALESCE(json_agg(sizes ORDER BY split, split_value, cohort), '[]') FROM sizes),
               (SELECT json_build_object(
                    'counts', (SELECT COALESCE(json_agg(json_build_object('bucket', b, 'gaps', n) ORDER BY b), '[]')
                               FROM (SELECT CASE {buckets} END AS b, count(*) AS n
                                     FROM gaps WHERE gap IS NOT NULL GROUP BY 1) g),
                    'median', percentile_cont(0.5) WITHIN GROUP (ORDER BY gap),
                    'mean', avg(gap)::float8)
                FROM gaps)"""
    return sql, q.params


@dataclass(frozen=True)
class Cohorts:
    cells: pd.DataFrame   # cohort, split, split_value, month, customers, revenue
    sizes: pd.DataFrame   # cohort, split, split_value, customers, repeat_customers
    gaps: pd.DataFrame    # bucket (label), gaps: consecutive purchase days this far apart
    gap_median: float | None
    gap_mean: float | None
    as_of: date

    def matrix(self, split: str = "all", value: str = "All customers", *, revenue: bool = False) -> pd.DataFrame:
        """Returns cohorts × months since the first order: the share of the cohort's customers who
        bought that month (or its GMV as a share of the first month's GMV when revenue)."""
        cells = self.cells[(self.cells["split"] == split) & (self.cells["split_value"] == value)]
        if cells.empty:
            return pd.DataFrame()
        col = "revenue" if revenue else "customers"
        wide = cells.pivot(index="cohort", columns="month", values=col).sort_index()
        last = self.as_of.year * 12 + self.as_of.month
        months = max(last - (c.year * 12 + c.month) for c in wide.index) + 1
        wide = wide.reindex(columns=range(months))
        # A month the cohort has lived through with nobody buying is 0; months after as_of stay empty.
        for cohort in wide.index:
            lived = last - (cohort.year * 12 + cohort.month) + 1
            wide.loc[cohort, wide.columns[:lived]] = wide.loc[cohort, wide.columns[:lived]].fillna(0)
        return wide.div(wide[0], axis=0)

    def to_json(self) -> dict:
        """Returns the figures as JSON-ready lists, for the nightly store."""
        def records(df):
            return [{k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()}
                    for r in df.to_dict("records")]
        return {"cells": records(self.cells), "sizes": records(self.sizes), "gaps": records(self.gaps),
                "median": self.gap_median, "mean": self.gap_mean, "as_of": self.as_of.isoformat()}

    @classmethod
    def from_json(cls, j: dict) -> "Cohorts":
        cells = pd.DataFrame(j["cells"], columns=CELL_COLUMNS)
        sizes = pd.DataFrame(j["sizes"], columns=SIZE_COLUMNS)
        for df in (cells, sizes):
            df["cohort"] = pd.to_datetime(df["cohort"]).dt.date
        return cls(cells, sizes, pd.DataFrame(j["gaps"], columns=["bucket", "gaps"]), j["median"], j["mean"],
                   date.fromisoformat(j["as_of"]))


CELL_COLUMNS = ["cohort", "split", "split_value", "month", "customers", "revenue"]
SIZE_COLUMNS = ["cohort", "split", "split_value", "customers", "repeat_customers"]


def fetch_cohorts(conn: Connection, f: Filters, as_of: date, *, tz: str,
                  use_rollups: bool = True, splits: bool = True) -> Cohorts:
    """Returns monthly acquisition cohorts, repeat customers per cohort and the time between
    purchases, for customers matching f, as of as_of (splits: as for cohort_query)."""
    sql, params = cohort_query(conn, f, as_of, tz=tz, use_rollups=use_rollups, splits=splits)
    row = conn.execute(sa.text(sql), params).one()
    counts = {c["bucket"]: c["gaps"] for c in row[2]["counts"]}
    gaps = [{"bucket": label, "gaps": int(counts.get(i, 0))} for i, (*_, label) in enumerate(GAP_BUCKETS)]
    return Cohorts.from_json({"cells": row[0], "sizes": row[1], "gaps": gaps, "median": row[2]["median"],
                              "mean": row[2]["mean"], "as_of": as_of.isoformat()})
