"""Realistic demo data for schema mart: a three-year multi-vendor marketplace, deterministic per seed.

How the data is made, so that the pages have something true to find:
  * Calendar: per segment (consumers, businesses) a daily intensity = weekday x month x holiday
    events (Black Friday, Cyber Monday, Christmas, a summer sale) x a little noise, two outage
    days, and a growth trend (~28 %/year consumers, ~40 %/year businesses).
  * Customers follow BG/NBD: purchase rate ~ gamma, drop-out after each purchase ~ beta, in
    "operational time" (the calendar warped by the intensity, so repeat orders are seasonal
    too). Acquisitions are solved from the target order curve (a deconvolution), so orders grow
    smoothly from launch day although repeat buyers accumulate.
  * Vendors have a heavy-tailed size, join over time and ramp up, some pause or close (and stop
    selling); lines pick a vendor active that week, then a product by Zipf popularity.
  * The order skeleton (time, customer, line count; ~13 bytes an order) is held in memory;
    order lines are generated in chunks of ~100k and streamed with binary COPY, never all at once.
  * Everything happens in one transaction: foreign keys and secondary indexes are dropped for
    the load and restored from the catalog afterwards (as pg_restore does), rollups are rebuilt
    in it, then KPI targets are set from the rollups.

Where each part lives: reference.py (the tables of shares, prices and rates), simulate.py (calendar,
vendors and catalog, customers and the order skeleton; no I/O), tables.py (each contract table
generated and COPYd), binary_copy.py (the COPY writer), indexes.py (the bulk-load frame),
targets.py (KPI targets), progress.py (the progress line); this module runs them in one transaction.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from data.rollups import refresh_rollups
from data.seed.indexes import bulk_load
from data.seed.progress import Progress
from data.seed.reference import CONTRACT_TABLES
from data.seed.tables import generate_and_write
from data.seed.targets import write_targets
from data.settings import load_settings


@dataclass(frozen=True)
class SeedSummary:
    vendors: int
    products: int
    customers: int
    orders: int
    order_lines: int
    elapsed_s: float

    def __str__(self) -> str:
        return (f"seeded {self.order_lines:,} order lines in {self.orders:,} orders from "
                f"{self.customers:,} customers, {self.vendors:,} vendors and {self.products:,} "
                f"products in {self.elapsed_s:.1f} s")


class SeedError(ValueError):
    """Seeding cannot start; the message says why and what to do."""


MIN_LINES = 100


def seed(engine: Engine, *, orders: int | None = None, seed: int = 42, end: date | None = None,
         if_empty: bool = False, replace: bool = False, progress: bool = True) -> SeedSummary | None:
    """Fills every mart contract table with `orders` order lines ending on `end`; returns counts.

    if_empty: return None without writing when mart.orders has rows. replace: empty the contract
    tables first. All in one transaction, rollups refreshed in it, so readers see all or nothing.
    """
    started = time.perf_counter()
    settings = load_settings()
    n_lines = settings.demo_orders if orders is None else orders
    if not isinstance(n_lines, (int, np.integer)) or n_lines < MIN_LINES:
        raise SeedError(f"--orders must be a whole number of at least {MIN_LINES} order lines; got {n_lines!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SeedError(f"--seed must be a whole number ≥ 0; got {seed!r}")
    end = end or datetime.now(settings.tz).date()
    bar = Progress(int(n_lines), enabled=progress)

    try:
        with engine.begin() as conn:
            existing = _existing_rows(conn)
            if existing and existing[0] == "orders" and if_empty:
                return None
            if existing and not replace:
                raise SeedError(f"mart.{existing[0]} already has {existing[1]:,} rows; use --replace to start over")
            # Tracking triggers skip this transaction; the full refresh below rebuilds everything.
            conn.execute(sa.text("SET LOCAL app.skip_rollup_tracking = 'on'"))
            # One long bulk job: no server default time limit applies, and sorts get room.
            conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
            conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
            conn.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
            # Emptied in this transaction, the tables accept COPY … FREEZE (no later vacuum pass).
            conn.execute(sa.text("TRUNCATE " + ", ".join(f"mart.{t}" for t in CONTRACT_TABLES)))
            with bulk_load(conn, bar):
                counts = generate_and_write(conn, int(n_lines), int(seed), end, settings.timezone, bar)
            refresh_rollups(conn, full=True, timezone=settings.timezone,
                            progress=lambda step: bar.phase(f"refreshing rollups: {step}"))
            bar.phase("writing KPI targets")
            write_targets(conn, np.random.default_rng([int(seed), 9]), counts["start"], end)
            conn.execute(sa.text("ANALYZE mart.kpi_targets"))
    except (psycopg.Error, sa.exc.DBAPIError) as ex:
        friendly = _translate(ex, int(n_lines))
        if friendly is None:
            raise
        raise friendly from ex
    summary = SeedSummary(counts["vendors"], counts["products"], counts["customers"], counts["orders"],
                          counts["order_lines"], time.perf_counter() - started)
    return summary


def _translate(ex: Exception, n_lines: int) -> SeedError | None:
    """Returns a SeedError for database failures a person can fix, else None."""
    orig = getattr(ex, "orig", ex)
    if isinstance(orig, (psycopg.errors.DiskFull, psycopg.errors.OutOfMemory)):
        return SeedError(f"the database ran out of {'disk space' if isinstance(orig, psycopg.errors.DiskFull) else 'memory'} "
                         f"while seeding {n_lines:,} order lines; nothing was written. Free some, or seed "
                         "fewer lines with --orders.")
    if isinstance(orig, psycopg.errors.InsufficientPrivilege):
        return SeedError(f"the database user may not rebuild the mart tables ({str(orig).strip()}); seeding "
                         "drops and restores their indexes, so run it as the user that ran `python -m data migrate`.")
    return None


def _existing_rows(conn: Connection) -> tuple[str, int] | None:
    """Returns (table, row count) of the first non-empty contract table, mart.orders first."""
    # Two processes starting on an empty database (app and scheduler) must not both seed.
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('marketplace-bi seed'))"))
    if not conn.execute(sa.text("SELECT to_regclass('mart.orders') IS NOT NULL")).scalar():
        raise SeedError("the mart schema is missing; run `python -m data migrate` first")
    for table in ("orders", *[t for t in CONTRACT_TABLES if t != "orders"]):
        # Table names are constants of this module.
        if conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM mart.{table})")).scalar():
            return table, conn.execute(sa.text(f"SELECT count(*) FROM mart.{table}")).scalar()
    return None
