"""The image's HEALTHCHECK, for whichever process the container runs (one image, two roles).

    python -m scripts.healthcheck      exit 0 when healthy, 1 (with the reason) when not

A container whose main process is the scheduler (`python -m reports.scheduler`) is healthy when
a scheduler on this host wrote its heartbeat within HEALTH_BEATS heartbeats; any other container
runs the app, healthy when Streamlit answers /_stcore/health.
"""
from __future__ import annotations

import socket
import sys
import urllib.request
from pathlib import Path

HEALTH_BEATS = 5    # long steps (a nightly fit at 10M lines) beat between steps, not during them
APP_HEALTH_URL = "http://127.0.0.1:8501/_stcore/health"


def role(cmdline: bytes) -> str:
    """Returns "scheduler" or "app" for a /proc/<pid>/cmdline (NUL-separated arguments)."""
    return "scheduler" if "reports.scheduler" in cmdline.decode(errors="replace").split("\0") else "app"


def scheduler_beating(within_s: float, hostname: str | None = None) -> str | None:
    """Returns None when a scheduler on this host beat within within_s seconds, else why not."""
    # Lazy, so that the app container's check (every 30 s) costs 0.1 s of CPU, not 1.3 s (measured).
    import sqlalchemy as sa

    from data.db import get_engine
    from data.settings import load_settings

    try:
        with get_engine(load_settings()).connect() as conn:
            age = conn.execute(sa.text("""
                SELECT extract(epoch FROM now() - max(beat_at)) FROM app.scheduler_heartbeat
                WHERE hostname = :h"""), {"h": hostname or socket.gethostname()}).scalar()
    except Exception as ex:  # noqa: BLE001 - any failure is an unhealthy answer, said in one line
        return f"database unreachable: {str(getattr(ex, 'orig', ex)).strip().splitlines()[0]}"
    if age is None:
        return "no heartbeat from a scheduler on this host yet"
    if age > within_s:
        return f"last heartbeat {age:.0f} s ago (more than {within_s:.0f} s)"
    return None


def app_answering(url: str = APP_HEALTH_URL) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=4) as r:
            return None if r.status == 200 else f"{url} answered {r.status}"
    except OSError as ex:
        return f"{url}: {ex}"


def main() -> int:
    try:
        cmdline = Path("/proc/1/cmdline").read_bytes()
    except OSError:
        cmdline = b""
    if role(cmdline) == "scheduler":
        from data.settings import load_settings  # lazy, as in scheduler_beating: only this role needs it

        problem = scheduler_beating(HEALTH_BEATS * load_settings().heartbeat_seconds)
    else:
        problem = app_answering()
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
