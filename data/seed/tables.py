"""Generates each contract table but kpi_targets from the simulation and COPYs it into mart."""
from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from data.seed import binary_copy
from data.seed.binary_copy import copy_columns, copy_into, utc_micros
from data.seed.progress import Progress
from data.seed.simulate import (
    Calendar, Catalog, Orders, People, customer_names, make_calendar, make_vendors, simulate,
)
from data.seed.reference import (
    CATEGORIES, COUNTRIES, ACQUISITION, CAMPAIGNS, CANCEL, RETURN, RETURN_AFTER, FULL_RETURN, B2B_LINE_BUDGET,
    B2B_CHANNELS, PAYMENTS, SHIPPING, B2B_FREIGHT, CONVERSION, CONVERSION_BOUNDS, REGIONS, COUNTRY_REGION,
    PAYMENT_METHODS, ORDER_ATTRS, INVENTORY_WEEKS, STATUSES, CHANNELS, MODELS, PAYMENT_STATUSES,
)


LINES_PER_CHUNK = 100_000   # order lines generated at a time


def generate_and_write(conn: Connection, n_lines: int, seed_: int, end: date, tz: str,
                        bar: Progress) -> dict:
    """Generates every contract table except kpi_targets and COPYs it; returns counts."""
    streams = np.random.default_rng(seed_).spawn(8)
    bar.phase("planning vendors, customers and orders")
    cal = make_calendar(streams[0], end)
    vendors, catalog, products = make_vendors(streams[1], cal, n_lines)
    people, skeleton = simulate(streams[2], cal, n_lines)
    # COPY through the driver connection of the same transaction.
    cur = conn.connection.driver_connection.cursor()
    start_days = (cal.start - date(2000, 1, 1)).days

    copy_columns(cur, "vendors", [
        ("vendor_id", "int4", vendors["vendor_id"].to_numpy()),
        ("name", "text", vendors["name"].to_numpy()),
        ("category", "text", vendors["category"].to_numpy()),
        ("region", "text", vendors["region"].to_numpy()),
        ("country", "text", vendors["country"].to_numpy()),
        ("joined_on", "date", vendors["joined_on"].to_numpy() + start_days),
        ("status", "text", vendors["status"].to_numpy()),
        ("commission_rate", "numeric4", vendors["commission_units"].to_numpy()),
    ])
    copy_columns(cur, "products", [
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
    copy_columns(cur, "customers", [
        ("customer_id", "int4", np.arange(1, len(people.segment) + 1)),
        ("name", "text", customer_names(streams[3], people)),  # (codes, labels)
        ("country", "text", (people.country, tuple(c[0] for c in COUNTRIES))),
        ("region", "text", (people.country, tuple(c[1] for c in COUNTRIES))),
        ("segment", "text", (people.segment, ("B2C", "B2B"))),
        ("acquisition_channel", "text", (people.channel, tuple(a[0] for a in ACQUISITION))),
        ("signup_at", "timestamptz", utc_micros(cal.start, people.acquired, tz)),
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
    with copy_into(cur, "order_items") as send:
        for lo, hi in zip(edges[:-1], edges[1:]):
            columns = _order_lines(lines_rng, cal, catalog, people, skeleton, int(lo), int(hi), attrs,
                                   per_day, units)
            send(columns)
            bar.advance(len(columns[0][2]))
    with copy_into(cur, "orders") as send:
        for lo in range(0, len(attrs), binary_copy.ROWS_PER_COPY_BLOCK):
            hi = min(lo + binary_copy.ROWS_PER_COPY_BLOCK, len(attrs))
            part = attrs[lo:hi]
            send([
                ("order_id", "int8", np.arange(lo + 1, hi + 1, dtype=np.int64)),
                ("customer_id", "int4", skeleton.customer[lo:hi] + 1),
                ("ordered_at", "timestamptz", utc_micros(
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


def _order_lines(rng: np.random.Generator, cal: Calendar, catalog: Catalog, people: People,
                 sk: Orders, lo: int, hi: int, attrs: np.ndarray, per_day: np.ndarray,
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


def _write_traffic(cur, rng: np.random.Generator, cal: Calendar, per_day: np.ndarray) -> None:
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
    copy_columns(cur, "traffic_daily", [
        ("day", "date", day[order] + start_days),
        ("channel", "text", (ch[order], ("web", "mobile"))),
        ("sessions", "int4", s[order]),
        ("product_views", "int4", v[order]),
        ("add_to_carts", "int4", c[order]),
        ("checkouts", "int4", co[order]),
    ])


def _write_marketing(cur, rng: np.random.Generator, cal: Calendar, people: People) -> None:
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
    copy_columns(cur, "marketing_spend", [
        ("day", "date", day[order] + start_days),
        ("channel", "text", (ch[order], tuple(CAMPAIGNS))),
        ("campaign", "text", (camp[order], tuple(campaign_names))),
        ("spend", "numeric2", cents[order]),
    ])


def _write_inventory(cur, rng: np.random.Generator, cal: Calendar, catalog: Catalog,
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
    copy_columns(cur, "inventory_snapshots", [
        ("snapshot_date", "date", np.repeat(snapshot[None, :], n, 0).T.ravel()),
        ("product_id", "int4", np.tile(np.arange(1, n + 1), weeks)),
        ("on_hand", "int4", levels.T.ravel()),
    ])
