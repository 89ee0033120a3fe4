"""Keeping a project's FAISS index file in step with the embeddings stored in the database.

The database is the source of truth; the index file is a cache of it that can always be rebuilt.
"""

from __future__ import annotations

import numpy as np

from curator.index.faiss_store import FaissIndex
from curator.store import repo
from curator.workspace import Workspace


def sync_project_index(workspace: Workspace, project_id: int, backbone: str) -> FaissIndex:
    """Load the project's index for ``backbone`` (or start one), add missing and drop stale vectors, save.

    Returns:
        The up-to-date index.
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
