"""Diversity: greedy k-center (Coreset) over the embeddings, seeded by labelled frames."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from curator.pool import Pool, Selection
from curator_selectors.base import check_budget, register_selector


def _sq_dist_update(min_d: np.ndarray, x: np.ndarray, centres: np.ndarray, block: int) -> None:
    """``min_d = min(min_d, ||x - c||^2)`` over ``centres``, in row blocks (no n x k matrix)."""
    for start in range(0, len(x), block):
        xb = x[start : start + block]
        # squared L2 via the expansion; rows of x and centres are unit length
        d = 2.0 - 2.0 * (xb @ centres.T)
        np.minimum(min_d[start : start + block], d.min(axis=1), out=min_d[start : start + block])


@register_selector("kcenter")
class KCenterSelector:
    """Greedy k-center: each pick is the frame farthest from everything labelled or picked so far.

    This is the Coreset baseline (Sener and Savarese, 2018) and EVA-VOS's max-min L2 baseline. With
    labelled frames the distances start from them; with none, the first pick is drawn by ``rng`` (utility 2, the largest possible distance).
    Distances are L2 between unit embeddings, computed in float32 in row blocks so memory stays
    ``O(n)``. The utility of a pick is its distance to the nearest earlier centre.

    Args:
        block_size: Rows per block in distance updates.
    """

    name: ClassVar[str] = "kcenter"

    def __init__(self, block_size: int = 65536) -> None:
        self.block_size = block_size

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` frames by greedy max-min distance."""
        check_budget(budget)
        x = np.ascontiguousarray(pool.embeddings, dtype=np.float32)
        n = len(x)
        budget = min(int(budget), int((~pool.labeled).sum()))
        picks = np.zeros(budget, dtype=np.int64)
        utilities = np.zeros(budget, dtype=np.float64)
        if budget == 0:
            return Selection(picks, utilities, self.name)
        min_d = np.full(n, np.inf, dtype=np.float32)
        seeds = np.flatnonzero(pool.labeled)
        if len(seeds):
            _sq_dist_update(min_d, x, x[seeds], self.block_size)
        min_d[pool.labeled] = -np.inf
        for i in range(budget):
            if len(seeds) == 0 and i == 0:
                j = int(rng.choice(pool.candidates))
                utilities[i] = 2.0  # nothing covered yet: the largest L2 distance between unit vectors
            else:
                j = int(np.argmax(min_d))
                utilities[i] = float(np.sqrt(max(min_d[j], 0.0)))
            picks[i] = j
            _sq_dist_update(min_d, x, x[j : j + 1], self.block_size)
            min_d[j] = -np.inf
        return Selection(picks, utilities, self.name)
