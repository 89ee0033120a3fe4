"""COCO RLE and DAVIS indexed-PNG mask I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curator.annotate.masks import (
    decode_rle,
    encode_rle,
    labels_to_masks,
    masks_to_labels,
    read_indexed_png,
    write_indexed_png,
)


def test_rle_round_trip_is_exact_and_json_ready() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((37, 53)) > 0.6
    rle = encode_rle(mask)
    assert rle["size"] == [37, 53]
    again = decode_rle(json.loads(json.dumps(rle)))
    assert again.dtype == bool
    np.testing.assert_array_equal(again, mask)


def test_rle_uncompressed_counts() -> None:
    # column-major runs: 2 background, 3 foreground, 1 background on a 3x2 image
    mask = decode_rle({"size": [3, 2], "counts": [2, 3, 1]})
    np.testing.assert_array_equal(mask, np.array([[False, True], [False, True], [True, False]]))
    with pytest.raises(ValueError, match="size"):
        decode_rle({"counts": "abc"})


def test_indexed_png_round_trip(tmp_path: Path) -> None:
    labels = np.zeros((20, 30), np.uint8)
    labels[2:8, 3:9] = 1
    labels[10:15, 10:25] = 2
    path = tmp_path / "00000.png"
    write_indexed_png(path, labels)
    with Image.open(path) as image:
        assert image.mode == "P"
    np.testing.assert_array_equal(read_indexed_png(path), labels)
    masks = labels_to_masks(labels)
    assert sorted(masks) == [1, 2]
    np.testing.assert_array_equal(masks_to_labels(masks, labels.shape), labels)


def test_davis2016_grayscale_reads_as_instance_one(tmp_path: Path) -> None:
    gray = np.zeros((6, 6), np.uint8)
    gray[1:3, 1:3] = 255
    Image.fromarray(gray, mode="L").save(tmp_path / "m.png")
    labels = read_indexed_png(tmp_path / "m.png")
    assert set(np.unique(labels).tolist()) == {0, 1}
    assert labels.sum() == 4


def test_bad_masks() -> None:
    with pytest.raises(ValueError, match=r"1\.\.255"):
        masks_to_labels({0: np.ones((2, 2), bool)}, (2, 2))
    with pytest.raises(ValueError, match="expected the frame size"):
        masks_to_labels({1: np.ones((3, 2), bool)}, (2, 2))
    with pytest.raises(ValueError, match="2-D"):
        encode_rle(np.ones((2, 2, 2), bool))
