"""Forecasts with measured accuracy: Prophet, exponential smoothing (ETS) and a seasonal-naive
baseline, chosen per series by a rolling-origin backtest.

forecast(history, horizon, freq=…, model="auto", interval=0.8) is the interface fixed in the design:
history is a DataFrame(ds, y) at day ("D"), week ("W") or month-start ("MS") grain; the result's
frame holds ds, yhat and the `interval` prediction interval (yhat_lower, yhat_upper) plus the 95 %
one (yhat_lower_95, yhat_upper_95); backtest holds MASE, sMAPE and interval coverage per model.

Backtest: the last `folds` × horizon points are cut into `folds` consecutive windows of one full
horizon each, and when the history allows, the window one year before the forecast's is added (the
same time of year: a model that misses Black Friday shows it there); for each window, every model
is fitted on everything before it and forecasts it.
"auto" picks the lowest mean MASE; on a tie the simpler model wins (seasonal naive, then ETS, then
Prophet). MASE scales errors by the in-sample mean absolute seasonal difference of the fold's
training data (Hyndman & Koehler 2006), so 1.0 means "as wrong as repeating last season".

Intervals: each model's own bands (Prophet's are often too narrow) are rescaled so that the chosen
model's interval would have held `interval` of its backtest errors (interval_scale, a split-
conformal calibration on out-of-sample errors); the backtest table shows the models' own coverage.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

FREQS = {"D": 7, "W": 52, "MS": 12}           # grain -> season length in periods
FREQ_LABELS = {"D": "day", "W": "week", "MS": "month"}
MODELS = ("seasonal_naive", "ets", "prophet")  # simplest first: ties go to the simpler model
MODEL_LABELS = {"seasonal_naive": "Seasonal naive", "ets": "Exponential smoothing (ETS)", "prophet": "Prophet",
                "naive": "Naive (last value)"}
DEFAULT_FOLDS = 3


class ForecastError(ValueError):
    """The history cannot be forecast; the message says why."""


@dataclass
class Forecast:
    frame: pd.DataFrame                 # ds, yhat, yhat_lower, yhat_upper, yhat_lower_95, yhat_upper_95
    model: str                          # the model used (a key of MODEL_LABELS)
    backtest: pd.DataFrame              # model, mase, smape, coverage (interval), folds
    reason: str = ""                    # why this model, in words
    notes: list[str] = field(default_factory=list)  # fallbacks and data fixes, in words
    backtest_forecasts: pd.DataFrame | None = None  # model, fold, ds, y, yhat, yhat_lower, yhat_upper
    history: pd.DataFrame | None = None  # the cleaned history the models saw (ds, y)


# --- accuracy measures -----------------------------------------------------------------------------

def mase(actual: ArrayLike, predicted: ArrayLike, train: ArrayLike, season: int) -> float:
    """Mean absolute scaled error: mean |actual − predicted| over the in-sample mean absolute
    seasonal difference of train (lag season, or lag 1 when train is shorter than two seasons).
    0 for a perfect forecast of a constant series; inf when only the scale is 0."""
    a, p, t = (np.asarray(v, dtype="float64") for v in (actual, predicted, train))
    lag = season if len(t) > season else 1
    if len(t) <= lag:
        raise ForecastError("the training data is too short to scale the error")
    scale = np.mean(np.abs(t[lag:] - t[:-lag]))
    err = np.mean(np.abs(a - p))
    if scale == 0:
        return 0.0 if err == 0 else float("inf")
    return float(err / scale)


def smape(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Symmetric MAPE in [0, 2]: mean 2|a − p| / (|a| + |p|), a term being 0 when both are 0."""
    a, p = np.asarray(actual, dtype="float64"), np.asarray(predicted, dtype="float64")
    den = np.abs(a) + np.abs(p)
    terms = np.where(den == 0, 0.0, 2 * np.abs(a - p) / np.where(den == 0, 1, den))
    return float(np.mean(terms))


