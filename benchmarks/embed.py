"""``curator bench embed``: the embedder against this CPU's ceiling, eager fp32 against int8.

In one run, on the frames of a DAVIS-layout folder:

- **Ceiling**: the model's FLOPs per frame (counted by ``torch.utils.flop_counter`` on one forward
  pass) and this CPU's fp32 GEMM rate (a matrix product of the shape of the model's MLP, best of
  several), so ``gemm_gflops / gflops_per_frame`` is the most frames/s fp32 arithmetic allows.
- **Speed**: timm's eager fp32 model (the ``dinov2_vits14`` backbone, one call per ``batch_size``
  frames) and the int8 ONNX Runtime model (``dinov2_vits14_int8``) embed the same chunk of frames one
  after the other, chunk by chunk; ``int8_vs_fp32`` is the median of the pairs' ratios (each pair a
  few seconds apart, under the same load), ``int8_vs_fp32_overall`` the ratio of the totals.
- **Faithfulness**: the cosine between the two embeddings of every frame of every sequence, and the
  keyframes each embedding-driven selector picks from each sequence with either embedding at each
  budget (the keyframe bench's pools: one video, one shot). Identical picks mean ``curator bench
  keyframes`` gives the same J&F to every decimal: propagation uses the fp32 patch tokens either way.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.keyframes import build_pool, load_sequences, machine_info, pick_keyframes

#: Selectors whose picks depend on the embeddings (the others ignore them or need a trained proxy).
EMBEDDING_SELECTORS = ("kcenter", "probcover", "typicality", "hybrid", "temporal", "curator")


def gemm_gflops(threads: int, seconds: float = 2.0) -> float:
    """Best fp32 GFLOP/s of a ``(4112, 384) @ (384, 1536)`` product (a ViT-S/14 MLP on 16 frames)."""
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(257 * 16, 384)
    b = torch.randn(384, 1536)
    flops = 2 * a.shape[0] * a.shape[1] * b.shape[1]
    best = float("inf")
    deadline = time.perf_counter() + seconds
    a @ b
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def model_gflops(backbone: Any) -> float:
    """GFLOPs of one frame's forward pass at the backbone's input size (multiply-add = 2 FLOPs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, backbone.image_size, backbone.image_size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        backbone.model.forward_features(x)
    return counter.get_total_flops() / 1e9


def _picks(
    strategies: Sequence[str], budgets: Sequence[int], pools: dict[str, Any], seed: int
) -> dict[str, Any]:
    from curator_selectors import create_selector

    out: dict[str, Any] = {}
    for strategy in strategies:
        selector = create_selector(strategy)
        for budget in budgets:
            out[f"{strategy}/{budget}"] = pick_keyframes(selector, pools[strategy], budget, seed)
    return out


def bench_embed(
    davis: str | Path,
    checkpoint: str | Path,
    turns: int = 5,
    turn_frames: int = 48,
    batch_size: int = 16,
    strategies: Sequence[str] = EMBEDDING_SELECTORS,
    budgets: Sequence[int] = (2, 8),
    sequences: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure the embedder's ceiling, fp32 vs int8 speed, and the int8 embeddings' faithfulness.

    Args:
        davis: DAVIS-layout folder (every frame of every sequence is embedded both ways).
        checkpoint: DINOv2 ViT-S/14 weights file.
        turns: Timed turns over ``turn_frames`` frames, each chunk of ``batch_size`` frames by fp32 then int8.
        turn_frames: Frames per timed turn (spread over all sequences).
        batch_size: Frames per eager fp32 call (int8 runs one frame per call; see
            :mod:`curator.embed.int8`).
        strategies: Selectors whose picks are compared.
        budgets: Keyframes per sequence for the pick comparison.
        sequences: Sequence names (default all).
        seed: Selector seed.

    Returns:
        The JSON report.
    """
    import torch

    from curator.embed import create_backbone
    from curator_selectors import list_selectors

    unknown = sorted(set(strategies) - set(list_selectors()))
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; valid: {list_selectors()}")
    seqs = load_sequences(davis, sequences)
    threads = torch.get_num_threads()
    fp32: Any = create_backbone("dinov2_vits14", checkpoint=checkpoint, device="cpu").backbone
    start = time.perf_counter()
    int8 = create_backbone("dinov2_vits14_int8", checkpoint=checkpoint, device="cpu").backbone
    int8_ready_s = time.perf_counter() - start

    frames = {seq.name: seq.frames() for seq in seqs}
    flat = [f for name in frames for f in frames[name]]
    spread = np.linspace(0, len(flat) - 1, num=min(turn_frames, len(flat))).round().astype(int)
    sample = [flat[i] for i in spread]

    gflops = model_gflops(fp32)
    gemm = gemm_gflops(threads)
    fp32.embed(sample[:batch_size])  # warm both before timing
    int8.embed(sample[:2])
    # fp32 and int8 take turns on each chunk of ``batch_size`` frames: on a shared machine the load
    # changes within seconds, and a pair a few seconds apart sees the same load
    fp32_s: list[float] = []
    int8_s: list[float] = []
    chunks = [sample[i : i + batch_size] for i in range(0, len(sample), batch_size)]
    for _ in range(turns):
        for chunk in chunks:
            start = time.perf_counter()
            fp32.embed(chunk)
            fp32_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            int8.embed(chunk)
            int8_s.append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(fp32_s, int8_s, strict=True)]
    frames_timed = turns * len(sample)
    fp32_fps = frames_timed / sum(fp32_s)
    int8_fps = frames_timed / sum(int8_s)

    cosines: list[np.ndarray] = []
    per_sequence: dict[str, Any] = {}
    mismatched: list[dict[str, Any]] = []
    compared = 0
    for seq in seqs:
        pool32 = build_pool(frames[seq.name], fp32)
        pool8 = build_pool(frames[seq.name], int8)
        cos = np.sum(pool32.embeddings * pool8.embeddings, axis=1)
        cosines.append(cos)
        picks32 = _picks(strategies, budgets, dict.fromkeys(strategies, pool32), seed)
        picks8 = _picks(strategies, budgets, dict.fromkeys(strategies, pool8), seed)
        same = [key for key in picks32 if picks32[key] == picks8[key]]
        compared += len(picks32)
        mismatched += [
            {"sequence": seq.name, "selection": key, "fp32": picks32[key], "int8": picks8[key]}
            for key in picks32
            if picks32[key] != picks8[key]
        ]
        per_sequence[seq.name] = {
            "frames": len(cos),
            "cos_min": round(float(cos.min()), 5),
            "picks_identical": f"{len(same)}/{len(picks32)}",
        }
    cos_all = np.concatenate(cosines)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": "dinov2_vits14 (timm vit_small_patch14_dinov2.lvd142m)",
        "image_size": fp32.image_size,
        "threads": threads,
        "ceiling": {
            "gflops_per_frame": round(gflops, 2),
            "gemm_gflops": round(gemm, 1),
            "fp32_ceiling_fps": round(gemm / gflops, 2),
        },
        "fp32_fps": round(fp32_fps, 2),
        "int8_fps": round(int8_fps, 2),
        "int8_vs_fp32": round(statistics.median(ratios), 3),
        "int8_vs_fp32_overall": round(int8_fps / fp32_fps, 3),
        "pair_ratios": [round(r, 3) for r in ratios],
        "fp32_share_of_ceiling": round(fp32_fps / (gemm / gflops), 3),
        "int8_model_ready_s": round(int8_ready_s, 2),
        "faithfulness": {
            "frames": int(cos_all.size),
            "cos_min": round(float(cos_all.min()), 5),
            "cos_p01": round(float(np.quantile(cos_all, 0.01)), 5),
            "cos_mean": round(float(cos_all.mean()), 5),
            "picks_compared": compared,
            "picks_identical": compared - len(mismatched),
            "strategies": list(strategies),
            "budgets": list(budgets),
            "mismatched": mismatched,
        },
        "per_sequence": per_sequence,
        "targets": {
            "int8_vs_fp32_at_least_1.5": bool(statistics.median(ratios) >= 1.5),
            "cos_min_at_least_0.995": bool(cos_all.min() >= 0.995),
        },
        "peak_rss_mb": round(peak_mb, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_info(),
        "turns": turns,
        "pairs": len(ratios),
        "turn_frames": len(sample),
        "batch_size": batch_size,
    }
