"""Filters shared by every page: period presets, comparison period, grain and dimension values."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

PRESETS = ("last_7_days", "last_30_days", "last_90_days", "mtd", "qtd", "ytd", "last_year", "custom")
PRESET_LABELS = {
    "last_7_days": "Last 7 days", "last_30_days": "Last 30 days", "last_90_days": "Last 90 days",
    "mtd": "Month to date", "qtd": "Quarter to date", "ytd": "Year to date",
    "last_year": "Last year", "custom": "Custom range",
}
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


def resolve_preset(preset: str, today: date, custom: tuple[date, date] | None = None) -> Period:
    """Returns the Period a preset means on `today` (a local date). "Last N days" are the N whole
    days before today; to-date presets include today."""
    if preset == "last_7_days":
        return Period(today - timedelta(days=7), today - timedelta(days=1))
    if preset == "last_30_days":
        return Period(today - timedelta(days=30), today - timedelta(days=1))
    if preset == "last_90_days":
        return Period(today - timedelta(days=90), today - timedelta(days=1))
    if preset == "mtd":
        return Period(today.replace(day=1), today)
    if preset == "qtd":
        return Period(date(today.year, 3 * ((today.month - 1) // 3) + 1, 1), today)
    if preset == "ytd":
        return Period(date(today.year, 1, 1), today)
    if preset == "last_year":
        return Period(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31))
    if preset == "custom":
        if not custom or len(custom) != 2:
            raise FilterError("a custom period needs a start and an end date")
        return Period(custom[0], custom[1])
    raise FilterError(f"unknown period {preset!r}; choose one of {', '.join(PRESETS)}")


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
             **dims) -> "Filters":
        """Builds Filters from keyword dimension lists, dropping empty ones and sorting values."""
        clean = tuple(sorted((d, tuple(sorted(v))) for d, v in dims.items() if v))
        return cls(period, comparison, grain or default_grain(period), clean)

    @property
    def dim_map(self) -> dict[str, tuple]:
        return dict(self.dims)

    @property
    def compare(self) -> Period | None:
        return comparison_period(self.period, self.comparison)

    def narrowed(self, **dims) -> "Filters":
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
