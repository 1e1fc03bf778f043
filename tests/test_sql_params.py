"""{{parameters}} of an analyst's SQL (analytics.sql_params): found, typed, bound, laid out. Pure, no
database; running the bound queries is in tests/test_query.py."""
from __future__ import annotations

from datetime import date

import pytest

from analytics.sql_errors import QueryRejected
from analytics.sql_params import Parameter, bind_parameters, find_parameters, format_sql

# Laid out here, and run before and after its layout in tests/test_query.py.
FORMAT_ME = ("select status, count(*) n, sum(shipping_fee) fees from mart.orders -- all of them\n"
             "where channel = {{ch}} and ordered_at::date >= {{since:date}} group by 1 order by 1")


def test_parameters_are_found_with_types_and_optional_parts():
    sql = ("SELECT * FROM mart.orders WHERE ordered_at::date BETWEEN {{period:daterange}} "
           "[[ AND channel = {{channel}} ]] AND status = {{ status }} LIMIT {{n:number}} -- {{period}} again")
    assert find_parameters(sql) == [Parameter("period", "daterange"), Parameter("channel", "text", optional=True),
                                    Parameter("status"), Parameter("n", "number")]
    with pytest.raises(QueryRejected,
                       match="parameter x: unknown type 'money'; use text, number, date, daterange, list"):
        find_parameters("SELECT {{x:money}}")
    with pytest.raises(QueryRejected, match="parameter x is declared as date and as number"):
        find_parameters("SELECT {{x:date}}, {{x:number}}")


def test_a_list_parameter_needs_its_query_and_only_a_list_takes_one():
    with pytest.raises(QueryRejected, match=r"parameter x: a list needs its query, as in \{\{x:list\(SELECT"):
        find_parameters("SELECT {{x:list}}")
    with pytest.raises(QueryRejected, match="parameter x: only a list takes a query in parentheses"):
        find_parameters("SELECT {{x:text(SELECT 1)}}")


def test_parameters_are_bound_never_pasted():
    sql = ("SELECT 1 FROM mart.orders WHERE ordered_at::date BETWEEN {{p:daterange}} [[ AND channel = {{c}} ]] "
           "AND status = {{s}} LIMIT {{n:number}}")
    text, params = bind_parameters(sql, {"p": (date(2026, 1, 1), date(2026, 1, 31)), "s": "x' OR 1=1 --", "n": "7"})
    assert text == ("SELECT 1 FROM mart.orders WHERE ordered_at::date BETWEEN :p_start AND :p_end  "
                    "AND status = :s LIMIT :n")
    assert params == {"p_start": date(2026, 1, 1), "p_end": date(2026, 1, 31), "s": "x' OR 1=1 --", "n": 7}
    text, params = bind_parameters(sql, {"p": (date(2026, 1, 1), date(2026, 1, 2)), "s": "a", "n": 2.5, "c": "web"})
    assert "AND channel = :c" in text and params["c"] == "web" and params["n"] == 2.5
    with pytest.raises(QueryRejected, match="parameter s: give a value"):
        bind_parameters(sql, {"p": (date(2026, 1, 1), date(2026, 1, 2)), "n": 1})
    with pytest.raises(QueryRejected, match="parameter n: 'ten' is not a number"):
        bind_parameters(sql, {"p": (date(2026, 1, 1), date(2026, 1, 2)), "s": "a", "n": "ten"})


def test_format_sql_lays_out_the_query_and_keeps_parameters():
    out = format_sql(FORMAT_ME)
    assert out.startswith("SELECT\n") and "{{ch}}" in out and "{{since:date}}" in out and "all of them" in out
    with pytest.raises(QueryRejected, match=r"optional \[\[ … \]\] parts cannot be formatted"):
        format_sql("SELECT 1 [[ WHERE x = {{x}} ]]")
    with pytest.raises(QueryRejected, match="the query could not be read at line 1"):
        format_sql("SELECT FROM WHERE (")
