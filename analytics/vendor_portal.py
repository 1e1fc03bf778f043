"""What a vendor user sees of their own business (issue 22): the figures of the vendor portal's
overview, computed on a connection of the vendor's database role (data.vendor_scope), which
PostgreSQL's row-level security limits to the vendor's rows.

Every figure is the analysts' own (analytics.kpis.fetch_aggregate and the products' readers)
narrowed to the vendor's ids: the same definitions, the same rollups. The vendor's role cannot read
schema app, so the rollups' layout is read by the caller on the app's connection and passed in.
Only tables keyed by vendor are read (the vendor day rollup and its weekly and monthly copies, the
vendor-by-category rollup, the product day rollup, products and vendors); figures about the
marketplace reach a vendor only through the peer benchmarks, anonymous aggregates of at least
MIN_PEERS vendors computed by the scheduler (data.peer_benchmarks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

from analytics.filters import Filters
from analytics.kpis import fetch_totals, fetch_trend, fetch_vendor_names
from analytics.products import fetch_category_metrics, fetch_product_metrics

# The overview's KPIs for a vendor: its sales as the glossary defines them over its own lines.
# Customers, traffic and conversion are the marketplace's: not among them.
VENDOR_METRICS = ("gmv", "net_revenue", "orders", "aov", "take_revenue", "refund_rate", "cancellation_rate",
                  "gross_margin")
TREND = ("gmv", "net_revenue")
# What a vendor's sales break down by: its products' categories and the order-level facts of the
# orders holding its lines. The customers' region, country and segment are the marketplace's
# customer records, which a vendor's role cannot read.
VENDOR_BREAKDOWNS = ("channel", "category", "business_model", "payment_method")
# The sales page's sections a vendor sees: traffic, the funnel and marketing spend are the marketplace's.
VENDOR_SALES_SECTIONS = ("payments", "profitability")
TOP_PRODUCTS = 10


class NotAVendorFilter(ValueError):
    """Filters for a vendor's figures must name exactly the vendor's ids."""


@dataclass(frozen=True)
class VendorOverview:
    vendor_names: dict            # vendor_id -> name, the user's own vendors
    kpis: pd.DataFrame            # metric, current, previous
    sparks: pd.DataFrame          # key, one column per KPI (days up to 92 days, else weeks)
    trend: pd.DataFrame           # key, gmv, net_revenue at f.grain
    trend_before: pd.DataFrame | None
    categories: pd.DataFrame      # category, gmv, orders, units, … (fetch_category_metrics)
    top_products: pd.DataFrame    # product_id, sku, name, category, gmv, units, orders, … (fetch_product_metrics)

    @property
    def empty(self) -> bool:
        cur = self.kpis.set_index("metric")["current"]
        return not cur["orders"] and not cur["gmv"]


def vendor_filters(f: Filters, vendor_ids: tuple[int, ...]) -> Filters:
    """Returns f narrowed to exactly the vendor's ids (any other vendor filter replaced)."""
    if not vendor_ids:
        raise NotAVendorFilter("a vendor user's figures need the vendors they are bound to")
    return f.narrowed(vendor_id=list(vendor_ids))


def compute_vendor_overview(conn: Connection, f: Filters, vendor_ids: tuple[int, ...], *, tz: str,
                            layout: int | None, **kw: Any) -> VendorOverview:
    """Returns the vendor portal's overview for the vendor's ids over f's period and comparison
    period. conn: the vendor's role (the figures are the same on any role that reads every row);
    layout: fetch_rollup_layout read on the app's connection."""
    f = vendor_filters(f, vendor_ids)
    kw = {"tz": tz, "layout": layout, **kw}
    before = f.compare
    current = fetch_totals(conn, f, metrics=VENDOR_METRICS, **kw)
    previous = fetch_totals(conn, f, before, VENDOR_METRICS, **kw) if before else {}
    kpis = pd.DataFrame([{"metric": m, "current": current[m], "previous": previous.get(m)} for m in VENDOR_METRICS])
    products = fetch_product_metrics(conn, f, **kw)
    return VendorOverview(
        vendor_names=fetch_vendor_names(conn, list(vendor_ids)),
        kpis=kpis,
        sparks=fetch_trend(conn, f, VENDOR_METRICS, grain="day" if f.period.days <= 92 else "week", **kw),
        trend=fetch_trend(conn, f, TREND, **kw),
        trend_before=fetch_trend(conn, f, TREND, period=before, **kw) if before else None,
        categories=fetch_category_metrics(conn, f, **kw),
        top_products=products.head(TOP_PRODUCTS).reset_index(drop=True))

