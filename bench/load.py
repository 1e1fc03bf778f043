"""The load benchmark: 20 analysts at once on the overview and sales pages, against one alone, on
the same app process.

Each analyst walks the same way: open the overview, wait until it is drawn, read it for a few
seconds, open the sales page, read, and so on for ROUNDS rounds. Alone: SINGLE_USERS analysts one
after another (after one warm-up walk); together: SESSIONS analysts arriving two a second (a load
tester's ramp-up), all walking at once. A render is the time from asking for a page to its last
element.

The walk is measured with two clients:
- protocol: each analyst is one Streamlit session over one websocket, opened with the session
  cookie by the first view, and asks for each page with the message a browser sends when a
  sidebar link is clicked; the render ends with the script's last message. This is the app's
  side of the render, as 20 analysts on their own computers meet it.
- chromium: one headless chromium, a browser context per analyst, each page opened by its URL (a
  new session each time, the heaviest way); the render ends when the page's figures are drawn.
  The tabs draw on the same two cores as the app, so this figure counts the browsers' work too.
The app process's CPU and peak memory (RSS, with children) are recorded during the concurrent walk.
"""
from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time
from datetime import datetime
from typing import Callable

import psutil
import sqlalchemy as sa
import websockets
from playwright.async_api import Browser, async_playwright
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench.common import log, section_head
from data import auth
from scripts.browser import CHROMIUM, CHROMIUM_ARGS, ROOT, streamlit_app

USER = "loadtest"
SESSIONS = 20
ROUNDS = 5
SINGLE_USERS = 4
SINGLE_THINK_S = (0.5, 1.0)   # alone, the pauses change nothing but the walk's length
THINK_S = (2.0, 8.0)    # an analyst reads a page for 2 to 8 s (uniform) before opening the next
ARRIVALS_PER_S = 2.0
COOKIE_KEY = "bench-cookie-key-0123456789-abcdefghij"
CLIENTS = ("protocol", "chromium")


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


# --- the protocol client --------------------------------------------------------------------------

PAGE_NAMES = {"overview": "", "sales": "sales"}
# What a drawn page holds: the overview's ten KPI cards, the sales page's charts (as the chromium
# client waits for). A login page or an empty one is an error, not a fast render.
DRAWN = {"overview": ("metric", 10), "sales": ("plotly_chart", 4)}


def protocol_user(base: str, cookie: str, errors: list[str]) -> tuple[Callable, Callable]:
    """Returns (view, close) for one analyst: one Streamlit session over one websocket for the whole
    walk, opened by the first view (as a browser opening the app) and asked for each later page as
    the browser asks when a sidebar link is clicked. view(page) returns the seconds until the
    script's last message."""
    done = ForwardMsg.ScriptFinishedStatus
    url = base.replace("http://", "ws://") + "/_stcore/stream"
    session: dict = {}

    async def view(page: str) -> float:
        started = time.perf_counter()
        kind_wanted, count_wanted = DRAWN[page]
        drawn = 0
        if "ws" not in session:
            session["ws"] = await websockets.connect(url, max_size=None, open_timeout=300,
                                                     additional_headers={"Cookie": f"mbi_session={cookie}"})
        ws = session["ws"]
        msg = BackMsg()
        msg.rerun_script.page_name = PAGE_NAMES[page]
        msg.rerun_script.context_info.timezone = "UTC"
        await ws.send(msg.SerializeToString())
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(await asyncio.wait_for(ws.recv(), 300))
            kind = fm.WhichOneof("type")
            element = fm.delta.new_element.WhichOneof("type") \
                if kind == "delta" and fm.delta.WhichOneof("type") == "new_element" else None
            if element == "exception":
                errors.append(f"{page}: {fm.delta.new_element.exception.message}")
            drawn += element == kind_wanted
            if kind == "page_not_found":
                errors.append(f"{page}: page not found")
            elif kind == "script_finished":
                if fm.script_finished == done.FINISHED_SUCCESSFULLY:
                    took = time.perf_counter() - started
                    if drawn < count_wanted:
                        errors.append(f"{page}: {drawn} {kind_wanted} elements drawn, {count_wanted} expected")
                    return took
                if fm.script_finished == done.FINISHED_WITH_COMPILE_ERROR:
                    errors.append(f"{page}: the script did not compile")
                    return time.perf_counter() - started
                # FINISHED_EARLY_FOR_RERUN: the page asked for a rerun; its end is still to come.

    async def close() -> None:
        if "ws" in session:
            await session.pop("ws").close()

    return view, close


