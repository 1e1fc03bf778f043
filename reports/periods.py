"""Relative periods of reports and schedules, resolved when the report runs, in APP_TIMEZONE."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from analytics.filters import Period, resolve_preset
from data.settings import load_settings

RELATIVE_PERIODS = {
    "yesterday": "Yesterday",
    "last_7_days": "Last 7 days",
    "last_week": "Last week (Monday to Sunday)",
    "mtd": "Month to date",
    "last_month": "Last month",
    "qtd": "Quarter to date",
    "ytd": "Year to date",
}


class PeriodError(ValueError):
    """An unknown relative period; the message lists the known ones."""


def local_today(now: datetime | None = None, tz: str | None = None) -> date:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz) if tz else load_settings().tz
    return (now or datetime.now(timezone.utc)).astimezone(zone).date()


def resolve(name: str, today: date) -> Period:
    """Returns the dates `name` means on `today` (a local date). Yesterday and the last 7 days
    are whole days before today; "to date" periods include today; last week and last month are
    the whole calendar week (Monday to Sunday) and month before the current one."""
    if name == "yesterday":
        return Period(today - timedelta(days=1), today - timedelta(days=1))
    if name == "last_week":
        monday = today - timedelta(days=today.weekday())
        return Period(monday - timedelta(days=7), monday - timedelta(days=1))
    if name == "last_month":
        first = today.replace(day=1)
        last = first - timedelta(days=1)
        return Period(last.replace(day=1), last)
    if name in ("last_7_days", "mtd", "qtd", "ytd"):
        return resolve_preset(name, today)
    raise PeriodError(f"unknown period {name!r}; choose one of {', '.join(RELATIVE_PERIODS)}")
