"""``curator bench select-scale``: greedy k-center on many synthetic vectors, ours against peers.

Each method runs in its own child process on the same synthetic clustered vectors (regenerated there
from the seed, so no array crosses a pipe), so its peak resident memory is its own. A method reports
the seconds its selection took (data generation excluded) and its picks; the parent then scores
every method's picks with one evaluator, the k-center objective: the largest distance from any
vector to its nearest pick (``max_min_distance``, lower is better).

Methods:

* ``curator``: ``curator_selectors``' ``kcenter`` (exact farthest-first traversal with
  cell pruning, float32).
* ``skactiveml``: scikit-activeml's ``CoreSet`` (``pip install 'curator[bench]'``).
* ``lightly_mundig``: the diversifying strategy of Lightly's Rust selection core, ``lightly-mundig``.

The engine never imports ``curator_selectors`` at module level: the child process imports it lazily,
as the CLI does.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

METHODS: tuple[str, ...] = ("curator", "skactiveml", "lightly_mundig")


def make_clustered(
    n: int, dim: int, clusters: int = 100, spread: float = 0.5, seed: int = 0, block: int = 16384
) -> np.ndarray:
    """``n`` unit vectors drawn around ``clusters`` random centres, float32.

    Each vector is a standard-normal centre plus ``spread`` times standard-normal noise, then
    L2-normalised; with ``spread=0.5`` in 384 dimensions members of one cluster have cosine
    similarity about 0.8, close to what a self-supervised backbone gives frames of one scene.

    Args:
        n: Number of vectors.
        dim: Dimension.
        clusters: Number of cluster centres.
        spread: Noise scale relative to the centres.
        seed: Random seed.
        block: Rows generated at a time (keeps temporaries small).
    """
    if n <= 0 or dim <= 0 or clusters <= 0:
        raise ValueError(f"n, dim and clusters must be positive, got n={n}, dim={dim}, clusters={clusters}")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, block):
        m = min(block, n - s)
        rows = centres[rng.integers(0, clusters, m)] + spread * rng.standard_normal((m, dim), dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        out[s : s + m] = rows
    return out


def max_min_distance(x: np.ndarray, picks: np.ndarray) -> float:
    """The k-center objective: ``max_i min_j ||x_i - x_picks[j]||`` (lower covers the pool better)."""
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(x[np.asarray(picks, dtype=np.int64)]))
    worst = 0.0
    for s in range(0, len(x), 65536):
        d2, _ = index.search(np.ascontiguousarray(x[s : s + 65536]), 1)
        worst = max(worst, float(np.max(d2)))
    return float(np.sqrt(max(worst, 0.0)))


def _rss_mb() -> float:
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / 2**20
    except ImportError:  # pragma: no cover - psutil is a core dependency
        return float("nan")


def _select(method: str, x: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """Run ``method`` on ``x``; returns pick indices."""
    if method == "curator":
        from curator.pool import Pool
        from curator_selectors import create_selector

        n = len(x)
        pool = Pool(
            embeddings=x,
            frame_ids=np.arange(n, dtype=np.int64),
            video_ids=np.zeros(n, dtype=np.int64),
            timestamps=np.arange(n, dtype=np.float64),
            shot_ids=np.full(n, -1, dtype=np.int64),
            labeled=np.zeros(n, dtype=bool),
        )
        return create_selector("kcenter").select(pool, budget, np.random.default_rng(seed)).indices
    if method == "skactiveml":
        from skactiveml.pool import CoreSet

        y = np.full(len(x), np.nan)
        return np.asarray(CoreSet(random_state=seed).query(x, y, batch_size=budget), dtype=np.int64)
    if method == "lightly_mundig":
        import lightly_mundig

        selection = lightly_mundig.Selection()
        selection.add_diversifying_strategy(x, 1.0)
        return np.asarray(selection.run_selection([], len(x), budget), dtype=np.int64)
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


def _worker(method: str, n: int, dim: int, budget: int, clusters: int, spread: float, seed: int, out: Path) -> None:
    """Child-process body: generate the data, time one method, write picks and measurements."""
    x = make_clustered(n, dim, clusters, spread, seed)
    base_rss = _rss_mb()
    start = time.perf_counter()
    picks = _select(method, x, budget, seed)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    np.save(out.with_suffix(".npy"), np.asarray(picks, dtype=np.int64))
    out.write_text(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "data_rss_mb": base_rss}))


def _available(method: str) -> str | None:
    """``None`` if ``method``'s package imports, else the reason it does not."""
    module = {"curator": "curator_selectors", "skactiveml": "skactiveml", "lightly_mundig": "lightly_mundig"}[method]
    try:
        __import__(module)
    except ImportError as exc:
        return f"not installed ({exc}); pip install 'curator[bench]'"
    return None


