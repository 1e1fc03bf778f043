"""Distinct customers over any period, exactly, from rollups whose size does not grow with orders.

A customer is active in [a, b] exactly once: on its first order day inside the window, the day
whose previous order day (same customer, same filter "space") is before a or absent. So per day
we count customer-days by their previous order day; a period sums whole months and single days.
A space is the whole marketplace or one value of a filter dimension (`rollup_customer_spaces`):
customer-level dimensions share the marketplace's previous order days, an order-level dimension,
a category or a vendor keeps its own. `rollup_customer_cells` has a row per space, grain ('d'ay,
'm'onth) and bucket (the day, the month's first day) with, for the customers in the bucket
(each counted on its first day in it):

  active     customers with an order in the bucket
  p_keys/n   of those, how many had their previous order on each day before the bucket
  new_in     customers whose first order in this space is in the bucket and whose first order
             ever is too
  f_keys/n   customers whose first order in this space is in the bucket, by their first order
             ever, when it was before the bucket
  natives    customers whose first order in this space is in the bucket and is their first
             order ever ("natives")
  second_in  natives whose second order ever falls in the bucket and whose first is in it too
  s_keys/n   natives whose second order ever falls in the bucket, by their first order day,
             when it was before the bucket

A piece X = [x0, x1] of a period starting at a (a <= x0) reads the keys from a on:
  active = active(X) - Σ p(key >= a)     (customers whose previous day is before a)
  new    = new_in(X) + Σ f(key >= a)     (first order ever on or after a)
  repeat = active - natives(X) + second_in(X) + Σ s(key >= a)
           (a native with a single order up to the end is not a repeat customer; one whose
            second order is in the piece and first on or after a is)
summed over the pieces; the first piece (x0 = a) reads one row and no keys.

Keys are kept as arrays in the bucket's row: per customer-day rows cost ~60 bytes each, a key
8; at 10M order lines the cells take a tenth of the space as rows.

The cells are sums of each customer's part, and a customer's part depends only on its own order
days (and first and second order days ever). A refresh whose changed days are all recent moves
the cells by the changed customers' new parts minus their old ones (`apply_deltas`); the old part
comes from `rollup_customer_recent_days`, each customer's spaces per order day as of the last
refresh, kept for the days from `app.rollup_state.customer_days_from` (RECENT_DAYS). A change on
an earlier day recounts whole days (`recount_days`, `replace_day_cells`): the changed days, each
affected customer's next order day in every space after a changed day (its previous day moved),
and the days their first and second orders moved from or to. Month cells are a linear map of day
cells, kept by adding the days' new images and subtracting their old ones.

SQL builders here take temp tables the caller made (in data.rollups); nothing here connects.
"""
from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.db import fetch_latest_order_day, stage_temp_table
from data.measures import COUNTED, LINE_VALUE, LOCAL_DAY, local_days_sql

CELLS = "rollup_customer_cells"
SPACES = "rollup_customer_spaces"
RECENT = "rollup_customer_recent_days"
# Days of spaces per customer kept for the deltas: a day's orders and late changes within about a
# month (refunds, cancellations). At 10M order lines, 35 days are 3.3M rows (311 MB).
RECENT_DAYS = 35
ACQUISITION = "rollup_acquisition_daily"
ORDER_SPACES = ("channel", "business_model", "payment_method")
CUSTOMER_SPACES = ("segment", "region", "country")
LINE_SPACES = ("category", "vendor_id")
CELL_DIMENSIONS = frozenset({*ORDER_SPACES, *CUSTOMER_SPACES, *LINE_SPACES})
ALL_SPACE = 0   # rollup_customer_spaces' row for the whole marketplace


def _values(dims: tuple[str, ...], alias: str) -> str:
    """SQL VALUES rows (space, value) of alias's columns named dims."""
    return ", ".join(f"('{d}', {alias}.{d}::text)" for d in dims)


