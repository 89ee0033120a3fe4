"""Per-pixel uncertainty maps reduced to per-frame scores, named as ``curator_selectors`` reads them.

From class probabilities ``(C, h, w)`` of one frame:

============================ ==================================================== ==============
name                         value                                                uncertain when
============================ ==================================================== ==============
``entropy``                  mean per-pixel entropy / ``log C``, [0, 1]           high
``entropy_top``              mean of the top ``top_fraction`` pixels' entropy     high
``margin``                   mean top-1 minus top-2 probability, [0, 1]           low
``margin_top``               mean margin of the ``top_fraction`` lowest pixels    low
``confidence``               mean top-1 probability, [0, 1]                       low
``confidence_top``           mean top-1 of the ``top_fraction`` lowest pixels     low
``mc_disagreement``          MC-dropout variance of the probabilities, [0, 1]     high
``novelty``                  mean per-pixel feature novelty of the proxy (``1 -   high
                             max cosine`` to its training patches), [0, 1]
``proxy_disagreement``       ``1 - IoU`` of proxy and propagated masks (worst     high
                             object; 1 where the frame has no propagation)
``propagation_confidence``   the propagator's frame confidence (1 on human        low
                             frames, 0 without propagation)
============================ ==================================================== ==============

Means over every pixel shrink with the share of easy background; the ``_top`` reductions look only
at the hardest pixels, so a small object the model is unsure about still stands out.

The proxy's probabilities are already tempered by novelty (see :mod:`curator.train.proxy`), so the
entropy, margin and confidence scores rise or fall away from the training frames; ``novelty`` is the
distance term on its own.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Score names written by a round, with the direction in which a frame is more uncertain.
SCORE_DIRECTIONS: dict[str, str] = {
    "entropy": "high",
    "entropy_top": "high",
    "margin": "low",
    "margin_top": "low",
    "confidence": "low",
    "confidence_top": "low",
    "mc_disagreement": "high",
    "novelty": "high",
    "proxy_disagreement": "high",
    "propagation_confidence": "low",
}


def _top_mean(values: np.ndarray, fraction: float, largest: bool) -> float:
    flat = values.reshape(-1)
    k = max(1, round(fraction * flat.size))
    part = np.partition(flat, flat.size - k)[flat.size - k :] if largest else np.partition(flat, k - 1)[:k]
    return float(part.mean())


def uncertainty_maps(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pixel ``entropy`` (normalised by ``log C``), ``margin`` and ``confidence`` of ``(C, h, w)``.

    Raises:
        ValueError: If ``probs`` is not ``(C, h, w)`` with ``C >= 2``.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[0] < 2:
        raise ValueError(f"probs must be (C>=2, h, w), got {probs.shape}")
    p = np.clip(probs, 1e-7, 1.0)
    entropy = -(p * np.log(p)).sum(axis=0) / np.log(probs.shape[0])
    top2 = np.partition(probs, probs.shape[0] - 2, axis=0)[-2:]
    confidence = top2[1]
    margin = top2[1] - top2[0]
    return {"entropy": np.clip(entropy, 0, 1), "margin": margin, "confidence": confidence}


def frame_scores(probs: np.ndarray, top_fraction: float = 0.05, novelty: np.ndarray | None = None) -> dict[str, float]:
    """Reduce one frame's probabilities to the mean and top-fraction scores of the module table.

    Args:
        probs: ``(C, h, w)`` class probabilities.
        top_fraction: Share of hardest pixels the ``_top`` scores average over.
        novelty: Per-pixel feature novelty of the frame (any shape); adds ``novelty`` (its mean).

    Raises:
        ValueError: If ``top_fraction`` is not in ``(0, 1]``.
    """
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    maps = uncertainty_maps(probs)
    extra = {} if novelty is None else {"novelty": float(np.mean(novelty))}
    return {
        "entropy": float(maps["entropy"].mean()),
        "entropy_top": _top_mean(maps["entropy"], top_fraction, largest=True),
        "margin": float(maps["margin"].mean()),
        "margin_top": _top_mean(maps["margin"], top_fraction, largest=False),
        "confidence": float(maps["confidence"].mean()),
        "confidence_top": _top_mean(maps["confidence"], top_fraction, largest=False),
        **extra,
    }


def mask_disagreement(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray]) -> float:
    """``1 - IoU`` of two object-mask dicts, worst object (0 when both are empty everywhere)."""
    worst = 0.0
    for obj in set(a) | set(b):
        ma, mb = a.get(obj), b.get(obj)
        if ma is None and mb is None:
            continue
        if ma is None:
            ma = np.zeros_like(mb, dtype=bool)
        if mb is None:
            mb = np.zeros_like(ma, dtype=bool)
        union = np.count_nonzero(ma | mb)
        iou = 1.0 if union == 0 else np.count_nonzero(ma & mb) / union
        worst = max(worst, 1.0 - iou)
    return float(worst)


def utility(name: str, values: np.ndarray) -> np.ndarray:
    """Scores turned into a utility where higher means more uncertain (``1 - v`` for "low" scores).

    Raises:
        ValueError: If ``name`` is not in :data:`SCORE_DIRECTIONS`.
    """
    if name not in SCORE_DIRECTIONS:
        raise ValueError(f"unknown score {name!r}; known: {', '.join(SCORE_DIRECTIONS)}")
    values = np.asarray(values, dtype=np.float64)
    return values if SCORE_DIRECTIONS[name] == "high" else 1.0 - values
