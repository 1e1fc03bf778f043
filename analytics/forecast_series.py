"""Forecasts of the marketplace's own series: the history of a glossary metric from the rollups,
stored nightly forecasts, and how earlier forecasts compare with the actuals that arrived.

A series is (metric, grain, dimension, value): an additive metric (FORECAST_METRICS) at day, week
or month grain, for the total (dimension "") or one value of a dimension (FORECAST_DIMS). Only
whole periods are used: the current, unfinished week or month is left out, and so is a first
week or month the data starts in the middle of.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics import forecasting as FC
from analytics.filters import Filters, Period, bucket_start, next_bucket
from analytics.kpis import fetch_aggregate, fetch_data_bounds
from analytics.metrics import METRICS
from data.db import frame

FORECAST_METRICS = ("gmv", "net_revenue", "orders", "units", "new_customers")
# A vendor user's: their own sales (new customers are counted over the marketplace's customers).
VENDOR_FORECAST_METRICS = ("gmv", "net_revenue", "orders", "units")
METRIC_LABELS = {"units": "Units"}
FORECAST_DIMS = {"": "Total", "vendor_id": "Vendor", "category": "Category", "region": "Region",
                 "channel": "Channel", "business_model": "Business model"}
GRAIN_FREQ = {"day": "D", "week": "W", "month": "MS"}
DEFAULT_HORIZON = {"day": 28, "week": 12, "month": 6}
HISTORY_YEARS = 3
# The nightly job: these metrics at day grain for the total and the top vendors and categories.
NIGHTLY_METRICS = ("gmv", "orders")
NIGHTLY_TOP = 5   # FORECAST_TOP's default
NIGHTLY_HORIZON = DEFAULT_HORIZON["day"]


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric) or METRICS[metric].label


@dataclass(frozen=True)
class Series:
    metric: str
    grain: str = "day"
    dim: str = ""
    value: str = ""

    def __post_init__(self) -> None:
        if self.metric not in FORECAST_METRICS:
            raise FC.ForecastError(f"{self.metric!r} cannot be forecast: choose an additive metric "
                                   f"({', '.join(FORECAST_METRICS)})")
        if self.grain not in GRAIN_FREQ:
            raise FC.ForecastError(f"unknown grain {self.grain!r}; choose day, week or month")
        if self.dim not in FORECAST_DIMS:
            raise FC.ForecastError(f"cannot forecast per {self.dim!r}; choose {', '.join(d for d in FORECAST_DIMS if d)}")
        if bool(self.dim) != bool(self.value):
            raise FC.ForecastError("a dimension needs a value, and a value needs a dimension")

    def filters(self, period: Period) -> Filters:
        dims = {}
        if self.dim:
            dims[self.dim] = [int(self.value)] if self.dim == "vendor_id" else [self.value]
        return Filters.make(period, grain=self.grain, **dims)


def history_period(first: date, last_complete_day: date, grain: str, years: int = HISTORY_YEARS) -> Period | None:
    """Returns the whole buckets from max(first, last − years) to last_complete_day, or None."""
    start = max(first, last_complete_day - timedelta(days=round(365.25 * years)))
    if bucket_start(start, grain) != start:
        start = next_bucket(bucket_start(start, grain), grain)
    end_bucket = bucket_start(last_complete_day, grain)
    end = last_complete_day if next_bucket(end_bucket, grain) - timedelta(days=1) == last_complete_day \
        else end_bucket - timedelta(days=1)
    return Period(start, end) if end >= start else None


def fetch_metric_history(conn: Connection, s: Series, *, last_day: date, tz: str,
                         years: int = HISTORY_YEARS, **kw: Any) -> pd.DataFrame:
    """Returns the series' whole periods up to last_day (or the last day with orders, if earlier)
    as DataFrame(ds, y); empty without data. Periods without orders are 0 (the metrics are sums).
    kw: as fetch_aggregate's (layout)."""
    first, last = fetch_data_bounds(conn, tz)
    # Days after the last order are missing data, not zero sales.
    p = history_period(first, min(last_day, last), s.grain, years) if first else None
    if p is None:
        return pd.DataFrame({"ds": pd.Series(dtype="datetime64[ns]"), "y": pd.Series(dtype="float64")})
    rows = fetch_aggregate(conn, s.filters(p), p, grain=s.grain, metrics=(s.metric,) if s.metric in METRICS else (),
                           tz=tz, **kw)
    freq = FC.grid_freq(GRAIN_FREQ[s.grain], pd.Timestamp(p.start))
    grid = pd.date_range(p.start, p.end, freq=freq)
    values = pd.Series(pd.to_numeric(rows[s.metric]).to_numpy(dtype="float64"), index=pd.to_datetime(rows["key"]))
    return pd.DataFrame({"ds": grid, "y": values.reindex(grid).fillna(0.0).to_numpy()})


# --- the store ------------------------------------------------------------------------------------

