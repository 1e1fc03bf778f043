"""AppTest of the vendor portal (issue 22): a vendor user's pages show their own business and nothing
that names or measures another vendor; their SQL runs on their own role; an admin makes and binds
vendor users, and bad bindings are refused by name."""
from __future__ import annotations

import uuid
from dataclasses import astuple
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from analytics.filters import resolve_period
from analytics.metrics import format_value
from data.peer_benchmarks import PRESETS as PB_PRESETS, refresh_peer_benchmarks
from data import auth
from tests.apptest import login, open_url, table_with, texts
from tests.conftest import SEED_END
from tests.raw_metrics import lines_in, load_raw, prepare

pytestmark = pytest.mark.usefixtures("frozen_today")


@pytest.fixture
def frozen_today(monkeypatch):
    """Pages read "today" as the day after the seeded data ends."""
    import components.loaders as loaders
    monkeypatch.setattr(loaders, "local_today", lambda: SEED_END + timedelta(days=1))


@pytest.fixture(scope="module")
def others(engine):
    """(own vendor ids, other vendors' names, other vendors' product names, prepared raw rows), with
    the peer benchmarks computed as the scheduler would on the day after the data ends."""
    today = SEED_END + timedelta(days=1)
    with engine.begin() as conn:
        refresh_peer_benchmarks(conn, {p: astuple(resolve_period(p, today)) for p in PB_PRESETS}, tz="UTC")
    with engine.connect() as conn:
        own = auth.fetch_user(conn, "vendor").vendor_ids
        names = conn.execute(sa.text("SELECT name FROM mart.vendors WHERE NOT vendor_id = ANY(:v)"),
                             {"v": list(own)}).scalars().all()
        products = conn.execute(sa.text("SELECT name FROM mart.products WHERE NOT vendor_id = ANY(:v)"),
                                {"v": list(own)}).scalars().all()
    return own, names, products, prepare(load_raw(engine), "UTC")


def everything_shown(at: AppTest) -> str:
    """Every text, metric and table cell on the page, joined."""
    parts = [texts(at)]
    parts += [f"{m.label} {m.value} {m.delta}" for m in at.metric]
    for d in at.dataframe:
        parts.append(d.value.to_csv(index=False))
    return "\n".join(parts)


def _unique_figures(raw, own, start, end) -> list[str]:
    """Other vendors' GMV over [start, end] as the page would write it, where no vendor of own shares it."""
    lines = lines_in(raw, start, end)
    gmv = lines[lines["counted"]].groupby("vendor_id")["value"].sum()
    mine = {format_value("gmv", gmv.get(v, 0.0)) for v in own}
    return [s for s in {format_value("gmv", g) for v, g in gmv.items() if v not in own} - mine if len(s) > 4]


def test_the_portal_shows_the_vendors_own_business_and_nothing_of_others(monkeypatch, database_url, others):
    own, names, products, raw = others
    at = login(monkeypatch, database_url, "vendor")      # the home page is the portal
    shown = everything_shown(at)
    assert len(at.metric) == 8 and "How you compare in your category" in shown
    standing = table_with(at, "Standing")
    assert list(standing["Metric"]) == ["GMV", "GMV growth", "AOV", "Refund rate", "Cancellation rate", "Take rate",
                                        "Repeat rate"]
    assert standing["Standing"].str.contains(r"#\d+ of \d+ · percentile \d+").any()
    top = table_with(at, "Product")
    assert len(top) > 0
    leaked = [n for n in [*names, *products] if n in shown]
    assert not leaked, leaked[:5]
    f_end = SEED_END
    figures = _unique_figures(raw, own, f_end - timedelta(days=29), f_end)
    assert figures and not [x for x in figures if x in shown]
    # Every period preset draws without another vendor's name either.
    for preset in ("last_7_days", "last_90_days", "mtd", "qtd", "ytd", "last_year", "custom"):
        at.selectbox(key="vp_period").set_value(preset).run()
        assert not at.exception, (preset, at.exception)
        shown = everything_shown(at)
        assert not [n for n in [*names, *products] if n in shown], preset
    # The marketplace's overview leads to the vendor's own; the staff's other pages answer "not
    # permitted" and draw no data.
    at = open_url(at, "overview")
    assert [t.value for t in at.title] == [at.session_state["mbi_user"].display_name.removeprefix("Test ")] or \
        "How you compare in your category" in texts(at)
    assert "Top 10 vendors" not in texts(at)
    for page in ("vendors", "admin"):
        at = open_url(at, page)
        assert "You are not permitted to open this page" in texts(at) and not at.dataframe, page


