"""Alert conditions: what a rule measures (a window of a glossary metric, or a saved query's
number) and whether the value breaches it, evaluated in batches.

Windows, at evaluation time `now` in APP_TIMEZONE:
  last_hour, last_24h  the orders placed in the hour (24 hours) up to now, from the order lines
                       (an index range): sales metrics only, customer and traffic figures are daily
  yesterday            the last whole day
  last_7d, last_30d    the 7 (30) whole days before today, as the dashboards' "Last 7 days"
  today, wtd, mtd      today, the week (from Monday) and the month so far, today included
Whole-day windows read the rollups (fetch_aggregate), so they cost what a dashboard costs.

Conditions: above or below a threshold (in the metric's units; rates as fractions), rises or falls
by more than a percentage against the previous window or the same window a week earlier, or
outside the band of the latest stored forecast for the day (window `yesterday`, the forecasts
are daily).

Batching: rules that share a window, filters and fan-out are one group and one query per
window they need (the current one, and the previous or last week's one if a rule compares), with
every metric of the group's rules in it. A fan-out value without any order has the metric's value
over no rows (0 for sums, unknown for ratios).
"""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.alert_states import Instance, Rule, step
from analytics.filters import DIMENSIONS, PERIOD_PRESETS, FilterError, Filters, Period, resolve_period
from analytics.forecast_series import FORECAST_METRICS
# READ_LAYOUT: a batch's rollup layout not read yet: each group reads its own (fetch_rollup_layout).
from analytics.kpis import READ_LAYOUT, aggregate_query, fetch_distinct_values, fetch_rollup_layout
from analytics.metrics import CUSTOMER_BASES, METRICS, SALES_BASES, TRAFFIC_BASES, format_value, get_metric
from data.calendar import local_today
from data.db import stage_temp_table
from data.measures import RAW_FROM, raw_columns

# Whole-day windows are period presets (analytics.filters.PERIOD_PRESETS); stored rules name two of
# them by older aliases.
WINDOW_PRESETS = {"yesterday": "yesterday", "last_7d": "last_7_days", "last_30d": "last_30_days",
                  "today": "today", "wtd": "wtd", "mtd": "mtd"}
WINDOWS = {
    "last_hour": "Last hour", "last_24h": "Last 24 hours",
    **{w: PERIOD_PRESETS[p].label for w, p in WINDOW_PRESETS.items()},
}
SPANS = {"last_hour": timedelta(hours=1), "last_24h": timedelta(hours=24)}
TO_DATE = ("today", "wtd", "mtd")
CONDITIONS = {
    "above": "is above", "below": "is below", "rises_by": "rises by more than",
    "falls_by": "falls by more than", "outside_forecast": "is outside its forecast band",
}
CHANGES = ("rises_by", "falls_by")
BASELINES = {"previous": "the previous window", "last_week": "the same window a week earlier"}
FAN_OUTS = {"vendor_id": "Vendor", "category": "Category", "region": "Region"}
ANOMALY_METRICS = tuple(m for m in FORECAST_METRICS if m in METRICS)

log = logging.getLogger(__name__)


class AlertError(ValueError):
    """A rule field is wrong; the message starts with the field's name."""


@dataclass(frozen=True)
class Window:
    """A resolved window: a span of time (t0 ≤ ordered_at < t1) or whole local days."""
    span: tuple[datetime, datetime] | None = None
    period: Period | None = None

    def label(self, tz: str) -> str:
        if self.span:
            z = ZoneInfo(tz)
            return f"{self.span[0].astimezone(z):%d %b %H:%M} – {self.span[1].astimezone(z):%d %b %H:%M}"
        return self.period.label() if self.period.days > 1 else f"{self.period.start:%d %b %Y}"


def resolve_window(window: str, now: datetime, tz: str) -> Window:
    """Returns the window's time range at `now`."""
    if window in SPANS:
        return Window(span=(now - SPANS[window], now))
    if window not in WINDOW_PRESETS:
        raise AlertError(f"window: choose one of {', '.join(WINDOWS.values())}")
    return Window(period=resolve_period(WINDOW_PRESETS[window], local_today(tz, now)))


