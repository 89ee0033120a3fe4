"""One video frame by frame: the best mask source on each frame and its lowest object confidence (the
confidence curve under the video's timeline), the keyframes, the tasks and the picks."""

from __future__ import annotations

from typing import Any

from curator.store import repo
from curator.views.overview import pick_dict
from curator.workspace import Workspace

#: Mask sources by precedence: a frame's ``source`` is the first of these it has masks from.
SOURCE_ORDER = ("human", "propagated", "predicted", "rejected")


def video_timeline(workspace: Workspace, project_id: int, video_id: int) -> dict[str, Any]:
    """A video of a project, frame by frame.

    Args:
        workspace: Where the project lives.
        project_id: The project.
        video_id: One of its videos.

    Returns:
        ``video`` (id, file name, fps, duration, size, sampling), ``shots``, ``frames`` as columns
        aligned by position (``id``, ``frame_index``, ``timestamp``, ``shot_id`` (``None`` without a
        shot), ``source`` (the first of :data:`SOURCE_ORDER` the frame has masks from, ``None`` for
        none), ``confidence`` (the lowest object confidence of that source; human masks are 1),
        ``objects`` (masks of that source) and ``task`` (the state of the frame's task, ``None``
        without one)), ``keyframes`` (ids of the frames with human masks), ``picks`` (newest
        selection first) and ``sources`` (frames per source).

    Raises:
        NotFoundError: For a video that is not one of the project's.
    """
    with workspace.db.session() as session:
        video = repo.video_of_project(session, project_id, video_id)
        if video is None:
            raise repo.NotFoundError(f"no video {video_id} in project {project_id}")
        info = {
            "id": video.id, "filename": video.filename, "fps": video.fps, "duration": video.duration,
            "width": video.width, "height": video.height, "decoded_frames": video.decoded_frames,
            "sample_fps": video.sample_fps, "sample_stride": video.sample_stride,
        }
        columns = repo.frame_columns(session, project_id, video_id)
        shots = [(s, n) for s, n in repo.project_shots(session, project_id) if s.video_id == video_id]
        summary = repo.annotation_summary(session, video_id)
        tasks = repo.task_states(session, project_id, video_id)
        picks = repo.project_picks(session, project_id, video_id=video_id)
    best: dict[int, tuple[int, float, int]] = {}  # frame id -> (source rank, lowest confidence, objects)
    for frame_id, source, confidence, objects in summary:
        rank = SOURCE_ORDER.index(source) if source in SOURCE_ORDER else len(SOURCE_ORDER)
        if rank < len(SOURCE_ORDER) and (frame_id not in best or rank < best[frame_id][0]):
            best[frame_id] = (rank, confidence, objects)
    ids = columns.ids.tolist()
    found = [best.get(f) for f in ids]
    counts = {s: 0 for s in SOURCE_ORDER}
    for item in found:
        if item is not None:
            counts[SOURCE_ORDER[item[0]]] += 1
    return {
        "video": info,
        "shots": [
            {"id": s.id, "index": s.index, "start_time": s.start_time, "end_time": s.end_time,
             "start_frame": s.start_frame, "end_frame": s.end_frame, "frames": n}
            for s, n in shots
        ],
        "frames": {
            "id": ids,
            "frame_index": columns.frame_index.tolist(),
            "timestamp": columns.timestamps.tolist(),
            "shot_id": [None if s < 0 else s for s in columns.shot_ids.tolist()],
            "source": [None if b is None else SOURCE_ORDER[b[0]] for b in found],
            "confidence": [None if b is None else round(b[1], 4) for b in found],
            "objects": [0 if b is None else b[2] for b in found],
            "task": [tasks.get(f) for f in ids],
        },
        "keyframes": [f for f, b in zip(ids, found, strict=True) if b is not None and b[0] == 0],
        "picks": [pick_dict(p) for p in picks],
        "sources": counts,
    }
