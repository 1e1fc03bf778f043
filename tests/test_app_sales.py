"""AppTest of the sales page: a grid of filters and roles, figures shown = analytics figures, focus."""
from __future__ import annotations

from datetime import date

import pytest

from analytics.filters import Filters, Period
from analytics.metrics import format_value
from analytics.sales import fetch_breakdown_growth, fetch_metric_trend, fetch_payments
from tests.apptest import login, open_url, texts

YEAR = (date(2025, 11, 1), date(2026, 10, 31))
MONTH = (date(2026, 10, 1), date(2026, 10, 31))


def _sales(monkeypatch, database_url, role="viewer"):
    return open_url(login(monkeypatch, database_url, role), "sales")


def _choose(at, span, grain=None, **dims):
    at.sidebar.selectbox(key="sa_period").set_value("custom").run()
    at.sidebar.date_input(key="sa_range").set_value(span).run()
    if grain:
        at.sidebar.selectbox(key="sa_grain_custom").set_value(grain).run()
    for dim, values in dims.items():
        at.sidebar.multiselect(key=f"sa_{dim}").set_value(values).run()
    assert not at.exception, at.exception
    return at


def _table(at, first_column: str):
    return next(d.value for d in at.dataframe if d.value.columns[0] == first_column)


GRID = [
    ("viewer", MONTH, None, {}),
    ("analyst", YEAR, "month", {"channel": ["web"]}),
    ("admin", YEAR, "quarter", {"category": ["Electronics"], "segment": ["B2B"]}),
    ("viewer", MONTH, "week", {"payment_method": ["card", "paypal"]}),
    ("analyst", (date(2019, 1, 1), date(2019, 1, 31)), None, {}),
]


@pytest.mark.parametrize("role,span,grain,dims", GRID, ids=[f"{g[0]}-{i}" for i, g in enumerate(GRID)])
def test_grid_renders_without_exception(monkeypatch, database_url, role, span, grain, dims):
    at = _choose(_sales(monkeypatch, database_url, role), span, grain, **dims)
    for metric in ("conversion_rate", "repeat_rate"):
        at.selectbox(key="sa_metric").set_value(metric).run()
        assert not at.exception, (metric, at.exception)
    for by in ("country", "payment_method"):
        at.selectbox(key="sa_by").set_value(by).run()
        assert not at.exception, (by, at.exception)
    if span[0].year == 2019:
        assert "No orders in this period" in texts(at) or "not available" in texts(at)


def test_breakdown_and_trend_show_the_analytics_figures(monkeypatch, database_url, engine):
    at = _choose(_sales(monkeypatch, database_url), YEAR, "month", channel=["mobile"])
    at.selectbox(key="sa_by").set_value("segment").run()
    f = Filters.make(Period(*YEAR), grain="month", channel=["mobile"])
    with engine.connect() as conn:
        want = fetch_breakdown_growth(conn, f, "segment", "gmv", tz="UTC")
        trend = fetch_metric_trend(conn, f, "gmv", tz="UTC")
    shown = _table(at, "Segment")
    assert list(shown["Segment"]) == list(want["key"])
    assert shown["GMV"].tolist() == pytest.approx(want["value"].tolist())
    assert shown["Growth"].tolist() == pytest.approx(want["growth"].tolist())
    cards = {m.label: m.value for m in at.metric}
    assert cards["Last month"] == format_value("gmv", trend["value"].iloc[-1])


def test_focus_narrows_the_sections_below(monkeypatch, database_url, engine):
    at = _choose(_sales(monkeypatch, database_url), MONTH)
    at.session_state["sa_focus"] = ("payment_method", "invoice")
    at.run()
    assert "focused on **Payment method: Invoice**" in texts(at)
    shown = _table(at, "Payment method")
    assert list(shown["Payment method"]) == ["Invoice"]
    with engine.connect() as conn:
        want = fetch_payments(conn, Filters.make(Period(*MONTH), payment_method=["invoice"]), tz="UTC")
    assert shown["GMV"].tolist() == pytest.approx(want["gmv"].tolist())
    # The breakdown itself keeps every value, so another can be picked.
    assert len(_table(at, "Category")) > 1
    at.button(key="sa_focus_clear").click().run()
    assert "focused on" not in texts(at)
    assert len(_table(at, "Payment method")) > 1


def test_sections_explain_filters_they_cannot_honour(monkeypatch, database_url):
    at = _choose(_sales(monkeypatch, database_url), MONTH, category=["Electronics"])
    assert "clear the category filter to see it" not in texts(at) + "\n".join(i.value for i in at.info), \
        "a hidden tab is not drawn"
    for tab, says in (("Funnel", "clear the category filter to see it"),
                      ("Marketing", "clear them to see marketing efficiency")):
        at.session_state["sa_tab"] = tab      # what clicking the tab does
        at.run()
        assert says in texts(at) + "\n".join(i.value for i in at.info), tab


def test_sidebar_filter_on_the_focused_dimension_ends_the_focus(monkeypatch, database_url):
    at = _choose(_sales(monkeypatch, database_url), MONTH)
    at.session_state["sa_focus"] = ("channel", "web")
    at.run()
    assert "focused on **Channel: Web**" in texts(at)
    at.sidebar.multiselect(key="sa_channel").set_value(["mobile"]).run()
    assert "focused on" not in texts(at) and "sa_focus" not in at.session_state