def baseline_window(window: str, baseline: str, now: datetime, tz: str) -> Window:
    """Returns the window a change is measured against: the one just before, or the same window a
    week earlier. Whole windows only: check_spec refuses a change over a period still running
    (today, week or month to date), which whole days would not compare fairly."""
    w = resolve_window(window, now, tz)
    if baseline == "last_week":
        week = timedelta(days=7)
        return Window(span=(w.span[0] - week, w.span[1] - week)) if w.span else \
            Window(period=Period(w.period.start - week, w.period.end - week))
    if baseline != "previous":
        raise AlertError(f"compared with: choose {' or '.join(BASELINES.values())}")
    if w.span:
        width = w.span[1] - w.span[0]
        return Window(span=(w.span[0] - width, w.span[0]))
    p = w.period
    return Window(period=Period(p.start - timedelta(days=p.days), p.start - timedelta(days=1)))


@dataclass(frozen=True)
class Spec:
    """What a metric rule measures and when it breaches."""
    metric: str
    window: str
    condition: str
    threshold: float | None = None
    baseline: str = ""
    filters: tuple[tuple[str, tuple], ...] = ()     # Filters.dims
    fan_out: str = ""

    @property
    def group(self) -> tuple:
        return (self.window, self.filters, self.fan_out)

    def describe(self, vendor_names: Mapping[int, str] | None = None) -> str:
        """The rule in words: "GMV over the last 24 hours is below €1,000.00"; vendors filtered on are
        named from vendor_names where it has them ("Acme (vendor 12)")."""
        m = get_metric(self.metric)
        names = vendor_names or {}

        def label(d: str, v) -> str:
            return f"{names[int(v)]} (vendor {v})" if d == "vendor_id" and int(v) in names else str(v)
        parts = [DIMENSIONS.get(d, d) + ": " + ", ".join(label(d, x) for x in v) for d, v in self.filters]
        where = f" ({'; '.join(parts)})" if parts else ""
        each = f" for each {FAN_OUTS[self.fan_out].lower()}" if self.fan_out else ""
        head = f"{m.label}{where}{each}, {WINDOWS[self.window].lower()},"
        if self.condition in ("above", "below"):
            return f"{head} {CONDITIONS[self.condition]} {format_value(self.metric, self.threshold, compact=False)}"
        if self.condition in CHANGES:
            return f"{head} {CONDITIONS[self.condition]} {self.threshold:g} % against {BASELINES[self.baseline]}"
        return f"{head} {CONDITIONS[self.condition]}"


def check_spec(spec: Spec) -> Spec:
    """Returns spec if it can be evaluated; raises AlertError naming the field."""
    if spec.metric not in METRICS:
        raise AlertError(f"metric: choose one of {', '.join(m.label for m in METRICS.values())}")
    if spec.window not in WINDOWS:
        raise AlertError(f"window: choose one of {', '.join(WINDOWS.values())}")
    if spec.condition not in CONDITIONS:
        raise AlertError(f"condition: choose one of {', '.join(CONDITIONS.values())}")
    if spec.fan_out and spec.fan_out not in FAN_OUTS:
        raise AlertError(f"for each: choose {', '.join(FAN_OUTS.values())} or nothing")
    m = get_metric(spec.metric)
    if spec.window in SPANS and set(m.bases) & {*CUSTOMER_BASES, *TRAFFIC_BASES}:
        raise AlertError(f"window: {m.label} is counted per day; choose a window of whole days "
                         f"(yesterday, the last 7 or 30 days, or today, week or month to date)")
    if spec.fan_out and "sessions" in m.bases:
        raise AlertError(f"for each: {m.label} needs sessions, which are known per channel only")
    if "sessions" in m.bases and any(d != "channel" for d, _ in spec.filters):
        raise AlertError(f"filters: {m.label} needs sessions, which are known per channel only; filter by channel "
                         "or nothing")
    try:
        Filters.make(Period(date.today(), date.today()), **{d: list(v) for d, v in spec.filters})
    except FilterError as ex:
        raise AlertError(f"filters: {ex}") from None
    if spec.condition == "outside_forecast":
        if spec.metric not in ANOMALY_METRICS:
            raise AlertError(f"metric: forecasts are stored for {', '.join(METRICS[k].label for k in ANOMALY_METRICS)} "
                             "only; choose one of those for an anomaly alert")
        if spec.window != "yesterday":
            raise AlertError("window: a forecast band is per day; choose Yesterday (the last whole day)")
        if spec.filters:
            raise AlertError("filters: forecasts are stored for the whole marketplace or one dimension value; "
                             "use For each instead of filters")
        if spec.baseline:
            raise AlertError("compared with: a forecast band is compared with the forecast itself")
        return spec
    if spec.threshold is None or spec.threshold != spec.threshold or abs(spec.threshold) == float("inf"):
        raise AlertError("threshold: give a number")
    if spec.condition in CHANGES:
        if spec.baseline not in BASELINES:
            raise AlertError(f"compared with: choose {' or '.join(BASELINES.values())}")
        if spec.window in TO_DATE:
            raise AlertError(f"window: {WINDOWS[spec.window]} is a period still running, and its comparison would "
                             "be whole days; compare whole windows (last hour or 24 hours, yesterday, the last 7 or "
                             "30 days)")
        if spec.threshold <= 0:
            raise AlertError("threshold: a change is a positive percentage, such as 20 for 20 %")
    elif spec.baseline:
        raise AlertError("compared with: only a change (rises or falls by) is compared with another window")
    return spec


