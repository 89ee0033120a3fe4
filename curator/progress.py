"""Progress reporting and cancellation shared by long-running stages (ingest, embed, propagate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Cancelled(RuntimeError):
    """Raised inside a stage when its cancel check says to stop; nothing partial is stored."""


class ProgressCallback(Protocol):
    """Called as work advances: ``stage`` name, items ``done`` so far, ``total`` if known."""

    def __call__(self, stage: str, done: int, total: int | None) -> None: ...


CancelCheck = Callable[[], bool]


def no_progress(stage: str, done: int, total: int | None) -> None:
    """A progress callback that ignores everything."""


def check_cancel(cancel: CancelCheck | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` says so."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled")
