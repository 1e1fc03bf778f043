"""The scheduler: heartbeat, incremental refresh of what changed, runs recorded, one replica at a time."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import date, datetime, timezone

import sqlalchemy as sa

from data.rollups import refresh_rollups
from reports import jobs
from reports import scheduler as S
from scripts.healthcheck import app_answering, role, scheduler_beating
from tests.conftest import ROOT, create_database

ORDER = """
INSERT INTO mart.vendors VALUES (1, 'Alpha', 'Books', 'Europe', 'DE', '2024-01-01', 'active', 0.1);
INSERT INTO mart.products VALUES (10, 1, 'A-10', 'Novel', 'Books', 'Fiction', 20, 8, '2024-01-01');
INSERT INTO mart.customers VALUES (100, 'Ann', 'DE', 'Europe', 'B2C', 'organic', '2025-01-01');
INSERT INTO mart.orders VALUES (1, 100, '2026-03-01 12:00+00', 'delivered', 'web', 'B2C', 'card', 'captured', 'EUR', 0);
INSERT INTO mart.order_items VALUES (1, 1, 10, 1, 2, 20.00, 0, 8.00, 0);
"""


def test_once_beats_and_folds_new_orders_into_the_rollups(empty_engine):
    with empty_engine.begin() as conn:
        conn.execute(sa.text(ORDER))
        refresh_rollups(conn, timezone="UTC")
        # A new order after the last refresh: the trigger records its day.
        conn.execute(sa.text("INSERT INTO mart.orders VALUES (2, 100, '2026-03-02 09:00+00', 'paid', 'web', 'B2C', 'card', 'captured', 'EUR', 0)"))
        conn.execute(sa.text("INSERT INTO mart.order_items VALUES (2, 1, 10, 1, 1, 20.00, 5.00, 8.00, 0)"))
        assert conn.execute(sa.text("SELECT count(*) FROM app.rollup_dirty_days")).scalar() == 1
        conn.execute(sa.text("INSERT INTO app.login_attempts (at, username, client_addr, succeeded) VALUES "
                             "(now() - interval '31 days', 'old', 'x', false), (now() - interval '1 day', 'new', 'x', false)"))
    env = {**os.environ, "DATABASE_URL": empty_engine.url.render_as_string(hide_password=False), "APP_TIMEZONE": "UTC"}
    out = subprocess.run([sys.executable, "-m", "reports.scheduler", "--once"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with empty_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app.scheduler_heartbeat")).scalar() == 1
        run = conn.execute(sa.text("SELECT job, ok, message FROM app.job_runs WHERE job = 'refresh_rollups'")).one()
        assert run.job == "refresh_rollups" and run.ok and run.message.startswith("days: 1 days")
        assert conn.execute(sa.text("SELECT gmv FROM mart.rollup_sales_daily WHERE day = '2026-03-02'")).scalar() == 15
        assert conn.execute(sa.text("SELECT second_day FROM mart.rollup_customers")).scalar().isoformat() == "2026-03-02"
        assert conn.execute(sa.text("SELECT count(*) FROM app.rollup_dirty_days")).scalar() == 0
        # Login attempts older than 30 days are pruned; recent ones stay for the lockout.
        assert conn.execute(sa.text("SELECT username FROM app.login_attempts")).scalars().all() == ["new"]
        prune = conn.execute(sa.text("SELECT ok, message FROM app.job_runs WHERE job = 'prune_login_attempts'")).one()
        assert prune.ok and prune.message == "1 old login attempts deleted"


def test_scheduler_refuses_an_unmigrated_database(admin_url):
    url = create_database(admin_url, "mbi_unmigrated")
    out = subprocess.run([sys.executable, "-m", "reports.scheduler", "--once"],
                         env={**os.environ, "DATABASE_URL": url}, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "python -m data migrate" in out.stderr


def test_replicas_skip_a_job_another_holds(empty_engine):
    started, release = threading.Event(), threading.Event()

    def slow(conn):
        started.set()
        release.wait(10)
        return "did it"

    t = threading.Thread(target=jobs.run_job, args=(empty_engine, "slow", slow), kwargs={"lock": "slow"})
    t.start()
    started.wait(10)
    assert jobs.run_job(empty_engine, "slow", lambda c: "also did it", lock="slow")
    release.set()
    t.join()
    with empty_engine.connect() as conn:
        messages = sorted(r[0] for r in conn.execute(sa.text("SELECT message FROM app.job_runs WHERE job = 'slow'")))
    assert messages == ["did it", "skipped: another scheduler is running it"]


def test_failed_job_is_recorded_with_its_error(empty_engine):
    assert not jobs.run_job(empty_engine, "broken", lambda c: c.execute(sa.text("SELECT * FROM mart.nothing_here")))
    with empty_engine.connect() as conn:
        ok, message = conn.execute(sa.text("SELECT ok, message FROM app.job_runs WHERE job = 'broken'")).one()
    assert ok is False and "nothing_here" in message


def test_refresh_since_rebuilds_from_that_day(empty_engine):
    with empty_engine.begin() as conn:
        conn.execute(sa.text(ORDER))
        refresh_rollups(conn, timezone="UTC")
        r = refresh_rollups(conn, since=date(2026, 2, 27), timezone="UTC")
        assert (r.mode, r.days) == ("days", 3)
        assert refresh_rollups(conn, since=date(2026, 3, 5), timezone="UTC").mode == "none"


def test_a_job_raising_anything_is_recorded_and_the_scheduler_goes_on(empty_engine):
    def broken(conn):
        raise ValueError("bad row in the export template")

    assert not jobs.run_job(empty_engine, "odd", broken)
    assert jobs.run_job(empty_engine, "next", lambda c: "fine")
    with empty_engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT job, message FROM app.job_runs WHERE job IN ('odd', 'next')")).all())
    assert rows == {"odd": "ValueError: bad row in the export template", "next": "fine"}


def test_heartbeat_survives_an_unreachable_database():
    eng = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/x", connect_args={"connect_timeout": 2})
    assert jobs.heartbeat(eng) is False
    assert jobs.run_job(eng, "x", lambda c: "never") is False


def test_customer_scores_run_once_a_night_after_their_time(empty_engine, monkeypatch):
    monkeypatch.setenv("APP_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("CUSTOMER_SCORES_AT", "03:00")
    with empty_engine.begin() as conn:
        conn.execute(sa.text(ORDER))
        refresh_rollups(conn, timezone="Europe/Berlin")
    before = datetime(2026, 3, 5, 1, 30, tzinfo=timezone.utc)   # 02:30 in Berlin
    after = datetime(2026, 3, 5, 2, 30, tzinfo=timezone.utc)    # 03:30 in Berlin
    with empty_engine.connect() as conn:
        assert jobs.fetch_customer_scores_due(conn, before) is None
        assert jobs.fetch_customer_scores_due(conn, after) == date(2026, 3, 4)
    assert jobs.run_job(empty_engine, "customer_scores", lambda c: jobs.customer_scores_job(c, after),
                        lock="customer_scores")
    with empty_engine.connect() as conn:
        run = conn.execute(sa.text("SELECT as_of, customers, status, message FROM mart.customer_score_runs")).one()
        assert run.as_of == date(2026, 3, 4) and run.customers == 1 and run.status == "too_little_data"
        assert "needed to fit the purchase model" in run.message
        assert conn.execute(sa.text("SELECT rfm_segment FROM mart.customer_scores")).scalar() is not None
        message = conn.execute(sa.text("SELECT message FROM app.job_runs WHERE job = 'customer_scores'")).scalar()
        assert message.startswith("run ") and "1 customers as of 2026-03-04, too_little_data" in message
        # Stored: not due again that day; a replica that waited on the lock finds it done.
        assert jobs.fetch_customer_scores_due(conn, after) is None
    with empty_engine.connect() as conn:
        assert jobs.customer_scores_job(conn, after) == "up to date"


def test_the_images_healthcheck_knows_which_role_its_container_runs():
    assert role(b"python\0-m\0reports.scheduler\0") == "scheduler"
    assert role(b"/usr/local/bin/python\0/usr/local/bin/streamlit\0run\0app.py\0") == "app"
    assert role(b"sh\0-c\0python -m data migrate && exec streamlit run app.py\0") == "app"
    assert role(b"") == "app"


def test_the_scheduler_healthcheck_wants_a_recent_heartbeat_from_its_host(empty_engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", empty_engine.url.render_as_string(hide_password=False))
    assert scheduler_beating(60) == "no heartbeat from a scheduler on this host yet"
    assert jobs.heartbeat(empty_engine)
    assert scheduler_beating(60) is None
    assert scheduler_beating(60, hostname="another-host") == "no heartbeat from a scheduler on this host yet"
    with empty_engine.begin() as conn:
        conn.execute(sa.text("UPDATE app.scheduler_heartbeat SET beat_at = now() - interval '10 minutes'"))
    assert re.fullmatch(r"last heartbeat 6\d\d s ago \(more than 60 s\)", scheduler_beating(60))
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/x")
    assert scheduler_beating(60).startswith("database unreachable: ")


def test_the_app_healthcheck_reports_a_closed_port():
    assert app_answering("http://127.0.0.1:1/_stcore/health").startswith("http://127.0.0.1:1/_stcore/health: ")


def test_the_job_table_puts_long_work_on_workers_and_runs_each_job_once_per_pass():
    assert [j.name for j in S.JOBS if j.thread == S.MAIN] == [
        "heartbeat", "refresh_rollups", "prune_login_attempts", "expired_exports", "alerts", "schedules"]
    settings = type("Settings", (), {"export_workers": 3, "work_seconds": 5})()
    ctx = S.Context(None, settings, threading.Event())
    workers = S._workers(ctx)
    assert {t: [w.name for w in ws] for t, ws in workers.items()} == {
        "nightly": ["nightly"], "exports": ["exports-1", "exports-2", "exports-3"], "deliveries": ["deliveries"]}
    assert workers["nightly"][0].every == 300 and workers["exports"][0].every == 5


def test_a_failing_command_is_logged_and_the_loop_goes_on(caplog):
    def unreachable(ctx):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    def broken(ctx):
        raise ValueError("bad template")

    woken = []
    worker = type("W", (), {"wake": lambda self: woken.append(1)})()
    ctx = S.Context(None, None, threading.Event(), {"deliveries": [worker]})
    assert S.run_command(S.Job("alerts", 5, unreachable), ctx) is S.FAILED
    assert S.run_command(S.Job("odd", 5, broken), ctx) is S.FAILED
    assert "alerts: not run, the database is unreachable: connection refused" in caplog.text
    assert "odd: the job failed" in caplog.text and "bad template" in caplog.text
    S._tick(S.Job("alerts", 5, unreachable, wakes="deliveries"), ctx)
    assert woken == []
    S._tick(S.Job("alerts", 5, lambda c: True, wakes="deliveries"), ctx)
    assert woken == [1]
