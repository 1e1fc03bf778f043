"""Alert rules: what a user does with them (check, save, pause, mute, delete, test, preview) and
what is stored about them (rules, instances, transitions, notifications).

The scheduler's evaluation of the rules is reports.alert_evaluation; what a notification says is
reports.alert_messages; the owner check, pause and delete are reports.owned's, shared with schedules.
"""
from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics import alerts as A
from analytics.filters import DIMENSIONS
from analytics.kpis import fetch_vendor_names
from analytics.metrics import METRICS
from analytics.vendor_portal import VENDOR_METRICS
from data.audit import record
from data.auth import User, fetch_user
from data.db import frame
from data.saved_queries import fetch_visible_query
from data.settings import Settings, load_settings
from reports import owned
from reports.alert_messages import notification, rule_facts
from reports.delivery import ENQUEUE_SQL, deliver_now, outbox_row
from reports.schedules import (ScheduleError, check_recipients, check_vendor_recipients, check_webhook,
                               parse_recipients)

SEVERITIES = ("critical", "high", "medium", "low")
ERROR_INSTANCE = "*"                 # the instance of the evaluation as a whole, when it fails
RULE_COLUMNS = """r.rule_id, r.owner, r.name, r.source, r.metric, r.query_id, r.query_params, r.filters, r.fan_out,
    r."window", r.condition, r.baseline, r.threshold, r.for_evaluations, r.severity, r.interval_minutes,
    r.recipients, r.webhook_url, r.repeat_minutes, r.notify_on_resolve, r.muted_until, r.paused, r.next_eval_at,
    r.last_evaluated_at, r.last_error, r.to_vendors"""


# A rule field is wrong, or a rule cannot be changed by this user; the message starts with the field.
AlertError = A.AlertError

# --- validation and saving -------------------------------------------------------------------------

def _whole(field: str, value, lo: int, hi: int, what: str) -> int:
    try:
        n = float(value)
    except (TypeError, ValueError):
        raise AlertError(f"{field}: {value!r} is not a number; give {what}") from None
    if not math.isfinite(n) or n != int(n) or not lo <= n <= hi:
        raise AlertError(f"{field}: give {what} (a whole number from {lo:,} to {hi:,})")
    return int(n)


def _spec_filters(filters) -> tuple:
    if not isinstance(filters, dict):
        raise AlertError("filters: give {dimension: [values]}")
    out = []
    for d, v in sorted(filters.items()):
        if d not in DIMENSIONS:
            raise AlertError(f"filters: unknown dimension {d!r}; choose from {', '.join(DIMENSIONS)}")
        values = v if isinstance(v, (list, tuple)) else [v]
        if d == "vendor_id":
            try:
                values = [int(x) for x in values]
            except (TypeError, ValueError):
                raise AlertError("filters: a vendor is its id, a whole number") from None
        if values:
            out.append((d, tuple(sorted(values))))
    return tuple(out)


def spec_of(rule: Any, vendor_id: int | None = None) -> A.Spec:
    """The analytics spec of a stored (or checked) metric rule; with vendor_id, over that vendor alone
    (a rule sent to every vendor, evaluated for each on its own role)."""
    g = rule.get if isinstance(rule, dict) else lambda k: getattr(rule, k)
    filters = dict(g("filters") or {})
    if vendor_id is not None:
        filters["vendor_id"] = [vendor_id]
    return A.Spec(g("metric"), g("window"), g("condition"), g("threshold"), g("baseline") or "",
                  _spec_filters(filters), g("fan_out") or "")


