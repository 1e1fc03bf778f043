"""Monthly KPI targets near the seeded figures (read back from the rollups), and three months ahead."""
from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.seed.reference import KPI_METRICS


def write_targets(conn: Connection, rng: np.random.Generator, start: date, end: date) -> None:
    """Writes monthly KPI targets near the actual figures, and for the next three months."""
    sales = conn.execute(sa.text("""
        SELECT date_trunc('month', day)::date AS month, SUM(gmv) AS gmv, SUM(refunded) AS refunded,
               SUM(cost) AS cost, SUM(orders) AS orders,
               SUM(orders) FILTER (WHERE channel IN ('web', 'mobile')) AS web_mobile
        FROM mart.rollup_sales_daily GROUP BY 1 ORDER BY 1""")).mappings().all()
    new = dict(conn.execute(sa.text("""
        SELECT date_trunc('month', first_day)::date, count(*) FROM mart.rollup_customers
        GROUP BY 1""")).all())
    sessions = dict(conn.execute(sa.text("""
        SELECT date_trunc('month', day)::date, SUM(sessions) FROM mart.traffic_daily GROUP BY 1""")).all())
    actual: dict[date, dict[str, float]] = {}
    for r in sales:
        m = r["month"]
        month_end = _month_end(m)
        covered = (min(month_end, end) - max(m, start)).days + 1
        scale = ((month_end - m).days + 1) / covered
        gmv, refunded, cost = float(r["gmv"]), float(r["refunded"]), float(r["cost"])
        net = gmv - refunded
        actual[m] = {
            "gmv": gmv * scale, "net_revenue": net * scale, "orders": float(r["orders"]) * scale,
            "new_customers": float(new.get(m, 0)) * scale,
            "conversion_rate": float(r["web_mobile"] or 0) / float(sessions[m]) if sessions.get(m) else None,
            "gross_margin": (net - cost) / net if net else None,
        }
    months = sorted(actual)
    rows = []
    for m in months:
        a = actual[m]
        rows.append((m, _targets_near(rng, a)))
    # The next three months: same month a year earlier x the last year's growth.
    last12 = months[-12:]
    prev12 = months[-24:-12]
    growth = {}
    for key in ("gmv", "net_revenue", "orders", "new_customers"):
        prev = sum(actual[m][key] for m in prev12) or 1.0
        growth[key] = float(np.clip(sum(actual[m][key] for m in last12) / prev, 1.0, 1.6))
    m = months[-1]
    for _ in range(3):
        m = _month_end(m) + timedelta(days=1)
        ago = date(m.year - 1, m.month, 1)
        base = actual.get(ago, actual[months[-1]])
        guess = {k: base[k] * growth[k] for k in growth}
        for k in ("conversion_rate", "gross_margin"):
            recent = [actual[x][k] for x in months[-3:] if actual[x][k] is not None]
            guess[k] = float(np.mean(recent)) if recent else None
        rows.append((m, _targets_near(rng, guess)))
    params = []
    for m, targets in rows:
        for metric in KPI_METRICS:
            value = targets.get(metric)
            if value is not None:
                params.append({"metric": metric, "ps": m, "pe": _month_end(m), "target": value})
    conn.execute(sa.text("INSERT INTO mart.kpi_targets (metric, period_start, period_end, target) "
                         "VALUES (:metric, :ps, :pe, :target)"), params)


def _targets_near(rng: np.random.Generator, a: dict) -> dict:
    """Returns targets a little above the figures in a (ratios as fractions)."""
    t: dict[str, float | None] = {}
    for key in ("gmv", "net_revenue"):
        t[key] = round(a[key] * rng.uniform(1.0, 1.1), 2)
    t["orders"] = float(round(a["orders"] * rng.uniform(1.0, 1.1)))
    t["new_customers"] = float(round(a["new_customers"] * rng.uniform(1.0, 1.1)))
    t["aov"] = round(t["gmv"] / t["orders"], 2) if t["orders"] else None
    cr, gm = a.get("conversion_rate"), a.get("gross_margin")
    t["conversion_rate"] = round(cr * rng.uniform(1.0, 1.06), 4) if cr else None
    t["gross_margin"] = round(gm * rng.uniform(0.99, 1.04), 4) if gm else None
    return t


def _month_end(m: date) -> date:
    nxt = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return nxt - timedelta(days=1)
