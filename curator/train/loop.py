"""One retrain round over in-memory videos: propagate, train the proxy, evaluate, score, densify.

This is the engine shared by the round job (:mod:`curator.train.job`, which loads a project from the
database and writes the results back) and the campaign benchmark (:mod:`curator.bench.loop`, which
keeps the videos in memory across rounds so flow and patch features are computed once).

Steps of :func:`run_round`:

1. **Propagate** every video's human masks to all of its frames (videos without human masks skip).
2. **Train** the proxy (:class:`~curator.train.proxy.ProxyModel`) on the human frames (weight 1)
   and the propagated frames whose confidence reaches ``train_min_confidence`` (weight = confidence),
   except a seeded ``holdout_fraction`` of the human frames.
3. **Evaluate** the proxy on those held-out human frames (J, F, J&F of its argmax masks).
4. **Score** every frame (:mod:`curator.train.scores`).
5. **Densify**: every frame gets masks from the best source available, in order: ``human``, then
   ``propagated`` when its confidence reaches ``dense_min_confidence``, then ``predicted`` (proxy).

Frames are handed to ``sink`` one at a time, so full-resolution masks of a long project never sit in
memory together.
"""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curator.annotate.derived import DerivedPool
from curator.annotate.frames import FrameSource
from curator.annotate.masks import labels_to_masks, masks_to_labels
from curator.annotate.types import Keyframe
from curator.eval import score_frame
from curator.progress import CancelCheck, ProgressCallback
from curator.train.holdout import DEFAULT_HOLDOUT_FRACTION, holdout_size
from curator.train.proxy import ProxyConfig, ProxyModel, Sample, make_sample, upsample_probs
from curator.train.scores import frame_scores, mask_disagreement


@dataclass
class VideoState:
    """One video of a campaign.

    Attributes:
        key: Video id.
        source: The frames (a cached :class:`FrameSource` keeps flow and features across rounds).
        frame_ids: ``(n,)`` ids of the frames (database ids, or any unique ints).
        shot_ids: ``(n,)`` shot ids, or ``None`` for one shot.
        human: Frame index to ``{object id: (H, W) bool mask}`` of human (ground-truth) labels.
    """

    key: int
    source: FrameSource
    frame_ids: np.ndarray
    shot_ids: np.ndarray | None = None
    human: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.source)


@dataclass(frozen=True)
class RoundConfig:
    """Settings of a round besides the propagator.

    Attributes:
        proxy: Proxy model and training settings.
        short_side: Frames are resized to this short side for the backbone. 224 keeps training fast
            on a CPU; 336 matches the feature propagators, whose cached patch features are then
            reused instead of computed twice.
        train_min_confidence: Least propagation confidence for a propagated frame to be trained on.
        train_max_propagated: Most propagated frames trained on (evenly spread over the candidates).
        dense_min_confidence: Least propagation confidence for a propagated mask to be the dense label.
            0.3 because after a first round the proxy is worse than propagation wherever propagation
            reaches, so it should fill only frames that propagation cannot reach (a shot without
            keyframes) or has lost (measurements in ``docs/experiments.md``).
        holdout_fraction: Share of human frames kept out of training to evaluate the proxy.
        top_fraction: Share of hardest pixels in the ``_top`` scores.
        mc_samples: MC-dropout passes for ``mc_disagreement`` (0 skips it).
        chunk: Frames per inference batch.
        workers: Threads computing derived data (flow, patch features) ahead of the stages that read
            it, for videos whose frame source keeps it (0: one per core, at most 4).
    """

    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    short_side: int = 224
    train_min_confidence: float = 0.3
    train_max_propagated: int = 400
    dense_min_confidence: float = 0.3
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION
    top_fraction: float = 0.05
    mc_samples: int = 0
    chunk: int = 16
    workers: int = 0


@dataclass
class FrameOutcome:
    """The dense label and scores of one frame after a round.

    Attributes:
        video: Video key.
        index: Frame index in the video.
        frame_id: Frame id.
        source: ``human``, ``propagated`` or ``predicted``.
        masks: Object id to ``(H, W)`` bool mask (objects absent from the frame may be missing).
        confidence: 1 for human, the propagation confidence, or the proxy's mean top-1 probability.
        scores: Named per-frame scores.
    """

    video: int
    index: int
    frame_id: int
    source: str
    masks: dict[int, np.ndarray]
    confidence: float
    scores: dict[str, float]


