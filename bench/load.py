"""The load benchmark: 20 browser sessions at once on the overview and sales pages, against one
session alone, on the same app process (one chromium, one browser context per session, driven
with Playwright's async API). A render is the time from opening the page to its figures being
drawn (the overview's ten KPI cards and top tables; the sales page's breakdown and its charts).
The app process's memory (RSS, with children) is sampled throughout.
"""
from __future__ import annotations

import asyncio
import statistics
import threading
import time

import psutil
import sqlalchemy as sa

USER, PASSWORD = "loadtest", "Silver-meadow-2026-x"
SESSIONS = 20
ROUNDS = 2
SINGLE_REPS = 5


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


async def _ready_overview(page) -> None:
    await page.wait_for_function("document.querySelectorAll('[data-testid=stMetric]').length >= 10",
                                 timeout=300_000)
    await page.get_by_text("Top 10 vendors").wait_for(timeout=300_000)


async def _ready_sales(page) -> None:
    await page.get_by_text("Click a bar to focus").first.wait_for(timeout=300_000)
    await page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4",
                                 timeout=300_000)


PAGES = (("overview", "/", _ready_overview), ("sales", "/sales", _ready_sales))


async def _session(browser, base: str, cookies: list[dict], rounds: int, errors: list[str]) -> list[tuple[str, float]]:
    context = await browser.new_context(viewport={"width": 1440, "height": 1600})
    await context.add_cookies(cookies)
    context.set_default_timeout(300_000)     # under load the first byte alone can take half a minute
    page = await context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    out = []
    try:
        for _ in range(rounds):
            for name, path, ready in PAGES:
                started = time.perf_counter()
                await page.goto(base + path, wait_until="domcontentloaded")
                await ready(page)
                out.append((name, time.perf_counter() - started))
                if await page.get_by_test_id("stException").count():
                    errors.append(f"{name}: an exception is shown")
    finally:
        await context.close()
    return out


async def _login_cookies(browser, base: str) -> list[dict]:
    """Logs in once; every session then carries this session cookie (as after a login)."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(base + "/", wait_until="domcontentloaded")
    for _ in range(3):
        await page.get_by_label("Username").wait_for(timeout=120_000)
        await page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=120_000)
        await page.get_by_label("Username").fill(USER)
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        try:
            await page.get_by_text("Signed in as").first.wait_for(timeout=30_000)
            break
        except Exception:  # noqa: BLE001 - a rerun swallowed the click: fill the form again
            continue
    for _ in range(60):
        cookies = [c for c in await context.cookies() if c["name"] == "mbi_session"]
        if cookies:
            await context.close()
            return cookies
        await asyncio.sleep(0.25)
    raise RuntimeError("no session cookie after logging in")


def _cpu(proc: psutil.Process) -> float:
    """CPU seconds used so far by the process and its children."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


async def _measure(base: str, app: psutil.Process) -> dict:
    from playwright.async_api import async_playwright

    from scripts.browser import CHROMIUM, CHROMIUM_ARGS

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            cookies = await _login_cookies(browser, base)
            errors: list[str] = []
            await _session(browser, base, cookies, 1, errors)          # warm the caches once
            single = []
            for _ in range(SINGLE_REPS):
                single += await _session(browser, base, cookies, 1, errors)
            started, cpu = time.perf_counter(), _cpu(app)
            runs = await asyncio.gather(*[_session(browser, base, cookies, ROUNDS, errors) for _ in range(SESSIONS)])
            wall, app_cpu = time.perf_counter() - started, _cpu(app) - cpu
        finally:
            await browser.close()
    together = [r for run in runs for r in run]
    out = {"errors": errors, "wall_s": wall, "app_cpu_s": app_cpu}
    for name, _, _ in PAGES:
        one = [s for n, s in single if n == name]
        many = [s for n, s in together if n == name]
        out[name] = {"single_median": statistics.median(one), "single_p95": _p95(one),
                     "many_median": statistics.median(many), "many_p95": _p95(many), "renders": len(many)}
    return out


