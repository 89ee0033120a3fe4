"""The command line: demo end to end, ingest/select, clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import DINOV2_CHECKPOINT, VIDEOS, require
from curator.cli import app

runner = CliRunner()


def run(*args: str) -> object:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_demo_writes_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import curator.embed.dinov2 as dinov2

    monkeypatch.delenv("CURATOR_BACKBONE_CHECKPOINT", raising=False)
    monkeypatch.setattr(dinov2, "hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr(dinov2, "_cached_hub_file", lambda repo_id: None)
    out = tmp_path / "report"
    result = run("demo", "--home", str(tmp_path / "home"), "--out", str(out))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "classic" in result.output  # type: ignore[attr-defined]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backbone"] == "classic" and summary["backbone_fallback_reason"]
    assert summary["video"]["decoded_frames"] == 250 and len(summary["shots"]) >= 4
    assert len(summary["picks"]) == 8 and len({p["frame_id"] for p in summary["picks"]}) == 8
    png = (out / "contact_sheet.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    # a second run reuses the stored video and picks the same frames (same seed)
    again = run("demo", "--home", str(tmp_path / "home"), "--out", str(out))
    assert again.exit_code == 0  # type: ignore[attr-defined]
    picks2 = json.loads((out / "summary.json").read_text())["picks"]
    assert [p["frame_id"] for p in picks2] == [p["frame_id"] for p in summary["picks"]]


@pytest.mark.slow
def test_demo_with_dinov2_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_BACKBONE_CHECKPOINT", str(require(DINOV2_CHECKPOINT)))
    out = tmp_path / "report"
    result = run("demo", "--home", str(tmp_path / "home"), "--out", str(out))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backbone"] == "dinov2_vits14" and summary["backbone_fallback_reason"] is None


def test_ingest_select_and_errors(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    result = runner.invoke(
        app, ["ingest", str(require(VIDEOS / "bikes.mp4")), str(bad), "--home", home, "--backbone", "classic"]
    )
    assert result.exit_code == 2
    assert "rejected" in result.output and "notes.mp4" in result.output
    assert "250 stored" in result.output
    again = run("ingest", str(VIDEOS / "bikes.mp4"), "--home", home, "--backbone", "classic")
    assert "already ingested" in again.output  # type: ignore[attr-defined]

    picked = run("select", "--budget", "5", "--strategy", "uniform", "--home", home, "--json")
    payload = json.loads(picked.output)  # type: ignore[attr-defined]
    assert len(payload["picks"]) == 5

    unknown = runner.invoke(app, ["select", "--budget", "5", "--strategy", "nope", "--home", home])
    assert unknown.exit_code == 2 and "valid names" in unknown.output
    missing = runner.invoke(app, ["select", "--budget", "5", "--project", "nope", "--home", home])
    assert missing.exit_code == 2 and "no project named" in missing.output
    listed = run("projects", "--home", home)
    assert "default: 1 videos, 250 frames" in listed.output  # type: ignore[attr-defined]


def test_bench_ingest_reports_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run(
        "bench", "ingest", str(require(VIDEOS / "bikes.mp4")), "--backbone", "classic", "--out", str(out)
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    report = json.loads(out.read_text())
    for key in ("decode_fps", "embed_fps", "pipeline_fps", "pipeline_vs_slower_stage"):
        assert report[key] > 0
    assert report["frames"] == report["stored_frames"] == 250
    assert report["peak_rss_mb"]["pipeline"] > 0
