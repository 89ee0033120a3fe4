"""Engine job handlers: ingest, embed, select, propagate, round and preannotate.

Each handler takes a :class:`~curator.jobs.base.JobContext`, turns expected failures into
:class:`~curator.jobs.base.JobFailed` with a stable code, and returns a small JSON result.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from typing import Any

from curator.jobs.base import JobContext, JobFailed, JobHandler
from curator.jobs.dispatch import Dispatcher, LocalDispatcher
from curator.jobs.parts import (
    EMBED_PART_FRAMES,
    INGEST_PART_FRAMES,
    PROPAGATE_PART_FRAMES,
    chunk_items,
    embed_part,
    finish_chunked,
    ingest_estimate,
    ingest_part,
    ingest_plan,
    propagate_items,
    propagate_part,
    propagator_choice,
)
from curator.views.embedding_map import warm_projection
from curator.workspace import Workspace

#: Builds a backbone by name (``auto`` allowed); the API passes a cached factory.
BackboneFactory = Callable[[str], Any]


class BackboneCache:
    """Builds each backbone once per process (weights are big) and shares it between jobs.

    Args:
        workspace: Gives the checkpoint and device settings.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.settings = workspace.settings
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> Any:
        """The backbone called ``name`` (``auto`` falls back to ``classic`` without DINOv2 weights)."""
        from curator.embed import create_backbone

        with self._lock:
            if name not in self._models:
                choice = create_backbone(
                    name, self.settings.backbone_checkpoint or None, self.settings.device
                )
                self._models[name] = choice.backbone
            return self._models[name]


def ingest_handler(backbones: BackboneFactory, dispatcher: Dispatcher | None = None) -> JobHandler:
    """Handler of ``ingest`` jobs.

    Params: ``path`` (blob-relative for uploads, absolute for registered paths), ``upload`` (bool:
    the file is an upload, removed once the job has an outcome), ``filename`` (recorded, never used
    as a path), ``backbone`` (name, or ``None`` for no embedding), and optionally ``fps`` and
    ``stride``: this video's sampling, in place of the ``sample_fps`` and ``sample_stride`` settings.

    A project-level ingest of several registered files gives ``paths`` (absolute) in place of
    ``path``: one part per file (:func:`curator.jobs.parts.ingest_part`, run by ``dispatcher``, on a
    Ray cluster under ``curator worker --ray``); files that are not decodable videos are listed in
    the result's ``rejected`` and the others go in. A file of more than ``part_frames`` decoded
    frames (default :data:`~curator.jobs.parts.INGEST_PART_FRAMES`) is decoded in parts cut at its
    keyframes (:func:`curator.jobs.parts.ingest_plan`) and stored as one video.
    """
    dispatch = dispatcher or LocalDispatcher(backbones)

    def run(ctx: JobContext) -> dict[str, Any]:
        if ctx.project_id is None:
            raise JobFailed("invalid_job", "an ingest job needs a project")
        params = ctx.params
        shared = {k: params.get(k) for k in ("backbone", "fps", "stride")}
        many = params.get("paths") is not None
        items = (
            [{**shared, "path": str(p), "upload": False, "filename": None} for p in params["paths"]]
            if many
            else [{**shared, **{k: params.get(k) for k in ("path", "upload", "filename")}}]
        )
        items = [{**item, "project_id": ctx.project_id} for item in items]
        size = INGEST_PART_FRAMES if params.get("part_frames") is None else int(params["part_frames"])
        if size < 1:
            raise JobFailed("invalid_params", "part_frames must be at least 1")
        plans = [ingest_plan(ctx.workspace, item, size) for item in items]
        try:
            results = _ingest_files(ctx, dispatch, items, plans)
        finally:
            for planned in plans:
                if planned is not None:
                    shutil.rmtree(ctx.workspace.blobs.path(planned["staging"]), ignore_errors=True)
        stored = [r for r in results if "rejected" not in r]
        embedded = [r for r in stored if r["created"] and r["embedded"] and r["backbone"]]
        if many and embedded:  # parts on several nodes each saved the index: one sync sees them all
            from curator.index.project import sync_project_index

            sync_project_index(ctx.workspace, ctx.project_id, embedded[0]["backbone"])
        if embedded:
            warm_projection(ctx.workspace, ctx.project_id, embedded[0]["backbone"])  # the map opens from its cache
        if not many:
            if not stored:
                raise JobFailed("video_decode_error", results[0]["rejected"])
            return stored[0]
        return {
            "videos": stored,
            "rejected": {r["filename"]: r["rejected"] for r in results if "rejected" in r},
            **{k: sum(int(r[k]) for r in stored) for k in ("frames", "decoded_frames", "shots", "embedded")},
        }

    return run


