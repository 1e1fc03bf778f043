"""AppTest of the gate: every page × every role (and logged out), login, lockout, admin, account."""
from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from components.navigation import PAGES
from data import auth
from data.audit import fetch_audit
from reports.jobs import heartbeat, run_job
from tests.apptest import login, open_url, start, submit_login, texts
from tests.conftest import ROOT, create_database, use_database

NOT_PERMITTED = "You are not permitted to open this page"
# What each page shows only when it really ran (its data or its forms).
RENDERED = {"overview": lambda at: len(at.metric) == 10,
            "business": lambda at: len(at.metric) == 8 and any("Product" in d.value.columns for d in at.dataframe),
            "vendors": lambda at: any({"Rank", "Vendor", "GMV"} <= set(d.value.columns) and len(d.value) > 0
                                      for d in at.dataframe),
            "products": lambda at: any("Product" in d.value.columns and len(d.value) > 0 for d in at.dataframe),
            "sales": lambda at: any(d.value.shape[0] > 0 for d in at.dataframe),
            "dashboards": lambda at: any(t.value in ("Dashboards", "Your dashboards") for t in at.title) and (
                any("No dashboards yet" in str(i.value) for i in at.info) or bool(at.selectbox(key="db_pick"))),
            "sql": lambda at: any(t.label == "SQL" for t in at.text_area),
            "forecasting": lambda at: any("MASE" in d.value.columns for d in at.dataframe),
            "customers": lambda at: any("Rule" in d.value.columns and d.value["Customers"].sum() > 0
                                        for d in at.dataframe),
            "account": lambda at: any(b.label == "Change password" for b in at.button),
            "reports": lambda at: any(b.label == "Export in the background" for b in at.button),
            "alerts": lambda at: any(b.label == "Save rule" for b in at.button),
            "admin": lambda at: "admin" in set(at.dataframe[0].value["username"]) if at.dataframe else False}


