"""Admin widgets: user management, the audit log viewer and the scheduler's status."""
from __future__ import annotations

from datetime import datetime, time, timedelta

from collections.abc import Callable

import pandas as pd
import streamlit as st

from components import flash
from components.auth import ROLE_LABELS, client_addr
from components.loaders import admin as L
from components.text import plain
from data import auth
from data.errors import DatabaseUnavailableError
from data.settings import load_settings
from reports.exporters import to_csv

_SHOW_ONCE = "admin_password_once"


def _show_password_once() -> None:
    shown = st.session_state.pop(_SHOW_ONCE, None)
    if shown:
        username, password = shown
        st.success(f"Password for **{plain(username)}** — shown only this once, pass it on safely:")
        st.code(password, language=None)


def _act(fn: Callable[..., None], *args, done: str, flash_key: str = "admin", then_rerun: bool = True,
         **kwargs) -> bool:
    """Runs one change (a write of components.loaders.admin); shows its AuthError as a message. Returns success.

    With then_rerun (the caller reruns the page next), the confirmation waits for that run
    (components.flash): a toast sent just before st.rerun() is cleared before the browser draws it."""
    try:
        fn(*args, **kwargs)
    except auth.AuthError as ex:
        st.error(str(ex))
        return False
    except DatabaseUnavailableError as ex:  # deadlock, serialisation failure, lost connection
        st.error(f"The change was not saved ({ex.first_line}). Please try again.")
        return False
    if then_rerun:
        flash.later(flash_key, done)
    else:
        st.toast(done, icon="✅")
    return True


def render_users(admin: auth.User, *, key: str) -> None:
    """Draws the users table, the create form and the per-user actions."""
    flash.show(key, toast=True)
    _show_password_once()
    users = L.load_users()
    vendors = L.load_vendor_choices()
    vendor_label = {int(v): f"{n} ({v}, {c}{'' if status == 'active' else ', ' + status})"
                    for v, n, c, status in vendors[["vendor_id", "name", "category", "status"]].itertuples(index=False)}
    bound = users["vendors"].map(lambda ids: [int(v) for v in ids])
    users["role"] = users["role"].map(ROLE_LABELS)
    users["vendors"] = bound.map(lambda ids: ", ".join(vendor_label.get(v, str(v)) for v in ids))
    st.dataframe(users, key=f"{key}_users_table", hide_index=True, width="stretch", column_config={
        "username": "Username", "name": "Name", "email": "Email", "role": "Role",
        "vendors": st.column_config.TextColumn("Sees vendors", help="A vendor user sees only these vendors' business"),
        "enabled": st.column_config.CheckboxColumn("Enabled"),
        "created_at": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm"),
        "last_login": st.column_config.DatetimeColumn("Last login", format="YYYY-MM-DD HH:mm"),
        "active_sessions": st.column_config.NumberColumn("Live sessions")})
    who = {"actor": admin.username, "client_addr": client_addr()}

    left, right = st.columns(2, gap="large")
    with left, st.form(f"{key}_create_user", clear_on_submit=True):
        st.subheader("New user")
        username = st.text_input("Username", key=f"{key}_new_username")
        name = st.text_input("Display name", key=f"{key}_new_name")
        email = st.text_input("Email", key=f"{key}_new_email")
        role = st.selectbox("Role", auth.ROLES, format_func=ROLE_LABELS.get, key=f"{key}_new_role")
        chosen = st.multiselect("Vendors (vendor users only)", list(vendor_label), format_func=vendor_label.get,
                                key=f"{key}_new_vendors", placeholder="Choose the vendors this user sees",
                                help="A vendor user sees only these vendors' own business; other roles see all.")
        password = st.text_input("Password", type="password", key=f"{key}_new_password",
                                 help="Leave empty to generate one; it is shown once.")
        if st.form_submit_button("Create user", type="primary"):
            pw = password or auth.generate_password(username.strip().lower())
            if _act(L.save_user, username, pw, role, name=name, email=email, vendor_ids=tuple(chosen),
                    done=f"Created {username.strip().lower()}", flash_key=key, **who):
                if not password:
                    st.session_state[_SHOW_ONCE] = (username.strip().lower(), pw)
                st.rerun()

    with right:
        st.subheader("Change a user")
        names = users["username"].tolist()
        target = st.selectbox("User", names, key=f"{key}_target", index=None, placeholder="Choose a user")
        if target is None:
            return
        row = users.set_index("username").loc[target]
        current_role = next(r for r, label in ROLE_LABELS.items() if label == row["role"])
        is_vendor = current_role == auth.VENDOR
        if is_vendor:
            now_bound = [v for v in bound[users["username"] == target].iloc[0] if v in vendor_label]
            mine = st.multiselect("Sees vendors", list(vendor_label), default=now_bound,
                                  format_func=vendor_label.get, key=f"{key}_target_vendors_{target}",
                                  help="Bind or unbind vendors; applies on the user's next page.")
            if st.button("Save vendors", key=f"{key}_save_vendors"):
                if _act(L.save_vendors, target, tuple(mine), done=f"{target} now sees {len(mine)} vendor(s)",
                        flash_key=key, **who):
                    st.rerun()
        new_role = st.selectbox("Role", auth.ROLES, index=auth.ROLES.index(current_role),
                                format_func=ROLE_LABELS.get, key=f"{key}_target_role_{target}", disabled=is_vendor,
                                help="Vendor users and staff are separate accounts." if is_vendor else None)
        c1, c2, c3 = st.columns(3)
        if c1.button("Save role", key=f"{key}_save_role", disabled=new_role == current_role):
            if _act(L.save_role, target, new_role, done=f"{target} is now {ROLE_LABELS[new_role]}", flash_key=key,
                    **who):
                st.rerun()
        enabled = bool(row["enabled"])
        if c2.button("Disable" if enabled else "Enable", key=f"{key}_toggle_enabled"):
            if _act(L.save_enabled, target, not enabled,
                    done=f"{target} {'disabled; their sessions ended' if enabled else 'enabled'}", flash_key=key,
                    **who):
                st.rerun()
        if c3.button("Reset password", key=f"{key}_reset_password", disabled=target == admin.username,
                     help="Your own password: change it under My account."):
            pw = auth.generate_password(target)
            if _act(L.save_password, target, pw, done=f"New password for {target}", flash_key=key, **who):
                st.session_state[_SHOW_ONCE] = (target, pw)
                st.rerun()


