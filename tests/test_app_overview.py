"""AppTest of the overview page: no exception, and the figures shown equal the analytics figures."""
from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from analytics import overview as ov
from analytics.filters import Filters, Period
from analytics.kpis import fetch_kpis
from analytics.metrics import OVERVIEW_METRICS, format_change, format_value, get_metric
from components import loaders
from data.auth import create_user
from data.rollups import refresh_rollups
from tests.apptest import PASSWORDS, login
from tests.test_scale_rollups import LAST, _marketplace


@pytest.fixture
def app(monkeypatch, database_url):
    return login(monkeypatch, database_url, "viewer")


def _choose(at: AppTest, start: date, end: date, **dims) -> AppTest:
    at.sidebar.selectbox(key="ov_period").set_value("custom").run()
    at.sidebar.date_input(key="ov_range").set_value((start, end)).run()
    for dim, values in dims.items():
        at.sidebar.multiselect(key=f"ov_{dim}").set_value(values).run()
    assert not at.exception, at.exception
    return at


def _shown(at: AppTest) -> dict[str, tuple[str, str | None]]:
    return {m.label: (m.value, m.delta) for m in at.metric}


CASES = [
    ("october", date(2026, 10, 1), date(2026, 10, 31), {}),
    ("last weeks, web", date(2026, 10, 20), date(2026, 11, 19), {"channel": ["web"]}),
    ("a year, B2B", date(2025, 1, 1), date(2025, 12, 31), {"segment": ["B2B"]}),
]


@pytest.mark.parametrize("name,start,end,dims", CASES, ids=[c[0] for c in CASES])
def test_cards_show_the_analytics_figures(app, engine, name, start, end, dims):
    at = _choose(app, start, end, **dims)
    f = Filters.make(Period(start, end), **dims)
    with engine.connect() as conn:
        want = fetch_kpis(conn, f, OVERVIEW_METRICS, tz="UTC")
    shown = _shown(at)
    assert len(shown) == len(OVERVIEW_METRICS)
    for r in want.itertuples():
        label = get_metric(r.metric).label
        assert shown[label][0] == format_value(r.metric, r.current), label
        assert (shown[label][1] or None) == format_change(r.metric, r.current, r.previous), label


def test_october_has_targets_and_top_tables(app):
    at = _choose(app, date(2026, 10, 1), date(2026, 10, 31))
    texts = [p.text for p in at.get("progress")] if at.get("progress") else []
    assert any("of target" in t for t in texts), texts
    assert len(at.dataframe) == 2
    vendors = at.dataframe[0].value
    assert len(vendors) == 10 and list(vendors["GMV"]) == sorted(vendors["GMV"], reverse=True)


def test_empty_period_shows_an_empty_state(app):
    at = _choose(app, date(2019, 1, 1), date(2019, 1, 31))
    assert not at.metric
    assert any("No orders" in i.value for i in at.info)


@pytest.mark.parametrize("grain", ["Week", "Month"])
def test_grains_render(app, grain):
    at = _choose(app, date(2025, 6, 1), date(2026, 5, 31))
    sel = at.sidebar.selectbox(key="ov_grain_custom")
    sel.set_value(grain.lower()).run()
    assert not at.exception


def test_comparison_last_year(app, engine):
    at = _choose(app, date(2026, 9, 1), date(2026, 9, 30))
    at.sidebar.selectbox(key="ov_compare").set_value("last_year").run()
    f = Filters.make(Period(date(2026, 9, 1), date(2026, 9, 30)), comparison="last_year")
    with engine.connect() as conn:
        want = fetch_kpis(conn, f, ("gmv",), tz="UTC").iloc[0]
    assert _shown(at)["GMV"][1] == format_change("gmv", want.current, want.previous)


def test_a_refresh_recomputes_only_the_period_it_changed(monkeypatch, empty_engine):
    """After a refresh that folds in an order of the period's last day, the overview computes the
    period's figures again and keeps the comparison period's from the cache."""
    with empty_engine.begin() as conn:
        _marketplace(conn, 11)
        refresh_rollups(conn, timezone="UTC")
        create_user(conn, "viewer", PASSWORDS["viewer"], "viewer")
    calls = {"period": 0, "comparison": 0}
    for name, fn in (("period", ov.compute_period), ("comparison", ov.compute_comparison)):
        def counted(conn, f, _fn=fn, _name=name, **kw):
            calls[_name] += 1
            return _fn(conn, f, **kw)
        monkeypatch.setattr(ov, f"compute_{name}", counted)
    at = _choose(login(monkeypatch, empty_engine.url.render_as_string(hide_password=False), "viewer"),
                 date(2026, 3, 1), LAST)
    at.run()
    before = dict(calls)    # the default period's, then the chosen one's; the rerun read the cache
    assert before["period"] == before["comparison"] >= 1
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO mart.orders VALUES (9100, 101, :t, 'paid', 'web', 'B2C', 'card', "
                             "'captured', 'EUR', 0)"), {"t": f"{LAST} 12:00+00"})
        conn.execute(sa.text("INSERT INTO mart.order_items VALUES (9100, 1, 11, 2, 1, 20, 0, 8, 0)"))
        assert refresh_rollups(conn, timezone="UTC").mode == "days"
    loaders.load_freshness.clear()   # its 20 s time to live, passed
    at.run()
    assert not at.exception, at.exception
    assert calls == {"period": before["period"] + 1, "comparison": before["comparison"]}
