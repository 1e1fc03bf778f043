"""Pure handling of the {{parameters}} of an analyst's SQL: finding them, binding their values,
laying the query out. Nothing here connects to a database.

{{name}} or {{name:type}} (text, number, date, daterange) in an analyst's SQL becomes an input on the
page and a bound parameter (`:name`), never text in the query. {{name:list(SELECT …)}} is a choice
among the values of the first column of its own query (analytics.query.list_options runs it like any
analyst query: same checks, same role). [[ … ]] around a part makes it optional: left out when a
parameter in it has no value (as in Metabase).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from analytics.sql_errors import QueryRejected
from analytics.sql_parse import check_length, parse_statements

PARAM_TYPES = ("text", "number", "date", "daterange", "list")
_PARAM = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*(?::\s*([A-Za-z]+)\s*(?:\((.*?)\)\s*)?)?\}\}", re.DOTALL)
_OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str = "text"
    optional: bool = False
    source: str | None = None    # a list parameter's query


def find_parameters(sql: str) -> list[Parameter]:
    """Returns the query's parameters in order of first appearance; raises QueryRejected for an
    unknown type, one name with two types, or a list without its query."""
    check_length(sql)
    order: dict[str, None] = {}
    declared: dict[str, str] = {}
    sources: dict[str, str] = {}
    for m in _PARAM.finditer(sql):
        name, kind, source = m.group(1), (m.group(2) or "").lower(), (m.group(3) or "").strip()
        if kind and kind not in PARAM_TYPES:
            raise QueryRejected(f"parameter {name}: unknown type {kind!r}; use {', '.join(PARAM_TYPES)}")
        if kind and declared.setdefault(name, kind) != kind:
            raise QueryRejected(f"parameter {name} is declared as {declared[name]} and as {kind}")
        if source and kind != "list":
            raise QueryRejected(f"parameter {name}: only a list takes a query in parentheses")
        if source and sources.setdefault(name, source) != source:
            raise QueryRejected(f"parameter {name} has two different list queries")
        order.setdefault(name, None)
    kinds = {n: declared.get(n, "text") for n in order}
    for n, k in kinds.items():
        if k == "list" and n not in sources:
            raise QueryRejected(f"parameter {n}: a list needs its query, as in "
                                f"{{{{{n}:list(SELECT DISTINCT category FROM mart.vendors ORDER BY 1)}}}}")
    required = {m.group(1) for m in _PARAM.finditer(_OPTIONAL.sub("", sql))}
    return [Parameter(n, k, n not in required, sources.get(n)) for n, k in kinds.items()]



def plain_value(value: Any) -> Any:
    """numpy scalars as Python values (bound parameters and JSON need those)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _empty(value) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    return isinstance(value, (tuple, list)) and (len(value) != 2 or any(v is None for v in value))


def bind_parameters(sql: str, values: dict) -> tuple[str, dict]:
    """Returns (sql with :name placeholders, bound values) from values {name: value}; optional
    parts whose parameters are empty are left out. Raises QueryRejected naming a missing or bad value."""
    params = {p.name: p for p in find_parameters(sql)}

    def keep(m: re.Match) -> str:
        inner = m.group(1)
        names = [x.group(1) for x in _PARAM.finditer(inner)]
        return "" if any(_empty(values.get(n)) for n in names) else inner
    text = _OPTIONAL.sub(keep, sql)
    bound: dict = {}

    def place(m: re.Match) -> str:
        p = params[m.group(1)]
        value = values.get(p.name)
        if _empty(value):
            raise QueryRejected(f"parameter {p.name}: give a value")
        if p.kind == "daterange":
            bound[f"{p.name}_start"], bound[f"{p.name}_end"] = value
            return f":{p.name}_start AND :{p.name}_end"
        if p.kind == "number":
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise QueryRejected(f"parameter {p.name}: {value!r} is not a number") from None
            value = int(number) if number.is_integer() else number
        bound[p.name] = value
        return f":{p.name}"
    return _PARAM.sub(place, text), bound


def format_sql(sql: str) -> str:
    """Returns sql laid out by sqlglot (PostgreSQL dialect, one clause a line, comments kept);
    {{parameters}} stay as they are. Raises QueryRejected when it cannot be read or has an
    optional [[ … ]] part (a fragment of SQL that cannot be parsed alone)."""
    if _OPTIONAL.search(sql):
        raise QueryRejected("a query with optional [[ … ]] parts cannot be formatted")
    tokens: dict[str, str] = {}

    def hide(m: re.Match) -> str:
        token = f"__mbi_param_{len(tokens)}__"
        tokens[token] = m.group(0)
        return token
    try:
        out = [s.sql(dialect="postgres", pretty=True) for s in parse_statements(_PARAM.sub(hide, sql)) if s is not None]
    except RecursionError:
        raise QueryRejected("the query nests too deeply to be laid out") from None
    text = ";\n\n".join(out)
    for token, original in tokens.items():
        text = text.replace(token, original)
    return text

