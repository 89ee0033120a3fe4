"""A weight-free embedder for offline quick starts: colour and gradient histograms plus a thumbnail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import cv2
import numpy as np

from curator.embed.base import BACKBONES, l2_normalize


@BACKBONES.register("classic")
class ClassicBackbone:
    """Hand-made global descriptor, each part L2-normalised, then the whole L2-normalised.

    Parts: an HSV colour histogram (``hue_bins x sat_bins x val_bins``), a grid of gradient-orientation
    histograms weighted by magnitude (``grid x grid`` cells of ``orient_bins``), and a small grayscale
    thumbnail with its mean removed. Captures colour, layout and texture well enough to find near
    duplicates and coarse scene changes; it knows nothing of semantics.

    Args:
        hue_bins: Hue bins of the colour histogram.
        sat_bins: Saturation bins.
        val_bins: Value bins.
        grid: Cells per side of the gradient-histogram grid.
        orient_bins: Unsigned orientation bins per cell.
        thumb: Side of the grayscale thumbnail.
        work_side: Images are resized to this square size first, so cost is independent of resolution.
    """

    name: ClassVar[str] = "classic"

    def __init__(
        self,
        hue_bins: int = 12,
        sat_bins: int = 4,
        val_bins: int = 4,
        grid: int = 4,
        orient_bins: int = 8,
        thumb: int = 12,
        work_side: int = 128,
    ) -> None:
        self.hue_bins, self.sat_bins, self.val_bins = hue_bins, sat_bins, val_bins
        self.grid, self.orient_bins, self.thumb, self.work_side = grid, orient_bins, thumb, work_side
        self.dim = hue_bins * sat_bins * val_bins + grid * grid * orient_bins + thumb * thumb

    def _one(self, image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
        small = cv2.resize(image, (self.work_side, self.work_side), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        colour = cv2.calcHist(
            [hsv], [0, 1, 2], None, [self.hue_bins, self.sat_bins, self.val_bins], [0, 180, 0, 256, 0, 256]
        ).ravel()
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        magnitude = np.hypot(gx, gy)
        orientation = (np.arctan2(gy, gx) % np.pi) / np.pi * self.orient_bins
        bins = np.minimum(orientation.astype(np.int64), self.orient_bins - 1)
        cell = self.work_side // self.grid
        grad = np.zeros((self.grid, self.grid, self.orient_bins), dtype=np.float32)
        for r in range(self.grid):
            for c in range(self.grid):
                window = (slice(r * cell, (r + 1) * cell), slice(c * cell, (c + 1) * cell))
                grad[r, c] = np.bincount(
                    bins[window].ravel(), weights=magnitude[window].ravel(), minlength=self.orient_bins
                )
        thumb = cv2.resize(gray, (self.thumb, self.thumb), interpolation=cv2.INTER_AREA).ravel()
        thumb = thumb - thumb.mean()
        parts = [np.sqrt(colour), grad.ravel(), thumb]  # sqrt: Hellinger-style damping of big bins
        return np.concatenate([l2_normalize(p[None])[0] for p in parts])

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Embed a batch of RGB uint8 images into ``(n, dim)`` unit vectors."""
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.stack([self._one(np.asarray(im)) for im in images]))
