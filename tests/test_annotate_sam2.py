"""SAM 2 for real, with random weights at a small ``++model.image_size`` on short synthetic clips.

Random weights make the masks meaningless, so these tests check the plumbing: shapes, both
directions, several objects, RLE, that windowed and pruned propagation equals one pass, that memory
stays flat as the clip grows, and the pre-annotation entry points.
"""

from __future__ import annotations

import numpy as np
import pytest

from curator.annotate import Keyframe, create_propagator, decode_rle
from curator.annotate.sam2_backend import SAM2Annotator, SAM2Propagator, SAM2WeightsError, WindowedFrames
from tests.conftest import SAM2_TEST_SETTINGS

H, W = 64, 96


def clip(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    background = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    frames = []
    for i in range(n):
        frame = background.copy()
        frame[10:30, 5 + 2 * i : 25 + 2 * i] = (255, 0, 0)
        frame[35:60, 60 - 2 * i : 85 - 2 * i] = (0, 255, 0)
        frames.append(frame)
    return frames


def masks(i: int) -> dict[int, np.ndarray]:
    a = np.zeros((H, W), bool)
    a[10:30, 5 + 2 * i : 25 + 2 * i] = True
    b = np.zeros((H, W), bool)
    b[35:60, 60 - 2 * i : 85 - 2 * i] = True
    return {1: a, 2: b}


def sam2(predictor: object = None, **kwargs: object) -> SAM2Propagator:
    """A SAM 2 propagator with the tests' settings (a small memory: besides the keyframe it reads the
    previous frame only), sharing ``predictor`` (the session's ``sam2_predictor``) instead of building one."""
    prop = create_propagator("sam2", **SAM2_TEST_SETTINGS, **kwargs)
    assert isinstance(prop, SAM2Propagator)
    if predictor is not None:
        prop._predictor = predictor
    return prop


@pytest.fixture(scope="module")
def windowed_run(sam2_predictor: object) -> tuple[SAM2Propagator, list]:
    prop = sam2(sam2_predictor, window=2)
    frames = list(prop.propagate(clip(5), [Keyframe(0, masks(0)), Keyframe(4, masks(4))]))
    return prop, frames


def test_needs_weights_unless_told() -> None:
    with pytest.raises(SAM2WeightsError, match="--sam2-checkpoint"):
        create_propagator("sam2")
    with pytest.raises(SAM2WeightsError, match="does not exist"):
        create_propagator("sam2", checkpoint="/nope/sam2.pt")


def test_shapes_both_directions_objects_and_rle(windowed_run: tuple[SAM2Propagator, list]) -> None:
    prop, frames = windowed_run
    assert prop.predictor.image_size == SAM2_TEST_SETTINGS["image_size"] == 128
    assert [f.index for f in frames] == list(range(5))
    assert [f.is_keyframe for f in frames] == [True, False, False, False, True]
    for f in frames:
        assert set(f.masks) == {1, 2}
        assert all(m.shape == (H, W) and m.dtype == bool for m in f.masks.values())
        assert all(0.0 <= c <= 1.0 for c in f.confidence.values())
        for obj, rle in f.rle().items():
            np.testing.assert_array_equal(decode_rle(rle), f.masks[obj])
    np.testing.assert_array_equal(frames[4].masks[1], masks(4)[1])
    # bounded: never more than the window of frames, never more outputs than the memory can read
    assert prop.stats.max_frames_held <= 2
    assert prop.stats.max_outputs_held <= prop._keep() + 1


def test_windowed_pruned_equals_one_pass(sam2_predictor: object) -> None:
    """Same soft masks from a windowed, pruned pass as from a one-pass run holding every frame.

    With the small memory outputs more than 3 frames back are pruned, so 5 tracked frames already
    drop one. Compared as probabilities with a small tolerance: random weights put many logits near
    0, where CPU thread scheduling can flip a thresholded pixel.
    """
    from curator.annotate.frames import FrameSource

    frames = FrameSource(clip(6))
    init = {k: m.astype(np.float32) for k, m in masks(0).items()}
    # one set of random weights for both runs
    windowed, one_pass = sam2(sam2_predictor, window=2), sam2(sam2_predictor, prune=False)
    assert windowed._keep() == 3
    a = list(windowed.track(frames, 0, init, list(range(1, 6))))
    b = list(one_pass.track(frames, 0, init, list(range(1, 6))))
    assert windowed.stats.max_frames_held == 2 and one_pass.stats.max_frames_held == 6
    assert windowed.stats.max_outputs_held == 4 and one_pass.stats.max_outputs_held == 5  # pruning happened
    for (ta, pa), (tb, pb) in zip(a, b, strict=True):
        assert ta == tb
        for obj in (1, 2):
            np.testing.assert_allclose(pa[obj], pb[obj], atol=1e-3)


def test_windowed_frames_load_in_blocks() -> None:
    from curator.annotate.frames import FrameSource

    images = WindowedFrames(FrameSource(clip(5)), image_size=32, window=2)
    assert tuple(images[3].shape) == (3, 32, 32)
    assert images.max_held == 2 and images.loads == 1
    images[2]
    assert images.loads == 1  # same block
    images[4]
    assert images.loads == 2 and images.max_held == 2


@pytest.mark.slow
def test_memory_stays_flat_as_the_clip_grows() -> None:
    """Outputs and frames held do not grow with the clip; peak RSS growth is flat too."""
    import psutil

    process = psutil.Process()
    held = {}
    peaks = {}
    for n in (6, 18):
        prop = sam2(window=2)
        base = process.memory_info().rss
        peak = base
        for _ in prop.propagate(clip(n), [Keyframe(0, masks(0))]):
            peak = max(peak, process.memory_info().rss)
        held[n] = (prop.stats.max_frames_held, prop.stats.max_outputs_held)
        peaks[n] = (peak - base) / 2**20
    assert held[6][0] == held[18][0] == 2
    assert held[18][1] <= prop._keep() + 1
    assert peaks[18] < peaks[6] + 64  # MiB: no growth proportional to the clip


def test_pre_annotation_automatic_and_prompts() -> None:
    import torch

    torch.manual_seed(0)  # the random weights, so that the automatic generator finds the same masks
    annotator = SAM2Annotator(random_weights=True, image_size=128, device="cpu")
    image = clip(1)[0]
    found = annotator.automatic(
        image, points_per_side=2, points_per_batch=4, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )
    assert isinstance(found, list) and found  # no quality filter: the 4 point prompts keep a mask
    for m in found:
        seg = m["segmentation"]
        assert seg.shape == (H, W) and seg.dtype == bool
        assert m["area"] == seg.sum() > 0 and len(m["bbox"]) == 4
        assert {"predicted_iou", "stability_score"} <= set(m)
    assert [m["area"] for m in found] == sorted((m["area"] for m in found), reverse=True)  # largest first
    mask, score = annotator.from_prompts(image, points=np.array([[15, 20]]), labels=np.array([1]))
    assert mask.shape == (H, W) and mask.dtype == bool and np.isfinite(score)
    mask, _ = annotator.from_prompts(image, box=np.array([5, 10, 25, 30]))
    assert mask.shape == (H, W)
    with pytest.raises(ValueError, match="or a box"):
        annotator.from_prompts(image)
    with pytest.raises(ValueError, match="inside the 96x64 image"):
        annotator.from_prompts(image, points=np.array([[500, 5]]), labels=np.array([1]))
    with pytest.raises(ValueError, match="one label per point"):
        annotator.from_prompts(image, points=np.array([[5, 5]]))
