"""Diversity: greedy k-center (Coreset) over the embeddings, seeded by labelled frames.

The selector runs :func:`curator_selectors.temporal.greedy_kcenter` in :class:`EmbeddingSpace`.
Without temporal rules that takes the exact, accelerated farthest-first traversal of
:func:`pruned_farthest_first`. Every point remembers its squared distance to the nearest centre.
The pool is split once into Voronoi cells stored contiguously; when a centre arrives, the triangle
inequality rules out every cell that it cannot bring closer, and only the rest are recomputed, so
1,000 picks out of 100,000 vectors touch a few percent of the pool per pick instead of all of it.
Memory is ``O(n)``: no ``n x n`` or ``n x k`` matrix is built.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from curator.pool import Pool, Selection
from curator_selectors.base import register_selector
from curator_selectors.temporal import TemporalConstraints, greedy_kcenter


def _sq_dist_update(min_d: np.ndarray, x: np.ndarray, centres: np.ndarray, block: int) -> None:
    """``min_d = min(min_d, ||x - c||^2)`` over ``centres``, in row blocks (no n x k matrix)."""
    sq_x = np.einsum("ij,ij->i", x, x)
    sq_c = np.einsum("ij,ij->i", centres, centres)
    for start in range(0, len(x), block):
        xb = x[start : start + block]
        d = sq_x[start : start + block, None] + sq_c[None, :] - 2.0 * (xb @ centres.T)
        np.minimum(min_d[start : start + block], d.min(axis=1), out=min_d[start : start + block])


def _nearest_seed(x: np.ndarray, seeds: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Index into ``seeds`` of each row's nearest seed and the (not squared) L2 distance to it."""
    try:
        import faiss

        index = faiss.IndexFlatL2(x.shape[1])
        index.add(np.ascontiguousarray(x[seeds]))
        d2, nearest = index.search(x, 1)
        return nearest[:, 0].astype(np.int64), np.sqrt(np.maximum(d2[:, 0], 0.0)).astype(np.float32)
    except ImportError:  # pragma: no cover - faiss is a core dependency
        c = x[seeds]
        sq_c = np.einsum("ij,ij->i", c, c)
        nearest = np.empty(len(x), dtype=np.int64)
        dist = np.empty(len(x), dtype=np.float32)
        for s in range(0, len(x), block):
            xb = x[s : s + block]
            d2 = np.einsum("ij,ij->i", xb, xb)[:, None] + sq_c[None, :] - 2.0 * (xb @ c.T)
            nearest[s : s + block] = d2.argmin(axis=1)
            dist[s : s + block] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
        return nearest, dist


@contextlib.contextmanager
def _single_thread_blas() -> Iterator[None]:
    """Limit BLAS to one thread inside the block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _assign_cells(x: np.ndarray, refs: np.ndarray, rank: int | None, block: int) -> np.ndarray:
    """Index into ``refs`` of each row's nearest reference, searched in a rank-``rank`` PCA projection.

    Cells only need to be compact, not exact Voronoi cells (the pruning uses exact distances to the
    reference), so a cheap low-rank search is enough.
    """
    if rank is not None and rank < x.shape[1]:
        sample = x[:: max(1, len(x) // 20000)].astype(np.float64)
        sample -= sample.mean(axis=0)
        _, vecs = np.linalg.eigh(sample.T @ sample)
        basis = np.ascontiguousarray(vecs[:, ::-1][:, :rank], dtype=np.float32)
        z = np.empty((len(x), basis.shape[1]), dtype=np.float32)
        for s in range(0, len(x), block):
            z[s : s + block] = x[s : s + block] @ basis
    else:
        z = x
    nearest, _ = _nearest_seed(z, refs, block)
    return nearest


def _build_cells(
    x: np.ndarray, groups: int | None, exact_below: int, assign_rank: int | None, block_size: int
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split the rows into cells around evenly strided reference rows (one cell below ``exact_below``).

    Returns:
        ``(g, refs, order, bounds, ref_dist)``: the number of cells, the reference rows, the row order
        that stores the rows cell by cell (each cell sorted by distance to its reference, farthest
        first), the cell boundaries in that order, and each stored row's distance to its reference.
    """
    n = len(x)
    if n < exact_below:
        return 1, np.zeros(0, dtype=np.int64), np.arange(n), np.array([0, n]), np.zeros(n, dtype=np.float32)
    g = groups or int(np.clip(2 * np.sqrt(n), 16, 2048))
    refs = np.linspace(0, n - 1, g).astype(np.int64)
    cell = _assign_cells(x, refs, assign_rank, block_size)
    # distance of every row to its cell's reference point, full dimension
    to_ref = np.empty(n, dtype=np.float32)
    for s in range(0, n, block_size):
        diff = x[s : s + block_size] - x[refs[cell[s : s + block_size]]]
        to_ref[s : s + block_size] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    # rows grouped by cell, each cell sorted by distance to its reference, farthest first
    order = np.lexsort((-to_ref, cell))
    bounds = np.searchsorted(cell[order], np.arange(g + 1))
    return g, refs, order, bounds, to_ref[order]


