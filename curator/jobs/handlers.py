"""Engine job handlers: ingest, embed, select, propagate and round.

Each handler takes a :class:`~curator.jobs.base.JobContext`, turns expected failures into
:class:`~curator.jobs.base.JobFailed` with a stable code, and returns a small JSON result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from curator.jobs.base import JobContext, JobFailed, JobHandler
from curator.store.blobs import read_rgb
from curator.store.models import Annotation, Frame, Video
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
    as a path) and ``backbone`` (name, or ``None`` for no embedding).
    """

    def run(ctx: JobContext) -> dict[str, Any]:
        from curator.ingest import VideoDecodeError, ingest_video

        params = ctx.params
        workspace = ctx.workspace
        if ctx.project_id is None:
            raise JobFailed("invalid_job", "an ingest job needs a project")
        path = workspace.blobs.path(params["path"]) if params.get("upload") else Path(params["path"])
        if not path.is_file():
            raise JobFailed(
                "file_missing", f"the file to ingest is gone: {params.get('filename') or path.name}"
            )
        backbone = backbones(params["backbone"]) if params.get("backbone") else None
        try:
            result = ingest_video(
                workspace,
                ctx.project_id,
                path,
                backbone=backbone,
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
        }

    return run


def embed_handler(backbones: BackboneFactory) -> JobHandler:
    """Handler of ``embed`` jobs: embeds the project's frames lacking an embedding. Params: ``backbone``."""

    def run(ctx: JobContext) -> dict[str, Any]:
        from curator.embed.project import embed_project
        from curator.index.project import sync_project_index

        if ctx.project_id is None:
            raise JobFailed("invalid_job", "an embed job needs a project")
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


def propagate_video(
    workspace: Workspace,
    video_id: int,
    propagator: Any,
    *,
    scope: str = "video",
    progress: Callable[[str, int, int | None], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Propagate a video's human masks to its other stored frames; store them as ``propagated``.

    The keyframes are the video's frames with human annotations. ``scope="video"`` (the default)
    covers every stored frame; ``"between"`` only the frames from the first to the last keyframe.
    Earlier propagated masks on those frames are replaced; frames with human masks are never touched.
    Results are written in one transaction at the end, so a cancelled or failed run stores nothing.

    Returns:
        Counts: ``keyframes``, ``frames`` (propagated frames) and ``masks`` stored.

    Raises:
        JobFailed: If the video does not exist or has no human masks.
    """

    from curator.annotate import FrameSource, Keyframe
    from curator.annotate.masks import decode_rle, encode_rle

    if scope not in ("between", "video"):
        raise JobFailed("invalid_params", f"scope must be 'between' or 'video', got {scope!r}")
    with workspace.db.session() as session:
        if session.get(Video, video_id) is None:
            raise JobFailed("not_found", f"no video {video_id}")
        frames = session.execute(
            select(Frame.id, Frame.blob_path, Frame.shot_id)
            .where(Frame.video_id == video_id)
            .order_by(Frame.frame_index)
        ).all()
        human = session.execute(
            select(Annotation.frame_id, Annotation.object_id, Annotation.rle)
            .join(Frame, Frame.id == Annotation.frame_id)
            .where(Frame.video_id == video_id, Annotation.source == "human")
        ).all()
    position = {row.id: i for i, row in enumerate(frames)}
    by_frame: dict[int, dict[int, Any]] = {}
    for frame_id, object_id, rle in human:
        by_frame.setdefault(position[frame_id], {})[int(object_id)] = rle
    keyed = sorted(by_frame)
    if not keyed:
        raise JobFailed("no_keyframes", f"video {video_id} has no human masks to propagate from")
    lo, hi = (keyed[0], keyed[-1]) if scope == "between" else (0, len(frames) - 1)
    span = frames[lo : hi + 1]
    blobs = workspace.blobs

    def load(i: int) -> np.ndarray:
        try:
            return read_rgb(blobs.path(span[i].blob_path))
        except FileNotFoundError:
            raise JobFailed("frame_missing", f"cannot read the image of frame {span[i].id}") from None

    keyframes = [
        Keyframe(i - lo, {k: decode_rle(v) for k, v in by_frame[i].items() if decode_rle(v).any()})
        for i in keyed
        if lo <= i <= hi
    ]
    keyframes = [k for k in keyframes if k.masks]
    if not keyframes:
        raise JobFailed("no_keyframes", f"video {video_id} has only empty human masks")
    source = FrameSource(load, num_frames=len(span))
    shot_ids = np.array([row.shot_id if row.shot_id is not None else -1 for row in span])
    total = len(span)

    def report(done: int, _total: int) -> None:
        if progress is not None:
            progress("propagate", done, total)

    out: list[tuple[int, int, dict[str, Any], float]] = []
    propagated_frames: list[int] = []
    stream: Iterator[Any] = propagator.propagate(
        source, keyframes, shot_ids=shot_ids, progress=report, cancel=cancel
    )
    for result in stream:
        if result.is_keyframe or (result.index + lo) in by_frame:
            continue
        frame_id = span[result.index].id
        propagated_frames.append(frame_id)
        for object_id, mask in result.masks.items():
            if mask.any():
                out.append((frame_id, int(object_id), encode_rle(mask), float(result.confidence[object_id])))
    with workspace.db.session() as session:
        for chunk in range(0, len(propagated_frames), 500):
            ids = propagated_frames[chunk : chunk + 500]
            session.execute(
                delete(Annotation).where(Annotation.frame_id.in_(ids), Annotation.source == "propagated")
            )
        session.add_all(
            Annotation(frame_id=f, object_id=o, source="propagated", rle=r, confidence=c)
            for f, o, r, c in out
        )
    return {"keyframes": len(keyframes), "frames": len(propagated_frames), "masks": len(out)}


def propagate_handler(backbones: BackboneFactory) -> JobHandler:
    """Handler of ``propagate`` jobs. Params: ``video_id``, ``propagator`` (name, default the
    settings'; ``auto`` is ``flow+feature`` with DINOv2 weights, else ``flow``), ``scope``."""

    def run(ctx: JobContext) -> dict[str, Any]:
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
            choice = choose_propagator(name, backbone=backbone)
        except UnknownNameError as exc:
            raise JobFailed("unknown_propagator", str(exc)) from None
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


def select_handler(ctx: JobContext) -> dict[str, Any]:
    """Handler of ``select`` jobs: run a selector, store the selection, queue its picks as tasks.

    Params: ``strategy`` (default the settings'), ``budget``, ``params`` (selector constructor
    arguments), ``seed``, ``backbone``.
    """
    from curator.project import Project

    if ctx.project_id is None:
        raise JobFailed("invalid_job", "a select job needs a project")
    params = ctx.params
    ctx.progress("select", 0, 1)
    result = Project.by_id(ctx.workspace, ctx.project_id).select(
        int(params["budget"]), params.get("strategy"), params=params.get("params") or {},
        seed=params.get("seed"), backbone=params.get("backbone"),
    )
    ctx.progress("select", 1, 1)
    return result.as_dict()


def engine_handlers(workspace: Workspace, backbones: BackboneFactory | None = None) -> dict[str, JobHandler]:
    """Every job kind the engine runs: ``ingest``, ``embed``, ``select``, ``propagate``, ``round``."""
    from curator.train.job import round_handler

    factory = backbones or BackboneCache(workspace)
    return {
        "ingest": ingest_handler(factory),
        "embed": embed_handler(factory),
        "select": select_handler,
        "propagate": propagate_handler(factory),
        "round": round_handler,
    }
