"""The admin and account pages' reads and writes: users, the audit log, the scheduler's status,
failed deliveries, password changes. Each write is one transaction on the app's tables."""
from __future__ import annotations

from datetime import datetime

import pandas as pd

from components.loaders import app_engine, read, write
from data import auth
from data import vendor_users as VU
from data.settings import load_settings
from data.audit import fetch_audit, fetch_audit_actions
from reports.delivery import fetch_failed_deliveries, fetch_waiting_deliveries, retry_delivery
from reports.jobs import fetch_scheduler_status


def load_users() -> pd.DataFrame:
    """Returns every user with role, state, last login and live sessions."""
    with read(app_engine()) as conn:
        return auth.fetch_users(conn)


def load_audit_actions() -> list[str]:
    """Returns the actions the audit log holds, for its filter."""
    with read(app_engine()) as conn:
        return fetch_audit_actions(conn)


def load_audit(*, user: str | None, actions: list[str], since: datetime, until: datetime) -> pd.DataFrame:
    """Returns the audit events matching the filters, newest first (at most 10,000)."""
    with read(app_engine()) as conn:
        return fetch_audit(conn, user=user, actions=actions, since=since, until=until)


def load_scheduler_status() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Returns (heartbeats, latest run of each job, failures of the last 7 days)."""
    with read(app_engine()) as conn:
        return fetch_scheduler_status(conn)


def load_deliveries() -> tuple[pd.DataFrame, int]:
    """Returns (failed deliveries, number waiting to be sent or retried)."""
    with read(app_engine()) as conn:
        return fetch_failed_deliveries(conn), fetch_waiting_deliveries(conn)


def load_vendor_choices() -> pd.DataFrame:
    """Returns (vendor_id, name, category, status) of every vendor: what a vendor user is bound to."""
    with read(app_engine()) as conn:
        return VU.fetch_vendor_choices(conn)


def save_user(username: str, password: str, role: str, *, vendor_ids: tuple[int, ...] = (), **kwargs) -> None:
    """Creates a user (data.auth.create_user; a vendor user with their vendors,
    data.vendor_users.create_vendor_user); raises AuthError with the reason, nothing written."""
    with write() as conn:
        if role == auth.VENDOR:
            VU.create_vendor_user(conn, username, password, vendor_ids, load_settings(), **kwargs)
        else:
            auth.create_user(conn, username, password, role, vendor_ids=vendor_ids, **kwargs)


def save_vendors(username: str, vendor_ids: tuple[int, ...], **kwargs) -> None:
    """Binds a vendor user to exactly vendor_ids (data.vendor_users.set_user_vendors)."""
    with write() as conn:
        VU.set_user_vendors(conn, username, vendor_ids, load_settings(), **kwargs)


def save_role(username: str, role: str, **kwargs) -> None:
    with write() as conn:
        auth.set_role(conn, username, role, **kwargs)


def save_enabled(username: str, enabled: bool, **kwargs) -> None:
    with write() as conn:
        auth.set_enabled(conn, username, enabled, **kwargs)


def save_password(username: str, password: str, **kwargs) -> None:
    """An admin's reset of another user's password."""
    with write() as conn:
        auth.reset_password(conn, username, password, **kwargs)


def save_own_password(user: auth.User, current: str, new: str, *, keep_session: str | None, client_addr: str,
                      policy: auth.LockoutPolicy) -> None:
    """Changes the user's own password; raises AuthError after committing (a wrong current password
    counts as a failed login, so the attempt is kept even when refused)."""
    refused = None
    with write() as conn:
        try:
            auth.change_own_password(conn, user, current, new, keep_session=keep_session, client_addr=client_addr,
                                     policy=policy)
        except auth.AuthError as ex:
            refused = ex
    if refused is not None:
        raise refused


def retry(delivery_id: int, *, actor: str) -> None:
    """Queues a failed delivery again."""
    with write() as conn:
        retry_delivery(conn, delivery_id, actor=actor)