def _child_env() -> dict[str, str]:
    """The environment of a child process: this one's, with the checkout and ``selectors/`` importable."""
    checkout = Path(__file__).resolve().parents[1]  # the child runs ``-m benchmarks.select_scale``
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(checkout / "selectors"), str(checkout), env.get("PYTHONPATH", "")) if p
    )
    return env


def _run_child(
    method: str, args: Sequence[str], out: Path, x: np.ndarray, env: dict[str, str], timeout_s: float
) -> dict[str, Any]:
    """Run ``method`` in a child process (``args``: the data settings) and score its picks on ``x``.

    Returns:
        The method's record: its measurements and picks' score, or ``error`` if it failed or timed out.
    """
    cmd = [sys.executable, "-m", "benchmarks.select_scale", method, *args, str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"available": True, "error": f"timed out after {timeout_s:.0f} s"}
    if proc.returncode != 0 or not out.exists():
        return {"available": True, "error": proc.stderr.strip()[-2000:]}
    record: dict[str, Any] = {"available": True, **json.loads(out.read_text())}
    picks = np.load(out.with_suffix(".npy"))
    record["picks"] = len(picks)
    record["distinct_picks"] = len(np.unique(picks))
    record["max_min_distance"] = max_min_distance(x, picks)
    return record


def _comparison(done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Across the methods that finished: the fastest, the best covering, and curator's ratios to them."""
    if not done:
        return {}
    fastest = min(done, key=lambda m: done[m]["seconds"])
    best = min(done, key=lambda m: done[m]["max_min_distance"])
    out: dict[str, Any] = {"fastest": fastest, "best_max_min_distance": best}
    if "curator" in done:
        ours = done["curator"]
        peers = {m: r for m, r in done.items() if m != "curator"}
        out["curator_vs_fastest_peer"] = (
            ours["seconds"] / min(r["seconds"] for r in peers.values()) if peers else None
        )
        out["curator_vs_best_max_min_distance"] = ours["max_min_distance"] / done[best]["max_min_distance"]
    return out


def bench_select_scale(
    n: int,
    dim: int,
    budget: int,
    clusters: int = 100,
    spread: float = 0.5,
    seed: int = 0,
    methods: Sequence[str] = METHODS,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
    """Time k-center selection of ``budget`` out of ``n`` synthetic vectors with every method.

    Args:
        n: Pool size.
        dim: Embedding dimension.
        budget: Picks.
        clusters: Clusters in the synthetic data.
        spread: Within-cluster noise scale (see :func:`make_clustered`).
        seed: Seed of the data and of each method's first pick.
        methods: Which of :data:`METHODS` to run.
        timeout_s: Per-method wall-clock limit; a method past it is reported as timed out.

    Returns:
        A JSON-ready report: settings, then per method ``seconds``, ``peak_rss_mb`` (the child
        process's peak), ``data_rss_mb`` (its resident size after generating the data),
        ``max_min_distance``, and, across methods, which was fastest and which covered best.
    """
    if budget <= 0 or budget > n:
        raise ValueError(f"budget must be in [1, n={n}], got {budget}")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; valid: {', '.join(METHODS)}")
    x = make_clustered(n, dim, clusters, spread, seed)
    results: dict[str, dict[str, Any]] = {}
    env = _child_env()
    args = [str(v) for v in (n, dim, budget, clusters, spread, seed)]
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            missing = _available(method)
            if missing:
                results[method] = {"available": False, "error": missing}
            else:
                results[method] = _run_child(method, args, Path(tmp) / f"{method}.json", x, env, timeout_s)
    done = {m: r for m, r in results.items() if "seconds" in r}
    return {
        "settings": {"n": n, "dim": dim, "budget": budget, "clusters": clusters, "spread": spread, "seed": seed},
        "methods": results,
        **_comparison(done),
    }


if __name__ == "__main__":
    _method, _n, _dim, _budget, _clusters, _spread, _seed, _out = sys.argv[1:9]
    _worker(_method, int(_n), int(_dim), int(_budget), int(_clusters), float(_spread), int(_seed), Path(_out))
