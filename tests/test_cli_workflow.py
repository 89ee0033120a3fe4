"""The whole job with the CLI only (tests/shell/cli_workflow.sh), as a user would type it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DINOV2_CHECKPOINT, REPO_ROOT, require


def run_workflow(work: Path, checkpoint: Path | None) -> str:
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "curator").exists(), "the curator console script is not installed beside this Python"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1"}
    env.pop("CURATOR_HOME", None)
    env.pop("CURATOR_BACKBONE_CHECKPOINT", None)
    if checkpoint is not None:  # the script ends with a round, whose proxy model needs DINOv2 weights
        env["CURATOR_BACKBONE_CHECKPOINT"] = str(checkpoint)
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "tests" / "shell" / "cli_workflow.sh"), str(work)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert "workflow ok" in result.stdout
    assert "imported 1 masks on 1 frames" in result.stdout
    return result.stdout


def test_cli_does_the_whole_job(tmp_path: Path) -> None:
    # ingest, select, claim/submit, import, propagate, export, similar, jobs; the round runs below
    out = run_workflow(tmp_path, None)
    assert '"round_id"' not in out


@pytest.mark.slow
def test_cli_does_the_whole_job_with_a_round(tmp_path: Path) -> None:
    out = run_workflow(tmp_path, require(DINOV2_CHECKPOINT))
    assert '"round_id"' in out
