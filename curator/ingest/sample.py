"""Choosing candidate frames from the decoded stream by stride and target rate."""

from __future__ import annotations


class FrameSampler:
    """Keeps every ``stride``-th frame, then thins those to at most ``fps`` frames a second.

    With ``fps`` set, a frame is kept when its timestamp reaches the next slot of the grid
    ``t0 + k / fps`` (``t0`` the first kept frame), so at most one frame is kept per slot and the
    rate does not drift.

    Args:
        stride: Keep decoded frames whose index is a multiple of this (1 keeps all).
        fps: Target candidate rate in frames per second; ``0`` or ``None`` disables the rate limit.

    Raises:
        ValueError: If ``stride < 1`` or ``fps < 0``.
    """

    def __init__(self, stride: int = 1, fps: float | None = None) -> None:
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if fps is not None and fps < 0:
            raise ValueError(f"fps must be >= 0, got {fps}")
        self.stride = stride
        self.period = 1.0 / fps if fps else 0.0
        self._next_time = float("-inf")

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
