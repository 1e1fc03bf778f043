"""Vendor scopes enforced by PostgreSQL (issue 22): a vendor's login role reads its own rows of every
table it may read and nothing of the others, whatever SQL it sends (no parser in between), while
the analysts' role and the app keep every row."""
from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from data.db import SQL_ROLE_SETTINGS, run_utility
from data.rollups import refresh_rollups
from data.schema import migrate
from data.settings import load_settings
from data.vendor_scope import (VENDOR_GROUP, VendorScopeError, ensure_vendor_group, ensure_vendor_role,
                               ensure_vendor_roles, fetch_scoped_tables, vendor_password, vendor_role_name)
from tests.conftest import clone, vendor_role_engine, vendor_settings

# Three vendors; orders 1 and 3 hold lines of two vendors each.
DATA = """
INSERT INTO mart.vendors VALUES
  (1, 'Alpha', 'Books', 'Europe', 'DE', '2024-01-01', 'active', 0.10),
  (2, 'Beta', 'Toys', 'Europe', 'FR', '2024-01-01', 'active', 0.15),
  (3, 'Gamma', 'Garden', 'North America', 'US', '2024-01-01', 'active', 0.12);
INSERT INTO mart.products VALUES
  (10, 1, 'A-10', 'Novel', 'Books', 'Fiction', 20.00, 8.00, '2024-01-01'),
  (20, 2, 'B-20', 'Kite', 'Toys', 'Outdoor', 50.00, 30.00, '2024-01-01'),
  (30, 3, 'G-30', 'Rake', 'Garden', 'Tools', 15.00, 6.00, '2024-01-01');
INSERT INTO mart.customers VALUES
  (100, 'Ann', 'DE', 'Europe', 'B2C', 'organic', '2025-01-01'),
  (200, 'Bob', 'US', 'North America', 'B2B', 'referral', '2025-01-01');
INSERT INTO mart.orders VALUES
  (1, 100, '2026-03-01 12:00+00', 'delivered', 'web', 'B2C', 'card', 'captured', 'EUR', 0),
  (2, 200, '2026-03-02 09:00+00', 'delivered', 'mobile', 'B2B', 'invoice', 'captured', 'EUR', 0),
  (3, 200, '2026-03-03 10:00+00', 'cancelled', 'web', 'B2B', 'card', 'failed', 'EUR', 0),
  (4, 100, '2026-03-04 10:00+00', 'delivered', 'web', 'B2C', 'card', 'captured', 'EUR', 0);
INSERT INTO mart.order_items VALUES
  (1, 1, 10, 1, 2, 20.00, 0.00, 8.00, 0.00),
  (1, 2, 20, 2, 1, 50.00, 0.00, 30.00, 0.00),
  (2, 1, 20, 2, 3, 50.00, 0.00, 30.00, 0.00),
  (3, 1, 10, 1, 1, 20.00, 0.00, 8.00, 0.00),
  (3, 2, 30, 3, 4, 15.00, 0.00, 6.00, 0.00),
  (4, 1, 30, 3, 2, 15.00, 0.00, 6.00, 0.00);
INSERT INTO mart.inventory_snapshots VALUES ('2026-03-04', 10, 5), ('2026-03-04', 20, 7), ('2026-03-04', 30, 9);
"""
SCOPES = {"one": [1], "two": [2, 3]}


@pytest.fixture(scope="module")
def world(admin_url, empty_template):
    """A marketplace with its rollups built and a login role for vendor 1 and one for vendors 2
    and 3; yields the app's engine and an engine per scope."""
    settings = vendor_settings()
    with clone(admin_url, empty_template) as app:
        with app.begin() as conn:
            conn.execute(sa.text(DATA))
            refresh_rollups(conn, full=True, timezone="UTC")
            roles = {name: ensure_vendor_role(conn, ids, settings) for name, ids in SCOPES.items()}
        engines = {name: vendor_role_engine(app.url, role) for name, role in roles.items()}
        yield app, engines
        for e in engines.values():
            e.dispose()


def _rows(engine, sql: str, params: dict | None = None) -> list[str]:
    """Every row sql returns (a select list of one row value, t::text), sorted; sql is this
    module's fixed text."""
    with engine.connect() as conn:
        return sorted(conn.execute(sa.text(sql), params or {}).scalars())


def _table(engine, table: str) -> list[str]:
    return _rows(engine, f"SELECT t::text FROM mart.{table} t")


