"""AppTest of the Alerts page: analysts create rules (bad input refused per field), preview them,
see their state, history and notifications; admins see and manage everyone's; viewers cannot open it."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from components.text import plain
from reports import alert_evaluation, alerts
from tests.apptest import login, open_url, table_with, texts

FORM = "alerts_form_new"


@pytest.fixture
def clean(engine):
    def wipe():
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM app.alert_rules; DELETE FROM app.outbox"))
    wipe()
    yield
    wipe()


def _page(monkeypatch, database_url, role):
    at = open_url(login(monkeypatch, database_url, role), "alerts")
    assert not at.exception, at.exception
    return at


def test_viewers_cannot_open_alerts(monkeypatch, database_url):
    at = _page(monkeypatch, database_url, "viewer")
    assert "You are not permitted to open this page" in texts(at)


def test_an_analyst_creates_a_rule_sees_it_fire_and_its_history(monkeypatch, database_url, engine, clean):
    at = _page(monkeypatch, database_url, "analyst")
    assert "No alert rules yet" in texts(at)
    at.text_input(key=f"{FORM}_name").set_value("GMV stalled")
    at.selectbox(key=f"{FORM}_window").set_value("last_24h")
    at.selectbox(key=f"{FORM}_condition").set_value("below")
    at.number_input(key=f"{FORM}_threshold_value").set_value(1000)
    at.text_area(key=f"{FORM}_recipients").set_value("ops@example.com, nobody")
    at.button(key=f"{FORM}_save").click().run()
    assert "Not saved: recipients: 'nobody' is not an email address." in texts(at)
    at.selectbox(key=f"{FORM}_metric").set_value("active_customers").run()
    at.text_area(key=f"{FORM}_recipients").set_value("ops@example.com")
    at.button(key=f"{FORM}_save").click().run()
    assert "Not saved: window: Active customers is counted per day" in texts(at)
    at.selectbox(key=f"{FORM}_metric").set_value("gmv").run()
    at.number_input(key=f"{FORM}_threshold_value").set_value(1000)
    at.button(key=f"{FORM}_save").click().run()
    assert not at.exception, at.exception
    assert "Saved rule" in texts(at)
    table = table_with(at, "Condition")
    assert table["Name"].tolist() == ["GMV stalled"] and table["State"].iloc[0] == "● Not evaluated yet"
    assert table["Condition"].iloc[0] == "GMV, last 24 hours, is below €1,000.00"
    # The seeded orders end days before today: nothing in the last 24 hours, so it fires.
    assert alert_evaluation.evaluate_due(engine)["events"] == 1
    at.run()
    assert table_with(at, "Condition")["State"].iloc[0] == "● Firing"
    history = table_with(at, "Compared with")
    assert history["To"].tolist() == ["● Firing"] and history["Value"].tolist() == ["€0.00"]
    notes = table_with(at, "Subject")
    assert notes["Subject"].tolist() == ["[MEDIUM] GMV stalled: FIRING"] and notes["Status"].tolist() == ["pending"]
    at.button(key="alerts_detail_test").click().run()   # no SMTP server configured here
    # Addresses and errors are shown as typed (Markdown escaped, issue 20).
    assert f"Test to {plain('ops@example.com')} failed: {plain('SMTP_HOST is not set')}" in texts(at)


def test_a_preview_counts_what_would_have_fired(monkeypatch, database_url, clean):
    at = _page(monkeypatch, database_url, "analyst")
    at.selectbox(key=f"{FORM}_window").set_value("yesterday")
    at.selectbox(key=f"{FORM}_condition").set_value("below")
    at.number_input(key=f"{FORM}_threshold_value").set_value(1)
    at.button(key=f"{FORM}_preview").click().run()
    assert not at.exception, at.exception
    # The seeded data ends on 20 November: every day since has no orders, one episode of firing.
    assert "Over the last 30 days this rule **would have fired 1 time** (replayed every day" in texts(at)
    assert at.get("plotly_chart")


def test_admins_see_and_pause_every_rule_analysts_only_theirs(monkeypatch, database_url, engine, clean):
    with engine.begin() as conn:
        alerts.save_rule(conn, "analyst", name="Mine", metric="orders", window="today", condition="above",
                         threshold=10, recipients="a@example.com")
        alerts.save_rule(conn, "admin", name="Boss", metric="refund_rate", window="last_7d", condition="above",
                         threshold=0.05, recipients="b@example.com", severity="critical")
    at = _page(monkeypatch, database_url, "admin")
    table = table_with(at, "Condition")
    assert sorted(table["Name"]) == ["Boss", "Mine"]
    assert "Refund rate, last 7 days, is above 5.0 %" in table["Condition"].tolist()
    at.multiselect(key="alerts_sev").set_value(["critical"]).run()
    assert table_with(at, "Condition")["Name"].tolist() == ["Boss"]
    at.multiselect(key="alerts_sev").set_value([]).run()
    with engine.connect() as conn:
        mine = conn.execute(sa.text("SELECT rule_id FROM app.alert_rules WHERE name = 'Mine'")).scalar()
    at.selectbox(key="alerts_rule").set_value(mine).run()
    at.button(key="alerts_detail_pause").click().run()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT paused FROM app.alert_rules WHERE name = 'Mine'")).scalar()
    analyst = _page(monkeypatch, database_url, "analyst")
    assert table_with(analyst, "Condition")["Name"].tolist() == ["Mine"]
