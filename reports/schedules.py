"""Schedules: a report template (or saved query) sent at a cadence, in a time zone, to email
recipients and/or a webhook, optionally once per vendor or category value, or (an admin's, of a
vendor-scoped template) to every vendor: one run per vendor with enabled vendor users, made on
that vendor's own database role and mailed to its users only (EVERY_VENDOR).

The truth is in PostgreSQL. A scheduler tick (plan_due) locks the due schedules with FOR UPDATE
SKIP LOCKED, works out the cron slots since the last one (croniter, in the schedule's zone), runs
only the latest (one app.schedule_runs row per fan-out value, unique on (schedule, slot, value),
with its app.exports row queued) and records the missed ones as skipped. The export queue does the
work (reports.exports); when an export finishes, finish_run marks its run done and puts one
delivery per recipient and webhook in the outbox, in the same transaction.
"""
from __future__ import annotations

import html
import json
import logging
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import sqlalchemy as sa
from croniter import CroniterBadDateError, croniter
from sqlalchemy.engine import Connection

from data.audit import record
from data.auth import IS_VENDOR_USER, User, fetch_user
from data.db import frame
from data.saved_queries import fetch_visible_query
from data.settings import Settings, load_settings, valid_email
from data.vendor_scope import ensure_single_vendor_roles
from data.vendor_users import fetch_bound_vendors, fetch_vendors_emails
from reports import owned
from reports.delivery import DeliveryError, check_webhook_url, enqueue
from reports.templates import FAN_OUT, TEMPLATES, Report, ReportError, check_spec

log = logging.getLogger("reports.schedules")
# The fan-out that reaches every vendor with vendor users (besides FAN_OUT's values typed by hand).
EVERY_VENDOR = "every_vendor"
FAN_OUTS = (*FAN_OUT, EVERY_VENDOR)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CADENCE_KINDS = ("daily", "weekly", "monthly", "cron")
MAX_SKIPPED_RECORDED = 100


class ScheduleError(ValueError):
    """A schedule field is wrong; the message starts with the field's name."""


# --- validation ------------------------------------------------------------------------------------

def _clock(at: str) -> tuple[int, int]:
    hh, sep, mm = str(at or "").strip().partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and int(hh) < 24 and int(mm) < 60):
        raise ScheduleError(f"time: {at!r} is not a time of day; write HH:MM, such as 07:30")
    return int(hh), int(mm)


def cadence_cron(cadence: dict, *, min_minutes: int | None = None) -> str:
    """Returns the cron expression of a cadence {kind: daily|weekly|monthly|cron, at: "HH:MM",
    weekday: 0-6 (Monday first), day: 1-28, cron: "…"}; raises ScheduleError, also for a cron
    expression that never comes (31 February) or comes more often than every min_minutes
    (MIN_SCHEDULE_MINUTES)."""
    kind = (cadence or {}).get("kind")
    if kind not in CADENCE_KINDS:
        raise ScheduleError(f"cadence: choose one of {', '.join(CADENCE_KINDS)}")
    if kind == "cron":
        expr = " ".join(str(cadence.get("cron") or "").split())
        if len(expr.split()) != 5 or not croniter.is_valid(expr):
            raise ScheduleError(f"cron: {expr!r} is not a cron expression of five fields "
                                "(minute hour day-of-month month day-of-week), such as '0 7 * * 1-5'")
        least = load_settings().min_schedule_minutes if min_minutes is None else min_minutes
        gap = _shortest_gap(expr)
        if gap is None:
            raise ScheduleError(f"cron: {expr!r} never comes (a day no month has, such as 31 February)")
        if gap < least * 60:
            raise ScheduleError(f"cron: {expr!r} runs {gap // 60:g} minutes apart; at most every {least} minutes "
                                "(MIN_SCHEDULE_MINUTES, set by an admin)")
        return expr
    hh, mm = _clock(cadence.get("at"))
    if kind == "daily":
        return f"{mm} {hh} * * *"
    if kind == "weekly":
        day = cadence.get("weekday")
        if not isinstance(day, int) or not 0 <= day <= 6:
            raise ScheduleError("weekday: choose a day of the week")
        return f"{mm} {hh} * * {(day + 1) % 7}"   # cron counts from Sunday = 0
    day = cadence.get("day")
    if not isinstance(day, int) or not 1 <= day <= 28:
        raise ScheduleError("day: choose a day of the month from 1 to 28 (every month has those)")
    return f"{mm} {hh} {day} * *"


