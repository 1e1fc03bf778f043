"""The products page's figures: rankings, price vs volume, margins and inventory cover.

Sales figures per product and per category come from analytics.kpis.fetch_aggregate (rollups when they
answer exactly, else the raw tables; grouped in PostgreSQL either way). Inventory cover takes the
latest stock snapshot of each product and its units sold over the 28 days ending on that
snapshot's date, which the rollup refresh keeps per snapshot (rollup_stock_cover; summed from
order lines when rollups are off). Rankings, picks, counts and cover buckets are computed in
PostgreSQL too: the page receives the few hundred rows it shows, not every product
(fetch_product_metrics and fetch_inventory_cover return every row, for downloads of the whole list and tests).

Filters: category and vendor select products (and their order lines); order-level filters such as
channel or country select the orders whose lines count. Stock serves every channel, so inventory
cover applies only the product filters (category, vendor, product).
"""
from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.filters import Filters, Period
from analytics.kpis import READ_LAYOUT, aggregate_query, fetch_aggregate, fetch_rollup_layout, fetch_rollups_usable
from analytics.metrics import METRICS, format_change
from data.calendar import local_today
from data.db import frame, serial_plans
from data.measures import BASE_MEASURES, RAW_DIMENSIONS, local_days_sql
from data.rollups import STOCK_TABLE, STOCK_WINDOW_DAYS

# Metrics that make sense per product; "units" is a base measure, not a glossary metric.
RANK_METRICS = ("gmv", "net_revenue", "orders", "units", "aov", "refund_rate", "gross_margin",
                "take_revenue", "cancellation_rate")
_GLOSSARY = tuple(m for m in RANK_METRICS if m in METRICS)
UNITS_HELP = "Units sold: Σ quantity over order lines of counted orders (status not cancelled)."
TOP_N = 10
SCATTER_LIMIT = 300          # products in the price-vs-volume chart, by GMV
COVER_WINDOW_DAYS = STOCK_WINDOW_DAYS  # days of sales behind the average daily units of days of cover
STOCKOUT_DAYS = 7
OVERSTOCK_DAYS = 180
DEFAULT_MIN_GMV = 1000.0     # margins are listed for products with at least this GMV
_PRODUCT_DIMS = {"category": "p.category", "vendor_id": "p.vendor_id", "product_id": "p.product_id"}
_DIM_TYPES = {"vendor_id": "integer[]", "product_id": "integer[]", "category": "text[]"}
_KEEP = ("gmv", "refunded", "take", "cost", "units", "orders", "all_orders", "cancelled_orders")


def metric_label(key: str) -> str:
    return "Units" if key == "units" else METRICS[key].label


def metric_fmt(key: str) -> str:
    return "count" if key == "units" else METRICS[key].fmt


def metric_help(key: str) -> str:
    return UNITS_HELP if key == "units" else METRICS[key].description


def change_text(key: str, current: float | None, previous: float | None) -> str | None:
    """Returns the change against the comparison period as people read it (units as a count)."""
    if key != "units":
        return format_change(key, current, previous)
    if current is None or previous is None or current != current or previous != previous or not previous:
        return None
    return f"{(current - previous) / abs(previous) * 100:+.1f} %"


# --- sales per product and per category ------------------------------------------------------

def _product_info(conn: Connection, ids: list[int]) -> pd.DataFrame:
    result = conn.execute(sa.text("""
        SELECT p.product_id, p.sku, p.name, p.category, p.subcategory, p.vendor_id, v.name AS vendor,
               p.list_price::float8, p.unit_cost::float8
        FROM mart.products p JOIN mart.vendors v ON v.vendor_id = p.vendor_id
        WHERE p.product_id = ANY(CAST(:ids AS integer[]))"""), {"ids": [int(i) for i in ids]})
    info = frame(result)
    return info.astype({"list_price": "float64", "unit_cost": "float64"})


def _clean(df: pd.DataFrame, key: str) -> pd.DataFrame:
    cols = ["key", *_KEEP, *[m for m in _GLOSSARY if m not in _KEEP]]
    return df[cols].rename(columns={"key": key})


