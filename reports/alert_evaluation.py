"""The scheduler's evaluation of alert rules (evaluate_due, one tick).

A tick locks the due rules with FOR UPDATE SKIP LOCKED, evaluates the metric rules in batches
(analytics.alerts.evaluate: one query per window, filters and fan-out shared by rules) and each
saved-query rule through the analysts' runner, steps every instance through the state machine
(analytics.alert_states), and records, in the same transaction, the changed instances, one
app.alert_events row per transition or repeat, one outbox row per channel of each notification
(keyed by rule, value, evaluation time and kind, so a retry never makes a second) and the rule's
next evaluation time. A second scheduler skips the locked rules, and sees them again only once they
are due again. A vendor user's rules (their own metrics over their own vendors: reports.alerts)
are evaluated in a batch of their own on their own database role, which PostgreSQL limits to their
vendors' rows. An admin's rule sent to every vendor is evaluated for each vendor with an enabled
vendor user on that vendor's own role, so the value a vendor's users are sent is computed where no
other vendor's rows can be read.
"""
from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics import alerts as A
from analytics.alert_states import Instance, Rule, step
from analytics.kpis import fetch_rollup_layout, fetch_vendor_names
from analytics.query import QueryFailed, QueryRejected, run_query
from analytics.sql_params import bind_parameters
from data.auth import BOUND_VENDORS
from data.saved_queries import fetch_visible_query
from data.settings import Settings, load_settings
from data.vendor_scope import ensure_single_vendor_roles, vendor_engine
from reports.alert_messages import notification, rule_facts
from reports.alerts import ERROR_INSTANCE, RULE_COLUMNS, AlertError, describe_rule, filtered_vendor_ids, spec_of
from data.vendor_users import fetch_bound_vendors, fetch_vendors_emails
from reports.delivery import enqueue_many, outbox_row

log = logging.getLogger("reports.alerts")   # the logger name alert logs always had (log filters use it)
QUERY_MAX_ROWS = 1_000
QUERY_TIMEOUT_MS = 60_000
MAX_RULES_PER_TICK = 5_000
# Vendors evaluated at once for rules sent to every vendor, each on a connection as its own role:
# a vendor costs about 3 ms connecting and 3 ms evaluating, much of it waiting on the server. A
# steady tick of one such rule over 1,860 vendors at 10M lines: 13.6 s one at a time, 8.3 s two, 6.3 s four.
EVERY_VENDOR_CONNECTIONS = 2


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


def evaluate_query_rule(conn: Connection, rule: Any) -> dict[str, A.Observation]:
    """Runs a saved-query rule's query through the analysts' runner: one number, or rows of
    (label, number), each label an instance; raises AlertError saying what is wrong."""
    q = fetch_visible_query(conn, rule.owner, rule.query_id)
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


def _metric_batch(conn: Connection, rules: list, now: datetime, tz: str, out: dict[int, Evaluated], **kw: Any) -> int:
    """Evaluates metric rules in one batch on conn into out; returns the queries run."""
    batch = A.evaluate(conn, [spec_of(r) for r in rules], now, tz=tz, **kw)
    for i, r in enumerate(rules):
        window = A.resolve_window(r.window, now, tz)
        out[r.rule_id] = Evaluated(None, batch.errors[i], window) if i in batch.errors else \
            Evaluated(batch.observations[i], window=window)
    return batch.queries


def _vendor_owners(conn: Connection, rules: list) -> dict[str, tuple[int, ...] | None]:
    """Owner -> the vendor ids their rules are evaluated for, for the owners of rules who are vendor
    users (None: disabled or bound to no vendor, so their rules cannot be evaluated)."""
    rows = conn.execute(sa.text(f"""
        SELECT u.username, CASE WHEN u.disabled_at IS NULL THEN {BOUND_VENDORS} END
        FROM app.users u WHERE u.role = 'vendor' AND u.username = ANY(:owners)"""),
        {"owners": sorted({r.owner for r in rules})}).all()
    return {name: tuple(ids) if ids else None for name, ids in rows}


