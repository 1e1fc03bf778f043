"""Vendors and products by each order- and customer-level dimension: building and refreshing.

A cube holds, per key (a vendor: migration 0017; a product: 0018), dimension (channel, business
model, payment method, segment, region, country) and value, the base measures of the key's lines
in orders with that value; payment method rows are kept per payment status too (`status`, '' on
the others). Each order has exactly one value of each, so a key's rows for several values of one
dimension add up exactly; two dimensions at once cannot be answered (the pages read the order
lines then), but for payment method with payment status.

- `rollup_<cube>_dims_monthly` covers every calendar month, with `first_day`: the first day of
  the month with a counted order (a vendor's first sale under a filter, for "new vendors").
- `rollup_<cube>_dims_coarse` sums the month rows per quarter (grain 'q', vendors only) and per
  year ('y'), with `first_day` (migration 0021): a long period reads a few coarse buckets instead
  of every month (the rows per month grow with orders until each key has every value).
- `rollup_<cube>_dims_daily` covers the days from the cube's `app.rollup_state.<cube>_days_from`
  (the first of a month, KEEP_DAYS[cube] or a month more before the latest order day). A day cube
  over all history would hold more rows than the order lines (vendors: 2.3M rows per 97 days at
  10M lines; products: 1.7M rows per month, four times the month's lines).

A refresh rebuilds the dirty days it keeps and adds each day's new image minus its old one to
its month, quarter and year; a dirty day before the kept days recounts its whole month from the
order lines, and its quarter and year from the month rows.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.db import fetch_latest_order_day, replace_changed_rows, stage_temp_table
from data.calendar import bucket_bounds, merged_spans
from data.measures import (BASE_MEASURES, CUSTOMER_DIMENSIONS, MEASURE_COLUMNS, MEASURE_SUMS, RAW_DIMENSIONS,
                           line_from, local_days_sql, measure_list)

DIMENSIONS = ("channel", "business_model", "payment_method", "segment", "region", "country")


@dataclass(frozen=True)
class Cube:
    name: str      # "vendor" or "product"
    key: str       # the line-level column its rows are kept per
    coarse_buckets: tuple[str, ...] = ("year",)   # kept in the coarse table, largest first

    @property
    def source(self) -> str:
        """The name analytics.kpis gives the pair of tables."""
        return f"rollup_{self.name}_dims"

    @property
    def daily(self) -> str:
        return f"{self.source}_daily"

    @property
    def monthly(self) -> str:
        return f"{self.source}_monthly"

    @property
    def coarse(self) -> str:
        """Quarter and year rows: (grain, day, key, dim, value, status, measures, first_day)."""
        return f"{self.source}_coarse"

    @property
    def days_from_column(self) -> str:
        """app.rollup_state's column holding the first kept day ('infinity' before a rebuild)."""
        return f"{self.name}_days_from"


# Quarters too for vendors (a few thousand keys); products' quarters would add 5M rows at 10M lines.
VENDORS = Cube("vendor", "vendor_id", ("year", "quarter"))
PRODUCTS = Cube("product", "product_id", ("year",))
CUBES = (VENDORS, PRODUCTS)
TABLES = tuple(t for c in CUBES for t in (c.daily, c.monthly, c.coarse))
GRAIN_CODE = {"quarter": "q", "year": "y"}   # the coarse table's grain column
COARSE_LAYOUT = 5   # data.rollups.LAYOUT from which the coarse tables are built (migration 0021)
_LENGTH = {"quarter": "3 months", "year": "1 year"}
# Day rows kept per cube. Vendors: a 90-day period and the 90 days it is compared with. Products:
# a 90-day period (its comparison reads the listed products only, through the key's index); a
# product's day rows are four times the lines, so half a year of them would be 12M rows at 10M.
KEEP_DAYS = {"vendor": 190, "product": 100}
_KEY_COLUMNS = ("day", "{key}", "dim", "value", "status")
# One row per (order, key, dimension) of the staged orders: (dim, value, status).
_STATUS = {"payment_method": "s.payment_status"}
_PAIRS = "CROSS JOIN LATERAL (VALUES " + ", ".join(
    f"('{d}', s.{d}, {_STATUS.get(d, repr(''))})" for d in DIMENSIONS) + ") d(dim, value, status)"


def _keys(cube: Cube) -> tuple[str, ...]:
    return tuple(c.format(key=cube.key) for c in _KEY_COLUMNS)


def row_dimension(dims: Iterable[str], key: str) -> str | None:
    """Returns the dimension whose rows answer a query naming dims (besides the cube's key): one
    of DIMENSIONS, or payment method for payment status (with or without payment method); None
    when no rows do (two dimensions, or one not kept)."""
    named = set(dims) - {key}
    if named and named <= {"payment_method", "payment_status"}:
        return "payment_method"
    return named.pop() if len(named) == 1 and named <= set(DIMENSIONS) else None


