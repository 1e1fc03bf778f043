"""Alert rules: storage, validation, evaluation in the scheduler, and their notifications.

A scheduler tick (evaluate_due) locks the due rules with FOR UPDATE SKIP LOCKED, evaluates the
metric rules in batches (analytics.alerts.evaluate: one query per window, filters and fan-out
shared by rules) and each saved-query rule through the analysts' runner, steps every instance
through the state machine (analytics.alert_states), and records, in the same transaction, the
changed instances, one app.alert_events row per transition or repeat, one outbox row per channel
of each notification (keyed by rule, value, evaluation time and kind, so a retry never makes a
second) and the rule's next evaluation time. A second scheduler skips the locked rules, and sees
them again only once they are due again.
"""
from __future__ import annotations

import html
import json
import logging
import math
import uuid
from types import SimpleNamespace
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics import alerts as A
from analytics.alert_states import Instance, Rule, step
from analytics.filters import DIMENSIONS
from analytics.kpis import fetch_vendor_names
from analytics.metrics import format_value
from data.audit import record
from data.db import frame
from data.settings import Settings, load_settings
from reports.delivery import ENQUEUE_SQL, deliver_now, enqueue_many, outbox_row
from reports.schedules import ScheduleError, check_recipients, check_webhook, parse_recipients

log = logging.getLogger("reports.alerts")
SEVERITIES = ("critical", "high", "medium", "low")
ERROR_INSTANCE = "*"                 # the evaluation as a whole, when it fails
QUERY_MAX_ROWS = 1_000
QUERY_TIMEOUT_MS = 60_000
MAX_RULES_PER_TICK = 5_000
RULE_COLUMNS = """r.rule_id, r.owner, r.name, r.source, r.metric, r.query_id, r.query_params, r.filters, r.fan_out,
    r."window", r.condition, r.baseline, r.threshold, r.for_evaluations, r.severity, r.interval_minutes,
    r.recipients, r.webhook_url, r.repeat_minutes, r.notify_on_resolve, r.muted_until, r.paused, r.next_eval_at,
    r.last_evaluated_at, r.last_error"""


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


def spec_of(rule) -> A.Spec:
    """The analytics spec of a stored (or checked) metric rule."""
    g = rule.get if isinstance(rule, dict) else lambda k: getattr(rule, k)
    return A.Spec(g("metric"), g("window"), g("condition"), g("threshold"), g("baseline") or "",
                  _spec_filters(g("filters") or {}), g("fan_out") or "")


def check_rule(conn: Connection, owner: str, *, name: str, source: str = "metric", metric: str | None = None,
               query_id: int | None = None, query_params: dict | None = None, filters: dict | None = None,
               fan_out: str = "", window: str = "", condition: str = "above", baseline: str = "",
               threshold: float | None = None, for_evaluations=1, severity: str = "medium", interval_minutes=5,
               recipients="", webhook_url: str = "", repeat_minutes=None, notify_on_resolve: bool = True,
               muted_until: datetime | None = None) -> dict:
    """Returns the rule's fields cleaned; raises AlertError naming the field."""
    s = load_settings()
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
        from data.saved_queries import visible_query

        try:
            qid = int(query_id)
        except (TypeError, ValueError):
            raise AlertError("query: choose one of your saved queries or a shared one") from None
        if visible_query(conn, owner, qid) is None:
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
    if not fields["recipients"] and not fields["webhook_url"]:
        raise AlertError("recipients: give at least one email address or a webhook URL")
    if muted_until is not None and (not isinstance(muted_until, datetime) or muted_until.tzinfo is None):
        raise AlertError("mute until: give a date and time with its time zone")
    fields["notify_on_resolve"] = bool(notify_on_resolve)
    fields["muted_until"] = muted_until
    return fields


def _can_write_rules(conn: Connection, user: str) -> None:
    from data.auth import fetch_user

    u = fetch_user(conn, user)
    if u is None or u.role not in ("analyst", "admin"):
        raise AlertError("rule: alert rules need the analyst or admin role")


# The fields that say what is measured and when it breaches: changing one starts the instances again.
EVALUATION_FIELDS = ("source", "metric", "query_id", "query_params", "filters", "fan_out", "window", "condition",
                     "baseline", "threshold")


