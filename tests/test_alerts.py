"""Alert rules against a real PostgreSQL, a real SMTP server and a real HTTP server on loopback:
windows and conditions checked against order lines, batched evaluation, the lifecycle end to
end with its notifications, two scheduler processes, a failing channel, bad input per field."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from analytics import alerts as A
from analytics.filters import Period
from data.auth import create_user
from data.rollups import refresh_rollups
from data.saved_queries import save_query
from reports import alert_evaluation, alerts, delivery
from tests.conftest import ROOT, SEED_END, TEST_COOKIE_KEY, clone, create_database, use_database

UTC = timezone.utc
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


# --- windows -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("window,start,end", [
    ("yesterday", date(2026, 11, 20), date(2026, 11, 20)),
    ("last_7d", date(2026, 11, 14), date(2026, 11, 20)),
    ("last_30d", date(2026, 10, 22), date(2026, 11, 20)),
    ("today", date(2026, 11, 21), date(2026, 11, 21)),
    ("wtd", date(2026, 11, 16), date(2026, 11, 21)),     # 21 Nov 2026 is a Saturday
    ("mtd", date(2026, 11, 1), date(2026, 11, 21)),
])
def test_whole_day_windows_resolve_in_local_days(window, start, end):
    assert A.resolve_window(window, NOW, "UTC") == A.Window(period=Period(start, end))


def test_span_windows_end_now_and_days_follow_the_time_zone():
    assert A.resolve_window("last_hour", NOW, "UTC").span == (NOW - timedelta(hours=1), NOW)
    assert A.resolve_window("last_24h", NOW, "UTC").span == (NOW - timedelta(hours=24), NOW)
    late = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)   # already the 22nd in Berlin
    assert A.resolve_window("today", late, "Europe/Berlin").period.start == date(2026, 11, 22)


@pytest.mark.parametrize("window,baseline,start,end", [
    ("last_7d", "previous", date(2026, 11, 7), date(2026, 11, 13)),
    ("last_7d", "last_week", date(2026, 11, 7), date(2026, 11, 13)),
    ("yesterday", "previous", date(2026, 11, 19), date(2026, 11, 19)),
    ("yesterday", "last_week", date(2026, 11, 13), date(2026, 11, 13)),
    ("last_30d", "previous", date(2026, 9, 22), date(2026, 10, 21)),
])
def test_baseline_windows(window, baseline, start, end):
    assert A.baseline_window(window, baseline, NOW, "UTC").period == Period(start, end)


def test_span_baselines():
    assert A.baseline_window("last_hour", "previous", NOW, "UTC").span == (NOW - timedelta(hours=2),
                                                                          NOW - timedelta(hours=1))
    week = timedelta(days=7)
    assert A.baseline_window("last_24h", "last_week", NOW, "UTC").span == (NOW - timedelta(hours=24) - week,
                                                                          NOW - week)


# --- conditions --------------------------------------------------------------------------------------

def _spec(**kw) -> A.Spec:
    return A.Spec(**{"metric": "gmv", "window": "last_24h", "condition": "above", "threshold": 100.0, **kw})


@pytest.mark.parametrize("kw,value,baseline,band,outcome", [
    ({}, 150.0, None, None, "breach"),
    ({}, 100.0, None, None, "clear"),                         # equal is not above
    ({"condition": "below"}, 99.99, None, None, "breach"),
    ({"condition": "below"}, None, None, None, "no_data"),
    ({"condition": "rises_by", "threshold": 20.0, "baseline": "previous"}, 121.0, 100.0, None, "breach"),
    ({"condition": "rises_by", "threshold": 20.0, "baseline": "previous"}, 119.0, 100.0, None, "clear"),
    ({"condition": "falls_by", "threshold": 20.0, "baseline": "previous"}, 79.0, 100.0, None, "breach"),
    ({"condition": "falls_by", "threshold": 20.0, "baseline": "previous"}, 130.0, 100.0, None, "clear"),
    ({"condition": "falls_by", "threshold": 20.0, "baseline": "previous"}, 50.0, 0.0, None, "no_data"),
    ({"condition": "outside_forecast", "threshold": None, "window": "yesterday"}, 50.0, None, (80, 60, 100), "breach"),
    ({"condition": "outside_forecast", "threshold": None, "window": "yesterday"}, 101.0, None, (80, 60, 100), "breach"),
    ({"condition": "outside_forecast", "threshold": None, "window": "yesterday"}, 70.0, None, (80, 60, 100), "clear"),
    ({"condition": "outside_forecast", "threshold": None, "window": "yesterday"}, 70.0, None, None, "no_data"),
])
def test_conditions(kw, value, baseline, band, outcome):
    assert A.judge(_spec(**kw), value, baseline, band).outcome == outcome


def test_a_change_reports_its_percentage():
    o = A.judge(_spec(condition="falls_by", threshold=10.0, baseline="last_week"), 75.0, 100.0)
    assert o.change == pytest.approx(-25.0) and o.baseline == 100.0


# --- figures against order lines (the seeded test database) --------------------------------------------

RAW = sa.text("""
    SELECT CASE CAST(:by AS text) WHEN 'vendor_id' THEN i.vendor_id::text WHEN 'category' THEN p.category
                                  WHEN 'region' THEN c.region ELSE '' END AS k,
           sum(i.quantity * i.unit_price - i.discount) AS gmv, count(DISTINCT o.order_id) AS orders,
           sum(i.refunded_amount) AS refunded
    FROM mart.orders o JOIN mart.order_items i USING (order_id) JOIN mart.products p USING (product_id)
    JOIN mart.customers c USING (customer_id)
    WHERE o.status <> 'cancelled'
      AND o.ordered_at >= CAST(:t0 AS timestamptz) AND o.ordered_at < CAST(:t1 AS timestamptz)
    GROUP BY 1""")


def _raw(conn, fan_out: str, t0: datetime, t1: datetime) -> dict:
    """GMV, orders and refund rate per value straight from order lines placed in [t0, t1), the
    glossary written out again."""
    rows = conn.execute(RAW, {"by": fan_out, "t0": t0, "t1": t1})
    return {r.k: {"gmv": float(r.gmv), "orders": float(r.orders), "refund_rate": float(r.refunded) / float(r.gmv)}
            for r in rows}


@pytest.mark.parametrize("fan_out", ["", "vendor_id", "category", "region"])
@pytest.mark.parametrize("window", ["last_24h", "last_7d", "mtd"])
def test_window_values_equal_order_lines(engine, window, fan_out):
    at = datetime.combine(SEED_END, datetime.min.time(), UTC) + timedelta(hours=15)
    w = A.resolve_window(window, at, "UTC")
    with engine.connect() as conn:
        got = A.fetch_window_metrics(conn, w, (), fan_out, ("gmv", "orders", "refund_rate"), "UTC")
        t0, t1 = w.span or (datetime.combine(w.period.start, datetime.min.time(), UTC),   # whole UTC days
                            datetime.combine(w.period.end + timedelta(days=1), datetime.min.time(), UTC))
        raw = _raw(conn, fan_out, t0, t1)
    assert raw, "the window has orders"
    for k, figures in raw.items():
        assert got[k] == pytest.approx(figures, rel=1e-9), k
    # Values without orders: zero GMV and orders, no refund rate (nothing to divide).
    for k in set(got) - set(raw):
        assert got[k] == {"gmv": 0.0, "orders": 0.0, "refund_rate": None}


def _close(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12))


def test_span_windows_share_one_copy_of_their_lines_with_the_same_values(engine):
    """Many rules over the last hour and 24 hours: their lines are copied once (the copy pays), and
    every value equals the rule evaluated alone, which reads the tables; the copy is gone after."""
    at = datetime.combine(SEED_END, datetime.min.time(), UTC) + timedelta(hours=15)
    with engine.connect() as conn:
        category = conn.execute(sa.text("SELECT min(category) FROM mart.products")).scalar()
    specs = [_spec(metric=m, window=w, fan_out=fan, filters=filters)
             for m in ("gmv", "aov", "cancellation_rate", "take_revenue")
             for w in ("last_hour", "last_24h")
             for fan in ("", "vendor_id", "category", "region")
             for filters in ((), (("channel", ("web", "mobile")),), (("category", (category,)),))
             if not (fan == "category" and filters and filters[0][0] == "category")]
    specs += [_spec(metric="orders", window=w, condition=c, baseline=b, threshold=10.0, fan_out=fan)
              for w in ("last_hour", "last_24h") for c, b in (("rises_by", "previous"), ("falls_by", "last_week"))
              for fan in ("", "region")]
    ranges, hours = A.span_ranges({s.group: [i] for i, s in enumerate(specs)}, specs, at, "UTC")
    assert hours >= A.SHARE_SPAN_LINES_AT * sum((b - a).total_seconds() for a, b in ranges) / 3600
    copies = []

    def watch(conn, cursor, statement, *args):  # noqa: ARG001
        if "CREATE TEMP TABLE alert_span_lines" in statement:
            copies.append("copy")

    # A stored rule check_spec would refuse (a change without a baseline) fails its group only.
    bad = A.Spec("gmv", "last_24h", "rises_by", 10.0, "", (("channel", ("sales_rep",)),), "region")
    sa.event.listen(engine, "before_cursor_execute", watch)
    try:
        with engine.connect() as conn:
            batch = A.evaluate(conn, [*specs, bad], at, tz="UTC")
            assert conn.execute(sa.text("SELECT to_regclass('pg_temp.alert_span_lines')")).scalar() is None
    finally:
        sa.event.remove(engine, "before_cursor_execute", watch)
    assert copies == ["copy"] and list(batch.errors) == [len(specs)]
    assert batch.errors[len(specs)].startswith("compared with:")
    with engine.connect() as conn:
        alone = [A.evaluate(conn, [s], at, tz="UTC") for s in specs]
        raw = _raw(conn, "region", at - timedelta(hours=24), at)
    assert all(not b.errors for b in alone)
    for s, got, one in zip(specs, batch.observations, alone):
        assert got.keys() == one.observations[0].keys(), s
        for fan, o in got.items():
            want = one.observations[0][fan]
            assert o.outcome == want.outcome and _close(o.value, want.value) and _close(o.baseline, want.baseline), \
                (s, fan, o, want)
    by_region = batch.observations[specs.index(_spec(metric="gmv", window="last_24h", fan_out="region"))]
    assert {k: o.value for k, o in by_region.items() if k in raw} == pytest.approx({k: v["gmv"] for k, v in raw.items()})


def test_vendor_fan_out_covers_every_vendor_not_closed(engine):
    with engine.connect() as conn:
        got = A.fetch_window_metrics(conn, A.resolve_window("last_hour", NOW, "UTC"), (), "vendor_id", ("gmv",), "UTC")
        open_vendors = {str(v) for v, in conn.execute(sa.text("SELECT vendor_id FROM mart.vendors WHERE status <> 'closed'"))}
    assert set(got) == open_vendors


def test_rules_sharing_a_window_filters_and_fan_out_are_one_query(engine):
    """Twelve rules over three windows, four metrics: one aggregate query per window, plus one
    for the baseline window the change rules need."""
    specs = [_spec(metric=m, window=w, threshold=float(t)) for m in ("gmv", "orders", "aov", "refund_rate")
             for w in ("last_24h", "last_7d") for t in (1,)]
    specs += [_spec(metric="gmv", window="mtd", fan_out="category", threshold=10.0),
              _spec(metric="orders", window="mtd", fan_out="category", threshold=5.0),
              _spec(metric="gmv", window="mtd", fan_out="category", condition="falls_by", baseline="previous",
                    threshold=10.0),
              _spec(metric="net_revenue", window="mtd", fan_out="category", threshold=1.0)]
    statements = []

    def count(conn, cursor, statement, *args):  # noqa: ARG001
        if "WITH s AS" in statement:
            statements.append(statement)

    at = datetime.combine(SEED_END, datetime.min.time(), UTC) + timedelta(hours=15)
    with engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", count)
        batch = A.evaluate(conn, specs, at, tz="UTC")
        sa.event.remove(conn, "before_cursor_execute", count)
    assert not batch.errors
    assert batch.queries == len(statements) == 4
    assert all(len(o) == 1 for o in batch.observations[:8])
    assert all(len(o) > 1 for o in batch.observations[8:])


def test_a_failing_group_marks_its_rules_and_the_others_go_on(engine, monkeypatch):
    real = A.fetch_window_metrics

    def broken(conn, window, filters, fan_out, *a, **k):
        if fan_out == "category":
            conn.execute(sa.text("SELECT 1/0"))
        return real(conn, window, filters, fan_out, *a, **k)

    monkeypatch.setattr(A, "fetch_window_metrics", broken)
    with engine.connect() as conn:
        batch = A.evaluate(conn, [_spec(), _spec(fan_out="category")], NOW, tz="UTC")
    assert list(batch.errors) == [1] and "division by zero" in batch.errors[1]
    assert set(batch.observations[0]) == {""}


# --- a small marketplace of our own for the lifecycle ---------------------------------------------------

MARKET = """
INSERT INTO mart.vendors VALUES (1, 'Alpha', 'Books', 'Europe', 'DE', '2024-01-01', 'active', 0.1),
                                (2, 'Beta', 'Toys', 'Europe', 'DE', '2024-01-01', 'active', 0.1),
                                (3, 'Gamma', 'Toys', 'Europe', 'DE', '2024-01-01', 'closed', 0.1);
