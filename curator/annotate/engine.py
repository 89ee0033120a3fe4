"""The bidirectional, shot-aware propagation engine.

Most propagators only know how to carry soft masks from one frame to the next in one direction.
:class:`BidirectionalPropagator` turns such a one-way tracker into a full propagator: it splits the
video at shot boundaries (:func:`shot_segments`), runs backwards and forwards from the keyframes
(checked by :func:`validate_keyframes`) and blends the two sides.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from curator.annotate.blend import SoftStore, blend_sides, exclusive_masks, soft_confidence
from curator.annotate.derived import run_parallel
from curator.annotate.frames import FrameInput, FrameSource
from curator.annotate.masks import check_mask
from curator.annotate.types import Keyframe, PropagatedFrame, PropagationCancelled
from curator.progress import CancelCheck, CountProgress


def validate_keyframes(
    keyframes: Sequence[Keyframe], num_frames: int, size: tuple[int, int]
) -> tuple[list[Keyframe], list[int]]:
    """Check keyframes against the video; return them sorted by index and the sorted object ids.

    Raises:
        ValueError: With no keyframes, a keyframe outside the video, two keyframes on one frame, a
            non-positive object id, a mask of the wrong size, or an empty mask.
    """
    if not keyframes:
        raise ValueError("propagation needs at least one keyframe")
    seen: set[int] = set()
    objects: set[int] = set()
    for key in keyframes:
        if not 0 <= key.index < num_frames:
            raise ValueError(f"keyframe {key.index} is outside the video (frames 0..{num_frames - 1})")
        if key.index in seen:
            raise ValueError(f"two keyframes on frame {key.index}")
        seen.add(key.index)
        if not key.masks:
            raise ValueError(f"keyframe {key.index} has no masks")
        for obj_id, mask in key.masks.items():
            if int(obj_id) <= 0:
                raise ValueError(f"object ids must be positive ints (0 is background), got {obj_id}")
            mask = check_mask(mask, size, f"mask of object {obj_id} on keyframe {key.index}")
            if not mask.any():
                raise ValueError(
                    f"mask of object {obj_id} on keyframe {key.index} is empty; leave the object out of "
                    "that keyframe's masks to say it is not visible there"
                )
            objects.add(int(obj_id))
    return sorted(keyframes, key=lambda k: k.index), sorted(objects)


def shot_segments(
    num_frames: int, shot_ids: Sequence[int] | np.ndarray | None, cross_shots: bool
) -> list[range]:
    """Split ``0..num_frames`` into runs of one shot (one run when ``cross_shots`` or no shot ids)."""
    if shot_ids is None or cross_shots:
        return [range(num_frames)]
    ids = np.asarray(shot_ids)
    if ids.shape != (num_frames,):
        raise ValueError(f"shot_ids must have shape ({num_frames},), got {ids.shape}")
    cuts = [0, *(np.flatnonzero(ids[1:] != ids[:-1]) + 1).tolist(), num_frames]
    return [range(a, b) for a, b in itertools.pairwise(cuts)]


@dataclass
class BidirectionalPropagator:
    """Base class: a one-way soft-mask tracker made into a bidirectional, shot-aware propagator.

    Subclasses implement :meth:`track`. For every shot (a run of equal ``shot_ids``; the whole video
    when ``cross_shots`` is set or no shot ids are given) with keyframes ``k0 < k1 < ... < km``:

    * frames before ``k0`` are tracked backwards from ``k0``, frames after ``km`` forwards from ``km``;
    * a frame ``t`` between two keyframes ``a < t < b`` is tracked forwards from ``a`` and backwards from
      ``b``, and the two soft masks are blended per object as
      ``p = (w_a * p_a + w_b * p_b) / (w_a + w_b)`` with ``w_a = (b - t) / (b - a) * c_a`` and
      ``w_b = (t - a) / (b - a) * c_b``, where ``c`` is each side's :func:`soft_confidence`. Why: a
      tracker's error grows with the number of frames it has carried a mask, so the nearer keyframe is
      trusted more (both sides count equally in the middle), and a side that has lost the object gives
      a blurry soft mask and so a low ``c``, which hands the frame to the other side;
    * shots without a keyframe get empty masks with confidence 0.

    The blended soft masks are then made exclusive: a pixel goes to the object with the highest
    probability if that is at least ``threshold``, else to the background. The backward pass of each
    span runs first and its soft masks are kept compressed, so frames can be yielded in order while
    the forward pass streams.

    Attributes:
        threshold: Probability above which a pixel is foreground.
    """

    name: ClassVar[str] = ""
    threshold: float = 0.5
    #: Threads that compute derived data (flow, features) ahead of tracking, when the frame source
    #: keeps it (0: one per CPU core, at most 4; 1: none, computed lazily while tracking).
    workers: int = 0

    def derived_jobs(self, frames: FrameSource, chains: Sequence[tuple[int, Sequence[int]]]) -> list[Callable[[], object]]:
        """Jobs that compute and keep the derived data :meth:`track` will read along ``chains``.

        Each chain is ``(start, order)`` as :meth:`track` receives it; jobs whose result is already
        kept are left out. The base class has none (a tracker without derived data).
        """
        return []

    def track(
        self, frames: FrameSource, start: int, init: Mapping[int, np.ndarray], order: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Carry soft masks from frame ``start`` through the frames in ``order``, one step at a time.

        Args:
            frames: The video.
            start: The keyframe the masks are on.
            init: Object id to ``(H, W)`` float32 probability map on ``start`` (keyframe masks, 0/1).
            order: Frames to visit, consecutive and moving away from ``start`` (ascending or
                descending); ``order[0]`` is next to ``start``.

        Yields:
            ``(index, {object id: (H, W) float32 probability map})`` for each frame of ``order``.
        """
        raise NotImplementedError

    def _check(self, cancel: CancelCheck | None) -> None:
        if cancel is not None and cancel():
            raise PropagationCancelled("propagation cancelled")

    def _finish(
        self, index: int, probs: Mapping[int, np.ndarray], objects: Sequence[int], conf: Mapping[int, float]
    ) -> PropagatedFrame:
        masks = exclusive_masks(probs, objects, self.threshold)
        return PropagatedFrame(index, masks, {k: float(conf[k]) for k in objects})

    def propagate(
        self,
        frames: FrameInput | FrameSource,
        keyframes: Sequence[Keyframe],
        *,
        shot_ids: Sequence[int] | np.ndarray | None = None,
        cross_shots: bool = False,
        progress: CountProgress | None = None,
        cancel: CancelCheck | None = None,
    ) -> Iterator[PropagatedFrame]:
        """Yield a :class:`PropagatedFrame` for every frame of the video, in frame order.

        Args:
            frames: The video's frames (see :class:`FrameSource`).
            keyframes: Keyframes with masks; at least one.
            shot_ids: Per-frame shot ids; propagation stops at a change of shot id.
            cross_shots: Propagate across shot boundaries anyway.
            progress: Called with ``(frames done, total frames)`` after each yielded frame.
            cancel: Checked between frames; when it returns True the generator raises
                :class:`PropagationCancelled`.

        Raises:
            ValueError: For bad keyframes (see :func:`validate_keyframes`) or shot ids.
            PropagationCancelled: When ``cancel`` asks to stop.
        """
        source = FrameSource.wrap(frames)
        n = len(source)
        size = source.size
        keys, objects = validate_keyframes(keyframes, n, size)
        segments = shot_segments(n, shot_ids, cross_shots)
        if source.keeps_derived:
            # the derived data is computed on every core first; tracking then only reads it
            chains = plan_chains(segments, [k.index for k in keys])
            run_parallel(self.derived_jobs(source, chains), self.workers, cancel)
        done = 0
        for segment in segments:
            seg_keys = [k for k in keys if k.index in segment]
            for frame in self._propagate_shot(source, segment, seg_keys, objects, cancel):
                done += 1
                if progress is not None:
                    progress(done, n)
                yield frame

    def _propagate_shot(
        self,
        source: FrameSource,
        segment: range,
        seg_keys: Sequence[Keyframe],
        objects: Sequence[int],
        cancel: CancelCheck | None,
    ) -> Iterator[PropagatedFrame]:
        """The frames of one shot in order: empty without keyframes, else head, keyframes and spans."""
        size = source.size
        if not seg_keys:
            for t in segment:
                self._check(cancel)
                empty = {k: np.zeros(size, bool) for k in objects}
                yield PropagatedFrame(t, empty, dict.fromkeys(objects, 0.0))
            return
        yield from self._propagate_head(source, segment, seg_keys[0], objects, cancel)
        for i, key in enumerate(seg_keys):
            self._check(cancel)
            masks = {
                k: check_mask(key.masks[k]).copy() if k in key.masks else np.zeros(size, bool) for k in objects
            }
            yield PropagatedFrame(key.index, masks, dict.fromkeys(objects, 1.0), is_keyframe=True)
            nxt = seg_keys[i + 1] if i + 1 < len(seg_keys) else None
            yield from self._propagate_span(source, key, nxt, segment.stop, objects, cancel)

    def _propagate_head(
        self,
        source: FrameSource,
        segment: range,
        first: Keyframe,
        objects: Sequence[int],
        cancel: CancelCheck | None,
    ) -> Iterator[PropagatedFrame]:
        """The frames before the shot's first keyframe: tracked backwards, stored, yielded in order."""
        head = list(range(first.index - 1, segment.start - 1, -1))
        store = SoftStore()
        for t, probs in self.track(source, first.index, _initial_probs(first, objects, source.size), head):
            self._check(cancel)
            store.put(t, probs)
        for t in reversed(head):
            self._check(cancel)
            probs = store.pop(t)
            yield self._finish(t, probs, objects, {k: soft_confidence(p) for k, p in probs.items()})

    def _propagate_span(
        self,
        source: FrameSource,
        key: Keyframe,
        nxt: Keyframe | None,
        stop: int,
        objects: Sequence[int],
        cancel: CancelCheck | None,
    ) -> Iterator[PropagatedFrame]:
        """The frames after ``key``: up to ``nxt`` blending both sides, or forwards to ``stop``."""
        size = source.size
        stop = nxt.index if nxt is not None else stop
        forward = list(range(key.index + 1, stop))
        backward_store = SoftStore()
        if nxt is not None and forward:
            for t, probs in self.track(source, nxt.index, _initial_probs(nxt, objects, size), forward[::-1]):
                self._check(cancel)
                backward_store.put(t, probs)
        for t, probs in self.track(source, key.index, _initial_probs(key, objects, size), forward):
            self._check(cancel)
            conf = {k: soft_confidence(p) for k, p in probs.items()}
            if nxt is not None:
                back = backward_store.pop(t)
                probs = {
                    k: blend_sides(t, key.index, nxt.index, probs[k], back[k], conf[k], soft_confidence(back[k]))
                    for k in objects
                }
                conf = {k: soft_confidence(p) for k, p in probs.items()}
            yield self._finish(t, probs, objects, conf)


def plan_chains(segments: Sequence[range], key_indices: Sequence[int]) -> list[tuple[int, list[int]]]:
    """The ``(start, order)`` chains :meth:`BidirectionalPropagator.propagate` tracks, in its order."""
    chains: list[tuple[int, list[int]]] = []
    keyset = sorted(set(key_indices))
    for segment in segments:
        seg = [k for k in keyset if k in segment]
        if not seg:
            continue
        chains.append((seg[0], list(range(seg[0] - 1, segment.start - 1, -1))))
        for i, key in enumerate(seg):
            nxt = seg[i + 1] if i + 1 < len(seg) else None
            forward = list(range(key + 1, nxt if nxt is not None else segment.stop))
            if nxt is not None and forward:
                chains.append((nxt, forward[::-1]))
            chains.append((key, forward))
    return [(start, order) for start, order in chains if order]


def _initial_probs(key: Keyframe, objects: Sequence[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
    """A keyframe's masks as 0/1 float32 maps for every object (zeros where it is absent)."""
    return {
        k: (check_mask(key.masks[k]).astype(np.float32) if k in key.masks else np.zeros(size, np.float32))
        for k in objects
    }
