"""One report, every vendor: a monthly "vendor's own report" (PDF) scheduled to every vendor, at 1M and
10M order lines.

Every vendor that is not closed gets a vendor user and its login role (made once per bench
database, before the clock starts, with one bcrypt hash for all: the benchmark measures the
reports, not password hashing). An admin's schedule with
the fan-out `every_vendor` is run now (`reports.schedules.run_now`: one run, one export and the
vendor's login role each), then two threads make the exports as the scheduler's two export workers
do (`reports.exports.run_exports`), each on its vendor's own role, and queue one mail per vendor
in the outbox (no SMTP server: the mails wait there, which is what the run itself costs). The
process's memory is sampled as the exports go: flat means the last quarter's peak is no higher
than the first quarter's beyond a small margin.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import datetime, timedelta
from typing import Callable

import bcrypt
import psutil
import sqlalchemy as sa

from bench.common import section_head
from data.auth import create_user, fetch_user
from data.settings import load_settings
from data.vendor_scope import ensure_single_vendor_roles
from reports import alert_evaluation, alerts, exports, schedules

FANOUT_BEGIN, FANOUT_END = "<!-- fanout:begin -->", "<!-- fanout:end -->"
ADMIN = "bench-admin"
TARGET_S = 600
BENCH_PASSWORD = "Bench-fanout-admin-2026"


def _vendor_users(conn) -> int:
    """Makes a vendor user (with an email) for every vendor that is not closed and has none; returns
    how many vendors have one."""
    digest = bcrypt.hashpw(BENCH_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    conn.execute(sa.text("""
        INSERT INTO app.users (username, name, email, role, password_hash)
        SELECT 'bench-vendor-' || v.vendor_id, v.name, 'vendor' || v.vendor_id || '@bench.example', 'vendor', :h
        FROM mart.vendors v WHERE v.status <> 'closed'
        ON CONFLICT (username) DO NOTHING"""), {"h": digest})
    conn.execute(sa.text("""
        INSERT INTO app.user_vendors (user_id, vendor_id, bound_by)
        SELECT u.user_id, substr(u.username, 14)::int, 'bench' FROM app.users u
        WHERE u.username LIKE 'bench-vendor-%' ON CONFLICT DO NOTHING"""))
    # Binding a user makes its login role (data.vendor_users): so here, before the clock starts.
    ensure_single_vendor_roles(conn, conn.execute(sa.text("SELECT DISTINCT vendor_id FROM app.user_vendors"))
                               .scalars().all(), load_settings())
    return conn.execute(sa.text("SELECT count(DISTINCT vendor_id) FROM app.user_vendors")).scalar()


def _clean(conn) -> None:
    """Leaves the bench database as before a run (also after one that stopped half-way): no schedule,
    run, export row, alert rule or waiting mail of the benchmark's admin."""
    runs = "SELECT run_id FROM app.schedule_runs r JOIN app.schedules s USING (schedule_id) WHERE s.owner = :o"
    conn.execute(sa.text(f"DELETE FROM app.outbox WHERE source IN (SELECT 'schedule_run:' || run_id FROM ({runs}) x)"),
                 {"o": ADMIN})
    conn.execute(sa.text("DELETE FROM app.outbox WHERE source IN (SELECT 'alert:' || rule_id FROM app.alert_rules "
                         "WHERE owner = :o)"), {"o": ADMIN})
    conn.execute(sa.text("DELETE FROM app.alert_rules WHERE owner = :o"), {"o": ADMIN})
    conn.execute(sa.text("DELETE FROM app.schedules WHERE owner = :o"), {"o": ADMIN})
    conn.execute(sa.text("DELETE FROM app.exports WHERE owner = :o"), {"o": ADMIN})