def coverage(actual: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Share of actual values inside [lower, upper]."""
    a = np.asarray(actual, dtype="float64")
    return float(np.mean((a >= np.asarray(lower)) & (a <= np.asarray(upper))))


# --- models ----------------------------------------------------------------------------------------
# Each model: fit(y: np.ndarray, ds: pd.DatetimeIndex, horizon, season, levels, options) ->
# {"yhat": array, level: (lower, upper) for each level}.

def _naive_intervals(residuals: np.ndarray, steps: np.ndarray, levels) -> dict:
    sd = float(np.std(residuals, ddof=1)) if len(residuals) > 1 else 0.0
    return {lv: stats.norm.ppf(0.5 + lv / 2) * sd * np.sqrt(steps) for lv in levels}


def fit_seasonal_naive(y: np.ndarray, horizon: int, season: int, levels: tuple[float, ...]) -> dict:
    """Each future period repeats the same period of the last season; intervals from the
    in-sample seasonal differences, widening with each season ahead (Hyndman & Athanasopoulos)."""
    if len(y) < 2 * season:
        season = 1  # too short for a season: the last value
    h = np.arange(1, horizon + 1)
    yhat = y[len(y) - season + (h - 1) % season]
    width = _naive_intervals(y[season:] - y[:-season], (h - 1) // season + 1, levels)
    return {"yhat": yhat, **{lv: (yhat - w, yhat + w) for lv, w in width.items()}}


def fit_ets(y: np.ndarray, horizon: int, season: int, levels: tuple[float, ...]) -> dict:
    """Additive-error ETS with a damped additive trend, and additive seasonality when the history
    holds two seasons (statsmodels ETSModel, maximum likelihood)."""
    # statsmodels loads only when a model is fitted: pages that show stored forecasts never need it.
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    seasonal = "add" if len(y) >= 2 * season and season > 1 else None
    trend = "add" if len(y) >= 10 else None
    series = pd.Series(y, index=pd.RangeIndex(len(y)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = ETSModel(series, error="add", trend=trend, damped_trend=trend is not None, seasonal=seasonal,
                          seasonal_periods=season if seasonal else None).fit(disp=False, maxiter=200)
        pred = fitted.get_prediction(start=len(y), end=len(y) + horizon - 1)
        out = {"yhat": np.asarray(pred.predicted_mean, dtype="float64")}
        for lv in levels:
            frame = pred.summary_frame(alpha=1 - lv)
            out[lv] = (frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy())
    if not np.isfinite(out["yhat"]).all():
        raise ForecastError("exponential smoothing did not converge on this series")
    return out


def thanksgiving(year: int) -> date:
    """The fourth Thursday of November (US Thanksgiving)."""
    first = date(year, 11, 1)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 21)


def retail_events(first_year: int, last_year: int) -> pd.DataFrame:
    """Marketplace events as Prophet holidays: the Black Friday week to Cyber Monday, and
    Christmas to New Year (demand shifts before and drops on the days themselves)."""
    rows = []
    for year in range(first_year, last_year + 1):
        rows.append({"holiday": "black_friday", "ds": pd.Timestamp(thanksgiving(year) + timedelta(days=1)),
                     "lower_window": -4, "upper_window": 3})
        rows.append({"holiday": "christmas", "ds": pd.Timestamp(date(year, 12, 25)),
                     "lower_window": -11, "upper_window": 7})
    return pd.DataFrame(rows)


def fit_prophet(y: np.ndarray, ds: pd.DatetimeIndex, horizon: int, freq: str, levels: tuple[float, ...], *,
                country: str | None = None) -> dict:
    """Prophet with weekly seasonality for daily data, yearly seasonality from 18 months of history,
    the retail events (retail_events) and, when a country code is given, its public holidays.
    Seasonality is multiplicative for positive series (sales: the weekly swing grows with the level)."""
    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    logging.getLogger("prophet").setLevel(logging.WARNING)
    # Prophet (heavy, with cmdstanpy) loads only when a Prophet model is fitted.
    from prophet import Prophet

    years = (ds[-1] - ds[0]).days / 365.25
    future = pd.date_range(ds[-1], periods=horizon + 1, freq=grid_freq(freq, ds[0]))[1:]
    m = Prophet(weekly_seasonality=freq == "D", yearly_seasonality=years >= 1.5, daily_seasonality=False,
                seasonality_mode="multiplicative" if (y > 0).all() else "additive",
                holidays=retail_events(ds[0].year, future[-1].year) if freq == "D" else None,
                interval_width=levels[0], uncertainty_samples=300)
    if country:
        m.add_country_holidays(country_name=country)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(pd.DataFrame({"ds": ds, "y": y}))
        out = {}
        for lv in levels:
            m.interval_width = lv
            np.random.seed(0)  # the intervals come from simulation: the same series, the same bands
            p = m.predict(pd.DataFrame({"ds": future}))
            out["yhat"] = p["yhat"].to_numpy()
            out[lv] = (p["yhat_lower"].to_numpy(), p["yhat_upper"].to_numpy())
    return out


def _fit(name: str, y: np.ndarray, ds: pd.DatetimeIndex, horizon: int, freq: str, levels, country) -> dict:
    season = FREQS[freq]
    if name in ("seasonal_naive", "naive"):
        return fit_seasonal_naive(y, horizon, season if name == "seasonal_naive" else 1, levels)
    if name == "ets":
        return fit_ets(y, horizon, season, levels)
    if name == "prophet":
        return fit_prophet(y, ds, horizon, freq, levels, country=country)
    raise ForecastError(f"unknown model {name!r}; choose auto or one of {', '.join(MODELS)}")


# --- the interface ---------------------------------------------------------------------------------

def grid_freq(freq: str, first: pd.Timestamp) -> str:
    """Returns the pandas frequency of the grid: weeks are anchored on the history's first weekday."""
    return f"W-{first.day_name()[:3].upper()}" if freq == "W" else freq


def clean_history(history: pd.DataFrame, freq: str, *, fill: float | None = 0.0) -> tuple[pd.DataFrame, list[str]]:
    """Returns the history on a regular grid of freq from its first to its last period, and notes.
    Missing periods get `fill` (0 for additive metrics: no orders is zero GMV)."""
    if not {"ds", "y"} <= set(history.columns):
        raise ForecastError("the history needs columns ds (dates) and y (values)")
    h = history[["ds", "y"]].copy()
    h["ds"] = pd.to_datetime(h["ds"])
    h["y"] = pd.to_numeric(h["y"], errors="coerce")
    if h["ds"].duplicated().any():
        raise ForecastError("the history has the same date twice; aggregate it to one value per period first")
    h = h.dropna(subset=["ds"]).sort_values("ds")
    if h.empty:
        raise ForecastError("the history is empty")
    first = h["ds"].iloc[0]
    grid = pd.date_range(first, h["ds"].iloc[-1], freq=grid_freq(freq, first))
    on_grid = (h["ds"] == h["ds"].dt.normalize()).all() and (freq != "MS" or (h["ds"].dt.day == 1).all())
    if len(grid) == 0 or not on_grid or not h["ds"].isin(grid).all():
        raise ForecastError(f"the dates are not on a {FREQ_LABELS[freq]} grid (freq={freq!r}): "
                            + {"D": "midnight of each day", "W": "the same weekday each week, at midnight",
                               "MS": "the first day of each month"}[freq])
    full = h.set_index("ds").reindex(grid)
    notes = []
    missing = int(full["y"].isna().sum())
    if missing:
        if fill is None:
            raise ForecastError(f"{missing} periods have no value")
        full["y"] = full["y"].fillna(fill)
        notes.append(f"{missing} missing {FREQ_LABELS[freq]}s were filled with {fill:g}.")
    return full.rename_axis("ds").reset_index(), notes


def _candidates(n: int, season: int, model: str) -> tuple[list[str], list[str]]:
    """Returns the models that make sense for n points, and notes on what was left out."""
    wanted = list(MODELS) if model == "auto" else [model]
    if n >= 2 * season:
        return wanted, []
    notes = [f"The history has {n} periods, fewer than two seasons ({2 * season}): the seasonal baseline becomes "
             "the last value and exponential smoothing drops its seasonality."]
    wanted = ["naive" if m == "seasonal_naive" else m for m in wanted]
    if model == "auto":  # Prophet's seasonalities need the history it does not have
        wanted = [m for m in wanted if m != "prophet"]
        notes.append("Prophet is left out of the automatic choice.")
    return wanted, notes


YEAR = {"D": 364, "W": 52, "MS": 12}  # one year back in periods (364 days: the same weekdays)


def backtest_cuts(n: int, horizon: int, freq: str, folds: int, min_train: int) -> list[int]:
    """Returns where each backtest window starts: the last `folds` windows of one horizon, and,
    when the history allows, the window one year before the forecast's, so that each model is also
    judged on the same time of year (a Black Friday, a summer sale)."""
    cuts = [n - k * horizon for k in range(folds, 0, -1)]
    seasonal = n - YEAR[freq]
    if cuts and seasonal >= min_train and seasonal + horizon <= cuts[0]:
        cuts.insert(0, seasonal)
    return cuts


def backtest(y: np.ndarray, ds: pd.DatetimeIndex, horizon: int, freq: str, models: list[str], *,
             folds: int = DEFAULT_FOLDS, interval: float = 0.8, country: str | None = None,
             nonnegative: bool = True, min_train: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rolling-origin backtest over backtest_cuts: returns (per model: mean mase, smape, coverage
    and the number of windows; the forecasts of every window)."""
    season = FREQS[freq]
    rows, fc = [], []
    cuts = backtest_cuts(len(y), horizon, freq, folds, 2 * season if min_train is None else min_train)
    for fold, cut in enumerate(cuts, start=1):
        train, test = y[:cut], y[cut:cut + horizon]
        for name in models:
            try:
                out = _fit(name, train, ds[:cut], horizon, freq, (interval,), country)
            except Exception as ex:  # noqa: BLE001 - a model failing on a fold counts as failed, not fatal
                rows.append({"model": name, "fold": fold, "failed": f"{type(ex).__name__}: {ex}"})
                continue
            yhat, (lo, hi) = out["yhat"], out[interval]
            if nonnegative:
                yhat, lo, hi = np.maximum(yhat, 0), np.maximum(lo, 0), np.maximum(hi, 0)
            rows.append({"model": name, "fold": fold, "mase": mase(test, yhat, train, season),
                         "smape": smape(test, yhat), "coverage": coverage(test, lo, hi)})
            fc.append(pd.DataFrame({"model": name, "fold": fold, "ds": ds[cut:cut + horizon], "y": test,
                                    "yhat": yhat, "yhat_lower": lo, "yhat_upper": hi}))
    per_fold = pd.DataFrame(rows)
    if per_fold.empty or "mase" not in per_fold:
        return pd.DataFrame(columns=["model", "mase", "smape", "coverage", "folds"]), pd.DataFrame()
    ok = per_fold[per_fold["mase"].notna()]
    summary = ok.groupby("model").agg(mase=("mase", "mean"), smape=("smape", "mean"), coverage=("coverage", "mean"),
                                      folds=("fold", "size"))
    # A model that failed on any fold is not comparable: it is listed without figures.
    failed = set(per_fold.loc[per_fold["failed"].notna(), "model"]) if "failed" in per_fold.columns else set()
    summary = summary.drop(index=[m for m in failed if m in summary.index])
    summary = summary.reindex(models).rename_axis("model").reset_index()
    return summary, (pd.concat(fc, ignore_index=True) if fc else pd.DataFrame())


def forecast(history: pd.DataFrame, horizon: int, *, freq: str = "D", model: str = "auto", interval: float = 0.8,
             folds: int = DEFAULT_FOLDS, country: str | None = None, nonnegative: bool | None = None,
             fill: float | None = 0.0) -> Forecast:
    """Forecasts history (ds, y) horizon periods ahead; see the module docstring.

    nonnegative (default: when the history has no negative value) clips forecasts and bands at 0.
    Raises ForecastError with a message a person can act on.
    """
    if freq not in FREQS:
        raise ForecastError(f"unknown grain {freq!r}; choose D (day), W (week) or MS (month)")
    if not (0 < interval < 1):
        raise ForecastError(f"the interval must be between 0 and 1, not {interval}")
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ForecastError(f"the horizon must be a whole number of periods ≥ 1, not {horizon!r}")
    if model != "auto" and model not in MODELS:
        raise ForecastError(f"unknown model {model!r}; choose auto or one of {', '.join(MODELS)}")
    h, notes = clean_history(history, freq, fill=fill)
    y, ds = h["y"].to_numpy(dtype="float64"), pd.DatetimeIndex(h["ds"])
    if len(y) < 3:
        raise ForecastError(f"at least 3 {FREQ_LABELS[freq]}s of history are needed, not {len(y)}")
    nonneg = bool((y >= 0).all()) if nonnegative is None else nonnegative
    season = FREQS[freq]
    candidates, more = _candidates(len(y), season, model)
    notes += more
    if np.ptp(y) == 0:
        notes.append("The history is constant: every model repeats it.")
    # Each fold trains on at least two seasons when the history allows, else on 3 points.
    min_train = 2 * season if len(y) >= 2 * season + horizon else 3
    usable_folds = max(0, min(folds, (len(y) - min_train) // horizon))
    bt, bt_fc = pd.DataFrame(columns=["model", "mase", "smape", "coverage", "folds"]), pd.DataFrame()
    if usable_folds >= 1:
        if usable_folds < folds:
            notes.append(f"The history allows {usable_folds} backtest window(s) of {horizon} {FREQ_LABELS[freq]}s, "
                         f"not {folds}.")
        bt, bt_fc = backtest(y, ds, horizon, freq, candidates, folds=usable_folds, interval=interval,
                             country=country, nonnegative=nonneg, min_train=min_train)
    else:
        notes.append(f"The history is too short for a backtest of {horizon} {FREQ_LABELS[freq]}s; "
                     "accuracy cannot be measured.")
    chosen, reason = _choose(bt, candidates, model)
    levels = tuple(sorted({interval, 0.95}))
    try:
        out = _fit(chosen, y, ds, horizon, freq, levels, country)
    except Exception as ex:  # noqa: BLE001 - fall back to the baseline, and say so
        if chosen in ("seasonal_naive", "naive"):
            raise
        notes.append(f"{MODEL_LABELS[chosen]} failed on the whole history ({type(ex).__name__}); "
                     "the seasonal-naive baseline is shown instead.")
        chosen = "seasonal_naive" if len(y) >= 2 * season else "naive"
        out = _fit(chosen, y, ds, horizon, freq, levels, country)
    scale = interval_scale(bt_fc, chosen, interval)
    if scale is not None:
        yhat = out["yhat"]
        for lv in levels:
            lo, hi = out[lv]
            out[lv] = (yhat - scale * (yhat - lo), yhat + scale * (hi - yhat))
        if abs(scale - 1) > 0.05:
            notes.append(f"The intervals were {'widened' if scale > 1 else 'narrowed'} ×{scale:.2f} so that the "
                         f"{interval:.0%} interval would have held {interval:.0%} of the backtest's actual values.")
    future = pd.date_range(ds[-1], periods=horizon + 1, freq=grid_freq(freq, ds[0]))[1:]
    frame = pd.DataFrame({"ds": future, "yhat": out["yhat"], "yhat_lower": out[interval][0],
                          "yhat_upper": out[interval][1], "yhat_lower_95": out[0.95][0],
                          "yhat_upper_95": out[0.95][1]})
    if nonneg:
        cols = ["yhat", "yhat_lower", "yhat_upper", "yhat_lower_95", "yhat_upper_95"]
        if (frame[cols] < 0).any().any():
            notes.append("Negative forecasts were clipped at 0.")
        frame[cols] = frame[cols].clip(lower=0)
    return Forecast(frame, chosen, bt, reason, notes, bt_fc, h)


MIN_CALIBRATION_POINTS = 20


def interval_scale(bt_fc: pd.DataFrame | None, model: str, interval: float) -> float | None:
    """Returns the factor that makes model's `interval` interval hold that share of its backtest
    errors (a split-conformal calibration), or None with fewer than MIN_CALIBRATION_POINTS.

    Each backtest error is divided by the distance from the forecast to the band on its side; the
    `interval` quantile of those ratios is the factor (1: calibrated; above 1: the model's bands
    were too narrow). Clamped to [0.5, 5]."""
    if bt_fc is None or bt_fc.empty:
        return None
    g = bt_fc[bt_fc["model"] == model]
    above = (g["y"] >= g["yhat"]).to_numpy()
    dist = np.where(above, g["yhat_upper"] - g["yhat"], g["yhat"] - g["yhat_lower"])
    ok = dist > 0
    if ok.sum() < MIN_CALIBRATION_POINTS:
        return None
    ratio = np.abs(g["y"] - g["yhat"]).to_numpy()[ok] / dist[ok]
    return float(np.clip(np.quantile(ratio, interval), 0.5, 5.0))


def _choose(bt: pd.DataFrame, candidates: list[str], model: str) -> tuple[str, str]:
    if model != "auto":
        name = candidates[0]
        return name, f"{MODEL_LABELS[name]}, as chosen."
    scored = bt.dropna(subset=["mase"]) if not bt.empty else bt
    if scored.empty:
        simple = "seasonal_naive" if "seasonal_naive" in candidates else candidates[0]
        return simple, f"{MODEL_LABELS[simple]}: without a backtest, the simplest model."
    order = {m: i for i, m in enumerate(candidates)}
    best = min(scored.itertuples(), key=lambda r: (round(r.mase, 6), order.get(r.model, 99)))
    others = ", ".join(f"{MODEL_LABELS[r.model]} {r.mase:.2f}" for r in scored.itertuples() if r.model != best.model)
    return best.model, (f"{MODEL_LABELS[best.model]} had the lowest MASE in the backtest ({best.mase:.2f}"
                        + (f"; {others}" if others else "") + ").")
