"""The safe SQL runner: hostile inputs are rejected by the parser, and each is also refused or
contained by PostgreSQL with the parser switched off; legitimate queries and hostile parameter
values pass as they should; the data is unchanged afterwards."""
from __future__ import annotations

import threading
import time
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from analytics.query import QueryFailed, QueryRejected, list_options, open_query, run_query
from analytics.sql_params import Parameter, bind_parameters, find_parameters, format_sql
from data.saved_queries import MAX_SQL_CHARS, SavedQueryError, save_query
from data.schema import ensure_analyst_role, restrict_catalogs
from data.settings import load_settings
from tests.conftest import create_database
from tests.test_sql_params import FORMAT_ME


def _fingerprint(engine) -> dict:
    """Row counts and content hashes of every table in mart and app, and the schemas' objects."""
    with engine.connect() as conn:
        tables = conn.execute(sa.text("""
            SELECT table_schema || '.' || table_name FROM information_schema.tables
            WHERE table_schema IN ('mart', 'app') AND table_type = 'BASE TABLE' ORDER BY 1""")).scalars().all()
        out = {"tables": tables,
               "sequences": conn.execute(sa.text("SELECT sequencename, last_value FROM pg_sequences "
                                                 "WHERE schemaname IN ('mart', 'app') ORDER BY 1")).all()}
        for t in tables:
            schema, name = t.split(".")
            # Identifiers cannot be bound: PostgreSQL's format(%I) quotes them from bound values.
            q = conn.execute(sa.text("SELECT format('SELECT count(*), COALESCE(sum(hashtext(x::text)::bigint), 0) "
                                     "FROM %I.%I x', CAST(:s AS text), CAST(:n AS text))"),
                             {"s": schema, "n": name}).scalar()
            out[t] = tuple(conn.exec_driver_sql(q).one())
    return out


@pytest.fixture(scope="module")
def untouched(engine) -> dict:
    """The seeded database's fingerprint before this module's tests: each test that runs hostile
    SQL compares the database with it afterwards (hashing every row takes about a second, so it
    is taken once, not before every test)."""
    return _fingerprint(engine)


# A legal query that runs for many seconds (the analysts' role may not sleep).
SLOW_FROM = "generate_series(1, 300000000)"