@dataclass
class RoundResult:
    """What a round produced besides the per-frame outcomes.

    Attributes:
        model: The trained proxy.
        metrics: ``proxy_J``/``proxy_F``/``proxy_JF`` on held-out frames (``None`` without any),
            ``train_loss_first``/``train_loss_last``, counts of frames by dense-label source.
        timings: Seconds per step.
        scores: Frame id to named scores.
        train_frames: Frame ids trained on; ``holdout_frames`` those evaluated on.
    """

    model: ProxyModel
    metrics: dict[str, Any]
    timings: dict[str, float]
    scores: dict[int, dict[str, float]]
    train_frames: list[int]
    holdout_frames: list[int]


class Packed:
    """A label map kept zlib-compressed (DAVIS-like label maps shrink ~100x)."""

    __slots__ = ("data", "shape")

    def __init__(self, labels: np.ndarray) -> None:
        self.shape = labels.shape
        self.data = zlib.compress(np.ascontiguousarray(labels, dtype=np.uint8).tobytes(), 1)

    def unpack(self) -> np.ndarray:
        return np.frombuffer(zlib.decompress(self.data), dtype=np.uint8).reshape(self.shape)

    @classmethod
    def from_data(cls, data: bytes, shape: tuple[int, ...]) -> Packed:
        """A packed map from what :attr:`data` and :attr:`shape` held (read back from a file)."""
        packed = cls.__new__(cls)
        packed.data, packed.shape = data, tuple(shape)
        return packed


def _check(cancel: CancelCheck | None) -> None:
    if cancel is not None and cancel():
        from curator.annotate.types import PropagationCancelled

        raise PropagationCancelled("round cancelled")


