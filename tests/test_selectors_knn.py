"""Density selectors with a neighbour provider (``Pool.knn``, the project index) pick exactly what
they pick without one, when the provider is exact."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from curator.index import FaissIndex
from curator_selectors import Pool, create_selector
from curator_selectors.density import cluster_typicality, delta_balls, kmeans_labels


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_pool(n: int, d: int, seed: int, clusters: int = 6, spread: float = 0.6) -> Pool:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = unit(centres[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, d)))
    labeled = np.zeros(n, bool)
    labeled[rng.choice(n, 3, replace=False)] = True
    return Pool(
        embeddings=x,
        frame_ids=np.arange(n, dtype=np.int64) * 3 + 11,
        video_ids=rng.integers(0, 4, n).astype(np.int64),
        timestamps=rng.uniform(0, 60, n),
        shot_ids=rng.integers(0, 12, n).astype(np.int64),
        labeled=labeled,
    )


def exact_provider(x: np.ndarray, calls: list[int] | None = None):  # type: ignore[no-untyped-def]
    """``Pool.knn`` from an exact store index whose ids are the pool rows."""
    rows = np.arange(len(x), dtype=np.int64)
    index = FaissIndex.build(rows, x, ivf_threshold=len(x) + 1)

    def knn(k: int) -> tuple[np.ndarray, np.ndarray]:
        if calls is not None:
            calls.append(k)
        return index.neighbours_of(rows, k)

    return knn


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("strategy", ["typicality", "probcover"])
def test_same_picks_with_and_without_the_provider(strategy: str, seed: int) -> None:
    pool = random_pool(600, 12, seed)
    calls: list[int] = []
    with_knn = replace(pool, knn=exact_provider(pool.embeddings, calls))
    for budget in (1, 7, 25):
        a = create_selector(strategy).select(pool, budget, np.random.default_rng(seed))
        b = create_selector(strategy).select(with_knn, budget, np.random.default_rng(seed))
        assert a.indices.tolist() == b.indices.tolist()
        np.testing.assert_array_equal(a.utilities, b.utilities)
        assert a.reasons == b.reasons
    assert calls, "the provider was never asked"


@pytest.mark.parametrize("params", [{"delta": 0.05}, {"delta": 0.6}, {"delta": 1.5}, {"min_gap": 2.0}])
def test_probcover_same_picks_for_fixed_radii(params: dict[str, float]) -> None:
    pool = random_pool(400, 6, seed=5)
    with_knn = replace(pool, knn=exact_provider(pool.embeddings))
    a = create_selector("probcover", **params).select(pool, 12, np.random.default_rng(0))
    b = create_selector("probcover", **params).select(with_knn, 12, np.random.default_rng(0))
    assert a.indices.tolist() == b.indices.tolist() and a.reasons == b.reasons
    np.testing.assert_array_equal(a.utilities, b.utilities)


def test_typicality_values_and_balls_are_identical() -> None:
    pool = random_pool(500, 8, seed=3)
    x = pool.embeddings
    knn = exact_provider(x)
    for k in (2, 9, 40):  # clusters small and large against the neighbour count
        labels = kmeans_labels(x, k, seed=0)
        np.testing.assert_array_equal(cluster_typicality(x, labels, 10), cluster_typicality(x, labels, 10, knn))
    for delta in (0.1, 0.5, 1.2):
        lims_a, nbrs_a = delta_balls(x, delta)
        lims_b, nbrs_b = delta_balls(x, delta, knn, width=16)  # narrow lists: both paths in use
        np.testing.assert_array_equal(lims_a, lims_b)
        for i in range(len(x)):
            assert sorted(nbrs_a[lims_a[i] : lims_a[i + 1]]) == sorted(nbrs_b[lims_b[i] : lims_b[i + 1]])
        sizes = np.diff(lims_a)
        assert (sizes >= 1).all()  # every ball holds its centre
        # balls are symmetric: j in ball(i) iff i in ball(j)
        pairs = {(i, int(j)) for i in range(len(x)) for j in nbrs_a[lims_a[i] : lims_a[i + 1]]}
        assert all((j, i) in pairs for i, j in pairs)


def test_exact_duplicates_and_tiny_pools() -> None:
    x = unit(np.random.default_rng(0).normal(size=(30, 5)))
    x = np.concatenate([x, x[:10], x[:10]])  # each of the first ten rows three times
    pool = Pool(
        embeddings=x, frame_ids=np.arange(len(x), dtype=np.int64), video_ids=np.zeros(len(x), np.int64),
        timestamps=np.arange(len(x), dtype=np.float64), shot_ids=np.full(len(x), -1, np.int64),
        labeled=np.zeros(len(x), bool),
    )
    with_knn = replace(pool, knn=exact_provider(x))
    for strategy in ("typicality", "probcover"):
        a = create_selector(strategy).select(pool, 5, np.random.default_rng(1))
        b = create_selector(strategy).select(with_knn, 5, np.random.default_rng(1))
        assert a.indices.tolist() == b.indices.tolist()
    one = replace(pool, embeddings=x[:1], frame_ids=pool.frame_ids[:1], video_ids=pool.video_ids[:1],
                  timestamps=pool.timestamps[:1], shot_ids=pool.shot_ids[:1], labeled=pool.labeled[:1],
                  knn=exact_provider(x[:1]))
    for strategy in ("typicality", "probcover"):
        assert create_selector(strategy).select(one, 3, np.random.default_rng(0)).indices.tolist() == [0]
