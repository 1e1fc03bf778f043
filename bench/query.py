"""Analysts' SQL: a capped SELECT * against the same query with LIMIT."""
from __future__ import annotations

import tracemalloc
from datetime import datetime

import sqlalchemy as sa

from analytics.query import run_query
from bench.common import log, section_head, timed
from data.db import make_analyst_engine
from data.settings import load_settings


QUERY_BEGIN, QUERY_END = "<!-- query:begin -->", "<!-- query:end -->"


def bench_query(url: str, reps: int) -> dict:
    """Times run_query on SELECT * FROM mart.order_items (capped at the UI's 10,000 rows) against
    the same query with LIMIT 10000, and the Python memory each needs at its peak."""
    eng = make_analyst_engine(sa.engine.make_url(url).set(username=load_settings().analyst_role)
                              .render_as_string(hide_password=False))
    out = {}
    for name, sql in (("capped", "SELECT * FROM mart.order_items"), ("limit", "SELECT * FROM mart.order_items LIMIT 10000")):
        secs, result = timed(lambda: run_query(sql, engine=eng, row_limit=10_000), reps)
        tracemalloc.start()
        run_query(sql, engine=eng, row_limit=10_000)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[name] = {"ms": secs * 1000, "rows": len(result.frame), "truncated": result.truncated, "peak": peak}
        log(f"  query {name}: {secs*1000:.0f} ms, {len(result.frame):,} rows, peak {peak / 2**20:.1f} MiB")
    with eng.connect() as conn:
        out["lines"] = conn.execute(sa.text("SELECT count(*) FROM mart.order_items")).scalar()
    eng.dispose()
    return out


def query_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(QUERY_BEGIN, "Analysts' SQL: a capped SELECT * against the same query with LIMIT", started,
             "`analytics.query.run_query` (parser, analysts' role, read-only transaction, server-side cursor "
             "fetched in batches of 1, 8, 64, 512, 4,096 and then 5,000 rows) on `SELECT * FROM mart.order_items` with the UI's cap of 10,000 "
             "rows, and on the same query with `LIMIT 10000`; peak Python memory from tracemalloc.",
             "| order lines | capped | with LIMIT | capped / LIMIT | peak memory capped | peak memory LIMIT | target |",
             "|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        r = results.get(n)
        if r:
            ratio = r["capped"]["ms"] / r["limit"]["ms"]
            ok = (f"≤ 2× {'✅' if ratio <= 2 else '❌'}" if n == max(sizes) else "")
            lines.append(f"| {r['lines']:,} | {r['capped']['ms']:,.0f} ms ({r['capped']['rows']:,} rows"
                         f"{', truncated' if r['capped']['truncated'] else ''}) | "
                         f"{r['limit']['ms']:,.0f} ms | {ratio:.2f}× | {r['capped']['peak'] / 2**20:.1f} MiB | "
                         f"{r['limit']['peak'] / 2**20:.1f} MiB | {ok} |")
    return "\n".join(lines + [QUERY_END]) + "\n"
