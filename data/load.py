"""CSV import into the data contract's tables: validate everything, then write all or nothing.

    python -m data load TABLE FILE.csv [--mode append|replace]

The file is UTF-8, comma-separated, with a header line naming the table's columns in any order;
columns with a schema default (discount, refunded_amount, shipping_fee) may be left out or left
empty. Dates are YYYY-MM-DD; timestamps are ISO 8601 (2024-05-01T13:45:00+02:00), and a
timestamp without an offset is read in APP_TIMEZONE. Money has at most 2 decimal places.

Every value is checked while the file streams into a temporary staging table (one pass, any
size); keys (duplicates, existing rows, references, dependents) are then checked in SQL over
the staging table. Any problem rejects the whole file and lists them all with line and column.
append inserts the rows; replace makes the table hold exactly the file (upsert + delete) and
refuses to drop keys that other tables reference. The rollups are refreshed in the same
transaction.
"""
from __future__ import annotations

import csv
import heapq
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from data import rollups
from data.settings import load_settings

SCHEMA = "mart"
SHOWN = 50
STAGE = "load_stage"
MODES = ("append", "replace")
PROGRESS_SECONDS = 1.0
LARGE = 100_000                            # rows from which progress also names the phases


# --------------------------------------------------------------------------- results and errors

@dataclass(frozen=True)
class Problem:
    line: int | None      # physical line of the CSV file, header = 1; None: the whole file
    column: str | None
    message: str

    def __str__(self) -> str:
        where = ", ".join(p for p in (
            f"line {self.line}" if self.line is not None else "",
            f"column {self.column}" if self.column else "") if p)
        return f"{where}: {self.message}" if where else self.message