def save_rule(conn: Connection, owner: str, *, rule_id: int | None = None, is_admin: bool = False, **fields) -> int:
    """Creates or updates a rule (the owner's, or anyone's for an admin); returns its id.

    An edit keeps the rule's owner (whose saved queries it may use) and its mute unless
    muted_until is given. An edit of what is measured or when it breaches (EVALUATION_FIELDS)
    starts the instances again from OK; an edit of anything else (recipients, severity…) keeps
    them, so an ongoing breach is not announced twice."""
    _can_write_rules(conn, owner)
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
            "notify_on_resolve, muted_until")
    binds = (":name, :source, :metric, :query_id, CAST(:query_params AS jsonb), CAST(:filters AS jsonb), :fan_out, "
             ":window, :condition, :baseline, :threshold, :for_evaluations, :severity, :interval_minutes, "
             ":recipients, :webhook_url, :repeat_minutes, :notify_on_resolve, :muted_until")
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


def _owned(conn: Connection, user: str, rule_id: int, is_admin: bool, sql: str, params: dict | None = None) -> bool:
    return bool(conn.execute(sa.text(sql + " WHERE rule_id = :id AND (owner = :u OR :admin)"),
                             {"id": rule_id, "u": user, "admin": is_admin, **(params or {})}).rowcount)


def set_paused(conn: Connection, user: str, rule_id: int, paused: bool, *, is_admin: bool = False) -> bool:
    """Pauses a rule (its instances keep their state) or resumes it (evaluated at the next tick)."""
    ok = _owned(conn, user, rule_id, is_admin, "UPDATE app.alert_rules SET paused = :p, next_eval_at = now(), "
                "updated_at = now()", {"p": paused})
    if ok:
        record(conn, "alert.pause" if paused else "alert.resume", actor=user, target=str(rule_id))
    return ok


def mute(conn: Connection, user: str, rule_id: int, until: datetime | None, *, is_admin: bool = False) -> bool:
    """Silences a rule's notifications until a time (None: unmute); transitions are still recorded."""
    if until is not None and until.tzinfo is None:
        raise AlertError("mute until: give a date and time with its time zone")
    ok = _owned(conn, user, rule_id, is_admin, "UPDATE app.alert_rules SET muted_until = :m, updated_at = now()",
                {"m": until})
    if ok:
        record(conn, "alert.mute" if until else "alert.unmute", actor=user, target=str(rule_id),
               detail={"until": until})
    return ok


def delete_rule(conn: Connection, user: str, rule_id: int, *, is_admin: bool = False) -> bool:
    ok = _owned(conn, user, rule_id, is_admin, "DELETE FROM app.alert_rules")
    if ok:
        record(conn, "alert.delete", actor=user, target=str(rule_id))
    return ok


def get_rule(conn: Connection, rule_id: int, user: str | None = None) -> dict | None:
    """The rule (the user's, or any when user is None)."""
    row = conn.execute(sa.text(f"SELECT {RULE_COLUMNS} FROM app.alert_rules r WHERE rule_id = :id "
                               "AND (CAST(:u AS text) IS NULL OR owner = :u)"), {"id": rule_id, "u": user})
    row = row.mappings().first()
    return dict(row) if row else None


def list_rules(conn: Connection, user: str | None = None):
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


def list_instances(conn: Connection, rule_id: int):
    """A rule's instances that are not OK or have been, worst first."""
    return frame(conn.execute(sa.text("""
        SELECT fan_value, state, pending, value, since, last_notified_at, updated_at FROM app.alert_instances
        WHERE rule_id = :id
        ORDER BY array_position(ARRAY['error', 'firing', 'pending', 'no_data', 'resolved', 'ok'], state), fan_value"""),
        {"id": rule_id}))


def rule_events(conn: Connection, rule_id: int, limit: int = 200):
    """A rule's transitions and repeats, newest first."""
    return frame(conn.execute(sa.text("""
        SELECT at, fan_value, from_state, to_state, value, baseline, threshold, notify, muted, message
        FROM app.alert_events WHERE rule_id = :id ORDER BY at DESC, event_id DESC LIMIT :n"""),
        {"id": rule_id, "n": limit}))