def _labels(masks: Mapping[int, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    return masks_to_labels({k: v for k, v in masks.items() if v.any()}, shape) if masks else np.zeros(shape, np.uint8)


#: ``(video key, frame index)`` to the propagated label map and its frame confidence.
Propagated = dict[tuple[int, int], tuple[Packed, float]]


def run_round(
    videos: Sequence[VideoState],
    propagator: Any,
    features: Any,
    config: RoundConfig | None = None,
    *,
    sink: Callable[[FrameOutcome], None] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> RoundResult:
    """Run one round (see the module docstring) and stream every frame's outcome to ``sink``.

    Args:
        videos: The campaign's videos with their human labels.
        propagator: A :class:`curator.annotate.Propagator`.
        features: A :class:`curator.annotate.feature.PatchFeatures` (frozen backbone patch tokens).
        config: Round settings.
        sink: Receives a :class:`FrameOutcome` per frame, video by video in frame order.
        progress: ``(stage, done, total)`` callback.
        cancel: Checked between frames; raises ``PropagationCancelled`` when it returns True.

    Raises:
        ValueError: If no video has a human mask with a visible object.
    """
    cfg = config or RoundConfig()
    objects = round_objects(videos)

    def report(stage: str, done: int, total: int | None) -> None:
        if progress is not None:
            progress(stage, done, total)

    start = time.perf_counter()
    propagated = propagate_round(videos, propagator, features, cfg, report, cancel)
    timings = {"propagate": time.perf_counter() - start}
    trained = train_round(videos, propagated, features, cfg, objects, report, cancel)
    timings.update(trained.timings)

    # 4 + 5. score every frame and pick each frame's dense label
    start = time.perf_counter()
    counts, all_scores = score_round(videos, trained.model, features, cfg, objects, propagated, sink, report, cancel)
    timings["score"] = time.perf_counter() - start
    metrics = {**trained.metrics, "dense": counts}
    return RoundResult(trained.model, metrics, timings, all_scores, trained.train_frames, trained.holdout_frames)


def round_objects(videos: Sequence[VideoState]) -> list[int]:
    """The object ids visible in some human mask of ``videos``, sorted.

    Raises:
        ValueError: If no video has a human mask with a visible object.
    """
    objects = sorted({int(k) for v in videos for masks in v.human.values() for k, m in masks.items() if m.any()})
    if not objects:
        raise ValueError("a round needs at least one human mask with a visible object")
    return objects


def propagate_round(
    videos: Sequence[VideoState],
    propagator: Any,
    features: Any,
    cfg: RoundConfig,
    report: ProgressCallback,
    cancel: CancelCheck | None,
) -> Propagated:
    """Step 1: propagate every video's human masks, while threads compute the derived data of the
    next videos and then the proxy's patch features of every frame (read by training and scoring);
    returns when those features are computed too."""
    with DerivedPool(cfg.workers, cancel) as pool:
        propagated, feature_futures = _propagate(videos, propagator, features, pool, report, cancel)
        pool.wait(feature_futures)
    return propagated


@dataclass
class TrainedProxy:
    """Steps 2 and 3 of a round: the proxy, its metrics (held-out J/F/J&F, losses, counts), seconds
    per step, and the frame ids trained and evaluated on."""

    model: ProxyModel
    metrics: dict[str, Any]
    timings: dict[str, float]
    train_frames: list[int]
    holdout_frames: list[int]


def train_round(
    videos: Sequence[VideoState],
    propagated: Propagated,
    features: Any,
    cfg: RoundConfig,
    objects: list[int],
    report: ProgressCallback,
    cancel: CancelCheck | None,
) -> TrainedProxy:
    """Steps 2 and 3: train the proxy on the human frames (minus a seeded holdout) and the confident
    propagated frames, then evaluate it on the held-out human frames."""
    start = time.perf_counter()
    timings: dict[str, float] = {}
    classes = max(objects) + 1
    train_human, holdout = _split_holdout(videos, cfg)
    cands = _training_candidates(propagated, cfg)
    samples, train_ids = _training_samples(videos, train_human, cands, propagated, features, cfg, report, cancel)
    timings["features_train"] = time.perf_counter() - start

    dim = int(samples[0].feats.shape[-1])
    model = ProxyModel(dim, classes, cfg.proxy)
    train = model.fit(samples, progress=lambda d, t: report("train", d, t), cancel=cancel)
    _check(cancel)
    timings["train"] = train.seconds
    del samples

    start = time.perf_counter()
    metrics: dict[str, Any] = {
        "train_loss_first": train.first_loss,
        "train_loss_last": train.last_loss,
        "train_frames": len(train_ids),
        "train_human": len(train_human),
        "train_propagated": len(cands),
        "holdout_frames": len(holdout),
        "proxy_J": None,
        "proxy_F": None,
        "proxy_JF": None,
    }
    if holdout:
        proxy_j, proxy_f = _evaluate(model, holdout, features, cfg, objects)
        metrics.update(proxy_J=proxy_j, proxy_F=proxy_f)
        metrics["proxy_JF"] = (metrics["proxy_J"] + metrics["proxy_F"]) / 2
    timings["evaluate"] = time.perf_counter() - start
    return TrainedProxy(model, metrics, timings, train_ids, [int(v.frame_ids[i]) for v, i in holdout])


def _derived_jobs(propagator: Any, video: VideoState, keys: Sequence[Keyframe]) -> list[Callable[[], object]]:
    """The propagator's derived-data jobs for ``video`` (none when its frames keep nothing)."""
    from curator.annotate.engine import plan_chains, shot_segments

    jobs_of = getattr(propagator, "derived_jobs", None)
    if jobs_of is None or not video.source.keeps_derived:
        return []
    segments = shot_segments(len(video), video.shot_ids, False)
    jobs: list[Callable[[], object]] = jobs_of(video.source, plan_chains(segments, [k.index for k in keys]))
    return jobs


def _feature_jobs(features: Any, video: VideoState) -> list[Callable[[], object]]:
    """Jobs computing the proxy's patch features of every frame of ``video`` (when its frames keep them)."""
    if not video.source.keeps_derived:
        return []
    has = getattr(features, "has", None)

    def job(i: int) -> None:
        if has is None or not has(video.source, i):
            features(video.source, i)

    return [functools.partial(job, i) for i in range(len(video))]


def _propagate(
    videos: Sequence[VideoState],
    propagator: Any,
    features: Any,
    pool: DerivedPool,
    report: ProgressCallback,
    cancel: CancelCheck | None,
) -> tuple[Propagated, list[Any]]:
    """Step 1: propagate every video's human masks; keep the other frames' labels packed.

    Every video's derived data is queued on ``pool`` first, so its threads compute the next videos'
    while this thread tracks the current one; the proxy's patch features of every frame are queued
    after them. Returns the packed labels and the futures of those feature jobs.
    """
    propagated: Propagated = {}
    total = sum(len(v) for v in videos if v.human)
    done = 0
    plans = []
    for video in videos:
        keys = [Keyframe(i, {k: m for k, m in masks.items() if m.any()}) for i, masks in sorted(video.human.items())]
        keys = [k for k in keys if k.masks]
        if keys:
            plans.append((video, keys, pool.submit(_derived_jobs(propagator, video, keys))))
    feature_futures = pool.submit([job for video in videos for job in _feature_jobs(features, video)])
    for video, keys, futures in plans:
        pool.wait(futures)
        shape = video.source.size
        for frame in propagator.propagate(video.source, keys, shot_ids=video.shot_ids, cancel=cancel):
            done += 1
            if frame.index in video.human:
                continue
            propagated[(video.key, frame.index)] = (Packed(_labels(frame.masks, shape)), float(frame.frame_confidence))
            report("propagate", done, total)
    return propagated, feature_futures


def _split_holdout(
    videos: Sequence[VideoState], cfg: RoundConfig
) -> tuple[list[tuple[VideoState, int]], list[tuple[VideoState, int]]]:
    """The human frames to train on and the seeded holdout (none with fewer than 5 human frames)."""
    rng = np.random.default_rng(cfg.proxy.seed)
    human = [(v, i) for v in videos for i in sorted(v.human)]
    n_hold = holdout_size(len(human), cfg.holdout_fraction)
    hold_idx = set(rng.choice(len(human), size=n_hold, replace=False).tolist()) if n_hold else set()
    holdout = [human[i] for i in sorted(hold_idx)]
    train_human = [h for i, h in enumerate(human) if i not in hold_idx]
    return train_human, holdout


def _training_candidates(propagated: Propagated, cfg: RoundConfig) -> list[tuple[int, int]]:
    """Confident propagated frames, at most ``train_max_propagated`` evenly spread over them."""
    cands = sorted(
        (k for k, (_, c) in propagated.items() if c >= cfg.train_min_confidence), key=lambda k: (k[0], k[1])
    )
    if len(cands) > cfg.train_max_propagated:
        cands = [cands[int(i)] for i in np.linspace(0, len(cands) - 1, cfg.train_max_propagated).round()]
    return cands


def _training_samples(
    videos: Sequence[VideoState],
    train_human: list[tuple[VideoState, int]],
    cands: list[tuple[int, int]],
    propagated: Propagated,
    features: Any,
    cfg: RoundConfig,
    report: ProgressCallback,
    cancel: CancelCheck | None,
) -> tuple[list[Sample], list[int]]:
    """Proxy samples of the human frames (weight 1) and the candidates (weight = confidence)."""
    by_key = {v.key: v for v in videos}
    samples: list[Sample] = []
    train_ids: list[int] = []
    jobs = [(v, i, None) for v, i in train_human] + [(by_key[k], i, propagated[(k, i)]) for k, i in cands]
    for n, (video, i, prop) in enumerate(jobs):
        _check(cancel)
        grid = features.grid(video.source)
        feats = features(video.source, i)
        if prop is None:
            labels, weight = _labels(video.human[i], video.source.size), 1.0
        else:
            labels, weight = prop[0].unpack(), prop[1]
        samples.append(make_sample(feats, grid, video.source[i], cfg.proxy, labels, weight))
        train_ids.append(int(video.frame_ids[i]))
        report("features", n + 1, len(jobs))
    return samples, train_ids


def _evaluate(
    model: ProxyModel, holdout: list[tuple[VideoState, int]], features: Any, cfg: RoundConfig, objects: list[int]
) -> tuple[float, float]:
    """Step 3: mean J and F of the proxy's argmax masks on the held-out human frames."""
    js, fs = [], []
    for video, i in holdout:
        grid = features.grid(video.source)
        sample = make_sample(features(video.source, i), grid, video.source[i], cfg.proxy)
        probs, _ = model.predict_proba([sample])
        pred = labels_to_masks(upsample_probs(probs[0], video.source.size).argmax(axis=0), objects)
        gt = {k: video.human[i].get(k, np.zeros(video.source.size, bool)) for k in objects}
        for s in score_frame(pred, gt, i):
            js.append(s.J)
            fs.append(s.F)
    return float(np.mean(js)), float(np.mean(fs))


def score_round(
    videos: Sequence[VideoState],
    model: ProxyModel,
    features: Any,
    cfg: RoundConfig,
    objects: list[int],
    propagated: Propagated,
    sink: Callable[[FrameOutcome], None] | None,
    report: ProgressCallback,
    cancel: CancelCheck | None,
    span: tuple[int, int] | None = None,
) -> tuple[dict[str, int], dict[int, dict[str, float]]]:
    """Steps 4 and 5: score every frame, pick its dense label, hand it to ``sink``.

    Args:
        span: Only the frames ``lo <= index < hi`` of each video (a part of a long video).

    Returns:
        Counts of frames by dense-label source, and frame id to named scores.
    """
    counts = {"human": 0, "propagated": 0, "predicted": 0}
    all_scores: dict[int, dict[str, float]] = {}
    spans = [(0, len(v)) if span is None else (max(0, span[0]), min(len(v), span[1])) for v in videos]
    total = sum(max(0, hi - lo) for lo, hi in spans)
    done = 0
    for video, (first, last) in zip(videos, spans, strict=True):
        grid = features.grid(video.source)
        size = video.source.size
        for lo in range(first, last, cfg.chunk):
            idx = list(range(lo, min(lo + cfg.chunk, last)))
            batch = []
            for i in idx:
                _check(cancel)
                batch.append(make_sample(features(video.source, i), grid, video.source[i], cfg.proxy))
            prediction = model.predict(batch, mc_samples=cfg.mc_samples)
            probs, mc, novelty = prediction.probs, prediction.disagreement, prediction.novelty
            for j, i in enumerate(idx):
                proxy_masks = labels_to_masks(upsample_probs(probs[j], size).argmax(axis=0), objects)
                scores = frame_scores(probs[j], cfg.top_fraction, None if novelty is None else novelty[j])
                if mc is not None:
                    scores["mc_disagreement"] = float(mc[j])
                source, masks, conf = _dense_label(video, i, proxy_masks, scores, propagated, cfg, objects)
                counts[source] += 1
                frame_id = int(video.frame_ids[i])
                all_scores[frame_id] = scores
                if sink is not None:
                    sink(FrameOutcome(video.key, i, frame_id, source, masks, float(conf), scores))
                done += 1
                report("score", done, total)
    return counts, all_scores


def _dense_label(
    video: VideoState,
    i: int,
    proxy_masks: dict[int, np.ndarray],
    scores: dict[str, float],
    propagated: Propagated,
    cfg: RoundConfig,
    objects: list[int],
) -> tuple[str, dict[int, np.ndarray], float]:
    """Frame ``i``'s dense label ``(source, masks, confidence)``: human, else confident propagation, else proxy.

    Adds ``propagation_confidence`` and ``proxy_disagreement`` to ``scores``.
    """
    prop = propagated.get((video.key, i))
    if i in video.human:
        masks = dict(video.human[i])
        scores["propagation_confidence"] = 1.0
        scores["proxy_disagreement"] = mask_disagreement(proxy_masks, masks)
        return "human", masks, 1.0
    if prop is not None:
        prop_masks = labels_to_masks(prop[0].unpack(), objects)
        scores["propagation_confidence"] = prop[1]
        scores["proxy_disagreement"] = mask_disagreement(proxy_masks, prop_masks)
        if prop[1] >= cfg.dense_min_confidence:
            return "propagated", prop_masks, prop[1]
        return "predicted", proxy_masks, scores["confidence"]
    scores["propagation_confidence"] = 0.0
    scores["proxy_disagreement"] = 1.0
    return "predicted", proxy_masks, scores["confidence"]
