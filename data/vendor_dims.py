"""Vendors by each order- and customer-level dimension (migration 0017): building and refreshing.

A row per vendor, dimension (channel, business model, payment method, segment, region, country)
and value holds the base measures of the vendor's lines in orders with that value; payment
method rows are kept per payment status too (`status`, '' on the others). Each order has exactly
one value of each, so a vendor's rows for several values of one dimension add up exactly; two
dimensions at once cannot be answered (the pages read the order lines then), but for payment
method with payment status.

- `rollup_vendor_dims_monthly` covers every calendar month, with `first_day`: the first day of
  the month with a counted order (a vendor's first sale under a filter, for "new vendors").
- `rollup_vendor_dims_daily` covers the days from `app.rollup_state.vendor_days_from` (the first
  of a month, KEEP_DAYS or a month more before the latest order day). A day cube over all history
  would hold more rows than the order lines (2.3M rows per 97 days at 10M lines).

A refresh rebuilds the dirty days it keeps and adds each day's new image minus its old one to
its month; a dirty day before vendor_days_from recounts its whole month from the order lines.
"""
from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.db import stage_temp_table
from data.calendar import bucket_bounds, merged_spans
from data.measures import BASE_MEASURES, MEASURE_COLUMNS, MEASURE_SUMS, RAW_DIMENSIONS, local_days_sql, measure_list

DIMENSIONS = ("channel", "business_model", "payment_method", "segment", "region", "country")
DAILY = "rollup_vendor_dims_daily"
MONTHLY = "rollup_vendor_dims_monthly"
TABLES = (DAILY, MONTHLY)
KEEP_DAYS = 190     # a 90-day period and the 90 days it is compared with, from day rows
KEY = ("day", "vendor_id", "dim", "value", "status")
# One row per (order, vendor, dimension) of the staged orders: (dim, value, status).
_STATUS = {"payment_method": "s.payment_status"}
_PAIRS = "CROSS JOIN LATERAL (VALUES " + ", ".join(
    f"('{d}', s.{d}, {_STATUS.get(d, repr(''))})" for d in DIMENSIONS) + ") d(dim, value, status)"


def row_dimension(dims) -> str | None:
    """Returns the dimension whose rows answer a query naming dims (besides the vendor): one of
    DIMENSIONS, or payment method for payment status (with or without payment method); None when
    no rows do (two dimensions, or one not kept)."""
    named = set(dims) - {"vendor_id"}
    if named and named <= {"payment_method", "payment_status"}:
        return "payment_method"
    return named.pop() if len(named) == 1 and named <= set(DIMENSIONS) else None


def column_of(dim: str) -> str:
    """Returns the column holding a dimension's value in the rows of row_dimension."""
    return {"vendor_id": "vendor_id", "payment_status": "status"}.get(dim, "value")


def _stage(conn: Connection, where: str, params: dict) -> None:
    """stage_vendor_orders: one row per order and vendor of the orders matching where, with the
    order's local day, its dimensions and the base measures of the vendor's lines in it."""
    dims = ", ".join(f"{RAW_DIMENSIONS[d]} AS {d}" for d in (*DIMENSIONS, "payment_status"))
    stage_temp_table(conn, "stage_vendor_orders", f"""
        SELECT {RAW_DIMENSIONS['day']} AS day, i.vendor_id, {dims}, {measure_list()}
        FROM mart.orders o
        JOIN mart.customers c ON c.customer_id = o.customer_id
        JOIN mart.order_items i ON i.order_id = o.order_id
        JOIN mart.vendors v ON v.vendor_id = i.vendor_id
        WHERE {where}
        GROUP BY o.order_id, c.customer_id, i.vendor_id""", params)


# Rows are written in the order of the primary key (dimension, value, day): a filter's rows of a
# period sit together on disk. Written by month, new vendors under a country filter over three
# years read 42k pages for 42k rows (135 ms, 670 ms from disk).
def _insert_days(returning: str = "") -> str:
    return f"""
        INSERT INTO mart.{DAILY} ({', '.join(KEY)}, {MEASURE_COLUMNS})
        SELECT s.day, s.vendor_id, d.dim, d.value, d.status, {MEASURE_SUMS}
        FROM stage_vendor_orders s {_PAIRS}
        WHERE s.day >= :kept
        GROUP BY 1, 2, 3, 4, 5 ORDER BY 3, 4, 1 {returning}"""


def _insert_months(conn: Connection) -> None:
    conn.execute(sa.text(f"""
        INSERT INTO mart.{MONTHLY} ({', '.join(KEY)}, {MEASURE_COLUMNS}, first_day)
        SELECT date_trunc('month', s.day)::date, s.vendor_id, d.dim, d.value, d.status, {MEASURE_SUMS},
               min(s.day) FILTER (WHERE s.orders > 0)
        FROM stage_vendor_orders s {_PAIRS}
        GROUP BY 1, 2, 3, 4, 5 ORDER BY 3, 4, 1"""))


def days_from(conn: Connection, tz: str) -> date | None:
    """Returns the first day to keep day rows for: the first of the month KEEP_DAYS before the
    latest order's local day (or today, if that is earlier); None without orders."""
    last, today = conn.execute(sa.text("""
        SELECT (max(ordered_at) AT TIME ZONE :tz)::date, (now() AT TIME ZONE :tz)::date FROM mart.orders"""),
                               {"tz": tz}).one()
    return None if last is None else (min(last, today) - timedelta(days=KEEP_DAYS)).replace(day=1)