def _own_lines(raw, own, start, end):
    lines = lines_in(raw, start, end)
    return lines[lines["counted"] & lines["vendor_id"].isin(own)]


def test_a_vendors_sales_products_forecast_and_customers_are_its_own_lines_only(monkeypatch, database_url, engine,
                                                                                others):
    own, names, products, raw = others
    end = SEED_END
    start = end - timedelta(days=29)
    mine = _own_lines(raw, own, start, end)
    figures = _unique_figures(raw, own, start, end)
    at = open_url(login(monkeypatch, database_url, "vendor"), "sales")
    assert [t.value for t in at.title] == ["Your sales"]
    assert [t.label for t in at.tabs] == ["Payments", "Profitability"]

    def no_leak(at: AppTest, where: str) -> None:
        assert not at.exception, (where, at.exception)
        shown = everything_shown(at)
        assert not [n for n in [*names, *products] if n in shown], where
        assert not [x for x in figures if x in shown], where
    no_leak(at, "sales")
    # Every breakdown a vendor is offered sums its own lines, value by value.
    assert at.selectbox(key="sa_by").options == ["Channel", "Category", "Business model", "Payment method"]
    for by, column in (("category", "Category"), ("channel", "Channel"), ("business_model", "Business model"),
                       ("payment_method", "Payment method")):
        at.selectbox(key="sa_by").set_value(by).run()
        no_leak(at, by)
        table = table_with(at, column)
        expected = sorted(mine.groupby(by)["value"].sum().round(2))
        assert sorted(table["GMV"].round(2)) == pytest.approx(expected, abs=0.01), by
    trend = table_with(at, "Bucket")
    assert trend["GMV"].sum() == pytest.approx(mine["value"].sum(), abs=0.01)
    assert "vs target" not in [m.label for m in at.metric]
    at = open_url(at, "products")
    no_leak(at, "products")
    assert [t.value for t in at.title] == ["Your products"]
    top = table_with(at, "Product")
    by_product = mine.groupby("product_id")["value"].sum().sort_values(ascending=False)
    assert top["GMV"].head(3).round(2).tolist() == pytest.approx(by_product.head(3).round(2).tolist(), abs=0.01)
    at = open_url(at, "forecasting")
    no_leak(at, "forecasting")
    assert at.selectbox(key="fc_metric").options == ["GMV", "Net revenue", "Orders", "Units"]
    assert "Earlier forecasts against the actuals" not in texts(at)
    assert "Model:" in texts(at) and not at.warning, texts(at)
    # Customers: aggregates and scores of the customers of its own lines, no list, no customer records.
    at = open_url(at, "customers")
    no_leak(at, "customers")
    assert [t.value for t in at.title] == ["Your customers"]
    assert [t.label for t in at.tabs] == ["Segments", "Clusters", "Cohorts", "Lifetime value"]
    lines = raw["lines"]
    buyers = lines[lines["counted"] & lines["vendor_id"].isin(own) & (lines["day"] <= end)]["customer_id"].nunique()
    assert f"({buyers:,} customers" in texts(at)
    assert at.selectbox(key="cu_cohort_split").options == ["All customers"]
    assert "Customers with the highest expected value" not in texts(at)
    with engine.connect() as conn:
        people = conn.execute(sa.text(
            "SELECT DISTINCT c.name FROM mart.customers c JOIN mart.orders o USING (customer_id) "
            "JOIN mart.order_items i USING (order_id) WHERE i.vendor_id = ANY(:v)"), {"v": list(own)}).scalars().all()
    shown = everything_shown(at)
    assert people and not [n for n in people if n in shown]