def check_rule(conn: Connection, owner: str, *, name: str, source: str = "metric", metric: str | None = None,
               query_id: int | None = None, query_params: dict | None = None, filters: dict | None = None,
               fan_out: str = "", window: str = "", condition: str = "above", baseline: str = "",
               threshold: float | None = None, for_evaluations: int | str = 1, severity: str = "medium",
               interval_minutes: int | str = 5, recipients: str | list[str] = "", webhook_url: str = "",
               repeat_minutes: int | str | None = None, notify_on_resolve: bool = True,
               muted_until: datetime | None = None, to_vendors: bool = False) -> dict:
    """Returns the rule's fields cleaned; raises AlertError naming the field. to_vendors: an admin's
    metric rule fanned out by vendor also notifies each vendor's own users of that vendor's value."""
    s = load_settings()
    user = fetch_user(conn, owner)
    if user is not None and user.is_vendor and condition == "outside_forecast":
        raise AlertError("condition: forecast bands come from the marketplace's stored forecasts; choose a "
                         "threshold or a change")
    name = (name or "").strip()
    if not name:
        raise AlertError("name: give the rule a name")
    if len(name) > 200:
        raise AlertError("name: keep it under 200 characters")
    if source not in ("metric", "query"):
        raise AlertError("source: choose a metric or a saved query")
    if threshold is not None and not isinstance(threshold, (int, float)):
        try:
            threshold = float(str(threshold).strip())
        except ValueError:
            raise AlertError(f"threshold: {threshold!r} is not a number") from None
    fields = dict(name=name, source=source, metric=None, query_id=None, query_params={}, filters={}, fan_out="",
                  window="", condition=condition, baseline=baseline or "", threshold=threshold)
    if source == "metric":
        spec = A.check_spec(A.Spec(metric or "", window or "", condition, threshold, baseline or "",
                                   _spec_filters(filters or {}), fan_out or ""))
        fields.update(metric=spec.metric, window=spec.window, fan_out=spec.fan_out,
                      filters={d: list(v) for d, v in spec.filters},
                      threshold=None if spec.condition == "outside_forecast" else spec.threshold)
    else:
        try:
            qid = int(query_id)
        except (TypeError, ValueError):
            raise AlertError("query: choose one of your saved queries or a shared one") from None
        if fetch_visible_query(conn, owner, qid) is None:
            raise AlertError("query: choose one of your saved queries or a shared one")
        if condition not in ("above", "below"):
            raise AlertError("condition: a saved query's number is compared with a threshold (above or below); "
                             "changes and forecast bands need a metric and a window")
        if threshold is None or not math.isfinite(threshold):
            raise AlertError("threshold: give a number")
        if not isinstance(query_params or {}, dict):
            raise AlertError("query parameters: give {name: value}")
        fields.update(query_id=qid, query_params=query_params or {}, baseline="")
    fields["for_evaluations"] = _whole("for", for_evaluations, 1, 1000, "how many evaluations in a row must breach")
    if severity not in SEVERITIES:
        raise AlertError(f"severity: choose one of {', '.join(SEVERITIES)}")
    fields["severity"] = severity
    fields["interval_minutes"] = _whole("every", interval_minutes, 1, 10080, "the minutes between evaluations")
    if isinstance(repeat_minutes, float) and repeat_minutes != repeat_minutes:   # NULL read through pandas
        repeat_minutes = None
    fields["repeat_minutes"] = None if repeat_minutes in (None, "", 0) else \
        _whole("repeat", repeat_minutes, 1, 43200, "the minutes between reminders while firing, or nothing")
    if fields["repeat_minutes"] is not None and fields["repeat_minutes"] < s.min_schedule_minutes:
        raise AlertError(f"repeat: at most every {s.min_schedule_minutes} minutes (MIN_SCHEDULE_MINUTES, set by an "
                         "admin), or no reminders")
    try:
        fields["recipients"] = parse_recipients(recipients)
        check_recipients(len(fields["recipients"]))
        fields["webhook_url"] = check_webhook(webhook_url)
    except ScheduleError as ex:
        raise AlertError(str(ex)) from None
    fields["to_vendors"] = bool(to_vendors)
    if user is not None and user.is_vendor:
        _check_vendor_rule(conn, user, fields)
    if fields["to_vendors"]:
        if not owned.is_admin(conn, owner):
            raise AlertError("every vendor: only an admin's rule notifies every vendor")
        if fields["source"] != "metric" or fields["fan_out"] != "vendor_id":
            raise AlertError("every vendor: a rule notifies each vendor of its own value: measure a metric and fan "
                             "out by vendor")
        if fields["condition"] == "outside_forecast":
            raise AlertError("every vendor: each vendor's value is computed on its own database role, which does not "
                             "read the marketplace's stored forecasts; choose a threshold or a change")
    if not fields["recipients"] and not fields["webhook_url"] and not fields["to_vendors"]:
        raise AlertError("recipients: give at least one email address or a webhook URL")
    if muted_until is not None and (not isinstance(muted_until, datetime) or muted_until.tzinfo is None):
        raise AlertError("mute until: give a date and time with its time zone")
    fields["notify_on_resolve"] = bool(notify_on_resolve)
    fields["muted_until"] = muted_until
    return fields


