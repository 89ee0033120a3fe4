"""``curator bench effort``: J&F of a whole DAVIS-layout dataset against annotator-seconds.

Counting labelled frames hides what a team pays for: a person's time, most of it spent drawing. This
benchmark simulates annotation campaigns and prices every action with a cost model
(``configs/bench/effort_cost.yaml``; by default EVA-VOS's: 80 s per object for a mask drawn from
scratch, 1.5 s a click, plus a few seconds to look at each frame a person opens). After each step
of a campaign it scores the masks the dataset would ship with, J and F over every object on every
frame of every video (pooled, so each frame counts once), and records the seconds spent so far.

The simulated annotator labels a keyframe the way a person does on the labelling page: it starts
from the task's pre-annotation when there is one, and accepts it when its IoU with the truth
already reaches the target (0.90). Otherwise it clicks with the click-to-segment backend (the
segmenter ``auto`` picks: ``feature`` on a CPU with the DINOv2 weights) by the standard protocol of
interactive segmentation (:func:`benchmarks.segment.simulate`: each click at the interior point of
the largest error farthest from its boundary, positive in a missed region, negative in a false one;
every click and the current mask sent each time) until the IoU reaches the target; after
``max_clicks`` clicks short of it, it draws the object from scratch (the ground truth), paying for
the clicks already made and the drawing.

Arms:

* ``manual``: every frame drawn from scratch, video after video (frames not drawn yet have no mask);
* ``uniform-scratch``: ``B`` uniform keyframes per video (the ``uniform`` selector) drawn from
  scratch, then propagated with the default propagator, for each ``B`` of ``budgets``;
* ``uniform-clicks``: the same keyframes made with clicks (no pre-annotation), then propagated;
* ``curator``: the full loop as the service runs it. Each round the ``curator`` selector picks
  frames across all videos from a pool holding the previous round's scores (propagation confidence,
  proxy uncertainty); each pick is pre-annotated with the previous round's dense label of that frame
  (confident propagation, else the proxy's mask: what the queue shows a person), finished with
  clicks, and a round (:func:`curator.train.loop.run_round`: propagate, train the proxy, score,
  densify) makes the dense labels that are scored.

Propagation is the expensive part. Frames, DINOv2 patch features, optical flow and CLS embeddings
are computed once per run and shared by every arm; with ``cache_dir`` patch features, flow and
embeddings are kept on disk, and so are each propagation's output (keyed by the video, the
keyframes' masks, the propagator's settings and the source of ``curator/annotate``) and each click
session (keyed by the frame's truth, the pre-annotation, the segmenter's settings, the source of
``curator/segment`` and the protocol, and the cost model). A rerun reads back what did not change.
"""

from __future__ import annotations

import hashlib
import pickle
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.davis import DavisSequence
from benchmarks.keyframes import FPS, build_propagator, load_sequences, machine_info, pick_keyframes
from benchmarks.loop import Campaign
from benchmarks.segment import iou, simulate
from curator.annotate.frames import FrameSource
from curator.annotate.masks import labels_to_masks, masks_to_labels
from curator.annotate.types import Keyframe, PropagatedFrame
from curator.eval import score_frame
from curator.pool import Pool
from curator.train.loop import FrameOutcome, RoundConfig, run_round

ARMS = ("manual", "uniform-scratch", "uniform-clicks", "curator")
THRESHOLDS = (0.80, 0.85)
DEFAULT_COST_FILE = Path(__file__).resolve().parents[1] / "configs" / "bench" / "effort_cost.yaml"
#: Where the seconds go: ``look`` (opening frames), ``clicks`` (clicks that made a mask),
#: ``wasted_clicks`` (clicks on objects then drawn anyway), ``scratch`` (masks drawn by choice),
#: ``fallback`` (masks drawn after the clicks fell short).
PARTS = ("look", "clicks", "wasted_clicks", "scratch", "fallback")


# --- the cost model and the simulated annotator ---------------------------------------------------


@dataclass(frozen=True)
class CostModel:
    """Annotator-seconds of each action and the simulated annotator's stopping rule.

    Attributes:
        scratch_seconds: A mask drawn from scratch, per object.
        click_seconds: One click of the click-to-segment tool.
        look_seconds: Opening and looking at a frame, once per frame a person labels.
        target_iou: The IoU a mask must reach to be accepted.
        max_clicks: Clicks on one object before the annotator draws it from scratch instead.
    """

    scratch_seconds: float = 80.0
    click_seconds: float = 1.5
    look_seconds: float = 3.0
    target_iou: float = 0.90
    max_clicks: int = 20

    def __post_init__(self) -> None:
        if min(self.scratch_seconds, self.click_seconds, self.look_seconds) < 0:
            raise ValueError("costs in seconds must not be negative")
        if not 0 < self.target_iou <= 1 or self.max_clicks < 0:
            raise ValueError(f"need 0 < target_iou <= 1 and max_clicks >= 0, got {self.target_iou}, {self.max_clicks}")

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> CostModel:
        """The cost model of a YAML file (default ``configs/bench/effort_cost.yaml``), then ``overrides``.

        Raises:
            ValueError: For an unknown key or a bad value.
            FileNotFoundError: If the file does not exist.
        """
        import yaml

        values = yaml.safe_load(Path(path or DEFAULT_COST_FILE).read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of cost settings")
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown cost settings {unknown}; known: {sorted(known)}")
        typed: dict[str, Any] = {k: (int(v) if k == "max_clicks" else float(v)) for k, v in values.items()}
        return cls(**typed)

    def frame_from_scratch(self, objects: int) -> float:
        """Seconds to look at a frame and draw its ``objects`` masks from scratch."""
        return self.look_seconds + self.scratch_seconds * objects


@dataclass
class Annotation:
    """One frame labelled by the simulated annotator.

    The per-object lists follow the frame's visible objects in id order.

    Attributes:
        sequence: Sequence name.
        index: Frame index.
        masks: Object id to the mask the annotator submitted (visible objects only).
        seconds: Seconds by part (see :data:`PARTS`).
        clicks: Clicks made (on every object, those of fallbacks included).
        fallbacks: Objects drawn from scratch after ``max_clicks`` clicks fell short.
        accepted: Objects whose pre-annotation already reached the target (no click).
        pre_iou: Per object, the IoU of its pre-annotation (``None`` without one).
        iou: Per object, the IoU of the submitted mask.
        trace: Per object, the IoU after each click (empty when drawn by choice or accepted).
        drawn: Per object, whether it was drawn from scratch (by choice or as a fallback).
    """

    sequence: str
    index: int
    masks: dict[int, np.ndarray]
    seconds: dict[str, float]
    clicks: int = 0
    fallbacks: int = 0
    accepted: int = 0
    pre_iou: list[float | None] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)
    trace: list[list[float]] = field(default_factory=list)
    drawn: list[bool] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Seconds spent on the frame."""
        return float(sum(self.seconds.values()))

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary (no masks)."""
        return {
            "sequence": self.sequence,
            "frame": self.index,
            "objects": len(self.masks),
            "seconds": round(self.total, 2),
            "parts": {k: round(v, 2) for k, v in self.seconds.items() if v},
            "clicks": self.clicks,
            "fallbacks": self.fallbacks,
            "accepted": self.accepted,
            "pre_iou": [None if v is None else round(v, 4) for v in self.pre_iou],
            "iou": [round(v, 4) for v in self.iou],
            "trace": [[round(v, 4) for v in t] for t in self.trace],
            "drawn": list(self.drawn),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], masks: dict[int, np.ndarray]) -> Annotation:
        """The annotation a :meth:`record` (with ``parts``) describes, with its ``masks``."""
        return cls(
            record["sequence"], int(record["frame"]), masks, _parts(**record["parts"]), int(record["clicks"]),
            int(record["fallbacks"]), int(record["accepted"]), list(record["pre_iou"]), list(record["iou"]),
            [list(t) for t in record["trace"]], list(record["drawn"]),
        )


