"""The local day, and calendar pieces of a period: whole years, quarters, months, ISO weeks and single
days (pure date arithmetic).

The rollups keep copies per week and month; a period reads whole buckets and its edge days
(data.rollups, analytics.kpis), and refreshes rebuild the buckets their dirty days touch.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo


def local_today(tz: str | ZoneInfo, now: datetime | None = None) -> date:
    """Returns the date in time zone tz (a name such as APP_TIMEZONE's, or a ZoneInfo) at `now`
    (an aware datetime; default: this instant): the day period presets are resolved against."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    return (now or datetime.now(timezone.utc)).astimezone(zone).date()


def merged_spans(spans: Iterable[tuple[date, date]]) -> list[tuple[date, date]]:
    """Returns the (first, last) day spans sorted, with overlapping or adjacent ones merged."""
    out: list[tuple[date, date]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + timedelta(days=1):
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def bucket_bounds(bucket: str, day: date) -> tuple[date, date]:
    """Returns the first and last day of the ISO week ("week"), calendar month ("month"), quarter
    ("quarter") or year ("year") of day."""
    if bucket == "week":
        first = day - timedelta(days=day.weekday())
        return first, first + timedelta(days=6)
    if bucket == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    if bucket == "quarter":
        first = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
        return first, bucket_bounds("month", first.replace(month=first.month + 2))[1]
    first = day.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def calendar_pieces(start: date, end: date, buckets: tuple[str, ...] = ("month", "week")) -> list[tuple[str, date, date]]:
    """Splits the days start..end into whole buckets, largest first (by default months, then ISO
    weeks), then single days.

    Returns (bucket, first, last) pieces: for "month" and "week", first and last are the first
    days of the first and last whole bucket; for "day", the first and last day. Together they
    cover every day of start..end once.
    """
    segments, out = [(start, end)], []
    for bucket in buckets:
        rest = []
        for lo, hi in segments:
            first = lo if bucket_bounds(bucket, lo)[0] == lo else bucket_bounds(bucket, lo)[1] + timedelta(days=1)
            last = hi if bucket_bounds(bucket, hi)[1] == hi else bucket_bounds(bucket, hi)[0] - timedelta(days=1)
            if first > last:
                rest.append((lo, hi))
                continue
            out.append((bucket, first, bucket_bounds(bucket, last)[0]))
            rest += [s for s in ((lo, first - timedelta(days=1)), (last + timedelta(days=1), hi)) if s[0] <= s[1]]
        segments = rest
    return out + [("day", lo, hi) for lo, hi in sorted(segments)]
