"""Dashboards: owners pin saved-query charts and KPI cards, arrange them, share them; others see
shared ones only and change nothing; the page draws every widget for every role."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from analytics import dashboards as D
from analytics.filters import Filters, resolve_preset
from analytics.kpis import fetch_kpis
from analytics.metrics import format_value
from components.loaders import local_today
from components.text import plain
from data import saved_queries as SQ
from tests.apptest import login, open_page, open_url, texts


@pytest.fixture
def clean(engine):
    def wipe():
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM app.dashboards"))
            conn.execute(sa.text("DELETE FROM app.saved_queries"))
    wipe()
    yield
    wipe()


def test_owner_builds_arranges_and_shares(engine, clean):
    with engine.begin() as conn:
        did = D.create_dashboard(conn, "analyst", "Weekly", refresh_seconds=300)
        with pytest.raises(D.DashboardError, match="name: you already have a dashboard called 'Weekly'"):
            D.create_dashboard(conn, "analyst", "Weekly")
        with pytest.raises(D.DashboardError, match="refresh: choose one of"):
            D.create_dashboard(conn, "analyst", "Other", refresh_seconds=5)
        qid = SQ.save_query(conn, "analyst", "Orders by status", "SELECT status, count(*) AS n FROM mart.orders GROUP BY 1")
        a = D.add_widget(conn, "analyst", did, kind="query", query_id=qid, chart={"type": "bar", "x": "status", "y": "n"})
        b = D.add_widget(conn, "analyst", did, kind="kpi", metric="gmv", period="last_30_days", width=1)
        with pytest.raises(D.DashboardError, match="metric: 'vibes' is not a glossary metric"):
            D.add_widget(conn, "analyst", did, kind="kpi", metric="vibes", period="last_30_days")
        with pytest.raises(D.DashboardError, match="period: choose one of"):
            D.add_widget(conn, "analyst", did, kind="kpi", metric="gmv", period="custom")
        with pytest.raises(D.DashboardError, match="width: 1 to 4"):
            D.add_widget(conn, "analyst", did, kind="kpi", metric="gmv", period="ytd", width=5)
        D.move_widget(conn, "analyst", did, b, -1)
        assert D.fetch_widgets(conn, did)["widget_id"].tolist() == [b, a]
        D.resize_widget(conn, "analyst", did, a, 4)
        # Someone else can neither change it nor see it while it is private.
        with pytest.raises(D.DashboardError, match="only the owner can change a dashboard"):
            D.remove_widget(conn, "admin", did, a)
        assert D.fetch_dashboards(conn, "viewer").empty
        D.update_dashboard(conn, "analyst", did, shared=True, refresh_seconds=60)
        assert D.fetch_dashboards(conn, "viewer")["name"].tolist() == ["Weekly"]
        # Another user's private query cannot be pinned.
        other = SQ.save_query(conn, "admin", "Private", "SELECT 1")
        with pytest.raises(D.DashboardError, match="query: save the query first"):
            D.add_widget(conn, "analyst", did, kind="query", query_id=other)
        assert conn.execute(sa.text("SELECT count(*) FROM app.audit_log WHERE action = 'dashboard.pin'")).scalar() >= 2


def test_the_page_draws_a_shared_dashboard_for_a_viewer(monkeypatch, database_url, engine, clean):
    with engine.begin() as conn:
        did = D.create_dashboard(conn, "analyst", "Team board", shared=True)
        qid = SQ.save_query(conn, "analyst", "Orders by status", "SELECT status, count(*) AS n FROM mart.orders "
                            "WHERE channel = {{channel}} GROUP BY 1", shared=True)
        D.add_widget(conn, "analyst", did, kind="query", query_id=qid, params={"channel": "web"},
                     chart={"type": "bar", "x": "status", "y": "n"})
        D.add_widget(conn, "analyst", did, kind="kpi", metric="orders", period="last_90_days", width=1)
    at = open_page(monkeypatch, database_url, "viewer", "dashboards")
    assert "Team board" in at.selectbox(key="db_pick").options[0]
    assert len(at.get("plotly_chart")) == 1
    with engine.connect() as conn:
        want = fetch_kpis(conn, Filters.make(resolve_preset("last_90_days", local_today())), ("orders",),
                          tz="UTC").iloc[0]
    assert [m.value for m in at.metric] == [format_value("orders", want["current"])]
    assert "New dashboard" not in [e.label for e in at.expander]  # viewers look, analysts build


def test_an_analyst_creates_a_dashboard_and_adds_a_kpi_card(monkeypatch, database_url, engine, clean):
    at = open_page(monkeypatch, database_url, "analyst", "dashboards")
    assert "No dashboards yet" in texts(at)
    at.text_input(key="db_new_name").set_value("Mine")
    at.button(key="FormSubmitter:db_new-Create").click().run()
    assert not at.exception, at.exception
    at.selectbox(key="db_kpi_metric").set_value("gmv")
    at.button(key="FormSubmitter:db_kpi-Add").click().run()
    assert not at.exception, at.exception
    assert len(at.metric) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app.dashboard_widgets")).scalar() == 1


def test_settings_are_written_only_when_changed_so_two_tabs_do_not_undo_each_other(monkeypatch, database_url,
                                                                                   engine, clean):
    with engine.begin() as conn:
        did = D.create_dashboard(conn, "analyst", "Board", refresh_seconds=0)
        wid = D.add_widget(conn, "analyst", did, kind="kpi", metric="gmv", period="last_30_days", width=1)
    first = open_page(monkeypatch, database_url, "analyst", "dashboards")
    second = open_page(monkeypatch, database_url, "analyst", "dashboards")
    first.selectbox(key=f"db_width_{wid}").set_value(3).run()
    first.checkbox(key=f"db_shared_{did}").check().run()
    assert not first.exception, first.exception
    # The second tab still shows the old values; changing another setting there keeps the first tab's.
    second.selectbox(key=f"db_refresh_{did}").set_value(300).run()
    assert not second.exception, second.exception
    with engine.connect() as conn:
        board = conn.execute(sa.text("SELECT shared, refresh_seconds FROM app.dashboards WHERE dashboard_id = :d"),
                             {"d": did}).one()
        width = conn.execute(sa.text("SELECT width FROM app.dashboard_widgets WHERE widget_id = :w"), {"w": wid}).scalar()
    assert (bool(board.shared), board.refresh_seconds, width) == (True, 300, 3)
    # and after its rerun it shows the database's values.
    assert second.selectbox(key=f"db_width_{wid}").value == 3 and second.checkbox(key=f"db_shared_{did}").value


def test_names_written_by_users_show_as_text_not_markdown(monkeypatch, database_url, engine, clean):
    """A widget title with a link and a remote image appeared as both on a viewer's screen
    (issue 20): user text is shown as typed."""
    evil = "Sales [click me](https://evil.example/x) ![](https://evil.example/pixel.png) **loud**"
    # Escaped, and a zero-width space after each scheme: GitHub's autolinks ignore escapes.
    assert plain(evil) == ("Sales \\[click me\\]\\(https\u200b\\:\\/\\/evil\\.example\\/x\\) \\!\\[\\]\\("
                           "https\u200b\\:\\/\\/evil\\.example\\/pixel\\.png\\) \\*\\*loud\\*\\*")
    assert plain("www.example.com") == "www\u200b\\.example\\.com"
    assert plain("two\nlines  <b>") == "two lines \\<b\\>"
    with engine.begin() as conn:
        did = D.create_dashboard(conn, "analyst", "Team board", shared=True)
        D.add_widget(conn, "analyst", did, kind="kpi", metric="orders", period="last_30_days", title=evil)
    at = open_page(monkeypatch, database_url, "viewer", "dashboards")
    shown = [m.value for m in at.markdown]
    assert f"**{plain(evil)}**" in shown
    assert not any("](https" in text for text in shown)


def test_a_query_made_private_stops_running_on_others_dashboards(monkeypatch, database_url, engine, clean):
    with engine.begin() as conn:
        qid = SQ.save_query(conn, "admin", "Orders by status", "SELECT status, count(*) AS n FROM mart.orders "
                            "GROUP BY 1", shared=True)
        did = D.create_dashboard(conn, "analyst", "Team board", shared=True)
        D.add_widget(conn, "analyst", did, kind="query", query_id=qid, chart={"type": "bar", "x": "status", "y": "n"})
        mine = SQ.save_query(conn, "analyst", "My own", "SELECT 1 AS n")
        D.add_widget(conn, "analyst", did, kind="query", query_id=mine)
        SQ.save_query(conn, "admin", "Orders by status", "SELECT email AS status, 1 AS n FROM mart.customers",
                      shared=False, query_id=qid)
    with engine.connect() as conn:
        ws = D.fetch_widgets(conn, did)
    assert ws["query_hidden"].tolist() == [True, False]
    assert ws[["sql", "query_name"]].iloc[0].isna().all()
    assert ws["sql"].iloc[1] == "SELECT 1 AS n"   # the dashboard owner's own private query still runs
    at = open_page(monkeypatch, database_url, "viewer", "dashboards")
    assert "made private by its owner, so it no longer runs here" in texts(at)
    assert len(at.get("plotly_chart")) == 0 and "A private query" in texts(at)


def test_a_dashboards_own_link_opens_it_and_a_stranger_link_says_why_not(monkeypatch, database_url, engine, clean):
    """/dashboards?d=ID opens that dashboard (the login keeps the address); the page keeps the
    picked one in the address; an id the user cannot open is said so, and their first one is shown."""
    with engine.begin() as conn:
        first = D.create_dashboard(conn, "analyst", "Alpha board", shared=True)
        second = D.create_dashboard(conn, "analyst", "Beta board", shared=True)
        private = D.create_dashboard(conn, "admin", "Admin only")
        shown_first = int(D.fetch_dashboards(conn, "viewer")["dashboard_id"].iloc[0])
    at = login(monkeypatch, database_url, "viewer")
    at.query_params["d"] = str(second)
    at = open_url(at, "dashboards")
    assert at.selectbox(key="db_pick").value == second
    assert f"/dashboards?d={second}" in texts(at)
    at.selectbox(key="db_pick").set_value(first).run()
    assert at.query_params["d"] == str(first) and first != second
    for wanted in (private, "nonsense"):
        at = login(monkeypatch, database_url, "viewer")
        at.query_params["d"] = str(wanted)
        at = open_url(at, "dashboards")
        assert at.selectbox(key="db_pick").value == shown_first
        assert f"Dashboard {wanted} is not one you can open" in texts(at)