def column_of(dim: str) -> str:
    """Returns the column holding a dimension's value in the rows of row_dimension."""
    return dim if dim in ("vendor_id", "product_id") else {"payment_status": "status"}.get(dim, "value")


def _stage(conn: Connection, cube: Cube, where: str, params: dict, analyze: str = "", lines: str | None = None) -> None:
    """stage_<cube>_orders: one row per order and key of the orders matching where, with the
    order's local day, its dimensions and the base measures of the key's lines in it; from the
    tables or from lines (a copy of some order lines, data.measures.raw_from); analyze names the
    columns to take statistics of (all when empty)."""
    dims = ", ".join(f"{RAW_DIMENSIONS[d]} AS {d}" for d in (*DIMENSIONS, "payment_status"))
    # Grouped per order and key: the tables' keys carry the other columns; a copy has no keys.
    group = f"o.order_id, c.customer_id, i.{cube.key}" if lines is None else \
        "o.order_id, " + ", ".join(str(n) for n in range(1, len(DIMENSIONS) + 4))
    stage_temp_table(conn, f"stage_{cube.name}_orders", f"""
        SELECT {RAW_DIMENSIONS['day']} AS day, i.{cube.key}, {dims}, {measure_list()}
        FROM {line_from(CUSTOMER_DIMENSIONS, lines)}
        WHERE {where} AND i.product_id IS NOT NULL
        GROUP BY {group}""", params, analyze=analyze)


# Rows are written in the order of the primary key (dimension, value, day): a filter's rows of a
# period sit together on disk. Written by month, new vendors under a country filter over three
# years read 42k pages for 42k rows (135 ms, 670 ms from disk).
def _insert_days(cube: Cube) -> str:
    return f"""
        INSERT INTO mart.{cube.daily} ({', '.join(_keys(cube))}, {MEASURE_COLUMNS})
        {_day_rows(cube)} ORDER BY 3, 4, 1"""


def _day_rows(cube: Cube) -> str:
    """SELECT of the kept days' rows from stage_<cube>_orders."""
    return f"""
        SELECT s.day, s.{cube.key}, d.dim, d.value, d.status, {', '.join(f'SUM({m}) AS {m}' for m in BASE_MEASURES)}
        FROM stage_{cube.name}_orders s {_PAIRS}
        WHERE s.day >= :kept
        GROUP BY 1, 2, 3, 4, 5"""


def _replace_changed_days(conn: Connection, cube: Cube, params: dict) -> None:
    """Replaces the day rows of days lo..hi that differ from their new image (staged from the
    orders), putting the old rows (sign -1) and the new ones (+1) in the cube's delta table. A
    minute of orders changes a few dozen of a day's rows."""
    new = f"{cube.name}_dims_new"
    stage_temp_table(conn, new, _day_rows(cube), params, analyze="day")
    replace_changed_rows(conn, f"mart.{cube.daily}", new, _keys(cube), BASE_MEASURES, "x.day BETWEEN :lo AND :hi",
                         params, lambda sign: _delta(cube, sign))


def _insert_months(conn: Connection, cube: Cube) -> None:
    conn.execute(sa.text(f"""
        INSERT INTO mart.{cube.monthly} ({', '.join(_keys(cube))}, {MEASURE_COLUMNS}, first_day)
        SELECT date_trunc('month', s.day)::date, s.{cube.key}, d.dim, d.value, d.status, {MEASURE_SUMS},
               min(s.day) FILTER (WHERE s.orders > 0)
        FROM stage_{cube.name}_orders s {_PAIRS}
        GROUP BY 1, 2, 3, 4, 5 ORDER BY 3, 4, 1"""))


def _insert_coarse(conn: Connection, cube: Cube, spans: list[tuple[date, date]] | None = None,
                   buckets: tuple[str, ...] | None = None) -> None:
    """Sums the month rows into the cube's quarter and year rows (or those of `buckets`): of the
    buckets within the spans (after the caller deleted them), or all (None, after the caller
    emptied the table)."""
    keys = ", ".join(_keys(cube))
    for bucket in buckets or cube.coarse_buckets:
        where, params = "true", {}
        if spans is not None:
            where = " OR ".join(f"day BETWEEN :lo{i} AND :hi{i}" for i in range(len(spans))) or "false"
            params = {f"{e}{i}": d for i, span in enumerate(spans) for e, d in zip(("lo", "hi"), span)}
        conn.execute(sa.text(f"""
            INSERT INTO mart.{cube.coarse} (grain, {keys}, {MEASURE_COLUMNS}, first_day)
            SELECT '{GRAIN_CODE[bucket]}', date_trunc('{bucket}', day)::date, {cube.key}, dim, value, status,
                   {', '.join(f'SUM({c})' for c in BASE_MEASURES)}, min(first_day)
            FROM mart.{cube.monthly} WHERE {where}
            GROUP BY 2, 3, 4, 5, 6 ORDER BY 4, 5, 2"""), params)


