"""Random access to a video's frames without holding them all: :class:`FrameSource`."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from curator.annotate.derived import DerivedStore

#: A video's frames: a list-like of RGB uint8 ``(H, W, 3)`` arrays or a loader ``index -> frame``.
FrameInput = Sequence[np.ndarray] | Callable[[int], np.ndarray]


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
        store: A :class:`~curator.annotate.derived.DerivedStore` on disk that derived data is read
            from and written to: computed once, shared by every stage and process, and memory stays
            flat in video length (use it instead of ``cache`` for long videos).
        keys: Per-frame identities in the store (default: a hash of each frame's pixels, computed
            when first needed).

    Attributes:
        cache: Dict for derived data keyed by ``(kind, ...)`` tuples, or ``None`` when caching is off.
        store: The on-disk derived-data store, or ``None``.
    """

    def __init__(
        self,
        frames: FrameInput,
        num_frames: int | None = None,
        cache: bool = False,
        store: DerivedStore | None = None,
        keys: Sequence[str] | None = None,
    ) -> None:
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
        self.store = store
        if keys is not None and len(keys) != n:
            raise ValueError(f"{len(keys)} frame keys for {n} frames")
        self._keys: dict[int, str] = dict(enumerate(keys)) if keys is not None else {}
        self._size: tuple[int, int] | None = None

    @property
    def keeps_derived(self) -> bool:
        """Whether derived data computed now is kept (in :attr:`cache` or :attr:`store`) for later."""
        return self.cache is not None or self.store is not None

    def frame_key(self, index: int) -> str:
        """Frame ``index``'s identity in the derived-data store (a hash of its pixels by default)."""
        key = self._keys.get(int(index))
        if key is None:
            from curator.annotate.derived import frame_digest

            key = self._keys[int(index)] = frame_digest(self[index])
        return key

    def is_derived(self, memo: Hashable, tag: str, indices: Sequence[int]) -> bool:
        """Whether :meth:`derived` would find the entry without computing it."""
        if self.cache is not None and memo in self.cache:
            return True
        if self.store is not None:
            return self.store.path(tag, [self.frame_key(i) for i in indices]).is_file()
        return False

    def derived(
        self, memo: Hashable, tag: str, indices: Sequence[int], compute: Callable[[], np.ndarray]
    ) -> np.ndarray:
        """Derived data of frames ``indices``: from :attr:`cache`, else :attr:`store`, else ``compute()``.

        Args:
            memo: Key in the in-memory :attr:`cache`.
            tag: What was computed and how (kind, model, settings), for the store.
            indices: The frames it is computed from (their :meth:`frame_key` name the entry).
            compute: Computes the array as it is to be kept (the stored dtype).
        """
        if self.cache is not None and memo in self.cache:
            return self.cache[memo]  # type: ignore[no-any-return]
        value: np.ndarray | None = None
        if self.store is not None:
            keys = [self.frame_key(i) for i in indices]
            value = self.store.get(tag, keys)
            if value is None:
                value = compute()
                self.store.put(tag, keys, value)
        else:
            value = compute()
        if self.cache is not None:
            self.cache[memo] = value
        return value

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

