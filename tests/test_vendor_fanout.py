"""One report, every vendor (issue 22): an admin's schedule of a vendor's own report reaches each vendor
with vendor users exactly once, made on that vendor's own database role, with only its figures;
also after a kill -9 of the scheduler mid-run. An admin's alert rule tells each vendor's users of
their own vendor's value. A vendor user exports their own report, on their own role."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import astuple
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from analytics import alerts as A
from analytics.filters import resolve_period
from data import peer_benchmarks as PB
from data.auth import create_user
from data.rollups import refresh_rollups
from data.seed import seed
from data.vendor_users import create_vendor_user
from reports import alert_evaluation, alerts, delivery, exports, schedules
from reports.templates import ReportError, build
from tests.conftest import ROOT, TEST_COOKIE_KEY, clone, create_database, use_database, vendor_settings
from tests.raw_metrics import expected, load_raw, prepare

END = date(2026, 11, 20)
NOW = datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)   # the morning after the data ends
PASSWORD = "Quiet-meadow-4821"
TEMPLATE_DB = "mbi_fanout"


@pytest.fixture(scope="module")
def template(admin_url, empty_template):
    """A seeded marketplace with peer benchmarks, an admin, and vendor users: twelve vendors with one
    user each (with an email), one more user without an email, and a disabled one."""
    url = create_database(admin_url, TEMPLATE_DB, template=empty_template)
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"options": "-c timezone=UTC"})
    seed(eng, orders=6_000, seed=3, end=END, progress=False)
    settings = vendor_settings()
    with eng.begin() as conn:
        PB.refresh_peer_benchmarks(conn, {p: astuple(resolve_period(p, END + timedelta(days=1))) for p in PB.PRESETS},
                                   tz="UTC")
        create_user(conn, "boss", PASSWORD, "admin")
        create_user(conn, "ann", PASSWORD, "analyst")
        vendors = conn.execute(sa.text("""
            SELECT r.vendor_id FROM mart.rollup_vendor_daily r JOIN mart.vendors v USING (vendor_id)
            WHERE v.status = 'active' GROUP BY 1 ORDER BY sum(r.all_orders) DESC, 1 LIMIT 14""")).scalars().all()
        for v in vendors[:12]:
            create_vendor_user(conn, f"v{v}", PASSWORD, [v], settings, email=f"v{v}@example.com")
        create_vendor_user(conn, "mute", PASSWORD, [vendors[12]], settings)                 # no email
        create_vendor_user(conn, "gone", PASSWORD, [vendors[13]], settings, email="gone@example.com")
        conn.execute(sa.text("UPDATE app.users SET disabled_at = now() WHERE username = 'gone'"))
    raw = prepare(load_raw(eng), "UTC")
    eng.dispose()
    return {"vendors": vendors, "raw": raw}


@pytest.fixture
def world(admin_url, template, monkeypatch, tmp_path, smtp):
    with clone(admin_url, TEMPLATE_DB) as eng:
        url = eng.url.render_as_string(hide_password=False)
        use_database(monkeypatch, url, EXPORT_DIR=str(tmp_path / "exports"), APP_TIMEZONE="UTC",
                     DELIVERY_BACKOFF_SECONDS="1", **smtp.env())
        yield {"engine": eng, "url": url, "exports": tmp_path / "exports", **template}


def _schedule(conn, owner: str = "boss", **change) -> int:
    fields = dict(name="Your month", template="vendor_report", spec={"period": "last_7_days"}, fmt="json",
                  cadence={"kind": "daily", "at": "07:00"}, tz="UTC", recipients="", webhook_url="",
                  fan_out=schedules.EVERY_VENDOR, fan_values=None)
    return schedules.save_schedule(conn, owner, now=NOW - timedelta(days=1), is_admin=True, **{**fields, **change})


def _tick(engine) -> dict:
    with engine.begin() as conn:
        planned = schedules.plan_due(conn, now=NOW)
    exports.run_exports(engine, "test-worker")
    return {**planned, **delivery.deliver_due(engine, worker="test-worker")}


def _reports(smtp) -> dict[str, dict]:
    """To address -> the JSON report attached to the one message sent there."""
    out = {}
    for msg in smtp.messages:
        assert msg["To"] not in out, f"two messages to {msg['To']}"
        out[msg["To"]] = json.loads(next(msg.iter_attachments()).get_content())
    return out


def test_every_vendor_with_users_gets_exactly_its_own_report_once(world, smtp):
    eng, vendors = world["engine"], world["vendors"]
    with eng.begin() as conn:
        sid = _schedule(conn)
        names = dict(conn.execute(sa.text("SELECT vendor_id, name FROM mart.vendors")).all())
    _tick(eng)
    assert _tick(eng)["sent"] == 0, "a second tick sends nothing more"
    got = _reports(smtp)
    assert sorted(got) == sorted(f"v{v}@example.com" for v in vendors[:12])
    for v in vendors[:12]:
        report = got[f"v{v}@example.com"]
        start, end = (date.fromisoformat(report["period"][k]) for k in ("start", "end"))   # the slot's last 7 days
        gmv = next(r["value"] for r in report["summary"] if r["metric"] == "GMV")
        assert gmv == pytest.approx(expected(world["raw"], start, end, {"vendor_id": [v]})["gmv"])
        text = json.dumps(report)
        assert names[v] in text
        assert not [n for other, n in names.items() if other != v and n in text], v
    with eng.connect() as conn:
        runs = conn.execute(sa.text("SELECT fan_value, status, message FROM app.schedule_runs WHERE schedule_id = :s "
                                    "AND status <> 'skipped' ORDER BY 1"), {"s": sid}).all()
        history = schedules.fetch_run_history(conn, sid)
    # One run per vendor with enabled users: the one without an email is listed, nothing sent.
    assert sorted(r.fan_value for r in runs) == sorted(str(v) for v in vendors[:13])
    assert all(r.status == "done" for r in runs)
    assert "no enabled user of vendor" in next(r.message for r in runs if r.fan_value == str(vendors[12]))
    assert len(history) == 13


@pytest.mark.parametrize("owner, change, words", [
    ("ann", {}, "only an admin sends a report to every vendor"),
    ("boss", {"template": "kpi_summary", "fmt": "pdf"}, "is about the whole marketplace"),
    ("boss", {"recipients": "ops@example.com"}, "leave the recipients and the webhook empty"),
    ("boss", {"spec": {"period": "last_7_days", "filters": {"category": ["Books"]}}}, "clear the filters"),
])
def test_a_schedule_to_every_vendor_is_refused_by_name(world, owner, change, words):
    with pytest.raises(schedules.ScheduleError, match=words), world["engine"].begin() as conn:
        _schedule(conn, owner, **change)
    with world["engine"].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app.schedules")).scalar() == 0


def test_a_demoted_owner_stops_the_fan_out(world, smtp):
    eng = world["engine"]
    with eng.begin() as conn:
        sid = _schedule(conn)
        create_user(conn, "boss2", PASSWORD, "admin")
        conn.execute(sa.text("UPDATE app.users SET role = 'analyst' WHERE username = 'boss'"))
    _tick(eng)
    assert smtp.messages == []
    with eng.connect() as conn:
        message = conn.execute(sa.text("SELECT message FROM app.schedule_runs WHERE schedule_id = :s AND "
                                       "status = 'failed'"), {"s": sid}).scalar()
    assert "no longer an admin" in message


@pytest.mark.slow
def test_kill_9_mid_fan_out_then_restart_mails_each_vendor_once(world, smtp):
    eng, vendors = world["engine"], world["vendors"]
    with eng.begin() as conn:
        _schedule(conn, fmt="pdf")
        conn.execute(sa.text("UPDATE app.schedules SET next_run_at = now() - interval '1 minute'"))
    env = {"DATABASE_URL": world["url"], "APP_TIMEZONE": "UTC", "EXPORT_DIR": str(world["exports"]),
           "AUTH_COOKIE_KEY": TEST_COOKIE_KEY, "JOB_LEASE_SECONDS": "3", "SCHEDULER_TICK_SECONDS": "1",
           "EXPORT_WORKERS": "1", "PATH": "/usr/bin:/bin", **smtp.env()}
    first = subprocess.Popen([sys.executable, "-m", "reports.scheduler"], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end:   # some vendors mailed, others not yet
            with eng.connect() as conn:
                done = conn.execute(sa.text("SELECT count(*) FILTER (WHERE status = 'done'), count(*) FROM "
                                            "app.schedule_runs WHERE status <> 'skipped'")).one()
            if done[0] >= 1 and smtp.messages and done[0] < done[1]:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"never caught mid-run: {done}, {len(smtp.messages)} messages")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    time.sleep(3.5)   # the dead scheduler's export leases run out
    for _ in range(2):
        out = subprocess.run([sys.executable, "-m", "reports.scheduler", "--once"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        # A mail the dead scheduler was sending waits for its send lease (SEND_LEASE_SECONDS): end it.
        with eng.begin() as conn:
            conn.execute(sa.text("UPDATE app.outbox SET lease_until = now() - interval '1 second' "
                                 "WHERE status = 'sending'"))
    with eng.connect() as conn:
        runs = conn.execute(sa.text("SELECT status, count(*) FROM app.schedule_runs WHERE status <> 'skipped' "
                                    "GROUP BY 1")).all()
        outbox = conn.execute(sa.text("SELECT status, count(*) FROM app.outbox GROUP BY 1")).all()
    assert dict(runs) == {"done": 13} and dict(outbox) == {"sent": 12}
    sent: dict[str, set] = {}
    for m in smtp.messages:
        sent.setdefault(m["To"], set()).add(m["Message-ID"])
    assert sorted(sent) == sorted(f"v{v}@example.com" for v in vendors[:12])
    # One message per vendor: a send cut off after the server took it is repeated with the same
    # Message-ID (by which mail systems drop the repeat), never as a second message.
    assert all(len(ids) == 1 for ids in sent.values()), sent


# --- alert rules to every vendor -----------------------------------------------------------------

def _vendor_rule(conn, owner: str = "boss", **change) -> int:
    fields = dict(name="GMV last 7 days", metric="gmv", window="last_7d", condition="above", threshold=0,
                  fan_out="vendor_id", interval_minutes=60, recipients="", webhook_url="", to_vendors=True)
    return alerts.save_rule(conn, owner, **{**fields, **change})


def test_an_alert_to_every_vendor_tells_each_vendors_users_of_their_own_value_only(world, smtp):
    """Each vendor with an enabled user is evaluated on its own login role: its value equals its raw
    lines'; a vendor whose role cannot log in gets an error instance its users are not sent, and the
    others go on; vendors without users are not watched."""
    eng, vendors = world["engine"], world["vendors"]
    with eng.begin() as conn:
        _vendor_rule(conn, recipients="ops@example.com")
        names = dict(conn.execute(sa.text("SELECT vendor_id, name FROM mart.vendors")).all())
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :now"), {"now": NOW})   # due at NOW
        locked = vendors[1]
        conn.execute(sa.text(f'ALTER ROLE "mbi_vendor_{locked}" NOLOGIN'))   # roles are the server's: put back below
    try:
        alert_evaluation.evaluate_due(eng, now=NOW)
    finally:
        with eng.begin() as conn:
            conn.execute(sa.text(f'ALTER ROLE "mbi_vendor_{locked}" LOGIN'))
    delivery.deliver_due(eng, worker="test")
    by_to: dict[str, list] = {}
    for m in smtp.messages:
        by_to.setdefault(m["To"], []).append(m)
    # Every vendor with GMV over the last 7 days fires; its users hear of it once, the recipient of all.
    fired = {v for v in vendors[:12] if f"v{v}@example.com" in by_to}
    assert len(fired) >= 6 and len(by_to["ops@example.com"]) >= len(fired)
    for v in fired:
        (msg,) = by_to[f"v{v}@example.com"]
        text = msg.get_body(("plain",)).get_content()
        assert names[v] in text and not [n for other, n in names.items() if other != v and n in text], v
    assert "gone@example.com" not in by_to and f"v{locked}@example.com" not in by_to
    with eng.connect() as conn:
        states = {int(f): (st, value) for f, st, value in conn.execute(sa.text(
            "SELECT fan_value, state, value FROM app.alert_instances WHERE fan_value ~ '^[0-9]+$'"))}
        bound = set(conn.execute(sa.text("SELECT vendor_id FROM app.user_vendors")).scalars())
    assert set(states) <= bound and fired <= set(states), "only vendors with users are watched"
    assert states[locked][0] == "error"
    week = A.resolve_window("last_7d", NOW, "UTC").period
    for v in fired:
        want = expected(world["raw"], week.start, week.end, {"vendor_id": [v]})["gmv"]
        assert states[v][0] == "firing" and states[v][1] == pytest.approx(want), v


@pytest.mark.parametrize("owner, change, words", [
    ("ann", {}, "only an admin's rule notifies every vendor"),
    ("boss", {"fan_out": ""}, "fan out by vendor"),
    ("boss", {"fan_out": "category"}, "fan out by vendor"),
    ("boss", {"condition": "outside_forecast", "threshold": None, "window": "yesterday"}, "stored forecasts"),
])
def test_an_alert_to_every_vendor_is_refused_by_name(world, owner, change, words):
    with pytest.raises(alerts.AlertError, match=words), world["engine"].begin() as conn:
        _vendor_rule(conn, owner, **change)


# --- a vendor user's own exports ---------------------------------------------------------------------

def test_a_vendor_user_exports_their_own_report_on_their_role_and_only_theirs(world):
    eng, vendors = world["engine"], world["vendors"]
    mine, other = vendors[0], vendors[1]
    user = f"v{mine}"
    with eng.begin() as conn:
        names = dict(conn.execute(sa.text("SELECT vendor_id, name FROM mart.vendors")).all())
        for template, spec, words in (
                ("vendor_report", {"filters": {"vendor_id": [other]}}, "choose one of your own vendors"),
                ("vendor_report", {}, "choose one of your own vendors"),
                ("kpi_summary", {}, "is about the whole marketplace")):
            with pytest.raises(ReportError, match=words):
                exports.request_export(conn, user, template, {"period": "last_7_days", **spec}, "json")
        # A scope slipped into the spec is replaced by the user's own.
        eid = exports.request_export(conn, user, "vendor_report", {"period": "last_7_days", "vendor_scope": [other],
                                                                   "filters": {"vendor_id": [mine]}}, "json")
        theirs = exports.request_export(conn, "boss", "kpi_summary", {"period": "last_7_days"}, "pdf")
        stored = conn.execute(sa.text("SELECT params FROM app.exports WHERE export_id = :e"), {"e": eid}).scalar()
        assert stored["vendor_scope"] == [mine]
        audit = conn.execute(sa.text("SELECT count(*) FROM app.audit_log WHERE action = 'export.request' "
                                     "AND actor = :u"), {"u": user}).scalar()
        assert audit == 1
    exports.run_exports(eng, "test-worker")
    with eng.connect() as conn:
        path, _ = exports.fetch_export_file(conn, eid, user)
        assert exports.fetch_export_file(conn, theirs, user) is None, "another user's export, by its id"
    report = json.loads(path.read_text())
    text = json.dumps(report)
    assert names[mine] in text and not [n for v, n in names.items() if v != mine and n in text]


def test_a_vendors_report_made_on_the_apps_role_holds_only_that_vendors_benchmarks(world):
    """The app's role reads every vendor's benchmark rows: the report asks for its vendor's alone."""
    mine = world["vendors"][0]
    with world["engine"].connect() as conn:
        report = build(conn, "vendor_report", {"period": "last_month", "filters": {"vendor_id": [mine]}}, "json",
                       user="boss", now=NOW, tz="UTC")
    bench = next(t for t in report.tables if t.name.startswith("Peer benchmarks"))
    rows = [r for batch in bench.batches() for r in batch]
    assert 0 < len(rows) <= len(PB.METRICS)
    assert {r[0] for r in rows} <= set(PB.LABELS.values())


