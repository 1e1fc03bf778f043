"""AppTest of the products page: every role over a grid of filters without an exception, and the
figures shown equal the analytics figures."""
from __future__ import annotations

from datetime import date

import pytest
from streamlit.testing.v1 import AppTest

from analytics import products as P
from analytics.filters import Filters, Period
from analytics.metrics import format_value
from tests.apptest import open_page, texts

MONTH = (date(2026, 10, 21), date(2026, 11, 19))
YEAR = (date(2025, 11, 20), date(2026, 11, 19))
EMPTY = (date(2019, 1, 1), date(2019, 1, 31))


def _page(monkeypatch, database_url, role: str) -> AppTest:
    return open_page(monkeypatch, database_url, role, "products")


def _choose(at: AppTest, span: tuple[date, date], **dims) -> AppTest:
    """Sets a custom period and the category, vendor and channel filters, in one rerun."""
    if at.sidebar.selectbox(key="pr_period").value != "custom":
        at.sidebar.selectbox(key="pr_period").set_value("custom").run()
    at.sidebar.date_input(key="pr_range").set_value(span)
    for dim in ("category", "vendor_id", "channel"):
        at.sidebar.multiselect(key=f"pr_{dim}").set_value(dims.get(dim, []))
    at.run()
    assert not at.exception, at.exception
    return at


def _tables(at: AppTest, column: str) -> list:
    return [d.value for d in at.dataframe if column in d.value.columns]


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture(scope="module")
def some(engine):
    with engine.connect() as conn:
        cat = conn.execute(__import__("sqlalchemy").text("SELECT min(category) FROM mart.products")).scalar()
        vendor = conn.execute(__import__("sqlalchemy").text(
            "SELECT vendor_id FROM mart.order_items GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")).scalar()
    return {"category": [cat], "vendor_id": [vendor], "channel": ["web"]}


GRID = [("a month", MONTH, None), ("a year, category", YEAR, "category"), ("a month, vendor", MONTH, "vendor_id"),
        ("a year, web", YEAR, "channel"), ("empty", EMPTY, None)]


def _check(at: AppTest, name: str) -> None:
    if name == "empty":
        assert any("No product sales" in i.value for i in at.info), name
        assert any("No stock snapshot on or before 31 Jan 2019" in i.value for i in at.info), name
        assert not _tables(at, "Product")
        return
    top, bottom = _tables(at, "Product")[:2]
    assert len(top) == 10 and len(bottom) == 10, name
    assert _tables(at, "Share of GMV") and _tables(at, "On hand"), name
    assert len(at.get("plotly_chart")) == 4, name
    assert len(at.get("download_button")) >= 2 * 9, "every chart and table can be downloaded"


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_every_role_over_a_grid_of_filters(monkeypatch, database_url, some, role):
    at = _page(monkeypatch, database_url, role)
    _check(at, "last 30 days")
    for name, span, dim in GRID:
        _check(_choose(at, span, **({dim: some[dim]} if dim else {})), name)


def test_figures_shown_equal_the_analytics_figures(monkeypatch, database_url, engine):
    at = _choose(_page(monkeypatch, database_url, "viewer"), MONTH)
    f = Filters.make(Period(*MONTH))
    as_of = MONTH[1]
    with engine.connect() as conn:
        lists = P.fetch_product_lists(conn, f, min_gmv=200.0, tz="UTC")
        by_margin = P.fetch_product_lists(conn, f, metric="gross_margin", n=5, tz="UTC")
        before = P.fetch_product_metrics(conn, f, f.compare, tz="UTC")
        cats = P.fetch_category_metrics(conn, f, tz="UTC")
        inv = P.fetch_inventory_summary(conn, f, as_of, tz="UTC")
        inv_other = P.fetch_inventory_summary(conn, f, as_of, low=21, high=60, tz="UTC")
    top, bottom = _tables(at, "Product")[:2]
    want = P.with_change(lists["top"], before, "product_id", "gmv")
    assert list(top["Product"]) == list(want["name"]) and list(top["GMV"]) == list(want["gmv"])
    assert list(top["Change"]) == list(want["change"])
    want = lists["bottom"]
    assert list(bottom["GMV"]) == list(want["gmv"]) and (want["orders"] > 0).all()
    page = texts(at)
    assert f"{lists['summary']['sold']:,} products with at least one sale" in page
    shown = _tables(at, "Share of GMV")[0].set_index("Category")
    assert shown["GMV"].to_dict() == cats.set_index("category")["gmv"].to_dict()
    assert shown["Orders"].to_dict() == cats.set_index("category")["orders"].to_dict()

    # Another metric and N: the lists follow.
    at.selectbox(key="pr_rank_metric").set_value("gross_margin")
    at.radio(key="pr_rank_n").set_value(5).run()
    top, bottom = _tables(at, "Product")[:2]
    assert list(top["Gross margin"]) == list(by_margin["top"]["gross_margin"])
    assert list(bottom["Gross margin"]) == list(by_margin["bottom"]["gross_margin"])

    # Inventory: counts and lists for the default thresholds, then for others.
    shown = _metrics(at)
    assert shown["Stock-out risk"] == f"{inv['summary']['risk']:,}"
    assert shown["Overstock"] == f"{inv['summary']['over']:,}"
    assert shown["Stock value at cost"] == format_value("gmv", inv["summary"]["stock_value"])
    at.number_input(key="pr_cover_low").set_value(21)
    at.number_input(key="pr_margin_min_gmv").set_value(200.0)
    at.number_input(key="pr_cover_high").set_value(60).run()
    assert not at.exception
    risk, over = inv_other["stockout"], inv_other["overstock"]
    assert _metrics(at)["Stock-out risk"] == f"{inv_other['summary']['risk']:,}"
    stock = _tables(at, "On hand")
    assert list(stock[0]["SKU"]) == list(risk["sku"]) and list(stock[1]["SKU"]) == list(over["sku"])

    # Margins above a GMV threshold.
    high, low = lists["margin_high"], lists["margin_low"]
    margins = _tables(at, "Group")[0]
    assert list(margins["Gross margin"]) == list(high["gross_margin"]) + list(low["gross_margin"])
    assert (margins["GMV"] >= 200).all()

    # A threshold nothing reaches says so; no comparison drops the change column.
    at.number_input(key="pr_margin_min_gmv").set_value(10_000_000.0)
    at.sidebar.selectbox(key="pr_compare").set_value("none").run()
    assert not at.exception
    assert any("Lower the minimum GMV" in i.value for i in at.info)
    top = _tables(at, "Product")[0]
    assert "Change" not in top.columns and len(top) == 5