def _expected(app, table: str, key: str, ids: list[int]) -> list[str]:
    """The rows of table a scope of ids should see, read on the app's connection from the raw keys
    (independently of the policies): key is how the table names its vendor (vendor_id, or
    product_id through the products; orders through their lines)."""
    within = {"vendor_id": "vendor_id = ANY(:ids)",
              "product_id": "product_id IN (SELECT product_id FROM mart.products WHERE vendor_id = ANY(:ids))",
              "order_id": "order_id IN (SELECT order_id FROM mart.order_items WHERE vendor_id = ANY(:ids))"}[key]
    return _rows(app, f"SELECT t::text FROM mart.{table} t WHERE {within}", {"ids": ids})


def test_each_scope_reads_exactly_its_own_rows_of_every_readable_table(world):
    app, engines = world
    with app.connect() as conn:
        tables = fetch_scoped_tables(conn)
        columns = {t: set(c) for t, c in conn.execute(sa.text("""
            SELECT table_name, array_agg(column_name::text) FROM information_schema.columns
            WHERE table_schema = 'mart' GROUP BY 1"""))}
    assert {"order_items", "orders", "products", "vendors", "inventory_snapshots", "rollup_vendor_daily",
            "rollup_product_daily", "rollup_vendor_dims_daily"} <= set(tables)
    # Customers, the marketplace's totals, and tables that sum a product's lines of every vendor.
    assert not {"customers", "rollup_sales_daily", "rollup_customer_daily", "traffic_daily", "marketing_spend",
                "customer_scores", "customer_score_main_vendors", "rollup_stock_cover",
                "rollup_product_dims_daily"} & set(tables)
    # Shared whole: anonymous aggregates of at least 5 vendors, with no vendor key.
    assert {t for t, condition in tables.items() if condition == "true"} == {"peer_benchmarks"}
    assert "vendor_id" not in columns["peer_benchmarks"] and "vendor_benchmarks" in tables
    seen_hidden = 0
    for table in tables:
        key = next((k for k in ("vendor_id", "product_id", "order_id") if k in columns[table]), None)
        every = _table(app, table)
        for name, ids in SCOPES.items():
            got = _table(engines[name], table)
            assert got == (every if key is None else _expected(app, table, key, ids)), (table, name)
            seen_hidden += len(every) - len(got)
        if table in ("order_items", "orders", "products", "rollup_vendor_daily", "rollup_product_daily"):
            assert every and any(_table(engines[n], table) != every for n in SCOPES), table
    assert seen_hidden > 50


def test_an_order_shared_by_two_vendors_shows_each_only_its_own_lines(world):
    _, engines = world
    got = _rows(engines["one"], """SELECT (o.order_id, i.line_no, i.vendor_id)::text
                                   FROM mart.orders o JOIN mart.order_items i USING (order_id)""")
    assert got == ["(1,1,1)", "(3,1,1)"]
    # What the other vendor sold in that order stays hidden, even summed.
    with engines["one"].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*), COALESCE(sum(quantity), 0) FROM mart.order_items "
                                    "WHERE order_id IN (1, 3) AND vendor_id <> 1")).one() == (0, 0)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM mart.customers",
    "SELECT * FROM mart.rollup_sales_daily",
    "SELECT * FROM mart.rollup_customer_daily",
    "SELECT * FROM mart.traffic_daily",
    "SELECT * FROM app.users",
    "SELECT * FROM app.vendor_scopes",
    "UPDATE app.vendor_scopes SET vendor_ids = '{1,2,3}'",
    "SET ROLE " + VENDOR_GROUP,
    "SET ROLE mbi_vendor_2_3",
    "SELECT set_config('role', 'mbi_vendor_2_3', false)",
    "SET SESSION AUTHORIZATION mbi_vendor_2_3",
    "INSERT INTO mart.order_items VALUES (4, 9, 20, 2, 1, 1, 0, 1, 0)",
    "DELETE FROM mart.order_items",
    "CREATE TEMP TABLE stolen (a int)",
    "CREATE FUNCTION public.leak(integer) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
    "SELECT datname FROM pg_database",
    "SELECT * FROM pg_stat_activity",
    "SELECT query_to_xml('SELECT * FROM mart.order_items', true, true, '')",
    "SELECT pg_advisory_lock(1)",
    "SELECT pg_cancel_backend(pg_backend_pid())",
    "SELECT pg_sleep(5)",
    "SELECT pg_total_relation_size('mart.order_items')",
    "SELECT * FROM mart.rollup_stock_cover",
    "ALTER TABLE mart.order_items DISABLE ROW LEVEL SECURITY",
    "DROP POLICY vendor_scope ON mart.order_items",
    "GRANT mbi_vendor_2_3 TO CURRENT_USER",
])
def test_hostile_sql_on_a_vendor_role_is_refused_by_postgresql(world, sql):
    app, engines = world
    before = {t: _table(app, t) for t in ("order_items", "vendors")}
    with engines["one"].connect() as conn:
        # Out of the role's read-only default (a session may leave it), so that what refuses is
        # the want of a privilege (42501), not a read-only transaction.
        conn.execute(sa.text("SET default_transaction_read_only = off"))
        conn.commit()
        with pytest.raises(sa.exc.DBAPIError) as caught:
            conn.execute(sa.text(sql))
    assert caught.value.orig.sqlstate == "42501", caught.value.orig
    assert {t: _table(app, t) for t in before} == before
    with app.connect() as conn:
        assert conn.execute(sa.text("SELECT vendor_ids FROM app.vendor_scopes WHERE role_name = 'mbi_vendor_1'")
                            ).scalar() == [1]
        assert not conn.execute(sa.text("SELECT 1 FROM pg_proc WHERE proname = 'leak'")).first()