def _own_schedule(conn, owner: str, **change) -> int:
    fields = dict(name="My week", template="vendor_report", spec={"period": "last_7_days"}, fmt="json",
                  cadence={"kind": "daily", "at": "07:00"}, tz="UTC", recipients=f"{owner}@example.com",
                  webhook_url="", fan_out=None, fan_values=None)
    return schedules.save_schedule(conn, owner, now=NOW - timedelta(days=1), **{**fields, **change})


def test_a_vendor_user_schedules_their_own_report_to_their_own_users(world, smtp):
    eng, vendors, raw = world["engine"], world["vendors"], world["raw"]
    v = vendors[0]
    with eng.begin() as conn:
        sid = _own_schedule(conn, f"v{v}", spec={"period": "last_7_days", "filters": {"vendor_id": [v]}})
        names = dict(conn.execute(sa.text("SELECT vendor_id, name FROM mart.vendors")).all())
    _tick(eng)
    assert _tick(eng)["sent"] == 0, "a second tick sends nothing more"
    got = _reports(smtp)
    assert list(got) == [f"v{v}@example.com"]
    report = got[f"v{v}@example.com"]
    start, end = (date.fromisoformat(report["period"][k]) for k in ("start", "end"))
    gmv = next(r["value"] for r in report["summary"] if r["metric"] == "GMV")
    assert gmv == pytest.approx(expected(raw, start, end, {"vendor_id": [v]})["gmv"])
    text = json.dumps(report)
    assert not [n for other, n in names.items() if other != v and n in text]
    with eng.connect() as conn:
        spec = conn.execute(sa.text("SELECT e.params FROM app.schedule_runs r JOIN app.exports e USING (export_id) "
                                    "WHERE r.schedule_id = :s"), {"s": sid}).scalar()
    assert spec["vendor_scope"] == [v]   # made on the vendor's own role, from its binding at run time
    # Disabled or bound to another vendor, the owner's schedule stops, named on its run list; nothing
    # more is sent (a staff role would have made the report of every vendor).
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE app.users SET disabled_at = now() WHERE username = :u"), {"u": f"v{v}"})
        with pytest.raises(schedules.ScheduleError, match="is disabled, and a vendor user's schedules stop"):
            schedules.run_now(conn, "boss", sid, is_admin=True)
        conn.execute(sa.text("UPDATE app.schedules SET next_run_at = :t WHERE schedule_id = :s"),
                     {"t": NOW - timedelta(minutes=1), "s": sid})
    messages = len(smtp.messages)
    _tick(eng)
    assert len(smtp.messages) == messages
    with eng.connect() as conn:
        failed = conn.execute(sa.text("SELECT message FROM app.schedule_runs WHERE schedule_id = :s "
                                      "AND status = 'failed'"), {"s": sid}).scalars().all()
    assert failed and "is disabled" in failed[0]