def _evaluate_vendor_rules(conn: Connection, rules: list, scopes: dict, now: datetime, tz: str,
                           settings: Settings, out: dict[int, Evaluated]) -> int:
    """Evaluates vendor users' rules, each owner's batch on their own database role (which PostgreSQL
    limits to their vendors' rows), the rollups' layout read on conn; returns the queries run."""
    layout = fetch_rollup_layout(conn, tz)
    queries = 0
    for owner in sorted({r.owner for r in rules}):
        mine = [r for r in rules if r.owner == owner and r.source == "metric"]
        for r in rules:
            if r.owner == owner and r.source != "metric":   # never saved so (reports.alerts); never run
                out[r.rule_id] = Evaluated(None, "source: a vendor user's rule watches one of their own metrics")
        scope = scopes[owner]
        if scope is None:
            for r in mine:
                out[r.rule_id] = Evaluated(None, f"owner: {owner!r} is disabled or bound to no vendor")
            continue
        # A vendor unbound since the rule was saved reads as no sales on the owner's role: not a value.
        lost = {r.rule_id: sorted(set((r.filters or {}).get("vendor_id") or []) - set(scope)) for r in mine}
        for r in mine:
            if lost[r.rule_id]:
                out[r.rule_id] = Evaluated(None, f"filters: {owner!r} no longer sees vendor "
                                                 f"{', '.join(map(str, lost[r.rule_id]))}")
        mine = [r for r in mine if not lost[r.rule_id]]
        try:
            with vendor_engine(settings, scope).begin() as vconn:
                queries += _metric_batch(vconn, mine, now, tz, out, layout=layout)
        except Exception as ex:  # noqa: BLE001 - recorded on the owner's rules; the tick goes on
            log.exception("alerts: the rules of vendor user %s could not be evaluated", owner)
            for r in mine:
                out[r.rule_id] = Evaluated(None, f"{type(ex).__name__}: {ex}")
    return queries


def _evaluate_every_vendor(conn: Connection, rules: list, now: datetime, tz: str, settings: Settings,
                          out: dict[int, Evaluated]) -> int:
    """Evaluates admins' rules sent to every vendor (to_vendors): for each vendor with an enabled
    vendor user (those the rule names, if it names some), every such rule of the tick in one batch on
    that vendor's own login role, the rollups' layout read on conn; returns the queries run. A vendor
    whose evaluation fails gets an error instance of its own (its users are not sent it) and the
    others go on. Each vendor's role is made when its first user is bound, or by prepare_every_vendor."""
    layout = fetch_rollup_layout(conn, tz)
    bound = sorted(fetch_bound_vendors(conn))
    found: dict[int, dict[str, A.Observation]] = {r.rule_id: {} for r in rules}
    reach = {}
    for r in rules:
        named = set((r.filters or {}).get("vendor_id") or bound)
        reach[r.rule_id] = [v for v in bound if v in named]

    def one(v: int) -> tuple[list, A.Batch]:
        mine = [r for r in rules if v in reach[r.rule_id]]
        try:
            with vendor_engine(settings, [v]).begin() as vconn:
                return mine, A.evaluate(vconn, [spec_of(r, vendor_id=v) for r in mine], now, tz=tz, layout=layout)
        except Exception as ex:  # noqa: BLE001 - recorded on this vendor's instances; the others go on
            log.exception("alerts: the rules sent to every vendor could not be evaluated for vendor %s", v)
            return mine, A.Batch([{} for _ in mine], errors=dict.fromkeys(range(len(mine)),
                                                                       f"vendor {v}: {type(ex).__name__}: {ex}"))

    queries = 0
    vendors = sorted({v for vs in reach.values() for v in vs})
    with ThreadPoolExecutor(EVERY_VENDOR_CONNECTIONS) as pool:
        for v, (mine, batch) in zip(vendors, pool.map(one, vendors)):
            queries += batch.queries
            for i, r in enumerate(mine):
                if i in batch.errors:
                    found[r.rule_id][str(v)] = A.Observation(None, "error", message=batch.errors[i])
                else:
                    found[r.rule_id].update(batch.observations[i])
    for r in rules:
        out[r.rule_id] = Evaluated(found[r.rule_id], window=A.resolve_window(r.window, now, tz))
    return queries


def prepare_every_vendor(engine: Engine, settings: Settings, now: datetime | None = None) -> int:
    """Makes, in a transaction of its own, the login role of each vendor with an enabled vendor user
    where it is missing (a user bound to several vendors has only their set's role), when a rule sent
    to every vendor is due at now; returns how many were made. The tick logs in as them, so they must
    be committed before it. Looked up only then: over 1,860 vendors the lookup takes 19 ms at every
    tick (5 s), for a rule due once an hour."""
    with engine.begin() as conn:
        if not conn.execute(sa.text("""
                SELECT EXISTS (SELECT 1 FROM app.alert_rules WHERE to_vendors AND NOT paused
                               AND next_eval_at <= COALESCE(CAST(:now AS timestamptz), clock_timestamp()))"""),
                {"now": now}).scalar():
            return 0
        return ensure_single_vendor_roles(conn, fetch_bound_vendors(conn), settings)


