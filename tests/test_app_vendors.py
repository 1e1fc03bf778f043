"""AppTest of the vendors page: every role over a grid of filters, figures equal the analytics
figures, search/sort/pages, the drill-down for a chosen vendor, and the empty state."""
from __future__ import annotations

from datetime import date

import pytest
from streamlit.testing.v1 import AppTest

from analytics import vendors as av
from analytics.filters import Filters, Period
from analytics.metrics import format_change, format_value
from tests.apptest import login, open_url, texts

OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))
YEAR = (date(2025, 1, 1), date(2025, 12, 31))


def _choose(at: AppTest, start: date, end: date, **dims) -> AppTest:
    """Sets the sidebar's period and dimension filters (every other dimension cleared), in two runs."""
    if at.sidebar.selectbox(key="vd_period").value != "custom":
        at.sidebar.selectbox(key="vd_period").set_value("custom").run()
    at.sidebar.date_input(key="vd_range").set_value((start, end))
    for dim in ("channel", "country", "category", "segment", "vendor_id"):
        at.sidebar.multiselect(key=f"vd_{dim}").set_value(dims.get(dim, []))
    at.run()
    assert not at.exception, at.exception
    return at


def _leaderboard(at: AppTest):
    return next(d.value for d in at.dataframe if {"Rank", "Vendor", "GMV"} <= set(d.value.columns))


def _cards(at: AppTest) -> dict[str, tuple[str, str | None]]:
    return {m.label: (m.value, m.delta) for m in at.metric}


GRID = {
    "viewer": [(OCTOBER, {}), (YEAR, {"channel": ["web"]})],
    "analyst": [(OCTOBER, {"country": ["DE"]}), (YEAR, {"category": ["Electronics"]})],
    "admin": [(OCTOBER, {"segment": ["B2B"], "channel": ["sales_rep"]}), (YEAR, {"vendor_id": [1, 2, 3, 4, 5]})],
}


@pytest.mark.parametrize("role", list(GRID))
def test_every_role_sees_the_page_over_filters(monkeypatch, database_url, role):
    at = open_url(login(monkeypatch, database_url, role), "vendors")
    for (start, end), dims in GRID[role]:
        at = _choose(at, start, end, **dims)
        assert not at.error, [e.value for e in at.error]
        board = _leaderboard(at)
        assert 0 < len(board) <= av.PAGE_SIZE
        assert list(board["Rank"].dropna()) == sorted(board["Rank"].dropna())
        page = texts(at)
        assert "vendors · page 1 of" in page and "HHI = Σ" in page
        assert {"Active vendors", "HHI", "New vendors", "Growing vendors"} <= set(_cards(at))
        assert at.get("plotly_chart"), "trend, Pareto and HHI charts"
        assert len(at.get("download_button")) >= 10, "downloads under every chart and table"


def test_figures_shown_equal_the_analytics(monkeypatch, database_url, engine):
    at = _choose(open_url(login(monkeypatch, database_url, "viewer"), "vendors"), *OCTOBER)
    f = Filters.make(Period(*OCTOBER))
    with engine.connect() as conn:
        out = av.compute_vendors_page(conn, f, tz="UTC")
    want = out["leaderboard"].rows
    board = _leaderboard(at)
    assert list(board["Vendor"]) == list(want["name"])
    assert list(board["GMV"]) == pytest.approx(list(want["gmv"]))
    assert list(board["Orders"]) == pytest.approx(list(want["orders"]))
    assert list(board["Growth"].dropna()) == pytest.approx(list(want["growth"].dropna() * 100))
    cards = _cards(at)
    c = out["concentration"]
    assert cards["Active vendors"] == (format_value("orders", c.vendors),
                                       format_change("orders", c.vendors, c.vendors_prev))
    assert cards["HHI"][0] == f"{c.hhi:,.0f}"
    assert cards["Growing vendors"][0] == f"{out['lifecycle'].counts['growing']:,}"
    total = out["leaderboard"].matching
    assert f"1–{av.PAGE_SIZE} of {total:,} vendors" in texts(at)
    # The drill-down opens on the top vendor: its cards equal its leaderboard row.
    top = want.iloc[0]
    assert f"#### {top['name']}" in texts(at)
    assert cards["GMV"] == (format_value("gmv", top["gmv"]), format_change("gmv", top["gmv"], top["gmv_prev"]))