class _PrunedTraversal:
    """The state of :func:`pruned_farthest_first`: rows stored cell by cell, with pruning bounds.

    ``d2`` is every stored row's squared distance to its nearest centre (``-inf`` for centres) and
    ``cell_max`` an upper bound of ``d2`` per cell.
    """

    def __init__(
        self,
        x: np.ndarray,
        block_size: int,
        groups: int | None,
        exact_below: int,
        slack: float,
        assign_rank: int | None,
        gather_below: int,
    ) -> None:
        self.n = n = len(x)
        self.block_size, self.slack, self.gather_below = block_size, slack, gather_below
        g, refs, self.order, self.bounds, ref_dist = _build_cells(x, groups, exact_below, assign_rank, block_size)
        self.g = g
        self.xs = x[self.order] if g > 1 else x
        self.rank = np.empty(n, dtype=np.int64)
        self.rank[self.order] = np.arange(n)
        self.sq = np.einsum("ij,ij->i", self.xs, self.xs)
        self.d2 = np.full(n, np.inf, dtype=np.float32)
        self.cell_max = np.zeros(g, dtype=np.float64)
        if g > 1:
            self.ref_vecs = x[refs]
            self.ref_sq = np.einsum("ij,ij->i", self.ref_vecs, self.ref_vecs)
            bounds = self.bounds
            self.radius = np.array(
                [float(ref_dist[bounds[a]]) if bounds[a + 1] > bounds[a] else 0.0 for a in range(g)], dtype=np.float64
            )
            # one globally sorted key per row (cell, then negated distance to the cell's reference), so the
            # window of every visited cell comes out of a single searchsorted call
            self.spread = float(ref_dist.max(initial=0.0)) * 4.0 + 4.0
            self.key = np.repeat(np.arange(g, dtype=np.float64) * self.spread, np.diff(bounds)) - ref_dist.astype(
                np.float64
            )

    def sq_dist(self, lo: int, hi: int, c: np.ndarray, c_sq: float) -> np.ndarray:
        """Squared distances of stored rows ``lo:hi`` to ``c`` (clipped at 0), in row blocks."""
        out = np.empty(hi - lo, dtype=np.float32)
        for s in range(lo, hi, self.block_size):
            e = min(s + self.block_size, hi)
            out[s - lo : e - lo] = np.maximum(self.sq[s:e] + c_sq - 2.0 * (self.xs[s:e] @ c), 0.0)
        return out

    def start(self, seeds: np.ndarray, first: int | None) -> None:
        """Set ``d2`` from the seed rows, or from the first centre ``first`` when there are none."""
        if len(seeds):
            _, dist = _nearest_seed(self.xs, self.rank[seeds], self.block_size)
            self.d2 = dist.astype(np.float32) ** 2
            self.d2[self.rank[seeds]] = -np.inf
        else:
            f = self.rank[first]
            self.d2 = self.sq_dist(0, self.n, self.xs[f], float(self.sq[f]))
            self.d2[f] = -np.inf
        b = self.bounds
        self.cell_max = np.array(
            [self.d2[b[a] : b[a + 1]].max() if b[a + 1] > b[a] else -np.inf for a in range(self.g)],
            dtype=np.float64,
        )

    def run(self, picks: np.ndarray, utilities: np.ndarray, start: int) -> None:
        """Fill ``picks[start:]`` and ``utilities[start:]`` by farthest-first traversal."""
        d2, cell_max, bounds = self.d2, self.cell_max, self.bounds
        i = start
        while i < len(picks):
            a_best = int(np.argmax(cell_max))
            lo, hi = int(bounds[a_best]), int(bounds[a_best + 1])
            within = int(np.argmax(d2[lo:hi]))
            if float(d2[lo + within]) < cell_max[a_best]:  # the cell's maximum was stale (it only falls)
                cell_max[a_best] = float(d2[lo + within])
                continue
            jl = lo + within
            picks[i] = self.order[jl]
            utilities[i] = float(np.sqrt(max(float(d2[jl]), 0.0)))
            i += 1
            d2[jl] = -np.inf
            cell_max[a_best] = float(d2[lo:hi].max())
            self._add_centre(self.xs[jl], float(self.sq[jl]))

    def _add_centre(self, c: np.ndarray, c_sq: float) -> None:
        """Lower ``d2`` by the distances to a new centre ``c``, in the cells it can reach."""
        d2, cell_max, slack = self.d2, self.cell_max, self.slack
        if self.g == 1:
            np.minimum(d2, self.sq_dist(0, self.n, c, c_sq), out=d2)
            cell_max[0] = float(d2.max())
            return
        dc = np.sqrt(np.maximum(self.ref_sq + c_sq - 2.0 * (self.ref_vecs @ c), 0.0))
        reach = np.sqrt(np.maximum(cell_max, 0.0)) * (1.0 + slack) + slack
        visit = np.flatnonzero((cell_max > 0) & (dc - self.radius < reach))
        if len(visit) == 0:
            return
        # rows whose | ||x - m|| - ||c - m|| | < reach are the only ones that can get closer to c
        base = visit * self.spread
        los = np.searchsorted(self.key, base - (dc[visit] + reach[visit]), side="left")
        his = np.searchsorted(self.key, base - (dc[visit] - reach[visit]), side="right")
        los = np.maximum(los, self.bounds[visit])
        his = np.minimum(his, self.bounds[visit + 1])
        lengths = np.maximum(his - los, 0)
        total = int(lengths.sum())
        if total == 0:
            return
        if total > self.gather_below * len(visit):
            # long windows: contiguous slices beat copying the rows out
            for lo_r, hi_r in zip(los.tolist(), his.tolist(), strict=True):
                if hi_r > lo_r:
                    block = d2[lo_r:hi_r]
                    np.minimum(block, self.sq_dist(lo_r, hi_r, c, c_sq), out=block)
            return
        offsets = np.cumsum(lengths) - lengths
        rows = np.repeat(los - offsets, lengths) + np.arange(total)
        new = np.maximum(self.sq[rows] + c_sq - 2.0 * (self.xs[rows] @ c), 0.0)
        d2[rows] = np.minimum(d2[rows], new)
        # cell maxima of visited cells are now upper bounds; the traversal refreshes them lazily


