"""Contract tests run over every registered propagator (as test_selectors_contract.py does for selectors).

Every propagator gets the same small synthetic clip (two textured squares moving over a textured
background, 8 frames of 64 x 64) with one keyframe in the middle, so each one tracks both backwards
and forwards, and must keep the protocol of :class:`curator.annotate.Propagator`: one result per frame
in frame order, boolean non-overlapping masks of the frame's shape for every keyframe object,
confidences in [0, 1], the keyframe's own masks unchanged, nothing carried across a shot cut, progress
up to the total, and a cancel check that stops it with :class:`PropagationCancelled`.

``feature`` and ``flow+feature`` share the session's DINOv2 model (skipped without the shared
checkpoint); ``sam2`` shares the session's random-weight predictor (see ``conftest.py``), so its masks
mean nothing and only the plumbing is checked. A newly registered propagator is built with no
settings; give it a branch in :func:`build` if it needs some.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from curator.annotate import (
    FrameSource,
    Keyframe,
    PropagatedFrame,
    PropagationCancelled,
    Propagator,
    create_propagator,
    list_propagators,
)
from curator.eval import region_similarity
from tests.conftest import SAM2_TEST_SETTINGS

H, W, N = 64, 64, 8
KEY = 3  # the keyframe: frames on both sides of it
OBJECTS = (1, 3)  # object ids need not be consecutive
SHOTS = [0] * 5 + [1] * 3  # a cut between frames 4 and 5; the keyframe is in the first shot
NAMES = list_propagators()


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def square_clip() -> tuple[list[np.ndarray], list[dict[int, np.ndarray]]]:
    """Object 1 (16 px) moves right 3 px a frame, object 3 (12 px) moves down 2 px a frame."""
    rng = np.random.default_rng(0)
    background = _blur((rng.random((H, W, 3)) * 255).astype(np.uint8), 2.0) // 2
    tex1 = _blur((rng.random((16, 16, 3)) * 255).astype(np.uint8), 1.0) // 2 + np.uint8(128)
    tex3 = _blur((rng.random((12, 12, 3)) * 255).astype(np.uint8), 1.0) // 2 + np.uint8(100)
    frames, gts = [], []
    for i in range(N):
        frame = background.copy()
        a = np.zeros((H, W), bool)
        a[36:52, 6 + 3 * i : 22 + 3 * i] = True
        frame[a] = tex1.reshape(-1, 3)
        b = np.zeros((H, W), bool)
        b[4 + 2 * i : 16 + 2 * i, 46:58] = True
        frame[b] = tex3.reshape(-1, 3)
        frames.append(frame)
        gts.append({1: a, 3: b})
    return frames, gts


FRAMES, GTS = square_clip()


@dataclass
class Case:
    """A propagator and its main run: no shot ids, frames from a loader, progress recorded."""

    name: str
    propagator: Propagator
    trained: bool  # False for random weights: masks are only checked for form
    keyframe: Keyframe
    keyframe_copy: dict[int, np.ndarray]
    out: list[PropagatedFrame]
    progress: list[tuple[int, int]]


def build(name: str, request: pytest.FixtureRequest) -> tuple[Propagator, bool]:
    """The propagator ``name`` set up cheaply for these tests, and whether its weights are trained."""
    if name in ("feature", "flow+feature"):
        backbone = request.getfixturevalue("dinov2_backbone")  # skips without the checkpoint
        # a 12 x 12 patch grid; at 224 px this checkpoint's features of the synthetic frames flip
        # between frames of even and odd square positions (patch cosine 0.37) and it loses the squares
        return create_propagator(name, backbone=backbone, device="cpu", short_side=168), True
    if name == "sam2":
        predictor = request.getfixturevalue("sam2_predictor")
        prop = create_propagator("sam2", **SAM2_TEST_SETTINGS, window=4)
        prop._predictor = predictor  # type: ignore[attr-defined]
        return prop, False
    return create_propagator(name), True


@pytest.fixture(scope="module", params=NAMES)
def case(request: pytest.FixtureRequest) -> Case:
    prop, trained = build(request.param, request)
    keyframe = Keyframe(KEY, {k: m.copy() for k, m in GTS[KEY].items()})
    keyframe_copy = {k: m.copy() for k, m in keyframe.masks.items()}
    progress: list[tuple[int, int]] = []
    source = FrameSource(lambda i: FRAMES[i], num_frames=N)
    out = list(prop.propagate(source, [keyframe], progress=lambda done, total: progress.append((done, total))))
    return Case(request.param, prop, trained, keyframe, keyframe_copy, out, progress)


def check_form(out: list[PropagatedFrame]) -> None:
    """One result per frame in frame order; boolean, frame-sized, exclusive masks; confidences in [0, 1]."""
    assert [f.index for f in out] == list(range(N))
    for f in out:
        assert set(f.masks) == set(OBJECTS) and set(f.confidence) == set(OBJECTS), f.index
        for k in OBJECTS:
            mask = f.masks[k]
            assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (H, W), (f.index, k)
            conf = f.confidence[k]
            assert isinstance(conf, float) and 0.0 <= conf <= 1.0, (f.index, k, conf)
        assert not (f.masks[1] & f.masks[3]).any(), f"objects overlap on frame {f.index}"


def test_registry_is_covered() -> None:
    assert {"flow", "feature", "flow+feature", "sam2"} <= set(NAMES)


def test_one_result_per_frame_in_order_with_valid_masks(case: Case) -> None:
    assert isinstance(case.propagator, Propagator)
    check_form(case.out)


def test_keyframe_masks_come_back_unchanged(case: Case) -> None:
    assert [f.index for f in case.out if f.is_keyframe] == [KEY]
    key = case.out[KEY]
    for k in OBJECTS:
        np.testing.assert_array_equal(key.masks[k], case.keyframe_copy[k])
        np.testing.assert_array_equal(case.keyframe.masks[k], case.keyframe_copy[k])  # input not modified
        assert key.confidence[k] == 1.0


def test_progress_counts_every_frame_up_to_the_total(case: Case) -> None:
    assert case.progress == [(i, N) for i in range(1, N + 1)]


def test_trained_propagators_follow_the_squares(case: Case) -> None:
    """A sanity floor (not a quality bar) next to the keyframe, so the shot test below has teeth."""
    if not case.trained:
        pytest.skip(f"{case.name} runs with random weights here")
    for t in (KEY - 1, KEY + 1):
        for k in OBJECTS:
            assert region_similarity(case.out[t].masks[k], GTS[t][k]) > 0.4, (case.name, t, k)
    assert case.out[N - 1].masks[1].any()  # the object is followed to the end of the clip


def test_nothing_crosses_a_shot_cut(case: Case) -> None:
    progress: list[tuple[int, int]] = []
    out = list(
        case.propagator.propagate(
            FRAMES, [Keyframe(KEY, GTS[KEY])], shot_ids=SHOTS, progress=lambda d, n: progress.append((d, n))
        )
    )
    check_form(out)
    assert progress[-1] == (N, N)
    cut = SHOTS.index(1)
    for f in out[cut:]:  # the second shot has no keyframe: nothing there, with no confidence
        assert not any(m.any() for m in f.masks.values()), f.index
        assert all(c == 0.0 for c in f.confidence.values()), f.index
    for k in OBJECTS:
        np.testing.assert_array_equal(out[KEY].masks[k], GTS[KEY][k])


def test_cancel_stops_with_propagation_cancelled(case: Case) -> None:
    """The cancel check runs between frames: asked after two frames, the generator raises, no third."""
    progress: list[int] = []
    frames = case.propagator.propagate(
        FRAMES,
        [Keyframe(0, GTS[0])],  # on the first frame: only what comes after it is tracked
        progress=lambda done, total: progress.append(done),
        cancel=lambda: len(progress) >= 2,
    )
    assert isinstance(frames, Iterator)  # a stream: frames come one at a time, so a cancel can stop it
    yielded: list[int] = []
    with pytest.raises(PropagationCancelled):
        for f in frames:
            yielded.append(f.index)
    assert yielded == [0, 1] and progress == [1, 2]
    # and a cancel that is already set stops it before the first frame
    with pytest.raises(PropagationCancelled):
        next(iter(case.propagator.propagate(FRAMES, [Keyframe(KEY, GTS[KEY])], cancel=lambda: True)))
