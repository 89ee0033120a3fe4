"""The proxy model and its scores: training lowers the loss on a real DAVIS sequence, uncertainty is
higher far from the labelled frames, checkpoints round-trip, and training is reproducible."""

from __future__ import annotations

from pathlib import Path

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
    from benchmarks.davis import load_davis
    from curator.annotate.feature import PatchFeatures
    from curator.annotate.frames import FrameSource
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


@pytest.mark.slow  # the plain softmax failed this (far entropy 0.089 < 0.102 near); novelty tempering fixes it
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
    feats = np.arange(48, dtype=np.float32).reshape(6, 8)
    frame = np.zeros((28, 42, 3), np.uint8)
    frame[:, 21:] = (255, 128, 0)  # right half coloured
    labels = np.zeros((28, 42), np.uint8)
    labels[:14] = 1  # top half labelled
    s = make_sample(feats, (2, 3), frame, ProxyConfig(), labels, weight=0.5)
    # features become the (rows, cols, D) grid, row-major; the frame and labels are resized to the
    # output size (grid * upsample = 8 x 12): the image in [0, 1], the labels without blending
    assert s.feats.shape == (2, 3, 8) and s.feats.dtype == np.float16
    np.testing.assert_array_equal(s.feats[1, 2], feats[5])
    assert s.image.shape == (8, 12, 3) and s.image.dtype == np.float32
    np.testing.assert_allclose(s.image[:, :6], 0.0)
    np.testing.assert_allclose(s.image[:, 6:], np.broadcast_to([1.0, 128 / 255, 0.0], (8, 6, 3)), atol=1e-6)
    assert s.target is not None and s.target.shape == (8, 12)
    np.testing.assert_array_equal(s.target, np.repeat([[1], [0]], 4, axis=0) * np.ones((1, 12), np.int64))
    assert s.weight == 0.5
    assert make_sample(feats, (2, 3), frame, ProxyConfig()).target is None


def _tiny_samples(seed: int, n: int = 3, dim: int = 32) -> list:  # type: ignore[type-arg]
    """``n`` labelled frames on a 2 x 3 grid with random unit-norm features."""
    from curator.train.proxy import ProxyConfig, make_sample

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        feats = rng.normal(size=(6, dim)).astype(np.float32)
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        frame = rng.integers(0, 256, size=(28, 42, 3), dtype=np.uint8)
        labels = (rng.random((28, 42)) < 0.4).astype(np.uint8)
        out.append(make_sample(feats, (2, 3), frame, ProxyConfig(), labels))
    return out


def test_novelty_is_zero_on_the_bank_and_high_on_new_features() -> None:
    from curator.train.proxy import ProxyConfig, ProxyModel

    train, new = _tiny_samples(0), _tiny_samples(1)
    model = ProxyModel(32, 2, ProxyConfig(steps=3, batch_size=3, novelty_bank=12))
    model.fit(train)
    assert model.bank is not None and tuple(model.bank.shape) == (12, 32)  # a subsample of the 18 patches
    bank = model.bank.float().numpy()
    seen = np.stack([s.feats.reshape(-1, 32).astype(np.float32) for s in train]).reshape(-1, 32)
    in_bank = (np.abs(seen @ bank.T - 1) < 1e-2).any(axis=1)
    assert in_bank.sum() == 12
    nov_train = model.novelty(train)
    assert nov_train is not None and nov_train.shape == (3, 2, 3)
    assert np.all(nov_train.reshape(-1)[in_bank] < 1e-2)
    nov_new = model.novelty(new)
    assert nov_new is not None and nov_new.min() > 0.3  # random 32-d vectors are far from every bank patch
    pred = model.predict(new)
    assert pred.novelty is not None and pred.novelty.shape == (3, 8, 12)
    assert frame_scores(pred.probs[0], novelty=pred.novelty[0])["novelty"] == pytest.approx(float(pred.novelty[0].mean()))
    assert "novelty" not in frame_scores(pred.probs[0])


def test_novelty_temperature_keeps_the_argmax_and_lowers_confidence() -> None:
    from curator.train.proxy import ProxyConfig, ProxyModel

    train, new = _tiny_samples(0), _tiny_samples(1)
    model = ProxyModel(32, 3, ProxyConfig(steps=20, batch_size=3, novelty_scale=10.0))
    model.fit(train)
    tempered = model.predict(new).probs
    bank, model.bank = model.bank, None
    plain = model.predict(new).probs
    model.bank = bank
    assert np.array_equal(tempered.argmax(axis=1), plain.argmax(axis=1))
    assert np.allclose(tempered.sum(axis=1), 1, atol=1e-5)
    assert np.all(tempered.max(axis=1) <= plain.max(axis=1) + 1e-6)
    assert tempered.max(axis=1).mean() < plain.max(axis=1).mean() - 0.01
    # on the training frames (novelty ~0) the temperature is ~1
    assert np.allclose(model.predict(train).probs, model.predict_proba(train)[0])


def test_novelty_bank_zero_gives_the_plain_softmax() -> None:
    import torch

    from curator.train.proxy import ProxyConfig, ProxyModel

    train, new = _tiny_samples(0), _tiny_samples(1)
    off = ProxyModel(32, 2, ProxyConfig(steps=5, batch_size=3, novelty_bank=0))
    off.fit(train)
    assert off.bank is None and "bank" not in off.state()
    pred = off.predict(new)
    assert pred.novelty is None
    feats, image = off._batch(new)
    with torch.no_grad():
        plain = torch.softmax(off.net(feats, image), dim=1).numpy()
    assert np.array_equal(pred.probs, plain)
    # building the bank does not move training: the same seed gives the same weights
    on = ProxyModel(32, 2, ProxyConfig(steps=5, batch_size=3))
    on.fit(train)
    for k, v in off.net.state_dict().items():
        assert torch.equal(v, on.net.state_dict()[k]), k
    with pytest.raises(ValueError, match="novelty_scale"):
        ProxyModel(32, 2, ProxyConfig(novelty_scale=-1.0))


def test_checkpoint_keeps_the_bank_and_old_checkpoints_load(tmp_path: Path) -> None:
    import torch

    from curator.train.proxy import ProxyConfig, ProxyModel

    train, new = _tiny_samples(0), _tiny_samples(1)
    model = ProxyModel(32, 2, ProxyConfig(steps=5, batch_size=3))  # a few steps: only the round trip matters
    model.fit(train)
    model.save(tmp_path / "m.pt")
    loaded = ProxyModel.load(tmp_path / "m.pt")
    assert torch.equal(loaded.bank, model.bank)
    a, b = model.predict(new, mc_samples=0), loaded.predict(new)
    assert np.array_equal(a.probs, b.probs) and a.novelty is not None and b.novelty is not None
    assert np.array_equal(a.novelty, b.novelty)
    # a checkpoint from before the bank: no novelty, the plain softmax
    state = model.state()
    del state["bank"]
    config = dict(state["config"])
    del config["novelty_bank"], config["novelty_scale"]
    state["config"] = config
    torch.save(state, tmp_path / "old.pt")
    old = ProxyModel.load(tmp_path / "old.pt")
    assert old.bank is None and old.predict(new).novelty is None
    model.bank = None
    assert np.array_equal(old.predict(new).probs, model.predict(new).probs)
