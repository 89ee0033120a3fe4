"""Soft-mask maths shared by the propagators, the placement oracle and the metrics.

Crispness of a soft mask (:func:`soft_confidence`), the blend of the two sides of a span between
keyframes (:func:`blend_sides`), soft masks made exclusive per pixel (:func:`exclusive_masks`),
compressed storage of soft masks (:class:`SoftStore`) and resizing (:func:`resize_prob`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np


def soft_confidence(prob: np.ndarray) -> float:
    """Crispness of a soft mask: mean ``|2p - 1|`` over pixels with ``p > 0.1`` (1.0 if there are none)."""
    region = prob > 0.1
    if not region.any():
        return 1.0
    return float(np.abs(2.0 * prob[region] - 1.0).mean())


def blend_sides(
    t: int, a: int, b: int, prob_a: np.ndarray, prob_b: np.ndarray, conf_a: float, conf_b: float
) -> np.ndarray:
    """Soft mask of frame ``a < t < b`` from the chains of keyframes ``a`` and ``b`` (see :class:`~curator.annotate.engine.BidirectionalPropagator`).

    Each side's weight is its closeness to ``t`` times its :func:`soft_confidence` (at least 1e-3).
    """
    span = b - a
    wa = (b - t) / span * max(conf_a, 1e-3)
    wb = (t - a) / span * max(conf_b, 1e-3)
    return (wa * prob_a + wb * prob_b) / (wa + wb)  # type: ignore[no-any-return]


def exclusive_masks(
    probs: Mapping[int, np.ndarray], objects: Sequence[int], threshold: float = 0.5
) -> dict[int, np.ndarray]:
    """Boolean masks from soft masks: a pixel goes to its most probable object if that is ``>= threshold``."""
    stack = np.stack([probs[k] for k in objects])
    best = stack.argmax(axis=0)
    keep = stack.max(axis=0) >= threshold
    return {k: keep & (best == i) for i, k in enumerate(objects)}


class SoftStore:
    """Soft masks keyed by frame (or any hashable), quantised to uint8 and zlib-compressed (mostly 0/255: tiny)."""

    def __init__(self) -> None:
        self._data: dict[Any, dict[int, tuple[bytes, tuple[int, int]]]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def put(self, key: Any, probs: Mapping[int, np.ndarray]) -> None:
        """Store ``{object id: soft mask}`` under ``key``."""
        self._data[key] = {
            k: (zlib.compress(np.round(p * 255).astype(np.uint8).tobytes(), 1), p.shape)
            for k, p in probs.items()
        }

    def get(self, key: Any) -> dict[int, np.ndarray]:
        """The soft masks stored under ``key`` (as float32, to within 1/510)."""
        return {
            k: np.frombuffer(zlib.decompress(b), dtype=np.uint8).reshape(s).astype(np.float32) / 255.0
            for k, (b, s) in self._data[key].items()
        }

    def pop(self, key: Any) -> dict[int, np.ndarray]:
        """:meth:`get`, then forget ``key``."""
        out = self.get(key)
        del self._data[key]
        return out


def resize_prob(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float probability map to ``(height, width)``."""
    if prob.shape == tuple(size):
        return prob.astype(np.float32, copy=False)
    return cv2.resize(prob.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
