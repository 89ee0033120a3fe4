"""Unit tests of the selectors' algorithms: known answers on small, hand-made pools."""

from __future__ import annotations

import numpy as np
import pytest

from curator_selectors import Pool, create_selector, list_selectors
from curator_selectors.density import knn_typicality, purity_delta
from curator_selectors.diversity import _sq_dist_update, pruned_farthest_first
from curator_selectors.temporal import (
    JointSpace,
    TemporalConstraints,
    TemporalState,
    normalised_time,
    shot_groups,
)
from curator_selectors.uncertainty import SCORE_NAMES


def make_pool(
    emb: np.ndarray,
    videos: np.ndarray | None = None,
    times: np.ndarray | None = None,
    shots: np.ndarray | None = None,
    labeled: np.ndarray | None = None,
    scores: dict[str, np.ndarray] | None = None,
) -> Pool:
    n = len(emb)
    emb = np.asarray(emb, dtype=np.float32)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
    return Pool(
        embeddings=emb,
        frame_ids=np.arange(n, dtype=np.int64),
        video_ids=np.zeros(n, np.int64) if videos is None else np.asarray(videos, np.int64),
        timestamps=np.arange(n, dtype=np.float64) if times is None else np.asarray(times, np.float64),
        shot_ids=np.full(n, -1, np.int64) if shots is None else np.asarray(shots, np.int64),
        labeled=np.zeros(n, bool) if labeled is None else np.asarray(labeled, bool),
        scores=scores or {},
    )


