"""Report templates, relative periods, schedules, background exports and delivery through the
outbox, against a real PostgreSQL, a real SMTP server (aiosmtpd) and a real HTTP server on
loopback; scheduler processes started, killed and stopped for real."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from reportlab import rl_config

from analytics.filters import Period
from data.auth import create_user
from data.rollups import refresh_rollups
from data.saved_queries import save_query
from data.settings import SettingsError, load_settings
from reports import alerts, delivery, exports, schedules
from reports.pdf import render_pdf
from reports.periods import resolve
from reports.templates import TEMPLATES, Report, ReportError, Table, build, render
from tests.conftest import ROOT, TEST_COOKIE_KEY, use_database
from tests.servers import WebhookServer
from tests.test_scheduler import ORDER

NOW = datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)   # the morning after the seeded data ends


# --- periods and templates ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,today,start,end", [
    ("yesterday", date(2026, 3, 1), date(2026, 2, 28), date(2026, 2, 28)),
    ("last_7_days", date(2026, 3, 4), date(2026, 2, 25), date(2026, 3, 3)),
    ("last_week", date(2026, 3, 4), date(2026, 2, 23), date(2026, 3, 1)),      # Wednesday → Mon–Sun before
    ("last_week", date(2026, 3, 2), date(2026, 2, 23), date(2026, 3, 1)),      # a Monday
    ("mtd", date(2026, 3, 4), date(2026, 3, 1), date(2026, 3, 4)),
    ("last_month", date(2026, 3, 31), date(2026, 2, 1), date(2026, 2, 28)),
    ("last_month", date(2026, 1, 15), date(2025, 12, 1), date(2025, 12, 31)),
    ("qtd", date(2026, 5, 20), date(2026, 4, 1), date(2026, 5, 20)),
    ("ytd", date(2026, 5, 20), date(2026, 1, 1), date(2026, 5, 20)),
])
def test_relative_periods(name, today, start, end):
    assert resolve(name, today) == Period(start, end)


def test_periods_resolve_in_the_app_time_zone(engine):
    """At 23:30 UTC on 20 Nov it is already 21 Nov in Berlin: yesterday is the 20th there."""
    late = datetime(2026, 11, 20, 23, 30, tzinfo=timezone.utc)
    with engine.connect() as conn:
        utc = build(conn, "kpi_summary", {"period": "yesterday"}, "pdf", user="admin", now=late, tz="UTC")
        berlin = build(conn, "kpi_summary", {"period": "yesterday"}, "pdf", user="admin", now=late, tz="Europe/Berlin")
    assert (utc.period.start, berlin.period.start) == (date(2026, 11, 19), date(2026, 11, 20))


def _raw_gmv_by(conn, by: str, period: Period) -> dict:
    """GMV straight from order lines by product category or order channel, the glossary's
    definition written out again (one query, both keys: the column is chosen in Python)."""
    rows = conn.execute(sa.text("""
        SELECT p.category, o.channel, sum(i.quantity * i.unit_price - i.discount) AS gmv
        FROM mart.order_items i JOIN mart.orders o USING (order_id) JOIN mart.products p USING (product_id)
        WHERE o.status <> 'cancelled' AND (o.ordered_at AT TIME ZONE 'UTC')::date BETWEEN :a AND :b
        GROUP BY 1, 2"""), {"a": period.start, "b": period.end}).mappings().all()
    out: dict = {}
    for r in rows:
        out[str(r[by])] = out.get(str(r[by]), 0.0) + float(r["gmv"])
    return {k: round(v, 2) for k, v in out.items()}


def test_sales_workbook_has_its_sheets_and_figures_equal_raw_order_lines(engine):
    with engine.connect() as conn:
        report = build(conn, "sales", {"period": "last_month"}, "xlsx", user="admin", now=NOW, tz="UTC")
        buf = io.BytesIO()
        render(report, "xlsx", buf)
        raw_cat = _raw_gmv_by(conn, "category", report.period)
        raw_channel = _raw_gmv_by(conn, "channel", report.period)
    assert report.period == Period(date(2026, 10, 1), date(2026, 10, 31))
    book = openpyxl.load_workbook(io.BytesIO(buf.getvalue()))
    assert book.sheetnames == ["Summary", "By day", "By category", "By vendor", "By channel", "About"]
    for sheet, raw in (("By category", raw_cat), ("By channel", raw_channel)):
        rows = list(book[sheet].iter_rows(values_only=True))
        got = {str(r[0]): round(r[rows[0].index("gmv")], 2) for r in rows[1:]}
        assert got == pytest.approx(raw, abs=0.01)
    by_day = list(book["By day"].iter_rows(values_only=True))
    assert len(by_day) == 1 + 31 and book["By day"]["B2"].number_format == "#,##0.00"
    about = dict(book["About"].iter_rows(values_only=True))
    assert about["Period"].startswith("Last month (01 Oct 2026") and about["By"] == "admin"


def test_a_filtered_vendor_report_holds_only_that_category(engine):
    with engine.connect() as conn:
        category = conn.execute(sa.text("SELECT min(category) FROM mart.vendors")).scalar()
        report = build(conn, "vendor_performance", {"period": "last_month", "filters": {"category": [category]}},
                       "csv", user="admin", now=NOW, tz="UTC")
        buf = io.BytesIO()
        render(report, "csv", buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue().decode("utf-8-sig"))))
    assert rows and {r["category"] for r in rows} == {category}
    with engine.connect() as conn:   # each vendor's GMV against its order lines, written out again
        raw = {str(k): round(float(v), 2) for k, v in conn.execute(sa.text("""
            SELECT i.vendor_id, sum(i.quantity * i.unit_price - i.discount)
            FROM mart.order_items i JOIN mart.orders o USING (order_id) JOIN mart.vendors v USING (vendor_id)
            WHERE o.status <> 'cancelled' AND v.category = :c
              AND (o.ordered_at AT TIME ZONE 'UTC')::date BETWEEN :a AND :b
            GROUP BY 1"""), {"c": category, "a": report.period.start, "b": report.period.end})}
    assert {r["vendor_id"]: round(float(r["gmv"]), 2) for r in rows} == pytest.approx(raw, abs=0.01)
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert report.filters == f"Category: {category}"


@pytest.mark.parametrize("template", sorted(t for t in TEMPLATES if t != "saved_query"))
def test_every_template_renders_in_each_of_its_formats(engine, template):
    # A report's figures do not depend on the format it is asked in (build checks only that the
    # template offers it): built once, rendered in each (the forecast template fits its models).
    formats = TEMPLATES[template].formats
    with engine.connect() as conn:
        spec = {"period": "last_7_days"}
        if template == "vendor_report":   # about one vendor
            spec["filters"] = {"vendor_id": [conn.execute(sa.text("SELECT min(vendor_id) FROM mart.vendors")).scalar()]}
        try:
            report = build(conn, template, spec, formats[0], user="admin", now=NOW, tz="UTC")
        except ReportError as ex:   # customer templates need the nightly scores stored
            assert "no customer scores are stored yet" in str(ex)
            return
        for fmt in formats:
            buf = io.BytesIO()
            render(report, fmt, buf)
            data = buf.getvalue()
            assert len(data) > 100
            if fmt == "pdf":
                assert data.startswith(b"%PDF")
            if fmt == "json":
                assert "tables" in json.loads(data)


def test_a_pdf_with_1000_table_rows_has_many_numbered_pages(tmp_path, monkeypatch):
    monkeypatch.setattr(rl_config, "pageCompression", 0)   # page text readable in the file's bytes
    frame = pd.DataFrame({"n": range(1000), "name": [f"=row {i}" for i in range(1000)],
                          "gmv": [i * 1.5 for i in range(1000)]})
    report = Report("saved_query", "Thousand rows", Period(date(2026, 1, 1), date(2026, 1, 31)), "", "now",
                    tables=[Table.of("Rows", frame)])
    path = tmp_path / "big.pdf"
    assert render_pdf(report, str(path)) == 1000
    data = path.read_bytes()
    pages = len(re.findall(rb"/Type /Page\b(?!s)", data))
    assert pages >= 1000 // 40   # about 35 rows a page, with a header repeated on each
    assert f"(Page {pages} of {pages})".encode() in data and b"(Page 1 of " in data
    assert b"(=row 999)" in data and b"(1,498.50)" in data   # text as it is (a PDF runs no formulas), money formatted


# --- schedules: validation ---------------------------------------------------------------------------

GOOD = dict(name="Daily KPIs", template="kpi_summary", spec={"period": "yesterday"}, fmt="pdf",
            cadence={"kind": "daily", "at": "07:00"}, tz="Europe/Berlin", recipients="ops@example.com",
            webhook_url="", fan_out=None, fan_values=None)


@pytest.mark.parametrize("change,message", [
    ({"name": "  "}, "name: give the schedule a name"),
    ({"template": "nope"}, "template: unknown report 'nope'"),
    ({"fmt": "csv"}, "format: KPI summary comes as PDF, XLSX, JSON"),
    ({"spec": {"period": "last_century"}}, "period: choose one of yesterday"),
    ({"cadence": {"kind": "daily", "at": "25:00"}}, "time: '25:00' is not a time of day"),
    ({"cadence": {"kind": "weekly", "at": "07:00", "weekday": 7}}, "weekday: choose a day of the week"),
    ({"cadence": {"kind": "monthly", "at": "07:00", "day": 31}}, "day: choose a day of the month from 1 to 28"),
    ({"cadence": {"kind": "cron", "cron": "61 * * * *"}}, "cron: '61 \\* \\* \\* \\*' is not a cron expression"),
    ({"cadence": {"kind": "hourly"}}, "cadence: choose one of daily, weekly, monthly, cron"),
    ({"tz": "Mars/Olympus"}, "time zone: 'Mars/Olympus' is not a time zone name"),
    ({"recipients": "ops@example.com, not-an-address"}, "recipients: 'not-an-address' is not an email address"),
    ({"recipients": "", "webhook_url": ""}, "recipients: give at least one email address or a webhook URL"),
    ({"webhook_url": "ftp://example.com/x"}, "webhook: 'ftp://example.com/x' is not an http\\(s\\) URL"),
    ({"fan_out": "vendor", "fan_values": {}, "template": "vendor_performance", "fmt": "csv"},
     "fan-out: list the vendor values to send"),
    ({"fan_out": "planet", "fan_values": {"x": "a@b.c"}}, "fan-out: choose vendor or category"),
    ({"fan_out": "vendor", "fan_values": {"acme": "a@b.c"}, "template": "vendor_performance", "fmt": "csv"},
     "fan-out: 'acme' is not a vendor id"),
    ({"webhook_url": "https://hooks.example.com/a b"}, "webhook: .* is not an http\\(s\\) URL"),
    ({"webhook_url": "http://hooks.example.com:abc/x"}, "webhook: .* is not an http\\(s\\) URL"),
    # Server-side request forgery (issue 20): no loopback, private or link-local target, no credentials.
    ({"webhook_url": "http://127.0.0.1:8080/x"}, "webhook: its address is not allowed"),
    ({"webhook_url": "http://localhost/x"}, "webhook: its address is not allowed"),
    ({"webhook_url": "http://169.254.169.254/latest/meta-data/"}, "webhook: its address is not allowed"),
    ({"webhook_url": "http://10.0.0.5/hook"}, "webhook: its address is not allowed"),
    ({"webhook_url": "http://[::ffff:127.0.0.1]:25/"}, "webhook: its address is not allowed"),
    ({"webhook_url": "http://[fe80::1]/"}, "webhook: its address is not allowed"),
    ({"webhook_url": "http://0.0.0.0:5432/"}, "webhook: its address is not allowed"),
    ({"webhook_url": "https://bot:secret@hooks.example.com/x"}, "webhook: a URL with a user name or password"),
    # Limits (issue 20): a cron date that never comes, a cron every minute, thousands of recipients.
    ({"cadence": {"kind": "cron", "cron": "0 0 31 2 *"}}, "cron: '0 0 31 2 \\*' never comes"),
    ({"cadence": {"kind": "cron", "cron": "* * * * *"}}, "runs 1 minutes apart; at most every 15 minutes"),
    ({"cadence": {"kind": "cron", "cron": "0,5 7 * * *"}}, "runs 5 minutes apart"),
    ({"cadence": {"kind": "cron", "cron": "0,55 0,23 */2 1,3,5,7,8 *"}}, "runs 5 minutes apart"),   # 31 Jul → 1 Aug
    ({"webhook_url": "http://[64:ff9b::a9fe:a9fe]/"}, "webhook: its address is not allowed"),   # NAT64 metadata
    ({"webhook_url": "http://[2002:a9fe:a9fe::]/"}, "webhook: its address is not allowed"),      # 6to4
    ({"webhook_url": "http://[::127.0.0.1]/"}, "webhook: its address is not allowed"),
    ({"recipients": ", ".join(f"r{i}@example.com" for i in range(5000))},
     "recipients: 5,000 email addresses; at most 50 \\(MAX_RECIPIENTS"),
    ({"fan_out": "category", "template": "vendor_performance", "fmt": "csv",
      "fan_values": {f"C{i}": ", ".join(f"c{i}x{j}@example.com" for j in range(10)) for i in range(6)}},
     "recipients: 61 email addresses; at most 50"),   # with the plain recipient
    ({"fan_out": "category", "fan_values": {"Books": "a@b.c"}, "template": "customer_segments", "fmt": "csv",
      "spec": {}}, "fan-out: Customer segments has no filters to fan out over"),
])
def test_bad_schedule_input_is_refused_naming_the_field(empty_engine, change, message):
    with empty_engine.begin() as conn:
        create_user(conn, "ann", "a-long-password-1", "analyst")
        with pytest.raises(ValueError, match=message):
            schedules.save_schedule(conn, "ann", **{**GOOD, **change})
        assert conn.execute(sa.text("SELECT count(*) FROM app.schedules")).scalar() == 0


@pytest.mark.parametrize("cadence,cron", [
    ({"kind": "daily", "at": "07:05"}, "5 7 * * *"),
    ({"kind": "weekly", "at": "08:00", "weekday": 0}, "0 8 * * 1"),   # Monday
    ({"kind": "weekly", "at": "08:00", "weekday": 6}, "0 8 * * 0"),   # Sunday
    ({"kind": "monthly", "at": "06:30", "day": 1}, "30 6 1 * *"),
    ({"kind": "cron", "cron": "0  7 * *   1-5"}, "0 7 * * 1-5"),
])
def test_cadences_become_cron_expressions(cadence, cron):
    assert schedules.cadence_cron(cadence) == cron


def test_a_local_time_that_happens_twice_runs_once():
    """When clocks go back in Berlin (25 Oct 2026), 02:30 happens twice: the report runs once."""
    after = datetime(2026, 10, 24, 12, 0, tzinfo=timezone.utc)
    first = schedules.next_slot("30 2 * * *", "Europe/Berlin", after)
    second = schedules.next_slot("30 2 * * *", "Europe/Berlin", first)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc)
    assert second == datetime(2026, 10, 26, 1, 30, tzinfo=timezone.utc)


def test_slots_follow_the_schedules_time_zone_across_daylight_saving():
    """07:00 in Berlin is 06:00 UTC in winter and 05:00 UTC in summer."""
    after = datetime(2026, 3, 27, 12, 0, tzinfo=timezone.utc)   # DST starts on 29 March
    first = schedules.next_slot("0 7 * * *", "Europe/Berlin", after)
    second = schedules.next_slot("0 7 * * *", "Europe/Berlin", first)
    assert (first.hour, second.hour) == (6, 5)


# --- schedules: running and delivering ---------------------------------------------------------------

@pytest.fixture
def world(empty_engine, monkeypatch, tmp_path, smtp):
    """An empty migrated database with a user, exports in tmp_path, mail to the test SMTP server."""
    url = empty_engine.url.render_as_string(hide_password=False)
    use_database(monkeypatch, url, EXPORT_DIR=str(tmp_path / "exports"), APP_TIMEZONE="UTC",
                 DELIVERY_BACKOFF_SECONDS="1", **smtp.env())
    with empty_engine.begin() as conn:
        create_user(conn, "ann", "a-long-password-1", "analyst")
        qid = save_query(conn, "ann", "Numbers", "SELECT g AS n, g * 2.5 AS amount FROM generate_series(1, 50) g")
    return {"engine": empty_engine, "url": url, "query_id": qid, "exports": tmp_path / "exports"}


def _schedule(conn, world, **change) -> int:
    fields = dict(name="Numbers daily", template="saved_query", spec={"query_id": world["query_id"]}, fmt="csv",
                  cadence={"kind": "daily", "at": "07:00"}, tz="UTC", recipients="ops@example.com",
                  webhook_url="", fan_out=None, fan_values=None)
    return schedules.save_schedule(conn, "ann", now=NOW - timedelta(days=3), **{**fields, **change})


def _tick(engine, now=None) -> dict:
    with engine.begin() as conn:
        planned = schedules.plan_due(conn, now=now or NOW)
    exports.run_exports(engine, "test-worker")
    return {**planned, **delivery.deliver_due(engine, worker="test-worker")}


def test_a_due_schedule_runs_once_and_mails_its_file_once(world, smtp, hook):
    eng = world["engine"]
    with eng.begin() as conn:
        sid = _schedule(conn, world, webhook_url=hook.url)
    # Saved three days before NOW: slots at 07:00 on the 18th, 19th and 20th have passed.
    first = _tick(eng)
    assert (first["queued"], first["skipped"], first["sent"]) == (1, 2, 2)
    again = _tick(eng)
    assert (again["queued"], again["sent"]) == (0, 0)
    assert len(smtp.messages) == 1 and len(hook.posts) == 1
    msg = smtp.messages[0]
    assert msg["To"] == "ops@example.com" and msg["Subject"].startswith("[Marketplace BI] Numbers daily")
    attachment = next(msg.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    lines = attachment.get_content().lstrip("\ufeff").splitlines()
    assert attachment.get_filename().startswith("numbers_daily_") and lines[0] == "n,amount" and len(lines) == 51
    path, headers, body = hook.posts[0]
    assert body["report"] == "Numbers daily" and body["rows"] == 50 and body["text"].startswith("*Numbers daily*")
    assert headers["Idempotency-Key"] == f"schedule_run:{body['run_id']}:webhook"
    with eng.connect() as conn:
        runs = conn.execute(sa.text("SELECT status, slot FROM app.schedule_runs WHERE schedule_id = :s ORDER BY slot"),
                            {"s": sid}).all()
        assert [r.status for r in runs] == ["skipped", "skipped", "done"]
        assert runs[-1].slot == datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)
        history = schedules.fetch_run_history(conn, sid)
        assert history.iloc[0]["delivered"] == 2 and history.iloc[0]["failed_deliveries"] == 0
        nxt = conn.execute(sa.text("SELECT next_run_at FROM app.schedules WHERE schedule_id = :s"), {"s": sid}).scalar()
        assert nxt == datetime(2026, 11, 21, 7, 0, tzinfo=timezone.utc)


def test_fan_out_sends_each_value_its_own_filtered_report(world, smtp):
    eng = world["engine"]
    with eng.begin() as conn:
        conn.execute(sa.text(ORDER))
        conn.execute(sa.text("""
            INSERT INTO mart.vendors VALUES (2, 'Beta', 'Toys', 'Europe', 'DE', '2024-01-01', 'active', 0.1);
            INSERT INTO mart.products VALUES (20, 2, 'B-20', 'Kite', 'Toys', 'Outdoor', 30, 10, '2024-01-01');
            INSERT INTO mart.orders VALUES (3, 100, '2026-11-19 12:00+00', 'delivered', 'web', 'B2C', 'card', 'captured', 'EUR', 0);
            INSERT INTO mart.order_items VALUES (3, 1, 20, 2, 1, 30.00, 0, 10.00, 0);
            INSERT INTO mart.order_items VALUES (3, 2, 10, 1, 1, 20.00, 0, 8.00, 0);"""))
        refresh_rollups(conn, timezone="UTC")
        _schedule(conn, world, name="Vendors per category", template="vendor_performance",
                  spec={"period": "last_7_days"}, recipients="", fan_out="category",
                  fan_values={"Books": "books@example.com", "Toys": "toys@example.com, boss@example.com"})
    assert _tick(eng)["sent"] == 3
    got = {}
    for msg in smtp.messages:
        rows = list(csv.DictReader(io.StringIO(next(msg.iter_attachments()).get_content().lstrip("\ufeff"))))
        got[msg["To"]] = sorted((r["name"], r["category"], float(r["gmv"])) for r in rows)
    assert got == {"books@example.com": [("Alpha", "Books", 20.0)],
                   "toys@example.com": [("Beta", "Toys", 30.0)], "boss@example.com": [("Beta", "Toys", 30.0)]}
    assert {m["Subject"].split(" · ")[1] for m in smtp.messages} == {"Books", "Toys"}


def test_a_vendor_name_with_a_line_break_is_one_line_in_the_subject_and_blocks_nobody(world, smtp):
    """Names keep their line breaks in the data (they round-trip); a mail header cannot hold one:
    the delivery for that vendor failed on every attempt (issue 20)."""
    eng = world["engine"]
    with eng.begin() as conn:
        conn.execute(sa.text(ORDER))
        conn.execute(sa.text("INSERT INTO mart.vendors VALUES (2, E'Evil\\r\\nBcc: all@example.com', 'Toys', "
                             "'Europe', 'DE', '2024-01-01', 'active', 0.1)"))
        _schedule(conn, world, name="Vendor report", template="vendor_performance", spec={"period": "last_7_days"},
                  recipients="", fan_out="vendor", fan_values={"1": "alpha@example.com", "2": "evil@example.com"})
    assert _tick(eng)["sent"] == 2
    subjects = {m["To"]: m["Subject"] for m in smtp.messages}
    assert set(subjects) == {"alpha@example.com", "evil@example.com"}
    assert "Evil Bcc: all@example.com" in subjects["evil@example.com"]
    assert all(m["Bcc"] is None for m in smtp.messages)


def test_smtp_down_for_a_while_then_up_is_delivered_after_recovery(world, smtp):
    eng = world["engine"]
    smtp.stop()
    with eng.begin() as conn:
        _schedule(conn, world)
    assert _tick(eng)["retry"] == 1
    with eng.connect() as conn:
        row = conn.execute(sa.text("SELECT status, attempts, last_error FROM app.outbox")).one()
    assert row.status == "pending" and row.attempts == 1 and "SMTP 127.0.0.1" in row.last_error
    time.sleep(1.1)   # DELIVERY_BACKOFF_SECONDS=1 in this test
    assert delivery.deliver_due(eng)["retry"] == 1   # still down: second attempt, next in 2 s
    smtp.start()
    time.sleep(2.1)
    assert delivery.deliver_due(eng)["sent"] == 1
    with eng.connect() as conn:
        row = conn.execute(sa.text("SELECT status, attempts, last_error, sent_at FROM app.outbox")).one()
    assert row.status == "sent" and row.attempts == 3 and row.last_error == "" and row.sent_at is not None
    assert len(smtp.messages) == 1


def test_a_delivery_gives_up_after_its_attempts_and_an_admin_can_retry_it(world, smtp, hook, monkeypatch):
    eng = world["engine"]
    monkeypatch.setenv("DELIVERY_MAX_ATTEMPTS", "2")
    hook.status = 500
    with eng.begin() as conn:
        _schedule(conn, world, recipients="", webhook_url=hook.url)
    assert _tick(eng)["retry"] == 1
    time.sleep(1.1)
    assert delivery.deliver_due(eng)["failed"] == 1
    with eng.connect() as conn:
        failed = delivery.fetch_failed_deliveries(conn)
    assert failed["attempts"].tolist() == [2] and "HTTP 500" in failed["last_error"].iloc[0]
    hook.status = 200
    with eng.begin() as conn:
        assert delivery.retry_delivery(conn, int(failed["delivery_id"].iloc[0]))
    assert delivery.deliver_due(eng)["sent"] == 1 and len(hook.posts) == 1


def test_run_now_pause_and_delete(world, smtp):
    eng = world["engine"]
    with eng.begin() as conn:
        sid = _schedule(conn, world)
        assert schedules.set_paused(conn, "ann", sid, True, now=NOW)
        assert schedules.run_now(conn, "ann", sid) == 1
        with pytest.raises(schedules.ScheduleError, match="only its owner or an admin"):
            schedules.run_now(conn, "mallory", sid)
    assert _tick(eng)["queued"] == 0          # paused: its slots do not run
    assert len(smtp.messages) == 1            # … but "run now" did
    with eng.begin() as conn:
        assert schedules.set_paused(conn, "ann", sid, False, now=NOW)
        nxt = conn.execute(sa.text("SELECT next_run_at FROM app.schedules")).scalar()
        assert nxt == datetime(2026, 11, 21, 7, 0, tzinfo=timezone.utc)   # resumed from the next slot, no catch-up
        assert schedules.delete_schedule(conn, "ann", sid)
        assert conn.execute(sa.text("SELECT count(*) FROM app.schedule_runs")).scalar() == 0


def test_a_failing_report_marks_its_run_failed_with_the_reason(world, smtp):
    eng = world["engine"]
    with eng.begin() as conn:
        sid = _schedule(conn, world, template="customer_segments", spec={}, fmt="csv")
    _tick(eng)
    with eng.connect() as conn:
        run = conn.execute(sa.text("SELECT status, message FROM app.schedule_runs WHERE schedule_id = :s "
                                   "AND status <> 'skipped'"), {"s": sid}).one()
    assert run.status == "failed" and "no customer scores are stored yet" in run.message
    assert smtp.messages == []


# --- background exports ------------------------------------------------------------------------------

def test_a_requested_export_is_made_listed_served_and_expires(world):
    eng = world["engine"]
    with eng.begin() as conn:
        eid = exports.request_export(conn, "ann", "saved_query", {"query_id": world["query_id"]}, "xlsx")
        with pytest.raises(ReportError, match="format: unknown|comes as"):
            exports.request_export(conn, "ann", "kpi_summary", {}, "csv")
    assert exports.run_exports(eng, "w1") == 1
    with eng.connect() as conn:
        row = exports.fetch_exports(conn, "ann").iloc[0]
        assert (row["status"], row["rows"], row["progress"]) == ("done", 50, 1.0)
        path, name = exports.fetch_export_file(conn, eid, "ann")
        assert exports.fetch_export_file(conn, eid, "bob") is None
    book = openpyxl.load_workbook(path, read_only=True)
    assert [r for r in book["Numbers"].iter_rows(values_only=True)][1] == (1, 2.5)
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE app.exports SET expires_at = now() - interval '1 second'"))
    assert exports.cleanup_expired(eng) == (1, 1)
    assert not path.exists()


# --- scheduler processes -----------------------------------------------------------------------------

def _env(world, smtp, **extra) -> dict:
    return {**os.environ, "DATABASE_URL": world["url"], "APP_TIMEZONE": "UTC", "EXPORT_DIR": str(world["exports"]),
            "AUTH_COOKIE_KEY": TEST_COOKIE_KEY, **smtp.env(), **extra}


@pytest.mark.slow
def test_two_schedulers_over_many_due_slots_run_each_once_and_mail_each_once(world, smtp):
    eng = world["engine"]
    with eng.begin() as conn:
        for i in range(12):
            _schedule(conn, world, name=f"Numbers {i}", recipients=f"r{i}@example.com",
                      cadence={"kind": "cron", "cron": "*/30 * * * *"})
        # Due now: their next slot is in the past.
        conn.execute(sa.text("UPDATE app.schedules SET next_run_at = now() - interval '2 hours'"))
    env = _env(world, smtp)
    procs = [subprocess.Popen([sys.executable, "-m", "reports.scheduler", "--once"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    with eng.connect() as conn:
        done = conn.execute(sa.text("SELECT schedule_id, count(*) FROM app.schedule_runs WHERE status = 'done' "
                                    "GROUP BY 1")).all()
        assert len(done) == 12 and all(n == 1 for _, n in done)
        skipped = conn.execute(sa.text("SELECT count(*) FROM app.schedule_runs WHERE status = 'skipped'")).scalar()
        assert skipped >= 12 * 3   # the half-hour slots of the two hours missed, recorded once each
        workers = conn.execute(sa.text("SELECT count(DISTINCT worker) FROM app.exports")).scalar()
    assert sorted(m["To"] for m in smtp.messages) == sorted(f"r{i}@example.com" for i in range(12))
    assert len({m["Message-ID"] for m in smtp.messages}) == 12
    assert workers >= 1


def _wait(predicate, timeout: float = 120, every: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


BIG = {"n": 1_500_000}


def _big_query(world) -> int:
    """A saved query that takes seconds to export as JSON (rows stream through Python; a CSV
    would be written by COPY in under a second)."""
    with world["engine"].begin() as conn:
        return save_query(conn, "ann", "Big", "SELECT g AS n, md5(g::text) AS h FROM generate_series(1, {{n:number}}) g")


@pytest.mark.slow
def test_kill_9_during_an_export_then_restart_completes_it_and_mails_once(world, smtp):
    eng = world["engine"]
    qid = _big_query(world)
    with eng.begin() as conn:
        _schedule(conn, world, name="Big daily", spec={"query_id": qid, "query_params": BIG}, fmt="json")
    env = _env(world, smtp, JOB_LEASE_SECONDS="3", SCHEDULER_TICK_SECONDS="1")
    first = subprocess.Popen([sys.executable, "-m", "reports.scheduler"], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def writing():
            with eng.connect() as conn:
                return conn.execute(sa.text("SELECT 1 FROM app.exports WHERE status = 'running' AND progress > 0.2 "
                                            "AND step LIKE '%rows written'")).first()
        _wait(writing)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM app.exports")).scalar() == "running"   # left behind
    time.sleep(3.5)   # its lease runs out
    out = subprocess.run([sys.executable, "-m", "reports.scheduler", "--once"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    with eng.connect() as conn:
        export = conn.execute(sa.text("SELECT status, attempts, rows FROM app.exports")).one()
        run = conn.execute(sa.text("SELECT status FROM app.schedule_runs WHERE status <> 'skipped'")).scalar()
    assert (export.status, export.attempts, export.rows, run) == ("done", 2, 1_500_000, "done")
    assert len(smtp.messages) == 1
    assert list(world["exports"].glob("*.partial")) == []


def test_sigterm_hands_a_half_made_export_back_to_the_queue(world, smtp):
    eng = world["engine"]
    qid = _big_query(world)
    with eng.begin() as conn:
        eid = exports.request_export(conn, "ann", "saved_query", {"query_id": qid, "query_params": BIG}, "json")
    env = _env(world, smtp, SCHEDULER_TICK_SECONDS="1")
    proc = subprocess.Popen([sys.executable, "-m", "reports.scheduler"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def writing():
            with eng.connect() as conn:
                return conn.execute(sa.text("SELECT 1 FROM app.exports WHERE status = 'running' AND progress > 0.2"))\
                    .first()
        _wait(writing)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    with eng.connect() as conn:
        row = conn.execute(sa.text("SELECT status, attempts, worker FROM app.exports WHERE export_id = :e"),
                           {"e": eid}).one()
    assert (row.status, row.attempts, row.worker) == ("queued", 0, None)
    assert list(world["exports"].glob("*")) == []


# A function the analysts' role may call that sleeps (as its owner) and then returns three rows.
SLOW_ROWS = """CREATE FUNCTION mart.slow_rows(seconds float8) RETURNS SETOF int LANGUAGE sql SECURITY DEFINER
               AS $$ SELECT g FROM pg_sleep(seconds), generate_series(1, 3) g $$"""


@pytest.mark.slow
@pytest.mark.parametrize("replicas", [1, 2])
def test_a_slow_export_delays_no_heartbeat_alert_or_run_now_and_is_made_once(world, smtp, replicas):
    """A CSV export whose query takes 8 s (COPY waits for the server all that time) runs on an
    export worker: the heartbeat keeps its second, an alert rule due meanwhile mails within
    seconds, a "Run now" of another report is made and mailed meanwhile, and the short lease is
    renewed throughout, so the export is made once, by one scheduler, with one or two running."""
    eng = world["engine"]
    with eng.begin() as conn:
        conn.execute(sa.text(SLOW_ROWS))
        slow = save_query(conn, "ann", "Slow", "SELECT n FROM mart.slow_rows({{seconds:number}}) n")
        sid = _schedule(conn, world, name="Numbers now", recipients="now@example.com")
        ping = save_query(conn, "ann", "Ping", "SELECT 1 AS n")
        rid = alerts.save_rule(conn, "ann", name="Ping", source="query", query_id=ping, condition="above",
                               threshold=0, interval_minutes=60, recipients="alerts@example.com")
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = now() + interval '1 day'"))
        conn.execute(sa.text("UPDATE app.schedules SET next_run_at = now() + interval '1 day'"))
        eid = exports.request_export(conn, "ann", "saved_query", {"query_id": slow, "query_params": {"seconds": 8}},
                                     "csv")
    env = _env(world, smtp, JOB_LEASE_SECONDS="3", SCHEDULER_TICK_SECONDS="1", HEARTBEAT_SECONDS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "reports.scheduler"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(replicas)]
    try:
        def running():
            with eng.connect() as conn:
                return conn.execute(sa.text("SELECT started_at FROM app.exports WHERE export_id = :e AND "
                                            "status = 'running'"), {"e": eid}).scalar()
        _wait(running, timeout=60, every=0.05)
        with eng.begin() as conn:
            conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = now() WHERE rule_id = :r"), {"r": rid})
            assert schedules.run_now(conn, "ann", sid) == 1
        asked = time.monotonic()
        ages, mailed = [], {}
        while time.monotonic() - asked < 6:
            with eng.connect() as conn:
                ages.append(conn.execute(sa.text("SELECT extract(epoch FROM now() - min(beat_at)) "
                                                 "FROM app.scheduler_heartbeat")).scalar())
                still = conn.execute(sa.text("SELECT status FROM app.exports WHERE export_id = :e"),
                                     {"e": eid}).scalar()
            for m in list(smtp.messages):
                mailed.setdefault(m["To"], time.monotonic() - asked)
            time.sleep(0.2)
        # Still exporting: everything above happened while its query slept.
        assert still == "running"
        assert max(ages) < 2.5, ages
        assert set(mailed) == {"alerts@example.com", "now@example.com"}, mailed
        assert all(t < 4 for t in mailed.values()), mailed

        def finished():
            with eng.connect() as conn:
                return conn.execute(sa.text("SELECT status, attempts, rows FROM app.exports WHERE export_id = :e "
                                            "AND status IN ('done', 'failed')"), {"e": eid}).first()
        assert tuple(_wait(finished, timeout=60)) == ("done", 1, 3)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert not any("took it over" in out for out in outs), outs
    files = [f for f in world["exports"].glob("*") if f.name.startswith("slow_")]
    assert len(files) == 1 and files[0].read_text(encoding="utf-8-sig").splitlines() == ["n", "1", "2", "3"]


def test_sigterm_while_an_exports_query_runs_hands_it_back_within_seconds(world, smtp):
    """A CSV export waiting for its statement checks each second whether to stop: the query is
    cancelled and the export queued again, instead of the scheduler waiting for the statement."""
    eng = world["engine"]
    with eng.begin() as conn:
        conn.execute(sa.text(SLOW_ROWS))
        slow = save_query(conn, "ann", "Slow", "SELECT n FROM mart.slow_rows({{seconds:number}}) n")
        eid = exports.request_export(conn, "ann", "saved_query", {"query_id": slow, "query_params": {"seconds": 60}},
                                     "csv")
    proc = subprocess.Popen([sys.executable, "-m", "reports.scheduler"], env=_env(world, smtp, SCHEDULER_TICK_SECONDS="1"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def running():
            with eng.connect() as conn:
                return conn.execute(sa.text("SELECT 1 FROM app.exports WHERE status = 'running'")).first()
        _wait(running)
        time.sleep(1.5)   # inside the statement's wait
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
        took = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and took < 15, (took, out)
    with eng.connect() as conn:
        row = conn.execute(sa.text("SELECT status, attempts FROM app.exports WHERE export_id = :e"), {"e": eid}).one()
        busy = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%slow_rows%' "
                                    "AND state = 'active' AND pid <> pg_backend_pid()")).scalar()
    assert (row.status, row.attempts, busy) == ("queued", 0, 0)


def test_a_mail_server_that_never_answers_delays_no_alert(world, smtp):
    """Deliveries run on a worker thread: a mail server that accepts connections and says nothing
    (each SMTP step waits up to 30 s) held up the alerts of the same tick before."""
    eng = world["engine"]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    with eng.begin() as conn:
        for i in range(3):
            delivery.enqueue(conn, channel="email", target=f"r{i}@example.com", payload={"subject": "x", "text": "x"},
                             key=f"k{i}", source="test")
        ping = save_query(conn, "ann", "Ping", "SELECT 1 AS n")
        rid = alerts.save_rule(conn, "ann", name="Ping", source="query", query_id=ping, condition="above",
                               threshold=0, interval_minutes=60, recipients="alerts@example.com")
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = now() + interval '1 day'"))
    env = _env(world, smtp, SCHEDULER_TICK_SECONDS="1", SMTP_PORT=str(silent.getsockname()[1]))
    proc = subprocess.Popen([sys.executable, "-m", "reports.scheduler"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def sending():
            with eng.connect() as conn:
                return conn.execute(sa.text("SELECT 1 FROM app.outbox WHERE status = 'sending'")).first()
        _wait(sending)
        with eng.begin() as conn:
            due = conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = now() WHERE rule_id = :r "
                                       "RETURNING now()"), {"r": rid}).scalar()

        def evaluated():
            with eng.connect() as conn:
                return conn.execute(sa.text("SELECT last_evaluated_at >= :t FROM app.alert_rules WHERE rule_id = :r"),
                                    {"t": due, "r": rid}).scalar()
        _wait(evaluated, timeout=5)
    finally:
        proc.kill()
        proc.wait(30)
        silent.close()


def test_a_webhook_host_resolving_to_loopback_is_refused_and_never_called(monkeypatch):
    """Host names are checked after DNS resolution, when the webhook is sent: a name can point
    anywhere (localhost here; a public-looking name in an attack)."""
    monkeypatch.delenv("WEBHOOK_ALLOWED_NETWORKS", raising=False)
    server = WebhookServer().start()
    try:
        port = server.url.split(":")[2].split("/")[0]
        with pytest.raises(delivery.DeliveryError, match="its address is not allowed"):
            delivery.post_webhook(f"http://localhost:{port}/hook", {"text": "hi"}, load_settings(), key="k")
        assert server.posts == []
        # An admin's allow-list opens the network it names, and only that.
        monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
        delivery.post_webhook(f"http://localhost:{port}/hook", {"text": "hi"}, load_settings(), key="k")
        assert len(server.posts) == 1
        with pytest.raises(delivery.DeliveryError, match="its address is not allowed"):
            delivery.post_webhook("http://10.1.2.3/hook", {"text": "hi"}, load_settings(), key="k")
    finally:
        server.stop()


def test_what_answered_a_webhook_is_not_shown_beyond_its_http_status(world, smtp, hook):
    """The Send test button and a rule's notifications showed what answered (an SMTP banner, a
    refused connection): a probe of the network from the server. Now a status or a general
    sentence, with the details in the log."""
    eng = world["engine"]
    smtp_url = f"http://127.0.0.1:{smtp.port}/"
    with eng.begin() as conn:
        rid = alerts.save_rule(conn, "ann", name="Probe", metric="gmv", window="last_hour", condition="below",
                               threshold=1, interval_minutes=5, recipients="", webhook_url=smtp_url)
    [sent] = alerts.send_test(eng, "ann", rid)
    assert sent["outcome"] == "retry"
    assert sent["error"] == "webhook: no HTTP answer (the connection failed, timed out or was not HTTP)"
    hook.status = 404
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE app.alert_rules SET webhook_url = :u"), {"u": hook.url})
    [sent] = alerts.send_test(eng, "ann", rid)
    assert sent["error"] == "webhook: the receiver answered HTTP 404"


def test_a_file_above_the_attachment_limit_is_linked_not_attached(world, smtp, monkeypatch):
    eng = world["engine"]
    monkeypatch.setenv("APP_BASE_URL", "https://bi.example.com/")
    with eng.begin() as conn:
        sid = _schedule(conn, world)
        schedules.run_now(conn, "ann", sid)
        export_id = conn.execute(sa.text("SELECT export_id FROM app.schedule_runs WHERE manual")).scalar()
        # As the export finishes with a 12 MB file (EMAIL_ATTACHMENT_MAX_MB is 10 by default).
        assert schedules.finish_run(conn, export_id, ok=True, path=world["exports"] / "big.csv", file_name="big.csv",
                                    rows=400_000, size=12 * 2**20) == 1
    assert delivery.deliver_due(eng)["sent"] == 1
    msg = smtp.messages[0]
    assert list(msg.iter_attachments()) == []
    body = msg.get_body(("html",)).get_content()
    assert f"https://bi.example.com/reports?export={export_id}" in body and "larger than 10 MB" in body
    assert "Rows: 400,000" in msg.get_body(("plain",)).get_content()


def test_scheduler_logs_json_lines_with_log_format_json(world, smtp):
    with world["engine"].begin() as conn:
        _schedule(conn, world)
    out = subprocess.run([sys.executable, "-m", "reports.scheduler", "--once"], env=_env(world, smtp, LOG_FORMAT="json"),
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    entries = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]
    assert entries and all({"time", "level", "logger", "worker", "message"} <= set(e) for e in entries)
    assert any(e["logger"] == "reports.delivery" and e["message"].startswith("email sent to ops@example.com")
               for e in entries)


def test_a_schedule_that_cannot_be_planned_does_not_stop_the_others(world, smtp):
    eng = world["engine"]
    with eng.begin() as conn:
        good = _schedule(conn, world, name="Good")
        bad = _schedule(conn, world, name="Bad")
        # Written around the form's checks: a fan-out value that is not a vendor id.
        conn.execute(sa.text("""UPDATE app.schedules SET template = 'vendor_performance', fan_out = 'vendor',
                                params = '{"period": "yesterday"}', fan_values = '{"acme": ["a@example.com"]}'
                                WHERE schedule_id = :s"""), {"s": bad})
    ticked = _tick(eng)
    assert ticked["queued"] == 1 and ticked["sent"] == 1
    with eng.connect() as conn:
        failed = conn.execute(sa.text("SELECT message FROM app.schedule_runs WHERE schedule_id = :s AND "
                                      "status = 'failed'"), {"s": bad}).scalar()
        nxt = conn.execute(sa.text("SELECT next_run_at FROM app.schedules WHERE schedule_id = :s"), {"s": bad}).scalar()
    assert failed.startswith("could not be planned") and nxt > NOW
    assert [m["To"] for m in smtp.messages] == ["ops@example.com"] and good


def test_an_export_abandoned_three_times_is_failed_not_taken_again(world):
    eng = world["engine"]
    with eng.begin() as conn:
        eid = exports.request_export(conn, "ann", "saved_query", {"query_id": world["query_id"]}, "csv")
        conn.execute(sa.text("UPDATE app.exports SET status = 'running', attempts = 3, worker = 'dead', "
                             "lease_until = now() - interval '1 second'"))
    assert exports.run_exports(eng, "w2") == 0
    with eng.connect() as conn:
        row = conn.execute(sa.text("SELECT status, message FROM app.exports WHERE export_id = :e"), {"e": eid}).one()
    assert row.status == "failed" and row.message.startswith("stopped 3 times without finishing")


def test_a_delivery_failing_in_an_unexpected_way_is_recorded_and_the_others_go_on(world, smtp, hook):
    eng = world["engine"]
    with eng.begin() as conn:
        delivery.enqueue(conn, channel="webhook", target="http://127.0.0.1:1/x y", payload={"json": {}},
                         key="k1", source="test")
        delivery.enqueue(conn, channel="webhook", target=hook.url, payload={"json": {"text": "hi"}},
                         key="k2", source="test")
    assert delivery.deliver_due(eng) == {"sent": 1, "retry": 1, "failed": 0}
    with eng.connect() as conn:
        bad = conn.execute(sa.text("SELECT status, attempts, last_error FROM app.outbox WHERE idempotency_key = 'k1'")).one()
    assert bad.status == "pending" and bad.attempts == 1 and bad.last_error
    assert [body for _, _, body in hook.posts] == [{"text": "hi"}]


def test_a_crash_between_the_smtp_servers_ok_and_the_outbox_sends_once_more_with_the_same_message_id(
        world, smtp, caplog):
    """What the README promises (issue 20): SMTP cannot say whether a message arrived, so a process
    that dies after the server accepted it, before the row is marked sent, sends it again after the
    lease, with the same Message-ID, and says so in the log."""
    eng = world["engine"]
    with eng.begin() as conn:
        delivery.enqueue(conn, channel="email", target="ops@example.com", payload={"subject": "Hi", "text": "x"},
                         key="run:1:email:ops@example.com", source="test")
    assert delivery.deliver_due(eng)["sent"] == 1
    with eng.begin() as conn:   # as if the process had died before marking it sent, and its lease ran out
        conn.execute(sa.text("UPDATE app.outbox SET status = 'sending', lease_until = now() - interval '1 second'"))
    assert delivery.deliver_due(eng)["sent"] == 1
    first, second = smtp.messages
    assert first["Message-ID"] == second["Message-ID"]
    assert "stopped mid-send (its process died); sending again with the same Message-ID" in caplog.text
    assert delivery.deliver_due(eng)["sent"] == 0 and len(smtp.messages) == 2


def test_viewers_neither_export_saved_queries_nor_schedule(world):
    with world["engine"].begin() as conn:
        create_user(conn, "vic", "a-long-password-1", "viewer")
        with pytest.raises(ReportError, match="exporting a saved query needs the analyst or admin role"):
            exports.request_export(conn, "vic", "saved_query", {"query_id": world["query_id"]}, "csv")
        assert exports.request_export(conn, "vic", "kpi_summary", {}, "pdf") > 0
        with pytest.raises(schedules.ScheduleError, match="scheduling reports needs the analyst or admin role"):
            schedules.save_schedule(conn, "vic", **GOOD)


@pytest.mark.parametrize("name,value,message", [
    ("SMTP_PORT", "twenty-five", "SMTP_PORT='twenty-five' is not a whole number"),
    ("SMTP_FROM", "reports at shop", "SMTP_FROM='reports at shop' is not an email address"),
    ("SMTP_STARTTLS", "perhaps", "SMTP_STARTTLS='perhaps' must be true or false"),
    ("APP_BASE_URL", "bi.example.com", "APP_BASE_URL='bi.example.com' must start with http:// or https://"),
    ("EXPORT_EXPIRY_DAYS", "0", "EXPORT_EXPIRY_DAYS='0' must be greater than zero"),
    ("DELIVERY_MAX_ATTEMPTS", "-1", "DELIVERY_MAX_ATTEMPTS='-1' must be greater than zero"),
])
def test_bad_delivery_settings_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings()



@pytest.mark.parametrize("attempts,base,wait", [
    (0, 30, 30), (1, 30, 30), (2, 30, 60), (3, 30, 120), (7, 30, 1920), (8, 30, 3600), (60, 30, 3600),
    (1, 5000, 5000),  # a base over the cap is the floor: never less than the configured wait
])
def test_delivery_backoff_doubles_from_the_base_up_to_an_hour(attempts, base, wait):
    assert delivery.backoff_seconds(attempts, base) == wait