@pytest.mark.parametrize("change, words", [
    ({"template": "kpi_summary", "fmt": "pdf"}, "a vendor user schedules their own report"),
    ({"webhook_url": "https://hooks.example.com/x"}, "leave the webhook empty"),
    ({"recipients": "rival@example.com"}, "rival@example.com is not the email of a user of your vendors"),
    ({"recipients": ""}, "give at least one email address of your vendors' users"),
    ({"fan_out": "category", "fan_values": {"Books": "v@example.com"}}, "leave the fan-out empty"),
    ({"spec": {"period": "last_7_days", "filters": {"vendor_id": [-1]}}}, "choose one of your own vendors"),
])
def test_a_vendor_users_schedule_is_refused_by_name(world, change, words):
    owner = f"v{world['vendors'][0]}"
    with pytest.raises(schedules.ScheduleError, match=words), world["engine"].begin() as conn:
        _own_schedule(conn, owner, **change)
    with world["engine"].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app.schedules")).scalar() == 0


def _own_rule(conn, owner: str, vendor: int, **change) -> int:
    fields = dict(name="My GMV", source="metric", metric="gmv", window="last_7d", condition="above", threshold=0,
                  filters={"vendor_id": [vendor]}, interval_minutes=60, recipients=f"{owner}@example.com",
                  webhook_url="")
    return alerts.save_rule(conn, owner, **{**fields, **change})


