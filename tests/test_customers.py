"""Customer summaries and RFM scores against an independent pandas computation on raw rows."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from analytics import customers as C
from analytics.filters import Filters, Period
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
            got = C.customer_summary(conn, Filters.make(Period(as_of, as_of), **dims), as_of, tz=TZ,
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
        got = C.rfm_scores(conn, Filters.make(Period(as_of, as_of), **filter_sets[sname]), as_of, tz=TZ)
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
        assert C.customer_summary(conn, f, as_of, tz=TZ).empty
        assert C.rfm_scores(conn, f, as_of, tz=TZ).empty
