"""Ingest one video: decode (streaming), detect shots, sample, store JPEGs and rows, embed, index.

The decode stage (:func:`_produce`) keeps every core busy: FFmpeg decodes with its own threads,
a small pool converts each sampled frame to RGB, JPEG-encodes and hashes it, and one more thread
feeds the shot detector, which must see the frames in order; these calls release the GIL. It runs in
a producer thread while the caller's thread runs the embedding model on batches, so decoding
overlaps inference, and memory holds at most a bounded number of frames. Everything is written to a
staging folder and a single database transaction; a failure part way removes the staging folder and
rolls back, so a corrupt file stores nothing.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import threading
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from av.video.reformatter import VideoReformatter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from curator.config import Settings
from curator.embed.base import Backbone
from curator.embed.runner import Prefetcher, embed_stream
from curator.ingest.decode import DecodedFrame, VideoDecodeError, VideoInfo, file_sha256, iter_frames, probe
from curator.ingest.sample import FrameSampler
from curator.ingest.shots import ShotDetector, ShotSpan
from curator.progress import CancelCheck, ProgressCallback, check_cancel, no_progress
from curator.store import repo
from curator.store.models import Frame, Shot, Video
from curator.workspace import Workspace

SHOT_WIDTH = 256  # shot detection runs on copies this wide
#: Threads that convert, JPEG-encode and hash sampled frames beside the decoder's own.
ENCODE_WORKERS = max(2, min(4, os.cpu_count() or 2))


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
    """A sampled frame, ready to store: RGB at the stored size, its JPEG and its content hash."""

    index: int
    timestamp: float
    rgb: np.ndarray
    jpeg: bytes
    content_hash: str


@dataclass
class _DecodeStats:
    decoded: int = 0  # one past the last frame decoded (the file's frame count at the end)
    shots: list[ShotSpan] = field(default_factory=list)
    past_end: bool = False  # a part saw the next part's first frame


def output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Stored frame size: scaled so the longer side is at most ``max_side`` (0 keeps it), even sides."""
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = round(width * scale), round(height * scale)
    return max(2, width - width % 2), max(2, height - height % 2)


class _Encoder:
    """Turns a decoded frame into a :class:`_Sampled`; :meth:`encode` runs in pool threads.

    Each thread keeps its own swscale context (PyAV's ``to_ndarray`` would set one up per frame);
    the conversion, ``cv2.imencode`` and the hash release the GIL.

    Args:
        path: The video file (named in errors).
        size: Stored ``(width, height)``.
        jpeg_quality: OpenCV JPEG quality.
    """

    def __init__(self, path: Path, size: tuple[int, int], jpeg_quality: int) -> None:
        self.path = path
        self.width, self.height = size
        self.params = [int(cv2.IMWRITE_JPEG_QUALITY), jpeg_quality]
        self._local = threading.local()

    def encode(self, decoded: DecodedFrame) -> _Sampled:
        """The frame in RGB, as JPEG bytes and hashed.

        Raises:
            VideoDecodeError: If OpenCV cannot encode it.
        """
        reformatter = getattr(self._local, "reformatter", None)
        if reformatter is None:
            reformatter = self._local.reformatter = VideoReformatter()
        frame = reformatter.reformat(decoded.frame, width=self.width, height=self.height, format="rgb24")
        rgb = frame.to_ndarray()
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), self.params)
        if not ok:
            raise VideoDecodeError(f"{self.path}: could not encode frame {decoded.index} as JPEG")
        digest = hashlib.blake2b(np.ascontiguousarray(rgb).data, digest_size=16).hexdigest()
        return _Sampled(decoded.index, decoded.timestamp, rgb, buf.tobytes(), digest)


