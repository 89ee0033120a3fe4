"""``curator bench loop``: a simulated labelling campaign over every sequence of a DAVIS-layout folder.

All sequences form one project. For each strategy, round ``r = 1..R``:

1. the strategy picks ``per_round`` frames across all videos from a pool holding every frame (DINOv2
   CLS embeddings, one shot per video, the frames labelled so far, and the previous round's per-frame
   scores, see :mod:`curator.train.scores`);
2. a simulated perfect annotator gives the picked frames their ground-truth masks;
3. the round runs (:func:`curator.train.loop.run_round`: propagate from every human label, train the
   proxy, score every frame, densify);
4. the dense labels (human, then confident propagation, then the proxy) are scored against the ground
   truth over every frame of every video.

``JF`` after a round is the mean J&F over every object on every frame of every video, so each frame
counts once (on single-object sequences), as every frame is a training sample of the dataset being
built; ``JF_videos`` is the DAVIS convention instead (the mean over videos of each video's J&F).

Everything derived from frames (optical flow, patch features) is cached on the in-memory videos and
shared by all strategies and rounds, so ``seconds`` of a round is mostly propagation, training and
scoring; the first round of the first strategy also pays for flow. Patch features and CLS embeddings
are also kept in ``cache_dir`` when one is given (the same patch cache as ``curator bench keyframes``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.davis import DavisSequence
from benchmarks.keyframes import (
    FPS,
    build_propagator,
    check_strategies,
    embed_frames,
    ground_truth,
    load_patch_cache,
    load_sequences,
    machine_info,
    patch_entries,
    save_patch_cache,
)
from curator.annotate.frames import FrameSource
from curator.eval import score_frame
from curator.pool import Pool
from curator.train.loop import FrameOutcome, RoundConfig, VideoState, run_round


def _patch_cache(cache_dir: Path | None, name: str) -> Path | None:
    return cache_dir / f"{name}-patch.pkl" if cache_dir is not None else None


def _embed(seq: DavisSequence, frames: Sequence[np.ndarray], backbone: Any, name: str, cache_dir: Path | None) -> np.ndarray:
    """CLS embeddings of a sequence, read from / written to ``cache_dir`` when given."""
    path = cache_dir / f"{seq.name}-{name}-cls.npy" if cache_dir is not None else None
    if path is not None and path.is_file():
        cached = np.load(path)
        if len(cached) == len(frames):
            return np.asarray(cached, dtype=np.float32)
    emb = embed_frames(frames, backbone)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, emb)
    return emb


class Campaign:
    """The sequences of a DAVIS folder as one in-memory project: videos, ground truth and pool.

    Attributes:
        names: Sequence names, in video-key order.
        videos: One :class:`VideoState` per sequence (key = position); ``human`` is the labelled set.
        gt: Per video, per frame, ``{object id: (H, W) bool}`` ground-truth masks.
        pool: Every frame of every video (row order = video order, then frame order).
    """

    def __init__(self, seqs: Sequence[DavisSequence], backbone: Any, backbone_name: str, cache_dir: Path | None) -> None:
        self.names = [s.name for s in seqs]
        self.videos: list[VideoState] = []
        self.gt: list[list[dict[int, np.ndarray]]] = []
        embeddings, video_ids, stamps, frame_ids = [], [], [], []
        offset = 0
        for key, seq in enumerate(seqs):
            frames = seq.frames()
            n = len(frames)
            self.gt.append(ground_truth(seq))
            source = FrameSource(frames, cache=True)
            load_patch_cache(source, _patch_cache(cache_dir, seq.name))
            ids = np.arange(offset, offset + n, dtype=np.int64)
            self.videos.append(VideoState(key, source, ids, np.zeros(n, dtype=np.int64)))
            embeddings.append(_embed(seq, frames, backbone, backbone_name, cache_dir))
            video_ids.append(np.full(n, key, dtype=np.int64))
            stamps.append(np.arange(n, dtype=np.float64) / FPS)
            frame_ids.append(ids)
            offset += n
        video_arr = np.concatenate(video_ids)
        self.pool = Pool(
            embeddings=np.concatenate(embeddings),
            frame_ids=np.concatenate(frame_ids),
            video_ids=video_arr,
            timestamps=np.concatenate(stamps),
            shot_ids=video_arr.copy(),  # one shot per sequence
            labeled=np.zeros(offset, dtype=bool),
        )
        self._row = {int(f): (v, i) for v, video in enumerate(self.videos) for i, f in enumerate(video.frame_ids.tolist())}

    def reset(self) -> None:
        """Forget every label and score (flow and feature caches stay)."""
        for video in self.videos:
            video.human = {}
        self.pool.labeled[:] = False
        self.pool = replace(self.pool, scores={})

    def annotate(self, rows: Sequence[int]) -> list[tuple[str, int]]:
        """The simulated annotator: give pool rows their ground-truth masks; returns ``(sequence, frame)``."""
        out = []
        for row in rows:
            v, i = self._row[int(self.pool.frame_ids[row])]
            self.videos[v].human[i] = {k: m for k, m in self.gt[v][i].items() if m.any()}
            self.pool.labeled[row] = True
            out.append((self.names[v], i))
        return out

    def set_scores(self, scores: Mapping[int, Mapping[str, float]]) -> None:
        """Put a round's per-frame scores into the pool (frames without a score get NaN)."""
        names = sorted({k for s in scores.values() for k in s})
        arrays: dict[str, np.ndarray] = {}
        for name in names:
            values = np.full(len(self.pool), np.nan)
            for row, fid in enumerate(self.pool.frame_ids.tolist()):
                s = scores.get(int(fid))
                if s is not None and name in s:
                    values[row] = s[name]
            arrays[name] = values
        self.pool = replace(self.pool, scores=arrays)

    def save_patch_caches(self, cache_dir: Path) -> None:
        """Write each video's patch features to ``cache_dir`` for later runs."""
        for name, video in zip(self.names, self.videos, strict=True):
            path = _patch_cache(cache_dir, name)
            assert path is not None
            if patch_entries(video.source) and not path.is_file():
                save_patch_cache(video.source, path)


