"""The vendor portal's benchmark: a vendor's pages at 1M and 10M order lines, cold, on the vendor's
own database role (row-level security on), for every period preset and a 3-year custom range.

For the vendor with the most orders and the median vendor (by orders) of the largest size, each
page's default figures are timed without any Streamlit cache, each size side by side
(bench.scale._medians_ms):
- overview: `analytics.vendor_portal.compute_vendor_overview` (KPIs and their comparison period,
  sparklines, trend, categories, products) and the peer benchmarks' read;
- sales: the GMV trend, the breakdown by category and the payments (the page's first tab);
- products: `compute_product_figures` with the comparison period and the inventory summary;
- forecast history: the three years of daily GMV a forecast is fitted on (one cell per vendor; the
  models' fitting does not read the database);
- customers: the read of the vendor's customer scores kept by the nightly job (one cell per vendor),
  and that job's computation for the vendor, timed once at each size.
Then the overview, sales and products of one user bound to both vendors (their own login role): the
rollups keep orders per vendor, so their order counts come from the order lines.
Also: the scheduler's recompute of every preset's peer benchmarks at each size, and whether the
figures on the vendor's role equal those on the app's role (which row-level security does not limit).
"""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from analytics import customer_scores as CS
from analytics import forecast_series as FS
from analytics import products as P
from analytics import sales as S
from analytics.filters import Filters, Period, resolve_period
from analytics.kpis import fetch_data_bounds, fetch_rollup_layout
from analytics.vendor_portal import compute_vendor_overview, vendor_filters
from bench.common import section_head
from bench.scale import PRESETS, TARGET_MS, TARGET_RATIO, _medians_ms, _period
from data import peer_benchmarks as PB
from data.settings import load_settings
from data.vendor_scope import ensure_vendor_role, vendor_password

PORTAL_BEGIN, PORTAL_END = "<!-- portal:begin -->", "<!-- portal:end -->"
REPS = 5
BENCH_KEY = "bench-vendor-roles-0123456789-abcdefghij"   # when AUTH_COOKIE_KEY is not set


