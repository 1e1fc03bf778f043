"""The safe runner of analysts' SQL: run_query(sql, params=None, *, row_limit=None, timeout_ms=None).

Two locks on every query, each enough on its own:
1. the parser's checks (analytics.sql_parse): one read-only statement over schema mart, no denied
   function, within the size and nesting limits;
2. PostgreSQL runs it on the analysts' own login role (SELECT on mart only, no TEMP, role settings
   read-only, statement_timeout, temp_file_limit, work_mem), in a READ ONLY transaction with its
   own statement_timeout, through a separate connection pool: never a privileged connection.

This module is the I/O half: connections, the per-user slots, the transaction and its limits,
fetching, COPY and cancelling. Rows are fetched in batches through a server-side cursor up to the
row cap (QueryResult.truncated says when more were there) and a cap on their size in memory.
Rejections raise QueryRejected, failures in PostgreSQL QueryFailed (both ValueError, from
analytics.sql_errors) with a message a person can act on. {{parameters}} are analytics.sql_params'.
"""
from __future__ import annotations

import re
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, BinaryIO

import pandas as pd
import psycopg
import sqlalchemy as sa
import sqlglot
from psycopg import pq
from psycopg import sql as psql

from analytics.sql_errors import QueryFailed, QueryRejected
from analytics.sql_params import Parameter, plain_value
from analytics.sql_parse import SA_BIND, check_placeholders, check_sql, statement_body
from data.db import SQL_ROLE_SETTINGS, get_analyst_engine
from data.settings import load_settings

DEFAULT_ROW_LIMIT = 10_000
DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_MAX_BYTES = 200 * 2**20
FETCH_BATCH = 5_000
FIRST_BATCH = 1     # then ×8 per batch up to FETCH_BATCH, never past the room left under max_bytes
# Queries one user may have running at once in this process: more are refused at once, so that one
# analyst's slow queries cannot take every connection of the analysts' pool from the others.
MAX_RUNNING_PER_USER = 2
_running: dict[str, int] = {}
_running_lock = threading.Lock()
# A spreadsheet runs a cell that starts with one of these as a formula (reports.exporters and
# copy_csv's SQL neutralise them).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class QueryResult:
    columns: list[str]
    frame: pd.DataFrame
    truncated: bool
    elapsed_ms: int
    truncated_by: str | None = None   # "rows" or "bytes"


def _position(sql: str, position: int | None) -> str:
    if not position:
        return ""
    before = sql[:position - 1]
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    return f" (line {line}, column {col})"


def _error_position(conn, sql: str, params: dict | None) -> int | None:
    """Returns where in sql PostgreSQL finds its error, or None.

    A streamed query runs inside DECLARE … CURSOR FOR, so the position PostgreSQL reports counts
    from that prefix; planning the query alone (EXPLAIN, which runs nothing) reports it again,
    8 characters ("EXPLAIN ") after the query's start."""
    try:
        with conn.begin():
            conn.execute(sa.text("SET TRANSACTION READ ONLY"))
            conn.execute(sa.text("EXPLAIN " + sql), params or {})
    except sa.exc.DBAPIError as ex:
        pos = getattr(getattr(ex.orig, "diag", None), "statement_position", None)
        return int(pos) - 8 if pos and int(pos) > 8 else None
    except sa.exc.SQLAlchemyError:
        return None
    return None


