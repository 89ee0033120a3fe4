"""The propagator protocol, its registry, and the data types that go in and out.

A propagator turns a few keyframes with masks into a mask per object for every frame of a video. It
streams: :meth:`Propagator.propagate` is a generator yielding one :class:`PropagatedFrame` at a time
in frame order, reports progress, and checks a cancel flag between frames.

Most propagators only know how to carry soft masks from one frame to the next in one direction.
:class:`BidirectionalPropagator` turns such a one-way tracker into a full propagator: it splits the
video at shot boundaries, runs backwards and forwards from the keyframes and blends the two sides.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import cv2
import numpy as np

from curator.annotate.masks import check_mask, decode_rle, encode_rle, labels_to_masks, masks_to_labels
from curator.registry import Registry

#: A video's frames: a list-like of RGB uint8 ``(H, W, 3)`` arrays or a loader ``index -> frame``.
FrameInput = Sequence[np.ndarray] | Callable[[int], np.ndarray]
ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class PropagationCancelled(RuntimeError):
    """Raised by a propagation generator when its cancel check returned True between two frames."""


class FrameSource:
    """Random access to a video's RGB frames without holding them all.

    Wraps a list-like of frames or a loader function (for example one reading JPEG paths from the
    database), so propagators never need the whole video in memory.

    Args:
        frames: A sequence of ``(H, W, 3)`` uint8 RGB frames, a callable ``index -> frame``, or another
            ``FrameSource`` (returned as is by :meth:`wrap`).
        num_frames: Number of frames; required with a callable.
        cache: Keep derived per-frame data (optical flow, patch features) in :attr:`cache` so repeated
            propagations over the same video (a benchmark over budgets) compute them once. Off by
            default because it grows with the video.

    Attributes:
        cache: Dict for derived data keyed by ``(kind, ...)`` tuples, or ``None`` when caching is off.
    """

    def __init__(self, frames: FrameInput, num_frames: int | None = None, cache: bool = False) -> None:
        if isinstance(frames, Sequence) or (hasattr(frames, "__len__") and hasattr(frames, "__getitem__")):
            self._seq: Sequence[np.ndarray] | None = frames  # type: ignore[assignment]
            self._fn: Callable[[int], np.ndarray] | None = None
            n = len(frames)  # type: ignore[arg-type]
            if num_frames is not None and num_frames != n:
                raise ValueError(f"num_frames={num_frames} but the sequence holds {n} frames")
        elif callable(frames):
            if num_frames is None:
                raise ValueError("a frame loader function needs num_frames")
            self._seq, self._fn, n = None, frames, int(num_frames)
        else:
            raise TypeError(f"frames must be a sequence of arrays or a loader function, got {type(frames)}")
        if n <= 0:
            raise ValueError("a video needs at least one frame")
        self.num_frames = n
        self.cache: dict[Hashable, Any] | None = {} if cache else None
        self._size: tuple[int, int] | None = None

    @classmethod
    def wrap(cls, frames: FrameInput | FrameSource, num_frames: int | None = None) -> FrameSource:
        """Return ``frames`` if it already is a ``FrameSource``, else wrap it."""
        return frames if isinstance(frames, FrameSource) else cls(frames, num_frames)

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index: int) -> np.ndarray:
        """The RGB frame at ``index``.

        Raises:
            IndexError: If ``index`` is not a frame of this video.
            ValueError: If the frame is not an ``(H, W, 3)`` uint8 array of the video's size.
        """
        index = int(index)
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} is not in this video (frames 0..{self.num_frames - 1})")
        frame = self._seq[index] if self._seq is not None else self._fn(index)  # type: ignore[misc]
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"frame {index} must be an (H, W, 3) uint8 RGB array, got {frame.shape} {frame.dtype}"
            )
        if self._size is None:
            self._size = (int(frame.shape[0]), int(frame.shape[1]))
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame {index} has size {frame.shape[:2]}, other frames have {self._size}")
        return frame

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the frames (reads frame 0 the first time)."""
        if self._size is None:
            self[0]
        assert self._size is not None
        return self._size


