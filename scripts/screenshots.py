"""make screenshots: draws every page in headless chromium into artifacts/ (and the README's image).

Uses DATABASE_URL when set, else the embedded server in .data/pg (seeded by `make run`). Logs in
as a `screenshots` admin that it creates (or gives a fresh random password) in that database, and
for the vendor portal as `screenshots-vendor`, bound to the demo's first vendor user's vendor.
"""
from __future__ import annotations

import argparse
import shutil
from datetime import datetime

import sqlalchemy as sa

from analytics import dashboards as D
from components.sql_widgets import EXAMPLES, VENDOR_EXAMPLES
from data import auth
from data import vendor_users as VU
from data import saved_queries as SQ
from data.db import database_url, get_engine
from data.settings import load_settings
from reports import alerts, exports, schedules
from reports.alert_evaluation import evaluate_due
from reports.jobs import vendor_customer_scores_job
from scripts.browser import ROOT, chromium, log_in, streamlit_app, wait_for_overview, wait_idle

USER = "screenshots"
VENDOR_USER = "screenshots-vendor"


def _ready_text(text: str):
    def ready(page) -> None:
        page.get_by_text(text).first.wait_for(timeout=60_000)
    return ready


def _charts(text: str, count: int):
    """Waits for text and then for count plotly charts to be drawn."""
    def ready(page) -> None:
        page.get_by_text(text).first.wait_for(timeout=60_000)
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {count}",
                               timeout=60_000)
    return ready


def _tab(name: str, text: str):
    def ready(page) -> None:
        page.get_by_role("tab", name=name).click()
        page.get_by_text(text).first.wait_for(timeout=60_000)
    return ready


def _tall(height: int, ready):
    """Runs ready in a viewport of height: a long page needs a tall one to be captured whole."""
    def tall(page) -> None:
        page.set_viewport_size({"width": page.viewport_size["width"], "height": height})
        ready(page)
    return tall


def _filtered(label: str, value: str, ready):
    """Waits as ready does, picks value in the filter bar's label filter, then waits again for the
    page drawn under it."""
    def pick(page) -> None:
        ready(page)
        side = page.locator('[data-testid="stSidebar"]')
        side.get_by_text("Dimensions").click()
        side.locator('[data-testid="stMultiSelect"]').filter(has_text=label).click()
        page.get_by_role("option", name=value, exact=True).click()
        page.keyboard.press("Escape")
        wait_idle(page, 60_000)
        ready(page)
    return pick


def _period(label: str, ready):
    """Waits as ready does, picks the period preset label in the filter bar, then waits again."""
    def pick(page) -> None:
        ready(page)
        side = page.locator('[data-testid="stSidebar"]')
        side.locator('[data-testid="stSelectbox"]').filter(has_text="Period").click()
        page.get_by_role("option", name=label, exact=True).click()
        wait_idle(page, 60_000)
        ready(page)
    return pick


def _products_ready(page) -> None:
    """Waits for the products page's top-products table, the category table and chart."""
    page.get_by_text("Top 10 products by GMV").first.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelectorAll('[data-testid=stDataFrame]').length >= 3", timeout=60_000)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1", timeout=60_000)


def _sql_ready(page) -> None:
    """Loads an example into the editor, runs it and waits for the result and its chart."""
    page.get_by_text("Start from an example").first.wait_for(timeout=60_000)
    page.get_by_role("textbox", name="SQL").fill("SELECT channel, status, count(*) AS orders\nFROM mart.orders\n"
                                                 "GROUP BY 1, 2 ORDER BY 1, 2")
    page.get_by_role("textbox", name="SQL").press("Control+Enter")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Run").click()
    page.get_by_text(" rows · ").first.wait_for(timeout=60_000)


def _sql_params_ready(page) -> None:
    """Puts the parameters example in the editor, picks a category from its list and runs it."""
    page.get_by_text("Start from an example").first.wait_for(timeout=60_000)
    page.get_by_role("textbox", name="SQL").fill(EXAMPLES["Top vendors in a period (parameters)"])
    page.get_by_role("textbox", name="SQL").press("Control+Enter")
    page.get_by_text("category (optional)").first.wait_for(timeout=60_000)
    page.get_by_role("textbox", name="top").fill("10")
    page.get_by_role("textbox", name="top").press("Enter")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Run").click()
    page.get_by_text(" rows · ").first.wait_for(timeout=60_000)


