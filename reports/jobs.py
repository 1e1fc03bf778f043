"""Scheduler jobs: thin wrappers that call one command, record the run, and log domain errors."""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics.customer_scores import (MOVEMENT_DAYS, add_movements, compute_scores, page_dates,
                                      preset_movement_dates, store_scores, store_vendor_scores)
from analytics.forecast_series import run_nightly
from analytics.filters import Filters, Period, resolve_period
from data.auth import prune_login_attempts
from data.peer_benchmarks import PRESETS as BENCHMARK_PRESETS
from data.peer_benchmarks import fetch_rollups_ready, refresh_peer_benchmarks
from data.rollups import fetch_period_version, fetch_rollup_status, refresh_rollups
from data.settings import load_settings
from data.vendor_scope import vendor_engine
from data.vendor_users import SINGLE_VENDOR_SCOPES, fetch_single_vendor_scopes

log = logging.getLogger("reports.scheduler")
WORKER = f"{socket.gethostname()}:{os.getpid()}"
STARTED_AT = datetime.now(timezone.utc)


def heartbeat(engine: Engine, info: dict | None = None) -> bool:
    """Upserts this worker's heartbeat row; returns False (and logs) when the database is unreachable."""
    try:
        _beat(engine, info)
        return True
    except sa.exc.SQLAlchemyError as ex:
        log.error("heartbeat not written: %s", getattr(ex, "orig", ex))
        return False