def test_a_vendor_users_rule_is_evaluated_on_their_own_role_and_tells_their_users(world, smtp, monkeypatch):
    eng, vendors, raw = world["engine"], world["vendors"], world["raw"]
    v, other = vendors[0], vendors[1]
    with eng.begin() as conn:
        rid = _own_rule(conn, f"v{v}", v)
        names = dict(conn.execute(sa.text("SELECT vendor_id, name FROM mart.vendors")).all())
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :now"), {"now": NOW})
    roles = []
    real = alert_evaluation.vendor_engine
    monkeypatch.setattr(alert_evaluation, "vendor_engine", lambda s, ids: roles.append(ids) or real(s, ids))
    alert_evaluation.evaluate_due(eng, now=NOW)
    delivery.deliver_due(eng, worker="test")
    assert roles == [(v,)]                     # evaluated on the vendor's own role
    (msg,) = smtp.messages
    assert msg["To"] == f"v{v}@example.com"
    text = msg.get_body(("plain",)).get_content()
    assert f"(Vendor: {names[v]} (vendor {v}))" in text and not [n for o, n in names.items() if o != v and n in text]
    with eng.connect() as conn:
        value = conn.execute(sa.text("SELECT value FROM app.alert_instances WHERE rule_id = :r"), {"r": rid}).scalar()
    period = alerts.A.resolve_window("last_7d", NOW, "UTC").period
    assert value == pytest.approx(expected(raw, period.start, period.end, {"vendor_id": [v]})["gmv"])
    # Bound to another vendor since, the owner's rule is an error that names it, and sends nothing.
    with eng.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.user_vendors WHERE user_id = (SELECT user_id FROM app.users "
                             "WHERE username = :u)"), {"u": f"v{v}"})
        conn.execute(sa.text("INSERT INTO app.user_vendors (user_id, vendor_id) SELECT user_id, :o FROM app.users "
                             "WHERE username = :u"), {"o": other, "u": f"v{v}"})
        conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :now"), {"now": NOW + timedelta(hours=2)})
    alert_evaluation.evaluate_due(eng, now=NOW + timedelta(hours=2))
    with eng.connect() as conn:
        error = conn.execute(sa.text("SELECT last_error FROM app.alert_rules WHERE rule_id = :r"), {"r": rid}).scalar()
    assert f"no longer sees vendor {v}" in error


