"""Density: ``typicality`` (TypiClust) and ``probcover`` (ProbCover), both on the embeddings.

* **Typicality** of a frame is the inverse of its mean L2 distance to its ``k`` nearest neighbours
  (found with an exact FAISS index): frames in dense regions are typical. ``typicality`` follows
  TypiClust (Hacohen et al., 2022): cluster the pool into ``labelled + budget`` clusters (k-means),
  then, largest uncovered cluster first, pick the most typical frame of each cluster without a label.
* **ProbCover** (Yehuda et al., 2022) picks greedily the frame whose ball of radius ``delta`` covers
  the most frames not yet covered, starting from the balls of the labelled frames.

How ``delta`` is chosen (``delta=None``): ProbCover's purity rule. The pool is clustered with
k-means into ``purity_clusters`` clusters (default ``labelled + budget``, at least 2); a ball is *pure*
when every frame in it shares its centre's cluster. For a frame, the ball stays pure for every radius
below its distance to the nearest frame of another cluster, so the largest ``delta`` at which a share
``purity`` of balls is pure is the ``1 - purity`` quantile of those distances (computed on up to
``purity_sample`` frames). Pass a number to fix ``delta`` (distances are L2 between unit vectors, so
``delta`` lies in ``(0, 2]``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from curator.pool import Pool, Selection
from curator_selectors.base import effective_budget, empty_selection, make_selection, register_selector
from curator_selectors.temporal import TemporalConstraints, TemporalState


def knn_typicality(x: np.ndarray, n_neighbors: int) -> np.ndarray:
    """``1 / mean L2 distance to the n_neighbors nearest other rows`` through an exact FAISS index.

    Args:
        x: ``(n, d)`` vectors.
        n_neighbors: Neighbours averaged (clipped to ``n - 1``).

    Returns:
        ``(n,)`` float64 typicality; 0 for a lone row, large but finite for exact duplicates.
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    k = min(int(n_neighbors), n - 1)
    if k <= 0:
        return np.zeros(n)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    d2, _ = index.search(x, k + 1)
    # column 0 is (usually) the row itself at distance 0; drop the smallest distance of each row
    dist = np.sqrt(np.maximum(np.sort(d2, axis=1)[:, 1:], 0.0)).astype(np.float64)
    return 1.0 / (dist.mean(axis=1) + 1e-6)


def kmeans_labels(x: np.ndarray, k: int, seed: int, n_iter: int = 20) -> np.ndarray:
    """k-means cluster label per row (FAISS, deterministic for a seed); ``k >= n`` gives each row its own."""
    import faiss

    n = len(x)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    x = np.ascontiguousarray(x, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=n_iter, seed=seed, min_points_per_centroid=1, max_points_per_centroid=256)
    km.train(x)
    _, labels = km.index.search(x, 1)
    return labels[:, 0].astype(np.int64)


