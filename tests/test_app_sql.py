"""AppTest of the SQL page: a query with parameters runs on the analysts' role and is recorded
(history, audit log); hostile SQL is refused with a reason; saving, sharing and reopening."""
from __future__ import annotations

import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

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
    assert "parameter x's list: function pg_sleep is not allowed." in texts(at)


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


def test_save_share_and_reopen(monkeypatch, database_url, engine):
    _cleanup(engine)
    at = open_page(monkeypatch, database_url, "analyst", "sql")
    _run(at, "SELECT count(*) AS n FROM mart.vendors")
    at.text_input(key="sql_save_name").set_value("Vendor count")
    at.text_input(key="sql_save_tags").set_value("vendors, counts")
    at.checkbox(key="sql_save_shared").check()
    at.button(key="FormSubmitter:sql_save-Save").click().run()
    assert not at.exception, at.exception
    assert "Saved “Vendor count”." in texts(at)
    # Saving the same name again is refused, naming the field.
    at2 = open_page(monkeypatch, database_url, "analyst", "sql")
    _run(at2, "SELECT 1 AS one")
    at2.text_input(key="sql_save_name").set_value("Vendor count")
    at2.button(key="FormSubmitter:sql_save-Save").click().run()
    assert "Not saved: name: you already have a query called 'Vendor count'." in texts(at2)
    # The admin sees the shared query and opens it in the editor.
    admin = open_page(monkeypatch, database_url, "admin", "sql")
    saved = table_with(admin, "Runs")
    assert saved["Name"].tolist() == ["Vendor count"] and saved["Tags"].tolist() == ["counts, vendors"]
    admin.button(key="sql_open").click().run()
    assert admin.text_area(key="sql_text").value == "SELECT count(*) AS n FROM mart.vendors"
    admin.button(key="sql_run").click().run()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT run_count FROM app.saved_queries")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM app.saved_query_versions")).scalar() == 1
    # Edited in the editor, it is no longer the saved query: its runs are not counted for it.
    _run(admin, "SELECT count(*) AS n FROM mart.vendors WHERE status = 'active'")
    assert "edited: save it to keep the changes" in texts(admin)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT run_count FROM app.saved_queries")).scalar() == 1
    _cleanup(engine)


def test_schema_browser_lists_mart_tables(monkeypatch, database_url):
    at = open_page(monkeypatch, database_url, "analyst", "sql")
    labels = [e.label for e in at.expander]
    assert any(label.startswith("orders · ") for label in labels)
    assert not any(label.startswith(("users", "sessions", "audit_log")) for label in labels)
    glossary = table_with(at, "Definition")
    assert "GMV" in glossary["Metric"].tolist() and glossary["Definition"].str.contains("cancelled").any()


def test_pin_a_saved_query_chart_to_a_dashboard(monkeypatch, database_url, engine):
    from analytics import dashboards as D
    from data import saved_queries as SQ
    _cleanup(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.dashboards"))
        D.create_dashboard(conn, "analyst", "Board")
        SQ.save_query(conn, "analyst", "By status", "SELECT status, count(*) AS n FROM mart.orders GROUP BY 1")
    at = open_page(monkeypatch, database_url, "analyst", "sql")
    at.button(key="sql_open").click().run()
    at.button(key="sql_run").click().run()
    at.selectbox(key="sql_chart").set_value("bar").run()
    at.selectbox(key="sql_x").set_value("status").run()
    at.button(key="FormSubmitter:sql_pin-Pin").click().run()
    assert not at.exception, at.exception
    assert "Pinned to “Board”." in texts(at)
    with engine.connect() as conn:
        w = conn.execute(sa.text("SELECT kind, chart FROM app.dashboard_widgets")).one()
    assert w.kind == "query" and w.chart == {"type": "bar", "x": "status", "y": "n", "colour": None}
    board = open_page(monkeypatch, database_url, "analyst", "dashboards")
    assert len(board.get("plotly_chart")) == 1
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.dashboards"))
    _cleanup(engine)
