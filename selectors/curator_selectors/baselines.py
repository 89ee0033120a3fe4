"""Baselines: ``uniform`` (evenly spaced in time within each video) and ``random``."""

from __future__ import annotations

from itertools import pairwise
from typing import ClassVar

import numpy as np

from curator.pool import Pool, Selection
from curator_selectors.base import (
    check_budget,
    effective_budget,
    empty_selection,
    make_selection,
    register_selector,
)
from curator_selectors.temporal import TemporalConstraints, TemporalState, pick_by_score


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
    nearest eligible frame (unpicked, unlabelled, and outside ``min_gap`` of earlier picks). When
    frames are already labelled (a later round of a campaign), picks fill the largest temporal gaps
    between keyframes instead (see :meth:`_fill_gaps`), so the labels stay evenly spread in time. The
    utility of a pick is the share of the video's time it stands for (``1 / b``). Deterministic:
    ``rng`` is not used.

    Args:
        min_gap: Least seconds between two picks of one video (0 disables); a target with no
            eligible frame left is skipped and its share goes to frames of other videos; the selection
            falls short of the budget only when no frame is eligible.
    """

    name: ClassVar[str] = "uniform"

    def __init__(self, min_gap: float = 0.0) -> None:
        self.constraints = TemporalConstraints(min_gap=min_gap)

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` frames evenly spaced in time."""
        check_budget(budget)
        candidates = pool.candidates
        videos = np.unique(pool.video_ids[candidates])
        if budget == 0 or len(videos) == 0:
            return empty_selection(self.name)
        if pool.labeled.any():
            return self._fill_gaps(pool, budget)
        starts = np.array([pool.timestamps[pool.video_ids == v].min() for v in videos])
        ends = np.array([pool.timestamps[pool.video_ids == v].max() for v in videos])
        capacity = np.array([np.sum(pool.video_ids[candidates] == v) for v in videos])
        counts = allocate(ends - starts + 1e-3, budget, capacity)
        state = TemporalState(pool, self.constraints)
        picks: list[int] = []
        utilities: list[float] = []
        for v, start, end, b in zip(videos, starts, ends, counts, strict=True):
            if b == 0:
                continue
            rows = candidates[pool.video_ids[candidates] == v]
            rows = rows[np.argsort(pool.timestamps[rows], kind="stable")]
            times = pool.timestamps[rows]
            span = end - start
            for i in range(int(b)):
                target = start + (i + 0.5) * span / b
                ok = state.available[rows]
                if not ok.any():
                    break
                distance = np.where(ok, np.abs(times - target), np.inf)
                j = int(rows[int(np.argmin(distance))])
                state.take(j)
                picks.append(j)
                utilities.append(1.0 / float(b))
        # a video whose frames the gap rule used up leaves budget over: spend it on other videos,
        # each time on the eligible frame farthest in time from the keyframes of its video
        while len(picks) < budget:
            rows = np.flatnonzero(state.available)
            if len(rows) == 0:
                break
            keys = np.concatenate([np.flatnonzero(pool.labeled), np.asarray(picks, dtype=np.int64)])
            same = pool.video_ids[rows, None] == pool.video_ids[None, keys]
            gaps = np.where(same, np.abs(pool.timestamps[rows, None] - pool.timestamps[None, keys]), np.inf)
            far = gaps.min(axis=1) if len(keys) else np.full(len(rows), np.inf)
            j = int(rows[int(np.argmax(far))])
            state.take(j)
            picks.append(j)
            utilities.append(1.0 / float(budget))
        return make_selection(self.name, picks, utilities, ["uniform"] * len(picks))

    def _fill_gaps(self, pool: Pool, budget: int) -> Selection:
        """Keep the keyframes of every video evenly spread when some frames are already labelled.

        Labelled frames cannot move, so each pick goes where it lowers the total time from frames
        to their nearest keyframe the most: a video without keyframes first (its centre), else the
        midpoint of the longest inner gap ``g`` (a gain of ``g^2 / 8``) or the point a third into an
        end gap ``e`` (a gain of ``e^2 / 3``), compared in seconds across all videos. A campaign that
        labels a batch per round with this rule keeps its labels uniform in time.
        """
        state = TemporalState(pool, self.constraints)
        keys: dict[int, list[float]] = {}
        span: dict[int, tuple[float, float]] = {}
        rows_of: dict[int, np.ndarray] = {}
        for v in np.unique(pool.video_ids).tolist():
            rows = np.flatnonzero(pool.video_ids == v)
            rows_of[v] = rows
            span[v] = (float(pool.timestamps[rows].min()), float(pool.timestamps[rows].max()))
            keys[v] = sorted(pool.timestamps[rows[pool.labeled[rows]]].tolist())
        picks: list[int] = []
        utilities: list[float] = []
        exhausted: set[int] = set()
        while len(picks) < budget:
            best: tuple[float, float, int, float] | None = None  # (fresh, gain, video, target)
            for v, (start, end) in span.items():
                if v in exhausted:
                    continue
                k = keys[v]
                if not k:
                    option = (1.0, end - start, v, (start + end) / 2)
                else:
                    options = [((k[0] - start) ** 2 / 3, start + (k[0] - start) / 3),
                               ((end - k[-1]) ** 2 / 3, end - (end - k[-1]) / 3)]
                    options += [((b - a) ** 2 / 8, (a + b) / 2) for a, b in pairwise(k)]
                    gain, target = max(options)
                    option = (0.0, gain, v, target)
                if best is None or option[:2] > best[:2]:
                    best = option
            if best is None:
                break
            _, _, v, target = best
            rows = rows_of[v]
            ok = state.available[rows]
            if not ok.any():
                exhausted.add(v)
                continue
            j = int(rows[int(np.argmin(np.where(ok, np.abs(pool.timestamps[rows] - target), np.inf)))])
            state.take(j)
            picks.append(j)
            start, end = span[v]
            utilities.append(float(np.sqrt(best[1]) / max(end - start, 1e-9)) if best[0] == 0 else 1.0)
            keys[v] = sorted([*keys[v], float(pool.timestamps[j])])
        return make_selection(self.name, picks, utilities, ["uniform"] * len(picks))


@register_selector("random")
class RandomSelector:
    """Frames drawn uniformly at random without replacement: the passive-learning baseline.

    Draws a random priority for every row from ``rng`` and takes the highest eligible ones, so the
    temporal rules apply as for any other selector. The utility of a pick is its random priority.

    Args:
        min_gap: Least seconds between two picks of one video (0 disables).
        shot_coverage: Every shot gets a pick before any gets two.
    """

    name: ClassVar[str] = "random"

    def __init__(self, min_gap: float = 0.0, shot_coverage: bool = False) -> None:
        self.constraints = TemporalConstraints(min_gap=min_gap, shot_coverage=shot_coverage)

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` frames at random."""
        if effective_budget(pool, budget) == 0:
            return empty_selection(self.name)
        priority = rng.random(len(pool))
        return pick_by_score(pool, budget, priority, self.constraints, self.name, "random")
