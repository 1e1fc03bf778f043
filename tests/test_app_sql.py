"""AppTest of the SQL page: a query with parameters runs on the analysts' role and is recorded
(history, audit log); hostile SQL is refused with a reason; saving, sharing and reopening."""
from __future__ import annotations

import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from components.text import plain
from tests.apptest import open_page, table_with, texts


def _run(at: AppTest, sql: str) -> AppTest:
    at.text_area(key="sql_text").set_value(sql).run()
    at.button(key="sql_run").click().run()
    assert not at.exception, at.exception
    return at


def _cleanup(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.query_history"))
        conn.execute(sa.text("DELETE FROM app.saved_queries"))


def test_a_query_with_parameters_runs_and_is_recorded(monkeypatch, database_url, engine):
    _cleanup(engine)
    at = open_page(monkeypatch, database_url, "analyst", "sql")
    at.text_area(key="sql_text").set_value(
        "SELECT status, count(*) AS orders FROM mart.orders WHERE channel = {{channel}} "
        "[[ AND status = {{status}} ]] GROUP BY 1 ORDER BY 1").run()
    at.text_input(key="sql_param_channel_text").set_value("web").run()
    at.button(key="sql_run").click().run()
    assert not at.exception, at.exception
    shown = table_with(at, "orders")
    with engine.connect() as conn:
        want = conn.execute(sa.text("SELECT status, count(*) FROM mart.orders WHERE channel = 'web' GROUP BY 1 ORDER BY 1")).all()
        assert [tuple(r) for r in shown[["status", "orders"]].itertuples(index=False)] == [tuple(r) for r in want]
        h = conn.execute(sa.text("SELECT username, outcome, rows, params FROM app.query_history")).one()
        assert h.username == "analyst" and h.outcome == "ok" and h.rows == len(want) and h.params == {"channel": "web", "status": None}
        assert conn.execute(sa.text("SELECT count(*) FROM app.audit_log WHERE action = 'sql.run' AND actor = 'analyst'")).scalar() >= 1
    # Reopened from the history, the query comes back with its parameter value.
    again = open_page(monkeypatch, database_url, "analyst", "sql")
    again.button(key="sql_history_open").click().run()
    assert not again.exception, again.exception
    assert again.text_input(key="sql_param_channel_text").value == "web"
    assert "{{channel}}" in again.text_area(key="sql_text").value
    # A hostile value stays a value: no row has that channel.
    at.text_input(key="sql_param_channel_text").set_value("web' OR '1'='1").run()
    at.button(key="sql_run").click().run()
    assert table_with(at, "orders").empty


def test_a_list_parameter_offers_the_values_of_its_query(monkeypatch, database_url, engine):
    _cleanup(engine)
    at = open_page(monkeypatch, database_url, "analyst", "sql")
    at.text_area(key="sql_text").set_value(
        "SELECT count(*) AS orders, min(channel) AS channel FROM mart.orders "
        "WHERE channel = {{ch:list(SELECT DISTINCT channel FROM mart.orders ORDER BY 1)}}").run()
    box = at.selectbox(key="sql_param_ch_list")
    with engine.connect() as conn:
        channels = conn.execute(sa.text("SELECT DISTINCT channel FROM mart.orders ORDER BY 1")).scalars().all()
        want = conn.execute(sa.text("SELECT count(*) FROM mart.orders WHERE channel = :c"), {"c": channels[1]}).scalar()
    assert box.options == channels and box.value is None
    box.set_value(channels[1]).run()
    at.button(key="sql_run").click().run()
    assert not at.exception, at.exception
    assert table_with(at, "orders")["orders"].tolist() == [want]
    again = open_page(monkeypatch, database_url, "analyst", "sql")
    again.button(key="sql_history_open").click().run()
    assert again.selectbox(key="sql_param_ch_list").value == channels[1]
    # A list whose query is refused says so on the parameter.
    at.text_area(key="sql_text").set_value("SELECT {{x:list(SELECT pg_sleep(1))}} AS x").run()
    assert plain("parameter x's list: function pg_sleep is not allowed") + "." in texts(at)   # shown as typed


def test_format_lays_out_the_editor_and_says_when_it_cannot(monkeypatch, database_url, engine):
    at = open_page(monkeypatch, database_url, "analyst", "sql")
    at.text_area(key="sql_text").set_value("select status, count(*) from mart.orders group by 1").run()
    at.button(key="sql_format").click().run()
    assert not at.exception, at.exception
    assert at.text_area(key="sql_text").value == "SELECT\n  status,\n  COUNT(*)\nFROM mart.orders\nGROUP BY\n  1"
    at.text_area(key="sql_text").set_value("SELECT 1 [[ WHERE x = {{x}} ]]").run()
    at.button(key="sql_format").click().run()
    assert "Not formatted: a query with optional [[ … ]] parts cannot be formatted." in texts(at)
    assert at.text_area(key="sql_text").value == "SELECT 1 [[ WHERE x = {{x}} ]]"


def test_hostile_sql_is_refused_with_a_reason(monkeypatch, database_url, engine):
    _cleanup(engine)
    at = open_page(monkeypatch, database_url, "analyst", "sql")
    _run(at, "SELECT pg_sleep(60)")
    assert "Not run: function pg_sleep is not allowed." in texts(at)
    _run(at, "WITH x AS (DELETE FROM mart.orders RETURNING 1) SELECT * FROM x")
    assert "DELETE is not allowed" in texts(at)
    _run(at, "SELECT nosuch FROM mart.orders")
    assert 'column "nosuch" does not exist (line 1, column 8)' in texts(at)
    with engine.connect() as conn:
        outcomes = conn.execute(sa.text("SELECT outcome FROM app.query_history ORDER BY id")).scalars().all()
    assert outcomes == ["rejected", "rejected", "failed"]


def test_deeply_nested_and_oversized_sql_get_a_message_not_a_traceback(monkeypatch, database_url, engine):
    _cleanup(engine)
    at = open_page(monkeypatch, database_url, "analyst", "sql")
    _run(at, "SELECT " + "(" * 1000 + "1" + ")" * 1000)
    assert "Not run: the query nests too deeply to be read here" in texts(at)
    at.button(key="sql_format").click().run()
    assert not at.exception and "Not formatted: the query nests too deeply to be read here" in texts(at)
    at.text_area(key="sql_text").set_value("SELECT 1 -- " + "x" * 100_000).run()
    assert not at.exception
    assert "characters long; at most 100,000 can run here" in texts(at)
    assert at.button(key="sql_run").disabled
