"""What goes in and out of a propagator, the :class:`Propagator` protocol and its registry.

A propagator turns a few keyframes with masks into a mask per object for every frame of a video. It
streams: :meth:`Propagator.propagate` is a generator yielding one :class:`PropagatedFrame` at a time
in frame order, reports progress, and checks a cancel flag between frames.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from curator.annotate.frames import FrameInput, FrameSource
from curator.annotate.masks import decode_rle, encode_rle, labels_to_masks, masks_to_labels
from curator.progress import CancelCheck, Cancelled, CountProgress
from curator.registry import Registry


class PropagationCancelled(Cancelled):
    """Raised by a propagation generator when its cancel check returned True between two frames."""


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
        progress: CountProgress | None = None,
        cancel: CancelCheck | None = None,
    ) -> Iterator[PropagatedFrame]:
        """Yield a :class:`PropagatedFrame` for every frame, in frame order."""
        ...


PROPAGATORS: Registry[Propagator] = Registry("propagator")


def register_propagator(name: str) -> Any:
    """Class decorator registering a propagator under ``name``."""
    return PROPAGATORS.register(name)



def create_propagator(name: str, **kwargs: Any) -> Propagator:
    """Build the propagator registered as ``name`` with constructor ``kwargs``."""
    return PROPAGATORS.create(name, **kwargs)


def list_propagators() -> list[str]:
    """Registered propagator names."""
    return PROPAGATORS.names()
