"""Users, passwords, login lockout and server-side sessions, stored in schema app.

No Streamlit here: components/auth.py draws the login form and calls these functions. Every
function that depends on the time takes `now`, so tests control the clock.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import bcrypt
import jwt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from zxcvbn import zxcvbn

from data.audit import record
from data.settings import MIN_COOKIE_KEY_CHARS, SECRETS_FILE, Settings, SettingsError

ROLES = ("viewer", "analyst", "admin", "vendor")
# The marketplace's own people; a vendor user sees only the business of the vendors bound to them.
STAFF_ROLES = ("viewer", "analyst", "admin")
VENDOR = "vendor"
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
MIN_PASSWORD_CHARS = 10
# zxcvbn's score (0–4) a new password needs: 3 is "safely unguessable" (about 10^8 guesses),
# which common words with a year and a symbol ("Summer2024!") or repeats do not reach.
MIN_PASSWORD_SCORE = 3
# Words that make a password easy to guess here, besides the username.
SITE_WORDS = ("marketplace", "market", "bi", "analytics", "vendor")
BCRYPT_ROUNDS = 12
UNKNOWN_ADDRESSES = frozenset({"", "local"})
LOCAL = "local"   # loopback: never locked, or anyone on the host could lock everybody out


def client_address(peer: str | None, forwarded_for: str | None = None, trusted_proxies: int = 0) -> str:
    """Returns the client's address for lockout and the audit log.

    Without proxies it is the peer's. Each of trusted_proxies N reverse proxies appends the address
    it was reached from to X-Forwarded-For, so the N-th entry from the right is what the outermost
    one saw; entries further left are whatever the client wrote. Fewer entries than N (a request
    that bypassed the proxies) leave the peer's. Loopback, also IPv4-mapped (`::ffff:127.0.0.1`,
    how IPv4 arrives on an IPv6 socket), and an unknown peer are LOCAL; an IPv4-mapped address is
    written as IPv4."""
    address = peer
    if trusted_proxies > 0 and forwarded_for:
        hops = [h.strip() for h in forwarded_for.split(",")]
        if len(hops) >= trusted_proxies:
            address = hops[-trusted_proxies]
    address = (address or "").strip()[:100]
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address or LOCAL
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return LOCAL if ip.is_loopback else str(ip)


class AuthError(ValueError):
    """A user-management request cannot be done; the message says why."""


@dataclass(frozen=True)
class LoginOutcome:
    """What a login attempt came to: a user, a lock (until when), or a wrong username/password."""
    user: User | None = None
    locked_until: datetime | None = None
    message: str = ""


def _locked_message(until: datetime, now: datetime) -> str:
    minutes = max(1, -(-int((until - now).total_seconds()) // 60))
    return f"Too many failed login attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."


@dataclass(frozen=True)
class User:
    user_id: int
    username: str
    name: str
    email: str
    role: str
    # The vendors a vendor user is bound to (app.user_vendors), sorted; empty for the other roles.
    vendor_ids: tuple[int, ...] = ()

    @property
    def display_name(self) -> str:
        return self.name or self.username

    @property
    def is_vendor(self) -> bool:
        return self.role == VENDOR


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    max_failures_per_address: int = 20
    window: timedelta = timedelta(minutes=15)
    lock: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, s: Settings) -> LockoutPolicy:
        return cls(s.login_max_failures, s.login_max_failures_per_address,
                   timedelta(minutes=s.login_window_minutes), timedelta(minutes=s.login_lock_minutes))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- passwords -------------------------------------------------------------------------------

def hash_password(password: str) -> str:
    """Returns the bcrypt hash of password (a $2b$ string)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()


@functools.cache
def _dummy_hash() -> bytes:
    # Unknown usernames are checked against this, so a wrong username costs as long as a
    # wrong password and timing does not tell which usernames exist.
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=BCRYPT_ROUNDS))


def check_password(password: str, password_hash: str | None) -> bool:
    """Returns True when password matches; spends one bcrypt check whatever the input."""
    pw = password.encode()
    if password_hash is None or len(pw) > 72:
        bcrypt.checkpw(pw[:72], _dummy_hash())
        return False
    try:
        return bcrypt.checkpw(pw, password_hash.encode())
    except ValueError:
        return False


