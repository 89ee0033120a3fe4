"""``flow``: masks carried frame to frame by OpenCV dense optical flow (DIS or Farneback). CPU, no weights."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from curator.annotate.engine import BidirectionalPropagator
from curator.annotate.frames import FrameSource
from curator.annotate.types import register_propagator

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass
class FlowField:
    """Computes and caches the backward flow ``target -> source`` between neighbouring frames.

    Flow is computed on grayscale frames scaled by ``scale`` (cost falls with the square of it) and
    returned at full resolution as absolute sampling maps for :func:`cv2.remap`.

    Attributes:
        method: ``dis`` or ``farneback``.
        preset: DIS preset (``ultrafast``, ``fast``, ``medium``).
        scale: Resolution factor the flow is computed at.
        finest_scale: Finest level of DIS's image pyramid (0: full resolution; ``None`` keeps the
            preset's, which is 1, half resolution, for ``medium``). Level 0 follows thin and small
            parts that level 1 loses, at about twice the cost.
        patch_stride: DIS patch stride in pixels (``None``: the preset's, 3 for ``medium``).
        refinement_iterations: DIS variational refinement iterations (``None``: the preset's, 5).
    """

    method: str = "dis"
    preset: str = "medium"
    scale: float = 0.5
    finest_scale: int | None = None
    patch_stride: int | None = None
    refinement_iterations: int | None = None

    def __post_init__(self) -> None:
        if self.method not in ("dis", "farneback"):
            raise ValueError(f"flow method must be 'dis' or 'farneback', got {self.method!r}")
        if self.preset not in _DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {sorted(_DIS_PRESETS)}, got {self.preset!r}")
        if self.finest_scale is not None and not 0 <= self.finest_scale <= 4:
            raise ValueError(f"finest_scale must be in 0..4 or None, got {self.finest_scale!r}")
        if self.patch_stride is not None and self.patch_stride < 1:
            raise ValueError(f"patch_stride must be >= 1 or None, got {self.patch_stride!r}")
        if self.refinement_iterations is not None and self.refinement_iterations < 0:
            raise ValueError(f"refinement_iterations must be >= 0 or None, got {self.refinement_iterations!r}")
        # one DIS instance per thread: flows of a video are computed on several threads at once
        self._local = threading.local()

    def tag(self) -> str:
        """Names this flow's method and settings in a derived-data store (OpenCV's version too)."""
        dis = (self.finest_scale, self.patch_stride, self.refinement_iterations)
        return f"flow-{self.method}-{self.preset}-{self.scale}-{dis}-cv{cv2.__version__}"

    def _gray(self, frames: FrameSource, index: int) -> np.ndarray:
        gray = cv2.cvtColor(frames[index], cv2.COLOR_RGB2GRAY)
        if self.scale != 1.0:
            gray = cv2.resize(gray, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        return gray

    def _compute(self, target: np.ndarray, source: np.ndarray) -> np.ndarray:
        if self.method == "dis":
            dis = getattr(self._local, "dis", None)
            if dis is None:
                dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])  # type: ignore[attr-defined]
                if self.finest_scale is not None:
                    dis.setFinestScale(int(self.finest_scale))
                if self.patch_stride is not None:
                    dis.setPatchStride(int(self.patch_stride))
                if self.refinement_iterations is not None:
                    dis.setVariationalRefinementIterations(int(self.refinement_iterations))
                self._local.dis = dis
            return np.asarray(dis.calc(target, source, None))
        farneback: Any = cv2.calcOpticalFlowFarneback  # the stubs reject flow=None, which OpenCV accepts
        return np.asarray(farneback(target, source, None, 0.5, 4, 21, 3, 7, 1.5, 0))

    def _memo(self, target: int, source: int) -> tuple[Any, ...]:
        dis = (self.finest_scale, self.patch_stride, self.refinement_iterations)
        return ("flow", self.method, self.preset, self.scale, dis, target, source)

    def flow(self, frames: FrameSource, target: int, source: int) -> np.ndarray:
        """Flow on the scaled grid such that ``target(x) ~ source(x + flow(x))``.

        Kept (float16) in the frame source's cache or derived-data store when it has one.
        """

        def compute() -> np.ndarray:
            return self._compute(self._gray(frames, target), self._gray(frames, source)).astype(np.float16)

        return frames.derived(self._memo(target, source), self.tag(), (target, source), compute)

    def has_flow(self, frames: FrameSource, target: int, source: int) -> bool:
        """Whether :meth:`flow` would find this flow already computed."""
        return frames.is_derived(self._memo(target, source), self.tag(), (target, source))

    def _full(self, frames: FrameSource, target: int, source: int) -> np.ndarray:
        height, width = frames.size
        flow = self.flow(frames, target, source).astype(np.float32)
        if flow.shape[:2] != (height, width):
            flow = np.asarray(cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR), np.float32)
            flow /= self.scale
        return flow

    def sampling_maps(self, frames: FrameSource, target: int, source: int) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution ``(map_x, map_y)`` that pull ``source`` pixels onto ``target``."""
        height, width = frames.size
        flow = self._full(frames, target, source)
        return flow[..., 0] + np.arange(width, dtype=np.float32), flow[..., 1] + np.arange(height, dtype=np.float32)[:, None]

    def visible(
        self, frames: FrameSource, target: int, source: int, maps: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """Pixels of ``target`` whose flow passes the forward-backward check (Sundaram et al., 2010).

        A pixel whose backward flow and the forward flow at its match do not cancel, within
        ``|w_b + w_f|^2 < 0.01 (|w_b|^2 + |w_f|^2) + 0.5``, was not visible in ``source``: typically
        background uncovered behind a moving object, which a plain warp would fill with the object.
        """
        backward = self._full(frames, target, source)
        forward = cv2.remap(self._full(frames, source, target), maps[0], maps[1], cv2.INTER_LINEAR)
        total = backward + forward
        bound = 0.01 * ((backward**2).sum(-1) + (forward**2).sum(-1)) + 0.5
        return np.asarray((total**2).sum(-1) < bound)


def flow_jobs(
    field: FlowField, frames: FrameSource, chains: Sequence[tuple[int, Sequence[int]]], both: bool = False
) -> list[Callable[[], object]]:
    """Jobs computing the flow of every step ``previous -> t`` of ``chains`` (each pair once).

    With ``both``, also the reverse flow of each step (the forward-backward occlusion check).
    """
    pairs: dict[tuple[int, int], None] = {}
    for start, order in chains:
        previous = start
        for t in order:
            pairs[(int(t), int(previous))] = None
            if both:
                pairs[(int(previous), int(t))] = None
            previous = t

    def job(target: int, source: int) -> None:
        if not field.has_flow(frames, target, source):
            field.flow(frames, target, source)

    return [functools.partial(job, t, s) for t, s in pairs]


def warp(prob: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Pull a probability map along sampling maps (bilinear; outside the frame is background)."""
    return cv2.remap(prob, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def sharpen(prob: np.ndarray, gain: float) -> np.ndarray:
    """Push a soft mask towards 0/1 around 0.5 (undoes the blur that repeated bilinear warps add)."""
    if gain <= 0:
        return prob
    return (1.0 / (1.0 + np.exp(-gain * (prob - 0.5)))).astype(np.float32)


@register_propagator("flow")
@dataclass
class FlowPropagator(BidirectionalPropagator):
    """Masks warped frame to frame by dense optical flow, chained from the nearest keyframes.

    Each step warps the previous frame's soft mask (not the keyframe's) along the flow between the two
    neighbouring frames, so large motion over many frames is followed in small steps. After each warp
    the soft mask is sharpened a little, because bilinear resampling repeated over dozens of frames
    would otherwise smear the boundary into a wide ramp.

    Attributes:
        method: ``dis`` (default; robust to large displacements) or ``farneback``.
        preset: DIS preset.
        scale: Resolution factor for computing flow.
        sharpen_gain: Gain of the logistic sharpening after each warp (0 disables it).
        occlusion_check: Give pixels that fail the forward-backward flow check to the background
            (they were hidden in the previous frame, usually uncovered background).
        finest_scale: DIS pyramid's finest level (see :class:`FlowField`; ``None``: the preset's).
    """

    name: ClassVar[str] = "flow"
    method: str = "dis"
    preset: str = "medium"
    scale: float = 1.0
    sharpen_gain: float = 12.0
    occlusion_check: bool = False
    finest_scale: int | None = None

    def __post_init__(self) -> None:
        self.field = FlowField(self.method, self.preset, self.scale, self.finest_scale)

    def derived_jobs(self, frames: FrameSource, chains: Sequence[tuple[int, Sequence[int]]]) -> list[Callable[[], object]]:
        """The flow of every step of ``chains`` (both ways with the occlusion check)."""
        return flow_jobs(self.field, frames, chains, both=self.occlusion_check)

    def track(
        self, frames: FrameSource, start: int, init: Mapping[int, np.ndarray], order: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Warp soft masks step by step from ``start`` along ``order`` (see the base class)."""
        probs = {k: np.asarray(p, dtype=np.float32) for k, p in init.items()}
        previous = start
        for t in order:
            maps = self.field.sampling_maps(frames, t, previous)
            probs = {k: sharpen(warp(p, maps), self.sharpen_gain) for k, p in probs.items()}
            if self.occlusion_check:
                seen = self.field.visible(frames, t, previous, maps)
                probs = {k: np.where(seen, p, 0.0).astype(np.float32) for k, p in probs.items()}
            previous = t
            yield t, probs