def _check_vendor_rule(conn: Connection, user: User, fields: dict) -> None:
    """Raises AlertError unless a vendor user's rule can be: one of their own metrics
    (analytics.vendor_portal.VENDOR_METRICS) over one or more of their own vendors, evaluated on their
    own database role (reports.alert_evaluation), without a fan-out or a webhook, notifying their
    vendors' users only. (check_rule refuses their forecast bands first: the stored forecasts are the
    marketplace's.)"""
    if fields["source"] != "metric":
        raise AlertError("source: a vendor user's rule watches one of their own metrics")
    if fields["metric"] not in VENDOR_METRICS:
        raise AlertError(f"metric: {METRICS[fields['metric']].label} is the marketplace's, not your own figure")
    if fields["fan_out"] or fields["to_vendors"]:
        raise AlertError("for each: a vendor user's rule watches their own vendors as one")
    wanted = (fields["filters"] or {}).get("vendor_id") or []
    if set(fields["filters"]) - {"vendor_id"} or not wanted or not set(wanted) <= set(user.vendor_ids):
        raise AlertError("filters: choose one or more of your own vendors, and nothing else")
    if fields["webhook_url"]:
        raise AlertError("webhook: your alerts go by email to your vendors' users; leave the webhook empty")
    try:
        check_vendor_recipients(conn, user, fields["recipients"])
    except ScheduleError as ex:
        raise AlertError(str(ex)) from None


# The fields that say what is measured and when it breaches: changing one starts the instances again.
EVALUATION_FIELDS = ("source", "metric", "query_id", "query_params", "filters", "fan_out", "window", "condition",
                     "baseline", "threshold")


def save_rule(conn: Connection, owner: str, *, rule_id: int | None = None, is_admin: bool = False,
              **fields: Any) -> int:
    """Creates or updates a rule (the owner's, or anyone's for an admin); returns its id.

    An edit keeps the rule's owner (whose saved queries it may use) and its mute unless
    muted_until is given. An edit of what is measured or when it breaches (EVALUATION_FIELDS)
    starts the instances again from OK; an edit of anything else (recipients, severity…) keeps
    them, so an ongoing breach is not announced twice."""
    if not owned.may_own(conn, owner, vendors=True):
        raise AlertError("rule: alert rules need the analyst or admin role, or a vendor user's")
    old = None
    if rule_id is not None:
        old = conn.execute(sa.text(f"SELECT {RULE_COLUMNS} FROM app.alert_rules r WHERE rule_id = :id "
                                   "AND (owner = :o OR :admin) FOR UPDATE"),
                           {"id": rule_id, "o": owner, "admin": is_admin}).mappings().first()
        if old is None:
            raise AlertError("rule: only its owner or an admin can change it")
        if "muted_until" not in fields:
            fields["muted_until"] = old["muted_until"]
    c = check_rule(conn, old["owner"] if old else owner, **fields)
    values = {**c, "o": owner, "query_params": json.dumps(c["query_params"]), "filters": json.dumps(c["filters"])}
    cols = ("name, source, metric, query_id, query_params, filters, fan_out, \"window\", condition, baseline, "
            "threshold, for_evaluations, severity, interval_minutes, recipients, webhook_url, repeat_minutes, "
            "notify_on_resolve, muted_until, to_vendors")
    binds = (":name, :source, :metric, :query_id, CAST(:query_params AS jsonb), CAST(:filters AS jsonb), :fan_out, "
             ":window, :condition, :baseline, :threshold, :for_evaluations, :severity, :interval_minutes, "
             ":recipients, :webhook_url, :repeat_minutes, :notify_on_resolve, :muted_until, :to_vendors")
    try:
        with conn.begin_nested():
            if old is None:
                rid = conn.execute(sa.text(f"INSERT INTO app.alert_rules (owner, {cols}) VALUES (:o, {binds}) "
                                           "RETURNING rule_id"), values).scalar()
            else:
                rid = rule_id
                sets = ", ".join(f"{c_} = {b}" for c_, b in zip(cols.split(", "), binds.split(", ")))
                conn.execute(sa.text(f"UPDATE app.alert_rules SET {sets}, next_eval_at = now(), last_error = '', "
                                     "updated_at = now() WHERE rule_id = :id"), {**values, "id": rule_id})
                if any(c[k] != old[k] for k in EVALUATION_FIELDS):
                    conn.execute(sa.text("DELETE FROM app.alert_instances WHERE rule_id = :id"), {"id": rid})
    except sa.exc.IntegrityError:
        raise AlertError(f"name: there is already a rule called {c['name']!r}") from None
    record(conn, "alert.save", actor=owner, target=str(rid), detail={"name": c["name"]})
    return int(rid)


