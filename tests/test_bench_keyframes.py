"""``curator bench keyframes`` on a tiny synthetic DAVIS-layout folder (and on the real one when slow)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from benchmarks.davis import load_davis
from benchmarks.keyframes import format_table, run_keyframe_bench
from curator.cli import app

SHARED = Path(__file__).parents[1].parent / "shared"
DAVIS = SHARED / "data" / "davis2016"
CHECKPOINT = SHARED / "weights" / "dinov2_vits14.safetensors"


def make_davis(root: Path, names: tuple[str, ...] = ("alpha", "beta"), n: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for s, name in enumerate(names):
        (root / "JPEGImages" / "480p" / name).mkdir(parents=True)
        (root / "Annotations" / "480p" / name).mkdir(parents=True)
        background = cv2.GaussianBlur((rng.random((72, 120, 3)) * 255).astype(np.uint8), (0, 0), 2)
        texture = cv2.GaussianBlur((rng.random((24, 24, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
        for i in range(n):
            frame = background.copy()
            mask = np.zeros((72, 120), np.uint8)
            x = 10 + (2 + s) * i
            frame[20:44, x : x + 24] = texture
            mask[20:44, x : x + 24] = 255
            Image.fromarray(frame).save(root / "JPEGImages" / "480p" / name / f"{i:05d}.jpg", quality=95)
            Image.fromarray(mask, mode="L").save(root / "Annotations" / "480p" / name / f"{i:05d}.png")
    return root


def test_davis_loader(tmp_path: Path) -> None:
    root = make_davis(tmp_path)
    seqs = load_davis(root)
    assert [s.name for s in seqs] == ["alpha", "beta"]
    assert len(seqs[0]) == 10 and seqs[0].frame(0).shape == (72, 120, 3)
    assert set(np.unique(seqs[0].labels(0)).tolist()) == {0, 1}
    assert [s.name for s in load_davis(root, sequences=["beta"])] == ["beta"]
    with pytest.raises(FileNotFoundError, match="not in"):
        load_davis(root, sequences=["gamma"])
    with pytest.raises(FileNotFoundError, match="DAVIS layout"):
        load_davis(tmp_path / "nowhere")


def test_bench_report_rows_and_summary(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis")
    report = run_keyframe_bench(root, [1, 3], ["uniform"], "flow")
    assert report["backbone"] == "classic" and report["propagator"] == "flow"
    assert {"platform", "cpu_count"} <= set(report["machine"])
    rows = report["rows"]
    assert len(rows) == 4
    for row in rows:
        assert set(row) >= {"sequence", "strategy", "budget", "keyframes", "J", "F", "JF", "seconds"}
        assert len(row["keyframes"]) == row["budget"]
        assert row["JF"] == pytest.approx((row["J"] + row["F"]) / 2)
        assert row["JF"] > 0.6
    one = [r["keyframes"] for r in rows if r["budget"] == 1]
    assert one == [[4], [4]]  # uniform: the middle of 10 frames
    summary = report["summary"]["uniform"]
    assert set(summary) == {"1", "3"}
    assert summary["3"] >= summary["1"]
    assert "uniform" in format_table(report)
    with pytest.raises(ValueError, match="unknown strategies"):
        run_keyframe_bench(root, [1], ["nope"], "flow")


def test_cli_writes_json_and_plot(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis", names=("alpha",), n=6)
    out = tmp_path / "out" / "kf.json"
    result = CliRunner().invoke(
        app,
        ["bench", "keyframes", "--davis", str(root), "--budgets", "1,2", "--strategies", "uniform",
         "--propagator", "flow", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["summary"]["uniform"]) == {"1", "2"}
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "B=1" in result.output
    bad = CliRunner().invoke(
        app, ["bench", "keyframes", "--davis", str(tmp_path / "none"), "--out", str(out)]
    )
    assert bad.exit_code == 2 and "DAVIS layout" in bad.output


@pytest.mark.slow
def test_real_davis_flow_beats_floor_at_eight_keyframes() -> None:
    if not DAVIS.is_dir():
        pytest.skip(f"DAVIS 2016 sample not found at {DAVIS}")
    report = run_keyframe_bench(DAVIS, [8], ["uniform"], "flow", sequences=["blackswan", "cows"])
    assert report["summary"]["uniform"]["8"] > 0.85
