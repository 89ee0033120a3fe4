"""Temporal awareness: gaps between picks, shot coverage, and a joint embedding-and-time space.

Three pieces shared by every selector that takes ``min_gap`` / ``shot_coverage`` settings:

* :class:`TemporalConstraints` and :class:`TemporalState`: a greedy selector asks the state which rows
  are still eligible and tells it what it took. Two rules:

  - **minimum gap**: two picks of one video are at least ``min_gap`` seconds apart (and, with
    ``gap_to_labeled``, every pick is that far from the video's labelled frames). The gap is a hard
    rule: when it leaves no eligible frame the selection stops short of the budget.
  - **shot coverage**: every shot gets a pick before any shot gets two, as far as the budget allows
    (labelled frames count as picks of their shot). Once every shot with frames left has one, the
    rule steps aside, so a selector may then spend the budget where it is needed (a campaign's later
    rounds should go to the hard videos, not one more frame to each). Rows whose ``shot_id`` is
    ``-1`` form one "unknown" shot per video.

* :class:`JointSpace`: squared distances in a joint space of embedding and normalised time,
  ``(1 - w) * ||e_i - e_j||^2 / 4 + w * tau_ij^2`` where ``tau`` is the time gap divided by the
  video's duration (1 between different videos), so both parts lie in ``[0, 1]``.

* :func:`greedy_kcenter`: greedy k-center (farthest-first) under those rules in any
  :class:`KCenterSpace`; the ``kcenter`` selector runs it on embeddings and the ``temporal`` selector
  on the joint space, seeded by the labelled frames, so a pick is far from what is labelled both in
  appearance and in time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from curator.pool import Pool, Selection
from curator_selectors.base import effective_budget, empty_selection, make_selection, register_selector


def shot_groups(pool: Pool) -> np.ndarray:
    """Dense shot group per row: ``(video, shot)`` pairs, with ``shot_id == -1`` one group per video.

    Returns:
        ``(n,)`` int64 group ids in ``[0, groups)``.
    """
    n = len(pool)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    videos = np.unique(np.asarray(pool.video_ids), return_inverse=True)[1].reshape(-1)
    shots = np.unique(np.asarray(pool.shot_ids), return_inverse=True)[1].reshape(-1)
    unknown = np.asarray(pool.shot_ids) == -1
    # unknown shots get a negative code per video so they never merge with a known shot
    shots = np.where(unknown, -1 - videos, shots)
    pairs = np.stack([videos, shots], axis=1)
    return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def video_index(pool: Pool) -> np.ndarray:
    """Dense video id per row, ``(n,)`` int64 in ``[0, videos)``."""
    if len(pool) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.asarray(pool.video_ids), return_inverse=True)[1].reshape(-1).astype(np.int64)


def normalised_time(pool: Pool) -> np.ndarray:
    """Each row's time as a fraction of its video's span: ``(t - start) / (end - start)`` in ``[0, 1]``.

    A video whose frames all share one timestamp maps to 0.5.
    """
    t = np.asarray(pool.timestamps, dtype=np.float64)
    vid = video_index(pool)
    out = np.full(len(t), 0.5)
    if len(t) == 0:
        return out
    starts = np.full(vid.max() + 1, np.inf)
    ends = np.full(vid.max() + 1, -np.inf)
    np.minimum.at(starts, vid, t)
    np.maximum.at(ends, vid, t)
    span = ends[vid] - starts[vid]
    ok = span > 0
    out[ok] = (t[ok] - starts[vid][ok]) / span[ok]
    return out


@dataclass(frozen=True)
class TemporalConstraints:
    """Rules on where picks may fall in time.

    Attributes:
        min_gap: Least time in seconds between two picks of one video (0 disables the rule).
        shot_coverage: Every shot gets a pick before any shot gets two, when the budget allows.
        gap_to_labeled: Whether the gap also holds between picks and labelled frames.
    """

    min_gap: float = 0.0
    shot_coverage: bool = False
    gap_to_labeled: bool = True

    def __post_init__(self) -> None:
        if not np.isfinite(self.min_gap) or self.min_gap < 0:
            raise ValueError(f"min_gap must be a finite number of seconds >= 0, got {self.min_gap!r}")

    @property
    def active(self) -> bool:
        """Whether any rule restricts picks."""
        return self.min_gap > 0 or self.shot_coverage


class TemporalState:
    """Which rows a greedy selector may still pick under :class:`TemporalConstraints`.

    Args:
        pool: The pool being selected from.
        constraints: The rules.
    """

    def __init__(self, pool: Pool, constraints: TemporalConstraints) -> None:
        self.pool = pool
        self.constraints = constraints
        n = len(pool)
        self.available = ~np.asarray(pool.labeled, dtype=bool).copy()
        self._times = np.asarray(pool.timestamps, dtype=np.float64)
        self._vid = video_index(pool)
        self._groups = shot_groups(pool)
        self._counts = np.bincount(self._groups[pool.labeled], minlength=int(self._groups.max(initial=-1)) + 1)
        # per video: rows sorted by time, for O(log n) gap blocking
        self._video_rows: list[np.ndarray] = []
        self._video_times: list[np.ndarray] = []
        if n:
            order = np.lexsort((self._times, self._vid))
            bounds = np.searchsorted(self._vid[order], np.arange(self._vid.max() + 2))
            for v in range(self._vid.max() + 1):
                rows = order[bounds[v] : bounds[v + 1]]
                self._video_rows.append(rows)
                self._video_times.append(self._times[rows])
        if constraints.min_gap > 0 and constraints.gap_to_labeled:
            for lab in np.flatnonzero(pool.labeled):
                self._block(int(lab))

    def _block(self, j: int) -> None:
        gap = self.constraints.min_gap
        v = self._vid[j]
        times = self._video_times[v]
        lo = np.searchsorted(times, self._times[j] - gap, side="right")
        hi = np.searchsorted(times, self._times[j] + gap, side="left")
        self.available[self._video_rows[v][lo:hi]] = False

    def eligible(self) -> np.ndarray:
        """``(n,)`` bool: rows that may be picked next."""
        if not self.constraints.shot_coverage or not self.available.any():
            return self.available.copy()
        groups = self._groups[self.available]
        uncovered = self._counts[groups] == 0
        if not uncovered.any():
            return self.available.copy()
        out = np.zeros(len(self.available), dtype=bool)
        out[np.flatnonzero(self.available)[uncovered]] = True
        return out

    def take(self, j: int) -> None:
        """Record that row ``j`` was picked."""
        self.available[j] = False
        self._counts[self._groups[j]] += 1
        if self.constraints.min_gap > 0:
            self._block(j)


def pick_by_score(
    pool: Pool,
    budget: int,
    scores: np.ndarray,
    constraints: TemporalConstraints,
    name: str,
    reason: str | np.ndarray,
) -> Selection:
    """Greedy picks of the highest ``scores`` under the temporal rules (ties broken by row order).

    Args:
        pool: Pool to pick from.
        budget: Most picks.
        scores: ``(n,)`` fixed utility per row (higher is better; NaN counts as lowest).
        constraints: Temporal rules.
        name: Selector name for the selection.
        reason: One reason for every pick, or an ``(n,)`` array of reasons per row.

    Returns:
        The selection, utilities being the picked scores.
    """
    budget = effective_budget(pool, budget)
    if budget == 0:
        return empty_selection(name)
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    state = TemporalState(pool, constraints)
    picks: list[int] = []
    utilities: list[float] = []
    reasons: list[str] = []
    if not constraints.active:
        cand = np.flatnonzero(state.available)
        order = cand[np.argsort(-s[cand], kind="stable")][:budget]
        picks = [int(j) for j in order]
    else:
        for _ in range(budget):
            ok = state.eligible()
            if not ok.any():
                break
            j = int(np.argmax(np.where(ok, s, -np.inf)))
            if not ok[j]:  # every eligible score is -inf: take the first eligible row
                j = int(np.flatnonzero(ok)[0])
            state.take(j)
            picks.append(j)
    for j in picks:
        utilities.append(float(s[j]) if np.isfinite(s[j]) else 0.0)
        reasons.append(reason if isinstance(reason, str) else str(reason[j]))
    return make_selection(name, picks, utilities, reasons)


class JointSpace:
    """Squared distances mixing embedding distance and time within a video.

    ``d2(i, j) = (1 - time_weight) * ||e_i - e_j||^2 / 4 + time_weight * tau_ij^2`` with
    ``tau_ij = |t_i - t_j| / duration`` inside a video and ``1`` across videos. Both terms lie in
    ``[0, 1]`` for unit embeddings, so ``time_weight`` is the share of time in the distance.

    Args:
        pool: The pool.
        time_weight: Share of normalised time in the squared distance, in ``[0, 1]``.
        block_size: Rows per block in matrix products.
    """

    def __init__(self, pool: Pool, time_weight: float, block_size: int = 65536) -> None:
        if not 0.0 <= time_weight <= 1.0:
            raise ValueError(f"time_weight must be in [0, 1], got {time_weight!r}")
        self.x = np.ascontiguousarray(pool.embeddings, dtype=np.float32)
        self.sq = np.einsum("ij,ij->i", self.x, self.x)
        self.t = normalised_time(pool)
        self.vid = video_index(pool)
        self.w = float(time_weight)
        self.block_size = block_size

    def __len__(self) -> int:
        return len(self.x)

    def seed(self, rows: np.ndarray) -> np.ndarray:
        """``(n,)`` float64 squared joint distance of every row to the nearest of ``rows`` (``inf`` with none)."""
        min_d = np.full(len(self.x), np.inf)
        for j in rows:
            np.minimum(min_d, self.to_row(int(j)), out=min_d)
        return min_d

    def lower(self, min_d: np.ndarray, j: int) -> None:
        """Lower ``min_d`` in place by the squared joint distances to row ``j``."""
        np.minimum(min_d, self.to_row(j), out=min_d)

    def to_row(self, j: int) -> np.ndarray:
        """``(n,)`` float64 squared joint distances from every row to row ``j``."""
        e = np.empty(len(self.x), dtype=np.float64)
        c = self.x[j]
        for s in range(0, len(self.x), self.block_size):
            e[s : s + self.block_size] = self.x[s : s + self.block_size] @ c
        emb = np.maximum(self.sq + self.sq[j] - 2.0 * e, 0.0) / 4.0
        if self.w == 0.0:
            return emb
        tau = np.where(self.vid == self.vid[j], (self.t - self.t[j]) ** 2, 1.0)
        return (1.0 - self.w) * emb + self.w * tau

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``(len(rows), len(cols))`` float64 squared joint distances."""
        e = self.x[rows] @ self.x[cols].T
        emb = np.maximum(self.sq[rows, None] + self.sq[None, cols] - 2.0 * e, 0.0).astype(np.float64) / 4.0
        if self.w == 0.0:
            return emb
        same = self.vid[rows, None] == self.vid[None, cols]
        tau = np.where(same, (self.t[rows, None] - self.t[None, cols]) ** 2, 1.0)
        return (1.0 - self.w) * emb + self.w * tau


