"""The scheduler while one export runs long: a real scheduler process (one-second tick and
heartbeat, a 10 s lease) is probed while idle, then while it exports a saved query whose statement
waits 30 s in PostgreSQL before its rows come (a CSV, so the COPY path). A probe makes an alert
rule due and times how long until the scheduler has evaluated it; the heartbeat's age is sampled
throughout. Before issue 20 the export's COPY held Python's GIL: the heartbeat and the alerts
stopped for the whole 30 s. Other users' alert rules are paused meanwhile.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import sqlalchemy as sa

from data import auth
from data.saved_queries import save_query
from reports import alerts, exports

OWNER = "bench_scheduler"
SCHEDULER_BEGIN, SCHEDULER_END = "<!-- scheduler:begin -->", "<!-- scheduler:end -->"
EXPORT_WAIT_S = 30
IDLE_S = 15
ROOT = Path(__file__).resolve().parent.parent
# Sleeps as its owner (the analysts' role may not), then returns three rows: a statement that keeps
# the server busy for a known time before its first row, as a slow report's query does.
FUNCTION = "mart.bench_slow_rows"
CREATE = f"""CREATE OR REPLACE FUNCTION {FUNCTION}(seconds float8) RETURNS SETOF int LANGUAGE sql SECURITY DEFINER
             AS $$ SELECT g FROM pg_sleep(seconds), generate_series(1, 3) g $$"""


def _setup(conn) -> tuple[int, int]:
    """The bench user, the slow saved query and a muted alert rule; returns (query id, rule id)."""
    if auth.fetch_user(conn, OWNER) is None:
        auth.create_user(conn, OWNER, auth.generate_password(OWNER), "analyst", actor="bench")
    conn.execute(sa.text(CREATE))
    conn.execute(sa.text("DELETE FROM app.alert_rules WHERE owner = :o"), {"o": OWNER})
    conn.execute(sa.text("DELETE FROM app.saved_queries WHERE owner = :o"), {"o": OWNER})
    qid = save_query(conn, OWNER, "Slow report", f"SELECT n FROM {FUNCTION}({{{{seconds:number}}}}) n")
    ping = save_query(conn, OWNER, "Ping", "SELECT 1 AS n")
    rid = alerts.save_rule(conn, OWNER, name="Probe", source="query", query_id=ping, condition="above", threshold=0,
                           interval_minutes=60, recipients="probe@example.com")
    # Muted: evaluated and recorded, nothing sent.
    conn.execute(sa.text("UPDATE app.alert_rules SET muted_until = now() + interval '1 day', "
                         "next_eval_at = now() + interval '1 day' WHERE rule_id = :r"), {"r": rid})
    return qid, rid


def _probe(engine, rule_id: int, worker: str, until) -> dict:
    """Makes the rule due, waits until it was evaluated, again and again until until() is true;
    samples the heartbeat's age all along. Returns latencies and the oldest heartbeat seen."""
    latencies, ages = [], []
    while not until():
        with engine.begin() as conn:
            due = conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = now() WHERE rule_id = :r "
                                       "RETURNING now()"), {"r": rule_id}).scalar()
        asked = time.monotonic()
        while True:
            with engine.connect() as conn:
                done = conn.execute(sa.text("SELECT last_evaluated_at >= :t FROM app.alert_rules WHERE rule_id = :r"),
                                    {"t": due, "r": rule_id}).scalar()
                ages.append(float(conn.execute(sa.text(
                    "SELECT extract(epoch FROM now() - beat_at) FROM app.scheduler_heartbeat WHERE worker = :w"),
                    {"w": worker}).scalar() or 0))
            if done or time.monotonic() - asked > 120:
                break
            time.sleep(0.1)
        latencies.append(time.monotonic() - asked)
    return {"probes": len(latencies), "latency_median_s": statistics.median(latencies),
            "latency_max_s": max(latencies), "heartbeat_max_age_s": max(ages)}


