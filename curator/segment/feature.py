"""``feature``: click-to-segment by DINOv2 patch affinity, refined to the image's edges. CPU is enough.

The frame's DINOv2 patch features (``patch_tokens`` at ``short_side`` pixels, L2-normalised) are
computed once per image and kept in an LRU cache, so a click after the first costs no encoder pass.
Per click:

1. **Affinity.** Every patch's cosine similarity to the features under the positive clicks (the
   best one) minus its similarity to those under the negative clicks. Before the first negative
   click the reference is a threshold picked per image from the similarities (Otsu's), so the split
   adapts to how alike object and background look.
2. **Probability.** A logistic of that score (``temperature``), plus the current mask as a prior
   (``mask_weight`` logits for or against), plus a bump of ``click_weight`` logits around each click
   that fades over ``click_sigma`` of the frame (a click speaks loudest about its own neighbourhood).
3. **Edges.** The patch-level map is upsampled to a working copy of the frame (``max_side``) and
   refined to the image's edges: by GrabCut (``refine="grabcut"``) started from the map, probable
   foreground above 0.5 and probable background below, definite background far from both, the
   clicks as hard seeds; or by a colour-guided filter of the map (``refine="guided"``); or not at
   all (``"none"``). Only the connected parts that hold a positive click are kept.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from curator.segment import refine
from curator.segment.types import (
    BoxInput,
    Click,
    ClickInput,
    LRUCache,
    Prompt,
    SegmentResult,
    check_prompt,
    image_key,
    register_segmenter,
)

REFINERS = ("grabcut", "guided", "colour", "none")


@dataclass(frozen=True)
class ImageFeatures:
    """Cached per image: the patch grid ``(rows, cols, dim)`` of unit vectors."""

    grid: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the patch grid."""
        return int(self.grid.shape[0]), int(self.grid.shape[1])


def sample_grid(grid: np.ndarray, clicks: Sequence[Click], size: tuple[int, int]) -> np.ndarray:
    """Unit feature vectors under clicks (bilinear in the patch grid): ``(len(clicks), dim)``."""
    rows, cols = grid.shape[:2]
    height, width = size
    out = np.zeros((len(clicks), grid.shape[2]), np.float32)
    for i, c in enumerate(clicks):
        gy = np.clip((c.y + 0.5) * rows / height - 0.5, 0, rows - 1)
        gx = np.clip((c.x + 0.5) * cols / width - 0.5, 0, cols - 1)
        y0, x0 = int(gy), int(gx)
        y1, x1 = min(y0 + 1, rows - 1), min(x0 + 1, cols - 1)
        fy, fx = gy - y0, gx - x0
        v = (
            grid[y0, x0] * (1 - fy) * (1 - fx)
            + grid[y0, x1] * (1 - fy) * fx
            + grid[y1, x0] * fy * (1 - fx)
            + grid[y1, x1] * fy * fx
        )
        out[i] = v / max(float(np.linalg.norm(v)), 1e-6)
    return out


def otsu_threshold(values: np.ndarray, bins: int = 64) -> float:
    """Otsu's threshold of a set of values (the split maximising the between-class variance)."""
    values = values.ravel()
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-6:
        return lo
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * centres)
    between = (mean[-1] * weight / total - mean) ** 2 / np.maximum(weight * (total - weight), 1e-12)
    return float(centres[int(np.argmax(between[:-1]))] + (centres[1] - centres[0]) / 2)


def click_bumps(size: tuple[int, int], clicks: Sequence[Click], sigma: float) -> np.ndarray:
    """Sum over clicks of ``+-exp(-d^2 / 2 sigma^2)`` (``+`` positive, ``-`` negative), ``d`` in pixels."""
    height, width = size
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    out = np.zeros(size, np.float32)
    for c in clicks:
        bump = np.exp(-((ys - c.y) ** 2 + (xs - c.x) ** 2) / (2 * sigma**2))
        out += bump if c.positive else -bump
    return out