# (query, what the parser says, what PostgreSQL does with the parser off: "refused" raises
# QueryFailed; "contained" runs without changing anything, within the limits)
HOSTILE = [
    ("WITH gone AS (DELETE FROM mart.orders RETURNING *) SELECT * FROM gone", "DELETE is not allowed", "refused"),
    ("WITH x AS (UPDATE mart.orders SET status = 'paid' RETURNING 1) SELECT * FROM x", "UPDATE is not allowed",
     "refused"),
    ("WITH x AS (INSERT INTO mart.vendors (vendor_id) VALUES (-1) RETURNING 1) SELECT 1", "INSERT is not allowed",
     "refused"),
    ("SELECT 1; SELECT 2", "only one statement is allowed; this has 2", "refused"),
    ("COMMIT; DROP TABLE mart.orders", "only one statement is allowed", "refused"),
    ("EXPLAIN ANALYZE DELETE FROM mart.orders", "EXPLAIN ANALYZE runs the query", "refused"),
    ("explain analyse select 1", "EXPLAIN ANALYZE runs the query", "contained"),
    ("EXPLAIN (ANALYZE) SELECT * FROM mart.orders", "EXPLAIN ANALYZE runs the query", "contained"),
    ("EXPLAIN (FORMAT JSON, ANALYZE TRUE) SELECT 1", "EXPLAIN ANALYZE runs the query", "contained"),
    ("Explain Analyze Verbose select 1", "EXPLAIN ANALYZE runs the query", "contained"),
    ("DO $$ BEGIN DELETE FROM mart.orders; END $$", "only SELECT, WITH, VALUES and EXPLAIN", "refused"),
    ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/mbi_pwned'", "can run; not COPY", "refused"),
    ("SET ROLE postgres", "only SELECT, WITH, VALUES and EXPLAIN", "refused"),
    ("RESET ROLE", "only SELECT, WITH, VALUES and EXPLAIN", "refused"),
    ("SET statement_timeout = 0", "only SELECT, WITH, VALUES and EXPLAIN", "refused"),
    ("SELECT lo_import('/etc/passwd')", "function lo_import is not allowed", "refused"),
    ("SELECT pg_read_file('/etc/passwd')", "function pg_read_file is not allowed", "refused"),
    ("SELECT * FROM dblink('host=localhost', 'select 1') AS t(a int)", "function dblink is not allowed", "refused"),
    ("SELECT query_to_xml('select * from app.users', true, true, '')", "function query_to_xml is not allowed",
     "refused"),
    ("SELECT nextval('mart.forecast_runs_run_id_seq')", "function nextval is not allowed", "refused"),
    ("SELECT set_config('statement_timeout', '0', false)", "function set_config is not allowed", "contained"),
    ("SELECT current_setting('data_directory')", "function current_setting is not allowed", "refused"),
    ("SELECT * FROM app.users", "table app.users is not readable here", "refused"),
    ("SELECT * FROM pg_authid", "there is no table pg_authid in schema mart", "refused"),
    ("SELECT rolname, rolpassword FROM pg_catalog.pg_authid", "table pg_catalog.pg_authid is not readable", "refused"),
    ("SELECT pg_sleep(30)", "function pg_sleep is not allowed", "refused"),
    ("SELECT pg_advisory_lock(42)", "function pg_advisory_lock is not allowed", "refused"),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename <> current_user",
     "function pg_terminate_backend is not allowed", "refused"),
    ("SELECT * INTO mart.stolen FROM mart.orders", "SELECT INTO is not allowed", "refused"),
    ("SELECT * FROM mart.orders FOR UPDATE", "FOR UPDATE/SHARE locks is not allowed", "refused"),
    ("LOCK TABLE mart.orders", "only SELECT, WITH, VALUES and EXPLAIN", "refused"),
    ("LISTEN mbi", "only SELECT, WITH, VALUES and EXPLAIN", "refused"),
    ("PREPARE p AS DELETE FROM mart.orders", "only SELECT, WITH, VALUES and EXPLAIN", "refused"),
    ("CALL some_procedure()", "only SELECT, WITH, VALUES and EXPLAIN", "refused"),
    ("SELECT version()", "function version is not allowed", "contained"),
    ("SELECT count(*) FROM mart.order_items a, mart.order_items b, mart.order_items c",
     None, "refused"),  # legal SQL, far too big: stopped by the time limit
    ("SELECT * FROM mart.order_items a, mart.order_items b", None, "contained"),  # 900M rows: capped
]


@pytest.mark.parametrize("sql,parser,database", HOSTILE, ids=[h[0][:40] for h in HOSTILE])
def test_hostile_input_is_rejected_and_contained(engine, analyst, untouched, sql, parser, database):
    if parser is not None:
        with pytest.raises(QueryRejected, match=parser.replace("(", r"\(").replace(")", r"\)")):
            run_query(sql, engine=analyst)
    # The database's own locks, with the parser switched off.
    if database == "refused":
        with pytest.raises(QueryFailed):
            run_query(sql, engine=analyst, check=False, timeout_ms=1500)
    else:
        result = run_query(sql, engine=analyst, check=False, timeout_ms=5000, row_limit=1000)
        assert len(result.frame) <= 1000
    assert _fingerprint(engine) == untouched
    # Nothing a query did lingers on the pooled connection (one connection, reused).
    with engine.connect() as conn:   # the analysts' role may not read pg_locks
        assert conn.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar() == 0
    with analyst.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_prepared_statements WHERE from_sql")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM pg_listening_channels()")).scalar() == 0
        assert conn.execute(sa.text("SELECT current_setting('statement_timeout')")).scalar() == "30s"


def test_at_least_25_hostile_inputs():
    assert len(HOSTILE) >= 25


@pytest.mark.parametrize("sql", [
    "WITH daily AS (SELECT date_trunc('day', ordered_at) AS d, count(*) AS n FROM mart.orders GROUP BY 1) "
    "SELECT d, n, avg(n) OVER (ORDER BY d ROWS 6 PRECEDING) FROM daily ORDER BY d",
    "SELECT upper('lo_export') AS x",
    "SELECT 'delete from mart.orders; drop table x' AS harmless -- delete everything\n",
    "/* update all rows */ SELECT count(*) FROM orders",
    "SELECT vendor_id, rank() OVER (ORDER BY sum(quantity) DESC) FROM order_items GROUP BY vendor_id",
    "VALUES (1, 'a'), (2, 'b')",
    "SELECT 1 UNION ALL SELECT 2",
    "EXPLAIN SELECT * FROM mart.orders WHERE order_id = 1",
    "select status, count(*) from orders group by status;",
    "SELECT count(*) FROM orders; -- a comment after the semicolon",
])
def test_legitimate_queries_run(analyst, sql):
    result = run_query(sql, engine=analyst)
    assert len(result.frame) >= 1 and result.columns


