"""The embedding map: a 2-D PCA projection of a project's frame embeddings, computed once per state of
the embeddings and kept as a blob, with per-frame columns to colour it by.

The projection is keyed by :func:`curator.store.repo.embedding_version` (how many embeddings the
project has under the backbone and the highest row id): any embedding added or removed (an ingest,
an embed job, a deleted video) names a new state, and the next request computes it again. The blob
is ``projects/<id>/views/map-<backbone>-<count>-<max id>.npz``; older ones of the backbone are removed.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from curator.store import repo
from curator.workspace import Workspace

#: Decimals kept of the projected coordinates (in [0, 1]): a thousandth of a pixel on a 10,000 px map.
DECIMALS = 5
#: The principal axes are found from at most this many rows, evenly spaced (every row is projected).
AXIS_ROWS = 2048


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project ``(n, d)`` vectors on their first two principal components, scaled into the unit square.

    Both axes share one scale (distances keep their proportions) and the shorter one is centred.
    Each component's sign is fixed (its largest loading is positive) so that the map is the same
    from one computation to the next. With more than :data:`AXIS_ROWS` rows the axes come from that
    many evenly spaced rows (their axes are within noise of all the rows', for a tenth of the work at
    20,000 rows); the mean and the projection use every row. BLAS runs on one thread here.

    Returns:
        ``xy`` float32 ``(n, 2)`` in ``[0, 1]`` and the share of the variance each axis explains.
    """
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), np.float32), np.zeros(2)
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency, so always installed

    # one BLAS thread: about 0.1 s for 20,000 x 384 either way, and a second thread that finds its core
    # busy (a server beside other work) spin-waits: measured 1 to 1.6 s instead on two shared cores
    with threadpool_limits(limits=1, user_api="blas"):
        return _pca_2d(np.asarray(vectors, dtype=np.float32))


def _pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    sample = x if n <= AXIS_ROWS else x[np.linspace(0, n - 1, AXIS_ROWS).astype(np.int64)]
    sample = sample - mean
    values, vecs = np.linalg.eigh((sample.T @ sample).astype(np.float64))
    order = np.argsort(values)[::-1][:2]
    comps = vecs[:, order]
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(comps.shape[1])])
    comps = (comps * np.where(signs == 0, 1.0, signs)).astype(np.float32)
    proj = (x @ comps - mean @ comps).astype(np.float64)
    if proj.shape[1] < 2:
        proj = np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))
    total = float(values.clip(min=0).sum())
    explained = np.zeros(2)
    explained[: len(order)] = values[order].clip(min=0) / total if total > 0 else 0.0
    low, span = proj.min(axis=0), proj.max(axis=0) - proj.min(axis=0)
    scale = float(span.max())
    if scale <= 1e-9 * max(1.0, float(np.abs(proj).max())):
        return np.full((n, 2), 0.5, np.float32), explained
    xy = (proj - low) / scale + (1.0 - span / scale) / 2.0
    return xy.clip(0.0, 1.0).astype(np.float32), explained


def _blob_name(backbone: str, version: tuple[int, int]) -> str:
    return f"map-{_safe(backbone)}-{version[0]}-{version[1]}.npz"