def fetch_product_metrics(conn: Connection, f: Filters, period: Period | None = None, *, tz: str,
                          use_rollups: bool = True, **kw: Any) -> pd.DataFrame:
    """Returns one row per product with an order (counted or cancelled) in the period matching f:
    product_id, sku, name, category, subcategory, vendor_id, vendor, list_price, unit_cost, the base
    measures, the glossary metrics of RANK_METRICS, asp (GMV / units) and margin (net revenue − cost).
    Sorted by GMV, largest first. kw: as fetch_aggregate's (layout)."""
    df = _clean(fetch_aggregate(conn, f, period, by="product_id", metrics=_GLOSSARY, tz=tz, use_rollups=use_rollups,
                                **kw), "product_id")
    df["product_id"] = df["product_id"].astype("int64")
    info = _product_info(conn, df["product_id"].tolist())
    df = info.merge(df, on="product_id", how="right")
    df["asp"] = df["gmv"] / df["units"].where(df["units"] > 0)
    df["margin"] = df["gmv"] - df["refunded"] - df["cost"]
    df = df.sort_values(["gmv", "product_id"], ascending=[False, True], kind="mergesort")
    return df.reset_index(drop=True)


def fetch_category_metrics(conn: Connection, f: Filters, period: Period | None = None, *, tz: str,
                           use_rollups: bool = True, **kw: Any) -> pd.DataFrame:
    """Returns one row per category with an order in the period: category, base measures, metrics."""
    df = _clean(fetch_aggregate(conn, f, period, by="category", metrics=_GLOSSARY, tz=tz, use_rollups=use_rollups,
                                **kw), "category")
    df["margin"] = df["gmv"] - df["refunded"] - df["cost"]
    df = df.sort_values(["gmv", "category"], ascending=[False, True], kind="mergesort")
    return df.reset_index(drop=True)


def with_change(cur: pd.DataFrame, before: pd.DataFrame | None, key: str, metric: str) -> pd.DataFrame:
    """Returns cur with `previous` (metric in the comparison period) and `change` (text) columns."""
    out = cur.copy()
    if before is None:
        out["previous"] = np.nan
        out["change"] = None
        return out
    prev = before.set_index(key)[metric]
    out["previous"] = out[key].map(prev).astype("float64")
    out["change"] = [change_text(metric, c, p) or ("new" if p != p else "")
                     for c, p in zip(out[metric], out["previous"])]
    return out


# --- lists picked in PostgreSQL -------------------------------------------------------------------
# The page shows a few hundred of the tens of thousands of products sold in a period. Ranking in
# PostgreSQL and sending only those rows keeps the page's cost at the aggregation (measured on
# 10M lines, 30 days: 21k product rows cost 0.4 s to send and build into a frame, plus 0.2 s of
# product names).

PRODUCT_COLUMNS = ["product_id", "sku", "name", "category", "subcategory", "vendor_id", "vendor", "list_price",
                   "unit_cost", *_KEEP, *[m for m in _GLOSSARY if m not in _KEEP], "asp", "margin"]
_PRODUCT_ROW = (
    "a.key AS product_id, p.sku, p.name, p.category, p.subcategory, p.vendor_id, v.name AS vendor, "
    "p.list_price::float8 AS list_price, p.unit_cost::float8 AS unit_cost, "
    + ", ".join(f"a.{c}" for c in [*_KEEP, *[m for m in _GLOSSARY if m not in _KEEP]])
    + ", a.gmv / NULLIF(a.units, 0) AS asp, a.gmv - a.refunded - a.cost AS margin")
# Products whose gross margin is listed: enough GMV to mean something, and a positive net revenue.
_MARGIN_POOL = "a.gmv >= :min_gmv AND a.gmv - a.refunded > 0 AND a.gross_margin IS NOT NULL"


def _json_list(cte: str, where: str, order: str, limit: str, row: str, joins: str = "") -> str:
    """SQL for a JSON array of the first `limit` rows of cte matching where, in order."""
    return f"""(SELECT COALESCE(json_agg(x ORDER BY x.pos), '[]'::json) FROM (
        SELECT row_number() OVER (ORDER BY {order}) AS pos, {row}
        FROM (SELECT * FROM {cte} a WHERE {where} ORDER BY {order} LIMIT {limit}) a {joins}) x)"""


def _json_frame(rows: list[dict], columns: list[str], numeric: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["pos", *columns]).drop(columns="pos")
    for c in numeric:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df


