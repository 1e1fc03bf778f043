"""The scale benchmark: every analysis page's default figures at 1M and 10M order lines, cold.

For each page (overview, sales, vendors, products: `compute_<page>`; customers and forecasting:
the reads the page makes of the nightly run), each period preset and a 3-year custom range, with
no filter and with one filter of each kind the filter bar offers (the value with the most GMV),
the page's figures are computed without any Streamlit cache: one warm-up (PostgreSQL's buffers
warm), then the median of REPS runs. The 10M/1M ratio says whether the cost grows with orders;
each cell is timed at every size side by side (runs alternate between the sizes), so whatever
else slows the machine for a while falls on both sizes alike.
Also: the rollups' size on disk, and what an incremental refresh of one minute of orders costs.
"""
from __future__ import annotations

import importlib
import statistics
import time
from datetime import date, datetime, timedelta, timezone
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics import customer_scores as S
from analytics import forecast_series as FS
from analytics.filters import Filters, Period, resolve_preset, shift_year
from analytics.kpis import fetch_aggregate, fetch_data_bounds
from data.rollups import ROLLUP_TABLES, refresh_rollups

SCALE_BEGIN, SCALE_END = "<!-- scale:begin -->", "<!-- scale:end -->"
PRESETS = ("last_7_days", "last_30_days", "last_90_days", "mtd", "qtd", "ytd", "last_year", "custom")
FILTERS = ("none", "category", "region", "country", "channel", "business_model", "segment", "payment_method",
           "vendor_id")
PAGES = {"overview": ("analytics.overview", "compute_overview"), "sales": ("analytics.sales", "compute_sales_page"),
         "vendors": ("analytics.vendors", "compute_vendors_page"),
         "products": ("analytics.products", "compute_products_page")}
# The forecasting page offers a series per total or one of these; the customers page reads the
# nightly run (other periods or filters compute per-customer models live, with a progress bar).
FORECAST_FILTERS = ("none", "vendor_id", "category", "region", "channel", "business_model")
REPS = 5
# A cell that takes longer than this is stopped and reported as over it: the fallbacks it would
# measure miss the target by far, and at 10M some take minutes.
CELL_LIMIT_S = 5
TARGET_MS = 1000
TARGET_RATIO = 1.5
REFRESH_TARGET_S = 2.0
SLOW_S = 3.0


def _timed(fn) -> float:
    """Returns fn's seconds, or inf when the connection's statement timeout stopped it."""
    t = time.perf_counter()
    try:
        fn()
    except sa.exc.OperationalError as ex:
        if "statement timeout" not in str(ex):
            raise
        return float("inf")
    return time.perf_counter() - t


def _medians_ms(fns: dict, reps: int = REPS, budget_s: float = 10.0) -> dict:
    """Returns {size: median milliseconds} of each size's fn, timed side by side: a warm-up of each,
    then reps rounds that run every size's fn in turn, so a slow spell of the machine falls on
    every size alike. Fewer rounds when a warm-up takes more than budget_s / reps; a warm-up
    over SLOW_S is that size's figure itself (a slow fallback misses the target either way). A
    run stopped by the connection's statement timeout counts as inf (the caller rolls back)."""
    warm = {n: _timed(fn) for n, fn in fns.items()}
    done = {n: [w] for n, w in warm.items() if w > SLOW_S}
    left = {n: fn for n, fn in fns.items() if n not in done}
    rounds = max(1, min(reps, int(budget_s / max(max((warm[n] for n in left), default=0), 1e-6))))
    times: dict = {n: [] for n in left}
    for _ in range(rounds):
        for n, fn in left.items():
            if not times[n] or times[n][-1] != float("inf"):
                times[n].append(_timed(fn))
    return {n: statistics.median(ts) * 1000 for n, ts in {**times, **done}.items()}