class ImportValidationError(ValueError):
    """The file cannot be imported; .problems holds the first 50 found, .total counts them all."""

    def __init__(self, source: str, problems: list[Problem], total: int | None = None) -> None:
        self.source = source
        self.problems = list(problems)
        self.total = max(total if total is not None else 0, len(self.problems))
        super().__init__(self._message())

    def _message(self) -> str:
        noun = "problem" if self.total == 1 else "problems"
        lines = [f"{self.source}: {self.total} {noun}, nothing was imported"]
        lines += [f"  {p}" for p in self.problems[:SHOWN]]
        more = self.total - min(len(self.problems), SHOWN)
        if more > 0:
            lines.append(f"  … and {more} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class LoadResult:
    table: str
    rows: int
    mode: str
    elapsed_ms: int
    rollups: str          # refresh_rollups' mode: "full", "days" or "none"
    deleted: int = 0      # replace: rows removed because the file no longer has their key

    def summary(self) -> str:
        """Returns one line saying what was imported."""
        what = f"{self.rows:,} rows appended to {self.table}" if self.mode == "append" else (
            f"{self.table} replaced: {self.rows:,} rows from the file, {self.deleted:,} rows removed")
        return f"{what} in {self.elapsed_ms / 1000:.1f} s; rollups refreshed ({self.rollups})"


# --------------------------------------------------------------------------- the contract as data

@dataclass(frozen=True)
class Column:
    name: str
    type: str                              # a key of TYPES
    default: object = None                 # schema default: the column may be omitted or empty
    choices: tuple[str, ...] = ()
    low: int | None = None                 # lowest allowed value …
    low_open: bool = False                 # … itself excluded (quantity > 0)
    high: int | None = None


@dataclass(frozen=True)
class Ref:
    column: str
    table: str                             # referenced table, by its primary key column
    cascade: bool = False                  # ON DELETE CASCADE: a replace would silently delete


@dataclass(frozen=True)
class RowRule:
    column: str
    test: Callable[[str, str], bool]       # (column's text, other's text), both already valid
    other: str
    message: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    refs: tuple[Ref, ...] = ()
    unique: tuple[str, ...] = ()           # single-column UNIQUE constraints besides the key
    rules: tuple[RowRule, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{self.name}"


def _c(name: str, type_: str = "text", **kw) -> Column:
    return Column(name, type_, **kw)


_ZERO = Decimal(0)
TABLES: dict[str, TableSpec] = {t.name: t for t in (
    TableSpec("vendors", key=("vendor_id",), columns=(
        _c("vendor_id", "int4"), _c("name"), _c("category"), _c("region"), _c("country"),
        _c("joined_on", "date"), _c("status", choices=("active", "paused", "closed")),
        _c("commission_rate", "rate", low=0, high=1))),
    TableSpec("products", key=("product_id",), unique=("sku",), refs=(Ref("vendor_id", "vendors"),), columns=(
        _c("product_id", "int4"), _c("vendor_id", "int4"), _c("sku"), _c("name"), _c("category"),
        _c("subcategory"), _c("list_price", "money", low=0), _c("unit_cost", "money", low=0),
        _c("created_on", "date"))),
    TableSpec("customers", key=("customer_id",), columns=(
        _c("customer_id", "int4"), _c("name"), _c("country"), _c("region"),
        _c("segment", choices=("B2C", "B2B")), _c("acquisition_channel"), _c("signup_at", "timestamptz"))),
    TableSpec("orders", key=("order_id",), refs=(Ref("customer_id", "customers"),), columns=(
        _c("order_id", "int8"), _c("customer_id", "int4"), _c("ordered_at", "timestamptz"),
        _c("status", choices=("placed", "paid", "shipped", "delivered", "cancelled", "returned")),
        _c("channel", choices=("web", "mobile", "marketplace_api", "sales_rep")),
        _c("business_model", choices=("B2C", "B2B", "B2B2C")), _c("payment_method"),
        _c("payment_status", choices=("captured", "failed", "refunded", "partially_refunded")),
        _c("currency", "currency"), _c("shipping_fee", "money", default=_ZERO, low=0))),
    TableSpec("order_items", key=("order_id", "line_no"),
              refs=(Ref("order_id", "orders", cascade=True), Ref("product_id", "products"),
                    Ref("vendor_id", "vendors")), columns=(
        _c("order_id", "int8"), _c("line_no", "int4", low=0, low_open=True), _c("product_id", "int4"),
        _c("vendor_id", "int4"), _c("quantity", "int4", low=0, low_open=True),
        _c("unit_price", "money", low=0), _c("discount", "money", default=_ZERO, low=0),
        _c("unit_cost", "money", low=0), _c("refunded_amount", "money", default=_ZERO, low=0))),
    TableSpec("traffic_daily", key=("day", "channel"), columns=(
        _c("day", "date"), _c("channel"), _c("sessions", "int4", low=0), _c("product_views", "int4", low=0),
        _c("add_to_carts", "int4", low=0), _c("checkouts", "int4", low=0))),
    TableSpec("marketing_spend", key=("day", "channel", "campaign"), columns=(
        _c("day", "date"), _c("channel"), _c("campaign"), _c("spend", "money", low=0))),
    TableSpec("inventory_snapshots", key=("snapshot_date", "product_id"),
              refs=(Ref("product_id", "products"),), columns=(
        _c("snapshot_date", "date"), _c("product_id", "int4"), _c("on_hand", "int4", low=0))),
    TableSpec("kpi_targets", key=("metric", "period_start", "period_end"),
              rules=(RowRule("period_end", lambda end, start: date.fromisoformat(end) >= date.fromisoformat(start),
                             "period_start", "is before period_start"),), columns=(
        _c("metric"), _c("period_start", "date"), _c("period_end", "date"), _c("target", "target"))),
)}


# --------------------------------------------------------------------------- value parsers

class _Invalid(ValueError):
    """A value does not fit its column; the message follows the quoted value."""


# re.ASCII: Python's int() and \d accept other scripts' digits, PostgreSQL does not.
_INT = re.compile(r"[+-]?\d+", re.ASCII)
_DECIMAL = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,6})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?", re.ASCII)
_CURRENCY = re.compile(r"[A-Z]{3}")
_COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

# A parser factory takes (column, APP_TIMEZONE) and returns parse(cell) -> the value as text for
# COPY, raising _Invalid. Each checks its column's rules on the way, specialised once per load:
# the parse runs for every cell of files with millions of rows.
Parser = Callable[[str], str]


def _rule_message(col: Column) -> str:
    if col.high is not None:
        return f"is outside {col.low}..{col.high}"
    if col.low_open:
        return f"must be greater than {col.low}"
    return f"is negative; it must be {col.low} or more"


def _within_rule(col: Column, value: int | Decimal) -> bool:
    if col.low is not None and (value < col.low or (col.low_open and value == col.low)):
        return False
    return col.high is None or value <= col.high