def _recount_coarse(conn: Connection, cube: Cube, months: list[tuple[date, date]]) -> None:
    """Sums again the quarter and year rows holding the month spans (their month rows recounted)."""
    for bucket in cube.coarse_buckets:
        spans = merged_spans((bucket_bounds(bucket, lo)[0], bucket_bounds(bucket, hi)[1]) for lo, hi in months)
        for lo, hi in spans:
            conn.execute(sa.text(f"DELETE FROM mart.{cube.coarse} WHERE grain = :g AND day BETWEEN :lo AND :hi"),
                         {"g": GRAIN_CODE[bucket], "lo": lo, "hi": hi})
        if spans:
            _insert_coarse(conn, cube, spans, (bucket,))


def fetch_cube_days_from(conn: Connection, cube: Cube, tz: str) -> date | None:
    """Returns the first day to keep the cube's day rows for: the first of the month
    KEEP_DAYS[cube] before the latest order's local day (or today, if that is earlier); None
    without orders."""
    last = fetch_latest_order_day(conn, tz)
    return None if last is None else (last - timedelta(days=KEEP_DAYS[cube.name])).replace(day=1)


def rebuild(conn: Connection, cube: Cube, tz: str) -> None:
    """Fills the cube's tables from the order lines (after the caller emptied them)."""
    kept = fetch_cube_days_from(conn, cube, tz)
    _stage(conn, cube, "true", {"tz": tz})
    _insert_months(conn, cube)
    _insert_coarse(conn, cube)
    if kept is not None:
        conn.execute(sa.text(_insert_days(cube)), {"kept": kept})
    conn.execute(sa.text(f"UPDATE app.rollup_state SET {cube.days_from_column} = "
                         "COALESCE(CAST(:kept AS date), 'infinity')"), {"kept": kept})
    conn.execute(sa.text(f"DROP TABLE stage_{cube.name}_orders"))


def _month_spans(days: list[tuple[date, date]]) -> list[tuple[date, date]]:
    """Returns the whole calendar months the day runs touch, as merged (first day, last day) spans."""
    return merged_spans((bucket_bounds("month", lo)[0], bucket_bounds("month", hi)[1]) for lo, hi in days)


def _delta(cube: Cube, sign: int) -> str:
    """SQL adding the day rows of the CTE r (a day's old rows, sign -1, or its new ones, +1) to
    the cube's delta table."""
    return f"""
        INSERT INTO {cube.name}_dims_delta
        SELECT day, {cube.key}, dim, value, status, {sign}, {MEASURE_COLUMNS} FROM r"""


def refresh(conn: Connection, cube: Cube, tz: str, runs: list[tuple[date, date]], lines: str | None = None) -> None:
    """Brings the cube's tables up to date for the local day runs that changed (incremental
    refresh); lines: a copy of those days' order lines to read instead of the tables."""
    newest = fetch_cube_days_from(conn, cube, tz)
    col = cube.days_from_column
    # The kept days only move forward here (a rebuild may move them back).
    kept = conn.execute(sa.text(f"""
        UPDATE app.rollup_state SET {col} = GREATEST({col}, COALESCE(CAST(:d AS date), '-infinity'))
        RETURNING CASE WHEN {col} < 'infinity' THEN {col} END"""), {"d": newest}).scalar()
    if kept is not None:
        conn.execute(sa.text(f"DELETE FROM mart.{cube.daily} WHERE day < :kept"), {"kept": kept})
    stage_temp_table(conn, f"{cube.name}_dims_delta", f"""
        SELECT day, {cube.key}, dim, value, status, 1 AS sign, {MEASURE_COLUMNS} FROM mart.{cube.daily} WHERE false""")
    old_days = []
    for lo, hi in runs:
        if kept is None or lo < kept:
            old_days.append((lo, min(hi, kept - timedelta(days=1)) if kept else hi))
        if kept is None or hi < kept:
            continue
        params = {"lo": max(lo, kept), "hi": hi, "kept": kept, "tz": tz}
        # The kept days' changed rows: old ones subtracted from their months, new ones added. A
        # few days' orders: statistics of the day and key are enough (of every column: 50 ms).
        _stage(conn, cube, local_days_sql("o.ordered_at"), params, analyze=f"day, {cube.key}", lines=lines)
        _replace_changed_days(conn, cube, params)
    _apply_delta(conn, cube)
    # Days no longer kept: their months again from the order lines, and their quarters and years.
    for lo, hi in _month_spans(old_days):
        params = {"lo": lo, "hi": hi, "tz": tz}
        conn.execute(sa.text(f"DELETE FROM mart.{cube.monthly} WHERE day BETWEEN :lo AND :hi"), params)
        _stage(conn, cube, local_days_sql("o.ordered_at"), params)
        _insert_months(conn, cube)
    _recount_coarse(conn, cube, _month_spans(old_days))


