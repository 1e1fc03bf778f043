"""Fixtures: one real PostgreSQL per test session (embedded in a temp dir, or TEST_DATABASE_URL).

Databases made here:
  mbi_empty   migrated, no data: cloned per test by `empty_engine` (tests that write)
  mbi_test    migrated + seeded with a small deterministic marketplace and one user per role
              (username = role, password in tests/apptest.PASSWORDS; the vendor user sees the
              biggest vendor of the biggest category, data.vendor_users.fetch_demo_vendors):
              `engine` (read only)
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import shutil
import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from data import auth
from data.auth import create_user
from data.db import embedded_server, make_analyst_engine, normalise_url, recreate_database
from data.schema import ensure_analyst_role, migrate
from data.seed import seed
from data.settings import load_settings
from data.vendor_scope import ensure_vendor_group, vendor_password
from data.vendor_users import create_vendor_user, fetch_demo_vendors
from tests.servers import SmtpServer, WebhookServer

ROOT = Path(__file__).resolve().parent.parent

# Fixed so that every run sees the same data whatever today is.
SEED_END = date(2026, 11, 20)
SEED_LINES = 30_000
SEED = 7


# Passwords are hashed at bcrypt's lowest cost in the test process, as Rails' and Django's test
# settings do: a user made or a login checked costs 1 ms instead of 0.25 s (the alerts tests made
# four users per test). Hashes carry their cost, so the app checks them the same way;
# tests/test_auth.py checks that the app itself hashes at BCRYPT_ROUNDS.
APP_BCRYPT_ROUNDS = auth.BCRYPT_ROUNDS
auth.BCRYPT_ROUNDS = 4


# Tiers by what a test needs. `make test-fast`, the edit loop, runs the first two:
#   pure and database  Python alone, or a real PostgreSQL with SMTP and HTTP servers on loopback
#   app                Streamlit's AppTest over the database (tests/test_app_*.py, marked here)
#   browser            headless chromium against a running app (tests/test_browser.py, marked here)
#   slow               a database test over ten seconds on the 2-core machine (marked where written)
def pytest_collection_modifyitems(items):
    for item in items:
        name = item.path.name
        if name == "test_browser.py":
            item.add_marker(pytest.mark.browser)
        elif name.startswith("test_app_"):
            item.add_marker(pytest.mark.app)


def _admin_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url:
        return normalise_url(url)

    # Not under pytest's basetemp: a test session deletes all but the newest three basetemps, so
    # sessions started beside this one (another clone, a few tests re-run) deleted this server's
    # files under it. Registered before the server's own exit handler, so removed after it stops.
    base = Path(tempfile.mkdtemp(prefix="mbi-test-pg-"))
    atexit.register(shutil.rmtree, base, True)
    server = embedded_server(base / "data", cleanup_mode="delete")
    info = server.get_postmaster_info()
    socket_dir = info.socket_path.parent if info.socket_path else server.pgdata
    url = f"postgresql+psycopg://postgres@/postgres?host={socket_dir}"
    if os.environ.get("TEST_DURABLE") != "1":
        _non_durable(url)
    return url


def _non_durable(url: str) -> None:
    """A server thrown away after the session need not survive a crash of the machine: no fsync,
    no full page writes, commits not waiting for the WAL to reach the disk (PostgreSQL's manual,
    "Non-Durable Settings"). Tests create a database per test and commit often; on a machine
    whose disk is busy each of those waited for the disk. Set TEST_DURABLE=1 to keep the defaults."""
    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        for name in ("fsync", "full_page_writes", "synchronous_commit"):
            # ALTER SYSTEM takes no bound parameters; the names and value are fixed here.
            conn.exec_driver_sql(f"ALTER SYSTEM SET {name} = off")
        conn.exec_driver_sql("SELECT pg_reload_conf()")
    eng.dispose()


@pytest.fixture(scope="session")
def admin_url() -> str:
    return _admin_url()


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Creates (or recreates) database name, optionally from a template; returns its URL."""
    url = recreate_database(admin_url, name, template)
    if template:
        # A clone gets the tables but not the database's own privileges (pg_database.datacl):
        # set the analysts' role and the vendors' group up on it as a migration would.
        eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with eng.begin() as conn:
            ensure_analyst_role(conn, load_settings())
            ensure_vendor_group(conn)
        eng.dispose()
    return url


