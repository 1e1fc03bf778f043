"""Pure checks of an analyst's SQL, the parser's lock of the safe runner (analytics.query): nothing
here connects to a database.

sqlglot parses the query (PostgreSQL dialect): exactly one statement, read-only (SELECT, WITH,
VALUES, set operations, EXPLAIN without ANALYZE), no data-modifying CTE, SELECT INTO, locking
clause or utility statement, no denied function (file and large-object access, dblink, *_to_xml,
set_config/current_setting, sequences, sleeping, signalling backends, advisory locks, server
address and version), tables only from schema mart; its text no longer than MAX_SQL_CHARS and
its nesting within what the parser can read. Rejections raise QueryRejected.
"""
from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from analytics.sql_errors import QueryRejected
from data.saved_queries import MAX_SQL_CHARS

ALLOWED_SCHEMAS = {"mart"}
MAX_NESTING = 40          # parentheses the parser reads within Python's recursion limit

DENIED_FUNCTIONS = {
    "set_config", "current_setting", "nextval", "setval", "version", "inet_server_addr", "inet_server_port",
    "inet_client_addr", "inet_client_port", "txid_current", "pg_current_xact_id", "query_to_xml",
    "table_to_xml", "schema_to_xml", "database_to_xml", "cursor_to_xml", "xmlexists", "pg_notify",
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_promote", "pg_log_backend_memory_contexts",
    "dblink", "lo_import", "lo_export", "current_database_size", "ts_stat", "ts_rewrite", "pg_show_all_settings",
    "pg_settings_get_flags", "pg_get_keywords",
}
DENIED_PREFIXES = ("pg_read_", "pg_ls_", "pg_stat_file", "lo_", "dblink", "pg_sleep", "pg_advisory", "pg_try_advisory",
                   "pg_file_", "pg_rotate", "pg_switch", "pg_create_", "pg_drop_", "pg_replication", "pg_logical",
                   "pg_backup", "pg_import", "pg_wal", "pg_export", "pg_stat_", "pg_show_", "pg_get_backend",
                   "pg_blocking", "pg_safe_snapshot", "pg_listening")
DENIED_SUFFIXES = ("_to_xml", "_to_xmlschema", "_to_xml_and_xmlschema")
# Node types that change data, take locks or leave the statement: never in an analyst's query.
FORBIDDEN_NODES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Into,
                   exp.Lock, exp.Copy, exp.Command, exp.Transaction, exp.Commit, exp.Rollback, exp.Set,
                   exp.TruncateTable, exp.Grant)
READ_ONLY_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)
_ANALYZE = re.compile(r"\banaly[sz]e\b", re.IGNORECASE)


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if any(node.args.values()):
        # Its class's name: writing its SQL would write its whole subtree, once per node (AND and
        # OR are functions to sqlglot: 4,000 ORs took 330 s).
        return node.sql_name().lower()
    return node.sql(dialect="postgres").split("(")[0].strip().lower()


def _denied(name: str) -> bool:
    return (name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES) or name.endswith(DENIED_SUFFIXES))


def _explain_body(sql: str) -> str | None:
    """Returns the statement an EXPLAIN explains (raising if it would run it), or None."""
    m = re.match(r"\s*explain\b\s*(\((?P<opts>[^)]*)\))?(?P<rest>.*)", sql, re.IGNORECASE | re.DOTALL)
    if not m:
        return None
    opts, rest = m.group("opts") or "", m.group("rest")
    words = re.match(r"\s*((?:analy[sz]e|verbose)\s+)*", rest, re.IGNORECASE)
    if _ANALYZE.search(opts) or _ANALYZE.search(words.group(0) if words else ""):
        raise QueryRejected("EXPLAIN ANALYZE runs the query; use EXPLAIN without ANALYZE to see the plan")
    return rest[words.end():] if words else rest


