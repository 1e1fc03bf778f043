"""The products page's figures: rankings, price vs volume, margins and inventory cover.

Sales figures per product and per category come from analytics.kpis.aggregate (rollups when they
answer exactly, else the raw tables; grouped in PostgreSQL either way). Inventory cover joins the
latest stock snapshot of each product with its units sold over the 28 days ending on that
snapshot's date, summed in PostgreSQL from rollup_product_daily (or order lines when rollups are
off). What happens here in pandas is sorting, picking and per-row arithmetic on those results.

Filters: category and vendor select products (and their order lines); order-level filters such as
channel or country select the orders whose lines count. Stock serves every channel, so inventory
cover applies only the product filters (category, vendor, product).
"""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.filters import Filters, Period
from analytics.kpis import aggregate, rollups_usable
from analytics.metrics import METRICS, format_change
from data.measures import BASE_MEASURES
from data.settings import load_settings

# Metrics that make sense per product; "units" is a base measure, not a glossary metric.
RANK_METRICS = ("gmv", "net_revenue", "orders", "units", "aov", "refund_rate", "gross_margin",
                "take_revenue", "cancellation_rate")
_GLOSSARY = tuple(m for m in RANK_METRICS if m in METRICS)
UNITS_HELP = "Units sold: Σ quantity over order lines of counted orders (status not cancelled)."
TOP_N = 10
SCATTER_LIMIT = 300          # products in the price-vs-volume chart, by GMV
COVER_WINDOW_DAYS = 28       # sales window for the average daily units behind days of cover
STOCKOUT_DAYS = 7
OVERSTOCK_DAYS = 180
_PRODUCT_COLUMNS = {"category": "p.category", "vendor_id": "p.vendor_id", "product_id": "p.product_id"}
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
    rows = conn.execute(sa.text("""
        SELECT p.product_id, p.sku, p.name, p.category, p.subcategory, p.vendor_id, v.name AS vendor,
               p.list_price::float8, p.unit_cost::float8
        FROM mart.products p JOIN mart.vendors v ON v.vendor_id = p.vendor_id
        WHERE p.product_id = ANY(CAST(:ids AS integer[]))"""), {"ids": [int(i) for i in ids]}).all()
    info = pd.DataFrame(rows, columns=["product_id", "sku", "name", "category", "subcategory", "vendor_id",
                                       "vendor", "list_price", "unit_cost"])
    return info.astype({"list_price": "float64", "unit_cost": "float64"})


def _clean(df: pd.DataFrame, key: str) -> pd.DataFrame:
    cols = ["key", *_KEEP, *[m for m in _GLOSSARY if m not in _KEEP]]
    return df[cols].rename(columns={"key": key})


def product_metrics(conn: Connection, f: Filters, period: Period | None = None, *, tz: str | None = None,
                    use_rollups: bool = True) -> pd.DataFrame:
    """Returns one row per product with an order (counted or cancelled) in the period matching f:
    product_id, sku, name, category, subcategory, vendor_id, vendor, list_price, unit_cost, the base
    measures, the glossary metrics of RANK_METRICS, asp (GMV / units) and margin (net revenue − cost).
    Sorted by GMV, largest first."""
    df = _clean(aggregate(conn, f, period, by="product_id", metrics=_GLOSSARY, tz=tz, use_rollups=use_rollups),
                "product_id")
    df["product_id"] = df["product_id"].astype("int64")
    info = _product_info(conn, df["product_id"].tolist())
    df = info.merge(df, on="product_id", how="right")
    df["asp"] = df["gmv"] / df["units"].where(df["units"] > 0)
    df["margin"] = df["gmv"] - df["refunded"] - df["cost"]
    df = df.sort_values(["gmv", "product_id"], ascending=[False, True], kind="mergesort")
    return df.reset_index(drop=True)


def category_metrics(conn: Connection, f: Filters, period: Period | None = None, *, tz: str | None = None,
                     use_rollups: bool = True) -> pd.DataFrame:
    """Returns one row per category with an order in the period: category, base measures, metrics."""
    df = _clean(aggregate(conn, f, period, by="category", metrics=_GLOSSARY, tz=tz, use_rollups=use_rollups),
                "category")
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


def rank(frame: pd.DataFrame, metric: str, n: int = TOP_N, *, bottom: bool = False) -> pd.DataFrame:
    """Returns the n rows with the highest (or, bottom=True, lowest) metric; blanks never rank.

    Bottom lists consider only rows with at least one sale (a counted order) in the period: a
    product that sold nothing is not "the lowest seller", it is absent from the period.
    """
    if metric not in RANK_METRICS:
        raise KeyError(f"cannot rank by {metric!r}; choose one of {', '.join(RANK_METRICS)}")
    key = "product_id" if "product_id" in frame else "category"
    pool = frame[frame[metric].notna()]
    if bottom:
        pool = pool[pool["orders"] > 0]
    # Ties: larger GMV first, then the key, so the lists are stable.
    pool = pool.sort_values([metric, "gmv", key], ascending=[bottom, False, True], kind="mergesort")
    return pool.head(n).reset_index(drop=True)


