"""Relative periods of reports and schedules, resolved when the report runs (against the local today
in APP_TIMEZONE: data.calendar.local_today). The presets themselves are analytics.filters.PERIOD_PRESETS."""
from __future__ import annotations

from datetime import date

from analytics.filters import PERIOD_PRESETS, Period, resolve_period

RELATIVE_PERIODS = {name: PERIOD_PRESETS[name].label for name in
                    ("yesterday", "last_7_days", "last_week", "mtd", "last_month", "qtd", "ytd")}


class PeriodError(ValueError):
    """An unknown relative period; the message lists the known ones."""


def resolve(name: str, today: date) -> Period:
    """Returns the dates relative period `name` means on `today` (a local date)."""
    if name not in RELATIVE_PERIODS:
        raise PeriodError(f"unknown period {name!r}; choose one of {', '.join(RELATIVE_PERIODS)}")
    return resolve_period(name, today)
