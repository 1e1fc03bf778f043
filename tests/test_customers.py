"""Customer summaries and RFM scores against an independent pandas computation on raw rows."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import customer_scores as S
from analytics import customers as C
from analytics.customer_scores import cluster_customers, compute_scores
from analytics.filters import Filters, Period
from reports import jobs
from tests.conftest import SEED_END
from tests.raw_metrics import load_raw, prepare

TZ = "UTC"
AS_OF = [SEED_END - timedelta(days=1), SEED_END - timedelta(days=200)]


@pytest.fixture(scope="module")
def raw(engine):
    return prepare(load_raw(engine), TZ)


@pytest.fixture(scope="module")
def filter_sets(raw):
    lines = raw["lines"]
    return {"everyone": {}, "B2B": {"segment": ["B2B"]}, "web": {"channel": ["web"]},
            "a vendor": {"vendor_id": [int(lines["vendor_id"].value_counts().idxmax())]}}


def _summary(raw, as_of, dims: dict) -> pd.DataFrame:
    """Per customer from raw counted lines on or before as_of, computed here with pandas."""
    li = raw["lines"]
    li = li[li["counted"] & (li["day"] <= as_of)]
    for d, values in dims.items():
        li = li[li[d].isin(values)]
    per_day = li.groupby(["customer_id", "day"]).agg(gmv=("value", "sum"), orders=("order_id", "nunique")).reset_index()
    g = per_day.groupby("customer_id")
    out = pd.DataFrame({"first_day": g["day"].min(), "last_day": g["day"].max(), "purchase_days": g.size(),
                        "orders": g["orders"].sum(), "gmv": g["gmv"].sum()})
    first_gmv = per_day.sort_values("day").groupby("customer_id")["gmv"].first()
    out["frequency"] = out["purchase_days"] - 1
    out["recency"] = [(b - a).days for a, b in zip(out["first_day"], out["last_day"])]
    out["T"] = [(as_of - a).days for a in out["first_day"]]
    out["days_since"] = [(as_of - b).days for b in out["last_day"]]
    out["monetary_value"] = (out["gmv"] - first_gmv) / out["frequency"].replace(0, np.nan)
    return out.astype({c: float for c in C.SUMMARY_COLUMNS[3:]})


CASES = [(a, s) for a in AS_OF for s in ("everyone", "B2B", "web", "a vendor")]


@pytest.mark.parametrize("as_of,sname", CASES, ids=[f"{a}-{s}" for a, s in CASES])
def test_summary_equals_raw(engine, raw, filter_sets, as_of, sname):
    dims = filter_sets[sname]
    want = _summary(raw, as_of, dims)
    assert len(want) > 50
    with engine.connect() as conn:
        for use_rollups in (True, False):
            got = C.fetch_customer_summary(conn, Filters.make(Period(as_of, as_of), **dims), as_of, tz=TZ,
                                     use_rollups=use_rollups).set_index("customer_id")
            assert got.attrs["source"] == ("raw" if sname == "a vendor" or not use_rollups else "rollup_customer_daily")
            assert list(got.index) == sorted(want.index)
            for c in C.SUMMARY_COLUMNS[1:]:
                a, w = got[c], want[c].reindex(got.index)
                if c in ("first_day", "last_day"):
                    assert (a == w).all(), c
                else:
                    same = np.isclose(a, w, rtol=1e-9, atol=1e-6) | (a.isna() & w.isna())
                    assert same.all(), (c, got.index[~same][:5].tolist())


@pytest.mark.parametrize("sname", ["everyone", "web"])
def test_rfm_scores_equal_raw(engine, raw, filter_sets, sname):
    as_of = AS_OF[0]
    want = _summary(raw, as_of, filter_sets[sname])
    n = len(want)

    def score(s: pd.Series) -> pd.Series:  # quintile of the rank from the worst, ties share the lowest
        return (1 + np.floor(5 * (s.rank(method="min") - 1) / n)).astype(int)
    want["r"], want["f"], want["m"] = score(-want["days_since"]), score(want["purchase_days"]), score(want["gmv"])
    with engine.connect() as conn:
        got = C.fetch_rfm_scores(conn, Filters.make(Period(as_of, as_of), **filter_sets[sname]), as_of, tz=TZ)
    got = got.set_index("customer_id")
    assert (got["r_score"] == want["r"].reindex(got.index)).all()
    assert (got["f_score"] == want["f"].reindex(got.index)).all()
    assert (got["m_score"] == want["m"].reindex(got.index)).all()
    assert (got["fm_score"] == (got["f_score"] + got["m_score"] + 1) // 2).all()
    assert (got["segment"] == [C.segment_of(r, fm) for r, fm in zip(got["r_score"], got["fm_score"])]).all()
    # Quintiles: recency and value have few ties, so each score holds about a fifth.
    for col in ("r_score", "m_score"):
        shares = got[col].value_counts(normalize=True)
        assert shares.between(0.15, 0.25).all(), (col, shares)


def test_every_score_pair_has_one_segment():
    cells = [(r, fm) for r in range(1, 6) for fm in range(1, 6)]
    for r, fm in cells:
        assert sum(r in rs and fm in fms for _, _, rs, fms in C.RFM_SEGMENTS) == 1, (r, fm)
    assert {C.segment_of(r, fm) for r, fm in cells} == {name for name, *_ in C.RFM_SEGMENTS}
    with pytest.raises(ValueError, match="out of range"):
        C.segment_of(0, 3)


def test_no_customers_gives_an_empty_frame(engine):
    as_of = SEED_END - timedelta(days=3000)
    with engine.connect() as conn:
        f = Filters.make(Period(as_of, as_of))
        assert C.fetch_customer_summary(conn, f, as_of, tz=TZ).empty
        assert C.fetch_rfm_scores(conn, f, as_of, tz=TZ).empty


# --- cohorts, movement, validation and the stored scores -------------------------------------------

def _counted_lines(raw, as_of, dims: dict) -> pd.DataFrame:
    li = raw["lines"]
    li = li[li["counted"] & (li["day"] <= as_of)]
    for d, values in dims.items():
        li = li[li[d].isin(values)]
    return li


def _months(a, b) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


@pytest.mark.parametrize("sname", ["everyone", "B2B", "web", "a vendor"])
def test_cohorts_equal_raw(engine, raw, filter_sets, sname):
    as_of = AS_OF[0]
    dims = filter_sets[sname]
    li = _counted_lines(raw, as_of, dims)
    per_day = li.groupby(["customer_id", "day"]).agg(gmv=("value", "sum"), orders=("order_id", "nunique")).reset_index()
    first = per_day.groupby("customer_id")["day"].min()
    per_day["cohort"] = per_day["customer_id"].map(first).map(lambda d: d.replace(day=1))
    per_day["month"] = [_months(c, d) for c, d in zip(per_day["cohort"], per_day["day"])]
    cust = raw["lines"].drop_duplicates("customer_id").set_index("customer_id")  # segment per customer
    acq = pd.read_sql_query("SELECT customer_id, acquisition_channel FROM mart.customers", engine).set_index("customer_id")
    per_day["acquisition_channel"] = per_day["customer_id"].map(acq["acquisition_channel"])
    per_day["segment"] = per_day["customer_id"].map(cust["segment"])
    with engine.connect() as conn:
        got = C.fetch_cohorts(conn, Filters.make(Period(as_of, as_of), **dims), as_of, tz=TZ)
    for split in ("all", "acquisition_channel", "segment"):
        key = ["cohort"] if split == "all" else ["cohort", split]
        months = per_day.groupby([*key, "month"]).agg(customers=("customer_id", "nunique"), revenue=("gmv", "sum"))
        cells = got.cells[got.cells["split"] == split]
        if split != "all":
            cells = cells.rename(columns={"split_value": split})
        cells = cells.set_index([*key, "month"]).sort_index()
        months = months.sort_index()
        assert list(cells.index) == list(months.index), split
        assert (cells["customers"] == months["customers"]).all(), split
        assert np.allclose(cells["revenue"], months["revenue"], rtol=1e-9, atol=1e-6), split
        orders = per_day.groupby("customer_id")["orders"].sum()
        members = per_day.drop_duplicates("customer_id").assign(repeat=lambda d: d["customer_id"].map(orders) >= 2)
        sizes = members.groupby(key).agg(customers=("customer_id", "size"), repeat_customers=("repeat", "sum"))
        s = got.sizes[got.sizes["split"] == split]
        s = (s.rename(columns={"split_value": split}) if split != "all" else s).set_index(key).sort_index()
        assert (s["customers"] == sizes["customers"]).all() and (s["repeat_customers"] == sizes["repeat_customers"]).all()
    # Retention matrix: month 0 is 100 %, a lived-through month without buyers is 0, the future is empty.
    m = got.matrix()
    assert (m[0] == 1).all()
    youngest = m.index.max()
    assert m.loc[youngest].iloc[_months(youngest, as_of) + 1:].isna().all()
    assert m.loc[m.index.min()].notna().sum() == _months(m.index.min(), as_of) + 1
    # Time between purchase days.
    gaps = per_day.sort_values("day").groupby("customer_id")["day"].diff().dropna().map(lambda t: t.days)
    edges = [lo for lo, _, _ in C.GAP_BUCKETS]
    want = np.bincount(np.searchsorted(edges, gaps.to_numpy(), side="right") - 1, minlength=len(edges))
    assert got.gaps["gaps"].tolist() == want.tolist()
    assert got.gap_median == pytest.approx(float(np.median(gaps)))
    assert got.gap_mean == pytest.approx(float(gaps.mean()))


def _rfm_reference(raw, as_of, dims: dict) -> pd.DataFrame:
    want = _summary(raw, as_of, dims)
    n = len(want)

    def score(s: pd.Series) -> pd.Series:
        return (1 + np.floor(5 * (s.rank(method="min") - 1) / n)).astype(int)
    r, f, m = score(-want["days_since"]), score(want["purchase_days"]), score(want["gmv"])
    want["segment"] = [C.segment_of(a, (b + c + 1) // 2) for a, b, c in zip(r, f, m)]
    return want


@pytest.fixture(scope="module")
def scored(engine):
    """compute_scores as of AS_OF[0] for everyone, web orders (rollups) and one vendor (raw lines),
    with movement from 60 days before."""
    as_of, out = AS_OF[0], {}
    with engine.connect() as conn:
        vendor = int(pd.read_sql_query("SELECT vendor_id FROM mart.order_items GROUP BY 1 ORDER BY count(*) DESC, 1 "
                                       "LIMIT 1", conn)["vendor_id"][0])
        for name, dims in (("everyone", {}), ("web", {"channel": ["web"]}), ("a vendor", {"vendor_id": [vendor]})):
            out[name] = compute_scores(conn, Filters.make(Period(as_of, as_of), **dims), as_of,
                                       previous=as_of - timedelta(days=60), tz=TZ)
    return out


@pytest.mark.parametrize("sname", ["everyone", "web", "a vendor"])
def test_movement_and_segments_equal_raw(raw, filter_sets, scored, sname):
    s = scored[sname]
    now = _rfm_reference(raw, s.as_of, filter_sets[sname])
    before = _rfm_reference(raw, s.movement_from, filter_sets[sname])
    want = pd.crosstab(before["segment"].reindex(now.index).fillna(C.NOT_YET), now["segment"])
    names = [x for x, *_ in C.RFM_SEGMENTS]
    want = want.reindex(index=[*names, C.NOT_YET], columns=names, fill_value=0)
    assert (s.movement.to_numpy() == want.to_numpy()).all()
    sizes = now.groupby("segment").agg(customers=("gmv", "size"), gmv=("gmv", "sum")).reindex(names, fill_value=0)
    assert s.segments["customers"].tolist() == sizes["customers"].tolist()
    assert np.allclose(s.segments["gmv"], sizes["gmv"])
    assert s.segments["share"].sum() == pytest.approx(1.0)


def test_validation_counts_equal_raw(raw, scored):
    s = scored["everyone"]
    v = s.validation
    cal_end = date_of(v["cal_end"])
    cal = _summary(raw, cal_end, {})
    li = _counted_lines(raw, s.as_of, {})
    after = li[li["day"] > cal_end].groupby("customer_id")["day"].nunique()
    cal["holdout"] = after.reindex(cal.index).fillna(0)
    cal["bucket"] = np.minimum(cal["frequency"], 7).astype(int)
    g = cal.groupby("bucket").agg(customers=("holdout", "size"), actual=("holdout", "mean"))
    t = pd.DataFrame(v["table"])
    assert t["customers"].tolist() == g["customers"].reindex(range(8), fill_value=0).tolist()
    assert np.allclose(t["actual"], g["actual"].reindex(range(8), fill_value=0))
    assert v["actual"] == cal["holdout"].sum() and v["customers"] == len(cal)
    # The seeded customers follow a purchase process close to BG/NBD's: the holdout total is near.
    assert abs(v["error"]) < 0.15, v["error"]
    scores = s.scores.set_index("customer_id")
    assert (scores["cal_frequency"].dropna() == cal["frequency"].reindex(scores["cal_frequency"].dropna().index)).all()


def date_of(text: str):
    return date.fromisoformat(text)


def test_scores_are_consistent(scored):
    s = scored["everyone"]
    df = s.scores
    assert s.status == "ok" and len(df) == s.customers
    assert df["p_alive"].between(0, 1).all()
    assert (df.loc[df["frequency"] == 0, "p_alive"] == 1).all()
    assert (df["expected_30"] <= df["expected_90"]).all() and (df["expected_90"] <= df["expected_365"]).all()
    assert (df["clv_12m"] >= 0).all()
    assert np.allclose(df["value_at_risk"], df["gmv"] * (1 - df["p_alive"]))
    risk = S.at_risk(df, max_p_alive=0.3, limit=50)
    assert (risk["p_alive"] < 0.3).all() and risk["value_at_risk"].is_monotonic_decreasing and len(risk) <= 50
    # Clusters: k from the silhouette search, every customer in one, numbered by GMV.
    assert s.cluster_k["how"] == "silhouette" and s.cluster_k["k"] in range(2, 9)
    assert sorted(df["cluster"].unique()) == list(range(1, s.cluster_k["k"] + 1))
    assert s.clusters["gmv"].is_monotonic_decreasing
    assert s.clusters["customers"].sum() == len(df)


def test_clusters_find_separated_groups_and_take_a_set_k():
    rng = np.random.default_rng(0)
    groups = []
    for days_since, purchases, gmv in ((10, 12, 3000), (400, 1, 40), (120, 3, 300)):
        n = 400
        groups.append(pd.DataFrame({
            "days_since": rng.normal(days_since, days_since * 0.1, n).clip(0),
            "purchase_days": np.maximum(1, rng.normal(purchases, purchases * 0.1, n).round()),
            "gmv": rng.normal(gmv, gmv * 0.1, n).clip(1)}))
    df = pd.concat(groups, ignore_index=True)
    df["orders"] = df["purchase_days"]
    labels, profiles, how = cluster_customers(df)
    assert how["k"] == 3 and how["how"] == "silhouette"
    # Each simulated group lands in one cluster; the big spenders are cluster 1 and described so.
    for lo in (0, 400, 800):
        assert len(set(labels[lo:lo + 400])) == 1
    assert set(labels[:400]) == {1}
    assert profiles.loc[profiles["cluster"] == 1, "description"].iloc[0].startswith("Recent, frequent, high-spending")
    labels, profiles, how = cluster_customers(df, k=5)
    assert how == {"k": 5, "how": "set by the user", "silhouette": {}} and len(profiles) == 5


def test_too_little_data_keeps_rfm_and_says_why(engine):
    as_of = raw_start(engine) + timedelta(days=2)
    with engine.connect() as conn:
        s = compute_scores(conn, Filters.make(Period(as_of, as_of)), as_of, tz=TZ)
    assert s.status == "too_little_data" and "needed to fit the purchase model" in s.message
    assert s.segments["customers"].sum() == s.customers > 0
    assert s.scores["p_alive"].isna().all() and s.validation == {}


def raw_start(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT min(ordered_at AT TIME ZONE 'UTC')::date FROM mart.orders")).scalar()


def test_store_and_load_round_trip(engine, scored):
    s = scored["everyone"]
    try:
        with engine.begin() as conn:
            run_id = S.store_scores(conn, s, started_at=datetime.now(timezone.utc), rollup_version=7, tz=TZ)
        with engine.connect() as conn:
            got = S.fetch_stored_scores(conn)
            assert got.run_id == run_id and got.as_of == s.as_of and got.customers == s.customers
            assert got.bgnbd == pytest.approx(s.bgnbd) and got.gamma_gamma == pytest.approx(s.gamma_gamma)
            pd.testing.assert_frame_equal(got.segments, s.segments, check_dtype=False)
            pd.testing.assert_frame_equal(got.clusters, s.clusters, check_dtype=False)
            pd.testing.assert_frame_equal(got.movement, s.movement, check_dtype=False, check_names=False)
            pd.testing.assert_frame_equal(got.cohorts.cells, s.cohorts.cells, check_dtype=False)
            pd.testing.assert_frame_equal(got.cohorts.matrix(), s.cohorts.matrix())
            assert json.loads(json.dumps(s.validation)) == got.validation
            stored = S.fetch_stored_at_risk(conn, run_id, max_p_alive=0.4, segments=["Loyal", "At risk"], limit=200)
            live = S.at_risk(s.scores, max_p_alive=0.4, segments=["Loyal", "At risk"], limit=200)
            assert len(live) > 50
            assert stored["customer_id"].tolist() == live["customer_id"].tolist()
            assert np.allclose(stored["clv_12m"], live["clv_12m"])
            top = S.fetch_stored_top_customers(conn, run_id, "clv_12m", limit=50)
            assert top["customer_id"].tolist() == S.top_customers(s.scores, "clv_12m", limit=50)["customer_id"].tolist()
            assert len(S.fetch_stored_top_customers(conn, run_id, "clv_12m", limit=None)) == s.customers
            with pytest.raises(ValueError, match="ranked by value_at_risk, clv_12m, not 'gmv; DROP'"):
                S.fetch_stored_top_customers(conn, run_id, "gmv; DROP")
            assert conn.execute(sa.text("SELECT count(*) FROM mart.customer_scores")).scalar() == s.customers
            # The main vendor is the one with the most counted GMV: stored with the run for every
            # scored customer, and read from there for the run's day.
            assert conn.execute(sa.text("SELECT count(*) FROM mart.customer_score_main_vendors WHERE run_id = :r"),
                                {"r": run_id}).scalar() == s.customers
            ids = live["customer_id"].head(20).tolist()
            details = S.fetch_customer_details(conn, ids, s.as_of, tz=TZ).set_index("customer_id")
            without = conn.begin_nested()   # without them, the order lines give the same
            conn.execute(sa.text("DELETE FROM mart.customer_score_main_vendors"))
            summed = S.fetch_customer_details(conn, ids, s.as_of, tz=TZ).set_index("customer_id")
            without.rollback()
            pd.testing.assert_frame_equal(details, summed)
        # A second run replaces the first's customers; the page finds it as the latest.
        with engine.begin() as conn:
            second = S.store_scores(conn, scored["web"], started_at=datetime.now(timezone.utc), rollup_version=8, tz=TZ)
        with engine.connect() as conn:
            assert S.fetch_latest_run_id(conn) == second
            assert conn.execute(sa.text("SELECT count(*), min(run_id) FROM mart.customer_score_main_vendors")).one() \
                == (scored["web"].customers, second)
            assert conn.execute(sa.text("SELECT count(*), min(run_id), max(run_id) FROM mart.customer_scores")).one() \
                == (scored["web"].customers, second, second)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE mart.customer_scores, mart.customer_score_runs, "
                                 "mart.customer_score_main_vendors"))
    li = pd.read_sql_query(sa.text(
        "SELECT o.customer_id, v.name, SUM(i.quantity * i.unit_price - i.discount) AS gmv FROM mart.orders o "
        "JOIN mart.order_items i USING (order_id) JOIN mart.vendors v ON v.vendor_id = i.vendor_id "
        "WHERE o.status <> 'cancelled' AND o.customer_id = ANY(:ids) AND o.ordered_at < :end "
        "GROUP BY 1, 2"), engine, params={"ids": ids, "end": s.as_of + timedelta(days=1)})
    li["gmv"] = li["gmv"].astype(float)
    best = li.sort_values(["customer_id", "gmv"], ascending=[True, False]).drop_duplicates("customer_id")
    assert details.loc[best["customer_id"], "main_vendor"].tolist() == best["name"].tolist()
    share = best.set_index("customer_id")["gmv"] / li.groupby("customer_id")["gmv"].sum()
    assert np.allclose(details.loc[share.index, "main_vendor_share"], share)


def test_nightly_job_stores_the_scores_of_yesterday(engine, monkeypatch):
    monkeypatch.setenv("APP_TIMEZONE", TZ)
    now = datetime(SEED_END.year, SEED_END.month, SEED_END.day, 12, 0, tzinfo=timezone.utc) + timedelta(days=1)
    try:
        with engine.begin() as conn:
            assert jobs.fetch_customer_scores_due(conn, now) == SEED_END
            message = jobs.customer_scores_job(conn, now)
        with engine.connect() as conn:
            stored = S.fetch_stored_scores(conn)
            assert stored.as_of == SEED_END and stored.status == "ok" and message.startswith(f"run {stored.run_id}:")
            n = conn.execute(sa.text("SELECT count(*) FROM mart.customer_scores WHERE p_alive IS NOT NULL")).scalar()
            assert n == stored.customers > 1000
            assert jobs.fetch_customer_scores_due(conn, now) is None
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE mart.customer_scores, mart.customer_score_runs, "
                                 "mart.customer_score_main_vendors"))
