"""Pre-annotation of queued tasks: give each queued frame masks to start from, where some can be had
without a human on that frame.

A task's pre-annotation is the best of its frame's masks (:func:`curator.store.repo.pre_annotation`):
its own human or ``rejected`` masks (a reopened or rejected task), else ``propagated`` or ``predicted``
masks (a round leaves one of them on every frame it scored). :func:`preannotate_tasks` fills the
frames that have none by propagating their video's human keyframes to them
(:func:`curator.labels.propagation.propagate_to_frames`, over the stretch those frames need only).
Frames still without masks then get SAM 2's automatic masks (source ``model``) when a SAM 2
checkpoint is configured (:mod:`curator.labels.automask`). Otherwise a video without human masks
gives nothing: on a project with no labels yet every task stays without one, and the result says so.

The service runs it as the ``preannotate`` job queued after each selection and round that queues
tasks (:mod:`curator.jobs.handlers`); :meth:`curator.project.Project.preannotate` runs it in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from curator.labels.automask import AutoMasker, automask_frames
from curator.labels.propagation import propagate_to_frames
from curator.workspace import Workspace

#: Builds the propagator when one is needed: ``(propagator, name)``. Not called when nothing is to do.
PropagatorFactory = Callable[[], tuple[Any, str]]

#: Sources that count as a pre-annotation already (see :data:`curator.store.repo.PRE_ANNOTATION_SOURCES`).
READY_SOURCES = ("human", "rejected", "propagated", "predicted", "model")


def preannotate_tasks(
    workspace: Workspace,
    project_id: int,
    task_ids: Sequence[int] | None,
    propagator: PropagatorFactory,
    *,
    automask: Callable[[], AutoMasker | None] | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Pre-annotate the project's open and leased tasks (those among ``task_ids``, or all of them).

    Args:
        workspace: Database and blobs.
        project_id: The project.
        task_ids: Tasks to pre-annotate; ``None`` takes every open or leased task. Done tasks and ids
            of other projects are left out.
        propagator: Builds the propagator, called once and only when a frame needs propagation.
        automask: Builds SAM 2's automatic masker (:mod:`curator.labels.automask`), or returns None
            when no SAM 2 checkpoint is configured; called once, and only when frames are left
            without a pre-annotation after propagation.
        progress: Called with ``("preannotate", videos done, videos to propagate)`` (and
            ``("automask", frames done, frames)``).
        cancel: Stops the propagation when it returns True (nothing of the running video is stored).

    Returns:
        ``tasks`` (considered), ``pre_annotated`` (of those, how many have a pre-annotation now),
        ``already`` (had one before), ``filled`` (got one now), ``videos`` (propagated),
        ``propagator`` (its name, ``None`` if none ran), ``automasked`` (frames given SAM 2's
        automatic masks) and ``reason`` (why some tasks have none, or ``None``): ``no human masks
        yet`` on a project without human masks.

    Raises:
        JobFailed: If a frame image is missing, or the propagator fails.
    """
    from curator.store import repo

    with workspace.db.session() as session:
        queued = repo.queued_frames(session, project_id, task_ids)
        frame_ids = [q.frame_id for q in queued]
        ready = repo.frames_with_sources(session, frame_ids, READY_SOURCES)
        keyed_videos = set(repo.videos_with_human_masks(session, project_id))
    need: dict[int, list[int]] = {}
    for q in queued:
        if q.frame_id not in ready:
            need.setdefault(q.video_id, []).append(q.frame_id)
    runnable = {v: frames for v, frames in need.items() if v in keyed_videos}
    name = _propagate(workspace, runnable, propagator, progress, cancel)
    with workspace.db.session() as session:
        now_ready = repo.frames_with_sources(session, frame_ids, READY_SOURCES)
    left = [f for f in frame_ids if f not in now_ready]
    masker = automask() if automask is not None and left else None
    automasked = 0
    if masker is not None:
        automasked = automask_frames(workspace, left, masker, progress=progress, cancel=cancel)
        with workspace.db.session() as session:
            now_ready = repo.frames_with_sources(session, frame_ids, READY_SOURCES)
    pre_annotated = sum(q.frame_id in now_ready for q in queued)
    already = sum(q.frame_id in ready for q in queued)
    reason = None
    if pre_annotated < len(queued):
        if masker is not None:
            reason = "SAM 2 found no object on some tasks' frames"
        elif not keyed_videos:
            reason = "no human masks yet"
        elif any(v not in keyed_videos for v in need):
            reason = "some tasks' videos have no human masks yet"
        else:
            reason = "propagation found no object on some tasks' frames"
    return {
        "tasks": len(queued), "pre_annotated": pre_annotated, "already": already,
        "filled": pre_annotated - already, "videos": len(runnable), "propagator": name,
        "automasked": automasked, "reason": reason,
    }