def render_audit(*, key: str) -> None:
    """Draws the audit log with filters by user, action and time, and a CSV download."""
    tz = load_settings().tz
    actions = L.load_audit_actions()
    c1, c2, c3 = st.columns([1, 2, 1])
    actor = c1.text_input("User", key=f"{key}_user", placeholder="any user").strip().lower()
    chosen = c2.multiselect("Actions", actions, key=f"{key}_actions", placeholder="all actions")
    today = datetime.now(tz).date()
    span = c3.date_input("Between", (today - timedelta(days=30), today), key=f"{key}_range",
                         max_value=today + timedelta(days=1))
    if not isinstance(span, (tuple, list)) or len(span) != 2:
        st.info("Choose the last day of the range.")
        return
    since = datetime.combine(span[0], time.min, tz)
    until = datetime.combine(span[1] + timedelta(days=1), time.min, tz)
    rows = L.load_audit(user=actor or None, actions=chosen, since=since, until=until)
    if rows.empty:
        st.info("No events match these filters.")
        return
    rows = _local(rows, tz)
    st.caption(f"{len(rows):,} events, newest first" + (" (first 10,000)" if len(rows) == 10_000 else ""))
    st.dataframe(rows, key=f"{key}_table", hide_index=True, width="stretch", column_config={
        "at": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm:ss"),
        "actor": "User", "action": "Action", "target": "Target", "detail": "Detail", "client_addr": "Address"})
    export = rows.assign(at=rows["at"].map(lambda t: t.isoformat()))
    st.download_button("Download CSV", to_csv(export), file_name=f"audit_{span[0]}_{span[1]}.csv",
                       mime="text/csv", key=f"{key}_download", icon="⬇️")


