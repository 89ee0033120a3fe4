"""The proxy segmentation model: a light convolutional decoder on frozen DINOv2 patch features.

Why this shape: the backbone is frozen (its patch tokens are computed once per frame and cached, the
same features the ``feature``/``flow+feature`` propagators use), so a round only trains a head of
about 60 k parameters. The head maps the ``(rows, cols)`` patch grid through a 1x1 projection and a
3x3 convolution, upsamples by ``upsample`` and fuses a small convolution of the frame's pixels at that
resolution (the skip from the image, which puts the coarse 14 px patch labels back on colour edges),
then predicts per-pixel class logits. ``Dropout2d`` in the feature path makes MC-dropout available.

Classes are ``0`` (background) and the project's object ids ``1..C-1``. Training uses a per-pixel
cross-entropy where every frame carries a weight: 1 for human masks, the propagation confidence for
propagated masks. Everything is seeded, so a round is reproducible on the same machine.

Distance-aware uncertainty (the idea of SNGP / DDU): a softmax head is as confident far from its
training data as near it; on DAVIS ``breakdance`` trained on frames 0-2 its mean entropy was lower on
frames 70-72 (0.099), where it had half lost the dancer, than on the training frames (0.102). So
:meth:`ProxyModel.fit` keeps a bank of the training frames' patch features, the *novelty* of a patch
is ``1 - max cosine similarity`` to that bank, and the logits of each pixel are divided by
``T = 1 + novelty_scale * novelty`` before the softmax: predictions revert towards uniform where the
features are unlike anything trained on. The argmax (so every mask) is unchanged; only the
uncertainty scores move.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class ProxyConfig:
    """Settings of the proxy model and its training.

    Attributes:
        hidden: Channels of the feature path.
        skip_channels: Channels of the image skip.
        upsample: Output resolution factor over the patch grid (4 gives 3.5 px cells at 14 px patches).
        dropout: ``Dropout2d`` rate in the feature path (also used by MC-dropout scoring).
        steps: Optimiser steps per round.
        batch_size: Frames per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        seed: Seeds torch and the batch sampler.
        threads: Torch CPU threads while training and predicting (0 leaves torch's setting alone).
            1 because the head's tensors are small: on the shared 2-core machine a training step took
            0.11 s on one thread and 0.6 s on two while another process kept a core busy (OpenMP's
            barrier waits for the descheduled thread); what two threads gain on an idle machine is
            small for tensors this size.
        novelty_bank: Most training patches kept (a seeded random subsample) to measure feature
            novelty against; 0 disables novelty and the temperature (the plain softmax).
        novelty_scale: Logits are divided by ``1 + novelty_scale * novelty`` per pixel. 20 because
            DINOv2 novelty is small (a few hundredths away from the training frames): smaller scales
            barely separate near and far frames, larger ones turn the entropy into a copy of
            ``novelty`` (measurements in ``docs/experiments.md``).
    """

    hidden: int = 96
    skip_channels: int = 16
    upsample: int = 4
    dropout: float = 0.1
    steps: int = 100
    batch_size: int = 8
    lr: float = 1e-2
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 1
    novelty_bank: int = 4096
    novelty_scale: float = 20.0


def _build_head(dim: int, classes: int, config: ProxyConfig) -> Any:
    import torch
    from torch import nn

    class ProxyHead(nn.Module):
        """Patch features ``(B, D, h, w)`` plus the image ``(B, 3, h*s, w*s)`` -> logits ``(B, C, h*s, w*s)``."""

        def __init__(self) -> None:
            super().__init__()
            hid, sk = config.hidden, config.skip_channels
            self.proj = nn.Sequential(nn.Conv2d(dim, hid, 1), nn.GELU(), nn.Dropout2d(config.dropout))
            # squeeze to a few channels before upsampling: the full-resolution convolutions dominate the cost
            self.ctx = nn.Sequential(nn.Conv2d(hid, hid, 3, padding=1), nn.GELU(), nn.Conv2d(hid, 24, 1), nn.GELU())
            self.skip = nn.Sequential(nn.Conv2d(5, sk, 3, padding=1), nn.GELU())
            self.fuse = nn.Sequential(nn.Conv2d(24 + sk, 24, 3, padding=1), nn.GELU(), nn.Conv2d(24, classes, 1))

        def forward(self, feats: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
            x = self.ctx(self.proj(feats))
            x = nn.functional.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)
            b, _, h, w = image.shape
            ys = torch.linspace(-1, 1, h, device=image.device).view(1, 1, h, 1).expand(b, 1, h, w)
            xs = torch.linspace(-1, 1, w, device=image.device).view(1, 1, 1, w).expand(b, 1, h, w)
            s = self.skip(torch.cat([image, ys, xs], dim=1))
            out: torch.Tensor = self.fuse(torch.cat([x, s], dim=1))
            return out

    return ProxyHead()


@dataclass
class Sample:
    """One training or inference frame for the proxy.

    Attributes:
        feats: ``(rows, cols, D)`` float patch features.
        image: ``(rows*s, cols*s, 3)`` float32 RGB in [0, 1] at the output resolution.
        target: ``(rows*s, cols*s)`` int64 class map, or ``None`` for inference.
        weight: Loss weight of the frame.
    """

    feats: np.ndarray
    image: np.ndarray
    target: np.ndarray | None = None
    weight: float = 1.0


def output_size(grid: tuple[int, int], config: ProxyConfig) -> tuple[int, int]:
    """``(height, width)`` of the proxy's output for a patch grid."""
    return grid[0] * config.upsample, grid[1] * config.upsample


def make_sample(
    feats: np.ndarray,
    grid: tuple[int, int],
    frame: np.ndarray,
    config: ProxyConfig,
    labels: np.ndarray | None = None,
    weight: float = 1.0,
) -> Sample:
    """A :class:`Sample` from flat patch features ``(rows*cols, D)``, the RGB frame and its label map.

    Raises:
        ValueError: If ``feats`` does not hold ``rows * cols`` rows.
    """
    rows, cols = grid
    if feats.shape[0] != rows * cols:
        raise ValueError(f"feats must have {rows * cols} rows for grid {grid}, got {feats.shape}")
    oh, ow = output_size(grid, config)
    image = cv2.resize(frame, (ow, oh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    target = None
    if labels is not None:
        target = cv2.resize(labels.astype(np.uint8), (ow, oh), interpolation=cv2.INTER_NEAREST).astype(np.int64)
    return Sample(feats.reshape(rows, cols, -1).astype(np.float16), image, target, float(weight))


@dataclass
class Prediction:
    """What :meth:`ProxyModel.predict` returns for ``n`` frames of one output size ``(h, w)``.

    Attributes:
        probs: ``(n, C, h, w)`` float32 class probabilities (novelty-tempered with a bank).
        disagreement: ``(n,)`` MC-dropout disagreement in [0, 1], or ``None`` without MC passes.
        novelty: ``(n, h, w)`` float32 per-pixel feature novelty in [0, 1] (bilinear from the patch
            grid), or ``None`` when the model has no bank (``novelty_bank=0`` or an old checkpoint).
    """

    probs: np.ndarray
    disagreement: np.ndarray | None
    novelty: np.ndarray | None


@dataclass
class TrainReport:
    """What one training run did: losses per step (first and last means), seconds, frames."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    frames: int = 0

    @property
    def first_loss(self) -> float:
        """Mean loss over the first tenth of the steps."""
        k = max(1, len(self.losses) // 10)
        return float(np.mean(self.losses[:k])) if self.losses else float("nan")

    @property
    def last_loss(self) -> float:
        """Mean loss over the last tenth of the steps."""
        k = max(1, len(self.losses) // 10)
        return float(np.mean(self.losses[-k:])) if self.losses else float("nan")


class ProxyModel:
    """The proxy segmentation head with its training, prediction and checkpoint code.

    Args:
        dim: Patch feature dimension (384 for ViT-S/14).
        classes: Number of classes, background included.
        config: Model and training settings.
    """

    def __init__(self, dim: int, classes: int, config: ProxyConfig | None = None) -> None:
        import torch

        if classes < 2:
            raise ValueError(f"classes must be >= 2 (background and at least one object), got {classes}")
        self.config = config or ProxyConfig()
        if self.config.novelty_bank < 0 or self.config.novelty_scale < 0:
            raise ValueError("novelty_bank and novelty_scale must be >= 0")
        self.dim = int(dim)
        self.classes = int(classes)
        torch.manual_seed(self.config.seed)
        self.net = _build_head(self.dim, self.classes, self.config)
        #: ``(K, dim)`` float16 unit-norm training patch features (set by :meth:`fit`), or ``None``.
        self.bank: Any = None

    @staticmethod
    def _batch(samples: Sequence[Sample]) -> tuple[Any, Any]:
        import torch

        feats = torch.from_numpy(np.stack([s.feats for s in samples]).astype(np.float32)).permute(0, 3, 1, 2)
        image = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2)
        return feats.contiguous(), image.contiguous()

    def fit(
        self,
        samples: Sequence[Sample],
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> TrainReport:
        """Train on ``samples`` (each with a target) for ``config.steps`` steps.

        Frames are grouped by output size (one video's frames share it) and each step draws a batch
        from one group, with probability proportional to the group's total weight.

        Raises:
            ValueError: With no samples, or a sample without a target or with a class outside
                ``0..classes-1``.
        """
        import torch

        if not samples:
            raise ValueError("the proxy needs at least one labelled frame to train on")
        for s in samples:
            if s.target is None:
                raise ValueError("every training sample needs a target")
            if int(s.target.max()) >= self.classes or int(s.target.min()) < 0:
                raise ValueError(f"target classes must lie in 0..{self.classes - 1}, got {int(s.target.max())}")
        cfg = self.config
        self.bank = _feature_bank(samples, cfg.novelty_bank, cfg.seed)
        old_threads = torch.get_num_threads()
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, s in enumerate(samples):
            groups.setdefault(s.image.shape, []).append(i)
        keys = list(groups)
        group_w = np.array([sum(samples[i].weight for i in groups[k]) for k in keys], dtype=np.float64)
        group_w = group_w / group_w.sum() if group_w.sum() > 0 else np.full(len(keys), 1 / len(keys))
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1), pct_start=0.15)
        report = TrainReport(frames=len(samples))
        start = time.perf_counter()
        self.net.train()
        try:
            for step in range(cfg.steps):
                if cancel is not None and cancel():
                    break
                members = groups[keys[int(rng.choice(len(keys), p=group_w))]]
                pick = rng.choice(members, size=min(cfg.batch_size, len(members)), replace=False)
                batch = [samples[int(i)] for i in pick]
                feats, image = self._batch(batch)
                feats, image = _augment(feats, image, rng)
                target = torch.from_numpy(np.stack([b.target for b in batch]))  # type: ignore[misc]
                weight = torch.tensor([b.weight for b in batch], dtype=torch.float32)
                logits = self.net(feats, image)
                loss_px = torch.nn.functional.cross_entropy(logits, target, reduction="none").mean(dim=(1, 2))
                loss = (loss_px * weight).sum() / weight.sum().clamp_min(1e-6)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                report.losses.append(float(loss.detach()))
                if progress is not None:
                    progress(step + 1, cfg.steps)
        finally:
            if cfg.threads > 0:
                torch.set_num_threads(old_threads)
        self.net.eval()
        report.seconds = time.perf_counter() - start
        return report

    def novelty(self, samples: Sequence[Sample]) -> np.ndarray | None:
        """Per-patch feature novelty ``(n, rows, cols)`` in [0, 1], or ``None`` without a bank.

        Novelty is ``1 - max cosine similarity`` of a patch to the bank of training patches: 0 for a
        patch seen in training, larger the less the frame looks like anything trained on.
        """
        if self.bank is None or not samples:
            return None
        feats, _ = self._batch(samples)
        return self._patch_novelty(feats)[:, 0].numpy()

    def _patch_novelty(self, feats: Any, block: int = 1024) -> Any:
        """``(n, 1, rows, cols)`` novelty of ``(n, D, rows, cols)`` features (float32, bank in blocks)."""
        import torch

        n, d, rows, cols = feats.shape
        if d != self.bank.shape[1]:
            raise ValueError(f"features have dimension {d}, the novelty bank {self.bank.shape[1]}")
        query = torch.nn.functional.normalize(feats.permute(0, 2, 3, 1).reshape(-1, d), dim=1)
        best = torch.full((query.shape[0],), -1.0)
        for lo in range(0, self.bank.shape[0], block):
            best = torch.maximum(best, (query @ self.bank[lo : lo + block].float().T).amax(dim=1))
        return (1.0 - best).clamp(0.0, 1.0).reshape(n, 1, rows, cols)

    def predict(self, samples: Sequence[Sample], mc_samples: int = 0) -> Prediction:
        """Probabilities, MC-dropout disagreement and per-pixel novelty for samples of one output size.

        With a novelty bank (see the module docstring), each pixel's logits are divided by
        ``T = 1 + novelty_scale * novelty`` before the softmax. A positive ``T`` keeps the order of
        the logits, so the argmax (the masks) is unchanged; ``T >= 1`` only pulls novel pixels
        towards uniform.

        Cost of the novelty: one ``(patches, D) @ (D, bank)`` product per frame. With a full 4096-patch
        bank on the shared 2-core CPU it adds about 0.04 s per frame at a 16 x 28 grid (224 px short
        side; the head alone takes about 0.015 s) and 0.01 s at 8 x 14 (112 px).

        Args:
            samples: Frames of one video (same output size).
            mc_samples: With ``> 0``, also run that many passes with dropout on and return the mean
                per-frame disagreement (mean over pixels of the variance of the top class probability,
                scaled to [0, 1]). The passes use the untempered logits, so this stays a signal of its
                own (tempering would shrink the variance exactly where novelty is high).
        """
        import torch

        if not samples:
            return Prediction(np.zeros((0, self.classes, 0, 0), np.float32), None, None)
        old_threads = torch.get_num_threads()
        if self.config.threads > 0:
            torch.set_num_threads(self.config.threads)
        try:
            return self._predict(samples, mc_samples)
        finally:
            if self.config.threads > 0:
                torch.set_num_threads(old_threads)

    def _predict(self, samples: Sequence[Sample], mc_samples: int) -> Prediction:
        import torch

        feats, image = self._batch(samples)
        with torch.no_grad():
            self.net.eval()
            logits = self.net(feats, image)
            novelty = None
            if self.bank is not None:
                per_pixel = torch.nn.functional.interpolate(
                    self._patch_novelty(feats), size=logits.shape[-2:], mode="bilinear", align_corners=False
                )
                logits = logits / (1.0 + self.config.novelty_scale * per_pixel)
                novelty = per_pixel[:, 0].numpy().astype(np.float32)
            probs = torch.softmax(logits, dim=1)
            disagreement = None
            if mc_samples > 0:
                self.net.train()
                draws = torch.stack([torch.softmax(self.net(feats, image), dim=1) for _ in range(mc_samples)])
                self.net.eval()
                disagreement = (4.0 * draws.var(dim=0).sum(dim=1)).mean(dim=(1, 2)).clamp(0, 1).numpy()
        return Prediction(probs.numpy().astype(np.float32), disagreement, novelty)

    def predict_proba(self, samples: Sequence[Sample], mc_samples: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities ``(n, C, h, w)`` and the MC-dropout disagreement of :meth:`predict`."""
        pred = self.predict(samples, mc_samples)
        return pred.probs, pred.disagreement

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the model: config, sizes, weights and the novelty bank."""
        state = {"config": asdict(self.config), "dim": self.dim, "classes": self.classes, "weights": self.net.state_dict()}
        if self.bank is not None:
            state["bank"] = self.bank
        return state

    def save(self, path: str | Path) -> None:
        """Write a checkpoint (``torch.save`` of :meth:`state`)."""
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.state(), tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> ProxyModel:
        """Rebuild a model saved by :meth:`save`."""
        import torch

        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        model = cls(int(state["dim"]), int(state["classes"]), ProxyConfig(**state["config"]))
        model.net.load_state_dict(state["weights"])
        model.net.eval()
        model.bank = state.get("bank")  # checkpoints from before the novelty bank have none
        return model


def _feature_bank(samples: Sequence[Sample], size: int, seed: int) -> Any:
    """A seeded random subsample of at most ``size`` unit-norm training patches, ``(K, D)`` float16."""
    import torch

    if size <= 0:
        return None
    counts = np.array([s.feats.shape[0] * s.feats.shape[1] for s in samples])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    rng = np.random.default_rng([seed, 1])  # a stream of its own: the training batches do not move
    pick = np.sort(rng.choice(int(offsets[-1]), size=min(size, int(offsets[-1])), replace=False))
    owner = np.searchsorted(offsets, pick, side="right") - 1
    rows = [samples[k].feats.reshape(-1, samples[k].feats.shape[-1])[pick[owner == k] - offsets[k]] for k in np.unique(owner)]
    bank = torch.nn.functional.normalize(torch.from_numpy(np.concatenate(rows).astype(np.float32)), dim=1)
    return bank.to(torch.float16)


def _augment(feats: Any, image: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """Light photometric jitter on the image skip (features are fixed, so no geometric change)."""
    import torch

    gain = torch.from_numpy(rng.uniform(0.85, 1.15, size=(image.shape[0], 3, 1, 1)).astype(np.float32))
    return feats, (image * gain).clamp(0, 1)


def upsample_probs(probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(C, h, w)`` probabilities to ``(C, H, W)``."""
    return np.stack([cv2.resize(p, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for p in probs])
