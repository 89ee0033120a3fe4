"""The per-video parts of the ingest, embed and propagate jobs (see :mod:`curator.jobs.dispatch`).

Each part is a module-level function ``part(env, params, progress, cancel) -> dict`` that does one
video's work against the workspace of the process it runs in and stores its results itself. The job
handlers (:mod:`curator.jobs.handlers`) build the parts' params, hand them to a dispatcher, and sum
the results; the same functions run in the job's thread (:class:`~curator.jobs.dispatch.LocalDispatcher`)
or as Ray tasks (:class:`~curator.jobs.ray_dispatch.RayDispatcher`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from curator.jobs.base import JobFailed
from curator.jobs.dispatch import PartEnv
from curator.progress import CancelCheck, ProgressCallback
from curator.workspace import Workspace


def ingest_source(workspace: Workspace, params: dict[str, Any]) -> Path:
    """The file an ingest part reads: a blob-relative upload or an absolute registered path."""
    return workspace.blobs.path(params["path"]) if params.get("upload") else Path(params["path"])


def _rejected(path: Path, params: dict[str, Any], exc: Exception) -> dict[str, Any]:
    """An ingest part's result for a file that is not a decodable video."""
    # the message names the server-side path; the uploader knows the file by its own name
    name = params.get("filename") or path.name
    return {"rejected": str(exc).replace(str(path), params.get("filename") or "upload"), "filename": name}


def ingest_part(env: PartEnv, params: dict[str, Any], progress: ProgressCallback, cancel: CancelCheck) -> dict[str, Any]:
    """Ingest (and embed, with a ``backbone``) one file, or one part of a long one.

    Params: ``path``, ``upload``, ``filename``, ``backbone``, ``fps``, ``stride`` (as the ``ingest``
    job's). An upload is removed once it has an outcome (stored or rejected). A part of a file
    (see :func:`ingest_plan`) also has ``chunk``, ``first_pts`` and ``staging``: it writes its
    frames there (:func:`curator.ingest.chunks.ingest_chunk`) and :func:`finish_chunked` stores them.

    Returns:
        The :class:`curator.ingest.IngestResult` fields with the sampling used, or, for a file that
        is not a decodable video, ``rejected`` (the reason) and ``filename``; nothing of it is stored.
        A part returns ``first``, ``stop`` and ``frames``, or ``mismatch`` when its frames are not
        the plan's (the file is then ingested whole).

    Raises:
        JobFailed: ``file_missing`` when the file is gone, ``invalid_params`` for bad sampling options.
    """
    from curator.ingest import ingest_video
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
    if params.get("chunk") is not None:
        return _ingest_chunk_part(env, params, path, settings, backbone, progress, cancel)
    return _outcome(path, params, settings, lambda: ingest_video(
        workspace, int(params["project_id"]), path, backbone=backbone, settings=settings,
        filename=params.get("filename"), progress=progress, cancel=cancel,
    ))


def _outcome(
    path: Path, params: dict[str, Any], settings: Any, store: Callable[[], Any], parts: int = 1
) -> dict[str, Any]:
    """What an ingest returns for its file: ``store()``'s result, or the rejection of a file that is
    not a decodable video; an upload is removed once it has one of the two."""
    from curator.ingest import VideoDecodeError

    try:
        answer = _ingest_result(store(), settings, parts)
    except VideoDecodeError as exc:
        answer = _rejected(path, params, exc)
    if params.get("upload"):
        path.unlink(missing_ok=True)
    return answer


def _ingest_result(result: Any, settings: Any, parts: int = 1) -> dict[str, Any]:
    """An ingest part's result for a stored (or already stored) file decoded in ``parts`` parts."""
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
        "parts": parts,
    }


