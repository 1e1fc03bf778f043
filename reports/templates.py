"""Report templates: what a report holds, built from the same analytics functions as the pages,
and rendered to CSV, Excel, PDF or JSON.

A spec is plain JSON (stored with exports and schedules):
    {"period": "last_7_days", "filters": {"category": [...], "vendor_id": [...]},
     "query_id": 12, "query_params": {...},            # saved_query
     "metric": "gmv", "dim": "", "value": ""}          # forecast
Periods are relative (reports.periods) and resolved when the report runs.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import BinaryIO
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from analytics import forecast_series as FS
from analytics.customer_scores import fetch_stored_at_risk, fetch_stored_scores
from analytics.filters import DIMENSIONS, PERIOD_PRESETS, FilterError, Filters, Period
from analytics.forecast_series import FORECAST_DIMS, FORECAST_METRICS
from analytics.forecasting import ForecastError
from analytics.kpis import (READ_LAYOUT, fetch_breakdown, fetch_kpis, fetch_rollup_layout, fetch_trend,
                            fetch_vendor_names)
from analytics.metrics import METRICS, format_change, format_value
from analytics.query import QueryRejected, copy_csv, open_query, run_query
from analytics.sql_params import bind_parameters
from analytics.vendor_portal import compute_vendor_overview
from analytics.vendors import fetch_vendor_info
from data import peer_benchmarks as PB
from data.calendar import local_today
from data.saved_queries import fetch_visible_query
from data.settings import load_settings
from reports.exporters import BATCH, XlsxBook, frame_batches, json_value, write_csv, write_json, write_rows
from reports.pdf import render_pdf
from reports.periods import RELATIVE_PERIODS, PeriodError, resolve

FORMATS = ("csv", "xlsx", "pdf", "json")
PDF_MAX_ROWS = 5_000          # a PDF is for reading: longer results belong in CSV or Excel
# A saved query's export runs in the background: its statement may take longer than the SQL page's
# 30 s (a COPY of tens of millions of rows is one statement). The role's temp_file_limit still holds.
EXPORT_TIMEOUT_MS = 2 * 3600 * 1000
SALES_METRICS = ("gmv", "net_revenue", "take_revenue", "orders", "aov")
VENDOR_METRICS = ("gmv", "net_revenue", "take_revenue", "orders", "aov", "refund_rate", "cancellation_rate",
                  "gross_margin")
AT_RISK_COLUMNS = ("customer_id", "rfm_segment", "orders", "gmv", "first_day", "last_day", "days_since", "p_alive",
                   "expected_90", "clv_12m", "value_at_risk")
FAN_OUT = {"vendor": "vendor_id", "category": "category"}
PERIOD_LABELS = {name: p.label for name, p in PERIOD_PRESETS.items()}


class ReportError(ValueError):
    """A report cannot be made as asked; the message says what to change."""


@dataclass
class Table:
    name: str
    columns: list[str]
    source: Callable[[], Iterable[Sequence[tuple]]]   # a fresh iterator of row batches on each call
    pdf_columns: list[str] | None = None

    def batches(self) -> Iterable[Sequence[tuple]]:
        return self.source()

    @classmethod
    def of(cls, name: str, frame: pd.DataFrame, pdf_columns: list[str] | None = None) -> "Table":
        return cls(name, [str(c) for c in frame.columns], lambda: frame_batches(frame), pdf_columns)


@dataclass
class Chart:
    title: str
    kind: str                 # line | bar
    x: list
    y: list
    y2: list | None = None
    y2_label: str = ""


@dataclass
class Report:
    template: str
    title: str
    period: Period | None
    filters: str
    generated: str
    kpis: list[tuple[str, str, str, str]] = field(default_factory=list)   # label, value, previous, change
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    summary: pd.DataFrame | None = None      # the KPIs as numbers (Excel and JSON)
    query: tuple[str, dict] | None = None    # saved_query: (sql with :binds, bound values), streamed
    about: dict = field(default_factory=dict)

    @property
    def period_label(self) -> str:
        return self.period.label() if self.period else "as stored"


@dataclass(frozen=True)
class Template:
    key: str
    label: str
    formats: tuple[str, ...]
    build: Callable   # (conn, spec, filters or None, *, user, tz[, layout]) -> the Report's parts
    uses_filters: bool = True
    uses_period: bool = True
    # Reads only what a vendor's database role may read (tables keyed by vendor), and takes the
    # rollups' layout from its caller: it can be made on a vendor's role ("to every vendor").
    vendor_scoped: bool = False


# --- specs -----------------------------------------------------------------------------------------

def check_spec(template: str, spec: dict, fmt: str) -> dict:
    """Returns spec cleaned; raises ReportError naming the field that is wrong."""
    if template not in TEMPLATES:
        raise ReportError(f"template: unknown report {template!r}; choose one of {', '.join(TEMPLATES)}")
    t = TEMPLATES[template]
    if fmt not in t.formats:
        raise ReportError(f"format: {t.label} comes as {', '.join(f.upper() for f in t.formats)}, not {fmt!r}")
    spec = dict(spec or {})
    if t.uses_period:
        spec.setdefault("period", "last_7_days")
        if spec["period"] not in RELATIVE_PERIODS:
            raise ReportError(f"period: choose one of {', '.join(RELATIVE_PERIODS)}, not {spec['period']!r}")
    filters = spec.get("filters") or {}
    if not isinstance(filters, dict):
        raise ReportError("filters: expected {dimension: [values]}")
    for dim, values in filters.items():
        if dim not in DIMENSIONS:
            raise ReportError(f"filters: unknown dimension {dim!r}; filters are {', '.join(DIMENSIONS)}")
        if not isinstance(values, list):
            raise ReportError(f"filters: {dim} needs a list of values")
    spec["filters"] = {d: v for d, v in filters.items() if v}
    if template == "saved_query":
        try:
            spec["query_id"] = int(spec.get("query_id"))
        except (TypeError, ValueError):
            raise ReportError("query: choose a saved query") from None
        spec.setdefault("query_params", {})
    if template == "forecast":
        spec.setdefault("metric", "gmv")
        if spec["metric"] not in FORECAST_METRICS:
            raise ReportError(f"metric: forecasts exist for {', '.join(FORECAST_METRICS)}, not {spec['metric']!r}")
        spec.setdefault("dim", "")
        spec.setdefault("value", "")
        if spec["dim"] not in FORECAST_DIMS or bool(spec["dim"]) != bool(spec["value"]):
            raise ReportError("series: choose the total, or a dimension with a value")
    return spec


def _filters(conn: Connection, spec: dict, period: Period) -> tuple[Filters, str]:
    dims = dict(spec.get("filters") or {})
    try:
        f = Filters.make(period, comparison="previous", grain="day", **dims)
    except FilterError as ex:
        raise ReportError(f"filters: {ex}") from None
    words = []
    for dim, values in f.dims:
        if dim == "vendor_id":
            names = fetch_vendor_names(conn, [int(v) for v in values])
            values = [names.get(int(v), str(v)) for v in values]
        words.append(f"{DIMENSIONS.get(dim, dim)}: {', '.join(map(str, values))}")
    return f, "; ".join(words)


def _generated(now: datetime, tz: str) -> str:
    return now.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


# --- templates -------------------------------------------------------------------------------------

def _kpi_rows(conn: Connection, f: Filters, tz: str) -> tuple[list, pd.DataFrame]:
    return _kpi_parts(fetch_kpis(conn, f, tz=tz))


def _kpi_parts(k: pd.DataFrame) -> tuple[list, pd.DataFrame]:
    """A report's KPI rows (label, value, previous, change) and its summary, from (metric, current,
    previous) rows."""
    rows = [(METRICS[m].label, format_value(m, cur, compact=False), format_value(m, prev, compact=False),
             format_change(m, cur, prev) or "–") for m, cur, prev in zip(k["metric"], k["current"], k["previous"])]
    summary = pd.DataFrame({"metric": [METRICS[m].label for m in k["metric"]], "value": k["current"],
                            "previous_period": k["previous"]})
    return rows, summary


def _only(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """fetch_aggregate's rows also carry the base measures behind the metrics: keep the key and the metrics."""
    return frame[["key", *metrics]]


