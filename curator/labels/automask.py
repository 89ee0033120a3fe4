"""SAM 2's automatic masks as a pre-annotation, for queued frames nothing else can pre-annotate.

A frame of a video without human masks gets no propagated mask, and a project before its first round
has no predicted ones. When a SAM 2 checkpoint is configured (``CURATOR_SAM2_CHECKPOINT`` with
``CURATOR_SAM2_CONFIG``, or ``CURATOR_SAM2_HUB``), such a frame gets SAM 2's automatic masks instead:
the generator prompts a grid of points, and :func:`select_masks` keeps the few confident, large,
non-overlapping masks, each its own object, stored with source ``model`` and SAM 2's predicted IoU as
confidence. The annotator deletes the ones that are not objects of interest and fixes the rest.
Without a checkpoint nothing happens, and the task starts with the click tool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from curator.workspace import Workspace

#: One frame's automatic masks: ``[(mask (H, W) bool, confidence)]``, best first.
AutoMasker = Callable[[np.ndarray], list[tuple[np.ndarray, float]]]

#: Generator settings for the CPU: a 16x16 point grid (SAM 2's default 32x32 costs 4x the decoder passes).
GENERATOR_DEFAULTS: dict[str, Any] = {"points_per_side": 16, "points_per_batch": 64}


def select_masks(
    found: Sequence[dict[str, Any]], *, max_objects: int = 8, min_area: float = 0.002, max_overlap: float = 0.5
) -> list[tuple[np.ndarray, float]]:
    """The masks worth showing of a generator's output: most confident first, each covering at least
    ``min_area`` of the frame, none mostly inside masks already kept, at most ``max_objects``.

    Args:
        found: SAM 2's masks (``segmentation``, ``predicted_iou``, ``stability_score``).
        max_objects: Most masks kept.
        min_area: Smallest mask kept, as a fraction of the frame.
        max_overlap: A mask whose area lies more than this fraction inside kept masks is dropped.

    Returns:
        ``[(mask, confidence)]`` with confidence the predicted IoU clipped to [0, 1].
    """
    ranked = sorted(found, key=lambda m: -(float(m["predicted_iou"]) * float(m.get("stability_score", 1.0))))
    kept: list[tuple[np.ndarray, float]] = []
    covered: np.ndarray | None = None
    for m in ranked:
        mask = np.asarray(m["segmentation"], bool)
        area = int(mask.sum())
        if area == 0 or area < min_area * mask.size:
            continue
        if covered is not None and (mask & covered).sum() > max_overlap * area:
            continue
        kept.append((mask, float(np.clip(m["predicted_iou"], 0.0, 1.0))))
        covered = mask.copy() if covered is None else covered | mask
        if len(kept) >= max_objects:
            break
    return kept


def sam2_automasker(annotator: Any, *, max_objects: int = 8, min_area: float = 0.002, **generator: Any) -> AutoMasker:
    """An :data:`AutoMasker` from a :class:`curator.annotate.sam2_backend.SAM2Annotator`.

    Args:
        annotator: Builds SAM 2 and runs its automatic mask generator.
        max_objects: Most masks kept per frame (:func:`select_masks`).
        min_area: Smallest mask kept, as a fraction of the frame.
        **generator: ``SAM2AutomaticMaskGenerator`` settings over :data:`GENERATOR_DEFAULTS`.
    """
    settings = {**GENERATOR_DEFAULTS, **generator}

    def run(image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return select_masks(annotator.automatic(image, **settings), max_objects=max_objects, min_area=min_area)

    return run


def configured_automasker(device: str = "auto") -> AutoMasker | None:
    """The automatic masker of the configured SAM 2 weights (the environment variables of
    :mod:`curator.segment.choose`), or None when none are configured."""
    from curator.annotate.sam2_backend import SAM2Annotator
    from curator.segment.choose import sam2_options

    options = sam2_options(None, None, None)
    if options is None:
        return None
    return sam2_automasker(SAM2Annotator(device=device, **options))


def automask_frames(
    workspace: Workspace,
    frame_ids: Sequence[int],
    masker: AutoMasker,
    *,
    progress: Callable[[str, int, int | None], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> int:
    """Store ``masker``'s masks (source ``model``) on each of ``frame_ids``, replacing their earlier
    ``model`` masks. Returns how many frames got at least one mask."""
    from curator.annotate.masks import encode_rle
    from curator.store import repo
    from curator.store.blobs import read_rgb

    with workspace.db.session() as session:
        paths = repo.frame_blob_paths(session, frame_ids)
    filled = 0
    for done, frame_id in enumerate(frame_ids):
        if cancel is not None and cancel():
            break
        if progress is not None:
            progress("automask", done, len(frame_ids))
        if frame_id not in paths:
            continue
        masks = masker(read_rgb(workspace.blobs.path(paths[frame_id])))
        with workspace.db.session() as session:
            repo.replace_masks(
                session, frame_id, "model", [(i + 1, encode_rle(m), c) for i, (m, c) in enumerate(masks)]
            )
        filled += bool(masks)
    if progress is not None:
        progress("automask", len(frame_ids), len(frame_ids))
    return filled