def _shortest_gap(expr: str, most: int = 20_000) -> int | None:
    """The shortest time in seconds between two slots of the expression over a year from 1 January
    (a cron's fields repeat within a year; a gap below a minute would be found in the first
    slots, so at most `most` are read), in UTC; None when it never comes."""
    start = datetime(2027, 1, 1)
    it = croniter(expr, start)
    times: list[datetime] = []
    try:
        while len(times) < 2 or (len(times) < most and (times[-1] - start).days <= 366):
            times.append(it.get_next(datetime))
    except CroniterBadDateError:
        if len(times) < 2:
            return None
    return int(min((b - a).total_seconds() for a, b in zip(times, times[1:])))


def check_recipients(count: int, what: str = "recipients") -> None:
    """Raises ScheduleError when count addresses exceed MAX_RECIPIENTS."""
    most = load_settings().max_recipients
    if count > most:
        raise ScheduleError(f"{what}: {count:,} email addresses; at most {most:,} (MAX_RECIPIENTS, set by an admin)")


def describe_cadence(cadence: dict, tz: str) -> str:
    kind = cadence.get("kind")
    if kind == "daily":
        return f"every day at {cadence['at']} ({tz})"
    if kind == "weekly":
        return f"every {WEEKDAYS[cadence['weekday']]} at {cadence['at']} ({tz})"
    if kind == "monthly":
        return f"on day {cadence['day']} of every month at {cadence['at']} ({tz})"
    return f"cron {cadence.get('cron')} ({tz})"