@pytest.mark.parametrize("change, words", [
    ({"metric": "active_customers"}, "Active customers is the marketplace's"),
    ({"condition": "outside_forecast", "threshold": None, "window": "yesterday"},
     "forecast bands come from the marketplace.s"),
    ({"webhook_url": "https://hooks.example.com/x"}, "leave the webhook empty"),
    ({"recipients": "rival@example.com"}, "rival@example.com is not the email of a user of your vendors"),
    ({"filters": {"vendor_id": [-1]}}, "choose one or more of your own vendors"),
    ({"filters": {"category": ["Books"]}}, "choose one or more of your own vendors"),
    ({"fan_out": "category"}, "watches their own vendors as one"),
    ({"source": "query", "query_id": 1}, "query: choose one of your saved queries"),
])
def test_a_vendor_users_rule_is_refused_by_name(world, change, words):
    v = world["vendors"][0]
    with pytest.raises(alerts.AlertError, match=words), world["engine"].begin() as conn:
        _own_rule(conn, f"v{v}", v, **change)
    with world["engine"].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app.alert_rules")).scalar() == 0


def test_a_vendor_user_reaches_nothing_of_another_by_id(world):
    """Another vendor's (or the staff's) dashboard, saved query, schedule and export, asked for by id."""
    from analytics import dashboards as D
    from data import saved_queries as SQ
    eng, vendors = world["engine"], world["vendors"]
    a, b = f"v{vendors[0]}", f"v{vendors[1]}"
    with eng.begin() as conn:
        board = D.create_dashboard(conn, a, "A's board")
        query = SQ.save_query(conn, a, "A's query", "SELECT 1 AS n")
        staff_query = SQ.save_query(conn, "ann", "Shared", "SELECT 2 AS n", shared=True)
        sid = _own_schedule(conn, a)
        export_id = exports.request_export(conn, a, "vendor_report",
                                           {"period": "last_7_days", "filters": {"vendor_id": [vendors[0]]}}, "json")
    exports.run_exports(eng, "test-worker")
    with eng.begin() as conn:
        assert D.fetch_dashboards(conn, b).empty
        with pytest.raises(D.DashboardError, match="only the owner"):
            D.add_widget(conn, b, board, kind="kpi", metric="gmv", period="last_30_days")
        assert SQ.fetch_visible_query(conn, b, query) is None
        assert SQ.fetch_visible_query(conn, b, staff_query) is None          # the staff's shared ones too
        assert SQ.fetch_visible_query(conn, "boss", staff_query) is not None
        with pytest.raises(schedules.ScheduleError, match="only its owner or an admin"):
            schedules.run_now(conn, b, sid)
        assert not schedules.set_paused(conn, b, sid, True)
        assert not schedules.delete_schedule(conn, b, sid)
        assert exports.fetch_export_file(conn, export_id, b, admin=False) is None
        assert exports.fetch_export_file(conn, export_id, a, admin=False) is not None
        assert exports.fetch_exports(conn, b).empty


