"""The alerts benchmark: 1,000 rules (fan-out included) evaluated in one scheduler tick, against
the same rules evaluated one at a time (what an evaluator without batching sends).

The rules mix every window, fan-out per vendor, category and region, filters by category or
channel, thresholds, changes against the previous window and last week, and forecast bands.
Thresholds are set at the 10th or 90th percentile of the values the rules see at the time, so a
tail of instances breaches, as real thresholds do. Measured: the whole tick
(reports.alert_evaluation.evaluate_due: lock, evaluate, step every instance, write instances, events and
outbox rows) cold (every instance's first state written) and steady (the next tick), and the
evaluation alone batched against one rule at a time.
"""
from __future__ import annotations

import random
import statistics
import time
from dataclasses import replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from analytics import alerts as A
from bench.common import log, section_head
from data.auth import create_user, fetch_user
from reports import alerts as R
from reports.alert_evaluation import evaluate_due

RULES = 1_000
OWNER = "bench"
SALES_METRICS = ("gmv", "net_revenue", "orders", "aov", "refund_rate", "cancellation_rate", "take_revenue",
                 "gross_margin")


def _specs(rng: random.Random, categories: list[str]):
    specs = []
    fans = ["", "", "vendor_id", "category", "region"]
    for i in range(RULES):
        kind = rng.random()
        fan = rng.choice(fans)
        window = rng.choice(list(A.WINDOWS))
        filters = ()
        if rng.random() < 0.2:
            filters = (("category", (rng.choice(categories),)),) if fan != "category" else ()
        elif rng.random() < 0.1 and fan in ("", "region"):
            filters = (("channel", ("web",)),)
        if i % 100 == 0:     # a few customer-count rules over whole days
            specs.append(A.Spec(rng.choice(("active_customers", "new_customers")), rng.choice(("last_7d", "mtd")),
                                "below", None))
        elif kind < 0.05:
            specs.append(A.Spec(rng.choice(("gmv", "orders")), "yesterday", "outside_forecast", None,
                                fan_out=rng.choice(("", "vendor_id"))))
        elif kind < 0.25:
            whole = window if window not in A.TO_DATE else rng.choice(("yesterday", "last_7d", "last_24h"))
            specs.append(A.Spec(rng.choice(SALES_METRICS[:3]), whole, rng.choice(A.CHANGES),
                                float(rng.choice((20, 30, 50))), rng.choice(list(A.BASELINES)), filters, fan))
        else:
            specs.append(A.Spec(rng.choice(SALES_METRICS), window, rng.choice(("above", "below")), None, "",
                                filters, fan))
    return specs


def _with_thresholds(conn, specs, now):
    """Sets each threshold rule's threshold at the 10th (below) or 90th (above) percentile of what
    it sees now."""
    batch = A.evaluate(conn, specs, now, tz="UTC")
    out = []
    for s, obs in zip(specs, batch.observations):
        if s.condition in ("above", "below"):
            values = sorted(o.value for o in obs.values() if o.value is not None)
            q = values[int(len(values) * (0.9 if s.condition == "above" else 0.1))] if values else 0.0
            s = replace(s, threshold=float(q))
        out.append(s)
    return out


