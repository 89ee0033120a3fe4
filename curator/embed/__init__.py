"""Embedding backbones: a registry, weight resolution, and batched inference overlapped with decoding.

``create_backbone("auto")`` gives DINOv2 ViT-S/14 when its weights resolve and the weight-free
``classic`` embedder otherwise (with ``fell_back`` telling the caller why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.embed import classic as _classic  # noqa: F401  (registers "classic")
from curator.embed import dinov2 as _dinov2  # noqa: F401  (registers the DINOv2 models)
from curator.embed.base import BACKBONES, Backbone, BackboneWeightsError, l2_normalize

DEFAULT_BACKBONE = "dinov2_vits14"


def list_backbones() -> list[str]:
    """Names accepted by :func:`create_backbone` (plus ``auto``)."""
    return BACKBONES.names()


@dataclass(frozen=True)
class BackboneChoice:
    """The backbone actually built, and, when ``auto`` fell back to ``classic``, why."""

    backbone: Backbone
    fell_back: str | None = None


def create_backbone(
    name: str = DEFAULT_BACKBONE, checkpoint: str | Path | None = None, device: str = "auto", **kwargs: Any
) -> BackboneChoice:
    """Build a backbone by name.

    Args:
        name: A registered name or ``auto``.
        checkpoint: Weights file for backbones that take one (ignored by ``classic``).
        device: ``auto``, ``cpu`` or ``cuda``.
        **kwargs: Passed to the backbone's constructor.

    Returns:
        The backbone, and the reason for a fallback when ``auto`` had to use ``classic``.

    Raises:
        BackboneWeightsError: If a named weight-backed backbone cannot get its weights.
        UnknownNameError: If the name is not registered.
    """
    if name == "auto":
        try:
            return create_backbone(DEFAULT_BACKBONE, checkpoint, device, **kwargs)
        except BackboneWeightsError as exc:
            return BackboneChoice(BACKBONES.create("classic"), fell_back=str(exc))
    factory = BACKBONES.get(name)
    if name == "classic":
        return BackboneChoice(factory(**kwargs))
    return BackboneChoice(factory(checkpoint=checkpoint, device=device, **kwargs))


__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "Backbone",
    "BackboneChoice",
    "BackboneWeightsError",
    "create_backbone",
    "l2_normalize",
    "list_backbones",
]