def clustered(n: int, d: int, k: int, seed: int = 0, spread: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    x = centres[rng.integers(0, k, n)] + spread * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def naive_kcenter(x: np.ndarray, budget: int, seeds: np.ndarray, first: int | None) -> list[int]:
    min_d = np.full(len(x), np.inf, dtype=np.float32)
    if len(seeds):
        _sq_dist_update(min_d, x, x[seeds], 1024)
        min_d[seeds] = -np.inf
    out: list[int] = []
    for i in range(budget):
        j = first if (i == 0 and not len(seeds)) else int(np.argmax(min_d))
        assert j is not None
        out.append(j)
        _sq_dist_update(min_d, x, x[j : j + 1], 1024)
        min_d[j] = -np.inf
    return out


def test_registry_lists_the_issue_selectors() -> None:
    expected = {
        "uniform", "random", "kcenter", "typicality", "probcover", "entropy", "margin",
        "least_confidence", "disagreement", "temporal", "hybrid", "curator",
    }  # fmt: skip
    assert expected <= set(list_selectors())


@pytest.mark.parametrize("seeds", [[], [3, 100, 2000]])
def test_pruned_kcenter_matches_plain_traversal(seeds: list[int]) -> None:
    x = clustered(6000, 24, 20, seed=1)  # above exact_below: the pruned path
    s = np.asarray(seeds, dtype=np.int64)
    picks, utilities = pruned_farthest_first(x, 60, s, first=None if len(s) else 7)
    assert picks.tolist() == naive_kcenter(x, 60, s, None if len(s) else 7)
    finite = utilities[np.isfinite(utilities)]
    assert (np.diff(finite) <= 1e-5).all()  # farthest-first distances never grow


def test_kcenter_selector_covers_clusters_and_respects_labels() -> None:
    x = clustered(400, 8, 5, seed=2, spread=0.05)
    labels = np.zeros(400, bool)
    labels[:3] = True
    pool = make_pool(x, labeled=labels)
    sel = create_selector("kcenter").select(pool, 10, np.random.default_rng(0))
    assert not pool.labeled[sel.indices].any()
    assert (np.diff(sel.utilities) <= 1e-6).all()
    assert set(sel.reasons) == {"kcenter"}


def test_uniform_is_evenly_spaced() -> None:
    pool = make_pool(np.eye(4)[np.arange(100) % 4], times=np.arange(100.0))
    sel = create_selector("uniform").select(pool, 4, np.random.default_rng(0))
    assert sorted(sel.indices.tolist()) == [12, 37, 62, 87]


def test_random_differs_by_seed_but_not_within() -> None:
    pool = make_pool(clustered(200, 4, 3))
    a = create_selector("random").select(pool, 10, np.random.default_rng(1)).indices
    b = create_selector("random").select(pool, 10, np.random.default_rng(2)).indices
    assert a.tolist() != b.tolist()


def test_typicality_picks_dense_points_of_each_cluster() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    x = np.concatenate([c + 0.05 * rng.normal(size=(50, 3)) for c in centres]).astype(np.float32)
    x = np.concatenate([x, np.array([[1, 1, 1]], np.float32)])  # one outlier
    pool = make_pool(x)
    sel = create_selector("typicality").select(pool, 3, np.random.default_rng(0))
    assert sorted(set(sel.indices // 50)) == [0, 1, 2]  # one per cluster, never the outlier
    typ = knn_typicality(pool.embeddings, 10)
    assert typ[-1] < np.median(typ)


def test_probcover_delta_and_coverage() -> None:
    x = clustered(300, 6, 4, seed=3, spread=0.05)
    pool = make_pool(x)
    sel = create_selector("probcover").select(pool, 4, np.random.default_rng(0))
    assert sel.utilities[0] >= sel.utilities[-1]
    assert set(sel.reasons) <= {"probcover", "probcover-fallback"}
    labels = np.argmax(np.abs(pool.embeddings @ pool.embeddings[sel.indices].T), axis=1)
    delta = purity_delta(pool.embeddings, labels, 0.95, 300, np.random.default_rng(0))
    assert 0 < delta <= 2
    # a tiny fixed delta covers nothing but the picks themselves: the rest is the fallback
    tiny = create_selector("probcover", delta=1e-4).select(pool, 5, np.random.default_rng(0))
    assert len(tiny.indices) == 5


def test_uncertainty_selectors_read_scores_and_fall_back() -> None:
    n = 30
    x = clustered(n, 4, 2)
    s = np.linspace(0, 1, n)
    pool = make_pool(x, scores={"entropy": s, "margin": s, "confidence": s, "disagreement": s})
    assert create_selector("entropy").select(pool, 3, np.random.default_rng(0)).indices.tolist() == [29, 28, 27]
    assert create_selector("margin").select(pool, 3, np.random.default_rng(0)).indices.tolist() == [0, 1, 2]
    assert create_selector("least_confidence").select(pool, 2, np.random.default_rng(0)).indices.tolist() == [0, 1]
    assert create_selector("disagreement").select(pool, 1, np.random.default_rng(0)).indices.tolist() == [29]
    gap = create_selector("entropy", min_gap=5.0).select(pool, 3, np.random.default_rng(0))
    assert gap.indices.tolist() == [29, 24, 19]
    bare = make_pool(x)
    fb = create_selector("entropy").select(bare, 3, np.random.default_rng(0))
    assert len(fb.indices) == 3 and all(r.startswith("fallback:") for r in fb.reasons)
    with pytest.raises(ValueError, match="entropy"):
        create_selector("entropy", fallback=None).select(bare, 3, np.random.default_rng(0))
    assert {"entropy", "margin", "confidence", "disagreement", "propagation_confidence"} <= set(SCORE_NAMES)


def test_propagation_confidence_feeds_disagreement() -> None:
    conf = np.ones(10)
    conf[6] = 0.1
    pool = make_pool(clustered(10, 4, 2), scores={"propagation_confidence": conf})
    sel = create_selector("disagreement").select(pool, 1, np.random.default_rng(0))
    assert sel.indices.tolist() == [6] and sel.reasons == ("propagation_confidence",)


def test_shot_groups_and_normalised_time() -> None:
    pool = make_pool(
        np.eye(3)[[0, 1, 2, 0, 1, 2]], videos=[0, 0, 0, 1, 1, 1], times=[0, 5, 10, 2, 3, 4], shots=[-1, -1, 7, -1, 8, 8]
    )
    g = shot_groups(pool)
    assert g[0] == g[1] and g[1] != g[2] and g[3] != g[0] and g[4] == g[5] and g[3] != g[4]
    np.testing.assert_allclose(normalised_time(pool), [0, 0.5, 1, 0, 0.5, 1])


def test_temporal_state_gap_and_shots() -> None:
    pool = make_pool(np.eye(2)[np.arange(10) % 2], shots=[0] * 5 + [1] * 5, labeled=[True] + [False] * 9)
    state = TemporalState(pool, TemporalConstraints(min_gap=2.0, shot_coverage=True))
    assert state.eligible().tolist() == [False] * 5 + [True] * 5  # shot 0 has its label already
    state.take(7)
    assert state.available.tolist() == [False, False, True, True, True, True, False, False, False, True]


def test_joint_space_mixes_time_and_videos() -> None:
    pool = make_pool(np.eye(2)[[0, 0, 0, 1]], videos=[0, 0, 0, 1], times=[0, 1, 2, 0])
    space = JointSpace(pool, time_weight=0.5)
    d = space.to_row(0)
    np.testing.assert_allclose(d, [0, 0.5 * 0.25, 0.5, 0.5 * 0.5 + 0.5], atol=1e-6)
    np.testing.assert_allclose(space.block(np.arange(4), np.array([0])).ravel(), d, atol=1e-6)


def test_curator_single_pick_is_the_joint_medoid_and_covers_shots() -> None:
    n = 41
    pool = make_pool(np.ones((n, 3)) + 1e-3 * np.arange(n)[:, None], times=np.arange(n))
    sel = create_selector("curator").select(pool, 1, np.random.default_rng(0))
    assert sel.indices.tolist() == [20]
    shots = np.repeat([0, 1, 2], [30, 6, 5])
    pool = make_pool(clustered(n, 4, 2), shots=shots)
    sel = create_selector("curator").select(pool, 3, np.random.default_rng(0))
    assert sorted(shots[sel.indices].tolist()) == [0, 1, 2]
    assert set(sel.reasons) == {"medoid"}


def test_hybrid_weights_and_reasons() -> None:
    n = 60
    pool = make_pool(clustered(n, 4, 3), scores={"entropy": np.linspace(0, 1, n)})
    only_unc = create_selector("hybrid", weights={"diversity": 0, "density": 0, "uncertainty": 1})
    sel = only_unc.select(pool, 1, np.random.default_rng(0))
    assert sel.indices.tolist() == [59] and sel.reasons == ("uncertainty",)
    mixed = create_selector("hybrid").select(pool, 10, np.random.default_rng(0))
    assert set(mixed.reasons) <= {"diversity", "density", "uncertainty"}
    with pytest.raises(ValueError, match="unknown weights"):
        create_selector("hybrid", weights={"speed": 1.0})


def test_hybrid_adaptive_moves_weight_from_density_to_diversity() -> None:
    pool = make_pool(clustered(100, 4, 3))
    sel = create_selector("hybrid")
    low = sel.effective_weights(pool, 1)  # type: ignore[attr-defined]
    high = sel.effective_weights(pool, 50)  # type: ignore[attr-defined]
    assert low["density"] > high["density"] == 0.0
    assert high["diversity"] > low["diversity"]


@pytest.mark.parametrize("name", list_selectors())
def test_edge_pools(name: str) -> None:
    rng = np.random.default_rng(0)
    single = make_pool(np.ones((1, 3)))
    assert create_selector(name).select(single, 3, rng).indices.tolist() == [0]
    done = make_pool(np.eye(3), labeled=[True, True, True])
    assert len(create_selector(name).select(done, 2, rng).indices) == 0
    assert len(create_selector(name).select(make_pool(np.eye(3)), 0, rng).indices) == 0
    with pytest.raises(ValueError):
        create_selector(name).select(make_pool(np.eye(3)), -1, rng)


@pytest.mark.slow
def test_kcenter_scales_to_100k() -> None:
    import time

    from benchmarks.select_scale import make_clustered

    x = make_clustered(100_000, 384, 100, 0.5, seed=0)
    pool = make_pool(x)
    start = time.perf_counter()
    sel = create_selector("kcenter").select(pool, 1000, np.random.default_rng(0))
    assert len(np.unique(sel.indices)) == 1000
    assert time.perf_counter() - start < 60


def test_score_names_agree_with_the_scores_the_rounds_write() -> None:
    from curator.train.scores import SCORE_DIRECTIONS

    assert {k: SCORE_NAMES[k] for k in SCORE_DIRECTIONS} == SCORE_DIRECTIONS
