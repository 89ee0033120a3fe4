"""Contract tests run over every registered selector (scikit-activeml's template-test habit)."""

from __future__ import annotations

import numpy as np
import pytest

from curator.pool import Pool, Selection
from curator.registry import UnknownNameError
from curator_selectors import create_selector, list_selectors


def make_pool(n: int = 120, d: int = 16, labeled: int = 5, seed: int = 0) -> Pool:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    video = (np.arange(n) >= n // 2).astype(np.int64)
    timestamps = np.where(video == 0, np.arange(n), np.arange(n) - n // 2) / 10.0
    shots = video * 10 + (timestamps > 3).astype(np.int64)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=labeled, replace=False)] = True
    scores = {name: rng.random(n) for name in ("entropy", "margin", "least_confidence", "disagreement")}
    return Pool(
        embeddings=x,
        frame_ids=np.arange(n, dtype=np.int64) + 1000,
        video_ids=video,
        timestamps=timestamps,
        shot_ids=shots,
        labeled=mask,
        scores=scores,
    )


SELECTORS = list_selectors()


def test_registry_has_the_baselines() -> None:
    assert {"uniform", "kcenter"} <= set(SELECTORS)
    with pytest.raises(UnknownNameError, match="valid names"):
        create_selector("no-such-selector")


@pytest.mark.parametrize("name", SELECTORS)
@pytest.mark.parametrize("budget", [0, 1, 7, 30])
def test_budget_no_duplicates_never_labelled(name: str, budget: int) -> None:
    pool = make_pool()
    result = create_selector(name).select(pool, budget, np.random.default_rng(0))
    assert isinstance(result, Selection)
    assert len(result.indices) == budget
    assert len(set(result.indices.tolist())) == budget
    assert not pool.labeled[result.indices].any()
    assert result.utilities.shape == result.indices.shape
    assert np.all(np.isfinite(result.utilities))
    assert all(isinstance(result.reason(i), str) and result.reason(i) for i in range(budget))


@pytest.mark.parametrize("name", SELECTORS)
def test_deterministic_for_a_seed(name: str) -> None:
    pool = make_pool(seed=3)
    a = create_selector(name).select(pool, 12, np.random.default_rng(42))
    b = create_selector(name).select(pool, 12, np.random.default_rng(42))
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.utilities, b.utilities)


@pytest.mark.parametrize("name", SELECTORS)
def test_budget_larger_than_pool(name: str) -> None:
    pool = make_pool(n=20, labeled=4)
    result = create_selector(name).select(pool, 100, np.random.default_rng(0))
    assert sorted(result.indices.tolist()) == sorted(np.flatnonzero(~pool.labeled).tolist())


@pytest.mark.parametrize("name", SELECTORS)
def test_everything_labelled(name: str) -> None:
    pool = make_pool(n=10, labeled=10)
    assert len(create_selector(name).select(pool, 5, np.random.default_rng(0)).indices) == 0


@pytest.mark.parametrize("name", SELECTORS)
def test_negative_budget_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="budget"):
        create_selector(name).select(make_pool(), -1, np.random.default_rng(0))


def test_uniform_spreads_picks_in_time_per_video() -> None:
    pool = make_pool(n=200, labeled=0)
    result = create_selector("uniform").select(pool, 10, np.random.default_rng(0))
    per_video = np.bincount(pool.video_ids[result.indices], minlength=2)
    assert per_video.tolist() == [5, 5]  # equal durations share the budget equally
    times = np.sort(pool.timestamps[result.indices][pool.video_ids[result.indices] == 0])
    np.testing.assert_allclose(times, [0.9, 2.9, 4.9, 6.9, 8.9], atol=0.11)


def test_kcenter_maximises_min_distance_from_labelled() -> None:
    pool = make_pool(n=300, labeled=10, seed=5)
    result = create_selector("kcenter").select(pool, 20, np.random.default_rng(0))
    x = pool.embeddings
    centres = list(np.flatnonzero(pool.labeled))
    for pick, utility in zip(result.indices, result.utilities, strict=True):
        d = np.linalg.norm(x[:, None] - x[centres][None], axis=2).min(axis=1)
        d[pool.labeled] = -1
        d[centres] = -1
        assert d[pick] == pytest.approx(d.max(), abs=1e-4)  # greedy: the farthest point each time
        assert utility == pytest.approx(d[pick], abs=1e-4)
        centres.append(int(pick))
