"""Batched inference overlapped with producing the frames (decoding or JPEG reading).

A producer thread fills a bounded queue while the caller's thread runs the model, so decoding and
inference overlap and at most ``maxsize`` items wait in memory. PyAV, OpenCV and torch all release
the GIL in their heavy parts, so a thread is enough.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from curator.embed.base import Backbone

T = TypeVar("T")
_DONE = object()


class Prefetcher(Iterator[T]):
    """Iterate ``source`` in a background thread, at most ``maxsize`` items ahead.

    Exceptions raised by the source are re-raised in the consumer. Call :meth:`close` (or use it as a
    context manager) to stop the producer early.

    Args:
        source: Any iterable; consumed only by the background thread.
        maxsize: Most items buffered ahead of the consumer.
    """

    def __init__(self, source: Iterable[T], maxsize: int = 32) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), daemon=True, name="prefetch")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterable[T]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._put(("__error__", exc))
            return
        self._put(_DONE)

    def __next__(self) -> T:
        item = self._queue.get()
        if item is _DONE:
            raise StopIteration
        if isinstance(item, tuple) and len(item) == 2 and item[0] == "__error__":
            raise item[1]
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the producer and wait for it."""
        self._stop.set()
        self._thread.join(timeout=10)

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def embed_stream(
    backbone: Backbone,
    items: Iterable[tuple[Any, np.ndarray]],
    batch_size: int = 16,
    prefetch: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple[list[Any], np.ndarray]]:
    """Embed ``(key, rgb)`` pairs in batches while the next ones are produced in the background.

    Args:
        backbone: The model.
        items: ``(key, image)`` pairs; produced in a background thread.
        batch_size: Images per inference call.
        prefetch: Most images waiting in memory.
        on_batch: Called with the batch length after each batch (progress).

    Yields:
        ``(keys, vectors)`` per batch, vectors ``(len(keys), dim)`` float32.
    """
    with Prefetcher(items, maxsize=prefetch) as source:
        for batch in batched(source, batch_size):
            keys = [k for k, _ in batch]
            vectors = backbone.embed([im for _, im in batch])
            if on_batch is not None:
                on_batch(len(batch))
            yield keys, vectors
