"""The int8 DINOv2 embedder: faithful to fp32, independent of batching, built once and cached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import DAVIS, DINOV2_CHECKPOINT, require


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A model cache of this module's own, so the first backbone really builds the int8 model."""
    path = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CURATOR_MODEL_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def int8_backbone(model_cache: Path) -> object:
    from curator.embed import create_backbone

    require(DINOV2_CHECKPOINT)
    return create_backbone("dinov2_vits14_int8", checkpoint=str(DINOV2_CHECKPOINT), device="cpu").backbone


def davis_frames(count: int) -> list[np.ndarray]:
    from benchmarks.davis import load_davis

    require(DAVIS)
    frames = []
    for seq in load_davis(DAVIS):
        frames += [seq.frame(i) for i in (0, len(seq) // 2)]
    return frames[:count]


def test_int8_embeddings_are_unit_vectors_close_to_fp32(int8_backbone, dinov2_backbone) -> None:  # type: ignore[no-untyped-def]
    frames = davis_frames(12)
    fp32 = dinov2_backbone.embed(frames)
    int8 = int8_backbone.embed(frames)
    assert int8.shape == fp32.shape == (12, 384) and int8.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cos = np.sum(fp32 * int8, axis=1)
    # `curator bench embed` holds every DAVIS frame to 0.995; a few frames here are held to it too
    assert cos.min() >= 0.995, cos
    assert not np.array_equal(fp32, int8)  # it really is another model
    assert int8_backbone.name == "dinov2_vits14_int8"
    assert int8_backbone.embed([]).shape == (0, 384)


def test_a_frame_embeds_the_same_whatever_its_batch(int8_backbone) -> None:  # type: ignore[no-untyped-def]
    frames = davis_frames(6)
    whole = int8_backbone.embed(frames)
    pieces = np.concatenate([int8_backbone.embed(frames[i : i + 4]) for i in range(0, 6, 4)])
    alone = np.concatenate([int8_backbone.embed([f]) for f in reversed(frames)])[::-1]
    assert np.array_equal(whole, pieces) and np.array_equal(whole, alone)


def test_patch_tokens_stay_fp32(int8_backbone, dinov2_backbone) -> None:  # type: ignore[no-untyped-def]
    frame = davis_frames(1)
    a = int8_backbone.patch_tokens(frame, (224, 308))
    b = dinov2_backbone.patch_tokens(frame, (224, 308))
    assert a.shape == (1, 16, 22, 384)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_the_model_is_built_once_and_read_back(int8_backbone, model_cache: Path) -> None:  # type: ignore[no-untyped-def]
    from curator.embed import create_backbone
    from curator.embed.int8 import RECIPE_VERSION

    files = sorted(model_cache.glob("*.onnx"))
    assert files == [int8_backbone._int8.path] and int8_backbone._int8.built
    assert f"-r{RECIPE_VERSION}-" in files[0].name and "vit_small_patch14_dinov2" in files[0].name
    assert not list(model_cache.glob(".build-*"))  # nothing half-written left behind
    again = create_backbone("dinov2_vits14_int8", checkpoint=str(DINOV2_CHECKPOINT), device="cpu").backbone
    assert not again._int8.built and again._int8.path == files[0]
    frames = davis_frames(2)
    assert np.array_equal(again.embed(frames), int8_backbone.embed(frames))


def test_other_weights_get_their_own_model(int8_backbone, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A changed weights file is a new name in the cache, never the old model."""
    from safetensors.torch import load_file, save_file

    from curator.embed import create_backbone
    from curator.embed.int8 import int8_model_path

    state = load_file(str(DINOV2_CHECKPOINT))
    state = {k: (v * 1.01 if k.endswith("mlp.fc1.weight") else v) for k, v in state.items()}
    changed = tmp_path / "changed.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(changed))
    other = create_backbone("dinov2_vits14", checkpoint=str(changed), device="cpu").backbone
    same = create_backbone("dinov2_vits14", checkpoint=str(DINOV2_CHECKPOINT), device="cpu").backbone
    assert int8_model_path(same) == int8_backbone._int8.path
    assert int8_model_path(other) != int8_backbone._int8.path


def test_smoothing_keeps_the_fp32_outputs(dinov2_backbone) -> None:  # type: ignore[no-untyped-def]
    import torch

    from curator.embed.int8 import _linear_input_amax, smooth_model

    frames = davis_frames(4)
    amax = _linear_input_amax(dinov2_backbone, frames[:2])
    smoothed = smooth_model(dinov2_backbone.model, amax, 0.7)
    x = dinov2_backbone._to_tensor(frames, (224, 224))
    with torch.inference_mode():
        a = dinov2_backbone.model.forward_features(x)[:, 0]
        b = smoothed.forward_features(x)[:, 0]
    cos = torch.nn.functional.cosine_similarity(a, b).min().item()
    assert cos > 0.99999
    # and what gets quantized is tamer: the widest qkv input channel against the typical one
    model = dinov2_backbone.model
    try:
        dinov2_backbone.model = smoothed
        after = _linear_input_amax(dinov2_backbone, frames[:2])
    finally:
        dinov2_backbone.model = model

    def spread(values: torch.Tensor) -> float:
        return (values.max() / values.median()).item()

    assert spread(after["blocks.2.attn.qkv"]) < spread(amax["blocks.2.attn.qkv"]) / 2


@pytest.mark.slow
def test_bench_embed_reports_ceiling_speed_and_faithfulness(model_cache: Path, tmp_path: Path) -> None:
    from curator.cli import app

    require(DAVIS)
    require(DINOV2_CHECKPOINT)
    out = tmp_path / "embed.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "embed",
            "--davis",
            str(DAVIS),
            "--checkpoint",
            str(DINOV2_CHECKPOINT),
            "--sequences",
            "blackswan",
            "--turns",
            "1",
            "--turn-frames",
            "4",
            "--strategies",
            "kcenter",
            "--budgets",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["ceiling"]["gflops_per_frame"] == pytest.approx(11.0, rel=0.1)  # ViT-S/14 at 224 px
    assert report["ceiling"]["gemm_gflops"] > 0 and report["fp32_fps"] > 0 and report["int8_fps"] > 0
    faith = report["faithfulness"]
    assert faith["frames"] == 50 and 0.99 <= faith["cos_min"] <= faith["cos_mean"] <= 1.0
    assert faith["picks_compared"] == 1 and faith["picks_identical"] + len(faith["mismatched"]) == 1


def test_bench_embed_rejects_unknown_sequences_and_strategies(tmp_path: Path) -> None:
    from curator.cli import app

    require(DAVIS)
    require(DINOV2_CHECKPOINT)
    for extra in (["--sequences", "no-such-clip"], ["--strategies", "no-such-selector"]):
        result = CliRunner().invoke(
            app,
            [
                "bench",
                "embed",
                "--davis",
                str(DAVIS),
                "--checkpoint",
                str(DINOV2_CHECKPOINT),
                *extra,
                "--out",
                str(tmp_path / "x.json"),
            ],
        )
        assert result.exit_code == 2 and extra[1] in result.output, result.output