INSERT INTO mart.products VALUES (10, 1, 'A-10', 'Novel', 'Books', 'Fiction', 20, 8, '2024-01-01'),
                                 (20, 2, 'B-20', 'Kite', 'Toys', 'Outdoor', 30, 10, '2024-01-01');
INSERT INTO mart.customers VALUES (100, 'Ann', 'DE', 'Europe', 'B2C', 'organic', '2025-01-01');
"""


def add_order(conn, order_id: int, at: datetime, vendor: int, amount: float, status: str = "delivered") -> None:
    conn.execute(sa.text("INSERT INTO mart.orders VALUES (:id, 100, :at, :st, 'web', 'B2C', 'card', 'captured', "
                         "'EUR', 0)"), {"id": order_id, "at": at, "st": status})
    conn.execute(sa.text("INSERT INTO mart.order_items VALUES (:id, 1, :p, :v, 1, :amount, 0, 1, 0)"),
                 {"id": order_id, "p": vendor * 10, "v": vendor, "amount": amount})


@pytest.fixture(scope="module")
def market_template(admin_url, empty_template) -> str:
    """A database with MARKET, its rollups and four users, made once for the module."""
    url = create_database(admin_url, "mbi_market", template=empty_template)
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"options": "-c timezone=UTC"})
    with eng.begin() as conn:
        create_user(conn, "ann", "a-long-password-1", "analyst")
        create_user(conn, "bob", "a-long-password-2", "analyst")
        create_user(conn, "root", "a-long-password-3", "admin")
        create_user(conn, "vic", "a-long-password-4", "viewer")
        conn.execute(sa.text(MARKET))
        refresh_rollups(conn, timezone="UTC")
    eng.dispose()
    return "mbi_market"


@pytest.fixture
def market(admin_url, market_template, monkeypatch, tmp_path, smtp):
    """A fresh copy of market_template, the app's settings pointed at it and at the SMTP server."""
    with clone(admin_url, market_template) as eng:
        url = eng.url.render_as_string(hide_password=False)
        use_database(monkeypatch, url, APP_TIMEZONE="UTC", EXPORT_DIR=str(tmp_path / "exports"),
                     DELIVERY_BACKOFF_SECONDS="1", APP_BASE_URL="http://bi.example.com", **smtp.env())
        yield {"engine": eng, "url": url}