def bench_fanout(url: str, log: Callable[[str], None] = print) -> dict:
    """Runs the schedule to every vendor once; returns {"vendors", "plan_s", "exports_s", "total_s",
    "done", "failed", "mails", "rss": [MiB at each quarter of the exports], "peak": MiB}."""
    os.environ["DATABASE_URL"] = url
    export_dir = tempfile.mkdtemp(prefix="bench-fanout-")
    os.environ["EXPORT_DIR"] = export_dir
    settings = load_settings()
    engine = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    with engine.begin() as conn:
        if fetch_user(conn, ADMIN) is None:
            create_user(conn, ADMIN, BENCH_PASSWORD, "admin")
        vendors = _vendor_users(conn)
        _clean(conn)
        sid = schedules.save_schedule(
            conn, ADMIN, is_admin=True, name="Your month", template="vendor_report", spec={"period": "last_month"},
            fmt="pdf", cadence={"kind": "monthly", "at": "07:00", "day": 1}, tz="UTC", recipients="", webhook_url="",
            fan_out=schedules.EVERY_VENDOR, fan_values=None)
    me = psutil.Process()
    started = time.perf_counter()
    with engine.begin() as conn:
        queued = schedules.run_now(conn, ADMIN, sid, is_admin=True, settings=settings)
    planned = time.perf_counter()
    log(f"  fanout: {queued:,} runs queued in {planned - started:.1f} s ({vendors:,} vendors with users)")
    samples: list[tuple[int, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with engine.connect() as conn:
                made = conn.execute(sa.text("SELECT count(*) FROM app.schedule_runs WHERE schedule_id = :s AND "
                                            "status <> 'running'"), {"s": sid}).scalar()
            samples.append((made, me.memory_info().rss / 2**20))
            done.wait(2.0)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    workers = [threading.Thread(target=exports.run_exports, args=(engine, f"bench-{i}"),
                                kwargs={"settings": settings, "limit": 10**6}) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    finished = time.perf_counter()
    done.set()
    watcher.join()
    with engine.begin() as conn:
        runs = dict(conn.execute(sa.text("SELECT status, count(*) FROM app.schedule_runs WHERE schedule_id = :s "
                                         "GROUP BY 1"), {"s": sid}).all())
        mails = conn.execute(sa.text("SELECT count(*) FROM app.outbox WHERE source IN (SELECT 'schedule_run:' || "
                                     "run_id FROM app.schedule_runs WHERE schedule_id = :s)"), {"s": sid}).scalar()
        _clean(conn)
    alert = _alert_ticks(engine, settings, log)
    with engine.begin() as conn:
        _clean(conn)
    engine.dispose()
    for f in os.listdir(export_dir):
        os.unlink(os.path.join(export_dir, f))
    os.rmdir(export_dir)
    quarters = [max((rss for made, rss in samples if made <= queued * q / 4), default=0.0) for q in (1, 2, 3, 4)]
    out = {"vendors": vendors, "plan_s": planned - started, "exports_s": finished - planned,
           "total_s": finished - started, "done": runs.get("done", 0), "failed": runs.get("failed", 0),
           "mails": mails, "rss": quarters, "peak": max((rss for _, rss in samples), default=0.0), **alert}
    log(f"  fanout: {out['done']:,} done, {out['failed']} failed, {mails:,} mails queued in {out['total_s']:.0f} s; "
        f"RSS by quarter {', '.join(f'{r:.0f}' for r in quarters)} MiB")
    return out


def _alert_ticks(engine, settings, log: Callable[[str], None]) -> dict:
    """Times two alert ticks of an admin's rule sent to every vendor (GMV over the last 7 days above
    0, fanned out by vendor): the first, where every vendor with sales fires and its users' mails are
    queued, and a steady one a minute later (each vendor still firing, nothing sent). Each tick logs
    in as every vendor's role (reports.alert_evaluation)."""
    with engine.begin() as conn:
        alerts.save_rule(conn, ADMIN, is_admin=True, name="Your week's GMV", metric="gmv", window="last_7d",
                         condition="above", threshold=0, fan_out="vendor_id", interval_minutes=60, recipients="",
                         webhook_url="", to_vendors=True)
        now = conn.execute(sa.text("SELECT date_trunc('milliseconds', now())")).scalar()
    out = {}
    for tick, at in (("first", now), ("steady", now + timedelta(minutes=1))):
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE app.alert_rules SET next_eval_at = :at WHERE owner = :o"),
                         {"at": at, "o": ADMIN})
        started = time.perf_counter()
        counts = alert_evaluation.evaluate_due(engine, now=at, settings=settings)
        out[f"alert_{tick}_s"] = time.perf_counter() - started
        out[f"alert_{tick}_mails"] = counts["notifications"]
    with engine.connect() as conn:
        out["alert_firing"] = conn.execute(sa.text(
            "SELECT count(*) FROM app.alert_instances i JOIN app.alert_rules r USING (rule_id) WHERE r.owner = :o "
            "AND i.state = 'firing'"), {"o": ADMIN}).scalar()
    log(f"  fanout: an alert to every vendor: first tick {out['alert_first_s']:.1f} s "
        f"({out['alert_first_mails']:,} mails), steady tick {out['alert_steady_s']:.1f} s")
    return out


def fanout_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(
        FANOUT_BEGIN, "One report, every vendor: a monthly PDF to each vendor with users", started,
        "An admin's schedule of \"A vendor's own report\" (last month, PDF) with the fan-out `every_vendor`, run now: "
        "one run per vendor with a vendor user (every vendor that is not closed), each built on that vendor's own "
        "login role by two export threads as the scheduler's two export workers, and one mail per vendor queued in "
        "the outbox (no SMTP server in the benchmark). Memory: the process's RSS, its highest in each quarter of "
        "the exports.",
        f"| order lines | vendors | planned | exports | total | done / failed | mails queued | RSS by quarter | "
        f"target (≤ {TARGET_S // 60} min, flat) |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for n in sizes:
        r = results.get(n)
        if not r:
            continue
        flat = r["rss"][3] <= r["rss"][0] * 1.25 + 20
        ok = r["total_s"] <= TARGET_S and flat and not r["failed"]
        lines.append(f"| {n:,} | {r['vendors']:,} | {r['plan_s']:.1f} s | {r['exports_s']:.0f} s | "
                     f"{r['total_s'] / 60:.1f} min | {r['done']:,} / {r['failed']} | {r['mails']:,} | "
                     f"{' → '.join(f'{x:.0f}' for x in r['rss'])} MiB | {'✅' if ok else '❌'} |")
    ticks = [n for n in sizes if "alert_first_s" in results.get(n, {})]
    if ticks:
        lines += ["", "An admin's alert rule sent to every vendor (GMV over the last 7 days above 0, fanned out by "
                  "vendor), evaluated for each vendor with users on that vendor's own login role: the first tick "
                  "(every vendor with sales fires; its users' mails queued) and a steady tick a minute later "
                  "(nothing sent).", "",
                  "| order lines | vendors watched | firing | first tick | mails queued | steady tick |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for n in ticks:
            r = results[n]
            lines.append(f"| {n:,} | {r['vendors']:,} | {r['alert_firing']:,} | {r['alert_first_s']:.1f} s | "
                         f"{r['alert_first_mails']:,} | {r['alert_steady_s']:.1f} s |")
    return "\n".join(lines + [FANOUT_END]) + "\n"
