"""Progress reporting and cancellation shared by long-running stages (ingest, embed, propagate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Cancelled(RuntimeError):
    """Raised inside a stage when its cancel check says to stop; nothing partial is stored.

    Stages with their own kind of cancellation subclass it (for example
    :class:`curator.annotate.PropagationCancelled`), so catching ``Cancelled`` catches them all.
    """


class ProgressCallback(Protocol):
    """Called as work advances: ``stage`` name, items ``done`` so far, ``total`` if known.

    The one type of a staged progress callback. Its arguments are positional, so any
    ``Callable[[str, int, int | None], None]`` is one.
    """

    def __call__(self, stage: str, done: int, total: int | None, /) -> None: ...


#: Called with items ``done`` so far and the ``total`` of one stage (for example frames propagated).
CountProgress = Callable[[int, int], None]

#: Returns True when the work should stop; checked between items.
CancelCheck = Callable[[], bool]


def no_progress(stage: str, done: int, total: int | None) -> None:
    """A progress callback that ignores everything."""


def check_cancel(cancel: CancelCheck | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` says so."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled")