def test_a_parameter_inside_quotes_is_refused(engine, analyst, untouched):
    text, params = bind_parameters("SELECT '{{v}}' AS x", {"v": "AS a; COMMIT; LISTEN x; SELECT"})
    with pytest.raises(QueryRejected, match="':v' sits inside quotes or a comment"):
        run_query(text, params, engine=analyst)
    with pytest.raises(QueryRejected, match="':b' sits inside quotes"):
        run_query("SELECT 'a :b' AS x", engine=analyst)
    assert run_query("SELECT 'a \\:b' AS x", engine=analyst).frame["x"].tolist() == ["a :b"]
    text, params = bind_parameters("SELECT count(*) AS n FROM mart.orders WHERE status LIKE '%' || {{q}} || '%'",
                                   {"q": "paid"})
    assert run_query(text, params, engine=analyst).frame["n"].iloc[0] > 0
    assert _fingerprint(engine) == untouched


def test_results_are_tidy(analyst):
    r = run_query("SELECT count(*), count(DISTINCT status), sum(shipping_fee) AS fees FROM mart.orders", engine=analyst)
    assert r.columns == ["count", "count_2", "fees"] and r.frame["fees"].dtype == "float64"


def test_hostile_parameter_values_stay_values(engine, analyst, untouched):
    for value in ("'; DROP TABLE mart.orders; --", "1 OR 1=1", "$$; DELETE FROM mart.orders; $$", "\\'; --"):
        r = run_query("SELECT CAST(:v AS text) AS v, count(*) AS n FROM mart.orders WHERE status = :v", {"v": value},
                      engine=analyst)
        assert r.frame["v"].tolist() == [value] and r.frame["n"].tolist() == [0]
    assert _fingerprint(engine) == untouched


def test_row_cap_and_byte_cap(analyst):
    r = run_query("SELECT * FROM mart.order_items", engine=analyst, row_limit=2500)
    assert len(r.frame) == 2500 and r.truncated and r.truncated_by == "rows"
    r = run_query("SELECT * FROM mart.order_items", engine=analyst, row_limit=100_000, max_bytes=200_000)
    assert r.truncated and r.truncated_by == "bytes" and len(r.frame) < 100_000
    r = run_query("SELECT order_id FROM mart.orders ORDER BY order_id LIMIT 5", engine=analyst, row_limit=10)
    assert not r.truncated and r.frame["order_id"].tolist() == sorted(r.frame["order_id"].tolist())


def test_byte_cap_with_enormous_rows_stops_about_one_row_past_it(analyst):
    """Rows of 1 MB each under a 5 MB cap: the fetch sizes its batches by the room left, so it
    stops one or two rows past the cap rather than a whole batch (5,000 rows, 5 GB) past it."""
    r = run_query("SELECT g, repeat('x', 1000000) AS big FROM generate_series(1, 200) g", engine=analyst,
                  row_limit=1000, max_bytes=5_000_000)
    assert r.truncated and r.truncated_by == "bytes"
    assert 5 <= len(r.frame) <= 7, len(r.frame)


def test_open_query_streams_batches_and_translates_failures_while_fetching(analyst):
    with open_query("SELECT g FROM generate_series(1, 12345) g", engine=analyst) as stream:
        sizes = [len(b) for b in stream.batches(5000)]
        assert stream.columns == ["g"]
    assert sizes == [5000, 5000, 2345]
    with open_query("SELECT g FROM generate_series(1, 12345) g", engine=analyst) as stream:
        assert sum(len(b) for b in stream.batches(1000, limit=2500)) == 2500
    # The error happens on row 9,000, in a later FETCH, not when the query starts.
    with pytest.raises(QueryFailed, match="division by zero"):
        with open_query("SELECT 1 / (g - 9000) AS x FROM generate_series(1, 12000) g", engine=analyst) as stream:
            for _ in stream.batches(1000):
                pass
    assert run_query("SELECT 1 AS one", engine=analyst).frame["one"].tolist() == [1]  # the pool is fine after


