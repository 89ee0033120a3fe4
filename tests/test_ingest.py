"""Ingest on real footage: counts, timestamps, shots, sampling, idempotence, bad input."""

from __future__ import annotations

import itertools
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import func, select

from conftest import VIDEOS, require
from curator.ingest import FrameSampler, VideoDecodeError, ingest_video, probe
from curator.progress import Cancelled
from curator.store import Frame, Shot, Video
from curator.workspace import Workspace

# (file, decoded frames, fps) as the container reports them
EXPECTED = {
    "bedroom.mp4": (200, 30.0),
    "01_dog.mp4": (289, 30000 / 1001),
    "05_default_juggle.mp4": (247, 24.0),
    "bikes.mp4": (250, 25.0),
}


def counts(workspace: Workspace) -> tuple[int, int, int]:
    with workspace.db.session() as session:
        return (
            session.scalar(select(func.count(Video.id))) or 0,
            session.scalar(select(func.count(Frame.id))) or 0,
            session.scalar(select(func.count(Shot.id))) or 0,
        )


def stored_files(workspace: Workspace) -> list[Path]:
    return [p for p in workspace.blobs.root.rglob("*") if p.is_file()]


# two of the four clips by default (one H.264 at 30 fps, one at 25); all four with --runslow
FAST_CLIPS = ("bedroom.mp4", "bikes.mp4")


@pytest.mark.parametrize(
    "name", [n if n in FAST_CLIPS else pytest.param(n, marks=pytest.mark.slow) for n in sorted(EXPECTED)]
)
def test_ingest_every_shared_video(workspace: Workspace, project_id: int, name: str) -> None:
    path = require(VIDEOS / name)
    n_expected, fps = EXPECTED[name]
    result = ingest_video(workspace, project_id, path)
    assert result.created and result.decoded_frames == n_expected and result.frames == n_expected
    with workspace.db.session() as session:
        video = session.get(Video, result.video_id)
        assert video is not None
        assert video.fps == pytest.approx(fps, rel=1e-6)
        frames = video.frames
        indices = np.array([f.frame_index for f in frames])
        times = np.array([f.timestamp for f in frames])
        np.testing.assert_array_equal(indices, np.arange(n_expected))
        # constant frame rate: timestamps sit on i / fps (to the stream's time-base rounding)
        np.testing.assert_allclose(times, indices / fps, atol=1e-3)
        assert all(workspace.blobs.path(f.blob_path).is_file() for f in frames)
        assert {f.width for f in frames} == {video.width if video.width <= 1280 else 1280}
        shots = video.shots
        assert shots[0].start_frame == 0 and shots[-1].end_frame == n_expected
        assert all(a.end_frame == b.start_frame for a, b in itertools.pairwise(shots))
        assert all(
            f.shot is not None and f.shot.start_frame <= f.frame_index < f.shot.end_frame for f in frames
        )


def test_shots_found_in_edited_clip(workspace: Workspace, project_id: int) -> None:
    result = ingest_video(workspace, project_id, require(VIDEOS / "bikes.mp4"))
    # bikes.mp4 is an edited montage with visible cuts; the single-take clips have none
    assert result.shots >= 4
    other = ingest_video(workspace, project_id, require(VIDEOS / "bedroom.mp4"))
    assert other.shots == 1


def test_fps_sampling_keeps_one_frame_per_slot(workspace: Workspace, project_id: int) -> None:
    workspace.settings.sample_fps = 5.0
    result = ingest_video(workspace, project_id, require(VIDEOS / "bedroom.mp4"))  # 30 fps, 6.67 s
    with workspace.db.session() as session:
        times = np.array(
            session.scalars(select(Frame.timestamp).where(Frame.video_id == result.video_id)).all()
        )
    assert result.decoded_frames == 200
    assert len(times) == 34  # slots at 0, 0.2, ..., 6.6 s
    assert np.all(np.diff(times) >= 0.2 - 1e-3) and np.all(np.diff(times) < 0.2 + 1 / 30 + 1e-3)