def _ingest_chunk_part(
    env: PartEnv, params: dict[str, Any], path: Path, settings: Any, backbone: Any,
    progress: ProgressCallback, cancel: CancelCheck,
) -> dict[str, Any]:
    """One part of a long file (:func:`ingest_part` with ``chunk``)."""
    from curator.ingest import VideoDecodeError
    from curator.ingest.chunks import Chunk, ChunkMismatch, ChunkPlan, ingest_chunk

    chunk = Chunk(**params["chunk"])
    plan = ChunkPlan(frames=chunk.stop, first_pts=int(params["first_pts"]), chunks=[chunk])
    staging = env.workspace.blobs.path(str(params["staging"]))
    try:
        done = ingest_chunk(path, plan, chunk, staging, settings, backbone=backbone, progress=progress, cancel=cancel)
    except VideoDecodeError as exc:
        return _rejected(path, params, exc)
    except ChunkMismatch as exc:
        return {"mismatch": str(exc)}
    return {**done, "backbone": None if backbone is None else backbone.name}


#: Decoded frames per ingest part: a longer file is decoded by several parts (Ray tasks), cut at
#: keyframes of its video stream.
INGEST_PART_FRAMES = 4096


def ingest_plan(workspace: Workspace, params: dict[str, Any], size: int) -> dict[str, Any] | None:
    """How an ingest part's file (``params`` as :func:`ingest_part`'s) is cut into parts of at least
    ``size`` decoded frames (:func:`curator.ingest.chunks.plan_chunks`): ``plan``, ``content_hash``
    and ``staging`` (a blob-relative folder the parts write to), or ``None`` to ingest it in one
    part (a short, missing, already ingested or undecodable file: its one part says which)."""
    from curator.ingest.chunks import plan_chunks
    from curator.ingest.decode import VideoDecodeError, file_sha256, probe
    from curator.ingest.pipeline import _already_ingested
    from curator.ingest.sample import sampling_settings

    path = ingest_source(workspace, params)
    try:
        settings = sampling_settings(workspace.settings, params.get("fps"), params.get("stride"))
        info = probe(path)
        if info.frame_count and info.frame_count <= size:
            return None
        plan = plan_chunks(path, size, settings)
    except (VideoDecodeError, ValueError):
        return None
    if plan is None:
        return None
    content_hash = file_sha256(path)
    if _already_ingested(workspace, int(params["project_id"]), content_hash) is not None:
        return None
    staging = workspace.blobs.staging_dir("ingest-")
    return {"plan": plan, "content_hash": content_hash, "staging": str(staging.relative_to(workspace.blobs.root))}


def chunk_items(item: dict[str, Any], planned: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a file :func:`ingest_plan` cut: ``item``'s params with one chunk each."""
    from dataclasses import asdict

    plan = planned["plan"]
    return [
        {**item, "chunk": asdict(chunk), "first_pts": plan.first_pts, "staging": planned["staging"]}
        for chunk in plan.chunks
    ]


def finish_chunked(
    workspace: Workspace, item: dict[str, Any], planned: dict[str, Any], results: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """Store a file whose parts all ran (:func:`curator.ingest.chunks.commit_chunks`) and return what
    :func:`ingest_part` returns for the whole file; ``None`` when a part's frames were not the
    plan's (ingest the file whole). The job removes the parts' staging folder in every case."""
    from curator.ingest.chunks import commit_chunks
    from curator.ingest.sample import sampling_settings

    path = ingest_source(workspace, item)
    staging = workspace.blobs.path(planned["staging"])
    rejected = next((r for r in results if "rejected" in r), None)
    if rejected is None and any("mismatch" in r for r in results):
        return None
    if rejected is not None:
        if item.get("upload"):
            path.unlink(missing_ok=True)
        return rejected
    settings = sampling_settings(workspace.settings, item.get("fps"), item.get("stride"))
    return _outcome(path, item, settings, lambda: commit_chunks(
        workspace, int(item["project_id"]), path, planned["plan"], staging,
        content_hash=planned["content_hash"], settings=settings, filename=item.get("filename"),
        backbone=next((r.get("backbone") for r in results if r.get("backbone")), None),
    ), len(planned["plan"].chunks))


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