def parse_recipients(text: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Returns the addresses in text (commas, semicolons, spaces or new lines between them),
    lower-cased and without repeats; raises ScheduleError naming the first bad one."""
    items = text if isinstance(text, (list, tuple)) else str(text or "").replace(";", ",").replace("\n", ",").split(",")
    out: list[str] = []
    for raw in items:
        for addr in str(raw).split():
            addr = addr.strip().strip("<>").lower()
            if not addr:
                continue
            if not valid_email(addr):
                raise ScheduleError(f"recipients: {addr!r} is not an email address")
            if addr not in out:
                out.append(addr)
    return out


def check_webhook(url: str) -> str:
    url = (url or "").strip()
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok \
            or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ScheduleError(f"webhook: {url!r} is not an http(s) URL")
    try:
        check_webhook_url(url, load_settings())
    except DeliveryError as ex:
        raise ScheduleError(str(ex)) from None
    return url


def _wall(t: datetime, zone: ZoneInfo) -> datetime:
    return t.astimezone(zone).replace(tzinfo=None)


def next_slot(cron: str, tz: str, after: datetime) -> datetime:
    """The first slot strictly after `after`, as an aware UTC time. When clocks go back, a local
    time happens twice; croniter returns both, and the second is skipped: a 02:30 report runs
    once on that night too."""
    zone = ZoneInfo(tz)
    it = croniter(cron, after.astimezone(zone))
    while True:
        slot = it.get_next(datetime).astimezone(timezone.utc)
        if _wall(slot, zone) != _wall(after, zone):
            return slot


def check_schedule(conn: Connection, owner: str, *, name: str, template: str, spec: dict, fmt: str, cadence: dict,
                   tz: str, recipients: str | list[str] | tuple[str, ...] | None, webhook_url: str,
                   fan_out: str | None, fan_values: dict | None, is_admin: bool = False) -> dict:
    """Returns the schedule's fields cleaned; raises ScheduleError (or ReportError) naming the field.
    is_admin: the one saving it is an admin (only admins send to every vendor)."""
    name = (name or "").strip()
    if not name:
        raise ScheduleError("name: give the schedule a name")
    try:
        spec = check_spec(template, spec, fmt)
    except ReportError as ex:
        raise ScheduleError(str(ex)) from None
    if template == "saved_query":
        if fetch_visible_query(conn, owner, spec["query_id"]) is None:
            raise ScheduleError("query: choose one of your saved queries or a shared one")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"time zone: {tz!r} is not a time zone name (such as Europe/Berlin)") from None
    cron = cadence_cron(cadence)
    people = parse_recipients(recipients)
    hook = check_webhook(webhook_url)
    fans: dict[str, list[str]] = {}
    user = fetch_user(conn, owner)
    if user is not None and user.is_vendor:
        _check_vendor_owned(conn, user, template, spec, people, hook, fan_out)
    elif fan_out == EVERY_VENDOR:
        _check_every_vendor(template, spec, people, hook, is_admin)
    elif fan_out:
        if fan_out not in FAN_OUT:
            raise ScheduleError(f"fan-out: choose {' or '.join(FAN_OUTS)}")
        if not TEMPLATES[template].uses_filters:
            raise ScheduleError(f"fan-out: {TEMPLATES[template].label} has no filters to fan out over")
        for value, who in (fan_values or {}).items():
            value = str(value).strip()
            if fan_out == "vendor":
                if not value.isdigit() or conn.execute(sa.text("SELECT 1 FROM mart.vendors WHERE vendor_id = :v"),
                                                       {"v": int(value)}).first() is None:
                    raise ScheduleError(f"fan-out: {value!r} is not a vendor id (the number in the vendor list)")
            fans[value] = parse_recipients(who)
        if not fans:
            raise ScheduleError(f"fan-out: list the {fan_out} values to send, each with its recipients")
        if not hook and not any(fans.values()) and not people:
            raise ScheduleError("recipients: give each value recipients, or a webhook")
    elif not people and not hook:
        raise ScheduleError("recipients: give at least one email address or a webhook URL")
    check_recipients(len(people) + sum(len(who) for who in fans.values()))
    return dict(name=name, template=template, spec=spec, fmt=fmt, cadence=cadence, cron=cron, tz=tz,
                recipients=people, webhook_url=hook, fan_out=fan_out or None, fan_values=fans)


def _check_every_vendor(template: str, spec: dict, people: list[str], hook: str, is_admin: bool) -> None:
    """Raises ScheduleError unless a schedule to every vendor can be: an admin's, of a report that is
    made on each vendor's own role, reaching the vendors' users only, over no filter of its own."""
    if not is_admin:
        raise ScheduleError("fan-out: only an admin sends a report to every vendor")
    if not TEMPLATES[template].vendor_scoped:
        vendor_ones = ", ".join(t.label for t in TEMPLATES.values() if t.vendor_scoped)
        raise ScheduleError(f"fan-out: {TEMPLATES[template].label} is about the whole marketplace; every vendor "
                            f"gets only a report about itself ({vendor_ones})")
    if people or hook:
        raise ScheduleError("recipients: a report to every vendor goes to each vendor's own users (their email "
                            "on the admin page); leave the recipients and the webhook empty")
    if spec.get("filters"):
        raise ScheduleError("filters: a report to every vendor is about each vendor whole; clear the filters")


def _check_vendor_owned(conn: Connection, user: User, template: str, spec: dict, people: list[str], hook: str,
                        fan_out: str | None) -> None:
    """Raises ScheduleError unless a vendor user's schedule can be: their own report (made on their
    own database role when it runs), by email to their own vendors' users only (the app sends no
    vendor's figures anywhere else), without a fan-out or a webhook."""
    if not TEMPLATES[template].vendor_scoped:
        vendor_ones = ", ".join(t.label for t in TEMPLATES.values() if t.vendor_scoped)
        raise ScheduleError(f"report: a vendor user schedules their own report ({vendor_ones})")
    if fan_out:
        raise ScheduleError("fan-out: your report is about your own vendors; leave the fan-out empty")
    if hook:
        raise ScheduleError("webhook: your reports go by email to your vendors' users; leave the webhook empty")
    wanted = (spec.get("filters") or {}).get("vendor_id") or []
    if not set(int(v) for v in wanted) <= set(user.vendor_ids):
        raise ScheduleError("filters: choose one of your own vendors")
    check_vendor_recipients(conn, user, people)


