"""`curator round`: one retrain-and-reselect round from the command line."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import DINOV2_CHECKPOINT, require
from curator.cli import app

runner = CliRunner()


def write_clip(path: Path, n: int = 12) -> None:
    """A moving square on a textured background, as an mkv PyAV writes."""
    rng = np.random.default_rng(0)
    background = (rng.random((56, 84, 3)) * 255).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("h264", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 84, 56, "yuv420p"
        for i in range(n):
            image = background.copy()
            image[14:34, 4 + 3 * i : 24 + 3 * i] = (255, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_round_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import select

    from curator.annotate.masks import encode_rle
    from curator.config import load_settings
    from curator.store import Annotation, Frame
    from curator.store.models import Task
    from curator.workspace import Workspace

    monkeypatch.setenv("CURATOR_BACKBONE_CHECKPOINT", str(require(DINOV2_CHECKPOINT)))
    home = tmp_path / "home"
    clip = tmp_path / "clip.mkv"
    write_clip(clip)
    ingested = runner.invoke(app, ["ingest", str(clip), "--home", str(home), "--backbone", "classic"])
    assert ingested.exit_code == 0, ingested.output
    args = ["round", "--home", str(home), "--budget", "3", "--steps", "10", "--short-side", "56"]

    no_labels = runner.invoke(app, [*args, "--propagator", "flow"])
    assert no_labels.exit_code == 2 and "human masks" in no_labels.output

    workspace = Workspace(load_settings(None, home=home))
    with workspace.db.session() as session:
        first = session.scalars(select(Frame).order_by(Frame.frame_index)).first()
        assert first is not None
        mask = np.zeros((first.height, first.width), dtype=bool)
        mask[14:34, 4:24] = True
        session.add(Annotation(frame_id=first.id, object_id=1, source="human", rle=encode_rle(mask)))
        labelled = first.id

    result = runner.invoke(app, [*args, "--propagator", "flow"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert len(summary["picks"]) == 3 and labelled not in {p["frame_id"] for p in summary["picks"]}
    with workspace.db.session() as session:
        sources = set(session.scalars(select(Annotation.source)))
        tasks = session.scalars(select(Task.frame_id)).all()
    assert {"human", "propagated"} <= sources
    assert sorted(tasks) == sorted(p["frame_id"] for p in summary["picks"])
    workspace.close()

    unknown = runner.invoke(app, [*args, "--strategy", "nope"])
    assert unknown.exit_code == 2 and "valid names" in unknown.output
