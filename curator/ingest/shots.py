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

    Args:
        fps: Frame rate, used for PySceneDetect's timecodes.
        threshold: ContentDetector threshold; lower finds more cuts.
        min_len: Minimum shot length in frames.
    """

    def __init__(self, fps: float, threshold: float = 27.0, min_len: int = 15) -> None:
        from scenedetect import ContentDetector

        self.fps = fps if fps > 0 else 25.0
        self._detector = ContentDetector(threshold=threshold, min_scene_len=min_len)
        self._cuts: list[int] = []
        self._last_index = -1

    def push(self, index: int, bgr: np.ndarray) -> None:
        """Feed decoded frame ``index`` (BGR uint8)."""
        from scenedetect.common import FrameTimecode

        cuts = self._detector.process_frame(FrameTimecode(index, fps=self.fps), bgr)
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