def _parts(**values: float) -> dict[str, float]:
    return {p: float(values.get(p, 0.0)) for p in PARTS}


class Annotator:
    """The simulated annotator (module docstring): draws from scratch, or clicks from a pre-annotation.

    Args:
        cost: Prices and the stopping rule.
        segmenter: A click-to-segment backend (needed by :meth:`click` only).
        cache_dir: Folder keeping click sessions across runs (keyed by the frame's truth, the
            pre-annotation, the segmenter's settings and code, and the cost model), or ``None``.
    """

    def __init__(self, cost: CostModel, segmenter: Any = None, cache_dir: Path | None = None) -> None:
        self.cost = cost
        self.segmenter = segmenter
        self.cache_dir = cache_dir
        self.cached = 0
        self._version: str | None = None

    def draw(self, sequence: str, index: int, gt: Mapping[int, np.ndarray]) -> Annotation:
        """Every visible object drawn from scratch (the ground truth)."""
        visible = {k: m for k, m in sorted(gt.items()) if m.any()}
        seconds = _parts(look=self.cost.look_seconds, scratch=self.cost.scratch_seconds * len(visible))
        n = len(visible)
        return Annotation(sequence, index, dict(visible), seconds, pre_iou=[None] * n, iou=[1.0] * n,
                          trace=[[] for _ in range(n)], drawn=[True] * n)

    def click(
        self,
        sequence: str,
        index: int,
        image: np.ndarray,
        gt: Mapping[int, np.ndarray],
        pre: Mapping[int, np.ndarray] | None = None,
    ) -> Annotation:
        """Every visible object made with clicks from its pre-annotation, drawn when the clicks fall short.

        An object the pre-annotation shows but the frame does not have is deleted with one click.
        """
        if self.segmenter is None:
            raise ValueError("clicking needs a segmenter")
        path = self._path(sequence, index, gt, pre)
        if path is not None and path.is_file():
            self.cached += 1
            return _read_annotation(path)
        out = self._click(sequence, index, image, gt, pre or {})
        if path is not None:
            _write_annotation(path, out, image.shape[:2])
        return out

    def _click(
        self, sequence: str, index: int, image: np.ndarray, gt: Mapping[int, np.ndarray], pre: Mapping[int, np.ndarray]
    ) -> Annotation:
        cost = self.cost
        out = Annotation(sequence, index, {}, _parts(look=cost.look_seconds))
        for obj, truth in sorted(gt.items()):
            start = pre.get(obj)
            has_start = start is not None and bool(start.any())
            if not truth.any():
                if has_start:
                    out.clicks += 1
                    out.seconds["clicks"] += cost.click_seconds
                continue
            out.pre_iou.append(iou(start, truth) if has_start and start is not None else None)
            run = simulate(
                self.segmenter.segment, image, truth, max_clicks=cost.max_clicks, stop_at=cost.target_iou,
                key=("effort", sequence, index), start=start,
            )
            made = len(run["clicks"])
            out.clicks += made
            out.trace.append([float(v) for v in run["ious"]])
            reached = iou(run["mask"], truth) >= cost.target_iou
            out.drawn.append(not reached)
            if reached:
                out.masks[obj] = run["mask"]
                out.accepted += made == 0
                out.seconds["clicks"] += cost.click_seconds * made
            else:
                out.masks[obj] = truth.copy()
                out.fallbacks += 1
                out.seconds["wasted_clicks"] += cost.click_seconds * made
                out.seconds["fallback"] += cost.scratch_seconds
            out.iou.append(iou(out.masks[obj], truth))
        return out

    def _path(
        self, sequence: str, index: int, gt: Mapping[int, np.ndarray], pre: Mapping[int, np.ndarray] | None
    ) -> Path | None:
        if self.cache_dir is None:
            return None
        if self._version is None:
            import curator.segment

            digest = hashlib.blake2b(digest_size=8)
            sources = [*sorted(Path(curator.segment.__file__).parent.glob("*.py")), Path(__file__).with_name("segment.py")]
            for source in sources:
                digest.update(source.read_bytes())
            self._version = digest.hexdigest()
        parts = [
            sequence, index, _mask_digest(gt), None if pre is None else _mask_digest(pre), asdict(self.cost),
            getattr(self.segmenter, "name", type(self.segmenter).__name__), describe(self.segmenter), self._version,
        ]
        key = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
        return self.cache_dir / "effort-annotations" / f"{key}.npz"


def _write_annotation(path: Path, annotation: Annotation, shape: tuple[int, ...]) -> None:
    """Store a click session: its record and its masks as one label map."""
    import json

    labels = masks_to_labels(annotation.masks, (int(shape[0]), int(shape[1])))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, labels=labels, objects=np.array(sorted(annotation.masks), np.int64),
                        record=np.array(json.dumps(annotation.record())))
    tmp.replace(path)


