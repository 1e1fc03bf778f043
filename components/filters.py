"""The filter bar shared by every analysis page: period, comparison, grain and dimensions."""
from __future__ import annotations

from datetime import timedelta

import streamlit as st

from analytics.filters import (COMPARISONS, DIMENSIONS, GRAINS, MAX_HOURLY_DAYS, PRESET_LABELS, PRESETS,
                               FilterError, Filters, default_grain, resolve_preset)
from components import loaders


def chosen_preset(key: str = "flt") -> str | None:
    """Returns the period preset (PRESETS) the filter bar drawn with key holds: the name Filters
    does not keep (a page showing what is stored per preset, such as the peer benchmarks, needs it)."""
    return st.session_state.get(f"{key}_period")


def render_filter_bar(*, key: str = "flt", dimensions: bool = True) -> Filters | None:
    """Draws the filters in the sidebar; returns Filters, or None (with a message) when invalid.
    dimensions=False: the period, comparison and grain only (a vendor's portal, whose choices of
    vendors, categories… would name the marketplace's)."""
    sb = st.sidebar
    today = loaders.local_today()
    sb.subheader("Filters")
    preset = sb.selectbox("Period", PRESETS, index=1, format_func=PRESET_LABELS.get, key=f"{key}_period")
    custom = None
    if preset == "custom":
        picked = sb.date_input("From – to", value=(today - timedelta(days=30), today - timedelta(days=1)),
                               max_value=today, key=f"{key}_range")
        if not isinstance(picked, (tuple, list)) or len(picked) != 2:
            sb.info("Pick an end date to finish the range.")
            return None
        custom = (picked[0], picked[1])
    comparison = sb.selectbox("Compare with", list(COMPARISONS), format_func=COMPARISONS.get,
                              key=f"{key}_compare")
    try:
        period = resolve_preset(preset, today, custom)
    except FilterError as ex:
        sb.error(str(ex))
        return None
    grains = [g for g in GRAINS if g != "hour" or period.days <= MAX_HOURLY_DAYS]
    grain = sb.selectbox("Grain", grains, index=grains.index(default_grain(period)),
                         format_func=str.capitalize, key=f"{key}_grain_{preset}")
    chosen: dict[str, list] = {}
    if not dimensions:
        return Filters.make(period, comparison=comparison, grain=grain)
    values = loaders.load_dimension_values()
    with sb.expander("Dimensions", expanded=False):
        for dim, label in DIMENSIONS.items():
            if dim == "vendor_id":
                names = dict(values["vendor_id"])
                chosen[dim] = st.multiselect(label, list(names), format_func=lambda v, n=names: n.get(v, str(v)),
                                             key=f"{key}_{dim}", placeholder="All vendors")
            else:
                chosen[dim] = st.multiselect(label, values[dim], key=f"{key}_{dim}", placeholder="All")
    try:
        return Filters.make(period, comparison=comparison, grain=grain, **chosen)
    except FilterError as ex:
        sb.error(str(ex))
        return None
