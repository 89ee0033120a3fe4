"""``curator bench segment``: click-to-segment latency and clicks needed, on DAVIS frames.

Each backend segments sampled DAVIS frames under the standard simulated annotator of interactive
segmentation (RITM, Sofiiuk et al. 2022; also used by SimpleClick and SAM's click evaluations): the
first click is at the point of the object farthest from its boundary; every next click is at the
point of the current error farthest from the error's boundary (a distance transform of the missed
and of the false pixels, the frame's border counting as a boundary), positive when that point was
missed and negative when it was wrongly taken. The segmenter gets every click so far and its own
last mask, as a labelling client would send them.

NoC@85 and NoC@90 are the mean clicks until the IoU reaches 85 % and 90 %, counting ``max_clicks``
(20) for a frame that never gets there; ``failed85``/``failed90`` count those frames. Latency is the
wall time of each ``segment`` call: ``p50_ms``/``p95_ms`` over follow-up clicks (the per-image cache
is warm: no encoder pass), ``first_p50_ms``/``first_p95_ms`` over first clicks on a new frame (they
include the encoder) and ``all_p95_ms`` over every click.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.davis import DavisSequence, load_davis
from benchmarks.keyframes import machine_info

MAX_CLICKS = 20
THRESHOLDS = (0.85, 0.90)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _farthest(region: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Largest distance to the region's boundary (the frame's border included) and where it is."""
    if not region.any():
        return 0.0, (0, 0)
    padded = np.pad(region.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(dist[row, col]), (int(row), int(col))


def next_click(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float, bool] | None:
    """The simulated annotator's next click ``(x, y, positive)``, or None when nothing is wrong.

    The click goes to the interior point of the error farthest from its boundary: positive in a
    missed region (``gt & ~pred``), negative in a false one (``pred & ~gt``).
    """
    missed, missed_at = _farthest(gt & ~pred)
    false, false_at = _farthest(pred & ~gt)
    if missed == 0 and false == 0:
        return None
    positive = missed >= false
    row, col = missed_at if positive else false_at
    return float(col), float(row), positive


def simulate(
    segment: Callable[..., Any],
    image: np.ndarray,
    gt: np.ndarray,
    *,
    max_clicks: int = MAX_CLICKS,
    stop_at: float = max(THRESHOLDS),
    key: Any = None,
    start: np.ndarray | None = None,
) -> dict[str, Any]:
    """Click on one frame until the IoU reaches ``stop_at`` or ``max_clicks`` clicks were made.

    Args:
        segment: A segmenter's ``segment`` method.
        image: ``(H, W, 3)`` uint8 RGB.
        gt: ``(H, W)`` bool ground truth.
        max_clicks: Most clicks.
        stop_at: Stop once the IoU reaches this.
        key: Cache key of the image, passed to ``segment``.
        start: The object's mask before the first click (a task's pre-annotation), sent with the
            first click as the current mask as the labelling page does; ``None`` starts from nothing.

    Returns:
        ``ious`` and ``ms`` (one per click), the ``clicks`` made and the last ``mask`` (``start``,
        or an empty mask, when no click was needed).
    """
    mask: np.ndarray | None = None if start is None or not start.any() else start.astype(bool)
    pred = np.zeros(gt.shape, bool) if mask is None else mask
    clicks: list[tuple[float, float, bool]] = []
    ious: list[float] = []
    ms: list[float] = []
    if mask is not None and iou(pred, gt) >= stop_at:
        return {"ious": ious, "ms": ms, "clicks": clicks, "mask": pred}
    while len(clicks) < max_clicks:
        click = next_click(gt, pred)
        if click is None:
            break
        clicks.append(click)
        began = time.perf_counter()
        pred = segment(image, clicks, None, mask, key=key).mask
        ms.append((time.perf_counter() - began) * 1000.0)
        mask = pred
        ious.append(iou(pred, gt))
        if ious[-1] >= stop_at:
            break
    return {"ious": ious, "ms": ms, "clicks": clicks, "mask": pred}


def clicks_to_reach(ious: Sequence[float], threshold: float, max_clicks: int = MAX_CLICKS) -> int:
    """Clicks until the IoU first reaches ``threshold`` (``max_clicks`` when it never does)."""
    for i, value in enumerate(ious):
        if value >= threshold:
            return i + 1
    return max_clicks


def sample_frames(sequences: Sequence[DavisSequence], per_sequence: int) -> list[tuple[DavisSequence, int]]:
    """``per_sequence`` evenly spaced frames of each sequence (centred in equal stretches)."""
    out: list[tuple[DavisSequence, int]] = []
    for seq in sequences:
        n = min(per_sequence, len(seq))
        out.extend((seq, int((i + 0.5) * len(seq) / n)) for i in range(n))
    return out


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def summarise(runs: Sequence[dict[str, Any]], max_clicks: int = MAX_CLICKS) -> dict[str, Any]:
    """NoC, failures and latency percentiles of one backend's runs."""
    follow = [v for r in runs for v in r["ms"][1:]]
    first = [r["ms"][0] for r in runs if r["ms"]]
    every = [v for r in runs for v in r["ms"]]
    out: dict[str, Any] = {"frames": len(runs)}
    for t in THRESHOLDS:
        reached = [clicks_to_reach(r["ious"], t, max_clicks) for r in runs]
        tag = str(round(t * 100))
        out[f"noc{tag}"] = round(float(np.mean(reached)), 2) if reached else None
        out[f"failed{tag}"] = sum(1 for r in runs if max(r["ious"], default=0.0) < t)
    out.update(
        {
            "p50_ms": _percentile(follow, 50),
            "p95_ms": _percentile(follow, 95),
            "first_p50_ms": _percentile(first, 50),
            "first_p95_ms": _percentile(first, 95),
            "all_p95_ms": _percentile(every, 95),
            "clicks_timed": len(every),
            "iou_at_1": round(float(np.mean([r["ious"][0] for r in runs if r["ious"]])), 3) if runs else None,
        }
    )
    return out


def build_segmenters(
    backends: Sequence[str], checkpoint: str | None = None, device: str = "cpu", options: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The segmenters to compare, built once (DINOv2 and SAM 2 load their weights here)."""
    from curator.segment import create_segmenter

    options = options or {}
    built: dict[str, Any] = {}
    for name in backends:
        kwargs = dict(options.get(name, {}))
        if name == "feature":
            kwargs.setdefault("checkpoint", checkpoint)
        if name in ("feature", "sam2"):
            kwargs.setdefault("device", device)
        built[name] = create_segmenter(name, **kwargs)
    return built


def warm_up(segmenters: dict[str, Any]) -> None:
    """One click on a small noise image per segmenter: loads weights and first-call work untimed."""
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    for segmenter in segmenters.values():
        segmenter.segment(image, [(48.0, 32.0, True)], key="warm-up")


def run_segment_bench(
    davis: str | Path,
    backends: Sequence[str],
    *,
    frames: int = 3,
    sequences: Sequence[str] | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
    max_clicks: int = MAX_CLICKS,
    options: dict[str, dict[str, Any]] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Simulated click sessions of every backend on ``frames`` sampled frames of each DAVIS sequence.

    Args:
        davis: DAVIS-layout folder.
        backends: Segmenter names (``grabcut``, ``feature``, ``sam2``).
        frames: Frames per sequence, evenly spaced.
        sequences: Sequence names (default all).
        checkpoint: DINOv2 weights for ``feature``.
        device: ``cpu``, ``cuda`` or ``auto``.
        max_clicks: Most clicks per frame (and the NoC of a frame that never reaches a threshold).
        options: Per backend, constructor settings (SAM 2 checkpoint, ...).
        log: Progress lines.

    Returns:
        ``{"backends": {name: summary}, "frames": [...], "settings": {...}, "machine": {...}}``.
    """
    picked = sample_frames(load_davis(davis, sequences=sequences), frames)
    segmenters = build_segmenters(backends, checkpoint, device, options)
    warm_up(segmenters)
    per_frame: list[dict[str, Any]] = []
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in segmenters}
    for seq, index in picked:
        image = seq.frame(index)
        gt = seq.labels(index) > 0  # every object of the frame as one (DAVIS 2016 has one)
        if not gt.any():
            continue
        row: dict[str, Any] = {"sequence": seq.name, "frame": index}
        for name, segmenter in segmenters.items():
            run = simulate(segmenter.segment, image, gt, max_clicks=max_clicks, key=f"{seq.name}/{index}")
            runs[name].append(run)
            row[name] = {
                "noc85": clicks_to_reach(run["ious"], 0.85, max_clicks),
                "noc90": clicks_to_reach(run["ious"], 0.90, max_clicks),
                "ious": [round(v, 4) for v in run["ious"]],
                "ms": [round(v, 1) for v in run["ms"]],
            }
            log(
                f"{seq.name}:{index} {name}: NoC85 {row[name]['noc85']} NoC90 {row[name]['noc90']} "
                f"IoU {run['ious'][-1]:.3f} after {len(run['ious'])} clicks, "
                f"median {np.median(run['ms']):.0f} ms"
            )
        per_frame.append(row)
    return {
        "backends": {name: summarise(r, max_clicks) for name, r in runs.items()},
        "frames": per_frame,
        "settings": {
            "davis": str(davis),
            "frames_per_sequence": frames,
            "sequences": sorted({seq.name for seq, _ in picked}),
            "max_clicks": max_clicks,
            "protocol": "RITM: clicks at the error point farthest from its boundary; all clicks and the last mask sent",
            "device": device,
            "segmenters": {name: _describe(s) for name, s in segmenters.items()},
        },
        "machine": machine_info(),
        "created": datetime.now(UTC).isoformat(),
    }


def _describe(segmenter: Any) -> dict[str, Any]:
    """A segmenter's settings (its dataclass fields that are plain values)."""
    from dataclasses import fields, is_dataclass

    if not is_dataclass(segmenter):
        return {}
    out = {}
    for f in fields(segmenter):
        value = getattr(segmenter, f.name)
        if isinstance(value, str | int | float | bool) or value is None:
            out[f.name] = value
    return out


def format_table(report: dict[str, Any]) -> str:
    """The report's summary as a Markdown table."""
    lines = [
        "| backend | NoC@85 | NoC@90 | >20 clicks @90 | p50 ms | p95 ms | first click p50 ms | frames |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in report["backends"].items():
        lines.append(
            f"| `{name}` | {s['noc85']} | {s['noc90']} | {s['failed90']} | {s['p50_ms']} | {s['p95_ms']} | "
            f"{s['first_p50_ms']} | {s['frames']} |"
        )
    return "\n".join(lines)
