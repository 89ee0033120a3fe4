"""Shot boundary detection with PySceneDetect, fed frame by frame from the decode loop."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ShotSpan:
    """Frames ``[start, end)`` of one shot, in decoded-frame numbers."""

    start: int
    end: int


class ShotDetector:
    """Streaming wrapper around PySceneDetect's ``ContentDetector``.

    Frames are pushed as small BGR images (the detector compares HSV histograms and edges, so a
    256-pixel-wide copy finds the same cuts at a fraction of the cost) and never kept.

    A file ingested in parts (:mod:`curator.ingest.chunks`) splits the detector's two steps: each
    part only scores its frames against the frame before (``record=True``: :attr:`scores`), and
    :meth:`decide` runs the cut decisions (threshold and minimum shot length) over the whole file's
    scores in order, which gives the cuts that :meth:`push` gives frame by frame.

    Args:
        fps: Frame rate, used for PySceneDetect's timecodes.
        threshold: ContentDetector threshold; lower finds more cuts.
        min_len: Minimum shot length in frames.
        record: Only score the pushed frames (into :attr:`scores`), take no decision.
    """

    def __init__(self, fps: float, threshold: float = 27.0, min_len: int = 15, record: bool = False) -> None:
        from scenedetect import ContentDetector

        self.fps = fps if fps > 0 else 25.0
        self.threshold = threshold
        self._detector = ContentDetector(threshold=threshold, min_scene_len=min_len)
        self._cuts: list[int] = []
        self._last_index = -1
        #: ``(index, score)`` of each pushed frame when recording; a first frame scores 0.
        self.scores: list[tuple[int, float]] | None = [] if record else None

    def push(self, index: int, bgr: np.ndarray) -> None:
        """Feed decoded frame ``index`` (BGR uint8)."""
        from scenedetect.common import FrameTimecode

        # ContentDetector.process_frame is these two steps; they are called apart so that the
        # scores of a file's parts can be decided in one pass (scenedetect is pinned, and
        # tests/test_ingest_chunks.py checks the parts' cuts equal the whole file's)
        score = float(self._detector._calculate_frame_score(FrameTimecode(index, fps=self.fps), bgr))
        if self.scores is not None:
            self.scores.append((index, score))
            return
        self.decide(index, score)

    def decide(self, index: int, score: float) -> None:
        """Take the cut decision for frame ``index`` given its ``score`` (frames in order from 0)."""
        from scenedetect.common import FrameTimecode

        cuts = self._detector._flash_filter.filter(
            timecode=FrameTimecode(index, fps=self.fps), above_threshold=score >= self.threshold
        )
        self._cuts.extend(int(c.frame_num) for c in cuts)
        self._last_index = index

    def finish(self, n_frames: int) -> list[ShotSpan]:
        """Close detection and return the shots covering frames ``[0, n_frames)``."""
        from scenedetect.common import FrameTimecode

        if self._last_index >= 0:
            post = getattr(self._detector, "post_process", None)
            if post is not None:
                self._cuts.extend(
                    int(c.frame_num) for c in post(FrameTimecode(self._last_index, fps=self.fps))
                )
        cuts = sorted({c for c in self._cuts if 0 < c < n_frames})
        bounds = [0, *cuts, n_frames]
        return [ShotSpan(a, b) for a, b in itertools.pairwise(bounds) if b > a]
