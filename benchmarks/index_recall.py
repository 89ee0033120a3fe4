"""Recall of the project index's IVF mode against its exact mode, with build and query costs.

Builds both indexes of :mod:`curator.index.faiss_store` over the same clustered unit vectors
(:func:`benchmarks.select_scale.make_clustered`) through the store's own code
(:meth:`FaissIndex.build`, which calls :func:`make_ivf`: the parameters are the store's, not copied
here), searches held-out queries from the same distribution in both and reports recall@k of IVF
against exact, seconds to build and to query (a batch, and one query at a time), and memory.

Run: ``python -m benchmarks.index_recall --n 1000000 --dim 384 --out index_recall.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.select_scale import make_clustered
from curator.index.faiss_store import DEFAULT_NPROBE, IVF_TRAIN_PER_LIST, FaissIndex

MB = 2**20


def _rss() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss)


def _peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # KiB on Linux


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (exact ids) that ``found`` holds (``-1`` never counts)."""
    k = truth.shape[1]
    hits = [len(np.intersect1d(f[f >= 0], t[t >= 0])) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / k) if len(hits) else float("nan")


def _single_query_ms(index: FaissIndex, queries: np.ndarray, k: int) -> float:
    start = time.perf_counter()
    for row in queries:
        index.knn(row[None, :], k)
    return (time.perf_counter() - start) * 1000.0 / max(len(queries), 1)


def run_index_recall(
    n: int = 1_000_000,
    dim: int = 384,
    queries: int = 1000,
    k: int = 10,
    nprobe: int = DEFAULT_NPROBE,
    seed: int = 0,
    clusters: int = 100,
    spread: float = 0.5,
    sweep: Sequence[int] = (4, 8, 32, 64),
    single: int = 100,
) -> dict[str, Any]:
    """Recall@k of the store's IVF index against its exact index on ``n`` clustered unit vectors.

    Args:
        n: Indexed vectors.
        dim: Dimension.
        queries: Held-out query vectors (drawn with the data, never indexed).
        k: Neighbours compared.
        nprobe: IVF lists searched (the store's default unless given).
        seed: Data seed.
        clusters: Cluster centres of the data (:func:`make_clustered`).
        spread: Noise around the centres (:func:`make_clustered`).
        sweep: Further ``nprobe`` values whose recall and query time are reported too.
        single: Queries also timed one at a time (what one "similar frames" request costs).

    Returns:
        A JSON-ready dict: settings, ``recall_at_k``, ``exact`` and ``ivf`` sections (build and query
        seconds, milliseconds a single query, resident memory the index added), the ``nprobe`` sweep,
        peak RSS and the machine.
    """
    if n < 2 or queries < 1 or k < 1:
        raise ValueError(f"need n >= 2, queries >= 1, k >= 1; got n={n}, queries={queries}, k={k}")
    k = min(k, n)
    t0 = time.perf_counter()
    x = make_clustered(n + queries, dim, clusters=clusters, spread=spread, seed=seed)
    data_s = time.perf_counter() - t0
    base, q = x[:n], np.ascontiguousarray(x[n:])
    ids = np.arange(n, dtype=np.int64)
    single_q = q[: max(0, min(single, queries))]

    exact, truth = _measure(ids, base, q, single_q, k, nprobe, ivf=False)
    ivf, found = _measure(ids, base, q, single_q, k, nprobe, ivf=True)
    recall = recall_at_k(found, truth)
    swept = _sweep(ivf.pop("index"), q, k, truth, sweep, nprobe)

    return {
        "n": n,
        "dim": dim,
        "queries": queries,
        "k": k,
        "seed": seed,
        "data": {"generator": "make_clustered", "clusters": clusters, "spread": spread, "seconds": round(data_s, 2)},
        "nlist": ivf.pop("nlist"),
        "nprobe": nprobe,
        "train_per_list": IVF_TRAIN_PER_LIST,
        "recall_at_k": round(recall, 4),
        "target_recall": 0.95,
        "meets_target": recall >= 0.95,
        "exact": exact,
        "ivf": ivf,
        "nprobe_sweep": swept,
        "vectors_mb": round(n * dim * 4 / MB, 1),
        "peak_rss_mb": round(_peak_rss() / MB, 1),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "faiss_threads": _threads()},
    }


def _measure(
    ids: np.ndarray, base: np.ndarray, q: np.ndarray, single_q: np.ndarray, k: int, nprobe: int, *, ivf: bool
) -> tuple[dict[str, Any], np.ndarray]:
    """Build the store's exact (below its IVF threshold) or IVF index the store's way, time it, search.

    Returns:
        The timings (``build_s``, ``query_s``, ``query_ms_single``, ``memory_mb``; for IVF also the
        ``index`` and its ``nlist``) and the neighbours found for ``q``.
    """
    gc.collect()
    rss0 = _rss()
    t0 = time.perf_counter()
    index = FaissIndex.build(ids, base, ivf_threshold=1 if ivf else len(ids) + 1, nprobe=nprobe)
    build = time.perf_counter() - t0
    memory = _rss() - rss0
    assert index.is_ivf if ivf else index.is_exact
    t0 = time.perf_counter()
    _, found = index.search_batched(q, k)
    query = time.perf_counter() - t0
    out: dict[str, Any] = {
        "build_s": round(build, 3),
        "query_s": round(query, 3),
        "query_ms_single": round(_single_query_ms(index, single_q, k), 3),
        "memory_mb": round(memory / MB, 1),
    }
    if ivf:
        out.update(index=index, nlist=index.nlist)
    else:
        del index
        gc.collect()
    return out, found


def _sweep(
    ivf: FaissIndex, q: np.ndarray, k: int, truth: np.ndarray, sweep: Sequence[int], nprobe: int
) -> list[dict[str, Any]]:
    """Recall and query time of the IVF index at other ``nprobe`` values (restored afterwards)."""
    swept = []
    for p in sorted({int(v) for v in sweep} - {int(nprobe)}):
        ivf.nprobe = p
        t0 = time.perf_counter()
        _, f = ivf.search_batched(q, k)
        seconds = time.perf_counter() - t0
        swept.append({"nprobe": p, "recall_at_k": round(recall_at_k(f, truth), 4), "query_s": round(seconds, 3)})
    ivf.nprobe = nprobe
    return swept


def _threads() -> int | None:
    try:
        import faiss

        return int(faiss.omp_get_max_threads())
    except (ImportError, AttributeError):  # pragma: no cover
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.index_recall``: run :func:`run_index_recall`, print and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.index_recall", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nprobe", type=int, default=DEFAULT_NPROBE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here too")
    args = parser.parse_args(argv)
    report = run_index_recall(
        n=args.n, dim=args.dim, queries=args.queries, k=args.k, nprobe=args.nprobe, seed=args.seed
    )
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
