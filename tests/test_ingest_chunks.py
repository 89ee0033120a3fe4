"""One long file ingested in parts cut at its keyframes stores what ingesting it in one go stores:
the same frames (indices, timestamps, pixels), shots, embeddings and JPEGs, whatever the sampling."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sqlalchemy import select

from conftest import VIDEOS
from curator.store import Frame, Shot, Video, repo
from curator.workspace import Workspace

#: Frames at which the synthetic clip cuts to another scene: 75 and 120 inside parts of 50 frames,
#: 180 on a part's first frame (the plan cuts 0, 60, 115, 180, 240: x264 puts a keyframe at a
#: scene change), where the cut is scored by the part before.
SCENES = (0, 75, 120, 180, 300)


def write_scenes(path: Path, frames: int = 300, gop: int = 20) -> None:
    """An H.264 clip with B-frames, a keyframe every ``gop`` frames, a moving square and scene cuts."""
    rng = np.random.default_rng(1)
    backgrounds = [(rng.random((72, 128, 3)) * 255).astype(np.uint8) for _ in SCENES]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 128, 72, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"bf": "2"}
        for i in range(frames):
            scene = int(np.searchsorted(SCENES, i, side="right")) - 1
            image = backgrounds[scene].copy()
            image[20:40, (2 * i) % 100 : (2 * i) % 100 + 20] = (255, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chunks") / "scenes.mp4"
    write_scenes(path)
    return path


def _stored(workspace: Workspace, project_id: int) -> dict[str, Any]:
    with workspace.db.session() as session:
        video = session.scalars(select(Video).where(Video.project_id == project_id)).one()
        frames = session.scalars(select(Frame).where(Frame.video_id == video.id).order_by(Frame.frame_index)).all()
        shots = session.scalars(select(Shot).where(Shot.video_id == video.id).order_by(Shot.index)).all()
        vectors = repo.get_embeddings(session, project_id, "classic")[1]
        return {
            "video": (video.decoded_frames, video.fps, video.duration, video.content_hash),
            "frames": [(f.frame_index, f.timestamp, f.content_hash, f.width, f.height) for f in frames],
            "jpegs": [workspace.blobs.path(f.blob_path).read_bytes() for f in frames],
            "shots": [(s.start_frame, s.end_frame) for s in shots],
            "shot_of": [next(i for i, s in enumerate(shots) if s.id == f.shot_id) for f in frames],
            "vectors": vectors,
        }


def _chunked(workspace: Workspace, project_id: int, path: Path, size: int) -> int:
    from curator.embed import create_backbone
    from curator.ingest.chunks import commit_chunks, ingest_chunk, plan_chunks
    from curator.ingest.decode import file_sha256

    plan = plan_chunks(path, size, workspace.settings)
    assert plan is not None
    staging = workspace.blobs.staging_dir("ingest-")
    backbone = create_backbone("classic").backbone
    for chunk in reversed(plan.chunks):  # parts run in any order, on any node
        ingest_chunk(path, plan, chunk, staging, workspace.settings, backbone=backbone)
    result = commit_chunks(workspace, project_id, path, plan, staging, content_hash=file_sha256(path), backbone="classic")
    assert result.created and not staging.exists()
    return len(plan.chunks)


@pytest.mark.parametrize(("fps", "stride"), [(0.0, 1), (7.0, 1), (3.0, 2), (0.0, 3)])
def test_parts_store_what_the_whole_file_stores(tmp_path: Path, scenes: Path, fps: float, stride: int) -> None:
    from curator.config import load_settings
    from curator.embed import create_backbone
    from curator.ingest import ingest_video

    settings = load_settings(None, home=tmp_path / "home", sample_fps=fps, sample_stride=stride)
    workspace = Workspace(settings)
    try:
        with workspace.db.session() as session:
            whole_id = repo.get_or_create_project(session, f"whole-{fps}-{stride}").id
            parts_id = repo.get_or_create_project(session, f"parts-{fps}-{stride}").id
        ingest_video(workspace, whole_id, scenes, backbone=create_backbone("classic").backbone)
        parts = _chunked(workspace, parts_id, scenes, 50)
        whole, cut = _stored(workspace, whole_id), _stored(workspace, parts_id)
    finally:
        workspace.close()
    assert parts >= 4
    assert whole["shots"] == [(a, b) for a, b in itertools.pairwise(SCENES)]
    for key in ("video", "frames", "jpegs", "shots", "shot_of"):
        assert cut[key] == whole[key], key
    np.testing.assert_array_equal(cut["vectors"], whole["vectors"])
    assert len(cut["frames"]) > 10
    assert whole["vectors"].shape[0] == len(whole["frames"])
    np.testing.assert_array_equal(cut["vectors"], whole["vectors"])


@pytest.mark.parametrize("name", ["bikes.mp4", "01_dog.mp4"])
def test_parts_of_real_footage(workspace: Workspace, project_id: int, name: str) -> None:
    from curator.embed import create_backbone
    from curator.ingest import ingest_video
    from curator.store.repo import get_or_create_project

    path = VIDEOS / name
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    ingest_video(workspace, project_id, path, backbone=create_backbone("classic").backbone)
    with workspace.db.session() as session:
        other = get_or_create_project(session, "parts").id
    assert _chunked(workspace, other, path, 40) >= 2
    whole, cut = _stored(workspace, project_id), _stored(workspace, other)
    for key in ("video", "frames", "jpegs", "shots", "shot_of"):
        assert cut[key] == whole[key], key
    np.testing.assert_array_equal(cut["vectors"], whole["vectors"])


def test_short_files_and_other_codecs_are_not_cut(tmp_path: Path, scenes: Path) -> None:
    from curator.config import load_settings
    from curator.ingest.chunks import plan_chunks

    settings = load_settings(None, home=tmp_path / "home")
    assert plan_chunks(scenes, 300, settings) is None  # no more frames than a part
    plan = plan_chunks(scenes, 100, settings)
    assert plan is not None and plan.frames == 300
    assert next(c.first for c in plan.chunks) == 0 and all(c.stop - c.first >= 100 for c in plan.chunks[:-1])
    assert [c.stop for c in plan.chunks][-1] == 300
    mjpeg = tmp_path / "clip.avi"
    with av.open(str(mjpeg), "w") as container:
        stream = container.add_stream("mjpeg", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuvj420p"
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 5, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert plan_chunks(mjpeg, 5, settings) is None
