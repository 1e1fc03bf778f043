"""The errors of the analysts' SQL runner (analytics.sql_parse, analytics.sql_params, analytics.query):
both are ValueError with a message a person can act on."""
from __future__ import annotations


class QueryRejected(ValueError):
    """The query was not run; the message says why and what to do."""


class QueryFailed(ValueError):
    """PostgreSQL refused or stopped the query; the message says why and where."""