def bench_scheduler(url: str, *, log: Callable[[str], None]) -> dict:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        qid, rid = _setup(conn)
        # Other rules (the alerts bench's thousand) would make every tick seconds long, idle or
        # not: paused for the measurement, resumed after.
        paused = conn.execute(sa.text("UPDATE app.alert_rules SET paused = true WHERE owner <> :o AND NOT paused "
                                      "RETURNING rule_id"), {"o": OWNER}).scalars().all()
        backlog = conn.execute(sa.text("SELECT count(*) FROM app.outbox WHERE status IN ('pending', 'sending')")).scalar()
    export_dir = Path(tempfile.mkdtemp(prefix="bench_scheduler_"))
    env = {**os.environ, "DATABASE_URL": url, "APP_TIMEZONE": "UTC", "SCHEDULER_TICK_SECONDS": "1",
           "HEARTBEAT_SECONDS": "1", "JOB_LEASE_SECONDS": "10", "ROLLUP_REFRESH_SECONDS": "3600",
           "CUSTOMER_SCORES_AT": "23:59", "FORECASTS_AT": "23:59", "EXPORT_DIR": str(export_dir),
           "SMTP_HOST": "", "AUTH_COOKIE_KEY": secrets.token_urlsafe(32)}
    proc = subprocess.Popen([sys.executable, "-m", "reports.scheduler"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = f"{socket.gethostname()}:{proc.pid}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(sa.text("SELECT 1 FROM app.scheduler_heartbeat WHERE worker = :w "
                                        "AND beat_at > now() - interval '2 seconds'"), {"w": worker}).first():
                    break
            time.sleep(0.2)
        started = time.monotonic()
        idle = _probe(engine, rid, worker, lambda: time.monotonic() - started > IDLE_S)
        with engine.begin() as conn:
            eid = exports.request_export(conn, OWNER, "saved_query",
                                         {"query_id": qid, "query_params": {"seconds": EXPORT_WAIT_S}}, "csv")

        def status() -> str:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT status FROM app.exports WHERE export_id = :e"), {"e": eid}).scalar()
        while status() == "queued":
            time.sleep(0.05)
        began = time.monotonic()
        during = _probe(engine, rid, worker, lambda: status() not in ("queued", "running"))
        took = time.monotonic() - began
        with engine.connect() as conn:
            export = conn.execute(sa.text("SELECT status, attempts, rows FROM app.exports WHERE export_id = :e"),
                                  {"e": eid}).one()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM app.exports WHERE owner = :o"), {"o": OWNER})
            conn.execute(sa.text("DELETE FROM app.alert_rules WHERE owner = :o"), {"o": OWNER})
            conn.execute(sa.text("DELETE FROM app.saved_queries WHERE owner = :o"), {"o": OWNER})
            conn.execute(sa.text(f"DROP FUNCTION IF EXISTS {FUNCTION}(float8)"))
            conn.execute(sa.text("UPDATE app.alert_rules SET paused = false WHERE rule_id = ANY(:ids)"),
                         {"ids": list(paused)})
        engine.dispose()
        for f in export_dir.glob("*"):
            f.unlink()
        export_dir.rmdir()
    out = {"idle": idle, "during": during, "export_s": took, "export_status": export.status,
           "export_attempts": export.attempts, "export_rows": export.rows, "backlog": backlog}
    log(f"  scheduler: idle alert latency {idle['latency_median_s']:.2f} s (heartbeat ≤ "
        f"{idle['heartbeat_max_age_s']:.1f} s); during a {EXPORT_WAIT_S} s export "
        f"{during['latency_median_s']:.2f} s, max {during['latency_max_s']:.2f} s (heartbeat ≤ "
        f"{during['heartbeat_max_age_s']:.1f} s); export {export.status} after {took:.1f} s, {export.attempts} attempt(s)")
    return out


def scheduler_section(results: dict, n: int, measured: str) -> str:
    """The RESULTS.md section: idle against during a long export, side by side."""
    about = " ".join(__doc__.split())
    lines = [SCHEDULER_BEGIN, "## The scheduler during a long export", "",
             f"{measured} {about} Database: the {n:,}-line bench database; nothing else ran.", "",
             "| | probes | alert evaluated after (median) | slowest | heartbeat's oldest age |",
             "|---|---:|---:|---:|---:|"]
    for label, key in (("idle", "idle"), (f"during a {EXPORT_WAIT_S} s export", "during")):
        r = results[key]
        lines.append(f"| {label} | {r['probes']} | {r['latency_median_s']:.2f} s | {r['latency_max_s']:.2f} s | "
                     f"{r['heartbeat_max_age_s']:.1f} s |")
    lines += ["", f"The export was {results['export_status']} after {results['export_s']:.1f} s, in "
              f"{results['export_attempts']} attempt(s), {results['export_rows']} rows (one-second tick and heartbeat; "
              "an alert is picked up at the next tick, so up to about a second is the loop itself). The outbox held "
              f"{results['backlog']:,} deliveries waiting (the alerts bench's, with no mail server set): their "
              "retries ran on the delivery worker all along; when deliveries still ran on the main loop, the idle "
              "latency was 7.0–7.4 s and the heartbeat up to 7.6 s old.", SCHEDULER_END]
    return "\n".join(lines) + "\n"
