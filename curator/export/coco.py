"""COCO instance segmentation: a JSON file, or a zip in COCO's layout with the images.

The zip holds ``annotations/instances_default.json`` and ``images/<video folder>/<frame>.jpg``; each
image's ``file_name`` is its path under ``images/``. This is the layout Datumaro (and so CVAT's
"COCO 1.0" import) reads as it is, and FiftyOne's ``COCODetectionDataset`` reads with
``data_path="images"`` and ``labels_path="annotations/instances_default.json"``.

Each annotation has COCO's fields (``segmentation`` as RLE, ``area``, ``bbox``, ``iscrowd`` 0),
``score`` (the mask's confidence: 1.0 for human masks), and curator's ``object_id`` (the object on
every frame of its video) and ``source`` (``human``, ``propagated`` or ``predicted``), at the top
level and again under ``attributes`` (CVAT's convention, which Datumaro and FiftyOne load).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from curator.export.rows import (
    FrameRow,
    MaskRow,
    area_bbox,
    frames,
    label_schema,
    masks,
    open_session,
    project_name,
    zip_with_images,
)
from curator.store.models import utcnow
from curator.workspace import Workspace

SPLIT = "default"
ANNOTATIONS = f"annotations/instances_{SPLIT}.json"


def image_entry(f: FrameRow) -> dict[str, Any]:
    """The COCO ``images`` entry of a frame."""
    return {
        "id": f.id,
        "file_name": f.file_name,
        "width": f.width,
        "height": f.height,
        "video_id": f.video_id,
        "frame_index": f.frame_index,
        "timestamp": f.timestamp,
    }


def annotation_entry(m: MaskRow, category_id: int) -> dict[str, Any]:
    """The COCO ``annotations`` entry of a mask (see the module docstring)."""
    area, bbox = area_bbox(m.rle)
    return {
        "id": m.id,
        "image_id": m.frame_id,
        "category_id": category_id,
        "segmentation": m.rle,
        "area": area,
        "bbox": bbox,
        "iscrowd": 0,
        "score": m.confidence,
        "object_id": m.object_id,
        "source": m.source,
        "attributes": {"object_id": m.object_id, "source": m.source},
    }


def coco_json(workspace: Workspace, project_id: int, include: str) -> Iterator[bytes]:
    """The COCO JSON, piece by piece: ``images`` (one per frame), then ``annotations`` with RLE masks."""
    session = open_session(workspace)
    try:
        info = {
            "description": f"curator project {project_name(session, project_id)}",
            "date_created": utcnow().isoformat(),
            "include": include,
        }
        schema = label_schema(session, project_id, include)
        yield (
            f'{{"info": {json.dumps(info)}, "licenses": [], "categories": {json.dumps(schema.categories)}, '
            '"images": ['
        ).encode()
        sep = ""
        for f in frames(session, project_id, include):
            yield (sep + json.dumps(image_entry(f))).encode()
            sep = ", "
        yield b'], "annotations": ['
        sep = ""
        for m in masks(session, project_id, include):
            yield (sep + json.dumps(annotation_entry(m, schema.category_id(m.object_id)))).encode()
            sep = ", "
        yield b"]}"
    finally:
        session.close()


def coco(workspace: Workspace, project_id: int, include: str, images: bool = False) -> Iterator[bytes]:
    """COCO instance segmentation: the JSON alone, or with ``images`` a zip in COCO's layout."""
    if not images:
        yield from coco_json(workspace, project_id, include)
        return
    yield from zip_with_images(
        workspace, project_id, include, "images", ANNOTATIONS, coco_json(workspace, project_id, include)
    )
