"""Rollup tables: full and incremental refresh, and the version pages key their caches on."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data import customer_rollups as CR
from data import dim_cubes as DC
from data.calendar import bucket_bounds, merged_spans
from data.db import replace_changed_rows, stage_temp_table
from data.measures import (BASE_MEASURES, CUSTOMER_DIMENSIONS, LOCAL_DAY, MEASURE_COLUMNS, MEASURE_SUMS, RAW_FROM,
                           line_from, local_days_sql, measure_list, raw_columns, raw_from)
from data.settings import load_settings

# The rollup tables this code builds: a database whose rows were built for an older layout
# (app.rollup_state.layout) is rebuilt by the next refresh, and pages read only what that layout
# had until then. 1: weekly and monthly copies of every day rollup, payments by country,
# categories by country and payment method, vendors by category, customer cells and acquisition
# channels (migration 0014). 2: payment status beside categories by country (0015). 3: vendors by
# order- and customer-level dimension (0017, data.dim_cubes). 4: products by the same (0018).
# 5: both cubes per year, and vendors per quarter (0021).
LAYOUT = 5
DAY_TABLES = (
    "rollup_sales_daily", "rollup_sales_hourly", "rollup_vendor_daily", "rollup_category_daily",
    "rollup_product_daily", "rollup_payment_daily", "rollup_customer_daily", "rollup_category_orders_daily",
    "rollup_payment_geo_daily", "rollup_category_geo_daily", "rollup_vendor_category_daily",
)
# Day rollup -> its dimension columns. Each has a weekly and a monthly copy summed from it (`day` =
# the bucket's first day): products since migration 0005, the others since 0014 (layout 1).
COARSE_DIMS = {
    "rollup_sales_daily": ("channel", "business_model", "segment", "region", "country"),
    "rollup_payment_daily": ("payment_method", "payment_status", "channel", "business_model", "segment"),
    "rollup_vendor_daily": ("vendor_id",),
    "rollup_category_daily": ("category",),
    "rollup_category_orders_daily": ("category", "channel", "business_model", "segment", "region"),
    "rollup_product_daily": ("product_id", "vendor_id", "category"),
    "rollup_payment_geo_daily": ("payment_method", "payment_status", "region", "country"),
    "rollup_category_geo_daily": ("category", "country", "payment_method", "payment_status"),
    "rollup_vendor_category_daily": ("vendor_id", "category"),
}
BUCKET_SUFFIX = {"week": "_weekly", "month": "_monthly"}


def coarse_table(day_table: str, bucket: str) -> str:
    """Returns the name of day_table's copy per ISO week ("week") or calendar month ("month")."""
    return day_table.removesuffix("_daily") + BUCKET_SUFFIX[bucket]


COARSE_TABLES = {coarse_table(t, b): b for t in COARSE_DIMS for b in BUCKET_SUFFIX}
# Per stock snapshot: units sold in the STOCK_WINDOW_DAYS days ending on its date (migration 0006).
STOCK_TABLE = "rollup_stock_cover"
STOCK_WINDOW_DAYS = 28
CUSTOMER_TABLES = (CR.CELLS, CR.ACQUISITION, CR.RECENT)
ROLLUP_TABLES = (*DAY_TABLES, *COARSE_TABLES, STOCK_TABLE, "rollup_customers", *CUSTOMER_TABLES, *DC.TABLES)
FULL_REBUILD_SHARE = 0.3   # rebuild everything when more than this share of known days changed
MIN_DAYS_FOR_FULL = 60