@pytest.mark.parametrize("sql,message", [
    ("", "the query is empty"),
    ("  ;  ", "the query is empty"),
    ("SELECT FROM WHERE (", "the query could not be read"),
    ("SELECT nosuch FROM mart.orders", r"PostgreSQL: column \"nosuch\" does not exist \(line 1, column 8\)"),
    ("SELECT 1\nFROM mart.orders\nWHERE missing_col = 1", r"\(line 3, column 7\)"),
    ("SELECT * FROM mart.no_such_table", "there is no table|not readable|does not exist"),
    ("SELECT * FROM nowhere", "there is no table nowhere in schema mart"),
])
def test_errors_name_what_is_wrong_and_where(analyst, sql, message):
    with pytest.raises((QueryRejected, QueryFailed), match=message):
        run_query(sql, engine=analyst)


# --- parameters -----------------------------------------------------------------------------------

def test_list_parameters_take_their_choices_from_a_query(analyst, engine):
    source = "SELECT DISTINCT channel FROM mart.orders ORDER BY 1"
    sql = f"SELECT count(*) AS n FROM mart.orders WHERE channel = {{{{ch:list({source})}}}} [[ AND status = {{{{ch}}}} ]]"
    assert find_parameters(sql) == [Parameter("ch", "list", source=source)]
    options = list_options(find_parameters(sql)[0], engine=analyst)
    with engine.connect() as conn:
        assert options == conn.execute(sa.text(source)).scalars().all() and len(options) >= 3
    text, params = bind_parameters(sql, {"ch": options[0]})
    assert text == "SELECT count(*) AS n FROM mart.orders WHERE channel = :ch  AND status = :ch " and params == {"ch": options[0]}
    # The list's own query is an analyst query: the same checks and role.
    with pytest.raises(QueryRejected, match="parameter x's list: function pg_read_file is not allowed"):
        list_options(Parameter("x", "list", source="SELECT pg_read_file('/etc/passwd')"), engine=analyst)
    with pytest.raises(QueryFailed, match="parameter x's list: permission denied"):
        list_options(Parameter("x", "list", source="SELECT username FROM app.users"), engine=analyst, check=False)
    with pytest.raises(QueryRejected, match="cannot have parameters of its own"):
        list_options(Parameter("x", "list", source="SELECT {{y}}"), engine=analyst)


