"""Choosing a segmenter by name, with ``auto``: ``sam2`` when a SAM 2 checkpoint is configured, else
``feature`` when the DINOv2 weights resolve, else ``grabcut`` (with the reason)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Environment variables naming SAM 2's weights for ``auto`` (a ``.pt`` file, or a hub id) and config.
SAM2_CHECKPOINT_ENV = "CURATOR_SAM2_CHECKPOINT"
SAM2_HUB_ENV = "CURATOR_SAM2_HUB"
SAM2_CONFIG_ENV = "CURATOR_SAM2_CONFIG"
#: What ``auto`` becomes without SAM 2 but with DINOv2 weights: the best NoC per CPU second.
CPU_SEGMENTER = "feature"
#: What ``auto`` becomes with neither: needs no weights.
FALLBACK_SEGMENTER = "grabcut"


@dataclass(frozen=True)
class SegmenterChoice:
    """The segmenter built, its registered name, and, when ``auto`` fell back to ``grabcut``, why."""

    segmenter: Any
    name: str
    fell_back: str | None = None


def sam2_options(
    checkpoint: str | Path | None, hub_id: str | None, config: str | None
) -> dict[str, Any] | None:
    """SAM 2 weights from the arguments or the environment (:data:`SAM2_CHECKPOINT_ENV`,
    :data:`SAM2_HUB_ENV`, :data:`SAM2_CONFIG_ENV`): ``checkpoint``, ``hub_id`` and maybe ``config``;
    None when none are configured."""
    checkpoint = checkpoint or os.environ.get(SAM2_CHECKPOINT_ENV) or None
    hub_id = hub_id or os.environ.get(SAM2_HUB_ENV) or None
    config = config or os.environ.get(SAM2_CONFIG_ENV) or None
    if not checkpoint and not hub_id:
        return None
    options: dict[str, Any] = {"checkpoint": checkpoint, "hub_id": hub_id}
    if config:
        options["config"] = config
    return options


def choose_segmenter(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    backbone: Any = None,
    sam2_checkpoint: str | Path | None = None,
    sam2_hub: str | None = None,
    sam2_config: str | None = None,
    **kwargs: Any,
) -> SegmenterChoice:
    """Build the segmenter ``name`` (a registered name or ``auto``).

    Args:
        name: A name from :func:`curator.segment.list_segmenters`, or ``auto``.
        checkpoint: DINOv2 weights for ``feature`` (else ``$CURATOR_BACKBONE_CHECKPOINT``, then the hub).
        device: ``auto``, ``cpu`` or ``cuda``.
        backbone: An already-built DINOv2 backbone to share.
        sam2_checkpoint: SAM 2 checkpoint (else ``$CURATOR_SAM2_CHECKPOINT``).
        sam2_hub: SAM 2 hub id (else ``$CURATOR_SAM2_HUB``).
        sam2_config: SAM 2 Hydra config matching the checkpoint (else ``$CURATOR_SAM2_CONFIG``).
        **kwargs: Passed to the segmenter's constructor.

    Raises:
        UnknownNameError: For an unknown name.
        BackboneWeightsError: If ``feature`` is named and the DINOv2 weights cannot be had.
        SAM2WeightsError: If ``sam2`` is named and no weights are configured or the file is missing.
    """
    from curator.annotate.sam2_backend import SAM2WeightsError
    from curator.embed import BackboneWeightsError, create_backbone
    from curator.segment.types import create_segmenter

    sam2 = sam2_options(sam2_checkpoint, sam2_hub, sam2_config)
    if name == "auto":
        reasons = []
        if sam2 is not None:
            try:
                return SegmenterChoice(create_segmenter("sam2", device=device, **sam2, **kwargs), "sam2")
            except SAM2WeightsError as exc:
                reasons.append(f"SAM 2: {exc}")
        try:
            if backbone is None:
                backbone = create_backbone("dinov2_vits14", checkpoint, device).backbone
        except BackboneWeightsError as exc:
            if sam2 is None:
                reasons.append(f"no SAM 2 checkpoint is configured (set {SAM2_CHECKPOINT_ENV})")
            reasons.append(f"DINOv2: {exc}")
            return SegmenterChoice(
                create_segmenter(FALLBACK_SEGMENTER, **kwargs), FALLBACK_SEGMENTER, "; ".join(reasons)
            )
        name = CPU_SEGMENTER
        if reasons:
            return SegmenterChoice(
                create_segmenter(name, backbone=backbone, device=device, **kwargs), name, "; ".join(reasons)
            )
    if name == "feature":
        if backbone is None:
            backbone = create_backbone("dinov2_vits14", checkpoint, device).backbone
        kwargs = {"backbone": backbone, "device": device, **kwargs}
    elif name == "sam2":
        kwargs = {"device": device, **(sam2 or {}), **kwargs}
    return SegmenterChoice(create_segmenter(name, **kwargs), name)


_SHARED: dict[tuple[Any, ...], SegmenterChoice] = {}
_SHARED_LOCK = threading.Lock()


def shared_segmenter(name: str, notice: Callable[[str], None] | None = None, **options: Any) -> SegmenterChoice:
    """The process's one segmenter for ``name`` and ``options`` (see :func:`choose_segmenter`).

    Segmenters hold models and per-image caches, so the library, the CLI and every API request of a
    process share one per setting instead of loading weights per call. ``notice`` hears once, when
    it is built, why ``auto`` fell back.
    """
    key = (name, tuple(sorted((k, str(v)) for k, v in options.items())))
    with _SHARED_LOCK:
        choice = _SHARED.get(key)
        if choice is None:
            choice = choose_segmenter(name, **options)
            _SHARED[key] = choice
            if choice.fell_back and notice is not None:
                notice(f"click-to-segment uses {choice.name!r}.\n  Why: {choice.fell_back}")
    return choice