def _named_vendors(conn: Connection, frame: pd.DataFrame) -> pd.DataFrame:
    info = fetch_vendor_info(conn, [int(v) for v in frame["key"]])[["vendor_id", "name", "category"]]
    out = frame.rename(columns={"key": "vendor_id"}).merge(info, on="vendor_id", how="left")
    return out[["vendor_id", "name", "category", *[c for c in frame.columns if c != "key"]]]


def build_kpi_summary(conn: Connection, spec: dict, f: Filters, *, user: str, tz: str) -> dict:
    kpis, summary = _kpi_rows(conn, f, tz)
    trend = fetch_trend(conn, f, ("gmv",), grain="day", tz=tz)
    before = fetch_trend(conn, f, ("gmv",), period=f.compare, grain="day", tz=tz) if f.compare else None
    cats = _only(fetch_breakdown(conn, f, "category", ("gmv", "orders"), limit=10, tz=tz), ("gmv", "orders"))
    cats = cats.rename(columns={"key": "category"})
    vendors = _named_vendors(conn, _only(fetch_breakdown(conn, f, "vendor_id", ("gmv", "orders"), limit=10, tz=tz),
                                         ("gmv", "orders")))
    charts = [Chart("GMV per day (dashed: the period before)", "line", list(trend["key"]), list(trend["gmv"]),
                    list(before["gmv"])[:len(trend)] if before is not None and len(before) >= len(trend) else None,
                    "period before"),
              Chart("Top categories by GMV", "bar", list(cats["category"]), list(cats["gmv"]))]
    return dict(kpis=kpis, summary=summary, charts=charts,
                tables=[Table.of("Top categories", cats), Table.of("Top vendors", vendors.drop(columns="vendor_id"))])


