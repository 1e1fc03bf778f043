"""Customer scores (the nightly job) and the customers page's reads of the stored run."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from analytics import customer_scores as S
from analytics.filters import Filters, Period
from analytics.kpis import fetch_data_bounds
from bench.common import log, section_head, timed


CUSTOMERS_BEGIN, CUSTOMERS_END = "<!-- customers:begin -->", "<!-- customers:end -->"


def bench_customers(url: str, reps: int) -> dict:
    """Times the nightly customer scores (compute and store) and the customers page's reads of the
    stored run, side by side with computing the page's figures live."""
    eng = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    with eng.connect() as conn:
        as_of = fetch_data_bounds(conn, "UTC")[1]
    f = Filters.make(Period(as_of, as_of))
    with eng.begin() as conn:
        started = datetime.now(timezone.utc)
        t = time.perf_counter()
        scores = S.compute_scores(conn, f, as_of, tz="UTC")
        compute_s = time.perf_counter() - t
        t = time.perf_counter()
        S.store_scores(conn, scores, started_at=started, rollup_version=None, tz="UTC")
        store_s = time.perf_counter() - t
    log(f"  customer scores: {scores.customers:,} customers, compute {compute_s:.1f} s, store {store_s:.1f} s, "
        f"steps {scores.timings}")

    def page():  # what the customers page reads with its default controls
        with eng.connect() as conn:
            stored = S.fetch_stored_scores(conn)
            risk = S.fetch_stored_at_risk(conn, stored.run_id)
            S.fetch_customer_details(conn, risk["customer_id"].tolist(), stored.as_of, tz="UTC")
            top = S.fetch_stored_top_customers(conn, stored.run_id, "clv_12m", limit=100)
            S.fetch_customer_details(conn, top["customer_id"].tolist(), stored.as_of, tz="UTC")
        return stored

    def live():
        with eng.connect() as conn:
            return S.compute_scores(conn, f, as_of, previous=as_of - timedelta(days=S.MOVEMENT_DAYS), tz="UTC")

    page_s, _ = timed(page, reps)
    live_s, _ = timed(live, 1, budget_s=1)
    log(f"  customers page: stored {page_s*1000:.0f} ms, live {live_s:.1f} s, {page_s / live_s:.4f}×")
    eng.dispose()
    return {"customers": scores.customers, "compute_s": compute_s, "store_s": store_s, "steps": scores.timings,
            "page_ms": page_s * 1000, "live_s": live_s, "status": scores.status,
            "error": (scores.validation or {}).get("error")}


def customers_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(CUSTOMERS_BEGIN, "Customer scores and the customers page", started, "The nightly job "
             "(`compute_scores` for every customer: summary and RFM in SQL, cohorts, BG/NBD and Gamma-Gamma fits, "
             "P(alive), expected purchases and 12-month CLV, holdout validation, KMeans with k by silhouette; then "
             "`store_scores`), and the page's reads of the stored run (`fetch_stored_scores`, the at-risk list of "
             "1,000, the 100 customers with the highest CLV, and their details) side by side with computing the "
             "same figures live. \"Per 500k customers\" is (compute + store) / customers × 500,000; at small sizes "
             "the fixed costs (fits and clustering on samples, cohorts) dominate it.",
             "| order lines | customers | nightly compute | store | per 500k customers | page (stored) | live | "
             "stored / live | targets |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        r = results.get(n)
        if not r:
            continue
        per = (r["compute_s"] + r["store_s"]) / r["customers"] * 500_000
        ok = ""
        if n == max(sizes):
            ok = (f"scores ≤ 60 s per 500k {'✅' if per <= 60 else '❌'}; "
                  f"page ≤ 1 s {'✅' if r['page_ms'] <= 1000 else '❌'}")
        lines.append(f"| {n:,} | {r['customers']:,} | {r['compute_s']:.1f} s | {r['store_s']:.1f} s | {per:.1f} s | "
                     f"{r['page_ms']:,.0f} ms | {r['live_s']:.1f} s | {r['page_ms'] / 1000 / r['live_s']:.4f}× | {ok} |")
    lines += ["", "Steps of the nightly computation (ms):", ""]
    for n in sizes:
        if results.get(n):
            r = results[n]
            lines.append(f"- {n:,} lines: " + ", ".join(f"{k} {v:,}" for k, v in r["steps"].items())
                         + (f"; holdout total error {r['error']:+.1%}" if r.get("error") is not None else ""))
    return "\n".join(lines + [CUSTOMERS_END]) + "\n"
