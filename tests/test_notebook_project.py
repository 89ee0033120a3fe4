"""notebooks/project.ipynb: committed with clean outputs, and it still runs top to bottom.

The notebook uses the weight-free settings (``classic`` backbone, ``flow`` propagator) on the bundled
clip, so unlike the walkthrough it needs no data or weights and runs in the fast suite (about 15 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from notebook_outputs import errors, execute, images, summary

from conftest import REPO_ROOT

nbformat = pytest.importorskip("nbformat")

NOTEBOOK = REPO_ROOT / "notebooks" / "project.ipynb"
COUNTS = ("frames", "shots", "picks", "human_masks", "propagated_masks", "exported_images")


def _check_summary(summary: dict[str, Any]) -> None:
    assert set(COUNTS) <= set(summary), summary
    # sample.mp4 is 10 s at 25 fps with several cuts; the notebook keeps 5 frames a second
    assert summary["frames"] == 50, summary
    assert summary["shots"] >= 2, summary
    assert summary["picks"] == 6, summary
    assert summary["human_masks"] == summary["picks"], summary  # one object per submitted task
    # every frame that is not a keyframe gets at most one propagated mask (one object)
    assert 0 < summary["propagated_masks"] <= summary["frames"] - summary["picks"], summary
    # `include="all"` exports every frame with a mask: the keyframes and the propagated frames
    assert summary["exported_images"] == summary["picks"] + summary["propagated_masks"], summary


def test_committed_notebook_is_valid_with_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count is not None for cell in code), "commit the executed notebook"
    assert errors(nb) == []
    assert images(nb) >= 3
    _check_summary(summary(nb))
    assert NOTEBOOK.stat().st_size < 1_000_000, "keep the committed notebook small (dpi, thumbnails)"


def test_notebook_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nbclient")
    committed = summary(nbformat.read(NOTEBOOK, as_version=4))
    # the kernel inherits the environment: its home and exports go under tmp_path
    monkeypatch.setenv("CURATOR_PROJECT_NOTEBOOK_OUT", str(tmp_path / "out"))
    nb = execute(NOTEBOOK, tmp_path / NOTEBOOK.name, timeout=300)

    assert errors(nb) == []
    assert images(nb) >= 3
    ran = summary(nb)
    _check_summary(ran)
    assert {k: ran[k] for k in COUNTS} == {k: committed[k] for k in COUNTS}
    exports = sorted(path.name for path in (tmp_path / "out" / "export").iterdir())
    assert exports == ["sample-coco-all.json", "sample-coco-human.json"]
