"""Saved queries (name, description, tags, owner, private or shared, edit history) and each
user's query history; every run is also written to the audit log."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from data.audit import record
from data.auth import IS_VENDOR_USER
from data.db import frame

HISTORY_KEPT = 200
MAX_NAME = 120
# The longest SQL text saved or run (analytics.query reads it too): a 1 MB query took 12 s and
# 890 MB of the app's memory to parse; 100,000 characters parse in half a second.
MAX_SQL_CHARS = 100_000


class SavedQueryError(ValueError):
    """A saved query cannot be written; the message says which field and why."""


def statement_hash(sql: str) -> str:
    return hashlib.sha256(sql.strip().encode()).hexdigest()[:16]


def _tags(tags) -> list[str]:
    if isinstance(tags, str):
        tags = tags.split(",")
    return sorted({t.strip().lower() for t in tags or [] if t.strip()})


def save_query(conn: Connection, owner: str, name: str, sql: str, *, description: str = "",
               tags: str | Iterable[str] = (), shared: bool = False, query_id: int | None = None) -> int:
    """Creates a saved query (or updates query_id, which owner must own) and records the version."""
    name = (name or "").strip()
    if not name:
        raise SavedQueryError("name: give the query a name")
    if len(name) > MAX_NAME:
        raise SavedQueryError(f"name: at most {MAX_NAME} characters, not {len(name)}")
    if not (sql or "").strip():
        raise SavedQueryError("sql: the query is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise SavedQueryError(f"sql: at most {MAX_SQL_CHARS:,} characters, not {len(sql):,}")
    values = {"o": owner, "n": name, "d": description.strip(), "t": _tags(tags), "s": bool(shared), "q": sql}
    try:
        with conn.begin_nested():
            if query_id is None:
                query_id = conn.execute(sa.text("""
                    INSERT INTO app.saved_queries (owner, name, description, tags, shared, sql)
                    VALUES (:o, :n, :d, :t, :s, :q) RETURNING query_id"""), values).scalar()
            else:
                updated = conn.execute(sa.text("""
                    UPDATE app.saved_queries SET name = :n, description = :d, tags = :t, shared = :s, sql = :q,
                           updated_at = now()
                    WHERE query_id = :id AND owner = :o"""), {**values, "id": query_id}).rowcount
                if not updated:
                    raise SavedQueryError("only the owner can change a saved query; save it under your own name")
    except sa.exc.IntegrityError:
        raise SavedQueryError(f"name: you already have a query called {name!r}") from None
    conn.execute(sa.text("""
        INSERT INTO app.saved_query_versions (query_id, version, name, description, sql, edited_by)
        SELECT :id, COALESCE(max(version), 0) + 1, :n, :d, :q, :o FROM app.saved_query_versions WHERE query_id = :id"""),
                 {"id": query_id, **values})
    record(conn, "sql.save", actor=owner, target=str(query_id), detail={"name": name, "shared": bool(shared)})
    return int(query_id)


def delete_query(conn: Connection, owner: str, query_id: int) -> bool:
    deleted = conn.execute(sa.text("DELETE FROM app.saved_queries WHERE query_id = :id AND owner = :o"),
                           {"id": query_id, "o": owner}).rowcount
    if deleted:
        record(conn, "sql.delete", actor=owner, target=str(query_id))
    return bool(deleted)


def fetch_queries(conn: Connection, user: str, *, search: str = "", own_only: bool = False) -> pd.DataFrame:
    """Returns the user's own queries and (unless own_only) everyone's shared ones matching search
    (name, description, tags or SQL), with run count, last run and average duration."""
    return frame(conn.execute(sa.text("""
        SELECT query_id, name, description, tags, owner, shared, sql, updated_at, run_count, last_run_at,
               CASE WHEN run_count > 0 THEN total_run_ms / run_count END AS avg_ms
        FROM app.saved_queries
        WHERE (owner = :u OR (shared AND NOT :own))
          AND (:s = '' OR name ILIKE '%' || :s || '%' OR description ILIKE '%' || :s || '%'
               OR sql ILIKE '%' || :s || '%' OR lower(:s) = ANY(tags))
        ORDER BY (owner = :u) DESC, name"""), {"u": user, "s": (search or "").strip(), "own": own_only}))


def fetch_query_versions(conn: Connection, query_id: int) -> pd.DataFrame:
    return frame(conn.execute(sa.text("""
        SELECT version, name, description, sql, edited_by, edited_at FROM app.saved_query_versions
        WHERE query_id = :id ORDER BY version DESC"""), {"id": query_id}))


def record_run(conn: Connection, user: str, sql: str, params: dict, *, duration_ms: int, rows: int, outcome: str,
               message: str = "", query_id: int | None = None, client_addr: str = "") -> None:
    """Writes the run to the user's history (keeping the last HISTORY_KEPT), the saved query's
    statistics, and the audit log."""
    conn.execute(sa.text("""
        INSERT INTO app.query_history (username, sql, params, duration_ms, rows, outcome, message, query_id)
        VALUES (:u, :q, CAST(:p AS jsonb), :ms, :r, :o, :m, :id)"""),
                 {"u": user, "q": sql, "p": json.dumps(params, default=str), "ms": duration_ms, "r": rows,
                  "o": outcome, "m": message[:2000], "id": query_id})
    conn.execute(sa.text("""
        DELETE FROM app.query_history WHERE username = :u AND id < (
            SELECT min(id) FROM (SELECT id FROM app.query_history WHERE username = :u ORDER BY id DESC LIMIT :k) kept)"""),
                 {"u": user, "k": HISTORY_KEPT})
    if query_id is not None and outcome in ("ok", "truncated"):
        conn.execute(sa.text("""
            UPDATE app.saved_queries SET run_count = run_count + 1, last_run_at = now(),
                   total_run_ms = total_run_ms + :ms WHERE query_id = :id"""), {"ms": duration_ms, "id": query_id})
    record(conn, "sql.run", actor=user, target=statement_hash(sql), client_addr=client_addr,
           detail={"duration_ms": duration_ms, "rows": rows, "outcome": outcome, "query_id": query_id})


def fetch_history(conn: Connection, user: str, limit: int = HISTORY_KEPT) -> pd.DataFrame:
    return frame(conn.execute(sa.text("""
        SELECT id, ran_at, sql, params, duration_ms, rows, outcome, message, query_id FROM app.query_history
        WHERE username = :u ORDER BY id DESC LIMIT :k"""), {"u": user, "k": limit}))


def fetch_visible_query(conn: Connection, user: str, query_id: int) -> dict | None:
    """Returns the saved query {query_id, name, owner, sql} if user owns it or it is shared (with the
    staff: a vendor user sees their own only), else None."""
    row = conn.execute(sa.text(f"""
        SELECT query_id, name, owner, sql FROM app.saved_queries
        WHERE query_id = :id AND (owner = :u OR (shared AND NOT {IS_VENDOR_USER.format(':u')}))"""),
        {"id": query_id, "u": user}).mappings().first()
    return dict(row) if row else None
