"""``curator bench ingest``: decode-only, embed-only and full-pipeline throughput, in one run.

The decode stage is everything but the model: decoding, shot detection, resizing and JPEG encoding.
The embed stage is the model alone on already-decoded frames. The full pipeline is the real :func:`curator.ingest.ingest_video` (decode, shot detection,
sampling, JPEG writes, database rows, embedding, index) into a throw-away home. Decoding runs in a
producer thread while the model runs, so the pipeline should approach the slower of the two stages;
``pipeline_vs_slower_stage`` is that ratio. Resident memory is sampled every 20 ms; RSS at a quarter
of the frames against RSS at the end shows whether memory grows with video length.
"""

from __future__ import annotations

import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import psutil

from curator.config import load_settings
from curator.embed.base import Backbone
from curator.embed.runner import batched
from curator.ingest import ingest_video, iter_frames, probe
from curator.ingest.pipeline import _DecodeStats, _produce, output_size
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


def _decode_only(video: Path, size: tuple[int, int], fps: float) -> tuple[int, float, int]:
    # the ingest pipeline's own producer (decode, shot detection, resize), every frame kept, plus the
    # JPEG encoding it does per frame: everything but the model
    stats = _DecodeStats()
    params = [int(cv2.IMWRITE_JPEG_QUALITY), 90]
    with RssSampler() as rss:
        start = time.perf_counter()
        for item in _produce(video, FrameSampler(), ShotDetector(fps), size, stats):
            cv2.imencode(".jpg", cv2.cvtColor(item.rgb, cv2.COLOR_RGB2BGR), params)
        seconds = time.perf_counter() - start
    return stats.decoded, seconds, rss.peak


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


def bench_ingest(
    video: Path, backbone: Backbone, batch_size: int = 16, max_side: int = 1280
) -> dict[str, Any]:
    """Measure the three throughputs on ``video`` with ``backbone``.

    Returns:
        A JSON-ready report with frames/s per stage, their ratio and memory figures.
    """
    info = probe(video)
    size = output_size(info.width, info.height, max_side)
    n, decode_s, decode_peak = _decode_only(video, size, info.fps)
    embed_s, embed_peak = _embed_only(video, size, backbone, batch_size, n)

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
            pipeline_s = time.perf_counter() - start
            marks["end"] = rss.now()
        workspace.close()

    decode_fps = n / decode_s
    embed_fps = n / embed_s
    pipeline_fps = result.frames / pipeline_s
    slower = min(decode_fps, embed_fps)
    return {
        "video": str(video),
        "frames": n,
        "frame_size": list(size),
        "backbone": backbone.name,
        "batch_size": batch_size,
        "decode_fps": round(decode_fps, 2),
        "embed_fps": round(embed_fps, 2),
        "pipeline_fps": round(pipeline_fps, 2),
        "pipeline_vs_slower_stage": round(pipeline_fps / slower, 3),
        "target_ratio": 0.8,
        "peak_rss_mb": {
            "decode": round(decode_peak / MB, 1),
            "embed": round(embed_peak / MB, 1),
            "pipeline": round(rss.peak / MB, 1),
        },
        "pipeline_rss_mb_at_quarter": round(marks.get("quarter", 0) / MB, 1),
        "pipeline_rss_mb_at_end": round(marks["end"] / MB, 1),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "torch_threads": _torch_threads(),
        },
        "seconds": {
            "decode": round(decode_s, 3),
            "embed": round(embed_s, 3),
            "pipeline": round(pipeline_s, 3),
        },
        "stored_frames": result.frames,
    }


def _torch_threads() -> int | None:
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:  # pragma: no cover
        return None
