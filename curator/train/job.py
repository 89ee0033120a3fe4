"""The ``round`` job: one retrain-and-reselect round over a stored project.

Loads every video of the project with its human masks, runs :func:`curator.train.loop.run_round`,
writes the dense labels (``propagated``/``predicted`` annotations with confidences; human masks are
never touched), the proxy checkpoint, the per-frame scores and a :class:`~curator.store.models.Round`
row, then selects the next batch across all videos with the scores in the pool and queues it.

The selector comes from the settings' selector package (:func:`curator.selection.create_selector`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from curator.jobs.base import JobContext, JobFailed
from curator.store.blobs import read_rgb
from curator.store.models import Annotation, Frame, Round, Video
from curator.train.loop import FrameOutcome, RoundConfig, VideoState, run_round
from curator.train.proxy import ProxyConfig
from curator.train.store import put_scores
from curator.workspace import Workspace

_FEATURES: dict[tuple[str, str, int], Any] = {}
_LOCK = threading.Lock()


def patch_features(checkpoint: str | None, device: str, short_side: int) -> Any:
    """A shared :class:`~curator.annotate.feature.PatchFeatures` per checkpoint (weights load once)."""
    from curator.annotate.feature import PatchFeatures

    key = (checkpoint or "", device, short_side)
    with _LOCK:
        if key not in _FEATURES:
            _FEATURES[key] = PatchFeatures(checkpoint or None, device=device, short_side=short_side)
        return _FEATURES[key]


def derived_store(workspace: Workspace) -> Any:
    """The workspace's :class:`~curator.annotate.derived.DerivedStore` (``<blobs>/derived-cache``)."""
    from curator.annotate.derived import CACHE_DIR, DerivedStore

    return DerivedStore(workspace.blobs.path(CACHE_DIR))


def sweep_derived(workspace: Workspace) -> None:
    """Keep the derived-data store within the ``derived_cache_gb`` setting (least recently used out)."""
    from curator.annotate.derived import CACHE_DIR, sweep

    sweep(workspace.blobs.path(CACHE_DIR), int(workspace.settings.derived_cache_gb * 1e9))


def frame_store_key(content_hash: str | None, path: Path) -> str:
    """A stored frame's identity in the derived-data store: the hash of its pixels taken at ingest
    (the same in every process and project), else its file, size and modification time. Either is
    cheaper than hashing the decoded image, and changes when the frame does."""
    if content_hash:
        return f"frame:{content_hash}"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return f"missing:{path}"
    return f"file:{path}:{stat.st_size}:{stat.st_mtime_ns}"


def load_videos(workspace: Workspace, project_id: int) -> list[VideoState]:
    """The project's videos as :class:`VideoState`: JPEGs read on demand, and flow and patch features
    read from (and written to) the workspace's derived-data store, so memory stays flat in project
    size and a later round reuses what this one computed."""

    from curator.annotate.frames import FrameSource
    from curator.annotate.masks import decode_rle

    with workspace.db.session() as session:
        video_ids = session.scalars(select(Video.id).where(Video.project_id == project_id).order_by(Video.id)).all()
        rows = session.execute(
            select(Frame.id, Frame.video_id, Frame.blob_path, Frame.shot_id, Frame.content_hash)
            .join(Video, Video.id == Frame.video_id)
            .where(Video.project_id == project_id)
            .order_by(Frame.video_id, Frame.frame_index)
        ).all()
        human = session.execute(
            select(Annotation.frame_id, Annotation.object_id, Annotation.rle)
            .join(Frame, Frame.id == Annotation.frame_id)
            .join(Video, Video.id == Frame.video_id)
            .where(Video.project_id == project_id, Annotation.source == "human")
        ).all()
    by_video: dict[int, list[Any]] = {v: [] for v in video_ids}
    for row in rows:
        by_video[row.video_id].append(row)
    labels: dict[int, dict[int, np.ndarray]] = {}
    for frame_id, object_id, rle in human:
        labels.setdefault(int(frame_id), {})[int(object_id)] = decode_rle(rle)
    out = []
    store = derived_store(workspace)
    for video_id, frames in by_video.items():
        if not frames:
            continue
        paths = [workspace.blobs.path(f.blob_path) for f in frames]

        def load(i: int, paths: list[Path] = paths) -> np.ndarray:
            try:
                return read_rgb(paths[i])
            except FileNotFoundError:
                raise JobFailed("frame_missing", f"cannot read the frame image {paths[i].name}") from None

        ids = np.array([f.id for f in frames], dtype=np.int64)
        shots = np.array([f.shot_id if f.shot_id is not None else -1 for f in frames], dtype=np.int64)
        human_idx = {i: labels[int(f)] for i, f in enumerate(ids.tolist()) if int(f) in labels}
        source = FrameSource(load, num_frames=len(frames), store=store, keys=[frame_store_key(f.content_hash, p) for f, p in zip(frames, paths, strict=True)])
        out.append(VideoState(int(video_id), source, ids, shots, human_idx))
    return out


