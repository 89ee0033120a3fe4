"""Masks in and out: COCO RLE (pycocotools) and DAVIS-style indexed PNGs.

An *indexed* label map is an ``(H, W)`` uint8 array where 0 is background and ``k > 0`` is the pixel
of instance ``k``; this is what DAVIS annotations hold (a palette PNG, or for DAVIS 2016 a grayscale
PNG with values {0, 255}, read as instance 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: The DAVIS colour palette (index k gets the usual DAVIS colour), padded to 256 entries.
DAVIS_PALETTE: list[int] = [
    0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128, 128, 0, 128, 0, 128, 128, 128, 128, 128,
    64, 0, 0, 191, 0, 0, 64, 128, 0, 191, 128, 0, 64, 0, 128, 191, 0, 128, 64, 128, 128, 191, 128, 128,
]  # fmt: skip
DAVIS_PALETTE = DAVIS_PALETTE + [0] * (768 - len(DAVIS_PALETTE))


def check_mask(mask: np.ndarray, shape: tuple[int, int] | None = None, what: str = "mask") -> np.ndarray:
    """Return ``mask`` as a 2-D bool array, checking its shape.

    Args:
        mask: ``(H, W)`` array; non-zero means foreground.
        shape: Expected ``(H, W)``, or ``None`` to accept any 2-D shape.
        what: Name used in error messages.

    Raises:
        ValueError: If the mask is not 2-D or not of ``shape``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (H, W) array, got shape {mask.shape}")
    if shape is not None and mask.shape != tuple(shape):
        raise ValueError(f"{what} has shape {mask.shape}, expected the frame size {tuple(shape)}")
    return mask.astype(bool, copy=False)


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a binary mask as COCO RLE, JSON-ready (``counts`` is a str).

    Args:
        mask: ``(H, W)`` mask; non-zero means foreground.

    Returns:
        ``{"size": [H, W], "counts": str}``.
    """
    from pycocotools import mask as mask_utils

    mask = check_mask(mask)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts.decode("ascii")}


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (compressed ``counts`` as str or bytes, or uncompressed list) to a bool mask.

    Raises:
        ValueError: If ``rle`` has no ``size`` or ``counts``.
    """
    from pycocotools import mask as mask_utils

    if "size" not in rle or "counts" not in rle:
        raise ValueError(f"an RLE needs 'size' and 'counts', got keys {sorted(rle)}")
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE: convert through pycocotools' own helper
        coded = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    else:
        coded = {
            "size": [height, width],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
        }
    return np.asarray(mask_utils.decode(coded), dtype=bool)


def masks_to_labels(masks: Mapping[int, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Paint instance masks into one indexed label map (a later id wins where masks overlap).

    Args:
        masks: Instance id (1..255) to ``(H, W)`` mask.
        shape: ``(H, W)`` of the label map.

    Raises:
        ValueError: If an id is outside 1..255 or a mask has the wrong shape.
    """
    labels = np.zeros(shape, dtype=np.uint8)
    for obj_id in sorted(masks):
        if not 1 <= int(obj_id) <= 255:
            raise ValueError(f"instance ids must be in 1..255 for an indexed PNG, got {obj_id}")
        labels[check_mask(masks[obj_id], shape, f"mask of object {obj_id}")] = int(obj_id)
    return labels


def labels_to_masks(labels: np.ndarray, ids: list[int] | None = None) -> dict[int, np.ndarray]:
    """Split an indexed label map into bool masks, one per instance id (0 is background).

    Args:
        labels: ``(H, W)`` integer label map.
        ids: Ids to return (an id absent from the map gets an empty mask); default every non-zero id.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map must be 2-D (H, W), got shape {labels.shape}")
    wanted = ids if ids is not None else [int(v) for v in np.unique(labels) if v != 0]
    return {int(k): labels == k for k in wanted}


def read_indexed_png(path: str | Path) -> np.ndarray:
    """Read a DAVIS-style annotation as an ``(H, W)`` uint8 label map.

    A palette PNG gives its indices. A grayscale PNG whose values are only {0, 255} (DAVIS 2016) gives
    instance 1 where it is 255; other grayscale PNGs give their values.
    """
    with Image.open(path) as image:
        if image.mode == "P":
            return np.array(image, dtype=np.uint8)
        gray = np.array(image.convert("L"), dtype=np.uint8)
    values = np.unique(gray)
    if set(values.tolist()) <= {0, 255}:
        return (gray > 0).astype(np.uint8)
    return gray


def write_indexed_png(path: str | Path, labels: np.ndarray) -> None:
    """Write an ``(H, W)`` label map as a palette PNG with the DAVIS colours."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map must be 2-D (H, W), got shape {labels.shape}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError("label values must be in 0..255 for an indexed PNG")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(DAVIS_PALETTE)
    image.save(path)
