"""Validation of submitted masks before anything touches pycocotools' C decoder.

pycocotools trusts its input: counts summing past ``height * width`` write past the mask buffer. So a
compressed RLE string is parsed here first (the same LEB128-like code as ``rleFrString``) and its
counts must be non-negative and sum to exactly ``height * width``.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from api.errors import ApiError
from api.schemas import MaskIn


def _invalid(detail: str) -> ApiError:
    return ApiError(422, "invalid_mask", detail)


def rle_counts(counts: str) -> list[int]:
    """Decode a compressed COCO RLE ``counts`` string into run lengths.

    Raises:
        ValueError: If a character is outside the code's alphabet or the string ends mid-number.
    """
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n or k > 12:
                raise ValueError("the counts string ends inside a number")
            c = ord(counts[p]) - 48
            if not 0 <= c <= 63:
                raise ValueError(f"character {counts[p]!r} at {p} is not in the RLE alphabet")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def encode_counts(runs: Sequence[int]) -> str:
    """Encode run lengths as a compressed COCO RLE string (``rleToString``)."""
    chars: list[str] = []
    for i, value in enumerate(runs):
        x = int(value)
        if i > 2:
            x -= int(runs[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = not ((c & 0x10 == 0 and x == 0) or (c & 0x10 and x == -1))
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def check_rle(mask: MaskIn, height: int, width: int) -> dict[str, Any]:
    """Validate one submitted RLE against the frame size; return it in compressed, JSON-ready form.

    Raises:
        ApiError: 422 ``invalid_mask`` for a wrong size or malformed counts.
    """
    size = [int(v) for v in mask.rle.size]
    if size != [height, width]:
        raise _invalid(f"mask of object {mask.object_id} has size {size}, the frame is [{height}, {width}]")
    if isinstance(mask.rle.counts, str):
        try:
            runs = rle_counts(mask.rle.counts)
        except ValueError as exc:
            raise _invalid(f"mask of object {mask.object_id}: {exc}") from None
    else:
        runs = [int(v) for v in mask.rle.counts]
    if any(r < 0 for r in runs):
        raise _invalid(f"mask of object {mask.object_id} has negative run lengths")
    total = sum(runs)
    if total != height * width:
        raise _invalid(
            f"mask of object {mask.object_id}: run lengths sum to {total}, expected height*width = {height * width}"
        )
    counts = mask.rle.counts if isinstance(mask.rle.counts, str) else encode_counts(runs)
    return {"size": size, "counts": counts}


def check_masks(masks: Sequence[MaskIn], height: int, width: int) -> list[tuple[int, dict[str, Any]]]:
    """Validate submitted RLE masks: unique object ids, the frame's size, well-formed counts."""
    ids = [m.object_id for m in masks]
    if len(set(ids)) != len(ids):
        raise _invalid(f"object ids must be unique within a frame, got {sorted(ids)}")
    return [(m.object_id, check_rle(m, height, width)) for m in masks]


def png_masks(data: str, height: int, width: int) -> list[tuple[int, dict[str, Any]]]:
    """Masks from a base64 indexed PNG (0 background, ``k`` object ``k``) of the frame's size.

    Raises:
        ApiError: 422 ``invalid_mask`` if it is not base64, not a PNG, or not the frame's size.
    """
    from PIL import Image, UnidentifiedImageError

    from curator.annotate.masks import encode_rle

    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("label_png is not valid base64") from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.format != "PNG":
                raise _invalid(f"label_png must be a PNG, got {image.format}")
            if image.size != (width, height):
                raise _invalid(f"label_png is {image.size[0]}x{image.size[1]}, the frame is {width}x{height}")
            labels = np.array(image if image.mode in ("P", "L") else image.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _invalid(f"label_png could not be read as a PNG ({exc})") from None
    if labels.shape != (height, width):
        raise _invalid(f"label_png has shape {labels.shape}, the frame is ({height}, {width})")
    return [(int(k), encode_rle(labels == k)) for k in np.unique(labels) if k != 0]
