"""``curator worker --ray`` on a real local Ray cluster equals the local runner (issue 18).

tests/ray_scenario.py runs in a loopback-only network namespace (``unshare --net``, loopback up:
Ray registers the machine's other interface addresses even with ``--node-ip-address 127.0.0.1``, so
the cluster only ever sees 127.0.0.1 there): a Ray head plus one worker node, a ``curator worker
--ray`` process, an ingest job of three clips (one Ray task per clip) and a propagate job over the
project (one task per video), then a cancelled ingest. Here the same jobs run on the local runner,
and the two projects must hold the same rows and masks. Every connection stays on loopback.

Slow (a Ray cluster takes half a minute to start on two busy cores): ``--runslow``. Under ``CI`` a
missing ``unshare``, ``ip`` or Ray fails the test instead of skipping it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.scale import make_clips, netns_command
from conftest import DINOV2_CHECKPOINT
from curator.annotate.masks import decode_rle
from tests.ray_scenario import run_scenario, scenario_settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _require_cluster_tools() -> None:
    """Skip (fail under CI) without what a namespaced Ray cluster needs."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    try:
        import ray  # noqa: F401
    except ImportError:
        missing.append("ray (pip install -e '.[ray]')")
    if not missing:
        probe = subprocess.run(netns_command(["true"]), capture_output=True, text=True)
        if probe.returncode != 0:
            missing.append(f"a network namespace (unshare: {probe.stderr.strip()})")
    if missing:
        message = f"a namespaced Ray cluster needs: {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _local_run(home: Path, clips: list[Path], dinov2: Path | None) -> dict[str, Any]:
    """The scenario on the local runner (per-video parts in the job's thread)."""
    from curator.jobs import ThreadJobRunner, engine_handlers
    from curator.workspace import Workspace

    settings = scenario_settings(home, os.environ.get("CURATOR_DATABASE_URL", ""), dinov2)
    workspace = Workspace(settings)
    runner = ThreadJobRunner(workspace, engine_handlers(workspace), server=False)
    runner.start()
    try:
        return run_scenario(workspace, clips, runner.submit)
    finally:
        runner.shutdown()
        workspace.close()


def _vectors(dump: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.frombuffer(base64.b64decode(v), dtype=np.float32) for k, v in dump["embeddings"].items()}


def test_ray_worker_ingests_and_propagates_like_the_local_runner(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    _require_cluster_tools()
    clips = make_clips(tmp_path / "clips", 3, 30, gop=10)
    out = tmp_path / "ray.json"
    argv = [sys.executable, str(REPO / "tests" / "ray_scenario.py"), "--out", str(out), "--home", str(tmp_path / "ray-home")]
    if request.config.getoption("--db") == "postgresql":  # the outer server is out of reach in the namespace
        from tests.pg import find_bin

        argv += ["--pg", str(find_bin())]
    dinov2 = DINOV2_CHECKPOINT if DINOV2_CHECKPOINT.exists() else None  # without weights, no round
    if dinov2 is not None:
        argv += ["--dinov2", str(dinov2)]
    done = subprocess.run(
        netns_command([*argv, *map(str, clips)]), cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    ray_run = json.loads(out.read_text())
    local = _local_run(tmp_path / "local-home", clips, dinov2)

    assert ray_run["ray_nodes"] == ["127.0.0.1", "127.0.0.1"]  # the head and the worker node, loopback only
    assert ray_run["worker_exit"] == 0
    assert len(ray_run["videos"]) == 3 and len(ray_run["frames"]) == 90
    assert ray_run["results"] == local["results"]
    # the Ray run decoded each clip in parts cut at keyframes (Ray tasks), the local one whole
    assert local["ingest_parts"] == [1, 1, 1] and all(n >= 2 for n in ray_run["ingest_parts"])
    propagated = ray_run["results"]["propagate"]
    assert propagated["frames"] == 90 - propagated["keyframes"]  # every frame but the keyframes (one a shot)
    assert propagated["keyframes"] == ray_run["results"]["ingest"]["shots"]
    assert ray_run["videos"] == local["videos"]
    assert ray_run["frames"] == local["frames"]
    ray_vectors, local_vectors = _vectors(ray_run), _vectors(local)
    assert ray_vectors.keys() == local_vectors.keys() and len(ray_vectors) == 90
    for key, vector in ray_vectors.items():
        np.testing.assert_allclose(vector, local_vectors[key], rtol=0, atol=1e-6, err_msg=key)
    assert ray_run["masks"] == local["masks"]
    assert sum(1 for k in ray_run["masks"] if k.endswith("/propagated")) == ray_run["results"]["propagate"]["masks"]

    # the cancel reached the Ray task: the job row showed the task's progress, then ended cancelled
    # with nothing of the video stored
    cancel = ray_run["cancel"]
    assert cancel["state"] == "cancelled", cancel
    assert cancel["progress_seen"] is not None and cancel["progress_seen"][0] < cancel["progress_seen"][1]
    assert cancel["videos"] == 0 and cancel["frames"] == 0

    # the round: its parts ran as Ray tasks (DINOv2 there with a thread count of its own, so the
    # proxy may differ in the last bits), and its labels match the local runner's
    if dinov2 is not None:
        ray_round, local_round = ray_run["round"], local["round"]
        assert ray_round["metrics"]["dense"] == local_round["metrics"]["dense"]
        assert sum(ray_round["metrics"]["dense"].values()) == 90
        assert ray_round["metrics"]["proxy_JF"] == pytest.approx(local_round["metrics"]["proxy_JF"], abs=0.02)
        assert ray_round["masks"].keys() == local_round["masks"].keys()
        for key, mask in ray_round["masks"].items():
            ours, theirs = decode_rle(mask["rle"]), decode_rle(local_round["masks"][key]["rle"])
            assert np.logical_xor(ours, theirs).sum() <= 0.01 * max(1, np.logical_or(ours, theirs).sum()), key
