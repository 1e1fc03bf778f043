"""PostgreSQL binary COPY of numpy columns, encoded in bulk, written by a worker thread.

Why not psycopg's own binary COPY (issue 21 asked for a library if seeding stayed within 1.2×):
`cursor.copy(...)` with `set_types` and `write_row` wrote the same bytes (equal checksums of all
eight tables) but formats one row at a time from Python objects (a Decimal per amount, a datetime
per timestamp); side by side on 1M order lines the generate-and-COPY phase took about 2× as long
(bench/RESULTS.md, seeding section, 2026-12-07). This module encodes 100k rows in a few numpy
operations. Arrow + ADBC would need its own connection, outside the seed's single transaction.
"""
from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from datetime import date
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from psycopg import Cursor

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8   # signature, flags, no header extension
COPY_TRAILER = b"\xff\xff"
PG_EPOCH_UNIX_S = 946_684_800
ROWS_PER_COPY_BLOCK = 100_000
COPY_QUEUE_BLOCKS = 3

Columns = list[tuple[str, str, object]]   # (name, kind, values) of a table's columns


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


def _encode_field(kind: str, values) -> tuple[np.ndarray, np.ndarray | None, tuple | None]:
    """Returns (bytes per row as uint8 matrix, lengths or None if fixed, categories) for a column."""
    if kind == "text":
        if isinstance(values, tuple):
            codes, labels = values
            enc = np.array([s.encode() for s in labels], dtype=object)
            return np.asarray(codes), None, tuple(enc)
        arr = np.asarray(values, dtype=object).astype(str)
        arr = np.strings.encode(arr, "utf-8")
        lens = np.strings.str_len(arr).astype(np.int64)
        return arr.view(np.uint8).reshape(len(arr), arr.dtype.itemsize), lens, None
    values = np.asarray(values)
    n = len(values)
    if kind == "int4":
        return values.astype(">i4").view(np.uint8).reshape(n, 4), None, None
    if kind in ("int8", "timestamptz"):
        return values.astype(">i8").view(np.uint8).reshape(n, 8), None, None
    if kind == "date":
        return values.astype(">i4").view(np.uint8).reshape(n, 4), None, None
    if kind.startswith("numeric"):
        # numeric in base-10000 digits with a fixed layout (4 digits, weight 2): PostgreSQL
        # normalises the leading and trailing zero digits on input.
        scale = int(kind[7:])
        units = values.astype(np.int64)
        whole, frac = np.divmod(np.abs(units), 10 ** scale)
        rec = np.zeros(n, dtype=[("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">u2"), ("dscale", ">u2"), ("d", ">i2", 4)])
        rec["ndigits"], rec["weight"], rec["dscale"] = 4, 2, scale
        rec["sign"] = np.where(units < 0, 0x4000, 0)
        rec["d"][:, 0] = whole // 10 ** 8
        rec["d"][:, 1] = (whole // 10 ** 4) % 10 ** 4
        rec["d"][:, 2] = whole % 10 ** 4
        rec["d"][:, 3] = frac * 10 ** (4 - scale)
        return rec.view(np.uint8).reshape(n, 16), None, None
    raise ValueError(f"unknown column kind {kind!r}")


def _encode_rows(columns: list[tuple[str, str, object]], lo: int, hi: int) -> bytes:
    """Returns rows lo..hi-1 of the columns as PostgreSQL binary COPY tuples."""
    fields = []
    for _, kind, values in columns:
        if kind == "text" and isinstance(values, tuple):
            fields.append(_encode_field(kind, (np.asarray(values[0])[lo:hi], values[1])))
        else:
            fields.append(_encode_field(kind, values[lo:hi]))
    n = hi - lo
    if all(lens is None and cats is None for _, lens, cats in fields):
        # Every field fixed-width: one record layout, no byte scatter.
        layout = [("nfields", ">i2")]
        for j, (mat, _, _) in enumerate(fields):
            layout += [(f"len{j}", ">i4"), (f"val{j}", "u1", (mat.shape[1],))]
        rec = np.empty(n, dtype=layout)
        rec["nfields"] = len(fields)
        for j, (mat, _, _) in enumerate(fields):
            rec[f"len{j}"] = mat.shape[1]
            rec[f"val{j}"] = mat
        return rec.tobytes()
    row_len = np.full(n, 2, np.int64)
    widths = []
    for mat, lens, cats in fields:
        if cats is not None:
            w = np.array([len(c) for c in cats], np.int64)[mat]
        else:
            w = np.full(n, mat.shape[1], np.int64) if lens is None else lens
        widths.append(w)
        row_len += 4 + w
    ends = np.cumsum(row_len)
    pos = (ends - row_len).astype(np.int32 if ends[-1] < 2**31 else np.int64)
    buf = np.empty(int(ends[-1]), np.uint8)

    def put(mat: np.ndarray) -> None:
        buf[(pos[:, None] + np.arange(mat.shape[1], dtype=pos.dtype)).ravel()] = mat.ravel()

    put(np.full(n, len(fields), ">i2").view(np.uint8).reshape(n, 2))
    pos += 2
    for (mat, lens, cats), w in zip(fields, widths):
        put(w.astype(">i4").view(np.uint8).reshape(n, 4))
        pos += 4
        if cats is not None:
            # Labels grouped by length: one gather per distinct length.
            label_len = np.array([len(c) for c in cats])
            for length in np.unique(label_len):
                if length == 0:
                    continue
                which = np.flatnonzero(label_len == length)
                table = np.zeros((len(cats), length), np.uint8)
                table[which] = np.frombuffer(b"".join(cats[i] for i in which), np.uint8).reshape(len(which), length)
                rows = np.flatnonzero(label_len[mat] == length)
                buf[pos[rows][:, None] + np.arange(length, dtype=pos.dtype)] = table[mat[rows]]
        elif lens is None:
            put(mat)
        else:
            mask = np.arange(mat.shape[1])[None, :] < lens[:, None]
            buf[(pos[:, None] + np.arange(mat.shape[1], dtype=pos.dtype))[mask]] = mat[mask]
        pos += w
    return buf.tobytes()


@contextmanager
def copy_into(cur: Cursor, table: str) -> Iterator[Callable[[Columns], None]]:
    """Yields send(columns): each call COPYs (name, kind, values) columns into mart.table."""
    # A worker thread writes to the server while the caller generates the next block; the queue
    # is short so that memory stays bounded and the progress bar tells the truth.
    blocks: queue.Queue = queue.Queue(maxsize=COPY_QUEUE_BLOCKS)
    failed: list[BaseException] = []
    with cur.copy(_copy_sql(table)) as cp:

        def pump() -> None:
            try:
                while (data := blocks.get()) is not None:
                    cp.write(data)
            except BaseException as ex:  # handed to the caller's thread below
                failed.append(ex)
                while blocks.get() is not None:
                    pass

        def send(columns: list[tuple[str, str, object]]) -> None:
            if [c[0] for c in columns] != TABLE_COLUMNS[table]:
                raise ValueError(f"columns for mart.{table} must be {TABLE_COLUMNS[table]}")
            values = columns[0][2]
            n = len(values[0] if isinstance(values, tuple) else values)
            for lo in range(0, n, ROWS_PER_COPY_BLOCK):
                if failed:
                    raise failed[0]
                blocks.put(_encode_rows(columns, lo, min(lo + ROWS_PER_COPY_BLOCK, n)))

        worker = threading.Thread(target=pump, name=f"copy-{table}", daemon=True)
        worker.start()
        try:
            blocks.put(COPY_SIGNATURE)
            yield send
            blocks.put(COPY_TRAILER)
        finally:
            blocks.put(None)
            worker.join()
        if failed:
            raise failed[0]


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