def _ingest_files(
    ctx: JobContext, dispatch: Dispatcher, items: list[dict[str, Any]], plans: list[dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """Run the ingest parts of ``items`` (one per file, or the parts of a file its plan cuts) and
    return one result per file, in order; a cut file is stored once its parts are done, and a file
    whose parts decoded other frames than planned is ingested again in one part."""
    parts: list[dict[str, Any]] = []
    estimates: list[int | None] = []
    owner: list[int] = []
    for k, (item, planned) in enumerate(zip(items, plans, strict=True)):
        mine = [item] if planned is None else chunk_items(item, planned)
        parts.extend(mine)
        owner.extend([k] * len(mine))
        estimates.extend(
            [ingest_estimate(ctx.workspace, item)] if planned is None
            else [c["chunk"]["stop"] - c["chunk"]["first"] for c in mine]
        )
    done = dispatch.map(ctx, "ingest", ingest_part, parts, estimates)
    results: list[dict[str, Any] | None] = []
    for k, (item, planned) in enumerate(zip(items, plans, strict=True)):
        mine = [r for r, o in zip(done, owner, strict=True) if o == k]
        results.append(mine[0] if planned is None else finish_chunked(ctx.workspace, item, planned, mine))
    redo = [k for k, r in enumerate(results) if r is None]
    if redo:
        again = dispatch.map(ctx, "ingest", ingest_part, [items[k] for k in redo], [ingest_estimate(ctx.workspace, items[k]) for k in redo])
        for k, result in zip(redo, again, strict=True):
            results[k] = result
    return [r for r in results if r is not None]


def embed_handler(backbones: BackboneFactory, dispatcher: Dispatcher | None = None) -> JobHandler:
    """Handler of ``embed`` jobs: embeds the project's frames lacking an embedding. Params: ``backbone``.

    One part per video with such frames, or per ``part_frames`` of them in a long video (param,
    default :data:`curator.jobs.parts.EMBED_PART_FRAMES`; :func:`curator.jobs.parts.embed_part`, run
    by ``dispatcher``); the project's index is synced once at the end. A project without frames
    fails with ``no_frames``.
    """
    dispatch = dispatcher or LocalDispatcher(backbones)

    def run(ctx: JobContext) -> dict[str, Any]:
        from curator.index.project import sync_project_index
        from curator.store import repo

        if ctx.project_id is None:
            raise JobFailed("invalid_job", "an embed job needs a project")
        with ctx.workspace.db.session() as session:
            counts = repo.project_counts(session, [ctx.project_id])
        if not counts or counts[0][2] == 0:
            raise JobFailed(
                "no_frames", f"project {ctx.project_id} has no frames to embed; upload or register a video first"
            )
        model = backbones(ctx.params.get("backbone") or ctx.workspace.settings.backbone)
        size = int(ctx.params.get("part_frames") or EMBED_PART_FRAMES)
        if size < 1:
            raise JobFailed("invalid_params", "part_frames must be at least 1")
        todo: dict[int, list[int]] = {}
        with ctx.workspace.db.session() as session:
            for frame in repo.frames_missing_embedding(session, ctx.project_id, model.name):
                todo.setdefault(int(frame.video_id), []).append(int(frame.id))
        items = []
        for video in sorted(todo):
            frames = todo[video]
            base = {"project_id": ctx.project_id, "video_id": video, "backbone": model.name}
            if len(frames) <= size:  # the common case: a part names its video only
                items.append(base)
                continue
            items += [{**base, "frame_ids": frames[lo : lo + size]} for lo in range(0, len(frames), size)]
        estimates: list[int | None] = [len(i["frame_ids"]) if "frame_ids" in i else len(todo[i["video_id"]]) for i in items]
        results = dispatch.map(ctx, "embed", embed_part, items, estimates)
        done = sum(int(r["embedded"]) for r in results)
        sync_project_index(ctx.workspace, ctx.project_id, model.name)
        if done:
            warm_projection(ctx.workspace, ctx.project_id, model.name)  # the embedding map opens from its cache
        return {"embedded": done, "backbone": model.name}

    return run


def build_propagator(name: str, **kwargs: Any) -> Any:
    """The propagator registered as ``name`` (``curator.annotate``'s registry)."""
    from curator.annotate import create_propagator

    return create_propagator(name, **kwargs)


def propagator_names() -> list[str]:
    """Registered propagator names."""
    from curator.annotate import list_propagators

    return list(list_propagators())


def job_propagator(ctx: JobContext, backbones: BackboneFactory) -> Any:
    """The propagator a job asks for (``propagator`` param, default the settings'; ``auto`` is
    ``flow+feature`` with DINOv2 weights, else ``flow``): a :class:`curator.annotate.choose` choice.

    Raises:
        JobFailed: ``no_backbone`` for a feature propagator without DINOv2 weights,
            ``unknown_propagator`` for an unknown name.
    """
    return propagator_choice(ctx.workspace, ctx.params.get("propagator"), backbones)


def propagate_handler(backbones: BackboneFactory, dispatcher: Dispatcher | None = None) -> JobHandler:
    """Handler of ``propagate`` jobs. Params: ``video_id``, ``propagator`` (name, default the
    settings'; ``auto`` is ``flow+feature`` with DINOv2 weights, else ``flow``), ``scope``.

    Without ``video_id``, every video of the project with human masks is propagated, one part per
    video (:func:`curator.jobs.parts.propagate_part`, run by ``dispatcher``); the result sums them
    and lists each under ``videos``. A video longer than ``part_frames`` (param, default
    :data:`curator.jobs.parts.PROPAGATE_PART_FRAMES`) is propagated in parts cut at its keyframes,
    with the same masks.
    """
    dispatch = dispatcher or LocalDispatcher(backbones)

    def run(ctx: JobContext) -> dict[str, Any]:
        from curator.store import repo

        single = ctx.params.get("video_id") is not None
        size = int(ctx.params.get("part_frames") or PROPAGATE_PART_FRAMES)
        if size < 1:
            raise JobFailed("invalid_params", "part_frames must be at least 1")
        with ctx.workspace.db.session() as session:
            if single:
                videos = [int(ctx.params["video_id"])]
            elif ctx.project_id is None:
                raise JobFailed("invalid_job", "a propagate job needs a project or a video")
            else:
                videos = repo.videos_with_human_masks(session, ctx.project_id)
        if not videos:
            raise JobFailed("no_keyframes", f"project {ctx.project_id} has no human masks to propagate from")
        options = {"propagator": ctx.params.get("propagator"), "scope": ctx.params.get("scope") or "video"}
        items, estimates = propagate_items(ctx.workspace, videos, options, size)
        parts = dispatch.map(ctx, "propagate", propagate_part, items, estimates)
        results: list[dict[str, Any]] = []
        for part in parts:  # the parts of a long video, summed into the video's result
            if results and results[-1]["video_id"] == part["video_id"]:
                for key in ("keyframes", "frames", "masks"):
                    results[-1][key] += int(part[key])
            else:
                results.append(dict(part))
        if single:
            return {k: v for k, v in results[0].items() if k != "video_id"}
        return {
            "videos": results,
            **{k: sum(int(r[k]) for r in results) for k in ("keyframes", "frames", "masks")},
            "propagator": results[0]["propagator"],
        }

    return run


def preannotate_handler(backbones: BackboneFactory) -> JobHandler:
    """Handler of ``preannotate`` jobs: give queued tasks a pre-annotation where one can be had
    (:func:`curator.labels.preannotate.preannotate_tasks`). Params: ``task_ids`` (``None``: every
    open or leased task of the project), ``propagator`` (default the settings')."""

    def run(ctx: JobContext) -> dict[str, Any]:
        from curator.labels.automask import configured_automasker
        from curator.labels.preannotate import preannotate_tasks

        if ctx.project_id is None:
            raise JobFailed("invalid_job", "a preannotate job needs a project")
        task_ids = ctx.params.get("task_ids")

        def propagator() -> tuple[Any, str]:
            choice = job_propagator(ctx, backbones)
            return choice.propagator, str(choice.name)

        ids = None if task_ids is None else [int(t) for t in task_ids]
        result = preannotate_tasks(
            ctx.workspace, ctx.project_id, ids, propagator, progress=ctx.progress, cancel=ctx.cancelled,
            automask=lambda: configured_automasker(ctx.workspace.settings.device),
        )
        if ctx.workspace.settings.segment_warm:
            result["warm"] = warm_segments(ctx, ids)
        return result

    return run


def warm_segments(ctx: JobContext, task_ids: list[int] | None) -> dict[str, Any]:
    """Warm click-to-segment on the tasks' frames (:meth:`curator.project.Project.warm_segments`).
    A segmenter that cannot be built does not fail the job: the result says why (``error``), and the
    first click will say it too."""
    from curator.project import Project

    assert ctx.project_id is not None
    try:
        return Project.by_id(ctx.workspace, ctx.project_id).warm_segments(
            task_ids, progress=ctx.progress, cancel=ctx.cancelled
        )
    except (LookupError, ValueError, OSError, RuntimeError) as exc:  # weights missing, unknown name
        return {"error": f"{type(exc).__name__}: {exc}"}


def queue_preannotation(ctx: JobContext, task_ids: list[int], propagator: str | None = None) -> int | None:
    """Queue the ``preannotate`` job of tasks a job just queued (when the ``preannotate`` setting is
    on and there are any), with ``propagator`` (``None``: the settings'); returns its id."""
    if not task_ids or not ctx.workspace.settings.preannotate:
        return None
    return ctx.follow_up("preannotate", {"task_ids": sorted(set(task_ids)), "propagator": propagator})


def round_then_preannotate(dispatcher: Dispatcher | None = None) -> JobHandler:
    """Handler of ``round`` jobs (:func:`curator.train.job.round_handler`, its per-video parts run by
    ``dispatcher``), then the ``preannotate`` job of the tasks it queued, with the round's
    propagator; its id is ``preannotate_job`` in the result."""

    def run(ctx: JobContext) -> dict[str, Any]:
        from curator.train.job import round_handler

        result = round_handler(ctx, dispatcher) or {}
        picks = result.get("picks") or []
        task_ids = [int(p["task_id"]) for p in picks if p.get("task_id") is not None]
        job_id = queue_preannotation(ctx, task_ids, ctx.params.get("propagator"))
        return {**result, "preannotate_job": job_id}

    return run


def select_handler(ctx: JobContext) -> dict[str, Any]:
    """Handler of ``select`` jobs: run a selector, store the selection, queue its picks as tasks,
    then queue the ``preannotate`` job of those tasks (its id is ``preannotate_job`` in the result).

    Params: ``strategy`` (default the settings'), ``budget``, ``params`` (selector constructor
    arguments), ``seed``, ``backbone``.
    """
    from curator.project import Project

    if ctx.project_id is None:
        raise JobFailed("invalid_job", "a select job needs a project")
    params = ctx.params
    from curator.registry import UnknownNameError

    ctx.progress("select", 0, 1)
    try:
        result = Project.by_id(ctx.workspace, ctx.project_id).select(
            int(params["budget"]), params.get("strategy"), params=params.get("params") or {},
            seed=params.get("seed"), backbone=params.get("backbone"), preannotate=False,
        )
    except UnknownNameError as exc:  # a KeyError, so before LookupError
        raise JobFailed("unknown_strategy", str(exc)) from None
    except LookupError as exc:
        raise JobFailed("no_embeddings", str(exc)) from None
    except ValueError as exc:
        raise JobFailed("invalid_params", str(exc)) from None
    ctx.progress("select", 1, 1)
    job_id = queue_preannotation(ctx, [p.task_id for p in result.picks if p.task_id is not None])
    return {**result.as_dict(), "preannotate_job": job_id}


def engine_handlers(
    workspace: Workspace, backbones: BackboneFactory | None = None, dispatcher: Dispatcher | None = None
) -> dict[str, JobHandler]:
    """Every job kind the engine runs: ``ingest``, ``embed``, ``select``, ``propagate``, ``round``,
    ``preannotate``.

    Args:
        workspace: Gives the backbone settings.
        backbones: The backbone factory (default a :class:`BackboneCache` of this process).
        dispatcher: Runs the per-video parts of ``ingest``, ``embed``, ``propagate`` and ``round`` (default in
            the job's thread; ``curator worker --ray`` passes a
            :class:`~curator.jobs.ray_dispatch.RayDispatcher`).
    """
    factory = backbones or BackboneCache(workspace)
    dispatch = dispatcher or LocalDispatcher(factory)
    return {
        "ingest": ingest_handler(factory, dispatch),
        "embed": embed_handler(factory, dispatch),
        "select": select_handler,
        "propagate": propagate_handler(factory, dispatch),
        "round": round_then_preannotate(dispatch),
        "preannotate": preannotate_handler(factory),
    }
