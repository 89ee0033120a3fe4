"""notebooks/walkthrough.ipynb: committed with clean outputs, its code matches the package, and it
still runs top to bottom.

Running it for real needs DAVIS, the DINOv2 weights and minutes of CPU (a campaign of three rounds at
336 px), so that test is marked slow; the default suite checks the committed outputs and, in a
second, that the code in the cells still fits the package (imports, call signatures).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
from notebook_outputs import errors, execute, images, summary

from conftest import DAVIS, DINOV2_CHECKPOINT, REPO_ROOT, require

nbformat = pytest.importorskip("nbformat")

NOTEBOOK = REPO_ROOT / "notebooks" / "walkthrough.ipynb"


def _check_summary(summary: dict[str, Any]) -> None:
    assert set(summary["strategies"]) == {"uniform", "curator"}
    for strategy, result in summary["strategies"].items():
        assert result["annotated"] == summary["rounds"] * summary["per_round"], strategy
        assert 0.3 < result["JF"] <= 1.0, (strategy, result)


def test_committed_notebook_is_valid_with_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count is not None for cell in code), "commit the executed notebook"
    assert errors(nb) == []
    assert images(nb) >= 3
    _check_summary(summary(nb))
    assert NOTEBOOK.stat().st_size < 2_000_000, "keep the committed notebook small (dpi, thumbnails)"


def test_notebook_code_fits_the_package() -> None:
    """Every cell parses, every imported name exists, and every call of an imported function or class
    of the project passes arguments its signature accepts: a renamed module, function or parameter
    fails here instead of in the slow run."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    imported: dict[str, Any] = {}
    calls: list[tuple[int, ast.Call]] = []
    for i, cell in enumerate(cell for cell in nb.cells if cell.cell_type == "code"):
        tree = ast.parse(cell.source, filename=f"<code cell {i}>")
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
            elif isinstance(node, ast.ImportFrom):
                assert node.module and node.level == 0, f"code cell {i}: relative import"
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"code cell {i}: {node.module} has no {alias.name}"
                    imported[alias.asname or alias.name] = getattr(module, alias.name)
            elif isinstance(node, ast.Call):
                calls.append((i, node))
    checked = set()
    for i, call in calls:
        if not (isinstance(call.func, ast.Name) and call.func.id in imported):
            continue
        target = imported[call.func.id]
        if not str(getattr(target, "__module__", "")).startswith(("curator", "benchmarks")):
            continue
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            continue
        try:
            inspect.signature(target).bind(*[None] * len(call.args), **{k.arg: None for k in call.keywords if k.arg})
        except TypeError as exc:
            raise AssertionError(f"code cell {i}: {ast.unparse(call)}: {exc}") from None
        checked.add(call.func.id)
    assert {"run_loop_bench", "run_round", "RoundConfig", "load_davis", "build_propagator"} <= checked, checked


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nbclient")
    require(DAVIS)
    require(DINOV2_CHECKPOINT)
    # the kernel inherits the environment: shared data, and outputs (cache included) under tmp_path
    monkeypatch.setenv("CURATOR_DAVIS", str(DAVIS))
    monkeypatch.setenv("CURATOR_BACKBONE_CHECKPOINT", str(DINOV2_CHECKPOINT))
    monkeypatch.setenv("CURATOR_WALKTHROUGH_OUT", str(tmp_path / "out"))
    nb = execute(NOTEBOOK, tmp_path / NOTEBOOK.name, timeout=1800)

    assert errors(nb) == []
    assert images(nb) >= 3
    _check_summary(summary(nb))
    assert (tmp_path / "out" / "cache").is_dir()
