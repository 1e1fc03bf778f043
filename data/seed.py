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
"""
from __future__ import annotations

import math
import queue
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from statistics import NormalDist
from datetime import date, datetime, timedelta
from typing import Iterator

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from data.settings import load_settings

# --------------------------------------------------------------------------------------------
# Reference data. Variation lives here, not in branches.
# --------------------------------------------------------------------------------------------

# name, sku code, subcategories, median list price, price sigma, gross margin, commission,
# B2B affinity (weight of the category in business orders), share of vendors,
# p of the geometric consumer quantity (lower = more units per line)
CATEGORIES: tuple[tuple, ...] = (
    ("Electronics", "ELE", ("Headphones", "Laptops", "Smartphones", "Cameras", "Chargers"), 85, 0.95, 0.20, 0.07, 1.6, 0.10, 0.85),
    ("Fashion", "FAS", ("Dresses", "Sneakers", "Jackets", "Bags", "Jewelry"), 38, 0.60, 0.55, 0.15, 0.15, 0.16, 0.82),
    ("Home & Garden", "HOM", ("Cookware", "Lamps", "Bedding", "Garden Tools", "Rugs"), 42, 0.80, 0.42, 0.12, 0.7, 0.12, 0.80),
    ("Beauty & Health", "BEA", ("Skincare", "Fragrances", "Makeup", "Supplements"), 21, 0.60, 0.52, 0.12, 0.2, 0.09, 0.70),
    ("Sports & Outdoors", "SPO", ("Running Shoes", "Yoga Mats", "Tents", "Bike Parts"), 44, 0.80, 0.40, 0.10, 0.4, 0.08, 0.82),
    ("Toys & Baby", "TOY", ("Building Sets", "Board Games", "Strollers", "Plush Toys"), 29, 0.65, 0.38, 0.11, 0.15, 0.07, 0.80),
    ("Books & Media", "BOO", ("Novels", "Cookbooks", "Vinyl Records", "Comics"), 16, 0.45, 0.32, 0.15, 0.3, 0.06, 0.75),
    ("Grocery", "GRO", ("Coffee", "Tea", "Snacks", "Olive Oil"), 11, 0.55, 0.26, 0.08, 0.6, 0.07, 0.50),
    ("Automotive", "AUT", ("Car Care", "Tyres", "Dash Cams", "Tools"), 52, 0.90, 0.33, 0.09, 1.0, 0.05, 0.75),
    ("Office Supplies", "OFF", ("Paper", "Printer Ink", "Desk Chairs", "Notebooks"), 24, 0.80, 0.36, 0.08, 4.5, 0.07, 0.60),
    ("Industrial & Lab", "IND", ("Safety Gear", "Fasteners", "Lab Equipment", "Packaging"), 60, 1.00, 0.30, 0.06, 6.0, 0.06, 0.65),
    ("Pet Supplies", "PET", ("Dog Food", "Cat Litter", "Pet Beds", "Aquariums"), 23, 0.60, 0.40, 0.10, 0.2, 0.07, 0.60),
)
VENDOR_WORDS = {
    "Electronics": ("Electronics", "Audio", "Tech", "Devices"),
    "Fashion": ("Apparel", "Style", "Threads", "Wear"),
    "Home & Garden": ("Home", "Living", "Garden", "Interiors"),
    "Beauty & Health": ("Beauty", "Cosmetics", "Wellness", "Care"),
    "Sports & Outdoors": ("Sports", "Outdoor", "Athletics", "Trail"),
    "Toys & Baby": ("Toys", "Kids", "Play", "Baby"),
    "Books & Media": ("Books", "Media", "Press", "Records"),
    "Grocery": ("Foods", "Pantry", "Roasters", "Market"),
    "Automotive": ("Auto", "Motors", "Parts", "Garage"),
    "Office Supplies": ("Office", "Paper", "Supplies", "Workspace"),
    "Industrial & Lab": ("Industrial", "Labware", "Safety", "Tools"),
    "Pet Supplies": ("Pets", "Paws", "Animal Care", "Pet Supply"),
}
BRAND_HEADS = ("Al", "Bel", "Cor", "Dra", "El", "Fen", "Gal", "Hal", "Ir", "Jun", "Kel", "Lum", "Mar",
               "Nor", "Or", "Pel", "Quin", "Ros", "Sol", "Tor", "Ul", "Val", "Wen", "Xan", "Yor", "Zel")
BRAND_TAILS = ("a", "o", "is", "en", "ar", "ix", "um", "ia", "ex", "on")
PRODUCT_ADJECTIVES = ("Classic", "Pro", "Eco", "Smart", "Compact", "Premium", "Essential", "Ultra",
                      "Urban", "Nordic", "Vintage", "Active", "Lite", "Max", "Fresh", "Studio")

# country, region, name group, legal suffix, share of customers, share of vendors
COUNTRIES: tuple[tuple, ...] = (
    ("DE", "Europe", "de", "GmbH", 0.16, 0.22),
    ("GB", "Europe", "en", "Ltd", 0.11, 0.12),
    ("FR", "Europe", "fr", "SAS", 0.10, 0.10),
    ("NL", "Europe", "nl", "B.V.", 0.05, 0.07),
    ("ES", "Europe", "es", "S.L.", 0.05, 0.05),
    ("IT", "Europe", "it", "S.r.l.", 0.05, 0.06),
    ("PL", "Europe", "pl", "sp. z o.o.", 0.03, 0.05),
    ("SE", "Europe", "se", "AB", 0.02, 0.04),
    ("US", "North America", "en", "Inc.", 0.21, 0.15),
    ("CA", "North America", "en", "Inc.", 0.04, 0.03),
    ("AU", "APAC", "en", "Pty Ltd", 0.05, 0.03),
    ("JP", "APAC", "jp", "K.K.", 0.05, 0.03),
    ("SG", "APAC", "en", "Pte. Ltd.", 0.02, 0.02),
    ("BR", "LATAM", "br", "Ltda.", 0.04, 0.02),
    ("MX", "LATAM", "es", "S.A. de C.V.", 0.02, 0.01),
)
# (first names, last names) per name group
NAMES = {
    "de": ("Anna Lukas Marie Felix Sophie Jonas Laura Paul Lena Maximilian Hannah Leon",
           "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann Schulz Koch Richter"),
    "en": ("Oliver Emma James Olivia Jack Amelia Noah Isla Liam Ava Harry Grace",
           "Smith Johnson Brown Taylor Wilson Davies Evans Clarke Walker Wright Miller Thompson"),
    "fr": ("Louis Camille Hugo Chloé Lucas Léa Gabriel Manon Arthur Inès Jules Zoé",
           "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent"),
    "es": ("Lucía Hugo Martina Daniel Sofía Alejandro Valeria Pablo Carmen Diego Elena Javier",
           "García Rodríguez González Fernández López Martínez Sánchez Pérez Gómez Ruiz Díaz Torres"),
    "it": ("Giulia Marco Chiara Luca Francesca Matteo Sara Andrea Elena Davide Alessia Simone",
           "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo"),
    "nl": ("Daan Emma Sem Julia Lucas Tess Finn Sara Milan Anna Jesse Noor",
           "de Jong Jansen de Vries van den Berg Bakker Visser Smit Meijer de Boer Mulder Bos Vos"),
    "pl": ("Jan Zuzanna Antoni Julia Jakub Maja Szymon Hanna Filip Oliwia Kacper Lena",
           "Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak Dąbrowski Mazur"),
    "se": ("Elsa William Alice Hugo Maja Lucas Vera Oscar Ebba Liam Saga Axel",
           "Andersson Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson Gustafsson Pettersson Jonsson"),
    "jp": ("Haruto Yui Sota Hina Riku Mei Yuto Aoi Kaito Sakura Ren Yuna",
           "Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura Kobayashi Kato Yoshida Yamada"),
    "br": ("Miguel Helena Arthur Alice Gael Laura Heitor Valentina Theo Sophia Davi Manuela",
           "Silva Santos Oliveira Souza Rodrigues Ferreira Alves Pereira Lima Gomes Costa Ribeiro"),
}
# Dutch surnames have spaces: split them on the two-letter particles by hand.
NL_LAST = ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer",
           "de Boer", "Mulder", "Bos", "Vos")
BUSINESS_WORDS = ("Logistics", "Consulting", "Retail", "Dental", "Architects", "Engineering",
                  "Hospitality", "Media", "Facilities", "Labs", "Construction", "Trading")

# acquisition channel, share of consumers, share of businesses, drop-out multiplier,
# cost per acquired customer in EUR (0: not a paid channel)
ACQUISITION: tuple[tuple, ...] = (
    ("organic", 0.34, 0.10, 1.00, 0),
    ("paid_search", 0.22, 0.08, 1.10, 32),
    ("social", 0.14, 0.02, 1.25, 26),
    ("affiliate", 0.09, 0.00, 1.15, 19),
    ("email", 0.08, 0.05, 0.85, 0),
    ("referral", 0.13, 0.25, 0.80, 0),
    ("sales", 0.00, 0.50, 0.70, 0),
)
# channel -> (campaign, share of the channel's spend, first and last (month, day) or None)
CAMPAIGNS = {
    "paid_search": (("brand", 0.25, None), ("generic", 0.50, None), ("shopping", 0.25, None)),
    "social": (("prospecting", 0.60, None), ("retargeting", 0.40, None),
               ("holiday_push", 0.45, ((11, 10), (12, 24)))),
    "affiliate": (("cashback", 0.55, None), ("content", 0.45, None)),
}

# Segments of the generator: consumers place B2C and B2B2C orders, businesses B2B orders.
CONSUMER, BUSINESS = 0, 1
# Mon..Sun order intensity.
WEEKDAY = ((0.94, 0.92, 0.93, 0.96, 1.00, 1.12, 1.13), (1.22, 1.25, 1.24, 1.20, 1.02, 0.10, 0.07))
# Jan..Dec order intensity (interpolated smoothly between mid-months).
MONTH = ((0.93, 0.86, 0.94, 0.95, 0.97, 0.93, 0.92, 0.92, 0.98, 1.02, 1.17, 1.33),
         (0.97, 1.00, 1.06, 1.00, 1.00, 1.00, 0.90, 0.82, 1.05, 1.07, 1.06, 0.80))
GROWTH = (math.log(1.28), math.log(1.40))  # per year
# Hour-of-day weights (local time): consumers on weekdays, consumers at weekends, businesses.
HOURS = (
    (0.6, 0.35, 0.2, 0.15, 0.15, 0.25, 0.6, 1.2, 1.8, 2.2, 2.5, 2.7, 3.2, 3.1, 2.8, 2.7, 2.8, 3.0, 3.4, 4.2, 4.8, 4.6, 3.5, 1.8),
    (0.9, 0.6, 0.35, 0.2, 0.15, 0.2, 0.35, 0.7, 1.4, 2.3, 3.0, 3.3, 3.4, 3.3, 3.2, 3.1, 3.1, 3.2, 3.4, 3.9, 4.3, 4.1, 3.2, 1.9),
    (0.05, 0.03, 0.02, 0.02, 0.03, 0.1, 0.4, 1.5, 3.6, 4.8, 5.2, 4.9, 3.6, 4.2, 4.9, 4.7, 4.0, 2.8, 1.5, 0.8, 0.5, 0.35, 0.2, 0.1),
)
# BG/NBD priors per segment, in operational days: gamma shape and mean of the purchase rate,
# beta (a, b) of the drop-out probability, highest rate allowed.
RATE_SHAPE = (0.85, 1.6)
RATE_MEAN = (1 / 80, 1 / 90)
DROPOUT = ((1.3, 2.6), (1.2, 4.0))
RATE_CAP = (1 / 3, 1 / 2)
BUSINESS_ORDER_SHARE = 0.11
B2B2C_SHARE = 0.08          # of consumer orders, placed through partner apps (marketplace_api)
NEVER_BOUGHT = 0.15         # signed-up customers without an order, per purchasing customer
NEVER_BOUGHT_B2B = 0.08     # share of businesses among them
CANCEL = (0.032, 0.02)      # per order
RETURN = (0.07, 0.03)      # per order older than RETURN_AFTER days
RETURN_AFTER = 8
FULL_RETURN = 0.5
# business channel mix and payment methods per (business model, channel)
B2B_LINE_BUDGET = 85        # EUR, median value a business line aims at
B2B_CHANNELS = (("sales_rep", 0.45), ("marketplace_api", 0.35), ("web", 0.20))
PAYMENTS = {
    ("B2C", "web"): (("card", 0.48), ("paypal", 0.30), ("klarna", 0.14), ("apple_pay", 0.08)),
    ("B2C", "mobile"): (("card", 0.33), ("paypal", 0.24), ("apple_pay", 0.28), ("google_pay", 0.15)),
    ("B2B2C", "marketplace_api"): (("card", 0.6), ("paypal", 0.4)),
    ("B2B", "web"): (("invoice", 0.75), ("card", 0.25)),
    ("B2B", "sales_rep"): (("invoice", 1.0),),
    ("B2B", "marketplace_api"): (("invoice", 0.95), ("card", 0.05)),
}
# region -> (shipping fee, free from order value) for consumer orders; businesses pay freight.
SHIPPING = {"Europe": (4.99, 49), "North America": (7.99, 75), "APAC": (12.99, 99), "LATAM": (12.99, 99)}
B2B_FREIGHT = (19.90, 500)
# Conversion of web and mobile sessions, before seasonality and noise; always kept in the bounds.
CONVERSION = {"web": 0.029, "mobile": 0.021}
CONVERSION_BOUNDS = (0.017, 0.037)

REGIONS = ("Europe", "North America", "APAC", "LATAM")
COUNTRY_REGION = np.array([REGIONS.index(c[1]) for c in COUNTRIES], np.int8)
PAYMENT_METHODS = tuple(sorted({m for opts in PAYMENTS.values() for m, _ in opts}))
ORDER_ATTRS = [("status", "i1"), ("channel", "i1"), ("method", "i1"), ("payment", "i1"), ("fee", "i4")]
INVENTORY_WEEKS = 12
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "returned")
CHANNELS = ("web", "mobile", "marketplace_api", "sales_rep")
MODELS = ("B2C", "B2B", "B2B2C")
PAYMENT_STATUSES = ("captured", "failed", "refunded", "partially_refunded")
KPI_METRICS = ("gmv", "net_revenue", "orders", "aov", "new_customers", "conversion_rate", "gross_margin")
CONTRACT_TABLES = ("order_items", "orders", "inventory_snapshots", "products", "customers", "vendors",
                   "traffic_daily", "marketing_spend", "kpi_targets")
LINES_PER_CHUNK = 100_000
YEARS = 3

# --------------------------------------------------------------------------------------------
# Public interface
# --------------------------------------------------------------------------------------------


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
    bar = _Progress(int(n_lines), enabled=progress)

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
            with _bulk_load(conn, bar):
                counts = _generate_and_write(conn, int(n_lines), int(seed), end, settings.timezone, bar)
            from data.rollups import refresh_rollups

            refresh_rollups(conn, full=True, timezone=settings.timezone,
                            progress=lambda step: bar.phase(f"refreshing rollups: {step}"))
            bar.phase("writing KPI targets")
            _write_targets(conn, np.random.default_rng([int(seed), 9]), counts["start"], end)
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


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------


@dataclass
class _Calendar:
    start: date
    days: int
    weekday: np.ndarray        # 0 = Monday
    intensity: np.ndarray      # (2, days), mean 1 per segment
    growth: np.ndarray         # (2, days)
    promo: np.ndarray          # bool, sale days with more discounts
    holiday_season: np.ndarray  # float in [0, 1], conversion uplift weight

    def warp(self, seg: int) -> np.ndarray:
        """Returns cumulative operational time at each day boundary (days + 1 values)."""
        return np.concatenate([[0.0], np.cumsum(self.intensity[seg])])


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February
        return d.replace(year=d.year - years, day=28)


def _thanksgiving(year: int) -> date:
    first = date(year, 11, 1)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 21)


def _calendar(rng: np.random.Generator, end: date) -> _Calendar:
    start = _years_before(end, YEARS) + timedelta(days=1)
    n = (end - start).days + 1
    idx = pd.date_range(start, periods=n, freq="D")
    weekday = idx.weekday.to_numpy()
    doy = idx.dayofyear.to_numpy().astype(float)
    mid = np.array([15.5 + 30.44 * m for m in range(12)])
    factor = np.ones((2, n))
    for seg in (CONSUMER, BUSINESS):
        month = np.array(MONTH[seg])
        smooth = np.interp(doy, np.concatenate([mid - 365.25, mid, mid + 365.25]), np.tile(month, 3))
        factor[seg] = np.array(WEEKDAY[seg])[weekday] * smooth
    events: dict[date, tuple[float, float]] = {}
    promo = np.zeros(n, bool)
    for year in range(start.year, end.year + 1):
        bf = _thanksgiving(year) + timedelta(days=1)
        for k in range(-4, 0):
            events[bf + timedelta(days=k)] = (1.25, 1.05)
        events.update({bf: (2.6, 1.15), bf + timedelta(1): (1.7, 1.0), bf + timedelta(2): (1.6, 1.0),
                       bf + timedelta(3): (2.1, 1.1)})
        for day in range(14, 21):
            events[date(year, 12, day)] = (1.15, 1.0)
        events.update({date(year, 12, 24): (0.75, 0.3), date(year, 12, 25): (0.55, 0.1),
                       date(year, 12, 26): (0.9, 0.2), date(year, 12, 31): (0.7, 0.2),
                       date(year, 1, 1): (0.6, 0.1)})
        for day in range(27, 31):
            events[date(year, 12, day)] = (1.0, 0.5)
        july = date(year, 7, 1)
        sale = july + timedelta(days=(1 - july.weekday()) % 7 + 7)  # second Tuesday of July
        events.update({sale: (1.6, 1.0), sale + timedelta(1): (1.5, 1.0)})
        for d in (bf, bf + timedelta(1), bf + timedelta(2), bf + timedelta(3), sale, sale + timedelta(1)):
            if start <= d <= end:
                promo[(d - start).days] = True
    for d, (c, b) in events.items():
        if start <= d <= end:
            factor[:, (d - start).days] *= (c, b)
    # Two outage days a year or so: something for anomaly alerts to find.
    calm = np.flatnonzero(~promo & (factor[CONSUMER] < 1.3))
    for k in rng.choice(calm, size=max(1, n // 500), replace=False):
        factor[:, k] *= 0.55
    noise = np.exp(rng.normal(0, 0.06, (2, n)))
    intensity = factor * noise
    intensity /= intensity.mean(axis=1, keepdims=True)
    years = np.arange(n) / 365.25
    growth = np.exp(np.outer(GROWTH, years))
    season = np.clip(((idx.month == 11) & (idx.day >= 15)) | ((idx.month == 12) & (idx.day <= 20)), 0, 1)
    return _Calendar(start, n, weekday, intensity, growth, promo, season.astype(float))


def _repeat_rate(rng: np.random.Generator, seg: int, ages: np.ndarray) -> np.ndarray:
    """Returns expected repeat orders per operational day at each age after the first order."""
    p = _dropout(rng, seg, _acquisition_channels(rng, seg, 1500))
    shape, mean = RATE_SHAPE[seg], RATE_MEAN[seg]
    theta = mean / shape
    # E over lambda ~ gamma(shape, theta) of lambda * exp(-lambda * p * age), averaged over p.
    return ((1 - p)[:, None] * shape * theta
            / (1 + theta * p[:, None] * ages[None, :]) ** (shape + 1)).mean(axis=0)


def _acquisition_channels(rng: np.random.Generator, seg: int, n: int) -> np.ndarray:
    w = np.array([row[1 + seg] for row in ACQUISITION])
    return rng.choice(len(ACQUISITION), size=n, p=w / w.sum())


def _dropout(rng: np.random.Generator, seg: int, channel: np.ndarray) -> np.ndarray:
    a, b = DROPOUT[seg]
    mult = np.array([row[3] for row in ACQUISITION])[channel]
    return np.clip(rng.beta(a, b, len(channel)) * mult, 0.01, 0.95)


def _acquisition_density(rng: np.random.Generator, cal: _Calendar, seg: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns (acquisitions, orders) per operational day so that orders follow growth."""
    warp = cal.warp(seg)
    cells = np.arange(cal.days) + 0.5
    target = cal.growth[seg][np.minimum(np.interp(cells, warp, np.arange(cal.days + 1)).astype(int), cal.days - 1)]
    m = _repeat_rate(rng, seg, np.arange(cal.days, dtype=float))
    acq = np.zeros(cal.days)
    for k in range(cal.days):
        repeat = acq[:k][::-1] @ m[1:k + 1] if k else 0.0
        acq[k] = max(target[k] - repeat, 0.05 * target[k])
    return acq, target


