"""aggregate_query as a pure function: which table answers each family for the filters, grouping and
rollup layout asked for, and the bound parameters (no database)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

import analytics.kpis as K
from analytics.filters import FilterError, Filters, Period
from data import customer_rollups as CR
from data.rollups import LAYOUT

PERIOD = Period(date(2026, 1, 5), date(2026, 3, 20))
TWO_DAYS = Period(date(2026, 3, 1), date(2026, 3, 2))
HOUR = (datetime(2026, 3, 20, 10, tzinfo=timezone.utc), datetime(2026, 3, 20, 11, tzinfo=timezone.utc))


@pytest.mark.parametrize("period,dims,by,grain,metrics,layout,span,sales,customers,traffic", [
    # Without usable rollups (another time zone, a rebuild pending) the tables answer.
    (PERIOD, {}, None, None, ("gmv",), None, None, "raw", None, None),
    (PERIOD, {}, None, None, ("active_customers",), None, None, None, "raw", None),
    (PERIOD, {}, None, None, ("gmv",), LAYOUT, None, "rollup_sales_daily", None, None),
    (TWO_DAYS, {}, None, "hour", ("gmv",), LAYOUT, None, "rollup_sales_hourly", None, None),
    (TWO_DAYS, {"channel": ["web"]}, None, "hour", ("gmv",), LAYOUT, None, "rollup_sales_hourly", None, None),
    # Customers are counted per day: no hourly figure.
    (TWO_DAYS, {}, None, "hour", ("active_customers", "gmv"), LAYOUT, None, "rollup_sales_hourly", None, None),
    (PERIOD, {"vendor_id": [1]}, None, None, ("gmv", "orders"), LAYOUT, None, "rollup_vendor_daily", None, None),
    (PERIOD, {"vendor_id": [1, 2]}, None, None, ("gmv",), LAYOUT, None, "rollup_vendor_daily", None, None),
    (PERIOD, {}, "vendor_id", None, ("gmv",), LAYOUT, None, "rollup_vendor_daily", None, None),
    (PERIOD, {}, "vendor_id", None, ("gmv",), 2, None, "rollup_vendor_daily", None, None),
    # Vendors by a dimension from layout 3 on; before, the order lines.
    (PERIOD, {"channel": ["web"]}, "vendor_id", None, ("gmv",), LAYOUT, None, K.VENDOR_DIMS, None, None),
    (PERIOD, {"channel": ["web"]}, "vendor_id", None, ("gmv",), 2, None, "raw", None, None),
    (PERIOD, {"payment_method": ["card"]}, None, None, ("gmv",), LAYOUT, None, "rollup_payment_daily", None, None),
    (PERIOD, {}, None, None, ("active_customers",), LAYOUT, None, None, CR.CELLS, None),
    (PERIOD, {}, None, None, ("conversion_rate",), LAYOUT, None, "rollup_sales_daily", None, "traffic_daily"),
    # A span of hours reads the order lines whatever the rollups.
    (PERIOD, {}, None, None, ("gmv",), LAYOUT, HOUR, "raw", None, None),
])
def test_sources(period, dims, by, grain, metrics, layout, span, sales, customers, traffic):
    q = K.aggregate_query(Filters.make(period, **dims), layout=layout, tz="Europe/Berlin", by=by, grain=grain,
                          metrics=metrics, span=span)
    assert q.sources == {"sales": sales, "customers": customers, "traffic": traffic}
    assert q.params["tz"] == "Europe/Berlin"
    if span:
        assert (q.params["t0"], q.params["t1"]) == span and q.params["start"] == q.params["end"] == date(2026, 3, 20)
    else:
        assert (q.params["start"], q.params["end"]) == (period.start, period.end)


@pytest.mark.parametrize("kw,message", [
    ({"grain": "fortnight"}, "unknown grain"),
    ({"by": "colour"}, "cannot break down by"),
    ({"by": "channel", "grain": "day"}, "a breakdown by dimension has no time grain"),
    ({"metrics": ("active_customers",), "span": HOUR}, "is counted per day"),
])
def test_refuses(kw, message):
    with pytest.raises(FilterError, match=message):
        K.aggregate_query(Filters.make(PERIOD), layout=LAYOUT, tz="UTC", **kw)


def test_analytics_takes_the_time_zone_from_its_callers():
    """No analytics module reads the settings (the time zone among them) but the analysts' SQL runner,
    analytics.query, which reads its role and limits."""
    root = Path(__file__).resolve().parent.parent / "analytics"
    assert [p.name for p in root.glob("*.py") if "load_settings" in p.read_text() and p.name != "query.py"] == []
