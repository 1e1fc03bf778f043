"""Start the app on a free port and drive Debian's chromium: shared by tests, bench, screenshots."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Returns once url answers 200; raises if proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f}s")


@contextlib.contextmanager
def streamlit_app(env: dict[str, str], log_path: Path | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Runs `streamlit run app.py` on a free loopback port; yields (base URL, process)."""
    port = free_port()
    log = open(log_path, "w") if log_path else open(os.devnull, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        env={**os.environ, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def chromium():
    """Yields a Playwright Browser on Debian's chromium (never a downloaded one)."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError("Debian's chromium is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_idle(page, timeout_ms: int) -> None:
    """Waits until Streamlit is not running the script (its status widget is hidden)."""
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=timeout_ms)


SIGNED_IN = "Signed in as"


def log_in(page, username: str, password: str, *, wait: bool = True, expect: str = SIGNED_IN,
           timeout_ms: int = 90_000) -> None:
    """Fills the login form and submits it; with wait, returns once the text `expect` shows (the
    user is signed in, or a refusal's message).

    A rerun right after the page loads (the cookie component's first load triggers one) can
    redraw the form between filling it and clicking, and the click is lost: the form is filled
    only once the app is idle, and filled again if it is still there after a while."""
    for attempt in range(3):
        page.get_by_label("Username").wait_for(timeout=timeout_ms)
        wait_idle(page, timeout_ms)
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Log in").click()
        if not wait:
            return
        try:
            page.get_by_text(expect).first.wait_for(timeout=timeout_ms // 3)
            return
        except PlaywrightTimeout:
            if expect == SIGNED_IN and not page.get_by_label("Username").count():   # signed in, still drawing
                page.get_by_text(expect).first.wait_for(timeout=timeout_ms)
                return
    page.screenshot(path=str(ROOT / "artifacts" / "login_failed.png"), full_page=True)
    raise AssertionError(f"logging in as {username}: no {expect!r} after 3 tries (artifacts/login_failed.png)")


def wait_for_overview(page, timeout_ms: int = 90_000) -> None:
    """Waits until the overview's ten KPI cards and its top tables are drawn."""
    page.get_by_test_id("stMetric").first.wait_for(timeout=timeout_ms)
    page.wait_for_function("document.querySelectorAll('[data-testid=stMetric]').length >= 10", timeout=timeout_ms)
    page.get_by_text("Top 10 vendors").wait_for(timeout=timeout_ms)
