"""Vendor scopes: database login roles that PostgreSQL limits to some vendors' rows (issue 22).

Queries made on behalf of a vendor run on a login role made for that vendor's set of vendor ids
(`ensure_vendor_role`). The role is a member of the group role VENDOR_GROUP, which holds its only
privileges: SELECT on the mart tables a vendor may read (`fetch_scoped_tables`), each with row-level
security, and USAGE on the schema holding the scope lookup. The policies ask the lookup
`vendor_scope.vendor_ids()` (security definer, reading app.vendor_scopes for the session's login
role) which vendors the session may see, so neither SQL text nor a setting the session can change
widens the scope:

- tables with a `vendor_id` (and no customer): the rows of the scope's vendors;
- inventory snapshots (keyed by product): the rows of the scope's products; tables keyed by product
  that sum order lines (the product cube, the stock cover) are not readable, since nothing in the
  data contract makes a line's vendor its product's;
- `orders`: the orders holding a line of the scope's vendors;
- the shared anonymous tables (`_SHARED`: the peer benchmarks' category quartiles): every row;
- the views of schema rollup_meta (which days the cubes' day rows start from, which days wait for a
  refresh: dates only), which the rollups' readers ask in the same statement;
- every other table (customers, the marketplace's totals, traffic, marketing): no privilege at all.

Every role keeps every row (policy `every_row`) but a vendor's, which the restrictive policy
`vendor_scope` limits to its scope; the tables' owner and superusers are not subject to
row-level security. The membership cannot be used to SET ROLE
to the group, so a vendor's session stays its own role; roles, their settings and the grants are
put back by every `python -m data migrate` (`ensure_vendor_group`, `ensure_vendor_roles`).

The scope is the session's login role (`session_user`): the app must log in as the vendor's role
(`vendor_url`). SET ROLE on another connection would leave the scope empty, and SET SESSION
AUTHORIZATION could be undone by the vendor's SQL.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from data.auth import resolve_cookie_key
from data.db import (SQL_ROLE_SETTINGS, create_role_if_missing, database_url, make_analyst_engine,
                     put_back_role_settings, run_utility)
from data.settings import Settings

VENDOR_GROUP = "mbi_vendors"
SCOPE_SCHEMA = "vendor_scope"
META_SCHEMA = "rollup_meta"
ROLE_PREFIX = "mbi_vendor_"
# The session's vendor ids as an array, looked up once per statement (a sub-select); none: empty.
_SCOPE = f"COALESCE((SELECT {SCOPE_SCHEMA}.vendor_ids()), '{{}}'::integer[])"
# Tables with these columns describe the marketplace's customers: never a vendor's to read.
_PRIVATE_COLUMNS = {"customer_id"}
# Tables keyed by product but not by vendor that hold no order line's figures: scoped by the
# product's vendor. The others (the product cube, the stock cover) sum every line of a product,
# and nothing in the data contract makes a line's vendor its product's: not readable until it does.
_PRODUCT_SCOPED = {"inventory_snapshots"}
# Tables with no vendor key that every vendor may read whole. Safe only for anonymous aggregates
# over at least 5 vendors (DESIGN.md's line): peer_benchmarks holds a category's quartiles of a
# metric where at least 5 vendors have a value (a CHECK in migration 0024), no vendor id or name.
_SHARED = {"peer_benchmarks"}


class VendorScopeError(ValueError):
    """A vendor scope cannot be made as asked; the message says which vendor ids and why."""


def fetch_scoped_tables(conn: Connection) -> dict[str, str]:
    """mart table -> the condition (over its columns) limiting it to a vendor session's scope,
    for every table a vendor may read (see the module docstring); others are not listed."""
    rows = conn.execute(sa.text("""
        SELECT c.relname, array_agg(a.attname::text)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = 'mart' AND c.relkind IN ('r', 'p')
        GROUP BY c.relname ORDER BY c.relname""")).all()
    by_vendor = f"vendor_id = ANY ({_SCOPE})"
    out = {"orders": f"""EXISTS (SELECT 1 FROM mart.order_items i
                                 WHERE i.order_id = orders.order_id AND i.vendor_id = ANY ({_SCOPE}))"""}
    for table, columns in rows:
        if _PRIVATE_COLUMNS & set(columns):
            continue
        if "vendor_id" in columns:
            out[table] = by_vendor
        elif table in _SHARED:
            out[table] = "true"
        elif "product_id" in columns and table in _PRODUCT_SCOPED:
            out[table] = f"product_id IN (SELECT p.product_id FROM mart.products p WHERE p.{by_vendor})"
    return dict(sorted(out.items()))


def ensure_vendor_group(conn: Connection) -> list[str]:
    """Creates or puts back VENDOR_GROUP, the scope lookup and the row-level security of every
    scoped table in this database; returns the scoped tables. Run by migrate (the migrating role
    needs CREATEROLE, as for the analysts' role)."""
    def run(template: str, *args: str) -> None:
        run_utility(conn, template, *args)

    create_role_if_missing(conn, VENDOR_GROUP, "NOLOGIN")
    db = conn.execute(sa.text("SELECT current_database()")).scalar()
    run("GRANT CONNECT ON DATABASE %I TO %I", db, VENDOR_GROUP)
    conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCOPE_SCHEMA}"))
    run("REVOKE ALL ON SCHEMA %I FROM PUBLIC", SCOPE_SCHEMA)
    run("GRANT USAGE ON SCHEMA %I TO %I", SCOPE_SCHEMA, VENDOR_GROUP)
    # session_user: the role the session logged in as, which SET ROLE does not change (and inside a
    # security-definer function current_user is the function's owner).
    conn.execute(sa.text(f"""
        CREATE OR REPLACE FUNCTION {SCOPE_SCHEMA}.vendor_ids() RETURNS integer[]
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
        AS $$ SELECT vendor_ids FROM app.vendor_scopes WHERE role_name = session_user $$"""))
    run("REVOKE ALL ON FUNCTION %I.vendor_ids() FROM PUBLIC", SCOPE_SCHEMA)
    run("GRANT EXECUTE ON FUNCTION %I.vendor_ids() TO %I", SCOPE_SCHEMA, VENDOR_GROUP)
    run("GRANT USAGE ON SCHEMA mart TO %I", VENDOR_GROUP)
    # The rollups' state as their readers ask it (migration 0027: dates only, no vendor's figure).
    run("GRANT USAGE ON SCHEMA %I TO %I", META_SCHEMA, VENDOR_GROUP)
    run("GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I", META_SCHEMA, VENDOR_GROUP)
    run("REVOKE ALL ON ALL TABLES IN SCHEMA mart FROM %I", VENDOR_GROUP)
    tables = fetch_scoped_tables(conn)
    # Policies are made again only where missing or changed (each ALTER and CREATE POLICY waits
    # for the table's readers, and every start of the app migrates): the vendor policy's comment
    # holds a digest of the conditions this module writes and of the table's policies as the
    # catalog held them once made, so an altered, dropped or added policy is noticed.
    state = _policy_state(conn)
    for table, condition in tables.items():
        run("GRANT SELECT ON mart.%I TO %I", table, VENDOR_GROUP)
        rls_on, policies, note = state.get(table, (False, "", None))
        if rls_on and note == f"{_digest(condition)}:{policies}":
            continue
        run("ALTER TABLE mart.%I ENABLE ROW LEVEL SECURITY", table)
        for (name,) in conn.execute(sa.text("SELECT polname FROM pg_policy WHERE polrelid = CAST(:t AS regclass)"),
                                    {"t": f"mart.{table}"}).all():
            run("DROP POLICY %I ON mart.%I", name, table)
        # Every role reads every row (every_row, permissive), but a vendor's only the rows its scope
        # allows (vendor_scope, restrictive: AND-ed with the permissive ones). A permissive vendor
        # policy beside an "everyone but vendors" one was OR-ed with it, so no index served the
        # scope: a vendor's count of its lines at 10M read all 10M index entries (642 ms, 3 ms now).
        run("CREATE POLICY every_row ON mart.%I FOR ALL TO PUBLIC USING (true) WITH CHECK (true)", table)
        run(f"CREATE POLICY vendor_scope ON mart.%I AS RESTRICTIVE FOR SELECT TO %I USING ({condition})",
            table, VENDOR_GROUP)
        run("COMMENT ON POLICY vendor_scope ON mart.%I IS %L", table,
            f"{_digest(condition)}:{_policy_state(conn, table)[table][1]}")
    return list(tables)


