"""DINOv2 backbones through timm, with weights from a local checkpoint file or the Hugging Face hub."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from curator.embed.base import BACKBONES, BackboneWeightsError, l2_normalize

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CHECKPOINT_ENV = "CURATOR_BACKBONE_CHECKPOINT"
HOW_TO_PROVIDE = (
    "Provide the weights with --checkpoint PATH or CURATOR_BACKBONE_CHECKPOINT=PATH (a timm "
    "'{model}' state dict as .safetensors or .pth), or run where https://huggingface.co is reachable "
    "so timm can download 'timm/{model}'. For a weight-free start use --backbone classic."
)


def resolve_device(device: str = "auto") -> str:
    """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether the model hub answers a TCP connect quickly (avoids minutes of download retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_hub_file(repo_id: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub is a timm dependency
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return found
    return None


def load_timm_model(model_name: str, checkpoint: str | Path | None, img_size: int) -> Any:
    """Create a timm model with pretrained weights from ``checkpoint`` or else the hub.

    Args:
        model_name: timm model name with its pretrained tag.
        checkpoint: Local weights file; ``None`` or empty falls back to ``$CURATOR_BACKBONE_CHECKPOINT``,
            then the hub (or its local cache when the hub is unreachable).
        img_size: Input resolution the position embedding is resampled to.

    Returns:
        The model in eval mode, on the CPU.

    Raises:
        BackboneWeightsError: If the file is missing or the weights cannot be had; the message says how
            to provide them.
    """
    import timm

    checkpoint = checkpoint or os.environ.get(CHECKPOINT_ENV) or None
    how = HOW_TO_PROVIDE.format(model=model_name)
    kwargs: dict[str, Any] = {"img_size": img_size, "num_classes": 0, "dynamic_img_size": True}
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise BackboneWeightsError(f"backbone checkpoint {path} does not exist. {how}")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
    else:
        repo_id = f"timm/{model_name}"
        if not hub_reachable():
            cached = _cached_hub_file(repo_id)
            if cached is None:
                raise BackboneWeightsError(
                    f"no weights for {model_name}: no checkpoint was given and the hub is unreachable "
                    f"with nothing cached. {how}"
                )
            kwargs["pretrained_cfg_overlay"] = {"file": cached}
    try:
        model = timm.create_model(model_name, pretrained=True, **kwargs)
    except Exception as exc:  # timm raises many kinds here: bad file, network, key mismatch
        raise BackboneWeightsError(f"could not load weights for {model_name}: {exc}. {how}") from exc
    return model.eval()


class TimmViTBackbone:
    """A ViT backbone from timm: CLS token as the global vector, patch tokens on request.

    Images are resized (whole frame, aspect not kept) to ``image_size`` and ImageNet-normalised.
    Inference runs under ``torch.inference_mode``; on CUDA it autocasts to bfloat16.

    Args:
        checkpoint: Local weights file (see :func:`load_timm_model`).
        device: ``auto``, ``cpu`` or ``cuda``.
        image_size: Square input size for global embeddings; a multiple of the patch size.
    """

    name: ClassVar[str] = ""
    model_name: ClassVar[str] = ""

    def __init__(
        self, checkpoint: str | Path | None = None, device: str = "auto", image_size: int = 224
    ) -> None:
        import torch

        self.device = resolve_device(device)
        self.image_size = image_size
        #: The weights file in use (``None``: the hub); names the weights in caches of derived data.
        self.checkpoint: str | None = str(checkpoint or os.environ.get(CHECKPOINT_ENV) or "") or None
        self.model = load_timm_model(self.model_name, checkpoint, image_size).to(self.device)
        self.dim = int(self.model.embed_dim)
        self.patch_size = int(self.model.patch_embed.patch_size[0])
        self.num_prefix_tokens = int(self.model.num_prefix_tokens)
        self._torch = torch

    def _to_tensor(self, images: Sequence[np.ndarray], size: tuple[int, int]) -> Any:
        height, width = size
        batch = np.empty((len(images), height, width, 3), dtype=np.float32)
        for i, image in enumerate(images):
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected (H, W, 3) RGB images, got shape {image.shape}")
            batch[i] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        batch = (batch / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        tensor = self._torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
        return tensor.to(self.device)

    def _forward_tokens(self, images: Sequence[np.ndarray], size: tuple[int, int]) -> Any:
        torch = self._torch
        x = self._to_tensor(images, size)
        with (
            torch.inference_mode(),
            torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.device.startswith("cuda")),
        ):
            return self.model.forward_features(x).float()

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """CLS embeddings of RGB uint8 images: ``(n, dim)`` float32 unit vectors."""
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokens = self._forward_tokens(images, (self.image_size, self.image_size))
        return l2_normalize(tokens[:, 0].cpu().numpy())

    def patch_tokens(self, images: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """Patch-token features on a grid, for dense tasks (propagation, proxy models).

        Args:
            images: RGB uint8 images.
            size: ``(height, width)`` the images are resized to; each a multiple of the patch size.

        Returns:
            ``(n, height // patch, width // patch, dim)`` float32 features (not normalised).

        Raises:
            ValueError: If ``size`` is not a multiple of the patch size.
        """
        height, width = size
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"size {size} must be a multiple of the patch size {self.patch_size}")
        tokens = self._forward_tokens(images, size)[:, self.num_prefix_tokens :]
        grid = tokens.reshape(len(images), height // self.patch_size, width // self.patch_size, -1)
        return grid.cpu().numpy().astype(np.float32)


@BACKBONES.register("dinov2_vits14")
class DinoV2ViTS14(TimmViTBackbone):
    """DINOv2 ViT-S/14 (timm ``vit_small_patch14_dinov2.lvd142m``), 384-d CLS embeddings."""

    name: ClassVar[str] = "dinov2_vits14"
    model_name: ClassVar[str] = "vit_small_patch14_dinov2.lvd142m"


@BACKBONES.register("dinov2_vitb14")
class DinoV2ViTB14(TimmViTBackbone):
    """DINOv2 ViT-B/14 (timm ``vit_base_patch14_dinov2.lvd142m``), 768-d CLS embeddings."""

    name: ClassVar[str] = "dinov2_vitb14"
    model_name: ClassVar[str] = "vit_base_patch14_dinov2.lvd142m"


class _Int8Embeddings:
    """Mixin: CLS embeddings through the int8 ONNX Runtime model of :mod:`curator.embed.int8`.

    The int8 model is built (about 10 s) or read from the model cache when the backbone is made;
    ``patch_tokens`` keeps the fp32 PyTorch model. Its embeddings live in their own space (a distinct
    backbone name, so its own index): they are close to the fp32 ones (cosine >= 0.995 on the DAVIS
    frames) but not equal, and an index must not mix the two.
    """

    image_size: int
    dim: int
    _int8: Any

    def _start_int8(self) -> None:
        from curator.embed.int8 import Int8Session

        self._int8 = Int8Session(self)

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """CLS embeddings of RGB uint8 images, one frame per int8 call: ``(n, dim)`` float32 unit vectors."""
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = (self.image_size, self.image_size)
        # prepared together (the same values as one by one, with the per-call overhead paid once)
        batch = self._to_tensor(images, size).cpu().numpy()  # type: ignore[attr-defined]
        return l2_normalize(self._int8.cls_tokens(batch[i : i + 1] for i in range(len(batch))))


@BACKBONES.register("dinov2_vits14_int8")
class DinoV2ViTS14Int8(_Int8Embeddings, DinoV2ViTS14):
    """DINOv2 ViT-S/14 with int8 CLS embeddings on the CPU (ONNX Runtime); fp32 patch tokens."""

    name: ClassVar[str] = "dinov2_vits14_int8"

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto", image_size: int = 224) -> None:
        super().__init__(checkpoint, device, image_size)
        self._start_int8()


@BACKBONES.register("dinov2_vitb14_int8")
class DinoV2ViTB14Int8(_Int8Embeddings, DinoV2ViTB14):
    """DINOv2 ViT-B/14 with int8 CLS embeddings on the CPU (ONNX Runtime); fp32 patch tokens."""

    name: ClassVar[str] = "dinov2_vitb14_int8"

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto", image_size: int = 224) -> None:
        super().__init__(checkpoint, device, image_size)
        self._start_int8()