def _vendors(conn) -> dict[str, int]:
    """The vendor with the most orders and the median vendor by orders (of vendors with orders)."""
    ids = conn.execute(sa.text("""
        SELECT vendor_id FROM mart.rollup_vendor_daily GROUP BY 1 ORDER BY sum(all_orders) DESC, 1""")).scalars().all()
    return {"top vendor": ids[0], "median vendor": ids[len(ids) // 2]}


PAGES = ("overview", "sales", "products")
BOTH = "both vendors"   # one user bound to the top and the median vendor


def _page(name: str, conn, f: Filters, vendor_ids: tuple[int, ...], preset: str, layout: int | None, today) -> None:
    """Computes a vendor page's default figures, as its loaders do (components.loaders.read_figures)."""
    if name == "overview":
        compute_vendor_overview(conn, f, vendor_ids, tz="UTC", layout=layout)
        if preset in PB.PRESETS:
            PB.fetch_vendor_benchmarks(conn, preset)
        return
    f, kw = vendor_filters(f, vendor_ids), {"tz": "UTC", "layout": layout}
    if name == "sales":
        S.fetch_metric_trend(conn, f, "gmv", **kw)
        S.fetch_breakdown_growth(conn, f, "category", "gmv", **kw)
        S.fetch_payments(conn, f, **kw)
    else:
        P.compute_product_figures(conn, f, compare=True, **kw)
        P.fetch_inventory_summary(conn, f, min(f.period.end, today), **kw)


def bench_portal(urls: dict[int, str], reps: int = REPS, log: Callable[[str], None] = print) -> dict:
    """Times the portal's figures of the largest size's top and median vendors at every size side by
    side; returns {"cells": {size: {(who, preset): ms}}, "benchmarks": {size: s}, "same": bool,
    "vendors": {who: id}}."""
    settings = load_settings()
    if not settings.cookie_key:
        settings = dataclasses.replace(settings, cookie_key=BENCH_KEY)
    largest = max(urls)
    apps = {n: sa.create_engine(u, connect_args={"options": "-c timezone=UTC"}) for n, u in urls.items()}
    with apps[largest].connect() as conn:
        who = _vendors(conn)
    roles, layouts, today, refresh = {}, {}, {}, {}
    for n, eng in apps.items():
        with eng.begin() as conn:
            roles[n] = {w: ensure_vendor_role(conn, [v], settings) for w, v in who.items()}
            roles[n][BOTH] = ensure_vendor_role(conn, list(who.values()), settings)
            layouts[n] = fetch_rollup_layout(conn, "UTC")
            today[n] = fetch_data_bounds(conn, "UTC")[1]
        with eng.begin() as conn:
            t = time.perf_counter()
            PB.refresh_peer_benchmarks(conn, {p: tuple(dataclasses.astuple(resolve_period(p, today[n])))
                                              for p in PB.PRESETS}, tz="UTC")
            refresh[n] = time.perf_counter() - t
        log(f"  portal: peer benchmarks at {n:,} lines {refresh[n]:.1f} s")
    vendor_engines = {(n, w): sa.create_engine(
        make_url(urls[n]).set(username=role, password=vendor_password(settings, role)),
        connect_args={"options": "-c timezone=UTC"}) for n in urls for w, role in roles[n].items()}
    conns = {k: e.connect() for k, e in vendor_engines.items()}
    cells: dict = {n: {} for n in urls}
    nightly: dict = {n: {} for n in urls}     # size -> who -> (seconds to compute the scores, customers)
    same = True
    try:
        for w, vendor_id in who.items():
            for name in PAGES:
                for preset in PRESETS:
                    fs = {n: Filters.make(_period(preset, today[n])) for n in urls}
                    got = _medians_ms({n: (lambda n=n, w=w, v=vendor_id: _page(
                        name, conns[n, w], fs[n], (v,), preset, layouts[n], today[n])) for n in urls}, reps)
                    for n, ms in got.items():
                        cells[n][w, name, preset] = ms
                    log(f"  portal {w} {name} {preset}: " + "/".join(f"{got[n]:.0f}" for n in sorted(urls)) + " ms")
            series = FS.Series("gmv", "day", "vendor_id", str(vendor_id))
            got = _medians_ms({n: (lambda n=n, w=w: FS.fetch_metric_history(
                conns[n, w], series, last_day=today[n], tz="UTC", layout=layouts[n])) for n in urls}, reps)
            for n, ms in got.items():
                cells[n][w, "forecast history", "3 years"] = ms
            log(f"  portal {w} forecast history: " + "/".join(f"{got[n]:.0f}" for n in sorted(urls)) + " ms")
            # Customers: the nightly job's computation for this vendor, then the page's read of it.
            for n in urls:
                as_of = today[n] - timedelta(days=1)
                t = time.perf_counter()
                f = Filters(Period(as_of, as_of), dims=(("vendor_id", (vendor_id,)),))
                scores = CS.compute_scores(conns[n, w], f, as_of, previous=as_of - timedelta(days=CS.MOVEMENT_DAYS),
                                           tz="UTC", customer_records=False)
                CS.add_movements(conns[n, w], scores, f, CS.preset_movement_dates(as_of), tz="UTC")
                nightly[n][w] = (time.perf_counter() - t, scores.customers)
                with apps[n].begin() as conn:
                    CS.store_vendor_scores(conn, vendor_id, scores, started_at=datetime.now(timezone.utc))
            got = _medians_ms({n: (lambda n=n, w=w, v=vendor_id: CS.fetch_stored_vendor_scores(conns[n, w], v))
                               for n in urls}, reps)
            for n, ms in got.items():
                cells[n][w, "customers (nightly scores)", "last_30_days"] = ms
            log(f"  portal {w} customers: computed " + "/".join(f"{nightly[n][w][0]:.1f}" for n in sorted(urls))
                + " s, read " + "/".join(f"{got[n]:.0f}" for n in sorted(urls)) + " ms")
            with apps[largest].connect() as conn:
                f = Filters.make(_period("last_30_days", today[largest]))
                on_app = compute_vendor_overview(conn, f, (vendor_id,), tz="UTC", layout=layouts[largest])
                on_role = compute_vendor_overview(conns[largest, w], f, (vendor_id,), tz="UTC",
                                                  layout=layouts[largest])
                same = same and on_app.kpis.equals(on_role.kpis) and on_app.top_products.equals(on_role.top_products)
            for n in urls:   # ended now: a vendor role's idle transaction is ended by the server after a while
                conns[n, w].rollback()
        # A user bound to both vendors: their orders counted once each, from the order lines.
        both = tuple(who.values())
        for name in PAGES:
            for preset in PRESETS:
                fs = {n: Filters.make(_period(preset, today[n])) for n in urls}
                got = _medians_ms({n: (lambda n=n: _page(name, conns[n, BOTH], fs[n], both, preset, layouts[n],
                                                         today[n])) for n in urls}, reps)
                for n, ms in got.items():
                    cells[n][BOTH, name, preset] = ms
                log(f"  portal {BOTH} {name} {preset}: " + "/".join(f"{got[n]:.0f}" for n in sorted(urls)) + " ms")
    finally:
        for c in conns.values():
            c.close()
        for e in [*vendor_engines.values(), *apps.values()]:
            e.dispose()
    return {"cells": cells, "benchmarks": refresh, "same": same, "vendors": who, "nightly": nightly}


def portal_section(sizes: list[int], results: dict, started: datetime) -> str:
    """The RESULTS.md section: each page's and preset's time per vendor at each size and the ratio of
    the largest size to the smallest."""
    small, large = min(sizes), max(sizes)
    lines = section_head(
        PORTAL_BEGIN, "Vendor portal: a vendor's pages on its own role, cold", started,
        "Each page's default figures on the vendor's login role (row-level security on): overview "
        "(`compute_vendor_overview`: KPIs with the comparison period, sparklines, trend, categories, products; "
        "the peer benchmarks' read), sales (GMV trend, breakdown by category, payments), products (rankings "
        "with the comparison period, inventory), the three years of daily GMV a forecast is fitted on, and "
        "customers (the read of the vendor's customer scores kept by the nightly job); and the pages of one "
        "user bound to both vendors (their own login role), whose orders are counted from the order lines "
        "(an order holding lines of both counts once), the rollups keeping orders per vendor. "
        "No Streamlit cache, median of 5 after a warm-up, each size side by side. Vendors of "
        f"the largest database: {', '.join(f'{w} {v}' for w, v in results['vendors'].items())}. Figures "
        f"on the vendor's role equal the app role's: {'yes' if results['same'] else 'NO'}. The scheduler's "
        "recompute of the six presets' peer benchmarks (2,000 vendors): "
        + ", ".join(f"{results['benchmarks'][n]:.1f} s at {n:,} lines" for n in sizes) + ". "
        "The customers page reads the vendor's scores kept by the nightly job, whose computation for one "
        "vendor (on its role, with the movements of the presets ending yesterday) took: "
        + "; ".join(f"{w} " + ", ".join(f"{results['nightly'][n][w][0]:.1f} s for {results['nightly'][n][w][1]:,} "
                                         f"customers at {n:,} lines" for n in sizes) for w in results["vendors"])
        + ".",
        f"| vendor | page | period | {small:,} lines | {large:,} lines | ratio | target (≤ {TARGET_MS} ms, "
        f"≤ {TARGET_RATIO}×) |",
        "|---|---|---|---:|---:|---:|---|")
    for (w, name, preset), a in results["cells"][small].items():
        b = results["cells"][large][w, name, preset]
        ok = b <= TARGET_MS and b <= TARGET_RATIO * a
        lines.append(f"| {w} | {name} | {preset} | {a:,.0f} ms | {b:,.0f} ms | {b / a:.2f}× | {'✅' if ok else '❌'} |")
    return "\n".join(lines + [PORTAL_END]) + "\n"
