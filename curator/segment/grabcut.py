"""``grabcut``: plain OpenCV GrabCut driven by clicks; needs no weights (the baseline).

Clicks become hard seeds (disks of ``seed_radius`` pixels: ``GC_FGD`` for positive, ``GC_BGD`` for
negative clicks). The box, or without one the rectangle around the positive clicks and the current
mask grown by ``margin`` of the frame's longer side, bounds the object: outside it is background.
Inside it the current mask starts as probable foreground and the rest as probable background (with
no mask everything inside is probable foreground, GrabCut's own rectangle start). GrabCut runs on a
copy of the frame scaled to ``max_side`` and its mask is upsampled; only the connected parts that hold
a positive click or overlap the current mask are kept.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from curator.segment import refine
from curator.segment.types import (
    BoxInput,
    ClickInput,
    Prompt,
    SegmentResult,
    check_prompt,
    register_segmenter,
)


@register_segmenter("grabcut")
@dataclass
class GrabCutSegmenter:
    """GrabCut with clicks as hard seeds (see the module docstring).

    Attributes:
        max_side: GrabCut runs on the frame scaled so its longer side is at most this (0: full size).
        iterations: GrabCut iterations (colour-model re-estimations) per click.
        margin: Without a box, the rectangle around the clicks and mask grows by this fraction of
            the frame's longer side.
        seed_radius: Radius of a click's hard seed, as a fraction of the working frame's longer side.
        keep_clicked: Keep only the connected parts of the mask that hold a positive click or overlap
            the current mask.
    """

    name: ClassVar[str] = "grabcut"
    max_side: int = 480
    iterations: int = 3
    margin: float = 0.15
    seed_radius: float = 0.01
    keep_clicked: bool = True

    def segment(
        self,
        image: np.ndarray,
        points: Sequence[ClickInput],
        box: BoxInput | None = None,
        mask: np.ndarray | None = None,
        *,
        key: Hashable | None = None,
    ) -> SegmentResult:
        """The object's mask from clicks, a box and the current mask (see :class:`~curator.segment.Segmenter`)."""
        prompt = check_prompt(image, points, box, mask)
        size = prompt.size
        work = refine.working_size(size, self.max_side)
        labels = self.initial_labels(prompt, work)
        if labels is None:  # only negative clicks and no mask: nothing to segment
            return SegmentResult(np.zeros(size, bool), 1.0, self.name)
        small = refine.resize_image(prompt.image, work)
        fg, bgd, fgd = refine.run_grabcut(small, labels, self.iterations)
        fg = self._keep(fg, prompt, work)
        prob = refine.colour_posterior(small, bgd, fgd)
        region = labels != cv2.GC_BGD
        score = refine.crispness(prob, region) if prob is not None else 1.0
        return SegmentResult(refine.upscale_mask(fg, size), score, self.name)

    def initial_labels(self, prompt: Prompt, work: tuple[int, int]) -> np.ndarray | None:
        """GrabCut's starting label map at the working size (None when there is nothing to segment)."""
        size = prompt.size
        clicks = refine.scale_clicks(prompt.clicks, size, work)
        current = None if prompt.mask is None else refine.upscale_mask(prompt.mask.astype(np.float32), work)
        if current is not None and not current.any():
            current = None
        positives = [c for c in clicks if c.positive]
        if prompt.box is not None:
            sy, sx = work[0] / size[0], work[1] / size[1]
            x0, y0, x1, y1 = prompt.box
            rect = refine.grow_rect((x0 * sx, y0 * sy, x1 * sx - 1, y1 * sy - 1), 0, work)
        else:
            around = refine.bounding_rect(current, positives)
            if around is None:
                return None
            rect = refine.grow_rect(around, self.margin * max(work), work)
        x0, y0, x1, y1 = rect
        labels = np.full(work, cv2.GC_BGD, np.uint8)
        if current is None:
            labels[y0:y1, x0:x1] = cv2.GC_PR_FGD
        else:
            inside = np.full(work, cv2.GC_PR_BGD, np.uint8)
            inside[current] = cv2.GC_PR_FGD
            labels[y0:y1, x0:x1] = inside[y0:y1, x0:x1]
        fg, bg = refine.click_disks(work, clicks, max(1, round(self.seed_radius * max(work))))
        labels[bg] = cv2.GC_BGD
        labels[fg] = cv2.GC_FGD
        return labels

    def _keep(self, fg: np.ndarray, prompt: Prompt, work: tuple[int, int]) -> np.ndarray:
        if not self.keep_clicked:
            return fg
        clicks = refine.scale_clicks(prompt.positives, prompt.size, work)
        seeds, _ = refine.click_disks(work, clicks, 0)
        if prompt.mask is not None:
            seeds |= refine.upscale_mask(prompt.mask.astype(np.float32), work)
        return refine.keep_components(fg, seeds)