class _Scorer:
    """Streams a round's dense labels into J and F per video (a sink for :func:`run_round`)."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.scores: dict[int, list[tuple[int, float, float]]] = {}
        self.sources: dict[str, int] = {}

    def __call__(self, outcome: FrameOutcome) -> None:
        gt = self.campaign.gt[outcome.video][outcome.index]
        shape = next(iter(gt.values())).shape if gt else self.campaign.videos[outcome.video].source.size
        pred = {k: outcome.masks.get(k, np.zeros(shape, bool)) for k in gt}
        for s in score_frame(pred, gt, outcome.index):
            self.scores.setdefault(outcome.video, []).append((s.obj, s.J, s.F))
        self.sources[outcome.source] = self.sources.get(outcome.source, 0) + 1

    def summary(self) -> dict[str, Any]:
        per_video: dict[str, float] = {}
        js: list[float] = []
        fs: list[float] = []
        all_j: list[float] = []
        all_f: list[float] = []
        for v, rows in sorted(self.scores.items()):
            objs = sorted({o for o, _, _ in rows})
            j = float(np.mean([np.mean([r[1] for r in rows if r[0] == o]) for o in objs]))
            f = float(np.mean([np.mean([r[2] for r in rows if r[0] == o]) for o in objs]))
            per_video[self.campaign.names[v]] = (j + f) / 2
            js.append(j)
            fs.append(f)
            all_j.extend(r[1] for r in rows)
            all_f.extend(r[2] for r in rows)
        j, f = float(np.mean(all_j)), float(np.mean(all_f))
        return {
            "J": j,
            "F": f,
            "JF": (j + f) / 2,
            "JF_videos": float((np.mean(js) + np.mean(fs)) / 2),
            "per_video": per_video,
            "dense_sources": dict(self.sources),
        }


@dataclass(frozen=True)
class _RoundModels:
    """What every round runs with: the propagator, the proxy's patch features and the round settings."""

    propagator: Any
    features: Any
    config: RoundConfig