def filter_values(conn: Connection) -> dict:
    """The value of each filter kind with the most GMV (vendor, category, …); fixed channel/model/segment."""
    one = lambda sql: conn.execute(sa.text(sql)).scalar()  # noqa: E731
    return {
        "category": one("SELECT category FROM mart.rollup_category_daily GROUP BY 1 ORDER BY sum(gmv) DESC LIMIT 1"),
        "vendor_id": one("SELECT vendor_id FROM mart.rollup_vendor_daily GROUP BY 1 ORDER BY sum(gmv) DESC LIMIT 1"),
        "region": one("SELECT region FROM mart.rollup_sales_daily GROUP BY 1 ORDER BY sum(gmv) DESC LIMIT 1"),
        "country": one("SELECT country FROM mart.rollup_sales_daily GROUP BY 1 ORDER BY sum(gmv) DESC LIMIT 1"),
        "payment_method": one("SELECT payment_method FROM mart.rollup_payment_daily GROUP BY 1 ORDER BY sum(gmv) DESC LIMIT 1"),
        "channel": "web", "business_model": "B2C", "segment": "B2B",
    }


def _period(preset: str, today: date):
    return resolve_preset(preset, today, (shift_year(today, -3) + timedelta(days=1), today))


def bench_scale(url: str, log: Callable[[str], None] = print) -> dict:
    """Returns what is measured on one size's database alone: {"sizes": rollup bytes, "refresh": the
    cost of one minute of orders}, after storing a nightly scores run if there is none (the
    customers page reads it)."""
    eng = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    with eng.begin() as conn:
        if S.fetch_latest_run_id(conn) is None:
            log("  scale: storing a customer scores run for the customers page's reads")
            today = fetch_data_bounds(conn, "UTC")[1]
            scores = S.compute_scores(conn, Filters.make(Period(today, today)), today, tz="UTC")
            S.store_scores(conn, scores, started_at=datetime.now(timezone.utc), rollup_version=None, tz="UTC")
    out = {"sizes": rollup_sizes(eng), "refresh": refresh_one_minute(eng, log)}
    eng.dispose()
    return out


def bench_cells(urls: dict[int, str], reps: int = REPS, log: Callable[[str], None] = print) -> dict:
    """Times every cell at every size side by side (_medians_ms). Filters take the largest size's
    values at every size (the same figure at each size); periods end on each database's last day.
    Returns {"cells": {size: {(page, filter, preset): ms}}, "sources": the largest size's sources
    of the overview's distinct customers, "values": the filter values}."""
    largest = max(urls)
    options = f"-c timezone=UTC -c statement_timeout={CELL_LIMIT_S * 1000}"
    engines = {n: sa.create_engine(u, connect_args={"options": options})
               for n, u in urls.items()}
    conns = {n: e.connect() for n, e in engines.items()}
    try:
        today = {n: fetch_data_bounds(c, "UTC")[1] for n, c in conns.items()}
        values = filter_values(conns[largest])
        cells: dict = {n: {} for n in urls}
        sources = {}
        for page, (module, name) in PAGES.items():
            fn = getattr(importlib.import_module(module), name)
            for flt in FILTERS:
                dims = {} if flt == "none" else {flt: [values[flt]]}
                for preset in PRESETS:
                    fs = {n: Filters.make(_period(preset, today[n]), **dims) for n in urls}
                    got = _medians_ms({n: (lambda n=n: fn(conns[n], fs[n], tz="UTC")) for n in urls}, reps)
                    for n, ms in got.items():
                        cells[n][page, flt, preset] = ms
                        if ms == float("inf"):
                            conns[n].rollback()   # the stopped statement aborted the transaction
                    if page == "overview":
                        sources[flt, preset] = fetch_aggregate(conns[largest], fs[largest], metrics=(
                            "active_customers", "gmv"), tz="UTC").attrs["sources"]
                log(f"  scale {page} {flt}: " + ", ".join(
                    f"{p} " + "/".join(f"{cells[n][page, flt, p]:.0f}" for n in sorted(urls)) for p in PRESETS) + " ms")
        for n, ms in _stored_pages(conns, today, values, reps, log).items():
            cells[n].update(ms)
    finally:
        for c in conns.values():
            c.close()
        for e in engines.values():
            e.dispose()
    return {"cells": cells, "sources": sources, "values": values}


