"""AppTest of the Reports page: everyone requests exports and downloads them; analysts and admins
schedule reports (bad input refused per field), run them now and see their history."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from reports import delivery, exports
from tests.apptest import login, open_url, table_with, texts


@pytest.fixture
def clean(engine):
    def wipe():
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM app.schedules; DELETE FROM app.exports; DELETE FROM app.outbox"))
    wipe()
    yield
    wipe()


def _page(monkeypatch, database_url, role, tmp_path):
    at = login(monkeypatch, database_url, role, EXPORT_DIR=str(tmp_path / "exports"))
    at = open_url(at, "reports")
    assert not at.exception, at.exception
    return at


def test_a_viewer_requests_an_export_follows_it_and_downloads_it(monkeypatch, database_url, engine, clean, tmp_path):
    at = _page(monkeypatch, database_url, "viewer", tmp_path)
    assert [t.label for t in at.tabs] == ["My exports", "New export"]          # no schedules for viewers
    assert "saved_query" not in at.selectbox(key="rep_request_template").options
    at.selectbox(key="rep_request_template").set_value("vendor_performance").run()
    at.selectbox(key="rep_request_format_vendor_performance").set_value("csv")
    at.selectbox(key="rep_request_period").set_value("last_month")
    at.button(key="rep_request_go").click().run()
    assert not at.exception, at.exception
    assert "queued: it appears under My exports" in texts(at)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT owner, template, format, params->>'period' AS period, status "
                                   "FROM app.exports")).one()
    assert tuple(row) == ("viewer", "vendor_performance", "csv", "last_month", "queued")
    assert exports.run_exports(engine, "test") == 1
    at.run()
    table = table_with(at, "Expires")
    assert table["Status"].tolist() == ["✔ done"] and table["Rows"].iloc[0] > 0
    assert at.get("download_button")[0].proto.label == "Download"


def test_an_analyst_schedules_a_report_and_bad_input_is_named(monkeypatch, database_url, engine, clean, tmp_path):
    at = _page(monkeypatch, database_url, "analyst", tmp_path)
    assert [t.label for t in at.tabs] == ["My exports", "New export", "Schedules"]
    form = "rep_sched_form_new"
    at.text_input(key=f"{form}_name").set_value("Morning KPIs")
    at.text_area(key=f"{form}_recipients").set_value("ops@example.com, nobody")
    at.button(key=f"{form}_save").click().run()
    assert "Not saved: recipients: 'nobody' is not an email address." in texts(at)
    at.text_area(key=f"{form}_recipients").set_value("ops@example.com")
    at.text_input(key=f"{form}_at").set_value("7.30")
    at.button(key=f"{form}_save").click().run()
    assert "Not saved: time: '7.30' is not a time of day" in texts(at)
    at.text_input(key=f"{form}_at").set_value("07:30")
    at.text_input(key=f"{form}_tz").set_value("Europe/Berlin")
    at.button(key=f"{form}_save").click().run()
    assert not at.exception, at.exception
    assert "every day at 07:30 (Europe/Berlin)" in texts(at)
    with engine.connect() as conn:
        s = conn.execute(sa.text("SELECT owner, template, format, cron, timezone, recipients FROM app.schedules")).one()
    assert tuple(s) == ("analyst", "kpi_summary", "pdf", "30 7 * * *", "Europe/Berlin", ["ops@example.com"])
    assert table_with(at, "When")["Name"].tolist() == ["Morning KPIs"]    # listed at once
    at.button(key="rep_sched_run").click().run()
    assert "1 run(s) queued" in texts(at)
    exports.run_exports(engine, "test")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app.outbox WHERE target = 'ops@example.com'")).scalar() == 1
        assert delivery.fetch_failed_deliveries(conn).empty
    at.run()
    history = table_with(at, "Failed deliveries")
    assert history["Status"].tolist() == ["done"] and history["Waiting"].tolist() == [1]
    at.button(key="rep_sched_pause").click().run()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT paused FROM app.schedules")).scalar() is True


def test_an_admin_sees_failed_deliveries_and_retries_one(monkeypatch, database_url, engine, clean, tmp_path):
    with engine.begin() as conn:
        delivery.enqueue(conn, channel="email", target="gone@example.com", payload={"subject": "x"},
                         key="test:failed", source="test")
        conn.execute(sa.text("UPDATE app.outbox SET status = 'failed', attempts = 8, "
                             "last_error = 'SMTP 127.0.0.1:1: connection refused'"))
    at = login(monkeypatch, database_url, "admin")
    at = open_url(at, "admin")
    assert "gone@example.com" in table_with(at, "last_error")["target"].tolist()
    at.button(key="deliveries_retry").click().run()
    assert not at.exception, at.exception
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, attempts FROM app.outbox")).one()
        assert tuple(row) == ("pending", 0)
        assert conn.execute(sa.text("SELECT count(*) FROM app.audit_log WHERE action = 'delivery.retry'")).scalar() >= 1