def _lost_first_days(cube: Cube, trunc: str) -> str:
    """SQL of the (bucket, day, key, dim, value, status) rows whose day had counted orders before
    the refresh and has none now (in the cube's delta table): a bucket whose first sale day it was
    needs the next one. trunc maps a day to its bucket."""
    delta, key = f"{cube.name}_dims_delta", cube.key
    return f"""(SELECT DISTINCT {trunc} AS bucket, o.day, o.{key}, o.dim, o.value, o.status
              FROM {delta} o
              WHERE o.sign < 0 AND o.orders > 0 AND NOT EXISTS (
                  SELECT 1 FROM {delta} n
                  WHERE n.sign > 0 AND n.orders > 0 AND (n.day, n.{key}, n.dim, n.value, n.status)
                                                      = (o.day, o.{key}, o.dim, o.value, o.status)))"""


def _apply_delta(conn: Connection, cube: Cube) -> None:
    """Adds the cube's delta table (new day images minus old ones) to the month rows, then to the
    quarter and year rows."""
    conn.execute(sa.text(f"ANALYZE {cube.name}_dims_delta"))
    # A month's first sale day that lost its counted orders: the next one from the day rows.
    _add_delta(conn, cube, cube.monthly, "month", None, f"""
        SELECT min(x.day) FROM mart.{cube.daily} x
        WHERE {{same}} AND x.orders > 0 AND x.day BETWEEN m.day AND (m.day + interval '1 month' - interval '1 day')::date""")
    # A quarter's or year's: the first among its months' (moved just before).
    for bucket in cube.coarse_buckets:
        _add_delta(conn, cube, cube.coarse, bucket, GRAIN_CODE[bucket], f"""
            SELECT min(x.first_day) FROM mart.{cube.monthly} x
            WHERE {{same}} AND x.day BETWEEN m.day AND (m.day + interval '{_LENGTH[bucket]}' - interval '1 day')::date""")


def _add_delta(conn: Connection, cube: Cube, table: str, bucket: str, grain: str | None, next_first: str) -> None:
    """Adds the delta table's rows, summed per bucket, to table (its rows of that grain, for the
    coarse table): measures added, first_day the earlier one, or next_first's when the day that
    was first lost its counted orders; rows left without orders are deleted."""
    delta, key, keys = f"{cube.name}_dims_delta", cube.key, ", ".join(_keys(cube))
    trunc = f"date_trunc('{bucket}', day)::date"
    same = f"x.dim = m.dim AND x.value = m.value AND x.{key} = m.{key} AND x.status = m.status"
    # m: the table's row, k: delta rows with their bucket.
    row = (f"m.dim = k.dim AND m.value = k.value AND m.status = k.status AND m.{key} = k.{key} AND m.day = k.bucket"
           + (f" AND m.grain = '{grain}'" if grain else ""))
    grain_col, grain_val = ("grain, ", f"'{grain}', ") if grain else ("", "")
    conn.execute(sa.text(f"""
        INSERT INTO mart.{table} AS m ({grain_col}{keys}, {MEASURE_COLUMNS}, first_day)
        SELECT {grain_val}{trunc} AS bucket, {key}, dim, value, status,
               {', '.join(f'SUM(sign * {c})' for c in BASE_MEASURES)}, min(day) FILTER (WHERE sign > 0 AND orders > 0)
        FROM {delta} GROUP BY bucket, {key}, dim, value, status
        ON CONFLICT (dim, value, {grain_col}day, {key}, status) DO UPDATE SET
            {', '.join(f'{c} = m.{c} + excluded.{c}' for c in BASE_MEASURES)},
            first_day = LEAST(m.first_day, excluded.first_day)"""))
    conn.execute(sa.text(f"""
        UPDATE mart.{table} m SET first_day = ({next_first.format(same=same)})
        FROM {_lost_first_days(cube, trunc)} k
        WHERE {row} AND m.first_day = k.day"""))
    conn.execute(sa.text(f"""
        DELETE FROM mart.{table} m
        USING (SELECT DISTINCT {trunc} AS bucket, {key}, dim, value, status FROM {delta}) k
        WHERE {row} AND m.all_orders = 0"""))