def _rule(conn, owner="ann", **change) -> int:
    fields = dict(name="Low GMV", metric="gmv", window="last_hour", condition="below", threshold=100,
                  interval_minutes=5, recipients="ops@example.com", webhook_url="")
    return alerts.save_rule(conn, owner, **{**fields, **change})


def _tick(eng, now) -> dict:
    counts = alert_evaluation.evaluate_due(eng, now=now)
    counts.update(delivery.deliver_due(eng, worker="test"))
    return counts


def _events(eng, rule_id):
    with eng.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT fan_value, from_state, to_state, notify, value FROM app.alert_events WHERE rule_id = :r "
            "ORDER BY event_id"), {"r": rule_id})]


def test_a_rule_fires_once_repeats_after_its_interval_resolves_and_says_so(market, smtp, hook):
    eng = market["engine"]
    with eng.begin() as conn:
        add_order(conn, 1, NOW - timedelta(minutes=30), 1, 50.0)
        rid = _rule(conn, webhook_url=hook.url, repeat_minutes=30)
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    first = _tick(eng, NOW)
    assert (first["rules"], first["events"], first["sent"]) == (1, 1, 2)
    assert len(smtp.messages) == 1 and len(hook.posts) == 1
    mail = smtp.messages[0]
    assert mail["Subject"] == "[MEDIUM] Low GMV: FIRING" and mail["To"] == "ops@example.com"
    body = mail.get_body(("plain",)).get_content()
    assert "Value: €50.00" in body and "Threshold: €100.00" in body and "is below €100.00" in body
    assert "http://bi.example.com/alerts?rule=" in body and "21 Nov 11:00 – 21 Nov 12:00" in body
    post = hook.posts[0][2]
    assert post["kind"] == "firing" and post["value"] == 50.0 and post["threshold"] == 100.0
    assert hook.posts[0][1]["Idempotency-Key"].startswith(f"alert:{rid}:")
    # Five minutes later: still firing, the repeat is not due yet; nothing is sent.
    assert _tick(eng, NOW + timedelta(minutes=5))["sent"] == 0
    # Before the rule is due again nothing is evaluated at all.
    assert alert_evaluation.evaluate_due(eng, now=NOW + timedelta(minutes=7))["rules"] == 0
    # 35 minutes on: the order has left the hour (GMV 0), and the repeat is due.
    assert _tick(eng, NOW + timedelta(minutes=35))["sent"] == 2
    assert smtp.messages[-1]["Subject"] == "[MEDIUM] Low GMV: still FIRING"
    with eng.begin() as conn:
        add_order(conn, 2, NOW + timedelta(minutes=36), 2, 250.0)
    assert _tick(eng, NOW + timedelta(minutes=40))["sent"] == 2
    assert smtp.messages[-1]["Subject"] == "[MEDIUM] Low GMV: RESOLVED"
    assert "Value: €250.00" in smtp.messages[-1].get_body(("plain",)).get_content()
    assert _tick(eng, NOW + timedelta(minutes=45))["sent"] == 0     # resolved → OK, quietly
    assert _events(eng, rid) == [("", "ok", "firing", "firing", 50.0), ("", "firing", "firing", "repeat", 0.0),
                                 ("", "firing", "resolved", "resolved", 250.0), ("", "resolved", "ok", None, 250.0)]
    assert len(smtp.messages) == 3 and len(hook.posts) == 3
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app.outbox WHERE status <> 'sent'")).scalar() == 0
        notes = alerts.fetch_rule_notifications(conn, rid)
    assert len(notes) == 6 and set(notes["status"]) == {"sent"}