# How SQLAlchemy's text() finds bound parameters: any :name not after a colon, a word character or a
# backslash. Inside a string literal or a comment it would still bind: a value there would become SQL.
SA_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def check_placeholders(sql: str, tree: exp.Expression | None, params: dict | None) -> None:
    """Raises QueryRejected unless every :name SQLAlchemy would bind is a real placeholder of the
    query (not inside quotes or a comment) and has a value."""
    binds = SA_BIND.findall(sql)
    real = [p.name for p in tree.find_all(exp.Placeholder)] if tree is not None else binds
    if sorted(binds) != sorted(real):
        inside = sorted(set(binds) - set(real)) or sorted(set(binds))
        raise QueryRejected(f"':{inside[0]}' sits inside quotes or a comment, where it would still be read as a "
                            "parameter; keep parameters outside quotes (for LIKE: '%' || {{name}} || '%') and write "
                            "other colons as '\\:'")
    missing = sorted(set(real) - set(params or {}))
    if missing:
        raise QueryRejected(f"parameter {missing[0]}: give a value")


def _unreadable(ex: ParseError) -> QueryRejected:
    first = ex.errors[0] if ex.errors else {}
    where = f" at line {first.get('line')}, column {first.get('col')}" if first.get("line") else ""
    return QueryRejected(f"the query could not be read{where}: {first.get('description', ex)}")


def check_length(sql: str) -> None:
    """Raises QueryRejected when sql is longer than MAX_SQL_CHARS: checked before anything reads it
    (a 1 MB query took 12 s and 890 MB of the app's memory to parse)."""
    if len(sql or "") > MAX_SQL_CHARS:
        raise QueryRejected(f"the query is {len(sql):,} characters long; at most {MAX_SQL_CHARS:,} can run here. "
                            "Long lists of values belong in a table or a parameter, not in the query's text")


def parse_statements(sql: str) -> list:
    """sqlglot's statements of sql, its size checked first; QueryRejected when it cannot be read."""
    check_length(sql)
    try:
        return sqlglot.parse(sql, read="postgres")
    except ParseError as ex:
        raise _unreadable(ex) from None
    except RecursionError:
        raise QueryRejected(f"the query nests too deeply to be read here (more than about {MAX_NESTING} levels of "
                            "parentheses or subqueries); flatten it, for example with WITH clauses") from None


def check_sql(sql: str, *, mart_tables: set[str] | None = None) -> exp.Expression:
    """Raises QueryRejected unless sql is one read-only statement over mart; returns its parsed
    tree (for EXPLAIN, the explained statement's)."""
    check_length(sql)
    if not sql or not sql.strip().strip(";").strip():
        raise QueryRejected("the query is empty")
    body = _explain_body(sql)
    target = body if body is not None else sql
    # A comment after the last semicolon parses as an empty statement: not a second one.
    statements = [s for s in parse_statements(target) if s is not None and not isinstance(s, exp.Semicolon)]
    if len(statements) != 1:
        raise QueryRejected(f"only one statement is allowed; this has {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, READ_ONLY_ROOTS):
        kind = tree.key.upper() if not isinstance(tree, exp.Command) else str(tree.this).upper()
        raise QueryRejected(f"only SELECT, WITH, VALUES and EXPLAIN (without ANALYZE) can run; not {kind}")
    for node in tree.walk():
        if isinstance(node, FORBIDDEN_NODES):
            what = "SELECT INTO" if isinstance(node, exp.Into) else \
                "FOR UPDATE/SHARE locks" if isinstance(node, exp.Lock) else node.key.upper()
            raise QueryRejected(f"{what} is not allowed: queries here only read data")
        if isinstance(node, exp.Func) and _denied(name := _function_name(node)):
            raise QueryRejected(f"function {name} is not allowed")
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name, schema = str(table.name).lower(), str(table.db or "").lower()
        if not name or isinstance(table.this, exp.Func):
            continue  # a table function: its name was checked above
        if schema:
            if schema not in ALLOWED_SCHEMAS or table.catalog:
                raise QueryRejected(f"table {schema}.{name} is not readable here: queries read schema mart only")
        elif name not in ctes and (name.startswith("pg_") or (mart_tables is not None and name not in mart_tables)):
            raise QueryRejected(f"there is no table {name} in schema mart")
    return tree


def statement_body(sql: str) -> str:
    """sql without what follows its last token (a semicolon, comments, blanks), so that it can
    stand inside parentheses."""
    tokens = [t for t in sqlglot.tokenize(sql, read="postgres") if t.token_type.name != "SEMICOLON"]
    return sql[:tokens[-1].end + 1] if tokens else sql