def _check_args(strategies: Sequence[str], rounds: int, per_round: int) -> None:
    """Raise ``ValueError`` for no or unknown strategies, or ``rounds`` or ``per_round`` below 1."""
    if not strategies:
        raise ValueError("give at least one strategy")
    check_strategies(strategies)
    if rounds < 1 or per_round < 1:
        raise ValueError(f"rounds and per_round must be at least 1, got {rounds} and {per_round}")


def _load_models(checkpoint: str | Path, propagator: str, cfg: RoundConfig) -> tuple[Any, _RoundModels]:
    """The DINOv2 backbone, and the propagator and patch features built on it."""
    from curator.annotate.feature import PatchFeatures
    from curator.embed import create_backbone

    backbone = create_backbone("dinov2_vits14", checkpoint=checkpoint, device="auto").backbone
    features = PatchFeatures(backbone=backbone, short_side=cfg.short_side)
    prop = build_propagator(propagator, backbone, short_side=cfg.short_side) if propagator in (
        "feature", "flow+feature"
    ) else build_propagator(propagator)
    return backbone, _RoundModels(prop, features, cfg)


def _run_round(
    campaign: Campaign,
    models: _RoundModels,
    selector: Any,
    rng: np.random.Generator,
    per_round: int,
    strategy: str,
    r: int,
) -> dict[str, Any]:
    """Round ``r`` of ``strategy``: pick and annotate ``per_round`` frames, run the round, score it.

    Returns:
        The round's row of the report.
    """
    start = time.perf_counter()
    selection = selector.select(campaign.pool, per_round, rng)
    picked = campaign.annotate([int(i) for i in selection.indices])
    select_s = time.perf_counter() - start
    scorer = _Scorer(campaign)
    result = run_round(campaign.videos, models.propagator, models.features, models.config, sink=scorer)
    campaign.set_scores(result.scores)
    summary = scorer.summary()
    return {
        "strategy": strategy,
        "round": r,
        "annotated": int(campaign.pool.labeled.sum()),
        "JF": summary["JF"],
        "J": summary["J"],
        "F": summary["F"],
        "JF_videos": summary["JF_videos"],
        "seconds": time.perf_counter() - start,
        "timings": {"select": select_s, **result.timings},
        "proxy_JF": result.metrics.get("proxy_JF"),
        "dense_sources": summary["dense_sources"],
        "per_video": summary["per_video"],
        "picks": [[name, i] for name, i in picked],
        "reasons": list(selection.reasons),
    }


def _run_strategy(
    campaign: Campaign,
    models: _RoundModels,
    strategy: str,
    selector_params: Mapping[str, Any],
    rounds: int,
    per_round: int,
    seed: int,
    log: Callable[[str], None] | None,
) -> list[dict[str, Any]]:
    """Every round of one strategy from no labels; returns a report row per round."""
    from curator_selectors import create_selector

    campaign.reset()
    selector = create_selector(strategy, **selector_params)
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(1, rounds + 1):
        row = _run_round(campaign, models, selector, rng, per_round, strategy, r)
        rows.append(row)
        if log is not None:
            log(
                f"{strategy} round {r}: {row['annotated']} annotated, J&F {row['JF']:.3f} "
                f"({row['seconds']:.0f} s)"
            )
    return rows


