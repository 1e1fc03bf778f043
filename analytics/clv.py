"""Customer lifetime value models: BG/NBD (Fader, Hardie & Lee 2005) and Gamma-Gamma (Fader &
Hardie 2013), fitted by maximum likelihood with scipy.

Inputs are the usual RFM summary per customer, in one time unit (days here, weeks in the papers):
  frequency  x    repeat purchases (purchase days after the first one)
  recency    t_x  time from the first purchase to the last one (0 without repeats)
  T               time from the first purchase to the end of the calibration period
  monetary_value  average value of the repeat purchases (Gamma-Gamma uses customers with x > 0)

analytics.customers re-exports fit_bgnbd and fit_gamma_gamma (the interface fixed in DESIGN.md).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special


class FitError(ValueError):
    """The data cannot support the model (too few customers or repeat purchases)."""


MIN_CUSTOMERS = 50         # below this, a four-parameter fit is noise
MIN_REPEAT_CUSTOMERS = 20  # customers with at least one repeat purchase


def _arrays(*cols) -> list[np.ndarray]:
    return [np.asarray(c, dtype="float64") for c in cols]


def _check_summary(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    if not (len(x) == len(t_x) == len(T)):
        raise ValueError("frequency, recency and T must have the same length")
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(T).all()):
        raise ValueError("frequency, recency and T must be finite numbers")
    if (x < 0).any() or (t_x < 0).any() or (t_x > T + 1e-9).any():
        raise ValueError("need 0 ≤ frequency and 0 ≤ recency ≤ T for every customer")
    if ((x == 0) & (t_x > 0)).any():
        raise ValueError("a customer without repeat purchases has recency 0")


def bgnbd_log_likelihood(params: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Returns each customer's BG/NBD log-likelihood (FHL 2005, equation 6)."""
    r, alpha, a, b = params
    x, t_x, T = _arrays(x, t_x, T)
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
                      -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def _fit(neg_ll, start: np.ndarray) -> np.ndarray:
    """Minimises neg_ll over log-parameters from start; returns the parameters."""
    best = None
    for method in ("L-BFGS-B", "Nelder-Mead"):
        res = optimize.minimize(neg_ll, np.log(start), method=method,
                                options={"maxiter": 20_000} if method == "Nelder-Mead" else {"maxiter": 5_000})
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun - 1e-9):
            best = res
        start = np.exp(res.x)
    if best is None:
        raise FitError("the likelihood could not be maximised for these customers")
    return np.exp(best.x)


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> dict:
    """Fits the BG/NBD model by maximum likelihood; returns dict(r, alpha, a, b).

    Raises FitError when fewer than MIN_CUSTOMERS customers or MIN_REPEAT_CUSTOMERS repeat
    customers are given, ValueError for impossible summaries."""
    x, t_x, T = _arrays(frequency, recency, T)
    _check_summary(x, t_x, T)
    if len(x) < MIN_CUSTOMERS or int((x > 0).sum()) < MIN_REPEAT_CUSTOMERS:
        raise FitError(f"{len(x):,} customers of whom {int((x > 0).sum()):,} bought again: at least "
                       f"{MIN_CUSTOMERS} customers and {MIN_REPEAT_CUSTOMERS} repeat customers are needed "
                       "to fit the purchase model")
    scale = max(float(T.max()), 1e-9)  # fit in units of the longest tenure: better conditioned
    xs, ts, Ts = x, t_x / scale, T / scale

    def neg_ll(log_params):
        p = np.exp(log_params)
        ll = bgnbd_log_likelihood(p, xs, ts, Ts).sum()
        return -ll if np.isfinite(ll) else 1e300
    r, alpha, a, b = _fit(neg_ll, np.array([0.5, 1.0, 1.0, 1.0]))
    return {"r": float(r), "alpha": float(alpha * scale), "a": float(a), "b": float(b)}