def stage_history(conn: Connection, tz: str, scope: str | None, *, append: bool = False,
                  items: bool = False, since: date | None = None) -> None:
    """Fills temp tables cust_orders and cust_lines (counted orders, and their distinct vendors
    and categories per customer and day, of the customers in temp table `scope`, every customer
    when None) and cust_attr (each of those customers' customer-level space ids), giving new
    dimension values a space id. append adds the scope's customers to the tables there are;
    items keeps their order lines' values too (cust_items), for ORDER_GMV. since keeps only the
    orders of that local day and after (and the customers who placed them)."""
    of = lambda alias: "true" if scope is None else f"{alias}.customer_id IN (SELECT customer_id FROM {scope})"  # noqa: E731
    after = "true" if since is None else local_days_sql("o.ordered_at", ":since", None)
    stage_temp_table(conn, "cust_orders", f"""
        SELECT o.order_id, o.customer_id, o.ordered_at, {LOCAL_DAY} AS day,
               o.channel, o.business_model, o.payment_method
        FROM mart.orders o WHERE {COUNTED} AND {of('o')} AND {after}""", {"tz": tz, "since": since}, append=append)
    lines = f"""
        FROM cust_orders h
        JOIN mart.order_items i ON i.order_id = h.order_id
        JOIN mart.products p ON p.product_id = i.product_id
        WHERE {of('h')}"""
    if items:
        # One pass over the order lines serves both (a refresh's lines are index lookups).
        stage_temp_table(conn, "cust_items", f"""
            SELECT h.order_id, h.customer_id, h.day, i.vendor_id, p.category, {LINE_VALUE} AS value {lines}""",
               append=append)
        stage_temp_table(conn, "cust_lines", f"SELECT DISTINCT customer_id, day, vendor_id, category FROM cust_items h WHERE {of('h')}",
               append=append)
    else:
        stage_temp_table(conn, "cust_lines", f"SELECT DISTINCT h.customer_id, h.day, i.vendor_id, p.category {lines}",
               append=append)
    customers = "mart.customers c WHERE " + (
        of('c') if since is None else "c.customer_id IN (SELECT customer_id FROM cust_orders)")
    conn.execute(sa.text(f"""
        INSERT INTO mart.{SPACES} (space, value)
        SELECT DISTINCT v.space, v.value FROM (
            SELECT DISTINCT {', '.join(ORDER_SPACES)} FROM cust_orders o WHERE {of('o')}) o
            CROSS JOIN LATERAL (VALUES {_values(ORDER_SPACES, 'o')}) AS v(space, value)
        UNION
        SELECT DISTINCT v.space, v.value FROM (SELECT DISTINCT {', '.join(LINE_SPACES)} FROM cust_lines l
                                               WHERE {of('l')}) l
            CROSS JOIN LATERAL (VALUES {_values(LINE_SPACES, 'l')}) AS v(space, value)
        UNION
        SELECT DISTINCT v.space, v.value FROM (SELECT DISTINCT {', '.join(CUSTOMER_SPACES)} FROM {customers}) c
            CROSS JOIN LATERAL (VALUES {_values(CUSTOMER_SPACES, 'c')}) AS v(space, value)
        ON CONFLICT (space, value) DO NOTHING"""))
    ids = ", ".join(f"(SELECT id FROM mart.{SPACES} WHERE space = '{d}' AND value = c.{d}) AS {d}"
                    for d in CUSTOMER_SPACES)
    stage_temp_table(conn, "cust_attr", f"SELECT c.customer_id, {ids} FROM {customers}", append=append)


# The staged customers' counted orders with their GMV (stage_history with items=True).
ORDER_GMV = """
    SELECT o.customer_id, o.order_id, o.ordered_at, o.day, COALESCE(SUM(i.value), 0) AS gmv
    FROM cust_orders o LEFT JOIN cust_items i ON i.order_id = o.order_id
    GROUP BY o.customer_id, o.order_id, o.ordered_at, o.day"""


# Each family's customer-days: the whole marketplace's (from which the customer-level spaces are
# counted too), each order-level dimension value's, each category's and vendor's. {of} narrows to
# some customers.
_FAMILIES = {
    "all": f"SELECT DISTINCT {ALL_SPACE} AS space_id, customer_id, day FROM cust_orders o WHERE {{of}}",
    "orders": f"""
        SELECT DISTINCT s.id, o.customer_id, o.day
        FROM cust_orders o CROSS JOIN LATERAL (VALUES {_values(ORDER_SPACES, 'o')}) AS v(space, value)
        JOIN mart.{SPACES} s ON s.space = v.space AND s.value = v.value
        WHERE {{of}}""",
    "lines": f"""
        SELECT DISTINCT s.id, o.customer_id, o.day
        FROM cust_lines o CROSS JOIN LATERAL (VALUES {_values(LINE_SPACES, 'o')}) AS v(space, value)
        JOIN mart.{SPACES} s ON s.space = v.space AND s.value = v.value
        WHERE {{of}}""",
}
FAMILIES = tuple(_FAMILIES)


