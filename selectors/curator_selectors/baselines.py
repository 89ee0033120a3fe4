"""Baselines: ``uniform`` (evenly spaced in time within each video)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from curator.pool import Pool, Selection
from curator_selectors.base import check_budget, register_selector


def allocate(weights: np.ndarray, budget: int, capacity: np.ndarray) -> np.ndarray:
    """Split ``budget`` across groups in proportion to ``weights`` without exceeding ``capacity``.

    Largest-remainder rounding; budget a full group cannot take goes to the others.

    Args:
        weights: ``(g,)`` non-negative group weights (for example video durations).
        budget: Total picks to hand out.
        capacity: ``(g,)`` most picks each group can take.

    Returns:
        ``(g,)`` int64 counts summing to ``min(budget, capacity.sum())``.
    """
    capacity = np.asarray(capacity, dtype=np.int64)
    counts = np.zeros_like(capacity)
    remaining = int(min(budget, capacity.sum()))
    while remaining > 0:
        open_groups = counts < capacity
        w = np.where(open_groups, np.maximum(np.asarray(weights, dtype=np.float64), 1e-9), 0.0)
        share = w / w.sum() * remaining
        add = np.minimum(np.floor(share).astype(np.int64), capacity - counts)
        leftover = remaining - int(add.sum())
        if leftover > 0:
            order = np.argsort(-(share - np.floor(share)), kind="stable")
            for g in order:
                if leftover == 0:
                    break
                if open_groups[g] and counts[g] + add[g] < capacity[g]:
                    add[g] += 1
                    leftover -= 1
        if add.sum() == 0:  # cannot happen with open groups, but never loop forever
            break
        counts += add
        remaining -= int(add.sum())
    return counts


@register_selector("uniform")
class UniformSelector:
    """Frames evenly spaced in time within each video: the industry default baseline.

    The budget is split across videos in proportion to their duration; inside a video of duration
    ``T`` receiving ``b`` picks the targets are the centres ``(i + 0.5) * T / b`` and each takes the
    nearest unpicked, unlabelled frame. The utility of a pick is the share of the video's time it
    stands for (``1 / b``). Deterministic: ``rng`` is not used.
    """

    name: ClassVar[str] = "uniform"

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` frames evenly spaced in time."""
        check_budget(budget)
        candidates = pool.candidates
        videos = np.unique(pool.video_ids[candidates])
        if budget == 0 or len(videos) == 0:
            return Selection(np.zeros(0, np.int64), np.zeros(0, np.float64), self.name)
        starts = np.array([pool.timestamps[pool.video_ids == v].min() for v in videos])
        ends = np.array([pool.timestamps[pool.video_ids == v].max() for v in videos])
        capacity = np.array([np.sum(pool.video_ids[candidates] == v) for v in videos])
        counts = allocate(ends - starts + 1e-3, budget, capacity)
        picks: list[int] = []
        utilities: list[float] = []
        for v, start, end, b in zip(videos, starts, ends, counts, strict=True):
            if b == 0:
                continue
            rows = candidates[pool.video_ids[candidates] == v]
            rows = rows[np.argsort(pool.timestamps[rows], kind="stable")]
            times = pool.timestamps[rows]
            taken = np.zeros(len(rows), dtype=bool)
            span = end - start
            for i in range(int(b)):
                target = start + (i + 0.5) * span / b
                distance = np.where(taken, np.inf, np.abs(times - target))
                j = int(np.argmin(distance))
                taken[j] = True
                picks.append(int(rows[j]))
                utilities.append(1.0 / float(b))
        return Selection(np.asarray(picks, dtype=np.int64), np.asarray(utilities), self.name)
