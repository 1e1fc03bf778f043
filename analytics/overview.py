"""Every figure the KPI overview shows: the period's and its comparison period's, computed apart so
that each can be cached on the versions of its own days (a refresh folding in today's orders
leaves the comparison period's figures as they were)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

from analytics.filters import Filters
from analytics.kpis import fetch_breakdown, fetch_targets, fetch_totals, fetch_trend, fetch_vendor_names
from analytics.metrics import OVERVIEW_METRICS

TREND = ("gmv", "net_revenue")
TOP = ("gmv", "orders", "aov")


@dataclass(frozen=True)
class OverviewFigures:
    kpis: pd.DataFrame            # metric, current, previous, target
    sparks: pd.DataFrame          # key, one column per KPI
    trend: pd.DataFrame           # key, gmv, net_revenue at f.grain
    trend_before: pd.DataFrame | None
    by_business_model: pd.DataFrame
    by_channel: pd.DataFrame
    top_vendors: pd.DataFrame
    vendors_before: pd.DataFrame | None
    vendor_names: dict
    top_categories: pd.DataFrame
    categories_before: pd.DataFrame | None

    @property
    def empty(self) -> bool:
        cur = self.kpis.set_index("metric")["current"]
        return not cur["orders"] and not cur["gmv"]


def compute_period(conn: Connection, f: Filters, **kw: Any) -> dict:
    """Returns the figures of f.period: totals, targets, sparklines, trend, breakdowns, top lists."""
    spark_grain = "day" if f.period.days <= 92 else "week"
    top_v = fetch_breakdown(conn, f, "vendor_id", TOP, limit=10, **kw)
    return {
        "totals": fetch_totals(conn, f, metrics=OVERVIEW_METRICS, **kw),
        "targets": fetch_targets(conn, f.period, OVERVIEW_METRICS) if not f.dims else {},
        "sparks": fetch_trend(conn, f, OVERVIEW_METRICS, grain=spark_grain, **kw),
        "trend": fetch_trend(conn, f, TREND, **kw),
        "by_business_model": fetch_breakdown(conn, f, "business_model", ("gmv",), **kw),
        "by_channel": fetch_breakdown(conn, f, "channel", ("gmv",), **kw),
        "top_vendors": top_v,
        "vendor_names": fetch_vendor_names(conn, [int(k) for k in top_v["key"]]),
        "top_categories": fetch_breakdown(conn, f, "category", TOP, limit=10, **kw),
    }


def compute_comparison(conn: Connection, f: Filters, **kw: Any) -> dict | None:
    """Returns the figures of f's comparison period the overview sets beside the period's, or None
    (the top vendors' are compute_vendors_before's)."""
    before = f.compare
    if before is None:
        return None
    return {
        "totals": fetch_totals(conn, f, before, OVERVIEW_METRICS, **kw),
        "trend": fetch_trend(conn, f, TREND, period=before, **kw),
        "categories": fetch_breakdown(conn, f, "category", TOP, period=before, **kw),
    }


def top_vendor_ids(current: dict) -> tuple[int, ...]:
    """Returns the vendor ids of compute_period's top list."""
    return tuple(int(k) for k in current["top_vendors"]["key"])


def compute_vendors_before(conn: Connection, f: Filters, top_vendors: tuple[int, ...],
                           **kw: Any) -> pd.DataFrame | None:
    """Returns the comparison period's figures of top_vendors (the period's top list), the only
    vendors whose change the overview shows, or None without a comparison period.

    Every vendor's figures over a dimension filter would read rows that grow with the orders
    (about 1,400 vendors a day in one region at 10M lines) and, on days before the vendor cube's
    kept days, the order lines of every vendor."""
    if f.compare is None:
        return None
    if not top_vendors:
        return pd.DataFrame(columns=["key", *TOP])
    return fetch_breakdown(conn, f.narrowed(vendor_id=top_vendors), "vendor_id", TOP, period=f.compare, **kw)


def overview_figures(current: dict, before: dict | None, vendors_before: pd.DataFrame | None) -> OverviewFigures:
    """Returns the overview's figures from compute_period's, compute_comparison's and
    compute_vendors_before's."""
    kpis = pd.DataFrame([{"metric": m, "current": current["totals"][m],
                          "previous": before["totals"][m] if before else None,
                          "target": current["targets"].get(m)} for m in OVERVIEW_METRICS])
    return OverviewFigures(
        kpis=kpis, sparks=current["sparks"], trend=current["trend"],
        trend_before=before["trend"] if before else None,
        by_business_model=current["by_business_model"], by_channel=current["by_channel"],
        top_vendors=current["top_vendors"], vendors_before=vendors_before,
        vendor_names=current["vendor_names"], top_categories=current["top_categories"],
        categories_before=before["categories"] if before else None)


def compute_overview(conn: Connection, f: Filters, **kw: Any) -> OverviewFigures:
    """Returns the overview's figures for f (kw: tz, use_rollups as in analytics.kpis.fetch_aggregate)."""
    current = compute_period(conn, f, **kw)
    return overview_figures(current, compute_comparison(conn, f, **kw),
                            compute_vendors_before(conn, f, top_vendor_ids(current), **kw))