def stage_days(conn: Connection, families: tuple[str, ...] = FAMILIES, *, scope: str | None = None,
               append: bool = False, firsts: bool = True) -> None:
    """Fills temp table cust_days (space_id, customer_id, day, prev: the previous day in the
    space) for the families' spaces, and cust_firsts (space_id, day, first_day, second_day: each
    customer's first day in each space with its first and second order days ever; not when
    firsts is false), from stage_history's tables; customer-level spaces come from the whole
    marketplace's rows. scope narrows to its customers; append adds them to the tables there are."""
    of = lambda alias: "true" if scope is None else f"{alias}.customer_id IN (SELECT customer_id FROM {scope})"  # noqa: E731
    union = " UNION ALL ".join(_FAMILIES[f].format(of=of("o")) for f in families)
    stage_temp_table(conn, "cust_days", f"""
        SELECT space_id, customer_id, day, lag(day) OVER (PARTITION BY space_id, customer_id ORDER BY day) AS prev
        FROM ({union}) d (space_id, customer_id, day)""", append=append)
    if "all" in families:
        # A customer has one segment, region and country: the marketplace's previous day is theirs.
        stage_temp_table(conn, "cust_days", f"""
            SELECT v.space_id, d.customer_id, d.day, d.prev
            FROM cust_days d JOIN cust_attr a ON a.customer_id = d.customer_id
            CROSS JOIN LATERAL (VALUES {', '.join(f'(a.{c})' for c in CUSTOMER_SPACES)}) AS v(space_id)
            WHERE d.space_id = {ALL_SPACE} AND {of('d')}""", append=True)
    if firsts:
        stage_temp_table(conn, "cust_firsts", f"""
            SELECT d.space_id, d.day, rc.first_day, rc.second_day
            FROM cust_days d JOIN mart.rollup_customers rc ON rc.customer_id = d.customer_id
            WHERE d.prev IS NULL AND {of('d')}""", append=append)


# (space_id, bucket, key, kind, n) rows -> one cells row per space and bucket. t keys are the
# bucket; f and s keys on or after it count in new_in and second_in. A day's natives are its
# customers whose first order ever is that day: its f row keyed by the day itself.
_PIVOT = """
    SELECT space_id, '{grain}'::"char" AS grain, bucket,
           COALESCE(SUM(n) FILTER (WHERE kind = 't'), 0)::integer AS active,
           COALESCE(SUM(n) FILTER (WHERE {natives}), 0)::integer AS natives,
           COALESCE(SUM(n) FILTER (WHERE kind = 'f' AND key >= bucket), 0)::integer AS new_in,
           COALESCE(SUM(n) FILTER (WHERE kind = 's' AND key >= bucket), 0)::integer AS second_in,
           array_agg(key) FILTER (WHERE kind = 'p') AS p_keys,
           array_agg(n::integer) FILTER (WHERE kind = 'p') AS p_n,
           array_agg(key) FILTER (WHERE kind = 'f' AND key < bucket) AS f_keys,
           array_agg(n::integer) FILTER (WHERE kind = 'f' AND key < bucket) AS f_n,
           array_agg(key) FILTER (WHERE kind = 's' AND key < bucket) AS s_keys,
           array_agg(n::integer) FILTER (WHERE kind = 's' AND key < bucket) AS s_n
    FROM ({rows}) k
    GROUP BY space_id, bucket"""
_NATIVES = {"d": "kind = 'f' AND key = bucket", "m": "kind = 'n'"}
# Rows that may repeat a (space, bucket, key, kind) -- deltas -- are summed first.
_SUMMED = """
    SELECT space_id, bucket, key, kind, SUM(n)::bigint AS n FROM ({rows}) r
    GROUP BY 1, 2, 3, 4 HAVING SUM(n) <> 0"""
_COLUMNS = "space_id, grain, bucket, active, natives, new_in, second_in, p_keys, p_n, f_keys, f_n, s_keys, s_n"


def _pivot(grain: str, rows: str) -> str:
    return _PIVOT.format(grain=grain, natives=_NATIVES[grain], rows=rows)


# Cells rows (in {source}) -> (space_id, bucket, key, kind, n) rows again.
_KINDS = """
    SELECT space_id, bucket, bucket AS key, 't'::"char" AS kind, active AS n FROM {source}
    UNION ALL SELECT space_id, bucket, bucket, 'n', natives FROM {source}
    UNION ALL SELECT space_id, bucket, bucket, 'f', new_in FROM {source}
    UNION ALL SELECT space_id, bucket, bucket, 's', second_in FROM {source}
    UNION ALL SELECT space_id, bucket, u.key, 'p', u.n FROM {source}, unnest(p_keys, p_n) AS u(key, n)
    UNION ALL SELECT space_id, bucket, u.key, 'f', u.n FROM {source}, unnest(f_keys, f_n) AS u(key, n)
    UNION ALL SELECT space_id, bucket, u.key, 's', u.n FROM {source}, unnest(s_keys, s_n) AS u(key, n)"""

