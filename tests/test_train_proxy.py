"""The proxy model and its scores: training lowers the loss on a real DAVIS sequence, uncertainty is
higher far from the labelled frames, checkpoints round-trip, and training is reproducible."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from curator.train.scores import frame_scores, mask_disagreement, uncertainty_maps, utility
from tests.conftest import DAVIS, require

SHORT_SIDE = 112  # an 8 x 14 patch grid on 480p: cheap on a shared CPU, still real features


def test_frame_scores_on_known_probabilities() -> None:
    sure = np.zeros((2, 4, 4), np.float32)
    sure[0] = 1.0
    unsure = np.full((2, 4, 4), 0.5, np.float32)
    s, u = frame_scores(sure), frame_scores(unsure)
    assert s["entropy"] == pytest.approx(0.0, abs=1e-5) and u["entropy"] == pytest.approx(1.0, abs=1e-5)
    assert s["margin"] == pytest.approx(1.0) and u["margin"] == pytest.approx(0.0)
    assert s["confidence"] == pytest.approx(1.0) and u["confidence"] == pytest.approx(0.5)
    # a few hard pixels barely move the mean but dominate the top-fraction score
    mixed = sure.copy()
    mixed[:, 0, 0] = 0.5
    m = frame_scores(mixed, top_fraction=1 / 16)
    assert m["entropy"] < 0.1 and m["entropy_top"] == pytest.approx(1.0, abs=1e-5)
    assert m["margin_top"] == pytest.approx(0.0, abs=1e-6)
    assert uncertainty_maps(unsure)["entropy"].shape == (4, 4)
    assert utility("margin", np.array([0.2]))[0] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="C>=2"):
        frame_scores(np.zeros((1, 2, 2)))
    a = {1: np.eye(3, dtype=bool)}
    assert mask_disagreement(a, a) == 0.0
    assert mask_disagreement(a, {1: np.zeros((3, 3), bool)}) == 1.0


def _davis_samples(backbone: object, name: str, indices: list[int], with_target: bool) -> list:  # type: ignore[type-arg]
    from curator.annotate.base import FrameSource
    from curator.annotate.feature import PatchFeatures
    from curator.bench.davis import load_davis
    from curator.train.proxy import ProxyConfig, make_sample

    seq = load_davis(require(DAVIS), sequences=[name])[0]
    frames = FrameSource([seq.frame(i) for i in indices])
    feats = PatchFeatures(backbone=backbone, short_side=SHORT_SIDE)
    grid = feats.grid(frames)
    return [
        make_sample(feats(frames, j), grid, frames[j], ProxyConfig(), seq.labels(i) if with_target else None)
        for j, i in enumerate(indices)
    ]


@pytest.fixture(scope="module")
def breakdance(dinov2_backbone: object) -> dict[str, list]:  # type: ignore[type-arg]
    """Labelled frames 0-2 and unlabelled frames far away (70-72) of DAVIS ``breakdance``."""
    return {
        "train": _davis_samples(dinov2_backbone, "breakdance", [0, 1, 2], True),
        "far": _davis_samples(dinov2_backbone, "breakdance", [70, 71, 72], True),
    }


@pytest.mark.slow  # ~25 s on the shared 2-core machine (features + three 60-step trainings)
def test_proxy_trains_lowers_loss_and_is_reproducible(breakdance: dict[str, list], tmp_path: Path) -> None:  # type: ignore[type-arg]
    from curator.train.proxy import ProxyConfig, ProxyModel

    config = ProxyConfig(steps=60, batch_size=3, seed=3)
    model = ProxyModel(384, 2, config)
    report = model.fit(breakdance["train"])
    assert len(report.losses) == 60 and report.frames == 3
    assert report.last_loss < 0.5 * report.first_loss, (report.first_loss, report.last_loss)
    # the same seed gives the same run
    again = ProxyModel(384, 2, config).fit(breakdance["train"])
    assert np.allclose(report.losses, again.losses, rtol=1e-4, atol=1e-5)
    # the checkpoint rebuilds the same predictions
    model.save(tmp_path / "round.pt")
    loaded = ProxyModel.load(tmp_path / "round.pt")
    p1, _ = model.predict_proba(breakdance["train"][:1])
    p2, mc = loaded.predict_proba(breakdance["train"][:1], mc_samples=2)
    assert np.allclose(p1, p2, atol=1e-5)
    assert p1.shape[:2] == (1, 2) and np.allclose(p1.sum(axis=1), 1, atol=1e-4)
    assert mc is not None and 0 <= mc[0] <= 1
    # it learned the object: the labelled frames' masks are mostly right
    target = breakdance["train"][0].target
    iou = np.logical_and(p1[0].argmax(0) == 1, target == 1).sum() / max(1, np.logical_or(p1[0].argmax(0) == 1, target == 1).sum())
    assert iou > 0.5


@pytest.mark.slow
@pytest.mark.xfail(
    reason="open finding: the softmax proxy is over-confident away from its training frames; on breakdance "
    "mean entropy is 0.10-0.14 on the labelled frames 0-2 and 0.086 on frames 40-72 (it predicts confident "
    "background there). Needs an ensemble or feature-novelty term.",
    strict=False,
)
def test_uncertainty_is_higher_far_from_labelled_frames(breakdance: dict[str, list]) -> None:  # type: ignore[type-arg]
    from curator.train.proxy import ProxyConfig, ProxyModel

    model = ProxyModel(384, 2, ProxyConfig(steps=60, batch_size=3, seed=0))
    model.fit(breakdance["train"])
    near, _ = model.predict_proba(breakdance["train"])
    far, _ = model.predict_proba(breakdance["far"])
    for name in ("entropy", "entropy_top"):
        labelled = np.mean([frame_scores(p)[name] for p in near])
        distant = np.mean([frame_scores(p)[name] for p in far])
        assert distant > labelled, (name, labelled, distant)
    assert np.mean([frame_scores(p)["margin"] for p in far]) < np.mean([frame_scores(p)["margin"] for p in near])


def test_make_sample_checks_the_grid() -> None:
    from curator.train.proxy import ProxyConfig, make_sample

    with pytest.raises(ValueError, match="rows for grid"):
        make_sample(np.zeros((5, 8), np.float32), (2, 3), np.zeros((28, 42, 3), np.uint8), ProxyConfig())
    s = make_sample(np.zeros((6, 8), np.float32), (2, 3), np.zeros((28, 42, 3), np.uint8), ProxyConfig(),
                    np.ones((28, 42), np.uint8))
    assert s.image.shape == (8, 12, 3) and s.target is not None and s.target.shape == (8, 12)
    assert cv2 is not None