def test_for_waits_for_breaches_in_a_row_and_a_clear_starts_again(market, smtp):
    eng = market["engine"]
    with eng.begin() as conn:
        rid = _rule(conn, for_evaluations=3, interval_minutes=1)
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    _tick(eng, NOW)
    _tick(eng, NOW + timedelta(minutes=1))
    with eng.begin() as conn:   # a clear in between: counting starts again
        add_order(conn, 1, NOW + timedelta(minutes=1, seconds=30), 1, 500.0)
    _tick(eng, NOW + timedelta(minutes=2))
    with eng.begin() as conn:
        conn.execute(sa.text("DELETE FROM mart.order_items; DELETE FROM mart.orders"))
    for k in range(3, 6):
        _tick(eng, NOW + timedelta(minutes=k))
    assert [e[2] for e in _events(eng, rid)] == ["pending", "ok", "pending", "firing"]
    assert len(smtp.messages) == 1


def test_fan_out_keeps_a_state_per_value(market, smtp):
    eng = market["engine"]
    with eng.begin() as conn:
        add_order(conn, 1, NOW - timedelta(minutes=10), 1, 500.0)
        rid = _rule(conn, name="Vendors low", fan_out="vendor_id")
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    _tick(eng, NOW)
    # Beta (2) sold nothing: GMV 0 < 100 fires; Alpha sold 500; Gamma is closed and not watched.
    assert _events(eng, rid) == [("2", "ok", "firing", "firing", 0.0)]
    assert [m["Subject"] for m in smtp.messages] == ["[MEDIUM] Vendors low · Beta (vendor 2): FIRING"]
    with eng.connect() as conn:
        listed = alerts.fetch_rules(conn, "ann").iloc[0]
    assert (listed["state"], listed["firing"]) == ("firing", 1)


