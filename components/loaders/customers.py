"""The customers page's loaders: the nightly run's stored scores when they answer the question,
else scores computed here (cached), and the customer lists with their details."""
from __future__ import annotations

import time
from datetime import date

import pandas as pd
import streamlit as st

from analytics import customer_scores as S
from analytics.filters import Filters, Period
from components import loaders
from components.loaders import read, read_figures, tz, version
from data.settings import load_settings


@st.cache_data(ttl=3600, show_spinner=False)
def load_stored(run_id: int) -> S.CustomerScores | None:
    """Returns stored run run_id (aggregates only)."""
    with read() as conn:
        return S.fetch_stored_scores(conn, run_id)


@st.cache_data(ttl=300, show_spinner=False)
def _load_vendor_stored(vendor_ids: tuple[int, ...], period: str, rollup_version: int) -> S.CustomerScores | None:
    """Returns the vendor's stored customer scores of period (one vendor), read on their own role."""
    with read_figures(None, vendor_ids) as (conn, _, _kw):
        return S.fetch_stored_vendor_scores(conn, vendor_ids[0], period)


@st.cache_data(ttl=20, show_spinner=False)
def load_latest_run_id() -> int | None:
    """Returns the newest stored nightly run's id (None: none yet)."""
    with read() as conn:
        return S.fetch_latest_run_id(conn)


@st.cache_data(ttl=3600, show_spinner=False, max_entries=3)
def _load_computed(dims: tuple, as_of: date, previous: date, k: int | None, vendor_ids: tuple[int, ...],
                   rollup_version: int) -> S.CustomerScores:
    bar = st.progress(0.0, text="Reading customers…")
    with read_figures(Filters(Period(as_of, as_of), dims=dims), vendor_ids) as (conn, f, kw):
        # A vendor's role reads no customer records: its cohorts are not split by them.
        out = S.compute_scores(conn, f, as_of, k=k, previous=previous, tz=kw["tz"], customer_records=not vendor_ids,
                               progress=lambda frac, step: bar.progress(frac, text=f"{step}…"))
    bar.empty()
    return out


def load_scores(f: Filters, k: int | None, vendor_ids: tuple[int, ...] = ()) -> tuple[S.CustomerScores, str]:
    """Returns the figures for the filters and where they come from (a sentence for the caption).

    The nightly run answers when it matches: no dimension filter, automatic k, and the period
    ending on its as-of date. Anything else is computed here, with a progress bar. A vendor user's
    (vendor_ids) figures are those of the customers of their own lines, read on their own role: from
    their vendor's nightly run when it matches (one vendor), else computed."""
    as_of, previous = S.page_dates(f.period, loaders.local_today())
    if vendor_ids:
        # The nightly run keeps each vendor's own (reports.jobs.vendor_customer_scores_job), read on
        # their role: as of yesterday with the movement of every period preset ending then, and as of
        # last year's end.
        period = S.vendor_score_period(as_of, loaders.local_today())
        stored = _load_vendor_stored(vendor_ids, period, version()) if len(vendor_ids) == 1 else None
    else:
        run_id = load_latest_run_id()
        stored = load_stored(run_id) if run_id is not None else None
    answer = stored.moved_from(previous) if stored is not None and stored.as_of == as_of else None
    if answer is not None and not f.dims and k is None:
        when = pd.Timestamp(answer.finished_at).tz_convert(load_settings().tz)
        return answer, (f"Scores from the nightly run of {when:%d %b %H:%M} "
                        f"({stored.customers:,} customers, as of {as_of:%d %b %Y}).")
    started = time.perf_counter()
    scores = _load_computed(f.dims, as_of, previous, k, vendor_ids, version())
    took = time.perf_counter() - started
    why = ("your own customers" if vendor_ids else "the dimension filters" if f.dims
           else "the chosen number of clusters" if k is not None
           else "this period" if stored is not None else "this period (no nightly run is stored yet)")
    return scores, (f"Computed for {why} as of {as_of:%d %b %Y} ({scores.customers:,} customers"
                    + (f", {took:.1f} s" if took > 0.5 else ", from the cache") + ").")


def load_customers(scores: S.CustomerScores, by: str, max_p_alive: float | None, segments: tuple[str, ...],
                   limit: int) -> pd.DataFrame:
    """Returns the first customers by `by` (the at-risk list, or the highest CLV) with each
    customer's details and main vendor."""
    if scores.scores is not None:
        rows = S.top_customers(scores.scores, by, max_p_alive=max_p_alive, segments=list(segments), limit=limit)
    else:
        rows = _load_stored_top(scores.run_id, by, max_p_alive, segments, limit)
    details = _load_details(tuple(int(i) for i in rows["customer_id"]), scores.as_of, version())
    return rows.merge(details, on="customer_id", how="left")


@st.cache_data(ttl=600, show_spinner=False)
def _load_stored_top(run_id: int, by: str, max_p_alive: float | None, segments: tuple[str, ...],
                     limit: int) -> pd.DataFrame:
    with read() as conn:
        return S.fetch_stored_top_customers(conn, run_id, by, max_p_alive=max_p_alive, segments=list(segments),
                                            limit=limit)


@st.cache_data(ttl=600, show_spinner=False)
def _load_details(ids: tuple[int, ...], as_of: date, rollup_version: int) -> pd.DataFrame:
    with read() as conn:
        return S.fetch_customer_details(conn, list(ids), as_of, tz=tz())


def load_every_customer(scores: S.CustomerScores) -> pd.DataFrame:
    """Returns every customer's scores by customer id (read when a download is clicked; not cached)."""
    if scores.scores is not None:
        frame = scores.scores[S.SCORE_COLUMNS]
    else:
        with read() as conn:
            frame = S.fetch_stored_top_customers(conn, scores.run_id, "clv_12m", limit=None)
    return frame.sort_values("customer_id")
