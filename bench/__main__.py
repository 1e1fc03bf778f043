"""make bench: seed time and memory, every page's figures from rollups vs raw GROUP BY, exports,
alerts, the scheduler, 20 analysts at once, app memory — as a table of sections.

Every figure is measured side by side in one run on one machine and reported as a ratio against
its baseline, with date, commit and machine. Runs on its own embedded PostgreSQL server in
.data/bench (or BENCH_DATABASE_URL, a server where it may create databases).

    python -m bench                      # new databases at every size, every section
    python -m bench --list               # the sections and what each measures
    python -m bench --only pages,query   # re-measure some sections on the bench databases there
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from bench import alerts, customers, exports, fanout, forecasts, load, memory, overview, portal, query, scale, scheduler
from bench.common import ROOT, admin_url, log, measured, run_measured, write_section
from data.db import recreate_database

# What else the machine did during the scale section is not known to the run: say it here when a
# human runs it (environment variable BENCH_NOTE), else nothing.
SCALE_NOTE = os.environ.get("BENCH_NOTE", "")


@dataclass(frozen=True)
class Run:
    """What a run measures: the sizes (order lines), the repetitions per figure and its start."""
    sizes: list[int]
    reps: int
    started: datetime


Figures = dict[str, dict[int, object]]   # section name -> order lines -> what the section measured


@dataclass(frozen=True)
class Section:
    """One part of RESULTS.md: measure(url, n, run) at each size, then write(sizes done, figures, run)."""
    name: str
    measures: str
    measure: Callable[[str, int, Run], object]
    write: Callable[[list[int], Figures, Run], None] | None
    alone: bool = True        # can be re-measured with --only on the bench databases already there
    smallest: bool = False    # measured at the smallest size only (it does not depend on the data's size)
    browser: bool = False     # starts the app and a browser; --no-browser skips it
    refresh: bool = True      # --only: bring the rollups up to date first


def load_clients(n: int, sizes: list[int]) -> tuple[str, ...]:
    """The protocol client at every size; chromium (whose figure is the browsers' work) at the smallest."""
    return load.CLIENTS if n == min(sizes) else ("protocol",)


def _measure_load(url: str, n: int, run: Run) -> dict:
    figures = {"load": load.bench_load(url, load_clients(n, run.sizes)), "memory": memory.bench_app_memory(url)}
    log(f"  streamlit RSS: {figures['memory'] / 2**20:.0f} MiB")
    return figures


def _write_load(done: list[int], figures: Figures, run: Run) -> None:
    got = figures["load"]
    write_section(load.load_section(done, {n: r["load"] for n, r in got.items()}, run.started),
                  load.LOAD_BEGIN, load.LOAD_END)
    write_section(memory.memory_section(done, {n: r["memory"] for n, r in got.items()}, run.started),
                  memory.MEMORY_BEGIN, memory.MEMORY_END)


def _measure_scale(url: str, n: int, run: Run) -> dict:
    """One size's rollup sizes and refresh; at the largest size, every cell at every size side by side."""
    figures = scale.bench_scale(url, log=log)
    if n == max(run.sizes):
        figures["side_by_side"] = scale.bench_cells({m: url.replace(f"/bench_{n}?", f"/bench_{m}?") for m in run.sizes},
                                                    log=log)
    return figures


def _measure_portal(url: str, n: int, run: Run) -> dict | None:
    """At the largest size, a vendor's portal at every size side by side (nothing at the others)."""
    if n != max(run.sizes):
        return None
    return portal.bench_portal({m: url.replace(f"/bench_{n}?", f"/bench_{m}?") for m in run.sizes}, run.reps, log)


def _write_portal(done: list[int], figures: Figures, run: Run) -> None:
    got = figures["portal"].get(max(run.sizes))
    if got:
        write_section(portal.portal_section(run.sizes, got, run.started), portal.PORTAL_BEGIN, portal.PORTAL_END)


def _write_scheduler(done: list[int], figures: Figures, run: Run) -> None:
    n, results = next(iter(figures["scheduler"].items()))
    write_section(scheduler.scheduler_section(results, n, measured(run.started)),
                  scheduler.SCHEDULER_BEGIN, scheduler.SCHEDULER_END)


# In the order a full run measures and writes them; the head (seed, overview) rewrites the whole
# file, so it comes first.
SECTIONS = (
    Section("seed", "`python -m data seed` into a new database: wall time and peak memory",
            lambda url, n, run: overview.bench_seed(url, n), None, alone=False),
    Section("overview", "the overview's figures on the rollups against raw GROUP BY (three periods)",
            lambda url, n, run: overview.bench_overview(url, run.reps),
            lambda done, f, run: overview.write_results(done, f["seed"], f["overview"], run.started), alone=False),
    Section("pages", "the sales, vendors and products pages' figures on the rollups against raw GROUP BY",
            lambda url, n, run: overview.bench_pages(url, run.reps),
            lambda done, f, run: write_section(overview.pages_section(done, f["pages"], run.started),
                                               overview.PAGES_BEGIN, overview.PAGES_END)),
    Section("customers", "the nightly customer scores, and the customers page's stored reads against live",
            lambda url, n, run: customers.bench_customers(url, run.reps),
            lambda done, f, run: write_section(customers.customers_section(done, f["customers"], run.started),
                                               customers.CUSTOMERS_BEGIN, customers.CUSTOMERS_END)),
    Section("forecasts", "one automatic forecast, the forecasting page's stored reads, held-out accuracy",
            lambda url, n, run: forecasts.bench_forecasts(url, run.reps),
            lambda done, f, run: write_section(forecasts.forecasts_section(done, f["forecasts"], run.started),
                                               forecasts.FORECASTS_BEGIN, forecasts.FORECASTS_END)),
    Section("query", "analysts' SQL: a capped SELECT * against the same query with LIMIT",
            lambda url, n, run: query.bench_query(url, run.reps),
            lambda done, f, run: write_section(query.query_section(done, f["query"], run.started),
                                               query.QUERY_BEGIN, query.QUERY_END)),
    Section("exports", "CSV export against psql's \\copy, Excel memory, a ten-page PDF",
            lambda url, n, run: exports.bench_exports(url, run.reps),
            lambda done, f, run: write_section(exports.exports_section(done, f["exports"], run.started),
                                               exports.EXPORTS_BEGIN, exports.EXPORTS_END)),
    Section("alerts", "1,000 alert rules in one scheduler tick, batched against one at a time",
            lambda url, n, run: alerts.bench_alerts(url, run.reps),
            lambda done, f, run: write_section(alerts.alerts_section(done, f["alerts"], run.started),
                                               alerts.ALERTS_BEGIN, alerts.ALERTS_END)),
    Section("scale", "every page x preset x filter at each size, rollup sizes, refreshing one minute of orders",
            lambda url, n, run: _measure_scale(url, n, run),
            lambda done, f, run: write_section(scale.scale_section(done, f["scale"], run.started,
                                                                   measured(run.started), SCALE_NOTE),
                                               scale.SCALE_BEGIN, scale.SCALE_END)),
    Section("portal", "a vendor's portal overview on its own role at each size side by side, peer benchmarks",
            _measure_portal, _write_portal),
    Section("fanout", "a monthly PDF report scheduled to every vendor (one per vendor, on its own role): time, memory",
            lambda url, n, run: fanout.bench_fanout(url, log=log),
            lambda done, f, run: write_section(fanout.fanout_section(done, f["fanout"], run.started),
                                               fanout.FANOUT_BEGIN, fanout.FANOUT_END)),
    Section("scheduler", "the scheduler's heartbeat and alert ticks while it exports a slow saved query",
            lambda url, n, run: scheduler.bench_scheduler(url, log=log), _write_scheduler,
            smallest=True, refresh=False),
    Section("load", "20 analysts at once on the overview and sales pages, and the app's memory (browser)",
            _measure_load, _write_load, browser=True),
)
BY_NAME = {s.name: s for s in SECTIONS}


def _bench_url(admin: str, n: int) -> str:
    return admin.replace("/postgres?", f"/bench_{n}?")


def _write(chosen: list[Section], done: list[int], figures: Figures, run: Run) -> None:
    for s in chosen:
        if s.write is not None and figures[s.name]:
            s.write(done, figures, run)


def full_run(run: Run, admin: str, *, browser: bool) -> None:
    """New databases at every size, seeded and measured by every section; RESULTS.md written after each size."""
    chosen = [s for s in SECTIONS if browser or not s.browser]
    figures: Figures = {s.name: {} for s in chosen}
    for i, n in enumerate(run.sizes):
        name = f"bench_{n}"
        log(f"{n:,} lines: new database {name}")
        url = recreate_database(admin, name)
        env = {"DATABASE_URL": url, "APP_TIMEZONE": "UTC"}
        subprocess.run([sys.executable, "-m", "data", "migrate"], env={**os.environ, **env}, cwd=ROOT, check=True)
        for s in chosen:
            if not s.smallest or i == 0:
                figures[s.name][n] = s.measure(url, n, run)
        # Written after each size, so a failure at 10M keeps what 1M measured.
        _write(chosen, run.sizes[:i + 1], figures, run)


def rerun(run: Run, admin: str, chosen: list[Section]) -> None:
    """Re-measures the chosen sections on the bench databases there and rewrites only their parts."""
    figures: Figures = {s.name: {} for s in chosen}
    for n in run.sizes:
        here = [s for s in chosen if not s.smallest or n == min(run.sizes)]
        if not here:
            continue
        env = {"DATABASE_URL": _bench_url(admin, n), "APP_TIMEZONE": "UTC"}
        for cmd in (["migrate"], ["refresh"]) if any(s.refresh for s in here) else (["migrate"],):
            took, _ = run_measured([sys.executable, "-m", "data", *cmd], env)
            log(f"{n:,} lines: {cmd[0]} {took:.1f} s")
        for s in here:
            figures[s.name][n] = s.measure(env["DATABASE_URL"], n, run)
    _write(chosen, run.sizes, figures, run)


def parse_only(text: str) -> list[Section]:
    """Returns the sections named in a comma-separated list, in the table's order; exits on a wrong name."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in BY_NAME]
    if unknown or not names:
        raise SystemExit(f"--only: unknown section {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(s.name for s in SECTIONS if s.alone)} (see --list)")
    whole = [x for x in names if not BY_NAME[x].alone]
    if whole:
        raise SystemExit(f"--only: {', '.join(whole)} needs new databases: run `python -m bench` without --only")
    return [s for s in SECTIONS if s.name in names]


def list_sections() -> str:
    """The table of sections as text: name, what it measures, and when it runs."""
    lines = []
    for s in SECTIONS:
        notes = [note for flag, note in ((not s.alone, "full run only"), (s.smallest, "smallest size only"),
                                         (s.browser, "browser; skipped by --no-browser")) if flag]
        lines.append(f"{s.name:<10} {s.measures}" + (f" [{'; '.join(notes)}]" if notes else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks -> bench/RESULTS.md")
    p.add_argument("--sizes", default="1000000,10000000", help="order lines, comma-separated")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-browser", action="store_true", help="skip the browser sections (load, app memory)")
    p.add_argument("--only", metavar="A,B", help="reuse the bench databases (migrate, and refresh where the section "
                                                 "reads rollups) and rewrite only these sections; see --list")
    p.add_argument("--list", action="store_true", help="print the sections and what each measures")
    args = p.parse_args(argv)
    if args.list:
        print(list_sections())
        return 0
    chosen = parse_only(args.only) if args.only is not None else None
    run = Run([int(s) for s in args.sizes.split(",")], args.reps, datetime.now(timezone.utc))
    admin = admin_url()
    if chosen is None:
        full_run(run, admin, browser=not args.no_browser)
    else:
        rerun(run, admin, chosen)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    raise SystemExit(main())
