"""How far can splitting a labelling budget between videos go? An exact bound from measured curves.

A campaign chooses how many keyframes each video gets and where they go inside it. The keyframe
benchmark (``curator bench keyframes``) measures, per video, J&F against the number of keyframes
for a placement rule. Given those per-video curves, :func:`best_allocation` finds the split of a
total budget between videos that maximises the mean J&F, by an exact dynamic programme over the
measured budgets. It is an oracle (it reads the ground-truth scores), so it bounds what any
allocation policy using that placement can reach: if the best split of 30 frames stays below what
an even split reaches with 50, no selector that only moves frames between videos can get there.

``curator bench allocation --report keyframes.json --strategy uniform --frames 20,30,40,50`` prints the
bound per total next to the even split and writes it as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

WEIGHTINGS = ("videos", "frames")


def _normalised(videos: Sequence[str], weights: Mapping[str, float] | None) -> np.ndarray:
    """Per-video weights in ``videos`` order, summing to 1 (equal when ``weights`` is ``None``)."""
    w = np.array([float((weights or {}).get(v, 1.0)) for v in videos])
    return w / w.sum()


def curves_from_report(report: Mapping[str, Any], strategy: str) -> tuple[dict[str, dict[int, float]], dict[str, int]]:
    """Per-video ``{budget: J&F}`` curves and frame counts of ``strategy`` in a keyframe-bench report.

    Raises:
        ValueError: If the report has no rows for ``strategy`` (the message lists those it has).
    """
    rows = [r for r in report.get("rows", []) if r.get("strategy") == strategy]
    if not rows:
        have = sorted({str(r.get("strategy")) for r in report.get("rows", [])})
        raise ValueError(f"the report has no rows for strategy {strategy!r}; it has {have or 'none'}")
    curves: dict[str, dict[int, float]] = {}
    frames: dict[str, int] = {}
    for r in rows:
        curves.setdefault(str(r["sequence"]), {})[int(r["budget"])] = float(r["JF"])
        frames[str(r["sequence"])] = int(r["frames"])
    return curves, frames


def best_allocation(
    curves: Mapping[str, Mapping[int, float]],
    total: int,
    weights: Mapping[str, float] | None = None,
    min_per_video: int = 1,
) -> tuple[float, dict[str, int]]:
    """The split of ``total`` keyframes between videos with the highest weighted mean J&F.

    Each video gets one of its measured budgets (at least ``min_per_video``); budgets not spent are
    lost, so a total that no combination hits exactly uses the best combination below it. Exact:
    a knapsack-style dynamic programme over videos and totals, ``O(videos * total * budgets)``.

    Args:
        curves: ``{video: {budget: J&F}}``.
        total: Keyframes to share.
        weights: Weight of each video in the mean (default equal: the DAVIS per-video mean; pass
            frame counts for J&F pooled over frames).
        min_per_video: Least keyframes any video gets (1: every video has a label).

    Returns:
        ``(weighted mean J&F, {video: budget})``.

    Raises:
        ValueError: If no allocation fits in ``total`` or a curve is empty.
    """
    videos = sorted(curves)
    if not videos:
        raise ValueError("no per-video curves given")
    w = _normalised(videos, weights)
    neg = -np.inf
    best = np.full(total + 1, neg)
    best[0] = 0.0
    choice: list[np.ndarray] = []
    for i, v in enumerate(videos):
        options = sorted((b, s) for b, s in curves[v].items() if b >= min_per_video)
        if not options:
            raise ValueError(f"video {v!r} has no measured budget >= {min_per_video}")
        nxt = np.full(total + 1, neg)
        pick = np.full(total + 1, -1, dtype=np.int64)
        for t in range(total + 1):
            for b, s in options:
                if b <= t and best[t - b] > neg and best[t - b] + w[i] * s > nxt[t]:
                    nxt[t] = best[t - b] + w[i] * s
                    pick[t] = b
        best = nxt
        choice.append(pick)
    if not np.isfinite(best).any():
        need = sum(min(b for b in curves[v] if b >= min_per_video) for v in videos)
        raise ValueError(f"a total of {total} keyframes cannot give every video a measured budget (needs {need})")
    t = int(np.argmax(best))
    value = float(best[t])
    split: dict[str, int] = {}
    for i in range(len(videos) - 1, -1, -1):
        b = int(choice[i][t])
        split[videos[i]] = b
        t -= b
    return value, dict(sorted(split.items()))


def even_allocation(frames: Mapping[str, int], total: int) -> dict[str, int]:
    """Keyframes per video in proportion to its length, at least one each while ``total`` allows.

    The proportional split is :func:`curator_selectors.baselines.allocate`, the one ``uniform`` uses
    across videos; a video it leaves empty then takes one frame from the video with the most.
    """
    from curator_selectors.baselines import allocate

    videos = sorted(frames)
    length = np.array([frames[v] for v in videos], dtype=np.int64)
    counts = allocate(length, total, length)
    for j in np.flatnonzero(counts == 0):
        k = int(np.argmax(counts))
        if counts[k] <= 1:
            break
        counts[k] -= 1
        counts[j] += 1
    return {v: int(c) for v, c in zip(videos, counts, strict=True)}


def allocation_report(
    report: Mapping[str, Any], strategy: str, totals: Sequence[int], weighting: str = "videos"
) -> dict[str, Any]:
    """The oracle split and the even split for each total, from a keyframe-bench report.

    The even split's J&F is only given when every video's share is a measured budget.

    Raises:
        ValueError: For an unknown weighting, a strategy missing from the report or an impossible total.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    curves, frames = curves_from_report(report, strategy)
    weights = {v: float(frames[v]) for v in frames} if weighting == "frames" else None
    videos = sorted(curves)
    w = _normalised(videos, weights)
    rows = []
    for total in totals:
        value, split = best_allocation(curves, int(total), weights)
        even = even_allocation(frames, int(total))
        measured = all(even[v] in curves[v] for v in videos)
        even_jf = float(np.dot(w, [curves[v][even[v]] for v in videos])) if measured else None
        rows.append({"total": int(total), "best_JF": value, "best_split": split, "even_JF": even_jf, "even_split": even})
    return {
        "benchmark": "allocation",
        "strategy": strategy,
        "weighting": weighting,
        "source": {k: report.get(k) for k in ("propagator", "created", "davis")},
        "budgets": sorted({b for c in curves.values() for b in c}),
        "rows": rows,
    }


def format_allocation_table(result: Mapping[str, Any]) -> str:
    """A Markdown table: total, best J&F and its split, even-split J&F."""
    lines = ["| keyframes | best split J&F | even split J&F | best split |", "|---|---|---|---|"]
    for r in result["rows"]:
        even = "n/a" if r["even_JF"] is None else f"{r['even_JF']:.3f}"
        split = ", ".join(f"{v} {b}" for v, b in r["best_split"].items())
        lines.append(f"| {r['total']} | {r['best_JF']:.3f} | {even} | {split} |")
    return "\n".join(lines)