# --- the chromium client --------------------------------------------------------------------------

async def _ready_overview(page) -> None:
    await page.wait_for_function("document.querySelectorAll('[data-testid=stMetric]').length >= 10",
                                 timeout=300_000)
    await page.get_by_text("Top 10 vendors").wait_for(timeout=300_000)


async def _ready_sales(page) -> None:
    await page.get_by_text("Click a bar to focus").first.wait_for(timeout=300_000)
    await page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4",
                                 timeout=300_000)


READY = {"overview": ("/", _ready_overview), "sales": ("/sales", _ready_sales)}


async def chromium_user(browser: Browser, base: str, cookie: str, errors: list[str]) -> tuple[Callable, Callable]:
    """Returns (view, close) for one analyst with their own browser context."""
    context = await browser.new_context(viewport={"width": 1440, "height": 1600})
    await context.add_cookies([{"name": "mbi_session", "value": cookie, "url": base}])
    context.set_default_timeout(300_000)
    tab = await context.new_page()
    tab.on("pageerror", lambda e: errors.append(str(e)))

    async def view(page: str) -> float:
        path, ready = READY[page]
        started = time.perf_counter()
        await tab.goto(base + path, wait_until="domcontentloaded")
        await ready(tab)
        took = time.perf_counter() - started
        if await tab.get_by_test_id("stException").count():
            errors.append(f"{page}: an exception is shown")
        return took

    return view, context.close


# --- the walk ---------------------------------------------------------------------------------------

async def _walk(view, rng: random.Random, delay: float = 0.0, think: tuple = THINK_S) -> list[tuple[str, float]]:
    await asyncio.sleep(delay)
    out = []
    for i in range(ROUNDS):
        for page in PAGE_NAMES:
            out.append((page, await view(page)))
            if i < ROUNDS - 1 or page != "sales":
                await asyncio.sleep(rng.uniform(*think))
    return out