def check_vendor_recipients(conn: Connection, user: User, people: list[str]) -> None:
    """Raises ScheduleError unless people are one or more of the emails of the vendor user's vendors'
    enabled users: whom a vendor user's reports and alerts may reach (the app sends no vendor's
    figures anywhere else)."""
    allowed = {e for emails in fetch_vendors_emails(conn, list(user.vendor_ids)).values() for e in emails}
    strangers = [p for p in people if p not in allowed]
    if strangers:
        raise ScheduleError(f"recipients: {', '.join(strangers)} is not the email of a user of your vendors "
                            "(the marketplace's admin sets users' emails)")
    if not people:
        raise ScheduleError("recipients: give at least one email address of your vendors' users")


# --- saving ----------------------------------------------------------------------------------------

def save_schedule(conn: Connection, owner: str, *, schedule_id: int | None = None, is_admin: bool = False,
                  now: datetime | None = None, **fields: Any) -> int:
    """Creates or updates a schedule (owner's, or anyone's for an admin); returns its id."""
    if not owned.may_own(conn, owner, vendors=True):
        raise ScheduleError("schedule: scheduling reports needs the analyst or admin role, or a vendor user's")
    c = check_schedule(conn, owner, is_admin=owned.is_admin(conn, owner), **fields)
    now = now or datetime.now(timezone.utc)
    values = {"o": owner, "n": c["name"], "t": c["template"], "p": json.dumps(c["spec"]), "f": c["fmt"],
              "cad": json.dumps(c["cadence"]), "cron": c["cron"], "tz": c["tz"], "r": c["recipients"],
              "w": c["webhook_url"], "fo": c["fan_out"], "fv": json.dumps(c["fan_values"]),
              "next": next_slot(c["cron"], c["tz"], now)}
    try:
        with conn.begin_nested():
            if schedule_id is None:
                sid = conn.execute(sa.text("""
                    INSERT INTO app.schedules (owner, name, template, params, format, cadence, cron, timezone,
                                               recipients, webhook_url, fan_out, fan_values, next_run_at)
                    VALUES (:o, :n, :t, CAST(:p AS jsonb), :f, CAST(:cad AS jsonb), :cron, :tz, :r, :w, :fo,
                            CAST(:fv AS jsonb), :next)
                    RETURNING schedule_id"""), values).scalar()
            else:
                sid = conn.execute(sa.text("""
                    UPDATE app.schedules SET name = :n, template = :t, params = CAST(:p AS jsonb), format = :f,
                           cadence = CAST(:cad AS jsonb), cron = :cron, timezone = :tz, recipients = :r,
                           webhook_url = :w, fan_out = :fo, fan_values = CAST(:fv AS jsonb), next_run_at = :next,
                           updated_at = now()
                    WHERE schedule_id = :id AND (owner = :o OR :admin) RETURNING schedule_id"""),
                    {**values, "id": schedule_id, "admin": is_admin}).scalar()
                if sid is None:
                    raise ScheduleError("schedule: only its owner or an admin can change it")
    except sa.exc.IntegrityError:
        raise ScheduleError(f"name: you already have a schedule called {c['name']!r}") from None
    record(conn, "schedule.save", actor=owner, target=str(sid), detail={"name": c["name"], "cron": c["cron"]})
    return int(sid)


def set_paused(conn: Connection, user: str, schedule_id: int, paused: bool, *, is_admin: bool = False,
               now: datetime | None = None) -> bool:
    """Pauses or resumes; a resumed schedule starts from its next slot (paused slots are not caught up)."""
    row = conn.execute(sa.text("SELECT cron, timezone FROM app.schedules WHERE schedule_id = :id"),
                       {"id": schedule_id}).first()
    if row is None:
        return False
    nxt = next_slot(row.cron, row.timezone, now or datetime.now(timezone.utc))
    return owned.set_paused(conn, "schedules", user, schedule_id, paused, is_admin=is_admin,
                            next_at="next_run_at = :n", params={"n": nxt})