@dataclass
class StoredForecast:
    run_id: int
    run_date: date
    series: Series
    horizon: int
    history_end: date
    forecast: FC.Forecast
    created_at: object = None


def _frame_json(df: pd.DataFrame | None) -> str:
    if df is None or df.empty:
        return json.dumps({"columns": [], "data": []})
    out = df.assign(ds=df["ds"].dt.strftime("%Y-%m-%d"))
    return json.dumps({"columns": list(out.columns), "data": out.to_numpy().tolist()}, default=float)


def _frame_from(j: dict) -> pd.DataFrame:
    df = pd.DataFrame(j["data"], columns=j["columns"])
    if "ds" in df:
        df["ds"] = pd.to_datetime(df["ds"])
    return df


def store_forecast(conn: Connection, s: Series, f: FC.Forecast, *, run_date: date, horizon: int,
                   interval: float, duration_ms: int) -> int:
    """Writes a forecast run and its points (replacing the same series' run of that day)."""
    conn.execute(sa.text("""
        DELETE FROM mart.forecast_runs WHERE run_date = :d AND metric = :m AND grain = :g AND dim = :dim
          AND dim_value = :v AND horizon = :h"""),
                 {"d": run_date, "m": s.metric, "g": s.grain, "dim": s.dim, "v": s.value, "h": horizon})
    # MASE is infinite when a constant history meets a change; jsonb has no Infinity.
    bt = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
          for r in f.backtest.to_dict("records")]
    run_id = conn.execute(sa.text("""
        INSERT INTO mart.forecast_runs (run_date, metric, grain, dim, dim_value, horizon, interval, history_start,
                                        history_end, model, reason, notes, backtest, backtest_forecasts, duration_ms)
        VALUES (:d, :m, :g, :dim, :v, :h, :i, :hs, :he, :model, :reason, CAST(:notes AS jsonb), CAST(:bt AS jsonb),
                CAST(:btf AS jsonb), :ms)
        RETURNING run_id"""), {
        "d": run_date, "m": s.metric, "g": s.grain, "dim": s.dim, "v": s.value, "h": horizon, "i": interval,
        "hs": f.history["ds"].iloc[0].date(), "he": f.history["ds"].iloc[-1].date(), "model": f.model,
        "reason": f.reason, "notes": json.dumps(f.notes), "bt": json.dumps(bt, default=float), "ms": duration_ms,
        "btf": _frame_json(f.backtest_forecasts),
    }).scalar()
    points = f.frame.assign(run_id=run_id, ds=f.frame["ds"].dt.date)
    conn.execute(sa.text("""
        INSERT INTO mart.forecast_points (run_id, ds, yhat, yhat_lower, yhat_upper, yhat_lower_95, yhat_upper_95)
        VALUES (:run_id, :ds, :yhat, :yhat_lower, :yhat_upper, :yhat_lower_95, :yhat_upper_95)"""),
                 points[["run_id", "ds", "yhat", "yhat_lower", "yhat_upper", "yhat_lower_95",
                         "yhat_upper_95"]].to_dict("records"))
    return int(run_id)


def _runs(conn: Connection, s: Series, where: str, params: dict) -> list[dict]:
    return [dict(r) for r in conn.execute(sa.text(f"""
        SELECT run_id, run_date, created_at, horizon, interval, history_start, history_end, model, reason, notes,
               backtest, backtest_forecasts
        FROM mart.forecast_runs
        WHERE metric = :m AND grain = :g AND dim = :dim AND dim_value = :v {where}
        ORDER BY run_date DESC, run_id DESC"""), {"m": s.metric, "g": s.grain, "dim": s.dim, "v": s.value,
                                                  **params}).mappings()]


def _points(conn: Connection, run_ids: list[int]) -> pd.DataFrame:
    df = frame(conn.execute(sa.text("""
        SELECT run_id, ds, yhat, yhat_lower, yhat_upper, yhat_lower_95, yhat_upper_95
        FROM mart.forecast_points WHERE run_id = ANY(:ids) ORDER BY run_id, ds"""), {"ids": run_ids}))
    df["ds"] = pd.to_datetime(df["ds"])
    return df


def fetch_stored_forecast(conn: Connection, s: Series, *, run_date: date, horizon: int) -> StoredForecast | None:
    """Returns the series' stored forecast made on run_date with that horizon, or None."""
    runs = _runs(conn, s, "AND run_date = :d AND horizon = :h", {"d": run_date, "h": horizon})
    if not runs:
        return None
    r = runs[0]
    pts = _points(conn, [r["run_id"]]).drop(columns="run_id")
    bt = pd.DataFrame(r["backtest"], columns=["model", "mase", "smape", "coverage", "folds"])
    f = FC.Forecast(pts, r["model"], bt, r["reason"], list(r["notes"]), _frame_from(r["backtest_forecasts"]))
    return StoredForecast(r["run_id"], r["run_date"], s, r["horizon"], r["history_end"], f, r["created_at"])