def rule_notifications(conn: Connection, rule_id: int, limit: int = 200):
    """A rule's notifications (tests included) with their delivery state, newest first."""
    return frame(conn.execute(sa.text("""
        SELECT created_at, channel, target, payload->>'subject' AS subject, status, attempts, last_error, sent_at
        FROM app.outbox WHERE source = :s ORDER BY created_at DESC, delivery_id DESC LIMIT :n"""),
        {"s": f"alert:{rule_id}", "n": limit}))


# --- evaluation -------------------------------------------------------------------------------------

@dataclass
class Evaluated:
    observations: dict[str, A.Observation] | None     # None: the evaluation failed
    error: str = ""
    window: A.Window | None = None


def _next_eval(due: datetime, now: datetime, minutes: int) -> datetime:
    """The first time on the rule's grid (due + k × interval) after now."""
    step_ = timedelta(minutes=minutes)
    k = max(1, math.floor((now - due) / step_) + 1)
    return due + k * step_


def evaluate_query_rule(conn: Connection, rule) -> dict[str, A.Observation]:
    """Runs a saved-query rule's query through the analysts' runner: one number, or rows of
    (label, number), each label an instance; raises AlertError saying what is wrong."""
    from analytics.query import QueryFailed, QueryRejected, run_query
    from analytics.sql_params import bind_parameters
    from data.saved_queries import visible_query

    q = visible_query(conn, rule.owner, rule.query_id)
    if q is None:
        raise AlertError("query: the saved query is gone, or no longer shared with the rule's owner")
    try:
        sql, params = bind_parameters(q["sql"], rule.query_params or {})
        res = run_query(sql, params, row_limit=QUERY_MAX_ROWS, timeout_ms=QUERY_TIMEOUT_MS)
    except (QueryRejected, QueryFailed) as ex:
        raise AlertError(f"query: {ex}") from None
    df = res.frame
    if res.truncated:
        raise AlertError(f"query: it returns more than {QUERY_MAX_ROWS:,} rows; return one number, or a label "
                         "and a number per row")
    if len(df.columns) not in (1, 2):
        raise AlertError(f"query: it returns {len(df.columns)} columns; return one number, or a label and a number")
    spec = A.Spec("", "", rule.condition, rule.threshold)
    if len(df.columns) == 1 and len(df) > 1:
        raise AlertError(f"query: it returns {len(df)} rows of one column; return one number, or a label and a "
                         "number per row")
    out = {}
    for row in df.itertuples(index=False):
        fan, raw = ("", row[0]) if len(df.columns) == 1 else (str(row[0]), row[1])
        try:
            value = None if raw is None or raw != raw else float(raw)
        except (TypeError, ValueError):
            raise AlertError(f"query: {raw!r} is not a number") from None
        if value is not None and not math.isfinite(value):
            raise AlertError(f"query: {raw!r} is not a finite number")
        out[fan] = A.judge(spec, value)
    if len(df.columns) == 1 and not out:
        out[""] = A.judge(spec, None)
    return out


def _evaluate(conn: Connection, rules: list, now: datetime, tz: str) -> tuple[dict[int, Evaluated], int]:
    """Evaluates the rules at now; returns ({rule_id: Evaluated}, queries run)."""
    out: dict[int, Evaluated] = {}
    metric_rules = [r for r in rules if r.source == "metric"]
    specs = [spec_of(r) for r in metric_rules]
    batch = A.evaluate(conn, specs, now, tz=tz)
    for i, r in enumerate(metric_rules):
        window = A.resolve_window(r.window, now, tz)
        out[r.rule_id] = Evaluated(None, batch.errors[i], window) if i in batch.errors else \
            Evaluated(batch.observations[i], window=window)
    queries = batch.queries
    for r in rules:
        if r.source != "query":
            continue
        queries += 1
        try:
            out[r.rule_id] = Evaluated(evaluate_query_rule(conn, r))
        except Exception as ex:  # noqa: BLE001 - recorded on the rule as an ERROR; the tick goes on
            out[r.rule_id] = Evaluated(None, str(ex) if isinstance(ex, A.AlertError) else f"{type(ex).__name__}: {ex}")
    return out, queries