def gamma_gamma_log_likelihood(params: ArrayLike, x: ArrayLike, m: ArrayLike) -> np.ndarray:
    """Returns each repeat customer's Gamma-Gamma log-likelihood of their average value m over x
    repeat purchases (Fader & Hardie 2013, equation 3)."""
    p, q, v = params
    x, m = _arrays(x, m)
    return (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(v)
            + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(x * m + v))


def fit_gamma_gamma(frequency: ArrayLike, monetary_value: ArrayLike) -> dict:
    """Fits the Gamma-Gamma model of average purchase value; returns dict(p, q, v).

    Uses the customers with at least one repeat purchase and a positive average value."""
    x, m = _arrays(frequency, monetary_value)
    if len(x) != len(m):
        raise ValueError("frequency and monetary_value must have the same length")
    keep = (x > 0) & (m > 0) & np.isfinite(m)
    x, m = x[keep], m[keep]
    if len(x) < MIN_REPEAT_CUSTOMERS:
        raise FitError(f"{len(x):,} customers with a repeat purchase of positive value: at least "
                       f"{MIN_REPEAT_CUSTOMERS} are needed to fit the spend model")
    scale = float(np.median(m))  # fit in units of the median value: better conditioned

    def neg_ll(log_params):
        ll = gamma_gamma_log_likelihood(np.exp(log_params), x, m / scale).sum()
        return -ll if np.isfinite(ll) else 1e300
    p, q, v = _fit(neg_ll, np.array([1.0, 2.0, 1.0]))
    return {"p": float(p), "q": float(q), "v": float(v * scale)}


# --- predictions ------------------------------------------------------------------------------

def p_alive(params: dict, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Returns P(still active at T) per customer (FHL 2005, equation 11)."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    x, t_x, T = _arrays(frequency, recency, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.where(x > 0, a / (b + x - 1) * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x))), 0.0)
    return 1.0 / (1.0 + odds)


def expected_purchases(params: dict, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike,
                       T: ArrayLike) -> np.ndarray:
    """Returns each customer's expected number of purchases in the next t time units given their
    history (FHL 2005, equation 10)."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    x, t_x, T = _arrays(frequency, recency, T)
    t = float(t)
    z = t / (alpha + T + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    head = (a + b + x - 1) / (a - 1)
    body = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.where(x > 0, a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return head * body / (1 + odds)


def expected_purchases_new(params: dict, t: ArrayLike) -> float:
    """Returns the expected number of repeat purchases of a new customer in (0, t] (equation 9)."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    t = np.asarray(t, dtype="float64")
    hyp = special.hyp2f1(r, b, a + b - 1, t / (alpha + t))
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)


def expected_value(params: dict, frequency: ArrayLike, monetary_value: ArrayLike) -> np.ndarray:
    """Returns each customer's expected average purchase value (Gamma-Gamma, equation 5): a blend
    of the population mean and their own average, weighted by their number of repeat purchases."""
    p, q, v = params["p"], params["q"], params["v"]
    x, m = _arrays(frequency, monetary_value)
    m = np.where(x > 0, m, 0.0)
    return (q - 1) / (p * x + q - 1) * (v * p / (q - 1)) + p * x / (p * x + q - 1) * m


def discounted_clv(bgnbd: dict, gamma_gamma: dict, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
                   monetary_value: ArrayLike, *,
                   months: int = 12, month_units: float = 30.0, annual_discount: float = 0.10) -> np.ndarray:
    """Returns each customer's discounted value over the next `months` months: expected purchases
    in each month times the expected purchase value, discounted monthly at annual_discount."""
    value = expected_value(gamma_gamma, frequency, monetary_value)
    monthly = (1 + annual_discount) ** (1 / 12) - 1
    total = np.zeros(len(value))
    before = np.zeros(len(value))
    for i in range(1, months + 1):
        upto = expected_purchases(bgnbd, i * month_units, frequency, recency, T)
        total += (upto - before) * value / (1 + monthly) ** i
        before = upto
    return total