def _evaluate(conn: Connection, rules: list, now: datetime, tz: str,
              settings: Settings | None = None) -> tuple[dict[int, Evaluated], int]:
    """Evaluates the rules at now; returns ({rule_id: Evaluated}, queries run). A vendor user's rules
    run on their own role (reports.alerts checks they measure their own metrics only), and a rule sent
    to every vendor on each vendor's role."""
    out: dict[int, Evaluated] = {}
    scopes = _vendor_owners(conn, rules)
    vendor_rules = [r for r in rules if r.owner in scopes]
    every_vendor = [r for r in rules if r.to_vendors and r.source == "metric" and r.owner not in scopes]
    queries = _metric_batch(conn, [r for r in rules if r.source == "metric" and r.owner not in scopes
                                   and not r.to_vendors], now, tz, out)
    if vendor_rules:
        queries += _evaluate_vendor_rules(conn, vendor_rules, scopes, now, tz, settings or load_settings(), out)
    if every_vendor:
        queries += _evaluate_every_vendor(conn, every_vendor, now, tz, settings or load_settings(), out)
    for r in rules:
        if r.source != "query" or r.rule_id in out:
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
    prepare_every_vendor(engine, s, now)
    with engine.begin() as conn:
        now = now or conn.execute(sa.text("SELECT date_trunc('milliseconds', clock_timestamp())")).scalar()
        rules = conn.execute(sa.text(f"""
            SELECT {RULE_COLUMNS} FROM app.alert_rules r WHERE NOT paused AND next_eval_at <= :now
            ORDER BY next_eval_at, rule_id LIMIT :n FOR UPDATE SKIP LOCKED"""), {"now": now, "n": limit}).all()
        if not rules:
            return counts
        results, counts["queries"] = _evaluate(conn, rules, now, s.timezone, s)
        instances = _known_instances(conn, [r.rule_id for r in rules])
        names = fetch_vendor_names(conn, filtered_vendor_ids(rules))
        writes = _Writes()
        for r in rules:
            res = results[r.rule_id]
            try:
                if _apply(r, res, instances.get(r.rule_id, {}), now, writes):
                    writes.facts[r.rule_id] = rule_facts(r, res.window, s, describe_rule(r, names))
            except Exception as ex:  # noqa: BLE001 - a bug with one rule must not stop every rule's alerts
                log.exception("alert rule %s could not be stepped", r.rule_id)
                writes.drop(r.rule_id)
                res = Evaluated(None, f"{type(ex).__name__}: {ex}")
                if _apply(r, res, instances.get(r.rule_id, {}), now, writes):
                    writes.facts[r.rule_id] = rule_facts(r, None, s, describe_rule(r, names))
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
                    last_notified_at = EXCLUDED.last_notified_at, value = EXCLUDED.value,
                    updated_at = EXCLUDED.updated_at,
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
            vendors = fetch_vendors_emails(conn, sorted({int(fan) for r, fan, *_ in self.notes
                                                         if r.to_vendors and fan.isdigit()}))
            for r, fan, st, obs in self.notes:
                label = "" if fan == ERROR_INSTANCE else names.get((r.fan_out, fan), fan)
                # A vendor's users are sent its value, not why it could not be computed.
                to_vendor = r.to_vendors and fan.isdigit() and st.notify != "error"
                self.outbox.extend(_notifications(r, fan, label, st, obs, self.facts[r.rule_id], now,
                                                  vendors.get(int(fan), []) if to_vendor else []))
        enqueue_many(conn, self.outbox)
        conn.execute(sa.text("""
            UPDATE app.alert_rules r SET next_eval_at = u.next, last_evaluated_at = :now, last_error = u.err
            FROM unnest(CAST(:ids AS bigint[]), CAST(:nexts AS timestamptz[]), CAST(:errs AS text[]))
                 AS u(id, next, err)
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


def _notifications(r, fan: str, fan_label: str, st, obs: A.Observation, rule: dict, now: datetime,
                   vendor_users: list[str] = ()) -> list[dict]:
    """The outbox rows of one notification: to the rule's recipients and webhook, and (a rule to every
    vendor) to vendor_users, the addresses of the users of the vendor this instance is about: the
    same message, which holds this vendor's value alone."""
    payload = notification(rule, fan_label, st.notify, obs, now)
    key = f"alert:{r.rule_id}:{fan}:{now.isoformat()}:{st.notify}"
    source = f"alert:{r.rule_id}"
    people = list(dict.fromkeys([*(r.recipients or []), *vendor_users]))
    targets = [("email", a, f"{key}:email:{a}") for a in people]
    if r.webhook_url:
        targets.append(("webhook", r.webhook_url, f"{key}:webhook"))
    return [outbox_row(channel, target, payload, k, source) for channel, target, k in targets]
