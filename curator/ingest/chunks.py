"""Ingest of one long file in parts: the file is cut at keyframes of its video stream, each part
decodes its stretch from a seek (a Ray task under ``curator worker --ray``), and one step stores
the parts' frames as one video, equal to ingesting the file in one go.

- :func:`plan_chunks` reads the stream's packets without decoding them: every frame's
  presentation timestamp gives its index, the keyframes give where a part may start, and the
  sampler's state at each cut is computed from the timestamps, so a part keeps the frames the
  whole-file ingest keeps.
- :func:`ingest_chunk` decodes one part (:func:`curator.ingest.decode.iter_frames_from`), writes its
  sampled frames as JPEGs to the file's staging folder, embeds them, and scores every frame for
  shot cuts against the frame before, the next part's first frame included.
- :func:`commit_chunks` decides the cuts over the whole file's scores in order
  (:meth:`curator.ingest.shots.ShotDetector.decide`) and stores the video, its shots, frames and
  embeddings in one transaction, as :func:`curator.ingest.pipeline.ingest_video` does.

A part that decodes other frames than the plan says (a stream whose packets and frames do not
match one to one) raises :class:`ChunkMismatch`; the caller ingests that file whole instead.
"""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.exc import IntegrityError

from curator.config import Settings
from curator.embed.base import Backbone
from curator.ingest.decode import VideoDecodeError, VideoInfo, _open, iter_frames_from, probe
from curator.ingest.pipeline import (
    IngestResult,
    _already_ingested,
    _check_complete,
    _commit,
    _DecodeStats,
    _drain,
    _FrameStager,
    _produce,
    output_size,
)
from curator.ingest.sample import FrameSampler
from curator.ingest.shots import ShotDetector
from curator.progress import CancelCheck, ProgressCallback, no_progress
from curator.workspace import Workspace

#: Codecs whose frames decode the same after a seek to a keyframe (checked on the bundled clips and
#: in tests); a file of another codec is ingested in one part.
CHUNK_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "mpeg1video"})


class ChunkMismatch(RuntimeError):
    """A part decoded other frames than its plan said: ingest the file in one part."""


@dataclass(frozen=True)
class Chunk:
    """One part of a file: decoded frames ``first <= index < stop``.

    Attributes:
        first: Index of the part's first frame (a keyframe) among the file's decoded frames.
        stop: One past its last frame (the next part's first, or the file's frame count).
        start_pts: Presentation timestamp of frame ``first`` (where the part seeks to).
        stop_pts: That of frame ``stop``, ``None`` for the last part.
        resume: The frame sampler's state before frame ``first`` (:attr:`FrameSampler.next_time`).
    """

    first: int
    stop: int
    start_pts: int
    stop_pts: int | None
    resume: float | None


