"""Validation of human masks (COCO RLE or an indexed PNG) before anything touches pycocotools' C decoder.

pycocotools trusts its input: counts summing past ``height * width`` write past the mask buffer. So a
compressed RLE string is parsed here first (the same LEB128-like code as ``rleFrString``) and its
counts must be non-negative and sum to exactly ``height * width``. Counts are stored in canonical
form (zero-length runs merged away, then encoded as pycocotools would), so a stored mask is never
larger than that encoding, and counts longer than any canonical encoding of the frame could be are
refused before they are parsed (see :func:`max_counts_chars`).

PNGs are checked by their declared size (the IHDR header) before Pillow opens them, so a small file
declaring a huge image is refused without decoding anything.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class InvalidMaskError(ValueError):
    """A mask that does not fit its frame or is malformed; the message says what was expected."""


def _invalid(detail: str) -> InvalidMaskError:
    return InvalidMaskError(detail)


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


def max_runs(height: int, width: int) -> int:
    """Most runs a canonical RLE of a ``height x width`` mask has: one per pixel, plus a leading empty run."""
    return height * width + 1


def max_counts_chars(height: int, width: int) -> int:
    """An upper bound on the length of a canonical compressed counts string of a ``height x width`` mask.

    With ``n = height * width``: there are at most ``n + 1`` runs, and a run costs one character
    unless its difference from the run two before (how runs from the fourth on are written, 5 bits
    a character) is 16 or more. Such a difference needs one of the two runs to be at least 17 long,
    and a run of length ``x >= 17`` adds at most ``x / 8`` characters to each of the (at most two)
    differences it takes part in: at most ``n / 4`` in all. The first three runs are written whole,
    each in at most as many characters as ``n`` needs. A longer string must hold padding
    (zero-length runs) and is refused before it is parsed; the bound is about ``1.25 n``, so parsing
    what passes is linear in the frame's pixels however the counts are written.
    """
    n = height * width
    per_number = -(-(n.bit_length() + 1) // 5)  # characters of any number of magnitude <= n, with sign
    return n + 1 + n // 4 + 3 * per_number


def canonical_runs(runs: Sequence[int]) -> list[int]:
    """The runs pycocotools' ``encode`` would give for the same mask: zero-length runs merged away.

    Runs alternate background and foreground, starting with background; dropping a zero-length run
    joins the runs on either side of it. Only a leading empty run stays (a mask starting with
    foreground).
    """
    out: list[int] = []
    last = 0  # value (0 background, 1 foreground) of out[-1]
    for i, run in enumerate(runs):
        if run == 0:
            continue
        value = i % 2
        if out and value == last:
            out[-1] += run
            continue
        if not out and value == 1:
            out.append(0)
        out.append(run)
        last = value
    return out


#: Numbers of more characters than this are left to the exact parser (their values overflow 64 bits).
_FAST_MAX_CHARS = 12
#: Counts strings at least this long are checked in numpy first (below, numpy's fixed cost per call is
#: more than the Python parser takes).
NUMPY_MIN_CHARS = 128


def _decode_counts(counts: str) -> tuple[np.ndarray, bool] | None:
    """:func:`rle_counts` in numpy for a well-formed string of ordinary numbers, and whether every
    number is written in as few characters as :func:`encode_counts` would use; ``None`` for anything
    else (the exact parser then decodes it or says what is wrong)."""
    try:
        data = counts.encode("ascii")
    except UnicodeEncodeError:
        return None
    if not data:
        return np.zeros(0, np.int64), True
    c = np.frombuffer(data, np.uint8).astype(np.int64) - 48
    if c.min() < 0 or c.max() > 63:
        return None
    more = (c & 0x20) != 0
    if more[-1]:
        return None
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > _FAST_MAX_CHARS:
        return None
    position = np.arange(c.size) - np.repeat(starts, lengths)
    x = np.add.reduceat((c & 0x1F) << (5 * position), starts)
    x = np.where((c[ends] & 0x10) != 0, x - (np.int64(1) << (5 * lengths)), x)  # sign extension
    if np.abs(x).max() >= 1 << 32:  # keeps the sums below within 64 bits
        return None
    # a number's last character is one too many when the one before already ended it: the rest
    # it holds is 0 after a non-negative character, or -1 (31) after a negative one
    last, before = c[ends] & 0x1F, c[ends - 1] & 0x10
    long = lengths > 1
    minimal = not bool((long & (((last == 0) & (before == 0)) | ((last == 31) & (before != 0)))).any())
    # from the fourth number on, each is a difference from the run two before
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])
    runs[2::2] = np.cumsum(x[2::2])
    return runs, minimal


def _canonical_as_sent(counts: str, pixels: int) -> bool:
    """Whether ``counts`` is a valid compressed RLE of ``pixels`` pixels already in canonical form
    (what :func:`check_rle` would return for it), checked in numpy. ``False`` leaves it to the exact
    checks, which canonicalise it or say what is wrong."""
    decoded = _decode_counts(counts)
    if decoded is None:
        return False
    runs, minimal = decoded
    if not minimal or runs.size > pixels + 1 or (runs < 0).any() or int(runs.sum()) != pixels:
        return False
    # canonical runs hold no empty run but a leading one (a mask starting with foreground)
    return runs.size == 0 or (bool((runs[1:] > 0).all()) and (runs[0] > 0 or runs.size > 1))


def check_rle(object_id: int, rle: Mapping[str, Any], height: int, width: int) -> dict[str, Any]:
    """Validate one RLE (``{"size": [h, w], "counts": str | list[int]}``) against the frame size.

    Returns:
        The mask in canonical compressed, JSON-ready form (what pycocotools' ``encode`` gives).

    Raises:
        InvalidMaskError: For a wrong size or malformed counts.
    """
    try:
        size = [int(v) for v in rle["size"]]
        raw = rle["counts"]
    except (KeyError, TypeError, ValueError):
        raise _invalid(f"mask of object {object_id} is not an RLE with size and counts") from None
    if size != [height, width]:
        raise _invalid(f"mask of object {object_id} has size {size}, the frame is [{height}, {width}]")
    if not isinstance(raw, str | list | tuple):
        raise _invalid(f"mask of object {object_id}: counts must be a string or a list of run lengths")
    # padding (zero-length runs) is the only way past these bounds; refuse it before any parsing
    if isinstance(raw, str) and len(raw) > max_counts_chars(height, width):
        raise _invalid(
            f"mask of object {object_id}: the counts string is longer than any {height}x{width} mask needs "
            f"({len(raw)} > {max_counts_chars(height, width)} characters); send the canonical RLE"
        )
    if not isinstance(raw, str) and len(raw) > max_runs(height, width):
        raise _invalid(
            f"mask of object {object_id}: counts are longer than any {height}x{width} mask needs "
            f"({len(raw)} > {max_runs(height, width)} runs); send the canonical RLE"
        )
    if isinstance(raw, str) and len(raw) >= NUMPY_MIN_CHARS and _canonical_as_sent(raw, height * width):
        return {"size": size, "counts": raw}  # canonical as clients send it, checked in numpy
    if isinstance(raw, str):
        try:
            runs = rle_counts(raw)
        except ValueError as exc:
            raise _invalid(f"mask of object {object_id}: {exc}") from None
        if len(runs) > max_runs(height, width):
            raise _invalid(
                f"mask of object {object_id}: counts are longer than any {height}x{width} mask needs "
                f"({len(runs)} > {max_runs(height, width)} runs); send the canonical RLE"
            )
    else:
        try:
            runs = [int(v) for v in raw]
        except (TypeError, ValueError):
            raise _invalid(f"mask of object {object_id}: counts must be whole numbers") from None
    if any(r < 0 for r in runs):
        raise _invalid(f"mask of object {object_id} has negative run lengths")
    total = sum(runs)
    if total != height * width:
        raise _invalid(
            f"mask of object {object_id}: run lengths sum to {total}, expected height*width = {height * width}"
        )
    return {"size": size, "counts": encode_counts(canonical_runs(runs))}


def check_masks(
    masks: Sequence[tuple[int, Mapping[str, Any]]], height: int, width: int
) -> list[tuple[int, dict[str, Any]]]:
    """Validate ``(object_id, rle)`` masks: ids 1..255 and unique, the frame's size, well-formed counts."""
    ids = [int(o) for o, _ in masks]
    if len(set(ids)) != len(ids):
        raise _invalid(f"object ids must be unique within a frame, got {sorted(ids)}")
    bad = [o for o in ids if not 1 <= o <= 255]
    if bad:
        raise _invalid(f"object ids must be 1..255, got {bad}")
    return [(int(o), check_rle(int(o), r, height, width)) for o, r in masks]


def array_masks(masks: Mapping[int, np.ndarray], height: int, width: int) -> list[tuple[int, dict[str, Any]]]:
    """``(object_id, rle)`` pairs from boolean arrays of the frame's size (empty masks are dropped)."""
    from curator.annotate.masks import encode_rle

    out = []
    for object_id, mask in sorted(masks.items()):
        array = np.asarray(mask)
        if array.shape != (height, width):
            raise _invalid(f"mask of object {object_id} has shape {array.shape}, the frame is ({height}, {width})")
        if not 1 <= int(object_id) <= 255:
            raise _invalid(f"object ids must be 1..255, got {object_id}")
        if array.any():
            out.append((int(object_id), encode_rle(array.astype(bool))))
    return out


def label_masks(labels: np.ndarray, height: int, width: int) -> list[tuple[int, dict[str, Any]]]:
    """``(object_id, rle)`` pairs from a label image (0 background, ``k`` object ``k``)."""
    from curator.annotate.masks import encode_rle

    if labels.shape != (height, width):
        raise _invalid(f"the label image has shape {labels.shape}, the frame is ({height}, {width})")
    return [(int(k), encode_rle(labels == k)) for k in np.unique(labels) if k != 0]


def png_masks(data: str, height: int, width: int) -> list[tuple[int, dict[str, Any]]]:
    """Masks from a base64 indexed PNG (0 background, ``k`` object ``k``) of the frame's size.

    Raises:
        InvalidMaskError: If it is not base64, not a PNG, or not the frame's size.
    """
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("label_png is not valid base64") from None
    return png_bytes_masks(raw, height, width)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_declared_size(raw: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR header, or ``None`` when ``raw`` is not a PNG."""
    if len(raw) < 24 or raw[:8] != PNG_SIGNATURE or raw[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", raw[16:24])
    return int(width), int(height)


def png_bytes_masks(raw: bytes, height: int, width: int) -> list[tuple[int, dict[str, Any]]]:
    """Masks from the bytes of an indexed PNG (0 background, ``k`` object ``k``) of the frame's size.

    Raises:
        InvalidMaskError: If it is not a PNG or not the frame's size.
    """
    from PIL import Image

    declared = png_declared_size(raw)
    if declared is not None and declared != (width, height):
        # before Pillow sees it: a small file may declare a huge image (a decompression bomb)
        raise _invalid(f"label_png is {declared[0]}x{declared[1]}, the frame is {width}x{height}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                if image.format != "PNG":
                    raise _invalid(f"label_png must be a PNG, got {image.format}")
                if image.size != (width, height):
                    raise _invalid(f"label_png is {image.size[0]}x{image.size[1]}, the frame is {width}x{height}")
                if image.mode not in ("P", "L", "1"):
                    # reading colours or 16-bit values as grey would store the wrong object ids
                    raise _invalid(
                        f"label_png has mode {image.mode}; expected an indexed (palette), 1-bit or 8-bit grey "
                        "PNG whose pixel values are the object ids (0 background)"
                    )
                labels = np.array(image, dtype=np.uint8)
    except InvalidMaskError:
        raise
    except Exception as exc:  # untrusted bytes: any decoder failure is the sender's
        raise _invalid(f"label_png could not be read as a PNG ({type(exc).__name__}: {exc})") from None
    if labels.shape != (height, width):
        raise _invalid(f"label_png has shape {labels.shape}, the frame is ({height}, {width})")
    return label_masks(labels, height, width)
