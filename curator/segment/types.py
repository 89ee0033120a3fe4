"""What goes in and out of a click-to-segment backend, the :class:`Segmenter` protocol and its registry.

A segmenter turns clicks on one image into one object mask. Clicks are ``(x, y, positive)`` in pixels
(``x`` along the width); a positive click says "this is the object", a negative one "this is not".
The ``mask`` a caller passes is the current mask of the object: each call refines it rather than
starting over, so a client sends every click made so far together with the mask the last call
returned (or a mask the person edited by hand).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from curator.registry import Registry

#: A click as callers give it: ``(x, y, positive)`` in pixels of the image.
ClickInput = Sequence[Any]
#: A box as callers give it: ``(x0, y0, x1, y1)`` in pixels (corners, ``x0 < x1``, ``y0 < y1``).
BoxInput = Sequence[float]

V = TypeVar("V")


class InvalidPromptError(ValueError):
    """Clicks or a box that do not fit the image (outside it, malformed, or none at all)."""


@dataclass(frozen=True)
class Click:
    """One click: pixel position and polarity.

    Attributes:
        x: Column, ``0 <= x < width``.
        y: Row, ``0 <= y < height``.
        positive: True for "object here", False for "not the object".
    """

    x: float
    y: float
    positive: bool = True

    @property
    def pixel(self) -> tuple[int, int]:
        """``(row, col)`` of the pixel the click falls on."""
        return int(self.y), int(self.x)


@dataclass(frozen=True)
class SegmentResult:
    """One object mask from a segmenter.

    Attributes:
        mask: ``(H, W)`` bool, the image's size.
        score: The backend's confidence in the mask, in [0, 1]: SAM 2's predicted IoU; for the other
            backends how decisive their foreground probability is over the pixels near the object.
        backend: The registered name of the segmenter that made it.
    """

    mask: np.ndarray
    score: float
    backend: str = ""


@runtime_checkable
class Segmenter(Protocol):
    """Segments one object of an image from clicks, a box and the current mask."""

    name: ClassVar[str]

    def segment(
        self,
        image: np.ndarray,
        points: Sequence[ClickInput],
        box: BoxInput | None = None,
        mask: np.ndarray | None = None,
        *,
        key: Hashable | None = None,
    ) -> SegmentResult:
        """The object's mask.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            points: Clicks ``(x, y, positive)``, oldest first.
            box: Optional ``(x0, y0, x1, y1)`` around the object.
            mask: The current ``(H, W)`` bool mask of the object, refined rather than replaced.
            key: Identifies the image for per-image caches (a frame id); default a hash of its pixels.

        Raises:
            InvalidPromptError: For clicks or a box outside the image, or neither clicks nor a box.
            ValueError: For an image that is not ``(H, W, 3)`` uint8 or a mask of another size.
        """
        ...


SEGMENTERS: Registry[Segmenter] = Registry("segmenter")


def register_segmenter(name: str) -> Any:
    """Class decorator registering a segmenter under ``name``."""
    return SEGMENTERS.register(name)


def create_segmenter(name: str, **kwargs: Any) -> Segmenter:
    """Build the segmenter registered as ``name`` with constructor ``kwargs``."""
    return SEGMENTERS.create(name, **kwargs)


def list_segmenters() -> list[str]:
    """Registered segmenter names."""
    return SEGMENTERS.names()


@dataclass(frozen=True)
class Prompt:
    """Checked input of one segment call (see :func:`check_prompt`)."""

    image: np.ndarray
    clicks: tuple[Click, ...]
    box: tuple[float, float, float, float] | None
    mask: np.ndarray | None

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the image."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    @property
    def positives(self) -> list[Click]:
        """The positive clicks."""
        return [c for c in self.clicks if c.positive]

    @property
    def negatives(self) -> list[Click]:
        """The negative clicks."""
        return [c for c in self.clicks if not c.positive]


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as an ``(H, W, 3)`` uint8 array.

    Raises:
        ValueError: If it is not one.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image


def parse_click(point: ClickInput | Click) -> Click:
    """A :class:`Click` from ``(x, y, positive)``, ``(x, y)`` (positive) or a Click.

    Raises:
        InvalidPromptError: If it is none of these.
    """
    if isinstance(point, Click):
        return point
    try:
        values = list(point)
        if len(values) not in (2, 3):
            raise ValueError
        x, y = float(values[0]), float(values[1])
        positive = bool(values[2]) if len(values) == 3 else True
    except (TypeError, ValueError):
        raise InvalidPromptError(f"a click is (x, y, positive), got {point!r}") from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise InvalidPromptError(f"a click needs finite coordinates, got {point!r}")
    return Click(x, y, positive)


def check_prompt(
    image: np.ndarray, points: Sequence[ClickInput | Click], box: BoxInput | None, mask: np.ndarray | None
) -> Prompt:
    """Check one segment call's input against the image.

    Raises:
        InvalidPromptError: For clicks or a box outside the image, or neither clicks nor a box.
        ValueError: For a malformed image, or a mask not of the image's size.
    """
    image = check_image(image)
    height, width = image.shape[:2]
    clicks = tuple(parse_click(p) for p in points)
    outside = [(c.x, c.y) for c in clicks if not (0 <= c.x < width and 0 <= c.y < height)]
    if outside:
        raise InvalidPromptError(f"clicks must lie inside the {width}x{height} image, got {outside}")
    checked_box = None
    if box is not None:
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise InvalidPromptError(f"a box is (x0, y0, x1, y1), got {box!r}") from None
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise InvalidPromptError(
                f"a box (x0, y0, x1, y1) must have x0 < x1, y0 < y1 and lie inside the {width}x{height} image, "
                f"got {[x0, y0, x1, y1]}"
            )
        checked_box = (x0, y0, x1, y1)
    if not clicks and checked_box is None:
        raise InvalidPromptError("give at least one click or a box")
    checked_mask = None
    if mask is not None:
        array = np.asarray(mask)
        if array.shape != (height, width):
            raise ValueError(f"the mask has shape {array.shape}, the image is ({height}, {width})")
        checked_mask = array.astype(bool, copy=False)
    return Prompt(image, clicks, checked_box, checked_mask)


def image_key(image: np.ndarray) -> str:
    """A cache key for an image: a hash of its shape and pixels (a few ms for a 854x480 frame)."""
    digest = hashlib.blake2b(str(image.shape).encode(), digest_size=16)
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


class LRUCache(Generic[V]):
    """A small least-recently-used cache (per-image features of a segmenter).

    Args:
        capacity: Entries kept; the least recently used one goes first.
    """

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = max(int(capacity), 1)
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        """The value under ``key`` (marked as just used), or None."""
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        self.misses += 1
        return None

    def put(self, key: Hashable, value: V) -> None:
        """Store ``value`` under ``key``, dropping the least recently used entry when full."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