# Day kinds -> the kinds of their month: t counts customers whose previous day is before the month
# (day t minus day p keys inside it), p keeps keys before the month, and keys inside the month
# become its first day (so a month's own counts and their deltas add up under one key).
_TO_MONTH = """
    SELECT space_id, m AS bucket,
           LEAST(key, m) AS key,
           CASE WHEN kind = 'p' AND key >= m THEN 't' ELSE kind END AS kind,
           CASE WHEN kind = 'p' AND key >= m THEN -n ELSE n END AS n
    FROM (SELECT *, date_trunc('month', bucket)::date AS m FROM ({kinds}) k) d"""


def _day_kinds(days: str | None, prefix: str = "") -> str:
    """SQL of the day kinds of the days in temp table `days` (every day when None) from cust_days
    and cust_firsts (or prefix + those): t and p in one pass (grouping sets), f (natives among
    them), s."""
    on = "true" if days is None else f"{{col}} IN (SELECT day FROM {days})"
    return f"""
        SELECT space_id, day AS bucket, CASE WHEN GROUPING(prev) = 1 THEN day ELSE prev END AS key,
               (CASE WHEN GROUPING(prev) = 1 THEN 't' ELSE 'p' END)::"char" AS kind, count(*) AS n
        FROM {prefix}cust_days WHERE {on.format(col='day')}
        GROUP BY GROUPING SETS ((space_id, day), (space_id, day, prev))
        HAVING GROUPING(prev) = 1 OR prev IS NOT NULL
        UNION ALL
        SELECT space_id, day, first_day, 'f', count(*)
        FROM {prefix}cust_firsts WHERE {on.format(col='day')} GROUP BY 1, 2, 3
        UNION ALL
        SELECT space_id, second_day, first_day, 's', count(*)
        FROM {prefix}cust_firsts WHERE first_day = day AND second_day IS NOT NULL AND {on.format(col='second_day')}
        GROUP BY 1, 2, 3"""


def insert_cells(conn: Connection) -> None:
    """Inserts every day and month cell (a full rebuild, after stage_history of every customer and
    the caller emptied the table), one family of spaces at a time: their sorts fit in memory."""
    for family in FAMILIES:
        stage_days(conn, (family,))
        conn.execute(sa.text(f"INSERT INTO mart.{CELLS} ({_COLUMNS}) {_pivot('d', _day_kinds(None))}"
                             " ORDER BY space_id, bucket"))
    day_kinds = _KINDS.format(source=f"(SELECT * FROM mart.{CELLS} WHERE grain = 'd') c")
    conn.execute(sa.text(f"INSERT INTO mart.{CELLS} ({_COLUMNS}) "
                         f"{_pivot('m', _SUMMED.format(rows=_TO_MONTH.format(kinds=day_kinds)))} ORDER BY space_id, bucket"))


def replace_day_cells(conn: Connection, days: str) -> None:
    """Recounts the cells of the days in temp table `days` from cust_days (which must hold the
    whole history of every customer with an order on those days or a second order on them) and
    moves their months by the difference: new day images added, old ones subtracted."""
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.old_days, pg_temp.new_days, pg_temp.months"))
    conn.execute(sa.text(f"""
        CREATE TEMP TABLE old_days ON COMMIT DROP AS
        WITH gone AS (DELETE FROM mart.{CELLS} WHERE grain = 'd' AND bucket IN (SELECT day FROM {days})
                      RETURNING *)
        SELECT * FROM gone"""))
    conn.execute(sa.text(f"CREATE TEMP TABLE new_days ON COMMIT DROP AS {_pivot('d', _day_kinds(days))}"))
    conn.execute(sa.text(f"INSERT INTO mart.{CELLS} ({_COLUMNS}) SELECT {_COLUMNS} FROM new_days"))
    stage_temp_table(conn, "cell_delta", _difference("new_days", "old_days"))
    _move_months(conn)


def _difference(new: str, old: str) -> str:
    """SQL of the kinds of day cells `new` minus those of `old` (tables or CTEs), summed."""
    return _SUMMED.format(rows=f"""
        {_KINDS.format(source=new)}
        UNION ALL SELECT space_id, bucket, key, kind, -n FROM ({_KINDS.format(source=old)}) o""")


