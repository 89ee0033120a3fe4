"""``feature``: label propagation by patch-feature affinity with the DINOv2 backbone. CPU is enough.

This is the video-segmentation evaluation of DINO (Caron et al., 2021) and DINOv2: every patch of the
current frame takes the labels of its ``top_k`` most similar patches in a memory made of the keyframe
and the ``n_recent`` most recently propagated frames, weighted by a softmax of the cosine affinities
at temperature ``temperature``, and restricted to a square spatial neighbourhood of ``radius`` patches
(objects move a bounded distance between frames, and the limit stops similar-looking distant regions
from stealing the label). The patch-level labels are upsampled bilinearly to frame size.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from curator.annotate.blend import resize_prob
from curator.annotate.engine import BidirectionalPropagator
from curator.annotate.frames import FrameSource
from curator.annotate.types import register_propagator


def feature_grid(size: tuple[int, int], short_side: int, patch: int) -> tuple[int, int]:
    """Patch grid ``(rows, cols)`` for a frame of ``size`` resized so its short side is ``short_side``."""
    height, width = size
    scale = short_side / min(height, width)
    return max(1, round(height * scale / patch)), max(1, round(width * scale / patch))


def neighbourhood_mask(grid: tuple[int, int], radius: int) -> np.ndarray:
    """``(N, N)`` bool: patch pairs at most ``radius`` patches apart in both axes (all True if radius<=0)."""
    rows, cols = grid
    y, x = np.divmod(np.arange(rows * cols), cols)
    if radius <= 0:
        return np.ones((rows * cols, rows * cols), dtype=bool)
    return (np.abs(y[:, None] - y[None, :]) <= radius) & (np.abs(x[:, None] - x[None, :]) <= radius)


def labels_to_grid(probs: Sequence[np.ndarray], grid: tuple[int, int]) -> np.ndarray:
    """Area-average full-resolution object probabilities onto the patch grid, with background first.

    Returns:
        ``(rows * cols, 1 + objects)`` float32, rows summing to 1.
    """
    rows, cols = grid
    objs = [cv2.resize(p.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA) for p in probs]
    stack = np.stack(objs, axis=-1).reshape(rows * cols, len(objs)) if objs else np.zeros((rows * cols, 0))
    total = stack.sum(axis=1, keepdims=True)
    # Where objects overlap after averaging, rescale so the row stays a distribution.
    stack = np.where(total > 1, stack / np.maximum(total, 1e-6), stack)
    background = 1.0 - stack.sum(axis=1, keepdims=True)
    return np.concatenate([background, stack], axis=1).astype(np.float32)


@dataclass
class PatchFeatures:
    """DINOv2 patch features of frames, L2-normalised per patch, cached on the frame source.

    Attributes:
        checkpoint: DINOv2 weights file (see :func:`curator.embed.create_backbone`); ignored if
            ``backbone`` is given.
        backbone_name: Registered backbone name.
        device: ``auto``, ``cpu`` or ``cuda``.
        short_side: Frames are resized so their short side is about this many pixels (cost grows with
            its square; 336 px gives a 24-row grid with ViT-S/14).
        backbone: An already-built backbone with ``patch_tokens`` (shared with embedding code).
    """

    checkpoint: str | Path | None = None
    backbone_name: str = "dinov2_vits14"
    device: str = "auto"
    short_side: int = 336
    backbone: Any = None

    def _model(self) -> Any:
        if self.backbone is None:
            from curator.embed import create_backbone

            self.backbone = create_backbone(
                self.backbone_name, checkpoint=self.checkpoint, device=self.device
            ).backbone
        return self.backbone

    def grid(self, frames: FrameSource) -> tuple[int, int]:
        """The patch grid used for this video."""
        return feature_grid(frames.size, self.short_side, int(getattr(self._model(), "patch_size", 14)))

    def tag(self, frames: FrameSource) -> str:
        """Names these features in a derived-data store: backbone, its weights, the patch grid."""
        model = self._model()
        return f"patch-{self.backbone_name}-{weights_id(model)}-{self.grid(frames)}"

    def _memo(self, frames: FrameSource, index: int) -> tuple[Any, ...]:
        return ("patch", self.backbone_name, self.grid(frames), index)

    def _compute(self, frames: FrameSource, index: int, keep: bool) -> np.ndarray:
        model = self._model()
        grid = self.grid(frames)
        patch = int(model.patch_size)
        tokens = model.patch_tokens([frames[index]], size=(grid[0] * patch, grid[1] * patch))[0]
        flat = tokens.reshape(grid[0] * grid[1], -1)
        flat = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)
        # kept at half the memory and disk; affinities barely change
        return flat.astype(np.float16 if keep else np.float32)

    def __call__(self, frames: FrameSource, index: int) -> np.ndarray:
        """``(rows * cols, dim)`` float32 unit-norm patch features of frame ``index``.

        Kept (float16) in the frame source's cache or derived-data store when it has one.
        """
        if not frames.keeps_derived:
            return self._compute(frames, index, keep=False)
        value = frames.derived(
            self._memo(frames, index), self.tag(frames), (index,), lambda: self._compute(frames, index, keep=True)
        )
        return np.asarray(value, dtype=np.float32)

    def has(self, frames: FrameSource, index: int) -> bool:
        """Whether frame ``index``'s features are already computed and kept."""
        return frames.is_derived(self._memo(frames, index), self.tag(frames), (index,))


def feature_jobs(
    features: PatchFeatures, frames: FrameSource, chains: Sequence[tuple[int, Sequence[int]]]
) -> list[Callable[[], object]]:
    """Jobs computing the patch features of every frame on ``chains`` (each frame once)."""
    indices = sorted({int(i) for start, order in chains for i in (start, *order)})
    features._model()  # loaded once, before the threads

    def job(index: int) -> None:
        if not features.has(frames, index):
            features(frames, index)

    return [functools.partial(job, i) for i in indices]