@dataclass(frozen=True)
class Keyframe:
    """A frame with human (or ground-truth) masks: the anchor propagation starts from.

    Attributes:
        index: Frame index in the video.
        masks: Instance id (a positive int) to ``(H, W)`` bool mask. An object of the video that is
            absent from this keyframe is taken as not visible there.
    """

    index: int
    masks: Mapping[int, np.ndarray]

    @classmethod
    def from_labels(cls, index: int, labels: np.ndarray) -> Keyframe:
        """Keyframe from an indexed label map (0 background, ``k`` instance ``k``)."""
        return cls(int(index), labels_to_masks(labels))

    @classmethod
    def from_rle(cls, index: int, rles: Mapping[int, Mapping[str, Any]]) -> Keyframe:
        """Keyframe from COCO RLEs, one per instance id."""
        return cls(int(index), {int(k): decode_rle(v) for k, v in rles.items()})


@dataclass(frozen=True)
class PropagatedFrame:
    """One frame of a propagation's output.

    Attributes:
        index: Frame index.
        masks: Instance id to ``(H, W)`` bool mask, for every object of the propagation (non-overlapping).
        confidence: Instance id to a confidence in [0, 1]: 1 on keyframes; elsewhere how crisp the
            propagated soft mask is (the mean of ``|2p - 1|`` over pixels where ``p > 0.1``), so it
            drops where the two directions disagree or a tracker lost the object.
        is_keyframe: Whether the masks are the keyframe's own.
    """

    index: int
    masks: dict[int, np.ndarray]
    confidence: dict[int, float]
    is_keyframe: bool = False

    @property
    def frame_confidence(self) -> float:
        """The weakest object's confidence (1.0 with no objects)."""
        return min(self.confidence.values(), default=1.0)

    def labels(self) -> np.ndarray:
        """The masks as one indexed label map (DAVIS PNG layout)."""
        shape = next(iter(self.masks.values())).shape if self.masks else (0, 0)
        return masks_to_labels(self.masks, shape)

    def rle(self) -> dict[int, dict[str, Any]]:
        """The masks as COCO RLEs, one per instance id."""
        return {k: encode_rle(m) for k, m in self.masks.items()}


