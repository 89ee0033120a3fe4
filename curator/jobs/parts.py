"""The per-video parts of the ingest, embed and propagate jobs (see :mod:`curator.jobs.dispatch`).

Each part is a module-level function ``part(env, params, progress, cancel) -> dict`` that does one
video's work against the workspace of the process it runs in and stores its results itself. The job
handlers (:mod:`curator.jobs.handlers`) build the parts' params, hand them to a dispatcher, and sum
the results; the same functions run in the job's thread (:class:`~curator.jobs.dispatch.LocalDispatcher`)
or as Ray tasks (:class:`~curator.jobs.ray_dispatch.RayDispatcher`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curator.jobs.base import JobFailed
from curator.jobs.dispatch import PartEnv
from curator.progress import CancelCheck, ProgressCallback
from curator.workspace import Workspace


def ingest_source(workspace: Workspace, params: dict[str, Any]) -> Path:
    """The file an ingest part reads: a blob-relative upload or an absolute registered path."""
    return workspace.blobs.path(params["path"]) if params.get("upload") else Path(params["path"])


def ingest_part(env: PartEnv, params: dict[str, Any], progress: ProgressCallback, cancel: CancelCheck) -> dict[str, Any]:
    """Ingest (and embed, with a ``backbone``) one file.

    Params: ``path``, ``upload``, ``filename``, ``backbone``, ``fps``, ``stride`` (as the ``ingest``
    job's). An upload is removed once it has an outcome (stored or rejected).

    Returns:
        The :class:`curator.ingest.IngestResult` fields with the sampling used, or, for a file that
        is not a decodable video, ``rejected`` (the reason) and ``filename``; nothing of it is stored.

    Raises:
        JobFailed: ``file_missing`` when the file is gone, ``invalid_params`` for bad sampling options.
    """
    from curator.ingest import VideoDecodeError, ingest_video
    from curator.ingest.sample import sampling_settings

    workspace = env.workspace
    path = ingest_source(workspace, params)
    name = params.get("filename") or path.name
    if not path.is_file():
        raise JobFailed("file_missing", f"the file to ingest is gone: {name}")
    try:
        settings = sampling_settings(workspace.settings, params.get("fps"), params.get("stride"))
    except ValueError as exc:
        raise JobFailed("invalid_params", str(exc)) from None
    backbone = env.backbones(params["backbone"]) if params.get("backbone") else None
    try:
        result = ingest_video(
            workspace, int(params["project_id"]), path, backbone=backbone, settings=settings,
            filename=params.get("filename"), progress=progress, cancel=cancel,
        )
    except VideoDecodeError as exc:
        if params.get("upload"):
            path.unlink(missing_ok=True)
        # the message names the server-side path; the uploader knows the file by its own name
        return {"rejected": str(exc).replace(str(path), params.get("filename") or "upload"), "filename": name}
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


def ingest_estimate(workspace: Workspace, params: dict[str, Any]) -> int | None:
    """The frame count an ingest part will decode, from the file's header (``None`` if unknown)."""
    from curator.ingest.decode import probe

    try:
        return probe(ingest_source(workspace, params)).frame_count or None
    except Exception:  # a missing or broken file: its part says why
        return None


#: Frames per embedding part: a longer video is embedded by several parts (Ray tasks).
EMBED_PART_FRAMES = 1024


def embed_part(env: PartEnv, params: dict[str, Any], progress: ProgressCallback, cancel: CancelCheck) -> dict[str, Any]:
    """Embed one video's frames that lack an embedding under ``backbone`` (params: ``project_id``,
    ``video_id``, ``backbone``: a concrete name, and ``frame_ids``: only those, a chunk of a long
    video). The project's index is synced by the job, once."""
    from curator.embed.project import embed_project

    model = env.backbones(str(params["backbone"]))
    frame_ids = params.get("frame_ids")
    done = embed_project(
        env.workspace, int(params["project_id"]), model, video_id=int(params["video_id"]),
        frame_ids=None if frame_ids is None else [int(f) for f in frame_ids], sync_index=False,
        progress=progress, cancel=cancel,
    )
    return {"video_id": int(params["video_id"]), "embedded": done, "backbone": model.name}


def propagator_choice(workspace: Workspace, name: str | None, backbones: Any) -> Any:
    """The propagator called ``name`` (default the settings'; ``auto`` is ``flow+feature`` with DINOv2
    weights, else ``flow``): a :class:`curator.annotate.choose.PropagatorChoice`.

    Raises:
        JobFailed: ``no_backbone`` for a feature propagator without DINOv2 weights,
            ``unknown_propagator`` for an unknown name.
    """
    from curator.annotate.choose import FALLBACK_PROPAGATOR, FEATURE_PROPAGATORS, choose_propagator
    from curator.embed import BackboneWeightsError
    from curator.registry import UnknownNameError

    name = name or workspace.settings.propagator
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


def propagate_part(
    env: PartEnv, params: dict[str, Any], progress: ProgressCallback, cancel: CancelCheck
) -> dict[str, Any]:
    """Propagate one video's human masks (params: ``video_id``, ``propagator``, ``scope``; see
    :func:`curator.labels.propagation.propagate_video`), or only to its frames at positions
    ``span`` (``[first, stop)``: a part of a long video, see
    :func:`curator.labels.propagation.propagate_video_part`).

    Returns:
        ``video_id``, ``keyframes``, ``frames``, ``masks`` and ``propagator`` (the name it ran).
    """
    from curator.labels.propagation import propagate_video, propagate_video_part

    choice = propagator_choice(env.workspace, params.get("propagator"), env.backbones)
    video_id = int(params["video_id"])
    scope = params.get("scope") or "video"
    if params.get("span") is not None:
        first, stop = (int(x) for x in params["span"])
        result = propagate_video_part(
            env.workspace, video_id, first, stop, choice.propagator, scope=scope, progress=progress, cancel=cancel
        )
    else:
        result = propagate_video(
            env.workspace, video_id, choice.propagator, scope=scope, progress=progress, cancel=cancel
        )
    return {"video_id": video_id, **result, "propagator": choice.name}


#: Frames per propagation part: a longer video is propagated by several parts, cut at keyframes.
PROPAGATE_PART_FRAMES = 1024


def propagate_items(
    workspace: Workspace, videos: list[int], options: dict[str, Any], size: int
) -> tuple[list[dict[str, Any]], list[int | None]]:
    """The propagate parts of ``videos`` (params with ``options``) and their frame counts: one per
    video, or parts of about ``size`` frames cut at keyframes (:func:`curator.labels.propagation.part_cuts`)."""
    from sqlalchemy import func, select

    from curator.labels.propagation import part_cuts
    from curator.store.models import Annotation, Frame

    with workspace.db.session() as session:
        counted = select(Frame.video_id, func.count()).where(Frame.video_id.in_(videos)).group_by(Frame.video_id)
        sizes = {int(v): int(n) for v, n in session.execute(counted).all()}
        items: list[dict[str, Any]] = []
        estimates: list[int | None] = []
        for video in videos:
            n = sizes.get(video, 0)
            if n <= size:
                items.append({"video_id": video, **options})
                estimates.append(n or None)
                continue
            indices = session.scalars(
                select(Frame.frame_index).where(Frame.video_id == video).order_by(Frame.frame_index)
            ).all()
            labelled_indices = set(
                session.scalars(
                    select(Frame.frame_index).join(Annotation, Annotation.frame_id == Frame.id)
                    .where(Frame.video_id == video, Annotation.source == "human")
                ).all()
            )
            labelled = [i for i, index in enumerate(indices) if index in labelled_indices]
            for first, stop in part_cuts(len(indices), labelled, size):
                items.append({"video_id": video, **options, "span": [first, stop]})
                estimates.append(stop - first)
    return items, estimates
