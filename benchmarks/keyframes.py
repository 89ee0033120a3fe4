"""``curator bench keyframes``: how good are the masks a propagator makes from B selected keyframes?

For each DAVIS-layout sequence, each selection strategy and each budget ``B``, the strategy picks
``B`` keyframes from a pool built from the sequence's frames, each keyframe gets its ground-truth
masks (a simulated perfect annotator), the propagator fills in the other frames, and J, F and J&F
(:mod:`curator.eval`) are scored over every frame of the sequence.

Strategies come from the ``curator_selectors`` registry, so new selectors join the benchmark by name.
The pool holds DINOv2 CLS embeddings when a backbone checkpoint is given (else the weight-free
``classic`` embedder), timestamps ``frame_index / 24`` and one shot per sequence.

Derived per-frame data (optical flow, patch features) is cached per sequence, so each sequence is
embedded once across budgets and strategies. ``seconds`` in a row is the wall time of that
propagation; the first propagation of each sequence pays for the cache, and its time per frame is
reported as ``cold_seconds_per_frame`` (what one propagation of a fresh video costs).

Sequences run on ``workers`` processes at once (default one per CPU core), longest first, each with
one torch and one OpenCV thread: flow, the backbone, tracking and scoring then all use every core,
where one process leaves DIS and the tracking on one core. ``wall_seconds`` is the whole run's time.
With ``baseline`` (a checkout of another commit, for example ``git worktree add /tmp/curator-base
e5fb1f1``), the same benchmark also runs in a subprocess whose ``curator`` and ``benchmarks`` packages
are that checkout's, and the report gets ``baseline`` (its wall seconds and summaries) and
``speedup`` (its wall seconds over this run's), so the ratio comes from one run.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.davis import DavisSequence, load_davis
from curator.annotate import FrameSource, Keyframe, create_propagator
from curator.annotate.masks import labels_to_masks
from curator.eval import score_sequence
from curator.pool import Pool

FPS = 24.0
NEEDS_BACKBONE = ("feature", "flow+feature")


def machine_info() -> dict[str, Any]:
    """Where the benchmark ran: platform, CPU count, torch threads, GPU (if any)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": gpu,
    }


def embed_frames(frames: Sequence[np.ndarray], backbone: Any) -> np.ndarray:
    """``(n, d)`` float32 embeddings of ``frames``, 16 frames per backbone call."""
    return np.concatenate([backbone.embed(list(frames[i : i + 16])) for i in range(0, len(frames), 16)]).astype(
        np.float32
    )


def ground_truth(seq: DavisSequence) -> list[dict[int, np.ndarray]]:
    """Per frame, ``{object id: (H, W) bool mask}`` for every object of the sequence."""
    labels = [seq.labels(i) for i in range(len(seq))]
    objects = sorted({int(v) for lab in labels for v in np.unique(lab) if v != 0})
    return [labels_to_masks(lab, objects) for lab in labels]


def patch_entries(source: FrameSource) -> dict[Any, Any]:
    """The frame source's cached patch features (its ``("patch", ...)`` entries)."""
    return {k: v for k, v in (source.cache or {}).items() if isinstance(k, tuple) and k[0] == "patch"}


def load_patch_cache(source: FrameSource, path: Path | None) -> None:
    """Fill ``source``'s cache from a pickle written by :func:`save_patch_cache`, if there is one."""
    if path is not None and path.is_file() and source.cache is not None:
        with path.open("rb") as fh:
            source.cache.update(pickle.load(fh))


