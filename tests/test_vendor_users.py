"""Vendor users (issue 22): binding users to vendors, the refusals that write nothing, the audit log,
the command line, and the vendor portal's figures read on the vendor's own role against an
independent computation over the vendor's raw lines."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa

from analytics.filters import Filters, Period, resolve_period
from analytics.kpis import fetch_aggregate, fetch_rollup_layout
from analytics.products import fetch_product_metrics
from analytics.query import QueryFailed, QueryRejected, run_query
from analytics.vendor_portal import VENDOR_METRICS, compute_vendor_overview
from data import auth
from data.vendor_scope import ensure_vendor_role, vendor_role_name
from data.vendor_users import create_vendor_user, fetch_bound_vendors, set_user_vendors
from tests.conftest import ROOT, SEED_END, TEST_COOKIE_KEY, vendor_role_engine, vendor_settings
from tests.raw_metrics import assert_close, expected, lines_in, load_raw, prepare
from tests.test_query import HOSTILE, _fingerprint

PASSWORD = "Quiet-meadow-4821"
VENDORS = """
INSERT INTO mart.vendors VALUES
  (1, 'Alpha Books', 'Books', 'Europe', 'DE', '2024-01-01', 'active', 0.10),
  (2, 'Beta Toys', 'Toys', 'Europe', 'FR', '2024-01-01', 'paused', 0.15),
  (3, 'Gamma Games', 'Toys', 'Europe', 'FR', '2024-01-01', 'closed', 0.15);
