"""The layers of DESIGN.md: data, analytics and reports never import streamlit or a layer above;
views reach the data only through components (their loaders); the UI builds no SQL, opens no
connection outside components/loaders/, and catches domain errors (data.errors), never the driver's.

DESIGN.md's `pages/` layer lives in `views/` (see docs/architecture.md for why)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# layer -> top-level modules it must not import
FORBIDDEN = {
    "data": {"streamlit", "analytics", "reports", "components", "views", "app"},
    "analytics": {"streamlit", "reports", "components", "views", "app"},
    "reports": {"streamlit", "components", "views", "app"},
    "components": {"views", "app"},
    # A page reads through components.loaders: importing data directly is how SQL and connections crept in.
    "views": {"data", "app", "sqlalchemy", "psycopg"},
}


def imports(path: Path) -> set[str]:
    """Returns the top-level names of every module imported anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value.split(".")[0])
    return names


CASES = [(layer, p) for layer in FORBIDDEN for p in sorted((ROOT / layer).rglob("*.py"))]


@pytest.mark.parametrize("layer,path", CASES, ids=[str(p.relative_to(ROOT)) for _, p in CASES])
def test_layer_imports(layer, path):
    bad = imports(path) & FORBIDDEN[layer]
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, which layer {layer!r} must not"


def test_the_check_catches_a_violation(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    import streamlit as st\n    from reports.jobs import run_job\n")
    assert {"streamlit", "reports"} <= imports(f)


def test_every_layer_has_files():
    assert all(any(p[0] == layer for p in CASES) for layer in FORBIDDEN)


SQL_MODULES = {"sa", "sqlalchemy"}
EXECUTES = {"execute", "executemany", "exec_driver_sql"}


def _stringish(node: ast.expr) -> bool:
    """A string literal, an f-string, or text glued with + or % from one."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _stringish(node.left) or _stringish(node.right)
    if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "format":
        return _stringish(node.func.value)
    return False


def sql_calls(path: Path) -> list[int]:
    """Returns the lines where the file runs or builds SQL: sqlalchemy's text() or select(),
    pandas' read_sql*, or an execute given a string."""
    tree = ast.parse(path.read_text(), filename=str(path))
    text_names = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                  and (n.module or "").split(".")[0] == "sqlalchemy" for a in n.names if a.name in ("text", "select")}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        owner = getattr(getattr(f, "value", None), "id", "")
        name = getattr(f, "attr", getattr(f, "id", ""))
        if ((isinstance(f, ast.Attribute) and owner in SQL_MODULES and name in ("text", "select"))
                or (isinstance(f, ast.Name) and name in text_names)
                or name.startswith("read_sql")
                or (name in EXECUTES and node.args and _stringish(node.args[0]))):
            lines.append(node.lineno)
    return sorted(lines)


UI = [p for layer in ("components", "views") for p in sorted((ROOT / layer).rglob("*.py"))] + [ROOT / "app.py"]


@pytest.mark.parametrize("path", UI, ids=[str(p.relative_to(ROOT)) for p in UI])
def test_no_sql_in_the_ui_layers(path):
    """DESIGN.md: no SQL in views/ or components/; they call analytics, reports and data."""
    assert not sql_calls(path), f"{path.relative_to(ROOT)} builds SQL on lines {sql_calls(path)}"


def test_the_sql_check_catches_a_query(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import pandas as pd\nimport sqlalchemy as sa\nimport streamlit as st\n"
                 "from sqlalchemy import text as t\n"
                 "def f(c, table):\n"
                 "    c.execute(sa.text('SELECT 1'))\n"        # 6
                 "    c.exec_driver_sql(f'SELECT {1}')\n"      # 7
                 "    pd.read_sql('SELECT 2', c)\n"            # 8
                 "    c.execute('SELECT * FROM ' + table)\n"   # 9
                 "    c.execute(t('SELECT 3'))\n"              # 10
                 "    st.text('not SQL')\n"
                 "    c.execute(prepared)\n")
    assert sql_calls(f) == [6, 7, 8, 9, 10]


LOADERS = ROOT / "components" / "loaders"
CONNECTS = {"connect", "begin"}
DRIVERS = {"sqlalchemy", "psycopg"}