def set_paused(conn: Connection, user: str, rule_id: int, paused: bool, *, is_admin: bool = False) -> bool:
    """Pauses a rule (its instances keep their state) or resumes it (evaluated at the next tick)."""
    return owned.set_paused(conn, "alert_rules", user, rule_id, paused, is_admin=is_admin,
                            next_at="next_eval_at = now()")


def mute(conn: Connection, user: str, rule_id: int, until: datetime | None, *, is_admin: bool = False) -> bool:
    """Silences a rule's notifications until a time (None: unmute); transitions are still recorded."""
    if until is not None and until.tzinfo is None:
        raise AlertError("mute until: give a date and time with its time zone")
    ok = owned.update_owned(conn, "alert_rules", user, rule_id, is_admin=is_admin,
                            sets="muted_until = :m, updated_at = now()", params={"m": until})
    if ok:
        record(conn, "alert.mute" if until else "alert.unmute", actor=user, target=str(rule_id),
               detail={"until": until})
    return ok


def delete_rule(conn: Connection, user: str, rule_id: int, *, is_admin: bool = False) -> bool:
    """Deletes a rule (its instances and events go with it)."""
    return owned.delete_owned(conn, "alert_rules", user, rule_id, is_admin=is_admin)


def fetch_rule(conn: Connection, rule_id: int, user: str | None = None) -> dict | None:
    """The rule (the user's, or any when user is None)."""
    row = conn.execute(sa.text(f"SELECT {RULE_COLUMNS} FROM app.alert_rules r WHERE rule_id = :id "
                               "AND (CAST(:u AS text) IS NULL OR owner = :u)"), {"id": rule_id, "u": user})
    row = row.mappings().first()
    return dict(row) if row else None


def fetch_rules(conn: Connection, user: str | None = None) -> pd.DataFrame:
    """Rules (the user's, or everyone's when user is None) with their instances' states: the worst
    state, and how many instances are firing, pending, without data or failing."""
    return frame(conn.execute(sa.text(f"""
        SELECT {RULE_COLUMNS},
               coalesce(i.firing, 0) AS firing, coalesce(i.pending, 0) AS pending,
               coalesce(i.no_data, 0) AS no_data, coalesce(i.errors, 0) AS errors, i.value, i.since,
               CASE WHEN coalesce(i.errors, 0) > 0 THEN 'error' WHEN coalesce(i.firing, 0) > 0 THEN 'firing'
                    WHEN coalesce(i.pending, 0) > 0 THEN 'pending' WHEN coalesce(i.no_data, 0) > 0 THEN 'no_data'
                    WHEN r.last_evaluated_at IS NULL THEN 'new' ELSE 'ok' END AS state
        FROM app.alert_rules r
        LEFT JOIN LATERAL (
            SELECT count(*) FILTER (WHERE state = 'firing') AS firing,
                   count(*) FILTER (WHERE state = 'pending') AS pending,
                   count(*) FILTER (WHERE state = 'no_data') AS no_data,
                   count(*) FILTER (WHERE state = 'error') AS errors,
                   max(value) FILTER (WHERE fan_value = '') AS value,
                   max(since) FILTER (WHERE state <> 'ok') AS since
            FROM app.alert_instances WHERE rule_id = r.rule_id) i ON true
        WHERE CAST(:u AS text) IS NULL OR r.owner = :u
        ORDER BY r.name"""), {"u": user}))


def fetch_rule_instances(conn: Connection, rule_id: int) -> pd.DataFrame:
    """A rule's instances that are not OK or have been, worst first."""
    return frame(conn.execute(sa.text("""
        SELECT fan_value, state, pending, value, since, last_notified_at, updated_at FROM app.alert_instances
        WHERE rule_id = :id
        ORDER BY array_position(ARRAY['error', 'firing', 'pending', 'no_data', 'resolved', 'ok'], state), fan_value"""),
        {"id": rule_id}))


