"""The auth gate: login form, session cookie, logout, role checks.

Policy lives in data/auth.py; this module only connects it to Streamlit. The form's submission is
checked by data.auth.attempt_login (bcrypt against app.users, with the windowed lockout); the
cookie carries a server-side session id that logout or disabling a user revokes.
"""
from __future__ import annotations

import extra_streamlit_components as stx
import streamlit as st

from components.loaders import auth as L
from components.text import plain
from data import auth
from data.settings import load_settings

COOKIE = "mbi_session"
ROLE_LABELS = {"viewer": "Viewer", "analyst": "Analyst", "admin": "Admin", "vendor": "Vendor"}
_SID = "mbi_sid"
_USER = "mbi_user"
_LOGGED_OUT = "mbi_logged_out"
_COOKIE_VALUE = "mbi_cookie_value"


def _text(value) -> str | None:
    # Outside a browser session (AppTest, bare mode) st.context answers with placeholders.
    return value if isinstance(value, str) and value else None


def client_addr() -> str:
    """Returns the client's address ("local" for loopback and when unknown): see
    data.auth.client_address for TRUSTED_PROXIES and X-Forwarded-For."""
    # Every X-Forwarded-For line, in order: a proxy may add a line of its own instead of appending to
    # the client's, and the first line alone would then be the client's own text.
    forwarded = ", ".join(_text(h) for h in st.context.headers.get_all("X-Forwarded-For"))
    return auth.client_address(_text(st.context.ip_address), forwarded, load_settings().trusted_proxies)


def _user_agent() -> str:
    return _text(st.context.headers.get("User-Agent")) or ""


def current_user() -> auth.User | None:
    """Returns the user the gate let in on this run (role as read from the database)."""
    return st.session_state.get(_USER)


def gate() -> auth.User | None:
    """Returns the signed-in user, re-read from the database; otherwise draws the login form, returns None."""
    settings = load_settings()
    key = auth.resolve_cookie_key(settings)
    sid = st.session_state.get(_SID)
    ended = False
    if sid is None and not st.session_state.get(_LOGGED_OUT):
        token = _text(st.context.cookies.get(COOKIE))
        if token:
            sid = auth.decode_cookie(token, key)
            ended = sid is None
    if sid is not None:
        user = L.load_session_user(sid)
        if user is not None:
            st.session_state[_SID] = sid
            st.session_state[_USER] = user
            _deliver_cookie()
            return user
        ended = True
        _forget()
    return _login(settings, key, ended)


def _forget() -> None:
    for k in (_SID, _USER, _COOKIE_VALUE, "admin_password_once"):
        st.session_state.pop(k, None)


def _login(settings, key: str, ended: bool) -> auth.User | None:
    """Draws the login form; returns the user when this run's submission succeeded."""
    if st.session_state.get(_LOGGED_OUT):
        cookies = stx.CookieManager(key="mbi_cookies")
        # The manager only deletes cookies it has read, and its read arrives a rerun later.
        cookies.cookies.setdefault(COOKIE, "")
        cookies.delete(COOKIE, key="mbi_cookie_delete")
    policy = auth.LockoutPolicy.from_settings(settings)
    addr = client_addr()
    outcome: dict = {}

    def check_credentials(username: str, password: str) -> bool:
        result, session = L.login(username, password, client_addr=addr, policy=policy,
                                  session_days=settings.session_days, user_agent=_user_agent())
        if session is None:
            outcome["message"] = result.message
            return False
        user = result.user
        sid, expires = session
        # Stored before any other Streamlit call: a rerun request arriving now interrupts the
        # script at the next call, and the login must survive that.
        st.session_state[_SID] = sid
        st.session_state[_USER] = user
        st.session_state[_COOKIE_VALUE] = (auth.encode_cookie(sid, user.username, key, expires), expires)
        st.session_state.pop(_LOGGED_OUT, None)
        outcome["user"] = user
        return True

    with st.container():
        _, middle, _ = st.columns([1, 2, 1])
        with middle:
            st.title(":material/analytics: Marketplace BI")
            if st.session_state.get(_LOGGED_OUT):
                st.success("You have logged out.")
            elif ended:
                st.info("Your session has ended. Please log in again.")
            with st.form("login", clear_on_submit=True):
                st.subheader("Log in")
                username = st.text_input("Username", autocomplete="off")
                password = st.text_input("Password", type="password", autocomplete="off")
                submitted = st.form_submit_button("Log in")
            if submitted and username:
                # As the login form did under streamlit-authenticator (issue 3): a password's outer
                # spaces do not count; an empty username is no attempt.
                check_credentials(username, password.strip() if password else password)
            if "message" in outcome:
                st.error(outcome["message"])  # the same words whether or not the username exists
            st.caption(f"Ask an admin for an account or a new password. {policy.max_failures} failed "
                       f"attempts lock a username for {int(policy.lock.total_seconds() // 60)} minutes.")
    if "user" in outcome:
        st.rerun()  # the logged-in run draws the page and hands the browser its cookie
    return None


