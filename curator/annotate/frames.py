"""Random access to a video's frames without holding them all: :class:`FrameSource`."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

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

