"""The reports page's reads and writes: exports (request, list, file) and schedules (list, save,
run now, pause, delete, history)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from components.loaders import app_engine, read, write
from data.saved_queries import fetch_queries
from data.vendor_users import fetch_vendors_emails
from reports import exports as X
from reports import schedules as S


def load_queries(owner: str) -> pd.DataFrame:
    """Returns the saved queries owner may report on (theirs and shared ones)."""
    with read(app_engine()) as conn:
        return fetch_queries(conn, owner)


def save_export(owner: str, template: str, spec: dict, fmt: str) -> int:
    """Queues an export for the scheduler; returns its id. Raises ReportError with the reason."""
    with write() as conn:
        return X.request_export(conn, owner, template, spec, fmt)


def load_exports(owner: str | None) -> pd.DataFrame:
    """Returns the owner's exports (everyone's for None), newest first."""
    with read(app_engine()) as conn:
        return X.fetch_exports(conn, owner)


def load_export_file(export_id: int, user: str, *, admin: bool) -> tuple[Path, str] | None:
    """Returns (path, file name) of a finished export the user may download; None when it is gone."""
    with read(app_engine()) as conn:
        return X.fetch_export_file(conn, export_id, user, admin=admin)


def load_exports_in_flight(owner: str, *, everyone: bool) -> bool:
    """Returns whether any of the owner's (or everyone's) exports is queued or running."""
    with read(app_engine()) as conn:
        return X.fetch_exports_in_flight(conn, owner, everyone=everyone)


def load_vendor_recipients(vendor_ids: tuple[int, ...]) -> list[str]:
    """Returns the emails a vendor user's schedules may go to: their vendors' enabled users'."""
    with read(app_engine()) as conn:
        return sorted({e for emails in fetch_vendors_emails(conn, list(vendor_ids)).values() for e in emails})


def load_schedules(owner: str | None) -> pd.DataFrame:
    """Returns the owner's schedules (everyone's for None) with their last run."""
    with read(app_engine()) as conn:
        return S.fetch_schedules(conn, owner)


def load_run_history(schedule_id: int) -> pd.DataFrame:
    """Returns the schedule's runs and their deliveries, newest first."""
    with read(app_engine()) as conn:
        return S.fetch_run_history(conn, schedule_id)


def save_schedule(owner: str, *, schedule_id: int | None, is_admin: bool, **fields) -> int:
    """Creates or updates a schedule; returns its id. Raises ScheduleError or ReportError."""
    with write() as conn:
        return S.save_schedule(conn, owner, schedule_id=schedule_id, is_admin=is_admin, **fields)


def run_now(user: str, schedule_id: int, *, is_admin: bool) -> int:
    """Queues a run of the schedule now; returns the number of runs queued (one per fan-out value)."""
    with write() as conn:
        return S.run_now(conn, user, schedule_id, is_admin=is_admin)


def set_paused(user: str, schedule_id: int, paused: bool, *, is_admin: bool) -> None:
    with write() as conn:
        S.set_paused(conn, user, schedule_id, paused, is_admin=is_admin)


def delete_schedule(user: str, schedule_id: int, *, is_admin: bool) -> None:
    with write() as conn:
        S.delete_schedule(conn, user, schedule_id, is_admin=is_admin)
