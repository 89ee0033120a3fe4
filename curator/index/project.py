"""Keeping a project's FAISS index file in step with the embeddings stored in the database.

The database is the source of truth; the index file is a cache of it that can always be rebuilt.
Readers (:func:`load_project_index`) keep the last few loaded files in memory, keyed by the file's
inode, modification time and size, so repeated look-ups do not re-read a large index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from curator.index.faiss_store import FaissIndex
from curator.store import repo
from curator.workspace import Workspace

#: Loaded index files kept in memory by :func:`load_project_index`.
CACHE_SIZE = 2
_cache: OrderedDict[Path, tuple[tuple[int, int, int], FaissIndex]] = OrderedDict()
_cache_lock = threading.Lock()


def sync_project_index(workspace: Workspace, project_id: int, backbone: str) -> FaissIndex:
    """Load the project's index for ``backbone`` (or start one), add missing and drop stale vectors, save.

    Returns:
        The up-to-date index.

    Raises:
        LookupError: If the project has no embeddings under ``backbone`` and no index file.
    """
    with workspace.db.session() as session:
        ids, vectors = repo.get_embeddings(session, project_id, backbone)
    path = workspace.index_path(project_id, backbone)
    threshold = workspace.settings.ivf_threshold
    index: FaissIndex | None = None
    if path.is_file():
        index = FaissIndex.load(path, ivf_threshold=threshold)
        if len(ids) and index.dim != vectors.shape[1]:
            index = None  # backbone changed shape under the same name: rebuild from the database
    if index is None:
        if len(ids) == 0:
            raise LookupError(f"project {project_id} has no embeddings under backbone {backbone!r}")
        index = FaissIndex(vectors.shape[1], ivf_threshold=threshold)
    stored = index.ids()
    stale = np.setdiff1d(stored, ids)
    if len(stale):
        index.remove(stale)
    missing = ~np.isin(ids, stored)
    if missing.any():
        index.add(ids[missing], vectors[missing])
    if len(stale) or missing.any() or not path.is_file():
        index.save(path)
    return index


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What identifies one written version of the file (saves replace it, so the inode changes too)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _remember(path: Path, index: FaissIndex) -> None:
    stamp = _stamp(path)
    if stamp is None:
        return
    _cache[path] = (stamp, index)
    _cache.move_to_end(path)
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)


def load_project_index(
    workspace: Workspace, project_id: int, backbone: str, require_ids: np.ndarray | None = None
) -> FaissIndex:
    """The project's persisted index for ``backbone``, for searching (treat it as read-only).

    Reads the index file (or reuses the copy in memory while the file is unchanged). When the file
    is missing, or lacks any of ``require_ids``, it is brought in step with the database first
    (:func:`sync_project_index`), which rebuilds it from the stored embeddings if need be.

    Raises:
        LookupError: If the file is missing and the project has no embeddings under ``backbone``.
    """
    path = workspace.index_path(project_id, backbone).resolve()
    with _cache_lock:
        stamp = _stamp(path)
        index: FaissIndex | None = None
        if stamp is not None:
            hit = _cache.get(path)
            if hit is not None and hit[0] == stamp:
                index = hit[1]
                _cache.move_to_end(path)
            else:
                index = FaissIndex.load(path, ivf_threshold=workspace.settings.ivf_threshold)
                _remember(path, index)
        stale = index is None or (
            require_ids is not None and len(require_ids) > 0 and not index.contains(require_ids).all()
        )
        if stale:
            index = sync_project_index(workspace, project_id, backbone)
            _remember(path, index)
        assert index is not None
        return index
