"""``curator bench ingest`` writes its report with bare decoding beside the decode stage, and the
decode stage stores what it always stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curator.cli import app
from curator.ingest.decode import iter_frames
from curator.ingest.pipeline import _DecodeStats, _produce, output_size
from curator.ingest.sample import FrameSampler
from curator.ingest.shots import ShotDetector
from tests.api_fixtures import VIDEOS

BIKES = (VIDEOS / "bikes.mp4").resolve()


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} is not here (../shared/videos)")
    return path


def test_bench_ingest_reports_bare_decoding_and_the_ratios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_HOME", str(tmp_path / "home"))
    out = tmp_path / "ingest.json"
    result = CliRunner().invoke(app, ["bench", "ingest", str(_require(BIKES)), "--backbone", "classic",
                                      "--max-side", "160", "--repeats", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    keys = {"bare_decode_fps", "decode_fps", "decode_vs_bare", "embed_fps", "pipeline_fps",
            "pipeline_vs_slower_stage", "targets", "peak_rss_mb", "encode_workers"}
    assert keys <= set(report)
    assert report["frames"] == report["stored_frames"] == 250
    assert report["decode_vs_bare"] == round(report["decode_fps"] / report["bare_decode_fps"], 3)
    assert {"decode", "embed", "pipeline"} <= set(report["peak_rss_mb"])


@pytest.mark.parametrize("workers", [1, 3])
def test_decode_stage_yields_in_order_whatever_the_pool(workers: int) -> None:
    size = output_size(640, 272, 320)
    stats = _DecodeStats()
    items = list(_produce(_require(BIKES), iter_frames(_require(BIKES)), FrameSampler(stride=2), ShotDetector(25.0), size, stats, 90, workers))
    assert [i.index for i in items] == list(range(0, 250, 2))
    assert stats.decoded == 250 and stats.shots[0].start == 0 and stats.shots[-1].end == 250
    assert all(i.rgb.shape == (size[1], size[0], 3) and i.jpeg[:2] == b"\xff\xd8" for i in items)


def test_abandoning_the_decode_stage_stops_its_threads() -> None:
    import threading

    before = {t.name for t in threading.enumerate()}
    stage = _produce(_require(BIKES), iter_frames(_require(BIKES)), FrameSampler(), ShotDetector(25.0), (320, 136), _DecodeStats(), 90, 2)
    assert next(stage).index == 0
    stage.close()
    left = {t.name for t in threading.enumerate()} - before
    assert not {name for name in left if name.startswith(("curator-encode", "curator-shots"))}