def sold_count(frame: pd.DataFrame) -> int:
    """Returns how many rows had at least one sale (counted order) in the period."""
    return int((frame["orders"] > 0).sum()) if len(frame) else 0


def price_volume(frame: pd.DataFrame, limit: int = SCATTER_LIMIT) -> pd.DataFrame:
    """Returns the `limit` products with the largest GMV among those with units sold: product_id,
    name, category, vendor, units, gmv, asp (average selling price = GMV / units)."""
    pool = frame[(frame["units"] > 0) & (frame["gmv"] > 0)]
    pool = pool.sort_values(["gmv", "product_id"], ascending=[False, True], kind="mergesort").head(limit)
    return pool[["product_id", "name", "category", "vendor", "units", "gmv", "asp"]].reset_index(drop=True)


def margin_extremes(frame: pd.DataFrame, min_gmv: float, n: int = TOP_N) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (highest, lowest) gross margin products among those with GMV ≥ min_gmv and a net
    revenue above zero; the lowest list leaves out products already in the highest one."""
    pool = frame[(frame["gmv"] >= min_gmv) & (frame["gmv"] - frame["refunded"] > 0) & frame["gross_margin"].notna()]
    high = pool.sort_values(["gross_margin", "gmv", "product_id"], ascending=[False, False, True],
                            kind="mergesort").head(n)
    low = pool[~pool["product_id"].isin(high["product_id"])]
    low = low.sort_values(["gross_margin", "gmv", "product_id"], ascending=[True, False, True],
                          kind="mergesort").head(n)
    return high.reset_index(drop=True), low.reset_index(drop=True)


# --- inventory ----------------------------------------------------------------------------------

def _product_filter_sql(f: Filters) -> tuple[str, dict]:
    sql, params = "", {}
    for d, values in f.dims:
        if d in _PRODUCT_COLUMNS:
            sql += f" AND {_PRODUCT_COLUMNS[d]} = ANY(CAST(:p_{d} AS {_DIM_TYPES[d]}))"
            params[f"p_{d}"] = list(values)
    return sql, params


_SNAPSHOTS = """
    snap AS (
        SELECT DISTINCT ON (s.product_id) s.product_id, s.snapshot_date, s.on_hand
        FROM mart.inventory_snapshots s JOIN mart.products p ON p.product_id = s.product_id
        WHERE s.snapshot_date <= :as_of {filters}
        ORDER BY s.product_id, s.snapshot_date DESC)"""
_UNITS_ROLLUP = """
    sold AS (
        SELECT r.product_id, SUM(r.units) AS units
        FROM mart.rollup_product_daily r JOIN snap ON snap.product_id = r.product_id
        WHERE r.day BETWEEN snap.snapshot_date - :back AND snap.snapshot_date
          AND r.day BETWEEN (SELECT min(snapshot_date) FROM snap) - :back AND :as_of
        GROUP BY r.product_id)"""
_UNITS_RAW = f"""
    sold AS (
        SELECT i.product_id, {BASE_MEASURES["units"]} AS units
        FROM mart.orders o
        JOIN mart.order_items i ON i.order_id = o.order_id
        JOIN snap ON snap.product_id = i.product_id
        WHERE o.ordered_at >= CAST((SELECT min(snapshot_date) FROM snap) - :back AS date)::timestamp AT TIME ZONE :tz
          AND o.ordered_at < (CAST(:as_of AS date) + 1)::timestamp AT TIME ZONE :tz
          AND (o.ordered_at AT TIME ZONE :tz)::date BETWEEN snap.snapshot_date - :back AND snap.snapshot_date
        GROUP BY i.product_id)"""


def inventory_cover(conn: Connection, f: Filters, as_of: date, *, window: int = COVER_WINDOW_DAYS,
                    tz: str | None = None, use_rollups: bool = True) -> pd.DataFrame:
    """Returns one row per product (matching f's product filters) with a stock snapshot on or
    before as_of: its latest such snapshot (snapshot_date, on_hand), units sold over the `window`
    days ending on that date (units_window), avg_daily_units = units_window / window, days_cover
    = on_hand / avg_daily_units (inf with stock and no recent sales, NaN with neither),
    stock_value (on_hand × unit cost) and product, vendor and category names.

    .attrs["first_snapshot"] is the earliest snapshot date of all (None without snapshots), for
    the empty state's message."""
    tz = tz or load_settings().timezone
    filters, params = _product_filter_sql(f)
    units = _UNITS_ROLLUP if use_rollups and rollups_usable(conn, tz) else _UNITS_RAW
    sql = "WITH" + _SNAPSHOTS.format(filters=filters) + "," + units + """
        SELECT snap.product_id, p.sku, p.name, p.category, p.vendor_id, v.name AS vendor, p.unit_cost::float8,
               snap.snapshot_date, snap.on_hand::float8, COALESCE(sold.units, 0)::float8 AS units_window
        FROM snap
        JOIN mart.products p ON p.product_id = snap.product_id
        JOIN mart.vendors v ON v.vendor_id = p.vendor_id
        LEFT JOIN sold ON sold.product_id = snap.product_id
        ORDER BY snap.product_id"""
    params.update({"as_of": as_of, "back": window - 1, "tz": tz})
    rows = conn.execute(sa.text(sql), params).all()
    cols = ["product_id", "sku", "name", "category", "vendor_id", "vendor", "unit_cost", "snapshot_date",
            "on_hand", "units_window"]
    df = pd.DataFrame(rows, columns=cols).astype({"unit_cost": "float64", "on_hand": "float64",
                                                 "units_window": "float64"})
    df["avg_daily_units"] = df["units_window"] / window
    with np.errstate(divide="ignore", invalid="ignore"):
        df["days_cover"] = np.where(df["avg_daily_units"] > 0, df["on_hand"] / df["avg_daily_units"].where(
            df["avg_daily_units"] > 0, 1.0), np.where(df["on_hand"] > 0, np.inf, np.nan))
    df["stock_value"] = df["on_hand"] * df["unit_cost"]
    first = conn.execute(sa.text("SELECT min(snapshot_date) FROM mart.inventory_snapshots")).scalar()
    df.attrs["first_snapshot"] = first
    df.attrs["as_of"] = as_of
    df.attrs["window"] = window
    return df


def stockout_risk(inv: pd.DataFrame, threshold: float = STOCKOUT_DAYS) -> pd.DataFrame:
    """Returns products selling recently whose cover is below threshold days or whose stock is
    zero; fewest days first, then the fastest sellers."""
    selling = inv["avg_daily_units"] > 0
    out = inv[selling & ((inv["on_hand"] <= 0) | (inv["days_cover"] < threshold))]
    return out.sort_values(["days_cover", "avg_daily_units", "product_id"], ascending=[True, False, True],
                           kind="mergesort").reset_index(drop=True)


def overstock(inv: pd.DataFrame, threshold: float = OVERSTOCK_DAYS) -> pd.DataFrame:
    """Returns products in stock whose cover is above threshold days or that sold nothing in the
    window; most stock value first."""
    stocked = inv["on_hand"] > 0
    out = inv[stocked & ((inv["avg_daily_units"] <= 0) | (inv["days_cover"] > threshold))]
    return out.sort_values(["stock_value", "days_cover", "product_id"], ascending=[False, False, True],
                           kind="mergesort").reset_index(drop=True)


def cover_distribution(inv: pd.DataFrame) -> pd.DataFrame:
    """Returns (bucket, products, stock_value) rows: products by days of cover, then those with
    stock and no sales in the window, then those with neither."""
    cover, selling = inv["days_cover"], inv["avg_daily_units"] > 0
    buckets = [
        ("Out of stock", selling & (inv["on_hand"] <= 0)),
        ("< 1 week", (cover > 0) & (cover < 7)),
        ("1–4 weeks", (cover >= 7) & (cover < 30)),
        ("1–3 months", (cover >= 30) & (cover < 90)),
        ("3–6 months", (cover >= 90) & (cover <= 180)),
        ("> 6 months", (cover > 180) & np.isfinite(cover)),
        ("No recent sales", np.isinf(cover)),
        ("No stock, no sales", cover.isna()),
    ]
    return pd.DataFrame([{"bucket": label, "products": int(m.sum()),
                          "stock_value": float(inv.loc[m, "stock_value"].sum())} for label, m in buckets])


def default_as_of(f: Filters, tz: str | None = None) -> date:
    """Returns the date inventory is read as of: the period's end, or today if that is later."""
    today = datetime.now(ZoneInfo(tz or load_settings().timezone)).date()
    return min(f.period.end, today)


# --- the page's default calls ---------------------------------------------------------------------

def compute_products_page(conn: Connection, f: Filters, *, use_rollups: bool = True, tz: str | None = None,
                          as_of: date | None = None, compare: bool = False) -> dict:
    """Runs the products page's default analytics: top and bottom products by GMV, the category
    table, price-vs-volume data and inventory cover (as of the period's end, or today).

    use_rollups=False reads raw tables only (orders, order lines, products, vendors, inventory
    snapshots): the benchmark's baseline. compare=True adds the comparison period's products and
    categories (the page's change column)."""
    kw = {"tz": tz, "use_rollups": use_rollups}
    products = product_metrics(conn, f, **kw)
    inv = inventory_cover(conn, f, as_of or default_as_of(f, tz), **kw)
    out = {
        "products": products,
        "top": rank(products, "gmv", TOP_N),
        "bottom": rank(products, "gmv", TOP_N, bottom=True),
        "categories": category_metrics(conn, f, **kw),
        "price_volume": price_volume(products),
        "inventory": inv,
        "stockout": stockout_risk(inv),
        "overstock": overstock(inv),
        "products_before": None,
        "categories_before": None,
    }
    if compare and f.compare:
        out["products_before"] = product_metrics(conn, f, f.compare, **kw)
        out["categories_before"] = category_metrics(conn, f, f.compare, **kw)
    return out