def bench_alerts(url: str, reps: int) -> dict:
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        if fetch_user(conn, OWNER) is None:
            create_user(conn, OWNER, "Quiet-harbour-2026-x", "analyst")
        conn.execute(sa.text("DELETE FROM app.alert_rules WHERE owner = :o"), {"o": OWNER})
        conn.execute(sa.text("DELETE FROM app.outbox WHERE source LIKE 'alert:%'"))
        latest = conn.execute(sa.text("SELECT max(ordered_at) FROM mart.orders")).scalar()
        now = latest - timedelta(hours=6)
        categories = [r[0] for r in conn.execute(sa.text("SELECT DISTINCT category FROM mart.products"))]
        lines = conn.execute(sa.text("SELECT count(*) FROM mart.order_items")).scalar()
        specs = _with_thresholds(conn, _specs(random.Random(1), categories), now)
        for i, s in enumerate(specs):
            R.save_rule(conn, OWNER, name=f"bench {i:04d}", metric=s.metric, window=s.window, condition=s.condition,
                        threshold=s.threshold, baseline=s.baseline, filters={d: list(v) for d, v in s.filters},
                        fan_out=s.fan_out, interval_minutes=5, recipients="bench@example.com")
    groups = len({s.group for s in specs})
    fanned = sum(1 for s in specs if s.fan_out)

    def due() -> None:
        with eng.begin() as conn:
            conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t WHERE owner = :o"),
                         {"t": now - timedelta(minutes=1), "o": OWNER})

    def cold() -> None:
        with eng.begin() as conn:
            conn.execute(sa.text("DELETE FROM app.alert_instances WHERE rule_id IN "
                                 "(SELECT rule_id FROM app.alert_rules WHERE owner = :o)"), {"o": OWNER})
            conn.execute(sa.text("DELETE FROM app.alert_events WHERE rule_id IN "
                                 "(SELECT rule_id FROM app.alert_rules WHERE owner = :o)"), {"o": OWNER})
            conn.execute(sa.text("DELETE FROM app.outbox WHERE source LIKE 'alert:%'"))
        due()

    cold_s, steady_s, counts = [], [], {}
    for _ in range(max(1, min(reps, 3))):
        cold()
        t = time.perf_counter()
        counts["cold"] = evaluate_due(eng, now=now)
        cold_s.append(time.perf_counter() - t)
        due()
        t = time.perf_counter()
        counts["steady"] = evaluate_due(eng, now=now + timedelta(minutes=5))
        steady_s.append(time.perf_counter() - t)
    with eng.connect() as conn:
        instances = conn.execute(sa.text("SELECT count(*) FROM app.alert_instances i JOIN app.alert_rules r "
                                         "USING (rule_id) WHERE r.owner = :o"), {"o": OWNER}).scalar()
        vendors = conn.execute(sa.text("SELECT count(*) FROM mart.vendors WHERE status <> 'closed'")).scalar()
        t = time.perf_counter()
        batch = A.evaluate(conn, specs, now, tz="UTC")
        batched_s = time.perf_counter() - t
        t = time.perf_counter()
        single_queries = 0
        for s in specs:
            single_queries += A.evaluate(conn, [s], now, tz="UTC").queries
        single_s = time.perf_counter() - t
    eng.dispose()
    out = {"lines": lines, "rules": len(specs), "fanned": fanned, "groups": groups, "vendors": vendors,
           "instances_evaluated": sum(len(o) for o in batch.observations), "instances_stored": instances,
           "cold_s": statistics.median(cold_s), "steady_s": statistics.median(steady_s), "counts": counts,
           "batched_s": batched_s, "batched_queries": batch.queries, "single_s": single_s,
           "single_queries": single_queries, "errors": len(batch.errors)}
    log(f"  alerts: tick cold {out['cold_s']:.2f} s, steady {out['steady_s']:.2f} s; evaluation batched "
        f"{batched_s:.2f} s ({batch.queries} queries) vs one by one {single_s:.2f} s ({single_queries} queries)")
    return out


ALERTS_BEGIN, ALERTS_END = "<!-- alerts:begin -->", "<!-- alerts:end -->"


def alerts_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(
        ALERTS_BEGIN, "Alerts: 1,000 rules in one scheduler tick", started,
        "1,000 rules over every window, with fan-out per vendor, category and region, filters, thresholds at the "
        "10th/90th percentile of what they see, changes against the previous window and last week, and forecast "
        "bands (`bench/alerts.py`). The tick is `reports.alert_evaluation.evaluate_due` (lock the due rules, evaluate, step "
        "every instance through the state machine, write instances, events and outbox rows in one transaction): "
        "steady (a tick of rules evaluated before: what every tick costs, and what the target is about) and "
        "cold (1,000 new rules evaluated for the first time in one tick: every instance's first state, event and "
        "notification written). Baseline: the same rules' evaluation one rule at a time against the batched "
        "evaluation.",
        "| order lines | rules (fanned out) | groups | instances evaluated | tick, cold | tick, steady | "
        "evaluation batched | one rule at a time | batched / one at a time | target |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        r = results.get(n)
        if not r:
            continue
        ratio = r["batched_s"] / r["single_s"]
        ok = f"a tick ≤ 4 s {'✅' if r['steady_s'] <= 4 else '❌'}" if n == max(sizes) else ""
        c = r["counts"]["cold"]
        lines.append(
            f"| {r['lines']:,} | {r['rules']:,} ({r['fanned']}) | {r['groups']} | {r['instances_evaluated']:,} | "
            f"{r['cold_s']:.2f} s ({c['events']:,} events, {c['notifications']:,} notifications) | "
            f"{r['steady_s']:.2f} s | {r['batched_s']:.2f} s ({r['batched_queries']} queries) | "
            f"{r['single_s']:.2f} s ({r['single_queries']:,} queries) | {ratio:.3f}× | {ok} |")
    return "\n".join(lines + [ALERTS_END]) + "\n"
