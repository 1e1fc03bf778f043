"""data.errors: driver errors translated into domain errors, as a table (pure: no database)."""
from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import errors as pg

from data.errors import (AnalystRoleError, DatabaseBusyError, DatabaseUnavailableError, DatabaseUnreachableError,
                         DataError, SchemaOutOfDateError, StatementNotRunError, translate, translated)

REFUSED = 'connection to server at "db" (10.0.0.5), port 5432 failed: Connection refused\n\tIs the server running?'
BAD_PASSWORD = 'connection failed: FATAL:  password authentication failed for user "bi_analyst"'


def wrapped(cls, orig: Exception, **kw) -> sa.exc.DBAPIError:
    return cls("SELECT 1", {}, orig, **kw)


CASES = [
    (wrapped(sa.exc.OperationalError, psycopg.OperationalError(REFUSED)), False, DatabaseUnreachableError,
     "The app cannot reach PostgreSQL: " + REFUSED + ". Check DATABASE_URL, or unset it to use the embedded server."),
    (wrapped(sa.exc.OperationalError, pg.DeadlockDetected("deadlock detected")), False, DatabaseBusyError,
     "The database did not answer (deadlock detected). Try again in a moment."),
    (wrapped(sa.exc.OperationalError, pg.SerializationFailure("could not serialize access\nDETAIL: x")), False,
     DatabaseBusyError, "The database did not answer (could not serialize access). Try again in a moment."),
    (wrapped(sa.exc.OperationalError, pg.QueryCanceled("canceling statement due to statement timeout")), False,
     DatabaseBusyError, "The database did not answer (canceling statement due to statement timeout). Try again in "
                        "a moment."),
    (wrapped(sa.exc.OperationalError, psycopg.OperationalError("server closed the connection unexpectedly"),
             connection_invalidated=True), False, DatabaseBusyError,
     "The database did not answer (server closed the connection unexpectedly). Try again in a moment."),
    (wrapped(sa.exc.ProgrammingError, pg.UndefinedTable('relation "app.rollup_state" does not exist')), False,
     SchemaOutOfDateError, "The database has no Marketplace BI schema yet, or an older one: run `python -m data "
                           "migrate` (make run does)."),
    (wrapped(sa.exc.ProgrammingError, pg.UndefinedColumn('column "x" does not exist')), False, SchemaOutOfDateError,
     None),
    (pg.DeadlockDetected("deadlock detected"), False, DatabaseBusyError, None),
    (wrapped(sa.exc.OperationalError, psycopg.OperationalError(BAD_PASSWORD)), True, AnalystRoleError,
     "The analysts' database role cannot connect: " + BAD_PASSWORD + ". An admin sets ANALYST_DB_PASSWORD for the "
     "app and runs `python -m data migrate`, which gives the role that password"),
    (wrapped(sa.exc.OperationalError, psycopg.OperationalError(REFUSED)), True, AnalystRoleError,
     "The analysts' database role cannot connect: " + REFUSED),
    (sa.exc.StatementError("could not convert", "SELECT :x", {"x": object()}, TypeError("not a number")), True,
     StatementNotRunError, "Not run: not a number."),
]


@pytest.mark.parametrize("ex,analyst,kind,message", CASES, ids=[f"{type(c[0]).__name__}-{c[2].__name__}-{i}"
                                                                 for i, c in enumerate(CASES)])
def test_translate(ex, analyst, kind, message):
    got = translate(ex, analyst=analyst)
    assert type(got) is kind and isinstance(got, DataError)
    if message is not None:
        assert str(got) == message
    assert got.first_line and "\n" not in got.first_line


@pytest.mark.parametrize("ex", [
    wrapped(sa.exc.IntegrityError, pg.UniqueViolation("duplicate key")),   # a bug or a rule: not the person's to fix
    wrapped(sa.exc.ProgrammingError, pg.SyntaxError("syntax error")),
    ValueError("not a driver error"),
])
def test_other_errors_are_not_translated(ex):
    assert translate(ex) is None
    with pytest.raises(type(ex)), translated():
        raise ex


def test_translated_chains_the_driver_error():
    ex = wrapped(sa.exc.OperationalError, psycopg.OperationalError(REFUSED))
    with pytest.raises(DatabaseUnavailableError) as caught, translated():
        raise ex
    assert caught.value.__cause__ is ex and caught.value.reason == REFUSED
