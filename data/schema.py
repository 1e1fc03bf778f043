"""Schema migrations (Alembic) and the analysts' login role."""
from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from data.db import create_role_if_missing, put_back_role_settings, run_utility
from data.settings import Settings, load_settings
from data.vendor_scope import ensure_vendor_group, ensure_vendor_roles

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
log = logging.getLogger("data.schema")

# What analysts' SQL cannot do whatever text reaches PostgreSQL: the parser's deny-list
# (analytics.query) gives clear messages, these grants are the boundary. PostgreSQL lets PUBLIC
# execute every function, so these are revoked from PUBLIC and granted back to the app's own role:
# sleeping, advisory locks (the app's own among them), signalling backends (analysts share one
# role, so each could cancel the others' queries), running query text given as a string, reading
# definitions the catalogs would hide, and the statistics behind pg_stat_activity.
RESTRICTED_FUNCTIONS = (
    "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_cancel_backend", "pg_terminate_backend",
    "pg_log_backend_memory_contexts", "pg_notify", "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids", "pg_isolation_test_session_is_blocked", "pg_backend_memory_contexts",
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
    "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml", "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
    "ts_stat", "ts_rewrite", "pg_get_functiondef", "pg_get_function_arguments", "pg_get_function_result",
    "pg_get_function_identity_arguments", "pg_get_triggerdef", "pg_get_viewdef", "pg_get_ruledef",
    "pg_get_indexdef", "pg_get_constraintdef", "pg_get_statisticsobjdef", "pg_get_partkeydef", "pg_get_userbyid",
    "pg_tablespace_databases", "pg_database_size", "pg_relation_size", "pg_table_size", "pg_total_relation_size",
    "pg_indexes_size", "pg_show_all_settings", "pg_show_all_file_settings",
    "pg_get_keywords", "pg_get_replication_slots", "pg_get_shmem_allocations", "pg_prepared_xact",
)
RESTRICTED_FUNCTION_PREFIXES = ("pg_advisory", "pg_try_advisory", "pg_stat_get_", "pg_stat_reset")
# The catalog tables and views analysts' sessions may read: the drivers look types up. All others
# are revoked from PUBLIC (no list of databases, of other schemas' tables, of function sources or
# of other sessions' queries); information_schema shows only what the role may use, and the
# schema browser reads mart's columns on the app's role.
ANALYST_CATALOGS = ("pg_type", "pg_range", "pg_enum", "pg_prepared_statements", "pg_cursors")


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


def fetch_current_revision(conn: Connection) -> str | None:
    """Returns the database's migration revision, or None before the first migration."""
    if not conn.execute(sa.text("SELECT to_regclass('app.alembic_version')")).scalar():
        return None
    return MigrationContext.configure(conn, opts={"version_table_schema": "app"}).get_current_revision()


def migrate(engine: Engine, settings: Settings | None = None) -> str:
    """Creates or upgrades both schemas, the analysts' role and the vendors' group (its row-level
    security on mart); returns the revision reached."""
    s = settings or load_settings()
    with engine.begin() as conn:
        # Two processes may start at once (app and scheduler): one migrates, the other waits.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('marketplace-bi migrate'))"))
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS app"))
        command.upgrade(_alembic_config(conn), "head")
        ensure_analyst_role(conn, s)
        ensure_vendor_group(conn)
        ensure_vendor_roles(conn, s)
        return fetch_current_revision(conn)


