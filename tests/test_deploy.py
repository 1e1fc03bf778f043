"""The deploy files agree with the code: docker-compose.yml's settings exist, its secrets are
required and listed in .env.example, and the image runs its health check as a non-root user.
(No Docker daemon runs here; the files' schema was checked with `docker-compose config`.)"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import pytest
import sqlalchemy as sa
import yaml

from analytics.query import run_query
from data.db import analyst_url, embedded_server, make_analyst_engine
from data.errors import analyst_connect_failure
from data.settings import ENV_VARS, load_settings
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
KNOWN = {name for name, _, _ in ENV_VARS}
COMPOSE_ONLY = {"SEED_DEMO_DATA"}     # read by the migrate service's shell, not by the app


def test_compose_runs_postgres_the_app_the_scheduler_and_a_mail_catcher_from_one_image():
    assert set(SERVICES) == {"postgres", "migrate", "app", "scheduler", "mailpit"}
    for name in ("migrate", "app", "scheduler"):
        assert SERVICES[name]["build"] == "." and SERVICES[name]["image"] == "marketplace-bi:latest", name
    assert SERVICES["scheduler"]["command"] == ["python", "-m", "reports.scheduler"]
    for name in ("app", "scheduler"):
        assert SERVICES[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert "exports:/exports" in SERVICES[name]["volumes"]
        assert SERVICES[name]["environment"]["SMTP_HOST"] == "${SMTP_HOST:-mailpit}"
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pgdata:/var/lib/postgresql" in SERVICES["postgres"]["volumes"]   # PostgreSQL 18's layout
    assert set(COMPOSE["volumes"]) == {"pgdata", "exports", "mail"}


def test_every_setting_compose_passes_is_one_the_app_reads():
    for name in ("migrate", "app", "scheduler"):
        unknown = set(SERVICES[name]["environment"]) - KNOWN - COMPOSE_ONLY
        assert not unknown, f"{name}: {unknown}"


def test_secrets_are_required_and_listed_in_the_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == {"POSTGRES_PASSWORD", "ANALYST_DB_PASSWORD", "AUTH_COOKIE_KEY"}
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert required <= set(example)
    assert len(example["AUTH_COOKIE_KEY"]) >= 32
    for service in SERVICES.values():
        for key, value in service.get("environment", {}).items():
            if key.endswith(("PASSWORD", "KEY")):
                assert value.startswith("${"), f"{key} is written into the compose file"
    for ignore in (".gitignore", ".dockerignore"):
        assert ".env" in (ROOT / ignore).read_text().split(), ignore


def test_the_image_runs_as_a_user_with_its_dependencies_cached_and_a_health_check():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0].startswith("FROM python:3.11-slim")
    copy_reqs = lines.index("COPY requirements.txt .")
    install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install -r requirements.txt"))
    copy_all = lines.index("COPY --chown=app:app . .")
    assert copy_reqs < install < copy_all, "dependencies are a layer of their own, before the code"
    assert "USER app" in lines
    health = next(line for line in lines if line.startswith("HEALTHCHECK"))
    assert '"python", "-m", "scripts.healthcheck"' in health
    assert (ROOT / "scripts" / "healthcheck.py").exists()


def test_migrate_and_the_sql_pages_role_work_on_a_server_that_checks_passwords(tmp_path_factory, monkeypatch):
    """Compose's setup without Docker: a PostgreSQL that wants a password from everyone (the
    official image does), its owner `mbi` as POSTGRES_USER makes it, and a `postgresql://` URL.
    Migrate gives the analysts' role ANALYST_DB_PASSWORD; the SQL runner logs in with it."""
    server = embedded_server(tmp_path_factory.mktemp("pgpw") / "data", cleanup_mode="delete")
    host = server.get_postmaster_info().socket_path.parent
    admin = sa.create_engine(f"postgresql+psycopg://postgres@/postgres?host={host}",
                             isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE ROLE mbi LOGIN SUPERUSER PASSWORD 'compose-db-secret'"))
        conn.execute(sa.text("CREATE DATABASE mbi OWNER mbi"))
        hba = conn.execute(sa.text("SHOW hba_file")).scalar()
    with open(hba, "w") as f:     # the server's own user reads it; root writes it
        f.write("local all postgres trust\nlocal all all scram-sha-256\n")
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_reload_conf()"))

    url = f"postgresql://mbi:compose-db-secret@/mbi?host={host}"
    env = {**os.environ, "DATABASE_URL": url, "ANALYST_DB_PASSWORD": "compose-analyst-secret",
           "AUTH_COOKIE_KEY": "k" * 40}
    out = subprocess.run([sys.executable, "-m", "data", "migrate"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ("DATABASE_URL", "ANALYST_DB_PASSWORD", "AUTH_COOKIE_KEY"):
        monkeypatch.setenv(name, env[name])
    engine = make_analyst_engine(analyst_url(load_settings()))
    assert run_query("SELECT count(*) AS n FROM vendors", engine=engine).frame["n"].tolist() == [0]
    engine.dispose()

    monkeypatch.setenv("ANALYST_DB_PASSWORD", "wrong")
    engine = make_analyst_engine(analyst_url(load_settings()))
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed") as failed:
        run_query("SELECT 1", engine=engine)
    engine.dispose()
    # What the SQL page says then: the reason, and what an admin does about it.
    said = analyst_connect_failure(failed.value)
    assert 'password authentication failed for user "bi_analyst"' in said
    assert said.endswith("An admin sets ANALYST_DB_PASSWORD for the app and runs `python -m data migrate`, "
                         "which gives the role that password")
    admin.dispose()


def test_the_app_listens_on_loopback_unless_a_container_says_otherwise():
    assert tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["address"] == "127.0.0.1"
    assert "--server.address 0.0.0.0" in (ROOT / "Dockerfile").read_text()
    command = SERVICES["app"]["command"]
    assert command[command.index("--server.address") + 1] == "0.0.0.0"