def rebuild(conn: Connection, tz: str) -> None:
    """Fills both tables from the order lines (after the caller emptied them)."""
    kept = days_from(conn, tz)
    _stage(conn, "true", {"tz": tz})
    _insert_months(conn)
    if kept is not None:
        conn.execute(sa.text(_insert_days()), {"kept": kept})
    conn.execute(sa.text("UPDATE app.rollup_state SET vendor_days_from = COALESCE(CAST(:kept AS date), 'infinity')"),
                 {"kept": kept})


def _month_spans(days: list[tuple[date, date]]) -> list[tuple[date, date]]:
    """Returns the whole calendar months the day runs touch, as merged (first day, last day) spans."""
    return merged_spans((bucket_bounds("month", lo)[0], bucket_bounds("month", hi)[1]) for lo, hi in days)


def _delta(rows: str, sign: int) -> str:
    """SQL adding the day rows a CTE returns (a day's old image, sign -1, or its new one, +1) to
    vendor_dims_delta."""
    return f"""
        WITH r AS ({rows})
        INSERT INTO vendor_dims_delta SELECT day, vendor_id, dim, value, status, {sign}, {MEASURE_COLUMNS} FROM r"""


def refresh(conn: Connection, tz: str, runs: list[tuple[date, date]]) -> None:
    """Brings both tables up to date for the local day runs that changed (incremental refresh)."""
    newest = days_from(conn, tz)
    # The kept days only move forward here (a rebuild may move them back).
    kept = conn.execute(sa.text("""
        UPDATE app.rollup_state
        SET vendor_days_from = GREATEST(vendor_days_from, COALESCE(CAST(:d AS date), '-infinity'))
        RETURNING CASE WHEN vendor_days_from < 'infinity' THEN vendor_days_from END"""), {"d": newest}).scalar()
    if kept is not None:
        conn.execute(sa.text(f"DELETE FROM mart.{DAILY} WHERE day < :kept"), {"kept": kept})
    stage_temp_table(conn, "vendor_dims_delta", f"""
        SELECT day, vendor_id, dim, value, status, 1 AS sign, {MEASURE_COLUMNS} FROM mart.{DAILY} WHERE false""")
    old_days = []
    for lo, hi in runs:
        if kept is None or lo < kept:
            old_days.append((lo, min(hi, kept - timedelta(days=1)) if kept else hi))
        if kept is None or hi < kept:
            continue
        params = {"lo": max(lo, kept), "hi": hi, "kept": kept, "tz": tz}
        # The kept days' old image, subtracted from their months, and their new one, added.
        conn.execute(sa.text(_delta(f"DELETE FROM mart.{DAILY} WHERE day BETWEEN :lo AND :hi RETURNING *", -1)),
                     params)
        _stage(conn, local_days_sql("o.ordered_at"), params)
        conn.execute(sa.text(_delta(_insert_days("RETURNING *"), 1)), params)
    _apply_delta(conn)
    # Days no longer kept: their months again from the order lines.
    for lo, hi in _month_spans(old_days):
        params = {"lo": lo, "hi": hi, "tz": tz}
        conn.execute(sa.text(f"DELETE FROM mart.{MONTHLY} WHERE day BETWEEN :lo AND :hi"), params)
        _stage(conn, local_days_sql("o.ordered_at"), params)
        _insert_months(conn)


# A day row's month row (m: the monthly table, k: day rows with their month).
_MONTH_KEY = ("m.dim = k.dim AND m.value = k.value AND m.status = k.status AND m.vendor_id = k.vendor_id "
              "AND m.day = k.month")
_MONTH = "date_trunc('month', day)::date"


def _apply_delta(conn: Connection) -> None:
    """Adds vendor_dims_delta (new day images minus old ones) to the monthly rows."""
    conn.execute(sa.text("ANALYZE vendor_dims_delta"))
    conn.execute(sa.text(f"""
        INSERT INTO mart.{MONTHLY} AS m ({', '.join(KEY)}, {MEASURE_COLUMNS}, first_day)
        SELECT {_MONTH}, vendor_id, dim, value, status, {', '.join(f'SUM(sign * {c})' for c in BASE_MEASURES)},
               min(day) FILTER (WHERE sign > 0 AND orders > 0)
        FROM vendor_dims_delta GROUP BY 1, 2, 3, 4, 5
        ON CONFLICT (dim, value, day, vendor_id, status) DO UPDATE SET
            {', '.join(f'{c} = m.{c} + excluded.{c}' for c in BASE_MEASURES)},
            first_day = LEAST(m.first_day, excluded.first_day)"""))
    # A month's first sale day that lost its counted orders: the next one from the day rows.
    conn.execute(sa.text(f"""
        UPDATE mart.{MONTHLY} m SET first_day = (
            SELECT min(d.day) FROM mart.{DAILY} d
            WHERE d.dim = m.dim AND d.value = m.value AND d.vendor_id = m.vendor_id AND d.status = m.status
              AND d.orders > 0
              AND d.day BETWEEN m.day AND (m.day + interval '1 month' - interval '1 day')::date)
        FROM (SELECT DISTINCT {_MONTH} AS month, o.day, o.vendor_id, o.dim, o.value, o.status
              FROM vendor_dims_delta o
              WHERE o.sign < 0 AND o.orders > 0 AND NOT EXISTS (
                  SELECT 1 FROM vendor_dims_delta n
                  WHERE n.sign > 0 AND n.orders > 0 AND (n.day, n.vendor_id, n.dim, n.value, n.status)
                                                      = (o.day, o.vendor_id, o.dim, o.value, o.status))) k
        WHERE {_MONTH_KEY} AND m.first_day = k.day"""))
    conn.execute(sa.text(f"""
        DELETE FROM mart.{MONTHLY} m
        USING (SELECT DISTINCT {_MONTH} AS month, vendor_id, dim, value, status FROM vendor_dims_delta) k
        WHERE {_MONTH_KEY} AND m.all_orders = 0"""))