def delete_schedule(conn: Connection, user: str, schedule_id: int, *, is_admin: bool = False) -> bool:
    """Deletes a schedule (its runs go with it)."""
    return owned.delete_owned(conn, "schedules", user, schedule_id, is_admin=is_admin)


def fetch_schedules(conn: Connection, user: str | None = None) -> pd.DataFrame:
    """The user's schedules (everyone's when user is None), with their latest run."""
    return frame(conn.execute(sa.text("""
        SELECT s.schedule_id, s.owner, s.name, s.template, s.params, s.format, s.cadence, s.cron, s.timezone,
               s.recipients, s.webhook_url, s.fan_out, s.fan_values, s.paused, s.next_run_at,
               r.slot AS last_slot, r.status AS last_status, r.message AS last_message
        FROM app.schedules s
        LEFT JOIN LATERAL (SELECT slot, status, message FROM app.schedule_runs
                           WHERE schedule_id = s.schedule_id AND status <> 'skipped'
                           ORDER BY slot DESC, run_id DESC LIMIT 1) r ON true
        WHERE CAST(:u AS text) IS NULL OR s.owner = :u
        ORDER BY s.name"""), {"u": user}))


def fetch_run_history(conn: Connection, schedule_id: int, limit: int = 100) -> pd.DataFrame:
    """Runs of a schedule, newest first, with their deliveries' states."""
    return frame(conn.execute(sa.text("""
        SELECT r.run_id, r.slot, r.fan_value, r.manual, r.status, r.message, r.finished_at, e.rows, e.bytes,
               d.delivered, d.waiting, d.failed_deliveries
        FROM app.schedule_runs r LEFT JOIN app.exports e USING (export_id)
        CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE o.status = 'sent') AS delivered,
                   count(*) FILTER (WHERE o.status IN ('pending', 'sending')) AS waiting,
                   count(*) FILTER (WHERE o.status = 'failed') AS failed_deliveries
            FROM app.outbox o WHERE o.source = 'schedule_run:' || r.run_id) d
        WHERE r.schedule_id = :id ORDER BY r.slot DESC, r.run_id DESC LIMIT :n"""), {"id": schedule_id, "n": limit}))


# --- running ---------------------------------------------------------------------------------------

def _queue_runs(conn: Connection, sched, slot: datetime, *, manual: bool, settings: Settings) -> int:
    """Inserts the slot's runs (one per fan-out value) with their queued exports; returns how many
    were new (0 when another scheduler queued this slot already)."""
    spec = dict(sched.params)
    fans = [("", None)] if not sched.fan_out else [(v, v) for v in sched.fan_values]
    if sched.fan_out == EVERY_VENDOR:
        if not owned.is_admin(conn, sched.owner):
            raise ScheduleError(f"fan-out: {sched.owner!r} is no longer an admin, and only an admin's schedule "
                                "reaches every vendor")
        fans = [(str(v), str(v)) for v in fetch_bound_vendors(conn)]
        # Each run is made on its vendor's own role: a vendor's users may be bound to more vendors
        # (another role), so the role of each vendor alone is made where it is missing.
        ensure_single_vendor_roles(conn, [int(v) for v, _ in fans], settings)
    scope = _vendor_owner_scope(conn, sched)
    made = 0
    for fan_value, value in fans:
        run_id = conn.execute(sa.text("""
            INSERT INTO app.schedule_runs (schedule_id, slot, fan_value, manual) VALUES (:s, :slot, :v, :m)
            ON CONFLICT (schedule_id, slot, fan_value) DO NOTHING RETURNING run_id"""),
            {"s": sched.schedule_id, "slot": slot, "v": fan_value, "m": manual}).scalar()
        if run_id is None:
            continue
        run_spec = dict(spec)
        title = sched.name
        if scope:
            run_spec["vendor_scope"] = scope
        if sched.fan_out == EVERY_VENDOR:
            run_spec["filters"] = {"vendor_id": [int(value)]}
            run_spec["vendor_scope"] = [int(value)]
            title = f"{sched.name} · {_fan_label(conn, 'vendor', value)}"
        elif value is not None:
            dim = FAN_OUT[sched.fan_out]
            run_spec["filters"] = {**(spec.get("filters") or {}), dim: [int(value) if dim == "vendor_id" else value]}
            title = f"{sched.name} · {_fan_label(conn, sched.fan_out, value)}"
        run_spec["title"] = title
        run_spec["as_of"] = slot.isoformat()
        export_id = conn.execute(sa.text("""
            INSERT INTO app.exports (owner, template, params, format, title, expires_at)
            VALUES (:o, :t, CAST(:p AS jsonb), :f, :title, now() + make_interval(days => :d)) RETURNING export_id"""),
            {"o": sched.owner, "t": sched.template, "p": json.dumps(run_spec), "f": sched.format, "title": title,
             "d": settings.export_expiry_days}).scalar()
        conn.execute(sa.text("UPDATE app.schedule_runs SET export_id = :e, status = 'running', started_at = now() "
                             "WHERE run_id = :r"), {"e": export_id, "r": run_id})
        made += 1
    return made