def _digest(condition: str) -> str:
    """A digest of the policies' conditions as this module writes them."""
    return hashlib.sha256(f"restrictive\n{condition}".encode()).hexdigest()


def _policy_state(conn: Connection, table: str | None = None) -> dict[str, tuple[bool, str, str | None]]:
    """mart table (every one, or the one named) -> (row-level security on, a digest of its
    policies as the catalog holds them, the vendor policy's comment)."""
    rows = conn.execute(sa.text("""
        SELECT c.relname, c.relrowsecurity,
               md5(COALESCE(string_agg(
                   concat_ws('|', p.polname, p.polcmd, p.polpermissive, p.polroles::text,
                             pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)),
                   ',' ORDER BY p.polname), '')),
               max(obj_description(p.oid, 'pg_policy')) FILTER (WHERE p.polname = 'vendor_scope')
        FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid
        WHERE c.relnamespace = 'mart'::regnamespace AND c.relkind IN ('r', 'p')
          AND (CAST(:t AS text) IS NULL OR c.relname = :t)
        GROUP BY c.relname, c.relrowsecurity"""), {"t": table}).all()
    return {t: (on, state, note) for t, on, state, note in rows}


def vendor_role_name(vendor_ids: Iterable[int]) -> str:
    """The login role of a set of vendor ids: mbi_vendor_17, mbi_vendor_17_18, … (a digest when
    the ids would make a name longer than PostgreSQL's 63 characters)."""
    ids = sorted({int(v) for v in vendor_ids})
    name = ROLE_PREFIX + "_".join(map(str, ids))
    return name if len(name) <= 63 else ROLE_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:32]


