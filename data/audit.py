"""The audit log (app.audit_log): one function records, one reads. Later features write here too."""
from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

# Actions written so far; later issues add query.run, export.*, schedule.*, alert.*.
ACTIONS = ("login.success", "login.failure", "login.locked", "logout", "user.create", "user.role",
           "user.enable", "user.disable", "user.password_reset", "account.password_change",
           "account.password_change_failed")


def record(conn: Connection, action: str, *, actor: str = "", target: str = "", detail: dict | None = None,
           client_addr: str = "", at: datetime | None = None) -> None:
    """Appends one audit row in the caller's transaction, so it commits or rolls back with the act."""
    conn.execute(sa.text("INSERT INTO app.audit_log (at, actor, action, target, detail, client_addr) "
                         "VALUES (coalesce(:at, now()), :actor, :action, :target, CAST(:detail AS jsonb), :addr)"),
                 {"at": at, "actor": actor, "action": action, "target": target,
                  "detail": json.dumps(detail or {}, default=str), "addr": client_addr})


def fetch_audit(conn: Connection, *, user: str | None = None, actions: list[str] | None = None,
                since: datetime | None = None, until: datetime | None = None, limit: int = 10_000) -> pd.DataFrame:
    """Returns (at, actor, action, target, detail, client_addr) rows, newest first, at most limit.

    user matches events the user did (actor) or that were done to them (target).
    """
    return pd.read_sql(sa.text("""
        SELECT at, actor, action, target, CASE WHEN detail = '{}' THEN '' ELSE detail::text END AS detail,
               client_addr
        FROM app.audit_log
        WHERE (CAST(:user AS text) IS NULL OR actor = :user OR target = :user)
          AND (CAST(:actions AS text[]) IS NULL OR action = ANY(CAST(:actions AS text[])))
          AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)
          AND (CAST(:until AS timestamptz) IS NULL OR at < :until)
        ORDER BY at DESC, id DESC LIMIT :limit"""), conn,
        params={"user": user or None, "actions": list(actions) if actions else None,
                "since": since, "until": until, "limit": limit})


def fetch_audit_actions(conn: Connection) -> list[str]:
    """Returns the actions the viewer can filter on: the known ones and any others in the log."""
    actions = conn.execute(sa.text("SELECT DISTINCT action FROM app.audit_log")).scalars().all()
    return sorted(set(actions) | set(ACTIONS))