@runtime_checkable
class Propagator(Protocol):
    """Propagates keyframe masks to every frame of a video, frame by frame."""

    name: ClassVar[str]

    def propagate(
        self,
        frames: FrameInput | FrameSource,
        keyframes: Sequence[Keyframe],
        *,
        shot_ids: Sequence[int] | np.ndarray | None = None,
        cross_shots: bool = False,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> Iterator[PropagatedFrame]:
        """Yield a :class:`PropagatedFrame` for every frame, in frame order."""
        ...


PROPAGATORS: Registry[Propagator] = Registry("propagator")


def register_propagator(name: str) -> Any:
    """Class decorator registering a propagator under ``name``."""
    return PROPAGATORS.register(name)


def soft_confidence(prob: np.ndarray) -> float:
    """Crispness of a soft mask: mean ``|2p - 1|`` over pixels with ``p > 0.1`` (1.0 if there are none)."""
    region = prob > 0.1
    if not region.any():
        return 1.0
    return float(np.abs(2.0 * prob[region] - 1.0).mean())


def blend_sides(
    t: int, a: int, b: int, prob_a: np.ndarray, prob_b: np.ndarray, conf_a: float, conf_b: float
) -> np.ndarray:
    """Soft mask of frame ``a < t < b`` from the chains of keyframes ``a`` and ``b`` (see :class:`BidirectionalPropagator`).

    Each side's weight is its closeness to ``t`` times its :func:`soft_confidence` (at least 1e-3).
    """
    span = b - a
    wa = (b - t) / span * max(conf_a, 1e-3)
    wb = (t - a) / span * max(conf_b, 1e-3)
    return (wa * prob_a + wb * prob_b) / (wa + wb)  # type: ignore[no-any-return]


def exclusive_masks(
    probs: Mapping[int, np.ndarray], objects: Sequence[int], threshold: float = 0.5
) -> dict[int, np.ndarray]:
    """Boolean masks from soft masks: a pixel goes to its most probable object if that is ``>= threshold``."""
    stack = np.stack([probs[k] for k in objects])
    best = stack.argmax(axis=0)
    keep = stack.max(axis=0) >= threshold
    return {k: keep & (best == i) for i, k in enumerate(objects)}


class SoftStore:
    """Soft masks keyed by frame (or any hashable), quantised to uint8 and zlib-compressed (mostly 0/255: tiny)."""

    def __init__(self) -> None:
        self._data: dict[Any, dict[int, tuple[bytes, tuple[int, int]]]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def put(self, key: Any, probs: Mapping[int, np.ndarray]) -> None:
        """Store ``{object id: soft mask}`` under ``key``."""
        self._data[key] = {
            k: (zlib.compress(np.round(p * 255).astype(np.uint8).tobytes(), 1), p.shape)
            for k, p in probs.items()
        }

    def get(self, key: Any) -> dict[int, np.ndarray]:
        """The soft masks stored under ``key`` (as float32, to within 1/510)."""
        return {
            k: np.frombuffer(zlib.decompress(b), dtype=np.uint8).reshape(s).astype(np.float32) / 255.0
            for k, (b, s) in self._data[key].items()
        }

    def pop(self, key: Any) -> dict[int, np.ndarray]:
        """:meth:`get`, then forget ``key``."""
        out = self.get(key)
        del self._data[key]
        return out


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

    def _check(self, cancel: CancelFn | None) -> None:
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
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
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
        done = 0

        def emit(frame: PropagatedFrame) -> PropagatedFrame:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, n)
            return frame

        def init_of(key: Keyframe) -> dict[int, np.ndarray]:
            return {
                k: (
                    check_mask(key.masks[k]).astype(np.float32)
                    if k in key.masks
                    else np.zeros(size, np.float32)
                )
                for k in objects
            }

        def key_frame(key: Keyframe) -> PropagatedFrame:
            masks = {
                k: check_mask(key.masks[k]).copy() if k in key.masks else np.zeros(size, bool)
                for k in objects
            }
            return PropagatedFrame(key.index, masks, dict.fromkeys(objects, 1.0), is_keyframe=True)

        for segment in segments:
            seg_keys = [k for k in keys if k.index in segment]
            if not seg_keys:
                for t in segment:
                    self._check(cancel)
                    empty = {k: np.zeros(size, bool) for k in objects}
                    yield emit(PropagatedFrame(t, empty, dict.fromkeys(objects, 0.0)))
                continue
            # Head: backwards from the first keyframe, stored, then yielded in order.
            first = seg_keys[0]
            head = list(range(first.index - 1, segment.start - 1, -1))
            store = SoftStore()
            for t, probs in self.track(source, first.index, init_of(first), head):
                self._check(cancel)
                store.put(t, probs)
            for t in reversed(head):
                self._check(cancel)
                probs = store.pop(t)
                yield emit(self._finish(t, probs, objects, {k: soft_confidence(p) for k, p in probs.items()}))
            for i, key in enumerate(seg_keys):
                self._check(cancel)
                yield emit(key_frame(key))
                nxt = seg_keys[i + 1] if i + 1 < len(seg_keys) else None
                stop = nxt.index if nxt is not None else segment.stop
                forward = list(range(key.index + 1, stop))
                backward_store = SoftStore()
                if nxt is not None and forward:
                    for t, probs in self.track(source, nxt.index, init_of(nxt), forward[::-1]):
                        self._check(cancel)
                        backward_store.put(t, probs)
                for t, probs in self.track(source, key.index, init_of(key), forward):
                    self._check(cancel)
                    conf = {k: soft_confidence(p) for k, p in probs.items()}
                    if nxt is not None:
                        back = backward_store.pop(t)
                        probs = {
                            k: blend_sides(
                                t, key.index, nxt.index, probs[k], back[k], conf[k], soft_confidence(back[k])
                            )
                            for k in objects
                        }
                        conf = {k: soft_confidence(p) for k, p in probs.items()}
                    yield emit(self._finish(t, probs, objects, conf))


def resize_prob(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float probability map to ``(height, width)``."""
    if prob.shape == tuple(size):
        return prob.astype(np.float32, copy=False)
    return cv2.resize(prob.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def create_propagator(name: str, **kwargs: Any) -> Propagator:
    """Build the propagator registered as ``name`` with constructor ``kwargs``."""
    return PROPAGATORS.create(name, **kwargs)


def list_propagators() -> list[str]:
    """Registered propagator names."""
    return PROPAGATORS.names()