def test_search_sort_and_pages(monkeypatch, database_url, engine):
    at = _choose(open_url(login(monkeypatch, database_url, "analyst"), "vendors"), *YEAR)
    f = Filters.make(Period(*YEAR))
    with engine.connect() as conn:
        table = av.compute_vendor_table(conn, f, tz="UTC")
    at.selectbox(key="vd_lb_sort").set_value("gmv").run()
    assert at.radio(key="vd_lb_order").value == "desc", "amounts sort largest first"
    board = _leaderboard(at)
    assert list(board["GMV"]) == sorted(board["GMV"], reverse=True)
    at.radio(key="vd_lb_order").set_value("asc").run()
    at.number_input(key="vd_lb_page").set_value(2).run()
    second = _leaderboard(at)
    want = table.sort_values(["gmv", "rank", "vendor_id"], na_position="last").iloc[av.PAGE_SIZE: 2 * av.PAGE_SIZE]
    assert list(second["Vendor"]) == list(want["name"])
    # A search starts again at page 1 and lists only matching names.
    fragment = table["name"].iloc[0][:3]
    at.text_input(key="vd_lb_search").input(fragment.lower()).run()
    found = _leaderboard(at)
    assert at.number_input(key="vd_lb_page").value == 1
    assert len(found) and all(fragment.lower() in n.lower() for n in found["Vendor"])
    at.text_input(key="vd_lb_search").input("50%_off").run()
    assert not at.exception and "No vendor matches" in texts(at)


def test_drill_down_for_a_chosen_vendor(monkeypatch, database_url, engine):
    at = _choose(open_url(login(monkeypatch, database_url, "viewer"), "vendors"), *OCTOBER, channel=["web"])
    f = Filters.make(Period(*OCTOBER), channel=["web"])
    with engine.connect() as conn:
        table = av.compute_vendor_table(conn, f, tz="UTC")
        row = table.iloc[len(table) // 3]
        vid = int(row["vendor_id"])
        detail = av.compute_vendor_detail(conn, f, vid, tz="UTC")
    at.selectbox(key="vd_vendor").set_value(vid).run()
    assert not at.exception and not at.error
    assert f"#### {row['name']}" in texts(at)
    cards = _cards(at)
    assert cards["GMV"][0] == format_value("gmv", row["gmv"])
    assert cards["Orders"][0] == format_value("orders", row["orders"])
    share = detail.category_share.set_index("period").loc["current", "share"]
    assert cards["Share of category"][0] == f"{share * 100:.1f} %"
    customers = detail.customers.set_index("key").loc["current"]
    assert cards["New to the vendor"][0] == format_value("orders", customers["new"])
    products = next(d.value for d in at.dataframe if "Product" in d.value.columns)
    assert list(products["Product"]) == list(detail.products["name"])
    at.selectbox(key="vd_detail_metric").set_value("refund_rate").run()
    assert not at.exception


def test_empty_period_and_no_comparison(monkeypatch, database_url):
    at = _choose(open_url(login(monkeypatch, database_url, "viewer"), "vendors"), date(2019, 1, 1), date(2019, 1, 31))
    assert any("No vendor sold anything" in i.value for i in at.info)
    assert not at.dataframe and not at.metric
    at.sidebar.selectbox(key="vd_compare").set_value("none")
    at = _choose(at, *OCTOBER)
    assert not at.error and len(_leaderboard(at)) == av.PAGE_SIZE
    assert any("Choose a comparison period" in i.value for i in at.info)
    assert _cards(at)["Growing vendors"][0] == "–"