def fetch_product_lists(conn: Connection, f: Filters, period: Period | None = None, *, metric: str = "gmv",
                        n: int = TOP_N, min_gmv: float = 0.0, margin_n: int = TOP_N, scatter: int = SCATTER_LIMIT,
                        tz: str, use_rollups: bool = True, layout: int | None | str = READ_LAYOUT) -> dict:
    """Aggregates every product ordered in the period once, in PostgreSQL, and returns only what
    the page lists (each a frame of PRODUCT_COLUMNS, in list order):

    top / bottom  the n products with the highest / lowest metric; blanks never rank, and the
                  bottom list considers only products with a sale (a counted order) in the period.
                  Ties: larger GMV first, then product id.
    price_volume  the `scatter` products with the largest GMV among those with units sold.
    margin_high / margin_low
                  the margin_n highest and lowest gross margins among products with GMV ≥ min_gmv
                  and a positive net revenue; the low list leaves out products in the high one.
    summary       {products (ordered in the period), sold (with a counted order), priced (with
                  units and GMV), eligible (in the margin pool), gmv, refunded, cost (totals)}.

    layout: as for kpis.fetch_aggregate (read on conn by default).
    """
    if metric not in RANK_METRICS:
        raise KeyError(f"cannot rank by {metric!r}; choose one of {', '.join(RANK_METRICS)}")
    if not use_rollups:
        layout = None
    elif layout == READ_LAYOUT:
        layout = fetch_rollup_layout(conn, tz)
    q = aggregate_query(f, period, layout=layout, tz=tz,
                        by="product_id", metrics=_GLOSSARY)
    info = "JOIN mart.products p ON p.product_id = a.key JOIN mart.vendors v ON v.vendor_id = p.vendor_id"
    lists = {
        "top": (f"a.{metric} IS NOT NULL", f"a.{metric} DESC, a.gmv DESC, a.key", ":n"),
        "bottom": (f"a.{metric} IS NOT NULL AND a.orders > 0", f"a.{metric} ASC, a.gmv DESC, a.key", ":n"),
        "price_volume": ("a.units > 0 AND a.gmv > 0", "a.gmv DESC, a.key", ":scatter"),
        "margin_high": (_MARGIN_POOL, "a.gross_margin DESC, a.gmv DESC, a.key", ":margin_n"),
        "margin_low": (f"{_MARGIN_POOL} AND a.key NOT IN (SELECT key FROM mh)", "a.gross_margin ASC, a.gmv DESC, a.key",
                       ":margin_n"),
    }
    high = lists["margin_high"]
    sql = f"""
        WITH a AS MATERIALIZED ({q.sql}),
        mh AS (SELECT a.key FROM a WHERE {high[0]} ORDER BY {high[1]} LIMIT {high[2]})
        SELECT json_build_object(
            'summary', (SELECT json_build_object(
                'products', count(*), 'sold', count(*) FILTER (WHERE a.orders > 0),
                'priced', count(*) FILTER (WHERE a.units > 0 AND a.gmv > 0),
                'eligible', count(*) FILTER (WHERE {_MARGIN_POOL}),
                'gmv', COALESCE(sum(a.gmv), 0), 'refunded', COALESCE(sum(a.refunded), 0),
                'cost', COALESCE(sum(a.cost), 0)) FROM a),
            {", ".join(f"'{name}', " + _json_list("a", *spec, _PRODUCT_ROW, info) for name, spec in lists.items())})"""
    params = {**q.params, "n": n, "scatter": scatter, "margin_n": margin_n, "min_gmv": min_gmv}
    if q.sources["sales"] == "raw":
        got = conn.execute(sa.text(sql), params).scalar_one()
    else:
        with serial_plans(conn):
            got = conn.execute(sa.text(sql), params).scalar_one()
    numeric = PRODUCT_COLUMNS[7:]
    out = {name: _json_frame(got[name], PRODUCT_COLUMNS, numeric) for name in lists}
    for df in out.values():
        df["product_id"] = df["product_id"].astype("int64")
        df["vendor_id"] = df["vendor_id"].astype("int64")
    out["summary"] = {k: (float(v) if k in ("gmv", "refunded", "cost") else int(v)) for k, v in got["summary"].items()}
    out["sources"] = q.sources
    return out


# --- inventory ----------------------------------------------------------------------------------

def _product_filter_sql(f: Filters) -> tuple[str, dict]:
    sql, params = "", {}
    for d, values in f.dims:
        if d in _PRODUCT_DIMS:
            sql += f" AND {_PRODUCT_DIMS[d]} = ANY(CAST(:p_{d} AS {_DIM_TYPES[d]}))"
            params[f"p_{d}"] = list(values)
    return sql, params