def _vendor_owner_scope(conn: Connection, sched) -> list[int] | None:
    """A vendor user's schedule: the vendors its runs are made for, as the database binds its owner
    now (None for the staff's). Raises ScheduleError when the owner is disabled or bound to none."""
    if not TEMPLATES[sched.template].vendor_scoped or sched.fan_out == EVERY_VENDOR:
        return None
    if not conn.execute(sa.text(f"SELECT {IS_VENDOR_USER.format(':u')}"), {"u": sched.owner}).scalar():
        return None
    user = fetch_user(conn, sched.owner)
    if user is None:
        raise ScheduleError(f"owner: {sched.owner!r} is disabled, and a vendor user's schedules stop with them")
    if not user.vendor_ids:
        raise ScheduleError(f"owner: {sched.owner!r} is bound to no vendor any more")
    wanted = [int(v) for v in (dict(sched.params).get("filters") or {}).get("vendor_id") or []]
    if not set(wanted) <= set(user.vendor_ids):
        raise ScheduleError(f"filters: {sched.owner!r} no longer sees vendor {', '.join(map(str, wanted))}")
    return list(user.vendor_ids)


def _fan_label(conn: Connection, fan_out: str, value: str) -> str:
    if fan_out == "vendor":
        name = conn.execute(sa.text("SELECT name FROM mart.vendors WHERE vendor_id = :v"), {"v": int(value)}).scalar()
        return name or f"vendor {value}"
    return str(value)


def plan_due(conn: Connection, *, now: datetime | None = None, settings: Settings | None = None) -> dict:
    """Queues the latest due slot of every due schedule (skipping locked ones: another scheduler
    has them) and records older missed slots as skipped; returns {"queued", "skipped"}."""
    s = settings or load_settings()
    now = now or datetime.now(timezone.utc)
    due = conn.execute(sa.text("""
        SELECT schedule_id, owner, name, template, params, format, cron, timezone, fan_out, fan_values, next_run_at
        FROM app.schedules WHERE NOT paused AND next_run_at <= :now
        ORDER BY next_run_at FOR UPDATE SKIP LOCKED"""), {"now": now}).all()
    queued = skipped = 0
    for sched in due:
        try:
            # One schedule's problem (data changed under it, a bug) must not hold up the others.
            with conn.begin_nested():
                q, k = _plan_one(conn, sched, now, s)
            queued, skipped = queued + q, skipped + k
        except Exception as ex:  # noqa: BLE001 - recorded on the schedule's run list, the tick goes on
            log.exception("schedule %s could not be planned", sched.schedule_id)
            with conn.begin_nested():
                conn.execute(sa.text("""
                    INSERT INTO app.schedule_runs (schedule_id, slot, status, message, finished_at)
                    VALUES (:s, :slot, 'failed', :m, now()) ON CONFLICT DO NOTHING"""),
                    {"s": sched.schedule_id, "slot": sched.next_run_at, "m": f"could not be planned: {ex}"[:2000]})
                conn.execute(sa.text("UPDATE app.schedules SET next_run_at = :n WHERE schedule_id = :id"),
                             {"n": next_slot(sched.cron, sched.timezone, now), "id": sched.schedule_id})
    return {"queued": queued, "skipped": skipped}


