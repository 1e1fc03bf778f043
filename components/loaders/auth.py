"""The auth gate's reads and writes: sessions and login attempts."""
from __future__ import annotations

from datetime import datetime

from components.loaders import write
from data import auth
from data.audit import record


def load_session_user(sid: str) -> auth.User | None:
    """Returns the live session's user with the role as stored now (None: not live). Commits its
    last-seen time."""
    with write() as conn:
        return auth.resolve_session(conn, sid)


def login(username: str, password: str, *, client_addr: str, policy: auth.LockoutPolicy, session_days: int,
          user_agent: str) -> tuple[auth.LoginOutcome, tuple[str, datetime] | None]:
    """Checks a login and records it; returns (outcome, (session id, expiry) of the session it
    started, or None). The attempt is committed whatever the outcome."""
    with write() as conn:
        result = auth.attempt_login(conn, username, password, client_addr=client_addr, policy=policy)
        if result.user is None:
            return result, None
        return result, auth.create_session(conn, result.user, days=session_days, client_addr=client_addr,
                                           user_agent=user_agent)


def end_session(sid: str, *, actor: str, client_addr: str) -> None:
    """Revokes the session (logout) and records it in the audit log."""
    with write() as conn:
        auth.revoke_session(conn, sid, "logout")
        record(conn, "logout", actor=actor, client_addr=client_addr)