@dataclass
class _People:
    """Customers (index = final customer_id - 1 after sorting by signup)."""
    segment: np.ndarray
    country: np.ndarray
    channel: np.ndarray
    acquired: np.ndarray     # local seconds since the start of the window
    mobile: np.ndarray       # consumers: propensity to order on mobile
    b2b_channel: np.ndarray  # businesses: preferred order channel


@dataclass
class _Orders:
    """The order skeleton, sorted by time: index = order_id - 1."""
    customer: np.ndarray
    day: np.ndarray
    second: np.ndarray       # local seconds since midnight
    model: np.ndarray        # index into MODELS
    lines: np.ndarray


def _draw_hours(rng: np.random.Generator, seg: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Returns local seconds since midnight drawn from the hour-of-day profiles."""
    profile = np.where(seg == BUSINESS, 2, np.where(weekday >= 5, 1, 0)).astype(np.int8)
    cdf = np.cumsum(np.array(HOURS), axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(seg))
    hour = np.empty(len(seg), np.int32)
    for k in range(3):
        sel = profile == k
        hour[sel] = np.minimum(np.searchsorted(cdf[k], u[sel], side="right"), 23)
    del u, profile
    return hour * 3600 + rng.integers(0, 3600, len(seg), dtype=np.int32)


def _lines_per_order(rng: np.random.Generator, model: np.ndarray) -> np.ndarray:
    n = len(model)
    lines = 1 + rng.poisson(0.6, n)
    lines[model == 2] = 1 + rng.poisson(0.45, int((model == 2).sum()))
    b2b = model == 1
    lines[b2b] = 1 + rng.negative_binomial(1.2, 1.2 / (1.2 + 2.6), int(b2b.sum()))
    return np.minimum(lines, 60).astype(np.int16)


def _simulate(rng: np.random.Generator, cal: _Calendar, n_lines: int) -> tuple[_People, _Orders]:
    """Returns customers and the time-sorted order skeleton with exactly n_lines lines.

    Arrays are kept narrow (int8/16/32): at 10M lines there are ~5M orders and ~2M customers.
    """
    mean_lines = ((1 - BUSINESS_ORDER_SHARE) * ((1 - B2B2C_SHARE) * 1.6 + B2B2C_SHARE * 1.45)
                  + BUSINESS_ORDER_SHARE * 3.6)
    overshoot = 1.08
    density = [_acquisition_density(rng, cal, seg) for seg in (CONSUMER, BUSINESS)]
    while True:
        want = n_lines / mean_lines * overshoot
        parts = []
        for seg, share in ((CONSUMER, 1 - BUSINESS_ORDER_SHARE), (BUSINESS, BUSINESS_ORDER_SHARE)):
            acq, target = density[seg]
            customers = max(3, int(round(acq.sum() * want * share / target.sum())))
            parts.append(_simulate_segment(rng, cal, seg, acq, customers))
        if sum(int(p[4].sum(dtype=np.int64)) for p in parts) >= n_lines:
            break
        overshoot *= 1.25  # unlucky at small sizes: a few more customers and try again
    seg = np.concatenate([np.full(len(p[0]), s, np.int8) for s, p in enumerate(parts)])
    acquired_day = np.concatenate([p[0] for p in parts])
    offsets = np.cumsum([0] + [len(p[0]) for p in parts])
    cust = np.concatenate([p[1] + np.int32(offsets[s]) for s, p in enumerate(parts)])
    day = np.concatenate([p[2] for p in parts])
    model = np.concatenate([p[3] for p in parts])
    lines = np.concatenate([p[4] for p in parts])
    del parts

    # Thin orders at random to exactly n_lines: every order is equally likely to go, so no
    # pattern is bent; the few lines missing then are added to random orders.
    perm = rng.permutation(len(lines)).astype(np.int32)
    keep = perm[np.cumsum(lines[perm], dtype=np.int64) <= n_lines]
    del perm
    keep.sort()
    cust, day, model, lines = cust[keep], day[keep], model[keep], lines[keep]
    del keep
    short = n_lines - int(lines.sum(dtype=np.int64))
    if short:
        np.add.at(lines, rng.integers(0, len(lines), short), 1)
    second = _draw_hours(rng, seg[cust], cal.weekday[day]).astype(np.int32)
    order = np.argsort(day.astype(np.int64) * 86400 + second, kind="stable")
    cust, day, second, model, lines = cust[order], day[order], second[order], model[order], lines[order]
    del order

    # Customers: sign-up shortly (minutes to weeks) before the first order; those whose orders
    # were all thinned away, and people who never bought, keep their acquisition time.
    n_cust = len(seg)
    acquired = acquired_day.astype(np.int64) * 86400 + _draw_hours(rng, seg, cal.weekday[acquired_day])
    first_idx = np.full(n_cust, len(cust), np.int64)
    np.minimum.at(first_idx, cust, np.arange(len(cust)))
    has = first_idx < len(cust)
    first_at = day[first_idx[has]].astype(np.int64) * 86400 + second[first_idx[has]]
    del first_idx
    kind = rng.random(len(first_at))
    delay = np.where(kind < 0.55, rng.integers(60, 1800, len(kind)),
                     np.where(kind < 0.85, (rng.exponential(3, len(kind)) * 86400).astype(np.int64),
                              (rng.exponential(40, len(kind)) * 86400).astype(np.int64)))
    acquired[has] = first_at - np.minimum(np.maximum(delay, 60), np.maximum(first_at // 2, 60))
    del first_at, delay, kind, has
    never = int(round(NEVER_BOUGHT * n_cust))
    never_seg = np.where(rng.random(never) < NEVER_BOUGHT_B2B, BUSINESS, CONSUMER).astype(np.int8)
    never_day = np.minimum((rng.random(never) ** 0.8 * cal.days).astype(int), cal.days - 1)
    seg_all = np.concatenate([seg, never_seg])
    acquired = np.concatenate([acquired, never_day * 86400 + _draw_hours(rng, never_seg, cal.weekday[never_day])])
    total_c = len(seg_all)
    channel = np.empty(total_c, np.int8)
    for s in (CONSUMER, BUSINESS):
        sel = seg_all == s
        channel[sel] = _acquisition_channels(rng, s, int(sel.sum()))
    country = _draw_countries(rng, total_c, column=4).astype(np.int8)
    drift = np.clip(acquired / (cal.days * 86400), 0, 1)
    mobile = np.clip(0.38 + 0.2 * drift + rng.normal(0, 0.25, total_c), 0.03, 0.97).astype(np.float32)
    del drift
    w = np.array([x[1] for x in B2B_CHANNELS])
    b2b_channel = rng.choice(len(B2B_CHANNELS), size=total_c, p=w / w.sum()).astype(np.int8)

    # customer_id in order of sign-up
    by_signup = np.argsort(acquired, kind="stable")
    rank = np.empty(total_c, np.int32)
    rank[by_signup] = np.arange(total_c, dtype=np.int32)
    people = _People(seg_all[by_signup], country[by_signup], channel[by_signup], acquired[by_signup],
                     mobile[by_signup], b2b_channel[by_signup])
    return people, _Orders(rank[cust], day, second, model, lines)


def _simulate_segment(rng: np.random.Generator, cal: _Calendar, seg: int, acq: np.ndarray,
                      customers: int) -> tuple[np.ndarray, ...]:
    """Returns (acquisition day, order customer, order day, order model, order lines) for one segment."""
    cdf = np.cumsum(acq) / acq.sum()
    tau0 = np.minimum(np.searchsorted(cdf, rng.random(customers)), cal.days - 1) + rng.random(customers)
    channel = _acquisition_channels(rng, seg, customers)
    p = _dropout(rng, seg, channel)
    del channel
    shape, mean = RATE_SHAPE[seg], RATE_MEAN[seg]
    lam = np.minimum(rng.gamma(shape, mean / shape, customers), RATE_CAP[seg])
    warp = cal.warp(seg)
    grid = np.arange(cal.days + 1, dtype=float)

    def to_day(tau: np.ndarray) -> np.ndarray:
        return np.minimum(np.interp(tau, warp, grid).astype(np.int16), cal.days - 1).astype(np.int16)

    cust = np.arange(customers, dtype=np.int32)
    tau = tau0
    who, when = [cust], [to_day(tau0)]
    while len(cust):
        alive = rng.random(len(cust)) >= p[cust]
        cust, tau = cust[alive], tau[alive]
        tau = tau + rng.exponential(1.0, len(cust)) / lam[cust]
        inside = tau < cal.days
        cust, tau = cust[inside], tau[inside]
        who.append(cust)
        when.append(to_day(tau))
    cust = np.concatenate(who)
    del who
    day = np.concatenate(when)
    del when
    if seg == CONSUMER:
        model = np.where(rng.random(len(cust)) < B2B2C_SHARE, 2, 0).astype(np.int8)
    else:
        model = np.ones(len(cust), np.int8)
    return to_day(tau0), cust, day, model, _lines_per_order(rng, model)


def _draw_countries(rng: np.random.Generator, n: int, column: int) -> np.ndarray:
    w = np.array([row[column] for row in COUNTRIES])
    return rng.choice(len(COUNTRIES), size=n, p=w / w.sum())


@dataclass
class _Catalog:
    """What lines pick from: index = vendor_id - 1 and product_id - 1."""
    vendors: int
    vendor_keys: np.ndarray          # (2 segments, weeks, vendors) raveled: row + cumulative weight
    weeks: int
    product_vendor: np.ndarray
    product_keys: np.ndarray         # vendor + cumulative popularity within the vendor
    product_created: np.ndarray      # day index (may be negative: before the window)
    vendor_first_product: np.ndarray
    list_cents: np.ndarray
    cost_cents: np.ndarray
    product_category: np.ndarray
    vendor_closed: np.ndarray


def _vendor_count(n_lines: int) -> int:
    return int(np.clip(round(n_lines / 500), 30, 2000))


def _vendors(rng: np.random.Generator, cal: _Calendar, n_lines: int) -> tuple[pd.DataFrame, _Catalog, pd.DataFrame]:
    """Returns (vendors frame, catalog for picking lines, products frame)."""
    n = _vendor_count(n_lines)
    cat_share = np.array([c[8] for c in CATEGORIES])
    category = rng.choice(len(CATEGORIES), size=n, p=cat_share / cat_share.sum())
    # Stratified lognormal sizes: the same heavy tail at 30 vendors as at 2,000, in random order.
    strata = (rng.permutation(n) + rng.random(n)) / n
    size = np.exp(1.1 * np.array([NormalDist().inv_cdf(u) for u in strata]))
    founding = rng.random(n) < 0.3
    founding[np.argsort(-size)[:5]] = True  # the biggest few were there from day one
    growth_cdf = np.cumsum(cal.growth[CONSUMER][: cal.days - 21])
    growth_cdf /= growth_cdf[-1]
    joined = np.where(founding, -rng.integers(7, 90, n),
                      np.searchsorted(growth_cdf, rng.random(n)))
    sell_from = joined + 7
    stop = np.full(n, np.iinfo(np.int32).max, np.int64)
    status = np.zeros(n, np.int8)  # 0 active, 1 paused, 2 closed
    protected = np.zeros(n, bool)
    protected[np.argsort(-size)[:5]] = True
    # A few close (and stop selling) or pause lately; at least one of each at any size.
    close_day = sell_from + rng.integers(120, cal.days, n)
    can_close = np.flatnonzero(~protected & (close_day < cal.days - 30))
    closing = rng.choice(can_close, size=min(len(can_close), max(1, round(0.07 * n))), replace=False)
    stop[closing] = close_day[closing]
    status[closing] = 2
    can_pause = np.flatnonzero(~protected & (status == 0) & (sell_from < cal.days - 70))
    pausing = rng.choice(can_pause, size=min(len(can_pause), max(1, round(0.05 * n))), replace=False)
    stop[pausing] = cal.days - rng.integers(5, 60, len(pausing))
    status[pausing] = 1
    # vendor_id in order of joining: index = vendor_id - 1 from here on
    order = np.lexsort((np.arange(n), joined))
    category, size, joined, sell_from, stop, status = (
        x[order] for x in (category, size, joined, sell_from, stop, status))

    # Weekly pick weights per segment: size x ramp-up x (businesses) category affinity.
    weeks = (cal.days + 6) // 7
    week_start = np.arange(weeks) * 7
    week_end = np.minimum(week_start + 6, cal.days - 1)
    active = (sell_from[None, :] <= week_start[:, None]) & (stop[None, :] > week_end[:, None])
    ramp = 1 - np.exp(-np.maximum(week_start[:, None] - sell_from[None, :], 0) / 45 - 0.05)
    # Sales weight falls with the category's price level, so that GMV is not all price.
    pull = size * (30.0 / np.array([c[3] for c in CATEGORIES])[category]) ** 0.6
    base = np.where(active, pull[None, :] * ramp, 0.0)
    affinity = np.array([c[7] for c in CATEGORIES])[category]
    weights = np.stack([base, base * affinity[None, :]])            # (2, weeks, n)
    cum = np.cumsum(weights, axis=2)
    cum /= cum[:, :, -1:]
    vendor_keys = (np.arange(2 * weeks).reshape(2, weeks, 1) + cum).ravel()

    # Products: count grows with vendor size; most exist from the start, some come later.
    per_vendor = np.clip(np.round(np.exp(rng.normal(np.log(10), 0.6, n)) * (size / np.median(size)) ** 0.35), 3, 400).astype(int)
    pv = np.repeat(np.arange(n), per_vendor)
    first = np.cumsum(per_vendor) - per_vendor
    k = np.arange(len(pv)) - first[pv]
    initial = k < np.maximum(1, np.ceil(0.7 * per_vendor[pv]))
    # Later products arrive spread over the vendor's selling life, in product order.
    n_initial = np.maximum(1, np.ceil(0.7 * per_vendor)).astype(int)
    life = np.maximum(np.minimum(stop, cal.days - 1) - sell_from, 1)
    spread = (k - n_initial[pv] + rng.random(len(pv))) / np.maximum(per_vendor - n_initial, 1)[pv]
    created = np.where(initial, joined[pv] + rng.integers(0, 7, len(pv)),
                       sell_from[pv] + (spread * life[pv]).astype(np.int64))
    pop = (k + 1.0) ** -0.9 * np.exp(rng.normal(0, 0.4, len(pv))) * np.where(initial, 1.0, 0.5)
    # Search keys vendor + cumulative popularity within the vendor, in (vendor, vendor + 1]:
    # a uniform draw u in (0, 1] finds product searchsorted(keys, vendor + u).
    pcum = np.cumsum(pop)
    last = np.cumsum(per_vendor) - 1
    before = pcum[first] - pop[first]
    product_keys = pv + np.minimum((pcum - before[pv]) / (pcum[last] - before)[pv], 1.0)
    product_keys[last] = np.arange(n) + 1.0

    pcat = category[pv]
    med = np.array([c[3] for c in CATEGORIES])[pcat]
    sigma = np.array([c[4] for c in CATEGORIES])[pcat]
    level = np.exp(rng.normal(0, 0.3, n))[pv]
    raw = np.exp(np.log(med) + rng.normal(0, 1, len(pv)) * sigma) * level
    list_cents = np.where(raw >= 5, np.maximum(np.round(raw), 5) * 100 - 1, np.maximum(np.round(raw * 20), 10) * 5).astype(np.int64)
    margin = np.clip(np.array([c[5] for c in CATEGORIES])[pcat] + rng.normal(0, 0.06, len(pv)), 0.05, 0.8)
    cost_cents = np.minimum(np.round(list_cents * (1 - margin)), list_cents - 1).astype(np.int64)

    names = _vendor_names(rng, category)
    vcountry = _draw_countries(rng, n, column=5)
    commission = np.clip(np.array([c[6] for c in CATEGORIES])[category] + rng.normal(0, 0.01, n)
                         + np.where(size < np.median(size), 0.015, 0), 0.05, 0.20)
    vendors = pd.DataFrame({
        "vendor_id": np.arange(1, n + 1),
        "name": names,
        "category": np.array([c[0] for c in CATEGORIES])[category],
        "region": np.array([c[1] for c in COUNTRIES])[vcountry],
        "country": np.array([c[0] for c in COUNTRIES])[vcountry],
        "joined_on": joined,
        "status": np.array(["active", "paused", "closed"])[status],
        "commission_units": np.round(commission * 1000).astype(np.int64) * 10,  # numeric(5,4) units
    })

    subcats = [c[2] for c in CATEGORIES]
    sub_idx = (rng.random(len(pv)) * np.array([len(s) for s in subcats])[pcat]).astype(int)
    subcategory = np.array([subcats[c][s] for c, s in zip(pcat, sub_idx)], dtype=object)
    adjective = np.array(PRODUCT_ADJECTIVES)[rng.integers(0, len(PRODUCT_ADJECTIVES), len(pv))]
    model_no = rng.integers(100, 1000, len(pv))
    brand = np.array([nm.split(" ")[0] for nm in names], dtype=object)[pv]
    codes = np.array([c[1] for c in CATEGORIES])[pcat]
    vid = pv + 1
    products = pd.DataFrame({
        "vendor_id": vid,
        "sku": [f"{c}-{v:04d}-{kk + 1:04d}" for c, v, kk in zip(codes, vid, k)],
        "name": [f"{b} {a} {s} {m}" for b, a, s, m in zip(brand, adjective, subcategory, model_no)],
        "category": np.array([c[0] for c in CATEGORIES])[pcat],
        "subcategory": subcategory,
        "list_cents": list_cents,
        "cost_cents": cost_cents,
        "created": created,
    })
    # product_id = position + 1: grouped by vendor, each vendor's in order of creation
    products.insert(0, "product_id", np.arange(1, len(pv) + 1))
    catalog = _Catalog(n, vendor_keys, weeks, pv, product_keys, created, first, list_cents, cost_cents,
                       pcat, status == 2)
    return vendors, catalog, products


def _vendor_names(rng: np.random.Generator, category: np.ndarray) -> list[str]:
    stems = [h + t for h in BRAND_HEADS for t in BRAND_TAILS]
    names: list[str] = [""] * len(category)
    for c in np.unique(category):
        rows = np.flatnonzero(category == c)
        words = VENDOR_WORDS[CATEGORIES[c][0]]
        combos = len(stems) * len(words)
        pick = rng.choice(combos, size=len(rows), replace=len(rows) > combos)
        for r, x in zip(rows, pick):
            names[r] = f"{stems[x // len(words)]} {words[x % len(words)]}"
    return names


def _customer_names(rng: np.random.Generator, people: _People) -> tuple[np.ndarray, tuple[str, ...]]:
    """Returns (code per customer, names): a person for consumers, a company for businesses.

    Names are codes into a small vocabulary so that millions of customers cost no strings.
    """
    labels: list[str] = []
    codes = np.empty(len(people.segment), np.int32)
    business = people.segment == BUSINESS
    for k, (_, _, group, suffix, _, _) in enumerate(COUNTRIES):
        firsts, lasts = NAMES[group][0].split(), (NL_LAST if group == "nl" else NAMES[group][1].split())
        here = people.country == k
        for is_b2b, size in ((False, len(firsts)), (True, len(BUSINESS_WORDS))):
            rows = np.flatnonzero(here & (business == is_b2b))
            pick = rng.integers(0, size * len(lasts), len(rows))
            codes[rows] = len(labels) + pick
            if is_b2b:
                labels += [f"{lasts[x % len(lasts)]} {BUSINESS_WORDS[x // len(lasts)]} {suffix}"
                           for x in range(size * len(lasts))]
            else:
                labels += [f"{firsts[x // len(lasts)]} {lasts[x % len(lasts)]}" for x in range(size * len(lasts))]
    return codes, tuple(labels)


def _generate_and_write(conn: Connection, n_lines: int, seed_: int, end: date, tz: str,
                        bar: "_Progress") -> dict:
    """Generates every contract table except kpi_targets and COPYs it; returns counts."""
    streams = np.random.default_rng(seed_).spawn(8)
    bar.phase("planning vendors, customers and orders")
    cal = _calendar(streams[0], end)
    vendors, catalog, products = _vendors(streams[1], cal, n_lines)
    people, skeleton = _simulate(streams[2], cal, n_lines)
    # COPY through the driver connection of the same transaction.
    cur = conn.connection.driver_connection.cursor()
    start_days = (cal.start - date(2000, 1, 1)).days

    _copy(cur, "vendors", [
        ("vendor_id", "int4", vendors["vendor_id"].to_numpy()),
        ("name", "text", vendors["name"].to_numpy()),
        ("category", "text", vendors["category"].to_numpy()),
        ("region", "text", vendors["region"].to_numpy()),
        ("country", "text", vendors["country"].to_numpy()),
        ("joined_on", "date", vendors["joined_on"].to_numpy() + start_days),
        ("status", "text", vendors["status"].to_numpy()),
        ("commission_rate", "numeric4", vendors["commission_units"].to_numpy()),
    ])
    _copy(cur, "products", [
        ("product_id", "int4", products["product_id"].to_numpy()),
        ("vendor_id", "int4", products["vendor_id"].to_numpy()),
        ("sku", "text", products["sku"].to_numpy()),
        ("name", "text", products["name"].to_numpy()),
        ("category", "text", products["category"].to_numpy()),
        ("subcategory", "text", products["subcategory"].to_numpy()),
        ("list_price", "numeric2", products["list_cents"].to_numpy()),
        ("unit_cost", "numeric2", products["cost_cents"].to_numpy()),
        ("created_on", "date", products["created"].to_numpy() + start_days),
    ])
    _copy(cur, "customers", [
        ("customer_id", "int4", np.arange(1, len(people.segment) + 1)),
        ("name", "text", _customer_names(streams[3], people)),  # (codes, labels)
        ("country", "text", (people.country, tuple(c[0] for c in COUNTRIES))),
        ("region", "text", (people.country, tuple(c[1] for c in COUNTRIES))),
        ("segment", "text", (people.segment, ("B2C", "B2B"))),
        ("acquisition_channel", "text", (people.channel, tuple(a[0] for a in ACQUISITION))),
        ("signup_at", "timestamptz", _utc_micros(cal.start, people.acquired, tz)),
    ])

    lines_rng = streams[4]
    per_day = np.zeros((cal.days, 2), np.int64)      # counted web, mobile orders
    units = np.zeros((len(products), INVENTORY_WEEKS), np.int64)
    attrs = np.zeros(len(skeleton.lines), dtype=ORDER_ATTRS)
    ends = np.cumsum(skeleton.lines, dtype=np.int64)
    edges = np.unique(np.concatenate([
        [0], np.searchsorted(ends, np.arange(LINES_PER_CHUNK, n_lines, LINES_PER_CHUNK)) + 1, [len(ends)]]))
    del ends
    bar.start()
    # Foreign keys are off while loading, so all lines go first in one COPY stream (the server
    # ingests while the next chunk is generated) and their orders follow.
    with _copy_into(cur, "order_items") as send:
        for lo, hi in zip(edges[:-1], edges[1:]):
            columns = _order_lines(lines_rng, cal, catalog, people, skeleton, int(lo), int(hi), attrs,
                                   per_day, units)
            send(columns)
            bar.advance(len(columns[0][2]))
    with _copy_into(cur, "orders") as send:
        for lo in range(0, len(attrs), ROWS_PER_COPY_BLOCK):
            hi = min(lo + ROWS_PER_COPY_BLOCK, len(attrs))
            part = attrs[lo:hi]
            send([
                ("order_id", "int8", np.arange(lo + 1, hi + 1, dtype=np.int64)),
                ("customer_id", "int4", skeleton.customer[lo:hi] + 1),
                ("ordered_at", "timestamptz", _utc_micros(
                    cal.start, skeleton.day[lo:hi].astype(np.int64) * 86400 + skeleton.second[lo:hi], tz)),
                ("status", "text", (part["status"], STATUSES)),
                ("channel", "text", (part["channel"], CHANNELS)),
                ("business_model", "text", (skeleton.model[lo:hi], MODELS)),
                ("payment_method", "text", (part["method"], PAYMENT_METHODS)),
                ("payment_status", "text", (part["payment"], PAYMENT_STATUSES)),
                ("currency", "text", (np.zeros(hi - lo, np.int8), ("EUR",))),
                ("shipping_fee", "numeric2", part["fee"]),
            ])
    del attrs

    bar.phase("writing traffic, marketing and inventory")
    _write_traffic(cur, streams[5], cal, per_day)
    _write_marketing(cur, streams[6], cal, people)
    _write_inventory(cur, streams[7], cal, catalog, units, end)
    return {"vendors": len(vendors), "products": len(products), "customers": len(people.segment),
            "orders": len(skeleton.lines), "order_lines": int(skeleton.lines.sum()), "start": cal.start}


def _order_lines(rng: np.random.Generator, cal: _Calendar, catalog: _Catalog, people: _People,
                 sk: _Orders, lo: int, hi: int, attrs: np.ndarray, per_day: np.ndarray,
                 units: np.ndarray) -> list[tuple[str, str, object]]:
    """Returns the order_items columns of orders lo..hi-1; fills their attrs, traffic and stock counts."""
    n = hi - lo
    oid = np.arange(lo + 1, hi + 1, dtype=np.int64)
    cust = sk.customer[lo:hi]
    day = sk.day[lo:hi].astype(np.int64)
    model = sk.model[lo:hi]
    nl = sk.lines[lo:hi].astype(np.int64)
    seg = (model == 1).astype(np.int64)
    age = cal.days - 1 - day

    # channel
    channel = np.empty(n, np.int8)
    b2c = model == 0
    channel[b2c] = np.where(rng.random(int(b2c.sum())) < people.mobile[cust[b2c]], 1, 0)
    channel[model == 2] = 2
    b2b = model == 1
    pref = people.b2b_channel[cust[b2b]]
    other = rng.integers(0, len(B2B_CHANNELS), int(b2b.sum()))
    pick = np.where(rng.random(int(b2b.sum())) < 0.85, pref, other)
    channel[b2b] = np.array([CHANNELS.index(c) for c, _ in B2B_CHANNELS])[pick]

    # lines
    total = int(nl.sum())
    line_order = np.repeat(np.arange(n), nl)
    starts = np.cumsum(nl) - nl
    line_no = np.arange(total) - starts[line_order] + 1
    lday = day[line_order]
    lseg = seg[line_order]
    row = lseg * catalog.weeks + lday // 7
    flat = np.searchsorted(catalog.vendor_keys, row + (1.0 - rng.random(total)), side="left")
    vendor = flat - row * catalog.vendors
    product = np.searchsorted(catalog.product_keys, vendor + (1.0 - rng.random(total)), side="left")
    too_new = catalog.product_created[product] > lday
    product[too_new] = catalog.vendor_first_product[vendor[too_new]]
    pcat = catalog.product_category[product]
    qty_p = np.array([c[9] for c in CATEGORIES])[pcat]
    price = np.round(catalog.list_cents[product] * np.exp(rng.normal(0, 0.025, total))).astype(np.int64)
    price = np.maximum(price, 1)
    qty = rng.geometric(qty_p)
    lb2b = lseg == 1
    # Businesses buy to a budget per line: many cheap units or one expensive one.
    budget = np.exp(rng.normal(np.log(B2B_LINE_BUDGET * 100), 0.8, int(lb2b.sum())))
    qty[lb2b] = np.maximum(np.round(budget / price[lb2b]), 1)
    qty = np.minimum(qty, 500).astype(np.int64)
    gross = qty * price
    promo = cal.promo[lday]
    disc_p = np.where(lb2b, np.where(qty >= 10, 0.6, 0.05), np.where(promo, 0.4, 0.1))
    pct = np.where(lb2b, rng.uniform(0.03, 0.12, total), rng.uniform(0.05, 0.25, total))
    discount = np.where(rng.random(total) < disc_p, np.round(gross * pct), 0).astype(np.int64)
    value = gross - discount

    # status, payment and refunds
    cancel = rng.random(n) < np.where(seg == 1, CANCEL[1], CANCEL[0])
    pay_failed = cancel & (rng.random(n) < 0.45)
    returning = ~cancel & (age >= RETURN_AFTER) & (rng.random(n) < np.where(seg == 1, RETURN[1], RETURN[0]))
    full = returning & (rng.random(n) < FULL_RETURN)
    partial = returning & ~full
    lret_full = (full | (cancel & ~pay_failed))[line_order]
    lpartial = partial[line_order]
    chosen = lpartial & (rng.random(total) < 0.5)
    # a partial return refunds at least one line
    none_chosen = partial & (np.bincount(line_order, weights=chosen, minlength=n) == 0)
    chosen[starts[none_chosen]] = True
    share = np.where(rng.random(total) < 0.6, 1.0, rng.uniform(0.2, 0.8, total))
    refunded = np.where(lret_full, value, np.where(chosen, np.round(value * share), 0)).astype(np.int64)
    refunded = np.minimum(refunded, value)
    order_value = np.bincount(line_order, weights=value, minlength=n)
    order_refund = np.bincount(line_order, weights=refunded, minlength=n)
    all_back = returning & (order_refund >= order_value)
    some_back = returning & ~all_back & (order_refund > 0)

    status = np.full(n, STATUSES.index("delivered"), np.int8)
    u = rng.random(n)
    status[age == 0] = np.where(u[age == 0] < 0.55, 0, 1)
    status[age == 1] = np.where(u[age == 1] < 0.35, 1, 2)
    mid = (age >= 2) & (age <= 3)
    status[mid] = np.where(u[mid] < 0.8, 2, 3)
    late = (age >= 4) & (age <= 7)
    status[late] = np.where(u[late] < 0.25, 2, 3)
    status[all_back] = STATUSES.index("returned")
    status[cancel] = STATUSES.index("cancelled")
    pstatus = np.zeros(n, np.int8)
    pstatus[some_back] = PAYMENT_STATUSES.index("partially_refunded")
    pstatus[all_back | (cancel & ~pay_failed)] = PAYMENT_STATUSES.index("refunded")
    pstatus[pay_failed] = PAYMENT_STATUSES.index("failed")

    # payment method
    method = np.zeros(n, np.int8)
    for (bm, ch), opts in PAYMENTS.items():
        sel = (model == MODELS.index(bm)) & (channel == CHANNELS.index(ch))
        if sel.any():
            w = np.array([o[1] for o in opts])
            codes = np.array([PAYMENT_METHODS.index(o[0]) for o in opts])
            method[sel] = codes[rng.choice(len(opts), size=int(sel.sum()), p=w / w.sum())]

    # shipping
    region = COUNTRY_REGION[people.country[cust]]
    fee = np.zeros(n, np.int32)
    for r, (amount, free_from) in SHIPPING.items():
        sel = (model == 0) & (region == REGIONS.index(r)) & (order_value < free_from * 100)
        fee[sel] = round(amount * 100)
    fee[(model == 1) & (order_value < B2B_FREIGHT[1] * 100)] = round(B2B_FREIGHT[0] * 100)
    out = attrs[lo:hi]
    out["status"], out["channel"], out["method"], out["payment"], out["fee"] = status, channel, method, pstatus, fee

    counted = ~cancel
    web_mobile = counted & (channel <= 1)
    np.add.at(per_day, (day[web_mobile], channel[web_mobile]), 1)
    recent = (~cancel)[line_order] & (cal.days - 1 - lday < 7 * units.shape[1])
    bucket = (cal.days - 1 - lday[recent]) // 7
    flat_units = np.bincount(product[recent] * units.shape[1] + bucket, weights=qty[recent],
                             minlength=units.size)
    units += flat_units.reshape(units.shape).astype(np.int64)
    return [
        ("order_id", "int8", oid[line_order]),
        ("line_no", "int4", line_no),
        ("product_id", "int4", product + 1),
        ("vendor_id", "int4", vendor + 1),
        ("quantity", "int4", qty),
        ("unit_price", "numeric2", price),
        ("discount", "numeric2", discount),
        ("unit_cost", "numeric2", catalog.cost_cents[product]),
        ("refunded_amount", "numeric2", refunded),
    ]


def _write_traffic(cur, rng: np.random.Generator, cal: _Calendar, per_day: np.ndarray) -> None:
    """Writes web and mobile sessions and funnel steps consistent with the day's orders."""
    years = np.arange(cal.days) / 365.25
    orders = per_day.astype(float)                              # (days, 2) web, mobile
    cr = np.stack([CONVERSION[name] * (1 + 0.04 * years) * (1 + 0.18 * cal.holiday_season)
                   * np.exp(rng.normal(0, 0.07, cal.days)) for name in ("web", "mobile")], axis=1)
    cr = np.clip(cr, *CONVERSION_BOUNDS)
    # A channel without orders that day still had visitors: as if it had 0.4 orders.
    sessions = np.maximum(orders, 0.4) / cr
    # Keep web + mobile together inside the bounds as well, whatever the rounding.
    together = orders.sum(axis=1) / sessions.sum(axis=1)
    lo, hi = CONVERSION_BOUNDS
    fix = np.where(together > 0, np.clip(together, lo, hi) / np.where(together > 0, together, 1), 1.0)
    sessions = np.maximum(np.round(sessions / fix[:, None]), 2).astype(np.int64)
    rows = []
    for k in range(2):
        o = orders[:, k]
        s_k = sessions[:, k]
        views = np.round(s_k * rng.uniform(0.55, 0.68, cal.days)).astype(np.int64)
        carts = np.round(s_k * rng.uniform(0.085, 0.12, cal.days)).astype(np.int64)
        checkouts = (o + np.round(o * rng.uniform(0.25, 0.55, cal.days))).astype(np.int64)
        # keep the funnel strictly narrowing even for tiny counts
        carts = np.maximum(carts, checkouts + 1)
        views = np.maximum(views, carts + 1)
        s_k = np.maximum(s_k, views + 1)
        rows.append((np.arange(cal.days), np.full(cal.days, k, np.int8), s_k, views, carts, checkouts))
    day, ch, s, v, c, co = (np.concatenate(x) for x in zip(*rows))
    order = np.lexsort((ch, day))
    start_days = (cal.start - date(2000, 1, 1)).days
    _copy(cur, "traffic_daily", [
        ("day", "date", day[order] + start_days),
        ("channel", "text", (ch[order], ("web", "mobile"))),
        ("sessions", "int4", s[order]),
        ("product_views", "int4", v[order]),
        ("add_to_carts", "int4", c[order]),
        ("checkouts", "int4", co[order]),
    ])


def _write_marketing(cur, rng: np.random.Generator, cal: _Calendar, people: _People) -> None:
    """Writes daily spend per paid channel and campaign, following the customers it acquires."""
    signup_day = np.clip(people.acquired // 86400, 0, cal.days - 1)
    idx = pd.date_range(cal.start, periods=cal.days, freq="D")
    md = idx.month.to_numpy() * 100 + idx.day.to_numpy()
    q4 = np.isin(idx.month.to_numpy(), (11, 12))
    years = np.arange(cal.days) / 365.25
    out_day, out_ch, out_camp, out_cents = [], [], [], []
    names = [a[0] for a in ACQUISITION]
    campaign_names: list[str] = []
    for channel, campaigns in CAMPAIGNS.items():
        a = names.index(channel)
        cac = ACQUISITION[a][4]
        acquired = np.bincount(signup_day[people.channel == a], minlength=cal.days).astype(float)
        smooth = np.convolve(acquired, np.ones(15) / 15, mode="same")
        spend = cac * np.maximum(smooth, 0.05) * (1.08 ** years) * np.where(q4, 1.2, 1.0) * np.exp(rng.normal(0, 0.12, cal.days))
        for campaign, share, window in campaigns:
            if window is None:
                on = np.ones(cal.days, bool)
            else:
                (m1, d1), (m2, d2) = window
                on = (md >= m1 * 100 + d1) & (md <= m2 * 100 + d2)
            cents = np.round(spend * share * np.exp(rng.normal(0, 0.15, cal.days)) * 100).astype(np.int64)
            days = np.flatnonzero(on)
            campaign_names.append(campaign)
            out_day.append(days)
            out_ch.append(np.full(len(days), list(CAMPAIGNS).index(channel), np.int8))
            out_camp.append(np.full(len(days), len(campaign_names) - 1, np.int16))
            out_cents.append(cents[on])
    day, ch, camp, cents = (np.concatenate(x) for x in (out_day, out_ch, out_camp, out_cents))
    order = np.lexsort((camp, ch, day))
    start_days = (cal.start - date(2000, 1, 1)).days
    _copy(cur, "marketing_spend", [
        ("day", "date", day[order] + start_days),
        ("channel", "text", (ch[order], tuple(CAMPAIGNS))),
        ("campaign", "text", (camp[order], tuple(campaign_names))),
        ("spend", "numeric2", cents[order]),
    ])


def _write_inventory(cur, rng: np.random.Generator, cal: _Calendar, catalog: _Catalog,
                     units: np.ndarray, end: date) -> None:
    """Writes weekly stock for the last 12 weeks: sales draw it down, restocks refill it."""
    n, weeks = units.shape
    sold = units[:, ::-1]                     # oldest week first
    rate = sold.mean(axis=1) + 0.3
    cover = np.exp(rng.normal(np.log(5), 0.5, n))
    kind = rng.random(n)
    cover = np.where(kind < 0.08, cover * 7, np.where(kind < 0.18, cover * 0.08, cover))
    starved = (kind >= 0.08) & (kind < 0.18)
    target = np.maximum(np.round(rate * cover), np.where(starved, 0, rng.integers(3, 15, n))).astype(np.int64)
    stock = target.copy()
    levels = np.empty((n, weeks), np.int64)
    for w in range(weeks):
        stock = np.maximum(stock - sold[:, w], 0)
        low = stock < rate * 2
        refill = low & ~starved & (rng.random(n) < 0.7)
        stock = np.where(refill, np.maximum(target, stock), stock)
        levels[:, w] = stock
    levels[catalog.vendor_closed[catalog.product_vendor]] = 0  # closed vendors hold no stock
    snapshot = np.array([(end - timedelta(days=7 * (weeks - 1 - w)) - date(2000, 1, 1)).days for w in range(weeks)])
    _copy(cur, "inventory_snapshots", [
        ("snapshot_date", "date", np.repeat(snapshot[None, :], n, 0).T.ravel()),
        ("product_id", "int4", np.tile(np.arange(1, n + 1), weeks)),
        ("on_hand", "int4", levels.T.ravel()),
    ])


def _write_targets(conn: Connection, rng: np.random.Generator, start: date, end: date) -> None:
    """Writes monthly KPI targets near the actual figures, and for the next three months."""
    sales = conn.execute(sa.text("""
        SELECT date_trunc('month', day)::date AS month, SUM(gmv) AS gmv, SUM(refunded) AS refunded,
               SUM(cost) AS cost, SUM(orders) AS orders,
               SUM(orders) FILTER (WHERE channel IN ('web', 'mobile')) AS web_mobile
        FROM mart.rollup_sales_daily GROUP BY 1 ORDER BY 1""")).mappings().all()
    new = dict(conn.execute(sa.text("""
        SELECT date_trunc('month', first_day)::date, count(*) FROM mart.rollup_customers
        GROUP BY 1""")).all())
    sessions = dict(conn.execute(sa.text("""
        SELECT date_trunc('month', day)::date, SUM(sessions) FROM mart.traffic_daily GROUP BY 1""")).all())
    actual: dict[date, dict[str, float]] = {}
    for r in sales:
        m = r["month"]
        month_end = _month_end(m)
        covered = (min(month_end, end) - max(m, start)).days + 1
        scale = ((month_end - m).days + 1) / covered
        gmv, refunded, cost = float(r["gmv"]), float(r["refunded"]), float(r["cost"])
        net = gmv - refunded
        actual[m] = {
            "gmv": gmv * scale, "net_revenue": net * scale, "orders": float(r["orders"]) * scale,
            "new_customers": float(new.get(m, 0)) * scale,
            "conversion_rate": float(r["web_mobile"] or 0) / float(sessions[m]) if sessions.get(m) else None,
            "gross_margin": (net - cost) / net if net else None,
        }
    months = sorted(actual)
    rows = []
    for m in months:
        a = actual[m]
        rows.append((m, _targets_near(rng, a)))
    # The next three months: same month a year earlier x the last year's growth.
    last12 = months[-12:]
    prev12 = months[-24:-12]
    growth = {}
    for key in ("gmv", "net_revenue", "orders", "new_customers"):
        prev = sum(actual[m][key] for m in prev12) or 1.0
        growth[key] = float(np.clip(sum(actual[m][key] for m in last12) / prev, 1.0, 1.6))
    m = months[-1]
    for _ in range(3):
        m = _month_end(m) + timedelta(days=1)
        ago = date(m.year - 1, m.month, 1)
        base = actual.get(ago, actual[months[-1]])
        guess = {k: base[k] * growth[k] for k in growth}
        for k in ("conversion_rate", "gross_margin"):
            recent = [actual[x][k] for x in months[-3:] if actual[x][k] is not None]
            guess[k] = float(np.mean(recent)) if recent else None
        rows.append((m, _targets_near(rng, guess)))
    params = []
    for m, targets in rows:
        for metric in KPI_METRICS:
            value = targets.get(metric)
            if value is not None:
                params.append({"metric": metric, "ps": m, "pe": _month_end(m), "target": value})
    conn.execute(sa.text("INSERT INTO mart.kpi_targets (metric, period_start, period_end, target) "
                         "VALUES (:metric, :ps, :pe, :target)"), params)


def _targets_near(rng: np.random.Generator, a: dict) -> dict:
    """Returns targets a little above the figures in a (ratios as fractions)."""
    t: dict[str, float | None] = {}
    for key in ("gmv", "net_revenue"):
        t[key] = round(a[key] * rng.uniform(1.0, 1.1), 2)
    t["orders"] = float(round(a["orders"] * rng.uniform(1.0, 1.1)))
    t["new_customers"] = float(round(a["new_customers"] * rng.uniform(1.0, 1.1)))
    t["aov"] = round(t["gmv"] / t["orders"], 2) if t["orders"] else None
    cr, gm = a.get("conversion_rate"), a.get("gross_margin")
    t["conversion_rate"] = round(cr * rng.uniform(1.0, 1.06), 4) if cr else None
    t["gross_margin"] = round(gm * rng.uniform(0.99, 1.04), 4) if gm else None
    return t


def _month_end(m: date) -> date:
    nxt = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Writing: binary COPY, and the bulk-load frame around it
# --------------------------------------------------------------------------------------------

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8   # signature, flags, no header extension
COPY_TRAILER = b"\xff\xff"
PG_EPOCH = date(2000, 1, 1)
PG_EPOCH_UNIX_S = 946_684_800
ROWS_PER_COPY_BLOCK = 100_000
COPY_QUEUE_BLOCKS = 3


def _utc_micros(start: date, local_seconds: np.ndarray, tz: str) -> np.ndarray:
    """Returns microseconds since 2000-01-01 UTC for local wall-clock seconds since start."""
    base = (start - date(1970, 1, 1)).days * 86400
    wall = np.asarray(local_seconds, np.int64) + base
    if tz != "UTC":
        idx = pd.DatetimeIndex(wall.astype("datetime64[s]"))
        # Wall times that do not exist (spring forward) move on; repeated ones take standard time.
        idx = idx.tz_localize(tz, ambiguous=np.zeros(len(idx), bool), nonexistent="shift_forward")
        wall = idx.as_unit("s").asi8
    return (wall - PG_EPOCH_UNIX_S) * 1_000_000


def _encode_field(kind: str, values) -> tuple[np.ndarray, np.ndarray | None, tuple | None]:
    """Returns (bytes per row as uint8 matrix, lengths or None if fixed, categories) for a column."""
    if kind == "text":
        if isinstance(values, tuple):
            codes, labels = values
            enc = np.array([s.encode() for s in labels], dtype=object)
            return np.asarray(codes), None, tuple(enc)
        arr = np.asarray(values, dtype=object).astype(str)
        arr = np.strings.encode(arr, "utf-8")
        lens = np.strings.str_len(arr).astype(np.int64)
        return arr.view(np.uint8).reshape(len(arr), arr.dtype.itemsize), lens, None
    values = np.asarray(values)
    n = len(values)
    if kind == "int4":
        return values.astype(">i4").view(np.uint8).reshape(n, 4), None, None
    if kind in ("int8", "timestamptz"):
        return values.astype(">i8").view(np.uint8).reshape(n, 8), None, None
    if kind == "date":
        return values.astype(">i4").view(np.uint8).reshape(n, 4), None, None
    if kind.startswith("numeric"):
        # numeric in base-10000 digits with a fixed layout (4 digits, weight 2): PostgreSQL
        # normalises the leading and trailing zero digits on input.
        scale = int(kind[7:])
        units = values.astype(np.int64)
        whole, frac = np.divmod(np.abs(units), 10 ** scale)
        rec = np.zeros(n, dtype=[("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">u2"), ("dscale", ">u2"), ("d", ">i2", 4)])
        rec["ndigits"], rec["weight"], rec["dscale"] = 4, 2, scale
        rec["sign"] = np.where(units < 0, 0x4000, 0)
        rec["d"][:, 0] = whole // 10 ** 8
        rec["d"][:, 1] = (whole // 10 ** 4) % 10 ** 4
        rec["d"][:, 2] = whole % 10 ** 4
        rec["d"][:, 3] = frac * 10 ** (4 - scale)
        return rec.view(np.uint8).reshape(n, 16), None, None
    raise ValueError(f"unknown column kind {kind!r}")


def _encode_rows(columns: list[tuple[str, str, object]], lo: int, hi: int) -> bytes:
    """Returns rows lo..hi-1 of the columns as PostgreSQL binary COPY tuples."""
    fields = []
    for _, kind, values in columns:
        if kind == "text" and isinstance(values, tuple):
            fields.append(_encode_field(kind, (np.asarray(values[0])[lo:hi], values[1])))
        else:
            fields.append(_encode_field(kind, values[lo:hi]))
    n = hi - lo
    if all(lens is None and cats is None for _, lens, cats in fields):
        # Every field fixed-width: one record layout, no byte scatter.
        layout = [("nfields", ">i2")]
        for j, (mat, _, _) in enumerate(fields):
            layout += [(f"len{j}", ">i4"), (f"val{j}", "u1", (mat.shape[1],))]
        rec = np.empty(n, dtype=layout)
        rec["nfields"] = len(fields)
        for j, (mat, _, _) in enumerate(fields):
            rec[f"len{j}"] = mat.shape[1]
            rec[f"val{j}"] = mat
        return rec.tobytes()
    row_len = np.full(n, 2, np.int64)
    widths = []
    for mat, lens, cats in fields:
        if cats is not None:
            w = np.array([len(c) for c in cats], np.int64)[mat]
        else:
            w = np.full(n, mat.shape[1], np.int64) if lens is None else lens
        widths.append(w)
        row_len += 4 + w
    ends = np.cumsum(row_len)
    pos = (ends - row_len).astype(np.int32 if ends[-1] < 2**31 else np.int64)
    buf = np.empty(int(ends[-1]), np.uint8)

    def put(mat: np.ndarray) -> None:
        buf[(pos[:, None] + np.arange(mat.shape[1], dtype=pos.dtype)).ravel()] = mat.ravel()

    put(np.full(n, len(fields), ">i2").view(np.uint8).reshape(n, 2))
    pos += 2
    for (mat, lens, cats), w in zip(fields, widths):
        put(w.astype(">i4").view(np.uint8).reshape(n, 4))
        pos += 4
        if cats is not None:
            # Labels grouped by length: one gather per distinct length.
            label_len = np.array([len(c) for c in cats])
            for length in np.unique(label_len):
                if length == 0:
                    continue
                which = np.flatnonzero(label_len == length)
                table = np.zeros((len(cats), length), np.uint8)
                table[which] = np.frombuffer(b"".join(cats[i] for i in which), np.uint8).reshape(len(which), length)
                rows = np.flatnonzero(label_len[mat] == length)
                buf[pos[rows][:, None] + np.arange(length, dtype=pos.dtype)] = table[mat[rows]]
        elif lens is None:
            put(mat)
        else:
            mask = np.arange(mat.shape[1])[None, :] < lens[:, None]
            buf[(pos[:, None] + np.arange(mat.shape[1], dtype=pos.dtype))[mask]] = mat[mask]
        pos += w
    return buf.tobytes()


@contextmanager
def _copy_into(cur, table: str) -> Iterator:
    """Yields send(columns): each call COPYs (name, kind, values) columns into mart.table."""
    # A worker thread writes to the server while the caller generates the next block; the queue
    # is short so that memory stays bounded and the progress bar tells the truth.
    blocks: queue.Queue = queue.Queue(maxsize=COPY_QUEUE_BLOCKS)
    failed: list[BaseException] = []
    with cur.copy(_copy_sql(table)) as cp:

        def pump() -> None:
            try:
                while (data := blocks.get()) is not None:
                    cp.write(data)
            except BaseException as ex:  # handed to the caller's thread below
                failed.append(ex)
                while blocks.get() is not None:
                    pass

        def send(columns: list[tuple[str, str, object]]) -> None:
            if [c[0] for c in columns] != TABLE_COLUMNS[table]:
                raise ValueError(f"columns for mart.{table} must be {TABLE_COLUMNS[table]}")
            values = columns[0][2]
            n = len(values[0] if isinstance(values, tuple) else values)
            for lo in range(0, n, ROWS_PER_COPY_BLOCK):
                if failed:
                    raise failed[0]
                blocks.put(_encode_rows(columns, lo, min(lo + ROWS_PER_COPY_BLOCK, n)))

        worker = threading.Thread(target=pump, name=f"copy-{table}", daemon=True)
        worker.start()
        try:
            blocks.put(COPY_SIGNATURE)
            yield send
            blocks.put(COPY_TRAILER)
        finally:
            blocks.put(None)
            worker.join()
        if failed:
            raise failed[0]


def _copy(cur, table: str, columns: list[tuple[str, str, object]]) -> None:
    """COPYs the columns (name, kind, values) into mart.table in binary."""
    with _copy_into(cur, table) as send:
        send(columns)


def _copy_sql(table: str) -> str:
    # Table and column names are constants of this module, never input.
    return f"COPY mart.{table} ({', '.join(TABLE_COLUMNS[table])}) FROM STDIN (FORMAT BINARY, FREEZE)"


TABLE_COLUMNS = {
    "vendors": ["vendor_id", "name", "category", "region", "country", "joined_on", "status", "commission_rate"],
    "products": ["product_id", "vendor_id", "sku", "name", "category", "subcategory", "list_price", "unit_cost",
                 "created_on"],
    "customers": ["customer_id", "name", "country", "region", "segment", "acquisition_channel", "signup_at"],
    "orders": ["order_id", "customer_id", "ordered_at", "status", "channel", "business_model", "payment_method",
               "payment_status", "currency", "shipping_fee"],
    "order_items": ["order_id", "line_no", "product_id", "vendor_id", "quantity", "unit_price", "discount",
                    "unit_cost", "refunded_amount"],
    "traffic_daily": ["day", "channel", "sessions", "product_views", "add_to_carts", "checkouts"],
    "marketing_spend": ["day", "channel", "campaign", "spend"],
    "inventory_snapshots": ["snapshot_date", "product_id", "on_hand"],
}


@contextmanager
def _bulk_load(conn: Connection, bar: "_Progress") -> Iterator[None]:
    """Drops the contract tables' foreign keys and secondary indexes, restores them on exit.

    The same as pg_restore does: building an index once and checking a foreign key with one
    join is many times faster than maintaining both row by row during COPY. Definitions are
    read from the catalog, so whatever the migrations made is put back exactly; all of it is
    inside the seeding transaction, so no other session ever sees the tables without them.
    """
    tables = [f"mart.{t}" for t in CONTRACT_TABLES]
    fks = conn.execute(sa.text("""
        SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname),
               format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname,
                      pg_get_constraintdef(oid))
        FROM pg_constraint
        WHERE contype = 'f' AND conrelid = ANY (CAST(:tables AS regclass[]))
        ORDER BY conrelid::regclass::text, conname"""), {"tables": tables}).all()
    indexes = conn.execute(sa.text("""
        SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY (CAST(:tables AS regclass[]))
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY i.indexrelid::regclass::text"""), {"tables": tables}).all()
    triggers = conn.execute(sa.text("""
        SELECT format('ALTER TABLE %s DISABLE TRIGGER USER', t), format('ALTER TABLE %s ENABLE TRIGGER USER', t)
        FROM unnest(CAST(:tables AS regclass[])) AS t"""), {"tables": tables}).all()
    for drop, _ in [*fks, *indexes, *triggers]:
        conn.execute(sa.text(drop))
    yield
    bar.phase("building indexes and checking foreign keys")
    for _, create in indexes:
        conn.execute(sa.text(create))
    for t in tables:
        conn.execute(sa.text(f"ANALYZE {t}"))
    for _, add in [*fks, *triggers]:
        conn.execute(sa.text(add))


# --------------------------------------------------------------------------------------------
# Progress on stderr
# --------------------------------------------------------------------------------------------


class _Progress:
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
