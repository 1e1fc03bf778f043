"""A real browser against a `make run`-style start: migrate, seed, scheduler, streamlit."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scripts.browser import ROOT, chromium, streamlit_app, wait_for_overview
from tests.conftest import create_database

ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def served_app(admin_url, empty_template):
    url = create_database(admin_url, "mbi_browser", template=empty_template)
    env = {"DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    for args in (["migrate"], ["seed", "--orders", "20000", "--if-empty", "--quiet"]):
        subprocess.run([sys.executable, "-m", "data", *args], env={**os.environ, **env}, cwd=ROOT,
                       check=True, timeout=300)
    subprocess.run([sys.executable, "-m", "reports.scheduler", "--once"], env={**os.environ, **env},
                   cwd=ROOT, check=True, timeout=300)
    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_app(env, ARTIFACTS / "streamlit.log") as (base, _):
        yield base


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_no_pages_folder():
    """Streamlit runs a `pages/` folder as a v1 multipage app, skipping app.py on deep links."""
    assert not (ROOT / "pages").exists(), "keep page files in views/ (docs/architecture.md says why)"


def test_overview_shows_kpi_cards(served_app, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 2200})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(served_app + "/", wait_until="domcontentloaded")
    wait_for_overview(page)
    assert page.get_by_text("Marketplace BI").first.is_visible(), "app.py's frame ran"
    labels = page.get_by_test_id("stMetricLabel").all_inner_texts()
    values = page.get_by_test_id("stMetricValue").all_inner_texts()
    for want in ("GMV", "Net revenue", "Orders", "AOV", "Active customers", "Conversion rate"):
        assert any(want in label for label in labels), labels
    assert all(v.strip() and v.strip() != "–" for v in values[:4]), values
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    assert not page.get_by_test_id("stException").count()
    assert not errors, errors
    page.close()