@dataclass(frozen=True)
class RefreshResult:
    mode: str            # "full", "days" or "none"
    days: int            # local days rebuilt (0 for none; all days for full)
    customers: int       # customers whose first/second order day was recomputed
    elapsed_ms: int
    version: int
    customer_cells: str = ""   # days: "deltas" (the changed customers' parts) or "recount" (whole days)


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Returns contiguous (first, last) runs of the sorted days."""
    runs: list[tuple[date, date]] = []
    for d in sorted(set(days)):
        if runs and d == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return runs


# The SQL below splices only fixed text: table and column names written here, the measure lists
# of data.measures and `where` clauses from local_days_sql; every value is a bound parameter.
def _stage_orders(conn: Connection, where: str, params: dict, lines: str | None = None) -> None:
    """stage_orders: one row per order matching where, with its local day and hour, dimensions and
    base measures; from the tables, or from lines (a copy of order lines: see _copy_day_lines)."""
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.stage_orders"))
    # Grouped per order: the tables' keys carry the other columns; a copy has no keys.
    group = "o.order_id, c.customer_id" if lines is None else ", ".join(str(n) for n in range(1, 13))
    conn.execute(sa.text(f"""
        CREATE TEMP TABLE stage_orders ON COMMIT DROP AS
        SELECT o.order_id, o.customer_id, o.ordered_at,
               {LOCAL_DAY} AS day,
               date_trunc('hour', o.ordered_at, :tz) AS hour,
               o.channel, o.business_model, c.segment, c.region, c.country,
               o.payment_method, o.payment_status,
               {measure_list()}
        FROM {raw_from(CUSTOMER_DIMENSIONS, lines)}
        WHERE {where}
        GROUP BY {group}"""), params)
    conn.execute(sa.text("ANALYZE stage_orders"))


DAY_LINES = "day_lines"


def _copy_day_lines(conn: Connection, runs: list[tuple[date, date]], tz: str) -> None:
    """Copies the order lines of the local day runs (orders without lines included, with their
    customers' dimensions) into DAY_LINES, which the day rollups and the cubes then read in place
    of the tables: nine statements read a day's lines (about 40 ms each at 10M lines); the copy
    takes about as long as one of them."""
    for k, (lo, hi) in enumerate(runs):
        stage_temp_table(conn, DAY_LINES, f"""
            SELECT o.customer_id, {raw_columns()} FROM {RAW_FROM} WHERE {local_days_sql('o.ordered_at')}""",
                         {"lo": lo, "hi": hi, "tz": tz}, append=k > 0, analyze="ordered_at")
    # Each run's statements read only its own days of the copy (many scattered runs: no scans of all).
    conn.execute(sa.text(f"CREATE INDEX ON {DAY_LINES} (ordered_at)"))


# Each day rollup's columns and the SELECT of its rows: of the orders staged in stage_orders, or of
# the order lines matching {where} (with the bound :tz), one GROUP BY day and vendor (or category)
# with COUNT(DISTINCT order_id): measured faster than grouping per order first (1.4 s vs 2.1-2.9 s
# on 1M lines). A product has one vendor and one category; they ride along for filtering.
_STAGED_DAY_ROWS = {
    "rollup_sales_daily": ("day, channel, business_model, segment, region, country", f"""
        SELECT day, channel, business_model, segment, region, country, {MEASURE_SUMS}
        FROM stage_orders GROUP BY 1, 2, 3, 4, 5, 6"""),
    "rollup_payment_daily": ("day, payment_method, payment_status, channel, business_model, segment", f"""
        SELECT day, payment_method, payment_status, channel, business_model, segment, {MEASURE_SUMS}
        FROM stage_orders GROUP BY 1, 2, 3, 4, 5, 6"""),
    "rollup_payment_geo_daily": ("day, payment_method, payment_status, region, country", f"""
        SELECT day, payment_method, payment_status, region, country, {MEASURE_SUMS}
        FROM stage_orders GROUP BY 1, 2, 3, 4, 5"""),
    "rollup_sales_hourly": ("hour, day, channel, business_model", f"""
        SELECT hour, min(day), channel, business_model, {MEASURE_SUMS}
        FROM stage_orders GROUP BY hour, channel, business_model"""),
    "rollup_customer_daily": ("day, customer_id, channel, business_model, segment, region, country, first_day, "
                              "second_day", """
        SELECT s.day, s.customer_id, s.channel, s.business_model, s.segment, s.region, s.country,
               rc.first_day, rc.second_day, SUM(s.orders), SUM(s.gmv)
        FROM stage_orders s JOIN mart.rollup_customers rc ON rc.customer_id = s.customer_id
        WHERE s.orders > 0
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9"""),
}
_LINE_DAY_KEYS = {
    "rollup_vendor_daily": ("i.vendor_id",),
    "rollup_category_daily": ("p.category",),
    "rollup_category_orders_daily": ("p.category", "o.channel", "o.business_model", "c.segment", "c.region"),
    "rollup_category_geo_daily": ("p.category", "c.country", "o.payment_method", "o.payment_status"),
    "rollup_vendor_category_daily": ("i.vendor_id", "p.category"),
    "rollup_product_daily": ("i.product_id", "i.vendor_id", "p.category"),
}
_LINE_DAY_ROWS = {
    table: ("day, " + ", ".join(k.split(".")[1] for k in keys), f"""
        SELECT {LOCAL_DAY} AS day, {', '.join(keys)}, {measure_list()}
        FROM {{source}}
        WHERE {{where}} AND i.product_id IS NOT NULL
        GROUP BY {', '.join(str(n) for n in range(1, len(keys) + 2))}""")
    for table, keys in _LINE_DAY_KEYS.items()}
_LINE_DAY_DIMS = {table: [k.split(".")[1] for k in keys] for table, keys in _LINE_DAY_KEYS.items()}
# Columns of the day rollups besides the base measures that are figures, not keys.
_VALUES = {"rollup_customer_daily": ("first_day", "second_day"), "rollup_sales_hourly": ("day",)}


def _day_rows(where: str, lines: str | None = None) -> dict[str, tuple[str, str]]:
    """Day rollup -> (its columns, the SELECT of its rows for the staged orders, and for the order
    lines matching where: of the tables, or of lines, a copy of some)."""
    measures = {"rollup_customer_daily": "orders, gmv"}
    return {t: (f"{cols}, {measures.get(t, MEASURE_COLUMNS)}",
                select.format(where=where, source=line_from(_LINE_DAY_DIMS.get(t, ()), lines)))
            for t, (cols, select) in (*_STAGED_DAY_ROWS.items(), *_LINE_DAY_ROWS.items())}


def _insert_day_rollups(conn: Connection, where: str, params: dict) -> None:
    """Inserts rollup rows for the orders staged in stage_orders (and matching where)."""
    for table, (columns, select) in _day_rows(where).items():
        conn.execute(sa.text(f"INSERT INTO mart.{table} ({columns}) {select}"), params)


def _images(day_table: str) -> str:
    """The temp table holding day_table's rows of the rebuilt days: old ones (sign -1), new ones (+1)."""
    return f"images_{day_table.removeprefix('rollup_')}"


def _image_columns(day_table: str) -> str:
    return f"day, {', '.join(COARSE_DIMS[day_table])}, {MEASURE_COLUMNS}"


def _replace_days(conn: Connection, lo: date, hi: date, tz: str) -> None:
    """Rebuilds the day rollups' rows of the local days lo..hi: each table's new image is staged,
    its rows that differ from it deleted and the missing ones inserted; the changed rows of tables
    with coarse copies go to their _images tables (for _insert_coarse). A minute of orders changes
    a few dozen of a day's rows; writing all of them again took about 0.6 s of a refresh at 10M
    lines (a day's 7.5k product rows, 8.5k customer rows...), staging the images about 0.25 s."""
    params = {"lo": lo, "hi": hi, "tz": tz}
    where = local_days_sql("o.ordered_at")
    _stage_orders(conn, where, params, DAY_LINES)
    for table, (columns, select) in _day_rows(where, DAY_LINES).items():
        new = f"new_{table.removeprefix('rollup_')}"
        stage_temp_table(conn, new, f"SELECT * FROM ({select}) s ({columns})", params, analyze="day")
        cols = columns.split(", ")
        keys = [c for c in cols if c not in (*BASE_MEASURES, *_VALUES.get(table, ()))]
        images = None if table not in COARSE_DIMS else \
            lambda sign, t=table: f"INSERT INTO {_images(t)} SELECT {sign}, {_image_columns(t)} FROM r"
        replace_changed_rows(conn, f"mart.{table}", new, keys, [c for c in cols if c not in keys],
                             "x.day BETWEEN :lo AND :hi", params, images)


def _insert_coarse(conn: Connection, runs: list[tuple[date, date]] | None) -> None:
    """Rebuilds the weekly and monthly rows from the daily ones: in every bucket touching one of
    the runs, those of the first dimension's values (a product, a vendor, a channel...) whose day
    rows changed (the _images tables of _replace_days); or all of them (runs=None, after the
    caller emptied the tables)."""
    for day_table, dims in COARSE_DIMS.items():
        changed = f"""{dims[0]} IN (SELECT {dims[0]} FROM {_images(day_table)}
                                   GROUP BY {_image_columns(day_table)} HAVING SUM(sign) <> 0)"""
        for bucket in BUCKET_SUFFIX:
            table, dim_list = coarse_table(day_table, bucket), ", ".join(dims)
            groups = ", ".join(str(n) for n in range(1, len(dims) + 2))
            insert = f"""
                INSERT INTO mart.{table} (day, {dim_list}, {MEASURE_COLUMNS})
                SELECT date_trunc('{bucket}', day)::date, {dim_list}, {MEASURE_SUMS}
                FROM mart.{day_table} WHERE {{where}}
                GROUP BY {groups} ORDER BY 1"""  # rows of a period together on disk
            if runs is None:
                conn.execute(sa.text(insert.format(where="true")))
                continue
            # The whole buckets the runs touch, merged where they meet.
            for lo, hi in merged_spans((bucket_bounds(bucket, lo)[0], bucket_bounds(bucket, hi)[1]) for lo, hi in runs):
                params = {"lo": lo, "hi": hi}
                where = f"day BETWEEN :lo AND :hi AND {changed}"
                conn.execute(sa.text(f"DELETE FROM mart.{table} WHERE {where}"), params)
                conn.execute(sa.text(insert.format(where=where)), params)


def _insert_stock(conn: Connection, runs: list[tuple[date, date]] | None) -> None:
    """Brings the stock cover rows up to date for the day runs that changed: every snapshot whose
    window holds a product day row that changed (images_product_daily) moves by its change, and
    the snapshots dated on those days (new, changed or deleted ones: a snapshot's date is a dirty
    day) drop their rows whose stock changed or went and get the missing ones. runs=None computes
    every snapshot's rows (after the caller emptied the table). Recomputing the latest snapshot
    whole cost 0.18 s a refresh (26k products)."""
    insert = f"""
        INSERT INTO mart.{STOCK_TABLE} (snapshot_date, product_id, on_hand, units_window)
        SELECT s.snapshot_date, s.product_id, s.on_hand,
               COALESCE((SELECT SUM(r.units) FROM mart.rollup_product_daily r
                         WHERE r.product_id = s.product_id
                           AND r.day BETWEEN s.snapshot_date - {STOCK_WINDOW_DAYS - 1} AND s.snapshot_date), 0)
        FROM mart.inventory_snapshots s WHERE {{where}}"""
    if runs is None:
        conn.execute(sa.text(insert.format(where="true")))
        return
    conn.execute(sa.text(f"""
        UPDATE mart.{STOCK_TABLE} c SET units_window = c.units_window + d.units
        FROM (SELECT c.snapshot_date, c.product_id, SUM(i.sign * i.units) AS units
              FROM {_images("rollup_product_daily")} i
              JOIN mart.{STOCK_TABLE} c ON c.product_id = i.product_id
               AND c.snapshot_date BETWEEN i.day AND i.day + {STOCK_WINDOW_DAYS - 1}
              GROUP BY 1, 2 HAVING SUM(i.sign * i.units) <> 0) d
        WHERE c.snapshot_date = d.snapshot_date AND c.product_id = d.product_id"""))
    for lo, hi in runs:
        # One hash join of the day's snapshot rows with their cover rows: probing the cover's key
        # per snapshot row read every snapshot's rows (90 ms at 313k).
        stage_temp_table(conn, "stock_moved", f"""
            SELECT COALESCE(s.snapshot_date, c.snapshot_date) AS snapshot_date,
                   COALESCE(s.product_id, c.product_id) AS product_id, s.on_hand
            FROM (SELECT * FROM mart.inventory_snapshots WHERE snapshot_date BETWEEN :lo AND :hi) s
            FULL JOIN (SELECT * FROM mart.{STOCK_TABLE} WHERE snapshot_date BETWEEN :lo AND :hi) c
              ON (s.snapshot_date, s.product_id) = (c.snapshot_date, c.product_id)
            WHERE s.on_hand IS DISTINCT FROM c.on_hand""", {"lo": lo, "hi": hi})
        conn.execute(sa.text(f"""
            DELETE FROM mart.{STOCK_TABLE} c USING stock_moved m
            WHERE (c.product_id, c.snapshot_date) = (m.product_id, m.snapshot_date)"""))
        conn.execute(sa.text(insert.format(where="""(s.snapshot_date, s.product_id) IN (
            SELECT snapshot_date, product_id FROM stock_moved WHERE on_hand IS NOT NULL)""")))


# First and second counted order day per customer. {source} is stage_orders (a full rebuild:
# every order is staged) or the affected customers' whole history (incremental: ORDER_GMV).
CUSTOMER_FIRSTS = """
    SELECT customer_id,
           min(day) FILTER (WHERE rn = 1) AS first_day,
           min(day) FILTER (WHERE rn = 2) AS second_day,
           count(*) AS orders,
           COALESCE(sum(gmv), 0) AS gmv
    FROM (
        SELECT customer_id, day, gmv,
               row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at, order_id) AS rn
        FROM ({source}) src
    ) ranked
    GROUP BY customer_id
"""

# The steps of a full rebuild, as progress reports them (minutes at 10M order lines).
_CUBE_STEPS = tuple(f"{cube.name}s by dimension" for cube in DC.CUBES)
FULL_STEPS = ("orders", "day rollups", "weekly and monthly copies", "stock cover", *_CUBE_STEPS, "customer cells",
              "statistics")


def _full(conn: Connection, tz: str, progress: Callable[[str], None]) -> tuple[int, int]:
    progress(FULL_STEPS[0])
    conn.execute(sa.text("DELETE FROM app.rollup_dirty_days"))
    conn.execute(sa.text("DELETE FROM app.rollup_dirty_customers"))
    # Every order at once: its sorts and hash tables fit in memory with this (for the transaction).
    conn.execute(sa.text("SET LOCAL work_mem = '1GB'"))
    # DELETE, not TRUNCATE: TRUNCATE's exclusive lock would block every page until commit,
    # while readers of a DELETE keep seeing the old rows.
    for t in ROLLUP_TABLES:
        conn.execute(sa.text(f"DELETE FROM mart.{t}"))
    params = {"tz": tz}
    _stage_orders(conn, "true", params)
    conn.execute(sa.text("INSERT INTO mart.rollup_customers " + CUSTOMER_FIRSTS.format(
        source="SELECT customer_id, order_id, ordered_at, day, gmv FROM stage_orders WHERE orders > 0")))
    progress(FULL_STEPS[1])
    _insert_day_rollups(conn, "true", params)
    progress(FULL_STEPS[2])
    _insert_coarse(conn, None)
    progress(FULL_STEPS[3])
    _insert_stock(conn, None)
    for step, cube in zip(_CUBE_STEPS, DC.CUBES):
        progress(step)
        DC.rebuild(conn, cube, tz)
    progress(FULL_STEPS[-2])
    CR.stage_history(conn, tz, None)
    CR.insert_cells(conn)
    CR.insert_acquisition(conn, tz, None)
    conn.execute(sa.text("UPDATE app.rollup_state SET customer_days_from = 'infinity'"))
    CR.move_recent_window(conn, tz)
    days = conn.execute(sa.text("SELECT count(DISTINCT day) FROM mart.rollup_sales_daily")).scalar() or 0
    customers = conn.execute(sa.text("SELECT count(*) FROM mart.rollup_customers")).scalar() or 0
    progress(FULL_STEPS[-1])
    for t in ROLLUP_TABLES:
        conn.execute(sa.text(f"ANALYZE mart.{t}"))
    return days, customers


def _incremental(conn: Connection, tz: str, local_days: list[date], extra_customers: list[int],
                 deltas: bool) -> tuple[int, int]:
    """Rebuilds the local days that changed. deltas: the customers that changed are exactly
    extra_customers (recorded by the triggers) and the recent customer days keep every changed
    day, so the customer cells move by those customers' parts; otherwise every customer with an
    order on a changed day is affected and the cells recount days."""
    runs = _runs(local_days)
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.affected"))
    conn.execute(sa.text("CREATE TEMP TABLE affected (customer_id integer PRIMARY KEY) ON COMMIT DROP"))
    conn.execute(sa.text("INSERT INTO affected SELECT unnest(CAST(:ids AS integer[])) ON CONFLICT DO NOTHING"),
                 {"ids": extra_customers})
    for lo, hi in [] if deltas else runs:
        conn.execute(sa.text(f"""
            INSERT INTO affected SELECT DISTINCT customer_id FROM mart.orders o WHERE {local_days_sql('o.ordered_at')}
            ON CONFLICT DO NOTHING"""), {"lo": lo, "hi": hi, "tz": tz})
    conn.execute(sa.text("ANALYZE affected"))   # temp tables have no statistics until analyzed
    # First and second order days of every affected customer, from their whole history; the old
    # ones say which days' customer cells move.
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.old_firsts"))
    conn.execute(sa.text("""
        CREATE TEMP TABLE old_firsts ON COMMIT DROP AS
        SELECT a.customer_id, rc.first_day AS old_first, rc.second_day AS old_second
        FROM affected a LEFT JOIN mart.rollup_customers rc ON rc.customer_id = a.customer_id"""))
    # Their histories (counted orders, lines' values, vendors and categories) serve this and the
    # customer cells below.
    CR.stage_history(conn, tz, "affected", items=True)
    conn.execute(sa.text("DELETE FROM mart.rollup_customers WHERE customer_id IN (SELECT customer_id FROM affected)"))
    conn.execute(sa.text("INSERT INTO mart.rollup_customers " + CUSTOMER_FIRSTS.format(source=CR.ORDER_GMV)))
    for t in COARSE_DIMS:
        stage_temp_table(conn, _images(t), f"SELECT 0 AS sign, {_image_columns(t)} FROM mart.{t} WHERE false")
    _copy_day_lines(conn, runs, tz)
    for lo, hi in runs:
        _replace_days(conn, lo, hi, tz)
    for t in COARSE_DIMS:
        conn.execute(sa.text(f"ANALYZE {_images(t)}"))
    _insert_coarse(conn, runs)
    _insert_stock(conn, runs)
    for cube in DC.CUBES:
        DC.refresh(conn, cube, tz, runs, DAY_LINES)
    _refresh_customer_cells(conn, tz, runs, deltas)
    CR.keep_recent(conn, "dirty", "affected" if deltas else None)
    CR.move_recent_window(conn, tz)
    # Every day whose figures may have moved (refresh_rollups gives them the new version): rebuilt
    # days (stock snapshots' included) and the stock windows they fall in, recounted customer
    # days, and each changed customer's order days (its first and second order days ride along
    # on rollup_customer_daily rows).
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.changed_days"))
    conn.execute(sa.text("""
        CREATE TEMP TABLE changed_days ON COMMIT DROP AS
        SELECT day FROM dirty UNION SELECT day FROM recount
        UNION SELECT d.day FROM mart.rollup_customer_daily d JOIN changed c ON c.customer_id = d.customer_id
        UNION SELECT generate_series(day, day + :window, interval '1 day')::date FROM dirty"""),
                 {"window": STOCK_WINDOW_DAYS - 1})
    # Rows on days outside the runs carry the customer's first/second day too.
    conn.execute(sa.text("""
        UPDATE mart.rollup_customer_daily d SET first_day = rc.first_day, second_day = rc.second_day
        FROM mart.rollup_customers rc
        WHERE d.customer_id = rc.customer_id AND d.customer_id IN (SELECT customer_id FROM affected)
          AND (d.first_day, d.second_day) IS DISTINCT FROM (rc.first_day, rc.second_day)"""))
    customers = conn.execute(sa.text("SELECT count(*) FROM affected")).scalar()
    return sum((hi - lo).days + 1 for lo, hi in runs), customers


def _refresh_customer_cells(conn: Connection, tz: str, runs: list[tuple[date, date]], deltas: bool) -> None:
    """Moves the customer cells by the affected customers' parts (deltas), or recounts those of the
    days that changed and of the days affected customers' previous, first and second order days
    moved on (see data.customer_rollups)."""
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.dirty, pg_temp.changed, pg_temp.scope"))
    conn.execute(sa.text("CREATE TEMP TABLE dirty (day date PRIMARY KEY) ON COMMIT DROP"))
    for lo, hi in runs:
        conn.execute(sa.text("INSERT INTO dirty SELECT generate_series(CAST(:lo AS date), CAST(:hi AS date), "
                             "interval '1 day')::date"), {"lo": lo, "hi": hi})
    conn.execute(sa.text("ANALYZE dirty"))
    # Customers whose first or second order moved, or whose first day was rebuilt (what they
    # bought that day decides the spaces they are "native" to).
    conn.execute(sa.text("""
        CREATE TEMP TABLE changed ON COMMIT DROP AS
        SELECT o.customer_id, o.old_first, o.old_second
        FROM old_firsts o LEFT JOIN mart.rollup_customers rc ON rc.customer_id = o.customer_id
        WHERE (o.old_first, o.old_second) IS DISTINCT FROM (rc.first_day, rc.second_day)
           OR o.old_first IN (SELECT day FROM dirty) OR rc.first_day IN (SELECT day FROM dirty)"""))
    conn.execute(sa.text("ANALYZE changed"))
    CR.stage_days(conn)   # stage_history(affected) ran before rollup_customers was updated
    if deltas:
        CR.apply_deltas(conn, "dirty", "affected", "old_firsts")
        CR.recount_days(conn, "dirty", "affected", "changed", delta=True)
    else:
        CR.recount_days(conn, "dirty", "affected", "changed")
        _recount_day_cells(conn, tz)
    conn.execute(sa.text(f"DELETE FROM mart.{CR.ACQUISITION} WHERE day IN (SELECT day FROM recount)"))
    CR.insert_acquisition(conn, tz, "recount")


def _recount_day_cells(conn: Connection, tz: str) -> None:
    """Recounts the cells of the days in temp table recount from the histories of every customer
    with an order on one of them."""
    # Every other customer with an order on a recounted day, or a second order on one.
    conn.execute(sa.text(f"""
        CREATE TEMP TABLE scope ON COMMIT DROP AS
        SELECT customer_id FROM affected
        UNION
        SELECT o.customer_id FROM mart.orders o
        WHERE {local_days_sql('o.ordered_at', '(SELECT min(day) FROM recount)', '(SELECT max(day) FROM recount)')}
          AND {LOCAL_DAY} IN (SELECT day FROM recount)
        UNION
        SELECT customer_id FROM mart.rollup_customers WHERE second_day IN (SELECT day FROM recount)"""), {"tz": tz})
    conn.execute(sa.text("ANALYZE scope"))
    conn.execute(sa.text("DELETE FROM scope WHERE customer_id IN (SELECT customer_id FROM affected)"))
    if conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM scope)")).scalar():
        # Their histories too (the days they bought on are recounted).
        CR.stage_history(conn, tz, "scope", append=True)
        CR.stage_days(conn, scope="scope", append=True)
    CR.replace_day_cells(conn, "recount")