def _plan_one(conn: Connection, sched, now: datetime, s: Settings) -> tuple[int, int]:
    slots = [sched.next_run_at]
    while True:
        nxt = next_slot(sched.cron, sched.timezone, slots[-1])
        if nxt > now:
            break
        slots.append(nxt)
        if len(slots) > 10_000:   # a minutely cron after a long outage: enough is known
            slots = slots[-MAX_SKIPPED_RECORDED - 1:]
    skipped = 0
    for missed in slots[:-1][-MAX_SKIPPED_RECORDED:]:
        skipped += conn.execute(sa.text("""
            INSERT INTO app.schedule_runs (schedule_id, slot, status, message, finished_at)
            VALUES (:s, :slot, 'skipped', 'missed while no scheduler was running; the latest slot ran instead',
                    now())
            ON CONFLICT DO NOTHING"""), {"s": sched.schedule_id, "slot": missed}).rowcount
    queued = _queue_runs(conn, sched, slots[-1], manual=False, settings=s)
    conn.execute(sa.text("UPDATE app.schedules SET next_run_at = :n WHERE schedule_id = :id"),
                 {"n": next_slot(sched.cron, sched.timezone, now), "id": sched.schedule_id})
    return queued, skipped


def run_now(conn: Connection, user: str, schedule_id: int, *, is_admin: bool = False,
            settings: Settings | None = None) -> int:
    """Queues a run of the schedule now (besides its cadence); returns the number of runs queued."""
    sched = conn.execute(sa.text("""
        SELECT schedule_id, owner, name, template, params, format, cron, timezone, fan_out, fan_values
        FROM app.schedules WHERE schedule_id = :id AND (owner = :u OR :admin)"""),
        {"id": schedule_id, "u": user, "admin": is_admin}).first()
    if sched is None:
        raise ScheduleError("schedule: only its owner or an admin can run it")
    slot = conn.execute(sa.text("SELECT date_trunc('milliseconds', clock_timestamp())")).scalar()
    made = _queue_runs(conn, sched, slot, manual=True, settings=settings or load_settings())
    record(conn, "schedule.run_now", actor=user, target=str(schedule_id))
    return made