def password_problems(password: str, username: str = "") -> list[str]:
    """Returns what is wrong with a new password, as sentences; empty when it is acceptable."""
    problems = []
    if len(password) < MIN_PASSWORD_CHARS:
        problems.append(f"It must be at least {MIN_PASSWORD_CHARS} characters long.")
    if len(password.encode()) > 72:
        problems.append("It must be at most 72 bytes long (bcrypt ignores the rest).")
    if password != password.strip():
        problems.append("It must not start or end with a space.")
    if username and username.lower() in password.lower():
        problems.append("It must not contain the username.")
    if not problems:
        strength = zxcvbn(password, user_inputs=[username, *SITE_WORDS])
        if strength["score"] < MIN_PASSWORD_SCORE:
            advice = [strength["feedback"]["warning"], *strength["feedback"]["suggestions"]]
            problems.append(" ".join(["It is too easy to guess.", *(a for a in advice if a)]))
    return problems


def generate_password(username: str = "") -> str:
    """Returns a random password that passes password_problems for username."""
    while True:
        p = secrets.token_urlsafe(15)
        if not password_problems(p, username):
            return p


def normalise_username(username: str) -> str:
    """Returns the username as stored (trimmed, lower case); raises AuthError when malformed."""
    u = (username or "").strip().lower()
    if not USERNAME_RE.match(u):
        raise AuthError(f"Username {username!r} must be 2–64 characters: letters, digits and . _ @ - "
                        "(starting with a letter or digit).")
    return u


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"Role {role!r} is not one of {', '.join(ROLES)}.")
    return role


def _check_new_password(password: str, username: str) -> None:
    problems = password_problems(password, username)
    if problems:
        raise AuthError("The password is too weak: " + " ".join(problems))


# --- users -----------------------------------------------------------------------------------

def _user(row) -> User | None:
    """A User from a row of User's fields in order (user_id, username, name, email, role, vendor_ids):
    each query names them in its own text (vendor_ids as BOUND_VENDORS), so no SQL is assembled."""
    if not row:
        return None
    *fields, vendors = row
    return User(*fields, tuple(vendors or ()))


# The vendor ids bound to the user row `u`, as a sorted array (NULL when none).
BOUND_VENDORS = ("(SELECT array_agg(b.vendor_id ORDER BY b.vendor_id) FROM app.user_vendors b "
                  "WHERE b.user_id = u.user_id)")
# Whether the user named by {} (a bound parameter or a column) is a vendor user, enabled or not: what
# a vendor user may own, see and be sent is narrower than the staff's (dashboards, queries, schedules).
IS_VENDOR_USER = "EXISTS (SELECT 1 FROM app.users vu WHERE vu.username = {} AND vu.role = 'vendor')"


def fetch_user(conn: Connection, username: str) -> User | None:
    """Returns the enabled user called username, or None."""
    row = conn.execute(sa.text(f"SELECT user_id, username, name, email, role, {BOUND_VENDORS} FROM app.users u "
                               "WHERE username = :u AND disabled_at IS NULL"),
                       {"u": (username or "").strip().lower()}).first()
    return _user(row)


def fetch_users(conn: Connection) -> pd.DataFrame:
    """Returns (username, name, email, role, vendors (bound vendor ids, a list; empty but for vendor
    users), enabled, created_at, last_login, active_sessions) rows."""
    return pd.read_sql(sa.text(f"""
        SELECT u.username, u.name, u.email, u.role, COALESCE({BOUND_VENDORS}, '{{}}') AS vendors,
               u.disabled_at IS NULL AS enabled, u.created_at,
               (SELECT max(s.created_at) FROM app.sessions s WHERE s.user_id = u.user_id) AS last_login,
               (SELECT count(*) FROM app.sessions s WHERE s.user_id = u.user_id AND s.revoked_at IS NULL
                  AND s.expires_at > now()) AS active_sessions
        FROM app.users u ORDER BY u.username"""), conn)


def fetch_user_count(conn: Connection) -> int:
    return int(conn.execute(sa.text("SELECT count(*) FROM app.users")).scalar())