def _beat(engine: Engine, info: dict | None) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO app.scheduler_heartbeat (worker, hostname, pid, started_at, beat_at, info)
            VALUES (:w, :h, :p, :s, now(), CAST(:i AS jsonb))
            ON CONFLICT (worker) DO UPDATE SET beat_at = now(), info = EXCLUDED.info"""),
            {"w": WORKER, "h": socket.gethostname(), "p": os.getpid(), "s": STARTED_AT,
             "i": json.dumps(info or {})})


def run_job(engine: Engine, name: str, fn: Callable[[Connection], str | None], *,
            lock: str | None = None) -> bool:
    """Runs fn in one transaction and records the run in app.job_runs; returns True if it ran.

    With lock, replicas skip the job while another holds it instead of queueing behind it.
    """
    try:
        with engine.begin() as conn:
            run_id = conn.execute(sa.text("INSERT INTO app.job_runs (job, worker) VALUES (:j, :w) RETURNING id"),
                                  {"j": name, "w": WORKER}).scalar()
    except sa.exc.SQLAlchemyError as ex:
        log.error("job %s not started, the database is unreachable: %s", name, getattr(ex, "orig", ex))
        return False
    try:
        with engine.begin() as conn:
            if lock and not conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(hashtext(:l))"), {"l": lock}).scalar():
                message, ok = "skipped: another scheduler is running it", True
            else:
                message, ok = fn(conn) or "", True
    # The job boundary: whatever a job raises is recorded against its run, and the scheduler
    # goes on with the next one.
    except Exception as ex:  # noqa: BLE001
        log.exception("job %s failed", name)
        message, ok = f"{type(ex).__name__}: {getattr(ex, 'orig', ex)}", False
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "UPDATE app.job_runs SET finished_at = now(), ok = :ok, message = :m WHERE id = :id"),
                {"ok": ok, "m": message[:2000], "id": run_id})
    except sa.exc.SQLAlchemyError as ex:
        log.error("could not record the end of job %s (run %s): %s", name, run_id, getattr(ex, "orig", ex))
    return ok


def refresh_job(conn: Connection) -> str:
    """Folds changed days into the rollups; returns a one-line summary."""
    r = refresh_rollups(conn)
    if r.mode != "none":
        log.info("rollups: %s refresh of %s days, %s customers in %s ms", r.mode, r.days, r.customers, r.elapsed_ms)
    return f"{r.mode}: {r.days} days, {r.customers} customers, {r.elapsed_ms} ms, version {r.version}"


def prune_job(conn: Connection) -> str:
    """Deletes login attempts older than 30 days (the audit log keeps its rows)."""
    return f"{prune_login_attempts(conn)} old login attempts deleted"


def _nightly_due(conn: Connection, job: str, at: str, done_sql: str, days_back: int,
                 now: datetime | None, *, done_params: dict | None = None, at_once: bool = False) -> date | None:
    """Returns the date a nightly job is due for (local today − days_back), or None: before `at`
    (local HH:MM), when done_sql (the latest date done, with done_params) reached it, or within an
    hour of a failed run. A missed night is caught up by the next check. at_once: due at any hour
    while nothing was ever done (done_sql gives NULL)."""
    now = now or datetime.now(timezone.utc)
    local = now.astimezone(load_settings().tz)
    early = local.strftime("%H:%M") < at
    if early and not at_once:
        return None
    target = local.date() - timedelta(days=days_back)
    done = conn.execute(sa.text(done_sql), done_params or {}).scalar()
    if done is not None and (early or done >= target):
        return None
    # A failed run is retried an hour later, not at every check.
    failed = conn.execute(sa.text("""
        SELECT 1 FROM app.job_runs WHERE job = :job AND ok IS FALSE
          AND started_at > CAST(:now AS timestamptz) - interval '1 hour' LIMIT 1"""), {"job": job, "now": now}).first()
    return None if failed else target


def fetch_customer_scores_due(conn: Connection, now: datetime | None = None) -> date | None:
    """Returns the as-of date the nightly customer scores are due for (yesterday, local time), or
    None: before CUSTOMER_SCORES_AT, when a run for that date is stored, or within an hour of a
    failed run."""
    return _nightly_due(conn, "customer_scores", load_settings().customer_scores_at,
                        "SELECT max(as_of) FROM mart.customer_score_runs", 1, now)


def fetch_vendor_customer_scores_due(conn: Connection, now: datetime | None = None) -> date | None:
    """Returns the as-of date each vendor's customer scores are due for (yesterday, local time), or
    None: before CUSTOMER_SCORES_AT, when every vendor with a vendor user of its own has them for that
    date (no such vendor: never due), or within an hour of a failed run."""
    return _nightly_due(conn, "vendor_customer_scores", load_settings().customer_scores_at, f"""
        SELECT COALESCE(min(COALESCE(s.as_of, DATE '0001-01-01')), DATE '9999-12-31')
        FROM ({SINGLE_VENDOR_SCOPES}) b
        LEFT JOIN mart.vendor_customer_scores s ON s.vendor_id = b.vendor_id AND s.period = 'yesterday'""", 1, now)


def vendor_customer_scores_job(conn: Connection, now: datetime | None = None, *,
                               stop: Callable[[], bool] | None = None) -> str:
    """Computes and keeps each vendor's customer scores as of yesterday (the vendor page's default
    period), then as of last year's end (its "Last year"), for every vendor with a vendor user of its
    own, each on that vendor's own database role (customer_records=False: nothing of mart.customers),
    skipping those already done: yesterday's for that date, last year's for that date while no
    refresh has changed a figure of the days up to it since. One vendor's failure is logged and named
    in the result, and the others go on; stop ends the run between vendors (yesterday's that are left
    are still due; last year's are made the next night)."""
    as_of = fetch_vendor_customer_scores_due(conn, now)
    if as_of is None:
        return "up to date"
    settings = load_settings()
    today = as_of + timedelta(days=1)
    year_end, year_before = page_dates(resolve_period("last_year", today), today)
    year_version = fetch_period_version(conn, date.min, year_end)
    kept = {(v, p): (a, dv) for v, p, a, dv in conn.execute(sa.text(
        "SELECT vendor_id, period, as_of, days_version FROM mart.vendor_customer_scores"))}
    vendors = fetch_single_vendor_scopes(conn)
    # Yesterday's for every vendor first: the page opens on them.
    todo = [(v, "yesterday", as_of, as_of - timedelta(days=MOVEMENT_DAYS)) for v in vendors
            if kept.get((v, "yesterday"), (None,))[0] != as_of]
    todo += [(v, "last_year", year_end, year_before) for v in vendors
             if kept.get((v, "last_year")) != (year_end, year_version)]
    started, failed, made = time.perf_counter(), [], 0
    for vendor, period, end, previous in todo:
        if stop is not None and stop():
            break
        begun = datetime.now(timezone.utc)
        try:
            with vendor_engine(settings, (vendor,)).connect() as vconn:
                f = Filters(Period(end, end), dims=(("vendor_id", (vendor,)),))
                scores = compute_scores(vconn, f, end, previous=previous, tz=settings.timezone,
                                        customer_records=False)
                if period == "yesterday":
                    # Every period preset ending yesterday reads these scores: keep each one's movement.
                    add_movements(vconn, scores, f, preset_movement_dates(as_of), tz=settings.timezone)
            with conn.begin_nested():
                store_vendor_scores(conn, vendor, scores, started_at=begun, period=period,
                                    days_version=year_version if period == "last_year" else None)
            made += 1
        except Exception:  # noqa: BLE001 - one vendor's failure must not hold up the others' scores
            log.exception("customer scores of vendor %s (%s) failed", vendor, period)
            failed.append(vendor)
    took = time.perf_counter() - started
    log.info("vendor customer scores as of %s: %s of %s in %.1f s", as_of, made, len(todo), took)
    # Not raised: the vendors done are kept (the job's transaction commits); the failed ones are
    # still due, and the next check tries them again.
    counts = Counter(p for _, p, *_ in todo)
    return (f"{as_of}: customer scores of {made} of {len(todo)} vendor periods "
            f"({counts['yesterday']} as of yesterday, {counts['last_year']} as of {year_end}) in {took:.1f} s"
            + (f"; failed: vendor {', '.join(map(str, sorted(set(failed))[:20]))} (see the log)" if failed else "")
            + ("; stopped" if stop is not None and stop() else ""))


def fetch_forecasts_due(conn: Connection, now: datetime | None = None) -> date | None:
    """Returns the run date the nightly forecasts are due for (today, local time), or None: before
    FORECASTS_AT, when they are stored for today, or within an hour of a failed run."""
    return _nightly_due(conn, "forecasts", load_settings().forecasts_at,
                        "SELECT max(run_date) FROM mart.forecast_runs", 0, now)


def fetch_peer_benchmarks_due(conn: Connection, now: datetime | None = None) -> date | None:
    """Returns the local today the vendors' peer benchmarks are due for, or None: before
    PEER_BENCHMARKS_AT (unless none are stored: then at once), when they were computed today, while
    the rollups cannot answer (the next refresh rebuilds them), or within an hour of a failed run."""
    settings = load_settings()
    if not fetch_rollups_ready(conn, settings.timezone):
        return None
    # Done on the day the stored rows were computed. None stored: without order lines there is
    # nothing to compare (done for ever, not due every check); with lines but no value in any
    # period (data older than last year), done on the day of the last run that succeeded.
    return _nightly_due(conn, "peer_benchmarks", settings.peer_benchmarks_at, """
        SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM mart.order_items) THEN DATE '9999-12-31'
                    ELSE COALESCE((SELECT (max(computed_at) AT TIME ZONE :tz)::date FROM mart.vendor_benchmarks),
                                  (SELECT (max(started_at) AT TIME ZONE :tz)::date FROM app.job_runs
                                   WHERE job = 'peer_benchmarks' AND ok)) END""",
                        0, now, done_params={"tz": settings.timezone}, at_once=True)


def peer_benchmarks_job(conn: Connection, now: datetime | None = None) -> str:
    """Recomputes every vendor's peer benchmarks for the period presets on the local today
    (data.peer_benchmarks), replacing the stored ones in the job's transaction."""
    today = fetch_peer_benchmarks_due(conn, now)
    if today is None:
        return "up to date"
    started = time.perf_counter()
    periods = {name: (p.start, p.end) for name, p in ((n, resolve_period(n, today)) for n in BENCHMARK_PRESETS)}
    rows = refresh_peer_benchmarks(conn, periods, tz=load_settings().timezone, now=now)
    took = time.perf_counter() - started
    log.info("peer benchmarks for %s: %s vendor figures in %.1f s", today, rows, took)
    return f"{today}: {rows:,} vendor figures over {len(periods)} periods in {took:.1f} s"


def forecasts_job(conn: Connection, now: datetime | None = None) -> str:
    """Forecasts the total and the top vendors and categories (see analytics.forecast_series)."""
    run_date = fetch_forecasts_due(conn, now)
    if run_date is None:
        return "up to date"
    started = time.perf_counter()
    settings = load_settings()
    r = run_nightly(conn, run_date, tz=settings.timezone, top=settings.forecast_top)
    took = time.perf_counter() - started
    log.info("forecasts for %s: %s of %s series stored in %.1f s", run_date, r["stored"], r["series"], took)
    return (f"{run_date}: {r['stored']} of {r['series']} series stored in {took:.1f} s"
            + (f"; not forecast: {'; '.join(r['messages'])}" if r["messages"] else ""))


def customer_scores_job(conn: Connection, now: datetime | None = None) -> str:
    """Computes and stores every customer's scores as of yesterday when they are due (on the
    scheduler's nightly worker thread)."""
    as_of = fetch_customer_scores_due(conn, now)
    if as_of is None:  # another replica stored them while this one waited
        return "up to date"
    started = datetime.now(timezone.utc)
    tz = load_settings().timezone
    scores = compute_scores(conn, Filters.make(Period(as_of, as_of)), as_of, tz=tz)
    run_id = store_scores(conn, scores, started_at=started, rollup_version=fetch_rollup_status(conn)["version"], tz=tz)
    took = (datetime.now(timezone.utc) - started).total_seconds()
    log.info("customer scores: run %s, %s customers as of %s (%s) in %.1f s", run_id, scores.customers, as_of,
             scores.status, took)
    return (f"run {run_id}: {scores.customers:,} customers as of {as_of}, {scores.status}"
            f"{': ' + scores.message if scores.message else ''}, {took:.1f} s")


def fetch_scheduler_status(conn: Connection, *, failures_days: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Returns (heartbeats, latest run per job, recent failures) for the admin page."""
    beats = pd.read_sql(sa.text("""
        SELECT worker, hostname, pid, started_at, beat_at, extract(epoch FROM now() - beat_at)::int AS seconds_ago
        FROM app.scheduler_heartbeat ORDER BY beat_at DESC"""), conn)
    latest = pd.read_sql(sa.text("""
        SELECT DISTINCT ON (job) job, started_at, finished_at, ok, message, worker
        FROM app.job_runs ORDER BY job, started_at DESC"""), conn)
    failures = pd.read_sql(sa.text("""
        SELECT job, started_at, finished_at, message, worker FROM app.job_runs
        WHERE ok IS FALSE AND started_at > now() - make_interval(days => :d)
        ORDER BY started_at DESC LIMIT 200"""), conn, params={"d": failures_days})
    return beats, latest, failures
