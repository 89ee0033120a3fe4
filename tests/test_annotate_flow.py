"""The ``flow`` propagator on synthetic clips with known motion."""

from __future__ import annotations

import numpy as np
import pytest

from curator.annotate import FrameSource, Keyframe, create_propagator
from curator.eval import region_similarity

H, W = 96, 128


def textured_clip(n: int, step: int = 3) -> tuple[list[np.ndarray], list[dict[int, np.ndarray]]]:
    """A textured square moving right and a textured disk moving left, on a textured background."""
    rng = np.random.default_rng(1)
    background = cv_blur((rng.random((H, W + 200, 3)) * 255).astype(np.uint8))
    square_tex = cv_blur((rng.random((30, 30, 3)) * 255).astype(np.uint8))
    disk_tex = cv_blur((rng.random((H, W + 200, 3)) * 255).astype(np.uint8)) // 2 + np.uint8(100)
    frames, gts = [], []
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(n):
        frame = background[:, :W].copy()
        a = np.zeros((H, W), bool)
        x0 = 10 + step * i
        a[15:45, x0 : x0 + 30] = True
        frame[15:45, x0 : x0 + 30] = square_tex
        cx = 100 - step * i
        b = (yy - 70) ** 2 + (xx - cx) ** 2 <= 14**2
        b &= ~a
        shifted = disk_tex[:, 100 - cx : 100 - cx + W]  # the disk's texture moves with it
        frame[b] = shifted[b]
        frames.append(frame)
        gts.append({1: a, 2: b})
    return frames, gts


def cv_blur(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), 2.0)


def test_flow_follows_two_moving_objects_both_directions() -> None:
    frames, gts = textured_clip(12)
    prop = create_propagator("flow")
    out = list(prop.propagate(frames, [Keyframe(0, gts[0]), Keyframe(11, gts[11])]))
    assert [f.index for f in out] == list(range(12))
    for f in out:
        for obj in (1, 2):
            # uncovered background behind a moving object is the flow's known weakness: IoU dips
            # towards the middle of the span, never below 0.6 at 5 frames from a keyframe
            assert region_similarity(f.masks[obj], gts[f.index][obj]) > 0.6, (f.index, obj)
            assert 0.0 <= f.confidence[obj] <= 1.0
    # the far end is better with its own keyframe than when reached from frame 0 alone
    one_sided = list(prop.propagate(frames, [Keyframe(0, gts[0])]))
    assert region_similarity(one_sided[10].masks[1], gts[10][1]) < region_similarity(
        out[10].masks[1], gts[10][1]
    )


def test_flow_from_a_middle_keyframe_goes_backwards_too() -> None:
    frames, gts = textured_clip(9)
    out = list(create_propagator("flow").propagate(FrameSource(frames), [Keyframe(4, gts[4])]))
    assert region_similarity(out[0].masks[1], gts[0][1]) > 0.6
    assert region_similarity(out[8].masks[1], gts[8][1]) > 0.6
    assert region_similarity(out[3].masks[1], gts[3][1]) > 0.85


def test_flow_cache_is_reused() -> None:
    frames, gts = textured_clip(5)
    source = FrameSource(frames, cache=True)
    prop = create_propagator("flow")
    first = [f.masks[1] for f in prop.propagate(source, [Keyframe(0, gts[0])])]
    assert source.cache is not None and len(source.cache) == 4
    second = [f.masks[1] for f in prop.propagate(source, [Keyframe(0, gts[0])])]
    assert all((a == b).all() for a, b in zip(first, second, strict=True))


def test_farneback_and_bad_settings() -> None:
    frames, gts = textured_clip(6, step=2)
    out = list(create_propagator("flow", method="farneback").propagate(frames, [Keyframe(0, gts[0])]))
    assert region_similarity(out[5].masks[1], gts[5][1]) > 0.6
    with pytest.raises(ValueError, match="dis' or 'farneback"):
        create_propagator("flow", method="lk")


def test_full_resolution_dis_level() -> None:
    from curator.annotate.flow import FlowField

    frames, gts = textured_clip(8)
    keys = [Keyframe(0, gts[0])]
    fine = list(create_propagator("flow", finest_scale=0).propagate(frames, keys))
    coarse = list(create_propagator("flow").propagate(frames, keys))
    # full resolution tracks both objects better over 7 steps (measured 0.65/0.96 against 0.54/0.65)
    for k in (1, 2):
        assert region_similarity(fine[7].masks[k], gts[7][k]) > region_similarity(coarse[7].masks[k], gts[7][k]) + 0.05
    # the level is part of the cache key: both levels can share one frame source
    source = FrameSource(frames, cache=True)
    coarse, full = FlowField("dis", "medium", 1.0, None), FlowField("dis", "medium", 1.0, 0)
    assert coarse.flow(source, 1, 0).shape == full.flow(source, 1, 0).shape == (H, W, 2)
    assert source.cache is not None and len([k for k in source.cache if k[0] == "flow"]) == 2
    with pytest.raises(ValueError, match="finest_scale"):
        FlowField(finest_scale=7)
    with pytest.raises(ValueError, match="patch_stride"):
        FlowField(patch_stride=0)
    with pytest.raises(ValueError, match="refinement_iterations"):
        FlowField(refinement_iterations=-1)
    tuned = FlowField("dis", "medium", 1.0, 0, 2, 10)
    assert tuned.flow(source, 1, 0).shape == (H, W, 2)
