"""The simulation: calendar, vendors and their catalog, customers and the order skeleton (no I/O)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import pandas as pd
from data.seed.reference import (
    CATEGORIES, VENDOR_WORDS, BRAND_HEADS, BRAND_TAILS, PRODUCT_ADJECTIVES, COUNTRIES, NAMES, NL_LAST,
    BUSINESS_WORDS, ACQUISITION, CONSUMER, BUSINESS, WEEKDAY, MONTH, GROWTH, HOURS, RATE_SHAPE, RATE_MEAN, DROPOUT,
    RATE_CAP, BUSINESS_ORDER_SHARE, B2B2C_SHARE, NEVER_BOUGHT, NEVER_BOUGHT_B2B, B2B_CHANNELS, YEARS,
)


@dataclass
class Calendar:
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


def make_calendar(rng: np.random.Generator, end: date) -> Calendar:
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
    return Calendar(start, n, weekday, intensity, growth, promo, season.astype(float))


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


def _acquisition_density(rng: np.random.Generator, cal: Calendar, seg: int) -> tuple[np.ndarray, np.ndarray]:
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
class People:
    """Customers (index = final customer_id - 1 after sorting by signup)."""
    segment: np.ndarray
    country: np.ndarray
    channel: np.ndarray
    acquired: np.ndarray     # local seconds since the start of the window
    mobile: np.ndarray       # consumers: propensity to order on mobile
    b2b_channel: np.ndarray  # businesses: preferred order channel


@dataclass
class Orders:
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


def simulate(rng: np.random.Generator, cal: Calendar, n_lines: int) -> tuple[People, Orders]:
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
    people = People(seg_all[by_signup], country[by_signup], channel[by_signup], acquired[by_signup],
                     mobile[by_signup], b2b_channel[by_signup])
    return people, Orders(rank[cust], day, second, model, lines)


def _simulate_segment(rng: np.random.Generator, cal: Calendar, seg: int, acq: np.ndarray,
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
class Catalog:
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


def make_vendors(rng: np.random.Generator, cal: Calendar, n_lines: int) -> tuple[pd.DataFrame, Catalog, pd.DataFrame]:
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
    catalog = Catalog(n, vendor_keys, weeks, pv, product_keys, created, first, list_cents, cost_cents,
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


def customer_names(rng: np.random.Generator, people: People) -> tuple[np.ndarray, tuple[str, ...]]:
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
