"""``curator bench placement``: the exact placement oracle agrees with real propagation and beats every placement."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.davis import load_davis
from benchmarks.keyframes import ground_truth
from benchmarks.placement import PlacementSums, placement_sums, run_placement_bench
from curator.annotate import FrameSource, Keyframe, create_propagator
from curator.cli import app
from curator.eval import score_sequence
from tests.test_bench_keyframes import make_davis


def propagated_jf(propagator, frames, gt, keys) -> float:  # type: ignore[no-untyped-def]
    """Mean J&F of a real propagation from ``keys`` (objects not visible on a key are left out, as the bench does)."""
    keyframes = [Keyframe(k, {o: m for o, m in gt[k].items() if m.any()}) for k in sorted(keys)]
    keyframes = [k for k in keyframes if k.masks]
    predictions = [f.masks for f in propagator.propagate(frames, keyframes)]
    return score_sequence(zip(predictions, gt, strict=True)).JF


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = make_davis(tmp_path_factory.mktemp("davis"), names=("alpha",), n=9)
    seq = load_davis(root)[0]
    frames = FrameSource(seq.frames(), cache=True)
    gt = ground_truth(seq)
    prop = create_propagator("flow")
    return root, prop, frames, gt, placement_sums(prop, frames, gt)


def test_sums_reproduce_real_propagation(sequence) -> None:  # type: ignore[no-untyped-def]
    _, prop, frames, gt, sums = sequence
    rng = np.random.default_rng(1)
    for budget in (1, 2, 3, 5):
        for _ in range(3):
            keys = sorted(rng.choice(len(gt), budget, replace=False).tolist())
            assert sums.score(keys) == pytest.approx(propagated_jf(prop, frames, gt, keys), abs=2e-3)


def test_oracle_is_the_best_placement(sequence) -> None:  # type: ignore[no-untyped-def]
    _, _, _, gt, sums = sequence
    n = len(gt)
    assert sums.anchors == list(range(n))
    for budget in (1, 2, 3):
        value, keys = sums.best(budget)
        assert len(keys) == budget == len(set(keys)) and keys == sorted(keys)
        assert value == pytest.approx(sums.score(keys))
        brute = max(sums.score(c) for c in itertools.combinations(range(n), budget))
        assert value == pytest.approx(brute)
    assert sums.best(n)[1] == list(range(n)) and sums.best(n)[0] == pytest.approx(1.0)
    assert sums.best(n + 5)[1] == list(range(n))


def test_frames_without_objects_are_not_keyframes(sequence) -> None:  # type: ignore[no-untyped-def]
    _, prop, frames, gt, _ = sequence
    hidden = [dict(g) for g in gt]
    hidden[0] = {k: np.zeros_like(m) for k, m in gt[0].items()}
    sums = placement_sums(prop, frames, hidden, anchors=[0, 4, 8])
    assert sums.anchors == [4, 8] and not sums.visible[0]
    assert sums.score([0, 4]) == pytest.approx(sums.score([4]))
    assert 0 not in sums.best(2)[1]
    with pytest.raises(ValueError, match="not anchors"):
        sums.score([2])
    with pytest.raises(ValueError, match="outside"):
        sums.score([9])
    with pytest.raises(ValueError, match="frames"):
        placement_sums(prop, frames, hidden[:-1])


def test_save_load_round_trip(sequence, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sums: PlacementSums = sequence[-1]
    sums.save(tmp_path / "s.npz")
    back = PlacementSums.load(tmp_path / "s.npz")
    assert back.n == sums.n and back.empty == sums.empty
    np.testing.assert_array_equal(back.seg, sums.seg)
    np.testing.assert_array_equal(back.visible, sums.visible)
    assert back.best(2) == sums.best(2)


def test_bench_report_and_cache(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis", n=8)
    lines: list[str] = []
    report = run_placement_bench(
        root, [1, 2], ["uniform", "random"], "flow", stride=2, cache_dir=tmp_path / "cache", log=lines.append
    )
    assert report["sequences"] == ["alpha", "beta"] and len(report["rows"]) == 4
    for row in report["rows"]:
        for name in ("uniform", "random"):
            assert row["oracle"]["JF"] >= row[name]["JF"] - 1e-12
            assert len(row[name]["keyframes"]) == row["budget"]
    for budget in ("1", "2"):
        assert report["headroom"]["uniform"][budget] >= 0
    assert not any("placement sums from" in line for line in lines)
    again = run_placement_bench(
        root, [1, 2], ["uniform", "random"], "flow", stride=2, cache_dir=tmp_path / "cache", log=lines.append
    )
    assert any("placement sums from" in line for line in lines)
    assert again["summary"] == report["summary"]
    with pytest.raises(ValueError, match="budgets"):
        run_placement_bench(root, [0], ["uniform"], "flow")
    with pytest.raises(ValueError, match="unknown strategies"):
        run_placement_bench(root, [1], ["nope"], "flow")
    with pytest.raises(ValueError, match="stride"):
        run_placement_bench(root, [1], ["uniform"], "flow", stride=0)


def test_cli(tmp_path: Path) -> None:
    root = make_davis(tmp_path / "davis", names=("alpha",), n=6)
    out = tmp_path / "p.json"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "bench",
            "placement",
            "--davis",
            str(root),
            "--budgets",
            "1,2",
            "--propagator",
            "flow",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"oracle", "uniform"}
    assert "oracle lead" in result.output and out.with_suffix(".png").is_file()
    bad = runner.invoke(app, ["bench", "placement", "--davis", str(root), "--budgets", "x"])
    assert bad.exit_code == 2 and "budgets" in bad.output
    missing = runner.invoke(app, ["bench", "placement", "--davis", str(tmp_path / "none")])
    assert missing.exit_code == 2


@pytest.mark.slow
def test_real_davis_oracle_matches_propagation_and_beats_uniform() -> None:
    from tests.test_bench_keyframes import DAVIS

    if not DAVIS.is_dir():
        pytest.skip(f"DAVIS 2016 sample not found at {DAVIS}")
    seq = load_davis(DAVIS, sequences=["scooter-black"])[0]
    frames = FrameSource(seq.frames(), cache=True)
    gt = ground_truth(seq)
    prop = create_propagator("flow")
    sums = placement_sums(prop, frames, gt, anchors=range(0, len(gt), 4))
    for keys in ([20], [8, 28], [0, 12, 24, 40]):
        assert sums.score(keys) == pytest.approx(propagated_jf(prop, frames, gt, keys), abs=1e-3)
    for budget in (1, 2, 4):
        value, keys = sums.best(budget)
        assert value >= max(sums.score(c) for c in itertools.combinations(sums.anchors, budget)) - 1e-12
        assert value > 0.5
