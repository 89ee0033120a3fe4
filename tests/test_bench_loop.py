"""``curator bench loop``: the simulated campaign, its report and plot, and the CLI's errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_bench_keyframes import make_davis
from typer.testing import CliRunner

from benchmarks.loop import format_loop_table, frames_to_reach, plot_loop, run_loop_bench
from conftest import DAVIS, DINOV2_CHECKPOINT, require
from curator.cli import app
from curator.pool import Pool
from curator.train.loop import RoundConfig
from curator_selectors import create_selector

runner = CliRunner()


def two_video_pool(labeled: list[int]) -> Pool:
    n = 40  # video 0: rows 0-19 (0..19 s), video 1: rows 20-39
    lab = np.zeros(n, dtype=bool)
    lab[labeled] = True
    return Pool(
        embeddings=np.eye(n, dtype=np.float32),
        frame_ids=np.arange(n),
        video_ids=np.repeat([0, 1], 20),
        timestamps=np.tile(np.arange(20, dtype=np.float64), 2),
        shot_ids=np.repeat([0, 1], 20),
        labeled=lab,
    )


def test_uniform_fills_the_largest_gaps_once_frames_are_labelled() -> None:
    sel = create_selector("uniform")
    # video 0 has keyframes at 0 s and 19 s (one inner gap of 19 s); video 1 has none
    pool = two_video_pool([0, 19])
    picks = sel.select(pool, 2, np.random.default_rng(0)).indices.tolist()
    assert picks[0] == 20 + 10 or picks[0] == 20 + 9  # the unlabelled video first, at its centre
    assert picks[1] in (9, 10)  # then the middle of video 0's gap (gain 19^2/8 > end gaps of video 1)
    # a campaign of rounds stays evenly spread: after 1 + 2 + 4 picks per video the gaps are equal
    labels: list[int] = []
    for budget in (2, 4, 8):
        pool = two_video_pool(labels)
        new = sel.select(pool, budget, np.random.default_rng(0)).indices.tolist()
        assert not set(new) & set(labels) and len(set(new)) == budget
        labels += new
    for v in (0, 1):
        times = sorted(t % 20 for t in labels if t // 20 == v)
        assert len(times) == 7
        gaps = np.diff([0, *times, 19])
        assert gaps.max() - gaps[1:-1].min() <= 2


def test_report_helpers(tmp_path: Path) -> None:
    report = {
        "sequences": ["a", "b"],
        "settings": {"per_round": 2},
        "summary": {"uniform": [[2, 0.5], [4, 0.6]], "curator": [[2, 0.55], [4, 0.7]]},
    }
    assert frames_to_reach(report["summary"]["curator"], 0.6) == 4
    assert frames_to_reach(report["summary"]["uniform"], 0.61) is None
    table = format_loop_table(report)
    assert "curator" in table and "0.700" in table
    plot_loop(report, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_campaign_on_a_synthetic_davis(tmp_path: Path) -> None:
    checkpoint = require(DINOV2_CHECKPOINT)
    root = make_davis(tmp_path / "davis", names=("alpha", "beta"), n=8)
    config = RoundConfig(short_side=112)
    config = replace(config, proxy=replace(config.proxy, steps=5))
    report = run_loop_bench(
        root, 2, 2, ["uniform", "curator"], checkpoint, config=config, cache_dir=tmp_path / "cache"
    )
    rows = report["rounds"]
    assert [(r["strategy"], r["round"], r["annotated"]) for r in rows] == [
        ("uniform", 1, 2), ("uniform", 2, 4), ("curator", 1, 2), ("curator", 2, 4)
    ]
    for r in rows:
        assert 0.0 <= r["JF"] <= 1.0 and set(r["per_video"]) == {"alpha", "beta"}
        assert sum(r["dense_sources"].values()) == 16 and r["dense_sources"]["human"] == r["annotated"]
    for strategy in ("uniform", "curator"):
        picks = [tuple(p) for r in rows if r["strategy"] == strategy for p in r["picks"]]
        assert len(set(picks)) == 4  # never a frame twice across rounds
    # uniform's first round gives each video one frame in its middle
    assert sorted(p[0] for p in rows[0]["picks"]) == ["alpha", "beta"]
    assert report["summary"]["uniform"] == [[2, rows[0]["JF"]], [4, rows[1]["JF"]]]
    assert (tmp_path / "cache" / "alpha-patch.pkl").is_file()  # features are kept for the next run
    assert json.loads(json.dumps(report))["settings"]["per_round"] == 2


def test_cli_errors(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis", n=4)
    bad = runner.invoke(
        app,
        ["bench", "loop", "--davis", str(root), "--checkpoint", str(tmp_path / "w.safetensors"),
         "--selector-params", "{not json", "--out", str(tmp_path / "o.json")],
    )
    assert bad.exit_code == 2 and "not valid JSON" in bad.output
    unknown = runner.invoke(
        app,
        ["bench", "loop", "--davis", str(root), "--checkpoint", str(tmp_path / "w.safetensors"),
         "--strategies", "nope", "--out", str(tmp_path / "o.json")],
    )
    assert unknown.exit_code == 2 and "unknown strategies" in unknown.output
    assert not (tmp_path / "o.json").exists()


@pytest.mark.slow
def test_campaign_on_real_davis(tmp_path: Path) -> None:
    checkpoint = require(DINOV2_CHECKPOINT)
    davis = require(DAVIS)
    config = replace(RoundConfig(short_side=224), proxy=replace(RoundConfig().proxy, steps=20))
    report = run_loop_bench(davis, 2, 2, ["uniform"], checkpoint, sequences=["blackswan", "cows"], config=config)
    first, second = report["rounds"]
    assert first["annotated"] == 2 and second["annotated"] == 4
    # blackswan and cows propagate well from one keyframe each; a second keyframe does not hurt
    assert first["JF"] > 0.7 and second["JF"] >= first["JF"] - 0.02