@dataclass(frozen=True)
class ChunkPlan:
    """How one file is ingested in parts.

    Attributes:
        frames: The file's decoded frame count.
        first_pts: Presentation timestamp of its first frame (timestamps count from it).
        chunks: The parts, in order, covering every frame once.
    """

    frames: int
    first_pts: int
    chunks: list[Chunk]

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-ready data (a job part's params)."""
        return {"frames": self.frames, "first_pts": self.first_pts, "chunks": [asdict(c) for c in self.chunks]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkPlan:
        """The plan :meth:`to_json` wrote."""
        return cls(int(data["frames"]), int(data["first_pts"]), [Chunk(**c) for c in data["chunks"]])


def _packets(path: str | Path) -> tuple[list[int | None], set[int], str, Any]:
    """Every packet's presentation timestamp, the keyframes' ones, the codec and the time base of the
    file's first video stream, read without decoding."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        pts: list[int | None] = []
        keys: set[int] = set()
        for packet in container.demux(stream):
            if not packet.size:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe and packet.pts is not None:
                keys.add(int(packet.pts))
        return pts, keys, str(stream.codec_context.name), stream.time_base
    finally:
        container.close()


def plan_chunks(path: str | Path, size: int, settings: Settings) -> ChunkPlan | None:
    """Cut ``path`` into parts of at least ``size`` decoded frames, each starting at a keyframe.

    Returns:
        The plan, or ``None`` when the file is ingested in one part: it has at most ``size``
        frames or no keyframe to cut at, its codec is not in :data:`CHUNK_CODECS`, or a packet
        lacks a timestamp.

    Raises:
        VideoDecodeError: If the file is not a readable video container.
    """
    raw, keys, codec, time_base = _packets(path)
    if codec not in CHUNK_CODECS or len(raw) <= size or time_base is None or any(p is None for p in raw):
        return None
    pts = sorted(int(p) for p in raw if p is not None)
    if len(set(pts)) != len(pts):
        return None
    cuts = [0]
    for i, p in enumerate(pts):
        if p in keys and i - cuts[-1] >= size:
            cuts.append(i)
    if len(cuts) == 1:
        return None
    # the sampler decides frame by frame on the timestamps; its state at each cut lets a part decide
    # as the whole file's sampler would
    sampler = FrameSampler(stride=settings.sample_stride, fps=settings.sample_fps or None)
    resume: dict[int, float | None] = {}
    at = set(cuts)
    for i, p in enumerate(pts):
        if i in at:
            resume[i] = sampler.next_time
        sampler.keep(i, float((p - pts[0]) * time_base))
    bounds = [*cuts, len(pts)]
    chunks = [
        Chunk(a, b, pts[a], pts[b] if b < len(pts) else None, resume[a]) for a, b in itertools.pairwise(bounds)
    ]
    return ChunkPlan(len(pts), pts[0], chunks)


def _part_file(staging: Path, first: int) -> Path:
    return staging / f"part-{first:09d}.npz"


def ingest_chunk(
    path: str | Path,
    plan: ChunkPlan,
    chunk: Chunk,
    staging: Path,
    settings: Settings,
    *,
    backbone: Backbone | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
) -> dict[str, Any]:
    """Decode, sample, encode and embed one part of ``path``; its JPEGs go to ``staging/frames`` and
    its rows, embeddings and shot scores to a file in ``staging`` that :func:`commit_chunks` reads.

    Returns:
        ``first``, ``stop`` and ``frames`` (sampled frames written).

    Raises:
        VideoDecodeError: If the file is not a decodable video or is corrupt in this part.
        ChunkMismatch: If the part decoded other frames than ``chunk`` says.
        Cancelled: If ``cancel`` asked to stop.
    """
    path = Path(path)
    info = probe(path)
    size = output_size(info.width, info.height, settings.max_side)
    sampler = FrameSampler(stride=settings.sample_stride, fps=settings.sample_fps or None, resume=chunk.resume)
    detector = ShotDetector(info.fps, settings.shot_threshold, settings.shot_min_len, record=True)
    stats = _DecodeStats(decoded=chunk.first)
    frames_dir = staging / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    stager = _FrameStager(frames_dir, chunk.stop - chunk.first, progress, cancel, first=chunk.first)
    decoded = iter_frames_from(path, chunk.first, chunk.start_pts, chunk.stop_pts, plan.first_pts)
    produced = _produce(path, decoded, sampler, detector, size, stats, settings.jpeg_quality, end=chunk.stop)
    vectors = _drain(stager.stage(produced), backbone, settings.embed_batch_size)
    if stats.decoded != chunk.stop or stats.past_end != (chunk.stop_pts is not None):
        raise ChunkMismatch(
            f"{path}: frames {chunk.first}..{chunk.stop} of the plan, decoded up to {stats.decoded} after seeking"
        )
    assert detector.scores is not None
    # a part's first frame has nothing before it to be scored against, except the file's first
    scores = [(i, s) for i, s in detector.scores if i > chunk.first or chunk.first == 0]
    np.savez(
        _part_file(staging, chunk.first),
        rows=np.array(json.dumps(stager.rows)),
        vectors=np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32),
        score_index=np.array([i for i, _ in scores], dtype=np.int64),
        score=np.array([s for _, s in scores], dtype=np.float64),
    )
    return {"first": chunk.first, "stop": chunk.stop, "frames": len(stager.rows)}


def commit_chunks(
    workspace: Workspace,
    project_id: int,
    path: str | Path,
    plan: ChunkPlan,
    staging: Path,
    *,
    content_hash: str,
    info: VideoInfo | None = None,
    settings: Settings | None = None,
    filename: str | None = None,
    backbone: str | None = None,
) -> IngestResult:
    """Store a file that :func:`ingest_chunk` ingested in parts (every part done) as one video.

    Shots are decided over the whole file's scores; rows, JPEGs and embeddings (with ``backbone``,
    the name the parts embedded with) go in one transaction, as
    :func:`curator.ingest.pipeline.ingest_video` stores them. ``staging`` is removed.

    Raises:
        VideoDecodeError: If the parts' frames do not cover the file.
    """
    settings = settings or workspace.settings
    path = Path(path)
    info = info or probe(path)
    try:
        rows: list[dict[str, Any]] = []
        vectors: list[np.ndarray] = []
        scores = np.full(plan.frames, np.nan)
        scores[0] = 0.0
        for chunk in plan.chunks:
            with np.load(_part_file(staging, chunk.first)) as part:
                rows.extend(json.loads(str(part["rows"])))
                if backbone is not None and len(part["vectors"]):
                    vectors.append(part["vectors"])
                index = part["score_index"]
                scores[index[index < plan.frames]] = part["score"][index < plan.frames]
        if np.isnan(scores).any():
            raise VideoDecodeError(f"{path}: the parts left frames {np.flatnonzero(np.isnan(scores))[:5].tolist()} unscored")
        detector = ShotDetector(info.fps, settings.shot_threshold, settings.shot_min_len)
        for i, score in enumerate(scores.tolist()):
            detector.decide(i, score)
        stats = _DecodeStats(decoded=plan.frames, shots=detector.finish(plan.frames))
        _check_complete(path, info, rows, stats)
        embedded = np.concatenate(vectors) if backbone is not None and vectors else None
        if embedded is not None and len(embedded) != len(rows):
            raise VideoDecodeError(f"{path}: {len(embedded)} embeddings for {len(rows)} frames")
        try:
            result = _commit(
                workspace, project_id, path, filename, info, content_hash, settings, stats, rows, embedded,
                backbone if embedded is not None else None, staging / "frames",
            )
        except IntegrityError:
            # another ingest of the same file won the race: that one is the video
            existing = _already_ingested(workspace, project_id, content_hash)
            assert existing is not None
            return existing
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if embedded is not None and backbone is not None:
        from curator.index.project import sync_project_index

        sync_project_index(workspace, project_id, backbone)
    return result
