"""AppTest helpers: start the app against a test database, log in, open a page by its URL."""
from __future__ import annotations

import streamlit as st
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from tests.conftest import ROOT, use_database

# Created once per test session in the seeded database (see the `users` fixture).
# The vendor user ("vendor") is bound to the vendor tests.conftest.TEST_VENDOR finds.
PASSWORDS = {"viewer": "Blue-lagoon-2026", "analyst": "Green-forest-2026", "admin": "Red-mountain-2026",
             "vendor": "Amber-harbour-2026"}


def start(monkeypatch, url: str, **env: str) -> AppTest:
    """Returns an AppTest of app.py that has run once (showing the login form)."""
    # Every AppTest comes from the address "local": a lockout test must not lock out the rest.
    use_database(monkeypatch, url, **{"LOGIN_MAX_FAILURES_PER_ADDRESS": "100000", **env})
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def submit_login(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button(key="FormSubmitter:login-Log in").click().run()
    assert not at.exception, at.exception
    return at


def login(monkeypatch, url: str, role: str, **env: str) -> AppTest:
    """Returns an AppTest logged in as the test user of role, on the default page."""
    at = submit_login(start(monkeypatch, url, **env), role, PASSWORDS[role])
    assert at.session_state["mbi_user"].role == role
    return at


def open_url(at: AppTest, url_path: str) -> AppTest:
    """Opens the page registered under url_path, as a browser opening /url_path would."""
    # st.Page identifies a page by the hash of its url_path; AppTest.switch_page only knows
    # file paths, which forbidden pages (served by a callable) do not have.
    at._page_hash = calc_hash(url_path)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    """Returns all the text a user would read on the page, joined."""
    parts = [e.value for e in (*at.title, *at.markdown, *at.error, *at.info, *at.success, *at.caption,
                               *at.subheader, *at.warning)]
    return "\n".join(str(p) for p in parts)


def open_page(monkeypatch, url: str, role: str, url_path: str) -> AppTest:
    """Returns an AppTest logged in as role on the page registered under url_path."""
    at = open_url(login(monkeypatch, url, role), url_path)
    assert not at.exception, at.exception
    return at


def table_with(at: AppTest, column: str):
    """Returns the first table on the page that has column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)
