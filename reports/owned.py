"""What alert rules and schedules share as things a user owns: who may own one, and the owner's (or an
admin's) change, pause and delete, each recorded in the audit log. One definition for both tables."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.audit import record
from data.auth import fetch_user

OWNER_ROLES = ("analyst", "admin")


@dataclass(frozen=True)
class OwnedTable:
    table: str     # schema-qualified
    key: str       # its id column
    audit: str     # the audit log's action prefix: "<audit>.pause", "<audit>.delete", …


# The only tables these functions touch: their names come from here, never from a caller's text.
OWNED = {
    "alert_rules": OwnedTable("app.alert_rules", "rule_id", "alert"),
    "schedules": OwnedTable("app.schedules", "schedule_id", "schedule"),
}


def may_own(conn: Connection, user: str, *, vendors: bool = False) -> bool:
    """Whether user (enabled) has a role that may own alert rules and schedules; vendors: vendor
    users too (their own report's schedules: reports.schedules)."""
    u = fetch_user(conn, user)
    return u is not None and (u.role in OWNER_ROLES or (vendors and u.is_vendor))


def is_admin(conn: Connection, user: str) -> bool:
    """Whether user is an enabled admin, as the database says now."""
    u = fetch_user(conn, user)
    return u is not None and u.role == "admin"


def update_owned(conn: Connection, table: str, user: str, row_id: int, *, is_admin: bool, sets: str,
                 params: dict | None = None) -> bool:
    """Runs UPDATE … SET sets on the row if user owns it (or is_admin); returns whether it did.
    sets is the caller's fixed SQL (values are bound through params)."""
    t = OWNED[table]
    return bool(conn.execute(sa.text(f"UPDATE {t.table} SET {sets} WHERE {t.key} = :id AND (owner = :u OR :admin)"),
                             {"id": row_id, "u": user, "admin": is_admin, **(params or {})}).rowcount)


def set_paused(conn: Connection, table: str, user: str, row_id: int, paused: bool, *, is_admin: bool,
               next_at: str, params: dict | None = None) -> bool:
    """Pauses or resumes the owned row, setting its next due time (next_at, the caller's fixed SQL:
    "next_eval_at = now()"); records <audit>.pause or <audit>.resume. Returns whether it did."""
    ok = update_owned(conn, table, user, row_id, is_admin=is_admin,
                      sets=f"paused = :p, {next_at}, updated_at = now()", params={"p": paused, **(params or {})})
    if ok:
        audit = OWNED[table].audit
        record(conn, f"{audit}.pause" if paused else f"{audit}.resume", actor=user, target=str(row_id))
    return ok


def delete_owned(conn: Connection, table: str, user: str, row_id: int, *, is_admin: bool) -> bool:
    """Deletes the row if user owns it (or is_admin); records <audit>.delete. Returns whether it did."""
    t = OWNED[table]
    ok = bool(conn.execute(sa.text(f"DELETE FROM {t.table} WHERE {t.key} = :id AND (owner = :u OR :admin)"),
                           {"id": row_id, "u": user, "admin": is_admin}).rowcount)
    if ok:
        record(conn, f"{t.audit}.delete", actor=user, target=str(row_id))
    return ok