def run_loop_bench(
    davis: str | Path,
    rounds: int,
    per_round: int,
    strategies: Sequence[str],
    checkpoint: str | Path,
    propagator: str = "flow+feature",
    sequences: Sequence[str] | None = None,
    seed: int = 0,
    config: RoundConfig | None = None,
    selector_params: Mapping[str, Mapping[str, Any]] | None = None,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the campaign benchmark (module docstring) and return the report.

    Args:
        davis: DAVIS-layout folder.
        rounds: Rounds per strategy.
        per_round: Frames the strategy picks (and the annotator labels) per round, across all videos.
        strategies: Selector names from the ``curator_selectors`` registry.
        checkpoint: DINOv2 weights (pool embeddings, patch features of the proxy and the propagator).
        propagator: Propagator name.
        sequences: Sequence names to use (default all).
        seed: Seed of the selectors and the proxy model.
        config: Round settings (default: :class:`RoundConfig` with ``short_side`` 336, the feature
            propagators' grid, so their patch features are shared with the proxy).
        selector_params: Constructor settings per strategy name.
        cache_dir: Folder for per-sequence patch features and CLS embeddings, reused across runs.
        log: Called with a line per round.

    Returns:
        ``{"rounds": [{"strategy", "round", "annotated", "JF", "seconds", ...}], "summary":
        {strategy: [[annotated, JF], ...]}, "settings", "machine", ...}``.

    Raises:
        ValueError: For no strategies, an unknown strategy, ``rounds`` or ``per_round`` below 1, or a
            folder without sequences.
    """
    _check_args(strategies, rounds, per_round)
    seqs = load_sequences(davis, sequences)
    cfg = config or RoundConfig(short_side=336)
    cfg = replace(cfg, proxy=replace(cfg.proxy, seed=seed))
    backbone, models = _load_models(checkpoint, propagator, cfg)
    cache = Path(cache_dir) if cache_dir else None
    campaign = Campaign(seqs, backbone, "dinov2_vits14", cache)
    params = {k: dict(v) for k, v in (selector_params or {}).items()}
    rows: list[dict[str, Any]] = []
    for strategy in strategies:
        rows.extend(_run_strategy(campaign, models, strategy, params.get(strategy, {}), rounds, per_round, seed, log))
        if cache is not None:
            campaign.save_patch_caches(cache)
    summary: dict[str, list[list[float]]] = {}
    for row in rows:
        summary.setdefault(row["strategy"], []).append([row["annotated"], row["JF"]])
    return {
        "benchmark": "loop",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "davis": str(davis),
        "sequences": campaign.names,
        "frames": len(campaign.pool),
        "settings": {
            "rounds": rounds,
            "per_round": per_round,
            "strategies": list(strategies),
            "selector_params": params,
            "propagator": propagator,
            "backbone_checkpoint": str(checkpoint),
            "seed": seed,
            "round_config": asdict(cfg),
        },
        "machine": machine_info(),
        "rounds": rows,
        "summary": summary,
    }


def frames_to_reach(summary: Sequence[Sequence[float]], target: float) -> float | None:
    """Fewest annotated frames at which a strategy's J&F reaches ``target`` (``None`` if never)."""
    for annotated, jf in summary:
        if jf >= target - 1e-12:
            return float(annotated)
    return None


def plot_loop(report: Mapping[str, Any], path: str | Path) -> None:
    """Plot J&F of the dense labels against annotated frames, one line per strategy, to a PNG."""
    from matplotlib.figure import Figure

    # a bare Figure draws off-screen without switching pyplot's backend (notebooks keep theirs)
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    for strategy, points in report["summary"].items():
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        ax.plot(xs, ys, marker="o", label=strategy)
    ax.set_xlabel("annotated frames")
    ax.set_ylabel("mean J&F of dense labels")
    ax.grid(alpha=0.3)
    settings = report["settings"]
    ax.set_title(f"{len(report['sequences'])} videos, {settings['per_round']} frames per round")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def format_loop_table(report: Mapping[str, Any]) -> str:
    """Plain-text table: J&F per strategy after each round (annotated frames in the header)."""
    strategies = list(report["summary"])
    rounds = max(len(v) for v in report["summary"].values())
    first = report["summary"][strategies[0]]
    head = "strategy".ljust(12) + "".join(f"{int(p[0]):>8}" for p in first[:rounds])
    lines = [head]
    for s in strategies:
        lines.append(s.ljust(12) + "".join(f"{p[1]:8.3f}" for p in report["summary"][s]))
    return "\n".join(lines)