def build_sales(conn: Connection, spec: dict, f: Filters, *, user: str, tz: str) -> dict:
    kpis, summary = _kpi_rows(conn, f, tz)
    day = _only(fetch_trend(conn, f, SALES_METRICS, grain="day", tz=tz), SALES_METRICS).rename(columns={"key": "day"})
    tables = [Table.of("By day", day)]
    for by, name in (("category", "By category"), ("vendor_id", "By vendor"), ("channel", "By channel")):
        t = _only(fetch_breakdown(conn, f, by, SALES_METRICS, tz=tz), SALES_METRICS)
        t = _named_vendors(conn, t) if by == "vendor_id" else t.rename(columns={"key": by})
        tables.append(Table.of(name, t))
    charts = [Chart("GMV per day", "line", list(day["day"]), list(day["gmv"]))]
    return dict(kpis=kpis, summary=summary, tables=tables, charts=charts)


def build_vendor_performance(conn: Connection, spec: dict, f: Filters, *, user: str, tz: str) -> dict:
    cur = _only(fetch_breakdown(conn, f, "vendor_id", VENDOR_METRICS, tz=tz), VENDOR_METRICS)
    prev = _only(fetch_breakdown(conn, f, "vendor_id", ("gmv",), period=f.compare, tz=tz), ("gmv",))
    prev = prev.rename(columns={"gmv": "gmv_prev"})
    t = _named_vendors(conn, cur.merge(prev, on="key", how="left"))
    t["gmv_growth"] = (t["gmv"] / t["gmv_prev"].where(t["gmv_prev"] > 0) - 1).astype("float64")
    t = t.sort_values("gmv", ascending=False).reset_index(drop=True)
    t.insert(0, "rank", range(1, len(t) + 1))
    t = t.drop(columns="gmv_prev")
    pdf = ["rank", "name", "category", "gmv", "gmv_growth", "orders", "aov", "refund_rate", "cancellation_rate"]
    top = t.head(15)
    return dict(tables=[Table.of("Vendors", t, pdf_columns=pdf)],
                charts=[Chart("Top 15 vendors by GMV", "bar", list(top["name"]), list(top["gmv"]))])


# The peer benchmarks a vendor's report shows: its own period's where they are kept, else these.
REPORT_BENCHMARKS = "last_30_days"