def evaluate_due(engine: Engine, *, now: datetime | None = None, settings: Settings | None = None,
                 limit: int = MAX_RULES_PER_TICK) -> dict:
    """Evaluates every due rule not locked by another scheduler; returns counts (rules, queries,
    events, notifications, errors)."""
    s = settings or load_settings()
    counts = {"rules": 0, "queries": 0, "events": 0, "notifications": 0, "errors": 0}
    with engine.begin() as conn:
        now = now or conn.execute(sa.text("SELECT date_trunc('milliseconds', clock_timestamp())")).scalar()
        rules = conn.execute(sa.text(f"""
            SELECT {RULE_COLUMNS} FROM app.alert_rules r WHERE NOT paused AND next_eval_at <= :now
            ORDER BY next_eval_at, rule_id LIMIT :n FOR UPDATE SKIP LOCKED"""), {"now": now, "n": limit}).all()
        if not rules:
            return counts
        results, counts["queries"] = _evaluate(conn, rules, now, s.timezone)
        instances = _known_instances(conn, [r.rule_id for r in rules])
        writes = _Writes()
        for r in rules:
            res = results[r.rule_id]
            try:
                if _apply(r, res, instances.get(r.rule_id, {}), now, writes):
                    writes.facts[r.rule_id] = _rule_facts(r, res.window, s)
            except Exception as ex:  # noqa: BLE001 - a bug with one rule must not stop every rule's alerts
                log.exception("alert rule %s could not be stepped", r.rule_id)
                writes.drop(r.rule_id)
                res = Evaluated(None, f"{type(ex).__name__}: {ex}")
                if _apply(r, res, instances.get(r.rule_id, {}), now, writes):
                    writes.facts[r.rule_id] = _rule_facts(r, None, s)
            counts["errors"] += res.observations is None
        writes.flush(conn, rules, now)
        counts.update(rules=len(rules), events=len(writes.events), notifications=len(writes.outbox))
    return counts


def _known_instances(conn: Connection, rule_ids: list[int]) -> dict[int, dict[str, Instance]]:
    """Returns {rule: {fan value: stored instance}}. A tick knows hundreds of thousands of
    instances (219k in the benchmark at 10M lines): they are fetched as plain tuples, and the
    many that share a state share one Instance. Through SQLAlchemy rows this cost 0.8-1.0 s,
    so 0.5 s (measured side by side)."""
    with conn.connection.driver_connection.cursor() as cur:
        cur.execute("SELECT rule_id, fan_value, state, pending, last_notified_at FROM app.alert_instances "
                    "WHERE rule_id = ANY(%(ids)s)", {"ids": rule_ids})
        rows = cur.fetchall()
    out: dict[int, dict[str, Instance]] = {}
    shared: dict[tuple, Instance] = {}
    for rule_id, fan, *state in rows:
        key = tuple(state)
        inst = shared.get(key)
        if inst is None:
            inst = shared[key] = Instance(*key)
        out.setdefault(rule_id, {})[fan] = inst
    return out