def test_muted_rules_record_transitions_without_notifying(market, smtp):
    eng = market["engine"]
    with eng.begin() as conn:
        rid = _rule(conn, muted_until=NOW + timedelta(hours=1))
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    assert _tick(eng, NOW)["events"] == 1
    with eng.connect() as conn:
        muted = conn.execute(sa.text("SELECT muted, notify, to_state FROM app.alert_events")).one()
        assert conn.execute(sa.text("SELECT count(*) FROM app.outbox")).scalar() == 0
    assert tuple(muted) == (True, None, "firing") and smtp.messages == []
    assert _events(eng, rid)[0][2] == "firing"


def test_a_saved_query_rule_fans_out_over_its_labels_and_a_broken_query_is_an_error(market, smtp):
    eng = market["engine"]
    with eng.begin() as conn:
        qid = save_query(conn, "ann", "Stock", "SELECT * FROM (VALUES ('north', 3), ('south', 12)) v(region, n)")
        rid = alerts.save_rule(conn, "ann", name="Stock low", source="query", query_id=qid, condition="below",
                               threshold=5, interval_minutes=5, recipients="ops@example.com")
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    _tick(eng, NOW)
    assert _events(eng, rid) == [("north", "ok", "firing", "firing", 3.0)]
    with eng.begin() as conn:   # the query breaks: the rule goes to ERROR once, and says why
        conn.execute(sa.text("UPDATE app.saved_queries SET sql = 'SELECT region, n FROM nowhere' WHERE query_id = :q"),
                     {"q": qid})
    _tick(eng, NOW + timedelta(minutes=5))
    _tick(eng, NOW + timedelta(minutes=10))
    events = _events(eng, rid)
    assert events[1][:4] == ("*", "ok", "error", "error")
    assert len(events) == 2 and smtp.messages[-1]["Subject"] == "[MEDIUM] Stock low: ERROR"
    with eng.connect() as conn:
        rule = alerts.fetch_rule(conn, rid)
    assert "nowhere" in rule["last_error"]
    assert "nowhere" in smtp.messages[-1].get_body(("plain",)).get_content()


def test_a_day_outside_its_stored_forecast_band_fires(market, smtp):
    eng = market["engine"]
    day = NOW.date() - timedelta(days=1)
    with eng.begin() as conn:
        add_order(conn, 1, datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9), 1, 40.0)
        refresh_rollups(conn, timezone="UTC")
        run = conn.execute(sa.text("""
            INSERT INTO mart.forecast_runs (run_date, metric, grain, horizon, interval, history_start, history_end,
                                            model, reason, notes, backtest, backtest_forecasts, duration_ms)
            VALUES (:d, 'gmv', 'day', 28, 0.8, :d, :d, 'seasonal_naive', 'test', '[]', '[]', '{}', 1)
            RETURNING run_id"""), {"d": day - timedelta(days=3)}).scalar()
        conn.execute(sa.text("INSERT INTO mart.forecast_points VALUES (:r, :d, 100, 80, 120, 70, 130)"),
                     {"r": run, "d": day})
        rid = _rule(conn, name="GMV anomaly", window="yesterday", condition="outside_forecast", threshold=None)
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    _tick(eng, NOW)
    assert _events(eng, rid) == [("", "ok", "firing", "firing", 40.0)]
    body = smtp.messages[0].get_body(("plain",)).get_content()
    assert "Forecast: €100.00 (band €80.00 – €120.00)" in body


