"""Engine job handlers: ingest, embed, select, propagate, round and preannotate.

Each handler takes a :class:`~curator.jobs.base.JobContext`, turns expected failures into
:class:`~curator.jobs.base.JobFailed` with a stable code, and returns a small JSON result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curator.jobs.base import JobContext, JobFailed, JobHandler
from curator.labels.propagation import propagate_video
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


def ingest_handler(backbones: BackboneFactory) -> JobHandler:
    """Handler of ``ingest`` jobs.

    Params: ``path`` (blob-relative for uploads, absolute for registered paths), ``upload`` (bool:
    the file is an upload, removed once the job has an outcome), ``filename`` (recorded, never used
    as a path), ``backbone`` (name, or ``None`` for no embedding), and optionally ``fps`` and
    ``stride``: this video's sampling, in place of the ``sample_fps`` and ``sample_stride`` settings.
    """

    def run(ctx: JobContext) -> dict[str, Any]:
        from curator.ingest import VideoDecodeError, ingest_video
        from curator.ingest.sample import sampling_settings

        params = ctx.params
        workspace = ctx.workspace
        if ctx.project_id is None:
            raise JobFailed("invalid_job", "an ingest job needs a project")
        path = workspace.blobs.path(params["path"]) if params.get("upload") else Path(params["path"])
        if not path.is_file():
            raise JobFailed(
                "file_missing", f"the file to ingest is gone: {params.get('filename') or path.name}"
            )
        try:
            settings = sampling_settings(workspace.settings, params.get("fps"), params.get("stride"))
        except ValueError as exc:
            raise JobFailed("invalid_params", str(exc)) from None
        backbone = backbones(params["backbone"]) if params.get("backbone") else None
        try:
            result = ingest_video(
                workspace,
                ctx.project_id,
                path,
                backbone=backbone,
                settings=settings,
                filename=params.get("filename"),
                progress=ctx.progress,
                cancel=ctx.cancelled,
            )
        except VideoDecodeError as exc:
            if params.get("upload"):
                path.unlink(missing_ok=True)
            # the message names the server-side path; the uploader knows the file by its own name
            message = str(exc).replace(str(path), params.get("filename") or "upload")
            raise JobFailed("video_decode_error", message) from None
        if params.get("upload"):
            path.unlink(missing_ok=True)
        return {
            "video_id": result.video_id,
            "created": result.created,
            "frames": result.frames,
            "decoded_frames": result.decoded_frames,
            "shots": result.shots,
            "embedded": result.embedded,
            "backbone": result.backbone,
            "sample_fps": settings.sample_fps,
            "sample_stride": settings.sample_stride,
        }

    return run


def embed_handler(backbones: BackboneFactory) -> JobHandler:
    """Handler of ``embed`` jobs: embeds the project's frames lacking an embedding. Params: ``backbone``.

    A project without frames fails with ``no_frames``.
    """

    def run(ctx: JobContext) -> dict[str, Any]:
        from curator.embed.project import embed_project
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
        done = embed_project(
            ctx.workspace, ctx.project_id, model, progress=ctx.progress, cancel=ctx.cancelled
        )
        sync_project_index(ctx.workspace, ctx.project_id, model.name)
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
    from curator.annotate.choose import FALLBACK_PROPAGATOR, FEATURE_PROPAGATORS, choose_propagator
    from curator.embed import BackboneWeightsError
    from curator.registry import UnknownNameError

    name = ctx.params.get("propagator") or ctx.workspace.settings.propagator
    backbone = None
    if name in ("auto", *FEATURE_PROPAGATORS):
        try:
            backbone = backbones("dinov2_vits14")  # shared with embedding jobs: weights load once
        except BackboneWeightsError as exc:
            if name != "auto":
                raise JobFailed("no_backbone", f"propagator {name!r} needs DINOv2 weights: {exc}") from None
            name = FALLBACK_PROPAGATOR
    try:
        return choose_propagator(name, backbone=backbone)
    except UnknownNameError as exc:
        raise JobFailed("unknown_propagator", str(exc)) from None


def propagate_handler(backbones: BackboneFactory) -> JobHandler:
    """Handler of ``propagate`` jobs. Params: ``video_id``, ``propagator`` (name, default the
    settings'; ``auto`` is ``flow+feature`` with DINOv2 weights, else ``flow``), ``scope``."""

    def run(ctx: JobContext) -> dict[str, Any]:
        choice = job_propagator(ctx, backbones)
        result = propagate_video(
            ctx.workspace,
            int(ctx.params["video_id"]),
            choice.propagator,
            scope=ctx.params.get("scope") or "video",
            progress=ctx.progress,
            cancel=ctx.cancelled,
        )
        return {**result, "propagator": choice.name}

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


def round_then_preannotate(ctx: JobContext) -> dict[str, Any]:
    """Handler of ``round`` jobs (:func:`curator.train.job.round_handler`), then the ``preannotate``
    job of the tasks it queued, with the round's propagator; its id is ``preannotate_job`` in the result."""
    from curator.train.job import round_handler

    result = round_handler(ctx) or {}
    picks = result.get("picks") or []
    task_ids = [int(p["task_id"]) for p in picks if p.get("task_id") is not None]
    job_id = queue_preannotation(ctx, task_ids, ctx.params.get("propagator"))
    return {**result, "preannotate_job": job_id}


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


def engine_handlers(workspace: Workspace, backbones: BackboneFactory | None = None) -> dict[str, JobHandler]:
    """Every job kind the engine runs: ``ingest``, ``embed``, ``select``, ``propagate``, ``round``,
    ``preannotate``."""
    factory = backbones or BackboneCache(workspace)
    return {
        "ingest": ingest_handler(factory),
        "embed": embed_handler(factory),
        "select": select_handler,
        "propagate": propagate_handler(factory),
        "round": round_then_preannotate,
        "preannotate": preannotate_handler(factory),
    }