class _Writes:
    """What one tick writes, gathered so that each table gets one statement."""

    def __init__(self) -> None:
        self.instances: list[dict] = []
        self.events: list[dict] = []
        self.outbox: list[dict] = []
        self.notes: list[tuple] = []    # (rule, fan, step, observation) to turn into messages
        self.rule_errors: dict[int, str] = {}
        self.facts: dict[int, dict] = {}   # rule that notifies -> what its notifications share

    def drop(self, rule_id: int) -> None:
        """Forgets what a rule's stepping gathered (it failed half-way)."""
        self.instances = [i for i in self.instances if i["rule_id"] != rule_id]
        self.events = [e for e in self.events if e["rule_id"] != rule_id]
        self.notes = [n for n in self.notes if n[0].rule_id != rule_id]
        self.facts.pop(rule_id, None)

    def flush(self, conn: Connection, rules: list, now: datetime) -> None:
        # Each table in one statement over arrays (unnest): a first tick over thousands of fan-out
        # values writes hundreds of thousands of rows.
        if self.instances:
            conn.execute(sa.text("""
                INSERT INTO app.alert_instances (rule_id, fan_value, state, pending, last_notified_at, value, since,
                                                 updated_at)
                SELECT u.*, CAST(:now AS timestamptz), CAST(:now AS timestamptz)
                FROM json_to_recordset(CAST(:rows AS json))
                     AS u(rule_id bigint, fan text, state text, pending integer, last timestamptz, value float8)
                ON CONFLICT (rule_id, fan_value) DO UPDATE SET state = EXCLUDED.state, pending = EXCLUDED.pending,
                    last_notified_at = EXCLUDED.last_notified_at, value = EXCLUDED.value, updated_at = EXCLUDED.updated_at,
                    since = CASE WHEN app.alert_instances.state = EXCLUDED.state THEN app.alert_instances.since
                                 ELSE EXCLUDED.since END"""), {"now": now, "rows": _json(self.instances)})
        if self.events:
            conn.execute(sa.text("""
                INSERT INTO app.alert_events (rule_id, fan_value, at, from_state, to_state, value, baseline, band_upper,
                                              threshold, notify, muted, message)
                SELECT u.rule_id, u.fan, CAST(:at AS timestamptz), u.from_state, u.to_state, u.value, u.baseline,
                       u.band_upper, u.threshold, u.notify, u.muted, u.message
                FROM json_to_recordset(CAST(:rows AS json))
                     AS u(rule_id bigint, fan text, from_state text, to_state text, value float8, baseline float8,
                          band_upper float8, threshold float8, notify text, muted boolean, message text)"""),
                {"at": now, "rows": _json(self.events)})
        if self.notes:
            names = _fan_labels(conn, [(r.fan_out, fan) for r, fan, *_ in self.notes])
            for r, fan, st, obs in self.notes:
                self.outbox.extend(_notifications(r, fan, names.get((r.fan_out, fan), fan), st, obs,
                                                  self.facts[r.rule_id], now))
        enqueue_many(conn, self.outbox)
        conn.execute(sa.text("""
            UPDATE app.alert_rules r SET next_eval_at = u.next, last_evaluated_at = :now, last_error = u.err
            FROM unnest(CAST(:ids AS bigint[]), CAST(:nexts AS timestamptz[]), CAST(:errs AS text[])) AS u(id, next, err)
            WHERE r.rule_id = u.id"""),
            {"now": now, "ids": [r.rule_id for r in rules],
             "nexts": [_next_eval(r.next_eval_at, now, r.interval_minutes) for r in rules],
             "errs": [self.rule_errors.get(r.rule_id, "")[:2000] for r in rules]})