def test_a_test_notification_goes_to_every_channel_at_once(market, smtp, hook):
    eng = market["engine"]
    with eng.begin() as conn:
        rid = _rule(conn, webhook_url=hook.url, recipients="a@example.com, b@example.com")
    sent = alerts.send_test(eng, "ann", rid)
    assert [s["outcome"] for s in sent] == ["sent"] * 3
    assert sorted(m["To"] for m in smtp.messages) == ["a@example.com", "b@example.com"]
    assert smtp.messages[0]["Subject"] == "[MEDIUM] Low GMV: TEST" and hook.posts[0][2]["kind"] == "test"
    with pytest.raises(alerts.AlertError, match="owner or an admin"):
        alerts.send_test(eng, "bob", rid)


def test_a_failing_channel_is_retried_until_it_recovers(market, smtp):
    eng = market["engine"]
    smtp.stop()
    with eng.begin() as conn:
        _rule(conn)
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    assert _tick(eng, NOW)["retry"] == 1
    smtp.start()
    time.sleep(1.1)   # DELIVERY_BACKOFF_SECONDS=1
    assert delivery.deliver_due(eng)["sent"] == 1
    with eng.connect() as conn:
        row = conn.execute(sa.text("SELECT status, attempts, last_error FROM app.outbox")).one()
    assert tuple(row) == ("sent", 2, "") and len(smtp.messages) == 1
    # The next evaluations (still firing, no repeat) add nothing.
    assert _tick(eng, NOW + timedelta(minutes=5))["sent"] == 0 and len(smtp.messages) == 1


