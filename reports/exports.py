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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics.kpis import READ_LAYOUT, fetch_rollup_layout
from analytics.query import QueryFailed, QueryRejected
from data.audit import record
from data.auth import fetch_user
from data.db import frame
from data.settings import Settings, load_settings
from data.vendor_scope import vendor_engine
from reports.schedules import finish_run
from reports.templates import TEMPLATES, Report, ReportError, build, check_spec, render

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
    user = fetch_user(conn, owner)
    if template == "saved_query" and (user is None or user.role not in ("analyst", "admin")):
        raise ReportError("template: exporting a saved query needs the analyst or admin role")
    spec.pop("vendor_scope", None)   # set here only, from the database's binding, never from a form
    if user is not None and user.is_vendor:
        # A vendor user's export is made on their vendors' own role (_reader), of one of their vendors.
        if not TEMPLATES[template].vendor_scoped:
            raise ReportError(f"template: {TEMPLATES[template].label} is about the whole marketplace; export your "
                              "own report instead")
        chosen = [int(v) for v in (spec.get("filters") or {}).get("vendor_id") or []]
        if not chosen or not set(chosen) <= set(user.vendor_ids):
            raise ReportError("filters: choose one of your own vendors")
        spec["vendor_scope"] = list(user.vendor_ids)
    export_id = conn.execute(sa.text("""
        INSERT INTO app.exports (owner, template, params, format, title, expires_at)
        VALUES (:o, :t, CAST(:p AS jsonb), :f, :title, now() + make_interval(days => :d))
        RETURNING export_id"""), {"o": owner, "t": template, "p": json.dumps(spec), "f": fmt,
                                  "title": TEMPLATES[template].label, "d": s.export_expiry_days}).scalar()
    record(conn, "export.request", actor=owner, target=str(export_id), detail={"template": template, "format": fmt})
    return int(export_id)


def fetch_exports(conn: Connection, owner: str | None = None, limit: int = 200) -> pd.DataFrame:
    """The owner's exports (everyone's when owner is None), newest first."""
    return frame(conn.execute(sa.text("""
        SELECT export_id, owner, template, title, format, status, progress, step, rows, bytes, file_name, path,
               message, created_at, finished_at, expires_at
        FROM app.exports WHERE (CAST(:o AS text) IS NULL OR owner = :o)
        ORDER BY created_at DESC, export_id DESC LIMIT :n"""), {"o": owner, "n": limit}))


def fetch_exports_in_flight(conn: Connection, owner: str, *, everyone: bool = False) -> bool:
    """Whether any of the owner's exports (everyone's) is queued or running."""
    return bool(conn.execute(sa.text("""
        SELECT EXISTS (SELECT 1 FROM app.exports WHERE status IN ('queued', 'running') AND (owner = :u OR :all))"""),
        {"u": owner, "all": everyone}).scalar())


def fetch_export_file(conn: Connection, export_id: int, user: str, *, admin: bool = False) -> tuple[Path, str] | None:
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


def claim_export(engine: Engine, worker: str, lease_seconds: int, *, settings: Settings | None = None) -> Job | None:
    """Takes the oldest queued export (or one whose lease ran out) for this worker."""
    with engine.begin() as conn:
        _fail_abandoned(conn, settings or load_settings())
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


