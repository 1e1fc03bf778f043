"""PostgreSQL binary COPY of numpy columns through psycopg's own COPY (set_types + write_row).

Until issue 21 the seed encoded the binary COPY format itself with numpy. psycopg writes the same
bytes (equal checksums of all eight tables at 20,000 lines) and the format is its to keep; it
formats a row at a time from Python objects, so the generate-and-COPY phase takes about twice as
long (1M lines: 12.2 s against 26.8 s, medians), which is a few percent of a whole seed: the
rollups take the rest (bench/RESULTS.md, seeding).
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from psycopg import Cursor
from psycopg.copy import QueuedLibpqWriter

PG_EPOCH_UNIX_S = 946_684_800
ROWS_PER_COPY_BLOCK = 100_000
PG_TYPES = {"int4": "int4", "int8": "int8", "date": "date", "timestamptz": "timestamptz", "text": "text",
            "numeric2": "numeric", "numeric4": "numeric"}

Columns = list[tuple[str, str, object]]


def utc_micros(start: date, local_seconds: np.ndarray, tz: str) -> np.ndarray:
    """Returns microseconds since 2000-01-01 UTC for local wall-clock seconds since start."""
    base = (start - date(1970, 1, 1)).days * 86400
    wall = np.asarray(local_seconds, np.int64) + base
    if tz != "UTC":
        idx = pd.DatetimeIndex(wall.astype("datetime64[s]"))
        # Wall times that do not exist (spring forward) move on; repeated ones take standard time.
        idx = idx.tz_localize(tz, ambiguous=np.zeros(len(idx), bool), nonexistent="shift_forward")
        wall = idx.as_unit("s").asi8
    return (wall - PG_EPOCH_UNIX_S) * 1_000_000


def _python_values(kind: str, values: object, lo: int, hi: int) -> list:
    """Returns rows lo..hi-1 of a column as the Python objects psycopg dumps for its type."""
    if kind == "text":
        if isinstance(values, tuple):
            codes, labels = values
            return np.asarray(labels, dtype=object)[np.asarray(codes)[lo:hi]].tolist()
        return [str(v) for v in np.asarray(values, dtype=object)[lo:hi]]
    part = np.asarray(values)[lo:hi]
    if kind in ("int4", "int8"):
        return part.tolist()
    if kind == "date":
        return (np.datetime64("2000-01-01", "D") + part.astype("timedelta64[D]")).astype(object).tolist()
    if kind == "timestamptz":
        micros = part.astype(np.int64) + PG_EPOCH_UNIX_S * 1_000_000
        return pd.to_datetime(micros, unit="us", utc=True).to_pydatetime().tolist()
    if kind.startswith("numeric"):
        exp = -int(kind[7:])
        return [Decimal(v).scaleb(exp) for v in part.astype(np.int64).tolist()]
    raise ValueError(f"unknown column kind {kind!r}")


@contextmanager
def copy_into(cur: Cursor, table: str) -> Iterator[Callable[[Columns], None]]:
    """Yields send(columns): each call COPYs (name, kind, values) columns into mart.table."""
    # psycopg's queued writer sends to the server from a worker thread while rows are formatted.
    with cur.copy(_copy_sql(table), writer=QueuedLibpqWriter(cur)) as cp:
        typed: list[str] = []

        def send(columns: Columns) -> None:
            if [c[0] for c in columns] != TABLE_COLUMNS[table]:
                raise ValueError(f"columns for mart.{table} must be {TABLE_COLUMNS[table]}")
            if not typed:
                typed.extend(PG_TYPES[kind] for _, kind, _ in columns)
                cp.set_types(typed)
            values = columns[0][2]
            n = len(values[0] if isinstance(values, tuple) else values)
            for lo in range(0, n, ROWS_PER_COPY_BLOCK):
                hi = min(lo + ROWS_PER_COPY_BLOCK, n)
                for row in zip(*(_python_values(kind, v, lo, hi) for _, kind, v in columns)):
                    cp.write_row(row)

        yield send


def copy_columns(cur: Cursor, table: str, columns: Columns) -> None:
    """COPYs the columns (name, kind, values) into mart.table in binary."""
    with copy_into(cur, table) as send:
        send(columns)


def _copy_sql(table: str) -> str:
    # Table and column names are constants of this module, never input.
    return f"COPY mart.{table} ({', '.join(TABLE_COLUMNS[table])}) FROM STDIN (FORMAT BINARY, FREEZE)"


TABLE_COLUMNS = {
    "vendors": ["vendor_id", "name", "category", "region", "country", "joined_on", "status", "commission_rate"],
    "products": ["product_id", "vendor_id", "sku", "name", "category", "subcategory", "list_price", "unit_cost",
                 "created_on"],
    "customers": ["customer_id", "name", "country", "region", "segment", "acquisition_channel", "signup_at"],
    "orders": ["order_id", "customer_id", "ordered_at", "status", "channel", "business_model", "payment_method",
               "payment_status", "currency", "shipping_fee"],
    "order_items": ["order_id", "line_no", "product_id", "vendor_id", "quantity", "unit_price", "discount",
                    "unit_cost", "refunded_amount"],
    "traffic_daily": ["day", "channel", "sessions", "product_views", "add_to_carts", "checkouts"],
    "marketing_spend": ["day", "channel", "campaign", "spend"],
    "inventory_snapshots": ["snapshot_date", "product_id", "on_hand"],
}
