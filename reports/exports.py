"""Background exports: a user asks (app.exports, status queued), a scheduler claims it (FOR UPDATE
SKIP LOCKED, a lease renewed while it works), writes the file into EXPORT_DIR with progress on the
row, and marks it done; the page lists and serves the files until they expire.

A claim whose lease ran out (the process died) is taken over by the next scheduler; the file is
written under a temporary name and renamed only when complete, so nobody downloads half a file.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from data.audit import record
from data.db import frame
from data.settings import Settings, load_settings
from reports.templates import TEMPLATES, ReportError, build, check_spec, render

log = logging.getLogger("reports.exports")
MAX_ATTEMPTS = 3
MIME = {"csv": "text/csv", "json": "application/json", "pdf": "application/pdf",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class ExportStopped(Exception):
    """The scheduler is stopping: the export is handed back to the queue."""


class LeaseLost(Exception):
    """Another scheduler took the job over (this one was too slow to renew its lease)."""


def request_export(conn: Connection, owner: str, template: str, spec: dict, fmt: str, *,
                   settings: Settings | None = None) -> int:
    """Queues an export for the scheduler; raises ReportError naming a bad field."""
    s = settings or load_settings()
    spec = check_spec(template, spec, fmt)
    export_id = conn.execute(sa.text("""
        INSERT INTO app.exports (owner, template, params, format, title, expires_at)
        VALUES (:o, :t, CAST(:p AS jsonb), :f, :title, now() + make_interval(days => :d))
        RETURNING export_id"""), {"o": owner, "t": template, "p": json.dumps(spec), "f": fmt,
                                  "title": TEMPLATES[template].label, "d": s.export_expiry_days}).scalar()
    record(conn, "export.request", actor=owner, target=str(export_id), detail={"template": template, "format": fmt})
    return int(export_id)


def list_exports(conn: Connection, owner: str | None = None, limit: int = 200):
    """The owner's exports (everyone's when owner is None), newest first."""
    return frame(conn.execute(sa.text("""
        SELECT export_id, owner, template, title, format, status, progress, step, rows, bytes, file_name, path,
               message, created_at, finished_at, expires_at
        FROM app.exports WHERE (CAST(:o AS text) IS NULL OR owner = :o)
        ORDER BY created_at DESC, export_id DESC LIMIT :n"""), {"o": owner, "n": limit}))


def export_file(conn: Connection, export_id: int, user: str, *, admin: bool = False) -> tuple[Path, str] | None:
    """Returns (path, download name) of a finished, unexpired export the user may read, else None."""
    row = conn.execute(sa.text("""
        SELECT owner, path, file_name FROM app.exports
        WHERE export_id = :id AND status = 'done' AND expires_at > now()"""), {"id": export_id}).mappings().first()
    if row is None or (row["owner"] != user and not admin) or not row["path"] or not Path(row["path"]).exists():
        return None
    return Path(row["path"]), row["file_name"]


@dataclass
class Job:
    export_id: int
    owner: str
    template: str
    spec: dict
    format: str
    attempts: int


def claim_export(engine: Engine, worker: str, lease_seconds: int) -> Job | None:
    """Takes the oldest queued export (or one whose lease ran out) for this worker."""
    with engine.begin() as conn:
        row = conn.execute(sa.text("""
            UPDATE app.exports SET status = 'running', worker = :w, attempts = attempts + 1,
                   lease_until = now() + make_interval(secs => :lease), started_at = now(), progress = 0,
                   step = 'starting'
            WHERE export_id = (
                SELECT export_id FROM app.exports
                WHERE (status = 'queued' OR (status = 'running' AND lease_until < now())) AND expires_at > now()
                ORDER BY created_at, export_id FOR UPDATE SKIP LOCKED LIMIT 1)
            RETURNING export_id, owner, template, params, format, attempts"""),
            {"w": worker, "lease": lease_seconds}).mappings().first()
    if row is None:
        return None
    return Job(row["export_id"], row["owner"], row["template"], dict(row["params"]), row["format"], row["attempts"])


def file_name(title: str, export_id: int, fmt: str, when: datetime, suffix: str = "") -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_").lower()[:60] or "export"
    extra = ("_" + re.sub(r"[^A-Za-z0-9]+", "_", suffix).strip("_").lower()[:40]) if suffix else ""
    return f"{slug}{extra}_{when:%Y%m%d_%H%M}_{export_id}.{fmt}"


def produce(engine: Engine, job: Job, worker: str, *, settings: Settings | None = None, now: datetime | None = None,
            stop: Callable[[], bool] | None = None):
    """Builds and writes job's file, renewing its lease and showing progress on its row, and
    checking stop. Returns (report, path, file name, rows, bytes). Raises ReportError (the spec
    cannot be made), ExportStopped, LeaseLost."""
    s = settings or load_settings()
    # A scheduled run's relative period is its slot's ("yesterday" of the 07:00 slot, even when
    # the run starts after midnight); a requested export's is the time it runs.
    now = now or (datetime.fromisoformat(job.spec["as_of"]) if job.spec.get("as_of") else datetime.now(timezone.utc))
    s.export_dir.mkdir(parents=True, exist_ok=True)
    last = {"at": 0.0}

    def progress(fraction: float, step: str) -> None:
        if stop is not None and stop():
            raise ExportStopped()
        if time.monotonic() - last["at"] < 1.0 and fraction < 1:
            return
        last["at"] = time.monotonic()
        with engine.begin() as conn:
            renewed = conn.execute(sa.text("""
                UPDATE app.exports SET lease_until = now() + make_interval(secs => :lease), progress = :p, step = :st
                WHERE export_id = :id AND worker = :w AND status = 'running'"""),
                {"lease": s.job_lease_seconds, "id": job.export_id, "w": worker,
                 "p": round(min(max(fraction, 0), 1), 3), "st": step[:200]}).rowcount
        if not renewed:
            raise LeaseLost()

    progress(0.05, "reading the data")
    with engine.connect() as conn:
        # One snapshot: the report's tables agree with each other even while rollups refresh.
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            report = build(conn, job.template, job.spec, job.format, user=job.owner, now=now, tz=s.timezone)
            if job.spec.get("title"):   # a schedule's name (and fan-out value)
                report.title = job.spec["title"]
                report.about["Report"] = report.title
            name = file_name(report.title, job.export_id, job.format, now.astimezone(s.tz))
            path = s.export_dir / name
            partial = path.with_name(path.name + ".partial")
            progress(0.2, "writing the file")
            try:
                with open(partial, "wb") as out:
                    rows = render(report, job.format, out, progress=progress)
                progress(0.95, "finishing")
                os.replace(partial, path)
            finally:
                if partial.exists():
                    partial.unlink()
    return report, path, name, rows, path.stat().st_size


def run_export(engine: Engine, job: Job, worker: str, *, settings: Settings | None = None,
               stop: Callable[[], bool] | None = None) -> str:
    """Produces a claimed export and records the outcome on its row; returns its status."""
    s = settings or load_settings()
    from reports.schedules import finish_run

    try:
        report, path, name, rows, size = produce(engine, job, worker, settings=s, stop=stop)
    except ExportStopped:
        with engine.begin() as conn:
            conn.execute(sa.text("""UPDATE app.exports SET status = 'queued', worker = NULL, lease_until = NULL,
                                    step = 'waiting: the scheduler restarted', attempts = attempts - 1
                                    WHERE export_id = :id AND worker = :w"""), {"id": job.export_id, "w": worker})
        return "queued"
    except LeaseLost:
        log.warning("export %s: another scheduler took it over", job.export_id)
        return "lost"
    except Exception as ex:  # noqa: BLE001 - the job boundary: recorded on the row
        from analytics.query import QueryFailed, QueryRejected
        expected = isinstance(ex, (ReportError, QueryRejected, QueryFailed))
        if not expected:
            log.exception("export %s failed", job.export_id)
        retry = not expected and job.attempts < MAX_ATTEMPTS
        message = str(ex) if expected else f"{type(ex).__name__}: {ex}"
        with engine.begin() as conn:
            marked = conn.execute(sa.text("""UPDATE app.exports SET status = :st, message = :m, worker = NULL,
                                    lease_until = NULL, finished_at = CASE WHEN :st = 'failed' THEN now() END
                                    WHERE export_id = :id AND worker = :w"""),
                                  {"st": "queued" if retry else "failed", "m": message[:2000], "id": job.export_id,
                                   "w": worker}).rowcount
            if marked and not retry:
                finish_run(conn, job.export_id, ok=False, message=message, settings=s)
        return "queued" if retry else "failed"
    with engine.begin() as conn:
        done = conn.execute(sa.text("""
            UPDATE app.exports SET status = 'done', progress = 1, step = 'done', rows = :r, bytes = :b,
                   file_name = :n, path = :p, finished_at = now(), lease_until = NULL, message = ''
            WHERE export_id = :id AND worker = :w AND status = 'running'"""),
            {"r": rows, "b": size, "n": name, "p": str(path), "id": job.export_id, "w": worker}).rowcount
        if done:
            # The same transaction: a run is done exactly when its deliveries are in the outbox.
            finish_run(conn, job.export_id, ok=True, report=report, path=path, file_name=name, rows=rows, size=size,
                       settings=s)
    if not done:  # taken over meanwhile: the other scheduler's file is the one kept
        path.unlink(missing_ok=True)
        return "lost"
    log.info("export %s done: %s rows, %s bytes, %s", job.export_id, rows, size, name)
    return "done"


def run_exports(engine: Engine, worker: str, *, settings: Settings | None = None, stop=None, limit: int = 20) -> int:
    """Claims and runs queued exports until none is left (or limit); returns how many ran."""
    s = settings or load_settings()
    ran = 0
    while ran < limit and not (stop and stop()):
        job = claim_export(engine, worker, s.job_lease_seconds)
        if job is None:
            break
        run_export(engine, job, worker, settings=s, stop=stop)
        ran += 1
    return ran


def cleanup_expired(engine: Engine, *, settings: Settings | None = None) -> tuple[int, int]:
    """Deletes expired exports' files and rows (and partial files older than a day); returns
    (rows deleted, files deleted)."""
    s = settings or load_settings()
    with engine.begin() as conn:
        gone = conn.execute(sa.text("DELETE FROM app.exports WHERE expires_at <= now() RETURNING path")).scalars().all()
    files = 0
    for p in gone:
        if p and Path(p).exists():
            Path(p).unlink()
            files += 1
    if s.export_dir.exists():
        for partial in s.export_dir.glob("*.partial"):
            if time.time() - partial.stat().st_mtime > 86_400:
                partial.unlink(missing_ok=True)
                files += 1
    return len(gone), files