# Each product's latest snapshot on or before :as_of, found by probing its index.
_SNAPSHOTS = """
    snap AS (
        SELECT p.product_id, s.snapshot_date, s.on_hand
        FROM mart.products p
        CROSS JOIN LATERAL (
            SELECT snapshot_date, on_hand FROM mart.inventory_snapshots s
            WHERE s.product_id = p.product_id AND s.snapshot_date <= :as_of
            ORDER BY s.snapshot_date DESC LIMIT 1) s
        WHERE true {filters})"""
_UNITS_ROLLUP = """
    sold AS (
        SELECT r.product_id, SUM(r.units) AS units
        FROM mart.rollup_product_daily r JOIN snap ON snap.product_id = r.product_id
        WHERE r.day BETWEEN snap.snapshot_date - :back AND snap.snapshot_date
          AND r.day BETWEEN (SELECT min(snapshot_date) FROM snap) - :back AND :as_of
        GROUP BY r.product_id)"""
# With the rollups and the standard window, the refresh has summed each snapshot's window already
# (data.rollups.STOCK_TABLE): one probe per product gives its latest snapshot and its units.
_STOCK_COVER = f"""
    snap AS (
        SELECT p.product_id, s.snapshot_date, s.on_hand, s.units_window
        FROM mart.products p
        CROSS JOIN LATERAL (
            SELECT snapshot_date, on_hand, units_window FROM mart.{STOCK_TABLE} s
            WHERE s.product_id = p.product_id AND s.snapshot_date <= :as_of
            ORDER BY s.snapshot_date DESC LIMIT 1) s
        WHERE true {{filters}}),
    sold AS (SELECT product_id, units_window AS units FROM snap)"""
_UNITS_RAW = f"""
    sold AS (
        SELECT i.product_id, {BASE_MEASURES["units"]} AS units
        FROM mart.orders o
        JOIN mart.order_items i ON i.order_id = o.order_id
        JOIN snap ON snap.product_id = i.product_id
        WHERE {local_days_sql('o.ordered_at', '(SELECT min(snapshot_date) FROM snap) - :back', ':as_of')}
          AND {RAW_DIMENSIONS['day']} BETWEEN snap.snapshot_date - :back AND snap.snapshot_date
        GROUP BY i.product_id)"""
# days_cover: on hand / average daily units; infinite with stock and no sales, NULL with neither.
_INVENTORY = """
    inv AS MATERIALIZED (
        SELECT snap.product_id, p.sku, p.name, p.category, p.vendor_id, v.name AS vendor,
               p.unit_cost::float8 AS unit_cost, snap.snapshot_date, snap.on_hand::float8 AS on_hand,
               COALESCE(sold.units, 0)::float8 AS units_window,
               COALESCE(sold.units, 0)::float8 / :window AS avg_daily_units,
               CASE WHEN sold.units > 0 THEN snap.on_hand::float8 / (sold.units::float8 / :window)
                    WHEN snap.on_hand > 0 THEN 'Infinity'::float8 END AS days_cover,
               snap.on_hand::float8 * p.unit_cost::float8 AS stock_value
        FROM snap
        JOIN mart.products p ON p.product_id = snap.product_id
        JOIN mart.vendors v ON v.vendor_id = p.vendor_id
        LEFT JOIN sold ON sold.product_id = snap.product_id)"""
INVENTORY_COLUMNS = ["product_id", "sku", "name", "category", "vendor_id", "vendor", "unit_cost", "snapshot_date",
                     "on_hand", "units_window", "avg_daily_units", "days_cover", "stock_value"]
_INV_NUMERIC = ["unit_cost", "on_hand", "units_window", "avg_daily_units", "days_cover", "stock_value"]
# Selling products below :low days of cover (out of stock ones included); products in stock
# above :high days, or with no sales in the window.
_RISK = "a.avg_daily_units > 0 AND (a.on_hand <= 0 OR a.days_cover < :low)"
_OVER = "a.on_hand > 0 AND (a.avg_daily_units <= 0 OR a.days_cover > :high)"
COVER_BUCKETS = ("Out of stock", "< 1 week", "1–4 weeks", "1–3 months", "3–6 months", "> 6 months",
                 "No recent sales", "No stock, no sales")