def _read_annotation(path: Path) -> Annotation:
    """A click session stored by :func:`_write_annotation`."""
    import json

    with np.load(path) as data:
        masks = labels_to_masks(data["labels"], data["objects"].tolist())
        record = json.loads(str(data["record"]))
    return Annotation.from_record(record, masks)


# --- propagation, memoised ------------------------------------------------------------------------


def _mask_digest(masks: Mapping[int, np.ndarray]) -> list[tuple[int, str]]:
    out = []
    for obj, mask in sorted(masks.items()):
        packed = np.packbits(np.asarray(mask, bool))
        out.append((int(obj), hashlib.blake2b(packed.tobytes(), digest_size=12).hexdigest()))
    return out


def _code_version() -> str:
    """A hash of the propagators' source (``curator/annotate/*.py``): stored outputs go stale with it."""
    import curator.annotate

    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(Path(curator.annotate.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def describe(obj: Any) -> dict[str, Any]:
    """A dataclass's plain-valued settings (models and caches left out)."""
    if not is_dataclass(obj):
        return {}
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, str | int | float | bool) or value is None:
            out[f.name] = value
    return out


class PropagationMemo:
    """A propagator that gives back its stored output when a video's keyframes have not changed.

    The last output of each video is kept in memory (a round re-propagates only the videos that got
    new keyframes) and, with ``cache_dir``, every output on disk as compressed label maps.

    Args:
        propagator: The real propagator.
        names: ``id(frame source)`` to the video's name (its identity in keys).
        cache_dir: Folder for stored outputs, or ``None``.
    """

    def __init__(self, propagator: Any, names: Mapping[int, str], cache_dir: Path | None = None) -> None:
        self.propagator = propagator
        self.names = dict(names)
        self.cache_dir = cache_dir
        self.settings = {"name": getattr(propagator, "name", type(propagator).__name__), **describe(propagator)}
        self.code = _code_version()
        self.last: dict[str, tuple[str, list[PropagatedFrame]]] = {}
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0
        self.seconds = 0.0

    def key(self, frames: FrameSource, keyframes: Sequence[Keyframe], shot_ids: Any) -> str:
        """The identity of one propagation."""
        shots = None if shot_ids is None else hashlib.blake2b(np.asarray(shot_ids).tobytes(), digest_size=8).hexdigest()
        parts = [
            self.names.get(id(frames), str(id(frames))), len(frames), self.settings, self.code, shots,
            [(int(k.index), _mask_digest(k.masks)) for k in sorted(keyframes, key=lambda k: k.index)],
        ]
        return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()

    def propagate(self, frames: FrameSource, keyframes: Sequence[Keyframe], **kwargs: Any) -> Iterator[PropagatedFrame]:
        """Like the propagator's ``propagate``, from memory or disk when the same call ran before."""
        name = self.names.get(id(frames), str(id(frames)))
        key = self.key(frames, keyframes, kwargs.get("shot_ids"))
        if name in self.last and self.last[name][0] == key:
            self.hits += 1
            return iter(self.last[name][1])
        out = self._read(key)
        if out is None:
            start = time.perf_counter()
            out = list(self.propagator.propagate(frames, keyframes, **kwargs))
            self.seconds += time.perf_counter() - start
            self.misses += 1
            self._write(key, out)
        else:
            self.disk_hits += 1
        self.last[name] = (key, out)
        return iter(out)

    def _path(self, key: str) -> Path | None:
        return self.cache_dir / "effort-propagation" / f"{key}.npz" if self.cache_dir is not None else None

    def _read(self, key: str) -> list[PropagatedFrame] | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        with np.load(path) as data:
            labels, objects, conf, is_key = data["labels"], data["objects"].tolist(), data["confidence"], data["is_key"]
        return [
            PropagatedFrame(
                i, labels_to_masks(labels[i], objects), {o: float(conf[i, j]) for j, o in enumerate(objects)}, bool(is_key[i])
            )
            for i in range(len(labels))
        ]

    def _write(self, key: str, out: Sequence[PropagatedFrame]) -> None:
        path = self._path(key)
        if path is None or not out:
            return
        objects = sorted({int(k) for f in out for k in f.masks})
        shape = next((m.shape for f in out for m in f.masks.values()), (0, 0))
        labels = np.stack([masks_to_labels(f.masks, shape) for f in out])
        conf = np.array([[f.confidence.get(o, 1.0) for o in objects] for f in out], np.float32).reshape(len(out), len(objects))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, labels=labels, objects=np.array(objects, np.int64), confidence=conf,
                            is_key=np.array([f.is_keyframe for f in out]))
        tmp.replace(path)

    def stats(self) -> dict[str, Any]:
        """Calls answered from memory, from disk and by propagating, and the seconds propagating took."""
        return {"memory_hits": self.hits, "disk_hits": self.disk_hits, "propagated": self.misses,
                "propagate_seconds": round(self.seconds, 1)}


def load_flow_cache(source: FrameSource, path: Path | None) -> None:
    """Fill ``source``'s cache with the optical flow stored by :func:`save_flow_cache`, if any."""
    if path is not None and path.is_file() and source.cache is not None:
        with path.open("rb") as fh:
            source.cache.update(pickle.load(fh))


def save_flow_cache(source: FrameSource, path: Path, known: int) -> None:
    """Pickle ``source``'s flow entries to ``path`` when there are more than the ``known`` ones read."""
    entries = {k: v for k, v in (source.cache or {}).items() if isinstance(k, tuple) and k and k[0] == "flow"}
    if len(entries) > known:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(entries, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)


# --- scoring ---------------------------------------------------------------------------------------


class Tally:
    """J and F of every object on every frame, per video: the dataset's score at one point of a campaign."""

    def __init__(self) -> None:
        self.rows: dict[int, list[tuple[int, float, float]]] = {}

    def add(self, video: int, index: int, pred: Mapping[int, np.ndarray], gt: Mapping[int, np.ndarray]) -> None:
        """Score one frame's masks (an object missing from ``pred`` counts as empty)."""
        for s in score_frame(pred, gt, index):
            self.rows.setdefault(video, []).append((s.obj, s.J, s.F))

    def summary(self) -> dict[str, float]:
        """``JF``, ``J``, ``F`` pooled over every object on every frame, and ``JF_videos`` (DAVIS's mean over videos)."""
        every = [r for rows in self.rows.values() for r in rows]
        if not every:
            return {"JF": 0.0, "J": 0.0, "F": 0.0, "JF_videos": 0.0}
        j = float(np.mean([r[1] for r in every]))
        f = float(np.mean([r[2] for r in every]))
        per_video = [(np.mean([r[1] for r in rows]) + np.mean([r[2] for r in rows])) / 2 for rows in self.rows.values()]
        return {"JF": (j + f) / 2, "J": j, "F": f, "JF_videos": float(np.mean(per_video))}