def _propagate(
    workspace: Workspace,
    runnable: dict[int, list[int]],
    propagator: PropagatorFactory,
    progress: Callable[[str, int, int | None], None] | None,
    cancel: Callable[[], bool] | None,
) -> str | None:
    """Propagate each video's human keyframes to its frames in ``runnable``; the propagator's name
    (``None`` when none had to run)."""
    from curator.jobs.base import JobFailed

    model: Any = None
    name: str | None = None
    for done, (video_id, frames) in enumerate(sorted(runnable.items())):
        if progress is not None:
            progress("preannotate", done, len(runnable))
        if model is None:
            model, name = propagator()
        try:
            propagate_to_frames(workspace, video_id, frames, model, cancel=cancel)
        except JobFailed as exc:
            if exc.code != "no_keyframes":  # only empty human masks in this video: nothing to spread
                raise
    if progress is not None:
        progress("preannotate", len(runnable), len(runnable))
    return name


def warm_frames(
    workspace: Workspace,
    project_id: int,
    task_ids: Sequence[int] | None,
    segmenter: Any,
    *,
    progress: Callable[[str, int, int | None], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run ``segmenter``'s encoder on the frames of the project's open and leased tasks (those among
    ``task_ids``, or all), so that the first click on each costs no encoder pass
    (:meth:`curator.project.Project.warm_segments`).

    Args:
        workspace: Database and blobs.
        project_id: The project.
        task_ids: Tasks whose frames to warm; ``None`` takes every open or leased task.
        segmenter: A click-to-segment backend; one without a ``warm`` method has nothing to warm.
        progress: Called with ``("warm", frames done, frames)``.
        cancel: Stops early when it returns True (what was warmed stays warm).

    Returns:
        ``frames`` (considered), ``encoded`` (encoder passes run now), ``cached`` (already warm),
        ``seconds`` and ``stopped`` (True if cancelled).
    """
    import time

    from curator.segment.cache import frame_key
    from curator.store import repo
    from curator.store.blobs import read_rgb

    with workspace.db.session() as session:
        queued = repo.queued_frames(session, project_id, task_ids)
        frames = repo.frames_by_id(session, [q.frame_id for q in queued])
    keyed = {(f.content_hash, f.blob_path) for f in frames}
    warm = getattr(segmenter, "warm", None)
    start = time.perf_counter()
    encoded = cached = 0
    stopped = False
    for done, (content_hash, blob_path) in enumerate(sorted(keyed, key=lambda k: k[1])):
        if warm is None:
            break
        if cancel is not None and cancel():
            stopped = True
            break
        if progress is not None:
            progress("warm", done, len(keyed))
        path = workspace.blobs.path(blob_path)
        if warm(read_rgb(path), frame_key(content_hash, path)):
            encoded += 1
        else:
            cached += 1
    if progress is not None:
        progress("warm", encoded + cached, len(keyed))
    return {
        "frames": len(keyed), "encoded": encoded, "cached": cached,
        "seconds": round(time.perf_counter() - start, 3), "stopped": stopped,
    }