def create_user(conn: Connection, username: str, password: str, role: str, *, name: str = "",
                email: str = "", actor: str = "", client_addr: str = "", vendor_ids: tuple[int, ...] = ()) -> User:
    """Creates a user; raises AuthError for a taken or malformed username, role or weak password.
    A vendor user needs vendor_ids, which the caller binds in the same transaction
    (data.vendor_users.create_vendor_user); the other roles take none."""
    u = normalise_username(username)
    _check_role(role)
    if role == VENDOR and not vendor_ids:
        raise AuthError("A vendor user needs at least one vendor to see: bind one or more vendor ids.")
    if role != VENDOR and vendor_ids:
        raise AuthError(f"Only vendor users are bound to vendors; {role!r} sees the whole marketplace.")
    _check_new_password(password, u)
    row = conn.execute(sa.text("""
        INSERT INTO app.users (username, name, email, role, password_hash)
        VALUES (:u, :n, :e, :r, :h) ON CONFLICT (username) DO NOTHING
        RETURNING user_id, username, name, email, role, NULL::integer[]"""),
        {"u": u, "n": name.strip(), "e": email.strip(), "r": role, "h": hash_password(password)}).first()
    if row is None:
        raise AuthError(f"A user called {u!r} already exists.")
    record(conn, "user.create", actor=actor, target=u, detail={"role": role}, client_addr=client_addr)
    return _user(row)


def lock_user(conn: Connection, username: str):
    """Returns the user row to change, locked together with every enabled admin's row.

    Locking in user_id order means two admins changing each other at once queue instead of
    deadlocking, and the last-admin check below sees committed truth.
    """
    u = (username or "").strip().lower()
    conn.execute(sa.text("SELECT user_id FROM app.users WHERE username = :u OR (role = 'admin' AND disabled_at IS NULL) "
                         "ORDER BY user_id FOR UPDATE"), {"u": u})
    row = conn.execute(sa.text("SELECT user_id, username, role, disabled_at FROM app.users WHERE username = :u"),
                       {"u": u}).first()
    if row is None:
        raise AuthError(f"There is no user called {username!r}.")
    return row


def _other_enabled_admins(conn: Connection, user_id: int) -> int:
    return int(conn.execute(sa.text("SELECT count(*) FROM app.users WHERE role = 'admin' AND disabled_at IS NULL "
                                    "AND user_id <> :id"), {"id": user_id}).scalar())


def set_role(conn: Connection, username: str, role: str, *, actor: str = "", client_addr: str = "") -> None:
    """Changes a user's role (applies on their next page load); the last enabled admin stays admin.
    A vendor user stays a vendor user and a staff member never becomes one (a new user is made
    instead), so no one's access crosses between the marketplace's and a vendor's by a role change."""
    _check_role(role)
    t = lock_user(conn, username)
    if t.role == role:
        return
    if VENDOR in (t.role, role):
        raise AuthError(f"{t.username!r} is {'a vendor user' if t.role == VENDOR else 'on the marketplace staff'}: "
                        "vendor users and staff are separate accounts. Create a new user with the role you need.")
    if t.role == "admin" and t.disabled_at is None and not _other_enabled_admins(conn, t.user_id):
        raise AuthError(f"{t.username!r} is the only enabled admin; make someone else admin first.")
    conn.execute(sa.text("UPDATE app.users SET role = :r, updated_at = now() WHERE user_id = :id"),
                 {"r": role, "id": t.user_id})
    record(conn, "user.role", actor=actor, target=t.username, detail={"from": t.role, "to": role},
           client_addr=client_addr)


def set_enabled(conn: Connection, username: str, enabled: bool, *, actor: str = "", client_addr: str = "") -> None:
    """Enables or disables a user; disabling ends their sessions at once."""
    t = lock_user(conn, username)
    if enabled == (t.disabled_at is None):
        return
    if not enabled:
        if t.username == actor:
            raise AuthError("You cannot disable your own account.")
        if t.role == "admin" and not _other_enabled_admins(conn, t.user_id):
            raise AuthError(f"{t.username!r} is the only enabled admin; make someone else admin first.")
    conn.execute(sa.text("UPDATE app.users SET disabled_at = CASE WHEN :on THEN NULL ELSE now() END, "
                         "updated_at = now() WHERE user_id = :id"), {"on": enabled, "id": t.user_id})
    if not enabled:
        revoke_user_sessions(conn, t.user_id, "user disabled")
    record(conn, "user.enable" if enabled else "user.disable", actor=actor, target=t.username,
           client_addr=client_addr)