def _local_days(conn: Connection, utc_days: list[date], tz: str) -> list[date]:
    """Returns the local days that overlap the given UTC days."""
    if not utc_days:
        return []
    rows = conn.execute(sa.text("""
        SELECT DISTINCT d::date FROM unnest(CAST(:days AS date[])) AS u(day),
        LATERAL generate_series(
            (u.day::timestamp AT TIME ZONE 'UTC' AT TIME ZONE :tz)::date,
            (((u.day + 1)::timestamp AT TIME ZONE 'UTC') - interval '1 microsecond') AT TIME ZONE :tz,
            interval '1 day') AS d"""), {"days": utc_days, "tz": tz})
    return [r[0] for r in rows]


def refresh_rollups(conn: Connection, since: date | None = None, *, full: bool = False,
                    timezone: str | None = None, progress: Callable[[str], None] | None = None) -> RefreshResult:
    """Brings the rollups up to date inside conn's transaction; returns what it did.

    full: rebuild everything. since: rebuild every local day from since on. Neither: rebuild
    the days that changed since the last refresh (recorded by triggers). A change of
    APP_TIMEZONE or of a vendor, product or customer row forces a full rebuild. progress, when
    given, is told each FULL_STEPS step of a full rebuild as it starts.
    """
    started = time.perf_counter()
    report = progress or (lambda step: None)
    tz = timezone or load_settings().timezone
    state = conn.execute(sa.text(
        "SELECT timezone, full_needed, version, layout FROM app.rollup_state FOR UPDATE")).mappings().one()
    # Large hash aggregates spill to disk at the default; this lasts until the transaction ends.
    conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
    # Writers wait for the refresh (and it for writers in flight), so the dirty days it takes and
    # the rows it reads come from one state: no change can slip between them and be lost.
    conn.execute(sa.text(
        "LOCK TABLE mart.orders, mart.order_items, mart.customers, mart.vendors, mart.products, "
        "mart.inventory_snapshots IN SHARE MODE"))
    mode, cells = "none", ""
    days = customers = 0
    if full or state["full_needed"] or state["timezone"] != tz or state["layout"] != LAYOUT:
        mode = "full"
        days, customers = _full(conn, tz, report)
    else:
        utc_days = [r[0] for r in conn.execute(sa.text("DELETE FROM app.rollup_dirty_days RETURNING day_utc"))]
        extra = [r[0] for r in conn.execute(sa.text("DELETE FROM app.rollup_dirty_customers RETURNING customer_id"))]
        local = _local_days(conn, utc_days, tz)
        if since is not None:
            last = conn.execute(sa.text(
                "SELECT max((ordered_at AT TIME ZONE :tz)::date) FROM mart.orders"), {"tz": tz}).scalar()
            if last is not None and last >= since:
                local += [since + timedelta(days=n) for n in range((last - since).days + 1)]
        # The known days are counted only when they could matter (20 ms at 10M lines).
        if len(set(local)) > MIN_DAYS_FOR_FULL and len(set(local)) > FULL_REBUILD_SHARE * (conn.execute(sa.text(
                "SELECT count(DISTINCT day) FROM mart.rollup_sales_daily")).scalar() or 0):
            # Rebuilding most days one run at a time costs more than one full pass (measured on
            # 1M lines: 25 s incremental over every day vs 14 s full).
            mode = "full"
            days, customers = _full(conn, tz, report)
        elif local or extra:
            mode = "days"
            # Triggers record every changed order's customers; --since rebuilds days they did not see.
            deltas = since is None and CR.fetch_deltas_cover(conn, local)
            days, customers = _incremental(conn, tz, local, extra, deltas)
            cells = "deltas" if deltas else "recount"
    version = state["version"] + (mode != "none")
    if mode == "full":
        conn.execute(sa.text("DELETE FROM app.rollup_day_versions"))
        conn.execute(sa.text("UPDATE app.rollup_state SET base_version = :v"), {"v": version})
    elif mode == "days":
        conn.execute(sa.text("""
            INSERT INTO app.rollup_day_versions (day, version) SELECT day, :v FROM changed_days
            ON CONFLICT (day) DO UPDATE SET version = excluded.version"""), {"v": version})
    elapsed = int((time.perf_counter() - started) * 1000)
    conn.execute(sa.text("""
        UPDATE app.rollup_state SET timezone = :tz, full_needed = false, version = :v, layout = :layout,
               refreshed_at = now(), refresh_ms = CASE WHEN :changed THEN :ms ELSE refresh_ms END"""),
                 {"tz": tz, "v": version, "ms": elapsed, "changed": mode != "none", "layout": LAYOUT})
    return RefreshResult(mode, days, customers, elapsed, version, cells)


def fetch_period_version(conn: Connection, start: date, end: date) -> int:
    """Returns the rollup version that last changed a figure of the local days start..end."""
    return conn.execute(sa.text("""
        SELECT GREATEST(s.base_version, (SELECT max(version) FROM app.rollup_day_versions
                                         WHERE day BETWEEN :start AND :end))
        FROM app.rollup_state s"""), {"start": start, "end": end}).scalar()


def fetch_rollup_status(conn: Connection) -> dict:
    """Returns {timezone, version, refreshed_at, full_needed, dirty_days} of the rollups."""
    row = conn.execute(sa.text("""
        SELECT timezone, version, refreshed_at, full_needed,
               (SELECT count(*) FROM app.rollup_dirty_days) AS dirty_days
        FROM app.rollup_state""")).mappings().one()
    return dict(row)