def ensure_analyst_role(conn: Connection, s: Settings) -> None:
    """Creates the analysts' login role if missing; grants SELECT on mart and nothing else."""
    role = s.analyst_role

    def run(template: str, *args: str) -> None:
        run_utility(conn, template, *args)

    try:
        create_role_if_missing(conn, role, "LOGIN NOINHERIT")
        if s.analyst_password:
            run("ALTER ROLE %I PASSWORD %L", role, s.analyst_password)
        db = conn.execute(sa.text("SELECT current_database()")).scalar()
        run("REVOKE ALL ON DATABASE %I FROM %I", db, role)
        run("REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC", db)
        run("GRANT CONNECT ON DATABASE %I TO %I", db, role)
        run("GRANT TEMPORARY ON DATABASE %I TO %I", db, conn.execute(sa.text("SELECT current_user")).scalar())
        run("REVOKE ALL ON SCHEMA app FROM %I", role)
        # Databases made before PostgreSQL 15 (or restored from them) let PUBLIC create objects in
        # schema public, where a function could stand in for one the app calls: taken from all.
        run("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        run("REVOKE CREATE ON SCHEMA public FROM %I", role)
        run("GRANT USAGE ON SCHEMA mart TO %I", role)
        run("GRANT SELECT ON ALL TABLES IN SCHEMA mart TO %I", role)
        run("ALTER DEFAULT PRIVILEGES IN SCHEMA mart GRANT SELECT ON TABLES TO %I", role)
        # Every migration puts back exactly these. The runner also sets them per transaction.
        put_back_role_settings(conn, role)
    except sa.exc.ProgrammingError as ex:
        raise MigrationError(
            f"Could not set up the analysts' role {role!r}: {ex.orig}. The migrating user needs "
            "CREATEROLE (and superuser for temp_file_limit); or create the role by hand as "
            "docs/architecture.md describes."
        ) from ex
    restrict_catalogs(conn, role)


def restrict_catalogs(conn: Connection, role: str) -> bool:
    """Takes RESTRICTED_FUNCTIONS and the catalogs but ANALYST_CATALOGS from PUBLIC in this
    database wherever the analysts' role can still reach them, granting them first to the migrating
    role and the roles owning the app's tables; returns False, with a warning, when they stay open
    (only a superuser owns pg_catalog). A clone of a restricted database is restricted already."""
    functions, tables = _reachable_functions(conn, role), _readable_catalogs(conn, role)
    if not functions and not tables:
        return True   # restricted already (every migration after the first, every test clone)
    # Granted back to the migrating role and to the roles owning the app's tables (the app's own,
    # when a superuser runs this migration for it).
    keepers = conn.execute(sa.text("""
        SELECT DISTINCT r FROM (SELECT current_user::text AS r UNION ALL
                                SELECT tableowner::text FROM pg_tables WHERE schemaname IN ('app', 'mart')) k
        ORDER BY 1""")).scalars().all()
    try:
        with conn.begin_nested():
            for f in functions:
                # f is PostgreSQL's own rendering of a regprocedure: a quoted signature.
                for keeper in keepers:
                    run_utility(conn, f"GRANT EXECUTE ON FUNCTION {f} TO %I", keeper)
                conn.execute(sa.text(f"REVOKE EXECUTE ON FUNCTION {f} FROM PUBLIC"))
            for table in tables:
                for keeper in keepers:
                    run_utility(conn, "GRANT SELECT ON pg_catalog.%I TO %I", table, keeper)
                run_utility(conn, "REVOKE SELECT ON pg_catalog.%I FROM PUBLIC", table)
            for table in ANALYST_CATALOGS:
                run_utility(conn, "GRANT SELECT ON pg_catalog.%I TO %I", table, role)
    except sa.exc.ProgrammingError as ex:
        problem = str(ex.orig).strip()
    else:
        # A user who does not own pg_catalog gets a warning, not an error, from REVOKE: look again.
        problem = None if not (_reachable_functions(conn, role) or _readable_catalogs(conn, role)) else \
            "the migrating user does not own pg_catalog"
    if problem:
        log.warning("The analysts' role %s can still read PostgreSQL's catalogs and call sleep, lock and signal "
                    "functions (only the parser stops them): %s. Run `python -m data migrate` once as a superuser "
                    "to close them.", role, problem)
    return problem is None


def _reachable_functions(conn: Connection, role: str) -> list[str]:
    """RESTRICTED_FUNCTIONS role may still execute, as regprocedure text."""
    return conn.execute(sa.text("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
        WHERE p.pronamespace = 'pg_catalog'::regnamespace AND has_function_privilege(:role, p.oid, 'EXECUTE')
          AND (p.proname = ANY(:names) OR p.proname LIKE ANY(:prefixes))
        ORDER BY 1"""), {"role": role, "names": list(RESTRICTED_FUNCTIONS),
                         "prefixes": [f"{x}%" for x in RESTRICTED_FUNCTION_PREFIXES]}).scalars().all()


def _readable_catalogs(conn: Connection, role: str) -> list[str]:
    """The pg_catalog tables and views role may still read besides ANALYST_CATALOGS."""
    return conn.execute(sa.text("""
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
          AND has_table_privilege(:role, c.oid, 'SELECT') AND c.relname <> ALL(:allowed)
        ORDER BY 1"""), {"role": role, "allowed": list(ANALYST_CATALOGS)}).scalars().all()
