"""Independent computation of every glossary metric from raw rows with pandas (tests only).

Written from DESIGN.md's glossary, not from analytics/: it shares no code with the app.
"""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa

ORDER_DIMS = {"channel", "business_model", "segment", "region", "country", "payment_method", "payment_status"}
LINE_DIMS = {"vendor_id", "category", "product_id"}


def load_raw(engine) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        q = lambda s: pd.read_sql_query(sa.text(s), conn)  # noqa: E731
        return {
            "orders": q("SELECT * FROM mart.orders"),
            "items": q("SELECT * FROM mart.order_items"),
            "customers": q("SELECT * FROM mart.customers"),
            "vendors": q("SELECT * FROM mart.vendors"),
            "products": q("SELECT * FROM mart.products"),
            "traffic": q("SELECT * FROM mart.traffic_daily"),
        }


def _num(s: pd.Series) -> pd.Series:
    return s.astype(float)


def prepare(raw: dict[str, pd.DataFrame], tz: str) -> dict[str, pd.DataFrame]:
    o = raw["orders"].merge(raw["customers"][["customer_id", "segment", "region", "country"]], on="customer_id")
    o["ts"] = pd.to_datetime(o["ordered_at"], utc=True).dt.tz_convert(tz)
    o["day"] = o["ts"].dt.date
    o["counted"] = o["status"] != "cancelled"
    li = raw["items"].merge(o, on="order_id")
    li = li.merge(raw["vendors"][["vendor_id", "commission_rate"]], on="vendor_id")
    li = li.merge(raw["products"][["product_id", "category"]], on="product_id")
    li["value"] = _num(li["quantity"]) * _num(li["unit_price"]) - _num(li["discount"])
    li["refund"] = _num(li["refunded_amount"])
    li["take"] = (li["value"] - li["refund"]) * _num(li["commission_rate"])
    li["cost"] = _num(li["quantity"]) * _num(li["unit_cost"])
    # First and second counted order of each customer, over everything.
    c = o[o["counted"]].sort_values(["ts", "order_id"])
    c["rn"] = c.groupby("customer_id").cumcount()
    first = c[c["rn"] == 0].set_index("customer_id")["day"]
    second = c[c["rn"] == 1].set_index("customer_id")["day"]
    return {"orders": o, "lines": li, "first": first, "second": second, "traffic": raw["traffic"]}


def expected(p: dict[str, pd.DataFrame], start: date, end: date, dims: dict | None = None) -> dict[str, float | None]:
    """Returns {metric: value} per the glossary for [start, end] and the dimension filters."""
    dims = dims or {}
    o, li = p["orders"], p["lines"]
    o = o[(o["day"] >= start) & (o["day"] <= end)]
    li = li[(li["day"] >= start) & (li["day"] <= end)]
    for d, values in dims.items():
        li = li[li[d].isin(values)]
        if d in ORDER_DIMS:
            o = o[o[d].isin(values)]
    if set(dims) & LINE_DIMS:
        o = o[o["order_id"].isin(li["order_id"])]
    lc = li[li["counted"]]
    oc = o[o["counted"]]
    gmv = lc["value"].sum()
    refunded = lc["refund"].sum()
    cost = lc["cost"].sum()
    orders = oc["order_id"].nunique()
    all_orders = o["order_id"].nunique()
    cancelled = o.loc[~o["counted"], "order_id"].nunique()
    active = oc["customer_id"].unique()
    first = p["first"].reindex(active)
    second = p["second"].reindex(active)
    new = int(((first >= start) & (first <= end)).sum())
    repeat = int((second.notna() & (second <= end)).sum())
    conversion = None
    if set(dims) <= {"channel"}:
        t = p["traffic"]
        t = t[(t["day"] >= start) & (t["day"] <= end)]
        if "channel" in dims:
            t = t[t["channel"].isin(dims["channel"])]
        sessions = t["sessions"].sum()
        wm = oc[oc["channel"].isin(["web", "mobile"])]["order_id"].nunique()
        conversion = wm / sessions if sessions else None
    div = lambda a, b: (a / b) if b else None  # noqa: E731
    return {
        "gmv": gmv, "net_revenue": gmv - refunded, "take_revenue": lc["take"].sum(), "orders": orders,
        "aov": div(gmv, orders), "active_customers": len(active), "new_customers": new,
        "repeat_rate": div(repeat, len(active)), "conversion_rate": conversion,
        "refund_rate": div(refunded, gmv), "gross_margin": div(gmv - refunded - cost, gmv - refunded),
        "cancellation_rate": div(cancelled, all_orders),
    }


def assert_close(actual: dict, wanted: dict, context: str = "") -> None:
    for k, w in wanted.items():
        a = actual.get(k)
        if w is None or (isinstance(w, float) and np.isnan(w)):
            assert a is None, f"{context} {k}: expected no value, got {a}"
            continue
        assert a is not None, f"{context} {k}: expected {w}, got None"
        assert abs(a - w) <= 1e-6 * max(1.0, abs(w)), f"{context} {k}: app {a} != raw {w}"


def lines_in(p: dict[str, pd.DataFrame], start: date, end: date, dims: dict | None = None) -> pd.DataFrame:
    """Returns the prepared raw order lines of [start, end] matching dims (every order status)."""
    li = p["lines"]
    li = li[(li["day"] >= start) & (li["day"] <= end)]
    for d, values in (dims or {}).items():
        li = li[li[d].isin(values)]
    return li
