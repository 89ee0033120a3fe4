"""``curator bench round`` on a tiny synthetic DAVIS-layout folder (DINOv2 weights from ``shared/``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bench_keyframes import make_davis
from typer.testing import CliRunner

from benchmarks.round import STAGES, run_round_bench, uniform_indices
from conftest import DINOV2_CHECKPOINT, REPO_ROOT, require
from curator.cli import app


def test_uniform_indices() -> None:
    assert uniform_indices(10, 1) == [5]
    assert uniform_indices(10, 4) == [1, 3, 6, 8]
    assert uniform_indices(3, 8) == [0, 1, 2]


def test_cli_reports_every_stage(tmp_path: Path) -> None:
    require(DINOV2_CHECKPOINT)
    root = make_davis(tmp_path / "davis", names=("alpha", "beta"), n=8)
    out = tmp_path / "round.json"
    result = CliRunner().invoke(
        app,
        ["bench", "round", "--davis", str(root), "--checkpoint", str(DINOV2_CHECKPOINT), "--keyframes", "3",
         "--steps", "3", "--rounds", "2", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    current = report["current"]
    assert report["baseline"] is None and report["speedup"] is None
    assert set(STAGES) <= set(current["timings"])
    assert current["derived_store"] is True
    assert current["frames"] == 16 and current["human_frames"] == 6
    assert current["metrics"]["dense"]["human"] == 6
    assert current["dense_JF"] > 0.5
    assert current["peak_rss_mb"] > 0
    assert [r["human_frames"] for r in current["rounds"]] == [6, 8]
    assert current["rounds"][0]["wall_seconds"] == current["wall_seconds"]


@pytest.mark.slow
def test_baseline_runs_in_the_same_report(tmp_path: Path) -> None:
    require(DINOV2_CHECKPOINT)
    root = make_davis(tmp_path / "davis", names=("alpha",), n=6)
    # this checkout as its own baseline: the comparison's plumbing, not a speed claim
    report = run_round_bench(root, DINOV2_CHECKPOINT, keyframes=2, steps=2, baseline=REPO_ROOT)
    assert report["baseline"]["curator"] == str(REPO_ROOT)
    assert report["speedup"]["wall"] > 0
    assert report["baseline"]["dense_JF"] == pytest.approx(report["current"]["dense_JF"], abs=1e-6)