_BUCKET = """CASE WHEN a.days_cover IS NULL THEN 7 WHEN a.days_cover = 'Infinity' THEN 6
                  WHEN a.on_hand <= 0 THEN 0 WHEN a.days_cover < 7 THEN 1 WHEN a.days_cover < 30 THEN 2
                  WHEN a.days_cover < 90 THEN 3 WHEN a.days_cover <= 180 THEN 4 ELSE 5 END"""
STOCK_LIST_LIMIT = 1000


def _inventory_query(conn: Connection, f: Filters, as_of: date, window: int, tz: str | None,
                     use_rollups: bool, layout: int | None | str) -> tuple[str, dict]:
    """Returns the WITH clause defining `inv` (one row per product with a snapshot) and its params.

    layout: READ_LAYOUT reads whether the rollups answer on conn; a layout given by the caller means
    conn may read neither schema app nor the stock cover (a vendor's role: data.vendor_scope), so
    units come from the product day rollup, whose rows the role limits to its own lines."""
    filters, params = _product_filter_sql(f)
    params.update({"as_of": as_of, "back": window - 1, "tz": tz, "window": window})
    own_lines = layout != READ_LAYOUT
    rollups = use_rollups and (layout is not None if own_lines else fetch_rollups_usable(conn, tz))
    if rollups and window == STOCK_WINDOW_DAYS and not own_lines:
        return "WITH" + _STOCK_COVER.format(filters=filters) + "," + _INVENTORY, params
    units = _UNITS_ROLLUP if rollups else _UNITS_RAW
    return "WITH" + _SNAPSHOTS.format(filters=filters) + "," + units + "," + _INVENTORY, params


def fetch_inventory_cover(conn: Connection, f: Filters, as_of: date, *, window: int = COVER_WINDOW_DAYS,
                          tz: str, use_rollups: bool = True, layout: int | None | str = READ_LAYOUT) -> pd.DataFrame:
    """Returns one row per product (matching f's product filters) with a stock snapshot on or
    before as_of: its latest such snapshot (snapshot_date, on_hand), units sold over the `window`
    days ending on that date (units_window), avg_daily_units = units_window / window, days_cover
    = on_hand / avg_daily_units (inf with stock and no recent sales, NaN with neither),
    stock_value (on_hand × unit cost) and product, vendor and category names.

    .attrs["first_snapshot"] is the earliest snapshot date of all (None without snapshots), for
    the empty state's message."""
    with_inv, params = _inventory_query(conn, f, as_of, window, tz, use_rollups, layout)
    df = frame(conn.execute(sa.text(with_inv + " SELECT * FROM inv ORDER BY product_id"), params))
    df = df.astype({c: "float64" for c in _INV_NUMERIC})
    df.attrs.update(first_snapshot=_first_snapshot(conn), as_of=as_of, window=window)
    return df


def _first_snapshot(conn: Connection) -> date | None:
    return conn.execute(sa.text("SELECT min(snapshot_date) FROM mart.inventory_snapshots")).scalar()