def _stored_pages(conns: dict, today: dict, values: dict, reps: int, log) -> dict:
    """The customers and forecasting pages' reads of the nightly runs (bench_scale stored one), side by side."""
    out: dict = {n: {} for n in conns}

    def customers(conn):
        stored = S.fetch_stored_scores(conn)
        risk = S.fetch_stored_at_risk(conn, stored.run_id)
        S.fetch_customer_details(conn, risk["customer_id"].tolist(), stored.as_of, tz="UTC")
        top = S.fetch_stored_top_customers(conn, stored.run_id, "clv_12m", limit=100)
        S.fetch_customer_details(conn, top["customer_id"].tolist(), stored.as_of, tz="UTC")

    def forecasting(conn, series, day):
        FS.fetch_stored_forecast(conn, series, run_date=day + timedelta(days=1), horizon=28)
        actuals = FS.fetch_metric_history(conn, series, last_day=day, tz="UTC")
        FS.compute_realised_errors(conn, series, actuals, before=day + timedelta(days=1))

    for n, ms in _medians_ms({n: (lambda c=c: customers(c)) for n, c in conns.items()}, reps).items():
        out[n]["customers", "none", "stored"] = ms
    for flt in FORECAST_FILTERS:
        series = FS.Series("gmv") if flt == "none" else FS.Series("gmv", dim=flt, value=str(values[flt]))
        got = _medians_ms({n: (lambda c=c, n=n: forecasting(c, series, today[n])) for n, c in conns.items()}, reps)
        for n, ms in got.items():
            out[n]["forecasting", flt, "stored"] = ms
    log("  scale customers and forecasting (stored runs) done")
    return out


def rollup_sizes(eng: Engine) -> dict[str, int]:
    """Returns {table: bytes on disk with indexes} for every rollup table, and the raw tables."""
    with eng.connect() as conn:
        tables = [*ROLLUP_TABLES, "rollup_customer_spaces", "orders", "order_items"]
        return {t: conn.execute(sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))"),
                                {"t": f"mart.{t}"}).scalar() for t in tables}


REFRESH_ROUNDS = 3