def finish_run(conn: Connection, export_id: int, *, ok: bool, report: Report | None = None, path: Path | None = None,
               file_name: str = "", rows: int = 0, size: int = 0, message: str = "",
               settings: Settings | None = None) -> int:
    """Marks the run of export_id done (and queues its deliveries) or failed, in the caller's
    transaction (the one that marks the export). Returns the number of deliveries queued."""
    s = settings or load_settings()
    run = conn.execute(sa.text("""
        UPDATE app.schedule_runs r SET status = :st, message = :m, finished_at = now()
        FROM app.schedules s
        WHERE r.export_id = :e AND r.status = 'running' AND s.schedule_id = r.schedule_id
        RETURNING r.run_id, r.slot, r.fan_value, s.schedule_id, s.name, s.format, s.recipients, s.webhook_url,
                  s.fan_out, s.fan_values, s.owner"""),
        {"st": "done" if ok else "failed", "m": message[:2000], "e": export_id}).first()
    if run is None or not ok:
        return 0
    people = list(run.recipients or [])
    if run.fan_out == EVERY_VENDOR:
        people = fetch_vendors_emails(conn, [int(run.fan_value)]).get(int(run.fan_value), [])
        if not people:
            conn.execute(sa.text("UPDATE app.schedule_runs SET message = :m WHERE run_id = :r"),
                         {"m": f"no enabled user of vendor {run.fan_value} has an email address: nothing sent",
                          "r": run.run_id})
    elif run.fan_out:
        people = list(dict.fromkeys(list((run.fan_values or {}).get(run.fan_value, [])) + people))
    link = f"{s.app_base_url}/reports?export={export_id}"
    attach = size <= s.email_attachment_max_mb * 2**20
    title = report.title if report else run.name
    period = report.period_label if report else ""
    kpis = report.kpis if report else []
    text = (f"{title}\nPeriod: {period}\nFilters: {report.filters if report else ''}\nRows: {rows:,}\n\n"
            + "".join(f"{k[0]}: {k[1]} ({k[3]} vs the period before)\n" for k in kpis)
            + (f"\nThe file is attached ({file_name}).\n" if attach else
               f"\nThe file ({size / 2**20:.1f} MB) is larger than {s.email_attachment_max_mb} MB: download it at {link}\n"))
    payload = {"subject": f"[Marketplace BI] {title} · {period}", "text": text,
               "html": _email_html(title, period, report, rows, file_name, size, link, attach, s),
               "attachment": {"path": str(path), "filename": file_name} if attach and path else None}
    source = f"schedule_run:{run.run_id}"
    queued = 0
    for addr in people:
        queued += enqueue(conn, channel="email", target=addr, payload=payload, key=f"{source}:email:{addr}",
                          source=source)
    if run.webhook_url:
        body = {"text": f"*{title}* · {period}: {rows:,} rows. Download: {link}", "report": title,
                "schedule_id": run.schedule_id, "run_id": run.run_id, "slot": run.slot.isoformat(),
                "fan_value": run.fan_value or None, "format": run.format, "rows": rows, "bytes": size,
                "period": {"start": report.period.start.isoformat(), "end": report.period.end.isoformat()}
                if report and report.period else None,
                "kpis": [{"metric": k[0], "value": k[1], "previous": k[2], "change": k[3]} for k in kpis],
                "download_url": link}
        queued += enqueue(conn, channel="webhook", target=run.webhook_url, payload={"json": body},
                          key=f"{source}:webhook", source=source)
    return queued


def _email_html(title: str, period: str, report, rows: int, file_name: str, size: int, link: str, attach: bool,
                s: Settings) -> str:
    e = html.escape
    kpis = report.kpis if report else []
    table = ""
    if kpis:
        cells = "".join(f"<tr><td style='padding:4px 10px'>{e(k[0])}</td><td style='padding:4px 10px;text-align:right'>"
                        f"<b>{e(k[1])}</b></td><td style='padding:4px 10px;text-align:right;color:#555'>{e(k[3])}</td></tr>"
                        for k in kpis)
        table = (f"<table style='border-collapse:collapse;font-size:14px'><tr style='background:#1f4e79;color:#fff'>"
                 f"<th style='padding:4px 10px;text-align:left'>Metric</th><th style='padding:4px 10px'>Value</th>"
                 f"<th style='padding:4px 10px'>Change</th></tr>{cells}</table>")
    file_line = (f"The file is attached: {e(file_name)}." if attach else
                 f"The file ({size / 2**20:.1f} MB) is larger than {s.email_attachment_max_mb} MB: "
                 f"<a href='{e(link)}'>download it here</a> (sign-in needed).")
    return (f"<div style='font-family:Helvetica,Arial,sans-serif;color:#222'><h2 style='margin:0 0 4px'>{e(title)}</h2>"
            f"<p style='margin:0 0 12px;color:#555'>{e(period)} · {rows:,} rows"
            f"{(' · ' + e(report.filters)) if report and report.filters else ''}</p>{table}"
            f"<p>{file_line}</p><p style='color:#888;font-size:12px'>Sent by Marketplace BI. "
            f"<a href='{e(s.app_base_url)}/reports'>Reports and schedules</a></p></div>")


def fail_stale_runs(conn: Connection) -> int:
    """Runs whose export row is gone or failed for good are marked failed (a crash between the two)."""
    return conn.execute(sa.text("""
        UPDATE app.schedule_runs r SET status = 'failed', finished_at = now(),
               message = coalesce(nullif(e.message, ''), 'the export was lost')
        FROM app.schedule_runs r2 LEFT JOIN app.exports e ON e.export_id = r2.export_id
        WHERE r.run_id = r2.run_id AND r.status = 'running' AND (e.export_id IS NULL OR e.status = 'failed')""")).rowcount


