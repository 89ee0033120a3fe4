"""``curator bench round``: one retrain round over DAVIS sequences, with each stage's seconds.

Every sequence becomes a video of one in-memory project whose human labels are ``K`` uniformly spaced
ground-truth keyframes; :func:`curator.train.loop.run_round` then propagates them, trains the proxy,
evaluates it on the held-out human frames and scores every frame. The report holds each stage's
seconds (``propagate``, ``features_train``, ``train``, ``evaluate``, ``score``), the proxy metrics,
J&F of the dense labels against the ground truth, and the peak RSS of the process.

The first round starts cold: frames are read from their JPEGs on demand and every derived array
(optical flow, patch features) is computed by the round itself, into a fresh temporary derived-data
store. With ``rounds`` > 1 the next rounds follow with one more keyframe per video each and fresh
frame sources, as round jobs load their videos; the store (when the code has one) carries over.
Top-level ``wall_seconds``, ``timings`` and ``metrics`` are the first round's; ``rounds`` holds all.

With ``baseline`` (a checkout of another commit, for example ``git worktree add /tmp/curator-base
e5fb1f1``), the same round also runs in a subprocess whose ``curator`` package is that checkout's,
so both times come from one run on the same machine state (``speedup`` is baseline / current wall
seconds of the round). The worker (``python benchmarks/round.py --worker ...``) uses only the API
both versions share, and falls back to the old in-memory frame cache when the checkout has no
derived-data store.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

#: Stages of :func:`curator.train.loop.run_round`, in order.
STAGES = ("propagate", "features_train", "train", "evaluate", "score")


def uniform_indices(n: int, k: int) -> list[int]:
    """``k`` evenly spaced frame indices of an ``n``-frame video (centred in equal parts)."""
    k = max(1, min(int(k), n))
    return sorted({int((i + 0.5) * n / k) for i in range(k)})


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _worker(args: argparse.Namespace) -> dict[str, Any]:
    """Run one round with whichever ``curator`` package is first on ``sys.path``; return the report."""
    import curator
    from benchmarks.davis import load_davis
    from curator.annotate import create_propagator
    from curator.annotate.feature import PatchFeatures
    from curator.annotate.frames import FrameSource
    from curator.annotate.masks import labels_to_masks
    from curator.eval import score_frame
    from curator.train.loop import FrameOutcome, RoundConfig, VideoState, run_round
    from curator.train.proxy import ProxyConfig

    store: Any = None
    tmp = tempfile.TemporaryDirectory(prefix="curator-bench-round-")
    try:  # the derived-data store; a checkout from before it has only the in-memory cache
        from curator.annotate.derived import DerivedStore

        store = DerivedStore(Path(tmp.name))
    except ImportError:
        pass
    seqs = load_davis(args.davis, sequences=args.sequences.split(",") if args.sequences else None)
    if not seqs:
        raise ValueError(f"no sequences found in {args.davis}")
    seqs = seqs[: args.max_sequences] if args.max_sequences else seqs
    lengths = [min(len(seq), args.max_frames) if args.max_frames else len(seq) for seq in seqs]
    # label maps are read one at a time, here and in the sink, so the bench holds nothing per frame
    objects_of = [
        sorted({int(v) for i in range(n) for v in np.unique(seq.labels(i)) if v != 0})
        for seq, n in zip(seqs, lengths, strict=True)
    ]
    features = PatchFeatures(args.checkpoint, device="cpu", short_side=args.short_side)
    propagator = create_propagator("flow+feature", backbone=features._model())
    cfg = RoundConfig(proxy=ProxyConfig(steps=args.steps), short_side=args.short_side)

    def campaign(keyframes: int) -> list[Any]:
        """The videos as a round job loads them: fresh frame sources, ``keyframes`` uniform human frames."""
        videos, offset = [], 0
        for key, (seq, n, objects) in enumerate(zip(seqs, lengths, objects_of, strict=True)):
            human = {}
            for i in uniform_indices(n, keyframes):
                masks = {k: m for k, m in labels_to_masks(seq.labels(i), objects).items() if m.any()}
                if masks:
                    human[i] = masks
            if store is not None:
                source = FrameSource(seq.frame, num_frames=n, store=store)
            else:
                source = FrameSource(seq.frame, num_frames=n, cache=True)
            videos.append(VideoState(key, source, np.arange(offset, offset + n, dtype=np.int64), np.zeros(n, np.int64), human))
            offset += n
        return videos

    rounds = []
    for number in range(1, args.rounds + 1):
        videos = campaign(args.keyframes + number - 1)
        js: list[float] = []
        fs: list[float] = []

        def sink(outcome: FrameOutcome, videos: list[Any] = videos, js: list[float] = js, fs: list[float] = fs) -> None:
            gt = labels_to_masks(seqs[outcome.video].labels(outcome.index), objects_of[outcome.video])
            shape = videos[outcome.video].source.size
            pred = {k: outcome.masks.get(k, np.zeros(shape, bool)) for k in gt}
            for s in score_frame(pred, gt, outcome.index):
                js.append(s.J)
                fs.append(s.F)

        start = time.perf_counter()
        result = run_round(videos, propagator, features, cfg, sink=sink)
        wall = time.perf_counter() - start
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, int | float | dict) or v is None}
        rounds.append({
            "round": number,
            "human_frames": sum(len(v.human) for v in videos),
            "wall_seconds": wall,
            "timings": {k: float(v) for k, v in result.timings.items()},
            "metrics": metrics,
            "dense_J": float(np.mean(js)) if js else None,
            "dense_F": float(np.mean(fs)) if fs else None,
            "dense_JF": float((np.mean(js) + np.mean(fs)) / 2) if js else None,
        })
    tmp.cleanup()
    return {
        "curator": str(Path(curator.__file__).resolve().parent.parent),
        "derived_store": store is not None,
        "sequences": [s.name for s in seqs],
        "frames": int(sum(lengths)),
        **rounds[0],
        "rounds": rounds,
        "peak_rss_mb": peak_rss_mb(),
    }


def _worker_args(
    davis: str | Path,
    checkpoint: str | Path,
    sequences: Sequence[str] | None,
    max_sequences: int | None,
    max_frames: int | None,
    keyframes: int,
    steps: int,
    short_side: int,
    rounds: int = 1,
) -> list[str]:
    args = ["--davis", str(davis), "--checkpoint", str(checkpoint), "--keyframes", str(keyframes),
            "--steps", str(steps), "--short-side", str(short_side), "--rounds", str(rounds)]
    if sequences:
        args += ["--sequences", ",".join(sequences)]
    if max_sequences:
        args += ["--max-sequences", str(max_sequences)]
    if max_frames:
        args += ["--max-frames", str(max_frames)]
    return args


def run_worker(root: Path, args: list[str], threads: int | None = None) -> dict[str, Any]:
    """Run the worker in a subprocess whose ``curator`` package comes from checkout ``root``.

    Raises:
        RuntimeError: If the worker fails (its stderr's tail is in the message).
    """
    here = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(here)])
    if threads is not None:
        env["CURATOR_THREADS"] = str(threads)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", *args],
        env=env, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"round worker for {root} failed:\n{proc.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def run_round_bench(
    davis: str | Path,
    checkpoint: str | Path,
    sequences: Sequence[str] | None = None,
    max_sequences: int | None = None,
    max_frames: int | None = None,
    keyframes: int = 4,
    steps: int = 100,
    short_side: int = 224,
    baseline: str | Path | None = None,
    rounds: int = 1,
) -> dict[str, Any]:
    """Run the round benchmark (module docstring) and return its report.

    Args:
        davis: DAVIS-layout folder.
        checkpoint: DINOv2 weights.
        sequences: Sequence names (default all).
        max_sequences: Keep only the first this many sequences.
        max_frames: Cut every sequence to its first this many frames.
        keyframes: Uniform human keyframes per video.
        steps: Proxy training steps.
        short_side: Short side of the proxy's patch features.
        baseline: A checkout of another commit to run the same round with, in the same run.
        rounds: Rounds run one after another, round ``r`` with ``keyframes + r - 1`` keyframes per
            video and fresh frame sources (as each round job loads its videos anew); derived data
            kept in the store is reused by later rounds.

    Returns:
        ``{"current": {...}, "baseline": {...} | None, "speedup": {...} | None, ...}``; each side
        holds ``wall_seconds``, ``timings`` (seconds per stage), ``metrics``, ``dense_JF`` and
        ``peak_rss_mb``.
    """
    from benchmarks.davis import load_davis
    from benchmarks.keyframes import machine_info

    if not load_davis(davis, sequences=sequences):
        raise ValueError(f"no sequences found in {davis}")
    here = Path(__file__).resolve().parent.parent
    args = _worker_args(davis, checkpoint, sequences, max_sequences, max_frames, keyframes, steps, short_side, rounds)
    report: dict[str, Any] = {
        "benchmark": "round",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "davis": str(davis),
        "keyframes": keyframes,
        "steps": steps,
        "short_side": short_side,
        "machine": machine_info(),
        "baseline_checkout": str(baseline) if baseline else None,
    }
    # the baseline runs first, so the current code cannot profit from a page cache it warmed
    report["baseline"] = run_worker(Path(baseline), args) if baseline else None
    report["current"] = run_worker(here, args)
    if report["baseline"] is not None:
        base, cur = report["baseline"], report["current"]
        report["speedup"] = {
            "wall": base["wall_seconds"] / max(cur["wall_seconds"], 1e-9),
            **{s: base["timings"].get(s, 0.0) / max(cur["timings"].get(s, 0.0), 1e-9) for s in STAGES},
            "later_rounds": [
                b["wall_seconds"] / max(c["wall_seconds"], 1e-9)
                for b, c in zip(base["rounds"][1:], cur["rounds"][1:], strict=True)
            ],
        }
    else:
        report["speedup"] = None
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """The worker's command line (``--worker``); prints its report as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--davis", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--sequences")
    parser.add_argument("--max-sequences", type=int)
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--keyframes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--short-side", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(_worker(args)))


if __name__ == "__main__":
    main()
