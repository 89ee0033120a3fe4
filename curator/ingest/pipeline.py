"""Ingest one video: decode (streaming), detect shots, sample, store JPEGs and rows, embed, index.

Decoding, shot detection, sampling and JPEG encoding run in a producer thread; the caller's thread
runs the embedding model on batches, so decoding overlaps inference and memory holds at most a
bounded queue of frames. Everything is written to a staging folder and a single database
transaction; a failure part way removes the staging folder and rolls back, so a corrupt file
stores nothing.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curator.config import Settings
from curator.embed.base import Backbone
from curator.embed.runner import Prefetcher, embed_stream
from curator.ingest.decode import VideoDecodeError, VideoInfo, file_sha256, iter_frames, probe
from curator.ingest.sample import FrameSampler
from curator.ingest.shots import ShotDetector, ShotSpan
from curator.progress import CancelCheck, ProgressCallback, check_cancel, no_progress
from curator.store import repo
from curator.store.models import Frame, Shot, Video
from curator.workspace import Workspace

SHOT_WIDTH = 256  # shot detection runs on copies this wide


@dataclass
class IngestResult:
    """Outcome of ingesting one file.

    Attributes:
        video_id: Database id of the video (new or the one already there).
        created: False when the same file was already ingested into the project (a no-op).
        frames: Candidate frames stored for the video.
        decoded_frames: Frames decoded from the file (0 for a no-op).
        shots: Shots found.
        embedded: Frames embedded during this ingest.
        backbone: Backbone used for embeddings, if any.
    """

    video_id: int
    created: bool
    frames: int
    decoded_frames: int = 0
    shots: int = 0
    embedded: int = 0
    backbone: str | None = None


@dataclass
class _Sampled:
    index: int
    timestamp: float
    rgb: np.ndarray


@dataclass
class _DecodeStats:
    decoded: int = 0
    shots: list[ShotSpan] = field(default_factory=list)


def output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Stored frame size: scaled so the longer side is at most ``max_side`` (0 keeps it), even sides."""
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = round(width * scale), round(height * scale)
    return max(2, width - width % 2), max(2, height - height % 2)


def _produce(
    path: Path, sampler: FrameSampler, detector: ShotDetector, size: tuple[int, int], stats: _DecodeStats
) -> Iterator[_Sampled]:
    width, height = size
    shot_height = max(2, round(SHOT_WIDTH * height / width) // 2 * 2)
    for decoded in iter_frames(path):
        frame = decoded.frame
        detector.push(decoded.index, frame.to_ndarray(format="bgr24", width=SHOT_WIDTH, height=shot_height))
        stats.decoded = decoded.index + 1
        if sampler.keep(decoded.index, decoded.timestamp):
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
            yield _Sampled(decoded.index, decoded.timestamp, rgb)
    stats.shots = detector.finish(stats.decoded)


def _already_ingested(workspace: Workspace, project_id: int, content_hash: str) -> IngestResult | None:
    """The no-op result for a file whose content the project already holds, else ``None``."""
    with workspace.db.session() as session:
        video = repo.find_video_by_hash(session, project_id, content_hash)
        if video is None:
            return None
        count = session.scalar(select(func.count(Frame.id)).where(Frame.video_id == video.id)) or 0
        return IngestResult(video.id, created=False, frames=int(count))


class _FrameStager:
    """Writes sampled frames to the staging folder as JPEGs and records a row for each.

    Its :meth:`stage` runs in the producer thread: decoding, shot detection, resizing and JPEG
    encoding all happen there (they release the GIL), leaving the consumer thread to the model.

    Args:
        path: The video file (named in errors).
        staging: Folder the JPEGs go to.
        jpeg_quality: OpenCV JPEG quality.
        total: Frame count for progress (``None`` when unknown).
        progress: Called with ``("ingest", done_frames, total)`` after each stored frame.
        cancel: Checked before each frame.
    """

    def __init__(
        self,
        path: Path,
        staging: Path,
        jpeg_quality: int,
        total: int | None,
        progress: ProgressCallback,
        cancel: CancelCheck | None,
    ) -> None:
        self.path = path
        self.staging = staging
        self.params = [int(cv2.IMWRITE_JPEG_QUALITY), jpeg_quality]
        self.total = total
        self.progress = progress
        self.cancel = cancel
        self.rows: list[dict[str, Any]] = []

    def stage(self, items: Iterator[_Sampled]) -> Iterator[tuple[int, np.ndarray]]:
        """Store each sampled frame; yields ``(row position, rgb)`` for the embedder."""
        for item in items:
            check_cancel(self.cancel)
            self.rows.append(self._write(item))
            self.progress("ingest", item.index + 1, self.total)
            yield len(self.rows) - 1, item.rgb

    def _write(self, item: _Sampled) -> dict[str, Any]:
        name = f"{item.index:07d}.jpg"
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(item.rgb, cv2.COLOR_RGB2BGR), self.params)
        if not ok:
            raise VideoDecodeError(f"{self.path}: could not encode frame {item.index} as JPEG")
        (self.staging / name).write_bytes(buf.tobytes())
        return {
            "frame_index": item.index,
            "timestamp": item.timestamp,
            "width": item.rgb.shape[1],
            "height": item.rgb.shape[0],
            "content_hash": hashlib.blake2b(item.rgb.tobytes(), digest_size=16).hexdigest(),
            "name": name,
        }


