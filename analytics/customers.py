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
from analytics.kpis import ORDER_LEVEL, filter_params, filters_sql, rollups_usable
from data.db import frame
from data.measures import COUNTED, LINE_VALUE, RAW_DIMENSIONS, RAW_FROM
from data.settings import load_settings

__all__ = ["FitError", "fit_bgnbd", "fit_gamma_gamma", "customer_summary", "rfm_scores", "RFM_SEGMENTS",
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
            FROM {RAW_FROM}
            WHERE {COUNTED} AND o.ordered_at < (CAST(:as_of AS date) + 1)::timestamp AT TIME ZONE :tz
              {filters_sql(f, RAW_DIMENSIONS.get)}
            GROUP BY 1, 2""", "raw"


@dataclass(frozen=True)
class SummaryQuery:
    sql: str       # WITH … defining `cs`: one row per customer, SUMMARY_COLUMNS
    params: dict
    source: str


def summary_query(conn: Connection, f: Filters, as_of: date, *, tz: str | None = None,
                  use_rollups: bool = True) -> SummaryQuery:
    """Returns the WITH clause defining `cs`, the per-customer summary as of as_of (see
    customer_summary), for callers that score or pick in SQL."""
    tz = tz or load_settings().timezone
    days, source = _days_sql(f, use_rollups and rollups_usable(conn, tz))
    sql = f"""
        WITH d AS MATERIALIZED ({days}),
        c AS (
            SELECT customer_id, min(day) AS first_day, max(day) AS last_day, count(*) AS purchase_days,
                   SUM(orders) AS orders, SUM(gmv) AS gmv
            FROM d GROUP BY customer_id),
        cs AS (
            SELECT c.customer_id, c.first_day, c.last_day, c.purchase_days, c.orders::float8 AS orders,
                   c.gmv::float8 AS gmv, (c.purchase_days - 1)::float8 AS frequency,
                   (c.last_day - c.first_day)::float8 AS recency, (CAST(:as_of AS date) - c.first_day)::float8 AS "T",
                   (CAST(:as_of AS date) - c.last_day)::float8 AS days_since,
                   ((c.gmv - f.gmv) / NULLIF(c.purchase_days - 1, 0))::float8 AS monetary_value
            FROM c JOIN d f ON f.customer_id = c.customer_id AND f.day = c.first_day)"""
    return SummaryQuery(sql, {"as_of": as_of, "tz": tz, **filter_params(f)}, source)


def customer_summary(conn: Connection, f: Filters, as_of: date, *, tz: str | None = None,
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


def _score(order: str) -> str:
    return f"(1 + floor(5 * (rank() OVER (ORDER BY {order}) - 1)::float8 / count(*) OVER ()))::int"


RFM_SQL = f"""
    scored AS (
        SELECT cs.*, {_score("days_since DESC")} AS r_score, {_score("purchase_days")} AS f_score,
               {_score("gmv")} AS m_score
        FROM cs),
    rfm AS (
        SELECT scored.*, ((f_score + m_score + 1) / 2) AS fm_score,
               {_segment_case("r_score", "((f_score + m_score + 1) / 2)")} AS segment
        FROM scored)"""


def rfm_scores(conn: Connection, f: Filters, as_of: date, *, tz: str | None = None,
               use_rollups: bool = True) -> pd.DataFrame:
    """Returns customer_summary with r_score, f_score, m_score (1–5), fm_score and segment."""
    q = summary_query(conn, f, as_of, tz=tz, use_rollups=use_rollups)
    df = frame(conn.execute(sa.text(q.sql + "," + RFM_SQL + " SELECT * FROM rfm ORDER BY customer_id"), q.params))
    if df.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS + ["r_score", "f_score", "m_score", "fm_score", "segment"])
    for c in SUMMARY_COLUMNS[3:]:
        df[c] = pd.to_numeric(df[c]).astype("float64")
    df.attrs["source"] = q.source
    return df