def round_config(params: dict[str, Any], seed: int) -> RoundConfig:
    """A :class:`RoundConfig` from job params (``steps``, ``short_side``, ``dense_min_confidence``, ...)."""
    proxy = ProxyConfig(seed=seed)
    if params.get("steps") is not None:
        proxy = replace(proxy, steps=int(params["steps"]))
    values: dict[str, Any] = {"proxy": proxy}
    for name in ("short_side", "train_max_propagated", "mc_samples"):
        if params.get(name) is not None:
            values[name] = int(params[name])
    for name in ("dense_min_confidence", "train_min_confidence", "holdout_fraction"):
        if params.get(name) is not None:
            values[name] = float(params[name])
    return RoundConfig(**values)


@dataclass
class RoundTools:
    """What a round runs with: its settings, the next-batch selector, the propagator, the DINOv2 features."""

    cfg: RoundConfig
    selector: Any
    propagator_name: str
    propagator: Any
    features: Any


def round_tools(workspace: Workspace, params: dict[str, Any], seed: int, strategy: str) -> RoundTools:
    """Build a round's selector, propagator and features from its params.

    Raises:
        JobFailed: ``invalid_params`` for a bad name or value, ``no_backbone`` without DINOv2 weights.
    """
    from curator.annotate import create_propagator
    from curator.annotate.choose import AUTO_PROPAGATOR, FEATURE_PROPAGATORS
    from curator.embed import BackboneWeightsError
    from curator.registry import UnknownNameError
    from curator.selection import create_selector

    settings = workspace.settings
    try:
        cfg = round_config(params, seed)
        selector = create_selector(strategy, dict(params.get("selector_params") or {}), settings.selector_package)
        name = params.get("propagator") or settings.propagator
        if name == "auto":  # a round needs DINOv2 for the proxy anyway, so auto has its weights
            name = AUTO_PROPAGATOR
        features = patch_features(settings.backbone_checkpoint or None, settings.device, cfg.short_side)
        kwargs: dict[str, Any] = {}
        if name in FEATURE_PROPAGATORS:
            kwargs = {"backbone": features._model(), "short_side": cfg.short_side}
        propagator = create_propagator(name, **kwargs)
        features._model()
    except UnknownNameError as exc:
        raise JobFailed("invalid_params", str(exc)) from None
    except BackboneWeightsError as exc:
        raise JobFailed("no_backbone", f"the proxy model needs DINOv2 weights: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise JobFailed("invalid_params", str(exc)) from None
    return RoundTools(cfg, selector, name, propagator, features)


def start_round_row(workspace: Workspace, project_id: int, job_id: int | None, params: dict[str, Any]) -> tuple[int, int]:
    """Insert the next ``running`` round of the project; returns its id and number."""
    with workspace.db.session() as session:
        latest = session.scalar(select(func.coalesce(func.max(Round.number), 0)).where(Round.project_id == project_id))
        number = int(latest or 0) + 1
        row = Round(project_id=project_id, number=number, job_id=job_id, state="running", params=params)
        session.add(row)
        session.flush()
        return row.id, number


def store_dense_labels(
    workspace: Workspace, project_id: int, videos: list[VideoState], dense: list[tuple[int, int, dict[str, Any], str, float]],
    scores: Any, round_id: int,
) -> None:
    """Replace the previous round's dense labels with ``dense`` and store the scores; human masks stay."""
    human_frames = {int(v.frame_ids[i]) for v in videos for i in v.human}
    others = [int(f) for v in videos for f in v.frame_ids.tolist() if int(f) not in human_frames]
    with workspace.db.session() as session:
        for lo in range(0, len(others), 500):
            session.execute(
                delete(Annotation).where(
                    Annotation.frame_id.in_(others[lo : lo + 500]), Annotation.source.in_(("propagated", "predicted"))
                )
            )
        session.add_all(Annotation(frame_id=f, object_id=o, source=s, rle=r, confidence=c) for f, o, r, s, c in dense)
        put_scores(session, project_id, scores, round_id=round_id, source="proxy")


def set_round_state(workspace: Workspace, round_id: int, state: str, **values: Any) -> None:
    """Finish a round row: its state, the finish time and any other columns given."""
    with workspace.db.session() as session:
        row = session.get(Round, round_id)
        if row is not None:
            row.state = state
            row.finished_at = datetime.now(UTC)
            for key, value in values.items():
                setattr(row, key, value)


def run_project_round(
    workspace: Workspace,
    project_id: int,
    params: dict[str, Any],
    *,
    job_id: int | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run one round of a project (module docstring) and return a JSON-ready summary.

    Params: ``strategy`` (default the settings' selector), ``budget`` (default 10), ``seed``,
    ``propagator`` (default the settings'), ``backbone`` (pool embeddings), ``selector_params`` and the
    :func:`round_config` knobs.

    Raises:
        JobFailed: Without human masks (``no_labels``), without DINOv2 weights (``no_backbone``), or
            for a bad parameter (``invalid_params``).
    """
    from curator.annotate.masks import encode_rle
    from curator.annotate.types import PropagationCancelled

    settings = workspace.settings
    seed = int(params["seed"]) if params.get("seed") is not None else int(settings.seed)
    budget = int(params.get("budget", 10))
    strategy = str(params.get("strategy") or settings.selector)
    tools = round_tools(workspace, params, seed, strategy)
    videos = load_videos(workspace, project_id)
    if not any(v.human for v in videos):
        raise JobFailed("no_labels", "a round needs at least one frame with human masks; label some tasks first")
    round_id, number = start_round_row(
        workspace, project_id, job_id,
        {**params, "strategy": strategy, "budget": budget, "seed": seed, "propagator": tools.propagator_name},
    )
    dense: list[tuple[int, int, dict[str, Any], str, float]] = []

    def sink(outcome: FrameOutcome) -> None:
        if outcome.source == "human":
            return
        for obj, mask in outcome.masks.items():
            if mask.any():
                dense.append((outcome.frame_id, int(obj), encode_rle(mask), outcome.source, outcome.confidence))

    started = time.perf_counter()
    try:
        result = run_round(videos, tools.propagator, tools.features, tools.cfg, sink=sink, progress=progress, cancel=cancel)
    except PropagationCancelled:
        _delete_round(workspace, round_id)
        raise
    except ValueError as exc:
        _delete_round(workspace, round_id)
        raise JobFailed("no_labels", str(exc)) from None
    try:
        checkpoint = f"projects/{project_id}/rounds/{number:04d}.pt"
        result.model.save(workspace.blobs.path(checkpoint))
        start = time.perf_counter()
        store_dense_labels(workspace, project_id, videos, dense, result.scores, round_id)
        timings = {**result.timings, "store": time.perf_counter() - start}
        start = time.perf_counter()
        picks = _select_next(workspace, project_id, tools.selector, budget, seed, params)
        timings["select"] = time.perf_counter() - start
        start = time.perf_counter()
        sweep_derived(workspace)
        timings["sweep"] = time.perf_counter() - start
        timings["total"] = time.perf_counter() - started
        metrics = dict(result.metrics)
        set_round_state(workspace, round_id, "succeeded", metrics=metrics, timings=timings,
                        selection_id=picks["selection_id"], checkpoint=checkpoint)
    except BaseException:
        # a failure after training leaves the round visibly failed, never "running" forever
        set_round_state(workspace, round_id, "failed")
        raise
    return {"round_id": round_id, "number": number, "metrics": metrics, "timings": timings, **picks}


def _delete_round(workspace: Workspace, round_id: int) -> None:
    with workspace.db.session() as session:
        session.execute(delete(Round).where(Round.id == round_id))


def _select_next(
    workspace: Workspace, project_id: int, selector: Any, budget: int, seed: int, params: dict[str, Any]
) -> dict[str, Any]:
    """Select the next batch with the new scores in the pool and queue it; ``selection_id`` and ``picks``."""
    from curator.selection import run_selection
    from curator.store.repo import create_tasks

    try:
        selection_id, picks = run_selection(
            workspace, project_id, selector, budget, seed=seed, backbone=params.get("backbone"),
            params=dict(params.get("selector_params") or {}),
        )
    except LookupError as exc:
        raise JobFailed("no_embeddings", str(exc)) from None
    with workspace.db.session() as session:
        tasks = create_tasks(session, project_id, selection_id, [(p.frame_id, p.reason) for p in picks])
    return {
        "selection_id": selection_id,
        "picks": [
            {"frame_id": p.frame_id, "video_id": p.video_id, "frame_index": p.frame_index, "reason": p.reason,
             "utility": p.utility, "task_id": tasks.get(p.frame_id)}
            for p in picks
        ],
    }


def round_handler(ctx: JobContext) -> dict[str, Any]:
    """Handler of ``round`` jobs (params: see :func:`run_project_round`)."""
    if ctx.project_id is None:
        raise JobFailed("invalid_job", "a round job needs a project")
    # a cancelled round raises PropagationCancelled, which the runner records as ``cancelled``
    return run_project_round(
        ctx.workspace, ctx.project_id, ctx.params, job_id=ctx.job_id, progress=ctx.progress, cancel=ctx.cancelled
    )