@dataclass(slots=True)
class Observation:
    """One instance's evaluation: the value, what it was compared with, and the outcome."""
    value: float | None
    outcome: str                       # breach, clear, no_data or error
    baseline: float | None = None      # the other window's value, or the forecast
    band: tuple[float, float] | None = None
    change: float | None = None        # percent
    message: str = ""


def judge(spec: Spec, value: float | None, baseline: float | None = None,
          band: tuple[float, float, float] | None = None) -> Observation:
    """Returns the observation of one value against the spec's condition."""
    if value is None or value != value:
        return Observation(None, "no_data", message="no value in the window")
    if spec.condition == "above":
        return Observation(value, "breach" if value > spec.threshold else "clear")
    if spec.condition == "below":
        return Observation(value, "breach" if value < spec.threshold else "clear")
    if spec.condition in CHANGES:
        if baseline is None or baseline != baseline or baseline == 0:
            return Observation(value, "no_data", baseline, message="nothing to compare with in the other window")
        change = (value - baseline) / abs(baseline) * 100
        hit = change > spec.threshold if spec.condition == "rises_by" else change < -spec.threshold
        return Observation(value, "breach" if hit else "clear", baseline, change=change)
    if band is None:
        return Observation(value, "no_data", message="no stored forecast covers the day")
    yhat, lower, upper = band
    return Observation(value, "breach" if not lower <= value <= upper else "clear", yhat, (lower, upper))


def _filters(spec_filters: tuple, w: Window) -> Filters:
    period = w.period or Period(w.span[0].date(), w.span[1].date())
    return Filters.make(period, **{d: list(v) for d, v in spec_filters})


def fetch_fan_values(conn: Connection, fan_out: str, filters: tuple) -> list[str]:
    """Returns the values a fan-out covers: those its filters name, else every value (every vendor
    not closed)."""
    named = dict(filters).get(fan_out)
    if named:
        return [str(v) for v in named]
    if fan_out == "region":
        return fetch_distinct_values(conn, "region")
    sql = {"vendor_id": "SELECT vendor_id::text FROM mart.vendors WHERE status <> 'closed' ORDER BY vendor_id",
           "category": "SELECT DISTINCT category FROM mart.products ORDER BY 1"}[fan_out]
    return [r[0] for r in conn.execute(sa.text(sql))]


_EMPTY: dict[str, float | None] = {}


def fetch_empty_values(conn: Connection, metrics: tuple[str, ...]) -> dict[str, float | None]:
    """Returns each metric's value over no rows (its glossary formula over zero measures; worked
    out once per process)."""
    if not all(m in _EMPTY for m in metrics):
        zeros = ", ".join(f"0::float8 AS {b}" for b in (*SALES_BASES, *CUSTOMER_BASES, *TRAFFIC_BASES))
        cols = ", ".join(f"({m.sql})::float8 AS {k}" for k, m in METRICS.items())
        _EMPTY.update(conn.execute(sa.text(f"SELECT {cols} FROM (SELECT {zeros}) b")).mappings().one())
    return {m: _EMPTY[m] for m in metrics}


