"""``curator bench ingest``: bare decoding, decode-stage, embed-only and full-pipeline throughput, in one run.

The bare decode is PyAV alone on the same file with FFmpeg's threads (``thread_type="AUTO"``),
every frame decoded and dropped: the ceiling of the decode stage on this machine
(``bare_decode_fps``). The decode stage is everything but the model, as ingest runs it
(:func:`curator.ingest.pipeline._produce`): decoding, shot detection, conversion to RGB at the
stored size, JPEG encoding and hashing; ``decode_vs_bare`` is its rate over the bare decode's. The
two take turns (``repeats`` each) so that the machine's other load weighs on both alike. The embed
stage is the model alone on already-decoded frames. The full pipeline is the real
:func:`curator.ingest.ingest_video` (decode stage, sampling, JPEG writes, database rows, embedding,
index) into a throw-away home. The decode stage runs in a producer thread while the model runs, so
the pipeline should approach the slower of the two stages; ``pipeline_vs_slower_stage`` is that
ratio. Resident memory is sampled every 20 ms; RSS at a quarter of the frames against RSS at the end
shows whether memory grows with video length.
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import psutil
from av.video.reformatter import VideoReformatter

from curator.config import load_settings
from curator.embed.base import Backbone
from curator.embed.runner import batched
from curator.ingest import ingest_video, iter_frames, probe
from curator.ingest.pipeline import ENCODE_WORKERS, SHOT_WIDTH, _DecodeStats, _produce, output_size
from curator.ingest.sample import FrameSampler
from curator.ingest.shots import ShotDetector
from curator.store import repo
from curator.workspace import Workspace

MB = 1024 * 1024


class RssSampler:
    """Samples this process's resident set size in a background thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._process = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self.interval)

    def now(self) -> int:
        """Current RSS in bytes."""
        rss = int(self._process.memory_info().rss)
        self.peak = max(self.peak, rss)
        return rss

    def __enter__(self) -> RssSampler:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class _Turns:
    """Bare decoding and the decode stage, measured in turns: wall and CPU seconds of each in all."""

    frames: int = 0
    bare_s: float = 0.0
    bare_cpu_s: float = 0.0
    stage_s: float = 0.0
    stage_cpu_s: float = 0.0
    stage_peak_rss: int = 0


def _bare_decode(video: Path) -> tuple[int, float, float]:
    """Frames decoded, seconds and CPU seconds taken by PyAV alone, FFmpeg's threads on, frames dropped."""
    start, cpu = time.perf_counter(), time.process_time()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = sum(1 for _ in container.decode(stream))
    return frames, time.perf_counter() - start, time.process_time() - cpu


def _decode_stage(
    video: Path, size: tuple[int, int], fps: float, jpeg_quality: int
) -> tuple[int, float, float, int]:
    """The ingest pipeline's own decode stage, every frame kept: frames, seconds, CPU seconds, peak RSS."""
    stats = _DecodeStats()
    with RssSampler() as rss:
        start, cpu = time.perf_counter(), time.process_time()
        for _item in _produce(video, iter_frames(video), FrameSampler(), ShotDetector(fps), size, stats, jpeg_quality):
            pass
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return stats.decoded, seconds, cpu, rss.peak


def _decode_turns(video: Path, size: tuple[int, int], fps: float, jpeg_quality: int, repeats: int) -> _Turns:
    """Bare decode and decode stage, ``repeats`` turns each, alternating."""
    turns = _Turns()
    for _ in range(repeats):
        _, seconds, cpu = _bare_decode(video)
        turns.bare_s += seconds
        turns.bare_cpu_s += cpu
        turns.frames, seconds, cpu, rss = _decode_stage(video, size, fps, jpeg_quality)
        turns.stage_s += seconds
        turns.stage_cpu_s += cpu
        turns.stage_peak_rss = max(turns.stage_peak_rss, rss)
    return turns


class _Stopwatch:
    """CPU seconds spent between calls of :meth:`lap`, added up by name."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.spent = dict.fromkeys(names, 0.0)
        self.clock = time.process_time()

    def lap(self, name: str) -> None:
        """Charge the CPU time since the last lap to ``name``."""
        now = time.process_time()
        self.spent[name] += now - self.clock
        self.clock = now


def _stage_parts(video: Path, size: tuple[int, int], jpeg_quality: int, frames: int = 24) -> dict[str, float]:
    """CPU milliseconds a frame of each part of the decode stage, run one after another on the first
    ``frames`` frames (the stage runs them in parallel; this shows what each costs)."""
    width, height = size
    params = [int(cv2.IMWRITE_JPEG_QUALITY), jpeg_quality]
    shots, full = VideoReformatter(), VideoReformatter()
    watch = _Stopwatch(("decode", "shot_copy", "rgb", "jpeg", "hash"))
    done = 0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1  # decoding in this thread, so its CPU time is charged to it alone
        watch.lap("decode")
        for frame in container.decode(stream):
            watch.lap("decode")
            shots.reformat(frame, width=SHOT_WIDTH, height=height * SHOT_WIDTH // width, format="bgr24").to_ndarray()
            watch.lap("shot_copy")
            rgb = full.reformat(frame, width=width, height=height, format="rgb24").to_ndarray()
            watch.lap("rgb")
            cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
            watch.lap("jpeg")
            hashlib.blake2b(np.ascontiguousarray(rgb).data, digest_size=16).hexdigest()
            watch.lap("hash")
            done += 1
            if done == frames:
                break
    return {name: round(seconds / max(done, 1) * 1000, 2) for name, seconds in watch.spent.items()}


def _embed_only(
    video: Path, size: tuple[int, int], backbone: Backbone, batch_size: int, n: int
) -> tuple[float, int]:
    width, height = size
    held = 2 * batch_size  # a small decoded buffer, embedded repeatedly until n frames are done
    frames = []
    for decoded in iter_frames(video):
        frames.append(decoded.frame.to_ndarray(format="rgb24", width=width, height=height))
        if len(frames) == held:
            break
    backbone.embed(frames[:2])  # warm-up: first call pays for lazy initialisation
    with RssSampler() as rss:
        start = time.perf_counter()
        done = 0
        while done < n:
            for batch in batched(frames, batch_size):
                take = batch[: n - done]
                backbone.embed(take)
                done += len(take)
                if done >= n:
                    break
        seconds = time.perf_counter() - start
    return seconds, rss.peak


@dataclass
class _Pipeline:
    """The full ingest's measurements."""

    frames: int
    seconds: float
    peak_rss: int
    rss_at_quarter: int
    rss_at_end: int