def bench_load(url: str) -> dict:
    from data.auth import create_user, fetch_user, reset_password
    from scripts.browser import ROOT, streamlit_app

    eng = sa.create_engine(url)
    with eng.begin() as conn:
        if fetch_user(conn, USER) is None:
            create_user(conn, USER, PASSWORD, "analyst")
        else:
            reset_password(conn, USER, PASSWORD, actor="bench")
    eng.dispose()
    env = {"DATABASE_URL": url, "APP_TIMEZONE": "UTC", "AUTH_COOKIE_KEY": "bench-cookie-key-0123456789-abcdefghij",
           "LOGIN_MAX_FAILURES_PER_ADDRESS": "100000"}
    peak = {"rss": 0}
    with streamlit_app(env, ROOT / "artifacts" / "streamlit_load.log") as (base, proc):
        app = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    rss = app.memory_info().rss + sum(c.memory_info().rss for c in app.children(recursive=True))
                    peak["rss"] = max(peak["rss"], rss)
                except psutil.Error:
                    pass
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            out = asyncio.run(_measure(base, app))
        finally:
            done.set()
            sampler.join(5)
        out["rss_after"] = app.memory_info().rss
    out["rss_peak"] = peak["rss"]
    from bench.__main__ import log
    log(f"  load: overview p95 {out['overview']['single_p95']:.2f} s alone, {out['overview']['many_p95']:.2f} s with "
        f"{SESSIONS}; sales {out['sales']['single_p95']:.2f} s / {out['sales']['many_p95']:.2f} s; "
        f"{len(out['errors'])} errors; peak RSS {peak['rss'] / 2**20:.0f} MiB; app CPU {out['app_cpu_s']:.0f} s "
        f"in {out['wall_s']:.0f} s")
    return out


LOAD_BEGIN, LOAD_END = "<!-- load:begin -->", "<!-- load:end -->"


def load_section(sizes: list[int], results: dict, started) -> str:
    from bench.__main__ import section_head

    lines = section_head(
        LOAD_BEGIN, f"Load: {SESSIONS} browser sessions at once on the overview and sales pages", started,
        f"`bench/load.py`: one app process, one headless chromium, a browser context per session carrying a "
        f"logged-in cookie. A render is the time from opening the page to its figures being drawn. Alone: "
        f"{SINGLE_REPS} sessions one after another (after one warm-up); together: {SESSIONS} sessions at once, "
        f"each opening both pages {ROUNDS} times. Ratio: p95 together / p95 alone. Memory: the app process's "
        "peak RSS (with children) during the run.",
        "| order lines | page | p95 alone | p95 with 20 | ratio | median alone | median with 20 | renders | "
        "errors | app peak RSS | target |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        r = results.get(n)
        if not r:
            continue
        for name in ("overview", "sales"):
            p = r[name]
            ratio = p["many_p95"] / p["single_p95"]
            ok = f"≤ 2× {'✅' if ratio <= 2 and not r['errors'] else '❌'}"
            lines.append(f"| {n:,} | {name} | {p['single_p95']:.2f} s | {p['many_p95']:.2f} s | {ratio:.2f}× | "
                         f"{p['single_median']:.2f} s | {p['many_median']:.2f} s | {p['renders']} | "
                         f"{len(r['errors'])} | {r['rss_peak'] / 2**20:,.0f} MiB | {ok} |")
    for n in sizes:
        r = results.get(n)
        if r:
            lines.append(f"\n{n:,} lines: the {SESSIONS} sessions took {r['wall_s']:.0f} s, in which the app process "
                         f"used {r['app_cpu_s']:.0f} s of CPU ({r['app_cpu_s'] / r['wall_s']:.2f} of a core; the "
                         "browser's 20 tabs share the machine's two cores).")
    return "\n".join(lines + [LOAD_END]) + "\n"