def save_patch_cache(source: FrameSource, path: Path) -> None:
    """Pickle ``source``'s patch features to ``path`` so later runs skip the backbone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(patch_entries(source), fh)


def build_pool(frames: Sequence[np.ndarray], backbone: Any) -> Pool:
    """A one-video, one-shot pool over ``frames`` embedded by ``backbone`` (timestamps ``i / 24``)."""
    n = len(frames)
    return Pool(
        embeddings=embed_frames(frames, backbone),
        frame_ids=np.arange(n, dtype=np.int64),
        video_ids=np.zeros(n, dtype=np.int64),
        timestamps=np.arange(n, dtype=np.float64) / FPS,
        shot_ids=np.zeros(n, dtype=np.int64),
        labeled=np.zeros(n, dtype=bool),
    )


def keyframes_from_gt(indices: Sequence[int], gt: Sequence[dict[int, np.ndarray]]) -> list[Keyframe]:
    """Keyframes carrying their ground-truth masks; objects not visible on a keyframe are left out."""
    keys = []
    for i in sorted(int(i) for i in indices):
        masks = {k: m for k, m in gt[i].items() if m.any()}
        if masks:
            keys.append(Keyframe(i, masks))
    return keys


def build_propagator(name: str, backbone: Any = None, **options: Any) -> Any:
    """Create propagator ``name``, handing it the shared DINOv2 backbone when it uses one."""
    if name in NEEDS_BACKBONE and backbone is not None:
        options.setdefault("backbone", backbone)
    return create_propagator(name, **{k: v for k, v in options.items() if v is not None})


def check_strategies(strategies: Sequence[str]) -> None:
    """Raise ``ValueError`` naming any strategy that is not a registered selector."""
    from curator_selectors import list_selectors

    unknown = sorted(set(strategies) - set(list_selectors()))
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; valid: {list_selectors()}")


def load_sequences(davis: str | Path, sequences: Sequence[str] | None = None) -> list[DavisSequence]:
    """The DAVIS-layout sequences to benchmark; ``ValueError`` when the folder holds none."""
    seqs = load_davis(davis, sequences=sequences)
    if not seqs:
        raise ValueError(f"no sequences found in {davis}")
    return seqs


def bench_models(
    propagator: str, checkpoint: str | Path | None, propagator_options: dict[str, Any] | None
) -> tuple[Any, str, dict[str, Any], Any]:
    """The pool backbone, its name, the propagator options and the propagator of a DAVIS bench.

    With ``checkpoint`` the pool uses DINOv2 and shares it with feature-based propagators; without,
    the weight-free ``classic`` embedder, and feature-based propagators resolve their own weights.
    """
    from curator.embed import create_backbone

    if checkpoint:
        backbone = create_backbone("dinov2_vits14", checkpoint=checkpoint, device="auto").backbone
        backbone_name = "dinov2_vits14"
    else:
        backbone = create_backbone("classic").backbone
        backbone_name = "classic"
    options = dict(propagator_options or {})
    if propagator in NEEDS_BACKBONE and not checkpoint:
        options.setdefault("checkpoint", None)  # the propagator resolves its own weights (env or hub)
    prop = build_propagator(propagator, backbone if checkpoint else None, **options)
    return backbone, backbone_name, options, prop


def pick_keyframes(selector: Any, pool: Pool, budget: int, seed: int = 0) -> list[int]:
    """The sorted frame indices ``selector`` picks from a one-video pool."""
    selection = selector.select(pool, int(budget), np.random.default_rng(seed))
    return sorted(int(pool.frame_ids[i]) for i in selection.indices)


def run_sequence(
    seq: DavisSequence,
    propagator: Any,
    strategies: Sequence[str],
    budgets: Sequence[int],
    pool_backbone: Any,
    seed: int = 0,
    cache_file: Path | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """Benchmark one sequence; returns its rows and the cold seconds per frame of its first run.

    With ``cache_file``, patch features are loaded from and saved to it (a pickle of the frame
    source's ``("patch", ...)`` entries), so reruns with other propagators skip the backbone.
    """
    from curator_selectors import create_selector

    frames = seq.frames()
    n = len(frames)
    gt = ground_truth(seq)
    pool = build_pool(frames, pool_backbone)
    source = FrameSource(frames, cache=True)
    load_patch_cache(source, cache_file)
    rows: list[dict[str, Any]] = []
    cold = float("nan")
    for strategy in strategies:
        selector = create_selector(strategy)
        for budget in budgets:
            picked = pick_keyframes(selector, pool, budget, seed)
            keys = keyframes_from_gt(picked, gt)
            start = time.perf_counter()
            if keys:
                predictions = [f.masks for f in propagator.propagate(source, keys)]
            else:  # nothing visible on any keyframe: the user gets empty masks
                predictions = [{k: np.zeros_like(m) for k, m in g.items()} for g in gt]
            seconds = time.perf_counter() - start
            if np.isnan(cold):
                cold = seconds / n
            score = score_sequence(zip(predictions, gt, strict=True))
            rows.append(
                {
                    "sequence": seq.name,
                    "strategy": strategy,
                    "budget": int(budget),
                    "keyframes": picked,
                    "frames": n,
                    "J": score.J,
                    "F": score.F,
                    "JF": score.JF,
                    "seconds": seconds,
                }
            )
    if cache_file is not None:
        save_patch_cache(source, cache_file)
    return rows, cold


def summarise(rows: Sequence[dict[str, Any]], metric: str = "JF") -> dict[str, dict[str, float]]:
    """``{strategy: {budget: mean metric over sequences}}`` (budgets as strings, JSON keys)."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        out.setdefault(row["strategy"], {}).setdefault(str(row["budget"]), 0.0)
    for strategy, per_budget in out.items():
        for budget in per_budget:
            values = [r[metric] for r in rows if r["strategy"] == strategy and str(r["budget"]) == budget]
            per_budget[budget] = float(np.mean(values))
    return out


def run_keyframe_bench(
    davis: str | Path,
    budgets: Sequence[int],
    strategies: Sequence[str],
    propagator: str,
    checkpoint: str | Path | None = None,
    sequences: Sequence[str] | None = None,
    propagator_options: dict[str, Any] | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    cache_dir: str | Path | None = None,
    workers: int = 0,
    baseline: str | Path | None = None,
) -> dict[str, Any]:
    """Run the keyframe benchmark and return the report (see the module docstring).

    Args:
        davis: DAVIS-layout folder.
        budgets: Keyframe budgets, for example ``[1, 2, 4, 8]``.
        strategies: Selector names from the ``curator_selectors`` registry.
        propagator: Propagator name.
        checkpoint: DINOv2 weights for the pool embeddings and the feature-based propagators.
        sequences: Sequence names to run (default all).
        propagator_options: Extra propagator settings (SAM 2 config and checkpoint, ...).
        seed: Seed of the selectors' random generator.
        log: Called with a line per sequence.
        cache_dir: Folder for per-sequence patch-feature caches (reused across runs; a run that
            finds a cache does not pay for the backbone, so its ``cold_seconds_per_frame`` excludes it).
        workers: Processes running sequences at once (0: one per CPU core; 1: this process only).
        baseline: A checkout of another commit to run the same benchmark with, first, in a
            subprocess (see the module docstring).

    Returns:
        ``{"rows": [...], "summary": {strategy: {budget: mean J&F}}, "summary_J", "summary_F",
        "propagator", "backbone", "machine", ...}``.

    Raises:
        ValueError: With no budgets or strategies, or a negative budget.
    """
    if not budgets or not strategies:
        raise ValueError("give at least one budget and one strategy")
    if any(int(b) < 0 for b in budgets):
        raise ValueError(f"budgets must be non-negative, got {list(budgets)}")
    check_strategies(strategies)
    base = None
    if baseline is not None:
        base_kwargs = {
            "davis": str(Path(davis).resolve()), "budgets": [int(b) for b in budgets], "strategies": list(strategies),
            "propagator": propagator, "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
            "sequences": list(sequences) if sequences else None, "propagator_options": propagator_options,
            "seed": seed,
        }
        base = run_baseline(baseline, base_kwargs)
    started = time.perf_counter()
    seqs = load_sequences(davis, sequences)
    workers = min(workers or (os.cpu_count() or 1), len(seqs))
    if workers > 1:
        backbone_name = "dinov2_vits14" if checkpoint else "classic"
        options = dict(propagator_options or {})
        results = _run_processes(seqs, workers, propagator, checkpoint, options, strategies, budgets, seed, cache_dir)
    else:
        backbone, backbone_name, options, prop = bench_models(propagator, checkpoint, propagator_options)
        results = [
            run_sequence(seq, prop, strategies, budgets, backbone, seed, _cache_file(cache_dir, seq.name))
            for seq in seqs
        ]
    rows: list[dict[str, Any]] = []
    colds: list[float] = []
    for seq, (seq_rows, cold) in zip(seqs, results, strict=True):
        rows.extend(seq_rows)
        colds.append(cold)
        if log is not None:
            scores = ", ".join(f"{r['strategy']}@{r['budget']}={r['JF']:.3f}" for r in seq_rows)
            log(f"{seq.name} ({len(seq)} frames, {cold:.3f} s/frame cold): {scores}")
    wall = time.perf_counter() - started
    total_frames = sum(r["frames"] for r in rows)
    return {
        "benchmark": "keyframes",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "davis": str(davis),
        "sequences": [s.name for s in seqs],
        "budgets": [int(b) for b in budgets],
        "strategies": list(strategies),
        "propagator": propagator,
        "propagator_options": {k: str(v) for k, v in options.items() if k != "backbone"},
        "backbone": backbone_name,
        "backbone_checkpoint": str(checkpoint) if checkpoint else None,
        "feature_cache": str(cache_dir) if cache_dir else None,
        "machine": machine_info(),
        "seconds_per_frame": float(sum(r["seconds"] for r in rows) / max(total_frames, 1)),
        "cold_seconds_per_frame": float(np.mean(colds)),
        "wall_seconds": wall,
        "workers": workers,
        "summary": summarise(rows, "JF"),
        "summary_J": summarise(rows, "J"),
        "summary_F": summarise(rows, "F"),
        "rows": rows,
        **_compare(base, wall, summarise(rows, "JF")),
    }


def _cache_file(cache_dir: str | Path | None, name: str) -> Path | None:
    return Path(cache_dir) / f"{name}-patch.pkl" if cache_dir else None


_WORKER: dict[str, Any] = {}


def _init_worker(propagator: str, checkpoint: str | Path | None, options: dict[str, Any]) -> None:
    """Load the models once per worker process, on one torch and one OpenCV thread (the propagator's
    derived data on its own pool of threads)."""
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    backbone, _, _, prop = bench_models(propagator, checkpoint, options)
    # the propagator's derived-data threads stay one per core: while one process tracks on a single
    # thread, or runs the last sequence alone, the other core is the other process's or idle (3
    # DAVIS sequences on 2 processes: 280 s with a thread per core, 350 s with one thread each)
    _WORKER.update(backbone=backbone, propagator=prop)


def _worker_sequence(
    seq: DavisSequence, strategies: Sequence[str], budgets: Sequence[int], seed: int, cache_file: Path | None
) -> tuple[list[dict[str, Any]], float]:
    return run_sequence(seq, _WORKER["propagator"], strategies, budgets, _WORKER["backbone"], seed, cache_file)


def _run_processes(
    seqs: Sequence[DavisSequence],
    workers: int,
    propagator: str,
    checkpoint: str | Path | None,
    options: dict[str, Any],
    strategies: Sequence[str],
    budgets: Sequence[int],
    seed: int,
    cache_dir: str | Path | None,
) -> list[tuple[list[dict[str, Any]], float]]:
    """Every sequence's rows and cold seconds per frame, computed on ``workers`` processes (longest first)."""
    import multiprocessing

    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    ctx = multiprocessing.get_context("spawn")  # torch's thread pools do not survive a fork
    with ProcessPoolExecutor(workers, ctx, initializer=_init_worker, initargs=(propagator, checkpoint, options)) as pool:
        futures = {
            i: pool.submit(_worker_sequence, seqs[i], list(strategies), list(budgets), seed, _cache_file(cache_dir, seqs[i].name))
            for i in order
        }
        return [futures[i].result() for i in range(len(seqs))]


def run_baseline(root: str | Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run this benchmark with the ``curator`` and ``benchmarks`` packages of checkout ``root``.

    Its ``run_keyframe_bench(**kwargs)`` runs in a subprocess (arguments the checkout does not know are
    left out); its report gets ``wall_seconds`` measured around the call there.

    Raises:
        RuntimeError: If the subprocess fails (its stderr's tail is in the message).
    """
    code = (
        "import inspect, json, sys, time\n"
        "from benchmarks.keyframes import run_keyframe_bench\n"
        "kwargs = json.loads(sys.argv[1])\n"
        "known = inspect.signature(run_keyframe_bench).parameters\n"
        "start = time.perf_counter()\n"
        "report = run_keyframe_bench(**{k: v for k, v in kwargs.items() if k in known})\n"
        "report['wall_seconds'] = time.perf_counter() - start\n"
        "import curator\n"
        "report['curator'] = curator.__file__\n"
        "print(json.dumps(report))\n"
    )
    root = Path(root).resolve()
    env = {**os.environ, "PYTHONPATH": str(root)}
    # run in the checkout: ``python -c`` puts the working directory first on sys.path
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)], env=env, cwd=root, capture_output=True, text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the baseline benchmark in {root} failed:\n{proc.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def _compare(base: dict[str, Any] | None, wall: float, summary: dict[str, dict[str, float]]) -> dict[str, Any]:
    """``baseline`` (its wall seconds and summaries), ``speedup`` and ``max_abs_JF_diff`` against it."""
    if base is None:
        return {"baseline": None, "speedup": None, "max_abs_JF_diff": None}
    keep = ("curator", "wall_seconds", "seconds_per_frame", "cold_seconds_per_frame", "summary", "summary_J", "summary_F")
    diffs = [
        abs(value - base["summary"][strategy][budget])
        for strategy, per_budget in summary.items()
        for budget, value in per_budget.items()
        if budget in base["summary"].get(strategy, {})
    ]
    return {
        "baseline": {k: base.get(k) for k in keep},
        "speedup": float(base["wall_seconds"]) / max(wall, 1e-9),
        "max_abs_JF_diff": float(max(diffs)) if diffs else None,
    }


def plot_report(report: dict[str, Any], path: str | Path) -> None:
    """Plot mean J&F against the keyframe budget, one line per strategy, to a PNG.

    With ``uniform`` among several strategies a second panel shows each strategy's lead over it in
    J&F points, where differences of a point or two are visible (the first panel spans 0.5-1).
    """
    from matplotlib.figure import Figure

    summary = report["summary"]
    vs_uniform = "uniform" in summary and len(summary) > 1
    # a bare Figure draws off-screen without switching pyplot's backend (notebooks keep theirs)
    fig = Figure(figsize=(10 if vs_uniform else 5, 3.8))
    axes = fig.subplots(1, 2 if vs_uniform else 1, squeeze=False)[0]
    ax = axes[0]
    lowest = 1.0
    for strategy, per_budget in summary.items():
        budgets = sorted(per_budget, key=int)
        values = [per_budget[b] for b in budgets]
        lowest = min(lowest, *values)
        ax.plot([int(b) for b in budgets], values, marker="o", label=strategy)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("keyframes per sequence")
    ax.set_ylabel("mean J&F")
    ax.set_ylim(max(0.0, min(0.5, lowest - 0.05)), 1)
    ax.grid(alpha=0.3)
    ax.set_title(f"{report['propagator']} on {len(report['sequences'])} sequences")
    ax.legend(fontsize="small")
    if vs_uniform:
        diff = axes[1]
        base = summary["uniform"]
        for strategy, per_budget in summary.items():
            budgets = sorted((b for b in per_budget if b in base), key=int)
            lead = [100 * (per_budget[b] - base[b]) for b in budgets]
            diff.plot([int(b) for b in budgets], lead, marker="o", label=strategy)
        diff.axhline(0, color="black", lw=0.8)
        diff.set_xscale("log", base=2)
        diff.set_xlabel("keyframes per sequence")
        diff.set_ylabel("J&F minus uniform (points)")
        diff.grid(alpha=0.3)
        diff.set_title("lead over uniform")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of mean J&F per strategy and budget."""
    budgets = [str(b) for b in report["budgets"]]
    lines = ["strategy".ljust(12) + "".join(f"B={b}".rjust(8) for b in budgets)]
    for strategy, per_budget in report["summary"].items():
        lines.append(strategy.ljust(12) + "".join(f"{per_budget[b]:8.3f}" for b in budgets))
    return "\n".join(lines)