def _deliver_cookie() -> None:
    """Sets the session cookie in the browser, on every run of the session that logged in.

    The cookie manager is a component that acts when the browser draws it; drawing it on each
    run makes sure an interrupted run cannot lose it. The same element redrawn does nothing.
    """
    pending = st.session_state.get(_COOKIE_VALUE)
    if pending is None:
        return
    token, expires = pending
    cookies = stx.CookieManager(key="mbi_cookies")
    # Set from JavaScript, so it cannot be HttpOnly; Secure whenever the page came over HTTPS.
    https = (_text(st.context.url) or "").startswith("https://")
    cookies.set(COOKIE, token, key="mbi_cookie_set", expires_at=expires.astimezone().replace(tzinfo=None),
                same_site="strict", secure=https or None)


def _logout() -> None:
    sid, user = st.session_state.get(_SID), st.session_state.get(_USER)
    if sid is not None:
        L.end_session(sid, actor=user.username if user else "", client_addr=client_addr())
    _forget()
    st.session_state[_LOGGED_OUT] = True


def require_live_session() -> None:
    """Re-checks the session inside a fragment, whose reruns skip app.py's gate.

    A logged-out, revoked or disabled session reruns the whole app, which shows the login form.
    """
    sid = st.session_state.get(_SID)
    user = L.load_session_user(sid) if sid else None
    if user is None:
        _forget()
        st.rerun(scope="app")
    st.session_state[_USER] = user


def render_user_box(user: auth.User, *, key: str) -> None:
    """Draws who is signed in, with their role and a logout button (sidebar)."""
    with st.sidebar:
        st.caption(f"Signed in as **{plain(user.display_name)}** · {ROLE_LABELS[user.role]}")
        st.button("Log out", key=f"{key}_logout", on_click=_logout, width="stretch")


def require_role(*roles: str) -> auth.User:
    """Stops the page with "not permitted" unless the signed-in user has one of roles."""
    user = current_user()
    if user is None or user.role not in roles:
        render_not_permitted(key="not_permitted")
        st.stop()
    return user


def require_scope(*staff_roles: str) -> tuple[int, ...]:
    """For a page both the staff and vendor users open: stops it with "not permitted" unless the
    signed-in user has one of staff_roles or is a vendor user; returns the vendor ids the page's figures
    are limited to: () for the staff, the vendor user's own (never empty: a vendor user bound to no
    vendor is stopped with a message, as an empty scope would read as the staff's)."""
    user = require_role(*staff_roles, auth.VENDOR)
    if not user.is_vendor:
        return ()
    if not user.vendor_ids:
        st.warning("Your account is not bound to any vendor yet. Ask the marketplace's admin to bind it.",
                   icon=":material/link_off:")
        st.stop()
    return user.vendor_ids


def render_not_permitted(*, key: str) -> None:
    """Draws "not permitted" with whom to ask."""
    with st.container(key=key):
        st.error("You are not permitted to open this page. Ask an admin if you need access.", icon=":material/lock:")


def current_session_id() -> str | None:
    return st.session_state.get(_SID)