def _frame_with(at, column: str):
    """Returns the first table on the page that has column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _no_data(at) -> bool:
    return not at.metric and not at.dataframe and not at.get("plotly_chart")


@pytest.mark.parametrize("spec", PAGES, ids=[p.url_path for p in PAGES])
def test_logged_out_every_url_shows_only_the_login_form(monkeypatch, database_url, spec):
    at = start(monkeypatch, database_url)
    at = open_url(at, spec.url_path)
    assert at.button(key="FormSubmitter:login-Log in")
    assert _no_data(at) and NOT_PERMITTED not in texts(at)
    assert not at.sidebar.get("page_link")


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin", "vendor"])
def test_each_role_sees_exactly_its_pages(monkeypatch, database_url, role):
    at = login(monkeypatch, database_url, role)
    menu = {link.proto.label for link in at.sidebar.get("page_link")}
    assert menu == {p.title for p in PAGES if role in p.roles}
    home = next(p for p in PAGES if p.default and role in p.roles)
    for spec in PAGES:
        at = open_url(at, spec.url_path)
        if role in spec.roles:
            assert RENDERED[spec.url_path](at), (role, spec.url_path)
            assert NOT_PERMITTED not in texts(at)
        elif spec.default:   # another role's home page (where a login at the root lands) leads to this one's
            assert RENDERED[home.url_path](at), (role, spec.url_path)
        else:
            assert NOT_PERMITTED in texts(at), (role, spec.url_path)
            assert _no_data(at), (role, spec.url_path)
    assert f"· {role.title()}" in texts(at)


@pytest.mark.parametrize("case", ["unmigrated", "unreachable"])
def test_a_database_problem_is_a_message_that_says_what_to_do(monkeypatch, admin_url, case):
    """The driver's error reaches the page as data.errors' domain error: words, not a traceback."""
    if case == "unmigrated":
        url, words = create_database(admin_url, "mbi_unmigrated"), "run `python -m data migrate`"
    else:   # nothing listens on port 1
        url, words = "postgresql+psycopg://nobody@127.0.0.1:1/mbi", "The app cannot reach PostgreSQL: "
    use_database(monkeypatch, url)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] and words in at.error[0].value
    assert not at.text_input, "no login form without a database"


def test_wrong_and_unknown_logins_get_the_same_message(monkeypatch, database_url):
    at = start(monkeypatch, database_url)
    wrong = texts(submit_login(at, "viewer", "Not-the-password-1"))
    unknown = texts(submit_login(at, "nobody-" + uuid.uuid4().hex[:6], "Not-the-password-1"))
    assert "Username or password is incorrect." in wrong
    assert wrong == unknown
    assert _no_data(at)


def _make_user(engine, role: str, password: str = "Temporary-pass-1") -> str:
    name = f"t{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        auth.create_user(conn, name, password, role)
    return name


def test_lockout_in_the_form(monkeypatch, database_url, engine):
    name = _make_user(engine, "viewer")
    at = start(monkeypatch, database_url, LOGIN_MAX_FAILURES="3")
    for _ in range(3):
        submit_login(at, name, "Not-the-password-1")
    at = submit_login(at, name, "Temporary-pass-1")
    assert "Too many failed login attempts. Try again in 15 minutes." in texts(at)
    assert "mbi_user" not in at.session_state
    # An unknown name is locked the same way: the lock reveals nothing.
    ghost = "ghost-" + uuid.uuid4().hex[:6]
    for _ in range(4):
        at = submit_login(at, ghost, "Not-the-password-1")
    assert "Too many failed login attempts. Try again in 15 minutes." in texts(at)


def test_role_change_and_disable_apply_on_the_next_page_load(monkeypatch, database_url, engine):
    name = _make_user(engine, "admin")
    at = submit_login(start(monkeypatch, database_url), name, "Temporary-pass-1")
    at = open_url(at, "admin")
    assert RENDERED["admin"](at)
    with engine.begin() as conn:
        auth.set_role(conn, name, "viewer", actor="admin")
    at.run()
    assert NOT_PERMITTED in texts(at) and _no_data(at)
    with engine.begin() as conn:
        auth.set_enabled(conn, name, False, actor="admin")
    at.run()
    assert "Your session has ended" in texts(at) and _no_data(at)
    at = submit_login(at, name, "Temporary-pass-1")
    assert "Username or password is incorrect." in texts(at), "a disabled user cannot log in"


def test_logout_revokes_the_session(monkeypatch, database_url, engine):
    at = login(monkeypatch, database_url, "viewer")
    sid = at.session_state["mbi_sid"]
    at.button(key="mbi_logout").click().run()
    assert "You have logged out." in texts(at) and _no_data(at)
    with engine.connect() as conn:
        assert auth.resolve_session(conn, sid) is None
        assert fetch_audit(conn, user="viewer", actions=["logout"]).shape[0] >= 1


def test_admin_creates_resets_disables_and_reads_the_audit_log(monkeypatch, database_url, engine):
    at = open_url(login(monkeypatch, database_url, "admin"), "admin")
    name = f"new{uuid.uuid4().hex[:6]}"
    at.text_input(key="admin_new_username").input(name)
    at.selectbox(key="admin_new_role").set_value("analyst")
    at.button(key="FormSubmitter:admin_create_user-Create user").click().run()
    assert not at.exception
    shown = [c.value for c in at.get("code")]
    assert len(shown) == 1, "a generated password is shown once"
    # The confirmation (the browser journey checks that it survives the rerun: AppTest keeps it anyway).
    assert [t.value for t in at.toast] == [f"Created {name}"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT role FROM app.users WHERE username = :u"), {"u": name}).scalar() == "analyst"
    at.run()
    assert not at.get("code"), "and only once"
    # The new user can log in with it.
    with engine.begin() as conn:
        assert auth.attempt_login(conn, name, shown[0], client_addr="test").user.role == "analyst"

    at.selectbox(key="admin_target").set_value(name).run()
    at.button(key="admin_reset_password").click().run()
    new_password = [c.value for c in at.get("code")][0]
    at.selectbox(key="admin_target").set_value(name).run()
    at.button(key="admin_toggle_enabled").click().run()
    assert not at.exception
    with engine.begin() as conn:
        assert auth.attempt_login(conn, name, new_password, client_addr="test").user is None   # disabled
        log = fetch_audit(conn, user="admin", actions=["user.create", "user.password_reset", "user.disable"])
    assert list(log[log["target"] == name]["action"]) == ["user.disable", "user.password_reset", "user.create"]

    # Weak passwords and taken names are refused with a message, nothing written.
    at.text_input(key="admin_new_username").input(name)
    at.text_input(key="admin_new_password").input("weak")
    at.button(key="FormSubmitter:admin_create_user-Create user").click().run()
    assert any("already exists" in e.value or "too weak" in e.value for e in at.error)

    at.text_input(key="audit_user").input(name).run()
    table = _frame_with(at, "client_addr")
    assert set(table["action"]) >= {"user.create", "user.password_reset", "user.disable", "login.success"}
    csv = at.get("download_button")
    assert csv, "the audit log can be downloaded"


def test_role_box_follows_the_chosen_user_and_empty_audit_filters(monkeypatch, database_url, engine):
    boss = _make_user(engine, "admin")
    at = open_url(login(monkeypatch, database_url, "admin"), "admin")
    at.selectbox(key="admin_target").set_value(boss).run()
    assert at.selectbox(key=f"admin_target_role_{boss}").value == "admin"
    at.selectbox(key="admin_target").set_value("viewer").run()
    assert at.selectbox(key="admin_target_role_viewer").value == "viewer"
    assert at.button(key="admin_save_role").disabled, "nothing to save until the role is changed"
    at.selectbox(key="admin_target").set_value("admin").run()
    assert at.button(key="admin_reset_password").disabled, "own password: My account"
    at.text_input(key="audit_user").input("nobody-at-all").run()
    assert not at.exception and "No events match these filters." in texts(at)
    assert "Scheduler" in [t.label for t in at.tabs], "the tabs after the audit log still draw"


def test_admin_sees_scheduler_status(monkeypatch, database_url, engine):
    heartbeat(engine)
    run_job(engine, "test_failure", lambda conn: 1 / 0)
    at = open_url(login(monkeypatch, database_url, "admin"), "admin")
    page = texts(at)
    assert "Scheduler alive" in page
    failures = _frame_with(at, "message")
    assert "ZeroDivisionError" in " ".join(failures["message"])


def test_account_page_changes_the_password(monkeypatch, database_url, engine):
    name = _make_user(engine, "viewer")
    at = open_url(submit_login(start(monkeypatch, database_url), name, "Temporary-pass-1"), "account")

    def change(current, new, again=None):
        at.text_input(key="account_current").input(current)
        at.text_input(key="account_new").input(new)
        at.text_input(key="account_again").input(again or new)
        at.button(key="FormSubmitter:account_password-Change password").click().run()
        assert not at.exception
        return [e.value for e in at.error], [s.value for s in at.success]

    assert "The current password is not correct." in change("Wrong-pass-123", "Next-password-22")[0]
    assert "The two new passwords differ." in change("Temporary-pass-1", "Next-password-22", "Other-22-pass")[0]
    assert any("too weak" in e for e in change("Temporary-pass-1", "short")[0])
    assert any("Password changed" in s for s in change("Temporary-pass-1", "Next-password-22")[1])
    with engine.begin() as conn:
        assert auth.attempt_login(conn, name, "Next-password-22", client_addr="test").user is not None
    at.run()
    assert "mbi_user" in at.session_state, "the session that changed the password stays logged in"


def test_missing_cookie_key_stops_the_app_with_instructions(monkeypatch, database_url):
    at = start(monkeypatch, database_url, AUTH_COOKIE_KEY="")
    assert "AUTH_COOKIE_KEY is not set" in texts(at)
    assert not at.text_input, "no login form without a key"