def test_two_scheduler_processes_send_one_notification_per_transition(market, smtp):
    eng = market["engine"]
    with eng.begin() as conn:
        for i in range(30):
            _rule(conn, name=f"Rule {i}", recipients=f"r{i}@example.com",
                  window=["last_hour", "last_24h", "today"][i % 3], fan_out="vendor_id" if i % 5 == 0 else "")
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = now() - interval '1 minute'"))
    env = {**os.environ, "DATABASE_URL": market["url"], "APP_TIMEZONE": "UTC", "AUTH_COOKIE_KEY": TEST_COOKIE_KEY,
           **smtp.env()}
    procs = [subprocess.Popen([sys.executable, "-m", "reports.scheduler", "--once"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    with eng.connect() as conn:
        events = conn.execute(sa.text("SELECT rule_id, fan_value, count(*) FROM app.alert_events GROUP BY 1, 2")).all()
        outbox = conn.execute(sa.text("SELECT count(*), count(*) FILTER (WHERE status = 'sent') FROM app.outbox")).one()
    # Every rule fires (no orders at all): 24 plain rules once, 6 fanned out over vendors 1 and 2.
    assert len(events) == 24 + 6 * 2 and all(n == 1 for *_, n in events)
    assert tuple(outbox) == (36, 36) and len(smtp.messages) == 36
    assert len({m["Message-ID"] for m in smtp.messages}) == 36


# --- bad input -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("change,field", [
    ({"name": "  "}, "name"),
    ({"metric": "profit"}, "metric"),
    ({"window": "fortnight"}, "window"),
    ({"condition": "equals"}, "condition"),
    ({"threshold": "lots"}, "threshold"),
    ({"threshold": None}, "threshold"),
    ({"condition": "rises_by", "threshold": 10}, "compared with"),
    ({"condition": "rises_by", "baseline": "previous", "threshold": -5}, "threshold"),
    ({"baseline": "previous"}, "compared with"),
    ({"condition": "outside_forecast", "threshold": None}, "window"),
    ({"condition": "outside_forecast", "metric": "aov", "window": "yesterday"}, "metric"),
    ({"metric": "active_customers"}, "window"),
    ({"metric": "conversion_rate", "window": "last_7d", "fan_out": "vendor_id"}, "for each"),
    ({"fan_out": "planet"}, "for each"),
    ({"filters": {"colour": ["red"]}}, "filters"),
    ({"filters": {"vendor_id": ["acme"]}}, "filters"),
    ({"for_evaluations": 0}, "for"),
    ({"for_evaluations": 2.5}, "for"),
    ({"severity": "urgent"}, "severity"),
    ({"interval_minutes": 0}, "every"),
    ({"interval_minutes": "soon"}, "every"),
    ({"repeat_minutes": -1}, "repeat"),
    ({"recipients": "ops@example.com, not-an-address"}, "recipients"),
    ({"recipients": "", "webhook_url": ""}, "recipients"),
    ({"webhook_url": "ftp://example.com/hook"}, "webhook"),
    ({"muted_until": datetime(2026, 12, 1)}, "mute until"),
    ({"source": "query", "query_id": 999}, "query"),
    ({"source": "spreadsheet"}, "source"),
    ({"window": "mtd", "condition": "falls_by", "baseline": "previous", "threshold": 20}, "window"),
    ({"metric": "conversion_rate", "window": "last_7d", "filters": {"category": ["Books"]}}, "filters"),
    ({"condition": "outside_forecast", "window": "yesterday", "baseline": "previous", "threshold": None},
     "compared with"),
    ({"repeat_minutes": float("inf")}, "repeat"),
    ({"repeat_minutes": 1}, "repeat"),                     # reminders every minute (issue 20)
    ({"recipients": ", ".join(f"r{i}@example.com" for i in range(5000))}, "recipients"),
    ({"webhook_url": "http://169.254.169.254/latest/meta-data/"}, "webhook"),
])
def test_bad_rule_input_is_refused_naming_the_field_and_nothing_is_saved(market, change, field):
    eng = market["engine"]
    with eng.begin() as conn, pytest.raises(alerts.AlertError) as ex:
        _rule(conn, **change)
    assert str(ex.value).startswith(field + ":"), str(ex.value)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app.alert_rules")).scalar() == 0


def test_roles_own_rules_analysts_theirs_admins_all_viewers_none(market):
    eng = market["engine"]
    with eng.begin() as conn:
        rid = _rule(conn)
        with pytest.raises(alerts.AlertError, match="analyst or admin"):
            _rule(conn, owner="vic", name="Mine")
        with pytest.raises(alerts.AlertError, match="owner or an admin"):
            _rule(conn, owner="bob", rule_id=rid, name="Taken")
        assert not alerts.delete_rule(conn, "bob", rid)
        assert alerts.set_paused(conn, "root", rid, True, is_admin=True)
        _rule(conn, owner="root", rule_id=rid, is_admin=True, name="Renamed by admin")
        with pytest.raises(alerts.AlertError, match="already a rule called"):
            _rule(conn, name="Renamed by admin")
        assert list(alerts.fetch_rules(conn, "ann")["name"]) == ["Renamed by admin"]
        assert alerts.fetch_rules(conn, "bob").empty
        assert alerts.delete_rule(conn, "ann", rid)


def test_preview_replays_the_rule_over_thirty_days(market):
    eng = market["engine"]
    with eng.begin() as conn:
        for d in range(1, 31):   # 100 a day, but 10 on three days
            day = datetime.combine(NOW.date() - timedelta(days=d), datetime.min.time(), UTC) + timedelta(hours=10)
            add_order(conn, d, day, 1, 10.0 if d in (3, 4, 12) else 100.0)
        refresh_rollups(conn, timezone="UTC")
        p = alerts.preview_rule(conn, dict(metric="gmv", window="yesterday", condition="below", threshold=50,
                                           interval_minutes=60, for_evaluations=1), now=NOW)
    assert p.points == 30 and p.fired == 2       # days 3-4 are one episode, day 12 another
    assert sorted(p.frame.loc[p.frame["outcome"] == "breach", "value"]) == [10.0, 10.0, 10.0]


def test_a_fan_out_value_without_data_is_shown_not_sent(market, smtp):
    eng = market["engine"]
    with eng.begin() as conn:
        add_order(conn, 1, NOW - timedelta(days=7, minutes=30), 1, 100.0)   # Alpha a week ago; Beta never
        add_order(conn, 2, NOW - timedelta(minutes=30), 1, 10.0)
        rid = _rule(conn, name="Drops", fan_out="vendor_id", condition="falls_by", baseline="last_week", threshold=50)
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    _tick(eng, NOW)
    assert sorted(e[:4] for e in _events(eng, rid)) == [("1", "ok", "firing", "firing"), ("2", "ok", "no_data", None)]
    assert [m["Subject"] for m in smtp.messages] == ["[MEDIUM] Drops · Alpha (vendor 1): FIRING"]


def test_an_edit_keeps_the_mute_and_an_ongoing_breach_unless_what_is_measured_changes(market, smtp):
    eng = market["engine"]
    with eng.begin() as conn:
        rid = _rule(conn)
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    _tick(eng, NOW)
    assert len(smtp.messages) == 1
    with eng.begin() as conn:   # new recipients: still the same breach, not announced again
        alerts.mute(conn, "ann", rid, NOW + timedelta(days=1))
        _rule(conn, rule_id=rid, recipients="ops@example.com, boss@example.com", severity="high")
        assert alerts.fetch_rule(conn, rid)["muted_until"] == NOW + timedelta(days=1)
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW + timedelta(minutes=5)})
    assert _tick(eng, NOW + timedelta(minutes=5))["rules"] == 1
    assert len(smtp.messages) == 1 and [e[2] for e in _events(eng, rid)] == ["firing"]
    with eng.begin() as conn:   # another threshold: the instances start again
        alerts.mute(conn, "ann", rid, None)
        _rule(conn, rule_id=rid, threshold=200)
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW + timedelta(minutes=10)})
    assert _tick(eng, NOW + timedelta(minutes=10))["rules"] == 1
    assert [e[2] for e in _events(eng, rid)] == ["firing", "firing"] and len(smtp.messages) == 2