# Statements sent bare on the analysts' role, outside the runner: no parser, no DECLARE, no READ ONLY
# transaction of ours, and the role's default_transaction_read_only switched off. What stops each is
# the role's privileges alone.
BARE = [
    ("DELETE FROM mart.orders", "permission denied for table orders"),
    ("UPDATE mart.orders SET status = 'paid'", "permission denied for table orders"),
    ("INSERT INTO mart.vendors (vendor_id) VALUES (-1)", "permission denied for table vendors"),
    ("TRUNCATE mart.order_items", "permission denied for table order_items"),
    ("DROP TABLE mart.orders", "must be owner of table orders"),
    ("ALTER TABLE mart.orders ADD COLUMN x int", "must be owner of table orders"),
    ("CREATE TABLE mart.stolen AS SELECT * FROM mart.orders", "permission denied for schema mart"),
    ("CREATE TABLE public.stolen (a int)", "permission denied for schema public"),
    ("CREATE TEMP TABLE t (a int)", "permission denied to create temporary tables"),
    ("CREATE SCHEMA evil", "permission denied for database"),
    ("CREATE FUNCTION mart.f() RETURNS int AS 'SELECT 1' LANGUAGE sql", "permission denied for schema mart"),
    ("DO $$ BEGIN DELETE FROM mart.orders; END $$", "permission denied for table orders"),
    ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/mbi_pwned'", "permission denied to COPY to or from an external program"),
    ("COPY mart.orders FROM '/etc/passwd'", "permission denied"),
    ("SET ROLE postgres", "permission denied to set role"),
    ("SELECT lo_import('/etc/passwd')", "permission denied for function lo_import"),
    ("SELECT pg_read_file('/etc/passwd')", "permission denied for function pg_read_file"),
    ("SELECT * FROM app.users", "permission denied for schema app"),
    ("SELECT rolpassword FROM pg_authid", "permission denied for table pg_authid"),
    ("SELECT nextval('mart.forecast_runs_run_id_seq')", "permission denied for sequence"),
    ("SELECT current_setting('data_directory')", "permission denied to examine"),
    ("GRANT SELECT ON app.users TO PUBLIC", "permission denied for schema app"),
    ("CREATE EXTENSION dblink", "permission denied to create extension"),
    ("SELECT pg_reload_conf()", "permission denied for function pg_reload_conf"),
    ("CHECKPOINT", "permission denied to execute CHECKPOINT"),
    # What the parser's deny-list could be walked around with: the role refuses it (issue 20).
    ("SELECT pg_sleep(1)", "permission denied for function pg_sleep"),
    ("SELECT pg_advisory_lock(hashtext('refresh_rollups'))", "permission denied for function pg_advisory_lock"),
    ("SELECT pg_try_advisory_xact_lock(1)", "permission denied for function pg_try_advisory_xact_lock"),
    ("SELECT pg_cancel_backend(pg_backend_pid())", "permission denied for function pg_cancel_backend"),
    ("SELECT pg_terminate_backend(pg_backend_pid())", "permission denied for function pg_terminate_backend"),
    ("SELECT query_to_xml('SELECT 1', true, true, '')", "permission denied for function query_to_xml"),
    ("SELECT * FROM ts_stat('SELECT to_tsvector(''x'')')", "permission denied for function ts_stat"),
    ("SELECT datname FROM pg_database", "permission denied for table pg_database"),
    ('SELECT datname FROM U&"pg_d\\0061tabase"', "permission denied for table pg_database"),
    ("WITH pg_proc AS (SELECT 1) SELECT prosrc FROM pg_catalog.pg_proc", "permission denied for table pg_proc"),
    ("SELECT relname FROM pg_class WHERE relnamespace = 'app'::regnamespace", "permission denied for table pg_class"),
    ("SELECT tgname FROM pg_trigger", "permission denied for table pg_trigger"),
    ("SELECT query FROM pg_stat_activity", "permission denied for view pg_stat_activity"),
    ("SELECT pg_stat_get_backend_activity(1)", "permission denied for function pg_stat_get_backend_activity"),
    ("SELECT pg_get_functiondef('app.track_orders'::regproc)", "permission denied for schema app"),
    ("SELECT pg_get_triggerdef(1)", "permission denied for function pg_get_triggerdef"),
    ("SELECT pg_get_viewdef('pg_catalog.pg_stat_activity'::regclass)", "permission denied for function pg_get_viewdef"),
    ("SET temp_file_limit = -1", "permission denied to set parameter"),
]


@pytest.mark.parametrize("sql,message", BARE, ids=[b[0][:40] for b in BARE])
def test_the_role_alone_refuses_bare_statements(engine, analyst, untouched, sql, message):
    with analyst.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("SET default_transaction_read_only = off")
        with pytest.raises(sa.exc.DBAPIError, match=message):
            conn.exec_driver_sql(sql)
        conn.exec_driver_sql("DISCARD ALL")
    assert _fingerprint(engine) == untouched


def test_the_role_changing_its_own_defaults_changes_nothing_the_runner_enforces(engine, analyst):
    """A role may ALTER its own defaults; the runner sets its limits per transaction anyway, and
    every migration puts the role's settings back."""
    with analyst.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("SET default_transaction_read_only = off")
        conn.exec_driver_sql("ALTER ROLE CURRENT_USER SET default_transaction_read_only = off")
        conn.exec_driver_sql("ALTER ROLE CURRENT_USER SET statement_timeout = 0")
        conn.exec_driver_sql("ALTER ROLE CURRENT_USER SET work_mem = '2GB'")
        conn.exec_driver_sql("DISCARD ALL")
    try:
        fresh = sa.create_engine(analyst.url, poolclass=sa.pool.NullPool)   # new sessions take the new defaults
        r = run_query("SELECT current_setting('work_mem') AS w, current_setting('statement_timeout') AS t, "
                      "current_setting('transaction_read_only') AS ro", engine=fresh, check=False, timeout_ms=1500)
        assert r.frame.iloc[0].tolist() == ["32MB", "1500ms", "on"]
        with pytest.raises(QueryFailed, match="ran longer than 1.5 s"):
            run_query(f"SELECT count(*) FROM {SLOW_FROM}", engine=fresh, check=False, timeout_ms=1500)
    finally:
        with engine.begin() as conn:
            ensure_analyst_role(conn, load_settings())
    with fresh.connect() as conn:
        assert conn.exec_driver_sql("SHOW work_mem").scalar() == "32MB"
        assert conn.exec_driver_sql("SHOW default_transaction_read_only").scalar() == "on"
    fresh.dispose()