def connection_calls(path: Path) -> list[int]:
    """Returns the lines where the file opens a connection or a transaction (a .connect() or .begin() call)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return sorted(n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Attribute) and n.func.attr in CONNECTS)


def driver_catches(path: Path) -> list[int]:
    """Returns the lines of except clauses naming a sqlalchemy or psycopg exception (through any import)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    bound = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            bound.update((a.asname or a.name).split(".")[0] for a in n.names if a.name.split(".")[0] in DRIVERS)
        elif isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] in DRIVERS and n.level == 0:
            bound.update(a.asname or a.name for a in n.names)
    return sorted(h.lineno for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler) and h.type is not None
                  and any(isinstance(x, ast.Name) and x.id in bound for x in ast.walk(h.type)))


OUTSIDE_LOADERS = [p for p in UI if LOADERS not in p.parents]


@pytest.mark.parametrize("path", OUTSIDE_LOADERS, ids=[str(p.relative_to(ROOT)) for p in OUTSIDE_LOADERS])
def test_the_ui_connects_only_in_its_loaders(path):
    """Widgets and views draw: every connection is opened by components/loaders/ (through data.db.connection)."""
    assert not connection_calls(path), f"{path.relative_to(ROOT)} opens connections on lines {connection_calls(path)}"


@pytest.mark.parametrize("path", UI, ids=[str(p.relative_to(ROOT)) for p in UI])
def test_the_ui_catches_domain_errors_only(path):
    """Driver errors are translated once below the UI (data.errors); pages catch those."""
    assert not driver_catches(path), f"{path.relative_to(ROOT)} catches driver errors on lines {driver_catches(path)}"


def test_the_loaders_are_found():
    assert (LOADERS / "__init__.py") in UI and all(LOADERS not in p.parents for p in OUTSIDE_LOADERS)


def test_the_connection_check_catches_a_connection(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import streamlit as st\n"
                 "def f(engine, app):\n"
                 "    with engine.connect() as conn:\n"          # 3
                 "        pass\n"
                 "    with app().begin() as conn:\n"             # 5
                 "        pass\n"
                 "    st.columns(2)\n")
    assert connection_calls(f) == [3, 5]


def test_the_catch_check_catches_a_driver_error(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import sqlalchemy as sa\n"
                 "from psycopg.errors import UndefinedTable\n"
                 "from data.errors import DataError\n"
                 "def f(g):\n"
                 "    try:\n"
                 "        g()\n"
                 "    except sa.exc.OperationalError:\n"         # 7
                 "        pass\n"
                 "    except (DataError, UndefinedTable):\n"     # 9
                 "        pass\n"
                 "    except DataError:\n"
                 "        pass\n")
    assert driver_catches(f) == [7, 9]


def test_the_views_row_catches_a_data_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("from components import loaders\nfrom data.auth import ROLES\n")
    assert imports(f) & FORBIDDEN["views"] == {"data"}


VERSION_KEYS = {"version", "version_of", "version_for"}


def version_key_calls(path: Path) -> list[int]:
    """Returns the lines where the file calls a cache version key (loaders.version(), version_for(f), …)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return sorted({n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        (isinstance(n.func, ast.Attribute) and n.func.attr in VERSION_KEYS)
        or (isinstance(n.func, ast.Name) and n.func.id in VERSION_KEYS))})


@pytest.mark.parametrize("path", OUTSIDE_LOADERS, ids=[str(p.relative_to(ROOT)) for p in OUTSIDE_LOADERS])
def test_cache_keys_stay_in_the_loaders(path):
    """A loader keys its cache on the versions of the days it reads; views and widgets pass only
    the filters and their own choices, so a filter goes view → loader → analytics."""
    lines = version_key_calls(path)
    assert not lines, f"{path.relative_to(ROOT)} computes cache versions on lines {lines}"


def test_the_version_check_catches_a_version_key(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("from components import loaders\n"
                 "from components.loaders import version_for\n"
                 "def f(g, flt):\n"
                 "    g(flt, loaders.version_for(flt))\n"        # 4
                 "    g(flt, version_for(flt), loaders.version())\n"   # 5
                 "    g(flt.version)\n")
    assert version_key_calls(f) == [4, 5]
