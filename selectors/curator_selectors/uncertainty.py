"""Uncertainty: selectors that read per-frame scores from ``pool.scores``.

Score names (one float per frame, aligned with the pool; producers are the propagators of
``curator.annotate`` and the proxy model of the retrain loop):

=========================== ================================================ ====================
name                        meaning                                          uncertain when
=========================== ================================================ ====================
``entropy``                 mean per-pixel prediction entropy                high
``margin``                  mean top-1 minus top-2 class probability, [0, 1] low
``confidence``              mean top-1 class probability, [0, 1]             low
``disagreement``            how much forward and backward propagation         high
                            disagree on the frame: ``1 - IoU`` of the two
                            directions' masks (worst object), [0, 1]
``propagation_confidence``  the propagator's own frame confidence             low
                            (``PropagatedFrame.frame_confidence``), [0, 1]
``entropy_top``,            the same reductions over only the hardest         as above
``margin_top``,             pixels (``curator.train.scores``)
``confidence_top``
``mc_disagreement``         MC-dropout variance of the proxy model, [0, 1]    high
``proxy_disagreement``      ``1 - IoU`` of proxy and propagated masks, [0, 1] high
``novelty``                 proxy's feature novelty: mean ``1 - max cosine`` high
                            of the patches to its training patches, [0, 1]
=========================== ================================================ ====================

Each selector turns its score into a utility where higher means more uncertain and picks the top
frames under the temporal rules; a ``min_gap`` keeps the picks from piling onto one hard stretch of
video. When the pool lacks the score, the selector falls back to another registered selector (default
``kcenter``), marking those picks ``fallback:<name>``; pass ``fallback=None`` to raise instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from curator.pool import Pool, Selection
from curator_selectors.base import create_selector, register_selector
from curator_selectors.temporal import TemporalConstraints, pick_by_score

#: Score names this package understands, with the direction in which a frame is more uncertain.
SCORE_NAMES: dict[str, str] = {
    "entropy": "high",
    "margin": "low",
    "confidence": "low",
    "disagreement": "high",
    "propagation_confidence": "low",
    "entropy_top": "high",
    "margin_top": "low",
    "confidence_top": "low",
    "mc_disagreement": "high",
    "proxy_disagreement": "high",
    "novelty": "high",
}


def uncertainty_utility(pool: Pool, name: str) -> np.ndarray:
    """The score ``name`` of ``pool`` turned into a utility where higher is more uncertain.

    Raises:
        KeyError: If the pool has no such score.
        ValueError: If ``name`` is not one of :data:`SCORE_NAMES`.
    """
    if name not in SCORE_NAMES:
        raise ValueError(f"unknown score {name!r}; known: {', '.join(SCORE_NAMES)}")
    values = np.asarray(pool.scores[name], dtype=np.float64)
    # "low" scores (margins, confidences) lie in [0, 1]
    return values if SCORE_NAMES[name] == "high" else 1.0 - values


def first_score(pool: Pool, names: Sequence[str]) -> str | None:
    """The first of ``names`` present in ``pool.scores``, or ``None``."""
    return next((n for n in names if n in pool.scores), None)


class _ScoreSelector:
    """Top-utility picks from the first available of ``score_names`` (see module docstring)."""

    name: ClassVar[str] = ""
    score_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, min_gap: float = 0.0, shot_coverage: bool = False, fallback: str | None = "kcenter") -> None:
        self.constraints = TemporalConstraints(min_gap=min_gap, shot_coverage=shot_coverage)
        self.fallback = fallback

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` of the most uncertain frames."""
        score = first_score(pool, self.score_names)
        if score is None:
            if self.fallback is None:
                raise ValueError(
                    f"selector {self.name!r} needs one of the scores {list(self.score_names)} in pool.scores; "
                    f"the pool has {sorted(pool.scores)}"
                )
            kwargs: dict[str, object] = {"min_gap": self.constraints.min_gap, "shot_coverage": self.constraints.shot_coverage}
            inner = create_selector(self.fallback, **_accepted(self.fallback, kwargs))
            sel = inner.select(pool, budget, rng)
            reasons = tuple(f"fallback:{sel.reason(i)}" for i in range(len(sel.indices)))
            return Selection(sel.indices, sel.utilities, self.name, reasons)
        utility = uncertainty_utility(pool, score)
        return pick_by_score(pool, budget, utility, self.constraints, self.name, score)


def _accepted(name: str, kwargs: dict[str, object]) -> dict[str, object]:
    """The subset of ``kwargs`` the selector ``name``'s constructor takes."""
    import inspect

    from curator_selectors.base import SELECTORS

    params = inspect.signature(SELECTORS.get(name)).parameters
    return {k: v for k, v in kwargs.items() if k in params}


@register_selector("entropy")
class EntropySelector(_ScoreSelector):
    """Frames with the highest ``entropy`` score (mean per-pixel prediction entropy).

    Args:
        min_gap: Least seconds between two picks of one video (0 disables).
        shot_coverage: Every shot gets a pick before any gets two.
        fallback: Selector used when the pool has no ``entropy`` score (``None`` raises).
    """

    name: ClassVar[str] = "entropy"
    score_names: ClassVar[tuple[str, ...]] = ("entropy", "entropy_top")


@register_selector("margin")
class MarginSelector(_ScoreSelector):
    """Frames with the smallest ``margin`` score (top-1 minus top-2 probability); utility ``1 - margin``.

    Args:
        min_gap: Least seconds between two picks of one video (0 disables).
        shot_coverage: Every shot gets a pick before any gets two.
        fallback: Selector used when the pool has no ``margin`` score (``None`` raises).
    """

    name: ClassVar[str] = "margin"
    score_names: ClassVar[tuple[str, ...]] = ("margin", "margin_top")


@register_selector("least_confidence")
class LeastConfidenceSelector(_ScoreSelector):
    """Frames with the lowest ``confidence`` (top-1 probability); utility ``1 - confidence``.

    Falls back to ``confidence_top``, then ``propagation_confidence``, when the pool has no
    ``confidence``.

    Args:
        min_gap: Least seconds between two picks of one video (0 disables).
        shot_coverage: Every shot gets a pick before any gets two.
        fallback: Selector used when the pool has neither score (``None`` raises).
    """

    name: ClassVar[str] = "least_confidence"
    score_names: ClassVar[tuple[str, ...]] = ("confidence", "confidence_top", "propagation_confidence")


@register_selector("disagreement")
class DisagreementSelector(_ScoreSelector):
    """Frames where propagation is least reliable: forward/backward ``disagreement``, else
    ``proxy_disagreement``, ``mc_disagreement``, or low ``propagation_confidence``.

    Args:
        min_gap: Least seconds between two picks of one video (0 disables).
        shot_coverage: Every shot gets a pick before any gets two.
        fallback: Selector used when the pool has neither score (``None`` raises).
    """

    name: ClassVar[str] = "disagreement"
    score_names: ClassVar[tuple[str, ...]] = (
        "disagreement",
        "proxy_disagreement",
        "mc_disagreement",
        "propagation_confidence",
    )