TEST_COOKIE_KEY = "test-cookie-key-0123456789-abcdefghijklmnop"


def vendor_settings():
    """The app's settings with the tests' cookie key, from which vendor roles' passwords derive."""
    return dataclasses.replace(load_settings(), cookie_key=TEST_COOKIE_KEY)


def vendor_role_engine(url, role: str) -> sa.engine.Engine:
    """An engine logged in as a vendor login role made with vendor_settings() (UTC, no pool)."""
    return sa.create_engine(make_url(str(url)).set(username=role, password=vendor_password(vendor_settings(), role)),
                            poolclass=sa.pool.NullPool, connect_args={"options": "-c timezone=UTC"})


def use_database(monkeypatch, url: str, **env: str) -> None:
    """Points the app's settings at url (and any extra env vars) for one test."""
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("AUTH_COOKIE_KEY", TEST_COOKIE_KEY)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


@pytest.fixture(scope="session")
def empty_template(admin_url) -> str:
    url = create_database(admin_url, "mbi_empty")
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    migrate(eng, load_settings())
    eng.dispose()
    return "mbi_empty"


@pytest.fixture(scope="session")
def database_url(admin_url, empty_template) -> str:
    """URL of the seeded read-only test database."""
    url = create_database(admin_url, "mbi_test", template=empty_template)
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"options": "-c timezone=UTC"})
    seed(eng, orders=SEED_LINES, seed=SEED, end=SEED_END, progress=False)
    from tests.apptest import PASSWORDS  # here, not at the top: tests.apptest imports this module
    settings = vendor_settings()
    with eng.begin() as conn:
        for role, password in PASSWORDS.items():
            if role == "vendor":
                (vendor_id, _), = fetch_demo_vendors(conn, 1)
                create_vendor_user(conn, role, password, [vendor_id], settings, name="Test vendor")
            else:
                create_user(conn, role, password, role, name=f"Test {role}")
    eng.dispose()
    return url


@pytest.fixture(scope="session")
def engine(database_url):
    eng = sa.create_engine(database_url, connect_args={"options": "-c timezone=UTC"})
    yield eng
    eng.dispose()


@contextlib.contextmanager
def clone(admin_url: str, template: str) -> Iterator[sa.engine.Engine]:
    """Gives an engine on a new database copied from template (a database no one is connected
    to), and drops the copy afterwards: a fixture's data made once, fresh for every test."""
    name = f"mbi_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name, template=template)
    eng = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    try:
        yield eng
    finally:
        eng.dispose()
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            # A database name is an identifier: quoted by the dialect, it cannot take a bound parameter.
            conn.execute(sa.text("DROP DATABASE IF EXISTS " + conn.dialect.identifier_preparer.quote(name)
                                 + " WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def empty_engine(admin_url, empty_template):
    """A fresh migrated database with no data, dropped after the test."""
    with clone(admin_url, empty_template) as eng:
        yield eng


@pytest.fixture(scope="module")
def analyst(database_url):
    """An engine of the analysts' login role on the seeded database, made as the app makes it."""
    url = make_url(database_url).set(username=load_settings().analyst_role)
    eng = make_analyst_engine(url.render_as_string(hide_password=False))
    yield eng
    eng.dispose()


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on loopback keeping the messages it receives."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def hook(monkeypatch):
    """A real HTTP server on loopback keeping the webhooks it receives; loopback is allowed for
    webhooks while it runs (WEBHOOK_ALLOWED_NETWORKS, also for the schedulers tests start)."""
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    server = WebhookServer().start()
    yield server
    server.stop()