def build_vendor_report(conn: Connection, spec: dict, f: Filters, *, user: str, tz: str,
                        layout: int | None) -> dict:
    """One vendor's own report, the portal's figures (analytics.vendor_portal): KPIs with the period
    before, GMV per day, top products, categories and the peer benchmarks. Needs exactly one
    vendor in the filters (a schedule "to every vendor" sets it per run)."""
    ids = tuple(int(v) for v in f.dim_map.get("vendor_id", ()))
    if len(ids) != 1 or set(f.dim_map) != {"vendor_id"}:
        raise ReportError("filters: a vendor's report is about exactly one vendor and no other filter: choose "
                          "one vendor, or send the schedule to every vendor")
    fig = compute_vendor_overview(conn, f, ids, tz=tz, layout=layout)
    kpis, summary = _kpi_parts(fig.kpis)
    products = fig.top_products[["sku", "name", "category", "gmv", "units", "orders", "refund_rate"]]
    categories = fig.categories[["category", "gmv", "orders", "units", "net_revenue"]]
    preset = spec.get("period") if spec.get("period") in PB.PRESETS else REPORT_BENCHMARKS
    bench = PB.fetch_vendor_benchmarks(conn, preset, list(ids))   # the app's role reads every vendor's rows
    bench = bench[["metric", "value", "p25", "median", "p75", "rank", "peers", "percentile", "period_start",
                   "period_end"]].astype({"rank": "Int64", "peers": "Int64"})
    bench["metric"] = bench["metric"].map(PB.LABELS)
    day = fig.trend.rename(columns={"key": "day"})
    return dict(kpis=kpis, summary=summary,
                charts=[Chart("GMV per day", "line", list(day["day"]), list(day["gmv"]))],
                tables=[Table.of("Top products", products), Table.of("Categories", categories),
                        Table.of(f"Peer benchmarks ({PERIOD_LABELS[preset].lower()}; quartiles of at least "
                                 f"{PB.MIN_PEERS} vendors of the category)", bench)],
                note=f"{fig.vendor_names.get(ids[0], ids[0])}: its own order lines only")


def _stored_scores(conn: Connection):
    stored = fetch_stored_scores(conn)
    if stored is None:
        raise ReportError("no customer scores are stored yet: the scheduler stores them every night "
                          "(CUSTOMER_SCORES_AT), or run `python -m reports.scheduler --once`")
    return stored


def build_customer_segments(conn: Connection, spec: dict, f: Filters | None, *, user: str, tz: str) -> dict:
    stored = _stored_scores(conn)
    seg = stored.segments.copy()
    return dict(tables=[Table.of("Segments", seg)], period=Period(stored.as_of, stored.as_of),
                note=f"customer scores as of {stored.as_of}; filters do not apply (the nightly scores cover every customer)")


def build_at_risk(conn: Connection, spec: dict, f: Filters | None, *, user: str, tz: str) -> dict:
    stored = _stored_scores(conn)
    risk = fetch_stored_at_risk(conn, stored.run_id, limit=None)
    risk = risk[[c for c in AT_RISK_COLUMNS if c in risk.columns]]
    pdf = ["customer_id", "rfm_segment", "orders", "gmv", "days_since", "p_alive", "clv_12m", "value_at_risk"]
    return dict(tables=[Table.of("At-risk customers", risk, pdf_columns=pdf)], period=Period(stored.as_of, stored.as_of),
                note=f"customer scores as of {stored.as_of}; filters do not apply")


