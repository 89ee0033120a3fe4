"""The derived-data store: identical arrays to a fresh computation, invalidation, warm propagation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from curator.annotate import FrameSource, Keyframe, create_propagator
from curator.annotate.derived import DerivedStore, run_parallel
from curator.annotate.engine import plan_chains
from curator.annotate.feature import PatchFeatures
from curator.annotate.flow import FlowField


class TinyBackbone:
    """A deterministic stand-in for DINOv2: patch tokens are the frame's colours on the patch grid."""

    patch_size = 14

    def __init__(self, checkpoint: str | None = None, offset: float = 0.0) -> None:
        self.checkpoint = checkpoint
        self.offset = offset
        self.calls = 0

    def patch_tokens(self, images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        self.calls += len(images)
        rows, cols = size[0] // self.patch_size, size[1] // self.patch_size
        out = []
        for image in images:
            small = cv2.resize(image, (cols, rows), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
            out.append(np.concatenate([small, 1 - small, np.full((rows, cols, 2), 0.5 + self.offset, np.float32)], -1))
        return np.stack(out)


def moving_square(n: int = 8, size: tuple[int, int] = (64, 96)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur((rng.random((*size, 3)) * 255).astype(np.uint8), (0, 0), 2)
    texture = cv2.GaussianBlur((rng.random((20, 20, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    frames, masks = [], []
    for i in range(n):
        frame = background.copy()
        mask = np.zeros(size, bool)
        frame[20:40, 10 + 3 * i : 30 + 3 * i] = texture
        mask[20:40, 10 + 3 * i : 30 + 3 * i] = True
        frames.append(frame)
        masks.append(mask)
    return frames, masks


def test_store_returns_what_a_fresh_computation_gives(tmp_path: Path) -> None:
    frames, _ = moving_square()
    field = FlowField("dis", "medium", 1.0, 0, 1, 10)
    fresh = field.flow(FrameSource(frames), 3, 2)
    stored = FrameSource(frames, store=DerivedStore(tmp_path))
    assert not field.has_flow(stored, 3, 2)
    cold = field.flow(stored, 3, 2)
    assert field.has_flow(stored, 3, 2)
    warm = field.flow(FrameSource(frames, store=DerivedStore(tmp_path)), 3, 2)  # another process, say
    np.testing.assert_array_equal(fresh, cold)
    np.testing.assert_array_equal(cold, warm)

    backbone = TinyBackbone()
    features = PatchFeatures(backbone=backbone, short_side=28)
    in_memory = features(FrameSource(frames, cache=True), 4)
    store = DerivedStore(tmp_path)
    first = features(FrameSource(frames, store=store), 4)
    calls = backbone.calls
    second = features(FrameSource(frames, store=store), 4)
    assert backbone.calls == calls, "the second read comes from the store"
    np.testing.assert_array_equal(in_memory, first)
    np.testing.assert_array_equal(first, second)
    assert store.writes == 1 and store.hits == 1


def test_store_is_invalidated_by_frames_settings_and_weights(tmp_path: Path) -> None:
    frames, _ = moving_square()
    store = DerivedStore(tmp_path)
    field = FlowField("dis", "medium", 1.0, 0, 1, 10)
    field.flow(FrameSource(frames, store=store), 3, 2)
    field.flow(FrameSource(frames, store=store), 2, 1)
    changed = [f.copy() for f in frames]
    changed[3][:8] = 0
    source = FrameSource(changed, store=store)
    assert not field.has_flow(source, 3, 2), "a changed frame has a new key"
    assert field.has_flow(source, 2, 1), "frames that did not change keep theirs"
    other = FlowField("dis", "medium", 1.0, 0, 1, 5)
    assert not other.has_flow(FrameSource(frames, store=store), 3, 2), "other settings, another tag"

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"one")
    features = PatchFeatures(backbone=TinyBackbone(str(weights)), short_side=28)
    features(FrameSource(frames, store=store), 0)
    assert features.has(FrameSource(frames, store=store), 0)
    weights.write_bytes(b"other weights")
    assert not features.has(FrameSource(frames, store=store), 0), "new weights, another tag"
    assert not PatchFeatures(backbone=TinyBackbone(), short_side=42).has(FrameSource(frames, store=store), 0)


def test_propagation_with_a_warm_store_gives_identical_masks(tmp_path: Path) -> None:
    frames, masks = moving_square(10)
    keys = [Keyframe(1, {1: masks[1]}), Keyframe(8, {1: masks[8]})]
    prop = create_propagator("flow+feature", backbone=TinyBackbone(), short_side=28)
    plain = [f.masks[1] for f in prop.propagate(FrameSource(frames), keys)]
    store = DerivedStore(tmp_path)
    cold = [f.masks[1] for f in prop.propagate(FrameSource(frames, store=store), keys)]
    writes = store.writes
    warm = [f.masks[1] for f in prop.propagate(FrameSource(frames, store=store), keys)]
    assert store.writes == writes, "a warm store computes nothing"
    for a, b in zip(cold, warm, strict=True):
        np.testing.assert_array_equal(a, b)
    # without a store features are not rounded to float16; the masks still agree almost everywhere
    agree = np.mean([np.mean(a == b) for a, b in zip(plain, cold, strict=True)])
    assert agree > 0.99


def test_plan_chains_matches_the_tracked_steps() -> None:
    chains = plan_chains([range(0, 10)], [2, 6])
    assert chains == [(2, [1, 0]), (6, [5, 4, 3]), (2, [3, 4, 5]), (6, [7, 8, 9])]
    assert plan_chains([range(0, 4), range(4, 8)], [5]) == [(5, [4]), (5, [6, 7])]


def test_run_parallel_runs_every_job_and_raises() -> None:
    done: list[int] = []
    run_parallel([lambda i=i: done.append(i) for i in range(20)], workers=2)
    assert sorted(done) == list(range(20))

    def boom() -> Any:
        raise RuntimeError("job failed")

    try:
        run_parallel([boom, boom], workers=2)
    except RuntimeError as exc:
        assert "job failed" in str(exc)
    else:
        raise AssertionError("the job's exception is raised")


def test_sweep_removes_the_least_recently_used_entries(tmp_path: Path) -> None:
    import os
    import time

    from curator.annotate.derived import DerivedStore, sweep

    store = DerivedStore(tmp_path / "derived-cache")
    arrays = {f"k{i}": np.full((100, 100), i, dtype=np.float32) for i in range(4)}  # 40,128 bytes each
    for key, array in arrays.items():
        path = store.put("flow", [key], array)
        old = time.time() - 1000 + int(key[1:])
        os.utime(path, (old, old))
    assert store.get("flow", ["k0"]) is not None  # read now: the most recently used
    size = store.path("flow", ["k0"]).stat().st_size
    removed, kept = sweep(store.root, 2 * size)
    assert removed == 2 and kept == 2 * size
    assert store.get("flow", ["k1"]) is None and store.get("flow", ["k2"]) is None
    np.testing.assert_array_equal(store.get("flow", ["k0"]), arrays["k0"])
    np.testing.assert_array_equal(store.get("flow", ["k3"]), arrays["k3"])
    assert sweep(store.root, 10**9) == (0, 2 * size)