@register_segmenter("feature")
@dataclass
class FeatureSegmenter:
    """DINOv2 patch affinity to the clicks, refined to image edges (see the module docstring).

    Attributes:
        checkpoint: DINOv2 weights file (or ``$CURATOR_BACKBONE_CHECKPOINT``, or the hub); ignored
            when ``backbone`` is given.
        backbone: An already-built DINOv2 backbone with ``patch_tokens`` (shares the weights).
        device: ``auto``, ``cpu`` or ``cuda``.
        short_side: Frames go to the encoder with this short side (224 px: a 16-row grid).
        cache_size: Images whose features are kept (LRU).
        temperature: Scale of the similarity score in the logistic (lower is sharper).
        mask_weight: Logits the current mask adds inside it and takes away outside it.
        click_weight: Logits a click adds (positive) or takes away (negative) at its own position.
        click_sigma: How far a click's bump reaches, as a fraction of the frame's longer side.
        refine: ``grabcut``, ``guided`` or ``none`` (see the module docstring).
        max_side: The refinement runs on the frame scaled so its longer side is at most this.
        iterations: GrabCut iterations.
        band: With GrabCut, pixels whose probability is under ``band`` and that lie farther than
            ``margin`` from the probable object are definite background (and left out of the cut).
        margin: Fraction of the working frame's longer side kept around the probable object.
        guided_radius: Guided filter window radius, as a fraction of the working frame's longer side.
        guided_eps: Guided filter regulariser.
        seed_radius: Radius of a click's hard seed, as a fraction of the working frame's longer side.
        focus: With a current mask, change it only around the newest click (the part of the proposed
            change connected to it), refining a window there instead of the whole object.
    """

    name: ClassVar[str] = "feature"
    checkpoint: str | Path | None = None
    backbone: Any = None
    device: str = "auto"
    short_side: int = 224
    cache_size: int = 16
    temperature: float = 0.05
    mask_weight: float = 1.0
    click_weight: float = 2.0
    click_sigma: float = 0.05
    refine: str = "grabcut"
    max_side: int = 480
    iterations: int = 2
    band: float = 0.05
    margin: float = 0.05
    guided_radius: float = 0.02
    guided_eps: float = 1e-3
    seed_radius: float = 0.01
    focus: bool = True
    focus_radius: float = 0.0
    colour_weight: float = 0.5
    cache: LRUCache[ImageFeatures] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.refine not in REFINERS:
            raise ValueError(f"refine must be one of {', '.join(REFINERS)}, got {self.refine!r}")
        self.cache = LRUCache(self.cache_size)
        self._lock = threading.Lock()
        self.encoder_passes = 0

    def _model(self) -> Any:
        if self.backbone is None:
            from curator.embed import create_backbone

            self.backbone = create_backbone("dinov2_vits14", checkpoint=self.checkpoint, device=self.device).backbone
        return self.backbone

    def features(self, image: np.ndarray, key: Hashable | None = None) -> ImageFeatures:
        """The image's patch features, from the cache when ``key`` (default a pixel hash) was seen."""
        from curator.annotate.feature import feature_grid

        key = image_key(image) if key is None else key
        with self._lock:
            found = self.cache.get(key)
        if found is not None:
            return found
        model = self._model()
        patch = int(getattr(model, "patch_size", 14))
        rows, cols = feature_grid(image.shape[:2], self.short_side, patch)
        tokens = model.patch_tokens([image], size=(rows * patch, cols * patch))[0]
        grid = tokens / np.maximum(np.linalg.norm(tokens, axis=-1, keepdims=True), 1e-6)
        feats = ImageFeatures(grid.astype(np.float32))
        with self._lock:
            self.encoder_passes += 1
            self.cache.put(key, feats)
        return feats

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
        prob = self.probability(prompt, self.features(prompt.image, key), work)
        if prob is None:  # only negative clicks and no mask: nothing to segment
            return SegmentResult(np.zeros(size, bool), 1.0)
        clicks = refine.scale_clicks(prompt.clicks, size, work)
        radius = max(1, round(self.seed_radius * max(work)))
        fg_seed, bg_seed = refine.click_disks(work, clicks, radius)
        small = refine.resize_image(prompt.image, work)
        current = None if prompt.mask is None else refine.upscale_mask(prompt.mask.astype(np.float32), work)
        if self.focus and current is not None and current.any() and clicks:
            fg = self._focus(small, prob, current, clicks[-1], fg_seed, bg_seed, radius)
        else:
            fg = self._refine(small, prob, fg_seed, bg_seed, None, None)
            fg = refine.keep_components(fg, fg_seed if fg_seed.any() else prob > 0.5)
        return SegmentResult(refine.upscale_mask(fg, size), refine.crispness(prob))

    def _focus(
        self,
        small: np.ndarray,
        prob: np.ndarray,
        current: np.ndarray,
        newest: Click,
        fg_seed: np.ndarray,
        bg_seed: np.ndarray,
        radius: int,
    ) -> np.ndarray:
        """Change the current mask only where the newest click says so: the part of the proposed change
        connected to the click, refined in a window around it; the rest of the mask stays."""
        proposal = ((prob > 0.5) | fg_seed) & ~bg_seed
        here, _ = refine.click_disks(current.shape, [Click(newest.x, newest.y, True)], radius)
        change = refine.keep_components(proposal ^ current, here)
        if self.focus_radius > 0:
            near, _ = refine.click_disks(current.shape, [Click(newest.x, newest.y, True)], round(self.focus_radius * max(prob.shape)))
            change &= near
        if not (change & here).any():  # the proposal agrees with the mask at the click: flip the seed at least
            change = change | (here & (current != newest.positive))
        reach = max(1, round(self.margin * max(prob.shape)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
        free = cv2.dilate(change.astype(np.uint8), kernel).astype(bool)
        fg = self._refine(small, prob, fg_seed, bg_seed, ~free, current)
        fg = np.where(free, fg, current)
        # only what is connected to the click changes
        return current ^ refine.keep_components(fg ^ current, here | (fg_seed & free))

    def _refine(
        self,
        small: np.ndarray,
        prob: np.ndarray,
        fg_seed: np.ndarray,
        bg_seed: np.ndarray,
        fixed: np.ndarray | None,
        current: np.ndarray | None,
    ) -> np.ndarray:
        """The probability map refined to image edges; ``fixed`` pixels keep ``current``'s value."""
        if self.refine == "grabcut":
            fg = self._grabcut(small, prob, fg_seed, bg_seed, fixed, current)
        elif self.refine in ("guided", "colour"):
            soft = prob
            if self.refine == "colour":
                colour = refine.colour_logit(small, prob)
                if colour is not None:
                    logit = np.log(np.clip(prob, 1e-6, 1 - 1e-6) / np.clip(1 - prob, 1e-6, 1))
                    soft = 1.0 / (1.0 + np.exp(-np.clip(logit + self.colour_weight * colour, -30, 30)))
            radius = max(1, round(self.guided_radius * max(prob.shape)))
            fg = refine.guided_filter(small, soft, radius, self.guided_eps) > 0.5
        else:
            fg = prob > 0.5
        if fixed is not None and current is not None:
            fg = np.where(fixed, current, fg)
        return (fg | fg_seed) & ~bg_seed

    def probability(self, prompt: Prompt, feats: ImageFeatures, work: tuple[int, int]) -> np.ndarray | None:
        """Foreground probability at the working size (None with nothing to segment)."""
        size = prompt.size
        grid = feats.grid
        positives, negatives = prompt.positives, prompt.negatives
        current = prompt.mask if prompt.mask is not None and prompt.mask.any() else None
        if not positives and prompt.box is not None:  # a box alone: its centre stands for the object
            x0, y0, x1, y1 = prompt.box
            positives = [Click((x0 + x1) / 2, (y0 + y1) / 2, True)]
        if not positives and current is None:
            return None
        rows, cols = feats.shape
        pos_feats = sample_grid(grid, positives, size)
        if current is not None:  # the current object's mean feature counts as one more positive
            inside = refine.resize_image(current.astype(np.float32), (rows, cols)) > 0.5
            if inside.any():
                proto = grid[inside].mean(axis=0)
                pos_feats = np.vstack([pos_feats, proto / max(float(np.linalg.norm(proto)), 1e-6)])
        if not len(pos_feats):
            pos_feats = np.zeros((1, grid.shape[2]), np.float32)
        score_pos = (grid @ pos_feats.T).max(axis=-1)
        if negatives:
            score_neg = (grid @ sample_grid(grid, negatives, size).T).max(axis=-1)
        else:
            score_neg = np.full_like(score_pos, otsu_threshold(score_pos))
        logit = refine.resize_soft((score_pos - score_neg) / self.temperature, work)
        if current is not None:
            logit += self.mask_weight * (2.0 * refine.resize_soft(current.astype(np.float32), work) - 1.0)
        if self.click_weight and prompt.clicks:
            sigma = max(self.click_sigma * max(work), 1.0)
            logit += self.click_weight * click_bumps(work, refine.scale_clicks(prompt.clicks, size, work), sigma)
        if prompt.box is not None:
            sy, sx = work[0] / size[0], work[1] / size[1]
            bx0, by0, bx1, by1 = prompt.box
            outside = np.ones(work, bool)
            outside[int(by0 * sy) : int(np.ceil(by1 * sy)), int(bx0 * sx) : int(np.ceil(bx1 * sx))] = False
            logit[outside] = -20.0
        return (1.0 / (1.0 + np.exp(-np.clip(logit, -30, 30)))).astype(np.float32)

    def _grabcut(
        self,
        small: np.ndarray,
        prob: np.ndarray,
        fg_seed: np.ndarray,
        bg_seed: np.ndarray,
        fixed: np.ndarray | None,
        current: np.ndarray | None,
    ) -> np.ndarray:
        """GrabCut started from the probability map, on a crop around the pixels it may change."""
        likely = (prob > 0.5) | fg_seed
        reach = max(1, round(self.margin * max(prob.shape)))
        labels = np.where(likely, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        if fixed is not None and current is not None:
            labels[fixed] = np.where(current[fixed], cv2.GC_FGD, cv2.GC_BGD)
            open_ = ~fixed
        else:
            if not likely.any():
                return likely
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
            open_ = cv2.dilate(likely.astype(np.uint8), kernel).astype(bool)
            labels[~open_ & (prob < self.band)] = cv2.GC_BGD
        labels[bg_seed] = cv2.GC_BGD
        labels[fg_seed] = cv2.GC_FGD
        if not open_.any():
            return labels == cv2.GC_FGD
        rows = np.flatnonzero(open_.any(axis=1))
        cols = np.flatnonzero(open_.any(axis=0))
        y0, y1 = max(rows[0] - reach, 0), min(rows[-1] + reach + 1, prob.shape[0])
        x0, x1 = max(cols[0] - reach, 0), min(cols[-1] + reach + 1, prob.shape[1])
        fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
        cut, _, _ = refine.run_grabcut(small[y0:y1, x0:x1], labels[y0:y1, x0:x1], self.iterations)
        fg[y0:y1, x0:x1] = cut
        return fg
