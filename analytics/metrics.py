"""The metric glossary: every metric defined once, as SQL over base measures.

Base measures are sums and counts computed by one query family each (analytics/kpis.py):
  sales      gmv, refunded, take, cost, units, orders, all_orders, cancelled_orders,
             web_mobile_orders (data/measures.py defines them over raw rows)
  customers  active_customers, new_customers, repeat_customers
  traffic    sessions
A metric's `sql` is evaluated over one row of those base measures, so the same definition serves
totals, trends, breakdowns, comparisons, exports and alerts.
"""
from __future__ import annotations

from dataclasses import dataclass

SALES_BASES = ("gmv", "refunded", "take", "cost", "units", "orders", "all_orders",
               "cancelled_orders", "web_mobile_orders")
CUSTOMER_BASES = ("active_customers", "new_customers", "repeat_customers")
TRAFFIC_BASES = ("sessions",)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    sql: str                  # over base measure names
    fmt: str                  # money | count | percent
    description: str
    bases: tuple[str, ...]
    additive: bool            # summable over time (forecasting, targets prorated by days)
    higher_is_better: bool = True

    @property
    def is_rate(self) -> bool:
        return self.fmt == "percent"


METRICS: dict[str, Metric] = {m.key: m for m in [
    Metric("gmv", "GMV", "gmv", "money",
           "Gross merchandise value: Σ line value (quantity × unit price − discount) over counted "
           "orders (every status except cancelled).", ("gmv",), True),
    Metric("net_revenue", "Net revenue", "gmv - refunded", "money",
           "GMV − Σ refunded amount.", ("gmv", "refunded"), True),
    Metric("take_revenue", "Take revenue", "take", "money",
           "Σ (line value − refunded amount) × the vendor's commission rate, over counted orders.",
           ("take",), True),
    Metric("orders", "Orders", "orders", "count",
           "Number of counted orders (status not cancelled). With a vendor or category filter: "
           "orders with at least one matching line.", ("orders",), True),
    Metric("aov", "AOV", "gmv / NULLIF(orders, 0)", "money",
           "Average order value: GMV / Orders.", ("gmv", "orders"), False),
    Metric("active_customers", "Active customers", "active_customers", "count",
           "Distinct customers with at least one counted order in the period (matching the filters).",
           ("active_customers",), False),
    Metric("new_customers", "New customers", "new_customers", "count",
           "Active customers whose first counted order ever falls in the period.",
           ("new_customers",), True),
    Metric("repeat_rate", "Repeat rate", "repeat_customers::numeric / NULLIF(active_customers, 0)", "percent",
           "Share of active customers with two or more counted orders ever, up to the period's end.",
           ("repeat_customers", "active_customers"), False),
    Metric("conversion_rate", "Conversion rate", "web_mobile_orders::numeric / NULLIF(sessions, 0)", "percent",
           "Orders from web and mobile / sessions. Traffic has only a channel, so other filters "
           "leave it blank.", ("web_mobile_orders", "sessions"), False),
    Metric("refund_rate", "Refund rate", "refunded / NULLIF(gmv, 0)", "percent",
           "Σ refunded amount / GMV.", ("refunded", "gmv"), False, higher_is_better=False),
    Metric("gross_margin", "Gross margin", "(gmv - refunded - cost) / NULLIF(gmv - refunded, 0)", "percent",
           "(Net revenue − Σ quantity × unit cost) / Net revenue.", ("gmv", "refunded", "cost"), False),
    Metric("cancellation_rate", "Cancellation rate", "cancelled_orders::numeric / NULLIF(all_orders, 0)", "percent",
           "Cancelled orders / all orders.", ("cancelled_orders", "all_orders"), False,
           higher_is_better=False),
]}

# The overview's KPI cards, in order.
OVERVIEW_METRICS = ("gmv", "net_revenue", "orders", "aov", "active_customers", "new_customers",
                    "conversion_rate", "refund_rate", "gross_margin", "take_revenue")


def get_metric(key: str) -> Metric:
    """Returns the metric named key; raises KeyError listing the known keys."""
    try:
        return METRICS[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}; known: {', '.join(METRICS)}") from None


def format_value(key: str, value: float | None, *, compact: bool = True) -> str:
    """Returns value formatted for people: €1.2M, 12,345, 3.1 %; an en dash when unknown."""
    if value is None or value != value:  # None or NaN
        return "–"
    fmt = get_metric(key).fmt if key in METRICS else "count"
    if fmt == "percent":
        return f"{value * 100:.1f} %"
    if fmt == "money":
        return "€" + _compact(value) if compact and abs(value) >= 10_000 else f"€{value:,.2f}"
    return _compact(value) if compact and abs(value) >= 100_000 else f"{value:,.0f}"


def _compact(v: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:,.2f}{suffix}"
    return f"{v:,.0f}"


def format_change(key: str, current: float | None, previous: float | None) -> str | None:
    """Returns the change as people read it: +4.2 % for amounts, +0.3 pp for rates; None if unknown."""
    if current is None or previous is None or current != current or previous != previous:
        return None
    if get_metric(key).is_rate:
        return f"{(current - previous) * 100:+.1f} pp"
    if previous == 0:
        return None
    return f"{(current - previous) / abs(previous) * 100:+.1f} %"


def glossary() -> list[dict[str, str]]:
    """Returns [{metric, definition}] rows for the glossary shown in the UI and docs."""
    return [{"metric": m.label, "definition": m.description} for m in METRICS.values()]
