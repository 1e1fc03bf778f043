"""Migrations from empty and re-run, upgrade without data loss, and the analysts' role."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from data.schema import fetch_current_revision, head_revision, migrate
from data.settings import load_settings
from tests.conftest import create_database

CONTRACT = {"vendors", "products", "customers", "orders", "order_items", "traffic_daily",
            "marketing_spend", "inventory_snapshots", "kpi_targets"}



def _count(conn, table: str) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(sa.table(table, schema="mart"))).scalar()

def test_migrate_from_empty_then_again(admin_url):
    url = create_database(admin_url, "mbi_migrate")
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        assert fetch_current_revision(conn) is None
    assert migrate(eng, load_settings()) == head_revision()
    assert migrate(eng, load_settings()) == head_revision()
    with eng.connect() as conn:
        tables = {r[0] for r in conn.execute(sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'mart'"))}
        assert CONTRACT <= tables and {t for t in tables if t.startswith("rollup_")}
        money = conn.execute(sa.text("""SELECT numeric_precision, numeric_scale FROM information_schema.columns
            WHERE table_schema = 'mart' AND table_name = 'order_items' AND column_name = 'unit_price'""")).one()
        assert tuple(money) == (12, 2)
        kind = conn.execute(sa.text("""SELECT data_type FROM information_schema.columns
            WHERE table_schema = 'mart' AND table_name = 'orders' AND column_name = 'ordered_at'""")).scalar()
        assert kind == "timestamp with time zone"
    eng.dispose()


def test_rerun_on_seeded_database_keeps_the_data(engine):
    with engine.connect() as conn:
        before = {t: _count(conn, t) for t in CONTRACT}
    migrate(engine, load_settings())
    with engine.connect() as conn:
        after = {t: _count(conn, t) for t in CONTRACT}
    assert before == after and before["order_items"] > 0


@pytest.fixture
def analyst(database_url):
    role = load_settings().analyst_role
    eng = sa.create_engine(make_url(database_url).set(username=role, password=None), poolclass=sa.pool.NullPool)
    yield eng
    eng.dispose()


def test_analyst_role_reads_mart(analyst):
    with analyst.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM mart.orders")).scalar() > 0
        assert conn.execute(sa.text("SELECT count(*) FROM mart.rollup_sales_daily")).scalar() > 0
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "30s"
        assert conn.execute(sa.text("SHOW transaction_read_only")).scalar() == "on"


@pytest.mark.parametrize("sql,error", [
    ("SELECT * FROM app.rollup_state", "permission denied"),
    ("INSERT INTO mart.kpi_targets VALUES ('gmv', '2030-01-01', '2030-01-31', 1)", "read-only transaction"),
    ("CREATE TEMP TABLE t (x int)", "read-only transaction"),
    ("SET TRANSACTION READ WRITE; CREATE TEMP TABLE t (x int)", "permission denied"),
    ("SET TRANSACTION READ WRITE; DELETE FROM mart.orders", "permission denied"),
    ("CREATE TABLE public.t (x int)", "read-only transaction"),
])
def test_analyst_role_cannot_write_or_read_app(analyst, sql, error):
    with analyst.connect() as conn:
        with pytest.raises(sa.exc.DBAPIError, match=error):
            for stmt in sql.split("; "):
                conn.execute(sa.text(stmt))