def _int_type(bits: int) -> Callable[[Column, ZoneInfo], Parser]:
    type_lo, type_hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def make(col: Column, tz: ZoneInfo) -> Parser:
        lo = type_lo if col.low is None else max(type_lo, col.low + col.low_open)
        hi = type_hi if col.high is None else min(type_hi, col.high)
        rule = _rule_message(col)

        def parse(raw: str) -> str:
            if not _INT.fullmatch(raw):
                raise _Invalid("is not a whole number")
            value = int(raw)
            if lo <= value <= hi:
                return raw
            if not type_lo <= value <= type_hi:
                raise _Invalid(f"is out of range (a whole number from {type_lo} to {type_hi})")
            raise _Invalid(rule)
        return parse
    return make


def _decimal_type(precision: int, scale: int, what: str) -> Callable[[Column, ZoneInfo], Parser]:
    whole_digits = precision - scale
    biggest = f"{'9' * whole_digits}.{'9' * scale}"

    def make(col: Column, tz: ZoneInfo) -> Parser:
        ruled = col.low is not None or col.high is not None
        only_sign = col.low == 0 and not col.low_open and col.high is None
        rule = _rule_message(col)

        def parse(raw: str) -> str:
            m = _DECIMAL.fullmatch(raw)
            sign, whole, frac = m.groups() if m else ("", "", None)
            if not (whole or frac):
                hint = " (use a point as the decimal separator, no thousands separator)" if "," in raw else ""
                raise _Invalid(f"is not a decimal number{hint}")
            if frac and len(frac.rstrip("0")) > scale:
                raise _Invalid(f"has more than {scale} decimal places ({what})")
            if len(whole.lstrip("0")) > whole_digits:
                raise _Invalid(f"is out of range for {what} (at most {biggest})")
            if ruled:
                if only_sign:
                    if sign == "-" and (whole.strip("0") or (frac or "").strip("0")):
                        raise _Invalid(rule)
                elif not _within_rule(col, Decimal(raw)):
                    raise _Invalid(rule)
            return raw
        return parse
    return make


def _text_type(col: Column, tz: ZoneInfo) -> Parser:
    allowed = frozenset(col.choices)
    not_allowed = f"is not allowed; use one of: {', '.join(col.choices)}"

    def parse(raw: str) -> str:
        if allowed:
            if raw in allowed:
                return raw
            raise _Invalid(not_allowed)
        if _COPY_SPECIAL.search(raw):
            if "\x00" in raw:
                raise _Invalid("contains a NUL character")
            return raw.translate(_COPY_ESCAPES)
        return raw
    return parse


def _date_type(col: Column, tz: ZoneInfo) -> Parser:
    def parse(raw: str) -> str:
        try:
            if _DATE.fullmatch(raw):
                date.fromisoformat(raw)
                return raw
        except ValueError:
            pass
        raise _Invalid("is not a date (YYYY-MM-DD)")
    return parse


def _timestamp_type(col: Column, tz: ZoneInfo) -> Parser:
    invalid = (f"is not an ISO 8601 timestamp (e.g. 2024-05-01T13:45:00+02:00; "
               f"without an offset it is read in APP_TIMEZONE={tz.key})")

    def parse(raw: str) -> str:
        try:
            if _TIMESTAMP.fullmatch(raw):
                value = datetime.fromisoformat(raw.replace(",", "."))
                # Without an offset the time is local to the reporting time zone, as analysts read it.
                return (value if value.tzinfo else value.replace(tzinfo=tz)).isoformat()
        except ValueError:
            pass
        raise _Invalid(invalid)
    return parse


def _currency_type(col: Column, tz: ZoneInfo) -> Parser:
    def parse(raw: str) -> str:
        if _CURRENCY.fullmatch(raw):
            return raw
        raise _Invalid("is not a 3-letter upper-case currency code (e.g. EUR)")
    return parse


@dataclass(frozen=True)
class ColumnType:
    sql: str
    parser: Callable[[Column, ZoneInfo], Parser]


TYPES: dict[str, ColumnType] = {
    "int4": ColumnType("integer", _int_type(32)),
    "int8": ColumnType("bigint", _int_type(64)),
    "text": ColumnType("text", _text_type),
    "money": ColumnType("numeric(12,2)", _decimal_type(12, 2, "money")),
    "rate": ColumnType("numeric(5,4)", _decimal_type(5, 4, "a rate")),
    "target": ColumnType("numeric(16,4)", _decimal_type(16, 4, "numeric(16,4)")),
    "date": ColumnType("date", _date_type),
    "timestamptz": ColumnType("timestamptz", _timestamp_type),
    "currency": ColumnType("char(3)", _currency_type),
}