def vendor_password(settings: Settings, role: str) -> str:
    """The role's password, derived from AUTH_COOKIE_KEY (in demo mode the key generated into DATA_DIR,
    as for the login cookies): the app can always log in as it, and nothing else knows it (it is
    stored nowhere)."""
    if not settings.cookie_key and not settings.demo_mode:
        raise VendorScopeError("AUTH_COOKIE_KEY is not set: vendor database roles take their passwords from it")
    key = resolve_cookie_key(settings)
    return hmac.new(key.encode(), f"vendor-role:{role}".encode(), hashlib.sha256).hexdigest()


def ensure_vendor_role(conn: Connection, vendor_ids: Iterable[int], settings: Settings, *,
                       allow_closed: Iterable[int] = ()) -> str:
    """Creates or puts back the login role seeing exactly vendor_ids (every one an existing vendor
    that is not closed, but those in allow_closed: bound before they closed) in this database;
    returns its name. Unknown, closed or missing vendor ids raise VendorScopeError, before anything
    is written."""
    ids = sorted({int(v) for v in vendor_ids})
    if not ids:
        raise VendorScopeError("A vendor scope needs at least one vendor id")
    status = dict(conn.execute(sa.text("SELECT vendor_id, status FROM mart.vendors WHERE vendor_id = ANY(:ids)"),
                               {"ids": ids}).all())
    unknown = [v for v in ids if v not in status]
    if unknown:
        raise VendorScopeError(f"No vendor with id {', '.join(map(str, unknown))} in mart.vendors")
    kept = {int(v) for v in allow_closed}
    closed = [v for v in ids if status[v] == "closed" and v not in kept]
    if closed:
        raise VendorScopeError(f"Vendor {', '.join(map(str, closed))} is closed (mart.vendors.status): "
                               "a closed vendor gets no new access")
    role = vendor_role_name(ids)
    create_role_if_missing(conn, role, "LOGIN INHERIT")
    _put_back_role(conn, role, vendor_password(settings, role))
    conn.execute(sa.text("""
        INSERT INTO app.vendor_scopes (role_name, vendor_ids) VALUES (:r, :ids)
        ON CONFLICT (role_name) DO UPDATE SET vendor_ids = excluded.vendor_ids"""), {"r": role, "ids": ids})
    return role


def ensure_single_vendor_roles(conn: Connection, vendor_ids: Iterable[int], settings: Settings) -> int:
    """Makes the login role of each vendor of vendor_ids alone (mbi_vendor_<id>) where it or its
    scope is missing, as ensure_vendor_role does (a closed vendor's included: its history stays
    readable); returns how many were made. One lookup for all, so a report to every vendor plans its
    2,000 runs without putting 2,000 roles back (made one by one, they took 99 s at 1M lines)."""
    ids = sorted({int(v) for v in vendor_ids})
    have = set(conn.execute(sa.text("""
        SELECT s.role_name FROM app.vendor_scopes s JOIN pg_roles r ON r.rolname = s.role_name
        WHERE s.role_name = ANY(:names)"""), {"names": [vendor_role_name([v]) for v in ids]}).scalars())
    missing = [v for v in ids if vendor_role_name([v]) not in have]
    for v in missing:
        ensure_vendor_role(conn, [v], settings, allow_closed=[v])
    return len(missing)


def ensure_vendor_roles(conn: Connection, settings: Settings) -> list[str]:
    """Puts back every vendor role of this database's scopes that differs from what
    ensure_vendor_role makes (a vendor session may have changed its own settings; an owner may
    have granted it something), password included; returns their names. Run by migrate, so at
    every start of the app: with 1,860 vendor roles putting every one back took migrate 114 s, and
    one catalog query finds the few that differ. A vendor session can also change its own password,
    which no catalog query can compare: that locks only its own vendor out (the app logs in with
    the derived one) until its role is put back here for another reason or made again by a binding.
    Without AUTH_COOKIE_KEY the passwords stay as they are."""
    roles = _differing_roles(conn)
    for role in roles:
        _put_back_role(conn, role, vendor_password(settings, role) if settings.cookie_key or settings.demo_mode
                       else None)
    return roles