@register_selector("typicality")
class TypicalitySelector:
    """TypiClust: the most typical frame of each of the largest clusters without a label.

    The pool is clustered into ``labelled + budget`` clusters (at most ``max_clusters``). Until
    every cluster is covered, each pick goes to the largest cluster with the fewest labelled or
    picked frames, and takes the frame with the highest typicality computed inside that cluster.
    The utility of a pick is that typicality.

    Args:
        n_neighbors: Neighbours in the typicality estimate (TypiClust uses 20).
        max_clusters: Cap on the number of clusters (TypiClust uses 500).
        n_iter: k-means iterations.
        min_gap: Least seconds between two picks of one video (0 disables).
        shot_coverage: Every shot gets a pick before any gets two.
    """

    name: ClassVar[str] = "typicality"

    def __init__(
        self,
        n_neighbors: int = 20,
        max_clusters: int = 500,
        n_iter: int = 20,
        min_gap: float = 0.0,
        shot_coverage: bool = False,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.max_clusters = max_clusters
        self.n_iter = n_iter
        self.constraints = TemporalConstraints(min_gap=min_gap, shot_coverage=shot_coverage)

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` typical frames of uncovered clusters."""
        budget = effective_budget(pool, budget)
        if budget == 0:
            return empty_selection(self.name)
        x = np.ascontiguousarray(pool.embeddings, dtype=np.float32)
        k = max(1, min(int(pool.labeled.sum()) + budget, self.max_clusters, len(x)))
        labels = kmeans_labels(x, k, seed=int(rng.integers(0, 2**31 - 1)), n_iter=self.n_iter)
        typicality = np.zeros(len(x))
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            typicality[rows] = knn_typicality(x[rows], self.n_neighbors)
        sizes = np.bincount(labels, minlength=k).astype(np.float64)
        covered = np.bincount(labels[pool.labeled], minlength=k).astype(np.float64)
        state = TemporalState(pool, self.constraints)
        picks: list[int] = []
        utilities: list[float] = []
        for _ in range(budget):
            ok = state.eligible()
            if not ok.any():
                break
            open_clusters = np.unique(labels[ok])
            # fewest covered first, then largest: lexsort sorts by the last key first
            order = np.lexsort((-sizes[open_clusters], covered[open_clusters]))
            c = open_clusters[order[0]]
            rows = np.flatnonzero(ok & (labels == c))
            j = int(rows[np.argmax(typicality[rows])])
            picks.append(j)
            utilities.append(float(typicality[j]))
            covered[c] += 1
            state.take(j)
        return make_selection(self.name, picks, utilities, ["typicality"] * len(picks))


def purity_delta(
    x: np.ndarray, labels: np.ndarray, purity: float, sample: int, rng: np.random.Generator, block: int = 4096
) -> float:
    """Largest radius at which a share ``purity`` of balls hold one cluster (see module docstring)."""
    n = len(x)
    if len(np.unique(labels)) < 2:
        return 2.0  # one cluster: every ball is pure; the largest possible distance
    rows = np.arange(n) if n <= sample else np.sort(rng.choice(n, sample, replace=False))
    sq = np.einsum("ij,ij->i", x, x)
    radius = np.empty(len(rows))
    for s in range(0, len(rows), block):
        r = rows[s : s + block]
        d2 = sq[r, None] + sq[None, :] - 2.0 * (x[r] @ x.T)
        d2[labels[r, None] == labels[None, :]] = np.inf
        radius[s : s + block] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return float(np.quantile(radius, 1.0 - purity))


@register_selector("probcover")
class ProbCoverSelector:
    """ProbCover: greedy maximum coverage of ``delta``-balls, starting from the labelled frames.

    Builds the graph of frames within ``delta`` of each other (FAISS range search), marks the balls of
    labelled frames covered, then repeatedly picks the eligible frame whose ball holds the most
    uncovered frames. Once everything is covered the remaining picks are farthest-first (k-center)
    from what is picked and labelled (reason ``probcover-fallback``). The utility of a pick is the
    share of the pool it newly covers (its distance to the nearest centre after the fallback).

    Args:
        delta: Ball radius (L2 between unit embeddings); ``None`` chooses it by the purity rule in
            the module docstring.
        purity: Share of pure balls the chosen ``delta`` keeps (ProbCover uses 0.95).
        purity_clusters: k-means clusters for the purity rule (default ``labelled + budget``).
        purity_sample: Frames on which the purity rule is evaluated.
        n_iter: k-means iterations.
        min_gap: Least seconds between two picks of one video (0 disables).
        shot_coverage: Every shot gets a pick before any gets two.
    """

    name: ClassVar[str] = "probcover"

    def __init__(
        self,
        delta: float | None = None,
        purity: float = 0.95,
        purity_clusters: int | None = None,
        purity_sample: int = 2000,
        n_iter: int = 20,
        min_gap: float = 0.0,
        shot_coverage: bool = False,
    ) -> None:
        if delta is not None and delta <= 0:
            raise ValueError(f"delta must be > 0 or None, got {delta!r}")
        if not 0.0 < purity <= 1.0:
            raise ValueError(f"purity must be in (0, 1], got {purity!r}")
        self.delta = delta
        self.purity = purity
        self.purity_clusters = purity_clusters
        self.purity_sample = purity_sample
        self.n_iter = n_iter
        self.constraints = TemporalConstraints(min_gap=min_gap, shot_coverage=shot_coverage)

    def choose_delta(self, pool: Pool, budget: int, rng: np.random.Generator) -> float:
        """The ball radius used for ``pool`` at ``budget`` (``self.delta`` when set)."""
        if self.delta is not None:
            return float(self.delta)
        x = np.ascontiguousarray(pool.embeddings, dtype=np.float32)
        k = self.purity_clusters or max(2, int(pool.labeled.sum()) + budget)
        labels = kmeans_labels(x, min(k, len(x)), seed=int(rng.integers(0, 2**31 - 1)), n_iter=self.n_iter)
        return max(purity_delta(x, labels, self.purity, self.purity_sample, rng), 1e-6)

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` frames by greedy ball coverage."""
        import faiss

        budget = effective_budget(pool, budget)
        if budget == 0:
            return empty_selection(self.name)
        x = np.ascontiguousarray(pool.embeddings, dtype=np.float32)
        n = len(x)
        delta = self.choose_delta(pool, budget, rng)
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x)
        lims, _, nbrs = index.range_search(x, float(delta) ** 2)
        lims = lims.astype(np.int64)
        nbrs = nbrs.astype(np.int64)
        owner = np.repeat(np.arange(n), np.diff(lims))
        covered = np.zeros(n, dtype=bool)

        def cover(j: int) -> int:
            ball = nbrs[lims[j] : lims[j + 1]]
            new = ball[~covered[ball]]
            covered[new] = True
            # every frame whose ball holds a newly covered frame loses one unit of gain per such frame
            if len(new):
                touched = np.concatenate([nbrs[lims[u] : lims[u + 1]] for u in new])
                gain[:] -= np.bincount(touched, minlength=n)
            return len(new)

        gain = np.bincount(owner, minlength=n).astype(np.int64)
        for lab in np.flatnonzero(pool.labeled):
            cover(int(lab))
        state = TemporalState(pool, self.constraints)
        min_d = np.full(n, np.inf, dtype=np.float32)
        sq = np.einsum("ij,ij->i", x, x)

        def near(j: int) -> None:
            np.minimum(min_d, np.maximum(sq + sq[j] - 2.0 * (x @ x[j]), 0.0), out=min_d)

        for lab in np.flatnonzero(pool.labeled):
            near(int(lab))
        picks: list[int] = []
        utilities: list[float] = []
        reasons: list[str] = []
        for _ in range(budget):
            ok = state.eligible()
            if not ok.any():
                break
            g = np.where(ok, gain, -1)
            j = int(np.argmax(g))
            if g[j] > 0:
                utilities.append(cover(j) / n)
                reasons.append("probcover")
            else:
                if np.isfinite(min_d[ok]).any():
                    j = int(np.argmax(np.where(ok, min_d, -np.inf)))
                    utilities.append(float(np.sqrt(max(float(min_d[j]), 0.0))))
                else:
                    j = int(np.flatnonzero(ok)[0])
                    utilities.append(0.0)
                reasons.append("probcover-fallback")
                cover(j)
            picks.append(j)
            state.take(j)
            near(j)
        return make_selection(self.name, picks, utilities, reasons)
