"""Forecasts: speed, the forecasting page's stored reads, and held-out accuracy against seasonal naive."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics import forecast_series as FS
from analytics import forecasting as FC
from analytics.kpis import fetch_data_bounds
from bench.common import log, section_head, timed


FORECASTS_BEGIN, FORECASTS_END = "<!-- forecasts:begin -->", "<!-- forecasts:end -->"
HELD_OUT_ENDS = (0, 182)  # held-out windows end this many days before the last day


def bench_forecasts(url: str, reps: int) -> dict:
    """Times one automatic forecast of three years of daily GMV (three models, backtest), the
    forecasting page's reads of a stored forecast against computing it live, and measures the
    accuracy of "auto" against the seasonal-naive baseline on held-out windows of real series."""
    eng = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    with eng.connect() as conn:
        last = fetch_data_bounds(conn, "UTC")[1]
        history = FS.fetch_metric_history(conn, FS.Series("gmv"), last_day=last, tz="UTC")
        series = FS.fetch_nightly_series(conn, last, tz="UTC")
    auto_s, auto = timed(lambda: FC.forecast(history, 28), reps)
    log(f"  forecast: {len(history)} days, auto {auto_s:.2f} s ({auto.model})")
    run_date = last + timedelta(days=1)
    with eng.begin() as conn:
        f = FS.compute_series_forecast(conn, FS.Series("gmv"), last_day=last, horizon=28, tz="UTC")
        FS.store_forecast(conn, FS.Series("gmv"), f, run_date=run_date, horizon=28, interval=0.8, duration_ms=0)

    def page():  # what the page reads for a stored forecast: the forecast, the history, earlier runs
        with eng.connect() as conn:
            FS.fetch_stored_forecast(conn, FS.Series("gmv"), run_date=run_date, horizon=28)
            actuals = FS.fetch_metric_history(conn, FS.Series("gmv"), last_day=last, tz="UTC")
            FS.compute_realised_errors(conn, FS.Series("gmv"), actuals, before=run_date)

    def live():
        with eng.connect() as conn:
            FS.compute_series_forecast(conn, FS.Series("gmv"), last_day=last, horizon=28, tz="UTC")

    page_s, _ = timed(page, reps)
    live_s, _ = timed(live, 1)
    log(f"  forecasting page: stored {page_s*1000:.0f} ms, live {live_s:.1f} s")
    # Held out: each nightly series' last 28 days, and the 28 days ending half a year earlier,
    # each forecast from the days before it.
    rows = []
    with eng.connect() as conn:
        for s in series:
            full = FS.fetch_metric_history(conn, s, last_day=last, tz="UTC")
            full = full.iloc[int(np.argmax(full["y"].to_numpy() != 0)):].reset_index(drop=True)
            for back in HELD_OUT_ENDS:
                h = full.iloc[:len(full) - back]
                train, test = h.iloc[:-28], h.iloc[-28:]
                a = FC.forecast(train, 28)
                sn = FC.forecast(train, 28, model="seasonal_naive")
                y = test["y"].to_numpy()
                rows.append({"series": f"{s.metric} {s.dim or 'total'} {s.value}".strip(), "back": back,
                             "model": a.model, "mase_auto": FC.mase(y, a.frame["yhat"], train["y"], 7),
                             "mase_naive": FC.mase(y, sn.frame["yhat"], train["y"], 7),
                             "inside": int(((y >= a.frame["yhat_lower"]) & (y <= a.frame["yhat_upper"])).sum()),
                             "points": len(y)})
    with eng.begin() as conn:
        conn.execute(sa.text("DELETE FROM mart.forecast_runs WHERE run_date = :d"), {"d": run_date})
    eng.dispose()
    held = pd.DataFrame(rows)
    log(f"  held out: auto MASE {held['mase_auto'].mean():.3f} vs seasonal naive {held['mase_naive'].mean():.3f}, "
        f"coverage {held['inside'].sum() / held['points'].sum():.1%}")
    return {"days": len(history), "auto_s": auto_s, "model": auto.model, "page_ms": page_s * 1000, "live_s": live_s,
            "held": held}


def forecasts_section(sizes: list[int], results: dict, started: datetime) -> str:
    lines = section_head(FORECASTS_BEGIN, "Forecasts", started, "One automatic "
             "forecast of daily GMV over three years (`forecast(history, 28)`: Prophet, ETS and seasonal naive, "
             "each backtested on three 28-day windows, then the chosen one fitted); the forecasting page's reads "
             "of a stored forecast (the forecast, the history, earlier runs against actuals) side by side with "
             "computing it live.",
             "| order lines | history | auto forecast | chosen | page (stored) | live | stored / live | targets |",
             "|---:|---:|---:|---|---:|---:|---:|---|")
    for n in sizes:
        r = results.get(n)
        if r:
            ok = ""
            if n == max(sizes):
                ok = (f"auto ≤ 10 s {'✅' if r['auto_s'] <= 10 else '❌'}; "
                      f"page ≤ 1 s {'✅' if r['page_ms'] <= 1000 else '❌'}")
            lines.append(f"| {n:,} | {r['days']:,} days | {r['auto_s']:.2f} s | {r['model']} | {r['page_ms']:,.0f} ms | "
                         f"{r['live_s']:.1f} s | {r['page_ms'] / 1000 / r['live_s']:.3f}× | {ok} |")
    lines += ["", "Accuracy on held-out data: for each series the nightly job forecasts (GMV and orders per day, "
              "total and the top 5 vendors and categories), two windows of 28 days were held out (the last 28 "
              "days, with Black Friday, and the 28 days ending half a year earlier) and forecast from the days "
              "before each, with `model=\"auto\"` and with the seasonal-naive baseline. MASE is scaled by the "
              "in-sample seasonal-naive error. The series are the demo data's (`python -m data seed`).", "",
              "| order lines | held-out window ends | series | mean MASE auto | mean MASE seasonal naive | "
              "auto ≤ naive | 80 % interval coverage | targets |", "|---:|---|---:|---:|---:|---:|---:|---|"]
    for n in sizes:
        r = results.get(n)
        if not r:
            continue
        for back in [*HELD_OUT_ENDS, None]:
            h = r["held"] if back is None else r["held"][r["held"]["back"] == back]
            cov = h["inside"].sum() / h["points"].sum()
            better = int((h["mase_auto"] <= h["mase_naive"]).sum())
            ok = ""
            if n == max(sizes) and back is None:
                ok = (f"MASE ≤ naive {'✅' if h['mase_auto'].mean() <= h['mase_naive'].mean() else '❌'}; "
                      f"coverage 70–90 % {'✅' if 0.7 <= cov <= 0.9 else '❌'}")
            when = "both" if back is None else ("on the last day" if back == 0 else f"{back} days earlier")
            lines.append(f"| {n:,} | {when} | {len(h)} | {h['mase_auto'].mean():.3f} | {h['mase_naive'].mean():.3f} | "
                         f"{better} of {len(h)} | {cov:.1%} | {ok} |")
    return "\n".join(lines + [FORECASTS_END]) + "\n"