def test_a_fan_out_value_leaving_firing_for_no_data_says_so(market, smtp):
    eng = market["engine"]
    with eng.begin() as conn:
        add_order(conn, 1, NOW - timedelta(minutes=30), 1, 10.0)
        rid = _rule(conn, name="AOV low", metric="aov", fan_out="vendor_id", threshold=50)
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    _tick(eng, NOW)             # Alpha's AOV is 10: firing; Beta has no orders: no data, quietly
    _tick(eng, NOW + timedelta(hours=1))   # Alpha's order has left the hour: no data, and that is news
    assert [m["Subject"] for m in smtp.messages] == ["[MEDIUM] AOV low · Alpha (vendor 1): FIRING",
                                                     "[MEDIUM] AOV low · Alpha (vendor 1): NO DATA"]
    assert sorted(e[:3] for e in _events(eng, rid)) == [("1", "firing", "no_data"), ("1", "ok", "firing"),
                                                        ("2", "ok", "no_data")]


def test_a_query_returning_infinity_is_that_rules_error_and_the_others_go_on(market, smtp):
    eng = market["engine"]
    with eng.begin() as conn:
        qid = save_query(conn, "ann", "Broken", "SELECT 'Infinity'::float8 AS n")
        bad = alerts.save_rule(conn, "ann", name="Inf", source="query", query_id=qid, condition="above", threshold=1,
                               recipients="ops@example.com")
        good = _rule(conn)
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    assert _tick(eng, NOW)["errors"] == 1
    assert [e[2] for e in _events(eng, bad)] == ["error"] and [e[2] for e in _events(eng, good)] == ["firing"]
    with eng.connect() as conn:
        assert "not a finite number" in alerts.fetch_rule(conn, bad)["last_error"]


def test_a_second_scheduler_during_a_tick_skips_the_locked_rules(market, smtp, monkeypatch):
    """Two ticks at once, the second started while the first holds the rules: it finds none, and
    after the first commits none is due; one notification per transition."""
    eng = market["engine"]
    with eng.begin() as conn:
        for i in range(5):
            _rule(conn, name=f"Rule {i}", recipients=f"r{i}@example.com")
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :t"), {"t": NOW})
    inside, release = threading.Event(), threading.Event()
    real = alert_evaluation._evaluate

    def slow(*a, **k):
        inside.set()
        assert release.wait(30)
        return real(*a, **k)

    monkeypatch.setattr(alert_evaluation, "_evaluate", slow)
    first: dict = {}
    t = threading.Thread(target=lambda: first.update(alert_evaluation.evaluate_due(eng, now=NOW)))
    t.start()
    assert inside.wait(30)
    monkeypatch.setattr(alert_evaluation, "_evaluate", real)
    second = alert_evaluation.evaluate_due(eng, now=NOW)      # the rules are locked by the first tick
    release.set()
    t.join(30)
    third = alert_evaluation.evaluate_due(eng, now=NOW)       # committed: not due any more
    assert (first["rules"], second["rules"], third["rules"]) == (5, 0, 0)
    assert delivery.deliver_due(eng)["sent"] == 5 and len(smtp.messages) == 5


def test_the_preview_counts_for_in_the_rules_own_interval(market):
    eng = market["engine"]
    with eng.begin() as conn:
        for d in range(1, 31):
            day = datetime.combine(NOW.date() - timedelta(days=d), datetime.min.time(), UTC) + timedelta(hours=10)
            add_order(conn, d, day, 1, 10.0 if d in (3, 4, 12) else 100.0)
        refresh_rollups(conn, timezone="UTC")
        fields = dict(metric="gmv", window="yesterday", condition="below", threshold=50, interval_minutes=60)
        hourly = alerts.preview_rule(conn, {**fields, "for_evaluations": 3}, now=NOW)      # 3 hours: within a day
        two_days = alerts.preview_rule(conn, {**fields, "for_evaluations": 30}, now=NOW)   # 30 hours: two days
    assert (hourly.fired, two_days.fired) == (2, 1)


def test_a_rules_condition_names_the_vendors_it_filters_on():
    spec = A.Spec("gmv", "last_7d", "above", 10.0, filters=(("vendor_id", (12, 13)),))
    assert spec.describe({12: "Acme"}) == "GMV (Vendor: Acme (vendor 12), 13), last 7 days, is above €10.00"
    assert spec.describe() == "GMV (Vendor: 12, 13), last 7 days, is above €10.00"
    assert alerts.filtered_vendor_ids([{"filters": {"vendor_id": [13, 12]}}, {"filters": {"channel": ["web"]}},
                                       {"filters": None}]) == [12, 13]
