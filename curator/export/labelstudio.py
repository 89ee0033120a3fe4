"""Label Studio: tasks to label curator's queue in Label Studio, with curator's masks as brush regions.

The export is Label Studio's task import format: a JSON list, one task per frame of the queue (tasks
``open`` or ``leased``) and per labelled frame, in (video, frame) order. Each task has:

- ``data``: ``image`` (``/data/local-files/?d=images/<video>/<frame>.jpg``: Label Studio's local
  files URL, a path under ``LOCAL_FILES_DOCUMENT_ROOT``) and curator's ``frame_id``, ``video_id``,
  ``video`` (the export folder name) and ``frame_index``, which the import reads back.
- ``annotations``: the frame's human masks, one completed annotation.
- ``predictions``: otherwise its best propagated or predicted masks (``include="all"``), with
  ``model_version`` ``curator-<source>`` and ``score`` the mean confidence.

Each mask is a ``brushlabels`` result: ``value.rle`` in Label Studio's brush RLE
(:mod:`curator.export.brush`), ``value.brushlabels`` its category name, ``id`` ``object-<object id>``
(the import takes the object id back from it), ``from_name`` ``label``, ``to_name`` ``image``.
``label_config.xml`` is the matching labelling interface: ``BrushLabels`` with one ``Label`` per
category in the category's colour. The zip holds ``tasks.json``, ``label_config.xml`` and
``images/``; unzip it, start Label Studio with ``LOCAL_FILES_SERVING_ENABLED=true`` and
``LOCAL_FILES_DOCUMENT_ROOT`` the unzipped folder, use the label config, add a local files storage
on its ``images`` folder and import ``tasks.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import quoteattr

from curator.export import brush
from curator.export.rows import FrameRow, LabelSchema, MaskRow, frames, label_schema, open_session, walk
from curator.export.zipstream import ZipStream
from curator.workspace import Workspace

FROM_NAME = "label"
TO_NAME = "image"
IMAGE_URL = "/data/local-files/?d=images/"
REGION_PREFIX = "object-"


def label_config(schema: LabelSchema) -> str:
    """Label Studio's labelling interface for the project's categories (brush masks on the image)."""
    labels = "".join(
        f"    <Label value={quoteattr(str(c['name']))}"
        + (f" background={quoteattr(str(c['color']))}" if c.get("color") else "") + "/>\n"
        for c in schema.categories
    )
    return (f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
            f'  <BrushLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}  </BrushLabels>\n</View>\n')


def region(m: MaskRow, f: FrameRow, schema: LabelSchema) -> dict[str, Any]:
    """One mask as a ``brushlabels`` result."""
    from curator.annotate.masks import decode_rle

    out: dict[str, Any] = {
        "id": f"{REGION_PREFIX}{m.object_id}", "from_name": FROM_NAME, "to_name": TO_NAME, "type": "brushlabels",
        "original_width": f.width, "original_height": f.height, "image_rotation": 0,
        "value": {"format": "rle", "rle": brush.encode(decode_rle(m.rle)),
                  "brushlabels": [schema.category(m.object_id)["name"]]},
    }
    if m.source != "human":
        out["score"] = m.confidence
    return out


def task(f: FrameRow, found: list[MaskRow], schema: LabelSchema) -> dict[str, Any]:
    """One frame as a Label Studio task (see the module docstring)."""
    out: dict[str, Any] = {"data": {"image": IMAGE_URL + f.file_name, "frame_id": f.id, "video_id": f.video_id,
                                    "video": f.video_name, "frame_index": f.frame_index}}
    results = [region(m, f, schema) for m in found]
    if found and found[0].source == "human":
        out["annotations"] = [{"result": results, "ground_truth": False}]
    elif found:
        score = sum(m.confidence for m in found) / len(found)
        out["predictions"] = [{"model_version": f"curator-{found[0].source}", "score": score, "result": results}]
    return out


def tasks_json(workspace: Workspace, project_id: int, include: str) -> Iterator[bytes]:
    """The tasks JSON list, one task at a time."""
    session = open_session(workspace)
    try:
        schema = label_schema(session, project_id, include)
        sep = "["
        for f, found in walk(session, project_id, include, queued=True):
            yield (sep + json.dumps(task(f, found, schema))).encode()
            sep = ", "
        yield b"[]" if sep == "[" else b"]"
    finally:
        session.close()


def labelstudio(workspace: Workspace, project_id: int, include: str, images: bool = False) -> Iterator[bytes]:
    """The tasks JSON alone, or with ``images`` a zip of ``tasks.json``, ``label_config.xml`` and ``images/``."""
    if not images:
        yield from tasks_json(workspace, project_id, include)
        return
    out = ZipStream()
    session = open_session(workspace)
    try:
        config = label_config(label_schema(session, project_id, include))
        for f in frames(session, project_id, include, queued=True):
            yield out.add_file(f"images/{f.file_name}", workspace.blobs.path(f.blob_path))
    finally:
        session.close()
    yield out.add("label_config.xml", config.encode())
    yield from out.stream("tasks.json", tasks_json(workspace, project_id, include))
    yield from out.finish()
