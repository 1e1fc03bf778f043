"""Forecasting: accuracy measures against hand-computed values, each model on series with known
structure, the automatic choice on clear cases, and thin or bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import forecasting as F

DAYS = pd.date_range("2023-11-01", periods=1095, freq="D")


def _series(y, ds=DAYS) -> pd.DataFrame:
    return pd.DataFrame({"ds": ds[:len(y)], "y": y})


# --- measures -------------------------------------------------------------------------------------

def test_mase_by_hand():
    # In-sample naive differences of [1, 2, 4, 7] are 1, 2, 3: scale 2; errors 1 and 0: mean 0.5.
    assert F.mase([3, 5], [2, 5], [1, 2, 4, 7], season=1) == pytest.approx(0.25)
    # Seasonal (lag 2) differences of [1, 2, 3, 4, 5] are 2, 2, 2: scale 2; errors 2 and 4: mean 3.
    assert F.mase([10, 10], [8, 14], [1, 2, 3, 4, 5], season=2) == pytest.approx(1.5)
    # Train shorter than two seasons: lag 1.
    assert F.mase([5], [4], [1, 3], season=7) == pytest.approx(0.5)
    assert F.mase([5, 5], [5, 5], [5, 5, 5], season=1) == 0.0
    assert F.mase([6], [5], [5, 5, 5], season=1) == float("inf")


def test_smape_and_coverage_by_hand():
    assert F.smape([100, 0], [110, 0]) == pytest.approx((2 * 10 / 210 + 0) / 2)
    assert F.smape([1], [-1]) == pytest.approx(2.0)
    assert F.coverage([1, 2, 3], [0, 2.5, 2], [2, 3, 4]) == pytest.approx(2 / 3)


# --- models recover known structure --------------------------------------------------------------

WEEK = np.array([0.0, 40, 60, 20, -30, -60, -30])


def _truth(t):
    return 1000 + 2.0 * t + WEEK[t % 7]


def _multiplicative(t):
    return (1000 + 2.0 * t) * (1 + WEEK[t % 7] / 1000)


# ETS models an additive weekly pattern; Prophet, on positive series, a multiplicative one (sales:
# the weekly swing grows with the level).
@pytest.mark.parametrize("model,truth", [("ets", _truth), ("prophet", _multiplicative)])
def test_models_recover_trend_and_weekly_seasonality(model, truth):
    t = np.arange(730)
    rng = np.random.default_rng(3)
    f = F.forecast(_series(truth(t) + rng.normal(0, 3, 730)), 28, model=model)
    future = np.arange(730, 758)
    assert f.model == model
    # Within 1.5 % of the noiseless truth over four weeks: trend and weekday pattern both learned.
    assert np.max(np.abs(f.frame["yhat"].to_numpy() / truth(future) - 1)) < 0.015
    weekday = f.frame.groupby(f.frame["ds"].dt.dayofweek)["yhat"].mean()
    assert weekday.idxmax() == pd.Timestamp(DAYS[730 + int(np.argmax(WEEK[future % 7]))]).dayofweek
    assert (f.frame["yhat_lower"] < f.frame["yhat"]).all() and (f.frame["yhat"] < f.frame["yhat_upper"]).all()
    assert (f.frame["yhat_lower_95"] <= f.frame["yhat_lower"]).all()
    assert (f.frame["yhat_upper_95"] >= f.frame["yhat_upper"]).all()


def test_seasonal_naive_repeats_the_last_season():
    y = np.tile(WEEK + 100, 20)
    f = F.forecast(_series(y), 10, model="seasonal_naive")
    assert f.frame["yhat"].tolist() == list((WEEK + 100)[np.arange(10) % 7])
    # No seasonal change in the history: no uncertainty.
    assert (f.frame["yhat_upper"] == f.frame["yhat"]).all()


# --- the automatic choice ------------------------------------------------------------------------

@pytest.mark.slow
def test_auto_picks_seasonal_naive_for_an_exactly_repeating_week():
    f = F.forecast(_series(np.tile(WEEK + 100, 60)), 14)
    assert f.model == "seasonal_naive" and "lowest MASE" in f.reason
    assert f.backtest.set_index("model").loc["seasonal_naive", "mase"] == 0


def test_auto_picks_ets_for_a_random_walk():
    rng = np.random.default_rng(0)
    y = 500 + np.cumsum(rng.normal(0, 20, 730)) + rng.normal(0, 2, 730)
    f = F.forecast(_series(y), 7, folds=5, nonnegative=False)
    bt = f.backtest.set_index("model")
    assert f.model == "ets" and bt.loc["ets", "mase"] < bt.loc["seasonal_naive", "mase"] < bt.loc["prophet", "mase"]
    # Five recent windows and the same window a year before.
    assert (bt["folds"] == 6).all()


def test_auto_picks_prophet_for_smooth_trend_and_two_seasonalities():
    t = np.arange(1095)
    rng = np.random.default_rng(1)
    level = 1000 + 0.8 * t
    y = level * (1 + 0.15 * np.sin(2 * np.pi * t / 7) + 0.1 * np.sin(2 * np.pi * t / 365.25)) + rng.normal(0, 40, 1095)
    f = F.forecast(_series(y), 28)
    assert f.model == "prophet"
    bt = f.backtest.set_index("model")
    assert bt.loc["prophet", "mase"] < bt.loc["seasonal_naive", "mase"]
    assert 0.6 <= bt.loc["prophet", "coverage"] <= 0.95
    forecasts = f.backtest_forecasts
    # The window a year before the forecast's, then the last three.
    assert set(forecasts["model"]) == set(F.MODELS) and sorted(forecasts["fold"].unique()) == [1, 2, 3, 4]
    first = forecasts[forecasts["fold"] == 1]["ds"].min()
    assert first == DAYS[1095 - 364]
    assert len(forecasts[forecasts["model"] == "prophet"]) == 4 * 28


# --- thin and bad input --------------------------------------------------------------------------

def test_short_history_falls_back_with_a_message():
    f = F.forecast(_series(np.arange(10.0) + 5), 7)
    assert f.model in ("naive", "ets")
    assert any("fewer than two seasons" in n for n in f.notes)
    assert any("Prophet is left out" in n for n in f.notes)
    assert len(f.frame) == 7


def test_too_short_for_a_backtest_still_forecasts():
    f = F.forecast(_series([3.0, 4.0, 5.0, 6.0]), 7)
    assert f.backtest.empty and "without a backtest" in f.reason
    assert any("too short for a backtest" in n for n in f.notes)


def test_gaps_are_zero_and_constant_series_stay_constant():
    h = _series(np.full(120, 5.0)).drop(index=[10, 11, 50])
    f = F.forecast(h, 14)
    assert any("3 missing days were filled with 0" in n for n in f.notes)
    assert f.history["y"].iloc[10] == 0 and len(f.history) == 120
    c = F.forecast(_series(np.full(120, 5.0)), 14)
    assert any("constant" in n for n in c.notes)
    assert np.allclose(c.frame["yhat"], 5.0)


def test_negative_forecasts_are_clipped_for_non_negative_metrics():
    f = F.forecast(_series(np.linspace(300, 5, 120)), 60, model="ets")
    assert (f.frame[["yhat", "yhat_lower", "yhat_upper"]] >= 0).all().all()
    assert any("clipped at 0" in n for n in f.notes)


def test_weekly_and_monthly_grains():
    weeks = pd.date_range("2022-01-03", periods=156, freq="W-MON")
    w = F.forecast(pd.DataFrame({"ds": weeks, "y": 100 + np.arange(156.0)}), 8, freq="W", folds=2)
    assert len(w.frame) == 8 and w.frame["yhat"].iloc[-1] > 200
    months = pd.date_range("2021-01-01", periods=60, freq="MS")
    m = F.forecast(pd.DataFrame({"ds": months, "y": 100 + 10 * np.sin(np.arange(60) * np.pi / 6)}), 6, freq="MS",
                   folds=2)
    assert m.frame["ds"].iloc[0] == pd.Timestamp("2026-01-01") and len(m.backtest) == 3


@pytest.mark.parametrize("kwargs,message", [
    ({"freq": "H"}, "unknown grain 'H'; choose D (day), W (week) or MS (month)"),
    ({"interval": 1.5}, "the interval must be between 0 and 1, not 1.5"),
    ({"horizon": 0}, "the horizon must be a whole number of periods ≥ 1, not 0"),
    ({"model": "arima"}, "unknown model 'arima'; choose auto or one of seasonal_naive, ets, prophet"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    args = {"horizon": 7, **kwargs}
    with pytest.raises(F.ForecastError, match=message.replace("(", r"\(").replace(")", r"\)")):
        F.forecast(_series(np.arange(60.0)), args.pop("horizon"), **args)


@pytest.mark.parametrize("history,message", [
    (pd.DataFrame({"day": [1], "value": [2]}), "the history needs columns ds (dates) and y (values)"),
    (_series([1.0, 2.0]), "at least 3 days of history are needed, not 2"),
    (pd.DataFrame({"ds": ["2026-01-01", "2026-01-01", "2026-01-02"], "y": [1, 2, 3]}), "the same date twice"),
    (pd.DataFrame({"ds": pd.to_datetime(["2026-01-05", "2026-01-06", "2026-01-07"]) + pd.Timedelta(hours=5),
                   "y": [1, 2, 3]}), "not on a day grid (freq='D'): midnight of each day"),
])
def test_bad_history_says_what_is_wrong(history, message):
    with pytest.raises(F.ForecastError, match=message.replace("(", r"\(").replace(")", r"\)")):
        F.forecast(history, 7)


def test_interval_scale_calibrates_on_backtest_errors():
    # 20 forecasts of 10 with bands 9–11; errors 0.1, 0.2, … 2.0 in distance units of 1.
    errors = np.arange(1, 21) / 10
    y = 10 + np.where(np.arange(20) % 2 == 0, errors, -errors)
    bt = pd.DataFrame({"model": "ets", "y": y, "yhat": 10.0, "yhat_lower": 9.0, "yhat_upper": 11.0})
    assert F.interval_scale(bt, "ets", 0.8) == pytest.approx(np.quantile(errors, 0.8))
    assert F.interval_scale(bt.head(19), "ets", 0.8) is None  # too few points to calibrate
    assert F.interval_scale(bt, "prophet", 0.8) is None
    # Errors far beyond the bands: the factor is capped.
    assert F.interval_scale(bt.assign(y=1000.0), "ets", 0.8) == 5.0


def test_too_narrow_intervals_are_widened_with_a_note():
    t = np.arange(1095)
    rng = np.random.default_rng(1)
    y = 1000 + 0.8 * t + 150 * np.sin(2 * np.pi * t / 7) + 100 * np.sin(2 * np.pi * t / 365.25) + rng.normal(0, 40, 1095)
    own = F.fit_prophet(y, pd.DatetimeIndex(DAYS), 28, "D", (0.8,))  # Prophet's own bands
    f = F.forecast(_series(y), 28, model="prophet")
    scale = F.interval_scale(f.backtest_forecasts, "prophet", 0.8)
    width = (f.frame["yhat_upper"] - f.frame["yhat_lower"]).to_numpy()
    own_width = own[0.8][1] - own[0.8][0]
    assert scale is not None and np.allclose(width, own_width * scale, rtol=1e-6)
    # The backtest's Prophet bands held too few actuals here: widened, and the page says so.
    assert scale > 1.05 and any("widened" in n and "would have held 80% of the backtest" in n for n in f.notes)