def refresh_one_minute(eng: Engine, log: Callable[[str], None]) -> dict:
    """Inserts one minute of orders (as many as the data's busiest recent minute holds on average),
    times the incremental refresh, then removes them and refreshes again; REFRESH_ROUNDS times,
    the median counts."""
    # A refresh is not a page cell: the cells' statement timeout does not apply (one statement of
    # the measured refresh took over 5 s at 10M lines on a cold cache, 2026-12-06).
    no_limit = "SET LOCAL statement_timeout = 0"
    with eng.begin() as conn:
        conn.execute(sa.text(no_limit))
        refresh_rollups(conn, timezone="UTC")   # nothing pending before the measurement
    runs = []
    for _ in range(REFRESH_ROUNDS):
        with eng.begin() as conn:
            last = conn.execute(sa.text("SELECT max(ordered_at) FROM mart.orders")).scalar()
            per_min = conn.execute(sa.text("""SELECT count(*) / 1440.0 FROM mart.orders
                                              WHERE ordered_at > :t - interval '1 day'"""), {"t": last}).scalar()
            n = max(1, round(float(per_min)))
            base = conn.execute(sa.text("SELECT max(order_id) FROM mart.orders")).scalar()
            # Copies of the latest orders (same customers, lines and values), one minute earlier, so
            # that they fall in the latest day with all of that day's orders: one minute later put
            # them alone in the next day when the last order came at 23:59 (the 10M database's).
            conn.execute(sa.text("""
                INSERT INTO mart.orders
                SELECT :base + row_number() OVER (ORDER BY order_id), customer_id, ordered_at - interval '1 minute',
                       status, channel, business_model, payment_method, payment_status, currency, shipping_fee
                FROM (SELECT * FROM mart.orders ORDER BY ordered_at DESC LIMIT :n) o"""), {"base": base, "n": n})
            conn.execute(sa.text("""
                INSERT INTO mart.order_items
                SELECT n.order_id, i.line_no, i.product_id, i.vendor_id, i.quantity, i.unit_price, i.discount,
                       i.unit_cost, i.refunded_amount
                FROM (SELECT order_id, :base + row_number() OVER (ORDER BY order_id) AS new_id
                      FROM (SELECT order_id FROM mart.orders WHERE order_id <= :base ORDER BY ordered_at DESC LIMIT :n) l) m
                JOIN mart.order_items i ON i.order_id = m.order_id
                JOIN mart.orders n ON n.order_id = m.new_id"""), {"base": base, "n": n})
        with eng.begin() as conn:
            conn.execute(sa.text(no_limit))
            t = time.perf_counter()
            r = refresh_rollups(conn, timezone="UTC")
            runs.append((time.perf_counter() - t, r))
        with eng.begin() as conn:
            conn.execute(sa.text(no_limit))
            conn.execute(sa.text("DELETE FROM mart.orders WHERE order_id > :base"), {"base": base})
            refresh_rollups(conn, timezone="UTC")
    took, r = sorted(runs, key=lambda x: x[0])[len(runs) // 2]
    each = ", ".join(f"{s:.2f}" for s, _ in runs)
    log(f"  scale refresh of one minute ({n} orders): median {took:.2f} s of {each} s "
        f"({r.mode}, {r.customer_cells}, {r.days} days, {r.customers} customers)")
    return {"orders": n, "seconds": took, "runs": [round(s, 3) for s, _ in runs], "mode": r.mode,
            "cells": r.customer_cells, "days": r.days, "customers": r.customers}


def _fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms == float("inf"):
        return f"> {CELL_LIMIT_S} s"
    return f"{ms:,.0f}" if ms >= 10 else f"{ms:.1f}"


def _with_unit(ms: float) -> str:
    return _fmt_ms(ms) + ("" if ms == float("inf") else " ms")


def scale_section(sizes: list[int], results: dict, started: datetime, measured: str, note: str = "") -> str:
    """RESULTS.md's scale section: per page and filter, each preset's time at the largest size with
    its ratio to the smallest; the slowest cell, the rollup sizes and the refresh cost."""
    lo, hi = min(sizes), max(sizes)
    a, b = results.get(lo), results.get(hi)
    side = (b or {}).get("side_by_side")
    lines = [SCALE_BEGIN, "## Scale: every page, preset and filter at 1M and 10M order lines, cold", "",
             measured + " Each cell is the page's default figures (`compute_<page>`, no Streamlit cache, "
             f"PostgreSQL's buffers warm) at {hi:,} lines, with the ratio to {lo:,} lines beside it, timed side by "
             f"side: a warm-up at each size, then {REPS} rounds that run the cell at each size in turn (fewer past "
             f"10 s; a warm-up over {SLOW_S:.0f} s is the figure); medians. Targets: ≤ {TARGET_MS:,} ms "
             f"at {hi:,} lines and ≤ {TARGET_RATIO}× the {lo:,}-line time. Filters take the {hi:,}-line database's "
             "value with the most GMV (vendor, category, region, country, payment method), web, B2C and B2B, at "
             "both sizes."
             + (" " + note if note else ""), ""]
    if not (a and b and side):
        return "\n".join(lines + ["(needs both sizes)", SCALE_END]) + "\n"
    header = "| page | filter | " + " | ".join(PRESETS) + " |"
    lines += [header, "|---|---|" + "---:|" * len(PRESETS)]
    worst, misses, total = None, [], 0
    for page in [*PAGES, "customers", "forecasting"]:
        flts = FILTERS if page in PAGES else (("none",) if page == "customers" else FORECAST_FILTERS)
        for flt in flts:
            row = []
            for preset in PRESETS:
                key = (page, flt, preset if page in PAGES else "stored")
                if key not in side["cells"][hi] or (page not in PAGES and preset != PRESETS[0]):
                    row.append("")
                    continue
                ms_b, ms_a = side["cells"][hi][key], side["cells"][lo].get(key)
                ratio = ms_b / ms_a if ms_a and ms_a != float("inf") and ms_b != float("inf") else None
                total += 1
                ok = ms_b <= TARGET_MS and (ratio is None or ratio <= TARGET_RATIO)
                if not ok:
                    misses.append((page, flt, preset, ms_b, ratio))
                if worst is None or ms_b > worst[3]:
                    worst = (page, flt, preset, ms_b, ratio)
                row.append((f"{_fmt_ms(ms_b)} ({ratio:.2f}×)" if ratio else _fmt_ms(ms_b)) + ("" if ok else " ❌"))
            lines.append(f"| {page} | {flt} | " + " | ".join(row) + " |")
    lines += ["", "Customers and forecasting: the reads each page makes of the nightly run (one column): the "
              "customers page's stored scores, at-risk list and top customers; the forecasting page's stored "
              "forecast, three years of daily history and earlier runs against actuals, for the total and one "
              "series per dimension it offers.", ""]
    lines.append(f"- Cells meeting both targets: {total - len(misses)} of {total}.")
    if worst:
        lines.append(f"- Slowest cell at {hi:,} lines: {worst[0]}, {worst[1]}, {worst[2]}: {_with_unit(worst[3])}"
                     + (f" ({worst[4]:.2f}× the {lo:,}-line time)." if worst[4] else "."))
    for page, flt, preset, ms, ratio in misses[:40]:
        lines.append(f"- ❌ {page}, {flt}, {preset}: {_with_unit(ms)}" + (f", {ratio:.2f}×" if ratio else ""))
    srcs = side["sources"]
    fall = sorted({flt for (flt, _), s in srcs.items() if s.get("customers") != "rollup_customer_cells"})
    lines.append("- Distinct customers read flat (customer cells) for: "
                 + ", ".join(sorted({flt for (flt, _), s in srcs.items() if flt not in fall})) + "."
                 + (f" Fallback for: {', '.join(fall)}." if fall else "")
                 + " Served by the fallbacks (exact, cost growing with orders): several values of an order-level "
                 "dimension or of categories, several vendors, two dimensions at once, payment status and product "
                 "filters (rollup_customer_daily or the order lines).")
    lines += ["", "Rollup size on disk (with indexes):", "", "| table | " + " | ".join(f"{n:,} lines" for n in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    for t in b["sizes"]:
        lines.append(f"| {t} | " + " | ".join(f"{results[n]['sizes'].get(t, 0) / 2**20:,.0f} MiB" for n in sizes) + " |")
    rollups = lambda r: sum(v for t, v in r["sizes"].items() if t.startswith("rollup_"))  # noqa: E731
    lines.append("| all rollups | " + " | ".join(f"{rollups(results[n]) / 2**20:,.0f} MiB" for n in sizes) + " |")
    lines += ["", "Incremental refresh of one minute of orders (copies of the latest orders one minute earlier, in "
              f"the latest day with all its orders; median of {REFRESH_ROUNDS} rounds, each followed by removing "
              "them again; the refresh rebuilds that "
              "local day's rollups and moves the customer cells by the changed customers' parts):", ""]
    for n in sizes:
        r = results[n]["refresh"]
        ok = (f" (target ≤ {REFRESH_TARGET_S:.0f} s at {hi:,}: {'✅' if r['seconds'] <= REFRESH_TARGET_S else '❌'})"
              if n == hi else "")
        each = ", ".join(f"{s:.2f}" for s in r.get("runs", [r["seconds"]]))
        lines.append(f"- {n:,} lines: {r['orders']} orders, {r['seconds']:.2f} s (rounds: {each} s; {r['mode']}, "
                     f"customer cells by {r.get('cells') or 'recount'}, {r['days']} day(s), "
                     f"{r['customers']:,} customers' first orders recomputed){ok}")
    return "\n".join(lines + [SCALE_END]) + "\n"
