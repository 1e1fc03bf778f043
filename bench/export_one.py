"""One export for the benchmark, in its own process so that its peak memory is its own:
python -m bench.export_one URL FORMAT[-param] ROWS OUT. Streams SELECT * FROM mart.order_items LIMIT ROWS
through the analysts' role (reports.templates.render, as a scheduled saved query is made) and
prints the seconds the export took and the rows written, as JSON."""
from __future__ import annotations

import json
import sys
import time

import sqlalchemy as sa

from data.db import make_analyst_engine
from data.settings import load_settings
from reports.templates import Report, render


def main() -> int:
    url, fmt, rows, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


    engine = make_analyst_engine(sa.engine.make_url(url).set(username=load_settings().analyst_role)
                                 .render_as_string(hide_password=False))
    # FORMAT-param: the same query with its limit as a bound parameter.
    bound = fmt.endswith("-param")
    fmt = fmt.removesuffix("-param")
    sql = "SELECT * FROM mart.order_items ORDER BY order_id, line_no LIMIT " + (":n" if bound else str(int(rows)))
    report = Report("saved_query", "Order lines", None, "", "benchmark", query=(sql, {"n": rows} if bound else {}),
                    about={"Report": "benchmark"})
    started = time.perf_counter()
    with open(out, "wb") as f:
        written = render(report, fmt, f, engine=engine)
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": written}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
