"""The project overview: videos with their shots, picks and labelled frames on a timeline, the
selections, and the queue by state and by annotator."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from curator.store import repo
from curator.store.models import Project
from curator.train.store import project_rounds
from curator.workspace import Workspace

#: Most picks an overview lists (newest selections first); ``picks_truncated`` says when there were more.
PICKS_LIMIT = 5000


def pick_dict(row: repo.PickRow) -> dict[str, Any]:
    """A stored pick as the views list it: frame, place, rank, utility, reason, task and its state."""
    return asdict(row)


def project_overview(workspace: Workspace, project_id: int, *, picks_limit: int = PICKS_LIMIT) -> dict[str, Any]:
    """The overview of a project.

    Args:
        workspace: Where the project lives.
        project_id: The project.
        picks_limit: Most picks to list (newest selections first).

    Returns:
        ``project`` (``id``, ``name``), ``totals`` (videos, frames, shots, labelled frames, picks,
        selections), ``videos`` (each with ``shots``, ``picks`` and ``labelled`` time stamps),
        ``selections`` (newest first, with the round that made each), ``queue`` (counts by state,
        :func:`curator.store.repo.queue_counts`), ``annotators`` (per key: leased now, submitted)
        and ``picks_truncated``.

    Raises:
        NotFoundError: For an unknown project.
    """
    with workspace.db.session() as session:
        project = session.get(Project, project_id)
        if project is None:
            raise repo.NotFoundError(f"no project with id {project_id}")
        name = project.name
        videos = repo.project_videos(session, project_id)
        shots = repo.project_shots(session, project_id)
        picks = repo.project_picks(session, project_id, limit=picks_limit + 1)
        labelled = repo.human_frames(session, project_id)
        selections = repo.project_selections(session, project_id)
        rounds = {r.selection_id: r.number for r in project_rounds(session, project_id) if r.selection_id}
        queue = repo.queue_counts(session, project_id)
        annotators = repo.annotator_counts(session, project_id)
        video_rows = [_video_dict(v, n) for v, n in videos]
    by_id = {v["id"]: v for v in video_rows}
    for shot, frames in shots:
        by_id[shot.video_id]["shots"].append(
            {"id": shot.id, "index": shot.index, "start_time": shot.start_time, "end_time": shot.end_time,
             "start_frame": shot.start_frame, "end_frame": shot.end_frame, "frames": frames}
        )
    for pick in picks[:picks_limit]:
        by_id[pick.video_id]["picks"].append(pick_dict(pick))
    for _frame_id, video_id, timestamp in labelled:
        by_id[video_id]["labelled"].append(timestamp)
    return {
        "project": {"id": project_id, "name": name},
        "totals": {
            "videos": len(video_rows),
            "frames": sum(v["frames"] for v in video_rows),
            "shots": len(shots),
            "labelled_frames": len(labelled),
            "picks": sum(n for _, n in selections),
            "selections": len(selections),
        },
        "videos": video_rows,
        "selections": [
            {"id": s.id, "strategy": s.strategy, "budget": s.budget, "picks": n, "created_at": s.created_at,
             "round": rounds.get(s.id)}
            for s, n in selections
        ],
        "queue": queue,
        "annotators": [asdict(a) for a in annotators],
        "picks_truncated": len(picks) > picks_limit,
    }


def _video_dict(video: Any, frames: int) -> dict[str, Any]:
    return {
        "id": video.id, "filename": video.filename, "fps": video.fps, "duration": video.duration,
        "width": video.width, "height": video.height, "frames": frames, "decoded_frames": video.decoded_frames,
        "sample_fps": video.sample_fps, "sample_stride": video.sample_stride, "created_at": video.created_at,
        "shots": [], "picks": [], "labelled": [],
    }