def test_a_vendors_sql_sees_only_its_rows_and_its_own_saved_queries(monkeypatch, database_url, engine, others):
    own, names, _, _ = others
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.saved_queries"))
        conn.execute(sa.text("INSERT INTO app.saved_queries (owner, name, sql, shared) "
                             "VALUES ('analyst', 'Staff only', 'SELECT 1', true)"))
    at = open_url(login(monkeypatch, database_url, "vendor"), "sql")
    at.text_area(key="sql_text").set_value("SELECT vendor_id, name FROM mart.vendors ORDER BY 1").run()
    at.button(key="sql_run").click().run()
    assert not at.exception, at.exception
    assert table_with(at, "name")["vendor_id"].tolist() == list(own)
    at.text_area(key="sql_text").set_value("SELECT count(*) AS n FROM mart.customers").run()
    at.button(key="sql_run").click().run()
    assert "customers" in texts(at) and not any("n" in d.value.columns for d in at.dataframe)
    at.text_area(key="sql_text").set_value("SELECT DISTINCT vendor_id AS v FROM mart.order_items").run()
    at.button(key="sql_run").click().run()
    assert table_with(at, "v")["v"].tolist() == list(own)
    # The schema lists what the role reads, without the marketplace's row counts.
    schema = at.tabs[3]
    assert "each limited to your own vendors' rows" in "\n".join(c.value for c in schema.caption)
    labels = [e.label for e in at.expander]
    assert any(label.startswith("order_items ·") for label in labels)
    assert not any(label.startswith(("customers ·", "traffic_daily ·")) for label in labels)
    assert not any(" rows · " in label for label in labels if "·" in label and "glossary" not in label)
    # Saved queries: the vendor's own only, never shared.
    assert "No saved queries yet" in texts(at)
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT count(*) FROM app.audit_log WHERE action = 'sql.run' AND actor = 'vendor'"))
        assert runs.scalar() >= 3
        shared = conn.execute(sa.text("SELECT count(*) FROM app.saved_queries WHERE owner = 'vendor' AND shared"))
        assert shared.scalar() == 0


def test_an_admin_makes_and_binds_vendor_users_and_bad_bindings_are_named(monkeypatch, database_url, engine):
    with engine.connect() as conn:
        (a, a_name), (b, b_name) = conn.execute(sa.text(
            "SELECT vendor_id, name FROM mart.vendors WHERE status <> 'closed' ORDER BY vendor_id LIMIT 2")).all()
    at = open_url(login(monkeypatch, database_url, "admin"), "admin")
    name = f"v{uuid.uuid4().hex[:6]}"
    # No vendor for a vendor user, and vendors for an analyst: refused by name, nothing written.
    for role, vendors, words in (("vendor", [], "needs at least one vendor"),
                                 ("analyst", [a], "Only vendor users are bound to vendors")):
        at.text_input(key="admin_new_username").input(name)
        at.selectbox(key="admin_new_role").set_value(role)
        at.multiselect(key="admin_new_vendors").set_value(vendors)
        at.button(key="FormSubmitter:admin_create_user-Create user").click().run()
        assert any(words in e.value for e in at.error), (role, [e.value for e in at.error])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app.users WHERE username = :u"), {"u": name}).scalar() == 0
    at.text_input(key="admin_new_username").input(name)
    at.selectbox(key="admin_new_role").set_value("vendor")
    at.multiselect(key="admin_new_vendors").set_value([a])
    at.button(key="FormSubmitter:admin_create_user-Create user").click().run()
    assert not at.exception and [t.value for t in at.toast] == [f"Created {name}"]
    assert a_name in table_with(at, "vendors").set_index("username").loc[name, "vendors"]
    at.selectbox(key="admin_target").set_value(name).run()
    assert at.selectbox(key=f"admin_target_role_{name}").disabled
    at.multiselect(key=f"admin_target_vendors_{name}").set_value([a, b]).run()
    at.button(key="admin_save_vendors").click().run()
    assert not at.exception
    with engine.connect() as conn:
        assert auth.fetch_user(conn, name).vendor_ids == tuple(sorted((a, b)))
    at.multiselect(key=f"admin_target_vendors_{name}").set_value([]).run()
    at.button(key="admin_save_vendors").click().run()
    assert any("disable the user" in e.value for e in at.error)
    with engine.connect() as conn:
        assert auth.fetch_user(conn, name).vendor_ids == tuple(sorted((a, b)))
    assert b_name in table_with(at, "vendors").set_index("username").loc[name, "vendors"]


