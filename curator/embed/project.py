"""Embedding the stored frames of a project that have no embedding under a backbone yet."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from curator.embed.base import Backbone
from curator.embed.runner import embed_stream
from curator.progress import CancelCheck, ProgressCallback, check_cancel, no_progress
from curator.store import repo
from curator.store.blobs import read_rgb
from curator.workspace import Workspace


def embed_project(
    workspace: Workspace,
    project_id: int,
    backbone: Backbone,
    *,
    batch_size: int | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
    video_id: int | None = None,
    frame_ids: Sequence[int] | None = None,
    sync_index: bool = True,
) -> int:
    """Embed every frame of the project missing an embedding under ``backbone``; update the index.

    JPEGs are read in a background thread while the model runs. Each batch is committed as it is
    done, so an interrupted run keeps its finished batches and a rerun continues from there.

    Args:
        workspace: Where the frames and embeddings are.
        project_id: The project.
        backbone: The model.
        batch_size: Frames per batch (default the ``embed_batch_size`` setting).
        progress: Called with ``("embed", done, total)`` after each batch.
        cancel: Checked after each batch.
        video_id: Only this video's frames (one part of an embed job split by video).
        frame_ids: Only these frames (one part of a long video's frames).
        sync_index: Bring the project's FAISS index in step at the end (a job split by video does it once).

    Returns:
        Number of frames embedded.
    """
    wanted = None if frame_ids is None else {int(f) for f in frame_ids}
    with workspace.db.session() as session:
        todo = [
            (f.id, f.blob_path)
            for f in repo.frames_missing_embedding(session, project_id, backbone.name)
            if (video_id is None or f.video_id == video_id) and (wanted is None or f.id in wanted)
        ]
    if not todo:
        return 0
    blobs = workspace.blobs

    def images() -> Iterator[tuple[int, np.ndarray]]:
        for frame_id, blob_path in todo:
            yield frame_id, read_rgb(blobs.path(blob_path))

    done = 0
    for keys, vectors in embed_stream(backbone, images(), batch_size or workspace.settings.embed_batch_size):
        check_cancel(cancel)
        with workspace.db.session() as session:
            repo.put_embeddings(session, np.asarray(keys, dtype=np.int64), vectors, backbone.name)
        done += len(keys)
        progress("embed", done, len(todo))
    if sync_index:
        from curator.index.project import sync_project_index

        sync_project_index(workspace, project_id, backbone.name)
    return done