class _Lease:
    """Renews a claimed export's lease from a thread every third of JOB_LEASE_SECONDS, for as long
    as the work lasts (building a report or closing a workbook sends no progress), and notices
    when another scheduler has taken the job over. The claim is (worker, attempts)."""

    def __init__(self, engine: Engine, job: "Job", worker: str, seconds: int):
        self.engine, self.job, self.worker, self.seconds = engine, job, worker, seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job.export_id}", daemon=True)

    def renew(self, progress: float | None = None, step: str | None = None) -> bool:
        with self.engine.begin() as conn:
            ok = bool(conn.execute(sa.text("""
                UPDATE app.exports SET lease_until = now() + make_interval(secs => :lease),
                       progress = coalesce(:p, progress), step = coalesce(:st, step)
                WHERE export_id = :id AND worker = :w AND attempts = :a AND status = 'running'"""),
                {"lease": self.seconds, "id": self.job.export_id, "w": self.worker, "a": self.job.attempts,
                 "p": progress, "st": step}).rowcount)
        if not ok:
            self.lost.set()
        return ok

    def _run(self) -> None:
        while not self._stop.wait(max(1.0, self.seconds / 3)):
            try:
                if not self.renew():
                    return
            except sa.exc.SQLAlchemyError as ex:
                log.warning("export %s: lease not renewed: %s", self.job.export_id, getattr(ex, "orig", ex))

    def __enter__(self) -> "_Lease":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _reader(engine: Engine, job: Job, settings: Settings) -> tuple[Engine, int | None | str]:
    """The engine a job's report is read on and the rollups' layout to pass its builder: a run of a
    schedule sent to every vendor (spec "vendor_scope") reads on that vendor's own database role, so
    PostgreSQL keeps every other vendor's rows out of its file; its layout is read here, on the
    app's engine (the vendor's role cannot read schema app). Anything else: the app's engine."""
    scope = job.spec.get("vendor_scope")
    if not scope:
        return engine, READ_LAYOUT
    if not TEMPLATES[job.template].vendor_scoped:
        raise ReportError(f"template: {TEMPLATES[job.template].label} cannot be made on a vendor's role")
    with engine.connect() as conn:
        layout = fetch_rollup_layout(conn, settings.timezone)
    return vendor_engine(settings, scope), layout


def produce(engine: Engine, job: Job, worker: str, *, settings: Settings | None = None, now: datetime | None = None,
            stop: Callable[[], bool] | None = None) -> tuple[Report, Path, Path, str, int, int]:
    """Builds and writes job's file under a name of this claim's own, renewing the lease (a thread)
    and showing progress on its row, checking stop. Returns (report, partial path, final path,
    file name, rows, bytes); run_export renames the file when it marks the export done. Raises
    ReportError (the spec cannot be made), ExportStopped, LeaseLost."""
    s = settings or load_settings()
    # A scheduled run's relative period is its slot's ("yesterday" of the 07:00 slot, even when
    # the run starts after midnight); a requested export's is the time it runs.
    now = now or (datetime.fromisoformat(job.spec["as_of"]) if job.spec.get("as_of") else datetime.now(timezone.utc))
    s.export_dir.mkdir(parents=True, exist_ok=True)
    last = {"at": 0.0}
    with _Lease(engine, job, worker, s.job_lease_seconds) as lease:
        def progress(fraction: float, step: str) -> None:
            if stop is not None and stop():
                raise ExportStopped()
            if lease.lost.is_set():
                raise LeaseLost()
            if time.monotonic() - last["at"] < 1.0 and fraction < 1:
                return
            last["at"] = time.monotonic()
            if not lease.renew(round(min(max(fraction, 0), 1), 3), step[:200]):
                raise LeaseLost()

        progress(0.05, "reading the data")
        reader, layout = _reader(engine, job, s)
        with reader.connect() as conn:
            # One snapshot: the report's tables agree with each other even while rollups refresh.
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                report = build(conn, job.template, job.spec, job.format, user=job.owner, now=now, tz=s.timezone,
                               layout=layout)
                if job.spec.get("title"):   # a schedule's name (and fan-out value)
                    report.title = job.spec["title"]
                    report.about["Report"] = report.title
                name = file_name(report.title, job.export_id, job.format, now.astimezone(s.tz))
                path = s.export_dir / name
                # This claim's own file: a scheduler that took the job over writes another one.
                partial = path.with_name(f"{path.name}.{job.attempts}.{os.getpid()}.partial")
                for stale in s.export_dir.glob(f"{path.name}.*.partial"):
                    if int(stale.name[len(path.name) + 1:].split(".", 1)[0] or 0) < job.attempts:
                        stale.unlink(missing_ok=True)   # an earlier claim's, whose lease ran out
                progress(0.2, "writing the file")
                try:
                    with open(partial, "wb") as out:
                        rows = render(report, job.format, out, progress=progress)
                    progress(0.95, "finishing")
                except BaseException:
                    partial.unlink(missing_ok=True)
                    raise
        if lease.lost.is_set():
            partial.unlink(missing_ok=True)
            raise LeaseLost()
    return report, partial, path, name, rows, partial.stat().st_size