def test_settings_a_vendor_session_may_change_do_not_widen_its_scope(world):
    _, engines = world
    with engines["one"].connect() as conn:
        for sql in ("SET search_path = public, mart", "SELECT set_config('application_name', 'mbi_vendor_2_3', false)",
                    "SET default_transaction_read_only = off"):
            conn.execute(sa.text(sql))
        conn.commit()   # the session keeps them
        assert conn.execute(sa.text("SELECT DISTINCT vendor_id FROM mart.order_items")).scalars().all() == [1]
        assert conn.execute(sa.text("SELECT vendor_scope.vendor_ids()")).scalar() == [1]
        # Out of read-only, a write is still refused: the role may only read.
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("DELETE FROM mart.order_items"))
        conn.rollback()
        # Switching row security off makes a scoped read fail, not widen.
        conn.execute(sa.text("SET row_security = off"))
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            conn.execute(sa.text("SELECT count(*) FROM mart.order_items"))


def test_the_analysts_role_and_the_app_keep_every_row(world, admin_url):
    app, _ = world
    analyst = sa.create_engine(make_url(str(app.url)).set(username=load_settings().analyst_role),
                               poolclass=sa.pool.NullPool)
    for table in ("order_items", "orders", "products", "rollup_vendor_daily", "inventory_snapshots"):
        assert _table(analyst, table) == _table(app, table) != []
    analyst.dispose()


def test_a_scope_of_unknown_closed_or_no_vendors_is_refused_and_nothing_is_written(empty_engine):
    settings = vendor_settings()
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO mart.vendors VALUES "
                             "(1, 'Alpha', 'Books', 'Europe', 'DE', '2024-01-01', 'active', 0.10), "
                             "(2, 'Beta', 'Toys', 'Europe', 'FR', '2024-01-01', 'closed', 0.15)"))
    for ids, message in (([1, 998, 999], "No vendor with id 998, 999 in mart.vendors"),
                         ([1, 2], r"Vendor 2 is closed \(mart.vendors.status\)"),
                         ([], "at least one vendor id")):
        with empty_engine.begin() as conn, pytest.raises(VendorScopeError, match=message):
            ensure_vendor_role(conn, ids, settings)
    with empty_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app.vendor_scopes")).scalar() == 0
        assert not conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname IN "
                                        "('mbi_vendor_1_998_999', 'mbi_vendor_1_2')")).first()
    with pytest.raises(VendorScopeError, match="AUTH_COOKIE_KEY"):
        vendor_password(dataclasses.replace(settings, cookie_key="", demo_mode=False), "mbi_vendor_1")


def test_role_names_fit_postgresql():
    assert vendor_role_name([18, 17, 17]) == "mbi_vendor_17_18"
    many = vendor_role_name(range(1000, 1100))
    assert len(many) <= 63 and many.startswith("mbi_vendor_") and many == vendor_role_name(reversed(range(1000, 1100)))


