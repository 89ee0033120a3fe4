"""Density: ``typicality`` (TypiClust) and ``probcover`` (ProbCover), both on the embeddings.

* **Typicality** of a frame is the inverse of its mean L2 distance to its ``k`` nearest neighbours:
  frames in dense regions are typical. ``typicality`` follows
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

Where neighbours come from: when the pool carries a neighbour provider (``Pool.knn``, answered by
the project's FAISS index), typicality takes each frame's nearest frames of its own cluster from the
provider's lists and ProbCover builds each ball from them; only frames whose lists are too short
(a cluster's edge, a ball wider than the list) are searched exactly. Without a provider both search
exact FAISS indexes over the pool, as before. Either way candidate neighbours are only candidates:
the distances that decide (which ``k`` are nearest, who is inside a ball) are recomputed in float64
from the embeddings by one function, so with an exact index both paths give the same picks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from curator.pool import Pool, Selection
from curator_selectors.base import effective_budget, empty_selection, make_selection, register_selector
from curator_selectors.temporal import TemporalConstraints, TemporalState

#: Candidate neighbours searched beyond those needed, so that float32 near-ties at the end of a
#: neighbour list cannot decide which neighbours count (the float64 distances decide).
SLACK = 4


def pair_sq_dists(x: np.ndarray, a: np.ndarray, b: np.ndarray, block: int = 1 << 22) -> np.ndarray:
    """Squared L2 distances in float64 between rows ``x[a[i]]`` and ``x[b[i]]``.

    Every pair is computed on its own from the vectors (the same bits for ``(a, b)`` as for
    ``(b, a)``, whatever else is in the batch), so callers that reach the same pairs by different
    searches get the same distances.

    Args:
        x: ``(n, d)`` vectors.
        a: Row indices, any shape.
        b: Row indices, the shape of ``a``.
        block: Vector elements per temporary (bounds memory).

    Returns:
        float64 array of the shape of ``a``.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    fa, fb = a.ravel(), b.ravel()
    out = np.empty(len(fa), dtype=np.float64)
    step = max(1, block // max(1, x.shape[1]))
    for s in range(0, len(fa), step):
        diff = x[fa[s : s + step]].astype(np.float64) - x[fb[s : s + step]].astype(np.float64)
        out[s : s + step] = np.square(diff).sum(axis=1)
    return out.reshape(a.shape)


def _mean_nearest(x: np.ndarray, rows: np.ndarray, cand: np.ndarray, need: int) -> np.ndarray:
    """Mean float64 distance from ``x[rows[i]]`` to its ``need`` nearest among the rows ``cand[i]``.

    ``cand`` is ``(len(rows), width)`` with ``-1`` for no candidate; every row must have at least
    ``need`` candidates.
    """
    valid = cand >= 0
    d2 = np.full(cand.shape, np.inf)
    d2[valid] = pair_sq_dists(x, np.broadcast_to(rows[:, None], cand.shape)[valid], cand[valid])
    d2.sort(axis=1)
    dist = np.ascontiguousarray(np.sqrt(np.maximum(d2[:, :need], 0.0)))
    return dist.sum(axis=1) / need


def knn_typicality(x: np.ndarray, n_neighbors: int) -> np.ndarray:
    """``1 / mean L2 distance to the n_neighbors nearest other rows`` through an exact FAISS index.

    The index finds ``n_neighbors + SLACK`` candidates a row; their distances are recomputed in
    float64 (:func:`pair_sq_dists`) and the nearest ``n_neighbors`` averaged.

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
    _, found = index.search(x, min(n - 1, k + SLACK) + 1)
    rows = np.arange(n)
    cand = np.where(found == rows[:, None], -1, found)  # a row is not its own neighbour
    return 1.0 / (_mean_nearest(x, rows, cand, k) + 1e-6)


def cluster_typicality(
    x: np.ndarray,
    labels: np.ndarray,
    n_neighbors: int,
    knn: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Typicality of every row among the rows of its own cluster (:func:`knn_typicality` per cluster).

    With a neighbour provider ``knn`` (``Pool.knn``) a row's candidates are the rows of its cluster
    in its provider list; rows with too few of them (near a cluster's edge) are searched exactly
    inside their cluster. The result equals the provider-free one when the provider is exact.

    Args:
        x: ``(n, d)`` float32 vectors.
        labels: ``(n,)`` cluster of each row.
        n_neighbors: Neighbours averaged (clipped to the cluster size minus one).
        knn: Optional ``k -> (similarities, rows)`` of every row's ``k`` nearest other rows.
    """
    import faiss

    n = len(x)
    typicality = np.zeros(n)
    if knn is None:
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            typicality[rows] = knn_typicality(x[rows], n_neighbors)
        return typicality
    size = np.bincount(labels)[labels]
    need = np.minimum(int(n_neighbors), size - 1)
    width = min(n - 1, 2 * int(n_neighbors) + SLACK)
    if width > 0:
        _, nbrs = knn(width)
    else:
        nbrs = np.full((n, 0), -1, dtype=np.int64)
    nbrs = np.asarray(nbrs, dtype=np.int64)
    same = (nbrs >= 0) & (labels[np.maximum(nbrs, 0)] == labels[:, None]) & (nbrs != np.arange(n)[:, None])
    cand = np.where(same, nbrs, -1)
    enough = same.sum(axis=1) >= np.minimum(need + SLACK, size - 1)
    for value in np.unique(need[need > 0]):
        rows = np.flatnonzero(enough & (need == value))
        if len(rows):
            typicality[rows] = 1.0 / (_mean_nearest(x, rows, cand[rows], int(value)) + 1e-6)
    for c in np.unique(labels[~enough & (need > 0)]):
        members = np.flatnonzero(labels == c)
        queries = np.flatnonzero((labels == c) & ~enough)
        kc = min(int(n_neighbors), len(members) - 1)
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(np.ascontiguousarray(x[members]))
        _, local = index.search(np.ascontiguousarray(x[queries]), min(len(members) - 1, kc + SLACK) + 1)
        found = np.where(local >= 0, members[np.maximum(local, 0)], -1)
        found[found == queries[:, None]] = -1
        typicality[queries] = 1.0 / (_mean_nearest(x, queries, found, kc) + 1e-6)
    return typicality


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
        typicality = cluster_typicality(x, labels, self.n_neighbors, pool.knn)
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


def delta_balls(
    x: np.ndarray,
    delta: float,
    knn: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None,
    width: int = 64,
    max_entries: int = 64_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``delta``-ball of every row: rows ``j`` with ``||x_i - x_j|| < delta`` (float64), itself included.

    Candidates come from the neighbour provider ``knn`` (``Pool.knn``, cosine similarities of unit
    vectors, so squared L2 is ``2 - 2 cos``) for rows whose list reaches past the ball, and from an
    exact FAISS range search (``x`` a little wider than ``delta``) for the rest, or for all rows
    without a provider. Membership is then decided by :func:`pair_sq_dists`, so the balls are
    symmetric and do not depend on which search found the candidates.

    Args:
        x: ``(n, d)`` float32 vectors.
        delta: Ball radius.
        knn: Optional ``k -> (similarities, rows)`` of every row's ``k`` nearest other rows.
        width: Neighbours asked of ``knn`` a row (fewer if ``n * width`` would pass ``max_entries``).
        max_entries: Cap on ``n * width``, the size of the provider's answer.

    Returns:
        ``(lims, nbrs)`` in FAISS range-search layout: row ``i``'s ball is ``nbrs[lims[i]:lims[i+1]]``.
    """
    import faiss

    n = len(x)
    r2 = float(delta) ** 2
    wide = r2 * (1.0 + 1e-4) + 1e-6  # float32 search error cannot push a member out of this radius
    owners: list[np.ndarray] = []
    members: list[np.ndarray] = []
    searched = np.ones(n, dtype=bool)
    k = min(n - 1, max(1, min(int(width), max_entries // max(n, 1))))
    if knn is not None and k > 0:
        sims, nbrs = knn(k)
        nbrs = np.asarray(nbrs, dtype=np.int64)
        valid = (nbrs >= 0) & (nbrs != np.arange(n)[:, None])
        beyond = valid & (2.0 - 2.0 * np.asarray(sims, dtype=np.float64) > wide)
        # a list that reaches past the ball holds all of it (lists are best first)
        done = beyond.any(axis=1)
        searched = ~done
        rows = np.flatnonzero(done)
        inside = valid[rows] & ~beyond[rows]
        owners += [rows, np.repeat(rows, inside.sum(axis=1))]
        members += [rows, nbrs[rows][inside]]
    rows = np.flatnonzero(searched)
    if len(rows):
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x)
        lims, _, found = index.range_search(np.ascontiguousarray(x[rows]), wide)
        counts = np.diff(np.asarray(lims, dtype=np.int64)).astype(np.int64)
        owners.append(np.repeat(rows, counts))
        members.append(found.astype(np.int64))
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    member = np.concatenate(members) if members else np.zeros(0, dtype=np.int64)
    keep = pair_sq_dists(x, owner, member) < r2
    owner, member = owner[keep], member[keep]
    order = np.argsort(owner, kind="stable")
    lims_out = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))]).astype(np.int64)
    return lims_out, member[order]


@register_selector("probcover")
class ProbCoverSelector:
    """ProbCover: greedy maximum coverage of ``delta``-balls, starting from the labelled frames.

    Builds the graph of frames within ``delta`` of each other (:func:`delta_balls`: the pool's
    neighbour provider where it reaches, an exact FAISS range search elsewhere), marks the balls of
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
        budget = effective_budget(pool, budget)
        if budget == 0:
            return empty_selection(self.name)
        x = np.ascontiguousarray(pool.embeddings, dtype=np.float32)
        n = len(x)
        delta = self.choose_delta(pool, budget, rng)
        lims, nbrs = delta_balls(x, delta, pool.knn)
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
