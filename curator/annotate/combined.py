"""``flow+feature``: optical-flow warping corrected by DINOv2 feature affinity (the default CPU propagator).

Why a combination: chained optical flow keeps boundaries sharp (pixel-accurate warps) but drifts and
cannot recover once a part of the object is lost or background leaks in; feature affinity knows
*which* patches belong to the object even after large motion and deformation, but only at patch
resolution (14 px of the resized frame, about 20 px of a 480p frame), so its boundaries are blobby.
Each step here warps the previous combined soft mask with the flow, predicts patch labels by
affinity, and lets the features decide wherever they are sure and the flow decide in the band where
the upsampled feature labels are uncertain (near the object's boundary). The combined mask then goes
into the feature memory, so the two stay consistent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from curator.annotate.base import BidirectionalPropagator, FrameSource, register_propagator
from curator.annotate.feature import AffinityMemory, PatchFeatures, grid_to_probs, labels_to_grid
from curator.annotate.flow import FlowField, sharpen, warp


def fuse(p_flow: np.ndarray, p_feat: np.ndarray, mix: float, gamma: float) -> np.ndarray:
    """Fuse a warped soft mask with an upsampled feature soft mask.

    ``u = (1 - |2 p_feat - 1|) ** gamma`` is how unsure the features are (1 on their blurry boundary
    band, 0 where they are certain); the fused mask is ``u * p_flow + (1 - u) * p_feat``, mixed with
    the plain flow mask as ``mix * fused + (1 - mix) * p_flow``.
    """
    unsure = np.clip(1.0 - np.abs(2.0 * p_feat - 1.0), 0.0, 1.0) ** gamma
    fused = unsure * p_flow + (1.0 - unsure) * p_feat
    return (mix * fused + (1.0 - mix) * p_flow).astype(np.float32)


@register_propagator("flow+feature")
@dataclass
class FlowFeaturePropagator(BidirectionalPropagator):
    """Chained DIS optical flow refined by DINOv2 patch-affinity label propagation (module docstring).

    Attributes:
        checkpoint: DINOv2 weights file (or ``$CURATOR_BACKBONE_CHECKPOINT``, or the hub).
        backbone: A built backbone to share.
        device: ``auto``, ``cpu`` or ``cuda``.
        short_side: Short side frames are resized to for the backbone.
        top_k: Memory patches each query patch takes labels from.
        temperature: Softmax temperature on cosine affinities.
        radius: Spatial neighbourhood limit in patches.
        n_recent: Recent frames in the feature memory besides the keyframe.
        flow_method: ``dis`` or ``farneback``.
        flow_preset: DIS preset.
        flow_scale: Resolution factor for computing flow.
        sharpen_gain: Logistic sharpening after each step (0 disables it).
        mix: Weight of the feature correction (0 is plain flow).
        gamma: Exponent on the feature uncertainty; larger narrows the band the flow decides in.
    """

    name: ClassVar[str] = "flow+feature"
    checkpoint: str | Path | None = None
    backbone: Any = None
    device: str = "auto"
    short_side: int = 336
    top_k: int = 5
    temperature: float = 0.1
    radius: int = 12
    n_recent: int = 7
    flow_method: str = "dis"
    flow_preset: str = "medium"
    flow_scale: float = 1.0
    sharpen_gain: float = 12.0
    mix: float = 1.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        self.features = PatchFeatures(self.checkpoint, device=self.device, short_side=self.short_side, backbone=self.backbone)
        self.field = FlowField(self.flow_method, self.flow_preset, self.flow_scale)

    def track(
        self, frames: FrameSource, start: int, init: Mapping[int, np.ndarray], order: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Warp, predict by affinity, fuse, remember; one frame at a time (see the base class)."""
        objects = list(init)
        grid = self.features.grid(frames)
        memory = AffinityMemory(self.top_k, self.temperature, self.radius, self.n_recent)
        memory.reset(self.features(frames, start), labels_to_grid([init[k] for k in objects], grid), grid)
        probs = [np.asarray(init[k], dtype=np.float32) for k in objects]
        previous = start
        for t in order:
            maps = self.field.sampling_maps(frames, t, previous)
            feats = self.features(frames, t)
            feat_probs = grid_to_probs(memory.predict(feats), grid, frames.size)
            probs = [
                sharpen(fuse(warp(p, maps), f, self.mix, self.gamma), self.sharpen_gain)
                for p, f in zip(probs, feat_probs, strict=True)
            ]
            memory.push(feats, labels_to_grid(probs, grid))
            previous = t
            yield t, dict(zip(objects, probs, strict=True))
