"""Read a curator Label Studio export with label-studio-converter (run by the tools venv's python,
see tests/test_export_tools.py).

Usage: check_labelstudio.py TASKS.json LABEL_CONFIG.xml WORK_DIR OUT.json

Labels every task as a person in Label Studio would by accepting its pre-annotation: each task gets
an annotation whose result is its prediction's (or keeps its annotation), as Label Studio's JSON
export writes it (``WORK_DIR/labelstudio-export.json``). Then the converter, configured with the
export's ``label_config.xml``, writes every brush region as a PNG (its BRUSH_TO_PNG export); the
output has, per task, each region's name (``label-<category>-<n>``), id and PNG mask as COCO RLE,
and each region decoded by ``label_studio_converter.brush.decode_rle`` straight from the tasks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from label_studio_converter import Converter, brush
from PIL import Image
from pycocotools import mask as mask_utils


def rle(mask: np.ndarray) -> dict:
    coded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in coded["size"]], "counts": coded["counts"].decode("ascii")}


def labelled(tasks: list[dict]) -> list[dict]:
    out = []
    for n, task in enumerate(tasks, start=1):
        source = (task.get("annotations") or task.get("predictions") or [{"result": []}])[0]
        result = [{k: v for k, v in r.items() if k != "score"} for r in source["result"]]
        out.append({"id": n, "data": task["data"], "predictions": task.get("predictions", []),
                    "annotations": [{"id": 100 + n, "completed_by": {"email": "labeller@example.com"},
                                     "result": result, "was_cancelled": False, "ground_truth": False,
                                     "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"}]})
    return out


def main(tasks_path: str, config: str, work: str, out: str) -> None:
    tasks = json.loads(Path(tasks_path).read_text())
    export = Path(work) / "labelstudio-export.json"
    export.write_text(json.dumps(labelled(tasks)))
    pngs = Path(work) / "png"
    pngs.mkdir()
    Converter(config=config, project_dir=None).convert(str(export), str(pngs), "BRUSH_TO_PNG", is_dir=False)
    decoded = {}
    for n, task in enumerate(tasks, start=1):
        regions = [r for block in task.get("annotations", []) + task.get("predictions", []) for r in block["result"]]
        decoded[str(n)] = {
            "data": task["data"],
            "regions": [{"id": r["id"], "labels": r["value"]["brushlabels"],
                         "rle": rle(brush.decode_rle(r["value"]["rle"]).reshape(r["original_height"], r["original_width"], 4)[:, :, 3] > 0)}
                        for r in regions],
            "converted": {p.name.split(f"task-{n}-annotation-", 1)[1]: rle(np.array(Image.open(p)) > 0)
                          for p in sorted(pngs.glob(f"task-{n}-annotation-*.png"))},
        }
    Path(out).write_text(json.dumps({"export": str(export), "tasks": decoded}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