def _drain(frames: Iterator[tuple[int, np.ndarray]], backbone: Backbone | None, batch_size: int) -> list[np.ndarray]:
    """Run ``frames`` to the end: through the model when there is one, else through a prefetch thread.

    Returns:
        The embedding batches in order (empty without a backbone).
    """
    vectors: list[np.ndarray] = []
    if backbone is not None:
        for _keys, batch_vectors in embed_stream(backbone, frames, batch_size):
            vectors.append(batch_vectors)
    else:
        for _ in Prefetcher(frames, maxsize=batch_size * 2):
            pass
    return vectors


def _check_complete(path: Path, info: VideoInfo, rows: list[dict[str, Any]], stats: _DecodeStats) -> None:
    """Raise :class:`VideoDecodeError` unless frames were stored and (nearly) all of the file decoded."""
    if not rows:
        raise VideoDecodeError(f"{path}: no frames could be decoded")
    if info.frame_count and stats.decoded < 0.95 * info.frame_count:
        raise VideoDecodeError(
            f"{path}: truncated or corrupt, decoded {stats.decoded} of {info.frame_count} frames"
        )


def ingest_video(
    workspace: Workspace,
    project_id: int,
    path: str | Path,
    *,
    backbone: Backbone | None = None,
    settings: Settings | None = None,
    filename: str | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
) -> IngestResult:
    """Ingest ``path`` into a project.

    Args:
        workspace: Where rows and blobs go.
        project_id: Target project.
        path: A video file in any container PyAV reads.
        backbone: When given, sampled frames are embedded on the way and added to the project index.
        settings: Sampling and storage settings (defaults to the workspace's).
        filename: Name to record (defaults to the file's name); never used as a path.
        progress: Called with ``("ingest", done_frames, total_frames)``.
        cancel: Checked between frames; when it returns True, ingest stops and stores nothing.

    Returns:
        What was stored; ``created`` is False if the file's content was ingested before.

    Raises:
        VideoDecodeError: If the file is not a decodable video, or is truncated or corrupt.
        Cancelled: If ``cancel`` asked to stop.
    """
    settings = settings or workspace.settings
    path = Path(path)
    info = probe(path)
    content_hash = file_sha256(path)
    existing = _already_ingested(workspace, project_id, content_hash)
    if existing is not None:
        return existing

    size = output_size(info.width, info.height, settings.max_side)
    sampler = FrameSampler(stride=settings.sample_stride, fps=settings.sample_fps or None)
    detector = ShotDetector(info.fps, settings.shot_threshold, settings.shot_min_len)
    stats = _DecodeStats()
    staging = workspace.blobs.staging_dir("ingest-")
    stager = _FrameStager(path, staging, settings.jpeg_quality, info.frame_count or None, progress, cancel)
    try:
        frames = stager.stage(_produce(path, sampler, detector, size, stats))
        vectors = _drain(frames, backbone, settings.embed_batch_size)
        _check_complete(path, info, stager.rows, stats)
        progress("ingest", stats.decoded, stats.decoded)
        result = _commit(
            workspace,
            project_id,
            path,
            filename,
            info,
            content_hash,
            settings,
            stats,
            stager.rows,
            np.concatenate(vectors) if vectors else None,
            backbone,
            staging,
        )
    except IntegrityError:
        # another ingest of the same file won the race: that one is the video
        shutil.rmtree(staging, ignore_errors=True)
        existing = _already_ingested(workspace, project_id, content_hash)
        assert existing is not None
        return existing
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if backbone is not None:
        from curator.index.project import sync_project_index

        sync_project_index(workspace, project_id, backbone.name)
    return result