"""


@pytest.fixture
def settings():
    return vendor_settings()


@pytest.fixture
def vendors(empty_engine):
    with empty_engine.begin() as conn:
        conn.execute(sa.text(VENDORS))
    return empty_engine


def _counts(engine) -> tuple:
    with engine.connect() as conn:
        return (conn.execute(sa.text("SELECT count(*) FROM app.users")).scalar(),
                conn.execute(sa.text("SELECT count(*) FROM app.user_vendors")).scalar(),
                conn.execute(sa.text("SELECT count(*) FROM app.vendor_scopes")).scalar())


def test_a_vendor_user_is_bound_to_its_vendors_with_a_role_and_an_audit_row(vendors, settings):
    with vendors.begin() as conn:
        user = create_vendor_user(conn, "Ann.Vendor", PASSWORD, [2, 1, 2], settings, name="Ann", actor="boss")
    assert (user.username, user.role, user.vendor_ids, user.is_vendor) == ("ann.vendor", "vendor", (1, 2), True)
    with vendors.connect() as conn:
        assert conn.execute(sa.text("SELECT vendor_ids FROM app.vendor_scopes")).scalar() == [1, 2]
        assert conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                            {"r": vendor_role_name([1, 2])}).scalar() == 1
        detail = conn.execute(sa.text("SELECT detail FROM app.audit_log WHERE action = 'user.vendors'")).scalar()
        assert detail == {"from": [], "to": [1, 2], "db_role": "mbi_vendor_1_2"}
        assert auth.fetch_user(conn, "ann.vendor").vendor_ids == (1, 2)
        assert fetch_bound_vendors(conn) == {1: 1, 2: 1}
        listed = auth.fetch_users(conn).set_index("username")
        assert list(listed.loc["ann.vendor", "vendors"]) == [1, 2]


@pytest.mark.parametrize("ids, role, message", [
    ([1, 999], "vendor", "No vendor with id 999 in mart.vendors"),
    ([3], "vendor", r"Vendor 3 is closed \(mart.vendors.status\)"),
    ([], "vendor", "A vendor user needs at least one vendor"),
    ([1], "analyst", "Only vendor users are bound to vendors"),
    (["x"], "vendor", "Vendor ids must be whole numbers"),
])
def test_bad_bindings_are_refused_by_name_and_nothing_is_written(vendors, settings, ids, role, message):
    before = _counts(vendors)
    with pytest.raises(auth.AuthError, match=message), vendors.begin() as conn:
        if role == "vendor":
            create_vendor_user(conn, "bob", PASSWORD, ids, settings)
        else:
            auth.create_user(conn, "bob", PASSWORD, role, vendor_ids=tuple(ids))
    assert _counts(vendors) == before


def test_binding_and_unbinding_vendors(vendors, settings):
    with vendors.begin() as conn:
        create_vendor_user(conn, "ann", PASSWORD, [1], settings)
        auth.create_user(conn, "carl", PASSWORD, "analyst")
    with vendors.begin() as conn:
        assert set_user_vendors(conn, "ann", [1, 2], settings, actor="boss") == (1, 2)
    with vendors.begin() as conn:
        assert set_user_vendors(conn, "ann", [2], settings, actor="boss") == (2,)
        assert auth.fetch_user(conn, "ann").vendor_ids == (2,)
    # Vendor 2 closes: it stays bound (its history stays the user's), but cannot be bound anew.
    with vendors.begin() as conn:
        conn.execute(sa.text("UPDATE mart.vendors SET status = 'closed' WHERE vendor_id IN (1, 2)"))
        assert set_user_vendors(conn, "ann", [2], settings) == (2,)
    for who, ids, message in (("ann", [1, 2], "Vendor 1 is closed"), ("ann", [], "disable the user"),
                              ("carl", [2], "'carl' is not a vendor user"), ("nobody", [2], "no user called")):
        before = _counts(vendors)
        with pytest.raises(auth.AuthError, match=message), vendors.begin() as conn:
            set_user_vendors(conn, who, ids, settings)
        assert _counts(vendors) == before
    with vendors.connect() as conn:
        moves = conn.execute(sa.text("SELECT detail->'from', detail->'to' FROM app.audit_log "
                                     "WHERE action = 'user.vendors' ORDER BY id")).all()
    assert [tuple(m) for m in moves] == [([], [1]), ([1], [1, 2]), ([1, 2], [2])]


def test_roles_never_cross_between_staff_and_vendors(vendors, settings):
    with vendors.begin() as conn:
        create_vendor_user(conn, "ann", PASSWORD, [1], settings)
        auth.create_user(conn, "carl", PASSWORD, "analyst")
        auth.create_user(conn, "root", PASSWORD, "admin")
    for who, role in (("ann", "analyst"), ("ann", "admin"), ("carl", "vendor")):
        with pytest.raises(auth.AuthError, match="separate accounts"), vendors.begin() as conn:
            auth.set_role(conn, who, role)


def test_a_vendor_login_and_session_carry_the_vendors_and_the_login_is_audited(vendors, settings):
    with vendors.begin() as conn:
        create_vendor_user(conn, "ann", PASSWORD, [1, 2], settings)
    with vendors.begin() as conn:
        outcome = auth.attempt_login(conn, "ann", PASSWORD, client_addr="203.0.113.9")
        sid, _ = auth.create_session(conn, outcome.user, days=1)
    assert outcome.user.vendor_ids == (1, 2)
    with vendors.begin() as conn:
        assert auth.resolve_session(conn, sid).vendor_ids == (1, 2)
        row = conn.execute(sa.text("SELECT actor, detail, client_addr FROM app.audit_log "
                                   "WHERE action = 'vendor.login'")).one()
    assert tuple(row) == ("ann", {"vendor_ids": [1, 2]}, "203.0.113.9")


def _cli(args: list[str], url: str, password: str | None = None) -> subprocess.CompletedProcess:
    env = {"DATABASE_URL": url, "AUTH_COOKIE_KEY": TEST_COOKIE_KEY, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "data", *args], input=(password or "") + "\n", text=True,
                          capture_output=True, cwd=ROOT, env=env, timeout=60)


def test_the_command_line_creates_a_vendor_user_and_names_what_is_wrong(vendors):
    url = vendors.url.render_as_string(hide_password=False)
    done = _cli(["create-user", "dora", "--role", "vendor", "--vendor", "1", "--vendor", "2", "--password-stdin"],
                url, PASSWORD)
    assert done.returncode == 0 and "created vendor 'dora' bound to vendor 1, 2" in done.stdout, done.stderr
    for args, words in (
            (["create-user", "eve", "--role", "vendor", "--password-stdin"], "add --vendor ID"),
            (["create-user", "eve", "--role", "analyst", "--vendor", "1", "--password-stdin"], "--vendor binds"),
            (["create-user", "eve", "--role", "vendor", "--vendor", "3", "--password-stdin"], "Vendor 3 is closed"),
            (["create-user", "eve", "--role", "vendor", "--vendor", "77", "--password-stdin"], "No vendor with id 77")):
        failed = _cli(args, url, PASSWORD)
        assert failed.returncode != 0 and words in failed.stderr, (args, failed.stderr)
    with vendors.connect() as conn:
        assert conn.execute(sa.text("SELECT username FROM app.users")).scalars().all() == ["dora"]


# --- the portal's figures on the vendor's own role --------------------------------------------

@pytest.fixture(scope="module")
def portal(database_url, engine):
    """(the test vendor user, an engine of its database role, the rollups' layout, prepared raw rows)."""
    with engine.connect() as conn:
        user = auth.fetch_user(conn, "vendor")
        layout = fetch_rollup_layout(conn, "UTC")
    vendor = vendor_role_engine(database_url, vendor_role_name(user.vendor_ids))
    yield user, vendor, layout, prepare(load_raw(engine), "UTC")
    vendor.dispose()


@pytest.fixture(scope="module")
def pair(database_url, engine):
    """(two vendors' ids, an engine of the login role seeing both): a user bound to two vendors."""
    settings = vendor_settings()
    with engine.begin() as conn:
        ids = tuple(conn.execute(sa.text("SELECT vendor_id FROM mart.rollup_vendor_daily GROUP BY 1 "
                                         "ORDER BY sum(all_orders) DESC, 1 LIMIT 2")).scalars())
        role = ensure_vendor_role(conn, ids, settings)
    both = vendor_role_engine(database_url, role)
    yield ids, both
    both.dispose()


@pytest.mark.parametrize("scope", ["one vendor", "two vendors"])
@pytest.mark.parametrize("preset", ["last_7_days", "last_30_days", "last_90_days", "mtd", "qtd", "ytd", "last_year"])
def test_every_portal_figure_equals_the_vendors_raw_lines(portal, pair, preset, scope):
    user, vendor, layout, raw = portal
    ids, engine = (user.vendor_ids, vendor) if scope == "one vendor" else pair
    f = Filters.make(resolve_period(preset, SEED_END + timedelta(days=1)))
    with engine.connect() as conn:
        fig = compute_vendor_overview(conn, f, ids, tz="UTC", layout=layout)
    dims = {"vendor_id": list(ids)}
    for period, column in ((f.period, "current"), (f.compare, "previous")):
        want = {m: v for m, v in expected(raw, period.start, period.end, dims).items() if m in VENDOR_METRICS}
        assert_close(dict(zip(fig.kpis["metric"], fig.kpis[column].map(lambda v: None if v != v else v))), want,
                     f"{preset} {column}")
    lines = lines_in(raw, f.period.start, f.period.end, dims)
    counted = lines[lines["counted"]]
    by_product = counted.groupby("product_id")["value"].sum().sort_values(ascending=False)
    assert dict(zip(fig.top_products["product_id"], fig.top_products["gmv"])) == pytest.approx(
        by_product.head(len(fig.top_products)).to_dict())
    assert fig.trend["gmv"].sum() == pytest.approx(counted["value"].sum())
    assert set(fig.vendor_names) == set(ids)


def test_the_vendor_role_reads_nothing_of_other_vendors(portal):
    user, vendor, layout, _ = portal
    f = Filters.make(Period(SEED_END - timedelta(days=365), SEED_END))
    with vendor.connect() as conn:
        # The analysts' own readers, asked for every vendor, still answer with the vendor's rows only.
        everyone = fetch_product_metrics(conn, f, tz="UTC", layout=layout)
        vendors = fetch_aggregate(conn, f, by="vendor_id", metrics=("gmv",), tz="UTC", layout=layout)
        owners = conn.execute(sa.text("SELECT DISTINCT vendor_id FROM mart.products")).scalars().all()
    assert len(everyone) and set(everyone["vendor_id"]) == set(user.vendor_ids)
    assert set(vendors["key"].astype(int)) == set(user.vendor_ids) == set(owners)


@pytest.mark.parametrize("sql", ["EXPLAIN SELECT * FROM mart.order_items WHERE vendor_id = 1",
                                 "/* plan */ explain (costs) SELECT 1", "-- a plan\n  EXPLAIN SELECT 1",
                                 "SELECT 'unterminated"])
@pytest.mark.parametrize("check", [True, False])
def test_a_vendors_sql_may_not_explain_even_with_the_parser_off(portal, sql, check):
    """EXPLAIN's estimates come from statistics of every vendor's rows: refused before PostgreSQL sees it."""
    _, vendor, _, _ = portal
    with pytest.raises(QueryRejected, match="EXPLAIN is not available here"):
        run_query(sql, engine=vendor, check=check, explain=False)
    # The analysts keep it.
    if sql.startswith("EXPLAIN"):
        assert run_query(sql, engine=vendor, explain=True).frame.shape[0] > 0


def test_the_analysts_hostile_sql_on_a_vendor_role_with_the_parser_off(portal, engine):
    """Every statement of the analysts' hostile suite, sent on the vendor's role without the parser:
    what the analysts' role refuses, the vendor's refuses too; what runs returns only the vendor's
    rows; nothing changes in mart or app."""
    user, vendor, _, _ = portal
    with engine.connect() as conn:
        others = conn.execute(sa.text("SELECT name FROM mart.vendors WHERE NOT vendor_id = ANY(:v)"),
                              {"v": list(user.vendor_ids)}).scalars().all()
    before = _fingerprint(engine)
    ran = []
    for sql, _, database in HOSTILE:
        try:
            result = run_query(sql, engine=vendor, check=False, explain=False, timeout_ms=1500, row_limit=1000)
        except (QueryFailed, QueryRejected):
            continue
        ran.append(sql)
        assert database == "contained", sql
        frame = result.frame
        assert len(frame) <= 1000 and not [n for n in others if n in frame.to_csv(index=False)], sql
        for column in [c for c in frame.columns if c == "vendor_id"]:
            assert set(frame[column].dropna().astype(int)) <= set(user.vendor_ids), sql
    assert ran, "some legal statements ran, so the loop proves something"
    assert _fingerprint(engine) == before
