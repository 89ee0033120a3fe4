"""The whole job with the CLI only (tests/shell/cli_workflow.sh), as a user would type it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import DINOV2_CHECKPOINT, REPO_ROOT


def test_cli_does_the_whole_job(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "curator").exists(), "the curator console script is not installed beside this Python"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1"}
    env.pop("CURATOR_HOME", None)
    env.pop("CURATOR_BACKBONE_CHECKPOINT", None)
    if DINOV2_CHECKPOINT.exists():  # the round at the end needs DINOv2 weights for the proxy model
        env["CURATOR_BACKBONE_CHECKPOINT"] = str(DINOV2_CHECKPOINT)
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "tests" / "shell" / "cli_workflow.sh"), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert "workflow ok" in result.stdout
    assert "imported 1 masks on 1 frames" in result.stdout
