"""``curator bench effort``: the cost model, the simulated annotator, the report's shape and the CLI.

The fast tests run real components without weights (GrabCut clicks, the ``flow`` propagator, the
``classic`` embedder) on a synthetic DAVIS folder; the whole bench with DINOv2, the proxy and the
``curator`` arm is marked slow.
"""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_bench_keyframes import make_davis
from typer.testing import CliRunner

from benchmarks.davis import load_davis
from benchmarks.effort import (
    ARMS,
    Annotation,
    Annotator,
    Bench,
    CostModel,
    format_effort_table,
    levers,
    make_bench,
    plot_effort,
    run_arms,
    run_effort_bench,
    targets,
)
from conftest import DAVIS, DINOV2_CHECKPOINT, require
from curator.annotate import create_propagator
from curator.cli import app
from curator.embed import create_backbone
from curator.segment import create_segmenter

runner = CliRunner()


def disk_scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured disk on blurred colour noise, and its mask."""
    import cv2

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur((rng.random((96, 128, 3)) * 255).astype(np.uint8), (0, 0), 2)
    yy, xx = np.mgrid[:96, :128]
    gt = (yy - 48) ** 2 + (xx - 70) ** 2 < 22**2
    image[gt] = (200, 40, 40)
    return image, gt


def light_bench(root: Path, cost: CostModel | None = None) -> Bench:
    """A bench without weights: classic pool embeddings, ``flow`` propagation, GrabCut clicks."""
    seqs = load_davis(make_davis(root, names=("alpha", "beta"), n=6))
    annotator = Annotator(cost or CostModel(max_clicks=8), create_segmenter("grabcut"))
    backbone = create_backbone("classic").backbone
    return make_bench(seqs, backbone, "classic", create_propagator("flow"), annotator, log=lambda _: None)


def test_cost_model_reads_the_shipped_file() -> None:
    cost = CostModel.load()
    assert cost == CostModel(scratch_seconds=80.0, click_seconds=1.5, look_seconds=3.0, target_iou=0.9, max_clicks=20)
    assert CostModel.load(target_iou=0.8, max_clicks=None).target_iou == 0.8
    assert cost.frame_from_scratch(2) == 3.0 + 2 * 80.0


def test_cost_model_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "cost.yaml"
    bad.write_text("scratch_seconds: 80\nclick_secs: 1.5\n")
    with pytest.raises(ValueError, match="unknown cost settings"):
        CostModel.load(bad)
    bad.write_text("look_seconds: -1\n")
    with pytest.raises(ValueError, match="negative"):
        CostModel.load(bad)
    with pytest.raises(FileNotFoundError):
        CostModel.load(tmp_path / "none.yaml")


def test_clicks_stop_at_the_target_and_fall_back_to_drawing() -> None:
    image, gt = disk_scene()
    cost = CostModel()
    annotator = Annotator(cost, create_segmenter("grabcut"))
    made = annotator.click("s", 0, image, {1: gt})
    (trace,) = made.trace
    assert made.clicks == len(trace) >= 1 and made.fallbacks == 0
    assert trace[-1] >= cost.target_iou and all(v < cost.target_iou for v in trace[:-1])  # stops at the first hit
    assert made.iou == [pytest.approx(trace[-1])]
    assert made.total == pytest.approx(cost.look_seconds + cost.click_seconds * made.clicks)
    # a pre-annotation already at the target is accepted without a click
    close = gt.copy()
    close[gt.nonzero()[0][:20], gt.nonzero()[1][:20]] = False
    kept = annotator.click("s", 0, image, {1: gt}, {1: close})
    assert (kept.clicks, kept.accepted, kept.total) == (0, 1, cost.look_seconds)
    assert kept.pre_iou[0] is not None and kept.pre_iou[0] > 0.9
    # no click allowed: the object is drawn from scratch, and an object the frame lacks is deleted
    strict = Annotator(replace(cost, max_clicks=0), annotator.segmenter)
    drawn = strict.click("s", 0, image, {1: gt, 2: np.zeros_like(gt)}, {2: close})
    assert drawn.fallbacks == 1 and np.array_equal(drawn.masks[1], gt) and set(drawn.masks) == {1}
    assert drawn.total == pytest.approx(cost.look_seconds + cost.scratch_seconds + cost.click_seconds)
    assert annotator.draw("s", 0, {1: gt, 2: np.zeros_like(gt)}).total == cost.frame_from_scratch(1)


def test_click_sessions_are_kept_on_disk(tmp_path: Path) -> None:
    image, gt = disk_scene()
    annotator = Annotator(CostModel(), create_segmenter("grabcut"), tmp_path)
    first = annotator.click("s", 3, image, {1: gt})
    again = annotator.click("s", 3, image, {1: gt})
    assert annotator.cached == 1 and again.record() == first.record() and np.array_equal(again.masks[1], first.masks[1])
    annotator.click("s", 3, image, {1: gt}, {1: gt})  # another pre-annotation is another session
    assert annotator.cached == 1


def test_levers_reprice_the_measured_click_traces() -> None:
    cost = CostModel()
    parts = {"look": 3.0, "clicks": 4.5, "wasted_clicks": 30.0, "scratch": 0.0, "fallback": 80.0}
    mask = np.ones((2, 2), bool)
    # object 1 reached 0.9 at its third click; object 2 never did in 20 clicks and was drawn
    frame = Annotation("s", 0, {1: mask, 2: mask}, parts, clicks=23, fallbacks=1, pre_iou=[None, None],
                       iou=[0.95, 1.0], trace=[[0.5, 0.8, 0.95], [0.5] * 20], drawn=[False, True])
    got = levers([frame], cost, limits=(2, 3))
    assert got["measured"] == 117.5 and got["no_wasted_clicks"] == 87.5
    assert got["max_clicks_3"] == 3 + 4.5 + (4.5 + 80) and got["max_clicks_2"] == 3 + 2 * (3.0 + 80)
    assert got["all_scratch"] == 3 + 2 * 80


def _monotone(values: list[float]) -> bool:
    return all(a <= b for a, b in pairwise(values))


def test_report_without_weights(tmp_path: Path) -> None:
    bench = light_bench(tmp_path / "davis")
    arms = ["manual", "uniform-scratch", "uniform-clicks"]
    report: dict[str, Any] = {"sequences": bench.names, "frames": 12, "settings": {"segmenter": "grabcut", "cost": {"target_iou": 0.9}}}
    report.update(run_arms(bench, arms, budgets=[1, 2]))
    report = json.loads(json.dumps(report))  # JSON all the way down
    assert list(report["summary"]) == arms
    for arm in arms:
        s = report["summary"][arm]
        assert set(s["seconds_to"]) == {"0.80", "0.85"} and isinstance(s["keyframes"], int)
        assert s["clicks_per_keyframe"] is not None and set(s["breakdown"]) >= {"look", "clicks", "fallback"}
        assert _monotone([p["seconds"] for p in report["curves"][arm]])
    # manual: every frame drawn, one object each: 12 x (80 + 3) s, and a perfect dataset at the end
    manual = report["curves"]["manual"]
    assert manual[0]["seconds"] == 0 and manual[-1]["frames"] == 12
    assert manual[-1]["seconds"] == pytest.approx(12 * (80.0 + 3.0)) and manual[-1]["JF"] == pytest.approx(1.0)
    assert _monotone([p["JF"] for p in manual]) and report["summary"]["manual"]["clicks_per_keyframe"] == 0
    reach = report["summary"]["manual"]["seconds_to"]["0.85"]
    assert reach == min(p["seconds"] for p in manual if p["JF"] >= 0.85)
    # uniform: one point per budget, keyframes priced from scratch or by their clicks
    scratch, clicks = report["curves"]["uniform-scratch"], report["curves"]["uniform-clicks"]
    assert [p["budget"] for p in scratch] == [1, 2] and [p["frames"] for p in scratch] == [2, 4]
    assert [p["seconds"] for p in scratch] == [2 * 83.0, 4 * 83.0]
    assert all(p["clicks"] > 0 and p["breakdown"]["scratch"] == 0 for p in clicks)
    assert all(r["iou"][0] >= 0.9 or r["fallbacks"] for r in report["annotations"]["uniform-clicks"])
    assert report["targets"] == {}  # no curator arm
    table = format_effort_table(report)
    assert all(f"`{arm}`" in table for arm in arms)
    plot_effort(report, tmp_path / "effort.png")
    assert (tmp_path / "effort.png").stat().st_size > 5000


def test_targets_compare_curator_with_manual_and_uniform_scratch() -> None:
    summary = {
        "manual": {"seconds_to": {"0.85": 50_000.0}},
        "uniform-scratch": {"seconds_to": {"0.85": 4000.0}},
        "curator": {"seconds_to": {"0.85": 900.0}},
    }
    got = targets(summary)
    assert got["curator_vs_manual"]["met"] and got["curator_vs_manual"]["limit_seconds"] == 1000.0
    assert got["curator_vs_uniform-scratch"]["met"] and got["curator_vs_uniform-scratch"]["share"] == 0.225
    summary["curator"]["seconds_to"]["0.85"] = None  # never reached
    assert not any(t["met"] for t in targets(summary).values())


def test_cli_errors(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis", n=4)
    out = tmp_path / "e.json"
    base = ["bench", "effort", "--davis", str(root), "--checkpoint", str(tmp_path / "w.safetensors"), "--out", str(out)]
    unknown = runner.invoke(app, [*base, "--strategies", "manual,nope"])
    assert unknown.exit_code == 2 and "unknown strategies" in unknown.output
    budgets = runner.invoke(app, [*base, "--budgets", "1,x"])
    assert budgets.exit_code == 2 and "--budgets" in budgets.output
    cost = runner.invoke(app, [*base, "--cost", str(tmp_path / "none.yaml")])
    assert cost.exit_code == 2 and "none.yaml" in cost.output
    assert not out.exists()


def _tiny_run(root: Path, cache: Path) -> dict[str, Any]:
    from curator.train.loop import RoundConfig

    config = RoundConfig(short_side=112)
    config = replace(config, proxy=replace(config.proxy, steps=5))
    return run_effort_bench(root, require(DINOV2_CHECKPOINT), ARMS, budgets=[1, 2], schedule=[2, 2], config=config,
                            cache_dir=cache, segmenter="grabcut", log=lambda _: None)


@pytest.mark.slow
def test_whole_bench_on_a_synthetic_davis(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis", names=("alpha", "beta"), n=8)
    report = json.loads(json.dumps(_tiny_run(root, tmp_path / "cache")))
    assert list(report["summary"]) == list(ARMS) and set(report["targets"]) == {
        "curator_vs_manual", "curator_vs_uniform-scratch"
    }
    rounds = report["curves"]["curator"]
    assert [p["frames"] for p in rounds] == [2, 4]  # cumulative over rounds
    assert _monotone([p["seconds"] for p in rounds]) and rounds[1]["dense_sources"]["human"] == 4
    made = report["annotations"]["curator"]
    assert sorted(r["sequence"] for r in made[:2]) == ["alpha", "beta"]  # a first keyframe in each video
    assert all(r["pre_iou"] == [None] for r in made[:2])  # nothing to start from yet
    assert all(r["pre_iou"][0] is not None for r in made[2:])  # then each round's dense labels
    assert report["summary"]["curator"]["keyframes_total"] == 4 and report["settings"]["segmenter"] == "grabcut"
    assert report["machine"]["cpu_count"] and (tmp_path / "cache" / "alpha-flow.pkl").is_file()
    again = _tiny_run(root, tmp_path / "cache")  # propagations and click sessions come back from disk
    assert again["propagation"]["disk_hits"] >= 4 and again["cached_annotations"] >= 4
    assert again["curves"]["uniform-scratch"] == report["curves"]["uniform-scratch"]
    assert again["curves"]["uniform-clicks"] == report["curves"]["uniform-clicks"]


@pytest.mark.slow
def test_bench_on_real_davis(tmp_path: Path) -> None:
    davis = require(DAVIS)
    report = run_effort_bench(
        davis, require(DINOV2_CHECKPOINT), ["manual", "uniform-scratch", "uniform-clicks"], budgets=[2],
        sequences=["blackswan"], log=lambda _: None,
    )
    manual = report["summary"]["manual"]
    assert report["curves"]["manual"][-1]["seconds"] == pytest.approx(50 * (80.0 + 3.0))
    assert manual["seconds_to"]["0.85"] is not None and manual["seconds_to"]["0.85"] < 50 * 83.0
    # blackswan propagates well from two keyframes, whether drawn or clicked (the swan is easy to click)
    assert report["summary"]["uniform-scratch"]["final_JF"] > 0.9
    assert report["summary"]["uniform-clicks"]["final_JF"] > 0.85 and report["summary"]["uniform-clicks"]["clicks_per_keyframe"] < 20
