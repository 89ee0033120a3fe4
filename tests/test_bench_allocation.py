"""The allocation bound: exact against brute force, sensible splits, and the CLI around it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.allocation import allocation_report, best_allocation, curves_from_report, even_allocation
from curator.cli import app

runner = CliRunner()


def _brute(curves: dict[str, dict[int, float]], total: int, weights: dict[str, float] | None = None) -> float:
    videos = sorted(curves)
    w = np.array([(weights or {}).get(v, 1.0) for v in videos])
    w = w / w.sum()
    best = -np.inf
    for combo in itertools.product(*(sorted(curves[v]) for v in videos)):
        if sum(combo) <= total:
            best = max(best, float(np.dot(w, [curves[v][b] for v, b in zip(videos, combo, strict=True)])))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_best_allocation_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    curves = {f"v{i}": {b: float(rng.random()) for b in (1, 2, 4, 8)} for i in range(4)}
    weights = {v: float(rng.integers(20, 100)) for v in curves} if seed % 2 else None
    for total in (4, 7, 12, 20, 32):
        value, split = best_allocation(curves, total, weights)
        assert value == pytest.approx(_brute(curves, total, weights))
        assert sum(split.values()) <= total
        assert all(split[v] in curves[v] for v in curves)


def test_budget_goes_to_the_video_that_gains() -> None:
    curves = {"easy": {1: 0.9, 2: 0.91, 4: 0.92}, "hard": {1: 0.3, 2: 0.5, 4: 0.8}}
    value, split = best_allocation(curves, 5)
    assert split == {"easy": 1, "hard": 4}
    assert value == pytest.approx((0.9 + 0.8) / 2)


def test_impossible_total_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot give every video"):
        best_allocation({"a": {1: 0.5}, "b": {2: 0.5}}, 2)


def test_even_allocation_follows_length() -> None:
    counts = even_allocation({"long": 300, "short": 100, "tiny": 1}, 8)
    assert sum(counts.values()) == 8
    assert counts["tiny"] >= 1 and counts["long"] > counts["short"]


def _report() -> dict[str, object]:
    rows = []
    for seq, n, base in (("a", 50, 0.9), ("b", 80, 0.4), ("c", 60, 0.7)):
        for b in (1, 2, 4, 8):
            rows.append({"sequence": seq, "strategy": "uniform", "budget": b, "frames": n, "JF": base + 0.02 * b * (1 - base)})
    return {"propagator": "flow", "rows": rows}


def test_report_rows_and_weighting() -> None:
    curves, frames = curves_from_report(_report(), "uniform")
    assert frames == {"a": 50, "b": 80, "c": 60} and curves["b"][8] == pytest.approx(0.4 + 0.16 * 0.6)
    by_video = allocation_report(_report(), "uniform", [3, 6, 12])
    pooled = allocation_report(_report(), "uniform", [12], weighting="frames")
    assert by_video["rows"][0]["best_split"] == {"a": 1, "b": 1, "c": 1}
    assert [r["best_JF"] for r in by_video["rows"]] == sorted(r["best_JF"] for r in by_video["rows"])
    # the oracle is never below the even split when the even split was measured (1 and 2 frames a
    # video at totals 3 and 6 are budgets of the report; splits with unmeasured budgets have None)
    measured = [row for row in by_video["rows"] + pooled["rows"] if row["even_JF"] is not None]
    assert {3, 6} <= {row["total"] for row in measured}
    for row in measured:
        assert row["best_JF"] >= row["even_JF"] - 1e-12, row
    with pytest.raises(ValueError, match="no rows for strategy 'curator'"):
        allocation_report(_report(), "curator", [3])
    with pytest.raises(ValueError, match="weighting"):
        allocation_report(_report(), "uniform", [3], weighting="pixels")


def test_cli_writes_json_and_rejects_bad_input(tmp_path: Path) -> None:
    src = tmp_path / "keyframes.json"
    src.write_text(json.dumps(_report()))
    out = tmp_path / "alloc.json"
    ok = runner.invoke(app, ["bench", "allocation", "--report", str(src), "--frames", "3,6", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "| 3 |" in ok.output and json.loads(out.read_text())["rows"][1]["total"] == 6
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    for args in (
        ["--report", str(bad_json)],
        ["--report", str(tmp_path / "missing.json")],
        ["--report", str(src), "--frames", "x"],
        ["--report", str(src), "--strategy", "kcenter"],
        ["--report", str(src), "--frames", "2"],
    ):
        result = runner.invoke(app, ["bench", "allocation", *args])
        assert result.exit_code == 2, (args, result.output)
