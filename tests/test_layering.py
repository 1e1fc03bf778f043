"""The layers of DESIGN.md: data, analytics and reports never import streamlit or a layer above.

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
