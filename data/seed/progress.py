"""Progress of the seed on stderr."""
from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress report on stderr: lines written / total, rate and time left."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.done_lines = 0
        self.began = self.last = time.perf_counter()
        self.tty = enabled and sys.stderr.isatty()
        self.shown_pct = -10

    def phase(self, text: str) -> None:
        if self.enabled:
            self._emit(f"seed: {text} …", final=True)

    def start(self) -> None:
        self.began = time.perf_counter()

    def advance(self, n: int) -> None:
        self.done_lines += n
        if not self.enabled:
            return
        now = time.perf_counter()
        pct = int(100 * self.done_lines / self.total)
        finished = self.done_lines >= self.total
        if not finished and (now - self.last < 0.2 or (not self.tty and pct < self.shown_pct + 10)):
            return
        self.last, self.shown_pct = now, pct
        rate = self.done_lines / max(now - self.began, 1e-9)
        eta = (self.total - self.done_lines) / rate if rate else 0
        width = 30
        filled = int(width * self.done_lines / self.total)
        text = (f"seed: order lines [{'#' * filled}{'.' * (width - filled)}] {pct:3d}% "
                f"{self.done_lines:,}/{self.total:,} · {rate:,.0f}/s · ETA {eta:,.0f} s")
        self._emit(text, final=finished)

    def _emit(self, text: str, *, final: bool) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()
