"""The numpy check of long counts strings gives what the exact Python checks give, and never lets an
invalid or non-canonical string through as it was sent."""

from __future__ import annotations

import numpy as np
import pytest

from curator.annotate.masks import encode_rle
from curator.labels.masks import (
    NUMPY_MIN_CHARS,
    InvalidMaskError,
    _canonical_as_sent,
    canonical_runs,
    check_rle,
    encode_counts,
    rle_counts,
)


def _exact(raw: str, pixels: int) -> str | None:
    """The canonical string the pure-Python path makes of ``raw``, or ``None`` if it refuses it."""
    try:
        runs = rle_counts(raw)
    except ValueError:
        return None
    if any(r < 0 for r in runs) or sum(runs) != pixels or len(runs) > pixels + 1:
        return None
    return encode_counts(canonical_runs(runs))


def _padded(raw: str, at: int) -> str:
    """``raw`` with the number ending at character ``at`` (if one does) written one character longer."""
    c = ord(raw[at]) - 48
    if c & 0x20:
        return raw
    return raw[:at] + chr((c | 0x20) + 48) + chr((31 if c & 0x10 else 0) + 48) + raw[at + 1 :]


def _cases(rng: np.random.Generator, count: int) -> list[tuple[str, int]]:
    cases = []
    for trial in range(count):
        h, w = int(rng.integers(1, 60)), int(rng.integers(1, 60))
        raw = encode_rle(rng.random((h, w)) < rng.random())["counts"]
        kind = trial % 4
        if kind == 1:  # cut out a piece: malformed or the wrong total
            i, j = sorted(int(v) for v in rng.integers(0, len(raw) + 1, size=2))
            raw = raw[:i] + raw[j:]
        elif kind == 2:  # a number written with a character too many
            raw = _padded(raw, int(rng.integers(0, len(raw))))
        elif kind == 3:  # zero-length runs
            runs = rle_counts(raw)
            at = int(rng.integers(0, len(runs) + 1))
            raw = encode_counts([*runs[:at], 0, 0, *runs[at:]])
        cases.append((raw, h * w))
    return cases


def test_numpy_check_agrees_with_the_exact_checks() -> None:
    taken = 0
    for raw, pixels in _cases(np.random.default_rng(0), 4000):
        exact = _exact(raw, pixels)
        if _canonical_as_sent(raw, pixels):
            taken += 1
            assert exact == raw
        else:  # only what is invalid or not canonical is left to the exact checks
            assert exact != raw or raw == ""
    assert taken > 500


def test_check_rle_of_long_strings_matches_the_exact_path() -> None:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:240, :320]
    blob = ((yy - 120) ** 2 / 60**2 + (xx - 160) ** 2 / 90**2) < 1
    for noise in (0.0, 0.01, 0.05):
        mask = blob ^ (rng.random(blob.shape) < noise)
        rle = encode_rle(mask)
        assert len(rle["counts"]) >= NUMPY_MIN_CHARS
        assert check_rle(1, rle, 240, 320) == {"size": [240, 320], "counts": rle["counts"]}
        padded = _padded(rle["counts"], len(rle["counts"]) - 1)
        assert check_rle(1, {"size": [240, 320], "counts": padded}, 240, 320)["counts"] == rle["counts"]
        runs = rle_counts(rle["counts"])
        longer = encode_counts([*runs[:-1], runs[-1] + 1])
        with pytest.raises(InvalidMaskError, match="sum to"):
            check_rle(1, {"size": [240, 320], "counts": longer}, 240, 320)
