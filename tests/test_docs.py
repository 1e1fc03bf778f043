"""The project documents itself: the README's configuration table and the glossary stay in sync."""
from __future__ import annotations

from pathlib import Path

import pytest

from analytics.metrics import METRICS
from data.db import _start_failure_message
from data.settings import ENV_VARS, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", [n for n, _, _ in ENV_VARS])
def test_every_setting_is_in_the_readme(name):
    assert f"`{name}`" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("key", list(METRICS))
def test_every_metric_is_in_the_architecture_doc(key):
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert f"| `{key}` | {METRICS[key].label} |" in doc and METRICS[key].description in doc


def test_readme_has_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make run" in text and "make test" in text


@pytest.mark.parametrize("var,value,message", [
    ("APP_TIMEZONE", "Mars/Olympus", "APP_TIMEZONE='Mars/Olympus' is not a time zone name"),
    ("DEMO_ORDERS", "lots", "DEMO_ORDERS='lots' is not a whole number"),
    ("DEMO_ORDERS", "0", "must be greater than zero"),
    ("ANALYST_DB_ROLE", "x; DROP", "must be letters, digits and underscores"),
    ("CUSTOMER_SCORES_AT", "25:00", "CUSTOMER_SCORES_AT='25:00' is not a time of day; write HH:MM"),
    ("CUSTOMER_SCORES_AT", "2am", "CUSTOMER_SCORES_AT='2am' is not a time of day"),
    ("FORECASTS_AT", "3:5", "FORECASTS_AT='3:5' is not a time of day; write HH:MM"),
    ("FORECAST_TOP", "0", "FORECAST_TOP='0' must be greater than zero"),
    ("WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8, intranet", "WEBHOOK_ALLOWED_NETWORKS: 'intranet' is not a network"),
    ("EXPORT_WORKERS", "0", "EXPORT_WORKERS='0' must be greater than zero"),
])
def test_bad_settings_name_the_variable(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings()


@pytest.mark.parametrize("log,hint", [
    ("FATAL:  could not write lock file \"postmaster.pid\": No space left on device", "The disk is full"),
    ("FATAL:  lock file \"postmaster.pid\" already exists\nHINT:  Is another postmaster running", "Another PostgreSQL server holds"),
    ("FATAL:  could not create lock file: Permission denied", "cannot write"),
])
def test_embedded_start_failures_say_what_to_do(tmp_path, log, hint):
    (tmp_path / "log").write_text(log)
    msg = _start_failure_message(tmp_path, RuntimeError("pg_ctl failed"))
    assert hint in msg and "DATABASE_URL" in msg and str(tmp_path) in msg