def compute_realised_errors(conn: Connection, s: Series, actuals: pd.DataFrame, *, before: date,
                            limit: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compares the series' stored forecasts made before `before` with actuals (ds, y): returns
    (per run: run_date, model, points with actuals, MAE, sMAPE, coverage of its interval and of
    95 %; the points joined with their actual)."""
    runs = _runs(conn, s, "AND run_date < :b", {"b": before})[:limit]
    empty = pd.DataFrame(columns=["run_date", "model", "points", "mae", "smape", "coverage", "coverage_95"])
    if not runs or actuals.empty:
        return empty, pd.DataFrame()
    pts = _points(conn, [r["run_id"] for r in runs]).merge(actuals, on="ds", how="inner")
    if pts.empty:
        return empty, pd.DataFrame()
    meta = pd.DataFrame(runs)[["run_id", "run_date", "model", "interval"]]
    pts = pts.merge(meta, on="run_id")
    rows = []
    for run_id, g in pts.groupby("run_id", sort=False):
        rows.append({"run_date": g["run_date"].iloc[0], "model": g["model"].iloc[0], "points": len(g),
                     "mae": float(np.mean(np.abs(g["y"] - g["yhat"]))), "smape": FC.smape(g["y"], g["yhat"]),
                     "coverage": FC.coverage(g["y"], g["yhat_lower"], g["yhat_upper"]),
                     "coverage_95": FC.coverage(g["y"], g["yhat_lower_95"], g["yhat_upper_95"])})
    return pd.DataFrame(rows).sort_values("run_date", ascending=False).reset_index(drop=True), pts


# --- computing ------------------------------------------------------------------------------------

def compute_series_forecast(conn: Connection, s: Series, *, last_day: date, horizon: int, model: str = "auto",
                            interval: float = 0.8, country: str | None = None, tz: str, **kw: Any) -> FC.Forecast:
    """Forecasts the series from its history up to last_day. Raises ForecastError without data.
    kw: as fetch_aggregate's (layout)."""
    history = fetch_metric_history(conn, s, last_day=last_day, tz=tz, **kw)
    if history.empty or not (history["y"] != 0).any():
        raise FC.ForecastError("no orders for this series in the last three years: nothing to forecast")
    # Leading periods before the series' first sale (a vendor that joined later) are not history.
    first = int(np.argmax(history["y"].to_numpy() != 0))
    f = FC.forecast(history.iloc[first:].reset_index(drop=True), horizon, freq=GRAIN_FREQ[s.grain], model=model,
                    interval=interval, country=country)
    if first:
        f.notes.insert(0, f"The series starts on {history['ds'].iloc[first]:%d %b %Y}, its first sale.")
    return f


def fetch_nightly_series(conn: Connection, last_day: date, *, tz: str, top: int = NIGHTLY_TOP) -> list[Series]:
    """Returns the series the nightly job forecasts: the total, and the `top` vendors and
    categories by GMV over the last 90 days, for each of NIGHTLY_METRICS."""
    p = Period(last_day - timedelta(days=89), last_day)
    tops = {}
    for dim in ("vendor_id", "category"):
        rows = fetch_aggregate(conn, Filters.make(p), p, by=dim, metrics=("gmv",), order_by="gmv", limit=top, tz=tz)
        tops[dim] = [str(k) for k in rows["key"]]
    return [Series(m, "day", dim, v) for m in NIGHTLY_METRICS
            for dim, v in [("", ""), *[(d, v) for d, vals in tops.items() for v in vals]]]


def run_nightly(conn: Connection, run_date: date, *, tz: str, top: int = NIGHTLY_TOP,
                progress: Callable[[float, str], None] | None = None) -> dict:
    """Forecasts and stores every nightly series (fetch_nightly_series) from the history up to the
    day before run_date; returns counts. A series that cannot be forecast is counted and skipped."""
    last_day = run_date - timedelta(days=1)
    done, failed, messages = 0, 0, []
    series = fetch_nightly_series(conn, last_day, tz=tz, top=top)
    for i, s in enumerate(series):
        started = time.perf_counter()
        try:
            f = compute_series_forecast(conn, s, last_day=last_day, horizon=NIGHTLY_HORIZON, tz=tz)
        except FC.ForecastError as ex:
            failed += 1
            messages.append(f"{s.metric} {s.dim or 'total'} {s.value}: {ex}")
            continue
        store_forecast(conn, s, f, run_date=run_date, horizon=NIGHTLY_HORIZON, interval=0.8,
                       duration_ms=round((time.perf_counter() - started) * 1000))
        done += 1
        if progress:
            progress((i + 1) / len(series), f"{s.metric} {s.dim or 'total'} {s.value}".strip())
    return {"series": len(series), "stored": done, "failed": failed, "messages": messages}
