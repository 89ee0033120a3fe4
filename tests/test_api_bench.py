"""``curator bench api`` writes the JSON report with the agreed keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curator.cli import app


@pytest.mark.slow
def test_bench_api_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "api", "--clients", "2", "--seconds", "2", "--tasks", "2000",
                                      "--turns", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    keys = {"cycles_per_s", "p50_ms", "p99_ms", "errors", "server_cpu_ms_per_cycle"}
    assert keys | {"reference", "reference_tuned", "ratio", "ratio_tuned"} <= set(report)
    assert report["errors"] == 0 and report["cycles_per_s"] > 0
    for reference in ("reference", "reference_tuned"):
        assert keys <= set(report[reference]) and report[reference]["errors"] == 0
    assert report["ratio"] == round(report["cycles_per_s"] / report["reference"]["cycles_per_s"], 3)
