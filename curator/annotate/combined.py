"""``flow+feature``: optical flow near the keyframes, feature affinity further away (default CPU propagator).

Why a combination: chained optical flow keeps boundaries pixel-sharp but its error accumulates with
every step, so it is excellent a few frames from a keyframe and poor twenty frames away (fast or
articulated motion, occlusion). Feature-affinity label propagation is anchored to the keyframe's
patch features at every step, so it degrades slowly with distance, but it only resolves the object
at patch resolution (about 20 px of a 480p frame). Measured on the DAVIS keyframe benchmark, flow
wins with many keyframes and features with few. Both run here as independent chains from the same
keyframe, and at ``s`` steps from it the output is ``w * p_flow + (1 - w) * p_feature`` with
``w = exp(-s / tau)``: flow's weight decays as its accumulated error grows. The base class then
blends the two directions between keyframes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from curator.annotate.engine import BidirectionalPropagator
from curator.annotate.feature import (
    AffinityMemory,
    PatchFeatures,
    feature_jobs,
    grid_to_probs,
    labels_to_grid,
)
from curator.annotate.flow import FlowField, flow_jobs, sharpen, warp
from curator.annotate.frames import FrameSource
from curator.annotate.types import register_propagator


def flow_weight(steps: int, tau: float) -> float:
    """Weight of the flow chain ``steps`` frames from its keyframe: ``exp(-steps / tau)``."""
    return float(np.exp(-steps / tau)) if tau > 0 else 0.0


@register_propagator("flow+feature")
@dataclass
class FlowFeaturePropagator(BidirectionalPropagator):
    """Chained DIS optical flow and DINOv2 patch-affinity propagation, weighted by distance (module docstring).

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
        flow_finest_scale: DIS pyramid's finest level. 0 (full resolution) raised mean J&F with 8
            uniform keyframes from 0.871 to 0.878 over the preset's level 1 on the DAVIS keyframe
            benchmark, mostly on thin parts (paraglider lines, limbs).
        flow_patch_stride: DIS patch stride (``None``: the preset's, 3). With level 0, stride 2 and
            10 refinement iterations gave 0.880 at 8 keyframes, stride 2 and 20 gave 0.879, and
            stride 1 and 10 (the defaults) 0.882, at about 1.6 times the flow cost of stride 3.
        flow_refinement_iterations: DIS variational refinement iterations (``None``: the preset's, 5).
        sharpen_gain: Logistic sharpening of the flow chain after each step (0 disables it).
        tau: Frames over which the flow chain's weight decays by a factor e. 5 was best of 3, 5, 8 and
            16 on the DAVIS keyframe benchmark with 8 uniform keyframes (0.864, 0.871, 0.868, 0.864);
            with full-resolution flow, 7 gave 0.874 against 0.878 for 5.
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
    flow_finest_scale: int | None = 0
    flow_patch_stride: int | None = 1
    flow_refinement_iterations: int | None = 10
    sharpen_gain: float = 12.0
    tau: float = 5.0

    def __post_init__(self) -> None:
        self.features = PatchFeatures(
            self.checkpoint, device=self.device, short_side=self.short_side, backbone=self.backbone
        )
        self.field = FlowField(
            self.flow_method, self.flow_preset, self.flow_scale, self.flow_finest_scale,
            self.flow_patch_stride, self.flow_refinement_iterations,
        )

    def derived_jobs(self, frames: FrameSource, chains: Sequence[tuple[int, Sequence[int]]]) -> list[Callable[[], object]]:
        """Flow between consecutive frames of every chain and patch features of every frame on one."""
        return flow_jobs(self.field, frames, chains) + feature_jobs(self.features, frames, chains)

    def track(
        self, frames: FrameSource, start: int, init: Mapping[int, np.ndarray], order: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Run the flow and feature chains side by side and weight them by distance (module docstring)."""
        objects = list(init)
        grid = self.features.grid(frames)
        memory = AffinityMemory(self.top_k, self.temperature, self.radius, self.n_recent)
        memory.reset(self.features(frames, start), labels_to_grid([init[k] for k in objects], grid), grid)
        flow_probs = [np.asarray(init[k], dtype=np.float32) for k in objects]
        previous = start
        for steps, t in enumerate(order, start=1):
            maps = self.field.sampling_maps(frames, t, previous)
            flow_probs = [sharpen(warp(p, maps), self.sharpen_gain) for p in flow_probs]
            feats = self.features(frames, t)
            labels = memory.predict(feats)
            memory.push(feats, labels)
            feat_probs = grid_to_probs(labels, grid, frames.size)
            w = flow_weight(steps, self.tau)
            probs = [w * pf + (1.0 - w) * pa for pf, pa in zip(flow_probs, feat_probs, strict=True)]
            previous = t
            yield t, dict(zip(objects, probs, strict=True))