def test_format_sql_keeps_the_results(analyst):
    out = format_sql(FORMAT_ME)
    values = {"ch": "web", "since": date(2026, 1, 1)}
    before = run_query(*bind_parameters(FORMAT_ME, values), engine=analyst).frame
    after = run_query(*bind_parameters(out, values), engine=analyst).frame
    assert before.equals(after) and len(before) >= 2


# --- hardening (issue 20) ---------------------------------------------------------------------------

def test_text_over_the_size_cap_is_not_saved(empty_engine):
    huge = "SELECT 1 AS n -- " + "x" * MAX_SQL_CHARS
    with empty_engine.begin() as conn, pytest.raises(SavedQueryError, match="sql: at most 100,000 characters"):
        save_query(conn, "ann", "Huge", huge)


def test_deep_nesting_is_refused_by_the_runner_with_a_message(analyst):
    nested = "SELECT " + "(" * 1000 + "1" + ")" * 1000 + " AS n"
    with pytest.raises(QueryRejected, match="flatten it"):
        run_query(nested, engine=analyst)
    assert run_query("SELECT " + "(" * 30 + "1" + ")" * 30 + " AS n", engine=analyst).frame["n"].tolist() == [1]


def test_one_analysts_slow_queries_neither_fill_the_pool_nor_delay_another(analyst):
    slow = f"SELECT count(*) AS n FROM {SLOW_FROM}"
    outcomes: list[str] = []

    def ann():
        try:
            run_query(slow, engine=analyst, user="ann", timeout_ms=6000)
            outcomes.append("ran")
        except QueryRejected as ex:
            outcomes.append(str(ex))
        except QueryFailed:
            outcomes.append("stopped")
    threads = [threading.Thread(target=ann) for _ in range(5)]
    for t in threads:
        t.start()
    time.sleep(1)
    assert run_query("SELECT 1 AS n", engine=analyst, user="bob").frame["n"].tolist() == [1]
    assert sum(t.is_alive() for t in threads) == 2   # bob did not wait for ann's queries
    rejected = [o for o in outcomes if "queries running already" in o]
    assert len(rejected) == 3, outcomes
    for t in threads:
        t.join()


def test_one_analyst_cannot_cancel_anothers_query(analyst):
    """All analysts share one role; PostgreSQL lets a role's sessions signal each other unless the
    functions are revoked."""
    with analyst.connect() as victim, analyst.connect() as other:
        pid = victim.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied for function pg_cancel_backend"):
            other.execute(sa.text("SELECT pg_cancel_backend(:p)"), {"p": pid})
        other.rollback()
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied for function pg_terminate_backend"):
            other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        assert victim.execute(sa.text("SELECT 1")).scalar() == 1


def test_a_migration_by_a_user_who_does_not_own_the_catalogs_says_they_stay_open(admin_url, caplog):
    """PostgreSQL answers a REVOKE by a non-owner with a warning, not an error: the migration looks
    again and says what stays open."""
    url = create_database(admin_url, "mbi_not_superuser")
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql("DROP ROLE IF EXISTS mbi_plain")
        conn.exec_driver_sql("CREATE ROLE mbi_plain LOGIN")
    plain = sa.create_engine(make_url(url).set(username="mbi_plain"), poolclass=sa.pool.NullPool)
    try:
        with plain.begin() as conn:
            assert restrict_catalogs(conn, load_settings().analyst_role) is False
        assert "can still read PostgreSQL's catalogs" in caplog.text
        assert "does not own pg_catalog" in caplog.text
        with admin.begin() as conn:   # a superuser's migration closes them
            assert restrict_catalogs(conn, load_settings().analyst_role) is True
    finally:
        plain.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP OWNED BY mbi_plain")
            conn.exec_driver_sql("DROP ROLE mbi_plain")
        admin.dispose()