def _video_row(
    project_id: int,
    path: Path,
    filename: str | None,
    info: VideoInfo,
    content_hash: str,
    settings: Settings,
    decoded: int,
    fps: float,
) -> Video:
    """The new video's row (not yet added to a session)."""
    return Video(
        project_id=project_id,
        filename=filename or path.name,
        source_path=str(path.resolve()),
        content_hash=content_hash,
        size_bytes=path.stat().st_size,
        codec=info.codec,
        fps=fps,
        width=info.width,
        height=info.height,
        duration=info.duration or decoded / fps,
        decoded_frames=decoded,
        sample_fps=settings.sample_fps,
        sample_stride=settings.sample_stride,
    )


def _add_shots(session: Session, video_id: int, spans: list[ShotSpan], fps: float) -> list[Shot]:
    """Add and flush the video's shots, in order (so their ids are set)."""
    shots = [
        Shot(
            video_id=video_id,
            index=i,
            start_frame=span.start,
            end_frame=span.end,
            start_time=span.start / fps,
            end_time=span.end / fps,
        )
        for i, span in enumerate(spans)
    ]
    session.add_all(shots)
    session.flush()
    return shots


def _add_frames(
    session: Session, video_id: int, shots: list[Shot], rows: list[dict[str, Any]], final_dir: str
) -> list[Frame]:
    """Add and flush a frame row per staged frame, each in the shot that contains it."""
    starts = np.array([s.start_frame for s in shots])
    frames = []
    for row in rows:
        shot = shots[int(np.searchsorted(starts, row["frame_index"], side="right")) - 1]
        frames.append(
            Frame(
                video_id=video_id,
                shot_id=shot.id,
                frame_index=row["frame_index"],
                timestamp=row["timestamp"],
                width=row["width"],
                height=row["height"],
                content_hash=row["content_hash"],
                blob_path=f"{final_dir}/{row['name']}",
            )
        )
    session.add_all(frames)
    session.flush()
    return frames


def _commit(
    workspace: Workspace,
    project_id: int,
    path: Path,
    filename: str | None,
    info: VideoInfo,
    content_hash: str,
    settings: Settings,
    stats: _DecodeStats,
    rows: list[dict[str, Any]],
    vectors: np.ndarray | None,
    backbone: Backbone | None,
    staging: Path,
) -> IngestResult:
    """Store the video, its shots, frames and embeddings in one transaction and move the JPEGs in.

    The frames folder is moved into place before the transaction commits; if anything fails, it is
    removed again, so the blobs never outlive their rows.
    """
    fps = info.fps or 25.0
    final_dir: str | None = None
    try:
        with workspace.db.session() as session:
            video = _video_row(project_id, path, filename, info, content_hash, settings, stats.decoded, fps)
            session.add(video)
            session.flush()
            final_dir = f"projects/{project_id}/videos/{video.id}/frames"
            shots = _add_shots(session, video.id, stats.shots, fps)
            frames = _add_frames(session, video.id, shots, rows, final_dir)
            if vectors is not None and backbone is not None:
                repo.put_embeddings(session, np.array([f.id for f in frames]), vectors, backbone.name)
            workspace.blobs.commit_dir(staging, final_dir)
            return IngestResult(
                video_id=video.id,
                created=True,
                frames=len(frames),
                decoded_frames=stats.decoded,
                shots=len(shots),
                embedded=0 if vectors is None else len(vectors),
                backbone=backbone.name if backbone is not None and vectors is not None else None,
            )
    except BaseException:
        if final_dir is not None:
            workspace.blobs.remove(final_dir)
        raise
