"""A round over frame sources with a derived-data store gives what the in-memory cache gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_annotate_derived import TinyBackbone, moving_square

from curator.annotate import FrameSource, create_propagator
from curator.annotate.derived import DerivedStore
from curator.annotate.feature import PatchFeatures
from curator.train.loop import RoundConfig, VideoState, run_round
from curator.train.proxy import ProxyConfig


def _round(sources: list[FrameSource], masks: list[list[np.ndarray]]) -> tuple[dict, dict, list]:  # type: ignore[type-arg]
    backbone = TinyBackbone()
    features = PatchFeatures(backbone=backbone, short_side=28)
    prop = create_propagator("flow+feature", backbone=backbone, short_side=28)
    videos = [
        VideoState(v, src, np.arange(10 * v, 10 * v + len(src)), None, {1: {1: m[1]}, 7: {1: m[7]}})
        for v, (src, m) in enumerate(zip(sources, masks, strict=True))
    ]
    cfg = RoundConfig(proxy=ProxyConfig(steps=3, novelty_bank=64), short_side=28, workers=2)
    outcomes: list = []  # type: ignore[type-arg]
    result = run_round(videos, prop, features, cfg, sink=lambda o: outcomes.append((o.frame_id, o.source, o.masks)))
    return result.metrics, result.scores, outcomes


def test_round_with_a_store_matches_the_in_memory_cache(tmp_path: Path) -> None:
    clips = [moving_square(9), moving_square(9, (48, 80))]
    masks = [m for _, m in clips]
    memory = _round([FrameSource(f, cache=True) for f, _ in clips], masks)
    store = DerivedStore(tmp_path)
    cold = _round([FrameSource(f, store=store) for f, _ in clips], masks)
    writes = store.writes
    warm = _round([FrameSource(f, store=store) for f, _ in clips], masks)
    assert writes > 0 and store.writes == writes, "the second round computes nothing"
    for other in (cold, warm):
        assert other[0] == memory[0]
        assert other[1] == memory[1]
        for (fa, sa, ma), (fb, sb, mb) in zip(memory[2], other[2], strict=True):
            assert (fa, sa) == (fb, sb)
            assert all(np.array_equal(ma[k], mb[k]) for k in ma)