def test_a_migration_keeps_the_policies_it_made_and_puts_back_changed_ones(empty_engine):
    def policies(conn):
        return dict(conn.execute(sa.text("""
            SELECT c.relname || '.' || p.polname, p.oid FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
            WHERE c.relnamespace = 'mart'::regnamespace""")).all())

    with empty_engine.begin() as conn:
        before = policies(conn)
        assert "order_items.vendor_scope" in before and "orders.every_row" in before
        ensure_vendor_group(conn)
        assert policies(conn) == before   # not dropped and made again: no lock on the tables
        conn.execute(sa.text("DROP POLICY every_row ON mart.vendors"))
        conn.execute(sa.text("ALTER TABLE mart.products DISABLE ROW LEVEL SECURITY"))
        conn.execute(sa.text("ALTER POLICY vendor_scope ON mart.orders USING (true)"))   # its comment stays
        conn.execute(sa.text("CREATE POLICY extra ON mart.order_items FOR SELECT TO mbi_vendors USING (true)"))
        ensure_vendor_group(conn)
        after = policies(conn)
        assert after.keys() == before.keys()
        assert {k for k in after if after[k] != before[k]} == {
            f"{t}.{p}" for t in ("vendors", "products", "orders", "order_items")
            for p in ("vendor_scope", "every_row")}
        rls = "SELECT relrowsecurity FROM pg_class WHERE oid = 'mart.products'::regclass"
        assert conn.execute(sa.text(rls)).scalar()


def test_a_migration_puts_back_what_a_vendor_session_changed_and_closes_schema_public(empty_engine):
    settings = vendor_settings()
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO mart.vendors VALUES "
                             "(7, 'Eta', 'Books', 'Europe', 'DE', '2024-01-01', 'active', 0.10)"))
        role = ensure_vendor_role(conn, [7], settings)
        # As a database made before PostgreSQL 15 has it.
        conn.execute(sa.text("GRANT CREATE ON SCHEMA public TO PUBLIC"))
        db = conn.execute(sa.text("SELECT current_database()")).scalar()
    url = make_url(str(empty_engine.url)).set(username=role, password=vendor_password(settings, role))
    vendor = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with vendor.connect() as conn:
        conn.execute(sa.text("SET default_transaction_read_only = off"))
        conn.commit()
        conn.execute(sa.text("ALTER ROLE CURRENT_USER SET statement_timeout = 0"))
        run_utility(conn, "ALTER ROLE CURRENT_USER IN DATABASE %I SET work_mem = '1GB'", db)
        conn.commit()
    vendor.dispose()

    def settings_of(conn):
        return sorted(s for row in conn.execute(sa.text("""
            SELECT setconfig FROM pg_db_role_setting WHERE setrole = CAST(:r AS regrole)"""), {"r": role}).scalars()
                      for s in row)

    with empty_engine.connect() as conn:
        assert "statement_timeout=0" in settings_of(conn) and "work_mem=1GB" in settings_of(conn)
    migrate(empty_engine, settings)
    with empty_engine.connect() as conn:
        assert settings_of(conn) == sorted(f"{k}={v}" for k, v in SQL_ROLE_SETTINGS.items())
        assert not conn.execute(sa.text("SELECT has_schema_privilege('public', 'public', 'CREATE')")).scalar()


def test_a_migration_puts_back_only_the_vendor_roles_that_differ(empty_engine):
    """Migrate runs at every start: it finds the changed roles with one catalog query instead of
    putting back every one (1,860 took 114 s)."""
    settings = vendor_settings()
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO mart.vendors SELECT v, 'V' || v, 'Books', 'Europe', 'DE', '2024-01-01', "
                             "'active', 0.10 FROM generate_series(41, 44) v"))
        a, b, c, d = (ensure_vendor_role(conn, [v], settings) for v in (41, 42, 43, 44))
    with empty_engine.begin() as conn:
        assert ensure_vendor_roles(conn, settings) == []
        run_utility(conn, "GRANT SELECT ON mart.customers TO %I", a)
        run_utility(conn, "ALTER ROLE %I CREATEDB", b)
        run_utility(conn, "GRANT USAGE ON SCHEMA app TO %I", c)
        run_utility(conn, "GRANT %I TO %I", a, d)
    with empty_engine.begin() as conn:
        assert ensure_vendor_roles(conn, settings) == sorted([a, b, c, d])
        assert ensure_vendor_roles(conn, settings) == []
        assert not conn.execute(sa.text("SELECT has_table_privilege(:r, 'mart.customers', 'SELECT')"),
                                {"r": a}).scalar()