def pruned_farthest_first(
    x: np.ndarray,
    budget: int,
    seeds: np.ndarray,
    first: int | None = None,
    block_size: int = 65536,
    groups: int | None = None,
    exact_below: int = 4096,
    slack: float = 1e-3,
    assign_rank: int | None = None,
    gather_below: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact farthest-first traversal in L2 that skips groups a new centre cannot reach.

    The rows are split once into ``groups`` Voronoi cells around evenly strided rows and stored
    cell by cell (contiguous slices). Each cell keeps its reference point ``m``, its radius ``R``
    (farthest member from ``m``) and the largest squared distance ``D`` of a member to its nearest
    centre. A new centre ``c`` can only lower a member's distance if ``||c - m|| - R < sqrt(D)`` (the
    triangle inequality), so only those cells are recomputed, with one matrix-vector product each.
    The result equals the plain traversal's up to float32 rounding.

    Args:
        x: ``(n, d)`` vectors (cast to float32).
        budget: Centres to add (at most ``n - len(seeds)``).
        seeds: Indices that are centres already (labelled rows); never picked.
        first: First centre when ``seeds`` is empty (required then).
        block_size: Rows per block in full distance passes.
        groups: Number of cells (default ``2 * sqrt(n)``, between 16 and 2048).
        exact_below: Pools smaller than this use plain full passes.
        slack: Relative slack on the pruning bound so float32 rounding never skips a cell.
        assign_rank: PCA rank of a projection used to build the cells (``None``: exact search).
        gather_below: Mean window length under which visited rows are gathered into one product
            instead of one product per window.

    Returns:
        ``(picks, utilities)``: indices in pick order and each pick's L2 distance to its nearest
        earlier centre (``inf`` for a first pick with no seeds).
    """
    picks = np.zeros(budget, dtype=np.int64)
    utilities = np.zeros(budget, dtype=np.float64)
    if budget == 0:
        return picks, utilities
    start = 0
    if not len(seeds):
        if first is None:
            raise ValueError("pruned_farthest_first needs `first` when there are no seeds")
        picks[0] = first
        utilities[0] = np.inf
        start = 1
    x = np.ascontiguousarray(x, dtype=np.float32)
    walk = _PrunedTraversal(x, block_size, groups, exact_below, slack, assign_rank, gather_below)
    walk.start(seeds, first)
    # The per-pick products are small; a multi-threaded BLAS call on them mostly waits for its second
    # thread (ten times slower on a busy machine), so the traversal runs single-threaded.
    with _single_thread_blas():
        walk.run(picks, utilities, start)
    return picks, utilities


class EmbeddingSpace:
    """Squared L2 distances between a pool's embeddings, in float32 row blocks (no ``n x n`` matrix).

    A :class:`curator_selectors.temporal.KCenterSpace` that also offers the exact pruned traversal
    (:meth:`traverse`), which :func:`~curator_selectors.temporal.greedy_kcenter` takes when no temporal
    rule applies.

    Args:
        embeddings: ``(n, d)`` vectors (cast to float32).
        block_size: Rows per block in distance updates.
    """

    def __init__(self, embeddings: np.ndarray, block_size: int = 65536) -> None:
        self.x = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.block_size = block_size

    def seed(self, rows: np.ndarray) -> np.ndarray:
        """``(n,)`` float32 squared distance of every row to the nearest of ``rows`` (``inf`` with none)."""
        min_d = np.full(len(self.x), np.inf, dtype=np.float32)
        if len(rows):
            _sq_dist_update(min_d, self.x, self.x[rows], self.block_size)
        return min_d

    def lower(self, min_d: np.ndarray, j: int) -> None:
        """Lower ``min_d`` in place by the squared distances to row ``j``."""
        _sq_dist_update(min_d, self.x, self.x[j : j + 1], self.block_size)

    def traverse(self, budget: int, seeds: np.ndarray, first: int | None) -> tuple[np.ndarray, np.ndarray]:
        """:func:`pruned_farthest_first` over the embeddings."""
        return pruned_farthest_first(self.x, budget, seeds, first, self.block_size)


@register_selector("kcenter")
class KCenterSelector:
    """Greedy k-center: each pick is the frame farthest from everything labelled or picked so far.

    This is the Coreset baseline (Sener and Savarese, 2018) and EVA-VOS's max-min L2 baseline. With
    labelled frames the distances start from them; with none, the first pick is drawn by ``rng``
    (utility 2, the largest possible distance between unit vectors). The utility of a pick is its L2
    distance to the nearest earlier centre. Without temporal rules it runs the exact pruned traversal
    of :func:`pruned_farthest_first` in float32; with them, a masked farthest-first loop in row blocks.

    Args:
        min_gap: Least seconds between two picks of one video (0 disables).
        shot_coverage: Every shot gets a pick before any gets two.
        block_size: Rows per block in distance updates.
    """

    name: ClassVar[str] = "kcenter"

    def __init__(self, min_gap: float = 0.0, shot_coverage: bool = False, block_size: int = 65536) -> None:
        self.constraints = TemporalConstraints(min_gap=min_gap, shot_coverage=shot_coverage)
        self.block_size = block_size

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick up to ``budget`` frames by greedy max-min distance."""
        space = EmbeddingSpace(pool.embeddings, self.block_size)
        # with nothing labelled the first pick's utility is 2, the largest distance between unit vectors
        return greedy_kcenter(space, pool, budget, self.constraints, rng, self.name, "kcenter", first_utility=2.0)
