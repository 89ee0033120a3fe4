"""``feature``: click-to-segment by DINOv2 patch affinity, refined to the image's edges. CPU is enough.

The frame's DINOv2 patch features (``patch_tokens`` at ``short_side`` pixels, L2-normalised) are
computed once per image and kept in an LRU cache, so a click after the first costs no encoder pass.
Per click:

1. **Affinity.** Every patch's cosine similarity to the features under the positive clicks (each
   lowered with the patch's distance from its click, ``pos_decay``: a click on a patch that mixes
   object and background must not light up the whole frame) and to the current mask's mean
   feature, the best of them, minus its similarity to the features under the negative clicks.
   Before the first negative click the reference is a fixed ``threshold`` (0.5).
2. **Probability.** A logistic of that score (``temperature``), plus the current mask as a prior
   (``mask_weight`` logits for or against), plus a bump of ``click_weight`` logits around each click
   that fades over ``click_sigma`` of the frame (a click speaks loudest about its own neighbourhood).
3. **Edges.** The patch-level map is upsampled to a working copy of the frame (``max_side``) and
   refined to the image's edges. ``colour`` (the default) adds the log-ratio of foreground to
   background colour histograms (learned from the pixels the map is sure about) to the logits and
   smooths the result with a colour-guided filter; ``guided`` only filters; ``grabcut`` runs
   OpenCV GrabCut started from the map (probable foreground above 0.5, probable background below,
   definite background far from both) on a crop around the object; ``none`` thresholds the map.
   The clicks are hard seeds, and only the connected parts that hold a positive click or overlap
   the current mask are kept.

The defaults come from ``curator bench segment``'s simulated annotator on DAVIS frames; what was
tried and measured is in ``docs/experiments.md`` (click-to-segment).
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
from curator.segment.cache import EncodingStore, weights_id
from curator.segment.types import (
    BoxInput,
    Click,
    ClickInput,
    LRUCache,
    Prompt,
    SegmentResult,
    check_image,
    check_prompt,
    image_key,
    register_segmenter,
)

REFINERS = ("colour", "guided", "grabcut", "none")


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


def click_similarity(grid: np.ndarray, clicks: Sequence[Click], size: tuple[int, int], decay: float) -> np.ndarray:
    """Per patch, the best cosine similarity to the features under ``clicks``, each lowered by ``decay``
    times the patch's distance from that click (in units of the frame's longer side).

    Returns:
        ``(rows, cols)`` float32; -inf everywhere when there are no clicks.
    """
    rows, cols = grid.shape[:2]
    best = np.full((rows, cols), -np.inf, np.float32)
    if not clicks:
        return best
    sims = grid @ sample_grid(grid, clicks, size).T  # (rows, cols, clicks)
    height, width = size
    ys = (np.arange(rows, dtype=np.float32)[:, None] + 0.5) * height / rows
    xs = (np.arange(cols, dtype=np.float32)[None, :] + 0.5) * width / cols
    for i, c in enumerate(clicks):
        near = sims[..., i]
        if decay:
            near = near - decay * np.sqrt((ys - c.y) ** 2 + (xs - c.x) ** 2) / max(height, width)
        best = np.maximum(best, near)
    return best


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


def sigmoid(logit: np.ndarray) -> np.ndarray:
    """The logistic function, float32, safe for large logits."""
    return (1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))).astype(np.float32)  # type: ignore[no-any-return]


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
        short_side: Frames go to the encoder with this short side (448 px: a 32-row grid).
        cache_size: Images whose features are kept (LRU).
        temperature: Scale of the similarity score in the logistic (lower is sharper).
        mask_weight: Logits the current mask adds inside it and takes away outside it.
        click_weight: Logits a click adds (positive) or takes away (negative) at its own position.
        click_sigma: How far a click's bump reaches, as a fraction of the frame's longer side.
        pos_decay: A positive click's similarity falls by this much per frame's longer side of
            distance from it (distant look-alikes count less).
        neg_decay: The same for negative clicks (a negative click mostly fixes its own surroundings).
        threshold: Before the first negative click, the similarity a patch needs to count as the
            object; ``None`` picks it per image (Otsu's threshold of the similarities).
        refine: ``colour``, ``guided``, ``grabcut`` or ``none`` (see the module docstring).
        colour_weight: With ``colour``, weight of the colour log-likelihood ratio in the logits.
        max_side: The refinement runs on the frame scaled so its longer side is at most this.
        guided_radius: Guided filter window radius, as a fraction of the working frame's longer side.
        guided_eps: Guided filter regulariser.
        iterations: GrabCut iterations.
        band: With GrabCut, pixels whose probability is under ``band`` and that lie farther than
            ``margin`` from the probable object are definite background.
        margin: With GrabCut, fraction of the working frame's longer side kept around the probable
            object (the cut runs on that crop).
        seed_radius: Radius of a click's hard seed, as a fraction of the working frame's longer side.
        store: Encodings on disk (:mod:`curator.segment.cache`), read before and written after an
            encoder pass; ``None`` keeps them in memory only.
    """

    name: ClassVar[str] = "feature"
    checkpoint: str | Path | None = None
    backbone: Any = None
    device: str = "auto"
    short_side: int = 448
    cache_size: int = 16
    temperature: float = 0.05
    mask_weight: float = 1.0
    click_weight: float = 2.0
    click_sigma: float = 0.03
    pos_decay: float = 1.0
    threshold: float | None = 0.5
    neg_decay: float = 0.0
    refine: str = "colour"
    colour_weight: float = 2.0
    max_side: int = 480
    guided_radius: float = 0.02
    guided_eps: float = 1e-3
    iterations: int = 2
    band: float = 0.05
    margin: float = 0.05
    seed_radius: float = 0.01
    store: EncodingStore | None = field(default=None, repr=False)
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

    def encoding_tag(self) -> str:
        """Names this segmenter's encodings on disk: the model's weights and the encoder's input size."""
        model = self._model()  # the weights that actually loaded (a file, or the hub's)
        return f"feature-dinov2_vits14-{weights_id(getattr(model, 'checkpoint', None))}-s{self.short_side}"

    def features(self, image: np.ndarray, key: Hashable | None = None) -> ImageFeatures:
        """The image's patch features: from memory when ``key`` (default a pixel hash) was seen, else
        from :attr:`store`, else one encoder pass (kept in both)."""
        key = image_key(image) if key is None else key
        with self._lock:
            found = self.cache.get(key)
        if found is not None:
            return found
        stored = self.store.get(key) if self.store is not None else None
        if stored is not None and "grid" in stored:
            feats = ImageFeatures(stored["grid"].astype(np.float32))
        else:
            feats = self._encode(image)
            if self.store is not None:
                self.store.put(key, {"grid": feats.grid.astype(np.float16)})
            feats = ImageFeatures(feats.grid.astype(np.float16).astype(np.float32))  # as a reader would see it
        with self._lock:
            self.cache.put(key, feats)
        return feats

    def _encode(self, image: np.ndarray) -> ImageFeatures:
        """One encoder pass: unit-length patch features at :attr:`short_side`."""
        from curator.annotate.feature import feature_grid

        model = self._model()
        patch = int(getattr(model, "patch_size", 14))
        rows, cols = feature_grid(image.shape[:2], self.short_side, patch)
        tokens = model.patch_tokens([image], size=(rows * patch, cols * patch))[0]
        grid = tokens / np.maximum(np.linalg.norm(tokens, axis=-1, keepdims=True), 1e-6)
        with self._lock:
            self.encoder_passes += 1
        return ImageFeatures(grid.astype(np.float32))

    def warm(self, image: np.ndarray, key: Hashable | None = None) -> bool:
        """Make sure the image's features are cached (in memory, and in :attr:`store` when set).

        Returns:
            True if an encoder pass ran, False if they were cached already.
        """
        key = image_key(image) if key is None else key
        with self._lock:
            in_memory = key in self.cache
        if in_memory and (self.store is None or key in self.store):
            return False
        before = self.encoder_passes
        if in_memory and self.store is not None:  # cached here only: put it on disk for other processes
            cached = self.cache.get(key)
            assert cached is not None
            self.store.put(key, {"grid": cached.grid.astype(np.float16)})
            return False
        self.features(check_image(image), key)
        return self.encoder_passes > before

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
            return SegmentResult(np.zeros(size, bool), 1.0, self.name)
        clicks = refine.scale_clicks(prompt.clicks, size, work)
        fg_seed, bg_seed = refine.click_disks(work, clicks, max(1, round(self.seed_radius * max(work))))
        small = refine.resize_image(prompt.image, work)
        if self.refine == "grabcut":
            fg = self._grabcut(small, prob, fg_seed, bg_seed)
        elif self.refine in ("colour", "guided"):
            soft = self._with_colour(small, prob) if self.refine == "colour" else prob
            radius = max(1, round(self.guided_radius * max(work)))
            fg = refine.guided_filter(small, soft, radius, self.guided_eps) > 0.5
        else:
            fg = prob > 0.5
        fg = (fg | fg_seed) & ~bg_seed
        seeds = fg_seed if prompt.mask is None else fg_seed | refine.upscale_mask(prompt.mask.astype(np.float32), work)
        fg = refine.keep_components(fg, seeds if seeds.any() else prob > 0.5)
        return SegmentResult(refine.upscale_mask(fg, size), refine.crispness(prob), self.name)

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
        score_pos = click_similarity(grid, positives, size, self.pos_decay)
        if current is not None:  # the current object's mean feature counts as one more positive
            inside = refine.resize_image(current.astype(np.float32), feats.shape) > 0.5
            if inside.any():
                proto = grid[inside].mean(axis=0)
                score_pos = np.maximum(score_pos, grid @ (proto / max(float(np.linalg.norm(proto)), 1e-6)))
        if negatives:
            score_neg = click_similarity(grid, negatives, size, self.neg_decay)
        else:
            floor = otsu_threshold(score_pos) if self.threshold is None else self.threshold
            score_neg = np.full_like(score_pos, floor)
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
        return sigmoid(logit)

    def _with_colour(self, small: np.ndarray, prob: np.ndarray) -> np.ndarray:
        """``prob`` with the colour log-likelihood ratio of its confident pixels added to its logits."""
        colour = refine.colour_logit(small, prob)
        if colour is None:
            return prob
        logit = np.log(np.clip(prob, 1e-6, 1.0)) - np.log(np.clip(1.0 - prob, 1e-6, 1.0))
        return sigmoid(logit + self.colour_weight * colour)

    def _grabcut(self, small: np.ndarray, prob: np.ndarray, fg_seed: np.ndarray, bg_seed: np.ndarray) -> np.ndarray:
        """GrabCut started from the probability map, on a crop around the probable object."""
        likely = (prob > 0.5) | fg_seed
        if not likely.any():
            return likely
        reach = max(1, round(self.margin * max(prob.shape)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
        near = cv2.dilate(likely.astype(np.uint8), kernel).astype(bool)
        labels = np.where(likely, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        labels[~near & (prob < self.band)] = cv2.GC_BGD
        labels[bg_seed] = cv2.GC_BGD
        labels[fg_seed] = cv2.GC_FGD
        rows = np.flatnonzero(near.any(axis=1))
        cols = np.flatnonzero(near.any(axis=0))
        y0, y1 = max(rows[0] - reach, 0), min(rows[-1] + reach + 1, prob.shape[0])
        x0, x1 = max(cols[0] - reach, 0), min(cols[-1] + reach + 1, prob.shape[1])
        fg = np.zeros(prob.shape, bool)
        cut, _, _ = refine.run_grabcut(small[y0:y1, x0:x1], labels[y0:y1, x0:x1], self.iterations)
        fg[y0:y1, x0:x1] = cut
        return fg
