"""Video object segmentation metrics: DAVIS region similarity J, boundary F-measure F, and J&F.

Definitions follow the DAVIS benchmark (Perazzi et al., CVPR 2016; the ``davis2017-evaluation`` code):

* **J** is the intersection over union of the predicted and true masks; 1 when both are empty.
* **F** is the F-measure of boundary precision and recall. Boundaries are the one-pixel contours of
  :func:`seg2bmap`; a predicted boundary pixel counts as correct when a true boundary pixel lies within
  ``ceil(0.008 * image diagonal)`` pixels (a disk), and vice versa for recall. Both boundaries empty
  gives 1; exactly one empty gives 0.
* **J&F** is the mean of J and F.

Per-sequence scores are means over frames (here: all frames, keyframes included, as the keyframe
benchmark scores every frame a user would get back) and, for several objects, over objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

BOUNDARY_TOLERANCE = 0.008


def _binary(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) mask, got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def _same_shape(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = _binary(pred, "prediction"), _binary(gt, "ground truth")
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} must have the same shape")
    return p, g


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """DAVIS J: IoU of two binary masks (1.0 when both are empty)."""
    return _iou(*_same_shape(pred, gt))


def _iou(p: np.ndarray, g: np.ndarray) -> float:
    union = np.count_nonzero(p | g)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(p & g) / union)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask, as in the DAVIS code (same size input and output).

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour.
    """
    seg = _binary(seg, "mask")
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def boundary_pixels(shape: tuple[int, int], tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """Boundary tolerance in pixels: ``tolerance`` itself if >= 1, else ``ceil(tolerance * diagonal)``."""
    if tolerance >= 1:
        return int(tolerance)
    return math.ceil(tolerance * math.hypot(shape[0], shape[1]))


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def boundary_measure(pred: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """DAVIS F: F-measure of boundary precision and recall with a disk tolerance.

    Args:
        pred: Predicted ``(H, W)`` mask.
        gt: True ``(H, W)`` mask.
        tolerance: Fraction of the image diagonal (or pixels when >= 1).
    """
    p, g = _same_shape(pred, gt)
    return MaskScorer(g, tolerance).boundary(p)


class MaskScorer:
    """J and F of predictions against one true mask, whose boundary is traced and dilated once.

    Scoring many candidate masks against the same frame (as the placement oracle does) then costs
    only the prediction's side.

    Args:
        gt: True ``(H, W)`` mask.
        tolerance: Boundary tolerance, as in :func:`boundary_measure`.
    """

    def __init__(self, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> None:
        self.gt = _binary(gt, "ground truth")
        self.gt_boundary = seg2bmap(self.gt)
        self.n_gt = int(self.gt_boundary.sum())
        self.disk = _disk(boundary_pixels(self.gt.shape, tolerance))
        self.gt_dilated = cv2.dilate(self.gt_boundary.astype(np.uint8), self.disk).astype(bool)

    def _check(self, pred: np.ndarray) -> np.ndarray:
        p = _binary(pred, "prediction")
        if p.shape != self.gt.shape:
            raise ValueError(f"prediction {p.shape} and ground truth {self.gt.shape} must have the same shape")
        return p

    def region(self, pred: np.ndarray) -> float:
        """J of ``pred``."""
        return _iou(self._check(pred), self.gt)

    def boundary(self, pred: np.ndarray) -> float:
        """F of ``pred``."""
        pb = seg2bmap(self._check(pred))
        n_p = int(pb.sum())
        if n_p == 0 and self.n_gt == 0:
            return 1.0
        if n_p == 0 or self.n_gt == 0:
            return 0.0
        p_dil = cv2.dilate(pb.astype(np.uint8), self.disk).astype(bool)
        precision = np.count_nonzero(pb & self.gt_dilated) / n_p
        recall = np.count_nonzero(self.gt_boundary & p_dil) / self.n_gt
        if precision + recall == 0:
            return 0.0
        return float(2 * precision * recall / (precision + recall))

    def jf(self, pred: np.ndarray) -> float:
        """J&F of ``pred``."""
        return (self.region(pred) + self.boundary(pred)) / 2


@dataclass(frozen=True)
class FrameScore:
    """J and F of one object on one frame."""

    frame: int
    obj: int
    J: float
    F: float

    @property
    def JF(self) -> float:
        """Mean of J and F."""
        return (self.J + self.F) / 2


@dataclass(frozen=True)
class SequenceScore:
    """Scores of one sequence: per frame and object, and the means.

    Attributes:
        frames: Every per-frame, per-object score.
        J: Mean J over objects (each object's mean over frames).
        F: Mean F, likewise.
        JF: Mean of ``J`` and ``F``.
        per_object: Object id to ``(J, F)`` means over frames.
    """

    frames: tuple[FrameScore, ...]
    J: float
    F: float
    JF: float
    per_object: Mapping[int, tuple[float, float]]


def score_frame(
    pred: Mapping[int, np.ndarray],
    gt: Mapping[int, np.ndarray],
    frame: int = 0,
    tolerance: float = BOUNDARY_TOLERANCE,
) -> list[FrameScore]:
    """Score every object of ``gt`` on one frame (an object missing from ``pred`` counts as empty).

    Raises:
        ValueError: If masks differ in shape.
    """
    scores = []
    for obj, g in sorted(gt.items()):
        p = pred.get(obj)
        if p is None:
            p = np.zeros_like(np.asarray(g), dtype=bool)
        scores.append(FrameScore(frame, int(obj), region_similarity(p, g), boundary_measure(p, g, tolerance)))
    return scores


def score_sequence(
    pairs: Iterable[tuple[Mapping[int, np.ndarray], Mapping[int, np.ndarray]]],
    tolerance: float = BOUNDARY_TOLERANCE,
) -> SequenceScore:
    """Score a sequence from ``(prediction, ground truth)`` mask dicts, one pair per frame, streamed.

    Raises:
        ValueError: If the sequence is empty.
    """
    frames: list[FrameScore] = []
    for i, (pred, gt) in enumerate(pairs):
        frames.extend(score_frame(pred, gt, i, tolerance))
    if not frames:
        raise ValueError("cannot score an empty sequence")
    per_object: dict[int, tuple[float, float]] = {}
    for obj in sorted({s.obj for s in frames}):
        mine = [s for s in frames if s.obj == obj]
        per_object[obj] = (float(np.mean([s.J for s in mine])), float(np.mean([s.F for s in mine])))
    j = float(np.mean([v[0] for v in per_object.values()]))
    f = float(np.mean([v[1] for v in per_object.values()]))
    return SequenceScore(tuple(frames), j, f, (j + f) / 2, per_object)