def _differing_roles(conn: Connection) -> list[str]:
    """The vendor roles of this database's scopes whose attributes, memberships, settings (also per
    database) or privileges on mart and app differ from what _put_back_role gives them."""
    settings = sorted(f"{k}={v}" for k, v in SQL_ROLE_SETTINGS.items())
    return conn.execute(sa.text("""
        WITH granted AS (   -- roles holding a privilege of their own on a mart table
            SELECT DISTINCT (aclexplode(c.relacl)).grantee AS oid FROM pg_class c
            WHERE c.relnamespace = 'mart'::regnamespace AND c.relacl IS NOT NULL)
        SELECT r.rolname FROM app.vendor_scopes s JOIN pg_roles r ON r.rolname = s.role_name
        WHERE NOT (r.rolcanlogin AND r.rolinherit) OR r.rolsuper OR r.rolcreatedb OR r.rolcreaterole
           OR r.rolreplication OR r.rolbypassrls
           OR (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) <> 1
           OR NOT EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid AND m.inherit_option
                          AND NOT m.set_option AND m.roleid = (SELECT oid FROM pg_roles WHERE rolname = :group))
           OR EXISTS (SELECT 1 FROM pg_db_role_setting d WHERE d.setrole = r.oid AND d.setdatabase =
                      (SELECT oid FROM pg_database WHERE datname = current_database()))
           OR (SELECT array_agg(x ORDER BY x) FROM pg_db_role_setting d, unnest(d.setconfig) x
               WHERE d.setrole = r.oid AND d.setdatabase = 0) IS DISTINCT FROM CAST(:settings AS text[])
           OR r.oid IN (SELECT oid FROM granted)
           OR has_schema_privilege(r.oid, 'app', 'USAGE') OR has_schema_privilege(r.oid, 'app', 'CREATE')
        ORDER BY 1"""), {"group": VENDOR_GROUP, "settings": settings}).scalars().all()


def _put_back_role(conn: Connection, role: str, password: str | None) -> None:
    """The role's attributes, password, memberships, grants and settings as this module makes them."""
    def run(template: str, *args: str) -> None:
        run_utility(conn, template, *args)

    run("ALTER ROLE %I LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS", role)
    if password is not None:
        run("ALTER ROLE %I PASSWORD %L", role, password)
    # Its privileges come from the group only; SET FALSE: the session cannot become the group.
    for (other,) in conn.execute(sa.text("""
            SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
            JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = :r AND g.rolname <> :g"""),
            {"r": role, "g": VENDOR_GROUP}).all():
        run("REVOKE %I FROM %I", other, role)
    run("GRANT %I TO %I WITH INHERIT TRUE, SET FALSE", VENDOR_GROUP, role)
    run("REVOKE ALL ON ALL TABLES IN SCHEMA mart FROM %I", role)
    run("REVOKE ALL ON SCHEMA app FROM %I", role)
    put_back_role_settings(conn, role)


def vendor_url(settings: Settings, vendor_ids: Iterable[int]) -> str:
    """The database URL of the login role seeing vendor_ids (made by ensure_vendor_role)."""
    role = vendor_role_name(vendor_ids)
    url = make_url(database_url(settings)).set(username=role, password=vendor_password(settings, role))
    return url.render_as_string(hide_password=False)


def vendor_engine(settings: Settings, vendor_ids: Iterable[int]) -> Engine:
    """The engine of the login role seeing vendor_ids: every query made for a vendor user (pages,
    downloads, the SQL page) or for a vendor (a report to every vendor) runs on it. Built like the
    analysts' engine (no server-side prepared statements, so the safe runner's DISCARD ALL is
    harmless) but without a pool: each use opens a connection and closes it (2.5 ms on the bench
    server against 0.3 ms from a pool). Pools of one idle connection per vendor ran the server out of
    connections when a report went to 2,000 vendors (max_connections 100)."""
    return _vendor_engine(vendor_url(settings, vendor_ids), settings.timezone)


# One engine per vendor scope, kept: an engine's first connection asks the server's version and
# settings (7.2 ms a vendor's first connection on the bench server against 3.1 ms for the next), and
# an alert tick or a report to every vendor connects as 2,000 vendors in turn. Without a cache of
# compiled statements: each engine keeps its own, and with one a report to 1,860 vendors grew the
# process by 200 MiB (bench fanout); the queries are text, whose compiling costs little.
@functools.lru_cache(maxsize=4096)
def _vendor_engine(url: str, timezone: str) -> Engine:
    return make_analyst_engine(url, timezone, poolclass=sa.pool.NullPool, query_cache_size=0)