def _move_months(conn: Connection) -> None:
    """Adds temp table cell_delta (day cells' kinds: new images minus old ones) to their months."""
    conn.execute(sa.text(f"""
        CREATE TEMP TABLE months ON COMMIT DROP AS
        WITH gone AS (DELETE FROM mart.{CELLS} WHERE grain = 'm' AND (space_id, bucket) IN (
                          SELECT DISTINCT space_id, date_trunc('month', bucket)::date FROM cell_delta)
                      RETURNING *)
        SELECT * FROM gone"""))
    moved = f"{_KINDS.format(source='months')} UNION ALL {_TO_MONTH.format(kinds='SELECT * FROM cell_delta')}"
    conn.execute(sa.text(f"INSERT INTO mart.{CELLS} ({_COLUMNS}) {_pivot('m', _SUMMED.format(rows=moved))}"))


def apply_deltas(conn: Connection, dirty: str, affected: str, old_firsts: str) -> None:
    """Moves the day and month cells by the parts of the customers in temp table `affected`: their
    new parts (cust_days and cust_firsts: their whole histories now) minus their old ones (their
    days outside `dirty` as now, their days in it from the recent days; first and second order
    days from `old_firsts` (customer_id, old_first, old_second)). Every dirty day must be kept in
    the recent days, and `affected` must hold every customer whose orders changed. Leaves the
    delta in temp table cell_delta."""
    stage_temp_table(conn, "old_cust_days", f"""
        SELECT space_id, customer_id, day, lag(day) OVER (PARTITION BY space_id, customer_id ORDER BY day) AS prev
        FROM (SELECT space_id, customer_id, day FROM cust_days WHERE day NOT IN (SELECT day FROM {dirty})
              UNION ALL
              SELECT space_id, customer_id, day FROM mart.{RECENT}
              WHERE customer_id IN (SELECT customer_id FROM {affected}) AND day IN (SELECT day FROM {dirty})) d""")
    stage_temp_table(conn, "old_cust_firsts", f"""
        SELECT d.space_id, d.day, o.old_first AS first_day, o.old_second AS second_day
        FROM old_cust_days d JOIN {old_firsts} o ON o.customer_id = d.customer_id
        WHERE d.prev IS NULL""")
    stage_temp_table(conn, "cell_delta", f"""
        WITH new_part AS ({_pivot('d', _day_kinds(None))}), old_part AS ({_pivot('d', _day_kinds(None, 'old_'))})
        {_difference('new_part', 'old_part')}""")
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.old_days, pg_temp.months"))
    conn.execute(sa.text(f"""
        CREATE TEMP TABLE old_days ON COMMIT DROP AS
        WITH gone AS (DELETE FROM mart.{CELLS} WHERE grain = 'd'
                        AND (space_id, bucket) IN (SELECT DISTINCT space_id, bucket FROM cell_delta)
                      RETURNING *)
        SELECT * FROM gone"""))
    moved = f"{_KINDS.format(source='old_days')} UNION ALL SELECT * FROM cell_delta"
    conn.execute(sa.text(f"INSERT INTO mart.{CELLS} ({_COLUMNS}) {_pivot('d', _SUMMED.format(rows=moved))}"))
    _move_months(conn)


def recount_days(conn: Connection, dirty: str, affected: str, changed: str, *, delta: bool = False) -> None:
    """Creates temp table recount(day): the days in `dirty` (local days rebuilt), each affected
    customer's next order day in every space after a dirty day (with delta: the days whose cells
    apply_deltas moved), and the old and new first and second order days of the customers in
    `changed` (customer_id, old_first, old_second)."""
    moved = "SELECT DISTINCT bucket FROM cell_delta" if delta else f"""
        -- The first day after a dirty day in a space: its previous day is the dirty day or before.
        SELECT d.day FROM cust_days d
        WHERE d.day > (SELECT min(day) FROM {dirty}) AND d.customer_id IN (SELECT customer_id FROM {affected})
          AND EXISTS (SELECT 1 FROM {dirty} x WHERE x.day < d.day AND (d.prev IS NULL OR x.day >= d.prev))"""
    conn.execute(sa.text("DROP TABLE IF EXISTS pg_temp.recount"))
    conn.execute(sa.text(f"""
        CREATE TEMP TABLE recount ON COMMIT DROP AS
        SELECT day FROM {dirty}
        UNION {moved}
        UNION
        SELECT unnest(ARRAY[c.old_first, c.old_second, rc.first_day, rc.second_day])
        FROM {changed} c LEFT JOIN mart.rollup_customers rc ON rc.customer_id = c.customer_id"""))
    conn.execute(sa.text("DELETE FROM recount WHERE day IS NULL"))
    conn.execute(sa.text("ANALYZE recount"))


