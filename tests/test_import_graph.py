"""Layering: the engine (curator/) never imports the HTTP shell (api) or the selector plugins
(curator_selectors), not even inside a function; ``import curator`` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

FORBIDDEN = ("api", "curator_selectors")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (functions, classes, conditionals), with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def back_references(root: Path) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        for line, module in imported_modules(path):
            if module.split(".")[0] in FORBIDDEN:
                bad.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return bad


def test_engine_never_imports_api_or_selectors() -> None:
    assert back_references(REPO_ROOT / "curator") == []


def test_the_walker_sees_imports_inside_functions(tmp_path: Path) -> None:
    # the guard above must be able to fail: a nested import, a from-import and import_module
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text(
        "import os\n\ndef f():\n    from api.errors import ApiError\n    import curator_selectors.base\n"
        "    import importlib\n    importlib.import_module('api.app')\n"
    )
    modules = [m for _, m in imported_modules(pkg / "a.py")]
    assert modules == ["os", "api.errors", "curator_selectors.base", "importlib", "api.app"]
    assert back_references(pkg) == [
        "pkg/a.py:4 imports api.errors", "pkg/a.py:5 imports curator_selectors.base", "pkg/a.py:7 imports api.app"
    ]


@pytest.mark.parametrize("statement", ["import curator", "import curator; curator.open"])
def test_import_curator_is_light(statement: str) -> None:
    code = f"import sys; {statement}; print(sorted(m for m in ('torch', 'api', 'curator_selectors', 'timm', 'faiss') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_benchmarks_are_not_in_the_wheel() -> None:
    import tomllib

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not any(pattern.startswith("benchmarks") for pattern in include)
    assert (REPO_ROOT / "benchmarks" / "__init__.py").is_file()
    assert not (REPO_ROOT / "curator" / "bench").exists()
