"""Schema migrations (Alembic) and the analysts' login role."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from data.settings import Settings, load_settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# Settings on the analysts' role: the database enforces what the SQL runner also checks.
ANALYST_ROLE_SETTINGS = {
    "default_transaction_read_only": "on",
    "statement_timeout": "30s",
    "idle_in_transaction_session_timeout": "60s",
    "temp_file_limit": "1GB",
    "work_mem": "32MB",
}


class MigrationError(RuntimeError):
    """The schema could not be brought up to date; the message says why."""


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    """Returns the newest migration's revision id."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """Returns the database's migration revision, or None before the first migration."""
    if not conn.execute(sa.text("SELECT to_regclass('app.alembic_version')")).scalar():
        return None
    return MigrationContext.configure(conn, opts={"version_table_schema": "app"}).get_current_revision()


def migrate(engine: Engine, settings: Settings | None = None) -> str:
    """Creates or upgrades both schemas and the analysts' role; returns the revision reached."""
    s = settings or load_settings()
    with engine.begin() as conn:
        # Two processes may start at once (app and scheduler): one migrates, the other waits.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('marketplace-bi migrate'))"))
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS app"))
        command.upgrade(_alembic_config(conn), "head")
        ensure_analyst_role(conn, s)
        return current_revision(conn)


def ensure_analyst_role(conn: Connection, s: Settings) -> None:
    """Creates the analysts' login role if missing; grants SELECT on mart and nothing else."""
    role = s.analyst_role
    exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    # Identifiers and utility statements cannot take bound parameters, so PostgreSQL's own
    # format(%I, %L) quotes them from bound values; no value is spliced in Python.
    def run(template: str, *args: str) -> None:
        params = {f"a{i}": a for i, a in enumerate(args)}
        placeholders = ", ".join(f"CAST(:a{i} AS text)" for i in range(len(args)))
        stmt = conn.execute(sa.text(f"SELECT format(:t, {placeholders})"), {"t": template, **params}).scalar()
        conn.execute(sa.text(stmt))

    try:
        if not exists:
            run("CREATE ROLE %I LOGIN NOINHERIT", role)
        if s.analyst_password:
            run("ALTER ROLE %I PASSWORD %L", role, s.analyst_password)
        db = conn.execute(sa.text("SELECT current_database()")).scalar()
        run("REVOKE ALL ON DATABASE %I FROM %I", db, role)
        run("REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC", db)
        run("GRANT CONNECT ON DATABASE %I TO %I", db, role)
        run("GRANT TEMPORARY ON DATABASE %I TO %I", db, conn.execute(sa.text("SELECT current_user")).scalar())
        run("REVOKE ALL ON SCHEMA app FROM %I", role)
        run("REVOKE CREATE ON SCHEMA public FROM %I", role)
        run("GRANT USAGE ON SCHEMA mart TO %I", role)
        run("GRANT SELECT ON ALL TABLES IN SCHEMA mart TO %I", role)
        run("ALTER DEFAULT PRIVILEGES IN SCHEMA mart GRANT SELECT ON TABLES TO %I", role)
        # The role may change its own defaults (ALTER ROLE CURRENT_USER SET …, outside the runner):
        # every migration puts back exactly these. The runner also sets them per transaction.
        run("ALTER ROLE %I RESET ALL", role)
        for name, value in ANALYST_ROLE_SETTINGS.items():
            run("ALTER ROLE %I SET %I = %L", role, name, value)
    except sa.exc.ProgrammingError as ex:
        raise MigrationError(
            f"Could not set up the analysts' role {role!r}: {ex.orig}. The migrating user needs "
            "CREATEROLE (and superuser for temp_file_limit); or create the role by hand as "
            "docs/architecture.md describes."
        ) from ex
