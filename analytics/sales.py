"""Figures behind the sales page: metric trend with growth and targets, breakdowns with growth,
payments, the conversion funnel, marketing efficiency and profitability by category.

Every figure comes from analytics.kpis.fetch_aggregate (rollups when they cover the filters, raw rows
otherwise) or from one SQL query here over small tables (traffic, marketing spend, customers).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.filters import Filters, Period, bucket_start, shift_year
from analytics.kpis import fetch_aggregate, fetch_rollup_layout, fetch_targets
from analytics.metrics import get_metric
from data.customer_rollups import ACQUISITION
from data.measures import COUNTED, LINE_VALUE, LOCAL_DAY, local_days_sql

# Buckets in the moving average, per grain: a week of days, a month of weeks, a quarter of months.
MOVING_WINDOW = {"hour": 24, "day": 7, "week": 4, "month": 3, "quarter": 4, "year": 2}
MAX_TARGET_BUCKETS = 60
FUNNEL_STEPS = (("sessions", "Sessions"), ("product_views", "Product views"), ("add_to_carts", "Add to cart"),
                ("checkouts", "Checkout"), ("orders", "Orders"))


class NotApplicable(ValueError):
    """A section cannot honour the chosen filters; the message says which and why."""


def _series(conn: Connection, f: Filters, metric: str, period: Period, **kw: Any) -> pd.DataFrame:
    return fetch_aggregate(conn, f, period, grain=f.grain, metrics=(metric,), **kw)[["key", metric]]


def _growth(now: pd.Series, before: pd.Series) -> pd.Series:
    now, before = now.astype("float64"), before.astype("float64")
    return (now / before.where(before != 0) - 1).where(before.notna())


def fetch_metric_trend(conn: Connection, f: Filters, metric: str, **kw: Any) -> pd.DataFrame:
    """Returns per bucket: key, value, compare (the comparison period's bucket at the same
    position), moving_avg, before (the bucket before), pop_growth (vs before), yoy (same bucket a year earlier),
    yoy_growth, target and vs_target (value / target − 1; month, quarter and year grains)."""
    whole = None
    if f.grain != "hour":
        # The period plus one whole bucket before it: gives every bucket's predecessor, the first
        # one's whole too. When the period starts on a bucket boundary its own buckets are the
        # same rows, so the period is not queried twice.
        first = bucket_start(f.period.start, f.grain)
        ext = _series(conn, f, metric, Period(bucket_start(first - timedelta(days=1), f.grain), f.period.end), **kw)
        whole = dict(zip(ext["key"], ext[metric]))
    if whole is not None and first == f.period.start:
        cur = ext[ext["key"] >= f.period.start].reset_index(drop=True).rename(columns={metric: "value"})
    else:
        cur = _series(conn, f, metric, f.period, **kw).rename(columns={metric: "value"})
    n = len(cur)
    out = cur.copy()
    out["compare"] = float("nan")
    if f.compare is not None:
        before = _series(conn, f, metric, f.compare, **kw)[metric].to_numpy()[:n]
        out.loc[out.index[:len(before)], "compare"] = before
    window = MOVING_WINDOW[f.grain]
    out["moving_avg"] = out["value"].rolling(window, min_periods=window).mean()
    out["before"] = out["value"].shift(1).astype("float64")
    out["yoy"] = float("nan")
    if whole is not None and n:
        out["before"] = [whole.get(bucket_start(k - timedelta(days=1), f.grain), float("nan")) for k in out["key"]]
        # A year earlier, matched by date: weeks 52 weeks back (same weekdays), others a calendar year.
        if f.grain == "week":
            shift = lambda d: d - timedelta(days=364)  # noqa: E731
        else:
            shift = lambda d: shift_year(d, -1)  # noqa: E731
        ya = _series(conn, f, metric, Period(shift(f.period.start), shift(f.period.end)), **kw)
        ago = dict(zip(ya["key"], ya[metric]))
        out["yoy"] = [ago.get(shift(k) if f.grain == "week" else bucket_start(shift(k), f.grain), float("nan"))
                      for k in out["key"]]
    out["pop_growth"] = _growth(out["value"], out["before"])
    # A first bucket cut by the period's start holds part of its days: no growth rate for it.
    if n and f.grain != "hour" and out["key"].iloc[0] < f.period.start:
        out.loc[out.index[0], ["pop_growth"]] = float("nan")
    out["yoy_growth"] = _growth(out["value"], out["yoy"])
    out["target"] = float("nan")
    if f.grain in ("month", "quarter", "year") and n <= MAX_TARGET_BUCKETS and not f.dims:
        for i, key in enumerate(out["key"]):
            lo = max(key, f.period.start)
            hi = min(out["key"].iloc[i + 1] - timedelta(days=1) if i + 1 < n else f.period.end, f.period.end)
            t = fetch_targets(conn, Period(lo, hi), (metric,)).get(metric)
            out.loc[out.index[i], "target"] = t if t is not None else float("nan")
    out["vs_target"] = _growth(out["value"], out["target"])
    return out


def fetch_breakdown_growth(conn: Connection, f: Filters, by: str, metric: str, *, limit: int | None = None,
                           **kw: Any) -> pd.DataFrame:
    """Returns (key, value, share, previous, growth) per value of by, largest first.

    share is of the total over all values (additive metrics only; NaN for rates and averages).
    """
    cur = fetch_aggregate(conn, f, by=by, metrics=(metric,), order_by=metric, **kw)[["key", metric]]
    cur = cur.rename(columns={metric: "value"})
    out = cur.head(limit) if limit else cur.copy()
    total = cur["value"].sum()
    out["share"] = out["value"] / total if get_metric(metric).additive and total else float("nan")
    out["previous"] = float("nan")
    if f.compare is not None:
        prev = fetch_aggregate(conn, f, f.compare, by=by, metrics=(metric,), **kw).set_index("key")[metric]
        out["previous"] = out["key"].map(prev).astype("float64")
    out["growth"] = _growth(out["value"], out["previous"])
    return out.reset_index(drop=True)


def fetch_payments(conn: Connection, f: Filters, **kw: Any) -> pd.DataFrame:
    """Returns per payment method: gmv, orders, all_orders, failed_orders, failure_rate,
    refunded, refund_rate, gmv_share and orders_share, largest GMV first.

    failure_rate = orders whose payment failed / all orders (cancelled included) with that method.
    """
    metrics = ("gmv", "orders", "refund_rate")
    mix = fetch_aggregate(conn, f, by="payment_method", metrics=metrics, order_by="gmv", **kw)
    failed = fetch_aggregate(conn, f.narrowed(payment_status=["failed"]), by="payment_method", metrics=("orders",),
                             **kw)
    out = mix[["key", "gmv", "orders", "all_orders", "refunded", "refund_rate"]].rename(columns={"key": "payment_method"})
    out["failed_orders"] = out["payment_method"].map(failed.set_index("key")["all_orders"]).fillna(0.0)
    out["failure_rate"] = out["failed_orders"] / out["all_orders"].where(out["all_orders"] > 0)
    out["gmv_share"] = out["gmv"] / out["gmv"].sum() if out["gmv"].sum() else float("nan")
    out["orders_share"] = out["orders"] / out["orders"].sum() if out["orders"].sum() else float("nan")
    return out


def fetch_funnel(conn: Connection, f: Filters, **kw: Any) -> pd.DataFrame:
    """Returns per traffic channel: sessions, product_views, add_to_carts, checkouts, orders and the
    conversion of each step from the one before (step_<name>) and overall (orders / sessions).

    Raises NotApplicable under filters other than channel: traffic is kept per day and channel.
    """
    other = sorted(set(f.dim_map) - {"channel"})
    if other:
        raise NotApplicable("The funnel needs site traffic, which is recorded per day and channel only; "
                            f"clear the {', '.join(other).replace('_', ' ')} filter to see it.")
    traffic = pd.DataFrame(conn.execute(sa.text("""
        SELECT channel, SUM(sessions) AS sessions, SUM(product_views) AS product_views,
               SUM(add_to_carts) AS add_to_carts, SUM(checkouts) AS checkouts
        FROM mart.traffic_daily
        WHERE day BETWEEN :start AND :end
          AND (CAST(:channels AS text[]) IS NULL OR channel = ANY(CAST(:channels AS text[])))
        GROUP BY channel ORDER BY SUM(sessions) DESC"""),
        {"start": f.period.start, "end": f.period.end, "channels": list(f.dim_map.get("channel", ())) or None}
    ).mappings().all(), columns=["channel", "sessions", "product_views", "add_to_carts", "checkouts"])
    if traffic.empty:
        return traffic
    orders = fetch_aggregate(conn, f, by="channel", metrics=("orders",), **kw).set_index("key")["orders"]
    traffic["orders"] = traffic["channel"].map(orders).fillna(0.0)
    for col, _ in FUNNEL_STEPS:
        traffic[col] = traffic[col].astype("float64")
    for (prev, _), (col, _) in zip(FUNNEL_STEPS, FUNNEL_STEPS[1:]):
        traffic[f"step_{col}"] = traffic[col] / traffic[prev].where(traffic[prev] > 0)
    traffic["overall"] = traffic["orders"] / traffic["sessions"].where(traffic["sessions"] > 0)
    return traffic


@dataclass(frozen=True)
class Marketing:
    by_channel: pd.DataFrame    # acquisition_channel, spend, new_customers, gmv, cac, roas
    by_campaign: pd.DataFrame   # channel, campaign, spend, share_of_channel, days


def fetch_marketing(conn: Connection, f: Filters, *, use_rollups: bool = True, tz: str) -> Marketing:
    """Returns spend, new customers, CAC (spend / new customers) and ROAS (GMV in the period from
    customers acquired through the channel / spend) per acquisition channel, and spend per campaign.

    Raises NotApplicable under any dimension filter: spend has no segment, region, vendor or
    order channel, so a filtered CAC would divide all spend by some customers.
    """
    if f.dims:
        raise NotApplicable("Marketing spend is recorded per day, channel and campaign only, so CAC and ROAS "
                            "cannot follow the dimension filters; clear them to see marketing efficiency.")
    params = {"start": f.period.start, "end": f.period.end, "tz": tz}
    layout = fetch_rollup_layout(conn, tz) if use_rollups else None
    if layout is not None and layout >= 1:
        # Per day and acquisition channel: a year reads a few thousand rows whatever the orders.
        new_sql = f"""
            SELECT acquisition_channel AS channel, SUM(new_customers) AS new_customers
            FROM mart.{ACQUISITION} WHERE day BETWEEN :start AND :end GROUP BY 1 HAVING SUM(new_customers) > 0"""
        gmv_sql = f"""
            SELECT acquisition_channel AS channel, SUM(gmv) AS gmv
            FROM mart.{ACQUISITION} WHERE day BETWEEN :start AND :end GROUP BY 1 HAVING SUM(gmv) <> 0"""
    elif layout is not None:
        new_sql = """
            SELECT c.acquisition_channel AS channel, count(*) AS new_customers
            FROM mart.rollup_customers rc JOIN mart.customers c ON c.customer_id = rc.customer_id
            WHERE rc.first_day BETWEEN :start AND :end GROUP BY 1"""
        gmv_sql = """
            SELECT c.acquisition_channel AS channel, SUM(d.gmv) AS gmv
            FROM mart.rollup_customer_daily d JOIN mart.customers c ON c.customer_id = d.customer_id
            WHERE d.day BETWEEN :start AND :end GROUP BY 1"""
    else:
        new_sql = f"""
            SELECT c.acquisition_channel AS channel, count(*) AS new_customers
            FROM (SELECT o.customer_id, min({LOCAL_DAY}) AS first_day FROM mart.orders o
                  WHERE {COUNTED} GROUP BY 1) fo
            JOIN mart.customers c ON c.customer_id = fo.customer_id
            WHERE fo.first_day BETWEEN :start AND :end GROUP BY 1"""
        gmv_sql = f"""
            SELECT c.acquisition_channel AS channel,
                   SUM({LINE_VALUE}) AS gmv
            FROM mart.orders o JOIN mart.order_items i ON i.order_id = o.order_id
            JOIN mart.customers c ON c.customer_id = o.customer_id
            WHERE {COUNTED} AND {local_days_sql('o.ordered_at', ':start', ':end')}
            GROUP BY 1"""
    spend = pd.DataFrame(conn.execute(sa.text("""
        SELECT channel, campaign, SUM(spend) AS spend, count(DISTINCT day) AS days
        FROM mart.marketing_spend WHERE day BETWEEN :start AND :end GROUP BY 1, 2 ORDER BY 1, 3 DESC"""),
        params).mappings().all(), columns=["channel", "campaign", "spend", "days"])
    new = pd.DataFrame(conn.execute(sa.text(new_sql), params).mappings().all(), columns=["channel", "new_customers"])
    gmv = pd.DataFrame(conn.execute(sa.text(gmv_sql), params).mappings().all(), columns=["channel", "gmv"])
    spend["spend"] = spend["spend"].astype("float64")
    by_channel = (spend.groupby("channel", as_index=False)["spend"].sum()
                  .merge(new, on="channel", how="outer").merge(gmv, on="channel", how="outer"))
    by_channel = by_channel.rename(columns={"channel": "acquisition_channel"})
    for col in ("spend", "new_customers", "gmv"):
        by_channel[col] = by_channel[col].astype("float64").fillna(0.0)
    paid = by_channel["spend"].where(by_channel["spend"] > 0)
    by_channel["cac"] = paid / by_channel["new_customers"].where(by_channel["new_customers"] > 0)
    by_channel["roas"] = by_channel["gmv"] / paid
    by_channel = by_channel.sort_values(["spend", "new_customers"], ascending=False).reset_index(drop=True)
    channel_spend = spend.groupby("channel")["spend"].transform("sum")
    spend["share_of_channel"] = spend["spend"] / channel_spend.where(channel_spend > 0)
    return Marketing(by_channel, spend[["channel", "campaign", "spend", "share_of_channel", "days"]])


PROFIT_METRICS = ("gmv", "net_revenue", "gross_margin", "take_revenue")


def fetch_profitability(conn: Connection, f: Filters, **kw: Any) -> pd.DataFrame:
    """Returns per category: gmv, net_revenue, cost, margin (net revenue − cost), gross_margin,
    take_revenue and take_rate (take revenue / net revenue), largest net revenue first."""
    df = fetch_aggregate(conn, f, by="category", metrics=PROFIT_METRICS, order_by="net_revenue", **kw)
    out = df[["key", "gmv", "net_revenue", "cost", "gross_margin", "take_revenue"]].rename(columns={"key": "category"})
    out["margin"] = out["net_revenue"] - out["cost"]
    out["take_rate"] = out["take_revenue"] / out["net_revenue"].where(out["net_revenue"] != 0)
    return out


def compute_sales_page(conn: Connection, f: Filters, *, tz: str, metric: str = "gmv", by: str = "category",
                       use_rollups: bool = True) -> dict:
    """Runs the sales page's default figures; use_rollups=False reads raw tables only (benchmark)."""
    kw = {"use_rollups": use_rollups, "tz": tz}
    out = {"trend": fetch_metric_trend(conn, f, metric, **kw),
           "breakdown": fetch_breakdown_growth(conn, f, by, metric, **kw),
           "payments": fetch_payments(conn, f, **kw),
           "profitability": fetch_profitability(conn, f, **kw)}
    try:
        out["funnel"] = fetch_funnel(conn, f, **kw)
        out["marketing"] = fetch_marketing(conn, f, **kw)
    except NotApplicable:
        pass
    return out
