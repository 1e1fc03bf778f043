"""The SQL page's reads and writes: analysts' queries run on their own role (with the run recorded),
list parameters' options, saved queries, the user's history and the schema of mart.

Analysts' queries run through analytics.query on the analysts' engine inside
`translated(analyst=True)`: a role that cannot log in, or a value the driver cannot send, becomes a
data.errors domain error with its own words. A vendor user's run on their vendors' database role
(data.vendor_scope), which PostgreSQL limits to their rows: every reader here takes the user's
`scope` (User.vendor_ids; empty for the staff) and caches on it."""
from __future__ import annotations

import time
from datetime import date
from typing import IO

import pandas as pd
import streamlit as st

from analytics.query import QueryFailed, QueryRejected, QueryResult, fetch_schema_columns, list_options, run_query
from analytics.sql_params import Parameter, bind_parameters

from components.loaders import app_engine, engine_of, read, write
from data import saved_queries as SQ
from data.auth import User
from data.errors import AnalystRoleError, StatementNotRunError, translated
from data.vendor_scope import VENDOR_GROUP
from reports.exporters import export_query


def json_ready(values: dict) -> dict:
    """Returns parameter values as JSON keeps them (dates as ISO text)."""
    return {k: (v.isoformat() if isinstance(v, date) else [x.isoformat() for x in v]
                if isinstance(v, tuple) else v) for k, v in values.items()}


@st.cache_data(ttl=300, show_spinner="Loading the list…")
def load_parameter_options(name: str, source: str, scope: tuple[int, ...] = ()) -> list:
    """Returns the choices of a {{name:list(SELECT …)}} parameter: its query's first column."""
    with translated(analyst=True):
        return list_options(Parameter(name, "list", source=source), engine=engine_of(scope), explain=not scope)


def execute(user: User, sql: str, values: dict, *, row_limit: int, query_id: int | None = None,
            client_addr: str = "") -> tuple[QueryResult | None, str | None]:
    """Binds the parameters, runs the query on the user's role (engine_of) and records the run
    (history, saved query statistics, audit log). Returns (result, None) or (None, message)."""
    started = time.perf_counter()
    result, message, outcome = None, None, "ok"
    try:
        text, params = bind_parameters(sql, values)
        with translated(analyst=True):
            result = run_query(text, params, row_limit=row_limit, engine=engine_of(user.vendor_ids),
                               user=user.username, explain=not user.vendor_ids)
        outcome = "truncated" if result.truncated else "ok"
    except QueryRejected as ex:
        message, outcome = f"Not run: {ex}.", "rejected"
    except QueryFailed as ex:
        message, outcome = f"{ex}.", "failed"
    except AnalystRoleError as ex:
        message, outcome = str(ex), "failed"
    except StatementNotRunError as ex:
        message, outcome = str(ex), "rejected"
    ms = result.elapsed_ms if result else round((time.perf_counter() - started) * 1000)
    with write() as conn:
        SQ.record_run(conn, user.username, sql, json_ready(values), duration_ms=ms,
                      rows=len(result.frame) if result else 0, outcome=outcome, message=message or "",
                      query_id=query_id, client_addr=client_addr)
    return result, message


def export_result(sql: str, values: dict, fmt: str, out: IO[bytes], *, row_limit: int, about: dict,
                  scope: tuple[int, ...] = ()) -> None:
    """Runs the query again on the user's role (engine_of(scope)) and streams up to row_limit rows
    into out as fmt."""
    text, params = bind_parameters(sql, values)
    with translated(analyst=True):
        export_query(text, params, fmt, out, row_limit=row_limit, engine=engine_of(scope), sheet="Query",
                     about=about, explain=not scope)


def save_query(owner: User, name: str, sql: str, *, description: str, tags: str, shared: bool,
               query_id: int | None) -> int:
    """Saves (or updates) a query; returns its id. Raises SavedQueryError with the reason. A vendor
    user's queries are never shared."""
    with write() as conn:
        return SQ.save_query(conn, owner.username, name, sql, description=description, tags=tags,
                             shared=shared and not owner.is_vendor, query_id=query_id)


def delete_query(owner: str, query_id: int) -> None:
    with write() as conn:
        SQ.delete_query(conn, owner, query_id)


def load_saved(user: User, search: str) -> pd.DataFrame:
    """Returns the queries the user sees (theirs and shared ones; a vendor user's own only) matching search."""
    with read(app_engine()) as conn:
        return SQ.fetch_queries(conn, user.username, search=search, own_only=user.is_vendor)


def load_versions(query_id: int) -> pd.DataFrame:
    """Returns a saved query's edit history."""
    with read(app_engine()) as conn:
        return SQ.fetch_query_versions(conn, query_id)


def load_history(user: str) -> pd.DataFrame:
    """Returns the user's last runs, newest first."""
    with read(app_engine()) as conn:
        return SQ.fetch_history(conn, user)


@st.cache_data(ttl=600, show_spinner=False)
def load_schema(scope: tuple[int, ...] = ()) -> pd.DataFrame:
    """Returns mart's (table, column, type, approx_rows) rows: of the tables the user's role reads.
    For a vendor user the tables the vendors' group may read, without row counts (-1: the estimates
    count every vendor's rows); the vendor's own role cannot read the catalogs."""
    with read() as conn:
        return fetch_schema_columns(conn, readable_by=VENDOR_GROUP if scope else None)
