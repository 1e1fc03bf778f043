"""AppTest of the forecasting page: every role, grains, a vendor, a chosen model, thin history, and
the nightly store with earlier forecasts against the actuals."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from analytics import forecast_series as FS
from components.loaders import local_today
from tests.apptest import open_page, table_with, texts


def _page(monkeypatch, database_url, role: str) -> AppTest:
    return open_page(monkeypatch, database_url, role, "forecasting")


def _backtest(at: AppTest):
    return table_with(at, "MASE")


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_every_role_gets_a_forecast_with_its_backtest(monkeypatch, database_url, engine, role):
    at = _page(monkeypatch, database_url, role)
    bt = _backtest(at)
    assert len(bt) == 3 and bt["Model"].str.endswith(" ✓").sum() == 1
    with engine.connect() as conn:
        want = FS.compute_series_forecast(conn, FS.Series("gmv"), last_day=local_today() - timedelta(days=1),
                                          horizon=28, tz="UTC")
    chosen = bt.loc[bt["Model"].str.endswith(" ✓"), "Model"].iloc[0]
    assert chosen.startswith({"seasonal_naive": "Seasonal naive", "ets": "Exponential", "prophet": "Prophet"}[want.model])
    assert "Computed now" in texts(at) and want.reason in texts(at)
    assert len(at.get("plotly_chart")) >= 2


def test_grains_a_vendor_and_a_chosen_model(monkeypatch, database_url, engine):
    at = _page(monkeypatch, database_url, "analyst")
    at.radio(key="fc_grain").set_value("week").run()
    assert not at.exception, at.exception
    assert at.number_input(key="fc_horizon_week").value == 12
    at.selectbox(key="fc_dim").set_value("vendor_id").run()
    assert "Choose a vendor to forecast" in texts(at)
    with engine.connect() as conn:
        vendor = conn.execute(sa.text("SELECT vendor_id FROM mart.order_items GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")).scalar()
    at.selectbox(key="fc_vendor").set_value(vendor).run()
    assert not at.exception, at.exception
    at.selectbox(key="fc_model").set_value("ets").run()
    assert not at.exception, at.exception
    assert "Exponential smoothing (ETS), as chosen." in texts(at)
    at.radio(key="fc_grain").set_value("month").run()
    at.selectbox(key="fc_metric").set_value("new_customers").run()
    assert not at.exception, at.exception


def test_thin_history_says_so(monkeypatch, database_url):
    at = _page(monkeypatch, database_url, "viewer")
    at.radio(key="fc_grain").set_value("month").run()
    at.number_input(key="fc_horizon_month").set_value(24).run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "backtest window(s) of 24 months, not 3" in page or "too short for a backtest" in page


@pytest.fixture
def nightly(engine):
    run_date = local_today()
    with engine.begin() as conn:
        # Tonight's forecasts, and one made three weeks ago whose first days have actuals now.
        s = FS.Series("gmv")
        f = FS.compute_series_forecast(conn, s, last_day=run_date - timedelta(days=22), horizon=28, tz="UTC")
        FS.store_forecast(conn, s, f, run_date=run_date - timedelta(days=21), horizon=28, interval=0.8, duration_ms=1)
        FS.run_nightly(conn, run_date, top=1, tz="UTC")   # the page reads the total; each series takes seconds
    yield run_date
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE mart.forecast_runs CASCADE"))


def test_the_page_reads_the_nightly_run_and_tracks_earlier_forecasts(monkeypatch, database_url, nightly):
    at = _page(monkeypatch, database_url, "viewer")
    page = texts(at)
    assert "From the nightly run of" in page
    tracking = table_with(at, "Inside 80 %")
    assert len(tracking) == 1 and tracking["Days with actuals"].iloc[0] > 0