def _alerts_preview(name: str, threshold: int):
    """Fills a new rule (GMV below threshold, the form's default window) and previews it on its chart."""
    def ready(page) -> None:
        page.get_by_text("New alert rule").first.wait_for(timeout=60_000)
        page.get_by_role("textbox", name="Name", exact=True).fill(name)
        page.get_by_role("spinbutton", name="Threshold (€)").fill(str(threshold))
        page.get_by_role("spinbutton", name="Threshold (€)").press("Enter")
        page.wait_for_timeout(1000)
        page.get_by_role("button", name="Preview").click()
        page.get_by_text("would have fired").first.wait_for(timeout=120_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1", timeout=60_000)
        page.get_by_text("would have fired").first.scroll_into_view_if_needed()
    return ready


def _vendor_sql_ready(page) -> None:
    """Runs the vendor's products-in-a-period example on the vendor's own role."""
    page.get_by_text("Start from an example").first.wait_for(timeout=60_000)
    page.get_by_role("textbox", name="SQL").fill(VENDOR_EXAMPLES["My products by GMV in a period (parameters)"])
    page.get_by_role("textbox", name="SQL").press("Control+Enter")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Run").click()
    page.get_by_text(" rows · ").first.wait_for(timeout=60_000)


# name: (path, ready, log in first: False, True (the admin) or "vendor")
PAGES = {
    "login": ("/", _ready_text("Ask an admin for an account"), False),
    "overview": ("/", wait_for_overview, True),
    "products": ("/products", _products_ready, True),
    "products_region": ("/products", _filtered("Region", "Europe", _products_ready), True),
    "products_price": ("/products", _tall(1300, _tab("Price vs volume", "Each dot is a product")), True),
    "products_margins": ("/products", _tall(1700, _tab("Margins", "Highest and lowest gross margin")), True),
    "products_inventory": ("/products", _tall(2300, _tab("Inventory", "Products with stock data")), True),
    "customers": ("/customers", _tall(2400, _charts("Movement between segments", 3)), True),
    "customers_clusters": ("/customers", _tall(1500, _tab("Clusters", "chosen by the best silhouette")), True),
    "customers_cohorts": ("/customers", _tall(1900, _tab("Cohorts", "Younger cohorts have had less time")), True),
    "customers_value": ("/customers", _tall(1500, _tab("Lifetime value", "How right is it")), True),
    "customers_risk": ("/customers", _tall(1400, _tab("At risk", "past GMV at risk")), True),
    "forecasting": ("/forecasting", _tall(2600, _charts("Earlier forecasts against the actuals", 2)), True),
    "sql": ("/sql", _tall(1600, _sql_ready), True),
    "sql_params": ("/sql", _tall(1700, _sql_params_ready), True),
    "dashboards": ("/dashboards", _charts("refreshes every", 1), True),
    "sales": ("/sales", _charts("Numbers by bucket", 4), True),
    "vendors": ("/vendors", _tall(4600, _charts("Select a row to drill down", 3)), True),
    "vendors_region": ("/vendors", _tall(4600, _filtered("Region", "Europe", _charts("Select a row to drill down", 3))), True),
    "reports": ("/reports", _ready_text("Everyone's exports"), True),
    "reports_export": ("/reports", _tab("New export", "Export in the background"), True),
    "reports_schedules": ("/reports", _tall(1900, _tab("Schedules", "Run history and deliveries")), True),
    "alerts": ("/alerts", _tall(1700, _ready_text("History (")), True),
    "alerts_preview": ("/alerts", _tall(3400, _alerts_preview("GMV below plan", 90_000)), True),
    "account": ("/account", _ready_text("Change password"), True),
    "admin_users": ("/admin", _ready_text("Change a user"), True),
    "admin_audit": ("/admin", _tab("Audit log", "newest first"), True),
    "admin_scheduler": ("/admin", _tab("Scheduler", "Latest run of each job"), True),
    "portal": ("/", _tall(2300, _charts("Revenue trend", 1)), "vendor"),
    "portal_sql": ("/sql", _tall(1400, _vendor_sql_ready), "vendor"),
    "portal_reports": ("/reports", _tab("New export", "Export in the background"), "vendor"),
    "portal_sales": ("/sales", _tall(2000, _charts("Numbers by bucket", 4)), "vendor"),
    "portal_products": ("/products", _tall(2000, _products_ready), "vendor"),
    "portal_inventory": ("/products", _tall(2300, _tab("Inventory", "Products with stock data")), "vendor"),
    "portal_forecasting": ("/forecasting", _tall(2000, _charts("How wrong has each model been", 2)), "vendor"),
    "portal_customers": ("/customers", _tall(2000, _charts("Movement between segments", 2)), "vendor"),
    "portal_customers_last_year": ("/customers", _tall(2000, _period("Last year", _charts("Movement between segments",
                                                                                          2))), "vendor"),
    "portal_dashboards": ("/dashboards", _tall(1300, _charts("Add a KPI card", 1)), "vendor"),
    "portal_alerts": ("/alerts", _tall(2600, _alerts_preview("Slow week", 2_000)), "vendor"),
    "portal_schedules": ("/reports", _tall(1500, _tab("Schedules", "Your report goes by email")), "vendor"),
}


def _demo_dashboard() -> None:
    """Gives the screenshots user a dashboard with a KPI card and a saved query's chart."""
    with get_engine().begin() as conn:
        owned = D.fetch_dashboards(conn, USER)
        if (owned["owner"] == USER).any():
            return
        did = D.create_dashboard(conn, USER, "Trading floor", shared=True, refresh_seconds=300)
        qid = SQ.save_query(conn, USER, "GMV by channel, last 90 days",
                            "SELECT o.channel, sum(i.quantity * i.unit_price - i.discount) AS gmv\n"
                            "FROM mart.orders o JOIN mart.order_items i USING (order_id)\n"
                            "WHERE o.status <> 'cancelled' AND o.ordered_at >= now() - interval '90 days'\n"
                            "GROUP BY 1 ORDER BY 2 DESC", shared=True)
        for metric in ("gmv", "orders"):
            D.add_widget(conn, USER, did, kind="kpi", metric=metric, period="last_30_days", width=1)
        D.add_widget(conn, USER, did, kind="query", query_id=qid, width=2,
                     chart={"type": "bar", "x": "channel", "y": "gmv"})


def _demo_reports() -> None:
    """Gives the screenshots user two finished exports and a schedule with a run."""
    engine = get_engine()
    with engine.begin() as conn:
        if not exports.fetch_exports(conn, USER).empty:
            return
        exports.request_export(conn, USER, "kpi_summary", {"period": "last_week"}, "pdf")
        exports.request_export(conn, USER, "vendor_performance", {"period": "last_month"}, "xlsx")
        sid = schedules.save_schedule(conn, USER, name="Monday sales pack", template="sales",
                                      spec={"period": "last_week"}, fmt="xlsx",
                                      cadence={"kind": "weekly", "at": "07:30", "weekday": 0}, tz="Europe/Berlin",
                                      recipients="sales-team@example.com, cfo@example.com", webhook_url="",
                                      fan_out=None, fan_values=None)
        schedules.run_now(conn, USER, sid)
    exports.run_exports(engine, "screenshots")


def _demo_alerts() -> None:
    """Gives the screenshots user three alert rules, evaluated once (so some fire)."""
    engine = get_engine()
    with engine.begin() as conn:
        if not alerts.fetch_rules(conn, USER).empty:
            return
        alerts.save_rule(conn, USER, name="GMV stalled (last hour)", metric="gmv", window="last_hour",
                         condition="below", threshold=500, severity="critical", interval_minutes=5,
                         recipients="oncall@example.com", repeat_minutes=60)
        alerts.save_rule(conn, USER, name="Refunds climbing", metric="refund_rate", window="last_7d",
                         condition="above", threshold=0.04, severity="high", interval_minutes=60,
                         recipients="ops@example.com")
        alerts.save_rule(conn, USER, name="Vendor GMV down vs last week", metric="gmv", window="yesterday",
                         condition="falls_by", baseline="last_week", threshold=40, fan_out="vendor_id",
                         severity="medium", interval_minutes=60, recipients="vendor-success@example.com")
    evaluate_due(engine)


def _demo_vendor_content() -> None:
    """Gives the portal's screenshots vendor an email, a dashboard, a schedule and an alert rule."""
    engine = get_engine()
    email = "shop@example.com"
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE app.users SET email = :e WHERE username = :u"), {"e": email, "u": VENDOR_USER})
        if not D.fetch_dashboards(conn, VENDOR_USER).empty:
            return
        vendor = auth.fetch_user(conn, VENDOR_USER).vendor_ids[0]
        did = D.create_dashboard(conn, VENDOR_USER, "My shop")
        for metric in ("gmv", "orders", "aov", "refund_rate"):
            D.add_widget(conn, VENDOR_USER, did, kind="kpi", metric=metric, period="last_30_days", width=1)
        qid = SQ.save_query(conn, VENDOR_USER, "Units by product, last 30 days", """
            SELECT p.name AS product, sum(i.quantity) AS units
            FROM mart.order_items i JOIN mart.orders o USING (order_id) JOIN mart.products p USING (product_id)
            WHERE o.ordered_at >= now() - interval '30 days' AND o.status <> 'cancelled'
            GROUP BY 1 ORDER BY 2 DESC LIMIT 10""")
        D.add_widget(conn, VENDOR_USER, did, kind="query", query_id=qid, width=4,
                     chart={"type": "bar", "x": "product", "y": "units"})
        schedules.save_schedule(conn, VENDOR_USER, name="My Monday report", template="vendor_report",
                                spec={"period": "last_week", "filters": {"vendor_id": [vendor]}}, fmt="pdf",
                                cadence={"kind": "weekly", "at": "07:00", "weekday": 0}, tz="Europe/Berlin",
                                recipients=email, webhook_url="", fan_out=None, fan_values=None)
        alerts.save_rule(conn, VENDOR_USER, name="My GMV fell", metric="gmv", window="yesterday",
                         condition="falls_by", baseline="last_week", threshold=30, filters={"vendor_id": [vendor]},
                         interval_minutes=60, recipients=email)
    evaluate_due(engine)


def _demo_vendor_scores() -> None:
    """Keeps the vendors' customer scores as the scheduler does at night (as of yesterday and as of
    last year's end), so the portal's customers page reads them."""
    with get_engine().begin() as conn:
        late = datetime.now(load_settings().tz).replace(hour=23, minute=59)
        print(vendor_customer_scores_job(conn, late))


def _screenshot_user() -> str:
    password = auth.generate_password(USER)
    with get_engine().begin() as conn:
        if auth.fetch_user(conn, USER) is None:
            try:
                auth.create_user(conn, USER, password, "admin", name="Screenshots", actor="make screenshots")
                return password
            except auth.AuthError:  # exists but disabled
                auth.set_enabled(conn, USER, True, actor="make screenshots")
        auth.set_role(conn, USER, "admin", actor="make screenshots")
        auth.reset_password(conn, USER, password, actor="make screenshots")
    return password


def _screenshot_vendor() -> str:
    """Creates (or gives a fresh password to) the vendor user of the portal's screenshots."""
    password = auth.generate_password(VENDOR_USER)
    settings = load_settings()
    with get_engine().begin() as conn:
        if auth.fetch_user(conn, VENDOR_USER) is None:
            (vendor_id, _), = VU.fetch_demo_vendors(conn, 1)
            VU.create_vendor_user(conn, VENDOR_USER, password, [vendor_id], settings, name="Screenshots vendor",
                                  actor="make screenshots")
            return password
        auth.reset_password(conn, VENDOR_USER, password, actor="make screenshots")
    return password


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.screenshots")
    p.add_argument("--readme", action="store_true", help="also copy the overview to docs/img/")
    p.add_argument("--width", type=int, default=1440)
    p.add_argument("--height", type=int, default=2300)
    p.add_argument("--only", nargs="+", choices=sorted(PAGES), metavar="PAGE",
                   help="take only these pages' screenshots (names as in artifacts/)")
    args = p.parse_args()
    out = ROOT / "artifacts"
    out.mkdir(exist_ok=True)
    url = database_url()  # holds the embedded server while the app runs
    password = _screenshot_user()
    vendor_password = _screenshot_vendor()
    _demo_dashboard()
    _demo_reports()
    _demo_alerts()
    _demo_vendor_content()
    _demo_vendor_scores()
    env = {"DATABASE_URL": url, "DEMO_MODE": "true" if load_settings().demo_mode else "false"}
    with streamlit_app(env, out / "streamlit.log") as (base, _), chromium() as browser:
        for name, (path, ready, logged_in) in PAGES.items():
            if args.only and name not in args.only:
                continue
            # Streamlit scrolls inside its own container, so a tall viewport shows the whole page.
            page = browser.new_page(viewport={"width": args.width, "height": args.height if name in ("overview", "sales", "vendors", "products") else 1000})
            page.goto(base + path, wait_until="domcontentloaded")
            if logged_in == "vendor":
                log_in(page, VENDOR_USER, vendor_password)
            elif logged_in:
                log_in(page, USER, password)
            ready(page)
            page.wait_for_timeout(2000)  # plotly finishes its transitions
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            print(f"artifacts/{name}.png")
            page.close()
    if args.readme:
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "overview.png", ROOT / "docs" / "img" / "overview.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