def test_each_vendors_customer_scores_are_kept_at_night_on_its_own_role(world):
    from analytics import customer_scores as CS
    from analytics.customers import fetch_rfm_scores, segment_movement
    from analytics.filters import Filters, Period
    from data.vendor_scope import vendor_engine
    from reports import jobs
    eng, vendors = world["engine"], world["vendors"]
    with eng.begin() as conn:
        assert jobs.fetch_vendor_customer_scores_due(conn, NOW) == END
        message = jobs.vendor_customer_scores_job(conn, NOW)
    # Every vendor with an enabled user of its own (the one without an email too), not the disabled one's,
    # as of yesterday and as of last year's end.
    year_end = date(END.year - 1, 12, 31)
    assert f"{END}: customer scores of 26 of 26 vendor periods (13 as of yesterday, 13 as of {year_end})" in message
    with eng.begin() as conn:
        kept = conn.execute(sa.text("SELECT vendor_id, period, as_of FROM mart.vendor_customer_scores")).all()
        assert jobs.fetch_vendor_customer_scores_due(conn, NOW) is None
        assert jobs.vendor_customer_scores_job(conn, NOW) == "up to date"
    assert sorted(kept) == sorted([(v, "yesterday", END) for v in vendors[:13]]
                                  + [(v, "last_year", year_end) for v in vendors[:13]])
    v = vendors[0]
    with vendor_engine(vendor_settings(), (v,)).connect() as vconn:
        # The vendor's role reads its own row only; what it reads equals the same computation made now.
        assert sorted(vconn.execute(sa.text("SELECT vendor_id, period FROM mart.vendor_customer_scores")).all()) == \
            [(v, "last_year"), (v, "yesterday")]
        stored = CS.fetch_stored_vendor_scores(vconn, v)
        live = CS.compute_scores(vconn, Filters(Period(END, END), dims=(("vendor_id", (v,)),)), END,
                                 previous=END - timedelta(days=CS.MOVEMENT_DAYS), tz="UTC", customer_records=False)
        # The movement of every period preset ending yesterday is kept too, as computed now.
        assert set(stored.movements) == set(CS.preset_movement_dates(END)) - {END - timedelta(days=30)}
        first = min(stored.movements)
        rfm = fetch_rfm_scores(vconn, Filters(Period(END, END), dims=(("vendor_id", (v,)),)), END, tz="UTC",
                               previous=first)
    assert (stored.as_of, stored.movement_from, stored.customers) == (END, END - timedelta(days=30), live.customers)
    assert stored.movements[first].equals(segment_movement(rfm))
    assert stored.moved_from(first).movement_from == first and stored.moved_from(END) is None
    assert stored.segments["customers"].tolist() == live.segments["customers"].tolist()
    assert stored.cohorts.sizes["customers"].sum() == live.cohorts.sizes["customers"].sum()
    # Last year's equal the same computation made now, as of its end, with the movement over the year.
    with vendor_engine(vendor_settings(), (v,)).connect() as vconn:
        last = CS.fetch_stored_vendor_scores(vconn, v, "last_year")
        live_year = CS.compute_scores(vconn, Filters(Period(year_end, year_end), dims=(("vendor_id", (v,)),)),
                                      year_end, previous=date(year_end.year - 1, 12, 31), tz="UTC",
                                      customer_records=False)
    assert (last.as_of, last.movement_from, last.customers) == (year_end, live_year.movement_from, live_year.customers)
    assert last.segments["customers"].tolist() == live_year.segments["customers"].tolist()
    assert last.movement.equals(live_year.movement)
    # The next night: yesterday's again for every vendor; last year's only after a change to its days.
    with eng.begin() as conn:
        assert "(13 as of yesterday, 0 as of" in jobs.vendor_customer_scores_job(conn, NOW + timedelta(days=1))
        conn.execute(sa.text("UPDATE mart.order_items SET refunded_amount = refunded_amount + 1 WHERE (order_id, "
                             "line_no) = (SELECT i.order_id, i.line_no FROM mart.order_items i JOIN mart.orders o "
                             "USING (order_id) WHERE o.ordered_at < :y AND i.vendor_id = :v LIMIT 1)"),
                     {"y": f"{year_end} 12:00+00", "v": v})
        refresh_rollups(conn, timezone="UTC")
        assert "(13 as of yesterday, 13 as of" in jobs.vendor_customer_scores_job(conn, NOW + timedelta(days=2))
    # The page draws the kept scores, a thin vendor's too (its fit may hold no numbers).
    import components.loaders as loaders
    from tests.apptest import open_url, start, submit_login, texts
    monkeypatch = pytest.MonkeyPatch()
    try:
        monkeypatch.setattr(loaders, "local_today", lambda: END + timedelta(days=1))
        monkeypatch.setattr(loaders, "local_today", lambda: END + timedelta(days=3))   # the night after the last run
        for who in (vendors[0], vendors[11]):
            at = open_url(submit_login(start(monkeypatch, world["url"]), f"v{who}", PASSWORD), "customers")
            assert not at.exception, (who, at.exception)
            assert "Scores from the nightly run of " in texts(at), who
        at.sidebar.selectbox(key="cu_period").set_value("last_year").run()
        assert not at.exception, at.exception
        assert f"as of {year_end:%d %b %Y}" in texts(at) and "Scores from the nightly run of " in texts(at)
    finally:
        monkeypatch.undo()
