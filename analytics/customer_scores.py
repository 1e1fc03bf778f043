"""Customer scores: RFM segments, clusters, BG/NBD and Gamma-Gamma predictions, their validation,
cohorts and segment movement, computed together for the customers page and the nightly job.

compute_scores() reads the per-customer summary from PostgreSQL (one statement, streamed with
COPY) and the cohort figures (one statement), then fits and scores in numpy/scikit-learn.
store_scores() writes a run into mart.customer_score_runs / mart.customer_scores; fetch_stored_scores()
reads the latest run back, so the page opens without refitting.

Model fits use a random sample of at most FIT_SAMPLE customers: the maximum-likelihood estimates
from 100k customers differ from the full data's in the third digit, and the fit stays a few
seconds at any size. Every customer is scored.
"""
from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics import clv
from analytics.customers import (RFM_SEGMENTS, SEGMENT_NAMES, Cohorts, fetch_cohorts, fetch_rfm_scores,
                                 segment_movement)
from analytics.filters import PRESETS, Filters, Period, resolve_preset
from analytics.kpis import fetch_data_bounds
from data.db import copy_frame
from data.measures import COUNTED, LINE_VALUE, local_days_sql

HORIZONS = (30, 90, 365)
CLV_MONTHS = 12
ANNUAL_DISCOUNT = 0.10
FIT_SAMPLE = 100_000
HOLDOUT_DAYS = 182            # the validation's holdout: the last 26 weeks before as_of
MOVEMENT_DAYS = 30            # the stored run's movement: from as_of − 30 days (the default period)
K_RANGE = range(2, 9)
CLUSTER_SAMPLE = 100_000      # customers the final KMeans is fitted on (every customer is assigned)
SILHOUETTE_SAMPLE = 20_000    # customers each k is fitted and scored on when choosing k
MIN_CLUSTER_CUSTOMERS = 40
FREQUENCY_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 7)   # calibration repeat purchases; the last is "7+"
AT_RISK_P_ALIVE = 0.5

SCORE_COLUMNS = ["customer_id", "first_day", "last_day", "orders", "purchase_days", "gmv", "frequency",
                 "recency", "tenure", "days_since", "monetary_value", "r_score", "f_score", "m_score",
                 "fm_score", "rfm_segment", "cluster", "p_alive", "expected_30", "expected_90", "expected_365",
                 "expected_value", "clv_12m", "value_at_risk"]


@dataclass
class CustomerScores:
    as_of: date
    customers: int
    status: str                      # "ok", or "too_little_data" (RFM and cohorts only)
    message: str
    bgnbd: dict | None
    gamma_gamma: dict | None
    segments: pd.DataFrame           # per RFM segment: customers, gmv, shares, averages
    movement: pd.DataFrame | None    # customers from segment at movement_from (rows) to as_of (columns)
    movement_from: date | None
    clusters: pd.DataFrame           # per cluster: description and profile figures
    cluster_k: dict                  # k chosen, how, silhouette per k
    validation: dict                 # cal_end, holdout_days, table (per frequency bucket), totals
    cohorts: Cohorts
    timings: dict = field(default_factory=dict)
    scores: pd.DataFrame | None = None   # per customer (SCORE_COLUMNS); None when read from the store
    run_id: int | None = None
    finished_at: datetime | None = None
    # More movements to as_of, by their earlier date (add_movements; a vendor's nightly scores keep
    # those of the period presets ending on as_of, so any of them is read, not refitted).
    movements: dict[date, pd.DataFrame] = field(default_factory=dict)

    def moved_from(self, previous: date) -> "CustomerScores | None":
        """These scores with the segment movement from previous, or None when they hold none from it."""
        if previous == self.movement_from:
            return self
        if previous not in self.movements:
            return None
        return replace(self, movement=self.movements[previous], movement_from=previous)


# --- reading --------------------------------------------------------------------------------------

def _customer_frame(conn: Connection, f: Filters, as_of: date, cal_end: date, previous: date,
                    tz: str | None) -> pd.DataFrame:
    df = fetch_rfm_scores(conn, f, as_of, tz=tz, cal_end=cal_end, previous=previous)
    return df.rename(columns={"T": "tenure", "segment": "rfm_segment"})


