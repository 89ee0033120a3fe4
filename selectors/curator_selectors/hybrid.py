"""Combinations: ``hybrid`` (weighted diversity, density and uncertainty) and ``curator`` (the default).

``hybrid`` follows Lightly's strategy strengths: each criterion is scaled to ``[0, 1]`` over the
eligible frames and the pick maximises their weighted sum; its reason is the criterion that
contributed most.

``curator`` is a weighted k-medoids in the joint embedding-and-time space of
:class:`~curator_selectors.temporal.JointSpace`: it minimises the total squared joint distance from
every frame to its nearest keyframe (labelled or picked), the cost a propagator pays to carry a mask
there. Greedy picks (the first is the pool's joint medoid, so one keyframe lands on a typical frame
near the middle of the video) are refined by Voronoi swaps, shots are covered first, and per-frame
uncertainty scores, when the pool has them, weight the frames that are hard for the propagator.

Inside one clip, time spacing is what matters, so ``curator`` weights time far above appearance
(``time_weight`` 0.85); across videos, the uncertainty weights send frames to the videos that
propagate worst. The measurements behind these defaults, and the placements tried and dropped, are
in ``docs/experiments.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from curator.pool import Pool, Selection
from curator_selectors.base import (
    effective_budget,
    empty_selection,
    make_selection,
    minmax,
    register_selector,
)
from curator_selectors.density import knn_typicality
from curator_selectors.temporal import JointSpace, TemporalConstraints, TemporalState, shot_groups
from curator_selectors.uncertainty import SCORE_NAMES, first_score, uncertainty_utility

#: Default order in which uncertainty scores are looked up in ``pool.scores``.
#: ``propagation_confidence`` comes before the proxy's scores because it follows the propagated masks'
#: error most closely (correlations in ``docs/experiments.md``).
UNCERTAINTY_ORDER: tuple[str, ...] = (
    "disagreement",
    "propagation_confidence",
    "proxy_disagreement",
    "mc_disagreement",
    "entropy_top",
    "entropy",
    "margin_top",
    "margin",
    "confidence_top",
    "confidence",
)


@register_selector("hybrid")
class HybridSelector:
    """Greedy picks maximising a weighted sum of diversity, density and uncertainty.

    * diversity: joint embedding-and-time distance to the nearest labelled or picked frame;
    * density: k-nearest-neighbour typicality (FAISS) of the frame's embedding;
    * uncertainty: the first of ``uncertainty_scores`` present in the pool (ignored if none is).

    Each criterion is min-max scaled over the eligible frames at every step. With ``adaptive``, the
    density weight is multiplied by ``max(0, 1 - (labelled + budget) / (adaptive_fraction * n))`` and
    diversity gets the remainder, so typical frames lead at low budgets and diverse ones at high
    budgets (TypiClust's finding).

    Args:
        weights: Strength per criterion, keys ``diversity``, ``density``, ``uncertainty``.
        time_weight: Share of normalised time in the joint distance of the diversity term.
        n_neighbors: Neighbours in the typicality estimate.
        uncertainty_scores: Score names tried in order for the uncertainty term.
        adaptive: Shift weight from density to diversity as the budget grows.
        adaptive_fraction: Share of the pool at which density's weight reaches 0 when adaptive.
        min_gap: Least seconds between two picks of one video (0 disables).
        shot_coverage: Every shot gets a pick before any gets two.
    """

    name: ClassVar[str] = "hybrid"

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        time_weight: float = 0.5,
        n_neighbors: int = 10,
        uncertainty_scores: tuple[str, ...] = UNCERTAINTY_ORDER,
        adaptive: bool = True,
        adaptive_fraction: float = 0.2,
        min_gap: float = 0.0,
        shot_coverage: bool = True,
    ) -> None:
        self.weights = {"diversity": 1.0, "density": 1.0, "uncertainty": 1.0, **(weights or {})}
        unknown = set(self.weights) - {"diversity", "density", "uncertainty"}
        if unknown:
            raise ValueError(f"unknown weights {sorted(unknown)}; valid: diversity, density, uncertainty")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError(f"weights must be >= 0, got {self.weights}")
        bad = [s for s in uncertainty_scores if s not in SCORE_NAMES]
        if bad:
            raise ValueError(f"unknown uncertainty scores {bad}; known: {', '.join(SCORE_NAMES)}")
        self.time_weight = time_weight
        self.n_neighbors = n_neighbors
        self.uncertainty_scores = tuple(uncertainty_scores)
        self.adaptive = adaptive
        self.adaptive_fraction = adaptive_fraction
        self.constraints = TemporalConstraints(min_gap=min_gap, shot_coverage=shot_coverage)

    def effective_weights(self, pool: Pool, budget: int) -> dict[str, float]:
        """The criterion weights used for ``pool`` and ``budget`` (after the adaptive shift)."""
        w = dict(self.weights)
        if self.adaptive and len(pool):
            share = (int(pool.labeled.sum()) + budget) / (self.adaptive_fraction * len(pool))
            keep = max(0.0, 1.0 - share)
            w["diversity"] += w["density"] * (1.0 - keep)
            w["density"] *= keep
        if first_score(pool, self.uncertainty_scores) is None:
            w["uncertainty"] = 0.0
        return w

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` frames by the weighted criteria."""
        budget = effective_budget(pool, budget)
        if budget == 0:
            return empty_selection(self.name)
        w = self.effective_weights(pool, budget)
        space = JointSpace(pool, self.time_weight)
        n = len(pool)
        density = knn_typicality(space.x, self.n_neighbors) if w["density"] > 0 else np.zeros(n)
        score = first_score(pool, self.uncertainty_scores)
        uncertainty = uncertainty_utility(pool, score) if score and w["uncertainty"] > 0 else np.zeros(n)
        min_d = space.seed(np.flatnonzero(pool.labeled))
        state = TemporalState(pool, self.constraints)
        total = sum(w.values()) or 1.0
        picks: list[int] = []
        utilities: list[float] = []
        reasons: list[str] = []
        for _ in range(budget):
            ok = state.eligible()
            if not ok.any():
                break
            div = np.ones(n) if not np.isfinite(min_d[ok]).any() else minmax(np.sqrt(min_d), ok)
            parts = {
                "diversity": w["diversity"] * div,
                "density": w["density"] * minmax(density, ok),
                "uncertainty": w["uncertainty"] * minmax(uncertainty, ok),
            }
            utility: np.ndarray = np.sum(list(parts.values()), axis=0) / total
            # deterministic tie-break by a tiny rng jitter so equal utilities do not favour row 0
            jitter = rng.random(n) * 1e-9
            j = int(np.argmax(np.where(ok, utility + jitter, -np.inf)))
            picks.append(j)
            utilities.append(float(utility[j]))
            reasons.append(max(parts, key=lambda k: parts[k][j]))
            state.take(j)
            space.lower(min_d, j)
        return make_selection(self.name, picks, utilities, reasons)


@register_selector("curator")
class CuratorSelector:
    """The recommended default: weighted k-medoids in the joint embedding-and-time space.

    Minimises ``sum_i w_i * min_k d2(i, k)`` over keyframes ``k`` (labelled frames count as fixed
    keyframes), where ``d2`` is the joint squared distance of :class:`JointSpace` and
    ``w_i = 1 + uncertainty_weight * u_i`` with ``u`` the first available uncertainty score scaled to
    ``[0, 1]`` (``w = 1`` when the pool has none). A frame with no keyframe in its video costs
    ``1``. Picks are made greedily (largest drop in cost first, shots without a keyframe first), then
    each pick is moved to the medoid of the frames it serves, within its shot, for up to
    ``swap_rounds`` rounds. Candidate keyframes are limited to ``max_candidates`` frames spread evenly
    over the pool so memory stays ``O(n * max_candidates)``.

    Reasons: ``medoid`` for a pick whose frames it serves are typical of them, and the utility is the
    share of the remaining cost the pick removed when it was chosen.

    Args:
        time_weight: Share of normalised time in the joint squared distance.
        uncertainty_weight: How much more an uncertain frame counts (0 ignores scores).
        uncertainty_scores: Score names tried in order.
        swap_rounds: Voronoi refinement rounds after the greedy picks (0 disables).
        max_candidates: Most frames considered as keyframes.
        min_gap: Least seconds between two picks of one video (0 disables).
        shot_coverage: Every shot gets a pick before any gets two.
    """

    name: ClassVar[str] = "curator"

    def __init__(
        self,
        time_weight: float = 0.85,
        uncertainty_weight: float = 4.0,
        uncertainty_scores: tuple[str, ...] = UNCERTAINTY_ORDER,
        swap_rounds: int = 5,
        max_candidates: int = 2048,
        min_gap: float = 0.0,
        shot_coverage: bool = True,
    ) -> None:
        if uncertainty_weight < 0:
            raise ValueError(f"uncertainty_weight must be >= 0, got {uncertainty_weight!r}")
        self.time_weight = time_weight
        self.uncertainty_weight = uncertainty_weight
        self.uncertainty_scores = tuple(uncertainty_scores)
        self.swap_rounds = swap_rounds
        self.max_candidates = max_candidates
        self.constraints = TemporalConstraints(min_gap=min_gap, shot_coverage=shot_coverage)

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` keyframes minimising the joint propagation cost."""
        budget = effective_budget(pool, budget)
        if budget == 0:
            return empty_selection(self.name)
        n = len(pool)
        space = JointSpace(pool, self.time_weight)
        weight = np.ones(n)
        score = first_score(pool, self.uncertainty_scores)
        if score is not None and self.uncertainty_weight > 0:
            weight += self.uncertainty_weight * minmax(uncertainty_utility(pool, score))
        cand = pool.candidates
        if len(cand) > self.max_candidates:
            order = cand[np.lexsort((pool.timestamps[cand], pool.video_ids[cand]))]
            cand = np.sort(order[np.linspace(0, len(order) - 1, self.max_candidates).astype(np.int64)])
        col = np.full(n, -1, dtype=np.int64)
        col[cand] = np.arange(len(cand))
        dist = space.block(np.arange(n), cand)  # (n, m) joint squared distances
        # cost of each frame today: 1 with no keyframe, else its distance to the nearest labelled frame
        cost = np.ones(n)
        for s in range(0, int(pool.labeled.sum()), 1024):
            lab = np.flatnonzero(pool.labeled)[s : s + 1024]
            np.minimum(cost, space.block(np.arange(n), lab).min(axis=1), out=cost)
        state = TemporalState(pool, self.constraints)
        picks: list[int] = []
        utilities: list[float] = []
        for _ in range(budget):
            ok = state.eligible()
            ok_cols = np.flatnonzero(ok[cand])
            if len(ok_cols) == 0:  # candidates exhausted: fall back to every eligible frame
                rows = np.flatnonzero(ok)
                if len(rows) == 0:
                    break
                d = space.block(np.arange(n), rows)
            else:
                rows = cand[ok_cols]
                d = dist[:, ok_cols]
            gain = (weight[:, None] * np.maximum(cost[:, None] - d, 0.0)).sum(axis=0)
            k = int(np.argmax(gain))
            j = int(rows[k])
            total = float((weight * cost).sum())
            utilities.append(float(gain[k]) / total if total > 0 else 0.0)
            picks.append(j)
            state.take(j)
            np.minimum(cost, d[:, k], out=cost)
        reasons = ["medoid"] * len(picks)
        if self.swap_rounds > 0 and picks:
            picks = self._refine(pool, space, picks, weight, dist, cand, col)
            if len(picks) < budget:
                # moving picks may free frames the gap rule blocked before: fill the budget with them
                self._fill(pool, space, picks, utilities, reasons, weight, budget)
        return make_selection(self.name, picks, utilities, reasons)

    def _fill(
        self,
        pool: Pool,
        space: JointSpace,
        picks: list[int],
        utilities: list[float],
        reasons: list[str],
        weight: np.ndarray,
        budget: int,
    ) -> None:
        """Greedy picks among frames still eligible after refinement, until the budget or none is left."""
        n = len(pool)
        state = TemporalState(pool, self.constraints)
        for j in picks:
            state.take(j)
        cost = np.ones(n)
        keys = np.concatenate([np.flatnonzero(pool.labeled), np.asarray(picks, dtype=np.int64)])
        for s in range(0, len(keys), 1024):
            np.minimum(cost, space.block(np.arange(n), keys[s : s + 1024]).min(axis=1), out=cost)
        while len(picks) < budget:
            rows = np.flatnonzero(state.eligible())
            if len(rows) == 0:
                break
            d = space.block(np.arange(n), rows)
            gain = (weight[:, None] * np.maximum(cost[:, None] - d, 0.0)).sum(axis=0)
            k = int(np.argmax(gain))
            total = float((weight * cost).sum())
            picks.append(int(rows[k]))
            utilities.append(float(gain[k]) / total if total > 0 else 0.0)
            reasons.append("medoid")
            state.take(int(rows[k]))
            np.minimum(cost, d[:, k], out=cost)

    def _refine(
        self,
        pool: Pool,
        space: JointSpace,
        picks: list[int],
        weight: np.ndarray,
        dist: np.ndarray,
        cand: np.ndarray,
        col: np.ndarray,
    ) -> list[int]:
        """Voronoi iteration: move each pick to the weighted medoid of the frames it serves.

        Replacements stay in the pick's shot and respect ``min_gap`` to the other keyframes, so the
        temporal rules that held after the greedy phase still hold.
        """
        n = len(pool)
        groups = shot_groups(pool)
        labeled = np.flatnonzero(pool.labeled)
        picks = list(picks)
        for _ in range(self.swap_rounds):
            keys = np.asarray(labeled.tolist() + picks, dtype=np.int64)
            to_keys = np.empty((n, len(keys)))
            for i, key in enumerate(keys):
                to_keys[:, i] = dist[:, col[key]] if col[key] >= 0 else space.to_row(int(key))
            owner = np.argmin(to_keys, axis=1)
            changed = False
            for p in range(len(picks)):
                served = np.flatnonzero(owner == len(labeled) + p)
                if len(served) == 0:
                    continue
                options = cand[(groups[cand] == groups[picks[p]]) & ~pool.labeled[cand]]
                others = [q for i, q in enumerate(picks) if i != p]
                options = options[~np.isin(options, others)]
                if self.constraints.min_gap > 0:
                    options = self._gap_ok(pool, options, np.asarray(others + labeled.tolist(), dtype=np.int64))
                if len(options) == 0:
                    continue
                cost = (weight[served, None] * dist[np.ix_(served, col[options])]).sum(axis=0)
                best = int(options[int(np.argmin(cost))])
                current = (weight[served] * to_keys[served, len(labeled) + p]).sum()
                if best != picks[p] and cost.min() < current - 1e-12:
                    picks[p] = best
                    changed = True
            if not changed:
                break
        return picks

    def _gap_ok(self, pool: Pool, options: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The ``options`` at least ``min_gap`` seconds from every key frame of the same video."""
        if len(keys) == 0 or len(options) == 0:
            return options
        same = pool.video_ids[options, None] == pool.video_ids[None, keys]
        close = np.abs(pool.timestamps[options, None] - pool.timestamps[None, keys]) < self.constraints.min_gap
        if not self.constraints.gap_to_labeled:
            close &= ~pool.labeled[None, keys]
        return options[~(same & close).any(axis=1)]