def point(annotations: Sequence[Annotation], scores: Mapping[str, float], **extra: Any) -> dict[str, Any]:
    """One point of an arm's curve: the seconds and frames spent so far and the dataset's J&F."""
    seconds = {p: round(float(sum(a.seconds[p] for a in annotations)), 2) for p in PARTS}
    return {
        **extra,
        "seconds": round(float(sum(seconds.values())), 2),
        "frames": len(annotations),
        "clicks": int(sum(a.clicks for a in annotations)),
        "fallbacks": int(sum(a.fallbacks for a in annotations)),
        "accepted": int(sum(a.accepted for a in annotations)),
        "objects": int(sum(len(a.masks) for a in annotations)),
        "breakdown": seconds,
        **{k: round(float(v), 5) for k, v in scores.items()},
    }


@dataclass
class ArmResult:
    """What one arm produced.

    Attributes:
        curve: Its points (:func:`point`), in the order they were made.
        sets: Per point, the annotations behind it.
        annotations: Every frame the arm had annotated (each once).
    """

    curve: list[dict[str, Any]]
    sets: list[list[Annotation]]
    annotations: list[Annotation]


# --- the campaign's in-memory data -----------------------------------------------------------------


@dataclass
class Bench:
    """What every arm shares: the campaign (videos, truth, pool), the models and the annotator.

    With ``cache_dir`` a video's optical flow is written there as soon as a propagation of it
    computed new flow, so an interrupted run keeps the expensive part.
    """

    campaign: Campaign
    memo: PropagationMemo
    features: Any
    config: RoundConfig
    annotator: Annotator
    log: Callable[[str], None]
    cache_dir: Path | None = None
    flow_saved: dict[str, int] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Sequence names in video order."""
        return self.campaign.names

    def propagate(self, v: int, annotations: Sequence[Annotation]) -> list[dict[int, np.ndarray]]:
        """Every frame's masks of video ``v`` propagated from ``annotations`` (empty without a visible object)."""
        video = self.campaign.videos[v]
        keys = [Keyframe(a.index, a.masks) for a in sorted(annotations, key=lambda a: a.index) if a.masks]
        if not keys:
            return [{} for _ in range(len(video))]
        out = [f.masks for f in self.memo.propagate(video.source, keys, shot_ids=video.shot_ids)]
        self.keep_flow(v)
        return out

    def keep_flow(self, v: int) -> None:
        """Write video ``v``'s flow to the cache folder when this run computed more of it."""
        name, source = self.names[v], self.campaign.videos[v].source
        path = _flow_path(self.cache_dir, name)
        count = _flow_count(source)
        if path is not None and count > self.flow_saved.get(name, 0):
            save_flow_cache(source, path, self.flow_saved.get(name, 0))
            self.flow_saved[name] = count

    def save_caches(self) -> None:
        """Keep the patch features and flow computed so far for the next run."""
        if self.cache_dir is None:
            return
        self.campaign.save_patch_caches(self.cache_dir)
        for v in range(len(self.names)):
            self.keep_flow(v)


