"""The ``round`` job: one retrain-and-reselect round over a stored project.

Loads every video of the project with its human masks, runs the steps of
:func:`curator.train.loop.run_round` (propagation and scoring as per-video parts, see
:func:`run_project_round`), writes the dense labels (``propagated``/``predicted`` annotations with confidences; human masks are
never touched), the proxy checkpoint, the per-frame scores and a :class:`~curator.store.models.Round`
row, then selects the next batch across all videos with the scores in the pool and queues it.

The selector comes from the settings' selector package (:func:`curator.selection.create_selector`).
"""

from __future__ import annotations

import io
import json
import shutil
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
from curator.jobs.dispatch import Dispatcher, Part, PartEnv
from curator.progress import CancelCheck, Cancelled, ProgressCallback
from curator.store.blobs import read_rgb, write_file_atomic
from curator.store.models import Annotation, Frame, Round, Video
from curator.train.loop import FrameOutcome, Propagated, RoundConfig, VideoState
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


def load_videos(
    workspace: Workspace, project_id: int, video_ids: list[int] | None = None, span: tuple[int, int] | None = None
) -> list[VideoState]:
    """The project's videos (``video_ids``: only those) as :class:`VideoState`: JPEGs read on demand,
    and flow and patch features read from (and written to) the workspace's derived-data store, so
    memory stays flat in project size and a later round reuses what this one computed.

    With ``span`` (``[lo, hi)`` positions in frame order), each video holds only those frames and
    its positions count from ``lo``."""

    from curator.annotate.frames import FrameSource
    from curator.annotate.masks import decode_rle

    wanted = Video.project_id == project_id
    if video_ids is not None:
        wanted = wanted & Video.id.in_(video_ids)
    with workspace.db.session() as session:
        video_ids = list(session.scalars(select(Video.id).where(wanted).order_by(Video.id)).all())
        rows = session.execute(
            select(Frame.id, Frame.video_id, Frame.blob_path, Frame.shot_id, Frame.content_hash)
            .join(Video, Video.id == Frame.video_id)
            .where(wanted)
            .order_by(Frame.video_id, Frame.frame_index)
        ).all()
        human = session.execute(
            select(Annotation.frame_id, Annotation.object_id, Annotation.rle)
            .join(Frame, Frame.id == Annotation.frame_id)
            .join(Video, Video.id == Frame.video_id)
            .where(wanted, Annotation.source == "human")
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
        if span is not None:
            frames = frames[span[0] : span[1]]
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
    dispatch: Callable[[str, Part, list[dict[str, Any]], list[int | None]], list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Run one round of a project (module docstring) and return a JSON-ready summary.

    Propagation runs as one part per video with human masks, or per about ``part_frames`` frames of
    a long one cut at keyframes (:func:`round_propagate_part`, :func:`propagate_parts`), and
    scoring as one part per video, or per ``part_frames`` frames of a long one
    (:func:`round_score_part`); ``dispatch`` runs them (a job's
    :class:`~curator.jobs.dispatch.Dispatcher`: Ray tasks under ``curator worker --ray``), else they
    run here in turn. The proxy trains here, between the two. The parts hand their outputs over
    through files in a work folder of the round under the blobs (a path every node mounts), and the
    round's labels and scores are stored here at the end in one transaction, so a cancelled or
    failed round leaves the previous labels as they were.

    Params: ``strategy`` (default the settings' selector), ``budget`` (default 10), ``seed``,
    ``propagator`` (default the settings'), ``backbone`` (pool embeddings), ``selector_params``,
    ``part_frames`` (frames per propagate and scoring part, default :data:`PART_FRAMES`) and the
    :func:`round_config` knobs.

    Raises:
        JobFailed: Without human masks (``no_labels``), without DINOv2 weights (``no_backbone``), or
            for a bad parameter (``invalid_params``).
    """
    from curator.jobs.dispatch import PartEnv, run_parts_here
    from curator.train.loop import round_objects, train_round

    settings = workspace.settings
    seed = int(params["seed"]) if params.get("seed") is not None else int(settings.seed)
    budget = int(params.get("budget", 10))
    strategy = str(params.get("strategy") or settings.selector)
    part_frames = int(params.get("part_frames") or PART_FRAMES)
    if part_frames < 1:
        raise JobFailed("invalid_params", "part_frames must be at least 1")
    tools = round_tools(workspace, params, seed, strategy)
    videos = load_videos(workspace, project_id)
    try:
        objects = round_objects(videos)
    except ValueError:
        raise JobFailed("no_labels", "a round needs at least one frame with human masks; label some tasks first") from None
    if dispatch is None:
        env = PartEnv(workspace, lambda name: None)

        def dispatch(
            stage: str, part: Part, items: list[dict[str, Any]], estimates: list[int | None]
        ) -> list[dict[str, Any]]:
            return run_parts_here(env, stage, part, items, estimates, progress, cancel or (lambda: False))

    def report(stage: str, done: int, total: int | None) -> None:
        if progress is not None:
            progress(stage, done, total)

    stored_params = {**params, "strategy": strategy, "budget": budget, "seed": seed, "propagator": tools.propagator_name}
    round_id, number = start_round_row(workspace, project_id, job_id, stored_params)
    checkpoint = f"projects/{project_id}/rounds/{number:04d}.pt"
    work = f"projects/{project_id}/rounds/{number:04d}-work"
    shared = {"project_id": project_id, "round_params": stored_params, "work": work}
    started = time.perf_counter()
    stored = False
    try:
        start = time.perf_counter()
        parts = propagate_parts(videos, part_frames)
        written = dispatch(
            "propagate", round_propagate_part, [{**shared, **part} for part in parts],
            [part["span"][1] - part["span"][0] for part in parts],
        )
        propagated = read_propagated(workspace, [str(w["file"]) for w in written])
        timings = {"propagate": time.perf_counter() - start}
        trained = train_round(videos, propagated, tools.features, tools.cfg, objects, report, cancel)
        del propagated
        timings.update(trained.timings)
        trained.model.save(workspace.blobs.path(checkpoint))

        start = time.perf_counter()
        spans = [(v.key, lo, min(lo + part_frames, len(v))) for v in videos for lo in range(0, len(v), part_frames)]
        items = [
            {**shared, "video_id": key, "span": [lo, hi], "checkpoint": checkpoint, "objects": objects,
             "propagated": _overlapping(written, key, lo, hi)}
            for key, lo, hi in spans
        ]
        outcomes = dispatch("score", round_score_part, items, [hi - lo for _, lo, hi in spans])
        dense, scores, counts = read_scored(workspace, outcomes)
        timings["score"] = time.perf_counter() - start
    except BaseException as exc:
        workspace.blobs.path(checkpoint).unlink(missing_ok=True)
        if isinstance(exc, Cancelled | JobFailed):
            _delete_round(workspace, round_id)
        else:
            set_round_state(workspace, round_id, "failed")
        shutil.rmtree(workspace.blobs.path(work), ignore_errors=True)
        raise
    try:
        start = time.perf_counter()
        store_dense_labels(workspace, project_id, videos, dense, scores, round_id)
        stored = True
        timings["store"] = time.perf_counter() - start
        start = time.perf_counter()
        picks = _select_next(workspace, project_id, tools.selector, budget, seed, params)
        timings["select"] = time.perf_counter() - start
        start = time.perf_counter()
        sweep_derived(workspace)
        timings["sweep"] = time.perf_counter() - start
        timings["total"] = time.perf_counter() - started
        metrics = {**trained.metrics, "dense": counts, "parts": {"propagate": len(parts), "score": len(items)}}
        set_round_state(workspace, round_id, "succeeded", metrics=metrics, timings=timings,
                        selection_id=picks["selection_id"], checkpoint=checkpoint)
    except BaseException:
        # a failure after training leaves the round visibly failed, never "running" forever
        set_round_state(workspace, round_id, "failed", checkpoint=checkpoint if stored else None)
        raise
    finally:
        shutil.rmtree(workspace.blobs.path(work), ignore_errors=True)
    return {"round_id": round_id, "number": number, "metrics": metrics, "timings": timings, **picks}


#: Frames per propagate and scoring part of a round: a longer video is split into several parts (Ray tasks).
PART_FRAMES = 512


def keyframe_positions(video: VideoState) -> list[int]:
    """Positions of the video's frames whose human masks are not all empty (those a round propagates from)."""
    return sorted(i for i, masks in video.human.items() if any(m.any() for m in masks.values()))


def propagate_parts(videos: list[VideoState], size: int) -> list[dict[str, Any]]:
    """The round's propagate parts: one per video with keyframes, or parts of about ``size`` frames
    cut at keyframes (:func:`curator.labels.propagation.part_cuts`). Each names its ``video_id``,
    ``span`` (``[first, stop)``: the positions it writes) and ``reach`` (``[lo, hi)``: the
    positions it tracks over, from the keyframe before ``first`` to the one after the span's last
    frame), so every frame's labels equal those of the whole video's propagation."""
    from curator.labels.propagation import part_cuts

    parts: list[dict[str, Any]] = []
    for video in videos:
        keyed = keyframe_positions(video)
        if not keyed:
            continue
        for first, stop in part_cuts(len(video), keyed, size) if len(video) > size else [(0, len(video))]:
            lo = max((k for k in keyed if k <= first), default=first)
            hi = min((k for k in keyed if k >= stop - 1), default=stop - 1)
            parts.append({"video_id": video.key, "span": [first, stop], "reach": [lo, hi + 1]})
    return parts


def _overlapping(written: list[dict[str, Any]], video_id: int, lo: int, hi: int) -> list[str]:
    """The files of the propagate parts of ``video_id`` whose spans meet positions ``[lo, hi)``."""
    return [
        str(w["file"]) for w in written
        if int(w["video_id"]) == video_id and int(w["span"][0]) < hi and lo < int(w["span"][1])
    ]


def round_propagate_part(
    env: PartEnv, params: dict[str, Any], progress: ProgressCallback, cancel: CancelCheck
) -> dict[str, Any]:
    """Propagate one video's human masks for a round (or the frames ``span`` of a long one, tracked
    over ``reach``: see :func:`propagate_parts`) and compute the proxy's patch features of its
    frames (kept in the derived-data store, for training and scoring); the propagated label maps and
    confidences go to ``<work>/propagated-<video>-<first>.npz``.

    Params: ``project_id``, ``video_id``, ``span``, ``reach``, ``work`` (the round's work folder,
    blob-relative) and ``round_params`` (the round's params, for its propagator and settings).

    Returns:
        ``video_id``, ``span``, ``file`` (what it wrote), ``frames`` and ``propagated`` (counts).
    """
    from curator.train.loop import propagate_round

    workspace = env.workspace
    round_params = dict(params["round_params"])
    tools = round_tools(workspace, round_params, int(round_params["seed"]), str(round_params["strategy"]))
    video_id = int(params["video_id"])
    first, stop = (int(x) for x in params["span"])
    lo, hi = (int(x) for x in params["reach"])
    videos = load_videos(workspace, int(params["project_id"]), [video_id], span=(lo, hi))
    if not videos:
        raise JobFailed("video_missing", f"video {video_id} is gone")
    propagated = propagate_round(videos, tools.propagator, tools.features, tools.cfg, progress, cancel)
    keys = sorted(i for v, i in propagated if v == video_id and first <= i + lo < stop)
    packed = [propagated[(video_id, i)] for i in keys]
    shape = packed[0][0].shape if packed else (0, 0)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        video=np.array(video_id, dtype=np.int64),
        index=np.array(keys, dtype=np.int64) + lo,
        confidence=np.array([c for _, c in packed], dtype=np.float64),
        offsets=np.cumsum([0] + [len(p.data) for p, _ in packed]).astype(np.int64),
        data=np.frombuffer(b"".join(p.data for p, _ in packed), dtype=np.uint8),
        shape=np.array(shape, dtype=np.int64),
    )
    name = f"{params['work']}/propagated-{video_id}-{first}.npz"
    write_file_atomic(workspace.blobs.path(name), buffer.getvalue())
    return {"video_id": video_id, "span": [first, stop], "file": name, "frames": stop - first, "propagated": len(keys)}


def read_propagated(workspace: Workspace, files: list[str]) -> Propagated:
    """The propagated label maps and confidences that a round's propagate parts wrote to ``files``."""
    from curator.train.loop import Packed

    out: Propagated = {}
    for name in files:
        with np.load(workspace.blobs.path(name)) as stored:
            video_id = int(stored["video"])
            data, offsets, shape = stored["data"].tobytes(), stored["offsets"], tuple(int(x) for x in stored["shape"])
            for n, (index, confidence) in enumerate(zip(stored["index"], stored["confidence"], strict=True)):
                out[(video_id, int(index))] = (
                    Packed.from_data(data[int(offsets[n]) : int(offsets[n + 1])], shape), float(confidence)
                )
    return out


_MODELS: dict[str, Any] = {}


def _proxy(path: Path) -> Any:
    """The proxy saved at ``path``, loaded once per process (the last one only: a round at a time)."""
    from curator.train.proxy import ProxyModel

    key = f"{path}:{path.stat().st_mtime_ns}"
    with _LOCK:
        if key not in _MODELS:
            _MODELS.clear()
            _MODELS[key] = ProxyModel.load(path)
        return _MODELS[key]


def round_score_part(
    env: PartEnv, params: dict[str, Any], progress: ProgressCallback, cancel: CancelCheck
) -> dict[str, Any]:
    """Score the frames ``span`` of one video with a round's proxy and pick their dense labels; the
    labels (RLE) and scores go to ``<work>/scored-<video>-<first frame>.json`` for the round to store.

    Params: ``project_id``, ``video_id``, ``span`` (``[lo, hi)`` frame indices), ``checkpoint`` (the
    proxy's blob path), ``objects``, ``propagated`` (the files of the propagate parts that cover the
    span), ``work`` and ``round_params`` (as :func:`round_propagate_part`'s).
    """
    from curator.annotate.masks import encode_rle
    from curator.train.loop import score_round

    workspace = env.workspace
    round_params = dict(params["round_params"])
    cfg = round_config(round_params, int(round_params["seed"]))
    features = patch_features(workspace.settings.backbone_checkpoint or None, workspace.settings.device, cfg.short_side)
    video_id = int(params["video_id"])
    videos = load_videos(workspace, int(params["project_id"]), [video_id])
    if not videos:
        raise JobFailed("video_missing", f"video {video_id} is gone")
    work = str(params["work"])
    propagated = read_propagated(workspace, [str(f) for f in params.get("propagated") or []])
    model = _proxy(workspace.blobs.path(str(params["checkpoint"])))
    dense: list[list[Any]] = []

    def sink(outcome: FrameOutcome) -> None:
        if outcome.source == "human":
            return
        for obj, mask in outcome.masks.items():
            if mask.any():
                dense.append([outcome.frame_id, int(obj), encode_rle(mask), outcome.source, outcome.confidence])

    lo, hi = (int(x) for x in params["span"])
    counts, scores = score_round(
        videos, model, features, cfg, [int(o) for o in params["objects"]], propagated, sink, progress, cancel, (lo, hi)
    )
    name = f"{work}/scored-{video_id}-{lo}.json"
    body = {"dense": dense, "scores": {str(k): v for k, v in scores.items()}, "counts": counts}
    write_file_atomic(workspace.blobs.path(name), json.dumps(body).encode())
    return {"video_id": video_id, "span": [lo, hi], "file": name, "counts": counts}


def read_scored(
    workspace: Workspace, outcomes: list[dict[str, Any]]
) -> tuple[list[tuple[int, int, dict[str, Any], str, float]], dict[int, dict[str, float]], dict[str, int]]:
    """What the score parts of a round wrote, in part order: the dense labels, the scores by frame
    id and the frame counts by dense-label source."""
    dense: list[tuple[int, int, dict[str, Any], str, float]] = []
    scores: dict[int, dict[str, float]] = {}
    counts = {"human": 0, "propagated": 0, "predicted": 0}
    for outcome in outcomes:
        body = json.loads(workspace.blobs.path(str(outcome["file"])).read_bytes())
        dense.extend((int(f), int(o), rle, str(src), float(c)) for f, o, rle, src, c in body["dense"])
        scores.update({int(k): v for k, v in body["scores"].items()})
        for key, value in body["counts"].items():
            counts[key] = counts.get(key, 0) + int(value)
    return dense, scores, counts


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


def round_handler(ctx: JobContext, dispatcher: Dispatcher | None = None) -> dict[str, Any]:
    """Handler of ``round`` jobs (params: see :func:`run_project_round`); ``dispatcher`` runs the
    round's parts (default in the job's thread)."""
    if ctx.project_id is None:
        raise JobFailed("invalid_job", "a round job needs a project")

    def dispatch(
        stage: str, part: Part, items: list[dict[str, Any]], estimates: list[int | None]
    ) -> list[dict[str, Any]]:
        assert dispatcher is not None
        return dispatcher.map(ctx, stage, part, items, estimates)

    # a cancelled round raises Cancelled, which the runner records as ``cancelled``
    return run_project_round(
        ctx.workspace, ctx.project_id, ctx.params, job_id=ctx.job_id, progress=ctx.progress, cancel=ctx.cancelled,
        dispatch=dispatch if dispatcher is not None else None,
    )