def fetch_window_metrics(conn: Connection, window: Window, filters: tuple, fan_out: str, metrics: tuple[str, ...],
                         tz: str, values: list[str] | None = None, layout: int | None | str = READ_LAYOUT,
                         lines: str | None = None) -> dict[str, dict[str, float | None]]:
    """Returns {fan value ('' without fan-out): {metric: value}} for the window: one query.

    fetch_aggregate's query, its rows read as tuples: 1,000 rules read 245 results a tick, and building
    a DataFrame for each cost 2.5 s of a 13 s tick at 10M lines (profiled)."""
    if layout == READ_LAYOUT and window.span is None:
        layout = fetch_rollup_layout(conn, tz)
    q = aggregate_query(_filters(filters, window), window.period,
                        layout=None if layout == READ_LAYOUT else layout, tz=tz,
                        by=fan_out or None, metrics=metrics, span=window.span, lines=lines)
    rows = conn.execute(sa.text(f"SELECT key, {', '.join(metrics)} FROM ({q.sql}) a ORDER BY key"), q.params).all()
    out = {("" if not fan_out else str(k)): {m: (None if v is None or v != v else float(v))
                                             for m, v in zip(metrics, vals)}
           for k, *vals in rows}
    if fan_out:
        known = values if values is not None else fetch_fan_values(conn, fan_out, filters)
        missing = [v for v in known if v not in out]
        if missing:
            empty = fetch_empty_values(conn, metrics)   # one dict shared by every value without orders (read only)
            out.update(dict.fromkeys(missing, empty))
    return out


def fetch_forecast_bands(conn: Connection, metric: str, fan_out: str,
                         day: date) -> dict[str, tuple[float, float, float]]:
    """Returns {fan value: (forecast, lower, upper)} from the latest stored daily forecast made by
    `day` that covers it."""
    rows = conn.execute(sa.text("""
        SELECT DISTINCT ON (r.dim_value) r.dim_value, p.yhat, p.yhat_lower, p.yhat_upper
        FROM mart.forecast_runs r JOIN mart.forecast_points p USING (run_id)
        WHERE r.metric = :m AND r.grain = 'day' AND r.dim = :dim AND p.ds = :day AND r.run_date <= :day
        ORDER BY r.dim_value, r.run_date DESC, r.run_id DESC"""), {"m": metric, "dim": fan_out, "day": day})
    return {r[0]: (float(r[1]), float(r[2]), float(r[3])) for r in rows}


SPAN_TABLE = "alert_span_lines"
SPAN_LINES = f"pg_temp.{SPAN_TABLE}"
# Copying the lines of the span windows' hours once pays when the queries read at least this
# many times as many hours as the copy holds. Measured at 10M lines: a copy costs 7 ms an hour of
# orders, and a 24-hour query reading the copy saves 50 ms (93 -> 34 ms by vendor, 63 -> 20 ms
# for the total), 2 ms an hour.
SHARE_SPAN_LINES_AT = 4