def reset_password(conn: Connection, username: str, new_password: str, *, actor: str = "",
                   client_addr: str = "") -> None:
    """Sets a user's password (an admin's reset); ends the user's sessions."""
    t = lock_user(conn, username)
    if t.username == actor:
        raise AuthError("Change your own password under My account (it asks for the current one).")
    _check_new_password(new_password, t.username)
    _store_password(conn, t.user_id, new_password)
    revoke_user_sessions(conn, t.user_id, "password reset")
    record(conn, "user.password_reset", actor=actor, target=t.username, client_addr=client_addr)


def change_own_password(conn: Connection, user: User, current: str, new: str, *, keep_session: str | None = None,
                        client_addr: str = "", now: datetime | None = None,
                        policy: LockoutPolicy = LockoutPolicy()) -> None:
    """Changes user's own password after checking the current one; ends their other sessions.

    A wrong current password counts as a failed login, so a stolen session cannot guess it
    without limit. Raises AuthError (the caller commits anyway, to keep the count).
    """
    now = now or utcnow()
    _serialise_attempts(conn, user.username, client_addr)
    until = fetch_lockout_end(conn, user.username, client_addr, now, policy)
    if until is not None:
        raise AuthError(_locked_message(until, now))
    row = conn.execute(sa.text("SELECT password_hash FROM app.users WHERE user_id = :id FOR UPDATE"),
                       {"id": user.user_id}).first()
    if row is None or not check_password(current, row.password_hash):
        _record_attempt(conn, user.username, client_addr, now, False)
        record(conn, "account.password_change_failed", actor=user.username, target=user.username,
               client_addr=client_addr, at=now)
        raise AuthError("The current password is not correct.")
    if new == current:
        raise AuthError("The new password must differ from the current one.")
    _check_new_password(new, user.username)
    _store_password(conn, user.user_id, new)
    revoke_user_sessions(conn, user.user_id, "password changed", except_sid=keep_session)
    record(conn, "account.password_change", actor=user.username, target=user.username, client_addr=client_addr)


def _store_password(conn: Connection, user_id: int, password: str) -> None:
    conn.execute(sa.text("UPDATE app.users SET password_hash = :h, password_changed_at = now(), updated_at = now() "
                         "WHERE user_id = :id"), {"h": hash_password(password), "id": user_id})


# --- login and lockout -----------------------------------------------------------------------

def lockout_until(failures: list[datetime], now: datetime, max_failures: int, window: timedelta,
                  lock: timedelta) -> datetime | None:
    """Returns when the lock caused by failures ends, or None when not locked at now.

    A lock starts at the failure that makes max_failures within window, and lasts lock.
    """
    times = sorted(failures)
    until = None
    for i in range(max_failures - 1, len(times)):
        if times[i] - times[i - max_failures + 1] < window:
            until = times[i] + lock
    return until if until is not None and until > now else None


def fetch_lockout_end(conn: Connection, username: str, client_addr: str, now: datetime,
                      policy: LockoutPolicy) -> datetime | None:
    """Returns when the lock on this username or address ends, or None."""
    since = now - policy.window - policy.lock
    # A username's count starts again after its last successful login; an address's does not,
    # or one valid account would let an address guess other users' passwords forever.
    by_user = conn.execute(sa.text("""
        SELECT at FROM app.login_attempts
        WHERE username = :u AND NOT succeeded AND at > :since AND at <= :now
          AND at > coalesce((SELECT max(at) FROM app.login_attempts
                             WHERE username = :u AND succeeded AND at <= :now), '-infinity')"""),
        {"u": username, "since": since, "now": now}).scalars().all()
    # An unknown address (loopback, or every user behind one proxy) is not a client: locking
    # it would let one person lock everybody out.
    by_addr = [] if client_addr in UNKNOWN_ADDRESSES else conn.execute(sa.text(
        "SELECT at FROM app.login_attempts WHERE client_addr = :a AND NOT succeeded AND at > :since AND at <= :now"),
        {"a": client_addr, "since": since, "now": now}).scalars().all()
    ends = [t for t in (lockout_until(by_user, now, policy.max_failures, policy.window, policy.lock),
                        lockout_until(by_addr, now, policy.max_failures_per_address, policy.window, policy.lock))
            if t is not None]
    return max(ends) if ends else None


