"""Choosing a propagator by name, with ``auto``: ``flow+feature`` when DINOv2 weights resolve, else ``flow``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: What ``auto`` becomes when DINOv2 weights resolve: the best J&F on the DAVIS keyframe benchmark on a CPU.
AUTO_PROPAGATOR = "flow+feature"
#: What ``auto`` becomes without weights: needs none.
FALLBACK_PROPAGATOR = "flow"
#: Propagators that run DINOv2 and so take ``backbone``/``checkpoint``/``device``.
FEATURE_PROPAGATORS = ("feature", "flow+feature")


@dataclass(frozen=True)
class PropagatorChoice:
    """The propagator built, its registered name, and, when ``auto`` fell back to ``flow``, why."""

    propagator: Any
    name: str
    fell_back: str | None = None


def choose_propagator(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    backbone: Any = None,
    **kwargs: Any,
) -> PropagatorChoice:
    """Build the propagator ``name`` (a registered name or ``auto``).

    Args:
        name: A name from :func:`curator.annotate.list_propagators`, or ``auto``.
        checkpoint: DINOv2 weights for the feature propagators (else ``$CURATOR_BACKBONE_CHECKPOINT``,
            then the hub).
        device: ``auto``, ``cpu`` or ``cuda``.
        backbone: An already-built DINOv2 backbone to share (weights load once per process).
        **kwargs: Passed to the propagator's constructor.

    Raises:
        UnknownNameError: For an unknown name.
        BackboneWeightsError: If a feature propagator is named and its weights cannot be had.
    """
    from curator.annotate import create_propagator
    from curator.embed import BackboneWeightsError, create_backbone

    if name == "auto":
        try:
            if backbone is None:
                backbone = create_backbone("dinov2_vits14", checkpoint, device).backbone
        except BackboneWeightsError as exc:
            return PropagatorChoice(create_propagator(FALLBACK_PROPAGATOR, **kwargs), FALLBACK_PROPAGATOR, str(exc))
        name = AUTO_PROPAGATOR
    if name in FEATURE_PROPAGATORS:
        if backbone is None:
            backbone = create_backbone("dinov2_vits14", checkpoint, device).backbone
        kwargs = {"backbone": backbone, "device": device, **kwargs}
    return PropagatorChoice(create_propagator(name, **kwargs), name)
