"""Period presets, comparison periods and filter validation (pure)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from analytics import alerts
from analytics.filters import (PERIOD_PRESETS, PRESET_LABELS, PRESETS, FilterError, Filters, Period, comparison_period,
                               default_grain, resolve_period, resolve_preset)
from data.calendar import local_today
from reports.periods import RELATIVE_PERIODS

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize("preset,start,end", [
    ("last_7_days", date(2026, 11, 16), date(2026, 11, 22)),
    ("last_30_days", date(2026, 10, 24), date(2026, 11, 22)),
    ("last_90_days", date(2026, 8, 25), date(2026, 11, 22)),
    ("mtd", date(2026, 11, 1), TODAY),
    ("qtd", date(2026, 10, 1), TODAY),
    ("ytd", date(2026, 1, 1), TODAY),
    ("last_year", date(2025, 1, 1), date(2025, 12, 31)),
])
def test_presets(preset, start, end):
    assert resolve_preset(preset, TODAY) == Period(start, end)


# TODAY is a Monday: week to date is the day itself.
@pytest.mark.parametrize("name,start,end", [
    ("today", TODAY, TODAY),
    ("yesterday", date(2026, 11, 22), date(2026, 11, 22)),
    ("last_week", date(2026, 11, 16), date(2026, 11, 22)),
    ("last_month", date(2026, 10, 1), date(2026, 10, 31)),
    ("wtd", TODAY, TODAY),
    ("last_7_days", date(2026, 11, 16), date(2026, 11, 22)),
])
def test_every_preset_is_one_row_of_the_table(name, start, end):
    assert resolve_period(name, TODAY) == Period(start, end)


def test_the_filter_bar_reports_and_alerts_offer_rows_of_one_table():
    assert set(PRESETS) - {"custom"} <= set(PERIOD_PRESETS) and set(RELATIVE_PERIODS) <= set(PERIOD_PRESETS)
    assert set(alerts.WINDOW_PRESETS.values()) <= set(PERIOD_PRESETS)
    assert PRESET_LABELS["mtd"] == RELATIVE_PERIODS["mtd"] == alerts.WINDOWS["mtd"] == "Month to date"
    # The filter bar keeps its own choices: a report's "yesterday" is not one of them.
    with pytest.raises(FilterError, match="unknown period"):
        resolve_preset("yesterday", TODAY)


@pytest.mark.parametrize("tz,now,today", [
    ("UTC", datetime(2026, 11, 23, 23, 30, tzinfo=timezone.utc), TODAY),
    ("Europe/Berlin", datetime(2026, 11, 23, 23, 30, tzinfo=timezone.utc), date(2026, 11, 24)),
    ("America/New_York", datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc), date(2026, 11, 22)),
])
def test_local_today_is_the_date_in_the_time_zone(tz, now, today):
    assert local_today(tz, now) == today


@pytest.mark.parametrize("period,kind,expected", [
    (Period(date(2026, 11, 1), date(2026, 11, 30)), "previous", Period(date(2026, 10, 2), date(2026, 10, 31))),
    (Period(date(2026, 3, 1), date(2026, 3, 7)), "last_year", Period(date(2025, 3, 1), date(2025, 3, 7))),
    (Period(date(2024, 2, 29), date(2024, 3, 1)), "last_year", Period(date(2023, 2, 28), date(2023, 3, 1))),
    (Period(date(2026, 1, 1), date(2026, 1, 1)), "none", None),
])
def test_comparison_periods(period, kind, expected):
    assert comparison_period(period, kind) == expected


@pytest.mark.parametrize("make,message", [
    (lambda: Period(date(2026, 2, 1), date(2026, 1, 1)), "ends .* before it starts"),
    (lambda: resolve_preset("custom", TODAY), "needs a start and an end"),
    (lambda: resolve_preset("last_century", TODAY), "unknown period"),
    (lambda: Filters.make(Period(date(2026, 1, 1), date(2026, 3, 1)), grain="hour"), "hourly figures are limited"),
    (lambda: Filters.make(Period(date(2026, 1, 1), date(2026, 1, 2)), grain="fortnight"), "unknown grain"),
    (lambda: Filters.make(Period(date(2026, 1, 1), date(2026, 1, 2)), planet=["Mars"]), "unknown filter"),
    (lambda: comparison_period(Period(TODAY, TODAY), "yesterday"), "unknown comparison"),
])
def test_bad_filters_say_what_is_wrong(make, message):
    with pytest.raises(FilterError, match=message):
        make()


def test_default_grain_and_description():
    assert default_grain(Period(TODAY, TODAY)) == "hour"
    assert default_grain(Period(date(2026, 1, 1), date(2026, 3, 1))) == "day"
    assert default_grain(Period(date(2025, 1, 1), date(2026, 1, 1))) == "week"
    assert default_grain(Period(date(2023, 1, 1), date(2026, 1, 1))) == "month"
    f = Filters.make(Period(date(2026, 1, 1), date(2026, 1, 31)), channel=["web"], segment=[])
    assert f.dims == (("channel", ("web",)),)
    assert f.describe() == "01 Jan 2026 – 31 Jan 2026 · Channel: web"