def test_sampler_stride_and_rate() -> None:
    sampler = FrameSampler(stride=2)
    assert [i for i in range(7) if sampler.keep(i, i / 10)] == [0, 2, 4, 6]
    sampler = FrameSampler(fps=10)
    kept = [i for i in range(100) if sampler.keep(i, i / 30)]
    assert len(kept) == 34 and kept[:4] == [0, 3, 6, 9]
    with pytest.raises(ValueError):
        FrameSampler(stride=0)


def test_reingest_is_a_noop(workspace: Workspace, project_id: int) -> None:
    path = require(VIDEOS / "bikes.mp4")
    first = ingest_video(workspace, project_id, path)
    before = counts(workspace), sorted(stored_files(workspace))
    again = ingest_video(workspace, project_id, path)
    assert not again.created and again.video_id == first.video_id and again.frames == first.frames
    assert (counts(workspace), sorted(stored_files(workspace))) == before


def _write_corrupt_files(tmp_path: Path) -> list[Path]:
    source = (VIDEOS / "bikes.mp4").read_bytes()
    rng = np.random.default_rng(0)
    files = {
        "random.mp4": rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes(),
        "empty.mp4": b"",
        "text.mp4": b"this is not a video\n" * 100,
        "truncated.mp4": source[: len(source) // 2],
        "garbled.mp4": source[:4096] + rng.integers(0, 256, len(source) - 4096, dtype=np.uint8).tobytes(),
    }
    paths = []
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_corrupt_files_are_rejected_and_store_nothing(
    workspace: Workspace, project_id: int, tmp_path: Path
) -> None:
    require(VIDEOS / "bikes.mp4")
    for path in _write_corrupt_files(tmp_path):
        with pytest.raises(VideoDecodeError) as info:
            ingest_video(workspace, project_id, path)
        assert path.name in str(info.value)
        assert counts(workspace) == (0, 0, 0), path.name
        assert stored_files(workspace) == [], path.name


def test_missing_file_is_a_clear_error(workspace: Workspace, project_id: int, tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError, match="no such file"):
        probe(tmp_path / "nope.mp4")


def test_cancel_stores_nothing(workspace: Workspace, project_id: int) -> None:
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 20

    with pytest.raises(Cancelled):
        ingest_video(workspace, project_id, require(VIDEOS / "bikes.mp4"), cancel=cancel)
    assert counts(workspace) == (0, 0, 0)
    assert stored_files(workspace) == []


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".mkv", "h264"), (".webm", "libvpx"), (".avi", "mpeg4"), (".mov", "mpeg4")]
)
def test_other_containers(
    workspace: Workspace, project_id: int, tmp_path: Path, suffix: str, codec: str
) -> None:
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as container:
        try:
            stream = container.add_stream(codec, rate=Fraction(10))
        except Exception as exc:  # encoder missing from this FFmpeg build
            pytest.skip(f"encoder {codec} unavailable: {exc}")
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            image = np.full((48, 64, 3), i * 12, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    result = ingest_video(workspace, project_id, path)
    assert result.created and result.decoded_frames == 20 and result.frames == 20
    with workspace.db.session() as session:
        times = session.scalars(select(Frame.timestamp).where(Frame.video_id == result.video_id)).all()
    np.testing.assert_allclose(times, np.arange(20) / 10, atol=2e-3)


def test_ingest_embeds_and_indexes(workspace: Workspace, project_id: int) -> None:
    from curator.embed import create_backbone
    from curator.index import FaissIndex

    backbone = create_backbone("classic").backbone
    result = ingest_video(workspace, project_id, require(VIDEOS / "bikes.mp4"), backbone=backbone)
    assert result.embedded == result.frames == 250
    index = FaissIndex.load(workspace.index_path(project_id, "classic"))
    assert index.ntotal == 250 and index.is_exact
    assert not os.listdir(workspace.blobs.root / ".staging")
