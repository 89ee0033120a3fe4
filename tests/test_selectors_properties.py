"""Hypothesis property tests run over every registered selector.

For random pools (several videos and shots, unknown shots, labelled frames, optional scores):
budget respected, no duplicates, never a labelled frame, temporal gap honoured, deterministic under
a seed, and a budget larger than the pool takes every unlabelled frame.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curator_selectors import SELECTORS, Pool, create_selector, list_selectors

PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@st.composite
def pools(draw: st.DrawFn, max_n: int = 40) -> Pool:
    """Random pools: 1 to ``max_n`` frames over 1 to 3 videos, integer-second timestamps."""
    n = draw(st.integers(1, max_n))
    d = draw(st.sampled_from([2, 4, 8]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    videos = np.sort(rng.integers(0, draw(st.integers(1, 3)), n))
    # frames within a video at distinct integer seconds (duplicates in time allowed across videos)
    timestamps = np.zeros(n)
    for v in np.unique(videos):
        rows = np.flatnonzero(videos == v)
        timestamps[rows] = np.sort(rng.choice(4 * n, len(rows), replace=False)).astype(np.float64)
    shots = np.where(rng.random(n) < 0.3, -1, videos * 10 + (timestamps // max(n, 1)).astype(np.int64))
    emb = rng.normal(size=(n, d)).astype(np.float32)
    if draw(st.booleans()):  # duplicate rows
        emb[rng.integers(0, n, n // 3)] = emb[0]
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-6)
    labeled = rng.random(n) < draw(st.sampled_from([0.0, 0.2, 1.0]))
    scores = {"entropy": rng.random(n), "disagreement": rng.random(n)} if draw(st.booleans()) else {}
    return Pool(
        embeddings=emb,
        frame_ids=np.arange(n, dtype=np.int64),
        video_ids=videos.astype(np.int64),
        timestamps=timestamps,
        shot_ids=shots.astype(np.int64),
        labeled=labeled,
        scores=scores,
    )


def takes(name: str, param: str) -> bool:
    """Whether the selector ``name``'s constructor has ``param``."""
    return param in inspect.signature(SELECTORS.get(name)).parameters


ALL = list_selectors()
GAPPED = [n for n in ALL if takes(n, "min_gap")]
SHOTTED = [n for n in ALL if takes(n, "shot_coverage")]


@pytest.mark.parametrize("name", ALL)
@PROPERTY_SETTINGS
@given(pool=pools(), budget=st.integers(0, 50), seed=st.integers(0, 1000))
def test_budget_distinct_unlabelled(name: str, pool: Pool, budget: int, seed: int) -> None:
    sel = create_selector(name).select(pool, budget, np.random.default_rng(seed))
    picks = sel.indices
    assert len(picks) == min(budget, int((~pool.labeled).sum()))  # default settings have no gap
    assert len(np.unique(picks)) == len(picks)
    assert not pool.labeled[picks].any()
    assert ((picks >= 0) & (picks < len(pool))).all()
    assert sel.utilities.shape == picks.shape
    assert np.isfinite(sel.utilities).all()
    assert len(sel.reasons) in (0, len(picks))
    assert all(isinstance(sel.reason(i), str) and sel.reason(i) for i in range(len(picks)))


@pytest.mark.parametrize("name", ALL)
@PROPERTY_SETTINGS
@given(pool=pools(), budget=st.integers(0, 20), seed=st.integers(0, 1000))
def test_deterministic_under_seed(name: str, pool: Pool, budget: int, seed: int) -> None:
    a = create_selector(name).select(pool, budget, np.random.default_rng(seed))
    b = create_selector(name).select(pool, budget, np.random.default_rng(seed))
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.utilities, b.utilities)
    assert a.reasons == b.reasons


@pytest.mark.parametrize("name", ALL)
@PROPERTY_SETTINGS
@given(pool=pools(max_n=25), seed=st.integers(0, 1000))
def test_budget_beyond_pool_takes_everything(name: str, pool: Pool, seed: int) -> None:
    sel = create_selector(name).select(pool, len(pool) + 5, np.random.default_rng(seed))
    assert sorted(sel.indices.tolist()) == pool.candidates.tolist()


@pytest.mark.parametrize("name", GAPPED)
@PROPERTY_SETTINGS
@given(pool=pools(), budget=st.integers(0, 30), gap=st.integers(1, 12), seed=st.integers(0, 1000))
def test_temporal_gap_honoured(name: str, pool: Pool, budget: int, gap: int, seed: int) -> None:
    sel = create_selector(name, min_gap=float(gap)).select(pool, budget, np.random.default_rng(seed))
    picks = sel.indices
    assert len(picks) <= budget
    assert len(np.unique(picks)) == len(picks)
    assert not pool.labeled[picks].any()
    # picks (and, by default, labelled frames) of one video are at least `gap` seconds apart
    keys = np.concatenate([picks, np.flatnonzero(pool.labeled)])
    for i in picks:
        others = keys[(keys != i) & (pool.video_ids[keys] == pool.video_ids[i])]
        assert (np.abs(pool.timestamps[others] - pool.timestamps[i]) >= gap).all()
    # stopping short of the budget only happens when no frame is left outside every gap
    if len(picks) < min(budget, int((~pool.labeled).sum())):
        for r in pool.candidates:
            if r in picks:
                continue
            same = keys[pool.video_ids[keys] == pool.video_ids[r]]
            assert (np.abs(pool.timestamps[same] - pool.timestamps[r]) < gap).any()


@pytest.mark.parametrize("name", SHOTTED)
@PROPERTY_SETTINGS
@given(pool=pools(), budget=st.integers(0, 30), seed=st.integers(0, 1000))
def test_shot_coverage(name: str, pool: Pool, budget: int, seed: int) -> None:
    from curator_selectors.temporal import shot_groups

    sel = create_selector(name, shot_coverage=True).select(pool, budget, np.random.default_rng(seed))
    groups = shot_groups(pool)
    counts = np.bincount(groups[pool.labeled], minlength=groups.max() + 1)
    # in pick order: a shot gets a second frame only when every shot with frames left has one
    for j in sel.indices:
        has_left = np.zeros(len(counts), dtype=bool)
        taken = np.zeros(len(pool), dtype=bool)
        taken[pool.labeled] = True
        taken[sel.indices[: list(sel.indices).index(j)]] = True
        has_left[np.unique(groups[~taken])] = True
        if counts[groups[j]] > 0:
            assert counts[has_left].min() > 0
        counts[groups[j]] += 1
