"""``curator bench placement``: the best keyframe placement inside each sequence, found with the ground truth.

A selector only decides *where* the keyframes go; the propagator decides the rest. This benchmark
measures how much placement can be worth for a given propagator: for every sequence and budget ``B``
it finds, by an exact search that reads the ground truth, the ``B`` frames whose propagated masks
score the highest mean J&F, and scores the strategies' own picks the same way. No selector, with or
without labels, can beat that oracle, so ``oracle - uniform`` is the headroom a selector has to play
with on that propagator and data.

Why the search is exact and affordable: a :class:`~curator.annotate.engine.BidirectionalPropagator`
tracks each frame from its nearest keyframe on each side with one-way chains that do not depend on
any other keyframe, and blends the two sides by :func:`~curator.annotate.blend.blend_sides`. So with
chains run once from every anchor frame (``O(n^2)`` tracking steps per sequence), the J&F sum of
any placement ``k1 < ... < kB`` splits into

* ``head[k1]``: frames before the first keyframe (tracked backwards from it),
* ``seg[ki, ki+1]``: frames between neighbouring keyframes (the blend of both chains),
* ``tail[kB]``: frames after the last keyframe, and 1 per keyframe (its true masks),

and a dynamic programme over anchors finds the best placement for every budget in ``O(B n^2)``.
The per-sequence sums are cached, so the scores of new strategies come at no propagation cost.
Chains are kept quantised to 8 bits (as the propagator keeps its backward side), so scores match a
real propagation to within about 1e-4.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curator.annotate.blend import SoftStore, blend_sides, exclusive_masks, soft_confidence
from curator.annotate.engine import BidirectionalPropagator
from curator.annotate.frames import FrameSource
from curator.eval import MaskScorer

if TYPE_CHECKING:
    from benchmarks.davis import DavisSequence


@dataclass
class PlacementSums:
    """Per-sequence sums of per-frame J&F from which the score of any placement follows exactly.

    Attributes:
        n: Frames in the sequence.
        head: ``(n,)``; ``head[a]`` sums J&F over frames ``t < a`` tracked backwards from ``a``.
        tail: ``(n,)``; ``tail[a]`` sums J&F over frames ``t > a`` tracked forwards from ``a``.
        seg: ``(n, n)``; ``seg[a, b]`` sums J&F over frames ``a < t < b`` blended from ``a`` and ``b``.
        empty: J&F sum when no keyframe shows any object (every frame gets empty masks).
        visible: ``(n,)`` bool; whether any object shows on the frame (only those can be keyframes).

    Entries are NaN where ``a`` (or ``b``) is not an anchor: a frame the chains were not run from, or
    one on which no object is visible (such a frame cannot be a keyframe).
    """

    n: int
    head: np.ndarray
    tail: np.ndarray
    seg: np.ndarray
    empty: float
    visible: np.ndarray

    @property
    def anchors(self) -> list[int]:
        """Frames that can be keyframes here."""
        return [int(a) for a in np.flatnonzero(~np.isnan(self.head))]

    def score(self, keyframes: Sequence[int]) -> float:
        """Mean J&F over the sequence with ``keyframes`` (frames showing no object are dropped, as in the bench).

        Raises:
            ValueError: If a keyframe showing an object is not an anchor of these sums.
        """
        keys = sorted({int(k) for k in keyframes})
        outside = [k for k in keys if not 0 <= k < self.n]
        if outside:
            raise ValueError(f"frames {outside} are outside the sequence (0..{self.n - 1})")
        keys = [k for k in keys if self.visible[k]]
        missing = [k for k in keys if np.isnan(self.head[k])]
        if missing:
            raise ValueError(f"frames {missing} are not anchors of these placement sums")
        if not keys:
            return self.empty / self.n
        total = self.head[keys[0]] + self.tail[keys[-1]] + len(keys)
        for a, b in itertools.pairwise(keys):
            total += self.seg[a, b]
        return float(total / self.n)

    def best(self, budget: int) -> tuple[float, list[int]]:
        """The highest mean J&F any ``budget`` keyframes reach, and those keyframes (earliest on ties)."""
        anchors = self.anchors
        budget = min(int(budget), len(anchors))
        if budget <= 0:
            return self.empty / self.n, []
        idx = np.array(anchors)
        seg = self.seg[np.ix_(idx, idx)]
        seg = np.where(np.triu(np.ones_like(seg, dtype=bool), 1) & ~np.isnan(seg), seg, -np.inf)
        value = self.head[idx] + 1.0  # value[j]: best sum up to and including anchor j as the latest keyframe
        back: list[np.ndarray] = []
        for _ in range(budget - 1):
            cand = value[:, None] + seg + 1.0  # (from, to)
            arg = np.argmax(cand, axis=0)
            value = cand[arg, np.arange(len(idx))]
            back.append(arg)
        final = value + self.tail[idx]
        j = int(np.argmax(final))
        total = float(final[j])
        keys = [j]
        for arg in reversed(back):
            j = int(arg[j])
            keys.append(j)
        return total / self.n, sorted(int(idx[k]) for k in keys)

    def save(self, path: str | Path) -> None:
        """Write the sums to an ``.npz`` file."""
        np.savez(
            Path(path),
            n=self.n,
            head=self.head,
            tail=self.tail,
            seg=self.seg,
            empty=self.empty,
            visible=self.visible,
        )

    @classmethod
    def load(cls, path: str | Path) -> PlacementSums:
        """Read sums written by :meth:`save`."""
        with np.load(Path(path)) as data:
            return cls(
                int(data["n"]), data["head"], data["tail"], data["seg"], float(data["empty"]), data["visible"]
            )


def placement_sums(
    propagator: BidirectionalPropagator,
    frames: FrameSource,
    gt: Sequence[dict[int, np.ndarray]],
    anchors: Sequence[int] | None = None,
    log: Callable[[str], None] | None = None,
) -> PlacementSums:
    """Track from every anchor in both directions and sum per-frame J&F for every head, tail and segment.

    Args:
        propagator: A bidirectional propagator (its :meth:`track` chains are what it blends).
        frames: The sequence (one shot).
        gt: Per frame, ``{object id: (H, W) bool mask}`` for every object of the sequence.
        anchors: Candidate keyframes (default: every frame).
        log: Called with a progress line every 10 anchors.

    Returns:
        The sums; per-frame J&F is the mean over objects, as :func:`curator.eval.score_sequence` has it.

    Raises:
        ValueError: If ``gt`` does not have one entry per frame or lists no object.
    """
    n = len(frames)
    if len(gt) != n:
        raise ValueError(f"ground truth has {len(gt)} frames, the sequence {n}")
    objects = sorted({int(k) for g in gt for k in g})
    if not objects:
        raise ValueError("the ground truth lists no object")
    size = frames.size
    visible = np.array([any(np.asarray(m).any() for m in g.values()) for g in gt], dtype=bool)
    anchors = sorted(
        {int(a) for a in (range(n) if anchors is None else anchors) if 0 <= int(a) < n and visible[a]}
    )
    store = SoftStore()
    confidence: dict[tuple[int, int], dict[int, float]] = {}
    start = time.perf_counter()
    for i, a in enumerate(anchors):
        init = {k: np.asarray(gt[a].get(k, np.zeros(size, bool)), dtype=np.float32) for k in objects}
        for order in (list(range(a + 1, n)), list(range(a - 1, -1, -1))):
            if order:
                for t, probs in propagator.track(frames, a, init, order):
                    store.put((a, t), probs)
                    confidence[(a, t)] = {k: soft_confidence(p) for k, p in probs.items()}
        if log is not None and ((i + 1) % 10 == 0 or i + 1 == len(anchors)):
            log(f"  tracked from {i + 1}/{len(anchors)} anchors ({time.perf_counter() - start:.0f} s)")

    head = np.full(n, np.nan)
    tail = np.full(n, np.nan)
    seg = np.full((n, n), np.nan)
    head[anchors] = 0.0
    tail[anchors] = 0.0
    for i, a in enumerate(anchors):
        seg[a, anchors[i + 1 :]] = 0.0
    empty = 0.0
    threshold = propagator.threshold
    for t in range(n):
        scorers = {k: MaskScorer(np.asarray(gt[t].get(k, np.zeros(size, bool)))) for k in objects}

        def jf(probs: dict[int, np.ndarray], scorers: dict[int, MaskScorer] = scorers) -> float:
            masks = exclusive_masks(probs, objects, threshold)
            return float(np.mean([scorers[k].jf(masks[k]) for k in objects]))

        empty += float(np.mean([scorers[k].jf(np.zeros(size, bool)) for k in objects]))
        before = [a for a in anchors if a < t]
        after = [b for b in anchors if b > t]
        fwd = {a: store.get((a, t)) for a in before}
        bwd = {b: store.get((b, t)) for b in after}
        for a, probs in fwd.items():
            tail[a] += jf(probs)
        for b, probs in bwd.items():
            head[b] += jf(probs)
        for a, pa in fwd.items():
            ca = confidence[(a, t)]
            for b, pb in bwd.items():
                cb = confidence[(b, t)]
                seg[a, b] += jf({k: blend_sides(t, a, b, pa[k], pb[k], ca[k], cb[k]) for k in objects})
    return PlacementSums(n, head, tail, seg, empty, visible)


def _cache_name(
    sequence: str, propagator: str, options: dict[str, Any], anchors: Sequence[int] | None
) -> str:
    key = repr(
        (sorted((k, str(v)) for k, v in options.items()), None if anchors is None else sorted(anchors))
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return f"{sequence}-placement-{propagator.replace('+', '_')}-{digest}.npz"


def run_placement_bench(
    davis: str | Path,
    budgets: Sequence[int],
    strategies: Sequence[str],
    propagator: str,
    checkpoint: str | Path | None = None,
    sequences: Sequence[str] | None = None,
    propagator_options: dict[str, Any] | None = None,
    stride: int = 1,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run the placement oracle on DAVIS-layout sequences and score the strategies' picks against it.

    Args:
        davis: DAVIS-layout folder.
        budgets: Keyframe budgets.
        strategies: Selector names whose picks are scored (their picks join the anchors).
        propagator: A bidirectional propagator's name (``flow``, ``feature``, ``flow+feature``).
        checkpoint: DINOv2 weights for the pool embeddings and the feature-based propagators.
        sequences: Sequence names (default all).
        propagator_options: Extra propagator settings.
        stride: Anchors every ``stride`` frames (1: exact; larger is cheaper and gives a lower bound).
        seed: Seed of the selectors' random generator.
        log: Called with progress lines.
        cache_dir: Folder for per-sequence patch features and placement sums (reused across runs).

    Returns:
        ``{"rows": [...], "summary": {"oracle" or strategy: {budget: mean J&F}}, "headroom": {strategy:
        {budget: oracle minus strategy}}, ...}``; each row holds one sequence and budget with the
        oracle's keyframes and score and every strategy's.

    Raises:
        ValueError: For bad budgets, strategies, stride, or a propagator that is not bidirectional.
    """
    from benchmarks.keyframes import bench_models, check_strategies, load_sequences

    if not budgets or any(int(b) < 1 for b in budgets):
        raise ValueError(f"budgets must be positive integers, got {list(budgets)}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    check_strategies(strategies)
    seqs = load_sequences(davis, sequences)
    backbone, backbone_name, options, prop = bench_models(propagator, checkpoint, propagator_options)
    if not isinstance(prop, BidirectionalPropagator):
        raise ValueError(
            f"propagator {propagator!r} does not track in one-way chains; the oracle needs one that does"
        )
    rows: list[dict[str, Any]] = []
    for seq in seqs:
        frames = seq.frames()
        picks = _strategy_picks(frames, backbone, strategies, budgets, seed)
        n = len(frames)
        anchors = None if stride == 1 else sorted(set(range(0, n, stride)).union(*picks.values()))
        sums = _sequence_sums(
            seq, frames, prop, propagator, options, anchors, checkpoint=checkpoint, cache_dir=cache_dir, log=log
        )
        rows.extend(_sequence_rows(seq.name, n, sums, picks, budgets, strategies))
        if log is not None:
            log(
                f"{seq.name}: "
                + ", ".join(
                    f"B={r['budget']} oracle {r['oracle']['JF']:.3f}"
                    for r in rows
                    if r["sequence"] == seq.name
                )
            )
    return _placement_report(
        davis, [s.name for s in seqs], budgets, strategies, propagator, options, backbone_name, stride, rows
    )


def _strategy_picks(
    frames: Sequence[np.ndarray], backbone: Any, strategies: Sequence[str], budgets: Sequence[int], seed: int
) -> dict[tuple[str, int], list[int]]:
    """Every strategy's keyframes for every budget, ``(strategy, budget) -> frame indices``."""
    from benchmarks.keyframes import build_pool, pick_keyframes
    from curator_selectors import create_selector

    pool = build_pool(frames, backbone)
    picks: dict[tuple[str, int], list[int]] = {}
    for strategy in strategies:
        selector = create_selector(strategy)
        for budget in budgets:
            picks[(strategy, int(budget))] = pick_keyframes(selector, pool, budget, seed)
    return picks


def _sequence_sums(
    seq: DavisSequence,
    frames: Sequence[np.ndarray],
    prop: BidirectionalPropagator,
    propagator: str,
    options: dict[str, Any],
    anchors: Sequence[int] | None,
    *,
    checkpoint: str | Path | None,
    cache_dir: str | Path | None,
    log: Callable[[str], None] | None,
) -> PlacementSums:
    """The placement sums of one sequence: from the cache when there, else tracked (and cached)."""
    from benchmarks.keyframes import ground_truth, load_patch_cache, save_patch_cache

    n = len(frames)
    gt = ground_truth(seq)
    cache = Path(cache_dir) / _cache_name(seq.name, propagator, options, anchors) if cache_dir else None
    if cache is not None and cache.is_file():
        sums = PlacementSums.load(cache)
        if log is not None:
            log(f"{seq.name}: placement sums from {cache}")
        return sums
    if log is not None:
        log(f"{seq.name} ({n} frames): tracking from {n if anchors is None else len(anchors)} anchors")
    source = FrameSource(frames, cache=True)
    patch_file = Path(cache_dir) / f"{seq.name}-patch.pkl" if cache_dir else None
    load_patch_cache(source, patch_file)
    sums = placement_sums(prop, source, gt, anchors, log)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        sums.save(cache)
        if patch_file is not None and checkpoint:
            save_patch_cache(source, patch_file)
    return sums


def _sequence_rows(
    name: str,
    n: int,
    sums: PlacementSums,
    picks: dict[tuple[str, int], list[int]],
    budgets: Sequence[int],
    strategies: Sequence[str],
) -> list[dict[str, Any]]:
    """One row per budget: the oracle's keyframes and J&F, then every strategy's on the same sums."""
    rows: list[dict[str, Any]] = []
    for budget in budgets:
        value, keys = sums.best(int(budget))
        row: dict[str, Any] = {
            "sequence": name,
            "frames": n,
            "budget": int(budget),
            "oracle": {"JF": value, "keyframes": keys},
        }
        for strategy in strategies:
            chosen = picks[(strategy, int(budget))]
            row[strategy] = {"JF": sums.score(chosen), "keyframes": chosen}
        rows.append(row)
    return rows


def _placement_report(
    davis: str | Path,
    sequences: list[str],
    budgets: Sequence[int],
    strategies: Sequence[str],
    propagator: str,
    options: dict[str, Any],
    backbone_name: str,
    stride: int,
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON-ready report: settings, mean J&F per budget, the oracle's lead, and the rows."""
    from benchmarks.keyframes import machine_info

    names = ["oracle", *strategies]
    summary = {
        name: {
            str(b): float(np.mean([r[name]["JF"] for r in rows if r["budget"] == int(b)])) for b in budgets
        }
        for name in names
    }
    return {
        "benchmark": "placement",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "davis": str(davis),
        "sequences": sequences,
        "budgets": [int(b) for b in budgets],
        "strategies": list(strategies),
        "propagator": propagator,
        "propagator_options": {k: str(v) for k, v in options.items() if k != "backbone"},
        "backbone": backbone_name,
        "stride": stride,
        "machine": machine_info(),
        "summary": summary,
        "headroom": {
            s: {b: summary["oracle"][b] - summary[s][b] for b in summary["oracle"]} for s in strategies
        },
        "rows": rows,
    }


def format_placement_table(report: dict[str, Any]) -> str:
    """Mean J&F per budget for the oracle and each strategy, then the oracle's lead in points."""
    budgets = [str(b) for b in report["budgets"]]
    lines = ["placement".ljust(12) + "".join(f"B={b}".rjust(8) for b in budgets)]
    for name, per_budget in report["summary"].items():
        lines.append(name.ljust(12) + "".join(f"{per_budget[b]:8.3f}" for b in budgets))
    lines.append("oracle lead over each strategy, J&F points:")
    for name, per_budget in report["headroom"].items():
        lines.append(name.ljust(12) + "".join(f"{100 * per_budget[b]:8.1f}" for b in budgets))
    return "\n".join(lines)