def _serialise_attempts(conn: Connection, username: str, client_addr: str) -> None:
    # Parallel guesses for one username or from one address queue here, so they cannot all
    # pass the lockout check before any of them is recorded. Address first, always.
    if client_addr not in UNKNOWN_ADDRESSES:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('login-addr:' || :a))"), {"a": client_addr})
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('login-user:' || :u))"), {"u": username})


def _record_attempt(conn: Connection, username: str, client_addr: str, now: datetime, ok: bool) -> None:
    conn.execute(sa.text("INSERT INTO app.login_attempts (at, username, client_addr, succeeded) VALUES (:t, :u, :a, :ok)"),
                 {"t": now, "u": username, "a": client_addr, "ok": ok})


def prune_login_attempts(conn: Connection, *, keep: timedelta = timedelta(days=30)) -> int:
    """Deletes login attempts older than keep (far beyond any lockout window); returns how many."""
    return conn.execute(sa.text("DELETE FROM app.login_attempts WHERE at < now() - :keep"), {"keep": keep}).rowcount


def attempt_login(conn: Connection, username: str, password: str, *, client_addr: str, now: datetime | None = None,
                  policy: LockoutPolicy = LockoutPolicy()) -> LoginOutcome:
    """Checks a login and records it (attempt + audit row); the caller commits whatever the outcome.

    While a lock holds the password is not checked and the attempt does not count. The message
    is the same whether or not the username exists.
    """
    now = now or utcnow()
    typed = (username or "").strip().lower()[:200]
    _serialise_attempts(conn, typed, client_addr)
    until = fetch_lockout_end(conn, typed, client_addr, now, policy)
    if until is not None:
        record(conn, "login.locked", actor=typed, client_addr=client_addr, at=now,
               detail={"until": until.isoformat()})
        return LoginOutcome(locked_until=until, message=_locked_message(until, now))
    # FOR SHARE: a password reset committing meanwhile waits for this login (and then revokes
    # its session) instead of letting a session made with the old password survive.
    row = conn.execute(sa.text("SELECT user_id, username, name, email, role, password_hash, disabled_at "
                               "FROM app.users WHERE username = :u FOR SHARE"), {"u": typed}).first()
    ok = check_password(password or "", row.password_hash if row else None)
    reason = None if ok else ("wrong password" if row else "unknown username")
    if ok and row.disabled_at is not None:
        ok, reason = False, "user disabled"
    _record_attempt(conn, typed, client_addr, now, ok)
    record(conn, "login.success" if ok else "login.failure", actor=typed, client_addr=client_addr, at=now,
           detail={} if ok else {"reason": reason})
    if not ok:
        return LoginOutcome(message="Username or password is incorrect.")
    user = fetch_user(conn, row.username)
    if user.is_vendor:
        record(conn, "vendor.login", actor=typed, client_addr=client_addr, at=now,
               detail={"vendor_ids": list(user.vendor_ids)})
    return LoginOutcome(user=user)


# --- sessions --------------------------------------------------------------------------------