def _pipeline(video: Path, backbone: Backbone, batch_size: int, max_side: int) -> _Pipeline:
    """Run the real ingest of ``video`` into a throw-away home, sampling memory."""
    with tempfile.TemporaryDirectory(prefix="curator-bench-") as home:
        settings = load_settings(None, home=Path(home), max_side=max_side, embed_batch_size=batch_size)
        workspace = Workspace(settings)
        with workspace.db.session() as session:
            project_id = repo.get_or_create_project(session, "bench").id
        marks: dict[str, int] = {}
        with RssSampler() as rss:

            def progress(stage: str, done: int, total: int | None) -> None:
                if total and "quarter" not in marks and done >= total // 4:
                    marks["quarter"] = rss.now()

            start = time.perf_counter()
            result = ingest_video(
                workspace, project_id, video, backbone=backbone, settings=settings, progress=progress
            )
            seconds = time.perf_counter() - start
            marks["end"] = rss.now()
        workspace.close()
    return _Pipeline(result.frames, seconds, rss.peak, marks.get("quarter", 0), marks["end"])


def bench_ingest(
    video: Path, backbone: Backbone, batch_size: int = 16, max_side: int = 1280, repeats: int = 2
) -> dict[str, Any]:
    """Measure the throughputs on ``video`` with ``backbone``.

    Args:
        video: The video file.
        backbone: The embedding model.
        batch_size: Frames per inference batch.
        max_side: Longer side of stored frames.
        repeats: Turns of bare decoding and of the decode stage (their rates are over all turns).

    Returns:
        A JSON-ready report with frames/s per stage, their ratios and memory figures.
    """
    info = probe(video)
    size = output_size(info.width, info.height, max_side)
    jpeg_quality = load_settings(None).jpeg_quality
    turns = _decode_turns(video, size, info.fps, jpeg_quality, repeats)
    n = turns.frames
    parts = _stage_parts(video, size, jpeg_quality)
    embed_s, embed_peak = _embed_only(video, size, backbone, batch_size, n)
    pipeline = _pipeline(video, backbone, batch_size, max_side)
    bare_fps = repeats * n / turns.bare_s
    decode_fps = repeats * n / turns.stage_s
    embed_fps = n / embed_s
    pipeline_fps = pipeline.frames / pipeline.seconds
    slower = min(decode_fps, embed_fps)
    return {
        "video": str(video),
        "frames": n,
        "frame_size": list(size),
        "backbone": backbone.name,
        "batch_size": batch_size,
        "bare_decode_fps": round(bare_fps, 2),
        "decode_fps": round(decode_fps, 2),
        "decode_vs_bare": round(decode_fps / bare_fps, 3),
        "embed_fps": round(embed_fps, 2),
        "pipeline_fps": round(pipeline_fps, 2),
        "pipeline_vs_slower_stage": round(pipeline_fps / slower, 3),
        "targets": {"decode_vs_bare": 0.5, "pipeline_vs_slower_stage": 0.9},
        "repeats": repeats,
        "encode_workers": ENCODE_WORKERS,
        "cpu_ms_per_frame": {
            "bare_decode": round(turns.bare_cpu_s / (repeats * n) * 1000, 2),
            "decode": round(turns.stage_cpu_s / (repeats * n) * 1000, 2),
            "decode_parts": parts,
        },
        "peak_rss_mb": {
            "decode": round(turns.stage_peak_rss / MB, 1),
            "embed": round(embed_peak / MB, 1),
            "pipeline": round(pipeline.peak_rss / MB, 1),
        },
        "pipeline_rss_mb_at_quarter": round(pipeline.rss_at_quarter / MB, 1),
        "pipeline_rss_mb_at_end": round(pipeline.rss_at_end / MB, 1),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "torch_threads": _torch_threads(),
        },
        "seconds": {
            "bare_decode": round(turns.bare_s, 3),
            "decode": round(turns.stage_s, 3),
            "embed": round(embed_s, 3),
            "pipeline": round(pipeline.seconds, 3),
        },
        "stored_frames": pipeline.frames,
    }


def _torch_threads() -> int | None:
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:  # pragma: no cover
        return None