def _quote(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")


# --------------------------------------------------------------------------- collecting problems

@dataclass
class _Problems:
    """Keeps the SHOWN problems with the lowest line numbers and counts all of them."""
    total: int = 0
    _heap: list = field(default_factory=list)
    _seq: int = 0

    def add(self, line: int | None, column: str | None, message: str) -> None:
        self.total += 1
        self._seq += 1
        item = (-(line or 0), -self._seq, Problem(line, column, message))
        if len(self._heap) < SHOWN:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def add_many(self, rows: Iterable[tuple], make: Callable[[tuple], Problem]) -> None:
        """Adds make(row) for each row; a row's last field counts every row its query matched."""
        rows = list(rows)
        for row in rows:
            p = make(row)
            self.add(p.line, p.column, p.message)
        if rows:
            # The queries return at most SHOWN rows; the rest are only counted.
            self.total += rows[0][-1] - len(rows)

    def shown(self) -> list[Problem]:
        return [p for _, _, p in sorted(self._heap, reverse=True)]

    def __bool__(self) -> bool:
        return self.total > 0


# --------------------------------------------------------------------------- SQL over the staging table
# Identifiers below come from TABLES, never from the file; values are always bound.

def _cols(names: Iterable[str], alias: str = "") -> str:
    return ", ".join(f"{alias}{n}" for n in names)


def _match(names: Iterable[str], left: str, right: str) -> str:
    return " AND ".join(f"{left}.{n} = {right}.{n}" for n in names)


def _as_text(names: Iterable[str], alias: str) -> str:
    return ", ".join(f"{alias}.{n}::text" for n in names)


def stage_ddl(spec: TableSpec) -> str:
    """Returns CREATE TEMP TABLE for spec's staging table: every column nullable, plus line."""
    cols = ", ".join(
        f"{c.name} {TYPES[c.type].sql}" + (f" DEFAULT {c.default}" if c.default is not None else "")
        for c in spec.columns)
    return f"CREATE TEMP TABLE {STAGE} (line integer NOT NULL, {cols}) ON COMMIT DROP"


def duplicate_sql(names: tuple[str, ...]) -> str:
    """Returns (line, first_line, *values, matched) of rows repeating an earlier row's names."""
    not_null = " AND ".join(f"{n} IS NOT NULL" for n in names)
    return f"""
        WITH dup AS (
            SELECT {_cols(names)}, min(line) AS first_line FROM {STAGE}
            WHERE {not_null} GROUP BY {_cols(names)} HAVING count(*) > 1)
        SELECT s.line, d.first_line, {_as_text(names, 's')}, count(*) OVER ()
        FROM {STAGE} s JOIN dup d ON {_match(names, 's', 'd')}
        WHERE s.line > d.first_line ORDER BY s.line LIMIT {SHOWN}"""


def existing_sql(spec: TableSpec, names: tuple[str, ...], *, other_key_in_file: bool) -> str:
    """Returns (line, *values, *existing key, matched) of rows whose names exist in the table.

    other_key_in_file: only rows of the table with another key that the file also holds (a
    replace moves a unique value between rows, which PostgreSQL checks row by row).
    """
    extra = ""
    if other_key_in_file:
        extra = (f" AND ({_cols(spec.key, 'r.')}) <> ({_cols(spec.key, 's.')})"
                 f" AND EXISTS (SELECT 1 FROM {STAGE} s2 WHERE {_match(spec.key, 's2', 'r')})")
    return f"""
        SELECT s.line, {_as_text(names, 's')}, {_as_text(spec.key, 'r')}, count(*) OVER ()
        FROM {STAGE} s JOIN {spec.qualified} r ON {_match(names, 's', 'r')}{extra}
        ORDER BY s.line LIMIT {SHOWN}"""


def missing_ref_sql(ref: Ref) -> str:
    """Returns (line, value, matched) of rows whose ref.column is not a key of ref.table."""
    target = TABLES[ref.table]
    pk = target.key[0]
    return f"""
        SELECT s.line, s.{ref.column}::text, count(*) OVER () FROM {STAGE} s
        WHERE s.{ref.column} IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM {target.qualified} r WHERE r.{pk} = s.{ref.column})
        ORDER BY s.line LIMIT {SHOWN}"""


def dependents() -> dict[str, list[tuple[TableSpec, Ref]]]:
    """Returns {table: [(referencing table, its ref)]} from the specs' references."""
    found: dict[str, list[tuple[TableSpec, Ref]]] = {name: [] for name in TABLES}
    for spec in TABLES.values():
        for ref in spec.refs:
            found[ref.table].append((spec, ref))
    return found


def orphan_sql(spec: TableSpec, dependent: TableSpec, ref: Ref) -> str:
    """Returns (rows, keys, example key) of dependent rows whose reference the file drops."""
    pk = spec.key[0]
    return f"""
        SELECT count(*), count(DISTINCT d.{ref.column}), min(d.{ref.column})::text
        FROM {dependent.qualified} d
        WHERE NOT EXISTS (SELECT 1 FROM {STAGE} s WHERE s.{pk} = d.{ref.column})"""


def insert_sql(spec: TableSpec) -> str:
    """Returns INSERT … SELECT of the whole staging table."""
    cols = _cols(c.name for c in spec.columns)
    return f"INSERT INTO {spec.qualified} ({cols}) SELECT {cols} FROM {STAGE}"


def upsert_sql(spec: TableSpec) -> str:
    """Returns INSERT … ON CONFLICT (key) DO UPDATE that leaves unchanged rows alone."""
    cols = _cols(c.name for c in spec.columns)
    rest = [c.name for c in spec.columns if c.name not in spec.key]
    head = f"INSERT INTO {spec.qualified} AS t ({cols}) SELECT {cols} FROM {STAGE} ON CONFLICT ({_cols(spec.key)})"
    if not rest:
        return f"{head} DO NOTHING"
    sets = ", ".join(f"{n} = EXCLUDED.{n}" for n in rest)
    # Unchanged rows stay out of the triggers' transition tables, so their days stay clean.
    return (f"{head} DO UPDATE SET {sets} "
            f"WHERE ({_cols(rest, 't.')}) IS DISTINCT FROM ({_cols(rest, 'EXCLUDED.')})")


def delete_missing_sql(spec: TableSpec) -> str:
    """Returns DELETE of the table's rows whose key the staging table lacks."""
    return (f"DELETE FROM {spec.qualified} r WHERE NOT EXISTS "
            f"(SELECT 1 FROM {STAGE} s WHERE {_match(spec.key, 's', 'r')})")


# --------------------------------------------------------------------------- reading the file

def resolve_table(table: str, source: str | None = None) -> TableSpec:
    """Returns the spec of table given as name or mart.name; raises ImportValidationError."""
    name = table.strip().lower()
    if name.startswith(f"{SCHEMA}."):
        name = name[len(SCHEMA) + 1:]
    if name in TABLES:
        return TABLES[name]
    allowed = ", ".join(TABLES)
    why = " is a rollup, rebuilt from the raw tables;" if name.startswith("rollup_") else " is not a table you can load;"
    raise ImportValidationError(source or table, [Problem(None, None, f"{table!r}{why} load one of: {allowed}")])


# The longest physical line read: csv's own limit (128 KiB a field) applies only after a whole
# line is in memory, and a 2 GB line without a line break took 4.3 GB.
MAX_LINE_BYTES = 2**20


def _lines(fh: BinaryIO, problems: _Problems) -> Iterator[bytes]:
    """Yields the file's physical lines, none longer than MAX_LINE_BYTES: a longer one is recorded
    as a problem, skipped without being held, and stands as an empty line."""
    n = 0
    while raw := fh.readline(MAX_LINE_BYTES + 1):
        n += 1
        if len(raw) > MAX_LINE_BYTES:
            problems.add(n, None, f"is longer than {MAX_LINE_BYTES // 2**20} MiB; no row of a table is that long: "
                                  "is it the right file, and are its quotes balanced?")
            while raw and not raw.endswith(b"\n"):
                raw = fh.readline(MAX_LINE_BYTES)
            raw = b"\n"
        yield raw


def _decoded_lines(fh: BinaryIO, problems: _Problems) -> Iterator[str]:
    """Yields the file's physical lines as text; records each line that is not UTF-8."""
    for n, raw in enumerate(_lines(fh, problems), start=1):
        try:
            yield raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as ex:
            bad = raw[ex.start:ex.start + 1]
            problems.add(n, None, f"is not UTF-8 (byte {bad!r} at position {ex.start + 1}); "
                                  "save the file as UTF-8 CSV")
            yield raw.decode("utf-8", errors="replace")


def _sniff(fh: BinaryIO) -> str | None:
    """Returns why the file cannot be read as CSV text at all, judging by its first bytes."""
    head = fh.read(4096)
    fh.seek(0)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "the file is UTF-16; save it as UTF-8 CSV"
    if head.startswith(b"PK\x03\x04"):
        return "the file looks like an Excel workbook (or another zip file); export the sheet as CSV (UTF-8)"
    if b"\r" in head and b"\n" not in head and head.strip(b"\r"):
        return "the file ends its lines with CR only (old Mac format); save it with LF or CRLF line endings"
    return None


def _check_header(spec: TableSpec, header: list[str], problems: _Problems) -> dict[str, int] | None:
    """Returns {column: index} of the header's known columns, or None when rows cannot be read."""
    names = [h.strip().lower() for h in header]
    expected = ", ".join(c.name for c in spec.columns)
    if len(names) == 1:
        for sep, label in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
            if sep in names[0]:
                problems.add(1, None, f"the header is one column {_quote(header[0])}: the file looks "
                                      f"separated by {label}; save it comma-separated ({expected})")
                return None
    known = {c.name for c in spec.columns}
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            problems.add(1, None, f"header field {i + 1} is empty (a trailing comma?)")
        elif name in index:
            problems.add(1, name, f"appears twice in the header (fields {index[name] + 1} and {i + 1})")
        elif name not in known:
            problems.add(1, name, f"is not a column of {spec.qualified}; its columns are: {expected}")
        else:
            index[name] = i
    for col in spec.columns:
        if col.name not in index and col.default is None:
            problems.add(1, col.name, "required column is missing from the header")
    return index


@dataclass
class _Scan:
    """The file's reader once its header is known; rows_as_copy_text() then streams the rows."""
    spec: TableSpec
    reader: Iterator[list[str]]
    problems: _Problems
    header: list[str]
    index: dict[str, int]
    tz: ZoneInfo
    line: int                              # physical line the reader has consumed up to
    rows: int = 0                          # data rows with the right number of fields

    @property
    def columns(self) -> tuple[str, ...]:
        """Returns the table's columns present in the header, in table order."""
        return tuple(c.name for c in self.spec.columns if c.name in self.index)

    def rows_as_copy_text(self, progress: Callable[[str], None] | None = None) -> Iterator[str]:
        """Yields 'line\\tvalue…\\n' per well-formed row (COPY text; \\N for a bad value)."""
        spec, problems, reader = self.spec, self.problems, self.reader
        columns = self.columns
        plan = [(self.index[c.name], c.name, TYPES[c.type].parser(c, self.tz),
                 None if c.default is None else str(c.default))
                for c in spec.columns if c.name in self.index]
        rules = [(columns.index(r.column) + 1, r, columns.index(r.other) + 1)
                 for r in spec.rules if r.column in self.index and r.other in self.index]
        width = len(self.header)
        last_report = time.monotonic()
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as ex:
                problems.add(self.line + 1, None, f"is not valid CSV: {ex}"
                             + ("; a quote opened here is never closed" if "end of data" in str(ex) else ""))
                self.line = reader.line_num
                continue
            line, self.line = self.line + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue                   # a blank line
            if len(row) != width:
                problems.add(line, None, f"has {len(row)} fields; the header has {width}")
                continue
            values = [str(line)]
            bad = False
            for i, name, parse, default in plan:
                raw = row[i].strip()
                if raw:
                    try:
                        values.append(parse(raw))
                        continue
                    except _Invalid as ex:
                        problems.add(line, name, f"{_quote(raw)} {ex}")
                elif default is not None:
                    values.append(default)
                    continue
                else:
                    problems.add(line, name, "is empty; a value is required")
                values.append("\\N")
                bad = True
            for a, rule, b in rules:
                if not bad and not rule.test(values[a], values[b]):
                    problems.add(line, rule.column, f"{values[a]} {rule.message} ({values[b]})")
            self.rows += 1
            yield "\t".join(values) + "\n"
            if progress and self.rows % 8192 == 0 and time.monotonic() - last_report >= PROGRESS_SECONDS:
                last_report = time.monotonic()
                progress(f"{self.rows:,} rows validated")
        if self.rows == 0 and not problems:
            problems.add(None, None, "the file has a header but no data rows; nothing to import")


def _open_csv(spec: TableSpec, fh: BinaryIO, tz: ZoneInfo, problems: _Problems) -> _Scan | None:
    """Reads and checks the header; returns the scan of the rows, or None when they cannot be read."""
    fatal = _sniff(fh)
    if fatal:
        problems.add(None, None, fatal)
        return None
    reader = csv.reader(_decoded_lines(fh, problems), strict=True)
    header = _first_row(reader, problems)
    if header is None:
        if not problems:
            problems.add(None, None, "the file is empty; the first line must be a header: "
                                     + ",".join(c.name for c in spec.columns))
        return None
    index = _check_header(spec, header, problems)
    return None if index is None else _Scan(spec, reader, problems, header, index, tz, reader.line_num)


def _first_row(reader, problems: _Problems) -> list[str] | None:
    """Returns the first row of reader that is not blank (the header), or None."""
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                return row
    except csv.Error as ex:
        problems.add(reader.line_num, None, f"the header is not valid CSV: {ex}")
    return None


def _batches(lines: Iterator[str], size: int = 4096) -> Iterator[str]:
    """Yields the lines joined in batches of size, for fewer, larger COPY writes."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield "".join(batch)
            batch.clear()
    if batch:
        yield "".join(batch)


# --------------------------------------------------------------------------- checks in SQL

def _key_text(values: tuple) -> str:
    return values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"


def _check_keys(conn: Connection, spec: TableSpec, scan: _Scan, mode: str, problems: _Problems) -> None:
    """Adds the problems of keys: duplicates, existing rows, references and dependents."""
    run = lambda sql: conn.execute(sa.text(sql)).all()  # noqa: E731
    present = set(scan.columns)
    for names in [spec.key] + [(u,) for u in spec.unique]:
        if not present.issuperset(names):
            continue
        n, label = len(names), ", ".join(names)
        problems.add_many(run(duplicate_sql(names)), lambda r: Problem(
            r[0], label, f"{_key_text(r[2:2 + n])} repeats line {r[1]}; "
                         f"{label} must be unique in the file"))
        if names == spec.key and mode == "append":
            problems.add_many(run(existing_sql(spec, names, other_key_in_file=False)), lambda r: Problem(
                r[0], label, f"{_key_text(r[1:1 + n])} already exists in {spec.qualified} "
                             "(use --mode replace to update existing rows)"))
        elif names != spec.key and present.issuperset(spec.key):
            k = len(spec.key)
            problems.add_many(run(existing_sql(spec, names, other_key_in_file=mode == "replace")), lambda r: Problem(
                r[0], label,
                f"{_key_text(r[1:1 + n])} already belongs to {', '.join(spec.key)} {_key_text(r[1 + n:1 + n + k])} "
                f"in {spec.qualified}" + (
                    "; moving it between rows in one replace is not possible: give that row its new "
                    f"{label} in a first load" if mode == "replace" else "")))
    for ref in spec.refs:
        if ref.column in present:
            problems.add_many(run(missing_ref_sql(ref)), lambda r, ref=ref: Problem(
                r[0], ref.column, f"{r[1]} is not in {SCHEMA}.{ref.table} (load {ref.table} first)"))
    if mode == "replace" and present.issuperset(spec.key):
        pk = spec.key[0]
        for dependent, ref in dependents()[spec.name]:
            rows, keys, example = conn.execute(sa.text(orphan_sql(spec, dependent, ref))).one()
            if rows:
                fate = ("those rows would be deleted with them (ON DELETE CASCADE)" if ref.cascade
                        else "the database would refuse the delete")
                problems.add(None, pk, (
                    f"replace would remove {keys:,} {pk} value(s) still referenced by {rows:,} rows of "
                    f"{dependent.qualified} (e.g. {pk} {example}); {fate}. Keep those keys in the file, "
                    f"or remove the rows of {dependent.name} first"))


# --------------------------------------------------------------------------- database errors

_SQLSTATE_HINTS = {
    "23503": "a referenced row is missing or still referenced",
    "23505": "a key already exists",
    "23514": "a value breaks a rule of the table",
    "23502": "a required value is missing",
    "40P01": "another session was changing the same rows (deadlock); run the import again",
    "40001": "another session was changing the same rows; run the import again",
    "55P03": "the table is locked by another session; run the import again later",
    "57014": "the import was cancelled or timed out",
    "53100": "the database server ran out of disk space",
}


def _database_problem(ex: Exception) -> Problem:
    orig = getattr(ex, "orig", None) or ex
    diag = getattr(orig, "diag", None)
    state = getattr(orig, "sqlstate", None) or ""
    primary = (diag.message_primary if diag else None) or str(orig).strip().splitlines()[0]
    if not state or state.startswith("08"):
        return Problem(None, None, f"could not reach PostgreSQL, or lost the connection: {primary}. "
                                   "Check DATABASE_URL and run the import again")
    text = f"the database rejected the import: {primary}"
    if diag and diag.message_detail:
        text += f" ({diag.message_detail})"
    if state in _SQLSTATE_HINTS:
        text += f"; {_SQLSTATE_HINTS[state]}"
    return Problem(None, None, text)


# --------------------------------------------------------------------------- the command

def _stage_and_check(conn: Connection, spec: TableSpec, fh: BinaryIO, tz: ZoneInfo, mode: str,
                     problems: _Problems, progress: Callable[[str], None] | None) -> _Scan | None:
    """Copies the file's rows into the staging table, recording every problem; returns the scan."""
    conn.execute(sa.text(f"DROP TABLE IF EXISTS pg_temp.{STAGE}"))
    conn.execute(sa.text(stage_ddl(spec)))
    scan = _open_csv(spec, fh, tz, problems)
    if scan is None:
        return None
    # Only the header's columns are copied; absent ones take the staging defaults.
    copy_sql = f"COPY {STAGE} ({_cols(('line',) + scan.columns)}) FROM STDIN"
    with conn.connection.dbapi_connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for text in _batches(scan.rows_as_copy_text(progress)):
            copy.write(text)
    if scan.rows:
        if progress and scan.rows >= LARGE:
            progress(f"{scan.rows:,} rows read; checking keys")
        conn.execute(sa.text(f"ANALYZE {STAGE}"))
        # Writers wait from here on, so what the checks found still holds when the rows go in.
        conn.execute(sa.text(f"LOCK TABLE {spec.qualified} IN SHARE ROW EXCLUSIVE MODE"))
        _check_keys(conn, spec, scan, mode, problems)
    return scan


def _write(conn: Connection, spec: TableSpec, mode: str) -> int:
    """Writes the staging table into the table; returns the rows a replace deleted."""
    if mode == "append":
        conn.execute(sa.text(insert_sql(spec)))
        return 0
    deleted = conn.execute(sa.text(delete_missing_sql(spec))).rowcount
    conn.execute(sa.text(upsert_sql(spec)))
    return deleted


def load_csv(engine: Engine, table: str, path: str | Path, *, mode: str = "append",
             progress: Callable[[str], None] | None = None) -> LoadResult:
    """Validates the file and imports it into table in one transaction; returns a LoadResult.

    Raises ImportValidationError listing every problem (the first 50 in full, all counted) when
    anything is wrong; nothing is written then. Timestamps without an offset are read in
    APP_TIMEZONE. progress, when given, receives a short status about once a second.
    """
    started = time.perf_counter()
    source = str(path)
    spec = resolve_table(table, source)
    if mode not in MODES:
        raise ImportValidationError(source, [Problem(None, None, f"mode {mode!r} is not one of: {', '.join(MODES)}")])
    tz = ZoneInfo(load_settings().timezone)
    problems = _Problems()
    try:
        with open(path, "rb") as fh, engine.begin() as conn:
            scan = _stage_and_check(conn, spec, fh, tz, mode, problems, progress)
            if problems or scan is None:
                raise ImportValidationError(source, problems.shown(), problems.total)
            say = progress if progress and scan.rows >= LARGE else (lambda message: None)
            say(f"{scan.rows:,} rows valid; writing them")
            deleted = _write(conn, spec, mode)
            say("refreshing the rollups")
            refreshed = rollups.refresh_rollups(conn)
    except (sa.exc.DBAPIError, psycopg.Error) as ex:
        raise ImportValidationError(source, [_database_problem(ex)]) from ex
    except OSError as ex:
        raise ImportValidationError(source, [Problem(None, None, f"cannot read the file: {ex.strerror or ex}")]) from ex
    elapsed = int((time.perf_counter() - started) * 1000)
    return LoadResult(spec.qualified, scan.rows, mode, elapsed, refreshed.mode, deleted)
