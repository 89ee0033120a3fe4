"""Searching a project's FAISS index: similar frames, near-duplicates, and kNN for selector pools.

The project index (:mod:`curator.index.project`) is the one nearest-neighbour path: the API's
"similar frames", the near-duplicate check after an ingest, and the neighbour lists density
selectors read from ``Pool.knn`` (built by :func:`pool_knn`) all search it. Similarities are
cosine (inner product of L2-normalised vectors).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from curator.index.faiss_store import FaissIndex
from curator.index.project import load_project_index
from curator.store import repo
from curator.workspace import Workspace

#: ``k -> (similarities (n, k), pool rows (n, k))`` of every pool row's ``k`` nearest other rows
#: (row ``-1`` where there are fewer); the type of ``curator.pool.Pool.knn``.
PoolKnn = Callable[[int], tuple[np.ndarray, np.ndarray]]


class SimilarityLookupError(LookupError):
    """A similarity search could not run for a frame."""


class UnknownFrameError(SimilarityLookupError):
    """The frame does not exist, or belongs to another project."""


class FrameNotEmbeddedError(SimilarityLookupError):
    """The frame exists but has no embedding (under the backbone in use) to search with."""


def _backbone(workspace: Workspace, project_id: int, backbone: str | None) -> str:
    # lazily: curator.selection may itself import this package to build pools
    from curator.selection import choose_backbone

    return choose_backbone(workspace, project_id, backbone)


def similar_frames(
    workspace: Workspace, project_id: int, frame_id: int, k: int, backbone: str | None = None
) -> list[tuple[int, float]]:
    """The ``k`` frames of the project most similar to ``frame_id``, from the project's index.

    Args:
        workspace: Where the project lives.
        project_id: The frame's project.
        frame_id: The query frame.
        k: How many neighbours (fewer when the project has fewer other embedded frames).
        backbone: Embedding backbone; ``None`` or ``auto`` picks it as selections do
            (:func:`curator.selection.choose_backbone`).

    Returns:
        ``(frame id, cosine similarity)`` pairs, most similar first, the frame itself excluded.

    Raises:
        ValueError: If ``k < 1``.
        UnknownFrameError: If the frame does not exist in this project.
        FrameNotEmbeddedError: If the frame has no embedding under the backbone.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    with workspace.db.session() as session:
        found = repo.frame_project(session, frame_id)
    if found is None or found[1] != project_id:
        raise UnknownFrameError(f"no frame with id {frame_id} in project {project_id}")
    try:
        name = _backbone(workspace, project_id, backbone)
        index = load_project_index(workspace, project_id, name, require_ids=np.array([frame_id]))
    except LookupError as exc:
        raise FrameNotEmbeddedError(f"frame {frame_id} has no embedding to search with: {exc}") from exc
    if not index.contains(np.array([frame_id]))[0]:
        raise FrameNotEmbeddedError(
            f"frame {frame_id} has no {name!r} embedding yet; embed the project "
            f"(`curator embed` or POST /projects/{project_id}/embed) and try again"
        )
    sims, ids = index.neighbours_of(np.array([frame_id]), min(k, max(index.ntotal - 1, 0)))
    return [(int(i), float(s)) for i, s in zip(ids[0].tolist(), sims[0].tolist(), strict=True) if i >= 0]


@dataclass(frozen=True)
class NearDuplicates:
    """How many of some frames have a near-duplicate among the project's other frames.

    Attributes:
        threshold: Cosine similarity from which two frames count as near-duplicates.
        checked: Frames that had an embedding to compare (the others are not counted).
        count: Of those, how many have another frame at ``>= threshold``.
        examples: ``(frame id, nearest other frame id, cosine)`` for up to ``max_examples`` of them,
            most similar first.
        backbone: The embeddings compared (``None`` when the project has none).
    """

    threshold: float
    checked: int
    count: int
    examples: tuple[tuple[int, int, float], ...] = ()
    backbone: str | None = None


