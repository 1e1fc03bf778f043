"""The Streamlit process's memory after a browser has drawn the overview three times."""
from __future__ import annotations

import secrets
import time
from datetime import datetime

import psutil
import sqlalchemy as sa

from bench.common import measured
from data import auth
from scripts.browser import chromium, log_in, streamlit_app, wait_for_overview


MEMORY_BEGIN, MEMORY_END = "<!-- memory:begin -->", "<!-- memory:end -->"


def bench_app_memory(url: str) -> int:
    """Returns the streamlit process RSS after a browser has drawn the overview three times."""
    user = "bench-memory"   # not the alerts bench's owner "bench": nobody resets their own password
    password = auth.generate_password(user)
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.begin() as conn:
        if auth.fetch_user(conn, user) is None:
            auth.create_user(conn, user, password, "viewer", actor="bench")
        else:
            auth.reset_password(conn, user, password, actor="bench")
    eng.dispose()
    env = {"DATABASE_URL": url, "AUTH_COOKIE_KEY": secrets.token_urlsafe(32)}
    with streamlit_app(env) as (base, proc), chromium() as browser:
        for _ in range(3):
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(base + "/", wait_until="domcontentloaded")
            log_in(page, user, password)
            wait_for_overview(page)
            page.close()
        time.sleep(1)
        return psutil.Process(proc.pid).memory_info().rss


def memory_section(sizes: list[int], memory: dict, started: datetime) -> str:
    lines = [MEMORY_BEGIN, "## Streamlit process memory after drawing the overview three times", "",
             measured(started) + " One chromium logs in and draws the overview three times; then the app "
             "process's RSS.", "", "| order lines | RSS |", "|---:|---:|"]
    lines += [f"| {n:,} | {memory[n] / 2**20:,.0f} MiB |" for n in sizes if n in memory]
    done = [n for n in sizes if n in memory]
    if len(done) > 1:
        a, b = done[0], done[-1]
        ratio = memory[b] / memory[a]
        lines += ["", f"{b:,} vs {a:,} lines: {ratio:.2f}× (target: flat, ≤ 1.2×) " + ("✅" if ratio <= 1.2 else "❌")]
    return "\n".join(lines + [MEMORY_END]) + "\n"