# --- models ---------------------------------------------------------------------------------------

def _sample(n: int, size: int, seed: int = 0) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def holdout_for(first_day: date, as_of: date) -> int:
    """Returns the validation holdout in days: HOLDOUT_DAYS, or a third of a shorter history."""
    history = (as_of - first_day).days
    return HOLDOUT_DAYS if history >= 3 * HOLDOUT_DAYS else max(history // 3, 1)


def validate_bgnbd(df: pd.DataFrame, cal_end: date, holdout_days: int) -> dict:
    """Fits BG/NBD on the customers' history up to cal_end and compares the repeat purchase days
    it predicts for the holdout with those that happened, per calibration frequency bucket."""
    cal = df[df["cal_frequency"].notna()]
    pick = _sample(len(cal), FIT_SAMPLE, seed=1)
    params = clv.fit_bgnbd(cal["cal_frequency"].to_numpy()[pick], cal["cal_recency"].to_numpy()[pick],
                           cal["cal_T"].to_numpy()[pick])
    predicted = clv.expected_purchases(params, holdout_days, cal["cal_frequency"], cal["cal_recency"], cal["cal_T"])
    top = FREQUENCY_BUCKETS[-1]
    bucket = np.minimum(cal["cal_frequency"].to_numpy(), top).astype(int)
    t = pd.DataFrame({"bucket": bucket, "actual": cal["holdout_purchases"].to_numpy(), "predicted": predicted})
    g = t.groupby("bucket").agg(customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean"))
    g = g.reindex(range(top + 1)).reset_index()  # a bucket without customers stays empty
    g["customers"] = g["customers"].fillna(0).astype(int)
    g["label"] = [f"{b}+" if b == top else str(b) for b in g["bucket"]]
    actual, pred = float(t["actual"].sum()), float(t["predicted"].sum())
    return {"cal_end": cal_end.isoformat(), "holdout_days": holdout_days, "customers": int(len(t)),
            "params": params, "actual": actual, "predicted": pred,
            "error": (pred - actual) / actual if actual else None,
            "mae": float(np.abs(t["predicted"] - t["actual"]).mean()),
            "table": g[["label", "customers", "actual", "predicted"]].to_dict("records")}


def _score_models(df: pd.DataFrame) -> tuple[dict, dict]:
    pick = _sample(len(df), FIT_SAMPLE)
    x, t_x, T = (df[c].to_numpy(dtype="float64") for c in ("frequency", "recency", "tenure"))
    bg = clv.fit_bgnbd(x[pick], t_x[pick], T[pick])
    m = df["monetary_value"].to_numpy(dtype="float64")
    repeat = np.flatnonzero((x > 0) & (m > 0))
    repeat = repeat[_sample(len(repeat), FIT_SAMPLE)]
    gg = clv.fit_gamma_gamma(x[repeat], m[repeat])
    df["p_alive"] = clv.p_alive(bg, x, t_x, T)
    for h in HORIZONS:
        df[f"expected_{h}"] = clv.expected_purchases(bg, h, x, t_x, T)
    df["expected_value"] = clv.expected_value(gg, x, np.nan_to_num(m))
    df["clv_12m"] = clv.discounted_clv(bg, gg, x, t_x, T, np.nan_to_num(m), months=CLV_MONTHS,
                                       annual_discount=ANNUAL_DISCOUNT)
    df["value_at_risk"] = df["gmv"] * (1 - df["p_alive"])
    return bg, gg


# --- clusters -------------------------------------------------------------------------------------
CLUSTER_FEATURES = ("days_since", "purchase_days", "gmv", "aov")
_WORDS = {"days_since": ("recent", "lapsed"), "purchase_days": ("frequent", "rare"),
          "gmv": ("high-spending", "low-spending"), "aov": ("large baskets", "small baskets")}


def _features(df: pd.DataFrame) -> np.ndarray:
    aov = df["gmv"] / df["orders"].where(df["orders"] > 0)
    raw = np.column_stack([df["days_since"], df["purchase_days"], df["gmv"].clip(lower=0), aov.fillna(0).clip(lower=0)])
    return np.log1p(raw.astype("float64"))


def cluster_customers(df: pd.DataFrame, k: int | None = None) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """KMeans on standardised log recency, frequency, monetary value and AOV. k is chosen by the
    silhouette score over K_RANGE on a sample unless given. Returns (cluster per customer, numbered
    1… by GMV; profile per cluster; how k was chosen)."""
    # scikit-learn (heavy) loads only when customers are scored: the pages read stored scores.
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    X = _features(df)
    scaler = StandardScaler().fit(X)
    Z = scaler.transform(X)
    Z = np.nan_to_num(Z)
    silhouettes = {}
    if k is None:
        small = Z[_sample(len(Z), SILHOUETTE_SAMPLE, seed=2)]
        for kk in K_RANGE:
            if kk >= len(small):
                break
            labels = KMeans(n_clusters=kk, n_init=3, random_state=0).fit_predict(small)
            if len(set(labels)) > 1:
                silhouettes[kk] = float(silhouette_score(small, labels, sample_size=min(len(small), 5000),
                                                         random_state=0))
        k = max(silhouettes, key=silhouettes.get) if silhouettes else 2
        how = "silhouette"
    else:
        how = "set by the user"
    model = KMeans(n_clusters=k, n_init=4, random_state=0).fit(Z[_sample(len(Z), CLUSTER_SAMPLE, seed=3)])
    labels = model.predict(Z)
    # Number clusters by their GMV, largest first, so that "cluster 1" means the same from run to run.
    gmv = pd.Series(df["gmv"].to_numpy()).groupby(labels).sum().sort_values(ascending=False)
    renumber = {old: new for new, old in enumerate(gmv.index, start=1)}
    labels = np.vectorize(renumber.get)(labels) if len(labels) else labels
    centres = pd.DataFrame(Z).groupby(labels).mean()
    centres.columns = list(CLUSTER_FEATURES)
    return labels.astype("int16"), _profiles(df, labels, centres), {"k": int(k), "how": how, "silhouette": silhouettes}


def _describe(centre: pd.Series) -> str:
    """Returns a cluster's centre in words: each feature half a standard deviation or more away
    from the average customer's is named."""
    words = []
    for feat in CLUSTER_FEATURES:
        above, below = _WORDS[feat]
        z = -centre[feat] if feat == "days_since" else centre[feat]  # fewer days since = more recent
        if z >= 0.5:
            words.append(above)
        elif z <= -0.5:
            words.append(below)
    return ", ".join(words).capitalize() if words else "Close to the average customer"


def _profiles(df: pd.DataFrame, labels: np.ndarray, centres: pd.DataFrame) -> pd.DataFrame:
    t = df.assign(cluster=labels, aov=df["gmv"] / df["orders"])
    g = t.groupby("cluster")
    out = pd.DataFrame({
        "customers": g.size(), "gmv": g["gmv"].sum(), "median_days_since": g["days_since"].median(),
        "mean_purchase_days": g["purchase_days"].mean(), "median_gmv": g["gmv"].median(),
        "median_aov": g["aov"].median()})
    if _scored(t):
        out["mean_p_alive_repeat"] = _p_alive_of_repeat(t, "cluster")
        out["mean_clv_12m"] = g["clv_12m"].mean()
    out["share"] = out["customers"] / out["customers"].sum()
    out["gmv_share"] = out["gmv"] / out["gmv"].sum()
    out["description"] = [_describe(centres.loc[c]) for c in out.index]
    return out.reset_index()


# --- segments -------------------------------------------------------------------------------------

def _scored(df: pd.DataFrame) -> bool:
    """True when the models scored these customers (not too little data)."""
    return "p_alive" in df and bool(df["p_alive"].notna().any())


def _p_alive_of_repeat(df: pd.DataFrame, by: str) -> pd.Series:
    """Mean P(alive) per group over repeat customers: BG/NBD counts a customer who bought once as
    alive until they buy again (P(alive) = 1), so only repeat customers' P(alive) says something."""
    return df[df["frequency"] > 0].groupby(by)["p_alive"].mean()


def segment_table(df: pd.DataFrame) -> pd.DataFrame:
    """Returns per RFM segment (in RFM_SEGMENTS order): rule, customers, GMV, their shares, average
    days since the last purchase, purchase days and, when scored, P(alive) and 12-month CLV."""
    g = df.groupby("rfm_segment")
    out = pd.DataFrame({"customers": g.size(), "gmv": g["gmv"].sum(), "mean_days_since": g["days_since"].mean(),
                        "mean_purchase_days": g["purchase_days"].mean()})
    if _scored(df):
        out["mean_p_alive_repeat"] = _p_alive_of_repeat(df, "rfm_segment")
        out["expected_365"] = g["expected_365"].sum()
        out["clv_12m"] = g["clv_12m"].sum()
    out = out.reindex(SEGMENT_NAMES)
    out["customers"] = out["customers"].fillna(0).astype(int)
    out["gmv"] = out["gmv"].fillna(0.0)
    total_c, total_g = out["customers"].sum(), out["gmv"].sum()
    out["share"] = out["customers"] / total_c if total_c else 0.0
    out["gmv_share"] = out["gmv"] / total_g if total_g else 0.0
    out.insert(0, "rule", [rule for _, rule, *_ in RFM_SEGMENTS])
    return out.rename_axis("segment").reset_index()


# --- the whole computation ------------------------------------------------------------------------

def compute_scores(conn: Connection, f: Filters, as_of: date, *, k: int | None = None,
                   previous: date | None = None, tz: str, customer_records: bool = True,
                   progress: Callable[[float, str], None] | None = None) -> CustomerScores:
    """Computes every customer figure for customers matching f as of as_of.

    previous: the earlier date of the segment movement (default as_of − MOVEMENT_DAYS).
    customer_records=False: nothing is read from mart.customers (a vendor's role cannot), so the
    cohorts are not split by acquisition channel or segment.
    progress(fraction, step) is called between steps. When the data is too thin to fit the
    models, status is "too_little_data" with the reason; RFM, clusters and cohorts still come.
    """
    say = progress or (lambda _f, _s: None)
    timings: dict[str, int] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round((now - t0) * 1000)
        t0 = now

    previous = previous or as_of - timedelta(days=MOVEMENT_DAYS)
    say(0.0, "Reading customers")
    first = fetch_data_bounds(conn, tz)[0]
    holdout = holdout_for(first or as_of, as_of)
    cal_end = as_of - timedelta(days=holdout)
    df = _customer_frame(conn, f, as_of, cal_end, previous, tz)
    lap("read customers")
    say(0.3, "Reading cohorts")
    cohort_figures = fetch_cohorts(conn, f, as_of, tz=tz, splits=customer_records)
    lap("cohorts")
    status, message, bg, gg, validation = "ok", "", None, None, {}
    say(0.5, "Fitting the purchase and spend models")
    try:
        bg, gg = _score_models(df)
    except clv.FitError as ex:
        status, message = "too_little_data", str(ex)
        for c in ("p_alive", *(f"expected_{h}" for h in HORIZONS), "expected_value", "clv_12m", "value_at_risk"):
            df[c] = np.nan
    lap("fit and score")
    if bg is not None:
        say(0.7, "Checking the model on a holdout")
        try:
            validation = validate_bgnbd(df, cal_end, holdout)
        except clv.FitError as ex:
            validation = {"cal_end": cal_end.isoformat(), "holdout_days": holdout,
                          "unavailable": f"the history before {cal_end:%d %b %Y} is too thin to check the model: {ex}"}
        lap("validation")
    say(0.8, "Clustering")
    clusters, cluster_k = pd.DataFrame(), {}
    if len(df) >= MIN_CLUSTER_CUSTOMERS:
        df["cluster"], clusters, cluster_k = cluster_customers(df, k)
    else:
        df["cluster"] = pd.NA
        cluster_k = {"k": None, "how": f"not clustered: {len(df):,} customers, at least "
                                       f"{MIN_CLUSTER_CUSTOMERS} are needed", "silhouette": {}}
    lap("clusters")
    movement = segment_movement(df, "rfm_segment") if len(df) else None
    segments = segment_table(df)
    lap("segments")
    say(1.0, "Done")
    return CustomerScores(as_of, len(df), status, message, bg, gg, segments, movement, previous, clusters,
                          cluster_k, validation, cohort_figures, timings, df)


def at_risk(scores: pd.DataFrame, *, max_p_alive: float = AT_RISK_P_ALIVE, segments: list[str] | None = None,
            limit: int = 1000) -> pd.DataFrame:
    """Returns the customers with P(alive) below max_p_alive, most value at risk (past GMV ×
    (1 − P(alive))) first."""
    return top_customers(scores, "value_at_risk", max_p_alive=max_p_alive, segments=segments, limit=limit)


RANKINGS = ("value_at_risk", "clv_12m")


def top_customers(scores: pd.DataFrame, by: str, *, max_p_alive: float | None = None,
                  segments: list[str] | None = None, limit: int = 100) -> pd.DataFrame:
    """Returns the first `limit` customers by `by` (RANKINGS), highest first (ties by customer id),
    optionally only those with P(alive) below max_p_alive and in the given RFM segments."""
    if by not in RANKINGS:
        raise ValueError(f"customers can be ranked by {', '.join(RANKINGS)}, not {by!r}")
    t = scores if max_p_alive is None else scores[scores["p_alive"] < max_p_alive]
    if segments:
        t = t[t["rfm_segment"].isin(segments)]
    return t[t[by].notna()].sort_values([by, "customer_id"], ascending=[False, True]).head(limit)


# Each customer's vendor with the most counted GMV on or before :as_of (ties: the lower vendor
# id) and its share of the customer's GMV, for the customers matching {where} (on o, orders).
_MAIN_VENDORS = f"""
    WITH per_vendor AS (
        SELECT o.customer_id, i.vendor_id, SUM({LINE_VALUE}) AS gmv
        FROM mart.orders o JOIN mart.order_items i ON i.order_id = o.order_id
        WHERE {{where}} AND {COUNTED}
          AND {local_days_sql('o.ordered_at', None, ':as_of')}
        GROUP BY 1, 2)
    SELECT DISTINCT ON (customer_id) customer_id, vendor_id,
           (gmv / NULLIF(SUM(gmv) OVER (PARTITION BY customer_id), 0))::float8 AS share
    FROM per_vendor ORDER BY customer_id, gmv DESC, vendor_id"""


def fetch_customer_details(conn: Connection, customer_ids: list[int], as_of: date, *, tz: str) -> pd.DataFrame:
    """Returns name, country, segment and acquisition channel of the given customers, and the
    vendor they spent most with (counted orders on or before as_of) and its share of their GMV.

    For the as_of of a stored run the main vendors are those the run stored (as the data was
    then, like its scores); otherwise they are summed from the customers' order lines."""
    if not customer_ids:
        return pd.DataFrame(columns=["customer_id", "name", "country", "segment", "acquisition_channel",
                                     "main_vendor", "main_vendor_share"])
    # The latest run of that day, if it stored main vendors (only the latest run keeps rows). A
    # probe per run: as a semi-join the planner hashed every row (2M at 10M lines, 310 ms).
    run = conn.execute(sa.text("""
        SELECT r.run_id FROM mart.customer_score_runs r
        WHERE r.as_of = :as_of
          AND (SELECT true FROM mart.customer_score_main_vendors m WHERE m.run_id = r.run_id LIMIT 1)
        ORDER BY r.finished_at DESC, r.run_id DESC LIMIT 1"""), {"as_of": as_of}).scalar()
    ranked = ("SELECT customer_id, vendor_id, share FROM mart.customer_score_main_vendors "
              "WHERE run_id = :run AND customer_id = ANY(:ids)" if run is not None
              else _MAIN_VENDORS.format(where="o.customer_id = ANY(:ids)"))
    rows = conn.execute(sa.text(f"""
        WITH ranked AS ({ranked})
        SELECT k.customer_id, k.name, k.country, k.segment, k.acquisition_channel,
               v.name AS main_vendor, r.share AS main_vendor_share
        FROM mart.customers k
        LEFT JOIN ranked r ON r.customer_id = k.customer_id
        LEFT JOIN mart.vendors v ON v.vendor_id = r.vendor_id
        WHERE k.customer_id = ANY(:ids)"""), {"ids": list(map(int, customer_ids)), "as_of": as_of, "run": run,
                                               "tz": tz}).all()
    return pd.DataFrame(rows, columns=["customer_id", "name", "country", "segment", "acquisition_channel",
                                       "main_vendor", "main_vendor_share"])


# --- the store ------------------------------------------------------------------------------------

def _plain(v):
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return None if np.isnan(v) else float(v)
    if isinstance(v, float) and np.isnan(v):
        return None
    raise TypeError(f"cannot store {type(v).__name__} as JSON")


def _dumps(obj) -> str:
    """obj as JSON for jsonb, NaN and infinities as null (jsonb has neither; a thin vendor's
    validation holds them)."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return None if isinstance(v, float) and not math.isfinite(v) else v
    return json.dumps(clean(obj), default=_plain, allow_nan=False)


def _table_json(df: pd.DataFrame) -> dict:
    """Returns a frame as {columns, data}: jsonb keeps neither key order nor NaN, this keeps both."""
    return {"columns": list(df.columns),
            "data": [[None if isinstance(v, float) and np.isnan(v) else v for v in row]
                     for row in df.itertuples(index=False, name=None)]}


def _table_from(j: dict) -> pd.DataFrame:
    return pd.DataFrame(j["data"], columns=j["columns"]).fillna(np.nan)


def store_scores(conn: Connection, s: CustomerScores, *, started_at: datetime, rollup_version: int | None,
                 tz: str, progress: Callable[[float, str], None] | None = None) -> int:
    """Writes the run and its customers' rows (scores, and main vendors as fetch_customer_details gives
    them as of the run's day), and deletes the previous run's; returns the run id. progress is
    called between the two (the main vendors read every order line up to the run's day).

    Runs inside the caller's transaction: readers keep reading the previous run, unblocked, until
    it commits.
    """
    figures = _figures(s)
    finished = datetime.now(timezone.utc)
    run_id = conn.execute(sa.text("""
        INSERT INTO mart.customer_score_runs (as_of, started_at, finished_at, duration_ms, customers, rollup_version,
                                              status, message, bgnbd, gamma_gamma, figures)
        VALUES (:as_of, :started, :finished, :ms, :n, :v, :status, :msg, CAST(:bg AS jsonb), CAST(:gg AS jsonb),
                CAST(:fig AS jsonb))
        RETURNING run_id"""), {
        "as_of": s.as_of, "started": started_at, "finished": finished,
        "ms": int((finished - started_at).total_seconds() * 1000), "n": s.customers, "v": rollup_version,
        "status": s.status, "msg": s.message, "bg": _dumps(s.bgnbd), "gg": _dumps(s.gamma_gamma),
        "fig": figures}).scalar()
    if s.scores is not None and len(s.scores):
        out = s.scores.assign(run_id=run_id)[["run_id", *SCORE_COLUMNS]]
        buf = io.StringIO()
        out.to_csv(buf, index=False, header=False, na_rep="", float_format="%.17g")
        data = buf.getvalue()
        with conn.connection.driver_connection.cursor() as cur:
            # Column names are this module's constants.
            with cur.copy(f"COPY mart.customer_scores (run_id, {', '.join(SCORE_COLUMNS)}) "
                          "FROM STDIN (FORMAT csv)") as cp:
                for lo in range(0, len(data), 1 << 20):
                    cp.write(data[lo:lo + (1 << 20)])
        # Every scored customer's, in one pass over the order lines up to the run's day (38 s at
        # 10M lines; its hash aggregate spills to disk at the default work_mem).
        if progress is not None:
            progress(0.95, "storing main vendors")
        conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
        conn.execute(sa.text(f"""
            INSERT INTO mart.customer_score_main_vendors (run_id, customer_id, vendor_id, share)
            SELECT :r, m.customer_id, m.vendor_id, m.share
            FROM ({_MAIN_VENDORS.format(where="true")}) m
            WHERE m.customer_id IN (SELECT customer_id FROM mart.customer_scores WHERE run_id = :r)"""),
                     {"r": run_id, "as_of": s.as_of, "tz": tz})
    for table in ("customer_scores", "customer_score_main_vendors"):
        conn.execute(sa.text(f"DELETE FROM mart.{table} WHERE run_id <> :r"), {"r": run_id})
        conn.execute(sa.text(f"ANALYZE mart.{table}"))
    return int(run_id)


def page_dates(period: Period, today: date) -> tuple[date, date]:
    """The customers page's (as_of, previous) for a period: its end, or yesterday if that is earlier,
    and the day before its start (the segment movement's earlier date)."""
    as_of = min(period.end, today - timedelta(days=1))
    return as_of, min(period.start, as_of) - timedelta(days=1)


def preset_movement_dates(as_of: date) -> list[date]:
    """The movements' earlier dates of the period presets whose page_dates end on as_of, when as_of
    is yesterday: what a nightly run keeps so the page reads any of those presets."""
    out = []
    for preset in PRESETS:
        if preset == "custom":
            continue
        end, previous = page_dates(resolve_preset(preset, as_of + timedelta(days=1)), as_of + timedelta(days=1))
        if end == as_of:
            out.append(previous)
    return sorted(set(out))


def add_movements(conn: Connection, s: CustomerScores, f: Filters, previous: list[date], *, tz: str) -> None:
    """Adds to s.movements the segment movement from each date of previous to s.as_of (one read of
    the customers' summary each; not the model fits)."""
    for p in sorted(set(previous) - {s.movement_from}):
        df = fetch_rfm_scores(conn, f, s.as_of, tz=tz, previous=p)
        s.movements[p] = segment_movement(df) if len(df) else None


def _figures(s: CustomerScores) -> str:
    """The run's aggregate figures as JSON (no customer), as the stores keep them."""
    return _dumps({
        "segments": _table_json(s.segments), "clusters": _table_json(s.clusters), "cluster_k": s.cluster_k,
        "validation": s.validation, "timings": s.timings,
        "movement_from": s.movement_from,
        "movement": s.movement.to_dict("split") if s.movement is not None else None,
        "movements": {p.isoformat(): m.to_dict("split") if m is not None else None for p, m in s.movements.items()},
        "cohorts": s.cohorts.to_json(),
    })


def _stored(row) -> CustomerScores:
    """CustomerScores (without per-customer rows) from a stored row's as_of, finished_at, customers,
    status, message, bgnbd, gamma_gamma, figures (and run_id, when it has one)."""
    fig = row["figures"]

    def frame_of(mv):
        return pd.DataFrame(mv["data"], index=mv["index"], columns=mv["columns"]) if mv else None
    movement = frame_of(fig.get("movement"))
    return CustomerScores(
        as_of=row["as_of"], customers=row["customers"], status=row["status"], message=row["message"],
        bgnbd=row["bgnbd"], gamma_gamma=row["gamma_gamma"], segments=_table_from(fig["segments"]),
        movement=movement, movement_from=date.fromisoformat(fig["movement_from"]) if fig.get("movement_from") else None,
        clusters=_table_from(fig["clusters"]), cluster_k=fig["cluster_k"], validation=fig["validation"],
        cohorts=Cohorts.from_json(fig["cohorts"]), timings=fig["timings"], scores=None, run_id=row.get("run_id"),
        finished_at=row["finished_at"],
        movements={date.fromisoformat(p): frame_of(m) for p, m in (fig.get("movements") or {}).items()})


# The rows a vendor keeps (migration 0029): scores as of yesterday, and as of last year's end.
VENDOR_SCORE_PERIODS = ("yesterday", "last_year")


def store_vendor_scores(conn: Connection, vendor_id: int, s: CustomerScores, *, started_at: datetime,
                        period: str = "yesterday", days_version: int | None = None) -> None:
    """Keeps s (aggregates only) as the vendor's latest customer scores of period (one of
    VENDOR_SCORE_PERIODS), replacing the previous ones; days_version: the rollup version of the days
    up to s.as_of when they were read (last year's are computed again once it moves)."""
    finished = datetime.now(timezone.utc)
    conn.execute(sa.text("""
        INSERT INTO mart.vendor_customer_scores (vendor_id, period, as_of, movement_from, finished_at, duration_ms,
                                                 customers, status, message, bgnbd, gamma_gamma, figures,
                                                 days_version)
        VALUES (:v, :period, :as_of, :mf, :finished, :ms, :n, :status, :msg, CAST(:bg AS jsonb), CAST(:gg AS jsonb),
                CAST(:fig AS jsonb), :dv)
        ON CONFLICT (vendor_id, period) DO UPDATE SET as_of = EXCLUDED.as_of, movement_from = EXCLUDED.movement_from,
            finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms, customers = EXCLUDED.customers,
            status = EXCLUDED.status, message = EXCLUDED.message, bgnbd = EXCLUDED.bgnbd,
            gamma_gamma = EXCLUDED.gamma_gamma, figures = EXCLUDED.figures,
            days_version = EXCLUDED.days_version"""), {
        "v": vendor_id, "period": period, "as_of": s.as_of, "mf": s.movement_from, "finished": finished,
        "ms": int((finished - started_at).total_seconds() * 1000), "n": s.customers, "status": s.status,
        "msg": s.message, "bg": _dumps(s.bgnbd), "gg": _dumps(s.gamma_gamma), "fig": _figures(s),
        "dv": days_version})


def fetch_stored_vendor_scores(conn: Connection, vendor_id: int, period: str = "yesterday") -> CustomerScores | None:
    """Returns the vendor's latest stored customer scores of period (store_vendor_scores), or None."""
    row = conn.execute(sa.text("""
        SELECT as_of, finished_at, customers, status, message, bgnbd, gamma_gamma, figures
        FROM mart.vendor_customer_scores WHERE vendor_id = :v AND period = :p"""),
        {"v": vendor_id, "p": period}).mappings().first()
    return None if row is None else _stored(dict(row))


def vendor_score_period(as_of: date, today: date) -> str:
    """Which of a vendor's kept rows (VENDOR_SCORE_PERIODS) holds scores as of as_of, if any does:
    yesterday's, else last year's (the page checks the row's date)."""
    return "yesterday" if as_of == today - timedelta(days=1) else "last_year"


def fetch_latest_run_id(conn: Connection) -> int | None:
    """Returns the id of the run whose customers mart.customer_scores holds, or None."""
    return conn.execute(sa.text(
        "SELECT run_id FROM mart.customer_score_runs ORDER BY finished_at DESC, run_id DESC LIMIT 1")).scalar()


def fetch_stored_scores(conn: Connection, run_id: int | None = None) -> CustomerScores | None:
    """Returns stored run run_id (default: the latest) without per-customer rows, or None."""
    run_id = fetch_latest_run_id(conn) if run_id is None else run_id
    row = conn.execute(sa.text("""
        SELECT run_id, as_of, finished_at, customers, status, message, bgnbd, gamma_gamma, figures
        FROM mart.customer_score_runs WHERE run_id = :r"""), {"r": run_id}).mappings().first()
    return None if row is None else _stored(dict(row))


def fetch_stored_at_risk(conn: Connection, run_id: int, *, max_p_alive: float = AT_RISK_P_ALIVE,
                         segments: list[str] | None = None, limit: int = 1000) -> pd.DataFrame:
    """The at-risk list (see at_risk) read from mart.customer_scores."""
    return fetch_stored_top_customers(conn, run_id, "value_at_risk", max_p_alive=max_p_alive, segments=segments,
                                      limit=limit)


def fetch_stored_top_customers(conn: Connection, run_id: int, by: str, *, max_p_alive: float | None = None,
                               segments: list[str] | None = None, limit: int | None = 100) -> pd.DataFrame:
    """top_customers read from mart.customer_scores (limit None: every customer of the run)."""
    if by not in RANKINGS:
        raise ValueError(f"customers can be ranked by {', '.join(RANKINGS)}, not {by!r}")
    where = (" AND p_alive < :p" if max_p_alive is not None else "") + \
        (" AND rfm_segment = ANY(CAST(:segs AS text[]))" if segments else "")
    # `by` is one of RANKINGS (checked above), never input text.
    return copy_frame(conn, f"""
        SELECT {', '.join(SCORE_COLUMNS)} FROM mart.customer_scores
        WHERE run_id = :run AND {by} IS NOT NULL {where}
        ORDER BY {by} DESC NULLS LAST, customer_id {'LIMIT :n' if limit is not None else ''}""",
        {"run": run_id, "p": max_p_alive, "segs": list(segments or []), "n": limit}, dates=("first_day", "last_day"))
