"""``curator bench scale --parts replicas``: 1 and 2 ``curator serve`` replicas on one throwaway
PostgreSQL database (benchmarks/replicas.py), briefly; the report's shape and the database check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import benchmarks.scale
from curator.cli import app
from tests.pg import require_postgres


def test_unknown_part_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "scale", "--parts", "replicas,gpu", "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 2
    assert "unknown part(s) gpu" in result.output and "ray, replicas" in result.output
    with pytest.raises(ValueError, match="unknown part"):
        benchmarks.scale.run_scale(tmp_path, parts=["nope"])


def test_replicas_part_reports_both_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_postgres()

    def no_netns(argv: object) -> list[str]:
        raise AssertionError("the replicas part alone must not re-run in a network namespace")

    # as on a machine with a network: a ray part would re-run under unshare here
    monkeypatch.setattr(benchmarks.scale, "loopback_only", lambda: False)
    monkeypatch.setattr(benchmarks.scale, "netns_command", no_netns)
    out = tmp_path / "scale.json"
    result = CliRunner().invoke(app, [
        "bench", "scale", "--parts", "replicas", "--clients", "3", "--replica-seconds", "2", "--repeats", "1",
        "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report) == {"replicas", "setup"} and report["setup"]["parts"] == ["replicas"]
    replicas = report["replicas"]
    for count in ("1", "2"):
        assert replicas[f"{count}_cycles_per_s"] > 0
        assert replicas[f"{count}_p50_ms"] > 0 and replicas[f"{count}_p99_ms"] >= replicas[f"{count}_p50_ms"]
        assert replicas[f"{count}_errors"] == 0
        (run,) = replicas["runs"][count]
        assert run["cycles"] > 0 and not run["ran_dry"] and set(run["cpu_ms_per_cycle"]) == {
            "servers", "clients", "postgres"
        }
    assert replicas["ratio"] == round(replicas["2_cycles_per_s"] / replicas["1_cycles_per_s"], 3)
    assert len(replicas["turn_ratios"]) == 1
    assert replicas["errors"] == 0 and replicas["double_leases"] == 0 and replicas["leased_not_submitted"] == 0
    # every cycle the clients counted (warm-up included) is one task leased once and done
    assert replicas["tasks_leased"] == replicas["tasks_done"] == replicas["cycles_total"] > 0
    assert replicas["consistent"] is True
    assert replicas["cpu_count"] == os.cpu_count() and len(replicas["loadavg_start"]) == 3
    assert not list(tmp_path.glob("scale-*"))  # the scratch folder (home, logs) is removed