def _safe(backbone: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", backbone)


@dataclass(frozen=True)
class Projection:
    """One state of a project's embeddings, projected: per embedded frame (video, then time order) its
    id, video, shot (-1: none) and ``xy``; the variance share of each axis; the state's version."""

    frame_ids: np.ndarray
    video_ids: np.ndarray
    shot_ids: np.ndarray
    xy: np.ndarray
    explained: np.ndarray
    version: tuple[int, int]
    cached: bool


def projection(workspace: Workspace, project_id: int, backbone: str) -> Projection:
    """The project's PCA projection under ``backbone``, from its blob when the embeddings have not
    changed since it was computed (else computed, stored, and the backbone's older blobs removed).

    The version is read before the embeddings: a projection stored under a version older than its
    embeddings is only ever computed again, never served for a newer state. A frame's video and shot
    never change and deleting a frame deletes its embedding (a new version), so they are kept with it.
    """
    with workspace.db.session() as session:
        version = repo.embedding_version(session, project_id, backbone)
    folder = f"projects/{project_id}/views"
    name = _blob_name(backbone, version)
    path = workspace.blobs.path(f"{folder}/{name}")
    if path.is_file():
        try:
            with np.load(path) as data:
                return Projection(data["ids"], data["video_ids"], data["shot_ids"], data["xy"], data["explained"],
                                  version, True)
        except (OSError, ValueError, KeyError):
            pass  # a damaged (or older) file: computed again below
    with workspace.db.session() as session:
        ids, vectors = repo.get_embeddings(session, project_id, backbone)
        frames = repo.frame_columns(session, project_id)
    rows = np.searchsorted(frames.ids, ids, sorter=np.argsort(frames.ids))
    order = np.argsort(frames.ids)[rows] if len(ids) else np.zeros(0, np.int64)
    xy, explained = pca_2d(vectors)
    made = Projection(ids, frames.video_ids[order], frames.shot_ids[order], xy, explained, version, False)
    buffer = io.BytesIO()
    np.savez(buffer, ids=ids, video_ids=made.video_ids, shot_ids=made.shot_ids, xy=xy, explained=explained)
    workspace.blobs.write_bytes_atomic(f"{folder}/{name}", buffer.getvalue())
    older = re.compile(rf"map-{re.escape(_safe(backbone))}-\d+-\d+\.npz")
    for old in path.parent.iterdir():
        if old.name != name and older.fullmatch(old.name):
            old.unlink(missing_ok=True)
    return made


def warm_projection(workspace: Workspace, project_id: int, backbone: str) -> bool:
    """Compute and cache the projection of the embeddings as they are now (the ingest and embed jobs
    call this when they end), so that the map opens from its cache.

    Returns:
        False when it could not be written (a full disk, say): the map then computes it when asked.
    """
    try:
        projection(workspace, project_id, backbone)
    except (OSError, ValueError):
        return False
    return True


def embedding_map(workspace: Workspace, project_id: int, backbone: str | None = None) -> dict[str, Any]:
    """The project's embedding map.

    Args:
        workspace: Where the project lives.
        project_id: The project.
        backbone: Embeddings to project (``None`` or ``auto``: the one selections use).

    Returns:
        ``backbone``, ``version`` (``<count>-<max id>``), ``cached`` (the projection came from its
        blob), ``explained`` (variance share of each axis), ``count``, ``reason`` (why the map is
        empty, else ``None``), ``videos`` (id and file name) and per-point columns aligned by
        position: ``frame_id``, ``x``, ``y`` (in ``[0, 1]``, ``y`` up), ``video_id``, ``shot_id``
        (``None`` without a shot), ``labelled`` (human masks), ``picked`` (by any selection) and
        ``queued`` (an open or leased task).

    Raises:
        LookupError: For an explicit ``backbone`` the project has no embeddings under.
    """
    from curator.selection import choose_backbone

    with workspace.db.session() as session:
        videos = [{"id": i, "filename": f} for i, f in repo.video_names(session, project_id)]
    try:
        name = choose_backbone(workspace, project_id, backbone)
    except LookupError as exc:
        if backbone not in (None, "auto"):
            raise
        return {**_columns([], [], [], [], [], [], [], []), "backbone": None, "version": "0-0", "cached": False,
                "explained": [0.0, 0.0], "count": 0, "reason": str(exc), "videos": videos}
    made = projection(workspace, project_id, name)
    with workspace.db.session() as session:
        labelled = {f for f, _, _ in repo.human_frames(session, project_id)}
        picked = repo.picked_frame_ids(session, project_id)
        queued = {f for f, s in repo.task_states(session, project_id).items() if s in ("open", "leased")}
    frame_ids = made.frame_ids.tolist()
    coords = np.round(made.xy.astype(np.float64), DECIMALS).reshape(-1, 2)
    return {
        **_columns(
            frame_ids, coords[:, 0].tolist(), coords[:, 1].tolist(), made.video_ids.tolist(),
            [None if s < 0 else s for s in made.shot_ids.tolist()], [f in labelled for f in frame_ids],
            [f in picked for f in frame_ids], [f in queued for f in frame_ids],
        ),
        "backbone": name, "version": f"{made.version[0]}-{made.version[1]}", "cached": made.cached,
        "explained": [round(float(e), 4) for e in made.explained], "count": len(frame_ids), "reason": None,
        "videos": videos,
    }


def _columns(
    frame_id: list[int], x: list[float], y: list[float], video_id: list[int], shot_id: list[int | None],
    labelled: list[bool], picked: list[bool], queued: list[bool],
) -> dict[str, Any]:
    return {"frame_id": frame_id, "x": x, "y": y, "video_id": video_id, "shot_id": shot_id,
            "labelled": labelled, "picked": picked, "queued": queued}
