"""AppTest of the customers page: every role, filters, a set number of clusters, the nightly store,
and the too-little-data case, without an exception and with the figures of analytics.customer_scores."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from analytics import customer_scores as S
from analytics.filters import Filters, Period
from components.loaders import local_today
from tests.apptest import open_page, table_with, texts

EARLY = (date(2023, 11, 21), date(2023, 11, 23))  # the first days of data: a few dozen customers


def _page(monkeypatch, database_url, role: str) -> AppTest:
    return open_page(monkeypatch, database_url, role, "customers")


def _segments(at: AppTest):
    return table_with(at, "Rule")


def _default_period() -> Period:
    today = local_today()
    return Period(today - timedelta(days=30), today - timedelta(days=1))


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_every_role_sees_the_figures_computed_for_the_period(monkeypatch, database_url, engine, role):
    at = _page(monkeypatch, database_url, role)
    p = _default_period()
    with engine.connect() as conn:
        want = S.compute_scores(conn, Filters.make(p), p.end, previous=p.start - timedelta(days=1), tz="UTC")
    assert want.status == "ok" and want.customers > 1000
    shown = _segments(at)
    assert shown["Customers"].tolist() == want.segments["customers"].tolist()
    assert shown["GMV"].round(2).tolist() == want.segments["gmv"].round(2).tolist()
    page = texts(at)
    assert "Computed for this period" in page and f"{want.customers:,} customers" in page
    # The at-risk list is the same customers, in the same order, with their main vendor.
    risk = table_with(at, "Value at risk")
    assert risk["Customer ID"].tolist() == S.at_risk(want.scores)["customer_id"].tolist()
    assert risk["Main vendor"].notna().all()
    # Validation and clusters are shown.
    validation = table_with(at, "Predicted per customer")
    assert validation["Customers"].sum() == want.validation["customers"]
    clusters = table_with(at, "In words")
    assert len(clusters) == want.cluster_k["k"]


def test_filters_and_a_set_number_of_clusters(monkeypatch, database_url, engine):
    at = _page(monkeypatch, database_url, "analyst")
    at.sidebar.multiselect(key="cu_segment").set_value(["B2B"])
    at.sidebar.multiselect(key="cu_channel").set_value(["web"])
    at.run()
    assert not at.exception, at.exception
    p = _default_period()
    with engine.connect() as conn:
        want = S.compute_scores(conn, Filters.make(p, segment=["B2B"], channel=["web"]), p.end,
                                previous=p.start - timedelta(days=1), tz="UTC")
    assert _segments(at)["Customers"].tolist() == want.segments["customers"].tolist()
    assert "Computed for the dimension filters" in texts(at)
    at.selectbox(key="cu_k").set_value(3).run()
    assert not at.exception, at.exception
    clusters = table_with(at, "In words")
    assert clusters["Cluster"].tolist() == [1, 2, 3]
    for split in ("acquisition_channel", "segment"):
        at.selectbox(key="cu_cohort_split").set_value(split).run()
        assert not at.exception, at.exception


def test_too_little_data_says_so(monkeypatch, database_url):
    at = _page(monkeypatch, database_url, "viewer")
    at.sidebar.selectbox(key="cu_period").set_value("custom").run()
    at.sidebar.date_input(key="cu_range").set_value(EARLY).run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "Too little data to fit the lifetime-value models" in page
    assert "are needed to fit the purchase model" in page
    # RFM segments still come, without model columns that would read 0.
    shown = _segments(at)
    assert shown["Customers"].sum() > 0 and "CLV, next 12 months" not in shown.columns


@pytest.fixture
def stored_run(engine):
    """Stores a nightly run as of yesterday (the default period's end); removes it afterwards."""
    p = _default_period()
    with engine.begin() as conn:
        scores = S.compute_scores(conn, Filters.make(Period(p.end, p.end)), p.end, tz="UTC")
        run_id = S.store_scores(conn, scores, started_at=datetime.now(timezone.utc), rollup_version=None, tz="UTC")
    yield scores, run_id
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE mart.customer_scores, mart.customer_score_runs, "
                             "mart.customer_score_main_vendors"))


def test_the_page_reads_the_nightly_run(monkeypatch, database_url, stored_run):
    scores, run_id = stored_run
    at = _page(monkeypatch, database_url, "viewer")
    assert "Scores from the nightly run" in texts(at)
    assert _segments(at)["Customers"].tolist() == scores.segments["customers"].tolist()
    risk = table_with(at, "Value at risk")
    assert risk["Customer ID"].tolist() == S.at_risk(scores.scores)["customer_id"].tolist()
    # A filter leaves the store for a live computation.
    at.sidebar.multiselect(key="cu_region").set_value(["Europe"])
    at.run()
    assert not at.exception, at.exception
    assert "Computed for the dimension filters" in texts(at)
