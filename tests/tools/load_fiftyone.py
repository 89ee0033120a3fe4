"""Load a curator export with FiftyOne (run by the tools venv's python, see tests/test_export_tools.py).

Usage: load_fiftyone.py coco ROOT OUT.json | load_fiftyone.py segmentation ROOT MASKS_DIR OUT.json

``coco``: ``COCODetectionDataset`` with segmentations from ``ROOT/images`` and
``ROOT/annotations/instances_default.json``; per image, every detection's label, confidence,
attributes and full-frame mask (rendered by FiftyOne's own ``Detection.to_segmentation``) as COCO RLE.
``segmentation``: ``ImageSegmentationDirectory`` from ``ROOT/JPEGImages`` and ``ROOT/MASKS_DIR``;
per image, the mask FiftyOne loads, as a list of (value, COCO RLE) pairs.
The FiftyOne database lives under $FIFTYONE_DATABASE_DIR (the test gives a temporary folder).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import fiftyone as fo
import numpy as np
from pycocotools import mask as mask_utils

STANDARD = {"id", "attributes", "tags", "label", "bounding_box", "mask", "mask_path", "confidence", "index"}


def rle(mask: np.ndarray) -> dict:
    coded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in coded["size"]], "counts": coded["counts"].decode("ascii")}


def key(path: str, root: Path) -> str:
    return str(Path(path).resolve().relative_to(root.resolve()).with_suffix(""))


def coco(root: Path) -> dict:
    dataset = fo.Dataset.from_dir(
        dataset_type=fo.types.COCODetectionDataset, data_path=str(root / "images"),
        labels_path=str(root / "annotations" / "instances_default.json"), label_types="segmentations",
        label_field="ground_truth",
    )
    dataset.compute_metadata()
    out = {}
    for sample in dataset:
        width, height = sample.metadata.width, sample.metadata.height
        detections = sample["ground_truth"].detections if sample["ground_truth"] is not None else []
        out[key(sample.filepath, root / "images")] = [
            {"label": d.label, "confidence": d.confidence,
             "attributes": {k: d[k] for k in d.field_names if k not in STANDARD},
             "rle": rle(d.to_segmentation(frame_size=(width, height), target=1).get_mask() > 0)}
            for d in detections
        ]
    return out


def segmentation(root: Path, masks: str) -> dict:
    dataset = fo.Dataset.from_dir(
        dataset_type=fo.types.ImageSegmentationDirectory, data_path=str(root / "JPEGImages"),
        labels_path=str(root / masks), label_field="ground_truth",
    )
    out = {}
    for sample in dataset:
        mask = sample["ground_truth"].get_mask()
        out[key(sample.filepath, root / "JPEGImages")] = {
            "shape": list(mask.shape), "values": [[int(v), rle(mask == v)] for v in np.unique(mask)]
        }
    return out


if __name__ == "__main__":
    kind, root = sys.argv[1], Path(sys.argv[2])
    result = coco(root) if kind == "coco" else segmentation(root, sys.argv[3])
    Path(sys.argv[-1]).write_text(json.dumps({"fiftyone": fo.__version__, "samples": result}, default=str))
