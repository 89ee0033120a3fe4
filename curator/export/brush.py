"""Label Studio's brush RLE, the ``rle`` of a ``brushlabels`` result.

Label Studio stores a brush mask as the RGBA pixels of the image (``height * width * 4`` bytes,
row-major) run-length coded by thi.ng's ``rle-pack``: a 32-bit value count, a 5-bit word size minus
one (8), four 4-bit run-length field sizes minus one (3, 4, 8, 16), then per run a bit ``1`` and a
run (2-bit size index, length minus one, the value) or a bit ``0`` and literal values, padded with
zero bits to whole bytes; the bytes go into JSON as a list of ints. This module writes exactly what
``label_studio_converter.brush.mask2rle`` writes (every channel 255 where the mask is set, 0 elsewhere)
and reads what Label Studio exports, taking the alpha channel (a pixel is in the mask when its alpha
is at least 128). The tests check both directions against the converter package itself.
"""

from __future__ import annotations

import itertools

import numpy as np

_SIZES = (3, 4, 8, 16)
_WORD = 8
_LONGEST = 1 << 16


def _run_bits(length: int, value: int) -> str:
    """The bits of one run of ``length`` copies of ``value`` (as ``encode_rle`` of the converter)."""
    word = f"{value:08b}"
    if length == 1:
        return "000000" + word
    if length <= 8:
        return f"100{length - 1:03b}" + word
    if length <= 16:
        return f"101{length - 1:04b}" + word
    if length <= 256:
        return f"110{length - 1:08b}" + word
    parts = []
    while length > _LONGEST:
        parts.append("111" + "1" * 16 + word)
        length -= _LONGEST
    parts.append(f"111{length - 1:016b}" + word)
    return "".join(parts)


def encode(mask: np.ndarray) -> list[int]:
    """A ``(H, W)`` mask (non-zero = set) as Label Studio's brush RLE.

    Returns:
        The RLE bytes as ints, ready for a result's ``value.rle``.
    """
    flat = (np.asarray(mask).reshape(-1) != 0).astype(np.uint8) * 255
    count = flat.size * 4
    bits = [f"{count:032b}", f"{_WORD - 1:05b}", "".join(f"{s - 1:04b}" for s in _SIZES)]
    if flat.size:
        starts = np.flatnonzero(np.diff(flat)) + 1
        bounds = np.concatenate(([0], starts, [flat.size]))
        for lo, hi in itertools.pairwise(bounds):
            bits.append(_run_bits(int(hi - lo) * 4, int(flat[lo])))
    text = "".join(bits)
    text += "0" * (8 - len(text) % 8)
    return list(int(text, 2).to_bytes(len(text) // 8, "big"))


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.text = "".join(f"{b:08b}" for b in data)
        self.at = 0

    def read(self, size: int) -> int:
        if self.at + size > len(self.text):
            raise ValueError("the brush RLE ends early")
        value = int(self.text[self.at : self.at + size], 2)
        self.at += size
        return value


def decode_values(rle: list[int] | bytes) -> np.ndarray:
    """The flat uint8 values an RLE holds (RGBA pixels for a brush mask), as the converter's ``decode_rle``.

    Raises:
        ValueError: If the RLE is truncated or not a list of bytes.
    """
    try:
        bits = _Bits(bytes(rle))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a brush RLE is a list of bytes ({exc})") from None
    count = bits.read(32)
    word = bits.read(5) + 1
    sizes = [bits.read(4) + 1 for _ in range(4)]
    out = np.zeros(count, dtype=np.uint8)
    i = 0
    while i < count:
        repeat = bits.read(1)
        j = i + 1 + bits.read(sizes[bits.read(2)])
        if repeat:
            out[i:j] = bits.read(word)
            i = j
        else:
            while i < j:
                out[i] = bits.read(word)
                i += 1
    return out


def decode(rle: list[int] | bytes, height: int, width: int) -> np.ndarray:
    """A brush RLE as a ``(height, width)`` bool mask: the pixels whose alpha is at least 128.

    Raises:
        ValueError: If the RLE does not hold ``height * width`` RGBA pixels.
    """
    values = decode_values(rle)
    if values.size != height * width * 4:
        raise ValueError(f"the brush RLE holds {values.size} values, not {height}x{width} RGBA pixels")
    return values.reshape(height, width, 4)[:, :, 3] >= 128