def fetch_deltas_cover(conn: Connection, days: list[date]) -> bool:
    """Whether the recent days keep every one of the local days (so apply_deltas can serve them)."""
    return bool(days) and conn.execute(sa.text("SELECT customer_days_from <= :d FROM app.rollup_state"),
                                       {"d": min(days)}).scalar()


def keep_recent(conn: Connection, dirty: str, customers: str | None) -> None:
    """Rewrites the recent days' rows on the days in temp table `dirty` (those of the customers in
    temp table `customers` only, when given) from cust_days, which must hold every such customer
    with a counted order on those days."""
    of = "true" if customers is None else f"customer_id IN (SELECT customer_id FROM {customers})"
    conn.execute(sa.text(f"DELETE FROM mart.{RECENT} WHERE day IN (SELECT day FROM {dirty}) AND {of}"))
    conn.execute(sa.text(f"""
        INSERT INTO mart.{RECENT} (customer_id, day, space_id)
        SELECT customer_id, day, space_id FROM cust_days
        WHERE day IN (SELECT day FROM {dirty}) AND day >= (SELECT customer_days_from FROM app.rollup_state)"""))


def move_recent_window(conn: Connection, tz: str) -> None:
    """Keeps the recent days from RECENT_DAYS - 1 days before the latest order's local day (or
    today, if that is earlier): fills them when none are kept (after a rebuild or the upgrade to
    revision 0020), or drops the days that fell out. They only move forward here."""
    last = fetch_latest_order_day(conn, tz)
    kept = conn.execute(sa.text(
        "SELECT CASE WHEN customer_days_from < 'infinity' THEN customer_days_from END FROM app.rollup_state")).scalar()
    newest = None if last is None else last - timedelta(days=RECENT_DAYS - 1)
    if newest is None or kept is None:
        conn.execute(sa.text(f"DELETE FROM mart.{RECENT}"))
        if newest is not None:
            # Every customer's spaces on the orders of those days.
            stage_history(conn, tz, None, since=newest)
            stage_days(conn, firsts=False)
            conn.execute(sa.text(f"INSERT INTO mart.{RECENT} (customer_id, day, space_id) "
                                 "SELECT customer_id, day, space_id FROM cust_days"))
    elif newest > kept:
        conn.execute(sa.text(f"DELETE FROM mart.{RECENT} WHERE day < :d"), {"d": newest})
    if newest is None or kept is None or newest > kept:
        conn.execute(sa.text("UPDATE app.rollup_state SET customer_days_from = COALESCE(CAST(:d AS date), 'infinity')"),
                     {"d": newest})


def insert_acquisition(conn: Connection, tz: str, days: str | None) -> None:
    """Inserts GMV and new customers per acquisition channel for the days in temp table `days`
    (every day when None), from the order lines and rollup_customers."""
    if days is None:
        orders, firsts = "true", "true"
    else:
        orders = (local_days_sql("o.ordered_at", f"(SELECT min(day) FROM {days})", f"(SELECT max(day) FROM {days})")
                  + f" AND {LOCAL_DAY} IN (SELECT day FROM {days})")
        firsts = f"rc.first_day IN (SELECT day FROM {days})"
    conn.execute(sa.text(f"""
        INSERT INTO mart.{ACQUISITION} (day, acquisition_channel, gmv, new_customers)
        SELECT day, channel, SUM(gmv), SUM(new) FROM (
            SELECT {LOCAL_DAY} AS day, c.acquisition_channel AS channel,
                   SUM({LINE_VALUE}) AS gmv, 0 AS new
            FROM mart.orders o
            JOIN mart.order_items i ON i.order_id = o.order_id
            JOIN mart.customers c ON c.customer_id = o.customer_id
            WHERE {COUNTED} AND {orders}
            GROUP BY 1, 2
            UNION ALL
            SELECT rc.first_day, c.acquisition_channel, 0, count(*)
            FROM mart.rollup_customers rc JOIN mart.customers c ON c.customer_id = rc.customer_id
            WHERE {firsts}
            GROUP BY 1, 2
        ) x GROUP BY 1, 2"""), {"tz": tz})
