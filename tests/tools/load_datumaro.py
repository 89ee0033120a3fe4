"""Load a curator export with Datumaro (run by the tools venv's python, see tests/test_export_tools.py).

Usage: load_datumaro.py ROOT FORMAT OUT.json. FORMAT "detect" lets Datumaro pick; the output lists
what Datumaro detected, the label names, and per item (``<subset>/<id>`` for the datumaro format,
``<id>`` otherwise) its image path and every mask as COCO RLE with label, group and attributes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import datumaro as dm
import numpy as np
from datumaro.components.environment import Environment
from pycocotools import mask as mask_utils


def rle(mask: np.ndarray) -> dict:
    coded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in coded["size"]], "counts": coded["counts"].decode("ascii")}


def main(root: str, fmt: str, out: str) -> None:
    detected = Environment().detect_dataset(root)
    dataset = dm.Dataset.import_from(root, detected[0] if fmt == "detect" else fmt)
    labels = dataset.categories()[dm.AnnotationType.label]
    items = {}
    for item in dataset:
        key = f"{item.subset}/{item.id}" if fmt == "datumaro" else item.id
        masks = []
        for ann in item.annotations:
            if ann.type not in (dm.AnnotationType.mask, dm.AnnotationType.polygon):
                continue
            image = ann.image if ann.type == dm.AnnotationType.mask else ann.as_mask(item.media.size)
            masks.append({"label": labels[ann.label].name if ann.label is not None else None, "group": ann.group,
                          "id": ann.id, "attributes": {k: v for k, v in ann.attributes.items()},
                          "rle": rle(np.asarray(image) > 0)})
        items[key] = {"image": str(Path(item.media.path).resolve().relative_to(Path(root).resolve())),
                      "attributes": dict(item.attributes), "masks": masks}
    Path(out).write_text(json.dumps({"detected": detected, "labels": [label.name for label in labels], "items": items},
                                    default=str))


if __name__ == "__main__":
    main(*sys.argv[1:4])