def make_bench(
    seqs: Sequence[DavisSequence],
    backbone: Any,
    backbone_name: str,
    propagator: Any,
    annotator: Annotator,
    *,
    features: Any = None,
    config: RoundConfig | None = None,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> Bench:
    """A bench from built parts: the campaign over ``seqs`` (pool embedded by ``backbone``) and the models.

    ``features`` (DINOv2 patch features) is needed by the ``curator`` arm only.
    """
    start = time.perf_counter()
    campaign = Campaign(seqs, backbone, backbone_name, cache_dir)
    for name, video in zip(campaign.names, campaign.videos, strict=True):
        load_flow_cache(video.source, _flow_path(cache_dir, name))
    log(f"loaded {len(seqs)} sequences, {len(campaign.pool)} frames ({time.perf_counter() - start:.0f} s)")
    memo = PropagationMemo(propagator, {id(v.source): n for n, v in zip(campaign.names, campaign.videos, strict=True)}, cache_dir)
    saved = {n: _flow_count(v.source) for n, v in zip(campaign.names, campaign.videos, strict=True)}
    return Bench(campaign, memo, features, config or RoundConfig(short_side=336), annotator, log, cache_dir, saved)


def build_bench(
    seqs: Sequence[DavisSequence],
    checkpoint: str | Path,
    propagator: str,
    segmenter: str,
    cost: CostModel,
    config: RoundConfig,
    cache_dir: Path | None,
    device: str,
    log: Callable[[str], None],
) -> tuple[Bench, str]:
    """Load DINOv2 (shared by the pool, the proxy, the propagator and ``feature`` clicks), the propagator,
    the segmenter ``auto`` picks and the campaign; returns the bench and the segmenter's name."""
    from curator.annotate.feature import PatchFeatures
    from curator.embed import create_backbone
    from curator.segment import choose_segmenter

    backbone = create_backbone("dinov2_vits14", checkpoint=checkpoint, device=device).backbone
    features = PatchFeatures(backbone=backbone, short_side=config.short_side)
    options = {"short_side": config.short_side} if propagator in ("feature", "flow+feature") else {}
    prop = build_propagator(propagator, backbone, **options)
    choice = choose_segmenter(segmenter, checkpoint=checkpoint, device=device, backbone=backbone)
    if choice.fell_back:
        log(f"click-to-segment uses {choice.name!r}: {choice.fell_back}")
    annotator = Annotator(cost, choice.segmenter, cache_dir)
    bench = make_bench(seqs, backbone, "dinov2_vits14", prop, annotator, features=features, config=config,
                       cache_dir=cache_dir, log=log)
    return bench, choice.name


def _flow_path(cache_dir: Path | None, name: str) -> Path | None:
    return cache_dir / f"{name}-flow.pkl" if cache_dir is not None else None


def _flow_count(source: FrameSource) -> int:
    return sum(1 for k in (source.cache or {}) if isinstance(k, tuple) and k and k[0] == "flow")


# --- the arms --------------------------------------------------------------------------------------


def run_manual(bench: Bench, points: int = 20) -> ArmResult:
    """``manual``: every frame drawn from scratch, video after video; undrawn frames have no mask.

    The curve has ``points`` evenly spaced points plus the first frame count at which each of
    :data:`THRESHOLDS` is reached (exact: a frame scores as its truth once drawn, as an empty mask before).

    Returns:
        The curve; its annotations are not listed (every frame, drawn).
    """
    annotator, gt = bench.annotator, bench.campaign.gt
    order = [(v, i) for v in range(len(gt)) for i in range(len(gt[v]))]
    annotations = [annotator.draw(bench.names[v], i, gt[v][i]) for v, i in order]
    empty = [[(s.obj, s.J, s.F) for s in score_frame({}, gt[v][i], i)] for v, i in order]
    full = [[(s.obj, s.J, s.F) for s in score_frame(gt[v][i], gt[v][i], i)] for v, i in order]

    def tally(drawn: int) -> Tally:
        out = Tally()
        for n, (v, _) in enumerate(order):
            out.rows.setdefault(v, []).extend(full[n] if n < drawn else empty[n])
        return out

    marks = {round(float(x)) for x in np.linspace(0, len(order), points + 1)}
    for t in THRESHOLDS:  # the first count reaching each threshold, by bisection (J&F grows with it)
        lo, hi = 0, len(order)
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if tally(mid).summary()["JF"] < t - 1e-12 else (lo, mid)
        marks.add(lo)
    steps = sorted(marks)
    return ArmResult([point(annotations[:m], tally(m).summary(), step=m) for m in steps], [annotations[:m] for m in steps], [])


def uniform_keyframes(n: int, budget: int) -> list[int]:
    """The ``uniform`` selector's ``budget`` picks in a video of ``n`` frames (time stamps ``i / 24``)."""
    from curator_selectors import create_selector

    pool = Pool(
        embeddings=np.zeros((n, 1), np.float32),
        frame_ids=np.arange(n, dtype=np.int64),
        video_ids=np.zeros(n, dtype=np.int64),
        timestamps=np.arange(n, dtype=np.float64) / FPS,
        shot_ids=np.zeros(n, dtype=np.int64),
        labeled=np.zeros(n, dtype=bool),
    )
    return pick_keyframes(create_selector("uniform"), pool, min(budget, n))


def run_uniform(bench: Bench, budgets: Sequence[int], clicks: bool) -> ArmResult:
    """``uniform-scratch`` / ``uniform-clicks``: ``B`` uniform keyframes per video, propagated, per budget.

    Each budget is its own campaign (the best uniform placement for that many keyframes); a frame
    two budgets share is annotated once and reused (the simulated annotator is deterministic).

    Returns:
        A point per budget, its keyframes, and every keyframe of any budget.
    """
    arm = "uniform-clicks" if clicks else "uniform-scratch"
    annotator, campaign = bench.annotator, bench.campaign
    made: dict[tuple[int, int], Annotation] = {}
    result = ArmResult([], [], [])
    for budget in sorted(set(int(b) for b in budgets)):
        start = time.perf_counter()
        tally, annotations = Tally(), []
        for v, video in enumerate(campaign.videos):
            mine = []
            for i in uniform_keyframes(len(video), budget):
                if (v, i) not in made:
                    gt = campaign.gt[v][i]
                    name = bench.names[v]
                    made[(v, i)] = annotator.click(name, i, video.source[i], gt) if clicks else annotator.draw(name, i, gt)
                mine.append(made[(v, i)])
            predictions = bench.propagate(v, mine)
            for a in mine:  # a keyframe keeps the masks the annotator submitted
                predictions[a.index] = a.masks
            for i, pred in enumerate(predictions):
                tally.add(v, i, pred, campaign.gt[v][i])
            annotations.extend(mine)
        row = point(annotations, tally.summary(), budget=budget)
        result.curve.append(row)
        result.sets.append(annotations)
        bench.log(
            f"{arm} B={budget}: {row['frames']} keyframes, {row['seconds']:.0f} s of annotation, "
            f"{row['clicks']} clicks, {row['fallbacks']} fallbacks, J&F {row['JF']:.3f} ({time.perf_counter() - start:.0f} s)"
        )
    result.annotations = [made[k] for k in sorted(made)]
    return result


class _DenseSink:
    """Scores a round's dense labels and keeps them (compressed) as the next round's pre-annotations."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.tally = Tally()
        self.dense: dict[tuple[int, int], tuple[bytes, tuple[int, int], list[int]]] = {}
        self.sources: dict[str, int] = {}

    def __call__(self, outcome: FrameOutcome) -> None:
        gt = self.campaign.gt[outcome.video][outcome.index]
        self.tally.add(outcome.video, outcome.index, outcome.masks, gt)
        shape = self.campaign.videos[outcome.video].source.size
        masks = {k: m for k, m in outcome.masks.items() if m.any()}
        labels = masks_to_labels(masks, shape)
        self.dense[(outcome.video, outcome.index)] = (zlib.compress(labels.tobytes(), 1), shape, sorted(masks))
        self.sources[outcome.source] = self.sources.get(outcome.source, 0) + 1

    def pre_annotation(self, video: int, index: int) -> dict[int, np.ndarray] | None:
        """The frame's dense label after this round (what its task would show), or None."""
        found = self.dense.get((video, index))
        if found is None:
            return None
        data, shape, objects = found
        return labels_to_masks(np.frombuffer(zlib.decompress(data), np.uint8).reshape(shape), objects)


def run_curator(
    bench: Bench, schedule: Sequence[int], selector: str = "curator", params: Mapping[str, Any] | None = None, seed: int = 0
) -> ArmResult:
    """``curator``: rounds of selection, pre-annotation, clicks and a retrain round (module docstring).

    Args:
        bench: The shared data and models.
        schedule: Frames picked in each round (its length is the number of rounds).
        selector: The selector that picks them.
        params: The selector's settings.
        seed: Seed of the selector's random generator.

    Returns:
        A point per round, the annotations so far at each, and every annotation of the campaign.
    """
    from curator_selectors import create_selector

    campaign = bench.campaign
    campaign.reset()
    picker = create_selector(selector, **dict(params or {}))
    rng = np.random.default_rng(seed)
    where = {int(f): (v, i) for v, video in enumerate(campaign.videos) for i, f in enumerate(video.frame_ids.tolist())}
    annotations: list[Annotation] = []
    sink: _DenseSink | None = None
    result = ArmResult([], [], annotations)
    for r, per_round in enumerate(schedule, start=1):
        start = time.perf_counter()
        selection = picker.select(campaign.pool, int(per_round), rng)
        for pool_row in (int(x) for x in selection.indices):
            v, i = where[int(campaign.pool.frame_ids[pool_row])]
            pre = sink.pre_annotation(v, i) if sink is not None else None
            a = bench.annotator.click(bench.names[v], i, campaign.videos[v].source[i], campaign.gt[v][i], pre)
            campaign.videos[v].human[i] = a.masks
            campaign.pool.labeled[pool_row] = True
            annotations.append(a)
        clicked = time.perf_counter() - start
        sink = _DenseSink(campaign)
        done = run_round(campaign.videos, bench.memo, bench.features, bench.config, sink=sink)
        campaign.set_scores(done.scores)
        row = point(annotations, sink.tally.summary(), round=r, dense_sources=dict(sink.sources),
                    picks=[[a.sequence, a.index] for a in annotations[-len(selection.indices):]])
        row["timings"] = {"annotate": round(clicked, 1), **{k: round(v, 1) for k, v in done.timings.items()}}
        result.curve.append(row)
        result.sets.append(list(annotations))
        bench.log(
            f"curator round {r}: {row['frames']} keyframes, {row['seconds']:.0f} s of annotation, {row['clicks']} clicks, "
            f"{row['fallbacks']} fallbacks, {row['accepted']} pre-annotations accepted, J&F {row['JF']:.3f} "
            f"({time.perf_counter() - start:.0f} s)"
        )
    return result


# --- the report ------------------------------------------------------------------------------------


def first_reaching(curve: Sequence[Mapping[str, Any]], threshold: float, key: str = "seconds") -> float | None:
    """``key`` of the cheapest point of ``curve`` whose J&F reaches ``threshold`` (None if none does)."""
    for p in sorted(curve, key=lambda p: (p["seconds"], p["frames"])):
        if p["JF"] >= threshold - 1e-12:
            return float(p[key])
    return None


def _object_seconds(trace: Sequence[float], drawn: bool, cost: CostModel, limit: int) -> float:
    """Seconds one object would cost with a click limit of ``limit``, from its measured click trace."""
    if drawn and not trace:  # drawn by choice, or no click allowed
        return cost.scratch_seconds
    if not trace:  # the pre-annotation was accepted
        return 0.0
    reached = next((n + 1 for n, v in enumerate(trace) if v >= cost.target_iou), None)
    if reached is not None and reached <= limit:
        return cost.click_seconds * reached
    return cost.click_seconds * min(limit, len(trace)) + cost.scratch_seconds


def levers(annotations: Sequence[Annotation], cost: CostModel, limits: Sequence[int] = (3, 5, 10)) -> dict[str, float]:
    """What the same frames would cost under other annotator policies, read off the measured click traces.

    ``measured``: as run. ``no_wasted_clicks``: an annotator who knows which objects the clicks will
    not finish and draws those at once. ``max_clicks_K``: giving up after ``K`` clicks. ``all_scratch``:
    every object drawn. With a lower limit some objects are drawn instead of clicked, so their masks
    are the truth rather than a mask at the target IoU: the dataset is at least as good.
    """
    out = {"measured": sum(a.total for a in annotations)}
    out["no_wasted_clicks"] = out["measured"] - sum(a.seconds["wasted_clicks"] for a in annotations)
    for limit in limits:
        total = 0.0
        for a in annotations:
            deletes = a.clicks - sum(len(t) for t in a.trace)  # objects a pre-annotation had and the frame lacks
            total += cost.look_seconds + cost.click_seconds * deletes
            total += sum(_object_seconds(t, d, cost, limit) for t, d in zip(a.trace, a.drawn, strict=True))
        out[f"max_clicks_{limit}"] = total
    out["all_scratch"] = sum(cost.frame_from_scratch(len(a.masks)) for a in annotations)
    return {k: round(v, 1) for k, v in out.items()}


def summarise_arm(result: ArmResult, cost: CostModel) -> dict[str, Any]:
    """One arm's summary: seconds and keyframes to each threshold, clicks per keyframe, where the seconds went.

    ``breakdown``, ``clicks_per_keyframe``, ``fallback_rate``, ``accepted_rate`` and ``levers``
    describe the point that first reached the highest threshold reached (the last point if none did):
    what it took to get there.
    """
    curve = result.curve
    order = sorted(range(len(curve)), key=lambda n: (curve[n]["seconds"], curve[n]["frames"]))
    at = next((n for t in sorted(THRESHOLDS, reverse=True) for n in order if curve[n]["JF"] >= t - 1e-12), order[-1])
    annotations = result.sets[at]
    objects = sum(len(a.masks) for a in annotations)
    last = curve[order[-1]]
    return {
        "seconds_to": {f"{t:.2f}": first_reaching(curve, t) for t in THRESHOLDS},
        "keyframes_to": {f"{t:.2f}": first_reaching(curve, t, "frames") for t in THRESHOLDS},
        "keyframes": int(curve[at]["frames"]),
        "clicks_per_keyframe": round(float(np.mean([a.clicks for a in annotations])), 2) if annotations else None,
        "fallback_rate": round(sum(a.fallbacks for a in annotations) / objects, 3) if objects else None,
        "accepted_rate": round(sum(a.accepted for a in annotations) / objects, 3) if objects else None,
        "final_JF": round(float(last["JF"]), 4),
        "best_JF": round(float(max(p["JF"] for p in curve)), 4),
        "seconds_total": round(float(last["seconds"]), 1),
        "keyframes_total": int(last["frames"]),
        "breakdown": dict(curve[at]["breakdown"]),
        "breakdown_at": {"seconds": curve[at]["seconds"], "frames": curve[at]["frames"], "JF": curve[at]["JF"]},
        "levers": levers(annotations, cost),
    }


def targets(summary: Mapping[str, Mapping[str, Any]], threshold: str = "0.85") -> dict[str, Any]:
    """The issue's targets: ``curator`` to ``threshold`` within 1/50 of ``manual``'s seconds and half of ``uniform-scratch``'s.

    Each entry also gives the seconds per labelled frame ``curator`` spent and the most it could
    have spent with the same frames to meet the target (the lever left once the frames are fixed).
    """
    out: dict[str, Any] = {}
    if "curator" not in summary:
        return out
    mine = summary["curator"].get("seconds_to", {}).get(threshold)
    frames = summary["curator"].get("keyframes_to", {}).get(threshold)
    for arm, share in (("manual", 1 / 50), ("uniform-scratch", 1 / 2)):
        if arm not in summary:
            continue
        theirs = summary[arm].get("seconds_to", {}).get(threshold)
        limit = None if theirs is None else theirs * share
        out[f"curator_vs_{arm}"] = {
            "limit_share": share,
            "limit_seconds": None if limit is None else round(limit, 1),
            "curator_seconds": mine,
            "share": None if mine is None or not theirs else round(mine / theirs, 4),
            "met": bool(mine is not None and limit is not None and mine <= limit),
            "curator_frames": frames,
            "seconds_per_frame": None if mine is None or not frames else round(mine / frames, 1),
            "allowed_seconds_per_frame": None if limit is None or not frames else round(limit / frames, 1),
        }
    return out


def diagnose(summary: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Per arm, where its seconds went (the part with the most seconds first), as sentences."""
    lines = []
    names = {"look": "looking at frames", "clicks": "clicks that made masks", "wasted_clicks": "clicks before a fallback",
             "scratch": "masks drawn from scratch", "fallback": "masks drawn after the clicks fell short"}
    for arm, s in summary.items():
        parts = sorted(s["breakdown"].items(), key=lambda kv: -kv[1])
        total = sum(v for _, v in parts) or 1.0
        shares = ", ".join(f"{names[k]} {100 * v / total:.0f} %" for k, v in parts if v > 0)
        at = s["breakdown_at"]
        line = f"{arm}: {at['seconds']:.0f} s for {at['frames']} frames (J&F {at['JF']:.3f}): {shares}"
        lever = s.get("levers", {})
        if s["breakdown"].get("clicks", 0) + s["breakdown"].get("wasted_clicks", 0) > 0 and lever:
            line += (
                f". The same frames: {lever['no_wasted_clicks']:.0f} s drawing at once what the clicks do not finish, "
                f"{lever['max_clicks_5']:.0f} s giving up after 5 clicks, {lever['all_scratch']:.0f} s all drawn from scratch"
            )
        lines.append(line)
    return lines


def _check(arms: Sequence[str], budgets: Sequence[int], schedule: Sequence[int]) -> None:
    """Raise ``ValueError`` for no or unknown arms, or budgets / round sizes below 1."""
    if not arms:
        raise ValueError("give at least one arm")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; valid: {list(ARMS)}")
    if any(a.startswith("uniform") for a in arms) and (not budgets or min(budgets) < 1):
        raise ValueError(f"uniform arms need keyframe budgets of at least 1, got {list(budgets)}")
    if "curator" in arms and (not schedule or min(schedule) < 1):
        raise ValueError(f"the curator arm needs rounds of at least 1 frame, got {list(schedule)}")




def _run_arm(
    bench: Bench, arm: str, budgets: Sequence[int], schedule: Sequence[int], seed: int,
    selector_params: Mapping[str, Any] | None,
) -> ArmResult:
    """One arm's result."""
    if arm == "manual":
        return run_manual(bench)
    if arm == "curator":
        return run_curator(bench, schedule, params=selector_params, seed=seed)
    return run_uniform(bench, budgets, clicks=arm == "uniform-clicks")


def run_arms(
    bench: Bench,
    arms: Sequence[str],
    *,
    budgets: Sequence[int] = (1, 2, 4, 8),
    schedule: Sequence[int] = (10,) * 8,
    seed: int = 0,
    selector_params: Mapping[str, Any] | None = None,
    after_arm: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run each arm on ``bench``; the results part of the report.

    Returns:
        ``summary`` (per arm, :func:`summarise_arm`), ``targets``, ``diagnosis``, ``curves`` (per arm,
        the points), ``annotations`` (per arm, a record per frame it annotated; none for ``manual``),
        ``wall_seconds`` (per arm), ``propagation`` (memo statistics) and ``cached_annotations``.
    """
    budgets, schedule = [int(b) for b in budgets], [int(k) for k in schedule]
    _check(arms, budgets, schedule)
    curves: dict[str, list[dict[str, Any]]] = {}
    summary: dict[str, dict[str, Any]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    wall: dict[str, float] = {}
    for arm in arms:
        start = time.perf_counter()
        result = _run_arm(bench, arm, budgets, schedule, seed, selector_params)
        curves[arm] = result.curve
        summary[arm] = summarise_arm(result, bench.annotator.cost)
        records[arm] = [a.record() for a in result.annotations]
        wall[arm] = round(time.perf_counter() - start, 1)
        if after_arm is not None:
            after_arm(arm)
        bench.log(f"{arm}: seconds to J&F 0.80 / 0.85: {summary[arm]['seconds_to']} ({wall[arm]:.0f} s)")
    return {
        "summary": summary,
        "targets": targets(summary),
        "diagnosis": diagnose(summary),
        "curves": curves,
        "annotations": records,
        "wall_seconds": wall,
        "propagation": bench.memo.stats(),
        "cached_annotations": bench.annotator.cached,
    }


def run_effort_bench(
    davis: str | Path,
    checkpoint: str | Path,
    arms: Sequence[str] = ARMS,
    *,
    budgets: Sequence[int] = (1, 2, 4, 8),
    schedule: Sequence[int] = (10,) * 8,
    sequences: Sequence[str] | None = None,
    cost: CostModel | None = None,
    segmenter: str = "auto",
    propagator: str = "flow+feature",
    config: RoundConfig | None = None,
    selector_params: Mapping[str, Any] | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Simulate each arm's annotation campaign and report J&F against annotator-seconds (module docstring).

    Args:
        davis: DAVIS-layout folder.
        checkpoint: DINOv2 weights (pool embeddings, patch features, the propagator and ``feature`` clicks).
        arms: Names from :data:`ARMS`.
        budgets: Uniform keyframes per video, one point of the uniform arms' curves each.
        schedule: Frames the ``curator`` arm picks per round, across all videos.
        sequences: Sequence names (default all).
        cost: The cost model (default :meth:`CostModel.load` of the shipped file).
        segmenter: Click-to-segment backend name, or ``auto``.
        propagator: Propagator name.
        config: Round settings of the ``curator`` arm (default ``RoundConfig(short_side=336)``).
        selector_params: Settings of the ``curator`` selector.
        seed: Seed of the selector and the proxy.
        cache_dir: Folder for patch features, flow, embeddings and propagation outputs across runs.
        device: ``auto``, ``cpu`` or ``cuda``.
        log: Progress lines.

    Returns:
        :func:`run_arms`'s results (``summary``: per arm ``{"seconds_to": {"0.80", "0.85"}, "keyframes",
        "clicks_per_keyframe", ...}``, ``curves``, ...) with the ``settings`` and ``machine``.

    Raises:
        ValueError: For unknown arms, bad budgets or round sizes, or a folder without sequences.
    """
    _check(arms, [int(b) for b in budgets], [int(k) for k in schedule])
    cost = cost or CostModel.load()
    seqs = load_sequences(davis, sequences)
    cfg = config or RoundConfig(short_side=336)
    cfg = replace(cfg, proxy=replace(cfg.proxy, seed=seed))
    cache = Path(cache_dir) if cache_dir else None
    started = time.perf_counter()
    bench, segmenter_name = build_bench(seqs, checkpoint, propagator, segmenter, cost, cfg, cache, device, log)
    loaded = time.perf_counter() - started
    results = run_arms(bench, arms, budgets=budgets, schedule=schedule, seed=seed,
                       selector_params=selector_params, after_arm=lambda _: bench.save_caches())
    results["wall_seconds"].update(load=round(loaded, 1), total=round(time.perf_counter() - started, 1))
    settings = {
        "arms": list(arms), "budgets": [int(b) for b in budgets], "schedule": [int(k) for k in schedule],
        "cost": asdict(cost), "segmenter": segmenter_name, "segmenter_settings": describe(bench.annotator.segmenter),
        "propagator": propagator, "propagator_settings": bench.memo.settings, "selector": "curator",
        "selector_params": dict(selector_params or {}), "seed": seed, "round_config": asdict(cfg),
        "backbone_checkpoint": str(checkpoint), "device": device, "cache_dir": str(cache) if cache else None,
        "score": "J and F pooled over every object on every frame of every video (JF); JF_videos: DAVIS's mean over videos",
        "seconds_to": "annotator-seconds of the cheapest evaluated point whose J&F reaches the threshold",
    }
    return {
        "benchmark": "effort",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "davis": str(davis),
        "sequences": bench.names,
        "frames": len(bench.campaign.pool),
        **results,
        "settings": settings,
        "machine": machine_info(),
    }


def _fmt_seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:,.0f}"


def format_effort_table(report: Mapping[str, Any]) -> str:
    """The summary as a Markdown table, then the targets and where each arm's seconds went."""
    lines = [
        "| arm | s to J&F 0.80 | s to J&F 0.85 | frames labelled to 0.85 | clicks / frame | fallbacks | best J&F |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, s in report["summary"].items():
        keys = s["keyframes_to"]["0.85"]
        frames = f"never ({s['keyframes_total']} tried)" if keys is None else f"{int(keys)}"
        clicks = "-" if s["clicks_per_keyframe"] is None else f"{s['clicks_per_keyframe']:.1f}"
        fallback = "-" if s["fallback_rate"] is None else f"{100 * s['fallback_rate']:.0f} %"
        lines.append(
            f"| `{arm}` | {_fmt_seconds(s['seconds_to']['0.80'])} | {_fmt_seconds(s['seconds_to']['0.85'])} | "
            f"{frames} | {clicks} | {fallback} | {s['best_JF']:.3f} |"
        )
    lines.append("")
    for name, t in report.get("targets", {}).items():
        share = "-" if t["share"] is None else f"{t['share']:.3f}"
        line = f"{name}: curator's share {share}, limit {t['limit_share']:.3f}: {'met' if t['met'] else 'missed'}"
        if t["seconds_per_frame"] is not None and t["allowed_seconds_per_frame"] is not None:
            line += (
                f" ({t['seconds_per_frame']:.0f} s per frame over {int(t['curator_frames'])} frames; "
                f"the target allows {t['allowed_seconds_per_frame']:.1f} s)"
            )
        lines.append(line)
    lines.extend(["", *report.get("diagnosis", [])])
    return "\n".join(lines)


def plot_effort(report: Mapping[str, Any], path: str | Path) -> None:
    """J&F against annotator-hours (log scale) and against labelled frames, one line per arm, to a PNG."""
    from matplotlib.figure import Figure

    # a bare Figure draws off-screen without switching pyplot's backend (notebooks keep theirs)
    fig = Figure(figsize=(10, 3.8))
    by_time, by_frames = fig.subplots(1, 2)
    for arm, curve in report["curves"].items():
        pts = sorted((p for p in curve if p["frames"] > 0), key=lambda p: p["seconds"])
        if not pts:
            continue
        style = {"marker": "o", "ms": 3} if arm != "manual" else {"lw": 1.5}
        by_time.plot([p["seconds"] / 3600 for p in pts], [p["JF"] for p in pts], label=arm, **style)
        by_frames.plot([p["frames"] for p in pts], [p["JF"] for p in pts], label=arm, **style)
    for ax in (by_time, by_frames):
        for t in THRESHOLDS:
            ax.axhline(t, color="grey", lw=0.7, ls="--")
        ax.set_xscale("log")
        ax.set_ylim(0.4, 1)
        ax.grid(alpha=0.3)
        ax.set_ylabel("J&F over every frame")
    limit = report.get("targets", {}).get("curator_vs_manual", {}).get("limit_seconds")
    if limit:
        by_time.axvline(limit / 3600, color="black", lw=0.8, ls=":", label="1/50 of manual to 0.85")
    by_time.set_xlabel("annotator-hours (log)")
    by_frames.set_xlabel("frames a person labelled (log)")
    by_time.set_title(f"{len(report['sequences'])} videos, {report['frames']} frames")
    by_frames.set_title(f"{report['settings']['segmenter']} clicks to IoU {report['settings']['cost']['target_iou']}")
    by_time.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
