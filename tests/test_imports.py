"""No import circles among the project's modules, counting imports inside functions: a circle makes
the order modules load in matter, and hides which module a concern really lives in.

Checked for every package of the app and the bench (issue 21 broke the last circles: reports' alerts,
delivery and schedules, and the bench's sections)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("data", "analytics", "reports", "components", "views", "bench")
CHECKED = PACKAGES


def _modules() -> dict[str, Path]:
    """Returns {dotted name: file} of every project module (packages' __init__ under the package's name)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    out["app"] = ROOT / "app.py"
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Returns the project modules path imports anywhere in it (top level, functions, classes)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from reports import alerts` imports the module reports.alerts; `from reports.x import f` reports.x.
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        found.update(n for n in names if n in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    """Returns {module: the project modules it imports}, packages' empty __init__ left out."""
    modules = _modules()
    return {m: {d for d in _imports(p, modules) if d != m and d not in PACKAGES} for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Returns the strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_circle_through_three_modules():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_count(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def late():\n    from reports import alerts\n    from reports.delivery import send\n")
    assert _imports(f, {"reports": f, "reports.alerts": f, "reports.delivery": f}) == {"reports.alerts",
                                                                                       "reports.delivery"}


@pytest.mark.parametrize("package", CHECKED)
def test_no_import_circle_runs_through_the_package(package):
    graph = import_graph()
    assert any(m.startswith(package + ".") for m in graph)
    found = [c for c in cycles(graph) if any(m == package or m.startswith(package + ".") for m in c)]
    assert found == [], f"modules importing each other in a circle: {found}"


# Pure modules: the logic of the SQL runner's checks and of an alert's message, apart from the I/O.
PURE = ("analytics.sql_errors", "analytics.sql_parse", "analytics.sql_params", "reports.alert_messages")


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_database_driver(module):
    path = _modules()[module]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"sqlalchemy", "psycopg", "streamlit"}, imported
