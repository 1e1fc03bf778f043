"""BG/NBD and Gamma-Gamma: the papers' CDNOW parameters, recovery of known parameters from data
simulated from the models, predictions against closed forms and the CDNOW holdout period."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics import clv
from analytics.customers import fit_bgnbd, fit_gamma_gamma

CDNOW = Path(__file__).parent / "data" / "cdnow"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return pd.read_csv(CDNOW / "summary.csv")


def _within(got: dict, want: dict, rel: float) -> None:
    for k, w in want.items():
        assert abs(got[k] - w) <= rel * abs(w), f"{k}: {got[k]:.4f} vs published {w} (±{rel:.0%})"


def test_bgnbd_reproduces_the_published_cdnow_parameters(cdnow):
    # Fader, Hardie & Lee (2005), section 5: r = 0.243, α = 4.414, a = 0.793, b = 2.426.
    got = fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])
    _within(got, {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, 0.01)
    # The maximum: the published log-likelihood is −9,582.4.
    ll = clv.bgnbd_log_likelihood((got["r"], got["alpha"], got["a"], got["b"]), cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert ll.sum() == pytest.approx(-9582.4, abs=0.1)


def test_gamma_gamma_reproduces_the_published_cdnow_parameters(cdnow):
    # Fader & Hardie (2013): p = 6.25, q = 3.74, v = 15.44 over the 946 repeat customers.
    assert int((cdnow["x"] > 0).sum()) == 946
    got = fit_gamma_gamma(cdnow["x"], cdnow["zbar"])
    _within(got, {"p": 6.25, "q": 3.74, "v": 15.44}, 0.01)


def _simulate_bgnbd(rng, n: int, r: float, alpha: float, a: float, b: float, T: float) -> pd.DataFrame:
    """Purchases of n customers observed over (0, T], drawn from the BG/NBD story."""
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:   # becomes inactive after this purchase
                break
    return pd.DataFrame({"x": x, "t_x": t_x, "T": np.full(n, T)})


def test_bgnbd_recovers_parameters_from_simulated_customers():
    rng = np.random.default_rng(2005)
    truth = {"r": 0.8, "alpha": 30.0, "a": 0.9, "b": 3.0}
    sim = _simulate_bgnbd(rng, 20_000, T=365.0, **truth)
    got = fit_bgnbd(sim["x"], sim["t_x"], sim["T"])
    _within(got, truth, 0.12)
    # The fitted model predicts the simulated repeat purchases of the period it saw.
    assert float(clv.expected_purchases_new(got, 365.0)) * len(sim) == pytest.approx(sim["x"].sum(), rel=0.03)


def test_gamma_gamma_recovers_parameters_from_simulated_customers():
    rng = np.random.default_rng(2013)
    truth = {"p": 6.0, "q": 4.0, "v": 150.0}
    n = 20_000
    x = rng.integers(1, 15, n).astype(float)
    nu = rng.gamma(truth["q"], 1 / truth["v"], n)          # each customer's spend rate
    m = np.array([rng.gamma(truth["p"], 1 / nu[i], int(k)).mean() for i, k in enumerate(x)])
    got = fit_gamma_gamma(x, m)
    _within(got, truth, 0.08)


def test_predictions_against_closed_forms(cdnow):
    params = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    # No repeat purchase: alive by definition (a purchase is observed at time 0 only).
    assert clv.p_alive(params, [0], [0], [38.86])[0] == 1.0
    # A customer who bought often and stopped long ago is probably gone; a recent one is alive.
    gone, recent = clv.p_alive(params, [5, 5], [5.0, 38.0], [38.86, 38.86])
    assert gone < 0.2 and recent > 0.8
    # Expected purchases grow with the horizon and are 0 over no time.
    e = [clv.expected_purchases(params, t, [2], [30.43], [38.86])[0] for t in (0, 10, 39, 78)]
    assert e[0] == pytest.approx(0, abs=1e-12) and e[1] < e[2] < e[3]
    # A new customer's expectation (equation 9) matches the sum of simulated purchases.
    sim = _simulate_bgnbd(np.random.default_rng(9), 20_000, T=39.0, **params)
    assert float(clv.expected_purchases_new(params, 39.0)) == pytest.approx(sim["x"].mean(), rel=0.05)
    # Gamma-Gamma: no repeat purchases gives the population mean v·p/(q−1); many give their own.
    gg = {"p": 6.25, "q": 3.74, "v": 15.44}
    pop = gg["v"] * gg["p"] / (gg["q"] - 1)
    assert clv.expected_value(gg, [0], [0])[0] == pytest.approx(pop)
    assert clv.expected_value(gg, [1000], [50.0])[0] == pytest.approx(50.0, rel=0.01)
    # Discounted value: positive, below the undiscounted sum, and larger for a likelier buyer.
    args = ([2, 0], [30.43, 0], [38.86, 38.86], [22.35, 0])
    d = clv.discounted_clv(params, gg, *args, months=12, month_units=52 / 12, annual_discount=0.1)
    flat = clv.discounted_clv(params, gg, *args, months=12, month_units=52 / 12, annual_discount=0.0)
    assert (0 < d).all() and (d < flat).all() and d[0] > d[1]


def _holdout_counts() -> pd.DataFrame:
    tx = pd.read_csv(CDNOW / "transactions.txt", sep=r"\s+", header=None,
                     names=["customer", "sample", "date", "cds", "amount"], dtype={"date": str})
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    days = tx.groupby("sample")["date"].apply(lambda s: sorted(set(s)))
    first = days.map(lambda s: s[0])
    cutoff = pd.Timestamp("1997-09-30")  # end of the 39-week calibration period
    return pd.DataFrame({"holdout": days.map(lambda s: sum(1 for d in s if d > cutoff)), "first": first})


def test_cdnow_holdout_forecast(cdnow):
    """The calibration fit forecasts the 39 holdout weeks, counted here from the raw purchase log:
    measured 1,653 predicted against 1,882 actual purchase days (−12 %; the model is known to
    under-forecast CDNOW's holdout a little), so the total within 15 %, and the mean per number of
    calibration repeat purchases (0…7+) rising with it, as the actual means do."""
    counts = _holdout_counts()
    assert len(counts) == len(cdnow) == 2357
    params = fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])
    predicted = clv.expected_purchases(params, 39.0, cdnow["x"], cdnow["t_x"], cdnow["T"])
    actual = counts["holdout"].to_numpy()
    assert predicted.sum() == pytest.approx(actual.sum(), rel=0.15)
    by_x = pd.DataFrame({"x": np.minimum(cdnow["x"], 7), "predicted": predicted, "actual": actual}).groupby("x").mean()
    assert by_x["predicted"].is_monotonic_increasing and by_x["actual"].is_monotonic_increasing
    assert np.allclose(by_x["predicted"], by_x["actual"], rtol=0.3), by_x


def test_too_little_data_is_refused_with_a_reason():
    with pytest.raises(clv.FitError, match="repeat customers are needed"):
        fit_bgnbd([0] * 100, [0] * 100, [30] * 100)
    with pytest.raises(clv.FitError, match="at least 20"):
        fit_gamma_gamma([1, 2], [10.0, 20.0])
    with pytest.raises(ValueError, match="recency ≤ T"):
        fit_bgnbd([1] * 60, [40] * 60, [30] * 60)