def test_a_vendor_exports_their_own_report_and_sees_only_their_exports(monkeypatch, database_url, engine, others):
    own, names, products, _ = others
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.exports"))
        conn.execute(sa.text("INSERT INTO app.exports (owner, template, params, format, title, expires_at) VALUES "
                             "('analyst', 'kpi_summary', '{}', 'pdf', 'Staff only', now() + interval '1 day')"))
    at = open_url(login(monkeypatch, database_url, "vendor"), "reports")
    assert at.selectbox(key="rep_request_template").options == ["A vendor's own report (KPIs, products, peer "
                                                                "benchmarks)"]
    at.button(key="rep_request_go").click().run()
    assert not at.exception, at.exception
    assert "queued: it appears under My exports" in texts(at)
    with engine.connect() as conn:
        mine = conn.execute(sa.text("SELECT template, params FROM app.exports WHERE owner = 'vendor'")).one()
    assert mine.template == "vendor_report" and mine.params["vendor_scope"] == list(own)
    shown = everything_shown(at)
    assert "Staff only" not in shown and not [n for n in [*names, *products] if n in shown]
    # Schedules: their own report, to their vendors' users only, no webhook.
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.schedules"))
        conn.execute(sa.text("UPDATE app.users SET email = 'shop@example.com' WHERE username = 'vendor'"))
        conn.execute(sa.text("INSERT INTO app.schedules (owner, name, template, params, format, cadence, cron, "
                             "timezone, recipients, next_run_at) VALUES ('analyst', 'Staff schedule', 'kpi_summary', "
                             "'{}', 'pdf', '{\"kind\": \"daily\", \"at\": \"07:00\"}', '0 7 * * *', 'UTC', "
                             "ARRAY['ops@example.com'], now() + interval '1 day')"))
    at.run()
    assert [t.label for t in at.tabs] == ["My exports", "New export", "Schedules"]
    form = "rep_sched_form_new"
    assert not [t for t in at.text_input if t.key == f"{form}_webhook"]
    assert "Your report goes by email to your vendors' users: shop@example.com." in texts(at)
    at.text_input(key=f"{form}_name").set_value("My week")
    at.text_area(key=f"{form}_recipients").set_value("rival@example.com")
    at.button(key=f"{form}_save").click().run()
    assert "rival@example.com is not the email of a user of your vendors" in texts(at)
    at.text_area(key=f"{form}_recipients").set_value("shop@example.com")
    at.button(key=f"{form}_save").click().run()
    assert not at.exception, at.exception
    assert table_with(at, "When")["Name"].tolist() == ["My week"]     # theirs only: not the staff's
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT template, recipients, webhook_url FROM app.schedules "
                                   "WHERE owner = 'vendor'")).one()
    assert tuple(row) == ("vendor_report", ["shop@example.com"], "")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.schedules"))
        conn.execute(sa.text("UPDATE app.users SET email = '' WHERE username = 'vendor'"))


def test_a_vendors_dashboards_are_its_own_and_drawn_on_its_role(monkeypatch, database_url, engine, others):
    from analytics import dashboards as D
    from analytics.filters import resolve_preset
    from data import saved_queries as SQ
    own, names, products, raw = others
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.dashboards"))
        conn.execute(sa.text("DELETE FROM app.saved_queries"))
        team = D.create_dashboard(conn, "analyst", "Team board", shared=True)
        staff_query = SQ.save_query(conn, "analyst", "Every vendor", "SELECT vendor_id, name FROM mart.vendors",
                                    shared=True)
        D.add_widget(conn, "analyst", team, kind="query", query_id=staff_query, chart={"type": "table"})
        # A vendor's dashboards are never shared, hold their own queries and their own metrics only.
        for change in (lambda: D.create_dashboard(conn, "vendor", "Open", shared=True),):
            with pytest.raises(D.DashboardError, match="cannot be shared"):
                change()
        mine = D.create_dashboard(conn, "vendor", "Mine")
        with pytest.raises(D.DashboardError, match="cannot be shared"):
            D.update_dashboard(conn, "vendor", mine, shared=True)
        with pytest.raises(D.DashboardError, match="Conversion rate is the marketplace's"):
            D.add_widget(conn, "vendor", mine, kind="kpi", metric="conversion_rate", period="last_30_days")
        with pytest.raises(D.DashboardError, match="query: save the query first"):
            D.add_widget(conn, "vendor", mine, kind="query", query_id=staff_query)
        with pytest.raises(D.DashboardError, match="only the owner"):
            D.add_widget(conn, "vendor", team, kind="kpi", metric="gmv", period="last_30_days")
        D.add_widget(conn, "vendor", mine, kind="kpi", metric="gmv", period="last_30_days", width=1)
        query = SQ.save_query(conn, "vendor", "My lines", "SELECT vendor_id, count(*) AS n FROM mart.order_items "
                              "GROUP BY 1 ORDER BY 1")
        D.add_widget(conn, "vendor", mine, kind="query", query_id=query, chart={"type": "table"})
        # A shared staff query pinned before stays hidden on a vendor's dashboard (its SQL is the staff's).
        conn.execute(sa.text("INSERT INTO app.dashboard_widgets (dashboard_id, position, width, kind, title, query_id) "
                             "VALUES (:d, 9, 2, 'query', '', :q)"), {"d": mine, "q": staff_query})
        assert D.fetch_widgets(conn, mine)["query_hidden"].tolist() == [False, False, True]
        assert D.fetch_dashboards(conn, "analyst")["name"].tolist() == ["Team board"]
        assert D.fetch_dashboards(conn, "vendor")["name"].tolist() == ["Mine"]
    at = open_url(login(monkeypatch, database_url, "vendor"), "dashboards")
    assert [t.value for t in at.title] == ["Your dashboards"]
    assert at.selectbox(key="db_pick").options == ["Mine · vendor"]
    assert "Shared" not in [c.label for c in at.checkbox]
    p = resolve_preset("last_30_days", SEED_END + timedelta(days=1))
    assert [m.value for m in at.metric] == [format_value("gmv", _own_lines(raw, own, p.start, p.end)["value"].sum())]
    assert table_with(at, "n")["vendor_id"].tolist() == list(own)
    assert at.selectbox(key="db_kpi_metric").options == ["GMV", "Net revenue", "Orders", "AOV", "Take revenue",
                                                          "Refund rate", "Cancellation rate", "Gross margin"]
    shown = everything_shown(at)
    assert "Team board" not in shown and not [n for n in [*names, *products] if n in shown]