def near_duplicates(
    workspace: Workspace,
    project_id: int,
    frame_ids: Sequence[int] | np.ndarray,
    threshold: float = 0.98,
    backbone: str | None = None,
    max_examples: int = 5,
    other_videos: bool = False,
    search_width: int = 64,
) -> NearDuplicates:
    """Count ``frame_ids`` (newly ingested frames, say) whose nearest other frame is at cosine ``>= threshold``.

    "Other" is any other frame of the project, in another video or the same one (a frame's temporal
    neighbours count too); only the frame itself is excluded. With ``other_videos`` only frames of
    other videos count (a copy of footage already in the project), looked for among each frame's
    ``search_width`` nearest. Frames without an embedding are skipped (``checked`` says how many
    were compared).

    Raises:
        LookupError: If an explicit ``backbone`` has no embeddings in the project.
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine in [-1, 1], got {threshold!r}")
    ids = np.unique(np.asarray(frame_ids, dtype=np.int64))
    try:
        name = _backbone(workspace, project_id, backbone)
    except LookupError:
        if backbone not in (None, "auto"):
            raise
        return NearDuplicates(threshold=threshold, checked=0, count=0)  # nothing embedded yet
    index = load_project_index(workspace, project_id, name, require_ids=ids)
    ids = ids[index.contains(ids)]
    if len(ids) == 0 or index.ntotal < 2:
        return NearDuplicates(threshold=threshold, checked=len(ids), count=0, backbone=name)
    if other_videos:
        sims, nbrs = _nearest_in_other_videos(workspace, index, ids, min(search_width, index.ntotal - 1))
    else:
        sims, nbrs = index.neighbours_of(ids, 1)
    hit = (nbrs[:, 0] >= 0) & (sims[:, 0] >= threshold)
    order = np.flatnonzero(hit)[np.argsort(-sims[hit, 0], kind="stable")][: max(max_examples, 0)]
    examples = tuple((int(ids[i]), int(nbrs[i, 0]), float(sims[i, 0])) for i in order)
    return NearDuplicates(
        threshold=threshold, checked=len(ids), count=int(hit.sum()), examples=examples, backbone=name
    )


def _nearest_in_other_videos(
    workspace: Workspace, index: FaissIndex, ids: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each id's most similar stored frame of another video among its ``width`` nearest, as ``(n, 1)``."""
    sims, nbrs = index.neighbours_of(ids, width)
    with workspace.db.session() as session:
        video_of = repo.frame_videos(session, np.unique(np.concatenate([ids, nbrs[nbrs >= 0]])).tolist())
    own = np.array([video_of.get(int(i), -1) for i in ids])
    theirs = np.vectorize(lambda f: video_of.get(int(f), -2))(nbrs) if nbrs.size else nbrs
    other = (nbrs >= 0) & (theirs != own[:, None])
    first = np.where(other.any(axis=1), other.argmax(axis=1), -1)
    rows = np.arange(len(ids))
    best_sims = np.where(first >= 0, sims[rows, np.maximum(first, 0)], -np.inf).astype(np.float32)
    best_ids = np.where(first >= 0, nbrs[rows, np.maximum(first, 0)], -1).astype(np.int64)
    return best_sims[:, None], best_ids[:, None]


def _rows_of(frame_ids: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A map from frame ids to their row in ``frame_ids`` (``-1`` for ids not there)."""
    order = np.argsort(frame_ids, kind="stable")
    ordered = frame_ids[order]

    def rows(ids: np.ndarray) -> np.ndarray:
        if len(ordered) == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(ordered, ids), 0, len(ordered) - 1)
        return np.where((ordered[pos] == ids) & (ids >= 0), order[pos], -1).astype(np.int64)

    return rows


def pool_knn(
    workspace: Workspace, project_id: int, backbone: str, frame_ids: np.ndarray, batch_size: int = 8192
) -> PoolKnn:
    """The neighbour provider of a selector pool (``Pool.knn``), answered by the project's index.

    Args:
        workspace: Where the project lives.
        project_id: The pool's project.
        backbone: The backbone of the pool's embeddings.
        frame_ids: The pool's frame ids, row by row (``Pool.frame_ids``).
        batch_size: Query rows per FAISS search call.

    Returns:
        ``knn(k) -> (similarities float32 (n, k), rows int64 (n, k))``: for every pool row its ``k``
        most similar *other* pool rows, best first, as row indices into the pool (``-1``, similarity
        ``-inf``, where the pool has fewer than ``k + 1`` rows or an IVF probe found fewer). The index
        is read on the first call, not before; the largest answer is kept, so a smaller ``k`` later
        is a slice. Frames in the index but not in the pool are never returned.

    Raises (from ``knn``):
        LookupError: If a pool frame has no vector in the index even after syncing it with the
            database.
    """
    frame_ids = np.array(frame_ids, dtype=np.int64).ravel()
    if len(np.unique(frame_ids)) != len(frame_ids):
        raise ValueError("frame_ids must be unique")
    n = len(frame_ids)
    rows_of = _rows_of(frame_ids)
    lock = threading.Lock()
    kept: list[tuple[np.ndarray, np.ndarray]] = []

    def search(index: FaissIndex, k: int) -> tuple[np.ndarray, np.ndarray]:
        extra = index.ntotal - n  # indexed frames that are not in the pool
        if extra == 0:
            sims, ids = index.neighbours_of(frame_ids, k, batch_size)
            return sims, rows_of(ids)
        if extra > max(k, 256):
            # the pool is a small part of the project: an exact index over the pool's own vectors
            sub = FaissIndex.build(np.arange(n, dtype=np.int64), index.get(frame_ids), ivf_threshold=n + 1)
            return sub.neighbours_of(np.arange(n, dtype=np.int64), k, batch_size)
        sims, ids = index.neighbours_of(frame_ids, min(k + extra, index.ntotal - 1), batch_size)
        rows = rows_of(ids)
        # keep the first k pool rows of each list, in order
        pick = np.argsort(rows < 0, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, pick, axis=1), np.take_along_axis(rows, pick, axis=1)

    def knn(k: int) -> tuple[np.ndarray, np.ndarray]:
        k = int(k)
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        with lock:
            if kept and kept[0][1].shape[1] >= k:
                return kept[0][0][:, :k], kept[0][1][:, :k]
            sims = np.full((n, k), -np.inf, dtype=np.float32)
            rows = np.full((n, k), -1, dtype=np.int64)
            reach = min(k, n - 1)
            if reach > 0:
                index = load_project_index(workspace, project_id, backbone, require_ids=frame_ids)
                absent = frame_ids[~index.contains(frame_ids)]
                if len(absent):
                    raise LookupError(
                        f"{len(absent)} pool frames have no {backbone!r} vector in the project index "
                        f"(first: {absent[:5].tolist()})"
                    )
                s, r = search(index, reach)
                sims[:, :reach] = s
                rows[:, :reach] = r
                sims[rows < 0] = -np.inf
            kept[:] = [(sims, rows)]
            return sims, rows

    return knn