def _json(rows: list[dict]) -> str:
    """Rows as one JSON document for json_to_recordset (times as ISO text, which PostgreSQL reads)."""
    return json.dumps(rows, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def _apply(r, res: Evaluated, known: dict[str, Instance], now: datetime, w: _Writes) -> bool:
    """Steps the rule's instances through the outcome; gathers their writes in w. Returns whether
    anything is to be notified."""
    rule = Rule(r.for_evaluations, timedelta(minutes=r.repeat_minutes) if r.repeat_minutes else None,
                r.notify_on_resolve, r.muted_until)
    if res.observations is None:
        w.rule_errors[r.rule_id] = res.error
        outcomes = {ERROR_INSTANCE: A.Observation(None, "error", message=res.error)}
    else:
        outcomes = dict(res.observations)
        if ERROR_INSTANCE in known:
            outcomes[ERROR_INSTANCE] = A.Observation(None, "clear")
        for fan, inst in known.items():
            # A value that is gone (a vendor closed, a label the query no longer returns).
            if fan not in outcomes and inst.state not in ("ok", "no_data"):
                outcomes[fan] = A.Observation(None, "no_data", message="the value is no longer in the results")
    notified = False
    # step is a pure function of (instance, outcome) for one rule at one time, and a fan-out's
    # instances mostly share both (firing since the same tick, no data): stepped once each.
    steps: dict[tuple[Instance, str], object] = {}
    for fan, obs in outcomes.items():
        inst = known.get(fan)
        if inst is None:
            if obs.outcome == "clear":
                continue      # OK and still OK: most values of a fan-out, most of the time
            inst = Instance()
        st = steps.get((inst, obs.outcome))
        if st is None:
            st = steps[inst, obs.outcome] = step(inst, obs.outcome, rule, now)
        if st.notify == "no_data" and fan not in ("", ERROR_INSTANCE) and inst.state != "firing":
            # One value of a fan-out without data (a vendor without orders in the compared window)
            # is the long tail, not news: shown as No data, not sent.
            st = replace(st, notify=None)
        if not (st.changed or st.notify or st.muted or st.pending != inst.pending
                or st.last_notified_at != inst.last_notified_at):
            continue
        w.instances.append({"rule_id": r.rule_id, "fan": fan, "state": st.state, "pending": st.pending,
                            "last": st.last_notified_at, "value": obs.value})
        if st.changed or st.notify:
            w.events.append({"rule_id": r.rule_id, "fan": fan, "from_state": inst.state,
                             "to_state": st.state, "value": obs.value, "baseline": obs.baseline,
                             "band_upper": obs.band[1] if obs.band else None, "threshold": r.threshold,
                             "notify": st.notify, "muted": st.muted, "message": obs.message[:2000]})
        if st.notify:
            w.notes.append((r, fan, st, obs))
            notified = True
    return notified


def _fan_labels(conn: Connection, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    ids = sorted({int(v) for f, v in pairs if f == "vendor_id" and v.isdigit()})
    if not ids:
        return {}
    return {("vendor_id", str(i)): f"{n} (vendor {i})" for i, n in fetch_vendor_names(conn, ids).items()}


def _value(metric: str | None, v: float | None) -> str:
    if v is None:
        return "no value"
    return format_value(metric, v, compact=False) if metric else f"{v:,.6g}"


def describe_rule(r) -> str:
    """The rule's condition in words."""
    g = r.get if isinstance(r, dict) else lambda k: getattr(r, k)
    if g("source") == "metric":
        return spec_of(r).describe()
    return f"the saved query's number {A.CONDITIONS[g('condition')]} {g('threshold'):,.6g}"


HEADLINES = {"firing": "FIRING", "repeat": "still FIRING", "resolved": "RESOLVED", "no_data": "NO DATA",
             "error": "ERROR", "test": "TEST"}


def _rule_facts(r, window: A.Window | None, s: Settings) -> dict:
    """What every notification of a rule in one tick shares (worked out once per rule)."""
    return {"rule_id": r.rule_id, "name": r.name, "severity": r.severity, "condition": describe_rule(r),
            "metric": r.metric if r.source == "metric" else None, "threshold": r.threshold,
            "change": r.condition in A.CHANGES, "link": f"{s.app_base_url}/alerts?rule={r.rule_id}",
            "window": ({"label": window.label(s.timezone),
                        "start": (window.span[0] if window.span else window.period.start).isoformat(),
                        "end": (window.span[1] if window.span else window.period.end).isoformat()} if window else None)}


def notification(rule: dict, fan_label: str, kind: str, obs: A.Observation, now: datetime) -> dict:
    """The outbox payload of one notification: its subject and the facts it tells (the bodies are
    rendered from them when it is sent, by render_alert)."""
    who = f" · {fan_label}" if fan_label and fan_label != ERROR_INSTANCE else ""
    return {"subject": f"[{rule['severity'].upper()}] {rule['name']}{who}: {HEADLINES[kind]}",
            "alert": {**rule, "kind": kind, "fan": who[3:], "value": obs.value, "baseline": obs.baseline,
                      "band": list(obs.band) if obs.band else None, "change_pct": obs.change, "note": obs.message,
                      "at": now.isoformat()}}


def render_alert(payload: dict) -> dict:
    """The email (subject, text, html) and webhook body (json) of a notification's facts."""
    a = payload["alert"]
    metric, kind = a["metric"], a["kind"]
    who = f" · {a['fan']}" if a["fan"] else ""
    window = a["window"]
    lines = [f"Rule: {a['name']} ({a['severity']})", f"Condition: {a['condition']}",
             f"Value: {_value(metric, a['value'])}" + (f" in {window['label']}" if window else "")]
    if a["baseline"] is not None:
        band = a["band"]
        lines.append(("Forecast" if band else "Compared with") + f": {_value(metric, a['baseline'])}"
                     + (f" (band {_value(metric, band[0])} – {_value(metric, band[1])})" if band else "")
                     + (f", a change of {a['change_pct']:+.1f} %" if a["change_pct"] is not None else ""))
    if a["threshold"] is not None:
        lines.append("Threshold: " + (f"{a['threshold']:g} %" if a["change"] else _value(metric, a["threshold"])))
    if a["note"]:
        lines.append(f"Note: {a['note']}")
    at = datetime.fromisoformat(a["at"]).astimezone(timezone.utc)
    lines += [f"Evaluated: {at:%Y-%m-%d %H:%M:%S} UTC", f"Open the rule: {a['link']}"]
    text = f"{a['name']}{who}: {HEADLINES[kind]}\n\n" + "\n".join(lines) + "\n"
    e = html.escape
    rows = "".join(f"<tr><td style='padding:3px 10px;color:#555'>{e(k)}</td><td style='padding:3px 10px'>{e(v)}</td></tr>"
                   for k, _, v in (line.partition(": ") for line in lines[:-1]))
    colour = {"firing": "#b3261e", "repeat": "#b3261e", "resolved": "#1e7b34", "test": "#1f4e79"}.get(kind, "#8a6d00")
    body = (f"<div style='font-family:Helvetica,Arial,sans-serif;color:#222'>"
            f"<h2 style='margin:0 0 8px;color:{colour}'>{e(HEADLINES[kind])}: {e(a['name'])}{e(who)}</h2>"
            f"<table style='border-collapse:collapse;font-size:14px'>{rows}</table>"
            f"<p><a href='{e(a['link'])}'>Open the rule in Marketplace BI</a></p></div>")
    hook = {"text": f"*{HEADLINES[kind]}* {a['name']}{who}: {_value(metric, a['value'])} — {a['condition']}. "
                    f"<{a['link']}|Open>",
            "rule_id": a["rule_id"], "rule": a["name"], "severity": a["severity"], "kind": kind,
            "fan_value": a["fan"] or None, "value": a["value"], "baseline": a["baseline"], "threshold": a["threshold"],
            "condition": a["condition"], "window": window, "evaluated_at": a["at"], "url": a["link"]}
    return {"subject": payload["subject"], "text": text, "html": body, "json": hook}


def _notifications(r, fan: str, fan_label: str, st, obs: A.Observation, rule: dict, now: datetime) -> list[dict]:
    payload = notification(rule, fan_label, st.notify, obs, now)
    key = f"alert:{r.rule_id}:{fan}:{now.isoformat()}:{st.notify}"
    source = f"alert:{r.rule_id}"
    targets = [("email", a, f"{key}:email:{a}") for a in r.recipients or []]
    if r.webhook_url:
        targets.append(("webhook", r.webhook_url, f"{key}:webhook"))
    return [outbox_row(channel, target, payload, k, source) for channel, target, k in targets]


def send_test(engine: Engine, user: str, rule_id: int, *, is_admin: bool = False,
              settings: Settings | None = None) -> list[dict]:
    """Sends a test notification to each of the rule's channels at once (recorded in the outbox
    like any other); returns [{channel, target, outcome, error}]."""
    s = settings or load_settings()
    with engine.begin() as conn:
        row = get_rule(conn, rule_id, None if is_admin else user)
        if row is None:
            raise AlertError("rule: only its owner or an admin can test it")
        r = SimpleNamespace(**row)   # attribute access, as the evaluation's rows have
        now = datetime.now(timezone.utc)
        window = A.resolve_window(r.window, now, s.timezone) if r.source == "metric" else None
        payload = notification(_rule_facts(r, window, s), "", "test",
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


def preview_rule(conn: Connection, fields: dict, *, now: datetime | None = None, days: int = 30, progress=None,
                 tz: str | None = None) -> A.Preview:
    """Replays a metric rule's fields (checked like a save) over the last `days` days."""
    s = load_settings()
    spec = spec_of(fields)
    return A.preview(conn, A.check_spec(spec), now=now or datetime.now(timezone.utc),
                     interval=timedelta(minutes=int(fields.get("interval_minutes") or 5)),
                     for_evaluations=int(fields.get("for_evaluations") or 1), tz=tz or s.timezone, days=days,
                     progress=progress)