def fetch_inventory_summary(conn: Connection, f: Filters, as_of: date, *, low: float = STOCKOUT_DAYS,
                            high: float = OVERSTOCK_DAYS, window: int = COVER_WINDOW_DAYS,
                            limit: int = STOCK_LIST_LIMIT, tz: str, use_rollups: bool = True,
                            layout: int | None | str = READ_LAYOUT) -> dict:
    """Returns what the inventory tab shows, computed in PostgreSQL over fetch_inventory_cover's rows:

    summary       {products, in_stock, stock_value, first_date, last_date (snapshot dates used),
                   risk, risk_out (of them out of stock), over, over_value, first_snapshot (of all)}
    distribution  (bucket, products, stock_value) for each of COVER_BUCKETS, zeros included
    stockout      up to `limit` stock-out risks: fewest days of cover first, then fastest sellers
    overstock     up to `limit` overstocked products: most stock value first
    """
    with_inv, params = _inventory_query(conn, f, as_of, window, tz, use_rollups, layout)
    row = ", ".join(f"a.{c}" for c in INVENTORY_COLUMNS)
    sql = with_inv + f"""
        SELECT json_build_object(
            'summary', (SELECT json_build_object(
                'products', count(*), 'in_stock', count(*) FILTER (WHERE a.on_hand > 0),
                'stock_value', COALESCE(sum(a.stock_value), 0),
                'first_date', min(a.snapshot_date), 'last_date', max(a.snapshot_date),
                'risk', count(*) FILTER (WHERE {_RISK}), 'risk_out', count(*) FILTER (WHERE {_RISK} AND a.on_hand <= 0),
                'over', count(*) FILTER (WHERE {_OVER}),
                'over_value', COALESCE(sum(a.stock_value) FILTER (WHERE {_OVER}), 0)) FROM inv a),
            'distribution', (SELECT json_agg(json_build_array(bucket, products, stock_value)) FROM (
                SELECT {_BUCKET} AS bucket, count(*) AS products, sum(a.stock_value) AS stock_value
                FROM inv a GROUP BY 1) d),
            'stockout', {_json_list("inv", _RISK, "a.days_cover, a.avg_daily_units DESC, a.product_id", ":limit", row)},
            'overstock', {_json_list("inv", _OVER, "a.stock_value DESC, a.days_cover DESC, a.product_id", ":limit", row)})"""
    got = conn.execute(sa.text(sql), {**params, "low": low, "high": high, "limit": limit}).scalar_one()
    summary = dict(got["summary"])
    for k in ("first_date", "last_date"):
        summary[k] = date.fromisoformat(summary[k]) if summary[k] else None
    summary.update(first_snapshot=_first_snapshot(conn), as_of=as_of, window=window, low=low, high=high)
    counts = {b: (int(n), float(v or 0)) for b, n, v in (got["distribution"] or [])}
    distribution = pd.DataFrame({"bucket": COVER_BUCKETS,
                                 "products": [counts.get(i, (0, 0.0))[0] for i in range(len(COVER_BUCKETS))],
                                 "stock_value": [counts.get(i, (0, 0.0))[1] for i in range(len(COVER_BUCKETS))]})
    out = {"summary": summary, "distribution": distribution}
    for name in ("stockout", "overstock"):
        df = _json_frame(got[name], INVENTORY_COLUMNS, _INV_NUMERIC)
        df["snapshot_date"] = pd.to_datetime(df["snapshot_date"]).dt.date
        out[name] = df
    return out


def default_as_of(f: Filters, tz: str) -> date:
    """Returns the date inventory is read as of: the period's end, or today if that is later."""
    return min(f.period.end, local_today(tz))


# --- the page's default calls ---------------------------------------------------------------------

def compute_product_figures(conn: Connection, f: Filters, *, metric: str = "gmv", n: int = TOP_N,
                            min_gmv: float = DEFAULT_MIN_GMV, margin_n: int = TOP_N, compare: bool = False,
                            tz: str, use_rollups: bool = True, layout: int | None | str = READ_LAYOUT) -> dict:
    """Returns fetch_product_lists(f) with the category table ("categories"), and with compare=True the
    comparison period's figures for the ranked products ("products_before") and every category
    ("categories_before"); those two are None otherwise."""
    kw = {"tz": tz, "use_rollups": use_rollups, "layout": layout}
    out = fetch_product_lists(conn, f, metric=metric, n=n, min_gmv=min_gmv, margin_n=margin_n, **kw)
    out.update(categories=fetch_category_metrics(conn, f, **kw), products_before=None, categories_before=None)
    if compare and f.compare:
        ids = sorted(set(out["top"]["product_id"]) | set(out["bottom"]["product_id"]))
        # Only the listed products: their rows come from the rollup's product index.
        out["products_before"] = (fetch_product_metrics(conn, f.narrowed(product_id=ids), f.compare, **kw) if ids
                                  else pd.DataFrame(columns=PRODUCT_COLUMNS))
        out["categories_before"] = fetch_category_metrics(conn, f, f.compare, **kw)
    return out


def compute_products_page(conn: Connection, f: Filters, *, use_rollups: bool = True, tz: str,
                          as_of: date | None = None, compare: bool = False) -> dict:
    """Runs the products page's default analytics: compute_product_figures with the default
    controls (top and bottom 10 by GMV, categories, price vs volume, margins above €1,000 GMV) and
    fetch_inventory_summary as of the period's end, or today ("inventory").

    use_rollups=False reads raw tables only (orders, order lines, products, vendors, inventory
    snapshots): the benchmark's baseline."""
    kw = {"tz": tz, "use_rollups": use_rollups}
    out = compute_product_figures(conn, f, compare=compare, **kw)
    out["inventory"] = fetch_inventory_summary(conn, f, as_of or default_as_of(f, tz), **kw)
    return out