class KCenterSpace(Protocol):
    """Squared distances that :func:`greedy_kcenter` runs on (:class:`JointSpace`, or embeddings)."""

    def seed(self, rows: np.ndarray) -> np.ndarray:
        """``(n,)`` squared distance of every row to the nearest of ``rows`` (``inf`` when empty)."""
        ...

    def lower(self, min_d: np.ndarray, j: int) -> None:
        """Lower ``min_d`` in place by the squared distances to row ``j``."""
        ...


@runtime_checkable
class PrunedKCenterSpace(KCenterSpace, Protocol):
    """A :class:`KCenterSpace` with a faster exact traversal for when no temporal rule applies."""

    def traverse(self, budget: int, seeds: np.ndarray, first: int | None) -> tuple[np.ndarray, np.ndarray]:
        """``(picks, utilities)`` of ``budget`` farthest-first picks.

        The distances start from ``seeds``, or from ``first`` (the first pick, utility ``inf``) when
        there are none.
        """
        ...


def greedy_kcenter(
    space: KCenterSpace,
    pool: Pool,
    budget: int,
    constraints: TemporalConstraints,
    rng: np.random.Generator,
    name: str,
    reason: str,
    first_utility: float = 1.0,
) -> Selection:
    """Farthest-first picks in ``space`` seeded by labelled rows, under the temporal rules.

    With nothing labelled, the first pick is drawn by ``rng`` among the eligible rows, with utility
    ``first_utility`` (the largest possible distance: 1 in the joint space). Other utilities are the
    distance (not squared) from the pick to its nearest earlier centre. A
    :class:`PrunedKCenterSpace` with no rule active runs its own exact traversal instead of
    :func:`farthest_first`, with the same picks.
    """
    budget = effective_budget(pool, budget)
    if budget == 0:
        return empty_selection(name)
    seeds = np.flatnonzero(pool.labeled)
    if not constraints.active and isinstance(space, PrunedKCenterSpace):
        first = None if len(seeds) else int(rng.choice(pool.candidates))
        picks, utilities = space.traverse(budget, seeds, first)
        utilities[~np.isfinite(utilities)] = first_utility
        return Selection(picks, utilities, name, (reason,) * len(picks))
    return farthest_first(pool, constraints, space.seed(seeds), space.lower, budget, rng, first_utility, name, reason)