def build_forecast(conn: Connection, spec: dict, f: Filters | None, *, user: str, tz: str) -> dict:
    s = FS.Series(spec.get("metric", "gmv"), "day", spec.get("dim", ""), str(spec.get("value", "")))
    runs = FS._runs(conn, s, "", {})
    if runs:
        stored = FS.fetch_stored_forecast(conn, s, run_date=runs[0]["run_date"], horizon=runs[0]["horizon"])
        fc, made = stored.forecast, f"stored forecast of {stored.run_date}"
    else:
        try:
            fc = FS.compute_series_forecast(conn, s, last_day=local_today(tz) - timedelta(days=1),
                                            horizon=FS.DEFAULT_HORIZON["day"], tz=tz)
        except ForecastError as ex:
            raise ReportError(f"forecast: {ex}") from None
        made = "forecast made now (none stored for this series)"
    points = fc.frame.rename(columns={"ds": "day", "yhat": "forecast", "yhat_lower": "lower", "yhat_upper": "upper"})
    points["day"] = pd.to_datetime(points["day"]).dt.date
    label = FS.metric_label(s.metric) + (f" · {FS.FORECAST_DIMS[s.dim]} {s.value}" if s.dim else " · total")
    return dict(tables=[Table.of("Forecast", points), Table.of("Backtest", fc.backtest)],
                charts=[Chart(f"{label}: forecast with its band", "line", list(points["day"]), list(points["forecast"]),
                              list(points["upper"]), "upper bound")],
                period=Period(points["day"].min(), points["day"].max()) if len(points) else None,
                note=f"{label}; model {fc.model}; {made}")


def build_saved_query(conn: Connection, spec: dict, f: Filters | None, *, user: str, tz: str) -> dict:
    q = fetch_visible_query(conn, user, int(spec["query_id"]))
    if q is None:
        raise ReportError("query: the saved query is gone, or no longer shared with the schedule's owner")
    try:
        sql, params = bind_parameters(q["sql"], spec.get("query_params") or {})
    except QueryRejected as ex:
        raise ReportError(f"query parameters: {ex}") from None
    return dict(query=(sql, params), title=q["name"], sql=q["sql"],
                note="query parameters: " + (json.dumps(spec.get("query_params")) if spec.get("query_params") else "none"))


TEMPLATES: dict[str, Template] = {t.key: t for t in [
    Template("kpi_summary", "KPI summary", ("pdf", "xlsx", "json"), build_kpi_summary),
    Template("sales", "Sales (by day, category, vendor, channel)", ("xlsx", "pdf", "json"), build_sales),
    Template("vendor_performance", "Vendor performance", ("xlsx", "csv", "pdf", "json"), build_vendor_performance),
    Template("customer_segments", "Customer segments", ("csv", "xlsx", "json", "pdf"), build_customer_segments,
             uses_filters=False, uses_period=False),
    Template("at_risk_customers", "At-risk customers", ("csv", "xlsx", "json"), build_at_risk,
             uses_filters=False, uses_period=False),
    Template("forecast", "Forecast", ("xlsx", "csv", "json", "pdf"), build_forecast, uses_filters=False,
             uses_period=False),
    Template("saved_query", "A saved query", FORMATS, build_saved_query, uses_filters=False, uses_period=False),
    Template("vendor_report", "A vendor's own report (KPIs, products, peer benchmarks)", ("pdf", "xlsx", "json"),
             build_vendor_report, vendor_scoped=True),
]}


def build(conn: Connection, template: str, spec: dict, fmt: str, *, user: str, now: datetime | None = None,
          tz: str | None = None, layout: int | None | str = READ_LAYOUT) -> Report:
    """Builds the report the spec asks for, its relative period resolved at `now` in tz
    (APP_TIMEZONE by default). layout: the rollups' layout, read by the caller when conn is a
    vendor's role (which cannot read schema app; only vendor_scoped templates are made there).
    Raises ReportError."""

    tz = tz or load_settings().timezone
    now = now or datetime.now(timezone.utc)
    spec = check_spec(template, spec, fmt)
    t = TEMPLATES[template]
    period, f, words = None, None, ""
    if t.uses_period:
        try:
            period = resolve(spec["period"], local_today(tz, now))
        except PeriodError as ex:
            raise ReportError(f"period: {ex}") from None
        f, words = _filters(conn, spec, period)
    if t.vendor_scoped:
        parts = t.build(conn, spec, f, user=user, tz=tz,
                        layout=fetch_rollup_layout(conn, tz) if layout == READ_LAYOUT else layout)
    else:
        parts = t.build(conn, spec, f, user=user, tz=tz)
    title = parts.pop("title", None) or t.label
    note = parts.pop("note", "")
    sql = parts.pop("sql", None)
    period = parts.pop("period", period)
    report = Report(template, title, period, words or note, _generated(now, tz), **parts)
    report.about = {"Report": title, "Template": t.label,
                    "Period": (RELATIVE_PERIODS.get(spec.get("period"), "") + f" ({report.period_label})")
                    if t.uses_period else report.period_label,
                    "Filters": words or "none", "Notes": note or "none", "Generated at": report.generated, "By": user}
    if sql:
        report.about["SQL"] = sql
    return report