def test_a_vendor_user_makes_an_alert_rule_on_their_own_sales(monkeypatch, database_url, engine, others):
    own, names, products, _ = others
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM app.alert_rules"))
        conn.execute(sa.text("UPDATE app.users SET email = 'shop@example.com' WHERE username = 'vendor'"))
    try:
        at = open_url(login(monkeypatch, database_url, "vendor"), "alerts")
        assert [t.value for t in at.title] == ["Your alerts"]
        form = "alerts_form_new"
        assert not [r for r in at.radio if r.key == f"{form}_source"]          # their own metrics only
        assert "Conversion rate" not in at.selectbox(key=f"{form}_metric").options
        assert "outside_forecast" not in at.selectbox(key=f"{form}_condition").options
        assert not [t for t in at.text_input if t.key == f"{form}_webhook"]
        assert "Your alerts go by email to your vendors' users: shop@example.com." in texts(at)
        at.text_input(key=f"{form}_name").set_value("My GMV fell")
        at.text_area(key=f"{form}_recipients").set_value("shop@example.com")
        at.button(key=f"{form}_preview").click().run()
        assert not at.exception, at.exception
        assert "Over the last 30 days this rule" in texts(at)
        at.button(key=f"{form}_save").click().run()
        assert not at.exception, at.exception
        with engine.connect() as conn:
            rule = conn.execute(sa.text("SELECT owner, metric, filters, recipients, webhook_url FROM app.alert_rules")).one()
        assert tuple(rule) == ("vendor", "gmv", {"vendor_id": [own[0]]}, ["shop@example.com"], "")
        shown = everything_shown(at)
        assert not [n for n in [*names, *products] if n in shown]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM app.alert_rules"))
            conn.execute(sa.text("UPDATE app.users SET email = '' WHERE username = 'vendor'"))


def test_a_vendors_customers_page_reads_its_nightly_scores(monkeypatch, database_url, engine, others):
    from datetime import datetime, timezone
    from reports import jobs
    own, names, products, raw = others
    now = datetime.combine(SEED_END + timedelta(days=1), datetime.min.time(), timezone.utc) + timedelta(hours=6)
    try:
        at = login(monkeypatch, database_url, "vendor")    # the job's vendor roles log in to this database
        with engine.begin() as conn:
            assert "customer scores of" in jobs.vendor_customer_scores_job(conn, now)
        at = open_url(at, "customers")
        lines = raw["lines"]
        buyers = lines[lines["counted"] & lines["vendor_id"].isin(own) & (lines["day"] <= SEED_END)]["customer_id"]
        assert "Scores from the nightly run of " in texts(at)
        assert f"({buyers.nunique():,} customers, as of {SEED_END:%d %b %Y})" in texts(at)
        shown = everything_shown(at)
        assert not [n for n in [*names, *products] if n in shown]
        # Every preset ending yesterday reads the kept scores too, and last year's its own; a custom
        # range is computed.
        for preset in ("last_7_days", "last_90_days", "mtd", "qtd", "ytd", "last_year"):
            at.selectbox(key="cu_period").set_value(preset).run()
            assert not at.exception and "Scores from the nightly run of " in texts(at), preset
        year_end = date(SEED_END.year - 1, 12, 31)
        assert f"as of {year_end:%d %b %Y})" in texts(at)
        at.selectbox(key="cu_period").set_value("custom").run()
        at.date_input(key="cu_range").set_value((year_end - timedelta(days=60), year_end - timedelta(days=30))).run()
        assert not at.exception and "Computed for your own customers" in texts(at)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM mart.vendor_customer_scores"))
