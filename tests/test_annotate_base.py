"""The propagator protocol: streaming, bidirectional blending, shots, progress, cancel, bad input."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from curator.annotate import (
    DEFAULT_CPU_PROPAGATOR,
    FrameSource,
    Keyframe,
    PropagationCancelled,
    Propagator,
    create_propagator,
    list_propagators,
)
from curator.annotate.blend import soft_confidence
from curator.annotate.engine import BidirectionalPropagator, shot_segments
from curator.registry import UnknownNameError

H, W = 8, 10


@dataclass
class CopyTracker(BidirectionalPropagator):
    """Carries the keyframe's soft mask unchanged and records every call."""

    name: ClassVar[str] = "copy"

    def __post_init__(self) -> None:
        self.calls: list[tuple[int, list[int]]] = []

    def track(
        self, frames: FrameSource, start: int, init: Mapping[int, np.ndarray], order: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        self.calls.append((start, list(order)))
        for t in order:
            frames[t]  # a real tracker reads the frame
            yield t, {k: p.copy() for k, p in init.items()}


def video(n: int) -> list[np.ndarray]:
    return [np.full((H, W, 3), i, np.uint8) for i in range(n)]


def left(cols: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[:, :cols] = True
    return mask


def test_registry_lists_the_backends() -> None:
    names = list_propagators()
    assert {"flow", "feature", "flow+feature", "sam2"} <= set(names)
    assert DEFAULT_CPU_PROPAGATOR in names
    flow = create_propagator("flow")
    assert isinstance(flow, Propagator)
    with pytest.raises(UnknownNameError, match="valid names"):
        create_propagator("nope")


def test_streams_every_frame_in_order_with_progress() -> None:
    seen: list[tuple[int, int]] = []
    prop = CopyTracker()
    out = prop.propagate(video(7), [Keyframe(2, {1: left(4)})], progress=lambda d, n: seen.append((d, n)))
    first = next(out)  # a generator: nothing computed for later frames yet
    assert first.index == 0
    frames = [first, *out]
    assert [f.index for f in frames] == list(range(7))
    assert seen == [(i, 7) for i in range(1, 8)]
    assert [f.is_keyframe for f in frames] == [i == 2 for i in range(7)]
    assert all(f.masks[1].shape == (H, W) and f.masks[1].dtype == bool for f in frames)
    assert prop.calls == [(2, [1, 0]), (2, [3, 4, 5, 6])]


def test_between_two_keyframes_blends_by_distance() -> None:
    # Keyframe 0 covers 2 columns, keyframe 4 covers 8; the copy tracker's two sides disagree on
    # columns 2..7, where the blend is (4 - t) / 4 * 0 + t / 4 * 1 = t / 4 (both sides are crisp).
    prop = CopyTracker()
    frames = list(prop.propagate(video(5), [Keyframe(0, {1: left(2)}), Keyframe(4, {1: left(8)})]))
    assert frames[1].masks[1].sum() == 2 * H  # t=1: weight 1/4 < 0.5, forward side wins
    assert frames[2].masks[1].sum() == 8 * H  # t=2: exactly 0.5 reaches the threshold
    assert frames[3].masks[1].sum() == 8 * H
    assert frames[4].is_keyframe and frames[4].confidence[1] == 1.0
    assert frames[1].confidence[1] < 1.0  # disagreement shows as lower confidence
    assert (4, [3, 2, 1]) in prop.calls and (0, [1, 2, 3]) in prop.calls


def test_multiple_objects_are_exclusive_and_absent_objects_empty() -> None:
    a = np.zeros((H, W), bool)
    a[:4] = True
    b = np.zeros((H, W), bool)
    b[4:] = True
    frames = list(CopyTracker().propagate(video(4), [Keyframe(0, {1: a, 2: b}), Keyframe(3, {1: a})]))
    for f in frames:
        assert set(f.masks) == {1, 2}
        assert not (f.masks[1] & f.masks[2]).any()
        assert set(np.unique(f.labels()).tolist()) <= {0, 1, 2}
    assert not frames[3].masks[2].any()  # object 2 left out of keyframe 3: not visible there
    rle = frames[0].rle()
    assert Keyframe.from_rle(0, rle).masks[1].sum() == a.sum()


def test_shots_stop_propagation_unless_asked() -> None:
    shots = [0, 0, 0, 1, 1, 1]
    assert [list(r) for r in shot_segments(6, shots, False)] == [[0, 1, 2], [3, 4, 5]]
    frames = list(CopyTracker().propagate(video(6), [Keyframe(1, {1: left(5)})], shot_ids=shots))
    assert [int(f.masks[1].sum()) for f in frames] == [5 * H] * 3 + [0] * 3
    assert [f.confidence[1] for f in frames[3:]] == [0.0] * 3
    crossed = list(
        CopyTracker().propagate(video(6), [Keyframe(1, {1: left(5)})], shot_ids=shots, cross_shots=True)
    )
    assert all(f.masks[1].sum() == 5 * H for f in crossed)
    with pytest.raises(ValueError, match="shot_ids"):
        list(CopyTracker().propagate(video(6), [Keyframe(1, {1: left(5)})], shot_ids=[0, 1]))


def test_cancel_between_frames() -> None:
    done: list[int] = []
    out = CopyTracker().propagate(
        video(10),
        [Keyframe(0, {1: left(3)})],
        progress=lambda d, n: done.append(d),
        cancel=lambda: len(done) >= 3,
    )
    with pytest.raises(PropagationCancelled):
        list(out)
    assert done == [1, 2, 3]


def test_loader_function_frame_source() -> None:
    loaded: list[int] = []

    def load(i: int) -> np.ndarray:
        loaded.append(i)
        return np.zeros((H, W, 3), np.uint8)

    source = FrameSource(load, num_frames=5)
    frames = list(CopyTracker().propagate(source, [Keyframe(4, {1: left(3)})]))
    assert len(frames) == 5 and set(loaded) == {0, 1, 2, 3}  # the keyframe itself is never needed
    with pytest.raises(ValueError, match="num_frames"):
        FrameSource(load)


def test_bad_input_gives_clear_errors() -> None:
    prop = CopyTracker()
    with pytest.raises(ValueError, match=r"has shape \(4, 4\), expected the frame size \(8, 10\)"):
        list(prop.propagate(video(3), [Keyframe(0, {1: np.ones((4, 4), bool)})]))
    with pytest.raises(ValueError, match="is empty"):
        list(prop.propagate(video(3), [Keyframe(0, {1: np.zeros((H, W), bool)})]))
    with pytest.raises(ValueError, match=r"keyframe 5 is outside the video \(frames 0..2\)"):
        list(prop.propagate(video(3), [Keyframe(5, {1: left(2)})]))
    with pytest.raises(ValueError, match="at least one keyframe"):
        list(prop.propagate(video(3), []))
    with pytest.raises(ValueError, match="two keyframes on frame 1"):
        list(prop.propagate(video(3), [Keyframe(1, {1: left(2)}), Keyframe(1, {1: left(3)})]))
    with pytest.raises(IndexError, match=r"frame 9 is not in this video \(frames 0..2\)"):
        FrameSource(video(3))[9]
    with pytest.raises(ValueError, match="uint8 RGB"):
        FrameSource([np.zeros((H, W), np.uint8)])[0]
    with pytest.raises(ValueError, match="other frames have"):
        source = FrameSource([np.zeros((H, W, 3), np.uint8), np.zeros((H + 1, W, 3), np.uint8)])
        source[0]
        source[1]


def test_soft_confidence() -> None:
    assert soft_confidence(np.zeros((3, 3), np.float32)) == 1.0
    assert soft_confidence(np.ones((3, 3), np.float32)) == 1.0
    assert soft_confidence(np.full((3, 3), 0.5, np.float32)) == 0.0
