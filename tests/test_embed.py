"""Backbones: the classic embedder, DINOv2 from the shared checkpoint, weight resolution errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DAVIS, DINOV2_CHECKPOINT, require
from curator.embed import BackboneWeightsError, create_backbone, list_backbones
from curator.embed.runner import Prefetcher, batched, embed_stream


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(90 + i, 160, 3), dtype=np.uint8) for i in range(n)]


def test_registry_lists_backbones() -> None:
    assert {"classic", "dinov2_vits14"} <= set(list_backbones())


def test_classic_shapes_and_norms() -> None:
    backbone = create_backbone("classic").backbone
    out = backbone.embed(images(5))
    assert out.shape == (5, backbone.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert backbone.embed([]).shape == (0, backbone.dim)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        backbone.embed([np.zeros((10, 10), dtype=np.uint8)])


def test_classic_near_duplicates_are_closer_than_other_scenes() -> None:
    backbone = create_backbone("classic").backbone
    base = np.zeros((120, 160, 3), dtype=np.uint8)
    base[:, :80] = (200, 40, 40)
    base[:, 80:] = (20, 20, 220)
    noisy = np.clip(base.astype(int) + np.random.default_rng(0).integers(-8, 9, base.shape), 0, 255).astype(
        np.uint8
    )
    other = np.full((120, 160, 3), (30, 200, 30), dtype=np.uint8)
    a, b, c = backbone.embed([base, noisy, other])
    assert a @ b > a @ c + 0.3


def test_missing_checkpoint_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(BackboneWeightsError, match="CURATOR_BACKBONE_CHECKPOINT"):
        create_backbone("dinov2_vits14", checkpoint=str(tmp_path / "missing.safetensors"))


def test_auto_falls_back_to_classic_without_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    import curator.embed.dinov2 as dinov2

    monkeypatch.delenv("CURATOR_BACKBONE_CHECKPOINT", raising=False)
    monkeypatch.setattr(dinov2, "hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr(dinov2, "_cached_hub_file", lambda repo_id: None)
    choice = create_backbone("auto")
    assert choice.backbone.name == "classic"
    assert choice.fell_back is not None and "--checkpoint" in choice.fell_back
    with pytest.raises(BackboneWeightsError, match="hub is unreachable"):
        create_backbone("dinov2_vits14")


def test_checkpoint_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_BACKBONE_CHECKPOINT", str(require(DINOV2_CHECKPOINT)))
    choice = create_backbone("auto", device="cpu")
    assert choice.backbone.name == "dinov2_vits14" and choice.fell_back is None


def test_dinov2_shapes(dinov2_backbone) -> None:  # type: ignore[no-untyped-def]
    out = dinov2_backbone.embed(images(3))
    assert out.shape == (3, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    tokens = dinov2_backbone.patch_tokens(images(2), size=(112, 196))
    assert tokens.shape == (2, 8, 14, 384)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        dinov2_backbone.patch_tokens(images(1), size=(100, 196))


@pytest.mark.slow  # real DAVIS through DINOv2 (~17 s); the backbone's own tests stay in the default run
def test_dinov2_neighbours_stay_in_their_davis_sequence(dinov2_backbone) -> None:  # type: ignore[no-untyped-def]
    root = require(DAVIS / "JPEGImages" / "480p")
    frames, labels = [], []
    for label, seq in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for path in sorted(seq.glob("*.jpg"))[::8]:  # 86 frames: all find their own sequence (99% of 164 at every 4th)
            frames.append((label, path))
    labels = np.array([label for label, _ in frames])

    def load() -> object:
        for i, (_, path) in enumerate(frames):
            yield i, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)

    vectors = np.concatenate([v for _, v in embed_stream(dinov2_backbone, load(), batch_size=16)])
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    same = (labels[nearest] == labels).mean()
    assert len(frames) > 80
    assert same > 0.9, f"only {same:.2%} of nearest neighbours share the sequence"


def test_prefetcher_propagates_errors_and_batches() -> None:
    assert [len(b) for b in batched(range(10), 4)] == [4, 4, 2]

    def broken() -> object:
        yield 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), Prefetcher(broken()) as source:  # type: ignore[arg-type]
        list(source)