# --- rendering -------------------------------------------------------------------------------------

def render(report: Report, fmt: str, out: BinaryIO, *, engine: Engine | None = None,
           progress: Callable[[float, str], None] | None = None, row_limit: int | None = None) -> int:
    """Writes the report as fmt to out (a binary file); returns the number of data rows.
    A saved query streams from PostgreSQL (analysts' role) straight into the file."""
    tick = progress or (lambda *_: None)
    if report.query is not None:
        sql, params = report.query
        if fmt == "pdf":
            r = run_query(sql, params, row_limit=PDF_MAX_ROWS, engine=engine, timeout_ms=EXPORT_TIMEOUT_MS)
            if r.truncated:
                report.filters = (report.filters + "; " if report.filters else "") + \
                    f"first {len(r.frame):,} rows only: a PDF is for reading, export CSV or Excel for all of them"
            report.tables = [Table.of("Result", r.frame)]
            tick(0.5, "writing the PDF")
            return render_pdf(report, out)
        if fmt == "csv":
            # The server writes the CSV itself (COPY), at psql's speed; see copy_csv for when it cannot.
            rows = copy_csv(sql, out, params=params, engine=engine, timeout_ms=EXPORT_TIMEOUT_MS,
                            on_chunk=lambda n: tick(0.5, f"{n / 2**20:,.0f} MB written"))
            if rows is not None:
                return rows
        seen = {"rows": 0}

        def counted(batches):
            for b in batches:
                seen["rows"] += len(b)
                tick(0.5, f"{seen['rows']:,} rows written")   # progress() writes at most once a second
                yield b
        with open_query(sql, params, engine=engine, timeout_ms=EXPORT_TIMEOUT_MS) as stream:
            batches = counted(stream.batches(BATCH, limit=row_limit))
            if fmt == "xlsx":
                book = XlsxBook(out)
                book.sheet(report.title, stream.columns, batches)
                book.close(report.about)
            else:
                write_rows(fmt, stream.columns, batches, out)
        return seen["rows"]
    if fmt == "pdf":
        tick(0.3, "writing the PDF")
        return render_pdf(report, out)
    if fmt == "csv":
        table = report.tables[0]
        return write_csv(table.columns, table.batches(), out)
    if fmt == "xlsx":
        book = XlsxBook(out)
        if report.summary is not None:
            book.sheet("Summary", list(report.summary.columns), frame_batches(report.summary))
        for i, table in enumerate(report.tables):
            tick(0.2 + 0.7 * i / max(1, len(report.tables)), f"sheet {table.name}")
            book.sheet(table.name, table.columns, table.batches())
        book.close(report.about)
        return book.rows
    if fmt == "json":
        return _write_report_json(report, out)
    raise ReportError(f"format: unknown {fmt!r}; choose one of {', '.join(FORMATS)}")


def _write_report_json(report: Report, out) -> int:
    """{"report", "period", "filters", "generated", "summary": [...], "tables": {name: [records]}}"""
    head = {"report": report.title, "period": {"start": report.period.start.isoformat(),
                                               "end": report.period.end.isoformat()} if report.period else None,
            "filters": report.filters, "generated": report.generated}
    out.write(json.dumps(head, ensure_ascii=False)[:-1].encode("utf-8"))
    rows = 0
    if report.summary is not None:
        buf = io.BytesIO()
        write_json(list(report.summary.columns), frame_batches(report.summary), buf)
        out.write(b', "summary": ' + buf.getvalue().rstrip())
    out.write(b', "tables": {')
    for i, table in enumerate(report.tables):
        out.write((("," if i else "") + "\n" + json_value(table.name) + ": ").encode("utf-8"))
        rows += write_json(table.columns, table.batches(), out)
    out.write(b"}}\n")
    return rows
