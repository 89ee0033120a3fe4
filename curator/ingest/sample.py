"""Choosing candidate frames from the decoded stream by stride and target rate, and the per-ingest
sampling options that override the settings'."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curator.config import Settings

#: Highest candidate rate one ingest may ask for (frames per second).
MAX_SAMPLE_FPS = 1000.0
#: Largest stride one ingest may ask for.
MAX_SAMPLE_STRIDE = 100_000


def check_sampling(fps: float | None, stride: int | None) -> None:
    """Check per-ingest sampling options (``None`` keeps the setting).

    Raises:
        ValueError: For an ``fps`` that is not a finite number in ``[0, MAX_SAMPLE_FPS]`` (0 keeps
            every ``stride``-th frame) or a ``stride`` that is not an integer in ``[1, MAX_SAMPLE_STRIDE]``.
    """
    if fps is not None and (
        isinstance(fps, bool) or not isinstance(fps, int | float) or not math.isfinite(fps)
        or not 0 <= fps <= MAX_SAMPLE_FPS
    ):
        raise ValueError(f"fps must be a number from 0 to {MAX_SAMPLE_FPS:g} (0 keeps every stride-th frame), got {fps!r}")
    if stride is not None and (isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= MAX_SAMPLE_STRIDE):
        raise ValueError(f"stride must be an integer from 1 to {MAX_SAMPLE_STRIDE}, got {stride!r}")


def sampling_settings(settings: Settings, fps: float | None = None, stride: int | None = None) -> Settings:
    """``settings`` with one ingest's sampling options (``sample_fps``, ``sample_stride``) in place of
    the server-wide ones; ``None`` keeps a setting.

    Raises:
        ValueError: For options :func:`check_sampling` refuses.
    """
    check_sampling(fps, stride)
    update = {k: v for k, v in {"sample_fps": fps, "sample_stride": stride}.items() if v is not None}
    return settings.model_copy(update=update) if update else settings


class FrameSampler:
    """Keeps every ``stride``-th frame, then thins those to at most ``fps`` frames a second.

    With ``fps`` set, a frame is kept when its timestamp reaches the next slot of the grid
    ``t0 + k / fps`` (``t0`` the first kept frame), so at most one frame is kept per slot and the
    rate does not drift.

    Args:
        stride: Keep decoded frames whose index is a multiple of this (1 keeps all).
        fps: Target candidate rate in frames per second; ``0`` or ``None`` disables the rate limit.
        resume: The :attr:`next_time` of a sampler that saw the frames before the first one this one
            sees (a part of a file decoded from a seek); ``None`` starts at the file's first frame.

    Raises:
        ValueError: If ``stride < 1`` or ``fps < 0``.
    """

    def __init__(self, stride: int = 1, fps: float | None = None, resume: float | None = None) -> None:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if fps is not None and fps < 0:
            raise ValueError(f"fps must be >= 0, got {fps}")
        self.stride = stride
        self.period = 1.0 / fps if fps else 0.0
        self._next_time = float("-inf") if resume is None else resume

    @property
    def next_time(self) -> float | None:
        """The time of the next slot on the rate grid, ``None`` before the first kept frame (the
        whole state of the sampler: a sampler made with ``resume=`` it decides as this one would)."""
        return None if self._next_time == float("-inf") else self._next_time

    def keep(self, index: int, timestamp: float) -> bool:
        """Whether the decoded frame ``index`` at ``timestamp`` seconds becomes a candidate."""
        if index % self.stride:
            return False
        if self.period == 0.0:
            return True
        # slots lie on the grid first_kept + k / fps; a small tolerance absorbs timestamp rounding
        eps = 1e-6
        if self._next_time == float("-inf"):
            self._next_time = timestamp
        if timestamp + eps < self._next_time:
            return False
        while self._next_time <= timestamp + eps:
            self._next_time += self.period
        return True
