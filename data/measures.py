"""Base measures over raw rows: the data contract's definitions, written once.

Every rollup column is one of these computed per order (or per order and vendor, or per
order and category) and then summed, and the raw fallback queries use them directly, so a
figure read from a rollup and the same figure computed from raw rows share one definition.
Glossary metrics (analytics/metrics.py) are formulas over these names.

Aliases the expressions expect: o = mart.orders, i = mart.order_items, v = mart.vendors.
"""
from __future__ import annotations

from collections.abc import Iterable

LINE_VALUE = "(i.quantity * i.unit_price - i.discount)"
COUNTED = "o.status <> 'cancelled'"
# An order's local day (the bound parameter :tz names the time zone).
LOCAL_DAY = "(o.ordered_at AT TIME ZONE :tz)::date"

BASE_MEASURES: dict[str, str] = {
    "gmv": f"COALESCE(SUM({LINE_VALUE}) FILTER (WHERE {COUNTED}), 0)",
    "refunded": f"COALESCE(SUM(i.refunded_amount) FILTER (WHERE {COUNTED}), 0)",
    "take": f"COALESCE(SUM(({LINE_VALUE} - i.refunded_amount) * v.commission_rate) FILTER (WHERE {COUNTED}), 0)",
    "cost": f"COALESCE(SUM(i.quantity * i.unit_cost) FILTER (WHERE {COUNTED}), 0)",
    "units": f"COALESCE(SUM(i.quantity) FILTER (WHERE {COUNTED}), 0)",
    "orders": f"COUNT(DISTINCT o.order_id) FILTER (WHERE {COUNTED})",
    "all_orders": "COUNT(DISTINCT o.order_id)",
    "cancelled_orders": "COUNT(DISTINCT o.order_id) FILTER (WHERE o.status = 'cancelled')",
}

# Raw rows at line grain with every dimension the filters know; orders without lines keep one
# row with NULL line columns so that they still count as orders.
_CUSTOMER_JOIN = "\n    JOIN mart.customers c ON c.customer_id = o.customer_id"
_LINE_JOINS = """
    LEFT JOIN mart.order_items i ON i.order_id = o.order_id
    LEFT JOIN mart.vendors v ON v.vendor_id = i.vendor_id
    LEFT JOIN mart.products p ON p.product_id = i.product_id
"""
RAW_FROM = "\n    mart.orders o" + _CUSTOMER_JOIN + _LINE_JOINS
# Dimension -> expression over RAW_FROM. The local day needs the bound parameter :tz.
RAW_DIMENSIONS: dict[str, str] = {
    "day": LOCAL_DAY,
    "channel": "o.channel",
    "business_model": "o.business_model",
    "segment": "c.segment",
    "region": "c.region",
    "country": "c.country",
    "payment_method": "o.payment_method",
    "payment_status": "o.payment_status",
    "vendor_id": "i.vendor_id",
    "category": "p.category",
    "product_id": "i.product_id",
}
CUSTOMER_DIMENSIONS = ("segment", "region", "country")


# Every column of RAW_FROM that BASE_MEASURES and RAW_DIMENSIONS read, by alias: what a copy of
# some order lines must hold to be read in its place (raw_from(lines=...)).
RAW_COLUMNS: dict[str, tuple[str, ...]] = {
    "o": ("ordered_at", "order_id", "status", "channel", "business_model", "payment_method", "payment_status"),
    "c": ("segment", "region", "country"),
    "i": ("vendor_id", "product_id", "quantity", "unit_price", "discount", "refunded_amount", "unit_cost"),
    "v": ("commission_rate",),
    "p": ("category",),
}


def raw_from(dims: Iterable[str], lines: str | None = None) -> str:
    """RAW_FROM for the named dimensions: without the customers when none of theirs is named.
    Every order has its customer (NOT NULL, a foreign key), so the rows are the same; each order
    skips an index probe (the last 24 hours at 10M lines, by vendor: 103 → 65 ms). Products are
    left joined on their key, which PostgreSQL drops by itself when no column of theirs is read.

    lines: a table holding RAW_COLUMNS of some order lines (copied from RAW_FROM, orders without
    lines included), read instead under the same aliases: the alerts' span windows copy the lines
    of their hours once a tick (analytics.alerts.copy_span_lines)."""
    if lines is not None:
        # Each alias is a projection of the copy's row, which the planner flattens away.
        return f"\n    {lines} o" + "".join(
            f"\n    CROSS JOIN LATERAL (SELECT {', '.join('o.' + c for c in cols)}) {alias}"
            for alias, cols in RAW_COLUMNS.items() if alias != "o")
    if set(dims) & set(CUSTOMER_DIMENSIONS):
        return RAW_FROM
    return "\n    mart.orders o" + _LINE_JOINS


def line_from(dims: Iterable[str], lines: str | None = None) -> str:
    """The order lines with their orders and vendors, and the customers and products when dims
    name theirs, by inner joins (every line has them: foreign keys); or lines, a copy of some order
    lines (raw_from), whose orders without lines the caller leaves out (i.product_id IS NOT NULL)."""
    if lines is not None:
        return raw_from(dims, lines)
    dims = set(dims)
    return ("\n    mart.orders o JOIN mart.order_items i ON i.order_id = o.order_id"
            "\n    JOIN mart.vendors v ON v.vendor_id = i.vendor_id"
            + (_CUSTOMER_JOIN if dims & set(CUSTOMER_DIMENSIONS) else "")
            + ("\n    JOIN mart.products p ON p.product_id = i.product_id" if "category" in dims else ""))


def raw_columns() -> str:
    """'o.ordered_at, …, p.category': RAW_COLUMNS as a select list over RAW_FROM."""
    return ", ".join(f"{alias}.{c}" for alias, cols in RAW_COLUMNS.items() for c in cols)


# The base measures as a column list and as their sums, for rollups summed from other rows (the
# names are this module's constants: spliced into SQL, never user text).
MEASURE_COLUMNS = ", ".join(BASE_MEASURES)
MEASURE_SUMS = ", ".join(f"SUM({m})" for m in BASE_MEASURES)


def local_day_start(day: str) -> str:
    """Returns SQL for the instant local day `day` (an SQL date expression or bound parameter)
    starts in time zone :tz."""
    return f"CAST({day} AS date)::timestamp AT TIME ZONE :tz"


def local_days_sql(column: str, lo: str | None = ":lo", hi: str | None = ":hi") -> str:
    """Returns SQL bounding timestamp column to the local days lo..hi, both included (SQL date
    expressions or bound parameters; None leaves that end open; :tz names the time zone). A range
    of the column itself, so an index on it serves; every local-day condition on ordered_at is this one."""
    bounds = ([f"{column} >= {local_day_start(lo)}"] if lo is not None else []) + \
             ([f"{column} < {local_day_start(f'CAST({hi} AS date) + 1')}"] if hi is not None else [])
    return " AND ".join(bounds)


def measure_list(names: tuple[str, ...] = tuple(BASE_MEASURES)) -> str:
    """Returns 'expr AS name, …' for the named base measures."""
    return ",\n    ".join(f"{BASE_MEASURES[n]} AS {n}" for n in names)