def fetch_rule_events(conn: Connection, rule_id: int, limit: int = 200) -> pd.DataFrame:
    """A rule's transitions and repeats, newest first."""
    return frame(conn.execute(sa.text("""
        SELECT at, fan_value, from_state, to_state, value, baseline, threshold, notify, muted, message
        FROM app.alert_events WHERE rule_id = :id ORDER BY at DESC, event_id DESC LIMIT :n"""),
        {"id": rule_id, "n": limit}))


def fetch_rule_notifications(conn: Connection, rule_id: int, limit: int = 200) -> pd.DataFrame:
    """A rule's notifications (tests included) with their delivery state, newest first."""
    return frame(conn.execute(sa.text("""
        SELECT created_at, channel, target, payload->>'subject' AS subject, status, attempts, last_error, sent_at
        FROM app.outbox WHERE source = :s ORDER BY created_at DESC, delivery_id DESC LIMIT :n"""),
        {"s": f"alert:{rule_id}", "n": limit}))


def describe_rule(r: Any, vendor_names: Mapping[int, str] | None = None) -> str:
    """The rule's condition in words, the vendors it filters on named from vendor_names
    (filtered_vendor_ids' names) where it has them."""
    g = r.get if isinstance(r, dict) else lambda k: getattr(r, k)
    if g("source") == "metric":
        return spec_of(r).describe(vendor_names)
    return f"the saved query's number {A.CONDITIONS[g('condition')]} {g('threshold'):,.6g}"


def filtered_vendor_ids(rules: Iterable[Any]) -> list[int]:
    """The vendor ids the rules' filters name (whose names describe_rule shows)."""
    ids: set[int] = set()
    for r in rules:
        filters = (r.get("filters") if isinstance(r, dict) else r.filters) or {}
        ids.update(int(v) for v in filters.get("vendor_id") or [])
    return sorted(ids)


def send_test(engine: Engine, user: str, rule_id: int, *, is_admin: bool = False,
              settings: Settings | None = None) -> list[dict]:
    """Sends a test notification to each of the rule's channels at once (recorded in the outbox
    like any other); returns [{channel, target, outcome, error}]."""
    s = settings or load_settings()
    with engine.begin() as conn:
        row = fetch_rule(conn, rule_id, None if is_admin else user)
        if row is None:
            raise AlertError("rule: only its owner or an admin can test it")
        r = SimpleNamespace(**row)   # attribute access, as the evaluation's rows have
        now = datetime.now(timezone.utc)
        window = A.resolve_window(r.window, now, s.timezone) if r.source == "metric" else None
        names = fetch_vendor_names(conn, filtered_vendor_ids([r]))
        payload = notification(rule_facts(r, window, s, describe_rule(r, names)), "", "test",
                               A.Observation(None, "clear", message="a test of this rule's channels"), now)
        key, source = f"alert_test:{rule_id}:{uuid.uuid4().hex}", f"alert:{rule_id}"
        targets = [("email", a) for a in r.recipients or []] + ([("webhook", r.webhook_url)] if r.webhook_url else [])
        ids = [conn.execute(sa.text(ENQUEUE_SQL + " RETURNING delivery_id"),
                            outbox_row(channel, target, payload, f"{key}:{channel}:{target}", source)).scalar()
               for channel, target in targets]
        record(conn, "alert.test", actor=user, target=str(rule_id))
    out = []
    for (channel, target), did in zip(targets, ids):
        outcome, error = deliver_now(engine, did, settings=s)
        out.append({"channel": channel, "target": target, "outcome": outcome, "error": error})
    return out


def preview_rule(conn: Connection, fields: dict, *, now: datetime | None = None, days: int = 30,
                 progress: Callable[..., None] | None = None,
                 tz: str | None = None, layout: int | None | str = A.READ_LAYOUT) -> A.Preview:
    """Replays a metric rule's fields (checked like a save) over the last `days` days (layout: as for
    analytics.alerts.evaluate; a vendor user's preview runs on their own role)."""
    s = load_settings()
    spec = spec_of(fields)
    return A.preview(conn, A.check_spec(spec), now=now or datetime.now(timezone.utc),
                     interval=timedelta(minutes=int(fields.get("interval_minutes") or 5)),
                     for_evaluations=int(fields.get("for_evaluations") or 1), tz=tz or s.timezone, days=days,
                     progress=progress, layout=layout)
