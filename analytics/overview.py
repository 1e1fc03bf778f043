"""Every figure the KPI overview shows, computed in one call."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Connection

from analytics.filters import Filters
from analytics.kpis import fetch_breakdown, fetch_kpis, fetch_trend, fetch_vendor_names
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


def compute_overview(conn: Connection, f: Filters, **kw) -> OverviewFigures:
    """Returns the overview's figures for f (kw: tz, use_rollups as in analytics.kpis.aggregate)."""
    kpis = fetch_kpis(conn, f, OVERVIEW_METRICS, **kw)
    spark_grain = "day" if f.period.days <= 92 else "week"
    sparks = fetch_trend(conn, f, OVERVIEW_METRICS, grain=spark_grain, **kw)
    before = f.compare
    top_v = fetch_breakdown(conn, f, "vendor_id", TOP, limit=10, **kw)
    return OverviewFigures(
        kpis=kpis,
        sparks=sparks,
        trend=fetch_trend(conn, f, TREND, **kw),
        trend_before=fetch_trend(conn, f, TREND, period=before, **kw) if before else None,
        by_business_model=fetch_breakdown(conn, f, "business_model", ("gmv",), **kw),
        by_channel=fetch_breakdown(conn, f, "channel", ("gmv",), **kw),
        top_vendors=top_v,
        vendors_before=fetch_breakdown(conn, f, "vendor_id", TOP, period=before, **kw) if before else None,
        vendor_names=fetch_vendor_names(conn, [int(k) for k in top_v["key"]]),
        top_categories=fetch_breakdown(conn, f, "category", TOP, limit=10, **kw),
        categories_before=fetch_breakdown(conn, f, "category", TOP, period=before, **kw) if before else None,
    )