class _ShotFeed:
    """Feeds every decoded frame, shrunk to :data:`SHOT_WIDTH`, to the shot detector in a thread of
    its own, in decoding order; at most ``depth`` frames wait for it.

    Args:
        detector: The detector to feed.
        size: Stored ``(width, height)`` (the copies keep its aspect ratio).
        depth: Frames that may wait before :meth:`push` blocks.
    """

    def __init__(self, detector: ShotDetector, size: tuple[int, int], depth: int) -> None:
        width, height = size
        self.detector = detector
        self.height = max(2, round(SHOT_WIDTH * height / width) // 2 * 2)
        self._queue: queue.Queue[DecodedFrame | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="curator-shots", daemon=True)

    def __enter__(self) -> _ShotFeed:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop()

    def push(self, decoded: DecodedFrame) -> None:
        """Queue a frame for the detector.

        Raises:
            BaseException: What the detector raised on an earlier frame.
        """
        if self._error is not None:
            raise self._error
        self._queue.put(decoded)

    def finish(self, n_frames: int) -> list[ShotSpan]:
        """Wait for the queued frames and return the shots of frames ``[0, n_frames)``."""
        self._stop()
        if self._error is not None:
            raise self._error
        return self.detector.finish(n_frames)

    def _run(self) -> None:
        reformatter = VideoReformatter()
        while (decoded := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep taking frames so the producer never blocks on a dead feed
            try:
                small = reformatter.reformat(decoded.frame, width=SHOT_WIDTH, height=self.height, format="bgr24")
                self.detector.push(decoded.index, small.to_ndarray())
            except BaseException as exc:  # handed to the producer at its next push or at finish
                self._error = exc

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def _produce(
    path: Path,
    frames: Iterator[DecodedFrame],
    sampler: FrameSampler,
    detector: ShotDetector,
    size: tuple[int, int],
    stats: _DecodeStats,
    jpeg_quality: int = 90,
    workers: int = ENCODE_WORKERS,
    end: int | None = None,
) -> Generator[_Sampled, None, None]:
    """Yield the sampled ones of the decoded ``frames`` of ``path``, in order, converted, JPEG-encoded
    and hashed.

    Sampling decisions are taken here, in order; conversion and encoding run in ``workers`` pool
    threads and shot detection in a :class:`_ShotFeed`, so this thread does little but hand frames
    on. At most ``2 * workers + 2`` sampled frames are in flight. ``stats`` gets the decoded count as
    it goes and the shots at the end. A part of a file stops at frame ``end`` (the next part's
    first), which the shot detector still sees, to score the step between the parts.
    """
    depth = 2 * workers + 2
    encoder = _Encoder(path, size, jpeg_quality)
    pending: deque[Future[_Sampled]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="curator-encode") as pool, _ShotFeed(
        detector, size, depth
    ) as shots:
        try:
            for decoded in frames:
                shots.push(decoded)
                if end is not None and decoded.index >= end:
                    stats.past_end = True
                    break
                stats.decoded = decoded.index + 1
                if sampler.keep(decoded.index, decoded.timestamp):
                    pending.append(pool.submit(encoder.encode, decoded))
                while len(pending) > depth or (pending and pending[0].done()):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
        stats.shots = shots.finish(stats.decoded)


def _already_ingested(workspace: Workspace, project_id: int, content_hash: str) -> IngestResult | None:
    """The no-op result for a file whose content the project already holds, else ``None``."""
    with workspace.db.session() as session:
        video = repo.find_video_by_hash(session, project_id, content_hash)
        if video is None:
            return None
        count = session.scalar(select(func.count(Frame.id)).where(Frame.video_id == video.id)) or 0
        return IngestResult(video.id, created=False, frames=int(count))


class _FrameStager:
    """Writes sampled frames (encoded by :func:`_produce`) to the staging folder and records a row for
    each; its :meth:`stage` runs in the producer thread, leaving the consumer thread to the model.

    Args:
        staging: Folder the JPEGs go to.
        total: Frame count for progress (``None`` when unknown).
        progress: Called with ``("ingest", done_frames, total)`` after each stored frame.
        cancel: Checked before each frame.
        first: The first frame's index (a part of a file): progress counts from it.
    """

    def __init__(
        self,
        staging: Path,
        total: int | None,
        progress: ProgressCallback,
        cancel: CancelCheck | None,
        first: int = 0,
    ) -> None:
        self.staging = staging
        self.first = first
        self.total = total
        self.progress = progress
        self.cancel = cancel
        self.rows: list[dict[str, Any]] = []

    def stage(self, items: Iterator[_Sampled]) -> Iterator[tuple[int, np.ndarray]]:
        """Store each sampled frame; yields ``(row position, rgb)`` for the embedder."""
        for item in items:
            check_cancel(self.cancel)
            self.rows.append(self._write(item))
            self.progress("ingest", item.index + 1 - self.first, self.total)
            yield len(self.rows) - 1, item.rgb

    def _write(self, item: _Sampled) -> dict[str, Any]:
        name = f"{item.index:07d}.jpg"
        (self.staging / name).write_bytes(item.jpeg)
        return {
            "frame_index": item.index,
            "timestamp": item.timestamp,
            "width": item.rgb.shape[1],
            "height": item.rgb.shape[0],
            "content_hash": item.content_hash,
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
    stager = _FrameStager(staging, info.frame_count or None, progress, cancel)
    try:
        frames = stager.stage(_produce(path, iter_frames(path), sampler, detector, size, stats, settings.jpeg_quality))
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
            backbone.name if backbone is not None else None,
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
    backbone: str | None,
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
                repo.put_embeddings(session, np.array([f.id for f in frames]), vectors, backbone)
            workspace.blobs.commit_dir(staging, final_dir)
            return IngestResult(
                video_id=video.id,
                created=True,
                frames=len(frames),
                decoded_frames=stats.decoded,
                shots=len(shots),
                embedded=0 if vectors is None else len(vectors),
                backbone=backbone if vectors is not None else None,
            )
    except BaseException:
        if final_dir is not None:
            workspace.blobs.remove(final_dir)
        raise
