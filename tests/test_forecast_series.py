"""Forecasts of the marketplace's series: history equal to raw rows, whole periods only, the store,
earlier forecasts against actuals, and the nightly job."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import forecast_series as FS
from analytics.forecasting import ForecastError
from reports import jobs
from tests.conftest import SEED_END
from tests.raw_metrics import load_raw, prepare

TZ = "UTC"


@pytest.fixture(scope="module")
def lines(engine):
    li = prepare(load_raw(engine), TZ)["lines"]
    return li[li["counted"]]


def test_history_period_keeps_whole_buckets_only():
    # Data from Wednesday 3 Jan 2024; the last complete day is Wednesday 20 Nov 2024.
    p = FS.history_period(date(2024, 1, 3), date(2024, 11, 20), "week")
    assert (p.start, p.end) == (date(2024, 1, 8), date(2024, 11, 17))
    p = FS.history_period(date(2024, 1, 3), date(2024, 11, 30), "month")
    assert (p.start, p.end) == (date(2024, 2, 1), date(2024, 11, 30))
    p = FS.history_period(date(2020, 1, 1), date(2024, 11, 20), "day", years=1)
    assert (p.start, p.end) == (date(2023, 11, 21), date(2024, 11, 20))
    assert FS.history_period(date(2024, 11, 19), date(2024, 11, 20), "month") is None


@pytest.mark.parametrize("series", [FS.Series("gmv"), FS.Series("units", "week", "category", "Electronics"),
                                    FS.Series("orders", "month", "channel", "web")], ids=str)
def test_history_equals_raw_rows(engine, lines, series):
    with engine.connect() as conn:
        got = FS.fetch_metric_history(conn, series, last_day=SEED_END, tz=TZ)
    li = lines if not series.dim else lines[lines[series.dim].astype(str) == series.value]
    day = pd.to_datetime(li["day"])
    key = {"day": day, "week": day - pd.to_timedelta(day.dt.dayofweek, unit="D"),
           "month": day.dt.to_period("M").dt.to_timestamp()}[series.grain]
    value = {"gmv": li["value"], "units": li["quantity"].astype(float), "orders": li["order_id"]}[series.metric]
    want = (value.groupby(key).nunique() if series.metric == "orders" else value.groupby(key).sum())
    want = want.reindex(got["ds"]).fillna(0)
    assert len(got) > 10 and np.allclose(got["y"], want.to_numpy())
    assert got["ds"].iloc[-1] <= pd.Timestamp(SEED_END)


def test_series_checks_its_arguments():
    with pytest.raises(ForecastError, match="'aov' cannot be forecast: choose an additive metric"):
        FS.Series("aov")
    with pytest.raises(ForecastError, match="a dimension needs a value"):
        FS.Series("gmv", dim="category")
    with pytest.raises(ForecastError, match="cannot forecast per 'product_id'"):
        FS.Series("gmv", dim="product_id", value="3")


def test_store_load_and_realised_errors(engine):
    s = FS.Series("gmv")
    made = SEED_END - timedelta(days=20)
    try:
        with engine.connect() as conn:
            f = FS.compute_series_forecast(conn, s, last_day=made - timedelta(days=1), horizon=28, tz=TZ)
        with engine.begin() as conn:
            run_id = FS.store_forecast(conn, s, f, run_date=made, horizon=28, interval=0.8, duration_ms=5)
            # Storing the same series, day and horizon again replaces it.
            run_id = FS.store_forecast(conn, s, f, run_date=made, horizon=28, interval=0.8, duration_ms=5)
        with engine.connect() as conn:
            got = FS.fetch_stored_forecast(conn, s, run_date=made, horizon=28)
            assert got.run_id == run_id and got.forecast.model == f.model and got.forecast.reason == f.reason
            assert np.allclose(got.forecast.frame["yhat"], f.frame["yhat"])
            assert len(got.forecast.backtest_forecasts) == len(f.backtest_forecasts)
            assert conn.execute(sa.text("SELECT count(*) FROM mart.forecast_runs")).scalar() == 1
            actuals = FS.fetch_metric_history(conn, s, last_day=SEED_END, tz=TZ)
            runs, points = FS.compute_realised_errors(conn, s, actuals, before=SEED_END)
        assert runs["points"].tolist() == [21]  # made − 0 … SEED_END: 21 days have happened
        joined = f.frame.merge(actuals, on="ds")
        assert runs["mae"].iloc[0] == pytest.approx(np.mean(np.abs(joined["y"] - joined["yhat"])))
        inside = ((joined["y"] >= joined["yhat_lower"]) & (joined["y"] <= joined["yhat_upper"])).mean()
        assert runs["coverage"].iloc[0] == pytest.approx(inside)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE mart.forecast_runs CASCADE"))


@pytest.mark.slow
def test_nightly_job_forecasts_the_total_and_the_top_vendors_and_categories(engine, monkeypatch):
    monkeypatch.setenv("FORECAST_TOP", "2")   # each series takes seconds (auto model choice and its backtest)
    monkeypatch.setenv("APP_TIMEZONE", TZ)
    monkeypatch.setenv("FORECASTS_AT", "03:00")
    run_date = SEED_END + timedelta(days=1)
    early = datetime(run_date.year, run_date.month, run_date.day, 2, 0, tzinfo=timezone.utc)
    late = early + timedelta(hours=2)
    try:
        with engine.begin() as conn:
            assert jobs.fetch_forecasts_due(conn, early) is None and jobs.fetch_forecasts_due(conn, late) == run_date
            message = jobs.forecasts_job(conn, late)
        assert message.startswith(f"{run_date}: 10 of 10 series stored"), message
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT metric, dim, count(*) FROM mart.forecast_runs GROUP BY 1, 2 ORDER BY 1, 2")).all()
            assert [tuple(r) for r in rows] == [("gmv", "", 1), ("gmv", "category", 2), ("gmv", "vendor_id", 2),
                                               ("orders", "", 1), ("orders", "category", 2), ("orders", "vendor_id", 2)]
            assert conn.execute(sa.text("SELECT count(*) FROM mart.forecast_points")).scalar() == 10 * 28
            assert jobs.fetch_forecasts_due(conn, late) is None
            stored = FS.fetch_stored_forecast(conn, FS.Series("gmv"), run_date=run_date, horizon=28)
            assert stored.forecast.frame["ds"].iloc[0] == pd.Timestamp(run_date)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE mart.forecast_runs CASCADE"))