def _failure(ex: sa.exc.DBAPIError, sql: str, timeout_ms: int, position: int | None = None) -> QueryFailed:
    orig = ex.orig
    diag = getattr(orig, "diag", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "57014":
        return QueryFailed(f"the query ran longer than {timeout_ms / 1000:g} s and was stopped; narrow it "
                           "(a WHERE on a date, an aggregate) or raise the time limit")
    if sqlstate == "42501":
        return QueryFailed(f"permission denied: {getattr(diag, 'message_primary', orig)}; analysts' queries "
                           "read schema mart only")
    if sqlstate == "25006":
        return QueryFailed("the query tried to change data; analysts' queries are read-only")
    message = getattr(diag, "message_primary", None) or str(orig).splitlines()[0]
    return QueryFailed(f"PostgreSQL: {message}{_position(sql, position)}")


def _reset_session(conn) -> None:
    """Undoes whatever a query may leave on its pooled connection (session settings, advisory
    locks, prepared statements, cursors, listeners): DISCARD ALL, outside a transaction."""
    try:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("DISCARD ALL")
    except sa.exc.DBAPIError:
        conn.invalidate()  # a broken connection is not handed to the next analyst


def _unique(columns: list[str]) -> list[str]:
    """Returns column names made unique (count, count_2, …): tables and downloads need unique names."""
    seen: dict[str, int] = {}
    out = []
    for c in columns:
        seen[c] = seen.get(c, 0) + 1
        out.append(c if seen[c] == 1 else f"{c}_{seen[c]}")
    return out


def tidy_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Makes numeric columns numbers (PostgreSQL numeric arrives as Decimal) and time-zone-aware
    timestamps one time zone, so that charts and Excel files accept them."""
    for c in frame.columns:
        col = frame[c]
        if col.dtype == object and len(col.dropna()) and all(isinstance(v, Decimal) for v in col.dropna()[:1000]):
            frame[c] = pd.to_numeric(col.map(lambda v: None if v is None else float(v)))
        elif col.dtype == object and len(col.dropna()) and hasattr(col.dropna().iloc[0], "tzinfo") \
                and getattr(col.dropna().iloc[0], "tzinfo", None) is not None:
            try:
                frame[c] = pd.to_datetime(col, utc=True).dt.tz_convert(load_settings().tz).dt.tz_localize(None)
            except (ValueError, TypeError):
                pass
    return frame


def fetch_schema_columns(conn: sa.engine.Connection, *, readable_by: str | None = None) -> pd.DataFrame:
    """The mart schema's tables and columns (table, column, type, approx_rows: PostgreSQL's
    estimate) for the analysts' schema browser; with readable_by, only the tables that role may
    SELECT from, and no row estimates (-1: they count every vendor's rows)."""
    return pd.DataFrame(conn.execute(sa.text("""
        SELECT c.table_name, c.column_name, c.data_type,
               CASE WHEN CAST(:role AS text) IS NULL THEN t.reltuples::bigint ELSE -1 END AS approx_rows
        FROM information_schema.columns c
        JOIN pg_class t ON t.relname = c.table_name AND t.relnamespace = 'mart'::regnamespace
        WHERE c.table_schema = 'mart'
          AND (CAST(:role AS text) IS NULL OR has_table_privilege(:role, t.oid, 'SELECT'))
        ORDER BY c.table_name, c.ordinal_position"""), {"role": readable_by}).all(),
        columns=["table", "column", "type", "approx_rows"])


def _mart_tables(conn) -> set[str]:
    return {r[0] for r in conn.execute(sa.text(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'mart'"))}


class QueryStream:
    """An open analyst query: .columns, and .batches() yielding lists of row tuples.

    Failures while fetching are raised as QueryFailed, like failures when it starts."""

    def __init__(self, conn: sa.Connection, result: sa.CursorResult, sql: str, params: dict | None,
                 timeout_ms: int) -> None:
        self._conn, self._result, self._sql, self._params, self._timeout_ms = conn, result, sql, params, timeout_ms
        self.columns = _unique(list(result.keys()))

    def fetch(self, n: int) -> list[tuple]:
        try:
            return [tuple(r) for r in self._result.fetchmany(max(1, int(n)))]
        except sa.exc.DBAPIError as ex:
            raise _translated(self._conn, ex, self._sql, self._params, self._timeout_ms) from None

    def batches(self, size: int = FETCH_BATCH, *, limit: int | None = None) -> Iterator[list[tuple]]:
        """Yields lists of up to size rows, at most limit rows in all."""
        taken = 0
        while limit is None or taken < limit:
            chunk = self.fetch(size if limit is None else min(size, limit - taken))
            if not chunk:
                return
            taken += len(chunk)
            yield chunk


def _limit_transaction(conn, timeout_ms: int) -> None:
    """Sets the transaction's time limit and the role's memory and idle limits again, locally: the
    role could have changed its own defaults (ALTER ROLE CURRENT_USER SET …) where no runner
    stood guard. temp_file_limit needs a superuser to change, so the role's own value holds."""
    limits = {"statement_timeout": f"{timeout_ms}ms", "work_mem": SQL_ROLE_SETTINGS["work_mem"],
              "idle_in_transaction_session_timeout": SQL_ROLE_SETTINGS["idle_in_transaction_session_timeout"]}
    names = list(limits)
    conn.execute(sa.text("SELECT " + ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(names)))),
                 {**{f"n{i}": n for i, n in enumerate(names)}, **{f"v{i}": limits[n] for i, n in enumerate(names)}})


def _begin_checked(conn, sql: str, params: dict | None, timeout_ms: int, check: bool) -> None:
    """Starts the read-only transaction with its limits and, unless check is False, runs the
    parser's checks (tables as the analysts' role sees them) and the placeholders' check."""
    conn.execute(sa.text("SET TRANSACTION READ ONLY"))
    _limit_transaction(conn, timeout_ms)
    if check:
        tree = check_sql(sql, mart_tables=_mart_tables(conn))
        check_placeholders(sql, tree, params)


def _translated(conn, ex: sa.exc.DBAPIError, sql: str, params: dict | None, timeout_ms: int) -> QueryFailed:
    conn.rollback()
    return _failure(ex, sql, timeout_ms, _error_position(conn, sql, params))


@contextmanager
def _user_slot(user: str | None) -> Iterator[None]:
    """Counts user's running queries; refuses one more than MAX_RUNNING_PER_USER."""
    if user is None:
        yield
        return
    with _running_lock:
        if _running.get(user, 0) >= MAX_RUNNING_PER_USER:
            raise QueryRejected(f"you have {MAX_RUNNING_PER_USER} queries running already (in other tabs or "
                                "windows); wait for one to finish before starting another")
        _running[user] = _running.get(user, 0) + 1
    try:
        yield
    finally:
        with _running_lock:
            _running[user] -= 1
            if not _running[user]:
                del _running[user]


@contextmanager
def _connection(engine: sa.engine.Engine) -> Iterator[sa.engine.Connection]:
    """A connection of the analysts' pool; QueryRejected when none frees up within its timeout."""
    try:
        conn = engine.connect()
    except sa.exc.TimeoutError:
        raise QueryRejected("every connection for analysts' queries is in use by other queries; try again in a "
                            "moment") from None
    with conn:
        yield conn


_EXPLAIN = re.compile(r"\s*explain\b", re.IGNORECASE)


def _first_word(sql: str) -> str | None:
    """The statement's first token in lower case, past comments ("" when empty); None when it
    cannot be read (so a check built on it refuses rather than guesses)."""
    try:
        tokens = sqlglot.tokenize(sql, read="postgres")
    except sqlglot.errors.SqlglotError:
        return None
    return tokens[0].text.lower() if tokens else ""


@contextmanager
def open_query(sql: str, params: dict | None = None, *, timeout_ms: int | None = None,
               engine: sa.engine.Engine | None = None, check: bool = True,
               user: str | None = None, explain: bool = True) -> Iterator[QueryStream]:
    """Opens one read-only analyst query (see the module docstring) as a QueryStream whose rows
    come through a server-side cursor, batch by batch, so that neither the caller nor the driver
    holds the whole result. Downloads and exports stream from here; run_query collects from here.

    params are bound (`:name` in the SQL), never formatted in. check=False skips the parser (for
    tests that prove the database's own limits); the pages never pass it. With user, at most
    MAX_RUNNING_PER_USER of that user's queries run at once. explain=False refuses EXPLAIN, also
    with check=False: on a vendor's role its estimates come from statistics of every vendor's rows."""
    timeout_ms = DEFAULT_TIMEOUT_MS if timeout_ms is None else int(timeout_ms)
    if timeout_ms < 1:
        raise QueryRejected("the time limit must be positive")
    if not explain and _first_word(sql) in ("explain", None):
        raise QueryRejected("EXPLAIN is not available here: its row estimates are drawn from every vendor's rows")
    engine = engine or get_analyst_engine()
    with _user_slot(user), _connection(engine) as conn:
        try:
            _begin_checked(conn, sql, params, timeout_ms, check)
            # A server-side cursor fetches in batches (bounded memory); EXPLAIN cannot be DECLAREd.
            streamed = not _EXPLAIN.match(sql)
            try:
                result = conn.execute(sa.text(sql).execution_options(stream_results=streamed,
                                                                     max_row_buffer=FETCH_BATCH), params or {})
            except sa.exc.DBAPIError as ex:
                raise _translated(conn, ex, sql, params, timeout_ms) from None
            stream = QueryStream(conn, result, sql, params, timeout_ms)
            try:
                yield stream
            finally:
                result.close()
        finally:
            if conn.in_transaction():
                conn.rollback()
            _reset_session(conn)


# Column types (PostgreSQL type OIDs) written as they are: numbers, booleans, dates and times.
# Every other type's text is checked for a formula-looking start (text, json, enums, arrays, …).
_PLAIN_TYPES = {20, 21, 23, 26, 700, 701, 790, 1700, 16, 1082, 1083, 1114, 1184, 1186, 1266}
_TIMESTAMPTZ, _BOOL = 1184, 16
COPY_BLOCK = 2**20
WAIT_CHECK_S = 1.0   # how often a COPY waiting for the server checks whether to stop
# Text starting with = + - @, tab or CR gets a leading quote (as reports.exporters.neutral does).
_NEUTRAL = r"CASE WHEN {c}::text ~ '^[=+@\t\r-]' THEN chr(39) || {c}::text ELSE {c}::text END"


def _psycopg_failure(conn, ex: Exception, sql: str, timeout_ms: int) -> Exception:
    conn.rollback()
    if isinstance(ex, psycopg.Error):
        return _failure(sa.exc.DBAPIError(None, None, ex), sql, timeout_ms)
    return ex


# Planning errors of a parameter typed text where it was unknown before: undefined operator or
# function, datatype mismatch, ambiguous function.
_RETYPED = {"42883", "42804", "42725"}
_SETTING_TYPES = ((bool, "boolean"), (int, "bigint"), (float, "double precision"), (Decimal, "numeric"),
                  (datetime, "timestamptz"), (date, "date"), (str, "text"))


def _settings_for_params(conn, body: str, params: dict):
    """Returns body (psycopg SQL) with each :name replaced by current_setting('mbi.p<i>') cast to
    its value's type, after binding each value to its setting for this transaction (settings are
    named by position: their names ignore case, parameters' do not). A `\\:` written to keep a
    colon out of the parameters becomes `:`, as SQLAlchemy's text() makes it."""
    def plain(text: str):
        return psql.SQL(text.replace("\\:", ":"))
    if not params:
        return plain(body)
    slots = {name: i for i, name in enumerate(params)}
    parts, last = [], 0
    for m in SA_BIND.finditer(body):
        name = m.group(1)
        if name not in params:
            continue
        value = params[name]
        kind = next((t for cls, t in _SETTING_TYPES if isinstance(value, cls)), None)
        if kind is None:
            raise QueryRejected(f"parameter {name}: a {type(value).__name__} cannot be sent to PostgreSQL")
        parts += [plain(body[last:m.start()]),
                  psql.SQL("CAST(current_setting({g}) AS {t})").format(g=psql.Literal(f"mbi.p{slots[name]}"),
                                                                       t=psql.SQL(kind))]
        last = m.end()
    parts.append(plain(body[last:]))
    for name, value in params.items():
        text = value.isoformat() if isinstance(value, (date, datetime)) else \
            ("true" if value else "false") if isinstance(value, bool) else str(value)
        conn.execute(sa.text("SELECT set_config(:g, :v, true)"), {"g": f"mbi.p{slots[name]}", "v": text})
    return psql.Composed(parts)


def _wait(pg, on_wait) -> None:
    """Waits in select(), which releases the GIL, until the server sends something: libpq's
    blocking calls hold the GIL for as long as the query runs, and froze every other thread of the
    scheduler (its heartbeat, the lease renewals, the alerts) for the whole of a slow export.
    on_wait() is called each second without news (an export checks SIGTERM and its lease there)."""
    while not select.select([pg.socket], [], [], WAIT_CHECK_S)[0]:
        if on_wait is not None:
            on_wait()
    pg.consume_input()


def _flush(pg, on_wait) -> None:
    """Sends the rest of a statement: psycopg keeps its connections non-blocking, so send_query
    writes only what the socket takes at once, and a long statement to a distant server would
    wait for an answer to a question never finished."""
    while pg.flush():   # 1: more to send
        readable, writable, _ = select.select([pg.socket], [pg.socket], [], WAIT_CHECK_S)
        if readable:
            pg.consume_input()
        if not readable and not writable and on_wait is not None:
            on_wait()


def _next_result(pg, on_wait=None):
    """libpq's next result, waited for without the GIL (see _wait)."""
    pg.consume_input()
    while pg.is_busy():
        _wait(pg, on_wait)
    return pg.get_result()


def _copy_out(conn, raw, statement: bytes, out, on_chunk, sql: str, timeout_ms: int) -> int:
    """Runs COPY … TO STDOUT on libpq directly and writes each row's bytes as it comes: psycopg's
    Copy object costs about a microsecond a row more, which at a million rows is three times the
    time of the whole COPY. Every wait for the server is a select() without the GIL (see _wait),
    calling on_chunk(bytes so far) each second without news. Returns the number of rows; raises
    QueryFailed."""
    pg = raw.pgconn
    get, write, written, reported = pg.get_copy_data, out.write, 0, 0
    on_wait = (lambda: on_chunk(written)) if on_chunk is not None else None
    pg.send_query(statement)
    try:
        _flush(pg, on_wait)
        result = _next_result(pg, on_wait)
        if result is None or result.status != pq.ExecStatus.COPY_OUT:
            error = _result_error(psycopg, result)
            while _next_result(pg) is not None:
                pass
            conn.rollback()
            raise _failure(sa.exc.DBAPIError(None, None, error), sql, timeout_ms)
        while True:
            n, data = get(1)   # without blocking: 0 when no whole row has arrived yet
            if n == 0:
                _wait(pg, on_wait)
                continue
            if n < 0:
                break
            write(data)
            written += n
            if on_chunk is not None and written - reported >= COPY_BLOCK:
                reported = written
                on_chunk(written)
    except QueryFailed:
        raise
    except BaseException:
        # Stopped from our side (SIGTERM, a lost lease, a full disk): cancel the statement and drop
        # the connection. (Reading a cancelled COPY to its end to keep the connection can block in
        # libpq after the error; a stop is rare, a new connection cheap.)
        try:
            raw.cancel()
        finally:
            conn.invalidate()
        raise
    final, rows = None, 0
    while (r := _next_result(pg)) is not None:
        final = final if final is not None and final.status == pq.ExecStatus.FATAL_ERROR else r
    if final is not None and final.status == pq.ExecStatus.FATAL_ERROR:
        conn.rollback()
        raise _failure(sa.exc.DBAPIError(None, None, _result_error(psycopg, final)), sql, timeout_ms)
    status = (final.command_status or b"") if final is not None else b""
    rows = int(status.split()[-1]) if status.startswith(b"COPY") else 0
    return rows


def _result_error(psycopg, result):
    """A psycopg error (with sqlstate and diagnostics) from a failed libpq result."""
    if result is None:
        return psycopg.OperationalError("the server sent no result")
    sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
    message = (result.error_message or b"").decode(errors="replace").strip()
    cls = psycopg.errors.lookup(sqlstate) if sqlstate else psycopg.DatabaseError
    return cls(message, info=result)


def copy_csv(sql: str, out: BinaryIO, *, params: dict | None = None, engine: sa.engine.Engine | None = None,
             timeout_ms: int | None = None, check: bool = True, bom: bool = True,
             on_chunk: Callable[[int], None] | None = None) -> int | None:
    """Writes an analyst's query without parameters as CSV with a header to the binary file out
    through PostgreSQL's COPY … TO STDOUT: the server writes the CSV, so this runs at the speed of
    psql's \\copy. Same checks, role, read-only transaction and limits as open_query.

    Inside COPY the query is wrapped in a SELECT that neutralises formula-looking text (a leading
    quote, as reports.exporters does), writes timestamps with time zone as local wall-clock times
    and booleans as true/false, so the file reads like the streamed writer's. Returns the number of
    rows, or None (nothing written) when COPY cannot take the query: EXPLAIN, or column names that
    are empty, repeated or formula-looking; the caller then streams it through open_query.

    COPY takes no bound parameters, so params (`:name` in sql) travel as transaction-local
    settings: each value is bound to set_config('mbi.p_<name>', value, true) and its placeholder
    becomes current_setting('mbi.p_<name>') cast to the value's type. No value enters the SQL
    text. Text values arrive typed text rather than unknown; where PostgreSQL would have inferred
    another type (a text parameter compared with a number), planning fails and None is returned.
    on_chunk(bytes so far) is called as the data comes (an export renews its lease there)."""
    if re.match(r"\s*explain\b", sql, re.IGNORECASE):
        return None
    timeout_ms = DEFAULT_TIMEOUT_MS if timeout_ms is None else int(timeout_ms)
    engine = engine or get_analyst_engine()
    body = statement_body(sql)
    with engine.connect() as conn:
        try:
            _begin_checked(conn, sql, params, timeout_ms, check)
            raw = conn.connection.dbapi_connection
            body = _settings_for_params(conn, body, params or {})
            wrapped = psql.SQL("SELECT * FROM (\n{body}\n) AS q LIMIT 0").format(body=body)
            try:
                with raw.cursor() as cur:
                    cur.execute(wrapped)   # the analyst's checked SQL, planned only: no values in it
                    described = [(d.name, d.type_code) for d in cur.description or []]
            except Exception as ex:  # noqa: BLE001 - psycopg's errors, translated as the runner does
                if params and getattr(ex, "sqlstate", None) in _RETYPED:
                    return None   # a parameter PostgreSQL typed from its context: the cursor path binds it
                raise _psycopg_failure(conn, ex, sql, timeout_ms) from None
            names = [n for n, _ in described]
            if not names or len(set(names)) != len(names) or any(not n or n.startswith(FORMULA_START) for n in names):
                return None
            exprs = []
            for name, oid in described:
                col = psql.Identifier(name)
                if oid not in _PLAIN_TYPES:
                    e = psql.SQL(_NEUTRAL).format(c=col)
                elif oid == _TIMESTAMPTZ:
                    e = psql.SQL("({c} AT TIME ZONE current_setting('TimeZone'))").format(c=col)
                elif oid == _BOOL:
                    e = psql.SQL("CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END").format(c=col)
                else:
                    e = col
                exprs.append(psql.SQL("{e} AS {c}").format(e=e, c=col))
            copy = psql.SQL("COPY (SELECT {exprs} FROM (\n{body}\n) AS q) TO STDOUT WITH (FORMAT csv, HEADER)").format(
                exprs=psql.SQL(", ").join(exprs), body=body)
            if bom:
                out.write(b"\xef\xbb\xbf")
            return _copy_out(conn, raw, copy.as_bytes(raw), out, on_chunk, sql, timeout_ms)
        finally:
            if conn.in_transaction():
                conn.rollback()
            _reset_session(conn)


def run_query(sql: str, params: dict | None = None, *, row_limit: int | None = None, timeout_ms: int | None = None,
              max_bytes: int | None = None, engine: sa.engine.Engine | None = None,
              check: bool = True, user: str | None = None, explain: bool = True) -> QueryResult:
    """Runs one read-only query of an analyst (see the module docstring) and returns up to row_limit
    rows and about max_bytes of them in memory.

    The first batch is one row; each later batch is up to eight times the one before and never more
    rows than the room left under max_bytes holds at the average row size seen so far: a few
    enormous rows overshoot the cap by about one row, not by a batch."""
    row_limit = DEFAULT_ROW_LIMIT if row_limit is None else int(row_limit)
    max_bytes = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    if row_limit < 1 or max_bytes < 1:
        raise QueryRejected("the row limit and the size limit must be positive")
    started = time.perf_counter()
    batches, rows, size, truncated_by = [], 0, 0, None
    with open_query(sql, params, timeout_ms=timeout_ms, engine=engine, check=check, user=user,
                    explain=explain) as stream:
        columns = stream.columns
        want = FIRST_BATCH
        while True:
            chunk = stream.fetch(min(want, row_limit + 1 - rows))
            if not chunk:
                break
            frame = pd.DataFrame(chunk, columns=columns)
            size += int(frame.memory_usage(deep=True).sum())
            batches.append(frame)
            rows += len(chunk)
            if rows > row_limit:
                truncated_by = "rows"
                break
            if size > max_bytes:
                truncated_by = "bytes"
                break
            per_row = max(1, size // rows)
            want = max(1, min(FETCH_BATCH, want * 8, (max_bytes - size) // per_row))
    frame = pd.concat(batches, ignore_index=True) if batches else pd.DataFrame(columns=columns)
    if truncated_by == "rows":
        frame = frame.iloc[:row_limit]
    frame = tidy_frame(frame)
    columns = list(frame.columns)
    return QueryResult(columns, frame, truncated_by is not None, round((time.perf_counter() - started) * 1000),
                       truncated_by)


LIST_OPTIONS_LIMIT = 1_000


def list_options(parameter: Parameter, **run: Any) -> list:
    """Returns a list parameter's choices: the first column of its query, at most
    LIST_OPTIONS_LIMIT of them, through run_query (the analysts' checks and role). Raises
    QueryRejected/QueryFailed naming the parameter."""
    if "{{" in (parameter.source or ""):
        raise QueryRejected(f"parameter {parameter.name}: a list's query cannot have parameters of its own")
    try:
        result = run_query(parameter.source or "", row_limit=LIST_OPTIONS_LIMIT, **run)
    except QueryRejected as ex:
        raise QueryRejected(f"parameter {parameter.name}'s list: {ex}") from None
    except QueryFailed as ex:
        raise QueryFailed(f"parameter {parameter.name}'s list: {ex}") from None
    if not result.columns:
        return []
    return [plain_value(v) for v in result.frame.iloc[:, 0].dropna().tolist()]

