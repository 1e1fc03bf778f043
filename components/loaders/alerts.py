"""The alerts page's reads and writes: rules with their states, a rule's instances, history and
notifications, saving, pausing, muting, deleting, testing and previewing a rule."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pandas as pd
import streamlit as st

from analytics import alerts as A
from analytics.kpis import fetch_vendor_names
from components.loaders import app_engine, read, read_figures, write
from data.errors import translated
from data.saved_queries import fetch_queries
from reports import alerts as R


def load_rules(owner: str | None) -> pd.DataFrame:
    """Returns the owner's rules (everyone's for None) with their instances' states."""
    with read(app_engine()) as conn:
        return R.fetch_rules(conn, owner)


def load_rule(rule_id: int, owner: str | None) -> dict | None:
    """Returns the rule (the owner's, or any for None); None when it is gone."""
    with read(app_engine()) as conn:
        return R.fetch_rule(conn, rule_id, owner)


def load_rule_activity(rule_id: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Returns the rule's (instances, events, notifications)."""
    with read(app_engine()) as conn:
        return (R.fetch_rule_instances(conn, rule_id), R.fetch_rule_events(conn, rule_id),
                R.fetch_rule_notifications(conn, rule_id))


@st.cache_data(ttl=600, show_spinner=False)
def load_vendor_names(vendor_ids: tuple[int, ...]) -> dict[int, str]:
    """Returns {vendor_id: name} of the vendors rules filter on (reports.alerts.filtered_vendor_ids):
    read once for the list and the rule's detail, not at every rerun."""
    if not vendor_ids:
        return {}
    with read(app_engine()) as conn:
        return fetch_vendor_names(conn, list(vendor_ids))


def load_queries(owner: str) -> pd.DataFrame:
    """Returns the saved queries owner may watch (theirs and shared ones)."""
    with read(app_engine()) as conn:
        return fetch_queries(conn, owner)


def save_rule(user: str, *, rule_id: int | None, is_admin: bool, **fields) -> int:
    """Creates or updates a rule; returns its id. Raises AlertError with the reason."""
    with write() as conn:
        return R.save_rule(conn, user, rule_id=rule_id, is_admin=is_admin, **fields)


def set_paused(user: str, rule_id: int, paused: bool, *, is_admin: bool) -> None:
    with write() as conn:
        R.set_paused(conn, user, rule_id, paused, is_admin=is_admin)


def set_muted(user: str, rule_id: int, until: datetime | None, *, is_admin: bool) -> None:
    """Mutes the rule until a time (None: unmutes)."""
    with write() as conn:
        R.mute(conn, user, rule_id, until, is_admin=is_admin)


def delete_rule(user: str, rule_id: int, *, is_admin: bool) -> None:
    with write() as conn:
        R.delete_rule(conn, user, rule_id, is_admin=is_admin)


def send_test(user: str, rule_id: int, *, is_admin: bool) -> list[dict]:
    """Sends a test notification to each of the rule's channels; returns each one's outcome. It
    opens its own connections (one per channel), so the driver's errors are translated here."""
    with translated():
        return R.send_test(app_engine(), user, rule_id, is_admin=is_admin)


def load_preview(fields: dict, progress: Callable[[float], None], vendor_ids: tuple[int, ...] = ()) -> A.Preview:
    """Returns the rule's replay over the last 30 days (metric rules; a vendor user's on their own
    role). Raises AlertError."""
    with read_figures(None, vendor_ids) as (conn, _, kw):
        return R.preview_rule(conn, fields, progress=progress, **kw)
