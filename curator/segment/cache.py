"""Encoder output of a segmenter kept on disk, so a frame is encoded once for every process.

Click-to-segment is fast only after the frame's encoder pass (DINOv2 patch features for ``feature``,
SAM 2's image embedding for ``sam2``). The in-memory LRU cache of a segmenter holds a few frames of
one process; :class:`EncodingStore` keeps each frame's encodings as an ``.npz`` file under the
workspace's blobs (``segment-cache/<tag>/``), written when the task is queued (the ``preannotate``
job warms them) and read on the first click in any process: the server after a restart, another
replica, the CLI.

``tag`` names the segmenter, its model and its input size, so encodings of other weights or sizes
are never mixed up; a new tag starts an empty folder. Files are written to a temp file and renamed,
so a reader never sees half of one, and a file that cannot be read counts as missing.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from curator.store.blobs import write_file_atomic

#: Folder under the workspace's blobs holding every segmenter's encodings.
CACHE_DIR = "segment-cache"


def frame_key(content_hash: str | None, path: Path) -> tuple[str, str]:
    """Names a stored frame's image in a segmenter's caches (memory and disk): its pixels' hash,
    the same in every process, or its file when it has none."""
    return ("frame", content_hash) if content_hash else ("file", str(path))


def weights_id(source: str | Path | None) -> str:
    """A short id of model weights: the file's name, size and modification time (cheap, and changes
    when the file is replaced), or the hub id / ``default`` when there is no file."""
    if source is None:
        return "default"
    path = Path(source)
    if path.is_file():
        stat = path.stat()
        text = f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    else:
        text = str(source)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


class EncodingStore:
    """Per-image arrays of one segmenter on disk (see the module docstring).

    Args:
        root: Folder of all segmenters' encodings (``<blobs>/segment-cache``).
        tag: The segmenter, model and size (a folder name: letters, digits, ``-``, ``_``, ``.``).
    """

    def __init__(self, root: Path, tag: str) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)
        self.folder = Path(root) / safe
        self.tag = tag
        self.reads = 0
        self.writes = 0

    def path(self, key: Hashable) -> Path:
        """The file of the image named by ``key`` (its hash: keys are ids, not paths)."""
        digest = hashlib.blake2b(repr(key).encode(), digest_size=16).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npz"

    def __contains__(self, key: Hashable) -> bool:
        return self.path(key).is_file()

    def get(self, key: Hashable) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None (also for a file that cannot be read)."""
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return None
        self.reads += 1
        return arrays

    def put(self, key: Hashable, arrays: Mapping[str, np.ndarray]) -> Path:
        """Store ``arrays`` under ``key`` (atomically: a temp file renamed into place)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        contiguous: dict[str, Any] = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
        np.savez(buffer, **contiguous)
        write_file_atomic(path, buffer.getvalue())
        self.writes += 1
        return path


def attach_store(segmenter: Any, root: Path) -> EncodingStore | None:
    """Give ``segmenter`` an :class:`EncodingStore` under ``root`` if it encodes images and has none
    yet (a segmenter without an encoder, such as ``grabcut``, gets none). Returns its store."""
    if not hasattr(segmenter, "encoding_tag"):
        return None
    store: EncodingStore | None = getattr(segmenter, "store", None)
    if store is None:
        tag = segmenter.encoding_tag()
        if tag is None:
            return None
        store = EncodingStore(root, tag)
        segmenter.store = store
    return store