def _hash_sid(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def create_session(conn: Connection, user: User, *, days: int, client_addr: str = "", user_agent: str = "",
                   now: datetime | None = None) -> tuple[str, datetime]:
    """Starts a server-side session; returns (session id for the cookie, expiry)."""
    now = now or utcnow()
    sid = secrets.token_urlsafe(32)
    expires = now + timedelta(days=days)
    conn.execute(sa.text("""INSERT INTO app.sessions (session_hash, user_id, created_at, last_seen_at, expires_at,
                                                       client_addr, user_agent)
                            VALUES (:h, :u, :t, :t, :e, :a, :ua)"""),
                 {"h": _hash_sid(sid), "u": user.user_id, "t": now, "e": expires, "a": client_addr,
                  "ua": user_agent[:500]})
    return sid, expires


def resolve_session(conn: Connection, sid: str, *, now: datetime | None = None) -> User | None:
    """Returns the session's user with the role as stored now, or None when the session is not live."""
    now = now or utcnow()
    # Runs on every page load: it reads, and writes last_seen_at at most once a minute, so
    # clicking through pages does not turn into a row update per click.
    row = conn.execute(sa.text(f"""
        WITH live AS (
            SELECT s.session_hash, s.last_seen_at, u.user_id, u.username, u.name, u.email, u.role,
                   {BOUND_VENDORS} AS vendor_ids
            FROM app.sessions s JOIN app.users u ON u.user_id = s.user_id
            WHERE s.session_hash = :h AND s.revoked_at IS NULL AND s.expires_at > :now AND u.disabled_at IS NULL),
        touched AS (
            UPDATE app.sessions s SET last_seen_at = :now FROM live
            WHERE s.session_hash = live.session_hash AND live.last_seen_at < :now - interval '1 minute')
        SELECT user_id, username, name, email, role, vendor_ids FROM live"""),
                       {"h": _hash_sid(sid), "now": now}).first()
    return _user(row)


def revoke_session(conn: Connection, sid: str, why: str) -> None:
    conn.execute(sa.text("UPDATE app.sessions SET revoked_at = now(), revoked_why = :w "
                         "WHERE session_hash = :h AND revoked_at IS NULL"), {"h": _hash_sid(sid), "w": why})


def revoke_user_sessions(conn: Connection, user_id: int, why: str, *, except_sid: str | None = None) -> int:
    """Ends all of a user's live sessions (but except_sid); returns how many."""
    return conn.execute(sa.text("UPDATE app.sessions SET revoked_at = now(), revoked_why = :w "
                                "WHERE user_id = :u AND revoked_at IS NULL AND session_hash <> :keep"),
                        {"u": user_id, "w": why, "keep": _hash_sid(except_sid) if except_sid else ""}).rowcount


# --- cookies ---------------------------------------------------------------------------------

def encode_cookie(sid: str, username: str, key: str, expires: datetime) -> str:
    """Returns the signed cookie value (an HS256 JWT) carrying the session id."""
    return jwt.encode({"sid": sid, "sub": username, "exp": int(expires.timestamp())}, key, algorithm="HS256")


def decode_cookie(token: str, key: str, *, now: datetime | None = None) -> str | None:
    """Returns the session id in a cookie signed with key and not expired, else None."""
    now = now or utcnow()
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False,
                                                                       "require": ["sid", "exp"]})
    except jwt.InvalidTokenError:
        return None
    if not isinstance(claims.get("sid"), str) or claims["exp"] <= now.timestamp():
        return None
    return claims["sid"]


# A cookie key containing one of these was copied from an example (.env.example's among them), and
# one of fewer different characters was typed by hand, not generated.
PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "replace", "example", "placeholder", "your-", "secret-key")
MIN_COOKIE_KEY_DISTINCT = 10


def resolve_cookie_key(s: Settings) -> str:
    """Returns the cookie signing key; in demo mode a missing one is generated into DATA_DIR.

    Raises SettingsError outside demo mode when the key is missing, and always when it is short or
    looks like a placeholder.
    """
    how = (f"Set AUTH_COOKIE_KEY to {MIN_COOKIE_KEY_CHARS} or more random characters, in the environment or "
           f"as AUTH_COOKIE_KEY = \"…\" in {SECRETS_FILE.relative_to(SECRETS_FILE.parent.parent)}; e.g. "
           "python -c 'import secrets; print(secrets.token_urlsafe(32))'.")
    if s.cookie_key:
        if len(s.cookie_key) < MIN_COOKIE_KEY_CHARS:
            raise SettingsError(f"AUTH_COOKIE_KEY is {len(s.cookie_key)} characters; it must be at least "
                                f"{MIN_COOKIE_KEY_CHARS}. {how}")
        placeholder = next((w for w in PLACEHOLDER_WORDS if w in s.cookie_key.lower()), None)
        if placeholder or len(set(s.cookie_key)) < MIN_COOKIE_KEY_DISTINCT:
            why = f"it contains {placeholder!r}" if placeholder else \
                f"it has only {len(set(s.cookie_key))} different characters"
            raise SettingsError(f"AUTH_COOKIE_KEY looks like a placeholder ({why}): whoever knows it can sign in as "
                                f"anyone. {how}")
        return s.cookie_key
    if not s.demo_mode:
        raise SettingsError(f"AUTH_COOKIE_KEY is not set, and the app refuses to sign logins without it. {how}")
    return _demo_cookie_key(s.data_dir / "cookie_key")


def _demo_cookie_key(path: Path) -> str:
    if path.exists():
        key = path.read_text().strip()
        if len(key) >= MIN_COOKIE_KEY_CHARS:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key)
    tmp.chmod(0o600)
    tmp.replace(path)
    return key