def span_ranges(groups: dict[tuple, list[int]], specs: list[Spec], now: datetime,
                tz: str) -> tuple[list[tuple[datetime, datetime]], float]:
    """Returns the time ranges the groups' span windows (and their baselines) read, merged, and
    how many hours their queries read in all."""
    spans = []
    for (window, _, _), idx in groups.items():
        if window in SPANS:
            spans.append(resolve_window(window, now, tz).span)
            # A baseline check_spec would refuse fails its group in _evaluate_group, not here.
            spans += [baseline_window(window, b, now, tz).span
                      for b in dict.fromkeys(specs[i].baseline for i in idx if specs[i].condition in CHANGES)
                      if b in BASELINES]
    merged: list[tuple[datetime, datetime]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged, sum((b - a).total_seconds() for a, b in spans) / 3600


def copy_span_lines(conn: Connection, ranges: list[tuple[datetime, datetime]]) -> str:
    """Copies the order lines placed in the ranges (every column the measures read, orders without
    lines included) into a temporary table and returns its name, for aggregate_query(lines=...).
    The caller drops it (drop_span_lines)."""
    where = " OR ".join(f"(o.ordered_at >= :a{k} AND o.ordered_at < :b{k})" for k in range(len(ranges)))
    params = {f"{end}{k}": t for k, r in enumerate(ranges) for end, t in zip("ab", r)}
    # Kept past a commit (a caller in autocommit would lose it at once) and dropped by the caller.
    # The row counts of time ranges are what the plans need; statistics of every column cost
    # 340 ms of a 550 ms copy at 10M lines.
    stage_temp_table(conn, SPAN_TABLE, f"SELECT {raw_columns()} FROM {RAW_FROM} WHERE {where}", params,
                     on_commit_drop=False, analyze="ordered_at")
    conn.execute(sa.text(f"CREATE INDEX ON {SPAN_LINES} (ordered_at)"))
    return SPAN_LINES


def drop_span_lines(conn: Connection) -> None:
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {SPAN_LINES}"))


@dataclass
class Batch:
    """The result of evaluating many specs at one time: observations per spec, and the queries run."""
    observations: list[dict[str, Observation]]
    queries: int = 0
    errors: dict[int, str] = field(default_factory=dict)   # spec index -> why it could not be evaluated


def evaluate(conn: Connection, specs: list[Spec], now: datetime, *, tz: str,
             layout: int | None | str = READ_LAYOUT) -> Batch:
    """Evaluates every spec at `now`, one query per group and window (see the module docstring).
    A group whose query fails marks its specs' evaluation as failed (Batch.errors) and the others
    go on (each group in its own savepoint). Groups run one after the other: side by side on two
    connections they took 12.6 s against 14.1 s at 10M lines on two cores (three and four
    connections no better), the order-line scans already using the server's parallel workers.
    layout: the rollups' layout when the caller read it (a vendor's role cannot read schema app, nor
    make the temporary copy of the span windows' lines: its groups read their own few lines)."""
    batch = Batch([{} for _ in specs])
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(specs):
        groups[s.group].append(i)
    values: dict[tuple, list[str]] = {}     # (fan-out, values named by filters) -> its values, read once a batch
    layout, lines = _batch_setup(conn, groups, specs, now, tz) if layout == READ_LAYOUT else (layout, None)
    results = []
    try:
        for (window, filters, fan_out), idx in groups.items():
            named = dict(filters).get(fan_out)
            try:
                with conn.begin_nested():
                    if fan_out and (fan_out, named) not in values:
                        values[fan_out, named] = fetch_fan_values(conn, fan_out, filters)
                    obs, queries = _evaluate_group(conn, [specs[i] for i in idx], window, filters, fan_out, now, tz,
                                                   values.get((fan_out, named)), layout, lines)
                results.append((idx, obs, queries))
            except Exception as ex:  # noqa: BLE001 - reported on the group's rules; the other groups go on
                results.append((idx, str(ex) if isinstance(ex, (FilterError, AlertError))
                                else f"{type(ex).__name__}: {ex}", 0))
    finally:
        if lines:
            try:
                with conn.begin_nested():
                    drop_span_lines(conn)
            except Exception:  # noqa: BLE001 - the transaction failed already; the table goes with the session
                log.exception("alerts: could not drop %s", SPAN_LINES)
    for idx, obs, queries in results:
        batch.queries += queries
        for k, i in enumerate(idx):
            if isinstance(obs, str):
                batch.errors[i] = obs
            else:
                batch.observations[i] = obs[k]
    return batch


def _batch_setup(conn: Connection, groups: dict[tuple, list[int]], specs: list[Spec], now: datetime,
                 tz: str) -> tuple[int | None | object, str | None]:
    """Returns what a batch's queries share: the rollups' layout (read once, not once a query)
    and the copy of the span windows' lines when it pays (SHARE_SPAN_LINES_AT), else None. In a
    savepoint: if it fails, each group reads the layout itself and the tables instead of a copy,
    and a group that fails then fails alone, as without it."""
    try:
        with conn.begin_nested():
            layout = fetch_rollup_layout(conn, tz)
            ranges, hours = span_ranges(groups, specs, now, tz)
            copied = sum((b - a).total_seconds() for a, b in ranges) / 3600
            lines = copy_span_lines(conn, ranges) if ranges and hours >= SHARE_SPAN_LINES_AT * copied else None
        return layout, lines
    except Exception:  # noqa: BLE001 - the groups read the layout and the tables as they would without
        log.exception("alerts: the batch's layout or span lines could not be read; each group reads its own")
        return READ_LAYOUT, None


def _evaluate_group(conn: Connection, specs: list[Spec], window: str, filters: tuple, fan_out: str, now: datetime,
                    tz: str, values: list[str] | None, layout: int | None | object, lines: str | None = None
                    ) -> tuple[dict[int, dict[str, Observation]], int]:
    """Returns ({position in specs: {fan value: observation}}, queries run) for one group."""
    metrics = tuple(dict.fromkeys(s.metric for s in specs))
    current = fetch_window_metrics(conn, resolve_window(window, now, tz), filters, fan_out, metrics, tz, values, layout,
                                   lines)
    queries = 1
    others: dict[str, dict] = {}
    for base in dict.fromkeys(s.baseline for s in specs if s.condition in CHANGES):
        others[base] = fetch_window_metrics(conn, baseline_window(window, base, now, tz), filters, fan_out,
                                            tuple(dict.fromkeys(s.metric for s in specs if s.baseline == base)), tz,
                                            values, layout, lines)
        queries += 1
    bands: dict[str, dict] = {}
    day = resolve_window(window, now, tz).period.start if window == "yesterday" else None
    for m in dict.fromkeys(s.metric for s in specs if s.condition == "outside_forecast"):
        bands[m] = fetch_forecast_bands(conn, m, fan_out, day)
        queries += 1
    out = {}
    # One pass per spec over its fan-out values (414k judgements a tick in the benchmark): what
    # the condition compares with is looked up outside the loop.
    for k, s in enumerate(specs):
        m = s.metric
        if s.condition in CHANGES:
            other = others[s.baseline]
            out[k] = {fan: judge(s, row.get(m), other.get(fan, _NOTHING).get(m)) for fan, row in current.items()}
        elif s.condition == "outside_forecast":
            band = bands[m]
            out[k] = {fan: judge(s, row.get(m), band=band.get(fan)) for fan, row in current.items()}
        else:
            out[k] = {fan: judge(s, row.get(m)) for fan, row in current.items()}
    return out, queries


_NOTHING: dict = {}


# --- preview ---------------------------------------------------------------------------------------

@dataclass
class Preview:
    frame: pd.DataFrame        # at, fan_value, value, baseline, lower, upper, outcome, state, notify
    fired: int                 # notifications of FIRING over the replay
    points: int                # evaluations replayed
    step: timedelta


def preview_times(spec: Spec, now: datetime, interval: timedelta, tz: str, days: int = 30,
                  max_points: int = 240) -> tuple[list[datetime], timedelta]:
    """Returns the evaluation times a preview replays: every interval over the last `days` days,
    no more than max_points of them, and one a day (at the day's end) for whole-day windows, whose
    value changes once a day."""
    if spec.window in SPANS:
        step = max(interval, timedelta(hours=1), timedelta(days=days) / max_points)
        first = now - timedelta(days=days)
        n = int((now - first) / step)
        return [now - step * k for k in range(n, -1, -1)], step
    z = ZoneInfo(tz)
    today = local_today(z, now)
    ends = [datetime.combine(today - timedelta(days=k), datetime.max.time(), z).replace(microsecond=0)
            for k in range(days, 0, -1)]
    # Whole-day windows other than "to date" ones see the day only once it is over: evaluate at the
    # start of the next day, which is what an evaluation that day sees all day.
    if spec.window in ("yesterday", "last_7d", "last_30d"):
        ends = [e + timedelta(seconds=1) for e in ends]
    return ends, timedelta(days=1)


def preview(conn: Connection, spec: Spec, *, now: datetime, interval: timedelta, for_evaluations: int = 1,
            tz: str, days: int = 30, progress: Callable[[float], None] | None = None,
            layout: int | None | str = READ_LAYOUT) -> Preview:
    """Replays the spec over the last `days` days through the state machine: how often it would
    have fired, and the values it would have seen (for the chart)."""
    times, stride = preview_times(spec, now, interval, tz, days)
    # The replay steps by stride, the rule by interval: `for` evaluations in a row last
    # for × interval, which is this many replayed steps.
    rule = Rule(for_evaluations=max(1, math.ceil(for_evaluations * interval / stride)), notify_on_resolve=True)
    states: dict[str, Instance] = {}
    rows, fired = [], 0
    for k, at in enumerate(times):
        b = evaluate(conn, [spec], at, tz=tz, layout=layout)
        if b.errors:
            raise AlertError(f"preview: {b.errors[0]}")
        for fan, o in b.observations[0].items():
            inst = states.get(fan, Instance())
            st = step(inst, o.outcome, rule, at)
            states[fan] = Instance(st.state, st.pending, st.last_notified_at)
            fired += st.notify == "firing"
            rows.append({"at": at, "fan_value": fan, "value": o.value, "baseline": o.baseline,
                         "lower": o.band[0] if o.band else None, "upper": o.band[1] if o.band else None,
                         "outcome": o.outcome, "state": st.state, "notify": st.notify})
        if progress:
            progress((k + 1) / len(times))
    return Preview(pd.DataFrame(rows, columns=["at", "fan_value", "value", "baseline", "lower", "upper", "outcome",
                                               "state", "notify"]), fired, len(times), stride)
