"""Filters shared by every page: period presets, comparison period, grain and dimension values."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta


@dataclass(frozen=True)
class Preset:
    """A named period relative to a local today: its label and the (first, last) days it means."""
    label: str
    days: Callable[[date], tuple[date, date]]


def _last_month(today: date) -> tuple[date, date]:
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def _last_week(today: date) -> tuple[date, date]:
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(days=7), monday - timedelta(days=1)


# Every period preset, once: the filter bar, dashboards' KPI tiles, reports' relative periods and
# alert windows each offer some of these names (alerts store two under older aliases,
# analytics.alerts.WINDOW_PRESETS). "Last N days" are the N whole days before today; "to date"
# presets include today; last week and last month are the whole calendar week (Monday to Sunday)
# and month before the current one. To add a preset, add a row here and its name to the lists
# that should offer it.
PERIOD_PRESETS: dict[str, Preset] = {
    "today": Preset("Today so far", lambda t: (t, t)),
    "yesterday": Preset("Yesterday", lambda t: (t - timedelta(days=1), t - timedelta(days=1))),
    "last_7_days": Preset("Last 7 days", lambda t: (t - timedelta(days=7), t - timedelta(days=1))),
    "last_30_days": Preset("Last 30 days", lambda t: (t - timedelta(days=30), t - timedelta(days=1))),
    "last_90_days": Preset("Last 90 days", lambda t: (t - timedelta(days=90), t - timedelta(days=1))),
    "last_week": Preset("Last week (Monday to Sunday)", _last_week),
    "last_month": Preset("Last month", _last_month),
    "wtd": Preset("Week to date", lambda t: (t - timedelta(days=t.weekday()), t)),
    "mtd": Preset("Month to date", lambda t: (t.replace(day=1), t)),
    "qtd": Preset("Quarter to date", lambda t: (date(t.year, 3 * ((t.month - 1) // 3) + 1, 1), t)),
    "ytd": Preset("Year to date", lambda t: (date(t.year, 1, 1), t)),
    "last_year": Preset("Last year", lambda t: (date(t.year - 1, 1, 1), date(t.year - 1, 12, 31))),
}
CUSTOM = "custom"
# The filter bar's choices (and dashboards' KPI tiles', without custom).
PRESETS = ("last_7_days", "last_30_days", "last_90_days", "mtd", "qtd", "ytd", "last_year", CUSTOM)
PRESET_LABELS = {**{p: PERIOD_PRESETS[p].label for p in PRESETS if p != CUSTOM}, CUSTOM: "Custom range"}
COMPARISONS = {"previous": "Previous period", "last_year": "Same period last year", "none": "No comparison"}
GRAINS = ("hour", "day", "week", "month", "quarter", "year")
# Filterable dimensions -> label. Region and country are the customer's.
DIMENSIONS = {
    "category": "Category", "region": "Region", "country": "Country", "channel": "Channel",
    "business_model": "Business model", "segment": "Segment", "payment_method": "Payment method",
    "vendor_id": "Vendor",
}
# Keys a breakdown may group by: every filter, plus ones too fine (or too technical) to filter on.
BREAKDOWNS = {**DIMENSIONS, "payment_status": "Payment status", "product_id": "Product"}
MAX_HOURLY_DAYS = 31


class FilterError(ValueError):
    """A filter value the app cannot use; the message says which and why."""


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise FilterError(f"the period ends ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def label(self) -> str:
        return f"{self.start:%d %b %Y} – {self.end:%d %b %Y}"


def shift_year(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def resolve_period(name: str, today: date) -> Period:
    """Returns the Period PERIOD_PRESETS[name] means on `today` (a local date, data.calendar.local_today)."""
    return Period(*PERIOD_PRESETS[name].days(today))


def resolve_preset(preset: str, today: date, custom: tuple[date, date] | None = None) -> Period:
    """Returns the Period a filter-bar preset (PRESETS) means on `today` (a local date); "custom"
    is the `custom` (start, end)."""
    if preset == CUSTOM:
        if not custom or len(custom) != 2:
            raise FilterError("a custom period needs a start and an end date")
        return Period(custom[0], custom[1])
    if preset not in PRESETS:
        raise FilterError(f"unknown period {preset!r}; choose one of {', '.join(PRESETS)}")
    return resolve_period(preset, today)


def comparison_period(p: Period, kind: str) -> Period | None:
    """Returns the period p is compared with: the same number of days just before, or the same
    dates a year earlier; None for no comparison."""
    if kind == "previous":
        return Period(p.start - timedelta(days=p.days), p.start - timedelta(days=1))
    if kind == "last_year":
        return Period(shift_year(p.start, -1), shift_year(p.end, -1))
    if kind in ("none", None):
        return None
    raise FilterError(f"unknown comparison {kind!r}; choose one of {', '.join(COMPARISONS)}")


def bucket_start(d: date, grain: str) -> date:
    """Returns the first day of the grain bucket that contains d (weeks start on Monday)."""
    if grain == "week":
        return d - timedelta(days=d.weekday())
    if grain == "month":
        return d.replace(day=1)
    if grain == "quarter":
        return d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1)
    if grain == "year":
        return d.replace(month=1, day=1)
    return d


def next_bucket(d: date, grain: str) -> date:
    """Returns the first day of the grain bucket after the one that contains d."""
    start = bucket_start(d, grain)
    if grain == "week":
        return start + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}.get(grain)
    if months is None:
        return start + timedelta(days=1)
    m = start.month - 1 + months
    return date(start.year + m // 12, m % 12 + 1, 1)


def buckets(p: Period, grain: str) -> list[tuple[date, date, date]]:
    """Returns (bucket start, first day, last day) for each grain bucket overlapping p, its days
    clipped to p."""
    out, d = [], p.start
    while d <= p.end:
        nxt = next_bucket(d, grain)
        out.append((bucket_start(d, grain), d, min(nxt - timedelta(days=1), p.end)))
        d = nxt
    return out


def default_grain(p: Period) -> str:
    """Returns a grain that gives a readable number of points for the period."""
    if p.days <= 2:
        return "hour"
    if p.days <= 92:
        return "day"
    if p.days <= 550:
        return "week"
    return "month"


@dataclass(frozen=True)
class Filters:
    period: Period
    comparison: str = "previous"
    grain: str = "day"
    dims: tuple[tuple[str, tuple], ...] = field(default_factory=tuple)  # ((dimension, values), …)

    def __post_init__(self) -> None:
        if self.grain not in GRAINS:
            raise FilterError(f"unknown grain {self.grain!r}; choose one of {', '.join(GRAINS)}")
        if self.grain == "hour" and self.period.days > MAX_HOURLY_DAYS:
            raise FilterError(f"hourly figures are limited to {MAX_HOURLY_DAYS} days; "
                              f"this period has {self.period.days}. Choose day or a shorter period.")
        for dim, values in self.dims:
            # The filter bar offers DIMENSIONS; pages may also narrow to a product or payment status.
            if dim not in BREAKDOWNS:
                raise FilterError(f"unknown filter {dim!r}; filters are {', '.join(BREAKDOWNS)}")

    @classmethod
    def make(cls, period: Period, *, comparison: str = "previous", grain: str | None = None,
             **dims: Iterable[str | int] | None) -> "Filters":
        """Builds Filters from keyword dimension lists, dropping empty ones and sorting values."""
        clean = tuple(sorted((d, tuple(sorted(v))) for d, v in dims.items() if v))
        return cls(period, comparison, grain or default_grain(period), clean)

    @property
    def dim_map(self) -> dict[str, tuple]:
        return dict(self.dims)

    @property
    def compare(self) -> Period | None:
        return comparison_period(self.period, self.comparison)

    def narrowed(self, **dims: Iterable[str | int] | None) -> "Filters":
        """Returns these filters with dims added (replacing the same dimension's values)."""
        merged = {**{d: list(v) for d, v in self.dims}, **dims}
        return Filters.make(self.period, comparison=self.comparison, grain=self.grain, **merged)

    def without(self, *names: str) -> "Filters":
        """Returns these filters without the named dimensions."""
        return replace(self, dims=tuple((d, v) for d, v in self.dims if d not in names))

    def with_period(self, p: Period) -> "Filters":
        grain = self.grain if not (self.grain == "hour" and p.days > MAX_HOURLY_DAYS) else "day"
        return replace(self, period=p, grain=grain)

    def describe(self) -> str:
        """Returns the filters in words, for captions and export metadata."""
        parts = [self.period.label()]
        for d, v in self.dims:
            parts.append(f"{BREAKDOWNS[d]}: {', '.join(map(str, v))}")
        return " · ".join(parts)
