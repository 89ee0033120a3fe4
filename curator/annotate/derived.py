"""Per-frame derived data (optical flow, patch features) kept on disk: :class:`DerivedStore`.

Propagation, the proxy's training and its scoring all need each frame's patch features, and
propagation needs the optical flow between neighbouring frames; these cost far more than anything
else a round does (a DIS flow at full resolution is about a second on one core). The store keeps
each array as an ``.npy`` file, computed once and read by every stage, every round and every process
that shares the folder (under a workspace's blobs, ``derived-cache/``). Memory stays flat in video
length: nothing is held in RAM beyond the array being used.

An entry is named by a *tag*, which says what was computed and how (the kind, the model's weights id,
the input size, the flow settings, the library version), and by the *frame keys* of its inputs: a
hash of the decoded pixels (see :meth:`curator.annotate.frames.FrameSource.frame_key`). New weights
or settings change the tag and a changed frame changes its key, so a stale entry is never read; it is
only left on disk for a cache sweep. Files are written to a temp file and renamed, so a reader never
sees half of one, and a file that cannot be read counts as missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

#: Folder under a workspace's blobs holding derived per-frame data.
CACHE_DIR = "derived-cache"


def frame_digest(frame: np.ndarray) -> str:
    """A 128-bit hex hash of a frame's pixels and shape (its identity in the store)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((frame.shape, frame.dtype.str)).encode())
    h.update(np.ascontiguousarray(frame).data)
    return h.hexdigest()


class DerivedStore:
    """Derived per-frame arrays on disk (see the module docstring).

    Args:
        root: Folder of the store (``<blobs>/derived-cache``); created on the first write.

    Attributes:
        hits: Arrays read from disk.
        misses: Lookups that found nothing.
        writes: Arrays written.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def path(self, tag: str, keys: Sequence[str]) -> Path:
        """The file of the array ``tag`` computed from frames ``keys``."""
        digest = hashlib.blake2b(repr((tag, tuple(keys))).encode(), digest_size=16).hexdigest()
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)
        return self.root / safe / digest[:2] / f"{digest}.npy"

    def get(self, tag: str, keys: Sequence[str]) -> np.ndarray | None:
        """The stored array, or ``None`` when there is none (or its file cannot be read)."""
        try:
            array = np.load(self.path(tag, keys), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            self.misses += 1
            return None
        self.hits += 1
        # a read marks the entry as used, so a sweep removes what has gone unused longest
        with contextlib.suppress(OSError):
            os.utime(self.path(tag, keys))
        return np.asarray(array)

    def put(self, tag: str, keys: Sequence[str], array: np.ndarray) -> Path:
        """Store ``array`` (atomically: a temp file renamed into place)."""
        from curator.store.blobs import write_file_atomic

        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        path = write_file_atomic(self.path(tag, keys), buffer.getvalue())
        self.writes += 1
        return path


def sweep(root: str | Path, max_bytes: int) -> tuple[int, int]:
    """Remove the least recently used entries under ``root`` until it holds at most ``max_bytes``.

    Flow is kept at full resolution (a 1280x720 pair is 7.4 MB each way), so a project's store grows
    with its frames; the round job sweeps after each round. An entry removed is only recomputed.

    Returns:
        ``(files removed, bytes kept)``.
    """
    entries = []
    for path in Path(root).rglob("*.npy"):
        try:
            stat = path.stat()
        except OSError:  # removed by another process meanwhile
            continue
        entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, path in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed += 1
    return removed, total


def default_workers() -> int:
    """Threads for derived data: one per CPU core, at most 4 (beyond that the memory bus saturates)."""
    return max(1, min(os.cpu_count() or 1, 4))


class DerivedPool:
    """Threads that compute derived data while the caller goes on (a context manager).

    The jobs are OpenCV flow and torch inference calls, which release the GIL, so threads use every
    core; torch's own intra-op threads would only compete with them, so torch runs on one thread in
    the workers and in the calling thread while the pool is open.

    Args:
        workers: Threads (0: :func:`default_workers`).
        cancel: Once it returns True, jobs not yet started are skipped.
    """

    def __init__(self, workers: int = 0, cancel: Callable[[], bool] | None = None) -> None:
        self.workers = workers or default_workers()
        self.cancel = cancel
        self._pool: ThreadPoolExecutor | None = None
        self._threads = 0

    def __enter__(self) -> DerivedPool:
        import torch

        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self._pool = ThreadPoolExecutor(
            self.workers, thread_name_prefix="derived", initializer=torch.set_num_threads, initargs=(1,)
        )
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        assert self._pool is not None
        self._pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(self._threads)

    def submit(self, jobs: Sequence[Callable[[], object]]) -> list[Future[None]]:
        """Queue ``jobs``; returns their futures (see :meth:`wait`)."""
        assert self._pool is not None, "use DerivedPool as a context manager"

        def run(job: Callable[[], object]) -> None:
            if self.cancel is None or not self.cancel():
                job()

        return [self._pool.submit(run, job) for job in jobs]

    @staticmethod
    def wait(futures: Sequence[Future[None]]) -> None:
        """Wait for ``futures``; raises the first job's exception."""
        for future in futures:
            future.result()


def run_parallel(
    jobs: Sequence[Callable[[], object]], workers: int = 0, cancel: Callable[[], bool] | None = None
) -> None:
    """Run ``jobs`` on ``workers`` threads (0: :func:`default_workers`; see :class:`DerivedPool`).

    Raises the first job's exception; stops starting jobs once ``cancel`` returns True.
    """
    if not jobs:
        return
    workers = workers or default_workers()
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            if cancel is not None and cancel():
                return
            job()
        return
    with DerivedPool(workers, cancel) as pool:
        pool.wait(pool.submit(jobs))