def _fail_abandoned(conn: Connection, settings: Settings) -> int:
    """Exports whose lease ran out MAX_ATTEMPTS times (the process running them died or hung each
    time) are marked failed rather than taken again; their schedule runs too."""
    gone = conn.execute(sa.text("""
        UPDATE app.exports SET status = 'failed', lease_until = NULL, finished_at = now(),
               message = 'stopped ' || attempts || ' times without finishing (the scheduler running it died '
                         'or hung); request it again, or narrow it'
        WHERE status = 'running' AND lease_until < now() AND attempts >= :max
        RETURNING export_id, message"""), {"max": MAX_ATTEMPTS}).all()
    for export_id, message in gone:
        finish_run(conn, export_id, ok=False, message=message, settings=settings)
    return len(gone)


def run_export(engine: Engine, job: Job, worker: str, *, settings: Settings | None = None,
               stop: Callable[[], bool] | None = None) -> str:
    """Produces a claimed export and records the outcome on its row; returns its status."""
    s = settings or load_settings()
    claim = {"id": job.export_id, "w": worker, "a": job.attempts}
    mine = "export_id = :id AND worker = :w AND attempts = :a AND status = 'running'"
    try:
        report, partial, path, name, rows, size = produce(engine, job, worker, settings=s, stop=stop)
    except ExportStopped:
        with engine.begin() as conn:
            conn.execute(sa.text(f"""UPDATE app.exports SET status = 'queued', worker = NULL, lease_until = NULL,
                                     step = 'waiting: the scheduler restarted', attempts = attempts - 1
                                     WHERE {mine}"""), claim)
        return "queued"
    except LeaseLost:
        log.warning("export %s: another scheduler took it over", job.export_id)
        return "lost"
    except Exception as ex:  # noqa: BLE001 - the job boundary: recorded on the row
        expected = isinstance(ex, (ReportError, QueryRejected, QueryFailed))
        if not expected:
            log.exception("export %s failed", job.export_id)
        retry = not expected and job.attempts < MAX_ATTEMPTS
        message = str(ex) if expected else f"{type(ex).__name__}: {ex}"
        with engine.begin() as conn:
            marked = conn.execute(sa.text(f"""UPDATE app.exports SET status = :st, message = :m, worker = NULL,
                                     lease_until = NULL, finished_at = CASE WHEN :st = 'failed' THEN now() END
                                     WHERE {mine}"""),
                                  {**claim, "st": "queued" if retry else "failed", "m": message[:2000]}).rowcount
            if marked and not retry:
                finish_run(conn, job.export_id, ok=False, message=message, settings=s)
        return "queued" if retry else "failed"
    try:
        with engine.begin() as conn:
            done = conn.execute(sa.text(f"""
                UPDATE app.exports SET status = 'done', progress = 1, step = 'done', rows = :r, bytes = :b,
                       file_name = :n, path = :p, finished_at = now(), lease_until = NULL, message = ''
                WHERE {mine}"""), {**claim, "r": rows, "b": size, "n": name, "p": str(path)}).rowcount
            if done:
                # The same transaction: a run is done exactly when its deliveries are in the outbox,
                # and the file takes its name only while this claim holds the row (locked by the UPDATE).
                finish_run(conn, job.export_id, ok=True, report=report, path=path, file_name=name, rows=rows,
                           size=size, settings=s)
                os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)   # not renamed: taken over meanwhile, or the commit failed
    if not done:
        return "lost"
    log.info("export %s done: %s rows, %s bytes, %s", job.export_id, rows, size, name)
    return "done"


def run_exports(engine: Engine, worker: str, *, settings: Settings | None = None,
                stop: Callable[[], bool] | None = None, limit: int = 20) -> int:
    """Claims and runs queued exports until none is left (or limit); returns how many ran."""
    s = settings or load_settings()
    ran = 0
    while ran < limit and not (stop and stop()):
        job = claim_export(engine, worker, s.job_lease_seconds, settings=s)
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
        gone = conn.execute(sa.text("DELETE FROM app.exports WHERE expires_at <= now() AND status <> 'running' "
                                    "RETURNING path")).scalars().all()
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