def weights_id(model: Any) -> str:
    """A short id of a backbone's weights: its class, and its checkpoint file's name, size and mtime."""
    import hashlib
    import os

    checkpoint = getattr(model, "checkpoint", None) or os.environ.get("CURATOR_BACKBONE_CHECKPOINT")
    text = type(model).__qualname__
    if checkpoint:
        path = Path(checkpoint)
        if path.is_file():
            stat = path.stat()
            text += f":{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
        else:
            text += f":{checkpoint}"
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


@dataclass
class AffinityMemory:
    """Keyframe plus recent frames' patch features and soft labels; predicts labels for a new frame.

    Attributes:
        top_k: Memory patches each query patch takes labels from.
        temperature: Softmax temperature on cosine affinities.
        radius: Spatial neighbourhood limit in patches (0: none).
        n_recent: Recent frames kept besides the keyframe.
    """

    top_k: int = 5
    temperature: float = 0.1
    radius: int = 12
    n_recent: int = 7
    _key: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)
    _recent: deque[tuple[np.ndarray, np.ndarray]] = field(default_factory=deque, init=False, repr=False)
    _near: np.ndarray | None = field(default=None, init=False, repr=False)
    _bias: Any = field(default=None, init=False, repr=False)

    def reset(self, feats: np.ndarray, labels: np.ndarray, grid: tuple[int, int]) -> None:
        """Start from a keyframe's features ``(N, d)`` and labels ``(N, C)``."""
        import torch

        self._key = (feats, labels)
        self._recent = deque(maxlen=max(self.n_recent, 1))
        # Additive bias rather than a boolean mask: one add per query instead of a masked copy.
        near = neighbourhood_mask(grid, self.radius)
        self._near = np.where(near, 0.0, -1e4).astype(np.float32)
        self._bias = torch.from_numpy(np.tile(self._near, (1, 1 + self.n_recent)))

    def push(self, feats: np.ndarray, labels: np.ndarray) -> None:
        """Add a propagated frame to the recent memory (the oldest drops out)."""
        if self.n_recent > 0:
            self._recent.append((feats, labels))

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """Soft labels ``(N, C)`` for query features ``(N, d)``."""
        import torch

        assert self._key is not None and self._near is not None, "call reset() first"
        items = [self._key, *self._recent]
        n = feats.shape[0]
        mem_feats = torch.from_numpy(np.concatenate([f for f, _ in items]))  # (M*N, d)
        mem_labels = torch.from_numpy(np.concatenate([lab for _, lab in items]))  # (M*N, C)
        aff = torch.from_numpy(feats) @ mem_feats.T  # (N, M*N) cosine affinities
        aff += self._bias[:, : len(items) * n]
        k = min(self.top_k, aff.shape[1])
        values, index = aff.topk(k, dim=1)
        weights = torch.softmax(values / self.temperature, dim=1)  # (N, k)
        out = torch.einsum("nk,nkc->nc", weights, mem_labels[index])
        return out.numpy().astype(np.float32)


def grid_to_probs(labels: np.ndarray, grid: tuple[int, int], size: tuple[int, int]) -> list[np.ndarray]:
    """Upsample per-patch soft labels ``(N, 1 + objects)`` to full-frame object probability maps."""
    rows, cols = grid
    maps = labels.reshape(rows, cols, -1)
    return [resize_prob(np.ascontiguousarray(maps[..., c]), size) for c in range(1, maps.shape[-1])]


@register_propagator("feature")
@dataclass
class FeaturePropagator(BidirectionalPropagator):
    """Label propagation by DINOv2 patch-feature affinity (see the module docstring).

    Attributes:
        checkpoint: DINOv2 weights file (or ``$CURATOR_BACKBONE_CHECKPOINT``, or the hub).
        backbone: A built backbone to share (skips loading another copy).
        device: ``auto``, ``cpu`` or ``cuda``.
        short_side: Short side, in pixels, frames are resized to before the backbone.
        top_k: Memory patches each query patch takes labels from.
        temperature: Softmax temperature on cosine affinities.
        radius: Spatial neighbourhood limit in patches.
        n_recent: Recent frames in the memory besides the keyframe.
    """

    name: ClassVar[str] = "feature"
    checkpoint: str | Path | None = None
    backbone: Any = None
    device: str = "auto"
    short_side: int = 336
    top_k: int = 5
    temperature: float = 0.1
    radius: int = 12
    n_recent: int = 7

    def __post_init__(self) -> None:
        self.features = PatchFeatures(
            self.checkpoint, device=self.device, short_side=self.short_side, backbone=self.backbone
        )

    def derived_jobs(self, frames: FrameSource, chains: Sequence[tuple[int, Sequence[int]]]) -> list[Callable[[], object]]:
        """Patch features of every frame on ``chains``."""
        return feature_jobs(self.features, frames, chains)

    def track(
        self, frames: FrameSource, start: int, init: Mapping[int, np.ndarray], order: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Propagate labels patch by patch from ``start`` along ``order`` (see the base class)."""
        objects = list(init)
        grid = self.features.grid(frames)
        memory = AffinityMemory(self.top_k, self.temperature, self.radius, self.n_recent)
        memory.reset(self.features(frames, start), labels_to_grid([init[k] for k in objects], grid), grid)
        for t in order:
            feats = self.features(frames, t)
            labels = memory.predict(feats)
            memory.push(feats, labels)
            probs = grid_to_probs(labels, grid, frames.size)
            yield t, dict(zip(objects, probs, strict=True))