def farthest_first(
    pool: Pool,
    constraints: TemporalConstraints,
    min_d: np.ndarray,
    update: Callable[[np.ndarray, int], None],
    budget: int,
    rng: np.random.Generator,
    first_utility: float,
    name: str,
    reason: str,
) -> Selection:
    """The greedy max-min loop under the temporal rules, for any distance.

    Args:
        pool: The pool.
        constraints: Gap and shot-coverage rules.
        min_d: ``(n,)`` squared distance of every row to its nearest centre so far (``inf`` when
            nothing is labelled); updated in place.
        update: ``update(min_d, j)`` lowers ``min_d`` by the squared distances to a new centre ``j``.
        budget: Most picks (already capped by the pool).
        rng: Draws the first pick when no row has a finite distance.
        first_utility: Utility of such a draw (the largest possible distance).
        name: Selector name.
        reason: Reason recorded for every pick.
    """
    state = TemporalState(pool, constraints)
    picks: list[int] = []
    utilities: list[float] = []
    for _ in range(budget):
        ok = state.eligible()
        if not ok.any():
            break
        if not np.isfinite(min_d[ok]).any():
            j = int(rng.choice(np.flatnonzero(ok)))
            utility = first_utility
        else:
            j = int(np.argmax(np.where(ok, min_d, -np.inf)))
            utility = float(np.sqrt(max(float(min_d[j]), 0.0)))
        picks.append(j)
        utilities.append(utility)
        state.take(j)
        update(min_d, j)
    return make_selection(name, picks, utilities, [reason] * len(picks))


@register_selector("temporal")
class TemporalSelector:
    """Greedy k-center in the joint embedding-and-time space, seeded by the labelled frames.

    Each pick is the frame farthest, in appearance and in normalised time together, from everything
    labelled or picked so far: it fills the longest, most changing stretch no label covers.

    Args:
        time_weight: Share of normalised time in the joint squared distance (see :class:`JointSpace`).
        min_gap: Least seconds between two picks of one video.
        shot_coverage: Every shot gets a pick before any gets two.
        block_size: Rows per block in distance computations.
    """

    name: ClassVar[str] = "temporal"

    def __init__(
        self,
        time_weight: float = 0.5,
        min_gap: float = 0.0,
        shot_coverage: bool = True,
        block_size: int = 65536,
    ) -> None:
        self.time_weight = time_weight
        self.constraints = TemporalConstraints(min_gap=min_gap, shot_coverage=shot_coverage)
        self.block_size = block_size

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` frames by joint-space farthest-first traversal."""
        space = JointSpace(pool, self.time_weight, self.block_size)
        # nothing covered yet: the largest joint distance is 1
        return greedy_kcenter(space, pool, budget, self.constraints, rng, self.name, "temporal-kcenter", 1.0)