def render_scheduler(*, key: str) -> None:
    """Draws the scheduler's heartbeat, the latest run of each job and recent failures."""
    s = load_settings()
    beats, latest, failures = L.load_scheduler_status()
    stale_after = 3 * s.heartbeat_seconds
    if beats.empty:
        st.error("No scheduler has ever reported. Start it with `python -m reports.scheduler` (make run does).")
    else:
        newest = int(beats["seconds_ago"].min())
        if newest <= stale_after:
            st.success(f"Scheduler alive: last heartbeat {_ago(newest)} ago.")
        else:
            st.error(f"No heartbeat for {_ago(newest)} (expected every {s.heartbeat_seconds} s): "
                     "is `python -m reports.scheduler` running?")
        beats = beats.assign(alive=beats["seconds_ago"] <= stale_after)
        st.dataframe(_local(beats, s.tz), key=f"{key}_beats", hide_index=True, width="stretch",
                     column_config={**_RUN_COLUMNS, "hostname": "Host", "pid": "PID",
                                    "beat_at": _when("Last beat"), "seconds_ago": st.column_config.NumberColumn(
                                        "Seconds since", format="%d s"),
                                    "alive": st.column_config.CheckboxColumn("Alive")})
    for title, runs, suffix, show_empty, empty_text in (
            ("Latest run of each job", latest, "latest", st.info, "No job has run yet."),
            ("Failures in the last 7 days", failures, "failures", st.success,
             "No job failed in the last 7 days.")):
        st.subheader(title)
        if runs.empty:
            show_empty(empty_text)
        else:
            st.dataframe(_local(runs, s.tz), key=f"{key}_{suffix}", hide_index=True, width="stretch",
                         column_config=_RUN_COLUMNS)


def render_deliveries(admin: auth.User, *, key: str) -> None:
    """Draws failed deliveries (emails and webhooks that ran out of attempts), with a retry."""
    st.subheader("Failed deliveries")
    failed, waiting = L.load_deliveries()
    st.caption(f"{waiting:,} deliveries waiting to be sent or retried.")
    if failed.empty:
        st.success("No email or webhook has failed for good.")
        return
    st.dataframe(_local(failed, load_settings().tz), key=f"{key}_failed", hide_index=True, width="stretch",
                 column_config={"delivery_id": "Id", "channel": "Channel", "target": "To", "source": "For",
                                "attempts": "Attempts", "last_error": "Last error", "created_at": _when("Created")})
    labels = dict(zip(failed["delivery_id"].astype(int), failed["channel"] + " to " + failed["target"]))
    c = st.columns([3, 1], vertical_alignment="bottom")
    picked = c[0].selectbox("Delivery", list(labels), format_func=labels.get, key=f"{key}_pick")
    if c[1].button("Retry", key=f"{key}_retry", icon=":material/replay:"):
        _act(L.retry, int(picked), actor=admin.username,
             done="Queued again: the scheduler sends it within seconds.", then_rerun=False)


def _when(label: str):
    return st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm:ss")


_RUN_COLUMNS = {"job": "Job", "worker": "Worker", "started_at": _when("Started"), "finished_at": _when("Finished"),
                "ok": st.column_config.CheckboxColumn("OK"), "message": st.column_config.TextColumn("Message", width="large")}


def _local(frame, tz):
    """Returns frame with its timestamp columns in the app's time zone (APP_TIMEZONE)."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_convert(tz)
    return out


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def render_password_change(user: auth.User, sid: str | None, *, key: str) -> None:
    """Draws the my-account password form: current password, new one twice, strength rules."""
    with st.form(f"{key}_password", clear_on_submit=True):
        current = st.text_input("Current password", type="password", key=f"{key}_current")
        new = st.text_input("New password", type="password", key=f"{key}_new",
                            help=f"At least {auth.MIN_PASSWORD_CHARS} characters and hard to guess: a few "
                                 "unrelated words or a long random string, not a word with a year and a symbol.")
        again = st.text_input("New password again", type="password", key=f"{key}_again")
        if st.form_submit_button("Change password", type="primary"):
            if new != again:
                st.error("The two new passwords differ.")
                return
            policy = auth.LockoutPolicy.from_settings(load_settings())
            try:
                L.save_own_password(user, current, new, keep_session=sid, client_addr=client_addr(), policy=policy)
            except auth.AuthError as ex:
                st.error(str(ex))
                return
            st.success("Password changed. Your other sessions have been logged out.")
