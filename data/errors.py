"""Database failures as domain errors, translated once from the driver's, with words a person can act on.

`data.db.connection` opens every connection the app's pages use inside `translated()`; the UI
catches these classes, never sqlalchemy's or psycopg's. An error this module does not know (a bug,
a constraint) is raised unchanged.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import sqlalchemy as sa
from psycopg import errors as pg

MIGRATE_HINT = "run `python -m data migrate` (make run does)"
# SQLSTATEs of a statement that lost, not of a server out of reach: transaction rollback (40: deadlock,
# serialisation failure), query canceled (57014: statement timeout), lock not available (55P03),
# operator intervention (57P: the server ended the session).
BUSY_STATES = ("40", "57014", "55P03", "57P")


class DataError(Exception):
    """A database failure; str() says what happened and what to do, .reason is the driver's own words."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def first_line(self) -> str:
        """The first line of the driver's words (PostgreSQL adds detail lines)."""
        return (self.reason.splitlines() or [""])[0]


class DatabaseUnavailableError(DataError):
    """PostgreSQL did not answer: unreachable, or busy."""


class DatabaseUnreachableError(DatabaseUnavailableError):
    """No connection could be made (wrong DATABASE_URL, server down, refused)."""


class DatabaseBusyError(DatabaseUnavailableError):
    """The statement lost: a deadlock, a serialisation failure, a lock or statement timeout, a dropped connection."""


class SchemaOutOfDateError(DataError):
    """A table or column the app expects is missing: the database was never migrated, or migrated by an older app."""


class AnalystRoleError(DataError):
    """The analysts' database role cannot log in."""


class StatementNotRunError(DataError):
    """The driver refused an analyst's statement before PostgreSQL ran it (a value it cannot send)."""


def analyst_connect_failure(ex: BaseException) -> str:
    """The words when the analysts' role cannot log in (ex: the driver's error), with what an admin can do."""
    reason = str(getattr(ex, "orig", None) or ex).strip()
    message = f"The analysts' database role cannot connect: {reason}"
    if "password authentication failed" in reason:
        message += (". An admin sets ANALYST_DB_PASSWORD for the app and runs `python -m data migrate`, "
                    "which gives the role that password")
    return message


def _driver_error(ex: BaseException) -> BaseException | None:
    if isinstance(ex, sa.exc.DBAPIError):
        return ex.orig
    return ex if isinstance(ex, psycopg.Error) else None


def translate(ex: BaseException, *, analyst: bool = False) -> DataError | None:
    """Returns the domain error for a driver error (None: not one this module translates).

    analyst: the statement ran on the analysts' role, whose failure to connect is its own error and
    whose statements the driver refused are the analyst's to fix."""
    if not isinstance(ex, (sa.exc.StatementError, psycopg.Error)):
        return None
    orig = _driver_error(ex)
    reason = str(orig if orig is not None else (getattr(ex, "orig", None) or ex)).strip()
    operational = isinstance(ex, sa.exc.OperationalError) or isinstance(orig, psycopg.OperationalError)
    if analyst:
        if operational:
            return AnalystRoleError(analyst_connect_failure(ex), reason)
        return StatementNotRunError(f"Not run: {reason}.", reason)
    if operational:
        state = getattr(orig, "sqlstate", None) or ""
        lost = state.startswith(BUSY_STATES) or getattr(ex, "connection_invalidated", False)
        if lost:
            first = (reason.splitlines() or [""])[0]
            return DatabaseBusyError(f"The database did not answer ({first}). Try again in a moment.", reason)
        return DatabaseUnreachableError(f"The app cannot reach PostgreSQL: {reason}. Check DATABASE_URL, or unset "
                                        "it to use the embedded server.", reason)
    if isinstance(orig, (pg.UndefinedTable, pg.UndefinedColumn)):
        return SchemaOutOfDateError("The database has no Marketplace BI schema yet, or an older one: "
                                    f"{MIGRATE_HINT}.", reason)
    return None


@contextmanager
def translated(*, analyst: bool = False) -> Iterator[None]:
    """Raises the domain error (chained) for a driver error raised inside; anything else unchanged."""
    try:
        yield
    except (sa.exc.StatementError, psycopg.Error) as ex:
        error = translate(ex, analyst=analyst)
        if error is None:
            raise
        raise error from ex