def _cpu(proc: psutil.Process) -> float:
    """CPU seconds used so far by the process and its children."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


async def _measure(client: str, base: str, cookie: str, app: psutil.Process) -> dict:
    errors: list[str] = []
    rng = random.Random(1)

    async def user():
        if client == "protocol":
            return protocol_user(base, cookie, errors)
        return await chromium_user(browser, base, cookie, errors)

    async def walk(delay: float = 0.0, think: tuple = THINK_S):
        view, close = await user()
        try:
            return await _walk(view, random.Random(rng.random()), delay, think)
        finally:
            await close()

    async def run() -> dict:
        await walk(think=(0, 0))                       # warm the caches once
        single = []
        for _ in range(SINGLE_USERS):
            single += await walk(think=SINGLE_THINK_S)
        started, cpu = time.perf_counter(), _cpu(app)
        runs = await asyncio.gather(*[walk(i / ARRIVALS_PER_S) for i in range(SESSIONS)])
        return {"single": single, "together": [r for run in runs for r in run],
                "wall_s": time.perf_counter() - started, "app_cpu_s": _cpu(app) - cpu}

    if client == "protocol":
        raw = await run()
    else:


        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                raw = await run()
            finally:
                await browser.close()
    out = {"errors": errors, "wall_s": raw["wall_s"], "app_cpu_s": raw["app_cpu_s"]}
    for name in PAGE_NAMES:
        one = [s for n, s in raw["single"] if n == name]
        many = [s for n, s in raw["together"] if n == name]
        out[name] = {"single_median": statistics.median(one), "single_p95": _p95(one),
                     "many_median": statistics.median(many), "many_p95": _p95(many), "renders": len(many)}
    return out


def session_cookie(url: str, key: str = COOKIE_KEY) -> str:
    """A signed session cookie for the load user, as the app hands out after a login."""
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.begin() as conn:
        user = auth.fetch_user(conn, USER)
        if user is None:
            auth.create_user(conn, USER, auth.generate_password(USER), "analyst", actor="bench")
            user = auth.fetch_user(conn, USER)
        sid, expires = auth.create_session(conn, user, days=1, client_addr="bench", user_agent="bench/load")
    eng.dispose()
    return auth.encode_cookie(sid, user.username, key, expires)


def bench_load(url: str, clients: tuple[str, ...] = CLIENTS) -> dict:
    cookie = session_cookie(url)
    env = {"DATABASE_URL": url, "APP_TIMEZONE": "UTC", "AUTH_COOKIE_KEY": COOKIE_KEY}
    results = {}
    for client in clients:
        peak = {"rss": 0}
        # A new app process per client: the second client does not start on the first one's warm process.
        with streamlit_app(env, ROOT / "artifacts" / f"streamlit_load_{client}.log") as (base, proc):
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
                out = asyncio.run(_measure(client, base, cookie, app))
            finally:
                done.set()
                sampler.join(5)
        out["rss_peak"] = peak["rss"]
        results[client] = out
        log(f"  load ({client}): overview p95 {out['overview']['single_p95']:.2f} s alone, "
            f"{out['overview']['many_p95']:.2f} s with {SESSIONS}; sales {out['sales']['single_p95']:.2f} s / "
            f"{out['sales']['many_p95']:.2f} s; {len(out['errors'])} errors; peak RSS {peak['rss'] / 2**20:.0f} MiB; "
            f"app CPU {out['app_cpu_s']:.0f} s in {out['wall_s']:.0f} s")
    return results


LOAD_BEGIN, LOAD_END = "<!-- load:begin -->", "<!-- load:end -->"


def load_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(
        LOAD_BEGIN, f"Load: {SESSIONS} analysts at once on the overview and sales pages", started,
        f"`bench/load.py`. Each analyst opens the overview, reads it for {THINK_S[0]:.0f}–{THINK_S[1]:.0f} s, "
        f"opens the sales page, reads it, {ROUNDS} rounds. Alone: {SINGLE_USERS} analysts one after another "
        f"(after a warm-up walk; pauses of {SINGLE_THINK_S[0]}–{SINGLE_THINK_S[1]} s, as alone they change "
        f"nothing but the walk's length); together: {SESSIONS} analysts arriving {ARRIVALS_PER_S:.0f} a second, "
        "all walking at once. A render runs from asking for a page to its last element. **protocol**: each "
        "analyst is one Streamlit session over one websocket, opened with the session cookie, asking for "
        "each page with the message a browser sends when a sidebar link is clicked; the render ends with "
        "the script's last message, and a page without its figures (ten KPI cards, four charts) counts as "
        f"an error. This is the app's side of the render, as {SESSIONS} analysts on their own computers "
        "meet it. **chromium** (at the smallest size only: it measures the browser more than the data): a "
        "browser context per analyst in one headless chromium, each page opened by its URL (a new session "
        "each time); the render ends when the figures are drawn, and the tabs draw on the same two cores "
        "as the app. Ratio: p95 together / p95 alone. Memory: the app process's peak RSS (with children).",
        f"| order lines | client | page | p95 alone | p95 with {SESSIONS} | ratio | median alone | median with "
        f"{SESSIONS} | renders | errors | app peak RSS | target |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        for client in CLIENTS:
            r = (results.get(n) or {}).get(client)
            if not r:
                continue
            for name in PAGE_NAMES:
                p = r[name]
                ratio = p["many_p95"] / p["single_p95"]
                ok = f"≤ 2× {'✅' if ratio <= 2 and not r['errors'] else '❌'}"
                lines.append(f"| {n:,} | {client} | {name} | {p['single_p95']:.2f} s | {p['many_p95']:.2f} s | "
                             f"{ratio:.2f}× | {p['single_median']:.2f} s | {p['many_median']:.2f} s | "
                             f"{p['renders']} | {len(r['errors'])} | {r['rss_peak'] / 2**20:,.0f} MiB | {ok} |")
    lines.append("")
    for n in sizes:
        for client in CLIENTS:
            r = (results.get(n) or {}).get(client)
            if r:
                lines.append(f"- {n:,} lines, {client}: the {SESSIONS} analysts took {r['wall_s']:.0f} s, in which "
                             f"the app process used {r['app_cpu_s']:.0f} s of CPU "
                             f"({r['app_cpu_s'] / r['wall_s']:.2f} of a core)."
                             + (f" First error: {r['errors'][0][:200]}" if r["errors"] else ""))
    return "\n".join(lines + [LOAD_END]) + "\n"
