"""Users, passwords, lockout, sessions and cookies (data/auth.py) on a real PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import jwt
import pandas as pd
import pytest
import sqlalchemy as sa

from data import auth
from data.audit import fetch_audit
from data.settings import SettingsError, load_settings
from reports.exporters import neutralise, to_csv
from tests.conftest import APP_BCRYPT_ROUNDS, ROOT

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
POLICY = auth.LockoutPolicy(max_failures=5, max_failures_per_address=8, window=15 * MIN, lock=15 * MIN)
PW = "Correct-horse-42"


def _at(*minutes: float) -> list[datetime]:
    return [T0 + m * MIN for m in minutes]


@pytest.mark.parametrize("failures,now,locked_until", [
    (_at(0, 1, 2, 3), T0 + 4 * MIN, None),                        # four failures: not locked
    (_at(0, 1, 2, 3, 4), T0 + 5 * MIN, T0 + 19 * MIN),             # fifth within 15 min locks
    (_at(0, 1, 2, 3, 4), T0 + 19 * MIN, None),                     # and the lock expires by itself
    (_at(0, 1, 2, 3, 4), T0 + 18.9 * MIN, T0 + 19 * MIN),
    (_at(0, 4, 8, 12, 16), T0 + 17 * MIN, None),                   # spread over 16 min: never 5 in 15
    (_at(0, 4, 8, 12, 14.9), T0 + 15 * MIN, T0 + 29.9 * MIN),      # just inside the window
    (_at(0, 1, 2, 3, 4, 30, 31, 32, 33), T0 + 34 * MIN, None),     # old lock over, 4 new: free
    (_at(0, 1, 2, 3, 4, 30, 31, 32, 33, 34), T0 + 35 * MIN, T0 + 49 * MIN),
    ([], T0, None),
])
def test_lockout_until(failures, now, locked_until):
    assert auth.lockout_until(failures, now, 5, 15 * MIN, 15 * MIN) == locked_until


@pytest.mark.parametrize("password,username,ok", [
    ("Correct-horse-42", "ann", True),
    ("correct horse battery staple", "ann", True),   # 16+ characters: a passphrase is enough
    ("short1A!", "ann", False),                       # too short
    ("alllowercaseletters", "ann", True),             # long passphrase
    ("lowercase12", "ann", False),                    # two classes, under 16
    ("Ann-is-great-2026", "ann", False),              # contains the username
    (" Leading-space-1", "ann", False),               # the login form strips spaces
    ("Password123", "ann", False),                    # common, whatever the case
    ("Tulip-garden-9", "ann", True),
    ("password123", "ann", False),                    # common, two classes
    ("Å" * 40, "ann", False),                         # 80 bytes: over bcrypt's 72
    ("aaaaaaaaaaaaaaaa", "ann", False),               # a repeat (issue 20: these three were accepted)
    ("Password12", "ann", False),                     # common
    ("Summer2024!", "ann", False),                    # a season, a year, a symbol
    ("Marketplace-2026", "ann", False),               # the site's name and a year
])
def test_password_rules(password, username, ok):
    assert (auth.password_problems(password, username) == []) == ok, auth.password_problems(password, username)


@pytest.mark.parametrize("typed,stored", [("Ann", "ann"), ("  bob.smith@example.com ", "bob.smith@example.com"),
                                          ("a", None), ("-ann", None), ("ann smith", None), ("", None)])
def test_usernames(typed, stored):
    if stored is None:
        with pytest.raises(auth.AuthError, match="Username"):
            auth.normalise_username(typed)
    else:
        assert auth.normalise_username(typed) == stored


def test_generated_passwords_pass_the_rules():
    for name in ("", "ab", "x1") * 10:
        assert not auth.password_problems(auth.generate_password(name), name)


@pytest.fixture
def db(empty_engine):
    with empty_engine.begin() as conn:
        auth.create_user(conn, "ann", PW, "analyst", name="Ann")
        auth.create_user(conn, "root", PW, "admin")
    return empty_engine


def _attempt(db, username, password=PW, *, now=T0, addr="10.0.0.1", policy=POLICY) -> auth.LoginOutcome:
    with db.begin() as conn:
        return auth.attempt_login(conn, username, password, client_addr=addr, now=now, policy=policy)


def _login(db, username, password=PW, **kw) -> auth.User | None:
    outcome = _attempt(db, username, password, **kw)
    assert outcome.locked_until is None, outcome.message
    return outcome.user


def test_password_stored_as_bcrypt_only(db, monkeypatch):
    monkeypatch.setattr(auth, "BCRYPT_ROUNDS", APP_BCRYPT_ROUNDS)   # the app's cost, not the tests' (conftest)
    with db.begin() as conn:
        auth.create_user(conn, "cost", PW, "viewer")
    with db.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM app.users WHERE username = 'cost'")).scalar()
    assert APP_BCRYPT_ROUNDS == 12 and stored.startswith("$2b$12$") and PW not in stored
    assert auth.check_password(PW, stored) and not auth.check_password(PW + "x", stored)


def test_login_right_wrong_and_unknown(db):
    assert _login(db, "ANN ").username == "ann"          # typed names are trimmed and lower-cased
    assert _login(db, "ann", "Wrong-password-1") is None
    assert _login(db, "nobody") is None
    with db.connect() as conn:
        rows = fetch_audit(conn, actions=["login.success", "login.failure"])
    assert sorted(zip(rows["actor"], rows["action"])) == [
        ("ann", "login.failure"), ("ann", "login.success"), ("nobody", "login.failure")]
    assert set(rows["client_addr"]) == {"10.0.0.1"}


@pytest.mark.parametrize("username", ["ann", "nobody"])
def test_lockout_engages_and_expires_the_same_for_known_and_unknown_names(db, username):
    for i in range(5):
        wrong = _attempt(db, username, "Wrong-password-1", now=T0 + i * MIN)
        assert wrong.user is None and wrong.message == "Username or password is incorrect."
    locked = _attempt(db, username, PW, now=T0 + 5 * MIN)       # even the right password is refused
    assert locked.user is None and locked.locked_until == T0 + 19 * MIN
    assert locked.message == "Too many failed login attempts. Try again in 14 minutes."
    # Refused attempts are not counted, so hammering does not extend the lock.
    assert _attempt(db, username, "Wrong-password-1", now=T0 + 18 * MIN).locked_until == T0 + 19 * MIN
    expected = None if username == "nobody" else "ann"
    got = _login(db, username, PW, now=T0 + 19 * MIN)
    assert (got.username if got else None) == expected
    with db.connect() as conn:
        assert len(fetch_audit(conn, actions=["login.locked"])) == 2


def test_success_resets_the_username_count_but_not_the_address_count(db):
    for i in range(4):
        _login(db, "ann", "Wrong-password-1", now=T0 + i * MIN)
    assert _login(db, "ann", now=T0 + 4 * MIN)
    for i in range(4):
        assert _login(db, "ann", "Wrong-password-1", now=T0 + (5 + i) * MIN) is None
    # Eight failures from one address (policy: 8) lock it for every username, even valid ones.
    assert _attempt(db, "root", now=T0 + 10 * MIN).locked_until == T0 + 23 * MIN   # the eighth failure was at minute 8
    assert _login(db, "root", now=T0 + 10 * MIN, addr="10.0.0.2").username == "root"


def test_unknown_address_is_never_locked(db):
    # On loopback (or behind an untrusted proxy) every client is "local": locking that address
    # would let one person lock everybody out, so only usernames count there.
    for i in range(12):
        _login(db, f"guess{i}", "Wrong-password-1", addr="local")
    assert _login(db, "ann", addr="local").username == "ann"


@pytest.mark.parametrize("peer,forwarded,proxies,address", [
    ("::ffff:127.0.0.1", None, 0, "local"),            # IPv4 loopback on an IPv6 socket (issue 20)
    ("127.0.0.1", None, 0, "local"),
    ("::1", None, 0, "local"),
    (None, None, 0, "local"),
    ("::ffff:10.1.2.3", None, 0, "10.1.2.3"),
    ("203.0.113.5", "1.2.3.4", 0, "203.0.113.5"),        # no proxies: the header is the client's own text
    ("::ffff:127.0.0.1", "6.6.6.6, 198.51.100.7", 1, "198.51.100.7"),   # the client chose 6.6.6.6
    ("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.9", 2, "198.51.100.7"),
    ("10.0.0.2", "198.51.100.7", 2, "10.0.0.2"),         # fewer hops than proxies: it bypassed them
    ("10.0.0.2", "::ffff:127.0.0.1", 1, "local"),
])
def test_the_client_address_is_what_the_outermost_trusted_proxy_saw(peer, forwarded, proxies, address):
    assert auth.client_address(peer, forwarded, proxies) == address


def test_failures_from_ipv4_mapped_loopback_lock_nobody_out(db):
    addr = auth.client_address("::ffff:127.0.0.1")
    for i in range(12):
        _login(db, f"guess{i}", "Wrong-password-1", addr=addr)
    assert _login(db, "ann", addr=addr).username == "ann"


def test_trusted_proxies_setting(monkeypatch):
    assert _settings(monkeypatch, TRUSTED_PROXIES="2").trusted_proxies == 2
    assert _settings(monkeypatch, TRUSTED_PROXIES="0", TRUST_FORWARDED_FOR="true").trusted_proxies == 1   # older name
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES='-1' must be at least 0"):
        _settings(monkeypatch, TRUSTED_PROXIES="-1")
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES='one' is not a whole number"):
        _settings(monkeypatch, TRUSTED_PROXIES="one")


def test_wrong_current_password_in_my_account_counts_as_a_failed_login(db):
    with db.connect() as conn:
        ann = auth.fetch_user(conn, "ann")
    for i in range(5):
        with db.begin() as conn, pytest.raises(auth.AuthError, match="current password is not correct"):
            try:
                auth.change_own_password(conn, ann, "Guess-number-1", "Brand-new-pass-1", client_addr="10.0.0.9",
                                         now=T0 + i * MIN, policy=POLICY)
            finally:
                conn.commit()  # the app commits the refusal, keeping the count
    with db.begin() as conn, pytest.raises(auth.AuthError, match="Too many failed login attempts"):
        auth.change_own_password(conn, ann, PW, "Brand-new-pass-1", now=T0 + 5 * MIN, policy=POLICY)
    assert _attempt(db, "ann", now=T0 + 6 * MIN).locked_until == T0 + 19 * MIN
    with db.connect() as conn:
        assert len(fetch_audit(conn, actions=["account.password_change_failed"])) == 5


def test_disabled_user_cannot_log_in_and_loses_sessions(db):
    with db.begin() as conn:
        user = auth.fetch_user(conn, "ann")
        sid, _ = auth.create_session(conn, user, days=1, now=T0)
        auth.set_enabled(conn, "ann", False, actor="root")
    with db.connect() as conn:
        assert auth.resolve_session(conn, sid, now=T0) is None
    assert _login(db, "ann") is None
    with db.connect() as conn:
        failure = fetch_audit(conn, actions=["login.failure"]).iloc[0]
    assert "user disabled" in failure["detail"]
    with db.begin() as conn:
        auth.set_enabled(conn, "ann", True, actor="root")
    assert _login(db, "ann", now=T0 + MIN).username == "ann"


def test_sessions_follow_role_changes_revocation_and_expiry(db):
    with db.begin() as conn:
        ann = auth.fetch_user(conn, "ann")
        sid, expires = auth.create_session(conn, ann, days=7, now=T0)
        other, _ = auth.create_session(conn, ann, days=7, now=T0)
    assert expires == T0 + timedelta(days=7)
    with db.begin() as conn:
        assert auth.resolve_session(conn, sid, now=T0).role == "analyst"
        auth.set_role(conn, "ann", "viewer", actor="root")
        assert auth.resolve_session(conn, sid, now=T0).role == "viewer"   # next page load sees it
        assert auth.resolve_session(conn, sid, now=T0 + timedelta(days=7)) is None
        auth.revoke_session(conn, sid, "logout")
        assert auth.resolve_session(conn, sid, now=T0) is None
        assert auth.resolve_session(conn, other, now=T0) is not None
        assert auth.resolve_session(conn, "made-up", now=T0) is None
        stored = conn.execute(sa.text("SELECT session_hash FROM app.sessions")).scalars().all()
    assert sid not in stored and other not in stored, "only hashes of session ids are stored"


def test_password_changes_end_other_sessions(db):
    with db.begin() as conn:
        ann = auth.fetch_user(conn, "ann")
        mine, _ = auth.create_session(conn, ann, days=1)
        elsewhere, _ = auth.create_session(conn, ann, days=1)
    with db.begin() as conn, pytest.raises(auth.AuthError, match="current password is not correct"):
        auth.change_own_password(conn, ann, "Wrong-password-1", "Brand-new-pass-1", keep_session=mine)
    with db.begin() as conn, pytest.raises(auth.AuthError, match="too weak"):
        auth.change_own_password(conn, ann, PW, "weak", keep_session=mine)
    with db.begin() as conn:
        auth.change_own_password(conn, ann, PW, "Brand-new-pass-1", keep_session=mine)
        assert auth.resolve_session(conn, mine) is not None
        assert auth.resolve_session(conn, elsewhere) is None
        auth.reset_password(conn, "ann", "Admin-chosen-pass-9", actor="root")
        assert auth.resolve_session(conn, mine) is None
    assert _login(db, "ann", "Admin-chosen-pass-9")


def test_user_changes_are_checked_and_audited(db):
    with db.begin() as conn:
        with pytest.raises(auth.AuthError, match="already exists"):
            auth.create_user(conn, "Ann", "Another-pass-77", "viewer")
    for bad, match in [(("bob", "Strong-pass-123", "owner"), "Role 'owner'"),
                       (("bob", "weak", "viewer"), "too weak"),
                       (("b b", "Strong-pass-123", "viewer"), "Username")]:
        with db.begin() as conn, pytest.raises(auth.AuthError, match=match):
            auth.create_user(conn, *bad)
    with db.begin() as conn:
        with pytest.raises(auth.AuthError, match="only enabled admin"):
            auth.set_role(conn, "root", "analyst", actor="root")
        with pytest.raises(auth.AuthError, match="your own account"):
            auth.set_enabled(conn, "root", False, actor="root")
        with pytest.raises(auth.AuthError, match="no user called"):
            auth.set_role(conn, "ghost", "viewer", actor="root")
        with pytest.raises(auth.AuthError, match="under My account"):
            auth.reset_password(conn, "root", "Another-pass-77", actor="root")
    with db.begin() as conn:
        auth.set_role(conn, "ann", "admin", actor="root")
        auth.set_role(conn, "root", "viewer", actor="ann")   # another admin exists now
        users = auth.fetch_users(conn)
        log = fetch_audit(conn, actions=["user.create", "user.role"])
    assert dict(zip(users["username"], users["role"])) == {"ann": "admin", "root": "viewer"}
    assert list(log["action"]) == ["user.role", "user.role", "user.create", "user.create"]
    assert list(log["target"][:2]) == ["root", "ann"]


KEY = "kq3-Zr8pW1vN7yT5mB0cX2aL9fH4jD6g"


@pytest.mark.parametrize("make,ok", [
    (lambda: auth.encode_cookie("sid-1", "ann", KEY, T0 + MIN), True),
    (lambda: auth.encode_cookie("sid-1", "ann", "another-key-" + "x" * 30, T0 + MIN), False),
    (lambda: auth.encode_cookie("sid-1", "ann", KEY, T0 - MIN), False),                       # expired
    (lambda: jwt.encode({"sid": "sid-1", "exp": int((T0 + MIN).timestamp())}, None, algorithm="none"), False),
    (lambda: auth.encode_cookie("sid-1", "ann", KEY, T0 + MIN)[:-2] + "xx", False),         # tampered
    (lambda: jwt.encode({"username": "ann", "exp_date": 9e9}, KEY, algorithm="HS256"), False),  # no sid
    (lambda: "not a token", False),
])
def test_cookie_signature_and_expiry(make, ok):
    assert auth.decode_cookie(make(), KEY, now=T0) == ("sid-1" if ok else None)


def _settings(monkeypatch, **env):
    for k in ("AUTH_COOKIE_KEY", "DEMO_MODE", "DATABASE_URL"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return load_settings()


def test_cookie_key_required_outside_demo_mode(monkeypatch, tmp_path):
    monkeypatch.setattr("data.settings.SECRETS_FILE", tmp_path / "secrets.toml")
    with pytest.raises(SettingsError, match="AUTH_COOKIE_KEY is not set.*secrets.toml"):
        auth.resolve_cookie_key(_settings(monkeypatch, DATABASE_URL="postgresql://x/y"))
    with pytest.raises(SettingsError, match="AUTH_COOKIE_KEY is 5 characters; it must be at least 32"):
        auth.resolve_cookie_key(_settings(monkeypatch, AUTH_COOKIE_KEY="short"))
    # .env.example's placeholder, and a key typed by hand (issue 20: both were accepted).
    example = next(line.split("=", 1)[1] for line in (ROOT / ".env.example").read_text().splitlines()
                   if line.startswith("AUTH_COOKIE_KEY="))
    with pytest.raises(SettingsError, match="looks like a placeholder \\(it contains 'change-me'\\)"):
        auth.resolve_cookie_key(_settings(monkeypatch, AUTH_COOKIE_KEY=example))
    with pytest.raises(SettingsError, match="looks like a placeholder \\(it has only 1 different characters\\)"):
        auth.resolve_cookie_key(_settings(monkeypatch, AUTH_COOKIE_KEY="x" * 40))
    (tmp_path / "secrets.toml").write_text(f'AUTH_COOKIE_KEY = "{KEY}"\n')
    assert auth.resolve_cookie_key(_settings(monkeypatch, DATABASE_URL="postgresql://x/y")) == KEY
    (tmp_path / "secrets.toml").write_text("AUTH_COOKIE_KEY = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        _settings(monkeypatch)
    (tmp_path / "secrets.toml").unlink()
    with pytest.raises(SettingsError, match="DEMO_MODE='maybe'"):
        _settings(monkeypatch, DEMO_MODE="maybe")
    with pytest.raises(SettingsError, match="TRUST_FORWARDED_FOR='sometimes' must be true or false"):
        _settings(monkeypatch, TRUST_FORWARDED_FOR="sometimes")


def test_demo_mode_generates_one_key_and_keeps_it(monkeypatch, tmp_path):
    monkeypatch.setattr("data.settings.SECRETS_FILE", tmp_path / "secrets.toml")
    s = _settings(monkeypatch, DATA_DIR=str(tmp_path))
    assert s.demo_mode
    key = auth.resolve_cookie_key(s)
    assert len(key) >= 32 and auth.resolve_cookie_key(s) == key
    assert oct((tmp_path / "cookie_key").stat().st_mode & 0o777) == "0o600"


def _cli(url: str, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data", *args], input=stdin, text=True, capture_output=True,
                          env={**os.environ, "DATABASE_URL": url, **env}, cwd=ROOT, timeout=120)


@pytest.mark.slow
def test_cli_create_user_and_demo_users(empty_engine):
    url = empty_engine.url.render_as_string(hide_password=False)
    r = _cli(url, "create-user", "Boss", "--role", "admin", "--password-stdin", stdin="Strong-pass-123\n")
    assert r.returncode == 0 and "created admin 'boss'" in r.stdout, r.stderr
    r = _cli(url, "create-user", "boss", "--role", "viewer", "--password-stdin", stdin="Strong-pass-123\n")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = _cli(url, "create-user", "weak", "--role", "viewer", "--password-stdin", stdin="abc\n")
    assert r.returncode == 1 and "too weak" in r.stderr
    r = _cli(url, "create-user", "x", "--role", "owner", "--password-stdin", stdin="Strong-pass-123\n")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    with empty_engine.connect() as conn:
        assert list(auth.fetch_users(conn)["username"]) == ["boss"]
    assert "not in demo mode" in _cli(url, "demo-users").stdout
    # Demo users are made only on a database without users.
    assert "users exist" in _cli(url, "demo-users", DEMO_MODE="true").stdout


def test_cli_demo_users_print_passwords_once(empty_engine):
    url = empty_engine.url.render_as_string(hide_password=False)
    first = _cli(url, "demo-users", DEMO_MODE="true")
    assert first.returncode == 0, first.stderr
    lines = {line.split()[0]: line.split()[-1] for line in first.stdout.splitlines() if "password" in line.split()}
    assert set(lines) == {"admin", "analyst"}
    for role, password in lines.items():
        assert _login(empty_engine, role, password).role == role
    second = _cli(url, "demo-users", DEMO_MODE="true")
    assert "no demo users created" in second.stdout and lines["admin"] not in second.stdout


def test_audit_filters(db):
    with db.begin() as conn:
        auth.set_role(conn, "ann", "viewer", actor="root")
    _login(db, "ann", "Wrong-password-1", now=T0)
    with db.connect() as conn:
        assert set(fetch_audit(conn, user="root")["action"]) == {"user.create", "user.role"}   # did, or was done to
        assert set(fetch_audit(conn, user="ann")["action"]) == {"user.create", "user.role", "login.failure"}
        assert list(fetch_audit(conn, actions=["login.failure"])["actor"]) == ["ann"]
        assert len(fetch_audit(conn, since=T0 - MIN, until=T0 + MIN)) == 1
        assert fetch_audit(conn, since=T0 + MIN, until=T0 + 2 * MIN).empty


def test_csv_export_neutralises_formulas():
    frame = pd.DataFrame({"actor": ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx", "ann", "a=b"],
                          "n": [-1, 2, 3, 4, 5, 6, 7]})
    out = neutralise(frame)
    assert list(out["actor"]) == ["'=HYPERLINK(\"x\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "ann", "a=b"]
    assert list(out["n"]) == [-1, 2, 3, 4, 5, 6, 7]          # real negative numbers stay numbers
    assert to_csv(frame).startswith("\ufeffactor,n".encode())


def test_resolving_a_session_writes_last_seen_at_most_once_a_minute(db):
    def seen(conn):
        return conn.execute(sa.text("SELECT last_seen_at FROM app.sessions")).scalar()
    with db.begin() as conn:
        sid, _ = auth.create_session(conn, auth.fetch_user(conn, "ann"), days=1, now=T0)
        assert auth.resolve_session(conn, sid, now=T0 + 30 * timedelta(seconds=1)).username == "ann"
        assert seen(conn) == T0
        assert auth.resolve_session(conn, sid, now=T0 + 2 * MIN).username == "ann"
        assert seen(conn) == T0 + 2 * MIN
