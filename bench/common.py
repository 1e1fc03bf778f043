"""What every bench section shares: the bench server, timing, the RESULTS.md stamp and its sections."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import psutil

from data.db import embedded_server, normalise_url


ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "RESULTS.md"


def log(msg: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {msg}", flush=True)


def admin_url() -> str:
    if os.environ.get("BENCH_DATABASE_URL"):
        return normalise_url(os.environ["BENCH_DATABASE_URL"])
    server = embedded_server(ROOT / ".data" / "bench")
    info = server.get_postmaster_info()
    return f"postgresql+psycopg://postgres@/postgres?host={info.socket_path.parent}"


def run_measured(args: list[str], env: dict) -> tuple[float, int]:
    """Runs a command; returns (wall seconds, peak RSS bytes of it and its children)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=ROOT)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed with {proc.returncode}")
    return time.perf_counter() - start, peak


def timed(fn: Callable[[], Any], reps: int, budget_s: float = 60.0) -> tuple[float, object]:
    """Returns (median seconds over the repetitions after one warm-up, last result).

    Repetitions shrink to fit budget_s (at least one), so a raw baseline of minutes does not
    hold the run for an hour; fast figures still get every repetition.
    """
    t = time.perf_counter()
    result = fn()
    warm = time.perf_counter() - t
    reps = max(1, min(reps, int(budget_s / max(warm, 1e-6))))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def measured(started: datetime) -> str:
    """The first sentence of every section: when, at which commit, on which machine."""
    return f"Measured {started:%Y-%m-%d %H:%M} UTC at commit {commit()} on the machine above."


def section_head(begin: str, title: str, started: datetime, text: str, header: str, align: str) -> list[str]:
    """The opening lines of a RESULTS.md section: its marker, title, when and how it was measured,
    and its table's header."""
    return [begin, f"## {title}", "", measured(started) + " " + text, "", header, align]


def write_section(section: str, begin: str, end: str) -> None:
    """Replaces a marked section of RESULTS.md (or appends it), leaving the rest as measured."""
    text = OUT.read_text() if OUT.exists() else "# Benchmark results\n"
    if begin in text:
        head, rest = text.split(begin, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        # A blank line between this section and the next, as between the others.
        text = head + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    OUT.write_text(text)
    log(f"wrote the {begin} section of {OUT.relative_to(ROOT)}")


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return f"{cpu}, {psutil.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        # RESULTS.md itself does not count: the run rewrites it after each size.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!bench/RESULTS.md"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"
